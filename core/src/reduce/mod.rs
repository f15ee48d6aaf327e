//! Reduction: fewer pixels, fewer frames, fewer bytes, with the science kept.
//!
//! [`bin`] sums N x N pixels, [`sum`] sums consecutive frames, [`roi`] cuts a rectangle, and
//! [`lossy`] quantises photon counts with an error bound in units of their Poisson σ. All of it
//! works on integers: stored counts in, exact sums out.

pub mod bin;
pub mod lossy;
pub mod roi;
pub mod sum;

/// A stored photon-count type: u8, u16 or u32. Its maximum marks an invalid pixel (EIGER writes
/// it in gaps and dead pixels).
pub trait Count: Copy + Send + Sync + 'static {
    const MAX: Self;
    fn get(self) -> u32;
    /// Truncates: callers pass values that fit.
    fn from_u32(v: u32) -> Self;
}

macro_rules! count {
    ($($t:ty),*) => {$(
        impl Count for $t {
            const MAX: $t = <$t>::MAX;
            #[inline(always)]
            fn get(self) -> u32 {
                self as u32
            }
            #[inline(always)]
            fn from_u32(v: u32) -> $t {
                v as $t
            }
        }
    )*};
}
count!(u8, u16, u32);
