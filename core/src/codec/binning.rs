//! HDF5 filter 310 (hdrmx binning, private range): each frame stored as its N x N bin sums.
//!
//! The stored chunk keeps, per frame, the sum of the valid pixels of each `n` x `n` bin (valid:
//! not at the type's maximum, EIGER's invalid marker), and the exact positions of the invalid
//! pixels. Decoding returns the full chunk: invalid pixels exactly, and each bin's sum spread
//! over its valid pixels (see [`Binning::decode`]), so every bin's total is exact while the
//! pixel values within a bin are not. Bins at the right and bottom edges that do not fill
//! `n` x `n` pixels are smaller bins: nothing is dropped.
//!
//! cd_values: `[n, elem_size, ny, nx]`, a frame being `ny` rows of `nx` pixels. A chunk holds
//! `k >= 1` whole frames (`[k, ny, nx]`).
//!
//! Chunk layout, integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `HXBN` |
//! | 1 | format version, 1 |
//! | 1, 1, 1 | n, element size (1, 2, 4), 0 |
//! | 4, 4, 4 | nx, ny, frames k |
//! | 8 | decoded bytes, `k * ny * nx * elem_size` |
//! | 4 | invalid runs |
//! | 4, 4 | bytes of the run list stored, and unpacked |
//! | ... | the run list: LZ4 block, or raw when that is not smaller |
//! | ... | bin sums: a bitshuffle/LZ4 chunk (filter 32008's layout) |
//!
//! The run list holds, for each maximal run of invalid pixels in the chunk's row-major order
//! (across frames), the gap since the previous run's end and the run's length, as LEB128
//! varints; EIGER's module gaps make it a few repeating bytes per row, which LZ4 squeezes. The
//! bin sums are u32 for 1- and 2-byte data and u64 for 4-byte data, frame by frame, row-major,
//! `ceil(ny / n)` rows of `ceil(nx / n)`.

use super::bitshuffle::{Bitshuffle, Compression};
use super::block;
use super::bytes::{put_u32_be, put_u64_be, Cursor};
use super::error::{check_room, CodecError};
use super::lz4_block::SLACK;
use crate::reduce::Count;

/// The HDF5 filter id (private range 256-511).
pub const FILTER_ID: u32 = 310;
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the run list.
pub const HEADER_LEN: usize = 40;
/// Bin sizes: a bin of up to 16 x 16 pixels (256, so a bin's pixel count fits in u16).
pub const MAX_N: usize = 16;

const MAGIC: [u8; 4] = *b"HXBN";
const NAME: &str = "binning";

/// Parameters of one binned dataset: bin size, element size and frame shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binning {
    n: usize,
    nx: usize,
    ny: usize,
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

impl Binning {
    /// Bins of `n` x `n` pixels (1 to 16) over frames of `nx` by `ny` pixels of `elem_size` bytes
    /// (1, 2 or 4: unsigned photon counts).
    pub fn new(n: usize, nx: usize, ny: usize, elem_size: usize) -> Result<Binning, CodecError> {
        if !(1..=MAX_N).contains(&n) {
            return Err(bad(format!("bin size {n}, expected 1 to {MAX_N}")));
        }
        if !matches!(elem_size, 1 | 2 | 4) {
            return Err(CodecError::BadElementSize {
                codec: NAME,
                elem_size,
                supported: "1, 2 or 4 (unsigned photon counts)",
            });
        }
        if nx == 0 || ny == 0 {
            return Err(bad(format!("empty frame shape {ny} x {nx}")));
        }
        // A frame must fit an HDF5 chunk (4 GiB), which keeps every index below in u32.
        match nx.checked_mul(ny).and_then(|p| p.checked_mul(elem_size)) {
            Some(b) if b <= u32::MAX as usize => {}
            _ => {
                return Err(bad(format!(
                    "frame of {ny} x {nx} pixels is larger than 4 GiB"
                )))
            }
        }
        Ok(Binning {
            n,
            nx,
            ny,
            elem_size,
        })
    }

    /// Parameters from cd_values `[n, elem_size, ny, nx]`; an element size of 0 takes
    /// `elem_size`, the datatype's size.
    pub fn from_cd_values(cd: &[u32], elem_size: usize) -> Result<Binning, CodecError> {
        let [n, elem, ny, nx] = match cd {
            [a, b, c, d, ..] => [*a, *b, *c, *d],
            _ => {
                return Err(bad(format!(
                    "{} cd_values, need [n, elem_size, ny, nx] (was set_local skipped?)",
                    cd.len()
                )))
            }
        };
        let elem = if elem == 0 { elem_size } else { elem as usize };
        Binning::new(n as usize, nx as usize, ny as usize, elem)
    }

    pub fn cd_values(&self) -> Vec<u32> {
        vec![
            self.n as u32,
            self.elem_size as u32,
            self.ny as u32,
            self.nx as u32,
        ]
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn elem_size(&self) -> usize {
        self.elem_size
    }

    /// Frame shape `(nx, ny)`.
    pub fn frame_shape(&self) -> (usize, usize) {
        (self.nx, self.ny)
    }

    /// Bins per frame, partial ones included: `(columns, rows)`.
    pub fn bins_shape(&self) -> (usize, usize) {
        (self.nx.div_ceil(self.n), self.ny.div_ceil(self.n))
    }

    fn frame_pixels(&self) -> usize {
        self.nx * self.ny
    }

    fn sum_size(&self) -> usize {
        if self.elem_size == 4 {
            8
        } else {
            4
        }
    }

    fn sums_codec(&self) -> Bitshuffle {
        Bitshuffle::new(self.sum_size(), Compression::Lz4).expect("4 and 8 are bitshuffle sizes")
    }

    /// The uncompressed size the chunk's header declares.
    pub fn decoded_len(&self, chunk: &[u8]) -> Result<u64, CodecError> {
        Ok(self.header(chunk)?.decoded)
    }

    /// An upper bound of the encoded size of `len` bytes.
    pub fn max_encoded_len(&self, len: usize) -> usize {
        let pixels = len / self.elem_size;
        let frames = pixels.div_ceil(self.frame_pixels()).max(1);
        let (bx, by) = self.bins_shape();
        // Each varint takes at most as many bytes as the pixels its gap or run covers, plus one
        // for a first gap of 0.
        HEADER_LEN
            + block::lz4_bound(pixels + 1)
            + self
                .sums_codec()
                .max_encoded_len(frames * bx * by * self.sum_size())
    }

    /// Encodes whole frames (`src` is `k` frames of the dataset's type, little-endian) into
    /// `dst` (at least [`Binning::max_encoded_len`] bytes); returns the length.
    pub fn encode_into(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, CodecError> {
        check_room(NAME, self.max_encoded_len(src.len()), dst.len())?;
        let frame_bytes = self.frame_pixels() * self.elem_size;
        if !src.len().is_multiple_of(frame_bytes) {
            return Err(bad(format!(
                "{} bytes is not a whole number of {} x {} frames of {}-byte pixels (chunks must \
                 hold whole frames)",
                src.len(),
                self.ny,
                self.nx,
                self.elem_size
            )));
        }
        // As HDF5's chunks: it keeps every count and size of the header within its u32 fields.
        if src.len() > u32::MAX as usize {
            return Err(bad(format!(
                "a chunk of {} bytes; at most 4 GiB",
                src.len()
            )));
        }
        let frames = src.len() / frame_bytes;
        let (bx, by) = self.bins_shape();
        let mut sums = vec![0u8; frames * bx * by * self.sum_size()];
        let mut runs = Runs::default();
        match self.elem_size {
            1 => self.encode_frames_best::<u8>(src, &mut sums, &mut runs),
            2 => self.encode_frames_best::<u16>(src, &mut sums, &mut runs),
            _ => self.encode_frames_best::<u32>(src, &mut sums, &mut runs),
        }
        runs.flush();
        let raw = runs.bytes;
        let body = &mut dst[HEADER_LEN..];
        let packed = block::lz4_compress(&raw, body);
        let stored = if packed < raw.len() {
            packed
        } else {
            body[..raw.len()].copy_from_slice(&raw);
            raw.len()
        };
        let mut pos = HEADER_LEN + stored;
        pos += self.sums_codec().encode_into(&sums, &mut dst[pos..])?;

        dst[..4].copy_from_slice(&MAGIC);
        dst[4] = FORMAT_VERSION;
        dst[5] = self.n as u8;
        dst[6] = self.elem_size as u8;
        dst[7] = 0;
        let mut h = 8;
        h = put_u32_be(dst, h, self.nx as u32);
        h = put_u32_be(dst, h, self.ny as u32);
        h = put_u32_be(dst, h, frames as u32);
        h = put_u64_be(dst, h, src.len() as u64);
        h = put_u32_be(dst, h, runs.count as u32);
        h = put_u32_be(dst, h, stored as u32);
        h = put_u32_be(dst, h, raw.len() as u32);
        debug_assert_eq!(h, HEADER_LEN);
        Ok(pos)
    }

    /// [`Binning::encode_frames`] compiled for AVX2 when the CPU has it (the column sums run
    /// about twice as fast).
    fn encode_frames_best<T: Count + bytemuck::Pod>(
        &self,
        src: &[u8],
        sums: &mut [u8],
        runs: &mut Runs,
    ) {
        #[cfg(target_arch = "x86_64")]
        if crate::frame::xds::avx2() {
            // SAFETY: avx2() has checked that the CPU runs AVX2.
            return unsafe { self.avx2_encode_frames::<T>(src, sums, runs) };
        }
        self.encode_frames::<T>(src, sums, runs)
    }

    /// # Safety
    /// The CPU must run AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2_encode_frames<T: Count + bytemuck::Pod>(
        &self,
        src: &[u8],
        sums: &mut [u8],
        runs: &mut Runs,
    ) {
        self.encode_frames::<T>(src, sums, runs)
    }

    #[inline(always)]
    fn encode_frames<T: Count + bytemuck::Pod>(
        &self,
        src: &[u8],
        sums: &mut [u8],
        runs: &mut Runs,
    ) {
        let (n, nx) = (self.n, self.nx);
        let (bx, by) = self.bins_shape();
        let bins = bx * by;
        let mut copy = Vec::new();
        let mut cols = vec![0u64; nx];
        let mut row = vec![0u64; bx];
        let frame_bytes = self.frame_pixels() * self.elem_size;
        for (f, bytes) in src.chunks_exact(frame_bytes).enumerate() {
            let frame: &[T] = values(bytes, &mut copy);
            runs.scan(frame, f * self.frame_pixels());
            let out = &mut sums[f * bins * self.sum_size()..][..bins * self.sum_size()];
            for (r, lines) in frame.chunks(n * nx).enumerate() {
                // Down the bin's rows per column, then across each bin's columns.
                cols.fill(0);
                for line in lines.chunks_exact(nx) {
                    add_valid(line, &mut cols);
                }
                for (s, c) in row.iter_mut().zip(cols.chunks(n)) {
                    *s = c.iter().sum();
                }
                let dst = &mut out[r * bx * self.sum_size()..][..bx * self.sum_size()];
                if self.sum_size() == 8 {
                    for (d, &s) in dst.chunks_exact_mut(8).zip(&row) {
                        d.copy_from_slice(&s.to_le_bytes());
                    }
                } else {
                    for (d, &s) in dst.chunks_exact_mut(4).zip(&row) {
                        d.copy_from_slice(&(s as u32).to_le_bytes());
                    }
                }
            }
        }
    }

    /// The header's fields, checked against the parameters.
    fn header<'a>(&self, chunk: &'a [u8]) -> Result<Header<'a>, CodecError> {
        let mut c = Cursor::new(NAME, chunk);
        let fixed = c.take(8, || "header".into())?;
        if fixed[..4] != MAGIC {
            return Err(corrupt("not a binning chunk (bad magic)"));
        }
        if fixed[4] != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {}, this reader knows {FORMAT_VERSION}",
                fixed[4]
            )));
        }
        if usize::from(fixed[5]) != self.n || usize::from(fixed[6]) != self.elem_size {
            return Err(corrupt(format!(
                "chunk is {0}x{0} bins of {1}-byte pixels, the dataset's parameters say {2}x{2} of {3}",
                fixed[5], fixed[6], self.n, self.elem_size
            )));
        }
        let nx = c.u32_be(|| "nx".into())? as usize;
        let ny = c.u32_be(|| "ny".into())? as usize;
        if (nx, ny) != (self.nx, self.ny) {
            return Err(corrupt(format!(
                "chunk frames are {ny} x {nx}, the dataset's parameters say {} x {}",
                self.ny, self.nx
            )));
        }
        let frames = c.u32_be(|| "frames".into())? as u64;
        let decoded = c.u64_be(|| "decoded size".into())?;
        let frame_bytes = (self.frame_pixels() * self.elem_size) as u64;
        if frames.checked_mul(frame_bytes) != Some(decoded) {
            return Err(corrupt(format!(
                "header says {frames} frames of {frame_bytes} bytes but {decoded} bytes"
            )));
        }
        let runs = c.u32_be(|| "run count".into())? as u64;
        let stored = c.u32_be(|| "run list size".into())? as usize;
        let raw = c.u32_be(|| "run list unpacked size".into())? as u64;
        let pixels = decoded / self.elem_size as u64;
        // Runs are separated by valid pixels; each varint pair takes at most 10 bytes.
        if runs > pixels.div_ceil(2) || raw > runs * 10 || (runs > 0 && raw < runs * 2) {
            return Err(corrupt(format!(
                "{runs} invalid runs in {raw} bytes cannot describe {pixels} pixels"
            )));
        }
        if stored as u64 > raw {
            return Err(corrupt(format!(
                "run list stored in {stored} bytes, more than its {raw} unpacked"
            )));
        }
        let list = c.take(stored, || "run list".into())?;
        Ok(Header {
            frames: frames as usize,
            decoded,
            runs: runs as usize,
            raw: raw as usize,
            list,
            sums: &chunk[c.pos..],
        })
    }

    /// Decodes `chunk` into `out`, whose length is the chunk's known size.
    ///
    /// Invalid pixels come back exactly (the type's maximum). The sum `S` of a bin with `c`
    /// valid pixels is spread as `S / c` on each, plus one on the first `S % c` valid pixels in
    /// row-major order within the bin: deterministic, and the bin's total is exact.
    pub fn decode(&self, chunk: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let h = self.header(chunk)?;
        if h.decoded != out.len() as u64 {
            return Err(CodecError::SizeMismatch {
                codec: NAME,
                claimed: h.decoded,
                expected: out.len() as u64,
            });
        }
        let runs = self.read_runs(&h)?;
        let (bx, by) = self.bins_shape();
        let sum_bytes = h.frames * bx * by * self.sum_size();
        let sums_codec = self.sums_codec();
        // The sums' own errors, named as ours: the user asked for a binning filter.
        let inner = |e: CodecError| corrupt(format!("bin sums: {e}"));
        let declared = sums_codec.decoded_len(h.sums).map_err(inner)?;
        if declared != sum_bytes as u64 {
            return Err(corrupt(format!(
                "bin sums claim {declared} bytes, {} frames of {bx} x {by} bins need {sum_bytes}",
                h.frames
            )));
        }
        let mut sums = vec![0u8; sum_bytes];
        sums_codec.decode(h.sums, &mut sums).map_err(inner)?;
        match self.elem_size {
            1 => self.spread::<u8>(&runs, &sums, out),
            2 => self.spread::<u16>(&runs, &sums, out),
            _ => self.spread::<u32>(&runs, &sums, out),
        }
    }

    /// The run list as `(start, end)` pixel indices, checked: in order, apart, inside the chunk.
    fn read_runs(&self, h: &Header) -> Result<Vec<(usize, usize)>, CodecError> {
        let mut raw = vec![0u8; h.raw + SLACK];
        if h.list.len() == h.raw {
            raw[..h.raw].copy_from_slice(h.list);
        } else {
            block::lz4_decompress(h.list, &mut raw, h.raw)
                .map_err(|e| corrupt(format!("run list: {e}")))?;
        }
        let raw = &raw[..h.raw];
        let total = h.frames * self.frame_pixels();
        let mut runs = Vec::with_capacity(h.runs);
        let mut pos = 0usize;
        let mut end = 0usize;
        for k in 0..h.runs {
            let gap = varint(raw, &mut pos)?;
            let len = varint(raw, &mut pos)?;
            if (k > 0 && gap == 0) || len == 0 {
                return Err(corrupt(format!(
                    "invalid run {k} is empty or touches the last"
                )));
            }
            // Checked: a lying gap or length near 2^64 must not wrap around to a valid place.
            let stop = (end as u64)
                .checked_add(gap)
                .and_then(|start| start.checked_add(len))
                .filter(|&stop| stop <= total as u64)
                .ok_or_else(|| {
                    corrupt(format!(
                        "invalid run {k} (gap {gap}, length {len} after pixel {end}) goes past \
                         the chunk's {total} pixels"
                    ))
                })?;
            let start = stop - len;
            runs.push((start as usize, stop as usize));
            end = stop as usize;
        }
        if pos != raw.len() {
            return Err(corrupt(format!(
                "{} bytes after the last invalid run",
                raw.len() - pos
            )));
        }
        Ok(runs)
    }

    /// Writes the decoded frames: spread sums, then the invalid pixels, then the bins that hold
    /// invalid pixels again, over their valid pixels only.
    fn spread<T: Count + bytemuck::Pod>(
        &self,
        runs: &[(usize, usize)],
        sums: &[u8],
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let (n, nx, ny) = (self.n, self.nx, self.ny);
        let (bx, by) = self.bins_shape();
        let bins = bx * by;
        let npx = self.frame_pixels();
        let max = u64::from(T::MAX.get()) - 1;
        let mut invalid = vec![0u16; bins];
        let mut touched: Vec<usize> = Vec::new();
        let mut sum = vec![0u64; bins];
        let mut next_run = 0;
        let mut one_frame = |f: usize, frame: &mut [T]| -> Result<(), CodecError> {
            let base = f * npx;
            for (s, b) in sum
                .iter_mut()
                .zip(sums[f * bins * self.sum_size()..].chunks_exact(self.sum_size()))
            {
                *s = if self.sum_size() == 8 {
                    u64::from_le_bytes(b.try_into().expect("8 bytes"))
                } else {
                    u64::from(u32::from_le_bytes(b.try_into().expect("4 bytes")))
                };
            }
            // This frame's invalid pixels, counted per bin.
            for &b in &touched {
                invalid[b] = 0;
            }
            touched.clear();
            let first_run = next_run;
            while next_run < runs.len() && runs[next_run].0 < base + npx {
                let (s, e) = runs[next_run];
                let (s, e) = (s.max(base) - base, e.min(base + npx) - base);
                for_row_segments(s, e, nx, |y, x0, x1| {
                    let row = y / n * bx;
                    for b in x0 / n..=(x1 - 1) / n {
                        let k = row + b;
                        if invalid[k] == 0 {
                            touched.push(k);
                        }
                        invalid[k] += ((b + 1) * n).min(x1).saturating_sub((b * n).max(x0)) as u16;
                    }
                });
                if runs[next_run].1 > base + npx {
                    break; // The run goes on into the next frame.
                }
                next_run += 1;
            }
            // Every sum must fit its valid pixels below the invalid marker.
            for (y, (sums, invalid)) in sum
                .chunks_exact(bx)
                .zip(invalid.chunks_exact(bx))
                .enumerate()
            {
                let h = n.min(ny - y * n) as u64;
                for (x, (&s, &bad)) in sums.iter().zip(invalid).enumerate() {
                    let valid = n.min(nx - x * n) as u64 * h - u64::from(bad);
                    if s > valid * max {
                        return Err(corrupt(format!(
                            "frame {f}: bin {} sums to {s}, more than its {valid} valid pixels can hold",
                            y * bx + x
                        )));
                    }
                }
            }
            match n {
                2 => spread_full::<T, 2>(&sum, n, nx, ny, frame),
                3 => spread_full::<T, 3>(&sum, n, nx, ny, frame),
                4 => spread_full::<T, 4>(&sum, n, nx, ny, frame),
                _ => spread_full::<T, 0>(&sum, n, nx, ny, frame),
            }
            let mut r = first_run;
            while r < runs.len() && runs[r].0 < base + npx {
                let (s, e) = (runs[r].0.max(base) - base, runs[r].1.min(base + npx) - base);
                frame[s..e].fill(T::MAX);
                r += 1;
            }
            for &k in &touched {
                spread_partial(frame, sum[k], k % bx, k / bx, n, nx, ny);
            }
            Ok(())
        };
        let mut scratch: Vec<T> = Vec::new();
        for (f, out) in out.chunks_exact_mut(npx * self.elem_size).enumerate() {
            // Straight into the caller's buffer when it is aligned for T (HDF5's always is).
            if cfg!(target_endian = "little") {
                if let Ok(frame) = bytemuck::try_cast_slice_mut::<u8, T>(out) {
                    one_frame(f, frame)?;
                    continue;
                }
            }
            scratch.resize(npx, T::MAX);
            one_frame(f, &mut scratch)?;
            for (o, v) in out.chunks_exact_mut(self.elem_size).zip(&scratch) {
                o.copy_from_slice(&v.get().to_le_bytes()[..self.elem_size]);
            }
        }
        Ok(())
    }
}

/// The checked fields of a chunk header and where its parts are.
struct Header<'a> {
    frames: usize,
    decoded: u64,
    runs: usize,
    raw: usize,
    list: &'a [u8],
    sums: &'a [u8],
}

/// A little-endian value of 1, 2 or 4 bytes.
#[inline(always)]
fn le(b: &[u8]) -> u32 {
    let mut v = [0u8; 4];
    v[..b.len()].copy_from_slice(b);
    u32::from_le_bytes(v)
}

/// Width and height of bin `(x, y)`: `n`, less at the right and bottom edges.
fn bin_size(x: usize, y: usize, n: usize, nx: usize, ny: usize) -> (usize, usize) {
    (n.min(nx - x * n), n.min(ny - y * n))
}

/// Calls `f(row, x0, x1)` for the row pieces of pixels `s..e` of a frame `nx` wide.
fn for_row_segments(s: usize, e: usize, nx: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut p = s;
    while p < e {
        let (y, x0) = (p / nx, p % nx);
        let x1 = (nx).min(x0 + (e - p));
        f(y, x0, x1);
        p += x1 - x0;
    }
}

/// Adds one pixel row's valid values (those not at the type's maximum) to per-column sums.
#[inline(always)]
fn add_valid<T: Count>(line: &[T], cols: &mut [u64]) {
    let max = T::MAX.get();
    for (c, &v) in cols.iter_mut().zip(line) {
        let v = v.get();
        *c += u64::from(if v == max { 0 } else { v });
    }
}

/// A frame's little-endian bytes as values: a view when they are aligned (and the machine is
/// little-endian), else a copy in `copy`.
fn values<'a, T: Count + bytemuck::Pod>(bytes: &'a [u8], copy: &'a mut Vec<T>) -> &'a [T] {
    if cfg!(target_endian = "little") {
        if let Ok(v) = bytemuck::try_cast_slice(bytes) {
            return v;
        }
    }
    let size = std::mem::size_of::<T>();
    copy.clear();
    copy.extend(bytes.chunks_exact(size).map(|b| T::from_u32(le(b))));
    copy
}

/// Spreads every bin's sum over all its pixels: `S / size` each, one more on the first
/// `S % size` in row-major order within the bin. `N` is `n` when the compiler should know it
/// (full bins then divide by a constant), else 0.
fn spread_full<T: Count, const N: usize>(
    sum: &[u64],
    n: usize,
    nx: usize,
    ny: usize,
    frame: &mut [T],
) {
    let n = if N > 0 { N } else { n };
    let bx = nx.div_ceil(n);
    let full = nx / n;
    let mut q = vec![0u32; bx];
    let mut r = vec![0u32; bx];
    for (y, lines) in frame.chunks_mut(n * nx).enumerate() {
        let h = n.min(ny - y * n);
        let sums = &sum[y * bx..][..bx];
        if h == n {
            let size = (n * n) as u64;
            for ((q, r), &s) in q.iter_mut().zip(r.iter_mut()).zip(&sums[..full]) {
                // The sums were checked to fit: the quotient is below the type's maximum.
                (*q, *r) = ((s / size) as u32, (s % size) as u32);
            }
        }
        for b in if h == n { full } else { 0 }..bx {
            let size = (n.min(nx - b * n) * h) as u64;
            (q[b], r[b]) = ((sums[b] / size) as u32, (sums[b] % size) as u32);
        }
        for (dy, line) in lines.chunks_exact_mut(nx).enumerate() {
            let (body, tail) = line.split_at_mut(full * n);
            let first = (dy * n) as u32;
            for ((px, &q), &r) in body.chunks_exact_mut(n).zip(&q).zip(&r) {
                for (dx, v) in px.iter_mut().enumerate() {
                    *v = T::from_u32(q + u32::from(first + (dx as u32) < r));
                }
            }
            if !tail.is_empty() {
                let w = tail.len();
                let first = (dy * w) as u32;
                for (dx, v) in tail.iter_mut().enumerate() {
                    *v = T::from_u32(q[full] + u32::from(first + (dx as u32) < r[full]));
                }
            }
        }
    }
}

/// Spreads bin `(x, y)`'s sum over its valid pixels only (those not at the maximum).
fn spread_partial<T: Count>(
    frame: &mut [T],
    s: u64,
    x: usize,
    y: usize,
    n: usize,
    nx: usize,
    ny: usize,
) {
    let (w, h) = bin_size(x, y, n, nx, ny);
    let max = T::MAX.get();
    let pixel = |dy: usize, dx: usize| (y * n + dy) * nx + x * n + dx;
    let valid = (0..h * w)
        .filter(|&k| frame[pixel(k / w, k % w)].get() != max)
        .count() as u64;
    if valid == 0 {
        return;
    }
    let (q, r) = ((s / valid) as u32, s % valid);
    let mut rank = 0u64;
    for k in 0..h * w {
        let p = pixel(k / w, k % w);
        if frame[p].get() != max {
            frame[p] = T::from_u32(q + u32::from(rank < r));
            rank += 1;
        }
    }
}

/// One LEB128 varint of at most 64 bits.
fn varint(raw: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = raw.get(*pos) else {
            return Err(corrupt("run list ends inside a number"));
        };
        *pos += 1;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(corrupt("run list number longer than 64 bits"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The run list being built: runs of invalid pixels over the chunk's pixel indices.
#[derive(Default)]
struct Runs {
    bytes: Vec<u8>,
    count: usize,
    /// The run still open: (start, end).
    open: Option<(usize, usize)>,
    /// End of the last run written.
    last_end: usize,
}

impl Runs {
    /// Adds the invalid pixels of one frame whose first pixel has index `base`.
    fn scan<T: Count>(&mut self, frame: &[T], base: usize) {
        const STEP: usize = 64;
        let max = T::MAX.get();
        for (c, px) in frame.chunks(STEP).enumerate() {
            let at = base + c * STEP;
            // A run that ended before this step is complete.
            if matches!(self.open, Some((_, end)) if end < at) {
                self.flush();
            }
            // Most steps are all valid (or, inside a gap, all invalid): decide those at once.
            if self.open.is_none() && px.iter().all(|&v| v.get() != max) {
                continue;
            }
            if let Some((_, end)) = &mut self.open {
                if *end == at && px.iter().all(|&v| v.get() == max) {
                    *end += px.len();
                    continue;
                }
            }
            for (i, &v) in px.iter().enumerate() {
                if v.get() == max {
                    self.push(at + i);
                }
            }
        }
    }

    fn push(&mut self, i: usize) {
        match &mut self.open {
            Some((_, end)) if *end == i => *end += 1,
            _ => {
                self.flush();
                self.open = Some((i, i + 1));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((s, e)) = self.open.take() {
            put_varint(&mut self.bytes, (s - self.last_end) as u64);
            put_varint(&mut self.bytes, (e - s) as u64);
            self.count += 1;
            self.last_end = e;
        }
    }
}
