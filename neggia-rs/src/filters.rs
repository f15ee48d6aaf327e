//! Filter pipelines, undone in reverse order: the detector codecs of hdrmx-core, deflate, shuffle
//! and fletcher32 (verified). Anything else is refused when a chunk is read, naming the filter.

use std::cell::RefCell;
use std::io::Read;

use hdrmx_core::codec::Codec;

use crate::error::ChunkError;
use crate::layout::Filter;

pub(crate) const DEFLATE: u16 = 1;
pub(crate) const SHUFFLE: u16 = 2;
pub(crate) const FLETCHER32: u16 = 3;

#[derive(Clone, Debug)]
pub(crate) enum Stage {
    Codec(Codec),
    Deflate,
    Shuffle(usize),
    Fletcher32,
    /// Known to HDF5 but not to us; reading a chunk through it is an error.
    Unsupported(u16, String),
}

/// A dataset's pipeline, prepared once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pipeline {
    stages: Vec<Stage>,
}

thread_local! {
    /// Intermediate buffers of multi-stage pipelines, reused across chunks.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

impl Pipeline {
    pub(crate) fn new(filters: &[Filter], elem: usize) -> Pipeline {
        let stages = filters
            .iter()
            .map(|f| match f.id {
                DEFLATE => Stage::Deflate,
                SHUFFLE => Stage::Shuffle(f.cd_values.first().map_or(elem, |&v| v as usize)),
                FLETCHER32 => Stage::Fletcher32,
                id => match Codec::from_filter(id as u32, &f.cd_values, elem) {
                    Ok(c) => Stage::Codec(c),
                    Err(_) => Stage::Unsupported(id, f.name.clone()),
                },
            })
            .collect();
        Pipeline { stages }
    }

    /// Decodes a stored chunk into `out` (the chunk's exact uncompressed size). Filters whose
    /// bit is set in `mask` were skipped by the writer and are skipped here.
    pub(crate) fn decode(
        &self,
        stored: &[u8],
        mask: u32,
        out: &mut [u8],
    ) -> Result<(), ChunkError> {
        // Undo the filters last to first, skipping those the writer skipped for this chunk.
        let skipped = |i: usize| i < 32 && mask & (1 << i) != 0;
        let mut active = self
            .stages
            .iter()
            .enumerate()
            .rev()
            .filter(|(i, _)| !skipped(*i))
            .map(|(_, s)| s)
            .peekable();
        let Some(first) = active.next() else {
            return copy_exact("no filter", stored, out);
        };
        if active.peek().is_none() {
            // One stage (the detector case): straight into the caller's buffer.
            return run(first, stored, Dst::Exact(out));
        }
        SCRATCH.with(|s| {
            let (a, b) = &mut *s.borrow_mut();
            let cap = out.len().saturating_mul(2) + (1 << 16);
            run(first, stored, Dst::Grow(a, cap))?;
            std::mem::swap(a, b);
            while let Some(stage) = active.next() {
                // `b` holds the previous stage's output; `a` receives the next.
                if active.peek().is_none() {
                    return run(stage, b, Dst::Exact(out));
                }
                run(stage, b, Dst::Grow(a, cap))?;
                std::mem::swap(a, b);
            }
            Ok(())
        })
    }
}

/// Where a stage writes: the caller's buffer of known size, or a scratch vector.
enum Dst<'a> {
    Exact(&'a mut [u8]),
    Grow(&'a mut Vec<u8>, usize),
}

fn copy_exact(filter: &'static str, src: &[u8], out: &mut [u8]) -> Result<(), ChunkError> {
    if src.len() != out.len() {
        return Err(ChunkError::Size {
            filter,
            got: src.len(),
            expected: out.len(),
        });
    }
    out.copy_from_slice(src);
    Ok(())
}

fn run(stage: &Stage, src: &[u8], dst: Dst<'_>) -> Result<(), ChunkError> {
    match stage {
        Stage::Unsupported(id, name) => Err(ChunkError::Unsupported(*id, name.clone())),
        Stage::Codec(codec) => match dst {
            Dst::Exact(out) => Ok(codec.decode(src, out)?),
            Dst::Grow(buf, cap) => {
                let n = codec.decoded_len(src)?.filter(|&n| n <= cap as u64).ok_or(
                    ChunkError::Size {
                        filter: codec.name(),
                        got: usize::MAX,
                        expected: cap,
                    },
                )?;
                buf.clear();
                buf.resize(n as usize, 0);
                Ok(codec.decode(src, buf)?)
            }
        },
        Stage::Deflate => {
            let mut z = flate2::read::ZlibDecoder::new(src);
            match dst {
                Dst::Exact(out) => {
                    let mut got = 0;
                    while got < out.len() {
                        match z.read(&mut out[got..]) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) => return Err(ChunkError::Deflate(e.to_string())),
                        }
                    }
                    let mut extra = [0u8; 1];
                    let more = z
                        .read(&mut extra)
                        .map_err(|e| ChunkError::Deflate(e.to_string()))?;
                    if got != out.len() || more != 0 {
                        return Err(ChunkError::Size {
                            filter: "deflate",
                            got: got + more,
                            expected: out.len(),
                        });
                    }
                    Ok(())
                }
                Dst::Grow(buf, cap) => {
                    buf.clear();
                    let n = z
                        .take(cap as u64 + 1)
                        .read_to_end(buf)
                        .map_err(|e| ChunkError::Deflate(e.to_string()))?;
                    if n > cap {
                        return Err(ChunkError::Deflate(format!("inflates past {cap} bytes")));
                    }
                    Ok(())
                }
            }
        }
        Stage::Shuffle(size) => {
            let out: &mut [u8] = match dst {
                Dst::Exact(out) => {
                    if out.len() != src.len() {
                        return Err(ChunkError::Size {
                            filter: "shuffle",
                            got: src.len(),
                            expected: out.len(),
                        });
                    }
                    out
                }
                Dst::Grow(buf, _) => {
                    buf.clear();
                    buf.resize(src.len(), 0);
                    buf
                }
            };
            unshuffle(src, out, *size);
            Ok(())
        }
        Stage::Fletcher32 => {
            let Some(split) = src.len().checked_sub(4) else {
                return Err(ChunkError::Size {
                    filter: "fletcher32",
                    got: src.len(),
                    expected: 4,
                });
            };
            let (data, sum) = src.split_at(split);
            let stored = u32::from_le_bytes(sum.try_into().expect("4 bytes"));
            let computed = fletcher32(data);
            // Files from HDF5 before 1.6.3 stored the sum with its bytes swapped in pairs.
            let swapped = u32::from_le_bytes([sum[1], sum[0], sum[3], sum[2]]);
            if computed != stored && computed != swapped {
                return Err(ChunkError::Fletcher32 { stored, computed });
            }
            match dst {
                Dst::Exact(out) => copy_exact("fletcher32", data, out),
                Dst::Grow(buf, _) => {
                    buf.clear();
                    buf.extend_from_slice(data);
                    Ok(())
                }
            }
        }
    }
}

/// Undoes HDF5's byte shuffle: byte b of element i was stored at b * n + i. Trailing bytes that
/// do not fill an element were stored as they are.
fn unshuffle(src: &[u8], out: &mut [u8], size: usize) {
    if size <= 1 || src.len() < size {
        out.copy_from_slice(src);
        return;
    }
    let n = src.len() / size;
    for (b, plane) in src[..n * size].chunks_exact(n).enumerate() {
        for (i, &v) in plane.iter().enumerate() {
            out[i * size + b] = v;
        }
    }
    out[n * size..].copy_from_slice(&src[n * size..]);
}

/// Fletcher's checksum over big-endian 16-bit words, as HDF5 computes it.
pub(crate) fn fletcher32(data: &[u8]) -> u32 {
    let (mut s1, mut s2) = (0xffffu32, 0xffffu32);
    let words = data.chunks_exact(2);
    let odd = words.remainder().first().copied();
    let mut left = data.len() / 2;
    let mut words = words;
    while left > 0 {
        // 360 words keep the sums below 2^32 between reductions.
        let n = left.min(360);
        left -= n;
        for w in words.by_ref().take(n) {
            s1 += u32::from(w[0]) << 8 | u32::from(w[1]);
            s2 += s1;
        }
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    if let Some(b) = odd {
        s1 += u32::from(b) << 8;
        s2 += s1;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    (s2 << 16) | s1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshuffle_inverts_shuffle() {
        let data: Vec<u8> = (0..=22).collect();
        let size = 4;
        let n = data.len() / size;
        let mut shuffled = vec![0u8; data.len()];
        for i in 0..n {
            for b in 0..size {
                shuffled[b * n + i] = data[i * size + b];
            }
        }
        shuffled[n * size..].copy_from_slice(&data[n * size..]);
        let mut out = vec![0u8; data.len()];
        unshuffle(&shuffled, &mut out, size);
        assert_eq!(out, data);
    }

    #[test]
    fn fletcher32_of_known_words() {
        // Two words 0x0102, 0x0304, by hand: s1 = 0xffff+0x102 -> 0x102 after folding, ...
        let s = fletcher32(&[1, 2, 3, 4]);
        let mut s1 = 0xffffu32;
        let mut s2 = 0xffffu32;
        for w in [0x0102u32, 0x0304] {
            s1 = (s1 + w) % 0xffff;
            s2 = (s2 + s1) % 0xffff;
        }
        assert_eq!(s, (s2 << 16) | s1);
    }
}
