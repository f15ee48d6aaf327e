//! HDF5 filter 32004: LZ4 in blocks.
//!
//! A chunk is the uncompressed size (u64 BE), the block size in bytes (u32 BE), then each block
//! as its compressed size (u32 BE) and an LZ4 block. Every block holds `block_size` uncompressed
//! bytes except the last. A block whose compressed size equals its uncompressed size is stored
//! raw: the encoder does that whenever LZ4 does not shrink it.
use super::block;
use super::bytes::{put_u32_be, put_u64_be, Cursor};
use super::error::{check_room, CodecError};

/// The HDF5 filter id.
pub const FILTER_ID: u32 = 32004;
/// Block size when cd_values[0] is 0 or absent: 1 GiB, as the reference filter uses.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 30;
pub const HEADER_LEN: usize = 12;

const NAME: &str = "lz4";

/// Parameters of one 32004 dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lz4 {
    block_size: usize,
}

impl Default for Lz4 {
    fn default() -> Self {
        Lz4 {
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }
}

impl Lz4 {
    /// Blocks of `block_size` bytes; 0 means the default.
    pub fn new(block_size: usize) -> Result<Self, CodecError> {
        match block_size {
            0 => Ok(Lz4::default()),
            n if n > u32::MAX as usize => Err(CodecError::BadBlockSize {
                codec: NAME,
                block_size: n as u64,
                reason: "larger than a u32 field",
            }),
            n => Ok(Lz4 { block_size: n }),
        }
    }

    /// Parameters from cd_values `[block_size_bytes]`.
    pub fn from_cd_values(cd: &[u32]) -> Result<Self, CodecError> {
        Lz4::new(cd.first().copied().unwrap_or(0) as usize)
    }

    pub fn cd_values(&self) -> Vec<u32> {
        vec![self.block_size as u32]
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The uncompressed size the chunk header claims (cap it before allocating from it).
    pub fn decoded_len(&self, chunk: &[u8]) -> Result<u64, CodecError> {
        Cursor::new(NAME, chunk).u64_be(|| "chunk header".into())
    }

    pub fn max_encoded_len(&self, len: usize) -> usize {
        let block = self.block_size.min(len).max(1);
        let blocks = len.div_ceil(block);
        HEADER_LEN
            + blocks * 4
            + blocks.saturating_sub(1) * block::lz4_bound(block)
            + block::lz4_bound(block)
    }

    /// Decodes `chunk` into `out`, whose length is the chunk's known uncompressed size.
    pub fn decode(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let mut input = Cursor::new(NAME, chunk);
        let claimed = input.u64_be(|| "chunk header".into())?;
        let block_size = input.u32_be(|| "chunk header".into())? as usize;
        if claimed != out.len() as u64 {
            return Err(CodecError::SizeMismatch {
                codec: NAME,
                claimed,
                expected: out.len() as u64,
            });
        }
        if block_size == 0 && !out.is_empty() {
            return Err(CodecError::BadBlockSize {
                codec: NAME,
                block_size: 0,
                reason: "zero",
            });
        }
        for (index, dst) in out.chunks_mut(block_size.max(1)).enumerate() {
            let src = input.block(index)?;
            if src.len() == dst.len() {
                dst.copy_from_slice(src);
            } else {
                block::lz4_decompress(src, dst, dst.len()).map_err(|reason| {
                    CodecError::CorruptBlock {
                        codec: NAME,
                        block: index,
                        reason,
                    }
                })?;
            }
        }
        input.finish()
    }

    /// Encodes `src` into `dst` (at least [`Lz4::max_encoded_len`] bytes); returns the length.
    pub fn encode_into(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
        check_room(NAME, self.max_encoded_len(src.len()), dst.len())?;
        // Like the reference, a chunk smaller than the block size is one block of its own size.
        let block_size = self.block_size.min(src.len());
        let mut pos = put_u64_be(dst, 0, src.len() as u64);
        pos = put_u32_be(dst, pos, block_size as u32);
        for raw in src.chunks(block_size.max(1)) {
            let size = block::lz4_compress(raw, &mut dst[pos + 4..]);
            if size >= raw.len() {
                pos = put_u32_be(dst, pos, raw.len() as u32);
                dst[pos..pos + raw.len()].copy_from_slice(raw);
                pos += raw.len();
            } else {
                pos = put_u32_be(dst, pos, size as u32) + size;
            }
        }
        Ok(pos)
    }
}
