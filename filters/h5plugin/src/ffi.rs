//! The few HDF5 C types the plugin ABI uses (HDF5 1.10 and later: 64-bit `hid_t`).
#![allow(non_camel_case_types)]
use std::ffi::{c_char, c_int, c_uint, c_void};

pub type hid_t = i64;
pub type herr_t = c_int;
pub type htri_t = c_int;

/// `H5PL_TYPE_FILTER`.
pub const PLUGIN_TYPE_FILTER: c_int = 0;
pub const H5Z_CLASS_T_VERS: c_int = 1;
/// Set in a filter callback's flags when decoding.
pub const H5Z_FLAG_REVERSE: c_uint = 0x0100;
/// `H5E_DEFAULT`: the current error stack.
pub const H5E_DEFAULT: hid_t = 0;
/// `H5T_class_t` of variable-length types, which bitshuffle refuses.
pub const H5T_VLEN: c_int = 9;

pub type CanApplyFn = unsafe extern "C" fn(hid_t, hid_t, hid_t) -> htri_t;
pub type SetLocalFn = unsafe extern "C" fn(hid_t, hid_t, hid_t) -> herr_t;
pub type FilterFn = unsafe extern "C" fn(
    c_uint,
    usize,
    *const c_uint,
    usize,
    *mut usize,
    *mut *mut c_void,
) -> usize;

/// `H5Z_class2_t`.
#[repr(C)]
pub struct H5ZClass2 {
    pub version: c_int,
    pub id: c_int,
    pub encoder_present: c_uint,
    pub decoder_present: c_uint,
    pub name: *const c_char,
    pub can_apply: Option<CanApplyFn>,
    pub set_local: Option<SetLocalFn>,
    pub filter: Option<FilterFn>,
}

// SAFETY: the class is immutable static data: a name pointing at a 'static C string and
// function pointers.
unsafe impl Sync for H5ZClass2 {}
