//! HDF5 filter plugin for zstd (filter 32015). cd_values: `[level]`, default 3.
use hdrmx_core::codec::{zstd, Codec, CodecError};
use hdrmx_h5plugin::{export_filter, Filter};
use std::ffi::CStr;

struct ZstdFilter;

impl Filter for ZstdFilter {
    const ID: u32 = zstd::FILTER_ID;
    const NAME: &'static CStr = c"zstd (hdrmx)";

    fn codec(cd_values: &[u32]) -> Result<Codec, CodecError> {
        Codec::from_filter(Self::ID, cd_values, 0)
    }
}

export_filter!(ZstdFilter);
