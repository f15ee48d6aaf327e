//! Frames after decoding: the NXmx pixel mask and conversion to what consumers expect.
//!
//! [`xds`] turns stored pixels (uint8/16/32, and their signed twins) into the int32 frames an
//! XDS `LIB=` plugin hands over, with the mask applied, and bins them N x N. [`dxtbx`] turns them
//! into the int32 frames dxtbx's NXmx format classes return.

pub mod dxtbx;
pub mod xds;

/// NXmx `pixel_mask` bits (NeXus NXdetector): a set bit means the pixel is not to be trusted.
pub mod mask_bits {
    /// Gap between modules or chips: no pixel there.
    pub const GAP: u32 = 1 << 0;
    pub const DEAD: u32 = 1 << 1;
    pub const UNDER_RESPONDING: u32 = 1 << 2;
    pub const OVER_RESPONDING: u32 = 1 << 3;
    pub const NOISY: u32 = 1 << 4;
    /// Part of a cluster of problematic pixels.
    pub const CLUSTER: u32 = 1 << 7;
    pub const USER_DEFINED: u32 = 1 << 8;
    /// A virtual pixel (corner or gap filler of some detectors).
    pub const VIRTUAL: u32 = 1 << 30;
    pub const NOT_TO_BE_USED: u32 = 1 << 31;
}
