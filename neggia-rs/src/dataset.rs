//! Datasets: metadata, and reads of any box of elements into a caller's buffer.

use std::cell::RefCell;
use std::sync::Arc;

use crate::chunks::{self, ChunkLoc, ChunkMap, Geometry};
use crate::datatype::{Dataspace, Datatype};
use crate::error::{ChunkError, Error, Result};
use crate::file::File;
use crate::filters::Pipeline;
use crate::group::{self, Attribute};
use crate::layout::{self, Filter, Layout};
use crate::object::{self, ObjectHeader};
use crate::raw::UNDEF;
use crate::value::{self, Value};
use crate::vds::Vds;

/// How a dataset's elements are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    Compact,
    Contiguous,
    Chunked,
    Virtual,
}

/// An open dataset. Cheap to clone, `Send + Sync`; reads take `&self` and no lock.
#[derive(Clone)]
pub struct Dataset(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) file: File,
    pub(crate) name: String,
    pub(crate) addr: u64,
    pub(crate) dtype: Datatype,
    pub(crate) space: Dataspace,
    layout: Layout,
    filters: Vec<Filter>,
    pipeline: Pipeline,
    /// One element's fill value as stored; zeros when the file defines none.
    pub(crate) fill: Vec<u8>,
    chunks: ChunkMap,
    vds: Option<Vds>,
}

/// The largest element this reader handles (a detector pixel is at most 8 bytes; a fixed-length
/// string a few hundred).
const MAX_ELEMENT: usize = 1 << 24;

thread_local! {
    /// One decoded chunk, for chunks that do not map straight onto the caller's buffer.
    static CHUNK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Dataset {
    pub(crate) fn open(file: &File, addr: u64, name: &str) -> Result<Dataset> {
        let raw = file.raw();
        let oh = ObjectHeader::read(raw, addr)?;
        let missing =
            |what: &str| raw.corrupt(format_args!("{name}: dataset has no {what} message"));
        let dt = oh
            .find(object::DATATYPE)
            .ok_or_else(|| missing("datatype"))?;
        let dtype = Datatype::parse(
            &mut raw.over(oh.body_of(raw, dt)?, "datatype"),
            raw.so as usize,
        )?;
        let ds = oh
            .find(object::DATASPACE)
            .ok_or_else(|| missing("dataspace"))?;
        let space = Dataspace::parse(&mut raw.over(oh.body_of(raw, ds)?, "dataspace"))?;
        let lm = oh.find(object::LAYOUT).ok_or_else(|| missing("layout"))?;
        if oh.find(object::EXTERNAL_FILES).is_some() {
            return Err(raw.unsupported(format_args!(
                "{name}: raw data in external files (H5Pset_external)"
            )));
        }
        let layout = Layout::parse(&mut raw.over(lm.body, "layout"), space.dims.len())?;
        let filters = match oh.find(object::PIPELINE) {
            Some(m) => {
                layout::parse_pipeline(&mut raw.over(oh.body_of(raw, m)?, "filter pipeline"))?
            }
            None => Vec::new(),
        };
        let elem = dtype.size();
        if elem > MAX_ELEMENT {
            // Why: the fill value below is one element, allocated now; a size field that lies
            // must not allocate gigabytes before anything is read.
            return Err(raw.unsupported(format_args!(
                "{name}: elements of {elem} bytes (more than {MAX_ELEMENT})"
            )));
        }
        let fill = layout::parse_fill(
            raw,
            oh.find(object::FILL).map(|m| m.body),
            oh.find(object::FILL_OLD).map(|m| m.body),
        )?
        .filter(|f| f.len() == elem)
        .unwrap_or_else(|| vec![0; elem]);
        let pipeline = Pipeline::new(&filters, elem);
        let chunks = match &layout {
            Layout::Chunked { dims, index, .. } => {
                // HDF5 refuses chunks of 4 GiB or more; a layout claiming one is corrupt, and a
                // read would otherwise allocate whatever it claims.
                let bytes = dims
                    .iter()
                    .try_fold(elem as u64, |a, &d| a.checked_mul(d))
                    .filter(|&b| b <= u32::MAX as u64);
                if bytes.is_none() {
                    return Err(raw.corrupt(format_args!(
                        "{name}: chunks of {dims:?} x {elem} bytes exceed HDF5's 4 GiB chunk limit"
                    )));
                }
                let g = Geometry {
                    dims: &space.dims,
                    max: &space.max,
                    chunk: dims,
                    elem: elem as u64,
                    filtered: !filters.is_empty(),
                };
                chunks::build(raw, index, &g)?
            }
            _ => ChunkMap::new(),
        };
        let vds = match &layout {
            Layout::Virtual { heap, index } => Some(Vds::open(file, name, *heap, *index, &space)?),
            _ => None,
        };
        let mut space = space;
        if let Some(v) = &vds {
            // Unlimited mappings size the dataset from their sources, as HDF5 does.
            if let Some(frames) = v.extent() {
                if let Some(d0) = space.dims.first_mut() {
                    *d0 = frames;
                }
            }
        }
        Ok(Dataset(Arc::new(Inner {
            file: file.clone(),
            name: name.to_string(),
            addr,
            dtype,
            space,
            layout,
            filters,
            pipeline,
            fill,
            chunks,
            vds,
        })))
    }

    /// The object path it was opened by.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn file(&self) -> &File {
        &self.0.file
    }

    pub fn shape(&self) -> &[u64] {
        &self.0.space.dims
    }

    /// Maximum dimensions; `u64::MAX` is unlimited.
    pub fn max_shape(&self) -> &[u64] {
        &self.0.space.max
    }

    pub fn dtype(&self) -> &Datatype {
        &self.0.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.0.space.len().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn storage(&self) -> Storage {
        match self.0.layout {
            Layout::Compact(_) => Storage::Compact,
            Layout::Contiguous { .. } => Storage::Contiguous,
            Layout::Chunked { .. } => Storage::Chunked,
            Layout::Virtual { .. } => Storage::Virtual,
        }
    }

    /// Chunk dimensions of a chunked dataset.
    pub fn chunks(&self) -> Option<&[u64]> {
        match &self.0.layout {
            Layout::Chunked { dims, .. } => Some(dims),
            _ => None,
        }
    }

    /// The filter pipeline, in the order the writer applied it.
    pub fn filters(&self) -> &[Filter] {
        &self.0.filters
    }

    /// One element's fill value as stored.
    pub fn fill_value(&self) -> &[u8] {
        &self.0.fill
    }

    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        let raw = self.0.file.raw();
        group::attributes(raw, &ObjectHeader::read(raw, self.0.addr)?)
    }

    pub fn attr(&self, name: &str) -> Result<Option<Value>> {
        Ok(self
            .attributes()?
            .into_iter()
            .find(|a| a.name == name)
            .map(|a| a.value))
    }

    /// Where a chunk is stored, by its position in chunk units (None: not allocated).
    pub fn chunk_location(&self, scaled: &[u64]) -> Option<ChunkLoc> {
        let Layout::Chunked { dims, .. } = &self.0.layout else {
            return None;
        };
        let lin = self.geometry(dims).linear(scaled)?;
        self.0.chunks.get(&lin).copied()
    }

    /// A chunk's stored bytes, still filtered, with its filter mask: for writers that pass
    /// compressed chunks through without decoding them.
    pub fn read_raw_chunk(&self, scaled: &[u64]) -> Result<Option<(&[u8], u32)>> {
        let Some(loc) = self.chunk_location(scaled) else {
            return Ok(None);
        };
        let bytes = self
            .0
            .file
            .raw()
            .slice(loc.addr, loc.size, "chunk")
            .map_err(|_| {
                self.chunk_error(
                    scaled,
                    ChunkError::OutOfFile {
                        addr: loc.addr,
                        len: loc.size,
                    },
                )
            })?;
        Ok(Some((bytes, loc.filter_mask)))
    }

    /// Reads the whole dataset, elements in the file's byte order.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        let shape = self.shape().to_vec();
        let n = self.byte_len(&shape)?;
        let mut out = self.buffer(n)?;
        self.read_box(&vec![0; shape.len()], &shape, &mut out)?;
        Ok(out)
    }

    /// Reads and decodes the whole dataset as values (metadata datasets: strings, numbers).
    pub fn read_value(&self) -> Result<Value> {
        let bytes = self.read_bytes()?;
        value::decode(
            self.0.file.raw(),
            &self.0.dtype,
            self.shape().to_vec(),
            &bytes,
        )
    }

    /// Where frame `i` is stored whole: for a virtual dataset, the source dataset and frame that
    /// are exactly this frame (a missing source is an error); for any other dataset, itself and
    /// `i`. None when a virtual frame is assembled from several sources or from fill. A reader
    /// with its own fast path for stored chunks (the XDS plugin) follows VDS frames with it.
    pub fn frame_source(&self, i: u64) -> Result<Option<(&Dataset, u64)>> {
        match &self.0.vds {
            Some(vds) => vds.frame_source(self, i),
            None => Ok(Some((self, i))),
        }
    }

    /// Reads frame `i` (index `i` of the first dimension) into `out`, converted to native byte
    /// order. `T` must be the stored type: u16 for `<u2` or `>u2`, and so on.
    pub fn read_frame_into<T: Element>(&self, i: u64, out: &mut [T]) -> Result<()> {
        self.check_type::<T>()?;
        let shape = self.shape();
        if shape.is_empty() || i >= shape[0] {
            return Err(self.request(format_args!(
                "frame {i} is out of range: the dataset has {} frames",
                shape.first().copied().unwrap_or(0)
            )));
        }
        // Ranks are at most 32 (checked when the dataspace is parsed): no allocation per frame.
        let rank = shape.len();
        let (mut start, mut count) = ([0u64; 32], [0u64; 32]);
        start[0] = i;
        count[..rank].copy_from_slice(shape);
        count[0] = 1;
        self.read_box(
            &start[..rank],
            &count[..rank],
            bytemuck::cast_slice_mut(out),
        )?;
        self.to_native(bytemuck::cast_slice_mut(out));
        Ok(())
    }

    /// Number of elements in one frame (`u64::MAX` when a corrupt shape claims more).
    pub fn frame_len(&self) -> u64 {
        // Saturating: the shape is read from the file and may lie; reading such a frame fails.
        self.shape()
            .iter()
            .skip(1)
            .fold(1u64, |a, &d| a.saturating_mul(d))
    }

    fn check_type<T: Element>(&self) -> Result<()> {
        let ok = match &self.0.dtype {
            Datatype::Int { size, signed, .. } => T::KIND == Kind::Int(*size, *signed),
            Datatype::Float { size, .. } => T::KIND == Kind::Float(*size),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.request(format_args!(
                "stored as {}, read as {}",
                self.0.dtype.numpy(),
                std::any::type_name::<T>()
            )))
        }
    }

    /// Swaps big-endian numbers in place.
    pub(crate) fn to_native(&self, bytes: &mut [u8]) {
        let (size, be) = match self.0.dtype {
            Datatype::Int {
                size, big_endian, ..
            }
            | Datatype::Float { size, big_endian } => (size, big_endian),
            _ => return,
        };
        if be != cfg!(target_endian = "big") && size > 1 {
            for e in bytes.chunks_exact_mut(size) {
                e.reverse();
            }
        }
    }

    pub(crate) fn request(&self, what: impl std::fmt::Display) -> Error {
        Error::Request {
            path: self.0.file.path().to_path_buf(),
            dataset: self.0.name.clone(),
            what: what.to_string(),
        }
    }

    fn chunk_error(&self, origin: &[u64], source: ChunkError) -> Error {
        Error::Chunk {
            path: self.0.file.path().to_path_buf(),
            dataset: self.0.name.clone(),
            chunk: origin.to_vec(),
            source: Box::new(source),
        }
    }

    /// Decodes one stored chunk (whose first element is at `origin`) into `out`.
    fn decode_chunk(
        &self,
        loc: &ChunkLoc,
        mask: u32,
        out: &mut [u8],
        origin: &[u64],
    ) -> Result<()> {
        let stored = self
            .0
            .file
            .raw()
            .slice(loc.addr, loc.size, "chunk")
            .map_err(|_| {
                let e = ChunkError::OutOfFile {
                    addr: loc.addr,
                    len: loc.size,
                };
                self.chunk_error(origin, e)
            })?;
        self.0
            .pipeline
            .decode(stored, mask, out)
            .map_err(|e| self.chunk_error(origin, e))
    }

    fn geometry<'a>(&'a self, chunk: &'a [u64]) -> Geometry<'a> {
        Geometry {
            dims: &self.0.space.dims,
            max: &self.0.space.max,
            chunk,
            elem: self.0.dtype.size() as u64,
            filtered: !self.0.filters.is_empty(),
        }
    }

    /// A zeroed buffer of `n` bytes; a size no machine can allocate is an error, not an abort.
    pub(crate) fn buffer(&self, n: usize) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| self.request(format_args!("cannot allocate {n} bytes")))?;
        v.resize(n, 0);
        Ok(v)
    }

    fn byte_len(&self, count: &[u64]) -> Result<usize> {
        count
            .iter()
            .try_fold(self.0.dtype.size() as u64, |a, &c| a.checked_mul(c))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.request(format_args!("a box of {count:?} does not fit in memory")))
    }

    /// Reads the box `start .. start + count` into `out` (row-major, the file's byte order).
    pub fn read_box(&self, start: &[u64], count: &[u64], out: &mut [u8]) -> Result<()> {
        let shape = self.shape();
        if start.len() != shape.len()
            || count.len() != shape.len()
            || start
                .iter()
                .zip(count)
                .zip(shape)
                .any(|((s, c), d)| s.checked_add(*c).is_none_or(|e| e > *d))
        {
            return Err(self.request(format_args!(
                "box at {start:?} of {count:?} is outside the shape {shape:?}"
            )));
        }
        let n = self.byte_len(count)?;
        if out.len() != n {
            return Err(self.request(format_args!(
                "buffer holds {} bytes, the box needs {n}",
                out.len()
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let elem = self.0.dtype.size();
        let raw = self.0.file.raw();
        // Compact and contiguous data are one row-major array: the box is copied out of it.
        let whole: &[u8] = match &self.0.layout {
            Layout::Compact(data) => data,
            Layout::Contiguous { addr, .. } if *addr == UNDEF => {
                fill(out, &self.0.fill);
                return Ok(());
            }
            Layout::Contiguous { addr, size } => {
                let need = self.byte_len(shape)? as u64;
                if *size < need {
                    return Err(raw.corrupt(format_args!(
                        "{}: contiguous data of {size} bytes, the dataset needs {need}",
                        self.0.name
                    )));
                }
                raw.slice(*addr, need, "contiguous data")?
            }
            Layout::Chunked {
                dims,
                unfiltered_edges,
                ..
            } => return self.read_chunked(dims, *unfiltered_edges, start, count, out),
            Layout::Virtual { .. } => {
                let vds = self.0.vds.as_ref().expect("virtual layout has a mapping");
                return vds.read_box(self, start, count, out);
            }
        };
        let need = self.byte_len(shape)?;
        if whole.len() < need {
            return Err(raw.corrupt(format_args!(
                "{}: stored data has {} bytes, the dataset {need}",
                self.0.name,
                whole.len()
            )));
        }
        let origin = vec![0; count.len()];
        copy_box(whole, shape, start, out, count, &origin, count, elem);
        Ok(())
    }

    fn read_chunked(
        &self,
        chunk: &[u64],
        unfiltered_edges: bool,
        start: &[u64],
        count: &[u64],
        out: &mut [u8],
    ) -> Result<()> {
        let elem = self.0.dtype.size();
        let shape = self.shape();
        let rank = shape.len();
        let chunk_bytes = self.byte_len(chunk)?;
        let g = self.geometry(chunk);
        // The frame path: the box is exactly one stored chunk, not at an edge. It decodes
        // straight into the caller's buffer, with nothing allocated.
        let inside = start
            .iter()
            .zip(count)
            .zip(shape)
            .all(|((s, n), d)| s + n <= *d);
        if count == chunk && inside {
            if let Some(lin) = g.linear_at(start) {
                return match self.0.chunks.get(&lin) {
                    None => {
                        fill(out, &self.0.fill);
                        Ok(())
                    }
                    Some(loc) => self.decode_chunk(loc, loc.filter_mask, out, start),
                };
            }
        }
        let first: Vec<u64> = start.iter().zip(chunk).map(|(s, c)| s / c).collect();
        let last: Vec<u64> = start
            .iter()
            .zip(count)
            .zip(chunk)
            .map(|((s, n), c)| (s + n - 1) / c)
            .collect();
        let mut pos = first.clone();
        loop {
            let origin: Vec<u64> = pos.iter().zip(chunk).map(|(p, c)| p * c).collect();
            // The part of this chunk inside the box, relative to the box and to the chunk.
            let lo: Vec<u64> = origin.iter().zip(start).map(|(o, s)| *o.max(s)).collect();
            let hi: Vec<u64> = origin
                .iter()
                .zip(chunk)
                .zip(start.iter().zip(count))
                .map(|((o, c), (s, n))| o.saturating_add(*c).min(s + n))
                .collect();
            let ext: Vec<u64> = hi.iter().zip(&lo).map(|(h, l)| h - l).collect();
            let in_box: Vec<u64> = lo.iter().zip(start).map(|(l, s)| l - s).collect();
            let in_chunk: Vec<u64> = lo.iter().zip(&origin).map(|(l, o)| l - o).collect();
            let loc = g
                .linear(&pos)
                .and_then(|lin| self.0.chunks.get(&lin).copied());
            let edge = origin
                .iter()
                .zip(chunk)
                .zip(shape)
                .any(|((o, c), d)| o.saturating_add(*c) > *d);
            match loc {
                None => fill_box(out, count, &in_box, &ext, elem, &self.0.fill),
                Some(loc) => {
                    // Edge chunks stored unfiltered skip every filter.
                    let mask = if unfiltered_edges && edge {
                        u32::MAX
                    } else {
                        loc.filter_mask
                    };
                    let whole = ext.as_slice() == chunk && ext.as_slice() == count;
                    if whole {
                        // The chunk is the box: decode straight into the caller's buffer.
                        self.decode_chunk(&loc, mask, out, &origin)?;
                    } else {
                        CHUNK.with(|buf| -> Result<()> {
                            let mut buf = buf.borrow_mut();
                            if buf.len() < chunk_bytes {
                                let more = chunk_bytes - buf.len();
                                buf.try_reserve_exact(more).map_err(|_| {
                                    self.request(format_args!(
                                        "cannot allocate a chunk of {chunk_bytes} bytes"
                                    ))
                                })?;
                            }
                            buf.resize(chunk_bytes, 0);
                            self.decode_chunk(&loc, mask, &mut buf, &origin)?;
                            copy_box(&buf, chunk, &in_chunk, out, count, &in_box, &ext, elem);
                            Ok(())
                        })?;
                    }
                }
            }
            // Next chunk position, last dimension fastest.
            let mut d = rank;
            loop {
                if d == 0 {
                    return Ok(());
                }
                d -= 1;
                if pos[d] < last[d] {
                    pos[d] += 1;
                    break;
                }
                pos[d] = first[d];
            }
        }
    }
}

/// Stored element types `read_frame_into` can fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int(usize, bool),
    Float(usize),
}

pub trait Element: bytemuck::Pod {
    const KIND: Kind;
}

macro_rules! element {
    ($($t:ty => $k:expr),*) => { $(impl Element for $t { const KIND: Kind = $k; })* };
}
element!(u8 => Kind::Int(1, false), u16 => Kind::Int(2, false), u32 => Kind::Int(4, false),
    u64 => Kind::Int(8, false), i8 => Kind::Int(1, true), i16 => Kind::Int(2, true),
    i32 => Kind::Int(4, true), i64 => Kind::Int(8, true), f32 => Kind::Float(4), f64 => Kind::Float(8));

pub(crate) fn fill(out: &mut [u8], value: &[u8]) {
    if value.iter().all(|&b| b == 0) {
        out.fill(0);
    } else {
        for e in out.chunks_exact_mut(value.len()) {
            e.copy_from_slice(value);
        }
    }
}

/// Fills the box `at .. at + ext` of an array of shape `shape` with one element's value.
pub(crate) fn fill_box(
    out: &mut [u8],
    shape: &[u64],
    at: &[u64],
    ext: &[u64],
    elem: usize,
    value: &[u8],
) {
    each_row(shape, at, shape, at, ext, elem, |_, off, len| {
        fill(&mut out[off..off + len], value)
    });
}

/// Copies the box of extent `ext` at `src_at` in `src` (shape `src_shape`) to `dst_at` in `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_box(
    src: &[u8],
    src_shape: &[u64],
    src_at: &[u64],
    dst: &mut [u8],
    dst_shape: &[u64],
    dst_at: &[u64],
    ext: &[u64],
    elem: usize,
) {
    each_row(
        src_shape,
        src_at,
        dst_shape,
        dst_at,
        ext,
        elem,
        |s, d, len| dst[d..d + len].copy_from_slice(&src[s..s + len]),
    );
}

/// Calls `f(source offset, destination offset, length)`, in bytes, for each contiguous row of a
/// box of extent `ext` placed in two arrays, in row-major order.
fn each_row(
    a_shape: &[u64],
    a_at: &[u64],
    b_shape: &[u64],
    b_at: &[u64],
    ext: &[u64],
    elem: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = ext.len();
    if rank == 0 {
        f(0, 0, elem);
        return;
    }
    if ext.contains(&0) {
        return;
    }
    // Trailing dimensions the box spans whole in both arrays merge into one longer row.
    let full =
        |d: usize| a_at[d] == 0 && b_at[d] == 0 && ext[d] == a_shape[d] && ext[d] == b_shape[d];
    let mut inner = rank - 1;
    while inner > 0 && full(inner) {
        inner -= 1;
    }
    let row = (ext[inner..].iter().product::<u64>() * elem as u64) as usize;
    let strides = |shape: &[u64]| -> Vec<u64> {
        (0..rank)
            .map(|d| shape[d + 1..].iter().product::<u64>() * elem as u64)
            .collect()
    };
    let (sa, sb) = (strides(a_shape), strides(b_shape));
    let mut idx = vec![0u64; inner];
    loop {
        let (mut oa, mut ob) = (0u64, 0u64);
        for d in 0..rank {
            let i = if d < inner { idx[d] } else { 0 };
            oa += (a_at[d] + i) * sa[d];
            ob += (b_at[d] + i) * sb[d];
        }
        f(oa as usize, ob as usize, row);
        let mut d = inner;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < ext[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}
