//! `hdrmx bin`, `hdrmx sum`, `hdrmx roi` and `hdrmx compress`: a reduced copy of a dataset.
//!
//! Frames are read by neggia-rs (any master it reads), reduced by `hdrmx_core::reduce`, encoded,
//! and written by durin-rs as a gold-standard NXmx dataset (VDS master + data files, or links)
//! whose geometry is the reduced data's (`durin::Metadata::{binned, summed, cut}`). Reading,
//! reducing and encoding run on rayon's pool a batch of output frames at a time; the chunks are
//! then written in order.
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use durin::{Layout, Metadata, Writer, WriterOptions};
use hdrmx_core::codec::lossy::{Inner, Lossy};
use hdrmx_core::codec::Codec;
use hdrmx_core::reduce::bin;
use hdrmx_core::reduce::roi::{self, Roi};
use hdrmx_core::reduce::sum::Summer;
use indicatif::{ProgressBar, ProgressStyle};
use neggia::nxmx::Master;
use neggia::{Datatype, Element};
use rayon::prelude::*;

use crate::convert::{metadata, output_name};
use crate::simulate::SimCodec;

// Frames go to the codecs as little-endian bytes; pixels are cast, not copied.
const _: () = assert!(cfg!(target_endian = "little"), "little-endian hosts only");

#[derive(Args, Debug)]
pub struct OutputArgs {
    /// The output master, `DIR/NAME_master.h5` (DIR is created): data files go beside it as
    /// NAME_data_NNNNNN.h5.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Output frames per data file.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub frames_per_file: u32,
    /// DECTRIS-style data_NNNNNN external links instead of a virtual dataset.
    #[arg(long)]
    pub links: bool,
}

#[derive(Args, Debug)]
pub struct BinArgs {
    /// The input master (`*_master.h5`, `.nxs`, ...).
    pub input: PathBuf,
    /// N: every N x N pixels become one uint32 pixel (rows and columns that do not fill a bin
    /// are dropped).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub factor: u8,
    /// How the binned uint32 frames are compressed.
    #[arg(long, value_enum, default_value_t = SimCodec::Bslz4)]
    pub codec: SimCodec,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Args, Debug)]
pub struct SumArgs {
    /// The input master (`*_master.h5`, `.nxs`, ...).
    pub input: PathBuf,
    /// K: every K consecutive frames become one uint32 frame. Trailing frames that do not fill
    /// a group are left out (said on stderr), so every output frame covers the same exposure.
    #[arg(long = "frames", value_parser = clap::value_parser!(u32).range(1..))]
    pub frames: u32,
    /// How the summed uint32 frames are compressed.
    #[arg(long, value_enum, default_value_t = SimCodec::Bslz4)]
    pub codec: SimCodec,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Args, Debug)]
pub struct RoiArgs {
    /// The input master (`*_master.h5`, `.nxs`, ...).
    pub input: PathBuf,
    /// The rectangle kept, `x,y,width,height` in pixels (x along the fast axis, from 0).
    #[arg(long, value_parser = Roi::parse)]
    pub roi: Roi,
    /// How the cut frames (of the input's pixel type) are compressed.
    #[arg(long, value_enum, default_value_t = SimCodec::Bslz4)]
    pub codec: SimCodec,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InnerName {
    Lz4,
    Zstd,
}

#[derive(Args, Debug)]
pub struct CompressArgs {
    /// The input master (`*_master.h5`, `.nxs`, ...).
    pub input: PathBuf,
    /// `q=STEP`: the quantisation step in units of σ = √counts; every pixel's error is at most
    /// (q/2)·σ, small counts are exact. q=0 is lossless (only the mask remap).
    #[arg(long, value_parser = parse_q)]
    pub lossy: f64,
    /// The compressor after the quantiser and bitshuffle.
    #[arg(long, value_enum, default_value_t = InnerName::Lz4)]
    pub inner: InnerName,
    /// zstd level (with --inner zstd).
    #[arg(long, default_value_t = 3)]
    pub level: i32,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `q=1`, `q=0.5` (or the bare number).
fn parse_q(s: &str) -> Result<f64, String> {
    let v = s.strip_prefix("q=").unwrap_or(s);
    match v.trim().parse::<f64>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        _ => Err(format!(
            "{s:?}: expected q=STEP with STEP a number >= 0 (q=1)"
        )),
    }
}

/// An opened input: the master, its pixel type and its metadata.
struct Input {
    path: PathBuf,
    master: Master,
    meta: Metadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pixel {
    U8,
    U16,
    U32,
}

impl Input {
    fn open(path: &Path) -> Result<(Input, Pixel)> {
        let master = Master::open(path).with_context(|| format!("opening {}", path.display()))?;
        let pixel = match master.dtype() {
            Datatype::Int {
                size: 1,
                signed: false,
                ..
            } => Pixel::U8,
            Datatype::Int {
                size: 2,
                signed: false,
                ..
            } => Pixel::U16,
            Datatype::Int {
                size: 4,
                signed: false,
                ..
            } => Pixel::U32,
            other => bail!(
                "{}: frames of {}; reductions read uint8, uint16 and uint32",
                path.display(),
                other.numpy()
            ),
        };
        if master.frames() == 0 {
            bail!("{}: no frames", path.display());
        }
        let elem_size = match pixel {
            Pixel::U8 => 1,
            Pixel::U16 => 2,
            Pixel::U32 => 4,
        };
        let meta = metadata(&master, elem_size);
        Ok((
            Input {
                path: path.to_path_buf(),
                master,
                meta,
            },
            pixel,
        ))
    }

    fn read<T: Element>(&self, i: u64, out: &mut Vec<T>) -> Result<()> {
        out.resize(self.meta.nx * self.meta.ny, T::zeroed());
        self.master
            .read_frame_into(i, out)
            .with_context(|| format!("{}: reading frame {i}", self.path.display()))
    }

    fn mask(&self) -> Option<&[u32]> {
        (!self.meta.pixel_mask.is_empty()).then_some(&self.meta.pixel_mask[..])
    }

    /// The saturation value the reductions propagate, when the input states one that fits.
    fn saturation(&self) -> Option<u32> {
        u32::try_from(self.meta.saturation_value)
            .ok()
            .filter(|&s| s > 0)
    }
}

/// Refuses to write over the input (the writer truncates the files it creates).
fn check_output(input: &Path, output: &Path) -> Result<(PathBuf, String)> {
    let (dir, name) = output_name(output)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            bail!("{}: the output would overwrite the input", output.display());
        }
    }
    Ok((dir, name))
}

fn writer(input: &Path, out: &OutputArgs, meta: Metadata, codec: Codec) -> Result<Writer> {
    let (dir, name) = check_output(input, &out.output)?;
    let opts = WriterOptions {
        frames_per_file: out.frames_per_file as usize,
        layout: if out.links {
            Layout::Links
        } else {
            Layout::Vds
        },
        codec,
    };
    Writer::create(&dir, &name, meta, opts)
        .with_context(|| format!("writing {}", out.output.display()))
}

fn progress(frames: u64) -> ProgressBar {
    // indicatif hides the bar when stderr is not a terminal.
    let bar = ProgressBar::new(frames);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} frames [{elapsed_precise}] {wide_bar} {per_sec}",
        )
        .expect("a valid template"),
    );
    bar
}

/// Working buffers of one rayon job, reused from frame to frame and, through a [`Pool`], from
/// batch to batch: a fresh frame-sized buffer costs a page fault per 4 KiB.
struct Scratch<T, O> {
    frame: Vec<T>,
    out: Vec<O>,
    /// `hdrmx sum`'s running sum (starts a new group after each output frame).
    summer: Option<Summer>,
}

fn scratch<T, O>() -> Scratch<T, O> {
    Scratch {
        frame: Vec::new(),
        out: Vec::new(),
        summer: None,
    }
}

/// Buffers handed back after use, for the next job to take.
struct Pool<S>(Mutex<Vec<S>>);

impl<S> Pool<S> {
    fn new() -> Pool<S> {
        Pool(Mutex::new(Vec::new()))
    }

    fn take(&self, make: impl FnOnce() -> S) -> S {
        let item = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        item.unwrap_or_else(make)
    }

    fn give(&self, item: S) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(item);
    }
}

/// A pooled item that goes back to its pool when the job holding it ends.
struct Lease<'a, S> {
    item: Option<S>,
    pool: &'a Pool<S>,
}

impl<S> Lease<'_, S> {
    fn get(&mut self) -> &mut S {
        self.item.as_mut().expect("held until dropped")
    }
}

impl<S> Drop for Lease<'_, S> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.give(item);
        }
    }
}

/// Makes output frames `0..count` with `make(j, scratch)` (which leaves frame `j` in
/// `scratch.out`) on rayon's pool, encodes them with `codec`, and writes them in order.
fn run<T, O, F>(
    mut writer: Writer,
    codec: &Codec,
    count: u64,
    init: impl Fn() -> Scratch<T, O> + Sync + Send,
    make: F,
) -> Result<PathBuf>
where
    T: Send,
    O: bytemuck::Pod + Send,
    F: Fn(u64, &mut Scratch<T, O>) -> Result<()> + Sync + Send,
{
    let bar = progress(count);
    let scratches = Pool::new();
    // Encoded chunks, each kept at the codec's worst-case length so that it is zeroed once.
    let chunks_pool: Pool<Vec<u8>> = Pool::new();
    // A few frames per thread in flight: enough to keep every core busy; the writer (one
    // thread, under the HDF5 lock) then stores the batch, which takes far less time.
    let batch = (rayon::current_num_threads() * 2) as u64;
    let mut start = 0;
    while start < count {
        let end = (start + batch).min(count);
        let lease = || Lease {
            item: Some(scratches.take(&init)),
            pool: &scratches,
        };
        let chunks: Vec<Result<(Vec<u8>, usize)>> = (start..end)
            .into_par_iter()
            .map_init(lease, |s, j| {
                let s = s.get();
                make(j, s)?;
                let raw: &[u8] = bytemuck::cast_slice(&s.out);
                let mut chunk = chunks_pool.take(Vec::new);
                chunk.resize(codec.max_encoded_len(raw.len()), 0);
                let n = codec
                    .encode_into(raw, &mut chunk)
                    .with_context(|| format!("encoding output frame {j}"))?;
                Ok((chunk, n))
            })
            .collect();
        // In order, so that the error reported is the first frame's that failed, whichever
        // thread met its error first.
        for (j, chunk) in (start..end).zip(chunks) {
            let (chunk, n) = chunk?;
            writer
                .write_chunk(&chunk[..n])
                .with_context(|| format!("writing output frame {j}"))?;
            chunks_pool.give(chunk);
            bar.inc(1);
        }
        start = end;
    }
    bar.finish_and_clear();
    Ok(writer.finish()?)
}

/// Calls `$body` with `$t` the input's pixel type.
macro_rules! by_pixel {
    ($pixel:expr, $t:ident => $body:expr) => {
        match $pixel {
            Pixel::U8 => {
                type $t = u8;
                $body
            }
            Pixel::U16 => {
                type $t = u16;
                $body
            }
            Pixel::U32 => {
                type $t = u32;
                $body
            }
        }
    };
}

pub fn bin(args: &BinArgs) -> Result<()> {
    let (input, pixel) = Input::open(&args.input)?;
    let n = usize::from(args.factor);
    let meta = input
        .meta
        .binned(n)
        .with_context(|| format!("{}: binning {n} x {n}", args.input.display()))?;
    let codec = args.codec.codec(meta.elem_size)?;
    let len = meta.nx * meta.ny;
    let w = writer(&args.input, &args.out, meta, codec)?;
    let (nx, ny) = (input.meta.nx, input.meta.ny);
    let saturation = input.saturation();
    // The mask prepared once (its length was checked by `binned`), not reread for every frame.
    let mask = input.mask().map(|m| bin::BinMask::new(m, nx, ny, n));
    let master = by_pixel!(pixel, T => run(w, &codec, input.master.frames(), scratch::<T, u32>, |j, s| {
        input.read(j, &mut s.frame)?;
        s.out.resize(len, 0);
        match &mask {
            Some(m) => m.bin(&s.frame, saturation, &mut s.out),
            None => bin::bin(&s.frame, nx, ny, n, None, saturation, &mut s.out),
        }
        Ok(())
    }))?;
    outln!("{}", master.display());
    Ok(())
}

pub fn sum(args: &SumArgs) -> Result<()> {
    let (input, pixel) = Input::open(&args.input)?;
    let k = args.frames as u64;
    let frames = input.master.frames();
    let groups = frames / k;
    if groups == 0 {
        bail!(
            "{}: {frames} frames, fewer than one group of {k}",
            args.input.display()
        );
    }
    if frames % k != 0 {
        eprintln!(
            "hdrmx sum: the last {} of {frames} frames do not fill a group of {k} and are left out",
            frames % k
        );
    }
    let meta = input.meta.summed(k as usize)?;
    let codec = args.codec.codec(meta.elem_size)?;
    let len = meta.nx * meta.ny;
    let w = writer(&args.input, &args.out, meta, codec)?;
    let saturation = input.saturation();
    let master = by_pixel!(pixel, T => {
        let init = || Scratch {
            summer: Some(Summer::new(len, saturation)),
            ..scratch::<T, u32>()
        };
        run(w, &codec, groups, init, |j, s| {
            let summer = s.summer.as_mut().expect("made by init");
            for i in j * k..(j + 1) * k {
                input.read(i, &mut s.frame)?;
                summer.add(&s.frame);
            }
            s.out.resize(len, 0);
            summer.finish_into(&mut s.out);
            Ok(())
        })
    })?;
    outln!("{}", master.display());
    Ok(())
}

pub fn roi(args: &RoiArgs) -> Result<()> {
    let (input, pixel) = Input::open(&args.input)?;
    let r = &args.roi;
    let meta = input
        .meta
        .cut(r)
        .with_context(|| format!("{}: --roi", args.input.display()))?;
    if pixel == Pixel::U8 {
        bail!(
            "{}: uint8 frames; roi writes uint16 and uint32",
            args.input.display()
        );
    }
    let codec = args.codec.codec(meta.elem_size)?;
    let w = writer(&args.input, &args.out, meta, codec)?;
    let nx = input.meta.nx;
    let len = r.width * r.height;
    let master = by_pixel!(pixel, T => run(w, &codec, input.master.frames(), scratch::<T, T>, |j, s| {
        input.read(j, &mut s.frame)?;
        s.out.resize(len, 0);
        roi::cut(&s.frame, nx, r, &mut s.out);
        Ok(())
    }))?;
    outln!("{}", master.display());
    Ok(())
}

pub fn compress(args: &CompressArgs) -> Result<()> {
    let (input, pixel) = Input::open(&args.input)?;
    if pixel == Pixel::U8 {
        bail!(
            "{}: uint8 frames; compress writes uint16 and uint32",
            args.input.display()
        );
    }
    let inner = match args.inner {
        InnerName::Lz4 => Inner::Lz4,
        InnerName::Zstd => Inner::Zstd(args.level),
    };
    let meta = input.meta.clone();
    let codec = Codec::Lossy(
        Lossy::new(args.lossy, inner, meta.elem_size)
            .with_context(|| format!("--lossy q={}", args.lossy))?,
    );
    let w = writer(&args.input, &args.out, meta, codec)?;
    let master = by_pixel!(pixel, T => run(w, &codec, input.master.frames(), scratch::<T, T>, |j, s| {
        input.read(j, &mut s.out)?;
        Ok(())
    }))?;
    outln!("{}", master.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_parses_with_or_without_its_name() {
        assert_eq!(parse_q("q=1"), Ok(1.0));
        assert_eq!(parse_q("q=0.5"), Ok(0.5));
        assert_eq!(parse_q("2"), Ok(2.0));
        assert_eq!(parse_q("q=0"), Ok(0.0));
        for bad in ["q=-1", "q=", "x=1", "q=nan", "q=inf"] {
            assert!(parse_q(bad).is_err(), "{bad}");
        }
    }
}
