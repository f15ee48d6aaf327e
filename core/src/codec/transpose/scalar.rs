//! The portable bit transpose: the oracle every SIMD kernel is tested against, and the tail
//! handler for the last few groups of eight elements that do not fill a vector.
#![forbid(unsafe_code)]

/// Transposes the 8x8 bit matrix held in `x` (byte = row, bit = column).
#[inline(always)]
fn transpose8x8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Bit-transposes elements `start..n` of a block of `n` elements of `e` bytes into bit planes of
/// `n / 8` bytes. `start` and `n` are multiples of 8.
pub(crate) fn transpose_from(src: &[u8], dst: &mut [u8], e: usize, n: usize, start: usize) {
    let row = n / 8;
    for m in start / 8..row {
        let group = &src[8 * m * e..8 * (m + 1) * e];
        for j in 0..e {
            let mut x = 0u64;
            for q in 0..8 {
                x |= u64::from(group[q * e + j]) << (8 * q);
            }
            let y = transpose8x8(x);
            for k in 0..8 {
                dst[(8 * j + k) * row + m] = (y >> (8 * k)) as u8;
            }
        }
    }
}

/// The inverse of [`transpose_from`]: bit planes back to elements `start..n`.
pub(crate) fn untranspose_from(src: &[u8], dst: &mut [u8], e: usize, n: usize, start: usize) {
    let row = n / 8;
    for m in start / 8..row {
        let group = &mut dst[8 * m * e..8 * (m + 1) * e];
        for j in 0..e {
            let mut x = 0u64;
            for k in 0..8 {
                x |= u64::from(src[(8 * j + k) * row + m]) << (8 * k);
            }
            let y = transpose8x8(x);
            for q in 0..8 {
                group[q * e + j] = (y >> (8 * q)) as u8;
            }
        }
    }
}
