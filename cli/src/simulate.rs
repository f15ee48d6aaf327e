//! `hdrmx simulate`: a gold-standard NXmx dataset from `core::sim`, written by durin-rs, with the
//! simulator's ground truth beside it as JSON.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use durin::{Layout, Metadata, Writer, WriterOptions};
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4};
use hdrmx_core::sim::{self, Detector, FrameSpec, PixelType};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimCodec {
    /// Filter 32008, bitshuffle + LZ4 (what EIGER detectors stream).
    Bslz4,
    /// Filter 32008, bitshuffle + zstd.
    Bszstd,
    /// Filter 32004, LZ4 blocks.
    Lz4,
}

impl SimCodec {
    /// The codec for pixels of `elem_size` bytes (zstd at level 3).
    pub fn codec(self, elem_size: usize) -> Result<Codec> {
        Ok(match self {
            SimCodec::Bslz4 => Codec::Bitshuffle(Bitshuffle::new(elem_size, Compression::Lz4)?),
            SimCodec::Bszstd => {
                Codec::Bitshuffle(Bitshuffle::new(elem_size, Compression::Zstd { level: 3 })?)
            }
            SimCodec::Lz4 => Codec::Lz4(Lz4::new(0)?),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimPixel {
    Uint16,
    Uint32,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// eiger2-1m, eiger2-4m, eiger2-9m or eiger2-16m.
    #[arg(long, default_value = "eiger2-4m")]
    pub detector: String,
    #[arg(long, default_value_t = 100)]
    pub frames: usize,
    /// Output directory (created): NAME_master.h5, NAME_data_NNNNNN.h5, NAME_truth.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "sim")]
    pub name: String,
    #[arg(long, default_value_t = 1000)]
    pub frames_per_file: usize,
    #[arg(long, value_enum, default_value_t = SimCodec::Bslz4)]
    pub codec: SimCodec,
    #[arg(long, value_enum, default_value_t = SimPixel::Uint32)]
    pub pixel: SimPixel,
    /// DECTRIS-style data_NNNNNN external links instead of a virtual dataset.
    #[arg(long)]
    pub links: bool,
    /// Bragg spots per frame.
    #[arg(long, default_value_t = 200)]
    pub spots: usize,
    /// Mean background photons per pixel at the centre.
    #[arg(long, default_value_t = 0.5)]
    pub background: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The detector and scan the simulated files describe (the simulator has no geometry of its own;
/// these are a plausible EIGER2 CdTe experiment, beam at the frame centre).
fn metadata(det: Detector, pixel: PixelType, mask: Vec<u32>) -> Metadata {
    Metadata {
        nx: det.nx(),
        ny: det.ny(),
        elem_size: pixel.size(),
        x_pixel_size: 75e-6,
        y_pixel_size: 75e-6,
        distance: 0.15,
        beam_center_x: det.nx() as f64 / 2.0,
        beam_center_y: det.ny() as f64 / 2.0,
        wavelength: 0.979_5,
        omega_start: 0.0,
        omega_increment: 0.1,
        count_time: 0.001_99,
        frame_time: 0.002,
        sensor_material: "CdTe".into(),
        sensor_thickness: 750e-6,
        saturation_value: i64::from(pixel.max() - 1).min(i64::from(i32::MAX)),
        underload_value: -1,
        bit_depth_readout: 8 * pixel.size() as i64,
        description: format!("Dectris EIGER2 CdTe {} (hdrmx simulate)", det.name),
        start_time: "2026-01-01T00:00:00Z".into(),
        pixel_mask: mask,
    }
}

pub fn simulate(args: &SimulateArgs) -> Result<()> {
    let Some(detector) = Detector::by_name(&args.detector) else {
        bail!(
            "--detector {:?}: not one of eiger2-1m, eiger2-4m, eiger2-9m, eiger2-16m",
            args.detector
        );
    };
    if args.frames == 0 {
        bail!("--frames must be at least 1");
    }
    let pixel = match args.pixel {
        SimPixel::Uint16 => PixelType::U16,
        SimPixel::Uint32 => PixelType::U32,
    };
    let codec = args.codec.codec(pixel.size())?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut spec = FrameSpec::new(detector, pixel, args.background, args.spots, args.seed);
    spec.background_edge = args.background * 0.3;
    spec.beamstop_radius = 30.0;
    spec.hot_pixels = 10;
    let frame_of = |i: usize| {
        sim::simulate(&FrameSpec {
            seed: args.seed + i as u64,
            ..spec.clone()
        })
    };
    let first = frame_of(0);
    let meta = metadata(detector, pixel, first.mask.clone());
    let truth_meta = serde_json::to_value(&meta)?;
    let opts = WriterOptions {
        frames_per_file: args.frames_per_file,
        layout: if args.links {
            Layout::Links
        } else {
            Layout::Vds
        },
        codec,
    };
    let mut writer = Writer::create(&args.out, &args.name, meta, opts)?;
    let bar = ProgressBar::new(args.frames as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} frames [{elapsed_precise}] {wide_bar}")
            .expect("a valid template"),
    );
    let mut truth = Vec::with_capacity(args.frames);
    let mut frame = Some(first);
    for i in 0..args.frames {
        let f = frame.take().unwrap_or_else(|| frame_of(i));
        writer
            .write_frame(&f.to_bytes())
            .with_context(|| format!("writing frame {i}"))?;
        truth.push(serde_json::json!({
            "frame": i,
            "seed": args.seed + i as u64,
            "spots": f.spots.iter().map(|s| serde_json::json!({
                "x": s.x, "y": s.y, "sigma": s.sigma, "photons": s.photons, "at_edge": s.at_edge,
            })).collect::<Vec<_>>(),
            "hot_pixels": f.hot_pixels,
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let master = writer.finish()?;
    let truth_path = args.out.join(format!("{}_truth.json", args.name));
    let doc = serde_json::json!({
        "master": master.file_name().map(|n| n.to_string_lossy().into_owned()),
        "detector": detector.name,
        "pixel_type": pixel.name(),
        "frames": args.frames,
        "frames_per_file": args.frames_per_file,
        "layout": if args.links { "links" } else { "vds" },
        "codec": codec.name(),
        "cd_values": codec.cd_values(),
        "metadata": truth_meta,
        "spec": {
            "background_centre": spec.background_centre,
            "background_edge": spec.background_edge,
            "spots": spec.spots,
            "beamstop_radius": spec.beamstop_radius,
            "hot_pixels": spec.hot_pixels,
        },
        "truth": truth,
    });
    std::fs::write(&truth_path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", truth_path.display()))?;
    outln!("{}", master.display());
    outln!("{}", truth_path.display());
    Ok(())
}
