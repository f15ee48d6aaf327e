//! HDF5 filter 32008: bitshuffle, alone or followed by LZ4 or zstd, in the reference layout.
//!
//! A chunk of `n` elements of `e` bytes is cut into blocks of `block_size` elements; each block is
//! bit-transposed on its own ([`super::transpose`]). After the full blocks comes one block of the
//! remaining elements rounded down to a multiple of 8, and the last `n % 8` elements are stored
//! as they are. With compression, the chunk starts with the uncompressed size (u64 BE) and the
//! block size in bytes (u32 BE), and each block is stored as its compressed size (u32 BE) and an
//! LZ4 block or a zstd frame. Without compression there is no header and no size fields.
//!
//! Decoding is fused per block: a block is decompressed into a small per-thread scratch buffer
//! that stays in cache and untransposed from there straight into the caller's buffer.
use super::block;
use super::bytes::{put_u32_be, put_u64_be, Cursor};
use super::error::{check_room, CodecError};
use super::lz4_block::SLACK;
use super::scratch::with_scratch;
use super::transpose;

/// The HDF5 filter id.
pub const FILTER_ID: u32 = 32008;
/// The reference's default block aims at this many bytes.
pub const TARGET_BLOCK_BYTES: usize = 8192;
/// Block sizes are multiples of this many elements.
pub const BLOCK_MULTIPLE: usize = 8;
/// The default block size never goes below this many elements.
pub const MIN_DEFAULT_BLOCK: usize = 128;
/// Chunk header: u64 BE uncompressed bytes, u32 BE block bytes.
pub const HEADER_LEN: usize = 12;
/// Bytes of output per task in [`Bitshuffle::decode_parallel`].
#[cfg(feature = "parallel")]
const PARALLEL_TASK_BYTES: usize = 1 << 20;
/// The reference version written into cd_values[0..2] (0.5).
pub const CD_VERSION: [u32; 2] = [0, 5];

const NAME: &str = "bitshuffle";

/// What follows the bit transpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Bitshuffle only (cd_values[4] = 0).
    None,
    /// LZ4 blocks (cd_values[4] = 2).
    Lz4,
    /// zstd frames at a compression level (cd_values[4] = 3, level in cd_values[5]).
    Zstd { level: i32 },
}

impl Compression {
    /// The cd_values[4] code.
    pub fn code(self) -> u32 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 2,
            Compression::Zstd { .. } => 3,
        }
    }
}

/// The reference default block size, in elements, for an element size.
pub fn default_block_size(elem_size: usize) -> usize {
    let n = TARGET_BLOCK_BYTES / elem_size.max(1);
    (n / BLOCK_MULTIPLE * BLOCK_MULTIPLE).max(MIN_DEFAULT_BLOCK)
}

/// Parameters of one 32008 dataset: element size, block size and compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bitshuffle {
    elem_size: usize,
    block_size: usize,
    compression: Compression,
}

/// The blocks of a chunk of `n` elements: (first element, element count).
fn blocks(n: usize, block_size: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / block_size;
    let last = n % block_size / BLOCK_MULTIPLE * BLOCK_MULTIPLE;
    (0..full)
        .map(move |b| (b * block_size, block_size))
        .chain((last > 0).then_some((full * block_size, last)))
}

impl Bitshuffle {
    /// Element sizes the transpose kernels support.
    pub const ELEM_SIZES: &'static str = "1, 2, 4 or 8";

    /// Parameters with the default block size.
    pub fn new(elem_size: usize, compression: Compression) -> Result<Self, CodecError> {
        if !matches!(elem_size, 1 | 2 | 4 | 8) {
            return Err(CodecError::BadElementSize {
                codec: NAME,
                elem_size,
                supported: Self::ELEM_SIZES,
            });
        }
        Ok(Bitshuffle {
            elem_size,
            block_size: default_block_size(elem_size),
            compression,
        })
    }

    /// Sets the block size in elements; 0 means the default.
    pub fn with_block_size(mut self, elements: usize) -> Result<Self, CodecError> {
        self.block_size = match elements {
            0 => default_block_size(self.elem_size),
            n if n % BLOCK_MULTIPLE != 0 => {
                return Err(CodecError::BadBlockSize {
                    codec: NAME,
                    block_size: n as u64,
                    reason: "not a multiple of 8 elements",
                })
            }
            // The chunk header stores the block size in bytes as a u32 (fuzz: bug_fuzz_1).
            n if !matches!(n.checked_mul(self.elem_size), Some(b) if b <= u32::MAX as usize) => {
                return Err(CodecError::BadBlockSize {
                    codec: NAME,
                    block_size: n as u64,
                    reason: "larger than the header's u32 field of bytes",
                })
            }
            n => n,
        };
        Ok(self)
    }

    /// Parameters from HDF5 cd_values `[major, minor, elem_size, block_size, compression,
    /// level]`. `elem_size` is the datatype's size, used when cd_values do not carry one.
    pub fn from_cd_values(cd: &[u32], elem_size: usize) -> Result<Self, CodecError> {
        let elem = match cd.get(2) {
            Some(&e) if e != 0 => e as usize,
            _ => elem_size,
        };
        let compression = match cd.get(4).copied().unwrap_or(0) {
            0 => Compression::None,
            2 => Compression::Lz4,
            3 => Compression::Zstd {
                level: cd.get(5).map_or(3, |&l| l as i32),
            },
            other => {
                return Err(CodecError::BadParameters {
                    codec: NAME,
                    reason: format!("unknown compression code {other} (0 none, 2 LZ4, 3 zstd)"),
                })
            }
        };
        Bitshuffle::new(elem, compression)?
            .with_block_size(cd.get(3).copied().unwrap_or(0) as usize)
    }

    /// The cd_values that describe these parameters, as the reference writes them.
    pub fn cd_values(&self) -> Vec<u32> {
        let mut cd = vec![
            CD_VERSION[0],
            CD_VERSION[1],
            self.elem_size as u32,
            self.block_size as u32,
        ];
        match self.compression {
            Compression::None => {}
            Compression::Lz4 => cd.push(2),
            Compression::Zstd { level } => cd.extend([3, level as u32]),
        }
        cd
    }

    pub fn elem_size(&self) -> usize {
        self.elem_size
    }

    /// Block size in elements.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    fn check_len(&self, len: usize) -> Result<usize, CodecError> {
        if !len.is_multiple_of(self.elem_size) {
            return Err(CodecError::PartialElement {
                codec: NAME,
                len,
                elem_size: self.elem_size,
            });
        }
        Ok(len / self.elem_size)
    }

    /// The uncompressed size of a chunk: its header's size field, or its length without
    /// compression. Callers that allocate from this must cap it by what they expect.
    pub fn decoded_len(&self, chunk: &[u8]) -> Result<u64, CodecError> {
        match self.compression {
            Compression::None => Ok(chunk.len() as u64),
            _ => Cursor::new(NAME, chunk).u64_be(|| "chunk header".into()),
        }
    }

    /// An upper bound of the encoded size of `len` bytes.
    pub fn max_encoded_len(&self, len: usize) -> usize {
        let e = self.elem_size;
        let n = len / e;
        let bound = |bytes| match self.compression {
            Compression::None => bytes,
            Compression::Lz4 => 4 + block::lz4_bound(bytes),
            Compression::Zstd { .. } => 4 + block::zstd_bound(bytes),
        };
        let header = if self.compression == Compression::None {
            0
        } else {
            HEADER_LEN
        };
        let blocks: usize = blocks(n, self.block_size)
            .map(|(_, count)| bound(count * e))
            .sum();
        header + blocks + (len - n / 8 * 8 * e)
    }

    /// Decodes `chunk` into `out`, whose length is the chunk's known uncompressed size. On error
    /// the contents of `out` are unspecified.
    pub fn decode(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        self.decode_with(chunk, out, |_, _| {})
    }

    /// Like [`Bitshuffle::decode`], handing each decoded block to `part(byte offset, bytes)` as
    /// soon as it is written, while it is still in L1: a consumer converts the frame in the same
    /// pass instead of reading it back from memory ("touch once"). The parts are whole elements,
    /// come in order and cover `out`. On error some parts may have been handed over already.
    pub fn decode_with(
        &self,
        chunk: &[u8],
        out: &mut [u8],
        mut part: impl FnMut(usize, &mut [u8]),
    ) -> Result<(), CodecError> {
        let plan = self.plan(chunk, out.len())?;
        let e = self.elem_size;
        let mut input = plan.body;
        with_scratch(plan.block_size.min(plan.n) * e + SLACK, |scratch| {
            for (index, (first, count)) in blocks(plan.n, plan.block_size).enumerate() {
                let dst = &mut out[first * e..(first + count) * e];
                match self.compression {
                    Compression::None => {
                        let src = input.take(count * e, || format!("block {index}"))?;
                        transpose::untranspose(src, dst, e);
                    }
                    _ => {
                        let src = input.block(index)?;
                        self.decompress(index, src, &mut scratch[..count * e + SLACK])?;
                        transpose::untranspose(&scratch[..count * e], dst, e);
                    }
                }
                part(first * e, dst);
            }
            Ok::<_, CodecError>(())
        })?;
        finish_tail(&mut input, plan.n, e, out)?;
        let tail = plan.n / 8 * 8 * e;
        if tail < out.len() {
            part(tail, &mut out[tail..]);
        }
        Ok(())
    }

    /// Like [`Bitshuffle::decode`], decoding the blocks of one chunk on the rayon thread pool, a
    /// megabyte of output per task. Decoding is close to memory-bound, so this pays only with
    /// idle cores and memory bandwidth to spare (on the 2-core build machine it does not:
    /// `cargo bench -p hdrmx-core -- frame_4m_u32_bslz4`).
    #[cfg(feature = "parallel")]
    pub fn decode_parallel(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        use rayon::prelude::*;
        let plan = self.plan(chunk, out.len())?;
        if self.compression == Compression::None {
            return self.decode(chunk, out);
        }
        let e = self.elem_size;
        let mut input = plan.body;
        let count = blocks(plan.n, plan.block_size).count();
        let sources = (0..count)
            .map(|index| input.block(index))
            .collect::<Result<Vec<_>, _>>()?;
        let full_len = plan.n / 8 * 8 * e;
        let (body, _) = out.split_at_mut(full_len);
        // A task decodes a run of blocks: one task per 8 KiB block costs more than it saves.
        let block_bytes = plan.block_size * e;
        let per_task = (PARALLEL_TASK_BYTES / block_bytes).max(1);
        body.par_chunks_mut(block_bytes * per_task)
            .zip(sources.par_chunks(per_task))
            .enumerate()
            .try_for_each(|(task, (dst, srcs))| {
                with_scratch(block_bytes.min(dst.len()) + SLACK, |scratch| {
                    for (i, (dst, src)) in dst.chunks_mut(block_bytes).zip(srcs).enumerate() {
                        self.decompress(
                            task * per_task + i,
                            src,
                            &mut scratch[..dst.len() + SLACK],
                        )?;
                        transpose::untranspose(&scratch[..dst.len()], dst, e);
                    }
                    Ok(())
                })
            })?;
        finish_tail(&mut input, plan.n, e, out)
    }

    /// Validates the header against the known size and returns where the blocks start.
    fn plan<'a>(&self, chunk: &'a [u8], out_len: usize) -> Result<Plan<'a>, CodecError> {
        let n = self.check_len(out_len)?;
        let mut input = Cursor::new(NAME, chunk);
        if self.compression == Compression::None {
            if chunk.len() != out_len {
                return Err(CodecError::SizeMismatch {
                    codec: NAME,
                    claimed: chunk.len() as u64,
                    expected: out_len as u64,
                });
            }
            return Ok(Plan {
                body: input,
                n,
                block_size: self.block_size,
            });
        }
        let claimed = input.u64_be(|| "chunk header".into())?;
        let block_bytes = input.u32_be(|| "chunk header".into())?;
        if claimed != out_len as u64 {
            return Err(CodecError::SizeMismatch {
                codec: NAME,
                claimed,
                expected: out_len as u64,
            });
        }
        let bad = |reason| CodecError::BadBlockSize {
            codec: NAME,
            block_size: u64::from(block_bytes),
            reason,
        };
        let e = self.elem_size;
        if block_bytes == 0 {
            return Err(bad("zero"));
        }
        if !(block_bytes as usize).is_multiple_of(e) {
            return Err(bad("not a whole number of elements"));
        }
        let block_size = block_bytes as usize / e;
        if !block_size.is_multiple_of(BLOCK_MULTIPLE) {
            return Err(bad("not a multiple of 8 elements"));
        }
        Ok(Plan {
            body: input,
            n,
            block_size,
        })
    }

    /// Decompresses block `index` into `dst` less its last [`SLACK`] bytes, which are room.
    fn decompress(&self, index: usize, src: &[u8], dst: &mut [u8]) -> Result<(), CodecError> {
        let len = dst.len() - SLACK;
        let result = match self.compression {
            Compression::Lz4 => block::lz4_decompress(src, dst, len),
            Compression::Zstd { .. } => block::zstd_decompress(src, &mut dst[..len]),
            Compression::None => unreachable!("uncompressed blocks are not decompressed"),
        };
        result.map_err(|reason| CodecError::CorruptBlock {
            codec: NAME,
            block: index,
            reason,
        })
    }

    /// Encodes `src` into `dst`, which must hold [`Bitshuffle::max_encoded_len`] bytes; returns
    /// the chunk's length.
    pub fn encode_into(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
        let n = self.check_len(src.len())?;
        check_room(NAME, self.max_encoded_len(src.len()), dst.len())?;
        let e = self.elem_size;
        let mut pos = 0;
        if self.compression != Compression::None {
            pos = put_u64_be(dst, pos, src.len() as u64);
            pos = put_u32_be(dst, pos, (self.block_size * e) as u32);
        }
        with_scratch(self.block_size.min(n) * e, |scratch| {
            for (first, count) in blocks(n, self.block_size) {
                let block = &src[first * e..(first + count) * e];
                if self.compression == Compression::None {
                    transpose::transpose(block, &mut dst[pos..pos + block.len()], e);
                    pos += block.len();
                    continue;
                }
                let planes = &mut scratch[..block.len()];
                transpose::transpose(block, planes, e);
                let body = &mut dst[pos + 4..];
                let size = match self.compression {
                    Compression::Lz4 => block::lz4_compress(planes, body),
                    Compression::Zstd { level } => block::zstd_compress(planes, body, level)
                        .map_err(|reason| CodecError::BadParameters {
                            codec: NAME,
                            reason,
                        })?,
                    Compression::None => unreachable!(),
                };
                pos = put_u32_be(dst, pos, size as u32) + size;
            }
            Ok::<_, CodecError>(())
        })?;
        let tail = &src[n / 8 * 8 * e..];
        dst[pos..pos + tail.len()].copy_from_slice(tail);
        Ok(pos + tail.len())
    }
}

struct Plan<'a> {
    body: Cursor<'a>,
    n: usize,
    block_size: usize,
}

/// Copies the last `n % 8` elements, stored raw, and checks nothing follows them.
fn finish_tail(
    input: &mut Cursor<'_>,
    n: usize,
    e: usize,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let start = n / 8 * 8 * e;
    let tail = input.take(out.len() - start, || {
        format!("the last {} elements, stored raw", n % 8)
    })?;
    out[start..].copy_from_slice(tail);
    input.finish()
}
