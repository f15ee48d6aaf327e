//! N x N binning of stored photon counts, mask-aware, into exact u32 sums.
//!
//! A bin is the sum of its `n * n` pixels, with three rules that keep what NXmx readers rely on:
//! - a bin with any masked pixel (`pixel_mask != 0`, or a value at the type's maximum, which
//!   EIGER writes in gaps) is `u32::MAX`, the invalid marker of the binned uint32 frame;
//! - a bin holding any pixel at or above `saturation` is at least `saturation * n * n`, so the
//!   scaled `saturation_value` of the binned dataset still flags it;
//! - a sum that would reach `u32::MAX` is `u32::MAX - 1`, so no valid bin looks invalid.
//!
//! One pass over the frame (and one over the mask, if given; [`BinMask`] saves it), in 32-bit
//! lanes: each bin keeps a wrapping u32 sum and its largest pixel, which tells an invalid bin, a
//! saturated one, and a sum that may have wrapped (then summed again in u64; it takes counts
//! near `2^32 / n^2`).

use super::Count;

/// The shape of a frame of `nx` by `ny` pixels binned `n` x `n`: rows and columns that do not
/// fill a bin are dropped.
pub fn binned_shape(nx: usize, ny: usize, n: usize) -> (usize, usize) {
    (nx / n.max(1), ny / n.max(1))
}

/// NXmx `pixel_mask` bits OR-ed over each bin, in [`binned_shape`].
///
/// # Panics
/// If `n` is 0 or `mask` is not `nx * ny` long.
pub fn bin_mask(mask: &[u32], nx: usize, ny: usize, n: usize) -> Vec<u32> {
    assert!(n > 0, "bin size 0");
    assert_eq!(mask.len(), nx * ny, "mask length");
    let (bx, by) = binned_shape(nx, ny, n);
    let mut out = vec![0u32; bx * by];
    if bx == 0 {
        return out;
    }
    for (row, bins) in out.chunks_exact_mut(bx).enumerate() {
        for dy in 0..n {
            let line = &mask[(row * n + dy) * nx..][..bx * n];
            for (b, px) in bins.iter_mut().zip(line.chunks_exact(n)) {
                *b = px.iter().fold(*b, |acc, &m| acc | m);
            }
        }
    }
    out
}

/// A pixel mask prepared for binning many frames: the bins it masks, found once.
///
/// [`BinMask::bin`] gives exactly what [`bin`] gives with the mask, without reading the mask
/// again for every frame (as many bytes as a uint32 frame), so binning runs at the speed of the
/// unmasked path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinMask {
    nx: usize,
    ny: usize,
    n: usize,
    /// Indices of the bins with a mask bit, in order.
    masked: Vec<usize>,
}

impl BinMask {
    /// # Panics
    /// If `n` is 0 or `mask` is not `nx * ny` long.
    pub fn new(mask: &[u32], nx: usize, ny: usize, n: usize) -> BinMask {
        let masked = bin_mask(mask, nx, ny, n)
            .iter()
            .enumerate()
            .filter(|&(_, &m)| m != 0)
            .map(|(i, _)| i)
            .collect();
        BinMask { nx, ny, n, masked }
    }

    /// How many bins the mask covers.
    pub fn masked_bins(&self) -> usize {
        self.masked.len()
    }

    /// [`bin`] of a frame of this mask's shape, with this mask.
    ///
    /// # Panics
    /// As [`bin`].
    pub fn bin<T: Count>(&self, src: &[T], saturation: Option<u32>, out: &mut [u32]) {
        bin(src, self.nx, self.ny, self.n, None, saturation, out);
        for &i in &self.masked {
            out[i] = u32::MAX;
        }
    }
}

/// Bins a frame of `nx` by `ny` pixels (row-major) `n` x `n` into `out`, of [`binned_shape`],
/// by the rules in the module docs. `mask` is the NXmx `pixel_mask` (one value per pixel), if
/// any; `saturation` the detector's `saturation_value`, if any.
///
/// # Panics
/// If `n` is 0 or the lengths do not match the shapes.
pub fn bin<T: Count>(
    src: &[T],
    nx: usize,
    ny: usize,
    n: usize,
    mask: Option<&[u32]>,
    saturation: Option<u32>,
    out: &mut [u32],
) {
    assert!(n > 0, "bin size 0");
    assert_eq!(src.len(), nx * ny, "source length");
    if let Some(m) = mask {
        assert_eq!(m.len(), nx * ny, "mask length");
    }
    let (bx, by) = binned_shape(nx, ny, n);
    assert_eq!(out.len(), bx * by, "binned length");
    if bx == 0 || by == 0 {
        return;
    }
    let job = Job {
        nx,
        n,
        // Without a saturation value no valid pixel counts as saturated: u32::MAX is only ever
        // reached by an invalid uint32 pixel, which the invalid flag already covers.
        saturation: saturation.unwrap_or(u32::MAX),
        floor: saturation.map_or(0, |s| clamp(u64::from(s) * (n * n) as u64)),
    };
    #[cfg(target_arch = "x86_64")]
    if crate::frame::xds::avx2() {
        // SAFETY: avx2() has checked that the CPU runs AVX2.
        return unsafe { avx2_bin(&job, src, mask, out) };
    }
    bin_any(&job, src, mask, out)
}

/// A sum clamped below the invalid marker.
#[inline(always)]
fn clamp(sum: u64) -> u32 {
    sum.min(u64::from(u32::MAX - 1)) as u32
}

/// What every row of one binning call shares.
struct Job {
    nx: usize,
    n: usize,
    saturation: u32,
    /// The least value of a bin with a saturated pixel: `saturation * n * n`, clamped.
    floor: u32,
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_bin<T: Count>(job: &Job, src: &[T], mask: Option<&[u32]>, out: &mut [u32]) {
    bin_any(job, src, mask, out)
}

/// The bin sizes people ask for with the width known to the compiler, which then vectorises
/// the loops; any other size in a plain loop.
#[inline(always)]
fn bin_any<T: Count>(job: &Job, src: &[T], mask: Option<&[u32]>, out: &mut [u32]) {
    match (job.n, mask) {
        (2, None) => bin_direct::<T, 2, false>(job, src, &[], out),
        (3, None) => bin_direct::<T, 3, false>(job, src, &[], out),
        (4, None) => bin_direct::<T, 4, false>(job, src, &[], out),
        (2, Some(m)) => bin_direct::<T, 2, true>(job, src, m, out),
        (3, Some(m)) => bin_direct::<T, 3, true>(job, src, m, out),
        (4, Some(m)) => bin_direct::<T, 4, true>(job, src, m, out),
        _ => bin_plain(job, src, mask, out),
    }
}

/// Each bin straight from its `N` rows, in registers: a wrapping u32 sum and the largest pixel.
/// The loop over bins reads `N` interleaved columns of each row, which the compiler vectorises
/// with shuffles. The largest pixel tells an invalid bin (the type's maximum), a saturated one,
/// and whether the sum may have wrapped (only with counts near `2^32 / N^2`): those rare bins
/// are summed again in u64. The mask, if any, is read in the same loop, its bits OR-ed per bin.
#[inline(always)]
fn bin_direct<T: Count, const N: usize, const MASKED: bool>(
    job: &Job,
    src: &[T],
    mask: &[u32],
    out: &mut [u32],
) {
    let nx = job.nx;
    let bx = out.len() / (src.len() / nx / N);
    let safe = u32::MAX / (N * N) as u32;
    let top = T::MAX.get();
    let empty: &[u32] = &[];
    for (row, bins) in out.chunks_exact_mut(bx).enumerate() {
        let rows: [&[T]; N] = std::array::from_fn(|dy| &src[(row * N + dy) * nx..][..bx * N]);
        let masks: [&[u32]; N] = std::array::from_fn(|dy| {
            if MASKED {
                &mask[(row * N + dy) * nx..][..bx * N]
            } else {
                empty
            }
        });
        let masked = |b: usize| {
            MASKED
                && masks.iter().any(|m| {
                    let px: &[u32; N] = m[b * N..][..N].try_into().expect("N columns");
                    px.iter().fold(0, |a, &v| a | v) != 0
                })
        };
        let mut wrapped = false;
        for (b, o) in bins.iter_mut().enumerate() {
            let mut sum = 0u32;
            let mut mx = 0u32;
            for r in &rows {
                let px: &[T; N] = r[b * N..][..N].try_into().expect("N columns");
                for &v in px {
                    sum = sum.wrapping_add(v.get());
                    mx = mx.max(v.get());
                }
            }
            let mut bits = 0;
            if MASKED {
                for m in &masks {
                    let px: &[u32; N] = m[b * N..][..N].try_into().expect("N columns");
                    bits = px.iter().fold(bits, |a, &v| a | v);
                }
            }
            let invalid = mx == top || bits != 0;
            wrapped |= mx > safe && !invalid;
            let v = if mx >= job.saturation {
                sum.max(job.floor)
            } else {
                sum
            };
            *o = if invalid { u32::MAX } else { v };
        }
        if wrapped {
            for (b, o) in bins.iter_mut().enumerate() {
                let px = rows.iter().flat_map(|r| &r[b * N..][..N]);
                let mx = px.clone().map(|v| v.get()).max().unwrap_or(0);
                if mx > safe && mx != top && !masked(b) {
                    *o = finish(px.map(|&v| u64::from(v.get())).sum(), mx, job);
                }
            }
        }
    }
}

/// Any bin size, one bin at a time, in u64.
fn bin_plain<T: Count>(job: &Job, src: &[T], mask: Option<&[u32]>, out: &mut [u32]) {
    let (nx, n) = (job.nx, job.n);
    let bx = out.len() / (src.len() / nx / n);
    for (k, o) in out.iter_mut().enumerate() {
        let (x, y) = (k % bx * n, k / bx * n);
        let pixels = (y..y + n).flat_map(|r| r * nx + x..r * nx + x + n);
        let (mut sum, mut mx, mut bits) = (0u64, 0u32, 0u32);
        for i in pixels {
            sum += u64::from(src[i].get());
            mx = mx.max(src[i].get());
            bits |= mask.map_or(0, |m| m[i]);
        }
        *o = if mx == T::MAX.get() || bits != 0 {
            u32::MAX
        } else {
            finish(sum, mx, job)
        };
    }
}

/// A valid bin's value from its exact sum and its largest pixel.
#[inline(always)]
fn finish(sum: u64, max: u32, job: &Job) -> u32 {
    if max >= job.saturation {
        clamp(sum).max(job.floor)
    } else {
        clamp(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules, bin by bin, from the pixels, in u64.
    fn oracle<T: Count>(
        src: &[T],
        nx: usize,
        ny: usize,
        n: usize,
        mask: Option<&[u32]>,
        saturation: Option<u32>,
    ) -> Vec<u32> {
        let (bx, by) = binned_shape(nx, ny, n);
        let mut out = Vec::new();
        for y in 0..by {
            for x in 0..bx {
                let idx: Vec<usize> = (0..n * n)
                    .map(|k| (y * n + k / n) * nx + x * n + k % n)
                    .collect();
                let masked = idx
                    .iter()
                    .any(|&i| src[i].get() == T::MAX.get() || mask.is_some_and(|m| m[i] != 0));
                let sum: u64 = idx.iter().map(|&i| u64::from(src[i].get())).sum();
                let sat = saturation.is_some_and(|s| idx.iter().any(|&i| src[i].get() >= s));
                out.push(if masked {
                    u32::MAX
                } else {
                    let v = if sat {
                        sum.max(u64::from(saturation.unwrap()) * (n * n) as u64)
                    } else {
                        sum
                    };
                    v.min(u64::from(u32::MAX - 1)) as u32
                });
            }
        }
        out
    }

    fn check<T: Count + std::fmt::Debug>(
        src: &[T],
        nx: usize,
        ny: usize,
        n: usize,
        mask: Option<&[u32]>,
        saturation: Option<u32>,
    ) {
        let want = oracle(src, nx, ny, n, mask, saturation);
        let mut got = vec![0x5A5A_5A5A; want.len()];
        bin(src, nx, ny, n, mask, saturation, &mut got);
        assert_eq!(got, want, "{nx}x{ny} n={n} sat={saturation:?}");
        if let Some(m) = mask {
            let prepared = BinMask::new(m, nx, ny, n);
            let mut again = vec![0x5A5A_5A5A; want.len()];
            prepared.bin(src, saturation, &mut again);
            assert_eq!(again, want, "BinMask");
        }
        // The scalar twin gives the same bits.
        let (bx, by) = binned_shape(nx, ny, n);
        if bx > 0 && by > 0 {
            let job = Job {
                nx,
                n,
                saturation: saturation.unwrap_or(u32::MAX),
                floor: saturation.map_or(0, |s| clamp(u64::from(s) * (n * n) as u64)),
            };
            let mut scalar = vec![7; want.len()];
            bin_any(&job, src, mask, &mut scalar);
            assert_eq!(scalar, want);
        }
    }

    /// Values drawn from the whole range, with the maximum and its neighbours common.
    fn value(max: u32) -> impl Strategy<Value = u32> {
        prop_oneof![
            4 => 0..20u32,
            1 => Just(max),
            1 => Just(max - 1),
            1 => 0..=max,
        ]
    }

    fn frame(max: u32) -> impl Strategy<Value = (usize, usize, usize, Vec<u32>, Vec<u32>)> {
        (2usize..=4, 1usize..1200, 1usize..14).prop_flat_map(move |(n, nx, ny)| {
            (
                Just(n),
                Just(nx),
                Just(ny),
                prop::collection::vec(value(max), nx * ny),
                prop::collection::vec(prop_oneof![20 => Just(0u32), 1 => any::<u32>()], nx * ny),
            )
        })
    }

    fn saturation(max: u32) -> impl Strategy<Value = Option<u32>> {
        prop_oneof![
            Just(None),
            (0..=max).prop_map(Some),
            Just(Some(10)),
            Just(Some(u32::MAX))
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn u8_equals_the_oracle((n, nx, ny, v, m) in frame(255), s in saturation(255), masked: bool) {
            let src: Vec<u8> = v.iter().map(|&v| v as u8).collect();
            check(&src, nx, ny, n, masked.then_some(&m[..]), s);
        }

        #[test]
        fn u16_equals_the_oracle((n, nx, ny, v, m) in frame(65535), s in saturation(65535), masked: bool) {
            let src: Vec<u16> = v.iter().map(|&v| v as u16).collect();
            check(&src, nx, ny, n, masked.then_some(&m[..]), s);
        }

        #[test]
        fn u32_equals_the_oracle((n, nx, ny, v, m) in frame(u32::MAX), s in saturation(u32::MAX), masked: bool) {
            check(&v, nx, ny, n, masked.then_some(&m[..]), s);
        }

        #[test]
        fn any_n_equals_the_oracle(n in 1usize..7, nx in 1usize..40, ny in 1usize..20, seed: u64) {
            let mut x = seed | 1;
            let src: Vec<u16> = (0..nx * ny).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x % 70000).min(65535) as u16 }).collect();
            check(&src, nx, ny, n, None, Some(60000));
        }
    }

    #[test]
    fn the_rules_one_by_one() {
        let mut out = [0u32; 1];
        // Exact sum.
        bin(&[1u16, 2, 3, 4], 2, 2, 2, None, None, &mut out);
        assert_eq!(out, [10]);
        // A pixel at the maximum invalidates the bin; so does a mask bit.
        bin(&[1u16, 65535, 3, 4], 2, 2, 2, None, None, &mut out);
        assert_eq!(out, [u32::MAX]);
        bin(
            &[1u16, 2, 3, 4],
            2,
            2,
            2,
            Some(&[0, 0, 0, 1 << 8]),
            None,
            &mut out,
        );
        assert_eq!(out, [u32::MAX]);
        // A saturated pixel lifts the bin to saturation * n * n; a larger sum is kept.
        bin(&[1u16, 100, 3, 4], 2, 2, 2, None, Some(100), &mut out);
        assert_eq!(out, [400]);
        bin(&[300u16, 300, 3, 4], 2, 2, 2, None, Some(100), &mut out);
        assert_eq!(out, [607]);
        // A scaled saturation beyond u32 clamps below the invalid marker.
        bin(
            &[u32::MAX / 2, 0, 0, 0],
            2,
            2,
            2,
            None,
            Some(u32::MAX / 2),
            &mut out,
        );
        assert_eq!(out, [u32::MAX - 1]);
        // Sums that reach u32::MAX clamp below it; one below it is exact.
        bin(&[u32::MAX - 1, 1, 0, 0], 2, 2, 2, None, None, &mut out);
        assert_eq!(out, [u32::MAX - 1]);
        bin(&[u32::MAX - 2, 1, 0, 0], 2, 2, 2, None, None, &mut out);
        assert_eq!(out, [u32::MAX - 1]);
        bin(&[u32::MAX - 3, 1, 0, 0], 2, 2, 2, None, None, &mut out);
        assert_eq!(out, [u32::MAX - 2]);
        // A bin whose sum is redone in u64 stays masked.
        bin(
            &[u32::MAX - 1, 1, 0, 0],
            2,
            2,
            2,
            Some(&[0, 0, 0, 2]),
            None,
            &mut out,
        );
        assert_eq!(out, [u32::MAX]);
        bin(&[u32::MAX - 1; 4], 2, 2, 2, None, None, &mut out);
        assert_eq!(out, [u32::MAX - 1]);
    }

    #[test]
    fn odd_shapes_drop_the_partial_bins() {
        assert_eq!(binned_shape(4148, 4362, 3), (1382, 1454));
        assert_eq!(binned_shape(5, 2, 3), (1, 0));
        let src: Vec<u8> = (0..35).collect();
        check(&src, 7, 5, 3, None, None);
        check(&src, 7, 5, 2, None, None);
        let mut none: [u32; 0] = [];
        bin(&src[..10], 5, 2, 3, None, None, &mut none);
    }

    #[test]
    fn wide_rows() {
        let nx = 256 * 4 * 2 + 13;
        let src: Vec<u32> = (0..nx * 8)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) >> 8)
            .collect();
        let mut mask = vec![0u32; src.len()];
        mask[256 * 2 + 1] = 4;
        mask[nx * 5 + 256 * 6] = 1;
        for n in 2..=4 {
            check(&src, nx, 8, n, Some(&mask), Some(1 << 23));
        }
    }

    #[test]
    fn bin_mask_ors_the_bits() {
        let mask = [1, 0, 0, 4, 0, 0, 2, 8, 16, 0, 0, 0];
        assert_eq!(bin_mask(&mask, 4, 3, 2), vec![1, 4 | 2 | 8]);
        assert_eq!(bin_mask(&mask, 6, 2, 2), vec![1 | 2 | 8, 4 | 16, 0]);
        assert_eq!(bin_mask(&mask, 4, 3, 3), vec![1 | 2 | 16]);
    }
}
