//! The dxtbx convention: frames as dxtbx's `FormatNXmx.get_raw_data` returns them.
//!
//! - Pixels become int32 as numpy's `astype(int32)` makes them: 1- and 2-byte integers and int32
//!   keep their value, a uint32 keeps its bits (4294967295 is -1). dxtbx reads uint32 only with a
//!   bit depth of 32; the caller checks that, as it knows the stored type.
//! - With a bit depth `b` (dxtbx takes `bit_depth_readout`, or `bit_depth_image` for DECTRIS
//!   FileWriter files), the values `top - 1` and `top - 2` become -1 and -2, where `top` is 2^31
//!   for `b` = 32 and 2^`b` otherwise. Without one (or with 0, which dxtbx treats as none),
//!   values are kept.
//! - The pixel mask is not applied: dxtbx hands it over separately, as the static mask.
//!
//! [`Dxtbx`] applies this to any run of a frame's pixels, so that a decoder can hand it each
//! block while the block is still in cache.

/// A stored pixel type, as numpy's `astype(int32)` converts it.
pub trait Pixel: Copy + Send + Sync + 'static {
    fn to_i32(self) -> i32;
}

macro_rules! widen {
    ($($t:ty),*) => {$(
        impl Pixel for $t {
            #[inline(always)]
            fn to_i32(self) -> i32 {
                i32::from(self)
            }
        }
    )*};
}
widen!(u8, u16, i8, i16, i32);

impl Pixel for u32 {
    #[inline(always)]
    fn to_i32(self) -> i32 {
        // numpy's cast keeps the bits: values from 2^31 come out negative.
        self as i32
    }
}

/// A bit depth whose top values do not fit in int32, so dxtbx cannot compare pixels with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bit depth {0}: dxtbx handles bit depths up to 32")]
pub struct UnsupportedBitDepth(pub u32);

/// The dxtbx conversion for one bit depth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dxtbx {
    /// `top - 1`, which becomes -1 (and `top - 2` becomes -2); None: values are kept.
    top_minus_one: Option<i32>,
}

impl Dxtbx {
    /// The conversion for frames read with this bit depth (None or 0: no top values).
    pub fn new(bit_depth: Option<u32>) -> Result<Dxtbx, UnsupportedBitDepth> {
        let top_minus_one = match bit_depth {
            None | Some(0) => None,
            Some(32) => Some(i32::MAX),
            // 2^b - 1 for b up to 31, which int32 holds.
            Some(b @ 1..=31) => Some(((1u32 << b) - 1) as i32),
            Some(b) => return Err(UnsupportedBitDepth(b)),
        };
        Ok(Dxtbx { top_minus_one })
    }

    /// The value a pixel of `value` becomes.
    #[inline(always)]
    pub fn pixel<T: Pixel>(self, value: T) -> i32 {
        self.top(value.to_i32())
    }

    #[inline(always)]
    fn top(self, v: i32) -> i32 {
        match self.top_minus_one {
            Some(t) => replace_top(v, t),
            None => v,
        }
    }

    /// Converts `src` into `out` (same length).
    ///
    /// # Panics
    /// If `out` and `src` differ in length.
    pub fn convert<T: Pixel>(self, src: &[T], out: &mut [i32]) {
        assert_eq!(src.len(), out.len(), "source and destination lengths");
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: avx2() has checked that the CPU runs AVX2.
            return unsafe { avx2_convert(src, out, self.top_minus_one) };
        }
        convert(src, out, self.top_minus_one);
    }

    /// Converts 4-byte pixels (uint32 or int32) decoded into `buf` itself, in place: for both,
    /// the int32 value is the stored bits.
    pub fn convert_in_place(self, buf: &mut [i32]) {
        let Some(t) = self.top_minus_one else {
            return;
        };
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: avx2() has checked that the CPU runs AVX2.
            return unsafe { avx2_in_place(buf, t) };
        }
        in_place(buf, t);
    }
}

// The loops, written once and compiled twice: for the baseline (SSE2) and for AVX2, which
// runs them two to four times as fast (SSE2 has no blend). They run on each decoded block while
// the block is in L1, so they are compute-bound. AVX2 is chosen at run time, as the transpose
// kernels are, and `HDRMX_SIMD` below avx2 turns it off.

/// dxtbx replaces top - 1 first: a -1 it wrote is never top - 2 (that would need top = 1, and
/// the smallest top is 2).
#[inline(always)]
fn replace_top(x: i32, top_minus_one: i32) -> i32 {
    if x == top_minus_one {
        -1
    } else if x == top_minus_one - 1 {
        -2
    } else {
        x
    }
}

#[inline(always)]
fn in_place(buf: &mut [i32], top_minus_one: i32) {
    for v in buf.iter_mut() {
        *v = replace_top(*v, top_minus_one);
    }
}

#[inline(always)]
fn convert<T: Pixel>(src: &[T], out: &mut [i32], top_minus_one: Option<i32>) {
    // Two loops rather than a test per pixel: each vectorises.
    match top_minus_one {
        None => {
            for (o, &v) in out.iter_mut().zip(src) {
                *o = v.to_i32();
            }
        }
        Some(t) => {
            for (o, &v) in out.iter_mut().zip(src) {
                *o = replace_top(v.to_i32(), t);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    use crate::codec::transpose::Kernel;
    Kernel::best() >= Kernel::Avx2 && Kernel::Avx2.is_available()
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_in_place(buf: &mut [i32], top_minus_one: i32) {
    in_place(buf, top_minus_one)
}

/// # Safety
/// The CPU must run AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2_convert<T: Pixel>(src: &[T], out: &mut [i32], top_minus_one: Option<i32>) {
    convert(src, out, top_minus_one)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dxtbx's rule written out on 64-bit integers: cast to int32 as numpy does, then compare
    /// with `top - 1` and `top - 2` as dxtbx's flex arrays do.
    fn rule(value: i64, bits: u32, bit_depth: Option<u32>) -> i32 {
        let v = if bits == 32 {
            value as u32 as i32
        } else {
            value as i32
        };
        let top: i64 = match bit_depth {
            None | Some(0) => return v,
            Some(32) => 1 << 31,
            Some(b) => 1 << b,
        };
        if i64::from(v) == top - 1 {
            -1
        } else if i64::from(v) == top - 2 {
            -2
        } else {
            v
        }
    }

    /// Values around every bit depth's top, the type's extremes and zero.
    fn interesting() -> Vec<i64> {
        let mut v = vec![0, 1, 2, 3, -1, -2, -3];
        for b in 1..=32 {
            let top = 1i64 << b;
            v.extend([top - 3, top - 2, top - 1, top, top + 1]);
        }
        v.extend([
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::from(u32::MAX),
        ]);
        v
    }

    fn check<T: Pixel>(bits: u32, cast: impl Fn(i64) -> T, back: impl Fn(T) -> i64) {
        let depths = [
            None,
            Some(0),
            Some(1),
            Some(8),
            Some(12),
            Some(16),
            Some(31),
            Some(32),
        ];
        let src: Vec<T> = interesting().into_iter().map(&cast).collect();
        for bit_depth in depths {
            let d = Dxtbx::new(bit_depth).unwrap();
            let want: Vec<i32> = src
                .iter()
                .map(|&v| rule(back(v), bits, bit_depth))
                .collect();
            let mut out = vec![0x5A5A_5A5A; src.len()];
            d.convert(&src, &mut out);
            assert_eq!(out, want, "{} at {bit_depth:?}", std::any::type_name::<T>());
            if bits == 32 {
                let mut buf: Vec<i32> = src.iter().map(|&v| back(v) as i32).collect();
                d.convert_in_place(&mut buf);
                assert_eq!(buf, want, "in place at {bit_depth:?}");
            }
        }
    }

    #[test]
    fn every_type_and_bit_depth_follows_the_rule() {
        check(8, |v| v as u8, i64::from);
        check(16, |v| v as u16, i64::from);
        check(32, |v| v as u32, i64::from);
        check(8, |v| v as i8, i64::from);
        check(16, |v| v as i16, i64::from);
        check(32, |v| v as i32, i64::from);
    }

    #[test]
    fn the_rule_one_by_one() {
        let d16 = Dxtbx::new(Some(16)).unwrap();
        assert_eq!(d16.pixel(65535u16), -1);
        assert_eq!(d16.pixel(65534u16), -2);
        assert_eq!(d16.pixel(65533u16), 65533);
        assert_eq!(d16.pixel(40000u16), 40000);
        let d32 = Dxtbx::new(Some(32)).unwrap();
        // uint32 keeps its bits: the top values of the type are already -1 and -2 ...
        assert_eq!(d32.pixel(u32::MAX), -1);
        assert_eq!(d32.pixel(u32::MAX - 1), -2);
        assert_eq!(d32.pixel(u32::MAX - 2), -3);
        // ... and 2^31 - 1, 2^31 - 2 are the bit depth's.
        assert_eq!(d32.pixel(i32::MAX as u32), -1);
        assert_eq!(d32.pixel(i32::MAX as u32 - 1), -2);
        assert_eq!(d32.pixel(1u32 << 31), i32::MIN);
        // A 16-bit readout stored as uint32 (EIGER2 at 16 bit, written 32 bit wide).
        assert_eq!(d16.pixel(65535u32), -1);
        // No bit depth: values kept.
        let none = Dxtbx::new(None).unwrap();
        assert_eq!(none.pixel(65535u16), 65535);
        assert_eq!(Dxtbx::new(Some(0)).unwrap(), none);
        // dxtbx's top for 1 bit is 2: zeros become -2.
        assert_eq!(Dxtbx::new(Some(1)).unwrap().pixel(0u8), -2);
        assert_eq!(Dxtbx::new(Some(33)), Err(UnsupportedBitDepth(33)));
        assert_eq!(Dxtbx::new(Some(64)), Err(UnsupportedBitDepth(64)));
    }
}
