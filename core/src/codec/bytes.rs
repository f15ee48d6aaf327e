//! Big-endian fields of the chunk formats, read with a cursor that reports truncation.
use super::error::{truncated, CodecError};

/// A read position in a chunk, for error messages that say how far the data got.
pub(crate) struct Cursor<'a> {
    pub(crate) codec: &'static str,
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(codec: &'static str, data: &'a [u8]) -> Self {
        Cursor {
            codec,
            data,
            pos: 0,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `len` bytes, or a truncation error naming `what`.
    pub(crate) fn take(
        &mut self,
        len: usize,
        what: impl FnOnce() -> String,
    ) -> Result<&'a [u8], CodecError> {
        if len > self.remaining() {
            return Err(truncated(self.codec, what(), len, self.remaining()));
        }
        let out = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn u32_be(&mut self, what: impl FnOnce() -> String) -> Result<u32, CodecError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64_be(&mut self, what: impl FnOnce() -> String) -> Result<u64, CodecError> {
        let b = self.take(8, what)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    /// A block: a u32 BE compressed size, then that many bytes.
    pub(crate) fn block(&mut self, index: usize) -> Result<&'a [u8], CodecError> {
        let size = self.u32_be(|| format!("block {index} size field"))?;
        if size as usize > self.remaining() {
            return Err(CodecError::BlockOverrun {
                codec: self.codec,
                block: index,
                claimed: u64::from(size),
                available: self.remaining() as u64,
            });
        }
        self.take(size as usize, String::new)
    }

    /// Fails if anything follows the last block.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(CodecError::TrailingBytes {
                codec: self.codec,
                extra: extra as u64,
            }),
        }
    }
}

/// Appends a big-endian u32 at `pos`, returning the position after it.
pub(crate) fn put_u32_be(dst: &mut [u8], pos: usize, v: u32) -> usize {
    dst[pos..pos + 4].copy_from_slice(&v.to_be_bytes());
    pos + 4
}

pub(crate) fn put_u64_be(dst: &mut [u8], pos: usize, v: u64) -> usize {
    dst[pos..pos + 8].copy_from_slice(&v.to_be_bytes());
    pos + 8
}
