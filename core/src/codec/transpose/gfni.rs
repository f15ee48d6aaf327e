//! AVX-512 with GFNI and VBMI (Ice Lake, Zen 4 and later), 512 elements per step.
//!
//! Eight bit planes are loaded 64 bytes at a time; an 8x8 transpose of their 64-bit words gathers
//! each 64-element group's eight plane words into one register; `vpermb` places the bytes and a
//! single `gf2p8affineqb` transposes all eight 8x8 bit matrices in it. Byte rows are then
//! interleaved as in the AVX-512 kernel, which also does what is left of a block (fewer than 512
//! elements).
use super::avx512::Avx512;
use super::simd::{self, Vector};
use core::arch::x86_64::*;

const STEP: usize = 512;

/// Byte i of every 64-bit word holds bit i: with a word of data as the matrix operand,
/// `gf2p8affine` returns that 8x8 bit matrix transposed and mirrored.
const IDENTITY: i64 = 0x8040_2010_0804_0201_u64 as i64;

/// Decoding: byte 8b + 7 - k of the mirrored matrix comes from plane k, byte b.
const GATHER: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut k = 0;
    while k < 8 {
        let mut b = 0;
        while b < 8 {
            t[8 * b + 7 - k] = (8 * k + b) as u8;
            b += 1;
        }
        k += 1;
    }
    t
};
/// Encoding: reverse the bytes of each 64-bit word before the bit transpose ...
const MIRROR: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = (i / 8 * 8 + 7 - i % 8) as u8;
        i += 1;
    }
    t
};
/// ... and afterwards send byte k of word b to plane k, byte b.
const SCATTER: [u8; 64] = {
    let mut t = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = (i % 8 * 8 + i / 8) as u8;
        i += 1;
    }
    t
};

/// 8x8 transpose of 64-bit words: word h of output k is word k of input h.
#[inline(always)]
unsafe fn transpose_words(l: [__m512i; 8]) -> [__m512i; 8] {
    let lo = |a, b| _mm512_unpacklo_epi64(a, b);
    let hi = |a, b| _mm512_unpackhi_epi64(a, b);
    // Lane i of each: words (2i or 2i+1) of two inputs.
    let pairs = [
        lo(l[0], l[1]),
        lo(l[2], l[3]),
        lo(l[4], l[5]),
        lo(l[6], l[7]),
        hi(l[0], l[1]),
        hi(l[2], l[3]),
        hi(l[4], l[5]),
        hi(l[6], l[7]),
    ];
    let mut out = [_mm512_setzero_si512(); 8];
    for (parity, p) in pairs.chunks_exact(4).enumerate() {
        // 4x4 transpose of 128-bit lanes.
        let ab_lo = _mm512_shuffle_i64x2::<0b01_00_01_00>(p[0], p[1]);
        let ab_hi = _mm512_shuffle_i64x2::<0b11_10_11_10>(p[0], p[1]);
        let cd_lo = _mm512_shuffle_i64x2::<0b01_00_01_00>(p[2], p[3]);
        let cd_hi = _mm512_shuffle_i64x2::<0b11_10_11_10>(p[2], p[3]);
        out[parity] = _mm512_shuffle_i64x2::<0b10_00_10_00>(ab_lo, cd_lo);
        out[2 + parity] = _mm512_shuffle_i64x2::<0b11_01_11_01>(ab_lo, cd_lo);
        out[4 + parity] = _mm512_shuffle_i64x2::<0b10_00_10_00>(ab_hi, cd_hi);
        out[6 + parity] = _mm512_shuffle_i64x2::<0b11_01_11_01>(ab_hi, cd_hi);
    }
    out
}

#[inline(always)]
unsafe fn untranspose_steps<const E: usize>(src: &[u8], dst: &mut [u8], n: usize) -> usize {
    let row = n / 8;
    let gather = _mm512_loadu_si512(GATHER.as_ptr().cast());
    let identity = _mm512_set1_epi64(IDENTITY);
    // groups[h][j]: byte row j of the 64 elements base + 64h ..
    let mut groups = [[Avx512::zero(); E]; 8];
    for step in 0..n / STEP {
        let base = step * STEP;
        for j in 0..E {
            let mut planes = [_mm512_setzero_si512(); 8];
            for (k, plane) in planes.iter_mut().enumerate() {
                // SAFETY: plane 8j+k is `row` bytes from (8j+k)*row; bytes base/8 .. base/8 + 64
                // are inside it because base + 512 <= n.
                *plane = _mm512_loadu_si512(src.as_ptr().add((8 * j + k) * row + base / 8).cast());
            }
            for (group, t) in groups.iter_mut().zip(transpose_words(planes)) {
                let bytes = _mm512_gf2p8affine_epi64_epi8::<0>(
                    identity,
                    _mm512_permutexvar_epi8(gather, t),
                );
                group[j] = Avx512(bytes).to_lane_order(E);
            }
        }
        for (h, group) in groups.into_iter().enumerate() {
            for (t, v) in simd::interleave::<Avx512, E>(group).into_iter().enumerate() {
                // SAFETY: elements base + 64h .. base + 64h + 64 lie inside the block.
                v.store(dst.as_mut_ptr().add((base + 64 * h) * E + 64 * t));
            }
        }
    }
    n / STEP * STEP
}

#[inline(always)]
unsafe fn transpose_steps<const E: usize>(src: &[u8], dst: &mut [u8], n: usize) -> usize {
    let row = n / 8;
    let mirror = _mm512_loadu_si512(MIRROR.as_ptr().cast());
    let scatter = _mm512_loadu_si512(SCATTER.as_ptr().cast());
    let identity = _mm512_set1_epi64(IDENTITY);
    let mut groups = [[Avx512::zero(); E]; 8];
    for step in 0..n / STEP {
        let base = step * STEP;
        for (h, group) in groups.iter_mut().enumerate() {
            let mut o = [Avx512::zero(); E];
            for (t, v) in o.iter_mut().enumerate() {
                // SAFETY: elements base + 64h .. base + 64h + 64 lie inside the block.
                *v = Avx512::load(src.as_ptr().add((base + 64 * h) * E + 64 * t));
            }
            *group = simd::deinterleave::<Avx512, E>(o);
            for r in group.iter_mut() {
                *r = r.to_element_order(E);
            }
        }
        for j in 0..E {
            let mut t = [_mm512_setzero_si512(); 8];
            for (word, group) in t.iter_mut().zip(&groups) {
                let bits = _mm512_gf2p8affine_epi64_epi8::<0>(
                    identity,
                    _mm512_permutexvar_epi8(mirror, group[j].0),
                );
                *word = _mm512_permutexvar_epi8(scatter, bits);
            }
            for (k, plane) in transpose_words(t).into_iter().enumerate() {
                // SAFETY: as in `untranspose_steps`.
                _mm512_storeu_si512(
                    dst.as_mut_ptr().add((8 * j + k) * row + base / 8).cast(),
                    plane,
                );
            }
        }
    }
    n / STEP * STEP
}

/// # Safety
/// The CPU must support AVX-512 F, BW and VBMI and GFNI; `src` and `dst` hold `n * e` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
pub(super) unsafe fn transpose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    let done = match e {
        1 => transpose_steps::<1>(src, dst, n),
        2 => transpose_steps::<2>(src, dst, n),
        4 => transpose_steps::<4>(src, dst, n),
        8 => transpose_steps::<8>(src, dst, n),
        _ => 0,
    };
    simd::transpose::<Avx512>(src, dst, e, n, done)
}

/// # Safety
/// As for [`transpose`].
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
pub(super) unsafe fn untranspose(src: &[u8], dst: &mut [u8], e: usize, n: usize) -> usize {
    let done = match e {
        1 => untranspose_steps::<1>(src, dst, n),
        2 => untranspose_steps::<2>(src, dst, n),
        4 => untranspose_steps::<4>(src, dst, n),
        8 => untranspose_steps::<8>(src, dst, n),
        _ => 0,
    };
    simd::untranspose::<Avx512>(src, dst, e, n, done)
}
