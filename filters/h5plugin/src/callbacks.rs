//! The filter callbacks HDF5 calls, each behind a panic boundary.
use std::ffi::{c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use hdrmx_core::codec::Codec;

use crate::ffi::{herr_t, hid_t, htri_t, H5ZClass2, H5Z_FLAG_REVERSE};
use crate::library::{self, Hdf5};
use crate::{Filter, SLOTS};

/// HDF5 chunks hold at most 4 GiB; a chunk header claiming more is corrupt.
const MAX_CHUNK: u64 = u32::MAX as u64;

/// Failures also printed on stderr, per process: HDF5 2.0 drops errors that filter callbacks
/// push, so without this an h5py user would only see "filter returned failure".
const PRINTED_FAILURES: usize = 10;
static FAILURES: AtomicUsize = AtomicUsize::new(0);

fn report(h5: &Hdf5, function: &CStr, message: &str) {
    h5.push_error(function, message);
    match FAILURES.fetch_add(1, Ordering::Relaxed) {
        n if n < PRINTED_FAILURES => say(message),
        n if n == PRINTED_FAILURES => say("further failures are not printed"),
        _ => {}
    }
}

/// One line on stderr; never panics (`eprintln!` would, with stderr closed, across the C ABI).
fn say(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "hdrmx HDF5 filter: {message}");
}

/// Runs `f` for the library in slot `k`; an error or a panic becomes an HDF5 error.
fn guarded<R>(
    k: usize,
    function: &CStr,
    failure: R,
    f: impl FnOnce(&Hdf5) -> Result<R, String>,
) -> R {
    let Some(h5) = library::get(k) else {
        return failure;
    };
    match catch_unwind(AssertUnwindSafe(|| f(h5))) {
        Ok(Ok(r)) => r,
        Ok(Err(message)) => {
            report(h5, function, &message);
            failure
        }
        Err(_) => {
            report(h5, function, "internal error (panic); please report it");
            failure
        }
    }
}

/// `H5PLget_plugin_info`'s work: the class for the library whose code is at `caller`.
pub fn plugin_info(caller: *const c_void, classes: &'static [H5ZClass2; SLOTS]) -> *const c_void {
    let found = catch_unwind(|| library::slot_for(caller));
    match found {
        Ok(Ok(k)) => std::ptr::from_ref(&classes[k]).cast(),
        Ok(Err(message)) => {
            say(&message);
            std::ptr::null()
        }
        Err(_) => std::ptr::null(),
    }
}

/// # Safety
/// Called by HDF5 with valid ids.
pub unsafe extern "C" fn can_apply<F: Filter, const K: usize>(
    dcpl: hid_t,
    dtype: hid_t,
    _space: hid_t,
) -> htri_t {
    guarded(K, c"can_apply", 0, |h5| {
        F::can_apply(h5, dcpl, dtype).map(|()| 1)
    })
}

/// # Safety
/// Called by HDF5 with valid ids.
pub unsafe extern "C" fn set_local<F: Filter, const K: usize>(
    dcpl: hid_t,
    dtype: hid_t,
    _space: hid_t,
) -> herr_t {
    guarded(K, c"set_local", -1, |h5| {
        F::set_local(h5, dcpl, dtype).map(|()| 0)
    })
}

/// The filter: decodes when `flags` has `H5Z_FLAG_REVERSE`, encodes otherwise. Returns the new
/// number of valid bytes in `*buf`, or 0 on failure with `*buf` untouched.
///
/// # Safety
/// Called by HDF5: `cd_values` holds `cd_nelmts` values and `*buf` holds `nbytes` valid bytes
/// in a buffer from HDF5's allocator.
pub unsafe extern "C" fn filter<F: Filter, const K: usize>(
    flags: c_uint,
    cd_nelmts: usize,
    cd_values: *const c_uint,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    let function = if flags & H5Z_FLAG_REVERSE != 0 {
        c"decode"
    } else {
        c"encode"
    };
    guarded(K, function, 0, |h5| {
        if buf.is_null() || buf_size.is_null() || (*buf).is_null() {
            return Err("no buffer".into());
        }
        let cd = if cd_values.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(cd_values, cd_nelmts)
        };
        // SAFETY: HDF5 hands us `nbytes` valid bytes at *buf.
        let input = std::slice::from_raw_parts((*buf).cast::<u8>(), nbytes);
        let codec = F::codec(cd).map_err(|e| e.to_string())?;
        let (out, len, capacity) = if flags & H5Z_FLAG_REVERSE != 0 {
            decode(h5, &codec, input)?
        } else {
            encode(h5, &codec, input)?
        };
        h5.free((*buf).cast());
        *buf = out.cast();
        *buf_size = capacity;
        Ok(len)
    })
}

/// Decodes into a new buffer of the chunk's size; returns (buffer, length, capacity).
fn decode(h5: &Hdf5, codec: &Codec, input: &[u8]) -> Result<(*mut u8, usize, usize), String> {
    let declared = codec.decoded_len(input).map_err(|e| e.to_string())?;
    let Some(len) = declared else {
        return Err(format!(
            "{}: the chunk does not declare its uncompressed size",
            codec.name()
        ));
    };
    if len > MAX_CHUNK {
        return Err(format!(
            "{}: chunk header claims {len} bytes, more than an HDF5 chunk can hold",
            codec.name()
        ));
    }
    let len = len as usize;
    let out = h5.allocate(len)?;
    huge_pages(out, len);
    // SAFETY: `out` holds `len` zeroed bytes that nothing else refers to.
    let dst = unsafe { std::slice::from_raw_parts_mut(out, len) };
    match codec.decode(input, dst) {
        Ok(()) => Ok((out, len, len.max(1))),
        Err(e) => {
            h5.free(out);
            Err(e.to_string())
        }
    }
}

/// Asks for transparent huge pages over a large output buffer. A fresh 72 MB frame otherwise
/// costs some 18,000 page faults, more time than decoding it.
fn huge_pages(p: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
        return;
    }
    let start = (p as usize).next_multiple_of(HUGE);
    let end = (p as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: advice only, over whole huge pages inside the buffer we just allocated.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

thread_local! {
    // Encoding goes here first: the worst case is the chunk's whole size, but the result is
    // usually a few percent of it, so HDF5 gets an exact-size copy instead of a fresh 72 MB
    // allocation per frame.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes into a new buffer of the encoded size.
fn encode(h5: &Hdf5, codec: &Codec, input: &[u8]) -> Result<(*mut u8, usize, usize), String> {
    ENCODED.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let bound = codec.max_encoded_len(input.len());
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        let len = codec
            .encode_into(input, &mut scratch[..bound])
            .map_err(|e| e.to_string())?;
        let out = h5.allocate(len)?;
        // SAFETY: `out` holds `len` bytes that nothing else refers to.
        unsafe { std::ptr::copy_nonoverlapping(scratch.as_ptr(), out, len) };
        Ok((out, len, len.max(1)))
    })
}
