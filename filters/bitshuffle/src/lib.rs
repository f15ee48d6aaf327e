//! HDF5 filter plugin for bitshuffle (filter 32008), with LZ4, zstd or no compression.
//!
//! cd_values as the reference stores them: `[major, minor, elem_size, block_size, compression,
//! zstd_level]`. A dataset is created with the user's `(block_size, compression[, level])`;
//! `set_local` puts the version and the datatype's size in front, as the reference does, so
//! `create_dataset(..., compression=32008, compression_opts=(0, 2))` works with this plugin alone.
use hdrmx_core::codec::bitshuffle::{self, Bitshuffle};
use hdrmx_core::codec::{Codec, CodecError};
use hdrmx_h5plugin::{export_filter, hid_t, Filter, Hdf5};
use std::ffi::CStr;

struct BitshuffleFilter;

/// User options after the three reserved slots: block size, compression, zstd level.
const USER_OPTIONS: usize = 3;

impl Filter for BitshuffleFilter {
    const ID: u32 = bitshuffle::FILTER_ID;
    const NAME: &'static CStr = c"bitshuffle (hdrmx); see https://github.com/kiyo-masui/bitshuffle";

    fn can_apply(h5: &Hdf5, _dcpl: hid_t, dtype: hid_t) -> Result<(), String> {
        let size = h5.type_size(dtype);
        if h5.type_class(dtype) == hdrmx_h5plugin::H5T_VLEN || h5.is_variable_string(dtype) {
            return Err("bitshuffle: variable-length datatypes cannot be bitshuffled".into());
        }
        if !matches!(size, 1 | 2 | 4 | 8) {
            return Err(format!(
                "bitshuffle: datatype of {size} bytes is not supported (element sizes {})",
                Bitshuffle::ELEM_SIZES
            ));
        }
        Ok(())
    }

    fn set_local(h5: &Hdf5, dcpl: hid_t, dtype: hid_t) -> Result<(), String> {
        let (flags, user) = h5.filter_cd_values(dcpl, Self::ID)?;
        let elem_size = h5.type_size(dtype);
        let mut cd = vec![
            bitshuffle::CD_VERSION[0],
            bitshuffle::CD_VERSION[1],
            elem_size as u32,
        ];
        cd.extend(user.iter().take(USER_OPTIONS));
        // Validate now, so a bad block size or compression code fails at dataset creation.
        Bitshuffle::from_cd_values(&cd, elem_size).map_err(|e| e.to_string())?;
        h5.modify_filter(dcpl, Self::ID, flags, &cd)
    }

    fn codec(cd_values: &[u32]) -> Result<Codec, CodecError> {
        if cd_values.len() < 3 {
            return Err(CodecError::BadParameters {
                codec: "bitshuffle",
                reason: format!(
                    "{} cd_values, need at least 3 (was set_local skipped?)",
                    cd_values.len()
                ),
            });
        }
        Codec::from_filter(Self::ID, cd_values, 0)
    }
}

export_filter!(BitshuffleFilter);
