//! A thin, checked layer over libhdf5: one reentrant lock, handles closed on drop, return codes
//! checked by type, the HDF5 error stack turned into text.
use crate::{Error, Result};
use hdf5_sys::h5::{herr_t, H5open};
use hdf5_sys::h5a::{H5Aclose, H5Acreate2, H5Awrite};
use hdf5_sys::h5d::{H5Dclose, H5Dcreate2, H5Dset_extent, H5Dwrite, H5Dwrite_chunk};
use hdf5_sys::h5e::{H5E_direction_t, H5E_error2_t, H5Eset_auto2, H5Ewalk2, H5E_DEFAULT};
use hdf5_sys::h5f::{H5Fclose, H5Fcreate, H5F_ACC_TRUNC};
use hdf5_sys::h5g::{H5Gclose, H5Gcreate2};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5l::H5Lcreate_external;
use hdf5_sys::h5p::{
    H5Pclose, H5Pcreate, H5Pset_chunk, H5Pset_filter, H5Pset_virtual, H5P_CLS_DATASET_CREATE,
    H5P_DEFAULT,
};
use hdf5_sys::h5s::{
    H5S_class_t, H5S_seloper_t, H5Sclose, H5Screate, H5Screate_simple, H5Sselect_hyperslab, H5S_ALL,
};
use hdf5_sys::h5t::{H5T_str_t, H5Tclose, H5Tcopy, H5Tset_size, H5Tset_strpad, H5T_C_S1};
use parking_lot::ReentrantMutexGuard;
use std::ffi::{c_uint, c_void, CStr, CString};
use std::sync::Once;

/// The one lock every call into libhdf5 holds (the build is not thread-safe). Reentrant, and the
/// same lock `hdf5-metno` uses, so the two can share a process.
pub fn lock() -> ReentrantMutexGuard<'static, ()> {
    static INIT: Once = Once::new();
    thread_local! {
        static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let guard = hdf5_sys::LOCK.lock();
    INIT.call_once(|| {
        // SAFETY: H5open initialises the library; we hold the lock.
        unsafe {
            H5open();
        }
        crate::filters::register();
    });
    if !QUIET.get() {
        // Errors are collected from the stack into our messages, not printed. A thread-safe
        // libhdf5 (Debian builds one) keeps this setting per thread.
        // SAFETY: we hold the lock; no callback is installed.
        unsafe {
            H5Eset_auto2(H5E_DEFAULT, None, std::ptr::null_mut());
        }
        QUIET.set(true);
    }
    guard
}

/// The current HDF5 error stack, innermost first, as one line.
pub fn error_stack() -> String {
    unsafe extern "C" fn walk(_n: c_uint, err: *const H5E_error2_t, data: *mut c_void) -> herr_t {
        // SAFETY: HDF5 hands a valid error record and our `Vec<String>` as `data`.
        unsafe {
            let lines = &mut *data.cast::<Vec<String>>();
            let e = &*err;
            let text = |p: *const std::ffi::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            lines.push(format!("{}: {}", text(e.func_name), text(e.desc)));
        }
        0
    }
    let mut lines: Vec<String> = Vec::new();
    // SAFETY: the callback only reads the records and writes our vector.
    unsafe {
        H5Ewalk2(
            H5E_DEFAULT,
            H5E_direction_t::H5E_WALK_DOWNWARD,
            Some(walk),
            std::ptr::from_mut(&mut lines).cast(),
        );
    }
    lines.join("; ")
}

fn fail(what: &str) -> Error {
    Error::Hdf5 {
        what: what.to_string(),
        stack: error_stack(),
    }
}

/// Checks an `herr_t`.
pub fn check(ret: herr_t, what: impl FnOnce() -> String) -> Result<()> {
    if ret < 0 {
        Err(fail(&what()))
    } else {
        Ok(())
    }
}

/// An HDF5 identifier, closed on drop.
pub struct Handle {
    id: hid_t,
    close: unsafe extern "C" fn(hid_t) -> herr_t,
}

impl Handle {
    fn new(
        id: hid_t,
        close: unsafe extern "C" fn(hid_t) -> herr_t,
        what: impl FnOnce() -> String,
    ) -> Result<Handle> {
        if id < 0 {
            Err(fail(&what()))
        } else {
            Ok(Handle { id, close })
        }
    }

    pub fn id(&self) -> hid_t {
        self.id
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _g = lock();
        // SAFETY: the id is valid and ours; it is closed once.
        unsafe {
            (self.close)(self.id);
        }
    }
}

/// What closes a [`Handle`].
#[derive(Clone, Copy, Debug)]
pub enum Close {
    File,
    Dataset,
    Space,
    Type,
    Plist,
}

/// Wraps an id a libhdf5 call returned (negative: that call failed, `what` says what it was).
pub fn handle(id: hid_t, close: Close, what: impl FnOnce() -> String) -> Result<Handle> {
    let f: unsafe extern "C" fn(hid_t) -> herr_t = match close {
        Close::File => H5Fclose,
        Close::Dataset => H5Dclose,
        Close::Space => H5Sclose,
        Close::Type => H5Tclose,
        Close::Plist => H5Pclose,
    };
    Handle::new(id, f, what)
}

pub fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Name(s.to_string()))
}

pub fn create_file(path: &str) -> Result<Handle> {
    let c = cstr(path)?;
    // SAFETY: valid C string, default property lists.
    let id = unsafe { H5Fcreate(c.as_ptr(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) };
    Handle::new(id, H5Fclose, || format!("creating {path}"))
}

/// A group with its `NX_class` attribute.
pub fn group(parent: &Handle, name: &str, nx_class: &str) -> Result<Handle> {
    let c = cstr(name)?;
    // SAFETY: valid parent id and C string.
    let id = unsafe { H5Gcreate2(parent.id, c.as_ptr(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) };
    let g = Handle::new(id, H5Gclose, || format!("creating group {name}"))?;
    attr_str(&g, "NX_class", nx_class)?;
    Ok(g)
}

pub fn space(dims: &[u64], max: Option<&[u64]>) -> Result<Handle> {
    let id = if dims.is_empty() {
        // SAFETY: plain call.
        unsafe { H5Screate(H5S_class_t::H5S_SCALAR) }
    } else {
        // SAFETY: dims (and max) hold dims.len() values.
        unsafe {
            H5Screate_simple(
                dims.len() as i32,
                dims.as_ptr(),
                max.map_or(std::ptr::null(), <[u64]>::as_ptr),
            )
        }
    };
    Handle::new(id, H5Sclose, || format!("dataspace {dims:?}"))
}

/// Selects the box `start .. start + count` of a dataspace (a block of one hyperslab).
pub fn select(space: &Handle, start: &[u64], count: &[u64], what: &str) -> Result<()> {
    assert_eq!(start.len(), count.len());
    // SAFETY: a dataspace of ours; both arrays hold the same number of values, which the caller
    // matches to the space's rank (HDF5 checks the box against the extent).
    let ret = unsafe {
        H5Sselect_hyperslab(
            space.id,
            H5S_seloper_t::H5S_SELECT_SET,
            start.as_ptr(),
            std::ptr::null(),
            count.as_ptr(),
            std::ptr::null(),
        )
    };
    check(ret, || what.to_string())
}

fn string_type(len: usize) -> Result<Handle> {
    // SAFETY: H5T_C_S1 is valid after H5open (lock() ran it).
    let t = Handle::new(unsafe { H5Tcopy(*H5T_C_S1) }, H5Tclose, || {
        "string type".into()
    })?;
    // SAFETY: a fresh string type of ours.
    unsafe {
        check(H5Tset_size(t.id, len.max(1)), || "string size".into())?;
        check(H5Tset_strpad(t.id, H5T_str_t::H5T_STR_NULLTERM), || {
            "string pad".into()
        })?;
    }
    Ok(t)
}

/// Plain (contiguous) data: `bytes` hold the values in `dtype`'s memory layout.
pub fn write_data(
    parent: &Handle,
    name: &str,
    dtype: hid_t,
    dims: &[u64],
    bytes: &[u8],
) -> Result<Handle> {
    let c = cstr(name)?;
    let s = space(dims, None)?;
    // SAFETY: valid ids; `bytes` covers the dataspace in `dtype` (callers pass typed slices).
    unsafe {
        let id = H5Dcreate2(
            parent.id,
            c.as_ptr(),
            dtype,
            s.id,
            H5P_DEFAULT,
            H5P_DEFAULT,
            H5P_DEFAULT,
        );
        let d = Handle::new(id, H5Dclose, || format!("creating dataset {name}"))?;
        check(
            H5Dwrite(
                d.id,
                dtype,
                H5S_ALL,
                H5S_ALL,
                H5P_DEFAULT,
                bytes.as_ptr().cast(),
            ),
            || format!("writing {name}"),
        )?;
        Ok(d)
    }
}

pub fn write_str(parent: &Handle, name: &str, value: &str) -> Result<Handle> {
    let t = string_type(value.len() + 1)?;
    let mut b = value.as_bytes().to_vec();
    b.push(0);
    write_data(parent, name, t.id, &[], &b)
}

pub fn attr(obj: &Handle, name: &str, dtype: hid_t, dims: &[u64], bytes: &[u8]) -> Result<()> {
    let c = cstr(name)?;
    let s = space(dims, None)?;
    // SAFETY: valid ids; `bytes` covers the dataspace in `dtype`.
    unsafe {
        let id = H5Acreate2(obj.id, c.as_ptr(), dtype, s.id, H5P_DEFAULT, H5P_DEFAULT);
        let a = Handle::new(id, H5Aclose, || format!("creating attribute {name}"))?;
        check(H5Awrite(a.id, dtype, bytes.as_ptr().cast()), || {
            format!("writing attribute {name}")
        })
    }
}

pub fn attr_str(obj: &Handle, name: &str, value: &str) -> Result<()> {
    let t = string_type(value.len() + 1)?;
    let mut b = value.as_bytes().to_vec();
    b.push(0);
    attr(obj, name, t.id, &[], &b)
}

/// A chunked dataset of `dims` (growing up to `max`), one filter, chunk shape `chunk`.
pub fn chunked(
    parent: &Handle,
    name: &str,
    dtype: hid_t,
    dims: &[u64],
    max: &[u64],
    chunk: &[u64],
    filter: Option<(u32, &[u32])>,
) -> Result<Handle> {
    let c = cstr(name)?;
    let s = space(dims, Some(max))?;
    // SAFETY: valid ids; chunk holds dims.len() values; cd_values as many as passed.
    unsafe {
        let dcpl = Handle::new(H5Pcreate(*H5P_CLS_DATASET_CREATE), H5Pclose, || {
            "dcpl".into()
        })?;
        check(
            H5Pset_chunk(dcpl.id, chunk.len() as i32, chunk.as_ptr()),
            || format!("chunking {name}"),
        )?;
        if let Some((id, cd)) = filter {
            check(
                H5Pset_filter(dcpl.id, id as _, 0, cd.len(), cd.as_ptr()),
                || format!("filter {id} on {name}"),
            )?;
        }
        let id = H5Dcreate2(
            parent.id,
            c.as_ptr(),
            dtype,
            s.id,
            H5P_DEFAULT,
            dcpl.id,
            H5P_DEFAULT,
        );
        Handle::new(id, H5Dclose, || format!("creating dataset {name}"))
    }
}

/// Writes one already-filtered chunk at `offset` (filter mask 0: every filter applied).
pub fn write_chunk(d: &Handle, offset: &[u64], chunk: &[u8]) -> Result<()> {
    // SAFETY: valid dataset; offset has its rank; `chunk` is valid for its length.
    unsafe {
        check(
            H5Dwrite_chunk(
                d.id,
                H5P_DEFAULT,
                0,
                offset.as_ptr(),
                chunk.len(),
                chunk.as_ptr().cast(),
            ),
            || format!("writing chunk at {offset:?}"),
        )
    }
}

/// Writes the whole of `d` from `bytes` in memory type `dtype`.
pub fn write_all(d: &Handle, dtype: hid_t, bytes: &[u8]) -> Result<()> {
    // SAFETY: valid ids; callers pass `bytes` covering the dataset in `dtype`.
    unsafe {
        check(
            H5Dwrite(
                d.id,
                dtype,
                H5S_ALL,
                H5S_ALL,
                H5P_DEFAULT,
                bytes.as_ptr().cast(),
            ),
            || "writing data".into(),
        )
    }
}

pub fn set_extent(d: &Handle, dims: &[u64]) -> Result<()> {
    // SAFETY: valid dataset; dims has its rank.
    unsafe {
        check(H5Dset_extent(d.id, dims.as_ptr()), || {
            format!("extent {dims:?}")
        })
    }
}

pub fn external_link(parent: &Handle, name: &str, file: &str, path: &str) -> Result<()> {
    let (n, f, p) = (cstr(name)?, cstr(file)?, cstr(path)?);
    // SAFETY: valid ids and C strings.
    unsafe {
        check(
            H5Lcreate_external(
                f.as_ptr(),
                p.as_ptr(),
                parent.id,
                n.as_ptr(),
                H5P_DEFAULT,
                H5P_DEFAULT,
            ),
            || format!("external link {name} -> {file}:{path}"),
        )
    }
}

/// One VDS mapping: frames `[start, start + count)` of the virtual dataset of `dims` are frames
/// `[source_start, source_start + count)` of `file:path` (shaped `[source_frames, ny, nx]`).
pub struct Mapping<'a> {
    pub start: u64,
    pub count: u64,
    pub source_start: u64,
    pub source_frames: u64,
    pub file: &'a str,
    pub path: &'a str,
}

pub fn virtual_dataset(
    parent: &Handle,
    name: &str,
    dtype: hid_t,
    dims: [u64; 3],
    maps: &[Mapping<'_>],
) -> Result<Handle> {
    let c = cstr(name)?;
    let vspace = space(&dims, None)?;
    // SAFETY: valid ids; every array passed has rank 3.
    unsafe {
        let dcpl = Handle::new(H5Pcreate(*H5P_CLS_DATASET_CREATE), H5Pclose, || {
            "dcpl".into()
        })?;
        for m in maps {
            let src = space(&[m.source_frames, dims[1], dims[2]], None)?;
            let start = [m.start, 0, 0];
            let count = [m.count, dims[1], dims[2]];
            let source_start = [m.source_start, 0, 0];
            select(&src, &source_start, &count, "VDS source selection")?;
            select(&vspace, &start, &count, "VDS selection")?;
            let (f, p) = (cstr(m.file)?, cstr(m.path)?);
            check(
                H5Pset_virtual(dcpl.id, vspace.id, f.as_ptr(), p.as_ptr(), src.id),
                || format!("VDS mapping of {}", m.file),
            )?;
        }
        let all = space(&dims, None)?;
        let id = H5Dcreate2(
            parent.id,
            c.as_ptr(),
            dtype,
            all.id,
            H5P_DEFAULT,
            dcpl.id,
            H5P_DEFAULT,
        );
        Handle::new(id, H5Dclose, || format!("creating virtual dataset {name}"))
    }
}

/// Native type ids (valid once [`lock`] has run `H5open`).
pub mod types {
    use hdf5_sys::h5i::hid_t;
    use hdf5_sys::h5t;
    pub fn u16() -> hid_t {
        *h5t::H5T_NATIVE_UINT16
    }
    pub fn u32() -> hid_t {
        *h5t::H5T_NATIVE_UINT32
    }
    pub fn i64() -> hid_t {
        *h5t::H5T_NATIVE_INT64
    }
    pub fn f64() -> hid_t {
        *h5t::H5T_NATIVE_DOUBLE
    }
    pub fn u16_le() -> hid_t {
        *h5t::H5T_STD_U16LE
    }
    pub fn u32_le() -> hid_t {
        *h5t::H5T_STD_U32LE
    }
}
