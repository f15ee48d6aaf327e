//! The messages that say how a dataset's data is stored: layout, filter pipeline, fill value.

use crate::error::Result;
use crate::raw::{Cursor, Raw};

/// Storage of a dataset's elements.
#[derive(Clone, Debug)]
pub(crate) enum Layout {
    Compact(Vec<u8>),
    Contiguous {
        addr: u64,
        size: u64,
    },
    Chunked {
        /// Chunk dimensions in elements, one per dataset dimension.
        dims: Vec<u64>,
        index: Index,
        /// Edge chunks are stored without filters.
        unfiltered_edges: bool,
    },
    Virtual {
        heap: u64,
        index: u32,
    },
}

/// The chunk index of a chunked layout and its address.
#[derive(Clone, Debug)]
pub(crate) enum Index {
    BTreeV1(u64),
    /// One chunk; `Some((size, filter mask))` when it is filtered.
    Single(u64, Option<(u64, u32)>),
    Implicit(u64),
    FixedArray(u64),
    ExtensibleArray(u64),
    BTreeV2(u64),
}

impl Layout {
    pub(crate) fn parse(c: &mut Cursor<'_>, rank: usize) -> Result<Layout> {
        let version = c.u8()?;
        match version {
            1 | 2 => Self::parse_v1(c, rank),
            3..=5 => Self::parse_v3(c, version, rank),
            v => Err(c.unsupported(format_args!("layout message version {v}"))),
        }
    }

    fn parse_v1(c: &mut Cursor<'_>, rank: usize) -> Result<Layout> {
        let ndims = c.u8()? as usize;
        let class = c.u8()?;
        c.skip(5)?;
        let addr = if class != 0 { c.addr()? } else { 0 };
        let mut dims = Vec::with_capacity(ndims);
        for _ in 0..ndims {
            dims.push(c.u32()? as u64);
        }
        Ok(match class {
            0 => {
                let n = c.u32()? as usize;
                Layout::Compact(c.bytes(n)?.to_vec())
            }
            1 => Layout::Contiguous {
                addr,
                size: u64::MAX,
            },
            2 => {
                c.u32()?; // element size
                Layout::Chunked {
                    // Checked like later versions' (rank + 1 dimensions, none 0): a 0 here
                    // was a division by zero when the chunks were mapped.
                    dims: chunk_dims(c, dims, rank)?,
                    index: Index::BTreeV1(addr),
                    unfiltered_edges: false,
                }
            }
            k => return Err(c.corrupt(format_args!("layout class {k}"))),
        })
    }

    fn parse_v3(c: &mut Cursor<'_>, version: u8, rank: usize) -> Result<Layout> {
        let class = c.u8()?;
        Ok(match class {
            0 => {
                let n = c.u16()? as usize;
                Layout::Compact(c.bytes(n)?.to_vec())
            }
            1 => Layout::Contiguous {
                addr: c.addr()?,
                size: c.length()?,
            },
            2 if version == 3 => {
                let ndims = c.u8()? as usize;
                let addr = c.addr()?;
                let mut dims = Vec::with_capacity(ndims);
                for _ in 0..ndims {
                    dims.push(c.u32()? as u64);
                }
                Layout::Chunked {
                    dims: chunk_dims(c, dims, rank)?,
                    index: Index::BTreeV1(addr),
                    unfiltered_edges: false,
                }
            }
            2 => {
                let flags = c.u8()?;
                let ndims = c.u8()? as usize;
                let width = c.u8()? as usize;
                let mut dims = Vec::with_capacity(ndims);
                for _ in 0..ndims {
                    dims.push(c.uint(width)?);
                }
                let kind = c.u8()?;
                let single_filtered = match kind {
                    1 if flags & 0x02 != 0 => Some((c.length()?, c.u32()?)),
                    1 | 2 => None,
                    3 => {
                        c.skip(1)?;
                        None
                    }
                    4 => {
                        c.skip(5)?;
                        None
                    }
                    5 => {
                        c.skip(6)?;
                        None
                    }
                    k => return Err(c.unsupported(format_args!("chunk index type {k}"))),
                };
                let addr = c.addr()?;
                let index = match kind {
                    1 => Index::Single(addr, single_filtered),
                    2 => Index::Implicit(addr),
                    3 => Index::FixedArray(addr),
                    4 => Index::ExtensibleArray(addr),
                    _ => Index::BTreeV2(addr),
                };
                Layout::Chunked {
                    dims: chunk_dims(c, dims, rank)?,
                    index,
                    unfiltered_edges: flags & 0x01 != 0,
                }
            }
            3 => Layout::Virtual {
                heap: c.addr()?,
                index: c.u32()?,
            },
            k => return Err(c.corrupt(format_args!("layout class {k}"))),
        })
    }
}

/// Chunk dimensions without the trailing element size, checked against the dataset's rank.
fn chunk_dims(c: &Cursor<'_>, mut dims: Vec<u64>, rank: usize) -> Result<Vec<u64>> {
    if dims.len() != rank + 1 || dims.contains(&0) {
        return Err(c.corrupt(format_args!(
            "chunk dimensions {dims:?} for a rank-{rank} dataset"
        )));
    }
    dims.pop();
    Ok(dims)
}

/// One stage of a filter pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub id: u16,
    pub name: String,
    /// The writer may have skipped this filter for some chunks (their filter mask says which).
    pub optional: bool,
    pub cd_values: Vec<u32>,
}

pub(crate) fn parse_pipeline(c: &mut Cursor<'_>) -> Result<Vec<Filter>> {
    let version = c.u8()?;
    let n = c.u8()? as usize;
    if version == 1 {
        c.skip(6)?;
    } else if version != 2 {
        return Err(c.unsupported(format_args!("filter pipeline version {version}")));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = c.u16()?;
        let name_len = if version == 1 || id >= 256 {
            c.u16()? as usize
        } else {
            0
        };
        let flags = c.u16()?;
        let nvalues = c.u16()? as usize;
        let name_bytes = if version == 1 {
            c.bytes(name_len.div_ceil(8) * 8)?
        } else {
            c.bytes(name_len)?
        };
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        let mut cd_values = Vec::with_capacity(nvalues);
        for _ in 0..nvalues {
            cd_values.push(c.u32()?);
        }
        if version == 1 && nvalues % 2 == 1 {
            c.skip(4)?;
        }
        out.push(Filter {
            id,
            name,
            optional: flags & 1 != 0,
            cd_values,
        });
    }
    Ok(out)
}

/// The fill value bytes of one element, if the dataset defines one.
pub(crate) fn parse_fill(
    raw: &Raw,
    new: Option<&[u8]>,
    old: Option<&[u8]>,
) -> Result<Option<Vec<u8>>> {
    let value = |c: &mut Cursor<'_>| -> Result<Option<Vec<u8>>> {
        let n = c.u32()? as usize;
        (n > 0).then(|| c.bytes(n).map(<[u8]>::to_vec)).transpose()
    };
    if let Some(body) = new {
        let mut c = raw.over(body, "fill value message");
        return match c.u8()? {
            // Version 1 always stores a value; version 2 only when one is defined.
            v @ (1 | 2) => {
                c.skip(2)?; // allocation and write times
                let defined = c.u8()? != 0;
                if v == 1 || defined {
                    value(&mut c)
                } else {
                    Ok(None)
                }
            }
            3 => {
                let flags = c.u8()?;
                if flags & 0x20 != 0 {
                    value(&mut c)
                } else {
                    Ok(None)
                }
            }
            v => Err(c.unsupported(format_args!("fill value message version {v}"))),
        };
    }
    match old {
        Some(body) => value(&mut raw.over(body, "old fill value message")),
        None => Ok(None),
    }
}
