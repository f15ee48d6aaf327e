//! AVX-512 (F + BW) instance of the bit transpose (64 elements per group, four 128-bit lanes).
//! Bit planes move through mask registers: `test_epi8_mask` reads one off, a masked add writes
//! one back.
use super::simd::Vector;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct Avx512(__m512i);

/// Index tables for the cross-lane reorder: lane L, slot s of the lane order holds the row's chunk
/// 4s + L (a chunk is 16/e bytes). `TO_*[i]` is the chunk that lands at position i.
const fn lane_order<const N: usize>() -> [u16; N] {
    let per_lane = N / 4;
    let mut idx = [0u16; N];
    let mut i = 0;
    while i < N {
        let (lane, slot) = (i / per_lane, i % per_lane);
        idx[i] = (slot * 4 + lane) as u16;
        i += 1;
    }
    idx
}
const fn inverse<const N: usize>(p: [u16; N]) -> [u16; N] {
    let mut inv = [0u16; N];
    let mut i = 0;
    while i < N {
        inv[p[i] as usize] = i as u16;
        i += 1;
    }
    inv
}
const TO_Q: [u16; 8] = lane_order::<8>();
const FROM_Q: [u16; 8] = inverse(TO_Q);
const TO_D: [u16; 16] = lane_order::<16>();
const FROM_D: [u16; 16] = inverse(TO_D);
const TO_W: [u16; 32] = lane_order::<32>();
const FROM_W: [u16; 32] = inverse(TO_W);

#[inline(always)]
unsafe fn table<const N: usize>(t: &[u16; N]) -> __m512i {
    // Widen to the element size the permute expects; all tables fit 512 bits afterwards.
    match N {
        8 => _mm512_loadu_si512(t.map(u64::from).as_ptr().cast()),
        16 => _mm512_loadu_si512(t.map(u32::from).as_ptr().cast()),
        _ => _mm512_loadu_si512(t.as_ptr().cast()),
    }
}

impl Avx512 {
    #[inline(always)]
    unsafe fn permute(self, e: usize, q: &[u16; 8], d: &[u16; 16], w: &[u16; 32]) -> Self {
        Avx512(match e {
            2 => _mm512_permutexvar_epi64(table(q), self.0),
            4 => _mm512_permutexvar_epi32(table(d), self.0),
            8 => _mm512_permutexvar_epi16(table(w), self.0),
            _ => self.0,
        })
    }
}

impl Vector for Avx512 {
    const BYTES: usize = 64;
    type Plane = u64;

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
    unsafe fn to_lanes(self, e: usize) -> Self {
        self.permute(e, &TO_Q, &TO_D, &TO_W)
    }
    #[inline(always)]
    unsafe fn from_lanes(self, e: usize) -> Self {
        self.permute(e, &FROM_Q, &FROM_D, &FROM_W)
    }
    #[inline(always)]
    unsafe fn planes(self) -> [u64; 8] {
        core::array::from_fn(|k| _mm512_test_epi8_mask(self.0, _mm512_set1_epi8(1 << k)))
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
    super::simd::transpose::<Avx512>(src, dst, e, n)
}

/// # Safety
/// As for [`transpose`].
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn untranspose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::untranspose::<Avx512>(src, dst, e, n)
}
