//! hdrmx filter 311: noise-bounded lossy compression of photon counts ([`crate::reduce::lossy`]),
//! then bitshuffle with LZ4 or zstd.
//!
//! cd_values: `[version, q in thousandths of σ, inner (0 LZ4, 1 zstd), zstd level, elem_size]`
//! ([`CD_VERSION`] = 1). q = 0 is lossless: only the masked marker (the dtype's maximum) moves to
//! the chunk's masked code, one past its largest count, which bitshuffle packs better than a sea
//! of `0xFFFFFFFF`.
//!
//! A chunk (big-endian fields), version 1:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `HXLQ` |
//! | 1 | version (1) |
//! | 1 | element size of the data: 1, 2 or 4 |
//! | 1 | code size: 1, 2 or 4, the narrowest that holds the chunk's largest code |
//! | 1 | inner compression: 0 LZ4, 1 zstd |
//! | 4 | q in thousandths |
//! | 8 | element count |
//! | 4 | masked code: one past the largest code of a count; masked pixels have it |
//! | 4 | number of per-code sums |
//! | 4 | bytes of per-code sums |
//! | ... | per-code sums: for each key (code · 8 + context class, see `reduce::lossy`) of a code covering more than one count that occurs, in increasing order: LEB128 (key − previous key, the first from 0), LEB128 (pixels), LEB128 (sum of their counts − pixels × bin start) |
//! | ... | the codes: a filter-32008 chunk (12-byte header, LZ4 blocks or zstd frames) of the codes in the code size |
//!
//! Elements are in the host's byte order (little-endian on every machine this is built for), as
//! HDF5 hands them to a filter. The decoder checks every size field against the chunk's known
//! size and the parameters before it allocates or reads anything they point to, and every code,
//! sum and per-key pixel count as it turns codes into counts (a chunk that fails a check leaves
//! the output unspecified); nothing is read or written out of bounds.
use super::bitshuffle::{Bitshuffle, Compression};
use super::bytes::{put_u32_be, put_u64_be, Cursor};
use super::error::{check_room, CodecError};
use crate::reduce::lossy::{self as quant, Quantiser, Sums};
use crate::reduce::Count;
use std::cell::RefCell;

/// The HDF5 filter id (HDF5's range for unregistered filters is 256-511).
pub const FILTER_ID: u32 = 311;
/// cd_values[0] and the chunk's version byte.
pub const CD_VERSION: u32 = 1;
pub const MAGIC: [u8; 4] = *b"HXLQ";
pub const HEADER_LEN: usize = 32;
/// zstd level when cd_values do not give one.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

const NAME: &str = "lossy";

/// What compresses the bitshuffled codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner {
    Lz4,
    /// zstd at a level.
    Zstd(i32),
}

impl Inner {
    fn code(self) -> u8 {
        match self {
            Inner::Lz4 => 0,
            Inner::Zstd(_) => 1,
        }
    }

    fn compression(self) -> Compression {
        match self {
            Inner::Lz4 => Compression::Lz4,
            Inner::Zstd(level) => Compression::Zstd { level },
        }
    }
}

/// Parameters of one 311 dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lossy {
    q_milli: u32,
    inner: Inner,
    elem_size: usize,
}

fn bad(reason: impl Into<String>) -> CodecError {
    CodecError::BadParameters {
        codec: NAME,
        reason: reason.into(),
    }
}

fn corrupt(reason: impl Into<String>) -> CodecError {
    CodecError::Corrupt {
        codec: NAME,
        reason: reason.into(),
    }
}

impl Lossy {
    /// Element sizes supported: unsigned counts of 1, 2 or 4 bytes.
    pub const ELEM_SIZES: &'static str = "1, 2 or 4 (unsigned integer counts)";

    /// Step `q` in σ (rounded down to thousandths; 0 = lossless), inner compression, element
    /// size in bytes.
    pub fn new(q: f64, inner: Inner, elem_size: usize) -> Result<Lossy, CodecError> {
        Lossy::with_q_milli(quant::q_to_milli(q).map_err(bad)?, inner, elem_size)
    }

    /// The same with q in thousandths.
    pub fn with_q_milli(q_milli: u32, inner: Inner, elem_size: usize) -> Result<Lossy, CodecError> {
        quant::check_q_milli(q_milli).map_err(bad)?;
        if !matches!(elem_size, 1 | 2 | 4) {
            return Err(CodecError::BadElementSize {
                codec: NAME,
                elem_size,
                supported: Self::ELEM_SIZES,
            });
        }
        Ok(Lossy {
            q_milli,
            inner,
            elem_size,
        })
    }

    /// Parameters from cd_values `[version, q_milli, inner, level, elem_size]`; `elem_size` is
    /// the datatype's size, used when cd_values[4] is missing or 0.
    pub fn from_cd_values(cd: &[u32], elem_size: usize) -> Result<Lossy, CodecError> {
        match cd.first() {
            Some(&CD_VERSION) => {}
            Some(&v) => return Err(bad(format!("cd_values version {v}, this build reads 1"))),
            None => return Err(bad("no cd_values")),
        }
        let q_milli = cd.get(1).copied().unwrap_or(Q_DEFAULT_MILLI);
        let inner = match cd.get(2).copied().unwrap_or(0) {
            0 => Inner::Lz4,
            1 => Inner::Zstd(cd.get(3).map_or(DEFAULT_ZSTD_LEVEL, |&l| l as i32)),
            other => return Err(bad(format!("inner compression {other} (0 LZ4, 1 zstd)"))),
        };
        let elem = match cd.get(4) {
            Some(&e) if e != 0 => e as usize,
            _ => elem_size,
        };
        Lossy::with_q_milli(q_milli, inner, elem)
    }

    pub fn cd_values(&self) -> Vec<u32> {
        let level = match self.inner {
            Inner::Lz4 => 0,
            Inner::Zstd(l) => l as u32,
        };
        vec![
            CD_VERSION,
            self.q_milli,
            u32::from(self.inner.code()),
            level,
            self.elem_size as u32,
        ]
    }

    /// The step in σ.
    pub fn q(&self) -> f64 {
        f64::from(self.q_milli) / f64::from(quant::Q_SCALE)
    }

    pub fn q_milli(&self) -> u32 {
        self.q_milli
    }

    pub fn inner(&self) -> Inner {
        self.inner
    }

    pub fn elem_size(&self) -> usize {
        self.elem_size
    }

    /// The quantiser these parameters use.
    pub fn quantiser(&self) -> Quantiser {
        let max = match self.elem_size {
            1 => u32::from(u8::MAX),
            2 => u32::from(u16::MAX),
            _ => u32::MAX,
        };
        Quantiser::with_max(self.q_milli, max).expect("q checked in the constructor")
    }

    fn bitshuffle(&self, code_size: usize) -> Bitshuffle {
        Bitshuffle::new(code_size, self.inner.compression()).expect("code sizes are 1, 2 or 4")
    }

    fn count(&self, len: usize) -> Result<usize, CodecError> {
        if !len.is_multiple_of(self.elem_size) {
            return Err(CodecError::PartialElement {
                codec: NAME,
                len,
                elem_size: self.elem_size,
            });
        }
        Ok(len / self.elem_size)
    }

    /// The uncompressed size the chunk's header declares (cap it before allocating from it).
    pub fn decoded_len(&self, chunk: &[u8]) -> Result<u64, CodecError> {
        let h = Header::parse(chunk)?;
        Ok(h.count.saturating_mul(u64::from(h.elem_size)))
    }

    /// An upper bound of the encoded size of `len` bytes.
    pub fn max_encoded_len(&self, len: usize) -> usize {
        let n = len / self.elem_size;
        let sums = if self.q_milli == 0 {
            0
        } else {
            let q = self.quantiser();
            let (lo, hi) = q
                .range(q.last_code() - 1)
                .expect("the last bin has a range");
            let keys = last_key(&q);
            let entries = (n as u64).min(keys) as usize;
            let d_max = n as u64 * u64::from(hi - lo);
            entries * (leb128_len(keys) + leb128_len(n as u64) + leb128_len(d_max))
        };
        let codes = [1, 2, 4]
            .into_iter()
            .filter(|&s| s <= self.elem_size)
            .map(|s| self.bitshuffle(s).max_encoded_len(n * s))
            .max()
            .unwrap_or(0);
        HEADER_LEN + sums + codes
    }

    /// Encodes `src` into `dst` (at least [`Lossy::max_encoded_len`] bytes); returns the length.
    pub fn encode_into(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
        let n = self.count(src.len())?;
        check_room(NAME, self.max_encoded_len(src.len()), dst.len())?;
        let q = self.quantiser();
        with_aligned_input(src, |words| {
            let (code_size, sums) = match self.elem_size {
                1 => quantise::<u8>(&q, bytemuck::cast_slice(words), n),
                2 => quantise::<u16>(&q, bytemuck::cast_slice(words), n),
                _ => quantise::<u32>(&q, bytemuck::cast_slice(words), n),
            };
            dst[..4].copy_from_slice(&MAGIC);
            dst[4] = CD_VERSION as u8;
            dst[5] = self.elem_size as u8;
            dst[6] = code_size as u8;
            dst[7] = self.inner.code();
            let mut pos = put_u32_be(dst, 8, self.q_milli);
            pos = put_u64_be(dst, pos, n as u64);
            pos = put_u32_be(dst, pos, sums.masked_code);
            pos = put_u32_be(dst, pos, sums.offsets.len() as u32);
            let sums_at = pos + 4;
            let mut end = sums_at;
            let mut prev = 0;
            for &(key, count, d) in &sums.offsets {
                end = put_leb128(dst, end, u64::from(key - prev));
                end = put_leb128(dst, end, u64::from(count));
                end = put_leb128(dst, end, d);
                prev = key;
            }
            put_u32_be(dst, pos, (end - sums_at) as u32);
            let codes = CODES.with(|c| {
                let c = c.borrow();
                let bytes: &[u8] = bytemuck::cast_slice(&c[..]);
                self.bitshuffle(code_size)
                    .encode_into(&bytes[..n * code_size], &mut dst[end..])
            })?;
            Ok(end + codes)
        })
    }

    /// Decodes `chunk` into `out`, whose length is the chunk's known uncompressed size. On error
    /// the contents of `out` are unspecified.
    pub fn decode(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let n = self.count(out.len())?;
        let h = Header::parse(chunk)?;
        if usize::from(h.elem_size) != self.elem_size {
            return Err(bad(format!(
                "chunk holds {}-byte elements, the dataset {}-byte",
                h.elem_size, self.elem_size
            )));
        }
        if h.q_milli != self.q_milli {
            return Err(bad(format!(
                "chunk was quantised with q = {}, the dataset's cd_values say q = {}",
                f64::from(h.q_milli) / 1000.0,
                self.q()
            )));
        }
        if h.count != n as u64 {
            return Err(CodecError::SizeMismatch {
                codec: NAME,
                claimed: h.count.saturating_mul(u64::from(h.elem_size)),
                expected: out.len() as u64,
            });
        }
        let code_size = usize::from(h.code_size);
        if !matches!(code_size, 1 | 2 | 4) || code_size > self.elem_size {
            return Err(corrupt(format!(
                "code size {code_size} (1, 2 or 4, at most the element size {})",
                self.elem_size
            )));
        }
        let inner = match (h.inner, self.inner) {
            (0, _) => Inner::Lz4,
            (1, Inner::Zstd(l)) => Inner::Zstd(l),
            (1, Inner::Lz4) => Inner::Zstd(DEFAULT_ZSTD_LEVEL),
            (other, _) => return Err(corrupt(format!("inner compression {other}"))),
        };
        let mut input = Cursor::new(NAME, &chunk[HEADER_LEN..]);
        let sums_bytes = input.take(h.sums_len as usize, || "per-code sums".into())?;
        let q = self.quantiser();
        let sums = parse_sums(sums_bytes, h.sums_count, n, last_key(&q), h.masked_code)?;
        let body = &chunk[HEADER_LEN + h.sums_len as usize..];
        let codes_len = n * code_size;
        debug_assert!(code_size <= self.elem_size);
        let bs = Bitshuffle::new(code_size, inner.compression()).expect("code sizes are 1, 2 or 4");
        with_codes(codes_len, |codes| {
            with_aligned_output(out, |words| {
                let out_bytes: &mut [u8] = bytemuck::cast_slice_mut(words);
                let out_bytes = &mut out_bytes[..n * self.elem_size];
                let run = Decode {
                    bs: &bs,
                    body,
                    q: &q,
                    sums: &sums,
                };
                match (code_size, self.elem_size) {
                    (1, 1) => run.go::<u8, u8>(codes, out_bytes),
                    (1, 2) => run.go::<u8, u16>(codes, bytemuck::cast_slice_mut(out_bytes)),
                    (1, _) => run.go::<u8, u32>(codes, bytemuck::cast_slice_mut(out_bytes)),
                    (2, 2) => run.go::<u16, u16>(codes, bytemuck::cast_slice_mut(out_bytes)),
                    (2, _) => run.go::<u16, u32>(codes, bytemuck::cast_slice_mut(out_bytes)),
                    _ => run.go::<u32, u32>(codes, bytemuck::cast_slice_mut(out_bytes)),
                }
            })
        })
    }
}

/// Default step when cd_values give none: 1 σ.
pub const Q_DEFAULT_MILLI: u32 = quant::Q_SCALE;

struct Header {
    elem_size: u8,
    code_size: u8,
    inner: u8,
    q_milli: u32,
    count: u64,
    masked_code: u32,
    sums_count: u32,
    sums_len: u32,
}

impl Header {
    fn parse(chunk: &[u8]) -> Result<Header, CodecError> {
        let mut c = Cursor::new(NAME, chunk);
        let fixed = c.take(8, || "chunk header".into())?;
        if fixed[..4] != MAGIC {
            return Err(corrupt(format!(
                "not a lossy chunk: magic {:02x?}, expected \"HXLQ\"",
                &fixed[..4]
            )));
        }
        if u32::from(fixed[4]) != CD_VERSION {
            return Err(corrupt(format!(
                "chunk format version {}, this build reads {CD_VERSION}",
                fixed[4]
            )));
        }
        let q_milli = c.u32_be(|| "chunk header".into())?;
        let count = c.u64_be(|| "chunk header".into())?;
        let masked_code = c.u32_be(|| "chunk header".into())?;
        let sums_count = c.u32_be(|| "chunk header".into())?;
        let sums_len = c.u32_be(|| "chunk header".into())?;
        if sums_len as usize > c.remaining() {
            return Err(CodecError::Truncated {
                codec: NAME,
                what: "per-code sums".into(),
                needed: u64::from(sums_len),
                available: c.remaining() as u64,
            });
        }
        Ok(Header {
            elem_size: fixed[5],
            code_size: fixed[6],
            inner: fixed[7],
            q_milli,
            count,
            masked_code,
            sums_count,
            sums_len,
        })
    }
}

/// The largest per-code sum key, `code · CONTEXTS + context` (codes below the last, which is
/// a masked code); 0 at q = 0, which has no sums.
fn last_key(q: &Quantiser) -> u64 {
    if q.q_milli() == 0 {
        return 0;
    }
    u64::from(q.last_code()) * quant::CONTEXTS as u64 - 1
}

/// Reads `count` (key delta, offset) pairs, checking the count against what the chunk could
/// hold before allocating, and that keys increase and stay in the table.
fn parse_sums(
    bytes: &[u8],
    count: u32,
    n: usize,
    last: u64,
    masked_code: u32,
) -> Result<Sums, CodecError> {
    // Each entry takes at least three bytes, and no more entries than pixels or keys.
    if count as usize > bytes.len() / 3 || count as usize > n || u64::from(count) > last {
        return Err(corrupt(format!(
            "{count} per-code sums in {} bytes for {n} pixels and {last} keys",
            bytes.len()
        )));
    }
    let mut offsets = Vec::with_capacity(count as usize);
    let mut pos = 0;
    let mut key = 0u64;
    for i in 0..count {
        let delta = read_leb128(bytes, &mut pos)
            .ok_or_else(|| corrupt(format!("per-code sum {i}: bad key varint")))?;
        let pixels = read_leb128(bytes, &mut pos)
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| corrupt(format!("per-code sum {i}: bad pixel count varint")))?;
        let d = read_leb128(bytes, &mut pos)
            .ok_or_else(|| corrupt(format!("per-code sum {i}: bad sum varint")))?;
        key = match key.checked_add(delta) {
            Some(k) if delta > 0 && k <= last => k,
            _ => {
                return Err(corrupt(format!(
                "per-code sum {i}: key step {delta} from {key} (keys must increase, up to {last})"
            )))
            }
        };
        offsets.push((key as u32, pixels, d));
    }
    if pos != bytes.len() {
        return Err(corrupt(format!(
            "{} bytes after the last per-code sum",
            bytes.len() - pos
        )));
    }
    Ok(Sums {
        masked_code,
        offsets,
    })
}

fn leb128_len(mut v: u64) -> usize {
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

fn put_leb128(dst: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        dst[pos] = (v as u8) | 0x80;
        v >>= 7;
        pos += 1;
    }
    dst[pos] = v as u8;
    pos + 1
}

/// A LEB128 u64 at `*pos`; `None` when truncated, over-long or overflowing.
fn read_leb128(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        let bits = u64::from(b & 0x7F);
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

thread_local! {
    /// The codes of the chunk being encoded or decoded, reused from chunk to chunk.
    static CODES: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// An aligned copy of input or output that is not aligned for its element type.
    static ALIGNED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

fn words(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// Runs `f` on the chunk's codes buffer, `len` bytes.
fn with_codes<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    CODES.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < words(len) {
            buf.resize(words(len), 0);
        }
        f(&mut bytemuck::cast_slice_mut(&mut buf[..])[..len])
    })
}

/// `src` as 4-byte-aligned words (copied if it is not aligned; the tail word zero-padded).
fn with_aligned_input<R>(src: &[u8], f: impl FnOnce(&[u32]) -> R) -> R {
    if let Ok(w) = bytemuck::try_cast_slice::<u8, u32>(src) {
        return f(w);
    }
    ALIGNED.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        buf.resize(words(src.len()), 0);
        bytemuck::cast_slice_mut::<u32, u8>(&mut buf[..])[..src.len()].copy_from_slice(src);
        f(&buf)
    })
}

/// `out` as 4-byte-aligned words: in place when aligned, else through a copy.
fn with_aligned_output<R>(out: &mut [u8], f: impl FnOnce(&mut [u32]) -> R) -> R {
    if let Ok(w) = bytemuck::try_cast_slice_mut::<u8, u32>(out) {
        return f(w);
    }
    ALIGNED.with(|cell| {
        let mut buf = cell.borrow_mut();
        buf.clear();
        buf.resize(words(out.len()), 0);
        let r = f(&mut buf);
        out.copy_from_slice(&bytemuck::cast_slice::<u32, u8>(&buf[..])[..out.len()]);
        r
    })
}

/// Quantises `n` values of `T` (the start of `values`) into [`CODES`] in the narrowest code
/// size; returns (code size, sums).
fn quantise<T: Count + bytemuck::Pod>(q: &Quantiser, values: &[T], n: usize) -> (usize, Sums) {
    let values = &values[..n];
    let code_size = match q.masked_code(values) {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        _ => 4,
    };
    let sums = with_codes(n * code_size, |codes| match code_size {
        1 => q.quantise::<T, u8>(values, codes),
        2 => q.quantise::<T, u16>(values, bytemuck::cast_slice_mut(codes)),
        _ => q.quantise::<T, u32>(values, bytemuck::cast_slice_mut(codes)),
    });
    (code_size, sums)
}

/// One chunk's decoding: the codes come out of bitshuffle block by block and are turned into
/// counts while the block is still in cache.
struct Decode<'a> {
    bs: &'a Bitshuffle,
    body: &'a [u8],
    q: &'a Quantiser,
    sums: &'a Sums,
}

impl Decode<'_> {
    fn go<C: Count + bytemuck::Pod, T: Count>(
        &self,
        codes: &mut [u8],
        out: &mut [T],
    ) -> Result<(), CodecError> {
        self.q
            .dequantiser(self.sums, out.len(), |d| {
                let mut failed = None;
                let decoded = self.bs.decode_with(self.body, codes, |_, part| {
                    if failed.is_none() {
                        // Parts are whole elements at multiples of 8 elements: aligned for C.
                        failed = d.feed(bytemuck::cast_slice::<u8, C>(part), out).err();
                    }
                });
                decoded.map_err(|e| format!("the codes do not decode: {e}"))?;
                if let Some(e) = failed {
                    return Err(e);
                }
                d.finish(out)
            })
            .map_err(corrupt)
    }
}
