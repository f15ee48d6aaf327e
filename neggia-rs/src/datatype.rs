//! Datatype and dataspace messages.

use crate::error::Result;
use crate::raw::Cursor;

/// The element types detector files use; anything else is [`Datatype::Other`] and can be listed
/// but not read as values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datatype {
    Int {
        size: usize,
        signed: bool,
        big_endian: bool,
    },
    Float {
        size: usize,
        big_endian: bool,
    },
    /// Fixed-length string of `size` bytes (NUL-terminated, NUL-padded or space-padded).
    FixedString {
        size: usize,
        utf8: bool,
        /// Padded with spaces (Fortran style) rather than NULs.
        space_padded: bool,
    },
    /// Variable-length string stored in the global heap; `size` is its in-file reference.
    VarString {
        utf8: bool,
        size: usize,
    },
    /// A fixed-size array of a base type (an attribute like `vector` may be one).
    Array {
        dims: Vec<u64>,
        base: Box<Datatype>,
    },
    /// An enumeration, read as its integer base (h5py writes booleans this way).
    Enum {
        base: Box<Datatype>,
    },
    /// Compound, opaque, reference, bitfield, vlen sequence, ...
    Other {
        class: u8,
        size: usize,
    },
}

impl Datatype {
    /// Bytes per element as stored.
    pub fn size(&self) -> usize {
        match self {
            Datatype::Int { size, .. }
            | Datatype::Float { size, .. }
            | Datatype::FixedString { size, .. }
            | Datatype::VarString { size, .. }
            | Datatype::Other { size, .. } => *size,
            Datatype::Array { dims, base } => base.size() * dims.iter().product::<u64>() as usize,
            Datatype::Enum { base } => base.size(),
        }
    }

    /// numpy's name for the type as stored ("<u2", ">f8", "|S10"), for messages and tests.
    pub fn numpy(&self) -> String {
        let order = |be: bool| if be { '>' } else { '<' };
        match self {
            Datatype::Int {
                size,
                signed,
                big_endian,
            } => {
                let o = if *size == 1 { '|' } else { order(*big_endian) };
                format!("{o}{}{size}", if *signed { 'i' } else { 'u' })
            }
            Datatype::Float { size, big_endian } => format!("{}f{size}", order(*big_endian)),
            Datatype::FixedString { size, .. } => format!("|S{size}"),
            Datatype::VarString { .. } => "|O".into(),
            Datatype::Array { base, .. } | Datatype::Enum { base } => base.numpy(),
            Datatype::Other { class, size } => format!("class{class}:{size}"),
        }
    }

    pub(crate) fn parse(c: &mut Cursor<'_>, so: usize) -> Result<Datatype> {
        let b0 = c.u8()?;
        let class = b0 & 0x0f;
        let version = b0 >> 4;
        let bits = c.uint(3)? as u32;
        let size = c.u32()? as usize;
        Ok(match class {
            0 => {
                c.skip(4)?; // bit offset, precision
                check_size(c, size, &[1, 2, 4, 8])?;
                Datatype::Int {
                    size,
                    signed: bits & 0x08 != 0,
                    big_endian: bits & 0x01 != 0,
                }
            }
            1 => {
                c.skip(12)?;
                check_size(c, size, &[4, 8])?;
                if bits & 0x40 != 0 {
                    return Err(c.unsupported("VAX-order floating point"));
                }
                Datatype::Float {
                    size,
                    big_endian: bits & 0x01 != 0,
                }
            }
            3 => Datatype::FixedString {
                size,
                utf8: (bits >> 4) & 0x0f == 1,
                space_padded: bits & 0x0f == 2,
            },
            8 => {
                let base = Datatype::parse(c, so)?;
                // Member names and values follow; reading stops here.
                Datatype::Enum {
                    base: Box::new(base),
                }
            }
            9 => {
                Datatype::parse(c, so)?; // the base type (characters, for strings)
                                         // Each element is a length (4), a global heap collection address and an index (4).
                let size = 4 + so + 4;
                if bits & 0x0f == 1 {
                    Datatype::VarString {
                        utf8: (bits >> 8) & 0x0f == 1,
                        size,
                    }
                } else {
                    Datatype::Other { class, size }
                }
            }
            10 => {
                let rank = c.u8()? as usize;
                if version < 3 {
                    c.skip(3)?;
                }
                let mut dims = Vec::with_capacity(rank);
                for _ in 0..rank {
                    dims.push(c.u32()? as u64);
                }
                if version < 3 {
                    c.skip(4 * rank)?; // permutation (unused by HDF5)
                }
                let base = Datatype::parse(c, so)?;
                Datatype::Array {
                    dims,
                    base: Box::new(base),
                }
            }
            _ => Datatype::Other { class, size },
        })
    }
}

fn check_size(c: &Cursor<'_>, size: usize, allowed: &[usize]) -> Result<()> {
    if allowed.contains(&size) {
        Ok(())
    } else {
        Err(c.unsupported(format_args!("{size}-byte numbers")))
    }
}

/// Current and maximum dimensions; an empty `dims` is a scalar. `None` is a null dataspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dataspace {
    pub(crate) dims: Vec<u64>,
    /// `u64::MAX` marks an unlimited dimension.
    pub(crate) max: Vec<u64>,
    pub(crate) null: bool,
}

impl Dataspace {
    pub(crate) fn parse(c: &mut Cursor<'_>) -> Result<Dataspace> {
        let version = c.u8()?;
        let rank = c.u8()? as usize;
        let flags = c.u8()?;
        let mut null = false;
        match version {
            1 => c.skip(5)?,
            2 => null = c.u8()? == 2,
            v => return Err(c.unsupported(format_args!("dataspace version {v}"))),
        }
        if rank > 32 {
            return Err(c.corrupt(format_args!("rank {rank}")));
        }
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(c.length()?);
        }
        let max = if flags & 1 != 0 {
            let mut m = Vec::with_capacity(rank);
            for _ in 0..rank {
                m.push(c.length()?);
            }
            m
        } else {
            dims.clone()
        };
        Ok(Dataspace { dims, max, null })
    }

    /// Number of elements, if it fits in memory terms.
    pub(crate) fn len(&self) -> Option<u64> {
        if self.null {
            return Some(0);
        }
        self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }
}
