//! HDF5 filter plugin for hdrmx binning (filter 310, from HDF5's private range).
//!
//! A dataset is created with `compression=310, compression_opts=(n,)` (n = 1 to 16, default 2)
//! and chunks of whole frames (`[k, ny, nx]`, or `[ny, nx]`). `set_local` completes the stored
//! cd_values to `[n, elem_size, ny, nx]` from the datatype and the chunk's last two dimensions,
//! so decoding needs nothing but the plugin. Data must be unsigned integers of 1, 2 or 4 bytes:
//! the type's maximum marks invalid pixels, which are kept exactly; the other pixels come back
//! as their bin's sum spread over the bin (see `hdrmx_core::codec::binning`).
use hdrmx_core::codec::binning::{self, Binning};
use hdrmx_core::codec::{Codec, CodecError};
use hdrmx_h5plugin::{export_filter, hid_t, Filter, Hdf5};
use std::ffi::CStr;

struct BinningFilter;

/// The bin size when the user gives none.
const DEFAULT_N: u32 = 2;

impl Filter for BinningFilter {
    const ID: u32 = binning::FILTER_ID;
    const NAME: &'static CStr = c"binning (hdrmx): N x N bin sums, invalid pixels exact";

    fn can_apply(h5: &Hdf5, dcpl: hid_t, dtype: hid_t) -> Result<(), String> {
        check_dataset(h5, dcpl, dtype).map(|_| ())
    }

    fn set_local(h5: &Hdf5, dcpl: hid_t, dtype: hid_t) -> Result<(), String> {
        // Checked again here: HDF5 skips an optional filter (h5py's default for plugin ids)
        // whose can_apply refuses, but fails dataset creation when set_local does.
        let (ny, nx) = check_dataset(h5, dcpl, dtype)?;
        let (flags, user) = h5.filter_cd_values(dcpl, Self::ID)?;
        let fit = |v: u64| u32::try_from(v).map_err(|_| format!("binning: chunk dimension {v}"));
        let cd = [
            user.first().copied().unwrap_or(DEFAULT_N),
            h5.type_size(dtype) as u32,
            fit(ny)?,
            fit(nx)?,
        ];
        // Validate now, so a bad bin size fails at dataset creation.
        Binning::from_cd_values(&cd, 0).map_err(|e| e.to_string())?;
        h5.modify_filter(dcpl, Self::ID, flags, &cd)
    }

    fn codec(cd_values: &[u32]) -> Result<Codec, CodecError> {
        Codec::from_filter(Self::ID, cd_values, 0)
    }
}

/// The frame shape `(ny, nx)` of a dataset the filter can bin: unsigned integers of 1, 2 or 4
/// bytes, in chunks of at least two dimensions.
fn check_dataset(h5: &Hdf5, dcpl: hid_t, dtype: hid_t) -> Result<(u64, u64), String> {
    let size = h5.type_size(dtype);
    if !h5.is_unsigned_integer(dtype) || !matches!(size, 1 | 2 | 4) {
        return Err(format!(
            "binning: only unsigned integer photon counts of 1, 2 or 4 bytes can be binned \
             (this datatype is not, or has {size} bytes)"
        ));
    }
    match h5.chunk_dims(dcpl)?[..] {
        [.., ny, nx] => Ok((ny, nx)),
        _ => Err("binning: chunks must hold whole 2-D frames ([k, ny, nx])".into()),
    }
}

export_filter!(BinningFilter);
