//! The XDS convention: int32 frames, with the pixel mask and saturation in the values.
//!
//! - A pixel whose mask has bit 0 (gap) is [`GAP`] (-1); any other set mask bit makes it
//!   [`MASKED`] (-2). The mask wins over the value.
//! - An unmasked pixel at its type's maximum is saturated (overloaded). It becomes
//!   [`Saturated::Overload`] (`i32::MAX`, above any `OVERLOAD=`, so XDS marks the reflection
//!   overloaded) or, for the Durin/Neggia behaviour, [`Saturated::MinusOne`].
//! - Other values are kept: unsigned stay positive (uint16 40000 is 40000), signed keep their
//!   sign, and uint32 values above `i32::MAX` clip to `i32::MAX`.
//!
//! [`Converter`] applies these rules to any run of a frame's pixels, so that a decoder can hand
//! it each block while the block is still in cache. [`bin`] sums N x N bins of converted frames.

/// A pixel in a gap (mask bit 0).
pub const GAP: i32 = -1;
/// A pixel with any other mask bit set (dead, noisy, user-defined, ...).
pub const MASKED: i32 = -2;

/// What an unmasked pixel at its type's maximum becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Saturated {
    /// `i32::MAX`: XDS's OVERLOAD catches it and flags the reflection, rather than silently
    /// dropping the reflection's brightest pixel.
    #[default]
    Overload,
    /// -1, as Durin and Neggia report it (XDS then treats the pixel as untrusted).
    MinusOne,
}

impl Saturated {
    pub fn value(self) -> i32 {
        match self {
            Saturated::Overload => i32::MAX,
            Saturated::MinusOne => -1,
        }
    }
}

/// A stored pixel type that converts to the XDS convention.
pub trait Pixel: Copy + Send + Sync + 'static {
    /// The type's maximum: the value of a saturated pixel.
    const MAX: Self;
    /// The value of an unmasked pixel, `saturated` being what the maximum becomes.
    fn to_xds(self, saturated: i32) -> i32;
}

/// A 4-byte pixel type, converted in place in the int32 buffer it was decoded into.
pub trait Pixel32: Pixel {
    fn from_bits(bits: i32) -> Self;
}

macro_rules! small_pixel {
    ($($t:ty),*) => {$(
        impl Pixel for $t {
            const MAX: $t = <$t>::MAX;
            #[inline(always)]
            fn to_xds(self, saturated: i32) -> i32 {
                if self == Self::MAX { saturated } else { i32::from(self) }
            }
        }
    )*};
}
small_pixel!(u8, u16, i8, i16);

impl Pixel for u32 {
    const MAX: u32 = u32::MAX;
    #[inline(always)]
    fn to_xds(self, saturated: i32) -> i32 {
        // In i32 operations, which vectorise even on SSE2 (it has no unsigned minimum): the sign
        // bit marks the values above i32::MAX, which clip, and u32::MAX is -1.
        let bits = self as i32;
        let above = bits >> 31;
        let top = if bits == -1 { saturated } else { i32::MAX };
        (bits & !above) | (top & above)
    }
}

impl Pixel for i32 {
    const MAX: i32 = i32::MAX;
    #[inline(always)]
    fn to_xds(self, saturated: i32) -> i32 {
        if self == i32::MAX {
            saturated
        } else {
            self
        }
    }
}

impl Pixel32 for u32 {
    #[inline(always)]
    fn from_bits(bits: i32) -> u32 {
        bits as u32
    }
}

impl Pixel32 for i32 {
    #[inline(always)]
    fn from_bits(bits: i32) -> i32 {
        bits
    }
}

/// The XDS value of one masked pixel, from its NXmx mask bits (None: not masked).
pub fn mask_value(bits: u32) -> Option<i32> {
    match bits {
        0 => None,
        b if b & super::mask_bits::GAP != 0 => Some(GAP),
        _ => Some(MASKED),
    }
}

/// The XDS value of one pixel: the whole convention for a single value.
pub fn pixel<T: Pixel>(value: T, mask_bits: u32, saturated: Saturated) -> i32 {
    mask_value(mask_bits).unwrap_or_else(|| value.to_xds(saturated.value()))
}

/// A run of masked pixels `start..end` (row-major indices) that all get `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: usize,
    end: usize,
    value: i32,
}

/// Converts a frame's pixels to the XDS convention, with its pixel mask.
///
/// The mask is kept as runs of masked pixels: on an EIGER they are mostly the module gaps, a few
/// percent of the frame in long runs. Applying it writes only those pixels, rather than reading
/// a 4-byte mask value for every pixel of every frame (72 MB for a 16M detector).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converter {
    runs: Vec<Run>,
    saturated: i32,
}

impl Converter {
    /// A converter for frames with this NXmx `pixel_mask` (row-major, one value per pixel),
    /// or none.
    pub fn new(pixel_mask: Option<&[u32]>, saturated: Saturated) -> Converter {
        let mut runs: Vec<Run> = Vec::new();
        for (i, &bits) in pixel_mask.unwrap_or(&[]).iter().enumerate() {
            let Some(value) = mask_value(bits) else {
                continue;
            };
            match runs.last_mut() {
                Some(r) if r.end == i && r.value == value => r.end += 1,
                _ => runs.push(Run {
                    start: i,
                    end: i + 1,
                    value,
                }),
            }
        }
        runs.shrink_to_fit();
        Converter {
            runs,
            saturated: saturated.value(),
        }
    }

    /// How many pixels the mask excludes.
    pub fn masked_pixels(&self) -> usize {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }

    /// Converts `src`, the frame's pixels `first..first + src.len()`, into `out` (same length).
    ///
    /// # Panics
    /// If `out` and `src` differ in length.
    pub fn convert<T: Pixel>(&self, first: usize, src: &[T], out: &mut [i32]) {
        assert_eq!(src.len(), out.len(), "source and destination lengths");
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: avx2() has checked that the CPU runs AVX2.
            unsafe { avx2_copy(src, out, self.saturated) };
            return self.apply_mask(first, out);
        }
        copy(src, out, self.saturated);
        self.apply_mask(first, out);
    }

    /// Converts the frame's pixels `first..first + buf.len()`, decoded as `T` into `buf`
    /// itself (the bits of a uint32 pixel in an int32), in place.
    pub fn convert_in_place<T: Pixel32>(&self, first: usize, buf: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: avx2() has checked that the CPU runs AVX2.
            unsafe { avx2_in_place::<T>(buf, self.saturated) };
            return self.apply_mask(first, buf);
        }
        in_place::<T>(buf, self.saturated);
        self.apply_mask(first, buf);
    }

    /// Writes the mask values over the masked pixels among `first..first + out.len()`.
    fn apply_mask(&self, first: usize, out: &mut [i32]) {
        let end = first + out.len();
        let from = self.runs.partition_point(|r| r.end <= first);
        for r in &self.runs[from..] {
            if r.start >= end {
                break;
            }
            let (a, b) = (r.start.max(first) - first, r.end.min(end) - first);
            out[a..b].fill(r.value);
        }
    }
}

// The value loops, written once and compiled twice: for the baseline (SSE2) and for AVX2,
// which runs them about twice as fast. AVX2 is chosen at run time as the transpose kernels are,
// and `HDRMX_SIMD` below avx2 turns it off.

#[inline(always)]
fn copy<T: Pixel>(src: &[T], out: &mut [i32], saturated: i32) {
    for (o, &v) in out.iter_mut().zip(src) {
        *o = v.to_xds(saturated);
    }
}

#[inline(always)]
fn in_place<T: Pixel32>(buf: &mut [i32], saturated: i32) {
    for v in buf.iter_mut() {
        *v = T::from_bits(*v).to_xds(saturated);
    }
}

/// Whether to run the AVX2 twins: the CPU has it and `HDRMX_SIMD` allows it.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    use crate::codec::transpose::Kernel;
    Kernel::best() >= Kernel::Avx2 && Kernel::Avx2.is_available()
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_copy<T: Pixel>(src: &[T], out: &mut [i32], saturated: i32) {
    copy(src, out, saturated)
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_in_place<T: Pixel32>(buf: &mut [i32], saturated: i32) {
    in_place::<T>(buf, saturated)
}

/// The shape of a frame of `nx` by `ny` pixels binned `n` x `n`: rows and columns that do not
/// fill a bin are dropped.
pub fn binned_shape(nx: usize, ny: usize, n: usize) -> (usize, usize) {
    (nx / n.max(1), ny / n.max(1))
}

/// One more pixel into a bin: a gap anywhere makes the bin a gap (it is not all sensor), any
/// other negative value makes it masked, and counts add up, clipping at `i32::MAX` (so a
/// saturated pixel saturates its bin). Without branches, so that the loops vectorise.
#[inline(always)]
fn merge(bin: i32, v: i32) -> i32 {
    let gap = (bin == GAP) | (v == GAP);
    let negative = (bin | v) < 0;
    let sum = bin.saturating_add(v);
    if gap {
        GAP
    } else if negative {
        MASKED
    } else {
        sum
    }
}

/// Bins an XDS-convention frame of `nx` by `ny` pixels (row-major) `n` x `n` into `out`, of
/// [`binned_shape`]. A bin is [`GAP`] if any of its pixels is, else [`MASKED`] if any is
/// negative, else the sum of its pixels clipped at `i32::MAX`.
///
/// # Panics
/// If `n` is 0 or the lengths do not match the shapes.
pub fn bin(src: &[i32], nx: usize, ny: usize, n: usize, out: &mut [i32]) {
    assert!(n > 0, "bin size 0");
    assert_eq!(src.len(), nx * ny, "source length");
    let (bx, by) = binned_shape(nx, ny, n);
    assert_eq!(out.len(), bx * by, "binned length");
    if bx == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: avx2() has checked that the CPU runs AVX2.
        return unsafe { avx2_bin(src, nx, n, out) };
    }
    bin_any(src, nx, n, out)
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_bin(src: &[i32], nx: usize, n: usize, out: &mut [i32]) {
    bin_any(src, nx, n, out)
}

/// The bin sizes XDS users ask for with the width known to the compiler, which unrolls and
/// vectorises them; any other size in a plain loop.
#[inline(always)]
fn bin_any(src: &[i32], nx: usize, n: usize, out: &mut [i32]) {
    match n {
        2 => bin_rows::<2>(src, nx, out),
        3 => bin_rows::<3>(src, nx, out),
        4 => bin_rows::<4>(src, nx, out),
        _ => bin_rows_of(src, nx, n, out),
    }
}

#[inline(always)]
fn bin_rows<const N: usize>(src: &[i32], nx: usize, out: &mut [i32]) {
    bin_rows_of(src, nx, N, out)
}

#[inline(always)]
fn bin_rows_of(src: &[i32], nx: usize, n: usize, out: &mut [i32]) {
    let bx = nx / n;
    for (row, bins) in out.chunks_exact_mut(bx).enumerate() {
        bins.fill(0);
        for dy in 0..n {
            let line = &src[(row * n + dy) * nx..][..bx * n];
            for (b, px) in bins.iter_mut().zip(line.chunks_exact(n)) {
                *b = px.iter().fold(*b, |acc, &v| merge(acc, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift*), so the tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A mask with every bit alone, bit 0 with others, long gap runs and scattered bits.
    fn test_mask(n: usize, rng: &mut Rng) -> Vec<u32> {
        let mut m = vec![0u32; n];
        for bit in 0..32 {
            m[(bit * 7) % n] = 1 << bit;
        }
        m[n / 2] = 1 | 2 | (1 << 31);
        for v in m[n / 3..n / 3 + n / 10].iter_mut() {
            *v |= 1;
        }
        for _ in 0..n / 20 {
            m[rng.below(n as u64) as usize] |= 1 << rng.below(32);
        }
        m
    }

    /// Values from the whole range of T, with many at the maximum.
    fn values<T: Pixel>(n: usize, rng: &mut Rng, from_bits: impl Fn(u64) -> T) -> Vec<T> {
        (0..n)
            .map(|_| match rng.below(8) {
                0 => T::MAX,
                _ => from_bits(rng.next()),
            })
            .collect()
    }

    fn check_type<T: Pixel>(from_bits: impl Fn(u64) -> T) {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let n = 5000;
        let mask = test_mask(n, &mut rng);
        let src = values(n, &mut rng, from_bits);
        for saturated in [Saturated::Overload, Saturated::MinusOne] {
            let conv = Converter::new(Some(&mask), saturated);
            let want: Vec<i32> = src
                .iter()
                .zip(&mask)
                .map(|(&v, &m)| pixel(v, m, saturated))
                .collect();
            // Whole, and in parts of every size the decoders hand over, junk in `out` first.
            for part in [n, 1, 7, 8, 128, 2048, 4999] {
                let mut out = vec![0x5A5A_5A5A; n];
                for (k, (s, o)) in src.chunks(part).zip(out.chunks_mut(part)).enumerate() {
                    conv.convert(k * part, s, o);
                }
                assert_eq!(
                    out,
                    want,
                    "{} in parts of {part}",
                    std::any::type_name::<T>()
                );
            }
        }
    }

    #[test]
    fn every_type_follows_the_rules_in_any_parts() {
        check_type(|b| b as u8);
        check_type(|b| b as u16);
        check_type(|b| b as u32);
        check_type(|b| b as i8);
        check_type(|b| b as i16);
        check_type(|b| b as i32);
    }

    #[test]
    fn the_rules_one_by_one() {
        let o = Saturated::Overload;
        let m = Saturated::MinusOne;
        // Unsigned values stay positive; signed keep their sign.
        assert_eq!(pixel(40000u16, 0, o), 40000);
        assert_eq!(pixel(200u8, 0, o), 200);
        assert_eq!(pixel(-5i16, 0, o), -5);
        // The type's maximum, unmasked, is saturated.
        assert_eq!(pixel(u16::MAX, 0, o), i32::MAX);
        assert_eq!(pixel(u16::MAX, 0, m), -1);
        assert_eq!(pixel(u8::MAX, 0, o), i32::MAX);
        assert_eq!(pixel(u32::MAX, 0, o), i32::MAX);
        assert_eq!(pixel(u32::MAX, 0, m), -1);
        assert_eq!(pixel(i32::MAX, 0, m), -1);
        // uint32 above i32::MAX clips; one below the maximum is not saturated.
        assert_eq!(pixel(u32::MAX - 1, 0, m), i32::MAX);
        assert_eq!(pixel(1u32 << 31, 0, m), i32::MAX);
        assert_eq!(pixel(i32::MAX as u32, 0, m), i32::MAX);
        // The mask wins: bit 0 is a gap, every other bit masks.
        assert_eq!(pixel(7u16, 1, o), GAP);
        assert_eq!(pixel(u16::MAX, 1, o), GAP);
        assert_eq!(pixel(7u16, 1 | 2 | (1 << 31), o), GAP);
        for bit in 1..32 {
            assert_eq!(pixel(7u32, 1 << bit, o), MASKED, "bit {bit}");
            assert_eq!(pixel(u32::MAX, 1 << bit, m), MASKED, "bit {bit}");
        }
    }

    #[test]
    fn in_place_equals_from_a_copy() {
        let mut rng = Rng(12345);
        let n = 10_000;
        let mask = test_mask(n, &mut rng);
        let src = values(n, &mut rng, |b| b as u32);
        for saturated in [Saturated::Overload, Saturated::MinusOne] {
            let conv = Converter::new(Some(&mask), saturated);
            let mut want = vec![0; n];
            conv.convert(0, &src, &mut want);
            let mut buf: Vec<i32> = src.iter().map(|&v| v as i32).collect();
            for (k, part) in buf.chunks_mut(2048).enumerate() {
                conv.convert_in_place::<u32>(k * 2048, part);
            }
            assert_eq!(buf, want);

            let signed: Vec<i32> = src.iter().map(|&v| v as i32).collect();
            conv.convert(0, &signed, &mut want);
            let mut buf = signed.clone();
            conv.convert_in_place::<i32>(0, &mut buf);
            assert_eq!(buf, want);
        }
    }

    #[test]
    fn mask_runs_and_no_mask() {
        let mask = [0, 1, 1, 2, 2, 0, 1, 3, 0];
        let conv = Converter::new(Some(&mask), Saturated::Overload);
        assert_eq!(conv.runs.len(), 3, "{:?}", conv.runs);
        assert_eq!(conv.masked_pixels(), 6);
        let mut out = [0; 9];
        conv.convert(0, &[5u16; 9], &mut out);
        assert_eq!(out, [5, -1, -1, -2, -2, 5, -1, -1, 5]);
        let none = Converter::new(None, Saturated::Overload);
        assert_eq!(none.masked_pixels(), 0);
        none.convert(0, &[5u16; 9], &mut out);
        assert_eq!(out, [5; 9]);
    }

    /// The binning rules, bin by bin, from the pixels.
    fn bin_oracle(src: &[i32], nx: usize, ny: usize, n: usize) -> Vec<i32> {
        let (bx, by) = binned_shape(nx, ny, n);
        let mut out = Vec::new();
        for y in 0..by {
            for x in 0..bx {
                let px: Vec<i32> = (0..n * n)
                    .map(|k| src[(y * n + k / n) * nx + x * n + k % n])
                    .collect();
                out.push(if px.contains(&-1) {
                    -1
                } else if px.iter().any(|&v| v < 0) {
                    -2
                } else {
                    px.iter()
                        .map(|&v| v as i64)
                        .sum::<i64>()
                        .min(i32::MAX as i64) as i32
                });
            }
        }
        out
    }

    #[test]
    fn binning_follows_the_rules() {
        let mut rng = Rng(777);
        for (nx, ny) in [(64, 48), (67, 50), (5, 3), (2, 2), (1, 1)] {
            let src: Vec<i32> = (0..nx * ny)
                .map(|_| match rng.below(40) {
                    0 => -1,
                    1 => -2,
                    2 => i32::MAX,
                    3 => i32::MAX - 3,
                    _ => rng.below(70000) as i32,
                })
                .collect();
            for n in 1..=4 {
                let (bx, by) = binned_shape(nx, ny, n);
                let mut out = vec![0x5A5A_5A5A; bx * by];
                bin(&src, nx, ny, n, &mut out);
                assert_eq!(out, bin_oracle(&src, nx, ny, n), "{nx}x{ny} bin {n}");
            }
        }
    }

    #[test]
    fn binning_by_hand() {
        // 4 x 2 in 2 x 2 bins: a gap beats a dead pixel; counts add; saturation clips.
        let src = [1, 2, -2, 3, 4, -1, i32::MAX, 1];
        let mut out = [0; 2];
        bin(&src, 4, 2, 2, &mut out);
        assert_eq!(out, [-1, -2]);
        let src = [1, 2, i32::MAX, 3, 4, 5, 6, 7];
        bin(&src, 4, 2, 2, &mut out);
        assert_eq!(out, [12, i32::MAX]);
    }
}
