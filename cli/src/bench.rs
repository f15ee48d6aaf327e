//! `hdrmx bench codecs` and `hdrmx demo`: simulate EIGER2 frames and measure every codec on them,
//! one thread, into preallocated buffers (the steady state of a reader).
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use hdrmx_core::codec::transpose::Kernel;
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4, Zstd};
use hdrmx_core::sim::{self, Detector, Frame, FrameSpec, PixelType};
use serde::Serialize;

use crate::cli::{BenchArgs, DemoArgs};

/// zstd level for the bitshuffle+zstd and zstd rows (hdf5plugin's default).
const ZSTD_LEVEL: i32 = 3;

/// The frames of the codec benchmark: a 16M at very low dose and a 4M at 1 photon/pixel.
fn bench_frames(quick: bool) -> Vec<(String, FrameSpec)> {
    let mut frames = vec![(
        "4m_uint16_bg1".to_string(),
        FrameSpec::new(Detector::EIGER2_4M, PixelType::U16, 1.0, 300, 2),
    )];
    if !quick {
        frames.insert(
            0,
            (
                "16m_uint32_bg0.05".to_string(),
                FrameSpec::new(Detector::EIGER2_16M, PixelType::U32, 0.05, 300, 1),
            ),
        );
    }
    frames
}

fn all_codecs(elem_size: usize) -> Result<Vec<(&'static str, Codec)>> {
    Ok(vec![
        (
            "bslz4",
            Codec::Bitshuffle(Bitshuffle::new(elem_size, Compression::Lz4)?),
        ),
        (
            "bszstd",
            Codec::Bitshuffle(Bitshuffle::new(
                elem_size,
                Compression::Zstd { level: ZSTD_LEVEL },
            )?),
        ),
        ("lz4", Codec::Lz4(Lz4::default())),
        ("zstd", Codec::Zstd(Zstd::new(ZSTD_LEVEL))),
        (
            "bitshuffle",
            Codec::Bitshuffle(Bitshuffle::new(elem_size, Compression::None)?),
        ),
    ])
}

/// Median seconds per call of `f`, over at least 3 calls and about `seconds` in all.
pub(crate) fn median_seconds(seconds: f64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < seconds && times.len() < 10_000) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn mbps(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

#[derive(Serialize)]
struct CodecResult {
    frame: String,
    codec: &'static str,
    raw_bytes: usize,
    compressed_bytes: usize,
    #[serde(rename = "encode_MBps")]
    encode_mbps: f64,
    #[serde(rename = "decode_MBps")]
    decode_mbps: f64,
}

#[derive(Serialize)]
struct KernelResult {
    frame: String,
    kernel: &'static str,
    #[serde(rename = "transpose_MBps")]
    transpose_mbps: f64,
    #[serde(rename = "untranspose_MBps")]
    untranspose_mbps: f64,
}

#[derive(Serialize)]
struct Report {
    kernel: &'static str,
    results: Vec<CodecResult>,
    kernels: Vec<KernelResult>,
}

/// Encodes and decodes `frames` with `codec`, checking the round trip; sizes summed, speeds in
/// MB/s of uncompressed data.
fn measure(
    name: &str,
    codec: &Codec,
    frames: &[Vec<u8>],
    seconds: f64,
) -> Result<(usize, f64, f64)> {
    let mut encoded: Vec<Vec<u8>> = Vec::new();
    for frame in frames {
        let mut buf = vec![0u8; codec.max_encoded_len(frame.len())];
        let len = codec.encode_into(frame, &mut buf)?;
        buf.truncate(len);
        let mut out = vec![0u8; frame.len()];
        codec
            .decode(&buf, &mut out)
            .with_context(|| format!("{name}: decoding our own chunk"))?;
        ensure!(&out == frame, "{name}: round trip changed the data");
        encoded.push(buf);
    }
    let raw: usize = frames.iter().map(Vec::len).sum();
    let compressed = encoded.iter().map(Vec::len).sum();
    let mut dst = vec![
        0u8;
        frames
            .iter()
            .map(|f| codec.max_encoded_len(f.len()))
            .max()
            .unwrap_or(0)
    ];
    let encode = median_seconds(seconds, || {
        for frame in frames {
            codec.encode_into(frame, &mut dst).expect("encoded above");
        }
    });
    let mut out = vec![0u8; frames.iter().map(Vec::len).max().unwrap_or(0)];
    let decode = median_seconds(seconds, || {
        for (chunk, frame) in encoded.iter().zip(frames) {
            codec
                .decode(chunk, &mut out[..frame.len()])
                .expect("decoded above");
        }
    });
    Ok((compressed, mbps(raw, encode), mbps(raw, decode)))
}

/// Transpose speed of each kernel over a frame in default-size blocks.
fn measure_kernel(kernel: Kernel, frame: &[u8], elem_size: usize, seconds: f64) -> (f64, f64) {
    let block = hdrmx_core::codec::bitshuffle::default_block_size(elem_size) * elem_size;
    let whole = frame.len() / block * block;
    let mut planes = vec![0u8; whole];
    let mut back = vec![0u8; whole];
    let t = median_seconds(seconds, || {
        for (src, dst) in frame[..whole]
            .chunks_exact(block)
            .zip(planes.chunks_exact_mut(block))
        {
            kernel.transpose(src, dst, elem_size);
        }
    });
    let u = median_seconds(seconds, || {
        for (src, dst) in planes.chunks_exact(block).zip(back.chunks_exact_mut(block)) {
            kernel.untranspose(src, dst, elem_size);
        }
    });
    assert_eq!(back, frame[..whole], "{} kernel round trip", kernel.name());
    (mbps(whole, t), mbps(whole, u))
}

fn write_frame(dir: &Path, name: &str, frame: &Frame, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(format!("{name}.raw")), bytes)?;
    let meta = serde_json::json!({
        "name": name,
        "dtype": frame.pixel_type.name(),
        "shape": [frame.ny, frame.nx],
        "zstd_level": ZSTD_LEVEL,
        "spots": frame.spots.len(),
    });
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&meta)?,
    )?;
    Ok(())
}

pub fn frames(dir: &Path, quick: bool) -> Result<()> {
    for (name, spec) in bench_frames(quick) {
        let frame = sim::simulate(&spec);
        write_frame(dir, &name, &frame, &frame.to_bytes())?;
        outln!("{}", dir.join(format!("{name}.raw")).display());
    }
    Ok(())
}

pub fn codecs(args: &BenchArgs) -> Result<()> {
    let mut report = Report {
        kernel: Kernel::best().name(),
        results: Vec::new(),
        kernels: Vec::new(),
    };
    outln!(
        "hdrmx codecs, one thread, transpose kernel {}",
        report.kernel
    );
    for (name, spec) in bench_frames(args.quick) {
        let frame = sim::simulate(&spec);
        let bytes = frame.to_bytes();
        if let Some(dir) = &args.frames_dir {
            write_frame(dir, &name, &frame, &bytes)?;
        }
        let e = spec.pixel_type.size();
        outln!(
            "\n{name}: {} x {} {}, {:.1} MB",
            frame.nx,
            frame.ny,
            frame.pixel_type.name(),
            bytes.len() as f64 / 1e6
        );
        outln!(
            "  {:<11} {:>12} {:>8} {:>12} {:>12}",
            "codec",
            "bytes",
            "ratio",
            "encode MB/s",
            "decode MB/s"
        );
        let frames = [bytes];
        for (codec_name, codec) in all_codecs(e)? {
            let (compressed, enc, dec) = measure(codec_name, &codec, &frames, args.seconds)?;
            let ratio = frames[0].len() as f64 / compressed as f64;
            outln!("  {codec_name:<11} {compressed:>12} {ratio:>8.2} {enc:>12.0} {dec:>12.0}");
            report.results.push(CodecResult {
                frame: name.clone(),
                codec: codec_name,
                raw_bytes: frames[0].len(),
                compressed_bytes: compressed,
                encode_mbps: enc,
                decode_mbps: dec,
            });
        }
        for kernel in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
            let (t, u) = measure_kernel(kernel, &frames[0], e, args.seconds / 2.0);
            outln!(
                "  transpose {:<7} {t:>8.0} MB/s   untranspose {u:>8.0} MB/s",
                kernel.name()
            );
            report.kernels.push(KernelResult {
                frame: name.clone(),
                kernel: kernel.name(),
                transpose_mbps: t,
                untranspose_mbps: u,
            });
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub fn demo(args: &DemoArgs) -> Result<()> {
    let Some(detector) = Detector::by_name(&args.detector) else {
        bail!(
            "unknown detector {:?} (eiger2-1m, eiger2-4m, eiger2-9m, eiger2-16m)",
            args.detector
        )
    };
    ensure!(args.frames > 0, "--frames must be at least 1");
    outln!(
        "Simulating {} {} frames ({} x {} uint32, 0.05 photons/pixel, 300 spots each, module gaps at 0xFFFFFFFF)",
        args.frames,
        detector.name,
        detector.nx(),
        detector.ny()
    );
    let frames: Vec<Vec<u8>> = (0..args.frames)
        .map(|i| {
            sim::simulate(&FrameSpec::new(
                detector,
                PixelType::U32,
                0.05,
                300,
                i as u64 + 1,
            ))
            .to_bytes()
        })
        .collect();
    let raw: usize = frames.iter().map(Vec::len).sum();
    outln!(
        "Round trip through every codec, one thread, transpose kernel {}:\n",
        Kernel::best().name()
    );
    outln!("| codec | filter | stored MB | ratio | encode MB/s | decode MB/s |");
    outln!("|---|---|---:|---:|---:|---:|");
    outln!("| none | - | {:.1} | 1.00 | - | - |", raw as f64 / 1e6);
    for (name, codec) in all_codecs(4)? {
        let (compressed, enc, dec) = measure(name, &codec, &frames, 0.3)?;
        outln!(
            "| {name} | {} | {:.2} | {:.1} | {enc:.0} | {dec:.0} |",
            codec.filter_id(),
            compressed as f64 / 1e6,
            raw as f64 / compressed as f64
        );
    }
    outln!("\nEvery frame decoded back bit for bit.");
    Ok(())
}
