//! AVX2 instance of the bit transpose (32 elements per group, two 128-bit lanes).
use super::simd::Vector;
use core::arch::x86_64::*;

#[derive(Clone, Copy)]
pub(super) struct Avx2(__m256i);

const BITSEL: i64 = 0x8040_2010_0804_0201_u64 as i64;
// Swap the middle two 64-bit quarters: (0, 2, 1, 3).
const MID_SWAP: i32 = 0b11_01_10_00;

impl Vector for Avx2 {
    const BYTES: usize = 32;
    type Plane = u32;

    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx2(_mm256_setzero_si256())
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> Self {
        Avx2(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u8) {
        _mm256_storeu_si256(p.cast(), self.0)
    }
    #[inline(always)]
    unsafe fn even_odd(a: Self, b: Self) -> (Self, Self) {
        let low = _mm256_set1_epi16(0xFF);
        let even = _mm256_packus_epi16(_mm256_and_si256(a.0, low), _mm256_and_si256(b.0, low));
        let odd = _mm256_packus_epi16(_mm256_srli_epi16(a.0, 8), _mm256_srli_epi16(b.0, 8));
        (Avx2(even), Avx2(odd))
    }
    #[inline(always)]
    unsafe fn zip(a: Self, b: Self) -> (Self, Self) {
        (
            Avx2(_mm256_unpacklo_epi8(a.0, b.0)),
            Avx2(_mm256_unpackhi_epi8(a.0, b.0)),
        )
    }
    // Lane order for e-byte elements: lane L, slot s holds the row's chunk 2s + L, where a chunk
    // is 16/e bytes.
    #[inline(always)]
    unsafe fn to_lane_order(self, e: usize) -> Self {
        Avx2(match e {
            2 => _mm256_permute4x64_epi64::<MID_SWAP>(self.0),
            4 => _mm256_permutevar8x32_epi32(self.0, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)),
            8 => {
                let evens_first = _mm256_setr_epi8(
                    0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, //
                    0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                );
                _mm256_permute4x64_epi64::<MID_SWAP>(_mm256_shuffle_epi8(self.0, evens_first))
            }
            _ => self.0,
        })
    }
    #[inline(always)]
    unsafe fn to_element_order(self, e: usize) -> Self {
        Avx2(match e {
            2 => _mm256_permute4x64_epi64::<MID_SWAP>(self.0),
            4 => _mm256_permutevar8x32_epi32(self.0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)),
            8 => {
                let rezip = _mm256_setr_epi8(
                    0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, //
                    0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15,
                );
                _mm256_shuffle_epi8(_mm256_permute4x64_epi64::<MID_SWAP>(self.0), rezip)
            }
            _ => self.0,
        })
    }
    #[inline(always)]
    unsafe fn planes(self) -> [u32; 8] {
        let mut x = self.0;
        let mut p = [0u32; 8];
        for k in (0..8).rev() {
            p[k] = _mm256_movemask_epi8(x) as u32;
            x = _mm256_add_epi8(x, x);
        }
        p
    }
    #[inline(always)]
    unsafe fn from_planes(planes: [u32; 8]) -> Self {
        let bitsel = _mm256_set1_epi64x(BITSEL);
        // Byte i of the result looks at byte i / 8 of the plane word.
        let spread = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        );
        let mut acc = _mm256_setzero_si256();
        for (k, w) in planes.into_iter().enumerate() {
            let v = _mm256_shuffle_epi8(_mm256_set1_epi32(w as i32), spread);
            let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bitsel), bitsel);
            acc = _mm256_or_si256(acc, _mm256_and_si256(set, _mm256_set1_epi8(1 << k)));
        }
        Avx2(acc)
    }
    #[inline(always)]
    unsafe fn load_plane(p: *const u8) -> u32 {
        p.cast::<u32>().read_unaligned()
    }
    #[inline(always)]
    unsafe fn store_plane(plane: u32, p: *mut u8) {
        p.cast::<u32>().write_unaligned(plane)
    }
}

/// # Safety
/// The CPU must support AVX2; `src` and `dst` hold `n * e` bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::transpose::<Avx2>(src, dst, e, n, 0)
}

/// # Safety
/// As for [`transpose`].
#[target_feature(enable = "avx2")]
pub(super) unsafe fn untranspose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    super::simd::untranspose::<Avx2>(src, dst, e, n, 0)
}
