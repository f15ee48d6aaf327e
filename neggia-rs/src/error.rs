use std::path::PathBuf;

use hdrmx_core::codec::CodecError;

/// Everything that can go wrong reading a file. Each error names the file, and where it matters
/// the object and frame, so a message alone says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an HDF5 file (no superblock signature)", path = path.display())]
    NotHdf5 { path: PathBuf },
    /// The bytes contradict the HDF5 format: a bad signature, an address past the end, a cycle.
    #[error("{path}: corrupt HDF5: {what}", path = path.display())]
    Corrupt { path: PathBuf, what: String },
    /// Valid HDF5 that this reader does not handle.
    #[error("{path}: unsupported: {what}", path = path.display())]
    Unsupported { path: PathBuf, what: String },
    #[error("{path}: no object {object}", path = path.display())]
    NotFound { path: PathBuf, object: String },
    /// A chunk that does not decode.
    #[error("{path}: {dataset}: chunk at {chunk:?}: {source}", path = path.display())]
    Chunk {
        path: PathBuf,
        dataset: String,
        chunk: Vec<u64>,
        source: Box<ChunkError>,
    },
    /// A virtual dataset's source that cannot be read.
    #[error("{path}: {dataset}: VDS source {mapping}: {why}", path = path.display())]
    VdsSource {
        path: PathBuf,
        dataset: String,
        /// The source as "file:dataset".
        mapping: String,
        why: String,
    },
    /// A request that does not fit the dataset (a frame past the end, a wrong buffer size).
    #[error("{path}: {dataset}: {what}", path = path.display())]
    Request {
        path: PathBuf,
        dataset: String,
        what: String,
    },
}

/// Why one chunk failed to decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("deflate: {0}")]
    Deflate(String),
    #[error("fletcher32 checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Fletcher32 { stored: u32, computed: u32 },
    #[error("{filter} left {got} bytes, the chunk has {expected}")]
    Size {
        filter: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("unsupported filter {0} ({1:?})")]
    Unsupported(u16, String),
    #[error("chunk of {len} bytes at {addr:#x} runs past the end of the file")]
    OutOfFile { addr: u64, len: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
