//! HDF5 filter plugin for LZ4 (filter 32004). cd_values: `[block_size_bytes]`, 0 or none for the
//! default of 1 GiB.
use hdrmx_core::codec::{lz4, Codec, CodecError};
use hdrmx_h5plugin::{export_filter, Filter};
use std::ffi::CStr;

struct Lz4Filter;

impl Filter for Lz4Filter {
    const ID: u32 = lz4::FILTER_ID;
    const NAME: &'static CStr = c"lz4 (hdrmx)";

    fn codec(cd_values: &[u32]) -> Result<Codec, CodecError> {
        Codec::from_filter(Self::ID, cd_values, 0)
    }
}

export_filter!(Lz4Filter);
