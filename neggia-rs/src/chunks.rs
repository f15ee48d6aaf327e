//! Chunk indices: every kind HDF5 writes, walked once into a map from chunk position to the
//! chunk's address, stored size and filter mask.

use std::collections::{HashMap, HashSet};

use crate::btree;
use crate::error::Result;
use crate::layout::Index;
use crate::raw::{Cursor, Raw, UNDEF};

/// Where one chunk is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLoc {
    pub addr: u64,
    /// Stored (possibly filtered) size in bytes.
    pub size: u64,
    /// Bit i set: filter i of the pipeline was skipped for this chunk.
    pub filter_mask: u32,
}

/// The shape facts a chunk index needs.
pub(crate) struct Geometry<'a> {
    pub(crate) dims: &'a [u64],
    pub(crate) max: &'a [u64],
    pub(crate) chunk: &'a [u64],
    pub(crate) elem: u64,
    pub(crate) filtered: bool,
}

impl Geometry<'_> {
    /// Chunks per dimension covering the maximum extent (unlimited dimensions use the current).
    fn max_grid(&self) -> Vec<u64> {
        self.max
            .iter()
            .zip(self.dims)
            .zip(self.chunk)
            .map(|((&m, &d), c)| if m == u64::MAX { d } else { m.max(d) }.div_ceil(*c))
            .collect()
    }

    fn chunk_bytes(&self) -> u64 {
        // Saturating: Dataset::open has already refused chunks of 4 GiB or more.
        self.chunk
            .iter()
            .fold(self.elem, |a, &c| a.saturating_mul(c))
    }

    /// Linear position of a chunk in the current-extent grid, or None if it lies outside.
    pub(crate) fn linear(&self, scaled: &[u64]) -> Option<u64> {
        let mut lin = 0u64;
        for ((&s, d), c) in scaled.iter().zip(self.dims).zip(self.chunk) {
            let g = d.div_ceil(*c);
            if s >= g {
                return None;
            }
            // A grid of more than 2^64 chunks (a lying shape) has no linear position.
            lin = lin.checked_mul(g)?.checked_add(s)?;
        }
        Some(lin)
    }

    /// Linear position of the chunk that starts at element `start`, if one does.
    pub(crate) fn linear_at(&self, start: &[u64]) -> Option<u64> {
        let mut lin = 0u64;
        for ((&s, d), c) in start.iter().zip(self.dims).zip(self.chunk) {
            let g = d.div_ceil(*c);
            if s % c != 0 || s / c >= g {
                return None;
            }
            // Checked, as in `linear`: a lying shape can make the grid pass 2^64 chunks.
            lin = lin.checked_mul(g)?.checked_add(s / c)?;
        }
        Some(lin)
    }
}

/// Chunk position (linear, in the current grid) to location.
pub(crate) type ChunkMap = HashMap<u64, ChunkLoc>;

pub(crate) fn build(raw: &Raw, index: &Index, g: &Geometry<'_>) -> Result<ChunkMap> {
    let mut map = ChunkMap::new();
    let rank = g.dims.len();
    let mut put = |scaled: &[u64], loc: ChunkLoc| {
        if loc.addr != UNDEF && loc.addr != 0 {
            if let Some(lin) = g.linear(scaled) {
                map.insert(lin, loc);
            }
        }
    };
    match *index {
        Index::BTreeV1(addr) => {
            if addr != UNDEF {
                let key_len = 8 + 8 * (rank + 1);
                btree::walk_v1(raw, addr, 1, key_len, &mut |key, child| {
                    let mut c = raw.over(key, "chunk B-tree key");
                    let size = c.u32()? as u64;
                    let filter_mask = c.u32()?;
                    let mut scaled = Vec::with_capacity(rank);
                    for ch in g.chunk {
                        scaled.push(c.u64()? / ch);
                    }
                    put(
                        &scaled,
                        ChunkLoc {
                            addr: child,
                            size,
                            filter_mask,
                        },
                    );
                    Ok(())
                })?;
            }
        }
        Index::Single(addr, filtered) => {
            let (size, filter_mask) = filtered.unwrap_or((g.chunk_bytes(), 0));
            put(
                &vec![0; rank],
                ChunkLoc {
                    addr,
                    size,
                    filter_mask,
                },
            );
        }
        Index::Implicit(addr) => {
            if addr != UNDEF {
                let max_grid = g.max_grid();
                let n = max_grid
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d))
                    .ok_or_else(|| raw.corrupt("implicit chunk index of more than 2^64 chunks"))?;
                let bytes = g.chunk_bytes();
                // Every chunk is allocated: the whole index must lie inside the file.
                raw.slice(addr, n.saturating_mul(bytes), "implicitly indexed chunks")?;
                for lin in 0..n {
                    let scaled = unravel(lin, &max_grid);
                    let at = lin
                        .checked_mul(bytes)
                        .and_then(|o| o.checked_add(addr))
                        .ok_or_else(|| raw.corrupt("implicit chunk index overflows"))?;
                    put(
                        &scaled,
                        ChunkLoc {
                            addr: at,
                            size: bytes,
                            filter_mask: 0,
                        },
                    );
                }
            }
        }
        Index::FixedArray(addr) => {
            if addr != UNDEF {
                let max_grid = g.max_grid();
                fixed_array(raw, addr, g, &mut |lin, loc| {
                    put(&unravel(lin, &max_grid), loc);
                })?;
            }
        }
        Index::ExtensibleArray(addr) => {
            if addr != UNDEF {
                // The one unlimited dimension is moved first ("swizzled") for linear positions.
                let unlim = g.max.iter().position(|&m| m == u64::MAX).unwrap_or(0);
                let mut order: Vec<usize> = vec![unlim];
                order.extend((0..rank).filter(|&d| d != unlim));
                let mut sgrid: Vec<u64> = order.iter().map(|&d| g.max_grid()[d]).collect();
                sgrid[0] = u64::MAX;
                extensible_array(raw, addr, g, &mut |lin, loc| {
                    let s = unravel(lin, &sgrid);
                    let mut scaled = vec![0; rank];
                    for (k, &d) in order.iter().enumerate() {
                        scaled[d] = s[k];
                    }
                    put(&scaled, loc);
                })?;
            }
        }
        Index::BTreeV2(addr) => {
            if addr != UNDEF {
                let so = raw.so as usize;
                btree::walk_v2(raw, addr, &mut |rec| {
                    let mut c = raw.over(rec, "chunk B-tree record");
                    let caddr = c.addr()?;
                    let (size, filter_mask) = if g.filtered {
                        let len = rec.len().saturating_sub(so + 4 + 8 * rank);
                        (c.uint(len)?, c.u32()?)
                    } else {
                        (g.chunk_bytes(), 0)
                    };
                    let mut scaled = Vec::with_capacity(rank);
                    for _ in 0..rank {
                        scaled.push(c.u64()?);
                    }
                    put(
                        &scaled,
                        ChunkLoc {
                            addr: caddr,
                            size,
                            filter_mask,
                        },
                    );
                    Ok(())
                })?;
            }
        }
    }
    Ok(map)
}

/// Row-major coordinates of a linear position in a grid (the first extent may be unbounded).
fn unravel(mut lin: u64, grid: &[u64]) -> Vec<u64> {
    let mut out = vec![0; grid.len()];
    for (o, &g) in out
        .iter_mut()
        .zip(grid)
        .rev()
        .take(grid.len().saturating_sub(1))
    {
        let g = g.max(1);
        *o = lin % g;
        lin /= g;
    }
    if let Some(first) = out.first_mut() {
        *first = lin;
    }
    out
}

/// Reads one chunk-index element: address, then for filtered datasets size and filter mask.
fn element(c: &mut Cursor<'_>, g: &Geometry<'_>, entry_size: usize) -> Result<ChunkLoc> {
    let so = c.raw.so as usize;
    let addr = c.addr()?;
    if g.filtered {
        let len = entry_size.saturating_sub(so + 4);
        let size = c.uint(len)?;
        let filter_mask = c.u32()?;
        Ok(ChunkLoc {
            addr,
            size,
            filter_mask,
        })
    } else {
        c.skip(entry_size.saturating_sub(so))?;
        Ok(ChunkLoc {
            addr,
            size: g.chunk_bytes(),
            filter_mask: 0,
        })
    }
}

fn bit(bitmap: &[u8], i: u64) -> bool {
    bitmap
        .get((i / 8) as usize)
        .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

fn fixed_array(
    raw: &Raw,
    addr: u64,
    g: &Geometry<'_>,
    put: &mut dyn FnMut(u64, ChunkLoc),
) -> Result<()> {
    let mut c = raw.at(addr, "fixed array header")?;
    c.signature(b"FAHD")?;
    c.skip(2)?; // version, client
    let entry = c.u8()? as usize;
    let page_bits = c.u8()? as u32;
    let n = c.length()?;
    let dblock = c.addr()?;
    if dblock == UNDEF {
        return Ok(());
    }
    if page_bits > 32 || entry < raw.so as usize {
        return Err(c.corrupt("fixed array parameters are inconsistent"));
    }
    let mut d = raw.at(dblock, "fixed array data block")?;
    d.signature(b"FADB")?;
    d.skip(2)?;
    d.addr()?;
    let page = 1u64 << page_bits;
    if n <= page {
        for i in 0..n {
            put(i, element(&mut d, g, entry)?);
        }
        return Ok(());
    }
    let npages = n.div_ceil(page);
    let bitmap = d.bytes(npages.div_ceil(8) as usize)?;
    d.skip(4)?; // checksum of the block prefix
    for p in 0..npages {
        let count = page.min(n - p * page);
        if !bit(bitmap, p) {
            d.skip((count as usize * entry) + 4)?;
            continue;
        }
        for i in 0..count {
            put(p * page + i, element(&mut d, g, entry)?);
        }
        d.skip(4)?;
    }
    Ok(())
}

fn extensible_array(
    raw: &Raw,
    addr: u64,
    g: &Geometry<'_>,
    put: &mut dyn FnMut(u64, ChunkLoc),
) -> Result<()> {
    let so = raw.so as usize;
    let mut c = raw.at(addr, "extensible array header")?;
    c.signature(b"EAHD")?;
    c.skip(2)?; // version, client
    let entry = c.u8()? as usize;
    let max_bits = c.u8()? as u32;
    let iblock_elems = c.u8()? as u64;
    let dblock_min = c.u8()? as u64;
    let sblock_min_ptrs = c.u8()? as u64;
    let page_bits = c.u8()? as u32;
    for _ in 0..6 {
        c.length()?; // statistics
    }
    let iblock = c.addr()?;
    if iblock == UNDEF {
        return Ok(());
    }
    let ok = |v: u64| v.is_power_of_two();
    if !(ok(dblock_min) && ok(sblock_min_ptrs))
        || max_bits == 0
        || max_bits > 64
        || page_bits > 32
        || entry < so
    {
        return Err(c.corrupt("extensible array parameters are inconsistent"));
    }
    let log2 = |v: u64| 63 - v.leading_zeros() as u64;
    // Data blocks of the smallest size must fit in the element count's bits.
    let nsblocks = (1 + max_bits as u64)
        .checked_sub(log2(dblock_min))
        .ok_or_else(|| c.corrupt("extensible array parameters are inconsistent"))?;
    // Per super block: number of data blocks and elements per data block.
    let sblocks: Vec<(u64, u64)> = (0..nsblocks)
        .map(|u| (1u64 << (u / 2), dblock_min << u.div_ceil(2)))
        .collect();
    let iblock_sblocks = 2 * log2(sblock_min_ptrs);
    let iblock_dblocks = 2 * (sblock_min_ptrs - 1);
    let arr_off = (max_bits as usize).div_ceil(8);
    let page = 1u64 << page_bits;

    // Why: a block listed twice (a loop, or a lie) would have its elements read once per
    // listing, which is quadratic in the file size. Each block is read once.
    let mut seen = HashSet::new();
    let mut once = |a: u64| {
        if seen.insert(a) {
            Ok(())
        } else {
            Err(raw.corrupt(format_args!(
                "extensible array block {a:#x} is listed twice"
            )))
        }
    };
    once(iblock)?;
    let mut i = raw.at(iblock, "extensible array index block")?;
    i.signature(b"EAIB")?;
    i.skip(2)?;
    i.addr()?;
    for k in 0..iblock_elems {
        put(k, element(&mut i, g, entry)?);
    }
    let mut next = iblock_elems;
    // Data blocks whose addresses sit in the index block.
    let mut dblock_addrs = Vec::new();
    for _ in 0..iblock_dblocks {
        dblock_addrs.push(i.addr()?);
    }
    let mut dblocks = dblock_addrs.into_iter();
    for &(ndb, nel) in sblocks.iter().take(iblock_sblocks as usize) {
        for _ in 0..ndb {
            let a = dblocks.next().unwrap_or(UNDEF);
            if a != UNDEF {
                once(a)?;
                data_block(raw, a, g, entry, arr_off, nel, page, None, next, put)?;
            }
            next += nel;
        }
    }
    let nsblock_addrs = nsblocks.saturating_sub(iblock_sblocks);
    let mut sblock_addrs = Vec::new();
    for _ in 0..nsblock_addrs {
        sblock_addrs.push(i.addr()?);
    }
    for (k, sa) in sblock_addrs.into_iter().enumerate() {
        let (ndb, nel) = sblocks[iblock_sblocks as usize + k];
        if sa == UNDEF {
            next = next.saturating_add(ndb.saturating_mul(nel));
            continue;
        }
        once(sa)?;
        let mut s = raw.at(sa, "extensible array super block")?;
        s.signature(b"EASB")?;
        s.skip(2)?;
        s.addr()?;
        s.skip(arr_off)?;
        let paged = nel > page;
        let npages = if paged { nel / page } else { 0 };
        // Each data block's page bitmap starts on a byte of its own.
        let per_block = npages.div_ceil(8);
        let bitmap = s.bytes(ndb.saturating_mul(per_block) as usize)?;
        for b in 0..ndb {
            let a = s.addr()?;
            if a != UNDEF {
                once(a)?;
                let pages = paged.then(|| (bitmap, b * per_block * 8));
                data_block(raw, a, g, entry, arr_off, nel, page, pages, next, put)?;
            }
            next += nel;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn data_block(
    raw: &Raw,
    addr: u64,
    g: &Geometry<'_>,
    entry: usize,
    arr_off: usize,
    nel: u64,
    page: u64,
    pages: Option<(&[u8], u64)>,
    first: u64,
    put: &mut dyn FnMut(u64, ChunkLoc),
) -> Result<()> {
    let mut d = raw.at(addr, "extensible array data block")?;
    d.signature(b"EADB")?;
    d.skip(2)?;
    d.addr()?;
    d.skip(arr_off)?;
    match pages {
        None => {
            for k in 0..nel {
                put(first + k, element(&mut d, g, entry)?);
            }
        }
        Some((bitmap, first_page)) => {
            d.skip(4)?; // checksum of the block prefix
            for p in 0..nel / page {
                if !bit(bitmap, first_page + p) {
                    d.skip(page as usize * entry + 4)?;
                    continue;
                }
                for k in 0..page {
                    put(first + p * page + k, element(&mut d, g, entry)?);
                }
                d.skip(4)?;
            }
        }
    }
    Ok(())
}
