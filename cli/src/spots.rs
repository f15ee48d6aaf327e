//! `hdrmx spots`: peak search over the frames of a master file (read through neggia-rs) or over
//! simulated frames, with a hit summary, the peaks as JSON lines (`--json`), and one frame
//! drawn on a log scale with its peaks circled (`--png`).
use std::io::BufWriter;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use hdrmx_core::peaks::score::{score, Score};
use hdrmx_core::peaks::{
    DispersionParams, Finder, Peak, PeakFinder, Peaks, Pixel, RadialParams, DEFAULT_MIN_PEAKS,
};
use hdrmx_core::sim::{self, Detector, FrameSpec, PixelType};
use indicatif::{ProgressBar, ProgressStyle};
use neggia::nxmx::Master;
use neggia::{Datatype, Element};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct SpotsArgs {
    /// The master file: `*_master.h5`, `.nxs`, or the `name_??????.h5` template.
    #[arg(required_unless_present = "simulate")]
    pub master: Option<PathBuf>,
    /// Search simulated frames of this detector instead (eiger2-1m, eiger2-4m, eiger2-9m,
    /// eiger2-16m) and score the peaks against the simulated spots.
    #[arg(long, value_name = "DETECTOR", conflicts_with = "master")]
    pub simulate: Option<String>,
    /// Frames to search, 0-based: `a..b` (b excluded), `a..`, `..b` or one frame `a`. Default:
    /// all of a master's, 10 simulated ones.
    #[arg(long, value_name = "RANGE")]
    pub frames: Option<String>,
    #[arg(long, value_enum, default_value_t = FinderName::Radial)]
    pub finder: FinderName,
    /// A frame with at least this many peaks is a hit.
    #[arg(long, default_value_t = DEFAULT_MIN_PEAKS)]
    pub min_peaks: usize,
    /// Print each frame's peaks as one JSON object per line, then one with the summary.
    #[arg(long)]
    pub json: bool,
    /// Draw a frame to this PNG file: log scale, masked pixels blue, peaks circled red.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// The frame to draw (default: the first searched).
    #[arg(long, value_name = "N", requires = "png")]
    pub png_frame: Option<u64>,
    /// Threads searching frames side by side (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The finders of `core::peaks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FinderName {
    /// peakfinder8's semantics: sigma-clipped annulus statistics.
    Radial,
    /// DIALS's `dispersion` threshold.
    Dispersion,
    /// DIALS's `dispersion_extended` threshold.
    DispersionExtended,
}

impl FinderName {
    fn finder(self, beam_centre: Option<(f64, f64)>) -> Finder {
        match self {
            FinderName::Radial => Finder::Radial(RadialParams {
                beam_centre,
                ..RadialParams::default()
            }),
            FinderName::Dispersion => Finder::Dispersion(DispersionParams::default()),
            FinderName::DispersionExtended => Finder::Dispersion(DispersionParams::extended()),
        }
    }
}

/// Where the frames come from.
enum Source {
    Master { path: PathBuf, master: Master },
    Simulated(FrameSpec),
}

/// One frame's search.
struct Searched {
    frame: u64,
    peaks: Peaks,
    score: Option<Score>,
}

/// A simulated frame `i`: seeded by its number, the same detector defects on every frame.
fn simulated(spec: &FrameSpec, i: u64) -> sim::Frame {
    sim::simulate(&FrameSpec {
        seed: spec.seed + i,
        ..spec.clone()
    })
}

/// Parses `a..b`, `a..`, `..b` or `a` against `n` frames.
fn frame_range(text: Option<&str>, n: u64) -> Result<Range<u64>> {
    let Some(text) = text else {
        return Ok(0..n);
    };
    let number = |s: &str, default: u64| -> Result<u64> {
        if s.is_empty() {
            return Ok(default);
        }
        s.trim()
            .parse()
            .with_context(|| format!("--frames {text:?}: {s:?} is not a frame number"))
    };
    let range = match text.split_once("..") {
        Some((a, b)) => number(a, 0)?..number(b, n)?,
        None => {
            let a = number(text, 0)?;
            a..a + 1
        }
    };
    ensure!(
        range.start < range.end && range.end <= n,
        "--frames {text:?}: the frames are 0..{n}, and the range must hold at least one"
    );
    Ok(range)
}

/// The beam centre a master states, in pixels (NXmx `beam_center_x`/`_y`).
fn beam_centre(master: &Master) -> Option<(f64, f64)> {
    let read = |name: &str| {
        let d = master
            .file()
            .dataset(&format!("/entry/instrument/detector/{name}"))
            .ok()?;
        let v = d.read_value().ok()?.as_f64()?;
        let units = d.attr("units").ok().flatten();
        let units = units.as_ref().and_then(|u| u.as_str()).unwrap_or("pixel");
        let size = |(x, y): (f64, f64)| if name.ends_with('x') { x } else { y };
        let metres = match units.trim() {
            "m" | "metre" | "meter" => 1.0,
            "mm" => 1e-3,
            "um" | "µm" | "micron" => 1e-6,
            // Pixels, whatever the spelling (DECTRIS writes "pixel").
            _ => return Some(v),
        };
        Some(v * metres / size(master.pixel_size?))
    };
    Some((read("beam_center_x")?, read("beam_center_y")?))
}

fn progress(len: u64) -> ProgressBar {
    // Hidden when stderr is not a terminal.
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} frames [{elapsed_precise}] {wide_bar} {per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    bar
}

pub fn spots(args: &SpotsArgs) -> Result<()> {
    let (source, frames, shape, mask, overload) = match (&args.master, &args.simulate) {
        (Some(path), _) => {
            let master =
                Master::open(path).with_context(|| format!("opening {}", path.display()))?;
            let [ny, nx] = master.shape();
            let mask = master.mask().map(<[u32]>::to_vec);
            let overload = master
                .saturation_value
                .map(|s| s.min(u64::from(u32::MAX)) as u32);
            let n = master.frames();
            (
                Source::Master {
                    path: path.clone(),
                    master,
                },
                n,
                (nx as usize, ny as usize),
                mask,
                overload,
            )
        }
        (None, Some(name)) => {
            let Some(detector) = Detector::by_name(name) else {
                bail!(
                    "--simulate {name:?}: not one of eiger2-1m, eiger2-4m, eiger2-9m, eiger2-16m"
                );
            };
            let mut spec = FrameSpec::new(detector, PixelType::U32, 1.0, 0, 1);
            spec.background_edge = 0.2;
            spec.spots = detector.modules_fast * detector.modules_slow * 35;
            spec.beamstop_radius = 40.0;
            spec.edge_spot_fraction = 0.1;
            spec.hot_pixels = 20;
            // Dead pixels would differ from frame to frame; a detector's do not.
            let mask = simulated(&spec, 0).mask;
            (
                Source::Simulated(spec),
                10,
                (detector.nx(), detector.ny()),
                Some(mask),
                None,
            )
        }
        (None, None) => bail!("give a master file or --simulate DETECTOR"),
    };
    let range = frame_range(args.frames.as_deref(), frames)?;
    let dtype = match &source {
        Source::Master { master, .. } => match *master.dtype() {
            Datatype::Int {
                size,
                signed: false,
                ..
            } if matches!(size, 1 | 2 | 4) => size,
            ref other => bail!(
                "frames of type {}: the peak finders take uint8, uint16 or uint32",
                other.numpy()
            ),
        },
        Source::Simulated(_) => 4,
    };
    let beam = match &source {
        Source::Master { master, .. } => beam_centre(master),
        Source::Simulated(_) => None,
    };
    let setup = Setup {
        args,
        source: &source,
        shape,
        mask: mask.as_deref(),
        overload,
        finder: args.finder.finder(beam),
    };
    let start = Instant::now();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let searched = match dtype {
        1 => setup.search::<u8>(range.clone(), threads)?,
        2 => setup.search::<u16>(range.clone(), threads)?,
        _ => setup.search::<u32>(range.clone(), threads)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    if let Some(png) = &args.png {
        let frame = args.png_frame.unwrap_or(range.start);
        ensure!(
            frame < frames,
            "--png-frame {frame}: the frames are 0..{frames}"
        );
        match dtype {
            1 => setup.draw::<u8>(frame, &searched, png)?,
            2 => setup.draw::<u16>(frame, &searched, png)?,
            _ => setup.draw::<u32>(frame, &searched, png)?,
        }
    }
    let what = match &source {
        Source::Master { path, master } => format!(
            "{} ({} x {} {}, {} frames{})",
            path.display(),
            shape.0,
            shape.1,
            master.dtype().numpy(),
            frames,
            if mask.is_some() {
                ", pixel mask"
            } else {
                ", no pixel mask"
            }
        ),
        Source::Simulated(spec) => format!(
            "simulated {} ({} x {} uint32, background {} -> {}, {} spots)",
            spec.detector.name,
            shape.0,
            shape.1,
            spec.background_centre,
            spec.background_edge,
            spec.spots
        ),
    };
    report(args, &what, beam, &searched, seconds, threads)
}

/// What every search thread shares.
struct Setup<'a> {
    args: &'a SpotsArgs,
    source: &'a Source,
    shape: (usize, usize),
    mask: Option<&'a [u32]>,
    overload: Option<u32>,
    finder: Finder,
}

impl Setup<'_> {
    fn finder(&self) -> Result<PeakFinder> {
        let (nx, ny) = self.shape;
        let mut pf = PeakFinder::new(self.finder.clone(), nx, ny, self.mask)
            .context("setting up the peak finder")?;
        pf.set_min_peaks(self.args.min_peaks);
        pf.set_overload(self.overload);
        Ok(pf)
    }

    /// Reads (or simulates) frame `i` into `buf`; the simulated frame is returned for scoring.
    fn read<T: Pixel + Element>(&self, i: u64, buf: &mut [T]) -> Result<Option<sim::Frame>> {
        match self.source {
            Source::Master { path, master } => {
                master
                    .read_frame_into(i, buf)
                    .with_context(|| format!("{}: frame {i}", path.display()))?;
                Ok(None)
            }
            Source::Simulated(spec) => {
                let frame = simulated(spec, i);
                let out: &mut [u32] = bytemuck::try_cast_slice_mut(buf)
                    .map_err(|_| anyhow::anyhow!("simulated frames are uint32"))?;
                out.copy_from_slice(&frame.pixels);
                Ok(Some(frame))
            }
        }
    }

    /// Reads (or simulates) frame `i` into `buf` and searches it: as it is decoded, block by
    /// block, where that is faster for the finder ([`PeakFinder::fuses`]).
    fn read_and_search<T: Pixel + Element>(
        &self,
        pf: &mut PeakFinder,
        i: u64,
        buf: &mut [T],
    ) -> Result<(Peaks, Option<sim::Frame>)> {
        if let (Source::Master { path, master }, true) = (self.source, pf.fuses()) {
            let size = size_of::<T>();
            let mut feed = pf.feed::<T>();
            master
                .read_frame_with(i, buf, |at, part| {
                    feed.piece(at / size, bytemuck::cast_slice(part))
                })
                .with_context(|| format!("{}: frame {i}", path.display()))?;
            let peaks = feed.finish(buf).with_context(|| format!("frame {i}"))?;
            return Ok((peaks, None));
        }
        let truth = self.read(i, buf)?;
        let peaks = pf.search(buf).with_context(|| format!("frame {i}"))?;
        Ok((peaks, truth))
    }

    /// Searches the frames of `range` on `threads` threads, each taking the next frame.
    fn search<T: Pixel + Element>(
        &self,
        range: Range<u64>,
        threads: usize,
    ) -> Result<Vec<Searched>> {
        let bar = progress(range.end - range.start);
        let next = AtomicU64::new(range.start);
        let failed = AtomicBool::new(false);
        let results = Mutex::new(Vec::new());
        let first_error = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads.min((range.end - range.start) as usize) {
                scope.spawn(|| {
                    let work = || -> Result<()> {
                        let mut pf = self.finder()?;
                        let mut buf = vec![T::zeroed(); self.shape.0 * self.shape.1];
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= range.end || failed.load(Ordering::Relaxed) {
                                return Ok(());
                            }
                            let (peaks, truth) = self.read_and_search(&mut pf, i, &mut buf)?;
                            let score = truth.map(|t| score(&t, &peaks.peaks));
                            results.lock().expect("not poisoned").push(Searched {
                                frame: i,
                                peaks,
                                score,
                            });
                            bar.inc(1);
                        }
                    };
                    if let Err(e) = work() {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().expect("not poisoned").get_or_insert(e);
                    }
                });
            }
        });
        bar.finish_and_clear();
        if let Some(e) = first_error.into_inner().expect("not poisoned") {
            return Err(e);
        }
        let mut results = results.into_inner().expect("not poisoned");
        results.sort_by_key(|s| s.frame);
        Ok(results)
    }

    /// Draws frame `i` with its peaks circled.
    fn draw<T: Pixel + Element>(&self, i: u64, searched: &[Searched], path: &Path) -> Result<()> {
        let mut buf = vec![T::zeroed(); self.shape.0 * self.shape.1];
        self.read(i, &mut buf)?;
        let peaks = match searched.iter().find(|s| s.frame == i) {
            Some(s) => s.peaks.peaks.clone(),
            None => self.finder()?.search(&buf)?.peaks,
        };
        let image = render(
            &buf,
            self.shape,
            self.mask,
            self.overload.unwrap_or(T::MAX),
            &peaks,
        );
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut encoder = png::Encoder::new(
            BufWriter::new(file),
            self.shape.0 as u32,
            self.shape.1 as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&image))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

const MASKED: [u8; 3] = [30, 40, 110];
const CIRCLE: [u8; 3] = [255, 50, 40];

/// The frame as RGB: grey on a log scale up to its brightest usable pixel, masked pixels (and
/// those at the overload value) blue, a red ring around each peak.
fn render<T: Pixel>(
    frame: &[T],
    (nx, ny): (usize, usize),
    mask: Option<&[u32]>,
    overload: u32,
    peaks: &[Peak],
) -> Vec<u8> {
    let masked = |i: usize, v: u32| v >= overload || mask.is_some_and(|m| m[i] != 0);
    let brightest = frame
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.get()))
        .filter(|&(i, v)| !masked(i, v))
        .map(|(_, v)| v)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = 255.0 / f64::from(brightest).ln_1p();
    let mut rgb = Vec::with_capacity(nx * ny * 3);
    for (i, v) in frame.iter().enumerate() {
        let v = v.get();
        if masked(i, v) {
            rgb.extend_from_slice(&MASKED);
        } else {
            let g = (f64::from(v).ln_1p() * scale) as u8;
            rgb.extend_from_slice(&[g, g, g]);
        }
    }
    for p in peaks {
        let r = 6.0 + f64::from(p.pixels).sqrt();
        let (x0, x1) = (
            (p.fs - r - 2.0).max(0.0) as usize,
            ((p.fs + r + 2.0) as usize).min(nx),
        );
        let (y0, y1) = (
            (p.ss - r - 2.0).max(0.0) as usize,
            ((p.ss + r + 2.0) as usize).min(ny),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let d = (x as f64 + 0.5 - p.fs).hypot(y as f64 + 0.5 - p.ss);
                if (d - r).abs() < 1.0 {
                    rgb[(y * nx + x) * 3..(y * nx + x) * 3 + 3].copy_from_slice(&CIRCLE);
                }
            }
        }
    }
    rgb
}

#[derive(Serialize)]
struct JsonPeak {
    fs: f64,
    ss: f64,
    total: f64,
    max: u32,
    pixels: u32,
    snr: f64,
    /// `[fs0, ss0, fs1, ss1]`, ends excluded.
    bbox: [u32; 4],
}

#[derive(Serialize)]
struct JsonFrame {
    frame: u64,
    hit: bool,
    too_many_strong: bool,
    peaks: Vec<JsonPeak>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<f64>,
}

#[derive(Serialize)]
struct Summary {
    source: String,
    finder: String,
    beam_centre: Option<(f64, f64)>,
    frames: usize,
    hits: usize,
    min_peaks: usize,
    too_many_strong: usize,
    peaks_mean: f64,
    peaks_median: usize,
    peaks_min: usize,
    peaks_max: usize,
    seconds: f64,
    threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<f64>,
}

fn report(
    args: &SpotsArgs,
    what: &str,
    beam: Option<(f64, f64)>,
    searched: &[Searched],
    seconds: f64,
    threads: usize,
) -> Result<()> {
    let mut counts: Vec<usize> = searched.iter().map(|s| s.peaks.peaks.len()).collect();
    counts.sort_unstable();
    let n = searched.len();
    let mean_of = |f: fn(&Score) -> f64| {
        let scores: Vec<f64> = searched
            .iter()
            .filter_map(|s| s.score.as_ref())
            .map(f)
            .collect();
        (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
    };
    let summary = Summary {
        source: what.to_string(),
        finder: args
            .finder
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string()),
        beam_centre: beam,
        frames: n,
        hits: searched.iter().filter(|s| s.peaks.hit).count(),
        min_peaks: args.min_peaks,
        too_many_strong: searched.iter().filter(|s| s.peaks.too_many_strong).count(),
        peaks_mean: counts.iter().sum::<usize>() as f64 / n.max(1) as f64,
        peaks_median: counts.get(n / 2).copied().unwrap_or(0),
        peaks_min: counts.first().copied().unwrap_or(0),
        peaks_max: counts.last().copied().unwrap_or(0),
        seconds,
        threads,
        recall: mean_of(|s| s.recall),
        precision: mean_of(|s| s.precision),
    };
    if args.json {
        for s in searched {
            let frame = JsonFrame {
                frame: s.frame,
                hit: s.peaks.hit,
                too_many_strong: s.peaks.too_many_strong,
                peaks: s
                    .peaks
                    .peaks
                    .iter()
                    .map(|p| JsonPeak {
                        fs: p.fs,
                        ss: p.ss,
                        total: p.total,
                        max: p.max,
                        pixels: p.pixels,
                        snr: p.snr,
                        bbox: [p.bbox.fs0, p.bbox.ss0, p.bbox.fs1, p.bbox.ss1],
                    })
                    .collect(),
                recall: s.score.map(|s| s.recall),
                precision: s.score.map(|s| s.precision),
            };
            outln!("{}", serde_json::to_string(&frame)?);
        }
        outln!("{}", serde_json::json!({ "summary": summary }));
        return Ok(());
    }
    outln!(
        "{} frames of {what} searched with the {} finder in {seconds:.1} s ({:.1} frames/s, {threads} threads)",
        n,
        summary.finder,
        n as f64 / seconds
    );
    if let Some((x, y)) = beam {
        outln!("beam centre from the master: ({x:.1}, {y:.1}) pixels");
    }
    outln!(
        "hits: {} of {n} ({:.1}%) with at least {} peaks",
        summary.hits,
        100.0 * summary.hits as f64 / n.max(1) as f64,
        args.min_peaks
    );
    outln!(
        "peaks per frame: mean {:.1}, median {}, min {}, max {}",
        summary.peaks_mean,
        summary.peaks_median,
        summary.peaks_min,
        summary.peaks_max
    );
    if summary.too_many_strong > 0 {
        outln!(
            "{} frames rejected: more than 25% of their pixels strong",
            summary.too_many_strong
        );
    }
    if let (Some(r), Some(p)) = (summary.recall, summary.precision) {
        outln!("against the simulated spots: recall {r:.3}, precision {p:.3} (mean over frames)");
    }
    if let Some(png) = &args.png {
        outln!(
            "drew frame {} to {}",
            args.png_frame.unwrap_or(searched[0].frame),
            png.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ranges() {
        assert_eq!(frame_range(None, 7).unwrap(), 0..7);
        assert_eq!(frame_range(Some("2..5"), 7).unwrap(), 2..5);
        assert_eq!(frame_range(Some("3.."), 7).unwrap(), 3..7);
        assert_eq!(frame_range(Some("..2"), 7).unwrap(), 0..2);
        assert_eq!(frame_range(Some("4"), 7).unwrap(), 4..5);
        for bad in ["5..2", "3..9", "7", "x..2", "1..y", "2..2"] {
            let err = frame_range(Some(bad), 7).unwrap_err().to_string();
            assert!(err.contains("--frames"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_drawing_circles_peaks_and_colours_masked_pixels() {
        let (nx, ny) = (40, 30);
        let mut frame = vec![0u16; nx * ny];
        frame[15 * nx + 20] = 100;
        frame[0] = u16::MAX;
        let mut mask = vec![0u32; nx * ny];
        mask[1] = 1;
        let peak = Peak {
            fs: 20.5,
            ss: 15.5,
            total: 100.0,
            max: 100,
            pixels: 1,
            snr: 50.0,
            bbox: hdrmx_core::peaks::BBox {
                fs0: 20,
                ss0: 15,
                fs1: 21,
                ss1: 16,
            },
        };
        let rgb = render(&frame, (nx, ny), Some(&mask), u32::from(u16::MAX), &[peak]);
        let at = |x: usize, y: usize| &rgb[(y * nx + x) * 3..(y * nx + x) * 3 + 3];
        assert_eq!(at(0, 0), MASKED);
        assert_eq!(at(1, 0), MASKED);
        assert_eq!(at(20, 15), [255, 255, 255]);
        assert_eq!(at(2, 0), [0, 0, 0]);
        // The ring, 7 px from the peak's centre.
        assert_eq!(at(27, 15), CIRCLE);
        assert_eq!(at(20, 22), CIRCLE);
    }
}
