//! Attribute and small-dataset values, decoded from their stored bytes.

use crate::datatype::Datatype;
use crate::error::Result;
use crate::heap;
use crate::raw::{Raw, UNDEF};

/// A decoded value: its shape (empty for a scalar) and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub shape: Vec<u64>,
    pub data: Values,
}

/// The elements of a [`Value`], widened to one type per kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Int(Vec<i64>),
    UInt(Vec<u64>),
    Float(Vec<f64>),
    Str(Vec<String>),
    /// A type this reader does not decode (compound, opaque, reference, ...), named.
    Unsupported(String),
}

impl Value {
    /// The string of a scalar (or the first of an array of strings).
    pub fn as_str(&self) -> Option<&str> {
        match &self.data {
            Values::Str(s) => s.first().map(String::as_str),
            _ => None,
        }
    }

    /// The first element as a float, for any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        self.to_f64s().and_then(|v| v.first().copied())
    }

    /// The first element as an integer, for integer types.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.data {
            Values::Int(v) => v.first().copied(),
            Values::UInt(v) => v.first().and_then(|&x| i64::try_from(x).ok()),
            _ => None,
        }
    }

    /// All elements as floats, for any numeric type.
    pub fn to_f64s(&self) -> Option<Vec<f64>> {
        match &self.data {
            Values::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Values::UInt(v) => Some(v.iter().map(|&x| x as f64).collect()),
            Values::Float(v) => Some(v.clone()),
            _ => None,
        }
    }
}

/// Decodes `count` elements of `dtype` from `bytes`; variable-length strings are fetched from
/// the global heap of `raw`.
pub(crate) fn decode(raw: &Raw, dtype: &Datatype, shape: Vec<u64>, bytes: &[u8]) -> Result<Value> {
    let (base, mut shape) = match dtype {
        Datatype::Array { dims, base } => {
            let mut s = shape;
            s.extend_from_slice(dims);
            (base.as_ref(), s)
        }
        _ => (dtype, shape),
    };
    let base = match base {
        Datatype::Enum { base } => base.as_ref(),
        b => b,
    };
    // Checked: the shape comes from the file, and a product past 2^64 is a lie like any other.
    let count = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let size = base.size();
    let need = count.and_then(|n| n.checked_mul(size as u64));
    let count = count.unwrap_or(u64::MAX);
    if need.is_none_or(|n| n > bytes.len() as u64) {
        return Err(raw.corrupt(format_args!(
            "value of {count} x {size} bytes has only {} bytes",
            bytes.len()
        )));
    }
    let elems = bytes[..(count as usize * size)].chunks_exact(size.max(1));
    let data = match base {
        Datatype::Int {
            signed, big_endian, ..
        } => {
            let raw_u = elems.map(|e| uint(e, *big_endian));
            if *signed {
                let bits = 64 - 8 * size as u32;
                Values::Int(raw_u.map(|u| ((u << bits) as i64) >> bits).collect())
            } else {
                Values::UInt(raw_u.collect())
            }
        }
        Datatype::Float { big_endian, .. } => Values::Float(
            elems
                .map(|e| {
                    let u = uint(e, *big_endian);
                    if size == 4 {
                        f32::from_bits(u as u32) as f64
                    } else {
                        f64::from_bits(u)
                    }
                })
                .collect(),
        ),
        Datatype::FixedString { space_padded, .. } => Values::Str(
            elems
                .map(|e| {
                    let end = e.iter().position(|&b| b == 0).unwrap_or(e.len());
                    let mut s = &e[..end];
                    if *space_padded {
                        // As HDF5 converts to C strings: the padding is not part of the text.
                        while let [head @ .., b' '] = s {
                            s = head;
                        }
                    }
                    String::from_utf8_lossy(s).into_owned()
                })
                .collect(),
        ),
        Datatype::VarString { .. } => {
            let mut out = Vec::with_capacity(count as usize);
            for e in elems {
                out.push(var_string(raw, e)?);
            }
            Values::Str(out)
        }
        other => {
            shape.clear();
            Values::Unsupported(format!("values of type {}", other.numpy()))
        }
    };
    Ok(Value { shape, data })
}

fn uint(e: &[u8], big_endian: bool) -> u64 {
    if big_endian {
        e.iter().fold(0, |a, &b| (a << 8) | b as u64)
    } else {
        e.iter().rev().fold(0, |a, &b| (a << 8) | b as u64)
    }
}

/// One variable-length string: length, global heap collection address, object index.
fn var_string(raw: &Raw, e: &[u8]) -> Result<String> {
    let mut c = raw.over(e, "variable-length string");
    let len = c.u32()? as usize;
    let addr = c.addr()?;
    let index = c.u32()?;
    if len == 0 || addr == 0 || addr == UNDEF {
        return Ok(String::new());
    }
    let obj = heap::global_object(raw, addr, index)?;
    let s = obj.get(..len).ok_or_else(|| {
        raw.corrupt(format_args!(
            "string of {len} bytes in a {}-byte object",
            obj.len()
        ))
    })?;
    // h5py stores str as UTF-8; a writer's trailing NUL is not part of the text.
    let s = s.strip_suffix(&[0]).unwrap_or(s);
    Ok(String::from_utf8_lossy(s).into_owned())
}
