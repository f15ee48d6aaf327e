//! HDF5 filter plugin for hdrmx lossy (filter 311): noise-bounded quantisation of photon counts
//! (every pixel within (q/2)·√count, small counts, zeros and the masked marker exact, chunk
//! totals exact), then bitshuffle and LZ4 or zstd. See `hdrmx_core::codec::lossy`.
//!
//! Stored cd_values: `[version = 1, q in thousandths, inner (0 LZ4, 1 zstd), zstd level,
//! elem_size]`. A dataset is created with the user's `(q_milli[, inner[, level]])`, e.g.
//! `compression=311, compression_opts=(1000,)` for q = 1 with LZ4; `set_local` puts the version
//! in front and the datatype's size at the end. Full stored cd_values (a copied filter
//! pipeline) are accepted as they are, with the element size refreshed.
use hdrmx_core::codec::lossy::{self, Lossy};
use hdrmx_core::codec::{Codec, CodecError};
use hdrmx_h5plugin::{export_filter, hid_t, Filter, Hdf5};
use std::ffi::CStr;

struct LossyFilter;

impl Filter for LossyFilter {
    const ID: u32 = lossy::FILTER_ID;
    const NAME: &'static CStr = c"hdrmx lossy: noise-bounded quantisation + bitshuffle";

    fn can_apply(h5: &Hdf5, _dcpl: hid_t, dtype: hid_t) -> Result<(), String> {
        check_type(h5, dtype)
    }

    fn set_local(h5: &Hdf5, dcpl: hid_t, dtype: hid_t) -> Result<(), String> {
        // Checked again here: HDF5 skips an optional filter (h5py's default for plugin ids)
        // whose can_apply refuses, but fails dataset creation when set_local does.
        check_type(h5, dtype)?;
        let (flags, user) = h5.filter_cd_values(dcpl, Self::ID)?;
        let elem_size = h5.type_size(dtype) as u32;
        // q_milli is 0 or at least 100, so a first value of 1 can only be the version.
        let mut cd = if user.first() == Some(&lossy::CD_VERSION) && user.len() >= 2 {
            user[..user.len().min(4)].to_vec()
        } else {
            let mut cd = vec![lossy::CD_VERSION];
            cd.extend(user.iter().take(3));
            cd
        };
        // Defaults for what the user left out: q = 1, LZ4, zstd level 3.
        let defaults = [
            lossy::CD_VERSION,
            lossy::Q_DEFAULT_MILLI,
            0,
            lossy::DEFAULT_ZSTD_LEVEL as u32,
        ];
        cd.extend_from_slice(&defaults[cd.len()..]);
        cd.push(elem_size);
        // Validate now, so a bad q or inner code fails at dataset creation, with the reason.
        Lossy::from_cd_values(&cd, elem_size as usize).map_err(|e| e.to_string())?;
        h5.modify_filter(dcpl, Self::ID, flags, &cd)
    }

    fn codec(cd_values: &[u32]) -> Result<Codec, CodecError> {
        if cd_values.len() < 5 {
            return Err(CodecError::BadParameters {
                codec: "lossy",
                reason: format!(
                    "{} cd_values, need 5 (was set_local skipped?)",
                    cd_values.len()
                ),
            });
        }
        Codec::from_filter(Self::ID, cd_values, 0)
    }
}

/// Unsigned integer counts of 1, 2 or 4 bytes: the type's maximum is the masked marker.
fn check_type(h5: &Hdf5, dtype: hid_t) -> Result<(), String> {
    let size = h5.type_size(dtype);
    if !h5.is_unsigned_integer(dtype) || !matches!(size, 1 | 2 | 4) {
        return Err(format!(
            "lossy: only unsigned integer photon counts of 1, 2 or 4 bytes can be quantised \
             (this datatype is not, or has {size} bytes)"
        ));
    }
    Ok(())
}

export_filter!(LossyFilter);
