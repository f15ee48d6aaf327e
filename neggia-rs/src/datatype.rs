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
        Self::parse_nested(c, so, 0)
    }

    /// `depth`: how many array, enum and vlen types enclose this one.
    fn parse_nested(c: &mut Cursor<'_>, so: usize, depth: u32) -> Result<Datatype> {
        // Why: each level recurses, and a message of nested base types a few bytes each would
        // otherwise overflow the stack. Real files nest one or two deep.
        if depth > MAX_NESTING {
            return Err(c.corrupt(format_args!("datatype nested more than {MAX_NESTING} deep")));
        }
        let b0 = c.u8()?;
        let class = b0 & 0x0f;
        let version = b0 >> 4;
        let bits = c.uint(3)? as u32;
        let size = c.u32()? as usize;
        if size == 0 {
            // HDF5 has no empty types; a size of 0 would make element counts unbounded.
            return Err(c.corrupt("datatype of size 0"));
        }
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
                let base = Datatype::parse_nested(c, so, depth + 1)?;
                // Member names and values follow; reading stops here.
                Datatype::Enum {
                    base: Box::new(base),
                }
            }
            9 => {
                Datatype::parse_nested(c, so, depth + 1)?; // the base type (characters, for strings)
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
                let base = Datatype::parse_nested(c, so, depth + 1)?;
                // The whole array is one element: it must have a size HDF5 can state (u32).
                let total = dims
                    .iter()
                    .try_fold(base.size() as u64, |a, &d| a.checked_mul(d))
                    .filter(|&t| t > 0 && t <= u32::MAX as u64);
                if total.is_none() {
                    return Err(c.corrupt(format_args!(
                        "array type of {dims:?} x {} bytes",
                        base.size()
                    )));
                }
                Datatype::Array {
                    dims,
                    base: Box::new(base),
                }
            }
            _ => Datatype::Other { class, size },
        })
    }
}

/// Array, enum and vlen types nested deeper than this are refused.
const MAX_NESTING: u32 = 8;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::{Bytes, Raw};

    fn parse(bytes: &[u8]) -> Result<Datatype> {
        let raw = Raw::new(Bytes::Owned(Vec::new()), "test.h5".into());
        Datatype::parse(&mut raw.over(bytes, "datatype"), 8)
    }

    /// A datatype header: class and version, 3 bytes of class bits, size.
    fn header(class_version: u8, size: u32) -> Vec<u8> {
        let mut v = vec![class_version, 0, 0, 0];
        v.extend_from_slice(&size.to_le_bytes());
        v
    }

    fn u4() -> Vec<u8> {
        let mut v = header(0x10, 4);
        v.extend_from_slice(&[0, 0, 32, 0]); // bit offset, precision
        v
    }

    #[test]
    fn deeply_nested_types_are_refused_not_a_stack_overflow() {
        // 8000 enums, each of the next (8 bytes each, as a 64 KiB message could hold): the
        // recursion used to run until the stack overflowed.
        let mut bytes: Vec<u8> = (0..8000).flat_map(|_| header(0x18, 4)).collect();
        bytes.extend(u4());
        let e = parse(&bytes).expect_err("too deep").to_string();
        assert!(e.contains("nested more than 8 deep"), "{e}");
        // Two levels are fine.
        let mut ok = header(0x18, 4);
        ok.extend(u4());
        assert!(matches!(parse(&ok), Ok(Datatype::Enum { .. })));
    }

    #[test]
    fn array_type_larger_than_hdf5_can_state_is_refused() {
        // Version 3 array: rank, dimensions (u32), then the base type (here 4 bytes).
        for dims in [[0xffff_ffffu32, 0xffff_ffff, 0xffff_ffff], [1, 0, 1]] {
            let mut bytes = header(0x3a, 4);
            bytes.push(3);
            bytes.extend(dims.iter().flat_map(|d| d.to_le_bytes()));
            bytes.extend(u4());
            let e = parse(&bytes).expect_err("array size").to_string();
            assert!(e.contains("array type of"), "{e}");
        }
        let mut ok = header(0x3a, 24);
        ok.push(2);
        ok.extend([2u32, 3].iter().flat_map(|d| d.to_le_bytes()));
        ok.extend(u4());
        assert_eq!(parse(&ok).expect("2x3 array").size(), 24);
    }

    #[test]
    fn empty_type_is_refused() {
        let e = parse(&header(0x13, 0)).expect_err("size 0").to_string();
        assert!(e.contains("datatype of size 0"), "{e}");
        assert_eq!(parse(&header(0x13, 5)).expect("|S5").size(), 5);
    }
}
