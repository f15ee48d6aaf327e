//! SSE2 instance of the bit transpose (16 elements per group). Every x86_64 CPU has SSE2.
use super::simd::Vector;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct Sse2(__m128i);

// Byte i of every 8-byte group selects bit i.
const BITSEL: i64 = 0x8040_2010_0804_0201_u64 as i64;

impl Vector for Sse2 {
    const BYTES: usize = 16;
    type Plane = u16;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Sse2(_mm_setzero_si128())
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        Sse2(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        _mm_storeu_si128(p.cast(), self.0)
    }
    #[inline(always)]
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self) {
        let low = _mm_set1_epi16(0xFF);
        let even = _mm_packus_epi16(_mm_and_si128(a.0, low), _mm_and_si128(b.0, low));
        let odd = _mm_packus_epi16(_mm_srli_epi16(a.0, 8), _mm_srli_epi16(b.0, 8));
        (Sse2(even), Sse2(odd))
    }
    #[inline(always)]
    unsafe fn zip(a: Self, b: Self) -> (Self, Self) {
        (
            Sse2(_mm_unpacklo_epi8(a.0, b.0)),
            Sse2(_mm_unpackhi_epi8(a.0, b.0)),
        )
    }
    #[inline(always)]
    unsafe fn to_lane_order(self, _e: usize) -> Self {
        self // one lane: element order is lane order
    }
    #[inline(always)]
    unsafe fn to_element_order(self, _e: usize) -> Self {
        self
    }
    #[inline(always)]
    unsafe fn planes(self) -> [u16; 8] {
        let mut x = self.0;
        let mut p = [0u16; 8];
        for k in (0..8).rev() {
            p[k] = _mm_movemask_epi8(x) as u16;
            x = _mm_add_epi8(x, x);
        }
        p
    }
    #[inline(always)]
    unsafe fn from_planes(planes: [u16; 8]) -> Self {
        let bitsel = _mm_set1_epi64x(BITSEL);
        let mut acc = _mm_setzero_si128();
        for (k, w) in planes.into_iter().enumerate() {
            // Spread the low byte of w over bytes 0..8 and the high byte over 8..16.
            let v = _mm_cvtsi32_si128(i32::from(w));
            let v = _mm_unpacklo_epi8(v, v);
            let v = _mm_unpacklo_epi16(v, v);
            let v = _mm_unpacklo_epi32(v, v);
            let set = _mm_cmpeq_epi8(_mm_and_si128(v, bitsel), bitsel);
            acc = _mm_or_si128(acc, _mm_and_si128(set, _mm_set1_epi8(1 << k)));
        }
        Sse2(acc)
    }
    #[inline(always)]
    unsafe fn load_plane(p: *const u8) -> u16 {
        p.cast::<u16>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store_plane(plane: u16, p: *mut u8) {
        p.cast::<u16>().write_unaligned(plane)
    }
}

/// # Safety
/// The CPU must support SSE2 (always true on x86_64); `src` and `dst` hold `n * e` bytes.
#[target_feature(enable = "sse2")]
pub(super) unsafe fn transpose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::transpose::<Sse2>(src, dst, e, n, 0)
}

/// # Safety
/// As for [`transpose`].
#[target_feature(enable = "sse2")]
pub(super) unsafe fn untranspose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::untranspose::<Sse2>(src, dst, e, n, 0)
}
