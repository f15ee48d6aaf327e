//! Heaps: the local heap of old-style groups, the global heap of variable-length data, and the
//! fractal heap of dense link and attribute storage.

use crate::error::Result;
use crate::raw::{Raw, UNDEF};

/// A local heap's data segment (link names of a symbol-table group).
pub(crate) fn local_heap(raw: &Raw, addr: u64) -> Result<&[u8]> {
    let mut c = raw.at(addr, "local heap")?;
    c.signature(b"HEAP")?;
    c.skip(4)?; // version, reserved
    let size = c.length()?;
    c.length()?; // free list head
    let data = c.addr()?;
    raw.slice(data, size, "local heap data")
}

/// A NUL-terminated name at `offset` in a local heap's data.
pub(crate) fn local_name(raw: &Raw, heap: &[u8], offset: u64) -> Result<String> {
    let tail = heap
        .get(offset as usize..)
        .ok_or_else(|| raw.corrupt(format_args!("local heap name offset {offset} past its end")))?;
    let mut c = raw.over(tail, "local heap name");
    Ok(String::from_utf8_lossy(c.cstr()?).into_owned())
}

/// Object `index` of the global heap collection at `addr`.
pub(crate) fn global_object(raw: &Raw, addr: u64, index: u32) -> Result<&[u8]> {
    let mut c = raw.at(addr, "global heap collection")?;
    c.signature(b"GCOL")?;
    c.skip(4)?; // version, reserved
    let size = c.length()?;
    let all = raw.slice(addr, size, "global heap collection")?;
    let mut c = raw.over(all, "global heap collection");
    c.skip(8 + raw.sl as usize)?;
    while c.remaining() >= 8 + raw.sl as usize {
        let idx = c.u16()?;
        if idx == 0 {
            break; // free space: the rest of the collection
        }
        c.skip(6)?; // reference count, reserved
        let len = c.length()?;
        if len > c.remaining() as u64 {
            return Err(c.corrupt(format_args!("object {idx} claims {len} bytes")));
        }
        let data = c.bytes(len as usize)?;
        if idx as u32 == index {
            return Ok(data);
        }
        let pad = (8 - len % 8) % 8;
        c.skip((pad as usize).min(c.remaining()))?;
    }
    Err(raw.corrupt(format_args!(
        "global heap collection at {addr:#x} has no object {index}"
    )))
}

/// A fractal heap header: enough to find managed and tiny objects by heap ID.
pub(crate) struct FractalHeap {
    id_len: usize,
    checksummed_blocks: bool,
    filtered: bool,
    width: u64,
    start_block: u64,
    max_direct: u64,
    /// Bytes of a heap offset (and of a block's offset field).
    off_size: usize,
    /// Bytes of an object length in a managed heap ID.
    len_size: usize,
    root: u64,
    root_rows: u64,
    max_direct_rows: u64,
}

fn log2(v: u64) -> u64 {
    63 - v.max(1).leading_zeros() as u64
}

impl FractalHeap {
    pub(crate) fn read(raw: &Raw, addr: u64) -> Result<FractalHeap> {
        let mut c = raw.at(addr, "fractal heap header")?;
        c.signature(b"FRHP")?;
        c.skip(1)?; // version
        let id_len = c.u16()? as usize;
        let filter_len = c.u16()?;
        let flags = c.u8()?;
        let max_managed = c.u32()? as u64;
        c.length()?; // next huge object id
        c.addr()?; // huge object B-tree
        c.length()?; // free space
        c.addr()?; // free-space manager
        for _ in 0..8 {
            c.length()?; // space and object counters
        }
        let width = c.u16()? as u64;
        let start_block = c.length()?;
        let max_direct = c.length()?;
        let max_heap_bits = c.u16()? as u64;
        c.u16()?; // starting rows of the root indirect block
        let root = c.addr()?;
        let root_rows = c.u16()? as u64;
        let ok = |v: u64| v.is_power_of_two();
        if !(ok(width) && ok(start_block) && ok(max_direct) && max_direct >= start_block)
            || max_heap_bits == 0
            || max_heap_bits > 64
            || id_len < 2
        {
            return Err(c.corrupt("doubling table parameters are inconsistent"));
        }
        let off_size = max_heap_bits.div_ceil(8) as usize;
        let len_size = log2(max_direct)
            .min(log2(max_managed.max(1).next_power_of_two()))
            .div_ceil(8) as usize;
        Ok(FractalHeap {
            id_len,
            checksummed_blocks: flags & 0x02 != 0,
            filtered: filter_len > 0,
            width,
            start_block,
            max_direct,
            off_size,
            len_size: len_size.max(1),
            root,
            root_rows,
            max_direct_rows: log2(max_direct) - log2(start_block) + 2,
        })
    }

    /// The object a heap ID names.
    pub(crate) fn object<'a>(&self, raw: &'a Raw, id: &'a [u8]) -> Result<&'a [u8]> {
        let mut c = raw.over(id, "fractal heap ID");
        let b0 = c.u8()?;
        match (b0 >> 4) & 0x03 {
            0 => {
                if self.filtered {
                    return Err(raw.unsupported("filtered fractal heap"));
                }
                let offset = c.uint(self.off_size)?;
                let len = c.uint(self.len_size)?;
                self.managed(raw, offset, len)
            }
            2 => {
                let len = if self.id_len <= 18 {
                    (b0 & 0x0f) as usize + 1
                } else {
                    (((b0 & 0x0f) as usize) << 8 | c.u8()? as usize) + 1
                };
                c.bytes(len)
            }
            1 => Err(raw.unsupported("huge fractal heap objects")),
            t => Err(raw.corrupt(format_args!("fractal heap ID type {t}"))),
        }
    }

    /// Block size of a row of the doubling table; None past 2^64 (no such row in a real heap).
    fn row_block_size(&self, row: u64) -> Option<u64> {
        if row == 0 {
            Some(self.start_block)
        } else {
            let shift = u32::try_from(row - 1).ok()?;
            self.start_block.checked_mul(1u64.checked_shl(shift)?)
        }
    }

    fn managed<'a>(&self, raw: &'a Raw, offset: u64, len: u64) -> Result<&'a [u8]> {
        if self.root == UNDEF {
            return Err(raw.corrupt("fractal heap is empty but an object is referenced"));
        }
        let (mut block, mut rel, mut rows) = (self.root, offset, self.root_rows);
        let mut block_size = self.start_block;
        // Each step goes one level down the tree of indirect blocks.
        for _ in 0..64 {
            if rows == 0 {
                return self.in_direct_block(raw, block, block_size, rel, len);
            }
            let mut c = raw.at(block, "fractal heap indirect block")?;
            c.signature(b"FHIB")?;
            c.skip(1)?;
            c.addr()?;
            c.skip(self.off_size)?;
            let direct_rows = rows.min(self.max_direct_rows);
            let mut row = 0;
            let mut r = rel;
            // Why checked: rows and sizes come from the file. A row whose blocks would pass
            // 2^64 bytes cannot exist, so the offset is not in the heap (an unchecked product
            // wrapped to 0 and let the walk step through billions of empty rows).
            let outside = || {
                raw.corrupt(format_args!(
                    "heap offset {offset} is outside the fractal heap"
                ))
            };
            let size = loop {
                if row >= rows {
                    return Err(outside());
                }
                let size = self.row_block_size(row).ok_or_else(outside)?;
                let span = size.checked_mul(self.width).ok_or_else(outside)?;
                if r < span {
                    break size;
                }
                r -= span;
                row += 1;
            };
            let col = r / size;
            let within = r % size;
            let entry_size = raw.so as u64;
            let entry = if row < direct_rows {
                row * self.width + col
            } else {
                direct_rows * self.width + (row - direct_rows) * self.width + col
            };
            c.skip(entry.saturating_mul(entry_size) as usize)?;
            let child = c.addr()?;
            if child == UNDEF {
                return Err(raw.corrupt(format_args!(
                    "heap offset {offset} lies in an unallocated block"
                )));
            }
            block = child;
            rel = within;
            block_size = size;
            rows = if row < self.max_direct_rows {
                0
            } else {
                // An indirect block smaller than one row of the table is corrupt (this
                // subtraction wrapped, and the next level got billions of rows).
                (log2(size) + 1)
                    .checked_sub(log2(self.start_block) + log2(self.width))
                    .ok_or_else(|| raw.corrupt("fractal heap indirect block is too small"))?
            };
        }
        Err(raw.corrupt("fractal heap is nested too deeply"))
    }

    fn in_direct_block<'a>(
        &self,
        raw: &'a Raw,
        block: u64,
        size: u64,
        rel: u64,
        len: u64,
    ) -> Result<&'a [u8]> {
        let mut c = raw.at(block, "fractal heap direct block")?;
        c.signature(b"FHDB")?;
        let header = 5 + raw.so as u64 + self.off_size as u64 + 4 * self.checksummed_blocks as u64;
        let size = size.min(self.max_direct);
        if rel < header || rel.checked_add(len).is_none_or(|end| end > size) {
            return Err(raw.corrupt(format_args!(
                "heap object of {len} bytes at {rel} does not fit its {size}-byte block"
            )));
        }
        raw.slice(block + rel, len, "fractal heap object")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::Bytes;

    #[test]
    fn indirect_block_smaller_than_a_row_is_refused_not_walked() {
        // A doubling table 2^15 blocks wide whose root indirect block points, from its first
        // indirect row, at a child too small for even one row. The child's row count was
        // computed by a subtraction that wrapped, and its walk stepped through 2^64 rows.
        let width = 1u64 << 15;
        let heap = FractalHeap {
            id_len: 8,
            checksummed_blocks: false,
            filtered: false,
            width,
            start_block: 512,
            max_direct: 1024,
            off_size: 4,
            len_size: 2,
            root: 0,
            root_rows: 4,
            // log2(1024) - log2(512) + 2
            max_direct_rows: 3,
        };
        // Root indirect block: signature, version, heap address, block offset, then one
        // address per block: 3 direct rows, then the first indirect row.
        let entries = 17;
        let child_entry = entries + 8 * 3 * width as usize;
        let child = child_entry + 8;
        let mut bytes = vec![0u8; child + 64];
        bytes[..4].copy_from_slice(b"FHIB");
        bytes[child_entry..child_entry + 8].copy_from_slice(&(child as u64).to_le_bytes());
        bytes[child..child + 4].copy_from_slice(b"FHIB");
        let raw = Raw::new(Bytes::Owned(bytes), "test.h5".into());
        // Rows 0, 1 and 2 span 512, 512 and 1024 bytes per block: row 3 starts at 2048 blocks.
        let offset = 2048 * width + 1;
        let e = heap
            .managed(&raw, offset, 1)
            .expect_err("corrupt")
            .to_string();
        assert!(e.contains("indirect block is too small"), "{e}");
        // An offset past every row the root has is outside the heap.
        let e = heap
            .managed(&raw, u64::MAX - 1, 1)
            .expect_err("outside")
            .to_string();
        assert!(e.contains("outside the fractal heap"), "{e}");
    }
}
