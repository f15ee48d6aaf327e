//! Frames of a master file as the Python side gets them: as stored, or in the dxtbx convention,
//! decoded by neggia-rs straight into the caller's buffer, one frame or many in parallel.
//!
//! Pure Rust on byte buffers: the Python layer only hands over numpy arrays' memory.

use std::cell::RefCell;
use std::path::Path;

use hdrmx_core::frame::dxtbx::Dxtbx;
use neggia::nxmx::Master;
use neggia::{ChunkError, Datatype, Element, Error};
use rayon::prelude::*;

/// The integer types frames are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pixel {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

impl Pixel {
    fn of(dtype: &Datatype) -> Option<Pixel> {
        let Datatype::Int { size, signed, .. } = *dtype else {
            return None;
        };
        Some(match (size, signed) {
            (1, false) => Pixel::U8,
            (2, false) => Pixel::U16,
            (4, false) => Pixel::U32,
            (8, false) => Pixel::U64,
            (1, true) => Pixel::I8,
            (2, true) => Pixel::I16,
            (4, true) => Pixel::I32,
            (8, true) => Pixel::I64,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Pixel::U8 | Pixel::I8 => 1,
            Pixel::U16 | Pixel::I16 => 2,
            Pixel::U32 | Pixel::I32 => 4,
            Pixel::U64 | Pixel::I64 => 8,
        }
    }

    /// numpy's name for the type.
    pub fn numpy(self) -> &'static str {
        match self {
            Pixel::U8 => "uint8",
            Pixel::U16 => "uint16",
            Pixel::U32 => "uint32",
            Pixel::U64 => "uint64",
            Pixel::I8 => "int8",
            Pixel::I16 => "int16",
            Pixel::I32 => "int32",
            Pixel::I64 => "int64",
        }
    }
}

/// A failed call, by the Python exception it becomes. Each message names the file, and for
/// reads the frame.
#[derive(Debug)]
pub enum Failure {
    /// A frame index outside the stack (IndexError).
    Index(String),
    /// An argument of the wrong value (ValueError).
    Value(String),
    /// Frames or an argument of the wrong type (TypeError).
    Type(String),
    /// Valid HDF5 that neggia-rs does not read: an unusual filter or layout. h5py with its
    /// plugins may read it, so the dxtbx class falls back to h5py.
    Unsupported(String),
    /// A file that cannot be read: missing, corrupt, a missing data file or VDS source.
    Read(String),
}

impl Failure {
    /// A reader error; `at` says where ("x_master.h5: frame 7").
    fn read(at: impl std::fmt::Display, e: Error) -> Failure {
        let unsupported = match &e {
            Error::Unsupported { .. } => true,
            Error::Chunk { source, .. } => matches!(**source, ChunkError::Unsupported(..)),
            _ => false,
        };
        let message = format!("{at}: {e}");
        if unsupported {
            Failure::Unsupported(message)
        } else {
            Failure::Read(message)
        }
    }
}

/// What a read produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// The stored values, in native byte order.
    Stored,
    /// int32 frames as dxtbx's `FormatNXmx.get_raw_data` returns them (`hdrmx_core::frame::
    /// dxtbx`), for the bit depth the caller gave.
    Dxtbx { bit_depth: Option<u32>, rule: Dxtbx },
}

/// An open master's frames.
pub struct Frames {
    master: Master,
    stored: Pixel,
    convention: Convention,
    /// Pixels per frame.
    pixels: usize,
}

thread_local! {
    /// A frame as stored, for types narrower than the int32 they become (u64 words: aligned for
    /// any type). Grown once per thread: steady state allocates nothing.
    static SCRATCH: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Frames {
    /// Opens a master (`*_master.h5`, `.nxs`, any NXmx file, or the `name_??????.h5` template).
    /// `dxtbx`: None for frames as stored, `Some(bit depth)` for the dxtbx convention.
    pub fn open(path: &Path, dxtbx: Option<Option<u32>>) -> Result<Frames, Failure> {
        let master = Master::open(path).map_err(|e| Failure::read(path.display(), e))?;
        let name = master.file().path().display().to_string();
        let stored = Pixel::of(master.dtype()).ok_or_else(|| {
            Failure::Type(format!(
                "{name}: frames of {}, expected integers of 1 to 8 bytes",
                master.dtype().numpy()
            ))
        })?;
        let [ny, nx] = master.shape();
        let pixels = usize::try_from(ny)
            .ok()
            .zip(usize::try_from(nx).ok())
            .and_then(|(y, x)| y.checked_mul(x))
            .filter(|p| p.checked_mul(8).is_some())
            .ok_or_else(|| Failure::Value(format!("{name}: frames of {ny} x {nx} pixels")))?;
        let convention = match dxtbx {
            None => Convention::Stored,
            Some(bit_depth) => {
                // What dxtbx accepts: integers up to 4 bytes, uint32 only with a bit depth of 32
                // (its _dataset_as_flex raises TypeError otherwise).
                if matches!(stored, Pixel::U64 | Pixel::I64) {
                    return Err(Failure::Type(format!(
                        "{name}: frames of {}: the dxtbx convention takes integers up to 32 bits",
                        stored.numpy()
                    )));
                }
                if stored == Pixel::U32 && bit_depth != Some(32) {
                    return Err(Failure::Type(format!(
                        "{name}: uint32 frames with bit depth {bit_depth:?}: dxtbx reads uint32 \
                         only with bit depth 32"
                    )));
                }
                let rule =
                    Dxtbx::new(bit_depth).map_err(|e| Failure::Value(format!("{name}: {e}")))?;
                Convention::Dxtbx { bit_depth, rule }
            }
        };
        Ok(Frames {
            master,
            stored,
            convention,
            pixels,
        })
    }

    pub fn master(&self) -> &Master {
        &self.master
    }

    /// The master's path, for messages.
    pub fn path(&self) -> &Path {
        self.master.file().path()
    }

    pub fn frames(&self) -> u64 {
        self.master.frames()
    }

    /// The stored pixel type.
    pub fn stored(&self) -> Pixel {
        self.stored
    }

    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// The pixel type reads produce.
    pub fn output(&self) -> Pixel {
        match self.convention {
            Convention::Stored => self.stored,
            Convention::Dxtbx { .. } => Pixel::I32,
        }
    }

    /// Bytes of one frame as reads produce it.
    pub fn frame_bytes(&self) -> usize {
        self.pixels * self.output().size()
    }

    /// Frame `index`, where a negative index counts from the end (as Python sequences do).
    pub fn frame_number(&self, index: i64) -> Result<u64, Failure> {
        let n = self.frames();
        let i = if index < 0 {
            i128::from(n) + i128::from(index)
        } else {
            i128::from(index)
        };
        u64::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| {
            Failure::Index(format!(
                "{}: frame {index} is out of range: the stack has {n} frames",
                self.path().display()
            ))
        })
    }

    /// Reads frame `i` into `out`: [`Frames::frame_bytes`] bytes, aligned for the output type.
    pub fn read(&self, i: u64, out: &mut [u8]) -> Result<(), Failure> {
        if out.len() != self.frame_bytes() {
            return Err(Failure::Value(format!(
                "{}: a frame is {} bytes, the buffer {}",
                self.path().display(),
                self.frame_bytes(),
                out.len()
            )));
        }
        let at = || format!("{}: frame {i}", self.path().display());
        let result = match (self.convention, self.stored) {
            (Convention::Stored, p) => match p {
                Pixel::U8 => self.master.read_frame_into::<u8>(i, typed(out)?),
                Pixel::U16 => self.master.read_frame_into::<u16>(i, typed(out)?),
                Pixel::U32 => self.master.read_frame_into::<u32>(i, typed(out)?),
                Pixel::U64 => self.master.read_frame_into::<u64>(i, typed(out)?),
                Pixel::I8 => self.master.read_frame_into::<i8>(i, typed(out)?),
                Pixel::I16 => self.master.read_frame_into::<i16>(i, typed(out)?),
                Pixel::I32 => self.master.read_frame_into::<i32>(i, typed(out)?),
                Pixel::I64 => self.master.read_frame_into::<i64>(i, typed(out)?),
            },
            (Convention::Dxtbx { rule, .. }, p) => {
                let out: &mut [i32] = typed(out)?;
                match p {
                    Pixel::U32 => self.wide::<u32>(rule, i, out),
                    Pixel::I32 => self.wide::<i32>(rule, i, out),
                    Pixel::U16 => self.narrow::<u16>(rule, i, out),
                    Pixel::I16 => self.narrow::<i16>(rule, i, out),
                    Pixel::U8 => self.narrow::<u8>(rule, i, out),
                    Pixel::I8 => self.narrow::<i8>(rule, i, out),
                    // Refused at open.
                    Pixel::U64 | Pixel::I64 => {
                        unreachable!("64-bit frames in the dxtbx convention")
                    }
                }
            }
        };
        result.map_err(|e| Failure::read(at(), e))
    }

    /// Reads frames `indices` into `out`, one after another, in parallel on rayon's pool. The
    /// first failure in index order is the one reported.
    pub fn read_many(&self, indices: &[u64], out: &mut [u8]) -> Result<(), Failure> {
        let n = self.frame_bytes();
        if n == 0 {
            return Ok(());
        }
        if out.len() != n * indices.len() {
            return Err(Failure::Value(format!(
                "{}: {} frames are {} bytes, the buffer {}",
                self.path().display(),
                indices.len(),
                n * indices.len(),
                out.len()
            )));
        }
        let results: Vec<Result<(), Failure>> = indices
            .par_iter()
            .zip(out.par_chunks_mut(n))
            .map(|(&i, o)| self.read(i, o))
            .collect();
        results.into_iter().collect()
    }

    /// 4-byte pixels: decoded straight into `out` and converted there, block by block while
    /// each block is in cache (an int32 holds the bits of either type).
    fn wide<T: Element>(&self, rule: Dxtbx, i: u64, out: &mut [i32]) -> neggia::Result<()> {
        self.master
            .read_frame_with::<T>(i, bytemuck::cast_slice_mut(out), |_, part| {
                rule.convert_in_place(bytemuck::cast_slice_mut(part))
            })
    }

    /// 1- and 2-byte pixels: decoded into per-thread scratch, converted into `out` block by
    /// block while each block is in cache.
    fn narrow<T: Element + hdrmx_core::frame::dxtbx::Pixel>(
        &self,
        rule: Dxtbx,
        i: u64,
        out: &mut [i32],
    ) -> neggia::Result<()> {
        let size = size_of::<T>();
        SCRATCH.with(|cell| {
            let mut words = cell.borrow_mut();
            let need = (out.len() * size).div_ceil(8);
            if words.len() < need {
                words.resize(need, 0);
            }
            let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..out.len() * size];
            self.master
                .read_frame_with::<T>(i, bytemuck::cast_slice_mut(bytes), |at, part| {
                    let first = at / size;
                    let src: &[T] = bytemuck::cast_slice(part);
                    rule.convert(src, &mut out[first..first + src.len()]);
                })
        })
    }
}

/// `bytes` as a slice of `T`; a buffer that is not aligned for `T` is the caller's error.
fn typed<T: bytemuck::Pod>(bytes: &mut [u8]) -> Result<&mut [T], Failure> {
    let len = bytes.len();
    bytemuck::try_cast_slice_mut(bytes).map_err(|e| {
        Failure::Value(format!(
            "a buffer of {len} bytes cannot hold {}: {e}",
            std::any::type_name::<T>()
        ))
    })
}
