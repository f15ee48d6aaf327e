//! What every hdrmx HDF5 filter plugin shares.
//!
//! A plugin is a cdylib that calls [`export_filter!`] on a type implementing [`Filter`]. It does
//! not link libhdf5: when HDF5 calls `H5PLget_plugin_info`, the plugin finds the library that made
//! the call (the return address, `dladdr`, then `dlopen(RTLD_NOLOAD)` of that file) and resolves
//! the few functions it needs there. Each calling library gets its own filter class whose
//! callbacks talk only to that library, so one `.so` serves h5py's bundled HDF5 and the system's
//! in the same process.
//!
//! Every callback runs inside `catch_unwind`; a failure returns HDF5's failure value and pushes an
//! HDF5 error whose text says what was wrong.

mod callbacks;
mod ffi;
mod library;

pub use callbacks::{can_apply, filter, plugin_info, set_local};
pub use ffi::{hid_t, H5ZClass2, H5T_VLEN, PLUGIN_TYPE_FILTER};
pub use library::Hdf5;

use hdrmx_core::codec::{Codec, CodecError};
use std::ffi::CStr;

/// How many different HDF5 libraries in one process a plugin can serve.
pub const SLOTS: usize = 4;

/// One HDF5 filter.
pub trait Filter: 'static {
    /// The registered filter id.
    const ID: u32;
    /// The name HDF5 shows for the filter.
    const NAME: &'static CStr;

    /// Refuses datatypes the filter cannot handle, with a message.
    fn can_apply(_h5: &Hdf5, _dcpl: hid_t, _dtype: hid_t) -> Result<(), String> {
        Ok(())
    }

    /// Completes the dataset's cd_values from its datatype (called when a dataset is created).
    fn set_local(_h5: &Hdf5, _dcpl: hid_t, _dtype: hid_t) -> Result<(), String> {
        Ok(())
    }

    /// The codec that stored cd_values describe.
    fn codec(cd_values: &[u32]) -> Result<Codec, CodecError>;
}

/// The filter classes of one plugin, one per [`SLOTS`] library.
pub const fn classes<F: Filter>() -> [H5ZClass2; SLOTS] {
    [
        class::<F, 0>(),
        class::<F, 1>(),
        class::<F, 2>(),
        class::<F, 3>(),
    ]
}

const fn class<F: Filter, const K: usize>() -> H5ZClass2 {
    H5ZClass2 {
        version: ffi::H5Z_CLASS_T_VERS,
        id: F::ID as _,
        encoder_present: 1,
        decoder_present: 1,
        name: F::NAME.as_ptr(),
        can_apply: Some(can_apply::<F, K>),
        set_local: Some(set_local::<F, K>),
        filter: Some(filter::<F, K>),
    }
}

/// Exports `H5PLget_plugin_type` and `H5PLget_plugin_info` for a [`Filter`].
///
/// `H5PLget_plugin_info` is a two-instruction trampoline that hands its return address (inside
/// the HDF5 library that is loading us) to [`plugin_info`].
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        static CLASSES: [$crate::H5ZClass2; $crate::SLOTS] = $crate::classes::<$filter>();

        extern "C" fn plugin_info_from(caller: *const ::std::ffi::c_void) -> *const ::std::ffi::c_void {
            $crate::plugin_info(caller, &CLASSES)
        }

        /// HDF5 plugin entry point: this is a filter plugin.
        #[no_mangle]
        pub extern "C" fn H5PLget_plugin_type() -> ::std::ffi::c_int {
            $crate::PLUGIN_TYPE_FILTER
        }

        /// HDF5 plugin entry point: the filter class for the HDF5 library that calls.
        #[cfg(target_arch = "x86_64")]
        #[no_mangle]
        #[unsafe(naked)]
        pub extern "C" fn H5PLget_plugin_info() -> *const ::std::ffi::c_void {
            // The return address is at [rsp] on entry; pass it as the first argument and let
            // plugin_info_from return straight to HDF5.
            ::std::arch::naked_asm!("mov rdi, [rsp]", "jmp {info}", info = sym plugin_info_from)
        }

        /// HDF5 plugin entry point: the filter class for the HDF5 library that calls.
        #[cfg(target_arch = "aarch64")]
        #[no_mangle]
        #[unsafe(naked)]
        pub extern "C" fn H5PLget_plugin_info() -> *const ::std::ffi::c_void {
            // The return address is in the link register.
            ::std::arch::naked_asm!("mov x0, x30", "b {info}", info = sym plugin_info_from)
        }

        /// HDF5 plugin entry point (no caller lookup on this architecture: global symbols).
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        #[no_mangle]
        pub extern "C" fn H5PLget_plugin_info() -> *const ::std::ffi::c_void {
            plugin_info_from(::std::ptr::null())
        }
    };
}
