//! `hdrmx_dials._native`: EIGER/NXmx frames for Python through neggia-rs, no libhdf5.
//!
//! Thin wrappers over [`frames::Frames`]: each call takes the numpy array's memory, releases the
//! GIL, and decodes straight into it. Failures become Python exceptions naming the file and the
//! frame: [`Error`] (an `OSError`) for files that cannot be read, [`UnsupportedError`] for
//! valid HDF5 the reader does not handle, `IndexError`, `ValueError` and `TypeError` for bad
//! arguments. A panic becomes pyo3's `PanicException`, never a crash.

mod frames;

use std::path::PathBuf;

use numpy::{Element, PyArray2, PyArrayDescr, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyIndexError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::frames::{Convention, Failure, Frames, Pixel};

create_exception!(
    _native,
    Error,
    PyOSError,
    "A file that cannot be read: missing, corrupt, or a missing data file or VDS source. The \
     message names the file and the frame."
);
create_exception!(
    _native,
    UnsupportedError,
    Error,
    "Valid HDF5 that the hdrmx reader does not handle (an unusual filter or layout); h5py with \
     its plugins may read it."
);

fn raise(failure: Failure) -> PyErr {
    match failure {
        Failure::Index(m) => PyIndexError::new_err(m),
        Failure::Value(m) => PyValueError::new_err(m),
        Failure::Type(m) => PyTypeError::new_err(m),
        Failure::Unsupported(m) => UnsupportedError::new_err(m),
        Failure::Read(m) => Error::new_err(m),
    }
}

/// Calls `$f::<T>($args)` with `T` the Rust type of a [`Pixel`].
macro_rules! with_pixel {
    ($pixel:expr, $f:ident($($arg:expr),*)) => {
        match $pixel {
            Pixel::U8 => $f::<u8>($($arg),*),
            Pixel::U16 => $f::<u16>($($arg),*),
            Pixel::U32 => $f::<u32>($($arg),*),
            Pixel::U64 => $f::<u64>($($arg),*),
            Pixel::I8 => $f::<i8>($($arg),*),
            Pixel::I16 => $f::<i16>($($arg),*),
            Pixel::I32 => $f::<i32>($($arg),*),
            Pixel::I64 => $f::<i64>($($arg),*),
        }
    };
}

/// The frames of an open master file. Reads release the GIL; a `Dataset` may be shared by
/// threads.
#[pyclass(frozen, module = "hdrmx_dials._native", name = "Dataset")]
struct Dataset {
    frames: Frames,
    /// The pixel mask, read-only, made once.
    mask: Option<Py<PyArray2<u32>>>,
}

/// A new C-contiguous array of `T` of shape `dims`, filled by `fill` with the GIL released.
fn new_array<'py, T: Element + bytemuck::Pod, const N: usize>(
    py: Python<'py>,
    dims: [usize; N],
    fill: impl FnOnce(&mut [u8]) -> Result<(), Failure> + Send,
) -> PyResult<Bound<'py, PyAny>>
where
    [usize; N]: numpy::ndarray::IntoDimension,
{
    // zeros, not uninitialised memory: for frame-sized arrays numpy gets fresh zeroed pages from
    // calloc, which costs nothing more, and no Rust reference ever sees uninitialised bytes.
    let array = numpy::PyArray::<T, _>::zeros(py, dims, false);
    {
        let mut guard = array.readwrite();
        let values = guard
            .as_slice_mut()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(values);
        py.detach(|| fill(bytes)).map_err(raise)?;
    }
    Ok(array.into_any())
}

/// `out` as the bytes of a writeable, C-contiguous array of `T` and shape `shape`.
fn fill_out<T: Element + bytemuck::Pod>(
    py: Python<'_>,
    out: &Bound<'_, PyAny>,
    shape: &[usize],
    fill: impl FnOnce(&mut [u8]) -> Result<(), Failure> + Send,
) -> PyResult<()> {
    let want = || format!("{} array of shape {shape:?}", numpy::dtype::<T>(py));
    let array = out.cast::<PyArrayDyn<T>>().map_err(|_| {
        let got = match out.getattr("dtype") {
            Ok(d) => format!("{} of {d}", out.get_type()),
            Err(_) => out.get_type().to_string(),
        };
        PyTypeError::new_err(format!("out must be a numpy {}, not {got}", want()))
    })?;
    if array.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "out must be a numpy {}, not of shape {:?}",
            want(),
            array.shape()
        )));
    }
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err("out must be C-contiguous"));
    }
    let mut guard = array
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("out must be writeable: {e}")))?;
    let values = guard
        .as_slice_mut()
        .map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(values);
    py.detach(|| fill(bytes)).map_err(raise)
}

fn read_frame<'py, T: Element + bytemuck::Pod>(
    py: Python<'py>,
    frames: &Frames,
    i: u64,
    shape: [usize; 2],
) -> PyResult<Bound<'py, PyAny>> {
    new_array::<T, 2>(py, shape, |out| frames.read(i, out))
}

fn read_frames<'py, T: Element + bytemuck::Pod>(
    py: Python<'py>,
    frames: &Frames,
    indices: &[u64],
    shape: [usize; 3],
) -> PyResult<Bound<'py, PyAny>> {
    new_array::<T, 3>(py, shape, |out| frames.read_many(indices, out))
}

fn read_frame_into<T: Element + bytemuck::Pod>(
    py: Python<'_>,
    frames: &Frames,
    i: u64,
    out: &Bound<'_, PyAny>,
    shape: [usize; 2],
) -> PyResult<()> {
    fill_out::<T>(py, out, &shape, |bytes| frames.read(i, bytes))
}

fn descr<'py, T: Element>(py: Python<'py>) -> Bound<'py, PyArrayDescr> {
    numpy::dtype::<T>(py)
}

impl Dataset {
    /// (ny, nx).
    fn frame_shape(&self) -> [usize; 2] {
        // Frames::open checked that ny * nx fits.
        self.frames.master().shape().map(|v| v as usize)
    }
}

#[pymethods]
impl Dataset {
    /// (frames, ny, nx): slow before fast, as h5py gives the frame stack.
    #[getter]
    fn shape(&self) -> (u64, usize, usize) {
        let [ny, nx] = self.frame_shape();
        (self.frames.frames(), ny, nx)
    }

    /// The numpy dtype of the arrays reads return: the stored type, or int32 for dxtbx.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDescr> {
        with_pixel!(self.frames.output(), descr(py))
    }

    /// The NXmx pixel mask (uint32, read-only, (ny, nx)), from the detector or its
    /// detectorSpecific group, or None.
    #[getter]
    fn mask(&self, py: Python<'_>) -> Option<Py<PyArray2<u32>>> {
        self.mask.as_ref().map(|m| m.clone_ref(py))
    }

    /// The master file's path.
    #[getter]
    fn path(&self) -> PathBuf {
        self.frames.path().to_path_buf()
    }

    /// What the master says about its frames: path, frames, shape (ny, nx), stored dtype,
    /// bit_depth (readout, else image), saturation_value, pixel_size (x, y in metres), and the
    /// convention of the reads ("stored", or "dxtbx" with dxtbx_bit_depth).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.frames.master();
        let d = PyDict::new(py);
        d.set_item("path", self.path())?;
        d.set_item("frames", self.frames.frames())?;
        d.set_item("shape", (m.shape()[0], m.shape()[1]))?;
        d.set_item("dtype", self.frames.stored().numpy())?;
        d.set_item("bit_depth", m.bit_depth)?;
        d.set_item("saturation_value", m.saturation_value)?;
        d.set_item("pixel_size", m.pixel_size)?;
        match self.frames.convention() {
            Convention::Stored => d.set_item("convention", "stored")?,
            Convention::Dxtbx { bit_depth, .. } => {
                d.set_item("convention", "dxtbx")?;
                d.set_item("dxtbx_bit_depth", bit_depth)?;
            }
        }
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.frames.frames() as usize
    }

    fn __repr__(&self) -> String {
        let [ny, nx] = self.frame_shape();
        let convention = match self.frames.convention() {
            Convention::Stored => String::new(),
            Convention::Dxtbx { bit_depth, .. } => {
                format!(", dxtbx=True, bit_depth={}", py_option(bit_depth))
            }
        };
        format!(
            "<hdrmx_dials.Dataset {:?}: {} frames of {ny} x {nx} {}{convention}>",
            self.frames.path().display().to_string(),
            self.frames.frames(),
            self.frames.stored().numpy()
        )
    }

    /// Pickles as the arguments that reopen it (the files are not copied).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, OpenArgs)> {
        let open = py.import("hdrmx_dials._native")?.getattr("open")?;
        let args = match self.frames.convention() {
            Convention::Stored => (self.path(), false, None),
            Convention::Dxtbx { bit_depth, .. } => (self.path(), true, bit_depth),
        };
        Ok((open, args))
    }

    /// Frame `i` (negative counts from the end) as a new writeable, C-contiguous (ny, nx) array.
    fn read<'py>(&self, py: Python<'py>, i: i64) -> PyResult<Bound<'py, PyAny>> {
        let i = self.frames.frame_number(i).map_err(raise)?;
        let shape = self.frame_shape();
        with_pixel!(self.frames.output(), read_frame(py, &self.frames, i, shape))
    }

    /// Reads frame `i` into `out`: a writeable, C-contiguous (ny, nx) array of `dtype`.
    fn read_into(&self, py: Python<'_>, i: i64, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.frames.frame_number(i).map_err(raise)?;
        let shape = self.frame_shape();
        with_pixel!(
            self.frames.output(),
            read_frame_into(py, &self.frames, i, out, shape)
        )
    }

    /// Frames `indices` as a new (len(indices), ny, nx) array, decoded in parallel with the GIL
    /// released (rayon's pool: RAYON_NUM_THREADS threads, else one per CPU).
    fn read_many<'py>(&self, py: Python<'py>, indices: Vec<i64>) -> PyResult<Bound<'py, PyAny>> {
        let indices = indices
            .into_iter()
            .map(|i| self.frames.frame_number(i))
            .collect::<Result<Vec<u64>, Failure>>()
            .map_err(raise)?;
        let [ny, nx] = self.frame_shape();
        let shape = [indices.len(), ny, nx];
        with_pixel!(
            self.frames.output(),
            read_frames(py, &self.frames, &indices, shape)
        )
    }
}

/// `open`'s arguments: master, dxtbx, bit_depth.
type OpenArgs = (PathBuf, bool, Option<u32>);

fn py_option(v: Option<u32>) -> String {
    v.map_or("None".into(), |v| v.to_string())
}

/// Opens a master file (`*_master.h5`, `.nxs`, any NXmx file with `/entry/data`, or XDS's
/// `name_??????.h5` template). With `dxtbx=True` reads return int32 frames exactly as dxtbx's
/// FormatNXmx does for `bit_depth` (None: values kept; uint32 frames need 32).
#[pyfunction]
#[pyo3(signature = (master, dxtbx = false, bit_depth = None))]
fn open(py: Python<'_>, master: PathBuf, dxtbx: bool, bit_depth: Option<u32>) -> PyResult<Dataset> {
    if bit_depth.is_some() && !dxtbx {
        return Err(PyValueError::new_err(
            "bit_depth is for the dxtbx convention (dxtbx=True)",
        ));
    }
    let frames = py
        .detach(|| Frames::open(&master, dxtbx.then_some(bit_depth)))
        .map_err(raise)?;
    let mask = match frames.master().mask() {
        Some(m) => {
            let [ny, nx] = frames.master().shape().map(|v| v as usize);
            let array = numpy::PyArray1::from_slice(py, m).reshape([ny, nx])?;
            array.call_method1("setflags", (false,))?;
            Some(array.unbind())
        }
        None => None,
    };
    Ok(Dataset { frames, mask })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("UnsupportedError", m.py().get_type::<UnsupportedError>())?;
    m.add_class::<Dataset>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    Ok(())
}
