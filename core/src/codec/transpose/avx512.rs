//! AVX-512 (F + BW) instance of the bit transpose (64 elements per group, four 128-bit lanes).
//! Bit planes move through mask registers: `test_epi8_mask` reads one off, a masked add writes
//! one back.
use super::simd::Vector;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct Avx512(pub(super) __m512i);

/// The cross-lane reorder for `e`-byte elements: position `i` of the lane order (lane
/// `i / per_lane`, slot `i % per_lane`) holds chunk `4 * slot + lane` of the row, a chunk being
/// `16 / e` bytes and `per_lane` = `e`.
const fn lane_order(n: usize, i: usize) -> usize {
    (i % (n / 4)) * 4 + i / (n / 4)
}
const fn element_order(n: usize, c: usize) -> usize {
    (c % 4) * (n / 4) + c / 4
}
/// A permute index table, widened to the element size the permute takes.
macro_rules! table {
    ($ty:ty, $n:expr, $f:ident) => {{
        let mut t = [0 as $ty; $n];
        let mut i = 0;
        while i < $n {
            t[i] = $f($n, i) as $ty;
            i += 1;
        }
        t
    }};
}
const TO_Q: [u64; 8] = table!(u64, 8, lane_order);
const FROM_Q: [u64; 8] = table!(u64, 8, element_order);
const TO_D: [u32; 16] = table!(u32, 16, lane_order);
const FROM_D: [u32; 16] = table!(u32, 16, element_order);
const TO_W: [u16; 32] = table!(u16, 32, lane_order);
const FROM_W: [u16; 32] = table!(u16, 32, element_order);

impl Avx512 {
    #[inline(always)]
    unsafe fn permute(self, e: usize, q: &[u64; 8], d: &[u32; 16], w: &[u16; 32]) -> Self {
        Avx512(match e {
            2 => _mm512_permutexvar_epi64(_mm512_loadu_si512(q.as_ptr().cast()), self.0),
            4 => _mm512_permutexvar_epi32(_mm512_loadu_si512(d.as_ptr().cast()), self.0),
            8 => _mm512_permutexvar_epi16(_mm512_loadu_si512(w.as_ptr().cast()), self.0),
            _ => self.0,
        })
    }
}

impl Vector for Avx512 {
    const BYTES: usize = 64;
    type Plane = u64;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx512(_mm512_setzero_si512())
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        Avx512(_mm512_loadu_si512(p.cast()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        _mm512_storeu_si512(p.cast(), self.0)
    }
    #[inline(always)]
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self) {
        let low = _mm512_set1_epi16(0xFF);
        let even = _mm512_packus_epi16(_mm512_and_si512(a.0, low), _mm512_and_si512(b.0, low));
        let odd = _mm512_packus_epi16(_mm512_srli_epi16::<8>(a.0), _mm512_srli_epi16::<8>(b.0));
        (Avx512(even), Avx512(odd))
    }
    #[inline(always)]
    unsafe fn zip(a: Self, b: Self) -> (Self, Self) {
        (
            Avx512(_mm512_unpacklo_epi8(a.0, b.0)),
            Avx512(_mm512_unpackhi_epi8(a.0, b.0)),
        )
    }
    #[inline(always)]
    unsafe fn to_lane_order(self, e: usize) -> Self {
        self.permute(e, &TO_Q, &TO_D, &TO_W)
    }
    #[inline(always)]
    unsafe fn to_element_order(self, e: usize) -> Self {
        self.permute(e, &FROM_Q, &FROM_D, &FROM_W)
    }
    #[inline(always)]
    unsafe fn planes(self) -> [u64; 8] {
        let mut p = [0u64; 8];
        for (k, plane) in p.iter_mut().enumerate() {
            *plane = _mm512_test_epi8_mask(self.0, _mm512_set1_epi8(1 << k));
        }
        p
    }
    #[inline(always)]
    unsafe fn from_planes(planes: [u64; 8]) -> Self {
        let mut acc = _mm512_maskz_mov_epi8(planes[0], _mm512_set1_epi8(1));
        for (k, &plane) in planes.iter().enumerate().skip(1) {
            acc = _mm512_mask_add_epi8(acc, plane, acc, _mm512_set1_epi8(1 << k));
        }
        Avx512(acc)
    }
    #[inline(always)]
    unsafe fn load_plane(p: *const u8) -> u64 {
        p.cast::<u64>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store_plane(plane: u64, p: *mut u8) {
        p.cast::<u64>().write_unaligned(plane)
    }
}

/// # Safety
/// The CPU must support AVX-512 F and BW; `src` and `dst` hold `n * e` bytes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn transpose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::transpose::<Avx512>(src, dst, e, n, 0)
}

/// # Safety
/// As for [`transpose`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn untranspose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::untranspose::<Avx512>(src, dst, e, n, 0)
}
