//! Our filters registered in-process with `H5Zregister`, so files are written and read without
//! `HDF5_PLUGIN_PATH`. The classes are the plugins' own (`hdrmx-h5plugin`), bound to the libhdf5
//! this process links: the binding looks the library up from the address of one of its functions.
use hdrmx_core::codec::{binning, bitshuffle, lossy, lz4, zstd, Codec, CodecError};
use hdrmx_h5plugin::{classes, plugin_info, Filter, H5ZClass2, SLOTS};
use std::ffi::{c_void, CStr};

struct Bitshuffle;
struct Lz4;
struct Zstd;
struct Binning;
struct Lossy;

impl Filter for Bitshuffle {
    const ID: u32 = bitshuffle::FILTER_ID;
    const NAME: &'static CStr = c"bitshuffle (hdrmx durin-rs)";
    fn codec(cd: &[u32]) -> Result<Codec, CodecError> {
        // The writer stores full cd_values ([major, minor, elem_size, ...]).
        Codec::from_filter(Self::ID, cd, cd.get(2).map_or(0, |&e| e as usize))
    }
}

impl Filter for Lz4 {
    const ID: u32 = lz4::FILTER_ID;
    const NAME: &'static CStr = c"lz4 (hdrmx durin-rs)";
    fn codec(cd: &[u32]) -> Result<Codec, CodecError> {
        Codec::from_filter(Self::ID, cd, 0)
    }
}

impl Filter for Zstd {
    const ID: u32 = zstd::FILTER_ID;
    const NAME: &'static CStr = c"zstd (hdrmx durin-rs)";
    fn codec(cd: &[u32]) -> Result<Codec, CodecError> {
        Codec::from_filter(Self::ID, cd, 0)
    }
}

impl Filter for Binning {
    const ID: u32 = binning::FILTER_ID;
    const NAME: &'static CStr = c"hdrmx binning (hdrmx durin-rs)";
    fn codec(cd: &[u32]) -> Result<Codec, CodecError> {
        // The writer stores full cd_values ([n, elem_size, ny, nx]).
        Codec::from_filter(Self::ID, cd, cd.get(1).map_or(0, |&e| e as usize))
    }
}

impl Filter for Lossy {
    const ID: u32 = lossy::FILTER_ID;
    const NAME: &'static CStr = c"hdrmx lossy (hdrmx durin-rs)";
    fn codec(cd: &[u32]) -> Result<Codec, CodecError> {
        // The writer stores full cd_values ([version, q_milli, inner, level, elem_size]).
        Codec::from_filter(Self::ID, cd, cd.get(4).map_or(0, |&e| e as usize))
    }
}

static BITSHUFFLE: [H5ZClass2; SLOTS] = classes::<Bitshuffle>();
static LZ4: [H5ZClass2; SLOTS] = classes::<Lz4>();
static ZSTD: [H5ZClass2; SLOTS] = classes::<Zstd>();
static BINNING: [H5ZClass2; SLOTS] = classes::<Binning>();
static LOSSY: [H5ZClass2; SLOTS] = classes::<Lossy>();

/// Registers our filters with the linked libhdf5 (called once, under the lock).
pub(crate) fn register() {
    // An address inside the libhdf5 we link: what the plugin binding resolves the library from.
    let inside = hdf5_sys::h5z::H5Zregister as *const c_void;
    for set in [&BITSHUFFLE, &LZ4, &ZSTD, &BINNING, &LOSSY] {
        let class = plugin_info(inside, set);
        if class.is_null() {
            continue; // plugin_info said why on stderr; writing these filters will then fail
        }
        // SAFETY: `class` points into a static H5Z_class2_t; we hold the HDF5 lock.
        unsafe {
            hdf5_sys::h5z::H5Zregister(class);
        }
    }
}
