//! HDF5 filter 32015: the chunk is one zstd frame; cd_values[0] is the compression level.
use super::block;
use super::error::{check_room, CodecError};

/// The HDF5 filter id.
pub const FILTER_ID: u32 = 32015;
pub const DEFAULT_LEVEL: i32 = 3;

const NAME: &str = "zstd";

/// Parameters of one 32015 dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zstd {
    level: i32,
}

impl Default for Zstd {
    fn default() -> Self {
        Zstd {
            level: DEFAULT_LEVEL,
        }
    }
}

impl Zstd {
    pub fn new(level: i32) -> Self {
        Zstd { level }
    }

    /// Parameters from cd_values `[level]`.
    pub fn from_cd_values(cd: &[u32]) -> Self {
        Zstd::new(cd.first().map_or(DEFAULT_LEVEL, |&l| l as i32))
    }

    pub fn cd_values(&self) -> Vec<u32> {
        vec![self.level as u32]
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// The uncompressed size the frame declares, if it declares one (cap it before allocating).
    pub fn decoded_len(&self, chunk: &[u8]) -> Option<u64> {
        block::zstd_content_size(chunk)
    }

    pub fn max_encoded_len(&self, len: usize) -> usize {
        block::zstd_bound(len)
    }

    /// Decodes `chunk` into `out`, whose length is the chunk's known uncompressed size.
    pub fn decode(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if let Some(claimed) = block::zstd_content_size(chunk) {
            if claimed != out.len() as u64 {
                return Err(CodecError::SizeMismatch {
                    codec: NAME,
                    claimed,
                    expected: out.len() as u64,
                });
            }
        }
        block::zstd_decompress(chunk, out).map_err(|reason| CodecError::CorruptBlock {
            codec: NAME,
            block: 0,
            reason,
        })
    }

    pub fn encode_into(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
        check_room(NAME, self.max_encoded_len(src.len()), dst.len())?;
        block::zstd_compress(src, dst, self.level).map_err(|reason| CodecError::BadParameters {
            codec: NAME,
            reason,
        })
    }
}
