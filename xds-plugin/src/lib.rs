//! `libhdrmx_xds.so`: the XDS `LIB=` plugin for EIGER and NXmx masters, VDS and DECTRIS
//! FileWriter links alike, through neggia-rs (pure Rust, no libhdf5, no global lock).
//!
//! XDS `dlopen`s the library and calls four functions, every argument by reference:
//! `plugin_open` once, `plugin_get_header`, then `plugin_get_data` from several OpenMP threads
//! at once, and `plugin_close`. The open master is read-only between open and close and is
//! loaded without a lock, so frames decode in parallel.
//!
//! API conventions:
//! - `info` gets the vendor id 1, our major, minor and patch version and -1 for the timestamp,
//!   on every call.
//! - Error codes are the reference table's: open -4 when the master cannot be opened (or one
//!   is open already), get_data -2 when the frame cannot be read (or nothing is open, or the
//!   host asks for another frame size) and -3 for an unsupported pixel type. Each failure prints
//!   one line on stderr naming the file and the frame.
//! - No panic crosses the C boundary: each export runs inside `catch_unwind`, and a panic
//!   becomes that function's error code.
//! - Frame numbers are 1-based; `nx` is the fast axis, `ny` the slow one; `qx` and `qy` are in
//!   metres; `nbytes` is the stored pixel size.
//!
//! Options come from the environment (see [`options`]). The pixel convention is
//! [`hdrmx_core::frame::xds`]'s.

pub mod options;
mod plugin;

use std::ffi::{c_char, c_float, c_int, CStr};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;

use crate::options::Options;
use crate::plugin::{code, Failure, Plugin};

/// The master between `plugin_open` and `plugin_close`.
static OPEN: ArcSwapOption<Plugin> = ArcSwapOption::const_empty();

/// XDS's vendor id field: the host is known to insist on 1.
const VENDOR_ID: c_int = 1;

/// One line on stderr. Never panics (`eprintln!` would, with stderr closed, across the C ABI),
/// and written in one piece so lines from several threads do not mix.
fn say(line: std::fmt::Arguments<'_>) {
    let text = format!("hdrmx-xds: {line}\n");
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn version_part(i: usize) -> c_int {
    env!("CARGO_PKG_VERSION")
        .split(['.', '-', '+'])
        .nth(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Fills XDS's `info` array: vendor, version, timestamp (-1: none).
///
/// # Safety
/// `info` is NULL or points to at least 5 ints.
unsafe fn write_info(info: *mut c_int) {
    if info.is_null() {
        return;
    }
    let values = [
        VENDOR_ID,
        version_part(0),
        version_part(1),
        version_part(2),
        -1,
    ];
    for (k, v) in values.into_iter().enumerate() {
        // SAFETY: the caller passes XDS's int[1024] (at least 5 ints, checked non-NULL above).
        unsafe { *info.add(k) = v };
    }
}

/// The panic boundary every export runs in: `f`'s failure, or a panic as `panic_code`, goes to
/// the host's error flag and to one line on stderr.
fn boundary(
    what: &str,
    error_flag: *mut c_int,
    panic_code: c_int,
    f: impl FnOnce() -> Result<(), Failure>,
) {
    let code = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(failure)) => {
            say(format_args!("error: {}", failure.message));
            failure.code
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            say(format_args!("error: {what}: internal error: {why}"));
            panic_code
        }
    };
    if !error_flag.is_null() {
        // SAFETY: the host passes its error flag by reference (checked non-NULL above).
        unsafe { *error_flag = code };
    }
}

/// The open master, or the failure to report when there is none.
fn open_master(what: &str) -> Result<Arc<Plugin>, Failure> {
    OPEN.load_full()
        .ok_or_else(|| Failure::new(code::FRAME, format!("{what}: no master is open")))
}

/// Opens the master `filename` (`*_master.h5`, `.nxs`, or the `name_??????.h5` template).
///
/// # Safety
/// `filename` is NULL or a NUL-terminated string; `info` is NULL or XDS's int[1024];
/// `error_flag` is NULL or points to an int.
#[no_mangle]
pub unsafe extern "C" fn plugin_open(
    filename: *const c_char,
    info: *mut c_int,
    error_flag: *mut c_int,
) {
    boundary("plugin_open", error_flag, code::OPEN, || {
        // SAFETY: as the function's contract.
        unsafe { write_info(info) };
        if filename.is_null() {
            return Err(Failure::new(code::OPEN, "plugin_open: no file name (NULL)"));
        }
        // SAFETY: a NUL-terminated string, as the function's contract (checked non-NULL).
        let name = unsafe { CStr::from_ptr(filename) };
        // Fortran hosts may pad names with blanks.
        let name = String::from_utf8_lossy(name.to_bytes())
            .trim_end()
            .to_string();
        let options = Options::from_env().map_err(|e| Failure::new(code::OPEN, e))?;
        let busy = |open: &Plugin| {
            Failure::new(
                code::OPEN,
                format!(
                    "cannot open {name}: {} is open; plugin_close it first",
                    open.path().display()
                ),
            )
        };
        if let Some(open) = OPEN.load_full() {
            return Err(busy(&open));
        }
        let start = Instant::now();
        let plugin = Arc::new(Plugin::open(Path::new(&name), options)?);
        let line = (options.log >= 1).then(|| plugin.describe());
        // Publish, unless another thread opened a master meanwhile.
        let before = OPEN.compare_and_swap(&None::<Arc<Plugin>>, Some(plugin));
        if let Some(open) = &*before {
            return Err(busy(open));
        }
        if let Some(line) = line {
            say(format_args!(
                "{} {}: opened {line} in {:.1} ms",
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
                start.elapsed().as_secs_f64() * 1e3
            ));
        }
        Ok(())
    })
}

/// Frame size, pixel size and frame count of the open master.
///
/// # Safety
/// Each pointer is NULL or points to one value of its type; `info` to XDS's int[1024].
#[no_mangle]
pub unsafe extern "C" fn plugin_get_header(
    nx: *mut c_int,
    ny: *mut c_int,
    nbytes: *mut c_int,
    qx: *mut c_float,
    qy: *mut c_float,
    number_of_frames: *mut c_int,
    info: *mut c_int,
    error_flag: *mut c_int,
) {
    boundary("plugin_get_header", error_flag, code::FRAME, || {
        // SAFETY: as the function's contract.
        unsafe { write_info(info) };
        let p = open_master("plugin_get_header")?;
        if nx.is_null()
            || ny.is_null()
            || nbytes.is_null()
            || qx.is_null()
            || qy.is_null()
            || number_of_frames.is_null()
        {
            return Err(Failure::new(
                code::FRAME,
                "plugin_get_header: NULL argument",
            ));
        }
        let h = p.header;
        // SAFETY: each pointer is valid for one write (the contract; checked non-NULL above).
        unsafe {
            *nx = h.nx;
            *ny = h.ny;
            *nbytes = h.nbytes;
            *qx = h.qx;
            *qy = h.qy;
            *number_of_frames = h.frames;
        }
        if h.qx == 0.0 || h.qy == 0.0 {
            say(format_args!(
                "warning: {}: no x/y_pixel_size in the detector group, reporting 0",
                p.path().display()
            ));
        }
        if p.options.log >= 1 {
            say(format_args!(
                "header: nx {} ny {} nbytes {} qx {} qy {} frames {}",
                h.nx, h.ny, h.nbytes, h.qx, h.qy, h.frames
            ));
        }
        Ok(())
    })
}

/// Frame `frame_number` (1-based) as `nx * ny` int32 in `data_array`, in the XDS convention.
/// Called from several threads at once.
///
/// # Safety
/// Each pointer is NULL or points to one int, `data_array` to `nx * ny` ints and `info` to
/// XDS's int[1024].
#[no_mangle]
pub unsafe extern "C" fn plugin_get_data(
    frame_number: *mut c_int,
    nx: *mut c_int,
    ny: *mut c_int,
    data_array: *mut c_int,
    info: *mut c_int,
    error_flag: *mut c_int,
) {
    boundary("plugin_get_data", error_flag, code::FRAME, || {
        // SAFETY: as the function's contract.
        unsafe { write_info(info) };
        let p = open_master("plugin_get_data")?;
        if frame_number.is_null() || nx.is_null() || ny.is_null() || data_array.is_null() {
            return Err(Failure::new(code::FRAME, "plugin_get_data: NULL argument"));
        }
        // SAFETY: each points to one int (the contract; checked non-NULL above).
        let (number, w, h) = unsafe { (*frame_number, *nx, *ny) };
        if (w, h) != (p.header.nx, p.header.ny) {
            return Err(Failure::new(
                code::FRAME,
                format!(
                    "{}: frame {number}: the host asks for {w} x {h} pixels, the frames are {} x {}",
                    p.path().display(),
                    p.header.nx,
                    p.header.ny
                ),
            ));
        }
        let len = w as usize * h as usize;
        // SAFETY: the host's buffer holds nx * ny ints (the contract), and nx, ny are the
        // header's positive sizes (checked above).
        let out = unsafe { std::slice::from_raw_parts_mut(data_array, len) };
        let start = Instant::now();
        p.read(number, out)?;
        if p.options.log >= 2 {
            say(format_args!(
                "frame {number}: {:.2} ms",
                start.elapsed().as_secs_f64() * 1e3
            ));
        }
        Ok(())
    })
}

/// Closes the open master (frames still being read finish first, on their own reference).
///
/// # Safety
/// `error_flag` is NULL or points to an int.
#[no_mangle]
pub unsafe extern "C" fn plugin_close(error_flag: *mut c_int) {
    boundary("plugin_close", error_flag, -1, || {
        if let Some(p) = OPEN.swap(None) {
            if p.options.log >= 1 {
                say(format_args!("closed {}", p.path().display()));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_in_info() {
        let mut info = [0; 1024];
        // SAFETY: info holds 1024 ints.
        unsafe { write_info(info.as_mut_ptr()) };
        assert_eq!(info[0], 1);
        assert_eq!(
            format!("{}.{}.{}", info[1], info[2], info[3]),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(info[4], -1);
        assert!(info[5..].iter().all(|&v| v == 0));
    }

    #[test]
    fn a_panic_becomes_the_error_code() {
        let mut flag = 0;
        boundary("test", &mut flag, -7, || panic!("boom"));
        assert_eq!(flag, -7);
        boundary("test", &mut flag, -7, || Ok(()));
        assert_eq!(flag, 0);
        boundary("test", std::ptr::null_mut(), -7, || {
            Err(Failure::new(-2, "x"))
        });
    }
}
