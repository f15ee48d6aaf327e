//! The reader: an NXmx master through libhdf5, frame by frame.
//!
//! The frame stack is `/entry/data/data` (a virtual dataset, or plain), else the DECTRIS links
//! `/entry/data/data_000001`, ... in number order. Every VDS source is opened when the master is
//! (a missing one is an error naming it, never HDF5's silent fill values). A frame whose dataset
//! is chunked one frame per chunk with no filter or one filter `hdrmx-core` knows is read with a
//! direct chunk read and decoded here, outside the HDF5 lock; anything else goes through
//! `H5Dread` (VDS mappings that are not whole frames, other filters, other chunk shapes).
use crate::h5::{self, Handle};
use crate::{Error, Result};
use hdf5_sys::h5d::{
    H5D_layout_t, H5Dget_chunk_info_by_coord, H5Dget_create_plist, H5Dget_space, H5Dget_type,
    H5Dopen2, H5Dread, H5Dread_chunk,
};
use hdf5_sys::h5f::{H5Fopen, H5F_ACC_RDONLY};
use hdf5_sys::h5l::H5Lexists;
use hdf5_sys::h5p::{
    H5Pget_chunk, H5Pget_filter2, H5Pget_layout, H5Pget_nfilters, H5Pget_virtual_count,
    H5Pget_virtual_dsetname, H5Pget_virtual_filename, H5Pget_virtual_srcspace,
    H5Pget_virtual_vspace, H5P_DEFAULT,
};
use hdf5_sys::h5s::{H5Sget_select_bounds, H5Sget_select_npoints, H5Sget_simple_extent_dims};
use hdf5_sys::h5t::{
    H5T_class_t, H5T_direction_t, H5T_sign_t, H5Tget_class, H5Tget_native_type, H5Tget_sign,
    H5Tget_size,
};
use hdrmx_core::codec::Codec;
use std::cell::RefCell;
use std::ffi::{c_char, c_uint};
use std::path::{Path, PathBuf};

/// A stored pixel type the reader hands out.
pub trait Pixel: Copy + Default + 'static {
    const SIZE: usize;
    const SIGNED: bool;
}
impl Pixel for u8 {
    const SIZE: usize = 1;
    const SIGNED: bool = false;
}
impl Pixel for u16 {
    const SIZE: usize = 2;
    const SIGNED: bool = false;
}
impl Pixel for u32 {
    const SIZE: usize = 4;
    const SIGNED: bool = false;
}
impl Pixel for i16 {
    const SIZE: usize = 2;
    const SIGNED: bool = true;
}
impl Pixel for i32 {
    const SIZE: usize = 4;
    const SIGNED: bool = true;
}

/// One dataset holding frames, and how to read them.
struct Stack {
    name: String,
    dims: Vec<u64>,
    dataset: Handle,
    frames: u64,
    /// The codec of a one-frame-per-chunk dataset with a known pipeline (`None` with `direct`
    /// set: unfiltered chunks).
    codec: Option<Codec>,
    direct: bool,
}

/// Where frames `[start, start + count)` of the stack come from.
struct Run {
    start: u64,
    count: u64,
    stack: usize,
    first: u64,
}

pub struct Reader {
    path: PathBuf,
    _file: Handle,
    /// The dataset frames are read from with `H5Dread` when no run covers them (the VDS).
    whole: Option<Stack>,
    stacks: Vec<Stack>,
    runs: Vec<Run>,
    frames: u64,
    shape: [u64; 2],
    elem_size: usize,
    signed: bool,
    mem_type: Handle,
    mask: Option<Vec<u32>>,
}

fn exists(loc: &Handle, path: &str) -> Result<bool> {
    // Walk the path: H5Lexists needs every parent to exist.
    let mut sofar = String::new();
    for part in path.trim_start_matches('/').split('/') {
        sofar.push('/');
        sofar.push_str(part);
        let c = h5::cstr(&sofar)?;
        // SAFETY: valid id and C string.
        if unsafe { H5Lexists(loc.id(), c.as_ptr(), H5P_DEFAULT) } <= 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

fn open_dataset(loc: &Handle, path: &str, what: &str) -> Result<Handle> {
    let c = h5::cstr(path)?;
    // SAFETY: valid id and C string.
    let id = unsafe { H5Dopen2(loc.id(), c.as_ptr(), H5P_DEFAULT) };
    h5::handle(id, h5::Close::Dataset, || format!("{what}: opening {path}"))
}

fn dims(space: &Handle) -> Vec<u64> {
    let mut d = [0u64; 8];
    // SAFETY: valid dataspace; room for rank 8 (frames are rank 3).
    let n = unsafe { H5Sget_simple_extent_dims(space.id(), d.as_mut_ptr(), std::ptr::null_mut()) };
    d[..n.clamp(0, 8) as usize].to_vec()
}

fn c_text(f: impl Fn(*mut c_char, usize) -> isize) -> String {
    let n = f(std::ptr::null_mut(), 0);
    if n <= 0 {
        return String::new();
    }
    let mut buf = vec![0u8; n as usize + 1];
    f(buf.as_mut_ptr().cast(), buf.len());
    buf.truncate(n as usize);
    String::from_utf8_lossy(&buf).into_owned()
}

impl Reader {
    pub fn open(path: impl AsRef<Path>) -> Result<Reader> {
        let path = path.as_ref().to_path_buf();
        let _g = h5::lock();
        let c = h5::cstr(&path.to_string_lossy())?;
        // SAFETY: valid C string.
        let id = unsafe { H5Fopen(c.as_ptr(), H5F_ACC_RDONLY, H5P_DEFAULT) };
        let file = h5::handle(id, h5::Close::File, || {
            format!("opening {}", path.display())
        })?;
        let mut stacks = Vec::new();
        let mut runs = Vec::new();
        let mut whole = None;
        if exists(&file, "/entry/data/data")? {
            let d = open_dataset(&file, "/entry/data/data", &path.display().to_string())?;
            // SAFETY: valid dataset.
            let dcpl = h5::handle(
                unsafe { H5Dget_create_plist(d.id()) },
                h5::Close::Plist,
                || "dataset creation properties".into(),
            )?;
            // SAFETY: valid property list.
            if unsafe { H5Pget_layout(dcpl.id()) } == H5D_layout_t::H5D_VIRTUAL {
                Self::vds_sources(&path, &file, &dcpl, &mut stacks, &mut runs)?;
            }
            let stack = Self::stack("/entry/data/data".into(), d)?;
            if runs.is_empty() && !stack_is_virtual(&dcpl) {
                runs.push(Run {
                    start: 0,
                    count: stack.frames,
                    stack: 0,
                    first: 0,
                });
                stacks.push(stack);
            } else {
                whole = Some(stack);
            }
        } else {
            let mut start = 0;
            for k in 1.. {
                let name = format!("/entry/data/data_{k:06}");
                if !exists(&file, &name)? {
                    break;
                }
                let d = open_dataset(&file, &name, &path.display().to_string())?;
                let s = Self::stack(name, d)?;
                runs.push(Run {
                    start,
                    count: s.frames,
                    stack: stacks.len(),
                    first: 0,
                });
                start += s.frames;
                stacks.push(s);
            }
            if stacks.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: no /entry/data/data and no /entry/data/data_000001",
                    path.display()
                )));
            }
        }
        let top = whole.as_ref().unwrap_or(&stacks[0]);
        // SAFETY: valid dataset; the type handle is closed on drop.
        let (shape, ftype) = unsafe {
            let s = h5::handle(H5Dget_space(top.dataset.id()), h5::Close::Space, || {
                "dataspace".into()
            })?;
            let d = dims(&s);
            if d.len() != 3 {
                return Err(Error::Invalid(format!(
                    "frames of rank {}, need 3",
                    d.len()
                )));
            }
            let t = h5::handle(H5Dget_type(top.dataset.id()), h5::Close::Type, || {
                "datatype".into()
            })?;
            ([d[1], d[2]], t)
        };
        // SAFETY: a valid datatype.
        let (class, elem_size, signed, mem_type) = unsafe {
            (
                H5Tget_class(ftype.id()),
                H5Tget_size(ftype.id()),
                H5Tget_sign(ftype.id()) != H5T_sign_t::H5T_SGN_NONE,
                h5::handle(
                    H5Tget_native_type(ftype.id(), H5T_direction_t::H5T_DIR_ASCEND),
                    h5::Close::Type,
                    || "native type".into(),
                )?,
            )
        };
        if class != H5T_class_t::H5T_INTEGER {
            return Err(Error::Invalid("frames are not integers".into()));
        }
        let frames = match &whole {
            Some(w) => w.frames,
            None => runs.iter().map(|r| r.count).sum(),
        };
        let mask = Self::read_mask(&file, shape)?;
        Ok(Reader {
            path,
            _file: file,
            whole,
            stacks,
            runs,
            frames,
            shape,
            elem_size,
            signed,
            mem_type,
            mask,
        })
    }

    fn vds_sources(
        master: &Path,
        file: &Handle,
        dcpl: &Handle,
        stacks: &mut Vec<Stack>,
        runs: &mut Vec<Run>,
    ) -> Result<()> {
        let mut n = 0usize;
        // SAFETY: valid property list.
        h5::check(unsafe { H5Pget_virtual_count(dcpl.id(), &mut n) }, || {
            "VDS mappings".into()
        })?;
        let dir = master.parent().unwrap_or(Path::new("."));
        let mut whole_frames = true;
        let mut found = Vec::new();
        for i in 0..n {
            // SAFETY: valid property list and index; buffers sized by the first call.
            let (fname, dname) = unsafe {
                (
                    c_text(|p, l| H5Pget_virtual_filename(dcpl.id(), i, p, l) as isize),
                    c_text(|p, l| H5Pget_virtual_dsetname(dcpl.id(), i, p, l) as isize),
                )
            };
            if fname.contains('%') || dname.contains('%') {
                return Err(Error::Invalid(format!(
                    "{}: VDS source {fname}:{dname}: printf-style names are not read by durin-rs \
                     (use neggia-rs)",
                    master.display()
                )));
            }
            let src_dataset = if fname == "." {
                open_dataset(file, &dname, &format!("VDS source {fname}:{dname}"))?
            } else {
                let p = Path::new(&fname);
                let full = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    dir.join(p)
                };
                let c = h5::cstr(&full.to_string_lossy())?;
                // SAFETY: valid C string.
                let id = unsafe { H5Fopen(c.as_ptr(), H5F_ACC_RDONLY, H5P_DEFAULT) };
                let sf = h5::handle(id, h5::Close::File, || {
                    format!("{}: VDS source {fname}:{dname}", master.display())
                })?;
                open_dataset(&sf, &dname, &format!("VDS source {fname}"))?
                // The file stays open while the dataset is.
            };
            // SAFETY: valid property list and index; the spaces are closed on drop.
            let (v, s) = unsafe {
                (
                    h5::handle(
                        H5Pget_virtual_vspace(dcpl.id(), i),
                        h5::Close::Space,
                        || "VDS selection".into(),
                    )?,
                    h5::handle(
                        H5Pget_virtual_srcspace(dcpl.id(), i),
                        h5::Close::Space,
                        || "VDS source selection".into(),
                    )?,
                )
            };
            let stack = Self::stack(format!("{fname}:{dname}"), src_dataset)?;
            let vd = dims(&v);
            let mut sd = dims(&s);
            let src_bounds = if sd.is_empty() {
                // An `all` source selection is stored without the source's extent: it is the
                // whole source dataset.
                sd = stack.dims.clone();
                let n: u64 = sd.iter().product();
                (!sd.is_empty()).then(|| {
                    (
                        vec![0; sd.len()],
                        sd.iter().map(|d| d.saturating_sub(1)).collect(),
                        n,
                    )
                })
            } else {
                bounds(&s).ok()
            };
            // Unlimited or odd selections have no bounds: those go through H5Dread.
            let (Ok((vs, ve, vn)), Some((ss, se, sn))) = (bounds(&v), src_bounds) else {
                whole_frames = false;
                found.push((stack, 0, 0, 0));
                continue;
            };
            let frames = ve[0] + 1 - vs[0];
            let full = vd.len() == 3
                && sd.len() == 3
                && vs[1] == 0
                && vs[2] == 0
                && ve[1] + 1 == vd[1]
                && ve[2] + 1 == vd[2]
                && ss[1] == 0
                && ss[2] == 0
                && se[1] + 1 == sd[1]
                && se[2] + 1 == sd[2]
                && se[0] + 1 - ss[0] == frames
                && vn == frames * vd[1] * vd[2]
                && sn == vn;
            whole_frames &= full;
            found.push((stack, vs[0], frames, ss.first().copied().unwrap_or(0)));
        }
        for (stack, start, count, first) in found {
            if whole_frames {
                runs.push(Run {
                    start,
                    count,
                    stack: stacks.len(),
                    first,
                });
            }
            stacks.push(stack);
        }
        runs.sort_by_key(|r| r.start);
        Ok(())
    }

    fn stack(name: String, dataset: Handle) -> Result<Stack> {
        // SAFETY: valid dataset; handles closed on drop.
        unsafe {
            let s = h5::handle(H5Dget_space(dataset.id()), h5::Close::Space, || {
                format!("{name}: dataspace")
            })?;
            let d = dims(&s);
            let dcpl = h5::handle(H5Dget_create_plist(dataset.id()), h5::Close::Plist, || {
                format!("{name}: properties")
            })?;
            let t = h5::handle(H5Dget_type(dataset.id()), h5::Close::Type, || {
                format!("{name}: type")
            })?;
            let elem = H5Tget_size(t.id());
            let mut codec = None;
            let mut direct = false;
            if d.len() == 3 && H5Pget_layout(dcpl.id()) == H5D_layout_t::H5D_CHUNKED {
                let mut chunk = [0u64; 3];
                let rank = H5Pget_chunk(dcpl.id(), 3, chunk.as_mut_ptr());
                let one_frame = rank == 3 && chunk == [1, d[1], d[2]];
                let nf = H5Pget_nfilters(dcpl.id());
                if one_frame && nf == 0 {
                    direct = true;
                } else if one_frame && nf == 1 {
                    let mut flags: c_uint = 0;
                    let mut cd = [0 as c_uint; 16];
                    let mut ncd = cd.len();
                    let id = H5Pget_filter2(
                        dcpl.id(),
                        0,
                        &mut flags,
                        &mut ncd,
                        cd.as_mut_ptr(),
                        0,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    );
                    if id >= 0 {
                        let cd = &cd[..ncd.min(16)];
                        if let Ok(c) = Codec::from_filter(id as u32, cd, elem) {
                            codec = Some(c);
                            direct = true;
                        }
                    }
                }
            }
            Ok(Stack {
                frames: d.first().copied().unwrap_or(0),
                dims: d,
                name,
                dataset,
                codec,
                direct,
            })
        }
    }

    fn read_mask(file: &Handle, shape: [u64; 2]) -> Result<Option<Vec<u32>>> {
        for p in [
            "/entry/instrument/detector/pixel_mask",
            "/entry/instrument/detector/detectorSpecific/pixel_mask",
        ] {
            if !exists(file, p)? {
                continue;
            }
            let d = open_dataset(file, p, "pixel mask")?;
            // SAFETY: valid dataset.
            let s = h5::handle(unsafe { H5Dget_space(d.id()) }, h5::Close::Space, || {
                "mask dataspace".into()
            })?;
            if dims(&s) != shape {
                return Err(Error::Invalid(format!(
                    "{p}: shape {:?}, frames are {shape:?}",
                    dims(&s)
                )));
            }
            let mut mask = vec![0u32; (shape[0] * shape[1]) as usize];
            // SAFETY: `mask` holds the whole dataset as native u32 (HDF5 converts).
            h5::check(
                unsafe {
                    H5Dread(
                        d.id(),
                        h5::types::u32(),
                        0,
                        0,
                        H5P_DEFAULT,
                        mask.as_mut_ptr().cast(),
                    )
                },
                || format!("reading {p}"),
            )?;
            return Ok(Some(mask));
        }
        Ok(None)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn frames(&self) -> u64 {
        self.frames
    }
    /// `[slow, fast]` pixels.
    pub fn shape(&self) -> [u64; 2] {
        self.shape
    }
    pub fn elem_size(&self) -> usize {
        self.elem_size
    }
    pub fn is_signed(&self) -> bool {
        self.signed
    }
    pub fn mask(&self) -> Option<&[u32]> {
        self.mask.as_deref()
    }

    /// Frame `i` (0-based) into `out`, of the stored type, `ny * nx` pixels.
    pub fn read_frame_into<T: Pixel>(&self, i: u64, out: &mut [T]) -> Result<()> {
        if T::SIZE != self.elem_size || T::SIGNED != self.signed {
            return Err(Error::Invalid(format!(
                "frames are {}{}-bit, asked for {}{}-bit",
                if self.signed { "int" } else { "uint" },
                8 * self.elem_size,
                if T::SIGNED { "int" } else { "uint" },
                8 * T::SIZE
            )));
        }
        let n = (self.shape[0] * self.shape[1]) as usize;
        if out.len() != n {
            return Err(Error::FrameSize {
                expected: n,
                actual: out.len(),
            });
        }
        if i >= self.frames {
            return Err(Error::Invalid(format!(
                "{}: frame {i} of {}",
                self.path.display(),
                self.frames
            )));
        }
        // SAFETY: T is a plain integer type; the byte view covers exactly `out`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                out.as_mut_ptr().cast::<u8>(),
                std::mem::size_of_val(out),
            )
        };
        let run = self
            .runs
            .partition_point(|r| r.start + r.count <= i)
            .min(self.runs.len());
        match self.runs.get(run).filter(|r| r.start <= i) {
            Some(r) => {
                let s = &self.stacks[r.stack];
                let j = r.first + (i - r.start);
                self.read_from(s, j, bytes)
                    .map_err(|e| self.frame_error(i, e))
            }
            None => match &self.whole {
                Some(w) => self
                    .h5_read(w, i, bytes)
                    .map_err(|e| self.frame_error(i, e)),
                None => Err(Error::Invalid(format!("frame {i}: in no data file"))),
            },
        }
    }

    fn frame_error(&self, i: u64, e: Error) -> Error {
        Error::Invalid(format!("{}: frame {i}: {e}", self.path.display()))
    }

    fn read_from(&self, s: &Stack, j: u64, out: &mut [u8]) -> Result<()> {
        if !s.direct {
            return self.h5_read(s, j, out);
        }
        thread_local! {
            static CHUNK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        CHUNK.with_borrow_mut(|buf| {
            let offset = [j, 0, 0];
            let mask = {
                let _g = h5::lock();
                let (mut fmask, mut addr, mut size) = (0 as c_uint, 0u64, 0u64);
                // SAFETY: valid dataset; offset has its rank.
                h5::check(
                    unsafe {
                        H5Dget_chunk_info_by_coord(
                            s.dataset.id(),
                            offset.as_ptr(),
                            &mut fmask,
                            &mut addr,
                            &mut size,
                        )
                    },
                    || format!("{}: chunk {j}", s.name),
                )?;
                if addr == u64::MAX {
                    // Never written: HDF5's fill value.
                    drop(_g);
                    return self.h5_read(s, j, out);
                }
                buf.resize(size as usize, 0);
                let mut fmask: u32 = 0;
                // SAFETY: `buf` has the chunk's stored size.
                h5::check(
                    unsafe {
                        H5Dread_chunk(
                            s.dataset.id(),
                            H5P_DEFAULT,
                            offset.as_ptr(),
                            &mut fmask,
                            buf.as_mut_ptr().cast(),
                        )
                    },
                    || format!("{}: reading chunk {j}", s.name),
                )?;
                fmask
            };
            match s.codec {
                Some(c) if mask & 1 == 0 => c
                    .decode(buf, out)
                    .map_err(|e| Error::Invalid(format!("{}: chunk {j}: {e}", s.name))),
                _ => {
                    if buf.len() != out.len() {
                        return Err(Error::Invalid(format!(
                            "{}: chunk {j}: {} bytes stored unfiltered, frame is {}",
                            s.name,
                            buf.len(),
                            out.len()
                        )));
                    }
                    out.copy_from_slice(buf);
                    Ok(())
                }
            }
        })
    }

    fn h5_read(&self, s: &Stack, j: u64, out: &mut [u8]) -> Result<()> {
        let _g = h5::lock();
        let [ny, nx] = self.shape;
        // SAFETY: valid ids; the selection is one frame, `out` holds one frame of the native type.
        unsafe {
            let fs = h5::handle(H5Dget_space(s.dataset.id()), h5::Close::Space, || {
                "dataspace".into()
            })?;
            let (start, count) = ([j, 0, 0], [1, ny, nx]);
            h5::select(&fs, &start, &count, "frame selection")?;
            let ms = h5::space(&count, None)?;
            h5::check(
                H5Dread(
                    s.dataset.id(),
                    self.mem_type.id(),
                    ms.id(),
                    fs.id(),
                    H5P_DEFAULT,
                    out.as_mut_ptr().cast(),
                ),
                || format!("{}: H5Dread of frame {j}", s.name),
            )
        }
    }
}

fn stack_is_virtual(dcpl: &Handle) -> bool {
    // SAFETY: valid property list.
    unsafe { H5Pget_layout(dcpl.id()) == H5D_layout_t::H5D_VIRTUAL }
}

fn bounds(space: &Handle) -> Result<(Vec<u64>, Vec<u64>, u64)> {
    let rank = dims(space).len();
    let (mut s, mut e) = (vec![0u64; rank], vec![0u64; rank]);
    // SAFETY: valid dataspace; arrays of its rank.
    unsafe {
        h5::check(
            H5Sget_select_bounds(space.id(), s.as_mut_ptr(), e.as_mut_ptr()),
            || "selection bounds".into(),
        )?;
        let n = H5Sget_select_npoints(space.id());
        Ok((s, e, n.max(0) as u64))
    }
}
