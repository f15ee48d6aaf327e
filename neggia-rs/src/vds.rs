//! Virtual datasets: the mapping list in the global heap, resolved to pieces along the first
//! (frame) dimension so that a frame finds its sources by binary search.
//!
//! A mapping pairs a virtual selection with a source selection; both are "all" or regular
//! hyperslabs. The first dimension may be any hyperslab (strided blocks, unlimited counts,
//! printf-style `%b` source names); the other dimensions must each select one contiguous range,
//! which is what every detector writer does. Sources open lazily, once, without a lock afterwards.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::dataset::{copy_box, fill_box, Dataset};
use crate::datatype::Dataspace;
use crate::error::{Error, Result};
use crate::file::File;
use crate::heap;
use crate::raw::{Cursor, Raw};

const UNLIMITED: u64 = u64::MAX;

/// VDS pieces one dataset may have (about 100 bytes each).
const MAX_PIECES: usize = 1 << 20;

/// How deeply VDS sources may be virtual datasets themselves.
const MAX_NESTING: u32 = 8;

thread_local! {
    static NESTING: Cell<u32> = const { Cell::new(0) };
}

/// Why: a VDS can name itself (or a VDS that names it) as its source; opening and reading it
/// then recursed until the stack overflowed. Each open and read of a VDS holds one level.
struct Nesting;

impl Nesting {
    fn enter(raw: &Raw, name: &str) -> Result<Nesting> {
        let depth = NESTING.with(Cell::get);
        if depth >= MAX_NESTING {
            return Err(raw.corrupt(format_args!(
                "{name}: VDS sources nest more than {MAX_NESTING} deep (a VDS that is its own source?)"
            )));
        }
        NESTING.with(|n| n.set(depth + 1));
        Ok(Nesting)
    }
}

impl Drop for Nesting {
    fn drop(&mut self) {
        NESTING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

fn past_2_64(raw: &Raw, name: &str, m_idx: usize) -> Error {
    raw.corrupt(format_args!(
        "{name}: mapping {m_idx} selects indices past 2^64"
    ))
}

/// One dimension of a regular hyperslab: `count` blocks of `block` elements, `stride` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dim {
    start: u64,
    stride: u64,
    count: u64,
    block: u64,
}

impl Dim {
    fn len(&self) -> u64 {
        self.count.saturating_mul(self.block)
    }

    /// Index of the p-th selected element.
    fn index(&self, p: u64) -> u64 {
        self.start + (p / self.block) * self.stride + p % self.block
    }

    /// Selected elements from the p-th on that are consecutive indices: the rest of its block,
    /// or all the rest when the blocks touch (one piece, not one per block).
    fn run(&self, p: u64) -> u64 {
        if self.contiguous() {
            self.len() - p
        } else {
            self.block - p % self.block
        }
    }

    /// One past the last selected index, if it fits in a u64 (the index arithmetic of the
    /// mapping is done in u64; a selection that lies past it is refused up front).
    fn end(&self) -> Option<u64> {
        if self.len() == 0 {
            return Some(self.start);
        }
        (self.count - 1)
            .checked_mul(self.stride)?
            .checked_add(self.block)?
            .checked_add(self.start)
    }

    /// A single contiguous range.
    fn contiguous(&self) -> bool {
        self.count == 1 || self.stride == self.block
    }
}

/// A selection: `None` is HDF5's "all" (the whole extent, unknown until the source is open).
type Selection = Option<Vec<Dim>>;

struct Mapping {
    file: String,
    dataset: String,
    source: Selection,
    virt: Selection,
    /// `%b` in a name: block k of the virtual selection comes from the source named with k.
    printf: bool,
}

/// A run of virtual frames served by one mapping (and one printf block) from consecutive frames
/// of its source.
#[derive(Clone, Debug)]
struct Piece {
    v_first: u64,
    frames: u64,
    mapping: usize,
    block: u64,
    s_first: u64,
    /// Per in-frame dimension: (virtual start, source start, length).
    region: Vec<(u64, u64, u64)>,
}

pub(crate) struct Vds {
    pieces: Vec<Piece>,
    /// Pieces sorted by first frame, and per segment of frames the pieces that cover it.
    segments: Vec<(u64, u64, Vec<usize>)>,
    mappings: Vec<Mapping>,
    /// Opened sources, one slot per (mapping, block).
    sources: Vec<Vec<OnceLock<std::result::Result<Dataset, String>>>>,
    extent: Option<u64>,
    dir: PathBuf,
}

impl Vds {
    pub(crate) fn open(
        file: &File,
        name: &str,
        heap_addr: u64,
        index: u32,
        space: &Dataspace,
    ) -> Result<Vds> {
        let raw = file.raw();
        let _nest = Nesting::enter(raw, name)?;
        let obj = heap::global_object(raw, heap_addr, index)?;
        let mut c = raw.over(obj, "VDS mapping list");
        let version = c.u8()?;
        if version > 1 {
            return Err(c.unsupported(format_args!("VDS mapping list encoding version {version}")));
        }
        let n = c.length()?;
        let mut mappings: Vec<Mapping> = Vec::new();
        for _ in 0..n {
            // Version 1 (HDF5 2.0) flags each entry: 0x01 the file name is an earlier entry's,
            // 0x02 likewise the dataset name, 0x04 the source is this file (".").
            let flags = if version == 1 { c.u8()? } else { 0 };
            if flags & !0x07 != 0 {
                return Err(c.unsupported(format_args!("VDS mapping flags {flags:#x}")));
            }
            let earlier = |c: &mut Cursor<'_>, what: fn(&Mapping) -> &String| -> Result<String> {
                let k = c.length()?;
                match mappings.get(k as usize) {
                    Some(m) => Ok(what(m).clone()),
                    None => Err(c.corrupt(format_args!(
                        "VDS mapping refers to entry {k}, not yet seen"
                    ))),
                }
            };
            let file_name = if flags & 0x04 != 0 {
                ".".to_string()
            } else if flags & 0x01 != 0 {
                earlier(&mut c, |m| &m.file)?
            } else {
                String::from_utf8_lossy(c.cstr()?).into_owned()
            };
            let dataset = if flags & 0x02 != 0 {
                earlier(&mut c, |m| &m.dataset)?
            } else {
                String::from_utf8_lossy(c.cstr()?).into_owned()
            };
            let source = selection(&mut c)?;
            let virt = selection(&mut c)?;
            let printf = has_printf(&file_name) || has_printf(&dataset);
            mappings.push(Mapping {
                file: file_name,
                dataset,
                source,
                virt,
                printf,
            });
        }
        let dir = file
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut vds = Vds {
            pieces: Vec::new(),
            segments: Vec::new(),
            sources: Vec::new(),
            mappings,
            extent: None,
            dir,
        };
        vds.plan(file, name, space)?;
        Ok(vds)
    }

    /// The number of frames when unlimited mappings size the dataset.
    pub(crate) fn extent(&self) -> Option<u64> {
        self.extent
    }

    fn plan(&mut self, file: &File, name: &str, space: &Dataspace) -> Result<()> {
        let raw = file.raw();
        let rank = space.dims.len();
        if rank == 0 {
            return Err(raw.unsupported(format_args!("{name}: scalar virtual dataset")));
        }
        let mut unlimited_end = None;
        for (m_idx, m) in self.mappings.iter().enumerate() {
            let virt: Vec<Dim> = match &m.virt {
                Some(v) if v.len() == rank => v.clone(),
                Some(_) => {
                    return Err(raw.corrupt(format_args!(
                        "{name}: virtual selection rank differs from the dataset's"
                    )))
                }
                None => space
                    .dims
                    .iter()
                    .map(|&d| Dim {
                        start: 0,
                        stride: 1,
                        count: 1,
                        block: d,
                    })
                    .collect(),
            };
            let mut slots = 1;
            // In-frame dimensions: one contiguous range each, same length in the source.
            let src_sel = m.source.clone();
            let src_rank = src_sel.as_ref().map_or(rank, Vec::len);
            let frame_dims = if src_rank == rank { 1 } else { 0 };
            if src_rank + 1 != rank && src_rank != rank {
                return Err(raw.unsupported(format_args!(
                    "{name}: mapping of a rank-{src_rank} source into rank {rank}"
                )));
            }
            let mut region = Vec::new();
            for d in 1..rank {
                let v = virt[d];
                let s = match &src_sel {
                    Some(s) => s[d - 1 + frame_dims],
                    None => Dim {
                        start: 0,
                        stride: 1,
                        count: 1,
                        block: v.len(),
                    },
                };
                if !v.contiguous() || !s.contiguous() || v.len() != s.len() || v.len() == UNLIMITED
                {
                    return Err(raw.unsupported(format_args!(
                        "{name}: mapping {m_idx} selects a non-contiguous or mismatched range in dimension {d}"
                    )));
                }
                if v.end().is_none() || s.end().is_none() {
                    return Err(past_2_64(raw, name, m_idx));
                }
                region.push((v.start, s.start, v.len()));
            }
            let v0 = virt[0];
            let s0 = match (&src_sel, frame_dims) {
                (Some(s), 1) => s[0],
                (None, 1) => Dim {
                    start: 0,
                    stride: 1,
                    count: 1,
                    block: v0.block.min(v0.len()),
                },
                // A 2-D source fills single frames.
                _ => Dim {
                    start: 0,
                    stride: 1,
                    count: 1,
                    block: 1,
                },
            };
            if m.printf {
                // Block k of the virtual selection comes from source k; count blocks until one is missing.
                if v0.count != UNLIMITED {
                    return Err(raw.unsupported(format_args!(
                        "{name}: printf mapping with a limited selection"
                    )));
                }
                let mut k = 0u64;
                while k < MAX_PIECES as u64 && self.source_exists(file, m, k) {
                    // Block k ends at start + k * stride + block: checked, the numbers are the
                    // file's.
                    let v_first = k
                        .checked_mul(v0.stride)
                        .and_then(|o| o.checked_add(v0.start))
                        .filter(|f| f.checked_add(v0.block).is_some())
                        .ok_or_else(|| past_2_64(raw, name, m_idx))?;
                    self.pieces.push(Piece {
                        v_first,
                        frames: v0.block,
                        mapping: m_idx,
                        block: k,
                        s_first: s0.start,
                        region: region.clone(),
                    });
                    k += 1;
                }
                slots = k as usize;
                if k > 0 {
                    let last = &self.pieces[self.pieces.len() - 1];
                    let end = last.v_first + last.frames;
                    unlimited_end = Some(unlimited_end.unwrap_or(0u64).max(end));
                }
            } else {
                let (mut v0, mut s0) = (v0, s0);
                if v0.count == UNLIMITED
                    || v0.block == UNLIMITED
                    || s0.count == UNLIMITED
                    || s0.block == UNLIMITED
                {
                    // Non-printf unlimited: the source's current extent bounds the selection.
                    let frames = match self.open_source(file, m, 0) {
                        Ok(src) => src.shape().first().copied().unwrap_or(0),
                        Err(_) => 0,
                    };
                    let fit = |d: &mut Dim, avail: u64| {
                        if d.block == UNLIMITED {
                            d.block = avail.saturating_sub(d.start);
                        } else if d.count == UNLIMITED {
                            // As many whole blocks as end by `avail`. A closed form: counting
                            // down one at a time took ~2^40 steps for blocks that overlap.
                            d.count = match avail
                                .checked_sub(d.start)
                                .and_then(|r| r.checked_sub(d.block))
                            {
                                Some(r) => r / d.stride.max(1) + 1,
                                None => 0,
                            };
                        }
                    };
                    fit(&mut s0, frames);
                    let n = s0.len();
                    if v0.block == UNLIMITED {
                        v0.block = n;
                    } else if v0.count == UNLIMITED {
                        v0.count = n / v0.block.max(1);
                    }
                    let end = if v0.len() == 0 {
                        0
                    } else {
                        v0.end().ok_or_else(|| past_2_64(raw, name, m_idx))?
                    };
                    unlimited_end = Some(unlimited_end.unwrap_or(0u64).max(end));
                }
                if v0.end().is_none() || s0.end().is_none() {
                    return Err(past_2_64(raw, name, m_idx));
                }
                let total = v0.len();
                if frame_dims == 1 && total != s0.len() {
                    return Err(raw.corrupt(format_args!(
                        "{name}: mapping {m_idx} selects {total} frames from {} source frames",
                        s0.len()
                    )));
                }
                let mut p = 0;
                while p < total {
                    let run = if frame_dims == 1 {
                        v0.run(p).min(s0.run(p))
                    } else {
                        1
                    };
                    self.pieces.push(Piece {
                        v_first: v0.index(p),
                        frames: run,
                        mapping: m_idx,
                        block: 0,
                        s_first: if frame_dims == 1 { s0.index(p) } else { 0 },
                        region: region.clone(),
                    });
                    p += run;
                    if self.pieces.len() > MAX_PIECES {
                        // Why: each piece costs about 100 bytes; a selection of billions of
                        // strided blocks must fail here, not exhaust memory.
                        return Err(raw.unsupported(format_args!(
                            "{name}: more than {MAX_PIECES} VDS pieces"
                        )));
                    }
                }
            }
            self.sources
                .push((0..slots.max(1)).map(|_| OnceLock::new()).collect());
        }
        self.extent = unlimited_end.map(|e| {
            e.max(if space.max[0] == UNLIMITED {
                0
            } else {
                space.dims[0]
            })
        });
        self.index_segments();
        Ok(())
    }

    fn index_segments(&mut self) {
        let mut bounds: Vec<u64> = self
            .pieces
            .iter()
            .flat_map(|p| [p.v_first, p.v_first + p.frames])
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut order: Vec<usize> = (0..self.pieces.len()).collect();
        order.sort_by_key(|&i| self.pieces[i].v_first);
        self.segments = bounds
            .windows(2)
            .map(|w| (w[0], w[1], Vec::new()))
            .collect();
        for i in order {
            let p = &self.pieces[i];
            let a = self.segments.partition_point(|s| s.1 <= p.v_first);
            for seg in &mut self.segments[a..] {
                if seg.0 >= p.v_first + p.frames {
                    break;
                }
                seg.2.push(i);
            }
        }
        self.segments.retain(|s| !s.2.is_empty());
    }

    fn source_path(&self, m: &Mapping, block: u64) -> Option<PathBuf> {
        if m.file == "." {
            return None;
        }
        let name = substitute(&m.file, block);
        let p = Path::new(&name);
        if p.is_absolute() {
            return Some(p.to_path_buf());
        }
        if let Some(prefix) = std::env::var_os("HDF5_VDS_PREFIX") {
            let cand = Path::new(&prefix).join(p);
            if cand.exists() {
                return Some(cand);
            }
        }
        Some(self.dir.join(p))
    }

    fn source_exists(&self, file: &File, m: &Mapping, block: u64) -> bool {
        match self.source_path(m, block) {
            // The same file always exists: whether its dataset does decides (otherwise a
            // printf mapping into the same file found a million sources).
            None => file.exists(&substitute(&m.dataset, block)),
            Some(p) => p.exists(),
        }
    }

    fn open_source(&self, file: &File, m: &Mapping, block: u64) -> Result<Dataset> {
        let dset = substitute(&m.dataset, block);
        let f = match self.source_path(m, block) {
            None => file.clone(),
            Some(p) => file.open_related(&p)?,
        };
        f.dataset(&dset)
    }

    /// The source dataset of a piece, opened on first use. Failure is remembered: a missing
    /// source stays missing for the life of the file handle.
    fn source(&self, vd: &Dataset, piece: &Piece) -> Result<&Dataset> {
        let m = &self.mappings[piece.mapping];
        let slot = &self.sources[piece.mapping][piece.block as usize];
        let got = slot.get_or_init(|| {
            self.open_source(vd.file(), m, piece.block)
                .map_err(|e| e.to_string())
        });
        got.as_ref().map_err(|why| Error::VdsSource {
            path: vd.file().path().to_path_buf(),
            dataset: vd.name().to_string(),
            mapping: format!(
                "{}:{}",
                substitute(&m.file, piece.block),
                substitute(&m.dataset, piece.block)
            ),
            why: why.clone(),
        })
    }

    /// Reads a box of the virtual dataset: for each segment of frames, each covering piece's
    /// part of the box comes from its source; uncovered parts get the fill value.
    pub(crate) fn read_box(
        &self,
        vd: &Dataset,
        start: &[u64],
        count: &[u64],
        out: &mut [u8],
    ) -> Result<()> {
        let _nest = Nesting::enter(vd.file().raw(), vd.name())?;
        let elem = vd.dtype().size();
        let rank = start.len();
        let (f0, f1) = (start[0], start[0] + count[0]);
        let frame_bytes = count[1..].iter().product::<u64>() as usize * elem;
        let mut covered_to = f0;
        let mut s = self.segments.partition_point(|seg| seg.1 <= f0);
        while s < self.segments.len() && self.segments[s].0 < f1 {
            let (a, b, ref pieces) = self.segments[s];
            let (a, b) = (a.max(f0), b.min(f1));
            if a > covered_to {
                let gap = &mut out
                    [(covered_to - f0) as usize * frame_bytes..(a - f0) as usize * frame_bytes];
                crate::dataset::fill(gap, &vd.0.fill);
            }
            covered_to = b;
            let rows = &mut out[(a - f0) as usize * frame_bytes..(b - f0) as usize * frame_bytes];
            let mut whole = false;
            let mut parts = Vec::new();
            for &pi in pieces {
                let p = &self.pieces[pi];
                // The piece's in-frame region intersected with the box.
                let mut v_at = vec![a - p.v_first];
                let mut s_at = vec![p.s_first + (a - p.v_first)];
                let mut ext = vec![b - a];
                let mut dst_at = vec![0];
                let mut empty = false;
                for (d, &(vs, ss, len)) in p.region.iter().enumerate() {
                    let (bs, bn) = (start[d + 1], count[d + 1]);
                    let lo = vs.max(bs);
                    let hi = (vs + len).min(bs + bn);
                    if lo >= hi {
                        empty = true;
                        break;
                    }
                    v_at.push(lo - vs);
                    s_at.push(ss + (lo - vs));
                    ext.push(hi - lo);
                    dst_at.push(lo - bs);
                }
                if empty {
                    continue;
                }
                if ext[1..] == count[1..] {
                    whole = true;
                }
                parts.push((pi, s_at, ext, dst_at));
            }
            if !whole {
                crate::dataset::fill(rows, &vd.0.fill);
            }
            let mut dst_shape = vec![b - a];
            dst_shape.extend_from_slice(&count[1..]);
            for (pi, s_at, ext, dst_at) in parts {
                let src = match self.source(vd, &self.pieces[pi]) {
                    Ok(src) => src,
                    Err(Error::VdsSource { .. })
                        if vd.file().options().missing_vds_source_is_fill =>
                    {
                        fill_box(rows, &dst_shape, &dst_at, &ext, elem, &vd.0.fill);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if src.dtype() != vd.dtype() {
                    return Err(vd.request(format_args!(
                        "VDS source {} is {}, the virtual dataset {}",
                        src.name(),
                        src.dtype().numpy(),
                        vd.dtype().numpy()
                    )));
                }
                // A 2-D source fills one frame: drop the frame axis of the source box.
                let (s_at, s_ext) = if src.shape().len() + 1 == rank {
                    (s_at[1..].to_vec(), ext[1..].to_vec())
                } else {
                    (s_at, ext.clone())
                };
                if ext[1..] == count[1..] {
                    // The piece covers the whole box width: read straight into place.
                    let len = ext[0] as usize * frame_bytes;
                    let off = dst_at[0] as usize * frame_bytes;
                    src.read_box(&s_at, &s_ext, &mut rows[off..off + len])?;
                } else {
                    let n = ext.iter().product::<u64>() as usize * elem;
                    let mut tmp = vec![0u8; n];
                    src.read_box(&s_at, &s_ext, &mut tmp)?;
                    copy_box(
                        &tmp,
                        &ext,
                        &vec![0; rank],
                        rows,
                        &dst_shape,
                        &dst_at,
                        &ext,
                        elem,
                    );
                }
            }
            s += 1;
        }
        if covered_to < f1 {
            crate::dataset::fill(
                &mut out[(covered_to - f0) as usize * frame_bytes..],
                &vd.0.fill,
            );
        }
        Ok(())
    }

    /// The source dataset and frame that are exactly virtual frame `i`: one piece maps the
    /// whole frame from the whole frame of a source of the same type and frame shape.
    pub(crate) fn frame_source(&self, vd: &Dataset, i: u64) -> Result<Option<(&Dataset, u64)>> {
        let s = self.segments.partition_point(|seg| seg.1 <= i);
        let Some((first, _, pieces)) = self.segments.get(s) else {
            return Ok(None);
        };
        // Not mapped (fill), or several pieces make up the frame.
        let (true, &[pi]) = (*first <= i, pieces.as_slice()) else {
            return Ok(None);
        };
        let p = &self.pieces[pi];
        let frame = vd.shape().get(1..).unwrap_or_default();
        let whole = p.region.len() == frame.len()
            && (p.region.iter().zip(frame))
                .all(|(&(vs, ss, len), &d)| vs == 0 && ss == 0 && len == d);
        if !whole {
            return Ok(None);
        }
        let src = match self.source(vd, p) {
            Ok(src) => src,
            Err(Error::VdsSource { .. }) if vd.file().options().missing_vds_source_is_fill => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        if src.dtype() != vd.dtype() || src.shape().get(1..) != Some(frame) {
            return Ok(None);
        }
        Ok(Some((src, p.s_first + (i - p.v_first))))
    }
}

fn has_printf(s: &str) -> bool {
    s.contains("%b")
}

/// Replaces `%b` with the block number and `%%` with `%`, as HDF5 names printf sources.
fn substitute(s: &str, block: u64) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '%' {
            match chars.peek() {
                Some('b') => {
                    chars.next();
                    out.push_str(&block.to_string());
                }
                Some('%') => {
                    chars.next();
                    out.push('%');
                }
                _ => out.push('%'),
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// A serialized dataspace selection: "all", or a hyperslab that is regular (or one block).
fn selection(c: &mut Cursor<'_>) -> Result<Selection> {
    let kind = c.u32()?;
    let version = c.u32()?;
    match kind {
        3 => {
            c.skip(8)?; // reserved, length
            Ok(None)
        }
        2 => hyperslab(c, version).map(Some),
        0 => Err(c.unsupported("VDS mapping with an empty selection")),
        1 => Err(c.unsupported("VDS mapping with a point selection")),
        k => Err(c.corrupt(format_args!("selection type {k}"))),
    }
}

fn hyperslab(c: &mut Cursor<'_>, version: u32) -> Result<Vec<Dim>> {
    let raw: &Raw = c.raw;
    let (regular, width, rank) = match version {
        1 => {
            c.skip(8)?; // reserved, length
            (false, 4usize, c.u32()? as usize)
        }
        2 => {
            let flags = c.u8()?;
            c.skip(4)?; // length
            (flags & 1 != 0, 8, c.u32()? as usize)
        }
        3 => {
            let flags = c.u8()?;
            let width = c.u8()? as usize;
            if !matches!(width, 2 | 4 | 8) {
                return Err(c.corrupt(format_args!("hyperslab encoding size {width}")));
            }
            (flags & 1 != 0, width, c.u32()? as usize)
        }
        v => return Err(c.unsupported(format_args!("hyperslab selection version {v}"))),
    };
    if rank == 0 || rank > 32 {
        return Err(c.corrupt(format_args!("hyperslab of rank {rank}")));
    }
    let read = |c: &mut Cursor<'_>| -> Result<u64> {
        let v = c.uint(width)?;
        Ok(if width < 8 && v == (1u64 << (8 * width)) - 1 {
            UNLIMITED
        } else {
            v
        })
    };
    if regular {
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            let d = Dim {
                start: read(c)?,
                stride: read(c)?,
                count: read(c)?,
                block: read(c)?,
            };
            if d.block == 0 || d.stride == 0 {
                return Err(c.corrupt("hyperslab with a zero stride or block"));
            }
            dims.push(d);
        }
        return Ok(dims);
    }
    let nblocks = if version == 1 {
        c.u32()? as u64
    } else {
        read(c)?
    };
    if nblocks == 0 || nblocks > 1 << 20 {
        return Err(c.corrupt(format_args!("hyperslab of {nblocks} blocks")));
    }
    let mut blocks = Vec::with_capacity(nblocks as usize);
    for _ in 0..nblocks {
        let mut lo = Vec::with_capacity(rank);
        for _ in 0..rank {
            lo.push(read(c)?);
        }
        let mut b = Vec::with_capacity(rank);
        for &s in &lo {
            let e = read(c)?;
            if e < s {
                return Err(c.corrupt("hyperslab block ends before it starts"));
            }
            b.push((s, e - s + 1));
        }
        blocks.push(b);
    }
    regular_from_blocks(&blocks, rank).ok_or_else(|| {
        raw.unsupported(format_args!(
            "VDS selection of {nblocks} blocks that is not a regular pattern"
        ))
    })
}

/// Old writers list a regular hyperslab's blocks one by one. Recovers the regular form when the
/// blocks are the product of one evenly spaced set of equal intervals per dimension.
fn regular_from_blocks(blocks: &[Vec<(u64, u64)>], rank: usize) -> Option<Vec<Dim>> {
    let mut dims = Vec::with_capacity(rank);
    let mut product = 1usize;
    for d in 0..rank {
        let mut iv: Vec<(u64, u64)> = blocks.iter().map(|b| b[d]).collect();
        iv.sort_unstable();
        iv.dedup();
        let (start, block) = iv[0];
        let stride = if iv.len() > 1 { iv[1].0 - start } else { block };
        let even = iv
            .iter()
            .enumerate()
            .all(|(k, &(s, len))| len == block && s == start + k as u64 * stride);
        if !even || stride < block {
            return None;
        }
        product = product.checked_mul(iv.len())?;
        dims.push(Dim {
            start,
            stride,
            count: iv.len() as u64,
            block,
        });
    }
    let mut unique: Vec<&Vec<(u64, u64)>> = blocks.iter().collect();
    unique.sort_unstable();
    unique.dedup();
    (product == blocks.len() && unique.len() == blocks.len()).then_some(dims)
}
