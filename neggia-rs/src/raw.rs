//! The file's bytes and a bounds-checked little-endian cursor over them.
//!
//! Every address in a file is untrusted: a cursor never reads past the slice it was given, and
//! each failure becomes an [`Error::Corrupt`] naming the file.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the bytes live: a read-only map of the file, or a buffer (fuzzing, tests).
pub(crate) enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One open file: its bytes, its path and the address and length sizes its superblock declares.
pub(crate) struct Raw {
    bytes: Bytes,
    pub(crate) path: PathBuf,
    /// Size of file addresses ("offsets") in bytes: 2, 4 or 8.
    pub(crate) so: u8,
    /// Size of lengths in bytes: 2, 4 or 8.
    pub(crate) sl: u8,
    /// Added to every address (non-zero when a user block precedes the superblock).
    pub(crate) base: u64,
}

/// Undefined address: all bits set.
pub(crate) const UNDEF: u64 = u64::MAX;

impl Raw {
    pub(crate) fn new(bytes: Bytes, path: PathBuf) -> Raw {
        Raw {
            bytes,
            path,
            so: 8,
            sl: 8,
            base: 0,
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn corrupt(&self, what: impl Display) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            what: what.to_string(),
        }
    }

    pub(crate) fn unsupported(&self, what: impl Display) -> Error {
        Error::Unsupported {
            path: self.path.clone(),
            what: what.to_string(),
        }
    }

    /// The absolute offset of a file address, checked to lie inside the file.
    pub(crate) fn offset(&self, addr: u64, what: &str) -> Result<usize> {
        let abs = addr.checked_add(self.base);
        match abs {
            Some(a) if a < self.data().len() as u64 => Ok(a as usize),
            _ => Err(self.corrupt(format_args!(
                "{what} at address {addr:#x} is past the end of the file ({} bytes)",
                self.data().len()
            ))),
        }
    }

    /// `len` bytes at a file address.
    pub(crate) fn slice(&self, addr: u64, len: u64, what: &str) -> Result<&[u8]> {
        let start = self.offset(addr, what)?;
        let end = (start as u64).checked_add(len);
        match end {
            Some(e) if e <= self.data().len() as u64 => Ok(&self.data()[start..e as usize]),
            _ => Err(self.corrupt(format_args!(
                "{what} of {len} bytes at address {addr:#x} runs past the end of the file ({} bytes)",
                self.data().len()
            ))),
        }
    }

    /// A cursor at a file address, running to the end of the file.
    pub(crate) fn at(&self, addr: u64, what: &'static str) -> Result<Cursor<'_>> {
        let start = self.offset(addr, what)?;
        Ok(Cursor {
            raw: self,
            buf: &self.data()[start..],
            pos: 0,
            what,
        })
    }

    /// A cursor over bytes already read (a message body, a heap object).
    pub(crate) fn over<'a>(&'a self, buf: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor {
            raw: self,
            buf,
            pos: 0,
            what,
        }
    }
}

/// Little-endian reads from a slice; running off its end is a corrupt-file error.
#[derive(Clone)]
pub(crate) struct Cursor<'a> {
    pub(crate) raw: &'a Raw,
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn corrupt(&self, what: impl Display) -> Error {
        self.raw.corrupt(format_args!("{}: {what}", self.what))
    }

    pub(crate) fn unsupported(&self, what: impl Display) -> Error {
        self.raw.unsupported(format_args!("{}: {what}", self.what))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.corrupt(format_args!(
                "needs {n} bytes at offset {}, only {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(self.uint(2)? as u16)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(self.uint(4)? as u32)
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.uint(8)
    }

    /// An unsigned little-endian integer of `n` (0 to 8) bytes.
    pub(crate) fn uint(&mut self, n: usize) -> Result<u64> {
        if n > 8 {
            return Err(self.corrupt(format_args!("{n}-byte integer field")));
        }
        let b = self.bytes(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    /// A file address; `UNDEF` (all ones) when undefined.
    pub(crate) fn addr(&mut self) -> Result<u64> {
        let n = self.raw.so as usize;
        let v = self.uint(n)?;
        Ok(if n < 8 && v == (1u64 << (8 * n)) - 1 {
            UNDEF
        } else {
            v
        })
    }

    /// A length field (the superblock's "size of lengths").
    pub(crate) fn length(&mut self) -> Result<u64> {
        let n = self.raw.sl as usize;
        let v = self.uint(n)?;
        Ok(if n < 8 && v == (1u64 << (8 * n)) - 1 {
            u64::MAX
        } else {
            v
        })
    }

    pub(crate) fn signature(&mut self, sig: &[u8; 4]) -> Result<()> {
        let got = self.bytes(4)?;
        if got != sig {
            return Err(self.corrupt(format_args!(
                "expected signature {:?}, found {:?}",
                String::from_utf8_lossy(sig),
                String::from_utf8_lossy(got)
            )));
        }
        Ok(())
    }

    /// A NUL-terminated string (the NUL is consumed).
    pub(crate) fn cstr(&mut self) -> Result<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => Err(self.corrupt("unterminated string")),
        }
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}

/// Bytes needed to hold `v` (at least 1), as HDF5 sizes its variable-width fields.
pub(crate) fn bytes_for(v: u64) -> usize {
    let log2 = 63usize.saturating_sub(v.leading_zeros() as usize);
    (log2 / 8 + 1).min(8)
}
