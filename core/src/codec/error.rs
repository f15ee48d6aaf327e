use thiserror::Error;

/// Why a chunk could not be decoded or encoded.
///
/// Every variant names what was wrong with the bytes, so that a reader can prefix it with the
/// file, dataset and frame and hand it to the user unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The chunk ends before a field or block it announces.
    #[error("{codec}: chunk truncated: {what} needs {needed} bytes, {available} left")]
    Truncated {
        codec: &'static str,
        what: String,
        needed: u64,
        available: u64,
    },
    /// The chunk says it decodes to a different size than the caller knows it has.
    #[error("{codec}: chunk header claims {claimed} bytes, the chunk's known size is {expected}")]
    SizeMismatch {
        codec: &'static str,
        claimed: u64,
        expected: u64,
    },
    /// A block's compressed-size field points past the end of the chunk.
    #[error("{codec}: block {block} claims {claimed} bytes, chunk has {available} left")]
    BlockOverrun {
        codec: &'static str,
        block: usize,
        claimed: u64,
        available: u64,
    },
    /// A block did not decompress to exactly its expected size.
    #[error("{codec}: block {block} is corrupt: {reason}")]
    CorruptBlock {
        codec: &'static str,
        block: usize,
        reason: String,
    },
    /// The block size in the header (or in the parameters) cannot be right.
    #[error("{codec}: invalid block size {block_size}: {reason}")]
    BadBlockSize {
        codec: &'static str,
        block_size: u64,
        reason: &'static str,
    },
    /// Bytes follow the last block.
    #[error("{codec}: {extra} unexpected bytes after the last block")]
    TrailingBytes { codec: &'static str, extra: u64 },
    /// The element size is not one the codec supports.
    #[error("{codec}: unsupported element size {elem_size} (supported: {supported})")]
    BadElementSize {
        codec: &'static str,
        elem_size: usize,
        supported: &'static str,
    },
    /// The data length is not a whole number of elements.
    #[error("{codec}: {len} bytes is not a whole number of {elem_size}-byte elements")]
    PartialElement {
        codec: &'static str,
        len: usize,
        elem_size: usize,
    },
    /// Filter parameters (HDF5 cd_values) that this codec cannot honour.
    #[error("{codec}: invalid parameters: {reason}")]
    BadParameters { codec: &'static str, reason: String },
    /// The destination buffer is too small for the encoded chunk.
    #[error("{codec}: output buffer too small: need {expected} bytes, have {actual}")]
    OutputTooSmall {
        codec: &'static str,
        expected: usize,
        actual: usize,
    },
    /// A chunk whose fields are consistent in size but not in content (a code past its table,
    /// a sum its pixels cannot hold, a section that does not decode).
    #[error("{codec}: corrupt chunk: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    /// A filter id this crate does not implement.
    #[error("unsupported filter {0}")]
    UnsupportedFilter(u32),
}

pub(crate) fn truncated(
    codec: &'static str,
    what: impl Into<String>,
    needed: usize,
    available: usize,
) -> CodecError {
    CodecError::Truncated {
        codec,
        what: what.into(),
        needed: needed as u64,
        available: available as u64,
    }
}

/// Fails unless an encoder's destination has the worst-case room.
pub(crate) fn check_room(codec: &'static str, need: usize, have: usize) -> Result<(), CodecError> {
    if have < need {
        return Err(CodecError::OutputTooSmall {
            codec,
            expected: need,
            actual: have,
        });
    }
    Ok(())
}
