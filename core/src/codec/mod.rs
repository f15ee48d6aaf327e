//! Chunk codecs of the HDF5 filters EIGER-class data is stored with: bitshuffle (32008) with LZ4
//! or zstd, LZ4 (32004) and zstd (32015), bit-compatible with the reference implementations.
//!
//! Slice in, slice out: a decoder is given the chunk's bytes and a buffer of the chunk's known
//! uncompressed size, and fills it or returns a [`CodecError`] saying what was wrong. Nothing is
//! allocated from a size field in the data. Encoders write into a caller's buffer of
//! `max_encoded_len` bytes (or return a new vector).

mod block;
mod bytes;
mod error;
mod lz4_block;
mod scratch;

pub mod binning;
pub mod bitshuffle;
pub mod lossy;
pub mod lz4;
pub mod transpose;
pub mod zstd;

pub use binning::Binning;
pub use bitshuffle::{Bitshuffle, Compression};
pub use error::CodecError;
pub use lossy::Lossy;
pub use lz4::Lz4;
pub use zstd::Zstd;

/// One chunk codec with its parameters, as an HDF5 filter describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Bitshuffle(Bitshuffle),
    Lz4(Lz4),
    Zstd(Zstd),
    Binning(Binning),
    Lossy(Lossy),
}

impl Codec {
    /// The codec for an HDF5 filter id and its cd_values; `elem_size` is the datatype's size.
    pub fn from_filter(
        filter_id: u32,
        cd_values: &[u32],
        elem_size: usize,
    ) -> Result<Codec, CodecError> {
        match filter_id {
            bitshuffle::FILTER_ID => {
                Bitshuffle::from_cd_values(cd_values, elem_size).map(Codec::Bitshuffle)
            }
            lz4::FILTER_ID => Lz4::from_cd_values(cd_values).map(Codec::Lz4),
            zstd::FILTER_ID => Ok(Codec::Zstd(Zstd::from_cd_values(cd_values))),
            binning::FILTER_ID => Binning::from_cd_values(cd_values, elem_size).map(Codec::Binning),
            lossy::FILTER_ID => Lossy::from_cd_values(cd_values, elem_size).map(Codec::Lossy),
            other => Err(CodecError::UnsupportedFilter(other)),
        }
    }

    /// Short name for messages: "bitshuffle", "lz4" or "zstd".
    pub fn name(&self) -> &'static str {
        match self {
            Codec::Bitshuffle(_) => "bitshuffle",
            Codec::Lz4(_) => "lz4",
            Codec::Zstd(_) => "zstd",
            Codec::Binning(_) => "binning",
            Codec::Lossy(_) => "lossy",
        }
    }

    /// The uncompressed size a chunk declares (its header, or a zstd frame's content size), if it
    /// declares one. Cap it by what you expect before allocating from it.
    pub fn decoded_len(&self, chunk: &[u8]) -> Result<Option<u64>, CodecError> {
        match self {
            Codec::Bitshuffle(c) => c.decoded_len(chunk).map(Some),
            Codec::Lz4(c) => c.decoded_len(chunk).map(Some),
            Codec::Zstd(c) => Ok(c.decoded_len(chunk)),
            Codec::Binning(c) => c.decoded_len(chunk).map(Some),
            Codec::Lossy(c) => c.decoded_len(chunk).map(Some),
        }
    }

    pub fn filter_id(&self) -> u32 {
        match self {
            Codec::Bitshuffle(_) => bitshuffle::FILTER_ID,
            Codec::Lz4(_) => lz4::FILTER_ID,
            Codec::Zstd(_) => zstd::FILTER_ID,
            Codec::Binning(_) => binning::FILTER_ID,
            Codec::Lossy(_) => lossy::FILTER_ID,
        }
    }

    /// The HDF5 cd_values that describe this codec.
    pub fn cd_values(&self) -> Vec<u32> {
        match self {
            Codec::Bitshuffle(c) => c.cd_values(),
            Codec::Lz4(c) => c.cd_values(),
            Codec::Zstd(c) => c.cd_values(),
            Codec::Binning(c) => c.cd_values(),
            Codec::Lossy(c) => c.cd_values(),
        }
    }

    /// Decodes `chunk` into `out`, whose length is the chunk's known uncompressed size.
    pub fn decode(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        match self {
            Codec::Bitshuffle(c) => c.decode(chunk, out),
            Codec::Lz4(c) => c.decode(chunk, out),
            Codec::Zstd(c) => c.decode(chunk, out),
            Codec::Binning(c) => c.decode(chunk, out),
            Codec::Lossy(c) => c.decode(chunk, out),
        }
    }

    /// Like [`Codec::decode`], handing the decoded bytes to `part(byte offset, bytes)` while they
    /// are still in cache: block by block for bitshuffle, whole for the others. The parts are
    /// whole elements, come in order and cover `out`.
    pub fn decode_with(
        &self,
        chunk: &[u8],
        out: &mut [u8],
        mut part: impl FnMut(usize, &mut [u8]),
    ) -> Result<(), CodecError> {
        match self {
            Codec::Bitshuffle(c) => c.decode_with(chunk, out, part),
            _ => {
                self.decode(chunk, out)?;
                part(0, out);
                Ok(())
            }
        }
    }

    /// An upper bound of the encoded size of `len` bytes.
    pub fn max_encoded_len(&self, len: usize) -> usize {
        match self {
            Codec::Bitshuffle(c) => c.max_encoded_len(len),
            Codec::Lz4(c) => c.max_encoded_len(len),
            Codec::Zstd(c) => c.max_encoded_len(len),
            Codec::Binning(c) => c.max_encoded_len(len),
            Codec::Lossy(c) => c.max_encoded_len(len),
        }
    }

    /// Encodes into `dst` (at least [`Codec::max_encoded_len`] bytes); returns the length.
    pub fn encode_into(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
        match self {
            Codec::Bitshuffle(c) => c.encode_into(src, dst),
            Codec::Lz4(c) => c.encode_into(src, dst),
            Codec::Zstd(c) => c.encode_into(src, dst),
            Codec::Binning(c) => c.encode_into(src, dst),
            Codec::Lossy(c) => c.encode_into(src, dst),
        }
    }

    pub fn encode(&self, src: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut dst = vec![0u8; self.max_encoded_len(src.len())];
        let len = self.encode_into(src, &mut dst)?;
        dst.truncate(len);
        Ok(dst)
    }
}
