//! The superblock: where the file starts, its address sizes and the root group.

use crate::error::{Error, Result};
use crate::raw::Raw;

const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// What the rest of the reader needs from the superblock.
pub(crate) struct Superblock {
    pub(crate) version: u8,
    /// Object header address of the root group.
    pub(crate) root: u64,
    /// A writer still has the file open (SWMR); we read it anyway.
    pub(crate) open_for_write: bool,
}

/// Finds the superblock (at 0, 512, 1024, 2048, ...) and sets the raw file's address sizes.
pub(crate) fn read(raw: &mut Raw) -> Result<Superblock> {
    let len = raw.data().len() as u64;
    let mut at = 0u64;
    let start = loop {
        if at + 8 > len {
            return Err(Error::NotHdf5 {
                path: raw.path.clone(),
            });
        }
        if &raw.data()[at as usize..at as usize + 8] == SIGNATURE {
            break at;
        }
        at = if at == 0 { 512 } else { at * 2 };
    };
    let d = &raw.data()[start as usize..];
    let version = *d
        .get(8)
        .ok_or_else(|| raw.corrupt("superblock truncated"))?;
    let (so, sl) = match version {
        0 | 1 => (d.get(13).copied(), d.get(14).copied()),
        2 | 3 => (d.get(9).copied(), d.get(10).copied()),
        v => return Err(raw.unsupported(format_args!("superblock version {v}"))),
    };
    let (so, sl) = match (so, sl) {
        (Some(so @ (2 | 4 | 8)), Some(sl @ (2 | 4 | 8))) => (so, sl),
        _ => {
            return Err(raw.corrupt(format_args!(
                "superblock declares address size {so:?} and length size {sl:?}"
            )))
        }
    };
    raw.so = so;
    raw.sl = sl;
    // Addresses in the superblock are absolute until the base address is known.
    raw.base = 0;
    let mut c = raw.at(start, "superblock")?;
    c.skip(9)?;
    let sb = match version {
        0 | 1 => {
            c.skip(7)?; // free-space, root entry, shared header versions, reserved, sizes, reserved
            c.skip(4)?; // group leaf and internal node K
            let flags = c.u32()?;
            if version == 1 {
                c.skip(4)?; // indexed storage K, reserved
            }
            c.addr()?; // base address: HDF5 itself uses the superblock's position
            c.addr()?; // free-space info (unused)
            c.addr()?; // end of file
            c.addr()?; // driver info
                       // Root group symbol table entry: link name offset, object header address, ...
            c.addr()?;
            let root = c.addr()?;
            raw.base = start;
            Superblock {
                version,
                root,
                open_for_write: flags != 0,
            }
        }
        _ => {
            c.skip(2)?; // sizes
            let flags = c.u8()?;
            c.addr()?; // base address, as above
            c.addr()?; // superblock extension
            c.addr()?; // end of file
            let root = c.addr()?;
            raw.base = start;
            Superblock {
                version,
                root,
                open_for_write: flags & 0x05 != 0,
            }
        }
    };
    Ok(sb)
}
