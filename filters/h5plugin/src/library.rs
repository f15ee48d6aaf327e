//! Binding to the HDF5 library that loaded the plugin, found at run time.
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use libloading::os::unix::{Library, Symbol, RTLD_LAZY, RTLD_LOCAL};

use crate::ffi::{herr_t, hid_t, H5E_DEFAULT};
use crate::SLOTS;

type PushFn = unsafe extern "C" fn(
    hid_t,
    *const c_char,
    *const c_char,
    c_uint,
    hid_t,
    hid_t,
    hid_t,
    *const c_char,
    ...
) -> herr_t;

/// The functions and error classes of one HDF5 library.
pub struct Hdf5 {
    /// Where it was found, for messages.
    pub path: String,
    pub version: (u32, u32, u32),
    get_filter_by_id2: unsafe extern "C" fn(
        hid_t,
        c_int,
        *mut c_uint,
        *mut usize,
        *mut c_uint,
        usize,
        *mut c_char,
        *mut c_uint,
    ) -> herr_t,
    modify_filter: unsafe extern "C" fn(hid_t, c_int, c_uint, usize, *const c_uint) -> herr_t,
    tget_size: unsafe extern "C" fn(hid_t) -> usize,
    tget_class: unsafe extern "C" fn(hid_t) -> c_int,
    tis_variable_str: unsafe extern "C" fn(hid_t) -> c_int,
    tget_sign: unsafe extern "C" fn(hid_t) -> c_int,
    get_chunk: unsafe extern "C" fn(hid_t, c_int, *mut u64) -> c_int,
    allocate: unsafe extern "C" fn(usize, bool) -> *mut c_void,
    free: unsafe extern "C" fn(*mut c_void) -> herr_t,
    push: PushFn,
    err_class: *const hid_t,
    major: *const hid_t,
    minor: *const hid_t,
    // Keeps the library loaded as long as we hold its function pointers.
    _library: Library,
}

// SAFETY: the fields are function pointers and pointers to HDF5's immutable error-class globals;
// HDF5 serialises its own API calls.
unsafe impl Send for Hdf5 {}
unsafe impl Sync for Hdf5 {}

impl Hdf5 {
    /// Binds to the library at `path`, which must already be loaded, or to the process's global
    /// symbols when there is no path.
    fn open(path: Option<PathBuf>) -> Result<Hdf5, String> {
        let (library, name) = match &path {
            // SAFETY: RTLD_NOLOAD only returns a library that is already loaded, so no
            // initialisers run.
            Some(p) => {
                match unsafe { Library::open(Some(p), RTLD_LAZY | RTLD_LOCAL | libc::RTLD_NOLOAD) }
                {
                    Ok(lib) => (lib, p.display().to_string()),
                    Err(_) => (Library::this(), "the process's global symbols".into()),
                }
            }
            None => (Library::this(), "the process's global symbols".into()),
        };
        // SAFETY (every `sym` below): the names are HDF5's public API, and the types are their
        // declarations from HDF5 1.10 to 2.0.
        unsafe {
            fn sym<T: Copy>(library: &Library, name: &str, symbol: &str) -> Result<T, String> {
                // SAFETY: see above; T is the symbol's declared type.
                let s: Symbol<T> = unsafe { library.get(symbol.as_bytes()) }
                    .map_err(|_| format!("{name} has no {symbol}: is it an HDF5 library?"))?;
                Ok(*s)
            }
            let libversion: unsafe extern "C" fn(*mut c_uint, *mut c_uint, *mut c_uint) -> herr_t =
                sym(&library, &name, "H5get_libversion")?;
            let (mut major, mut minor, mut release) = (0, 0, 0);
            libversion(&mut major, &mut minor, &mut release);
            if (major, minor) < (1, 10) {
                return Err(format!(
                    "HDF5 {major}.{minor}.{release} ({name}) is not supported: its hid_t is 32-bit; use HDF5 1.10 or later"
                ));
            }
            Ok(Hdf5 {
                path: name.clone(),
                version: (major, minor, release),
                get_filter_by_id2: sym(&library, &name, "H5Pget_filter_by_id2")?,
                modify_filter: sym(&library, &name, "H5Pmodify_filter")?,
                tget_size: sym(&library, &name, "H5Tget_size")?,
                tget_class: sym(&library, &name, "H5Tget_class")?,
                tis_variable_str: sym(&library, &name, "H5Tis_variable_str")?,
                tget_sign: sym(&library, &name, "H5Tget_sign")?,
                get_chunk: sym(&library, &name, "H5Pget_chunk")?,
                allocate: sym(&library, &name, "H5allocate_memory")?,
                free: sym(&library, &name, "H5free_memory")?,
                push: sym(&library, &name, "H5Epush2")?,
                err_class: sym::<*mut hid_t>(&library, &name, "H5E_ERR_CLS_g")?,
                major: sym::<*mut hid_t>(&library, &name, "H5E_PLINE_g")?,
                minor: sym::<*mut hid_t>(&library, &name, "H5E_CALLBACK_g")?,
                _library: library,
            })
        }
    }

    /// Pushes an error onto HDF5's error stack, so that the caller's exception shows `message`.
    pub fn push_error(&self, function: &CStr, message: &str) {
        let message = CString::new(message.replace('\0', " ")).expect("NULs replaced");
        // SAFETY: the format is "%s" with one C string argument; the class ids are HDF5's own
        // globals, initialised before any plugin is loaded.
        unsafe {
            (self.push)(
                H5E_DEFAULT,
                c"hdrmx".as_ptr(),
                function.as_ptr(),
                0,
                *self.err_class,
                *self.major,
                *self.minor,
                c"%s".as_ptr(),
                message.as_ptr(),
            );
        }
    }

    /// A filter's flags and cd_values in a dataset creation property list.
    pub fn filter_cd_values(&self, dcpl: hid_t, filter: u32) -> Result<(c_uint, Vec<u32>), String> {
        let mut flags = 0;
        let mut values = [0 as c_uint; 16];
        let mut count = values.len();
        // SAFETY: `count` tells HDF5 how many values fit; the name and config are not asked for.
        let r = unsafe {
            (self.get_filter_by_id2)(
                dcpl,
                filter as c_int,
                &mut flags,
                &mut count,
                values.as_mut_ptr(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(format!("cannot read the parameters of filter {filter}"));
        }
        Ok((flags, values[..count.min(values.len())].to_vec()))
    }

    pub fn modify_filter(
        &self,
        dcpl: hid_t,
        filter: u32,
        flags: c_uint,
        cd_values: &[u32],
    ) -> Result<(), String> {
        // SAFETY: the slice outlives the call, which copies it.
        let r = unsafe {
            (self.modify_filter)(
                dcpl,
                filter as c_int,
                flags,
                cd_values.len(),
                cd_values.as_ptr(),
            )
        };
        if r < 0 {
            return Err(format!("cannot set the parameters of filter {filter}"));
        }
        Ok(())
    }

    /// Size in bytes of a datatype.
    pub fn type_size(&self, dtype: hid_t) -> usize {
        // SAFETY: plain HDF5 call on an id HDF5 gave us; 0 means failure.
        unsafe { (self.tget_size)(dtype) }
    }

    /// Class of a datatype (`H5T_class_t`).
    pub fn type_class(&self, dtype: hid_t) -> c_int {
        // SAFETY: as above.
        unsafe { (self.tget_class)(dtype) }
    }

    pub fn is_variable_string(&self, dtype: hid_t) -> bool {
        // SAFETY: as above.
        unsafe { (self.tis_variable_str)(dtype) > 0 }
    }

    /// Whether a datatype is an unsigned integer (`H5T_INTEGER` with `H5T_SGN_NONE`).
    pub fn is_unsigned_integer(&self, dtype: hid_t) -> bool {
        const H5T_INTEGER: c_int = 0;
        const H5T_SGN_NONE: c_int = 0;
        // SAFETY: plain HDF5 call on an id HDF5 gave us.
        self.type_class(dtype) == H5T_INTEGER && unsafe { (self.tget_sign)(dtype) } == H5T_SGN_NONE
    }

    /// The chunk dimensions of a dataset creation property list (slowest first).
    pub fn chunk_dims(&self, dcpl: hid_t) -> Result<Vec<u64>, String> {
        // HDF5's H5S_MAX_RANK.
        let mut dims = [0u64; 32];
        // SAFETY: `dims` has room for the most dimensions HDF5 allows, which we pass as the max.
        let rank = unsafe { (self.get_chunk)(dcpl, dims.len() as c_int, dims.as_mut_ptr()) };
        if rank < 0 {
            return Err("cannot read the chunk dimensions (is the dataset chunked?)".into());
        }
        Ok(dims[..(rank as usize).min(dims.len())].to_vec())
    }

    /// `len` zeroed bytes from HDF5's allocator, which is what frees filter buffers.
    pub(crate) fn allocate(&self, len: usize) -> Result<*mut u8, String> {
        // SAFETY: plain allocation; zeroed (calloc), so the bytes are initialised. Large
        // allocations come as fresh pages, so zeroing costs nothing extra.
        let p = unsafe { (self.allocate)(len.max(1), true) };
        if p.is_null() {
            return Err(format!("cannot allocate {len} bytes"));
        }
        Ok(p.cast())
    }

    /// Frees a buffer HDF5 allocated (or [`Hdf5::allocate`] did).
    pub(crate) fn free(&self, p: *mut u8) {
        // SAFETY: `p` came from this library's allocator.
        unsafe { (self.free)(p.cast()) };
    }
}

/// Which library each slot serves (its load address), 0 when free.
static KEYS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static LIBRARIES: [OnceLock<Hdf5>; SLOTS] = [const { OnceLock::new() }; SLOTS];
static CLAIM: Mutex<()> = Mutex::new(());

/// The slot of the HDF5 library containing `caller`, binding it on first use.
pub(crate) fn slot_for(caller: *const c_void) -> Result<usize, String> {
    let (path, base) = locate(caller);
    let _guard = CLAIM.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = (0..SLOTS)
        .find(|&k| KEYS[k].load(Ordering::Acquire) == base && LIBRARIES[k].get().is_some())
    {
        return Ok(k);
    }
    let k = (0..SLOTS)
        .find(|&k| LIBRARIES[k].get().is_none())
        .ok_or_else(|| format!("more than {SLOTS} HDF5 libraries in one process"))?;
    let h5 = Hdf5::open(path)?;
    KEYS[k].store(base, Ordering::Release);
    let _ = LIBRARIES[k].set(h5);
    Ok(k)
}

/// The library bound to slot `k`, if any.
pub(crate) fn get(k: usize) -> Option<&'static Hdf5> {
    LIBRARIES.get(k)?.get()
}

/// The file and load address of the shared object containing `address`.
fn locate(address: *const c_void) -> (Option<PathBuf>, usize) {
    if address.is_null() {
        return (None, 1);
    }
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return (None, 1);
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    use std::os::unix::ffi::OsStrExt;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    (Some(path), info.dli_fbase as usize)
}
