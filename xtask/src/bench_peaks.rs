//! `cargo xtask bench peaks`: the peak finders' accuracy against the simulator's truth and their
//! speed, one thread, on the four frame types of issue 6 (`hdrmx_core::peaks::score`).
//!
//! Accuracy: found peaks matched 1:1 to simulated spots within 2 px (`score` says which spots
//! count). Speed: the median over repeated searches of a decoded frame, then of a bitshuffle/LZ4
//! chunk of the same frame decoded and searched, in two passes and fused. Times are the CPU time
//! of the searching thread, so that other work on a shared machine does not count; on an idle
//! machine that is the wall time.
use std::time::Instant;

use anyhow::Result;
use hdrmx_core::codec::{Bitshuffle, Codec, Compression};
use hdrmx_core::peaks::score::{frames, peak_pixel_snr, score_detectable, Size};
use hdrmx_core::peaks::{DispersionParams, Finder, PeakFinder, Peaks, Pixel, RadialParams};
use hdrmx_core::sim::{self, Detector, Frame, PixelType};

use crate::{cargo_cmd, run_cmd};

/// The reference figures of issue 6 (ms per 16M frame, this machine, one thread).
const PF8_FAST: f64 = 83.0;
const PF8_FULL: f64 = 256.0;
const DIALS_DISPERSION: f64 = 310.0;
const DIALS_EXTENDED: f64 = 480.0;
/// The spots a pixel threshold can see: their brightest pixel's expected signal-to-noise ratio
/// is at least this (radial's `min_snr`).
const DETECTABLE_SNR: f64 = 6.0;

pub fn finders() -> Vec<(&'static str, Finder)> {
    vec![
        ("radial", Finder::Radial(RadialParams::default())),
        (
            "dispersion",
            Finder::Dispersion(DispersionParams::default()),
        ),
        (
            "dispersion_extended",
            Finder::Dispersion(DispersionParams::extended()),
        ),
    ]
}

/// This thread's CPU time in ms, or the wall time since `start` where that fails.
fn thread_ms(start: Instant) -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    match unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } {
        0 => t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6,
        _ => start.elapsed().as_secs_f64() * 1e3,
    }
}

/// Median milliseconds of `f` over about `seconds` (at least 5 runs).
fn median_ms(seconds: f64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 5 || (start.elapsed().as_secs_f64() < seconds && times.len() < 1000) {
        let t = thread_ms(start);
        f();
        times.push(thread_ms(start) - t);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct Speed {
    search: f64,
    two_pass: f64,
    fused: f64,
}

fn run<T: Pixel>(
    frame: &Frame,
    finder: &Finder,
    seconds: f64,
    pixels: &[T],
) -> Result<(Peaks, Speed)> {
    let mut pf = PeakFinder::new(finder.clone(), frame.nx, frame.ny, Some(&frame.mask))?;
    let peaks = pf.search(pixels)?;
    let codec = Codec::Bitshuffle(Bitshuffle::new(size_of::<T>(), Compression::Lz4)?);
    let chunk = codec.encode(bytemuck::cast_slice(pixels))?;
    let mut buf = vec![T::zeroed(); pixels.len()];
    let fused_peaks = pf.decode_and_search_fused(&codec, &chunk, &mut buf)?;
    anyhow::ensure!(fused_peaks == peaks, "fused search differs");
    let search = median_ms(seconds, || {
        pf.search(pixels).expect("search");
    });
    let two_pass = median_ms(seconds, || {
        codec
            .decode(&chunk, bytemuck::cast_slice_mut(&mut buf))
            .expect("decode");
        pf.search(&buf).expect("search");
    });
    let fused = median_ms(seconds, || {
        pf.decode_and_search_fused(&codec, &chunk, &mut buf)
            .expect("search");
    });
    Ok((
        peaks,
        Speed {
            search,
            two_pass,
            fused,
        },
    ))
}

pub fn peaks(quick: bool) -> Result<()> {
    if cfg!(debug_assertions) {
        // Timings of an unoptimised build mean nothing: run the optimised one.
        let mut cmd = cargo_cmd();
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "xtask",
            "--",
            "bench",
            "peaks",
        ]);
        if quick {
            cmd.arg("--quick");
        }
        return run_cmd(&mut cmd);
    }
    let seconds = if quick { 0.5 } else { 2.0 };
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().next().unwrap_or("?").to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let load_before = load();
    let mut accuracy = Vec::new();
    let mut speed = Vec::new();
    for (name, spec) in frames(if quick { Size::Quick } else { Size::Full }) {
        eprintln!("simulating {name}");
        let frame = sim::simulate(&spec);
        for (fname, finder) in finders() {
            eprintln!("  {fname}");
            let (peaks, t) = match frame.pixel_type {
                PixelType::U16 => {
                    let px: Vec<u16> = frame.pixels.iter().map(|&v| v as u16).collect();
                    run(&frame, &finder, seconds, &px)?
                }
                PixelType::U32 => run(&frame, &finder, seconds, &frame.pixels)?,
            };
            let detectable = |s: &sim::Spot| peak_pixel_snr(&spec, s) >= DETECTABLE_SNR;
            accuracy.push((
                name,
                fname,
                score_detectable(&frame, &peaks.peaks, detectable),
            ));
            speed.push((name, fname, spec.detector, t));
        }
    }
    println!(
        "\nAccuracy: 1:1 matches within 2 px of the simulated spots. Detectable: the brightest \
         pixel's expected signal is at least {DETECTABLE_SNR} standard deviations of the \
         background.\n"
    );
    println!(
        "| frame | finder | peaks | spots | recall | recall >= 200 photons | recall, detectable \
         | precision |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (frame, finder, s) in &accuracy {
        println!(
            "| {frame} | {finder} | {} | {} | {:.3} | {:.3} ({}) | {:.3} ({}) | {:.3} |",
            s.found,
            s.visible,
            s.recall,
            s.recall_bright,
            s.visible_bright,
            s.recall_detectable,
            s.visible_detectable,
            s.precision
        );
    }
    for (finder, _) in finders() {
        let of = || {
            accuracy
                .iter()
                .filter(|(_, f, _)| *f == finder)
                .map(|(_, _, s)| s)
        };
        let visible: usize = of().map(|s| s.visible).sum();
        let found: f64 = of().map(|s| s.recall * s.visible as f64).sum();
        let detectable: usize = of().map(|s| s.visible_detectable).sum();
        let found_detectable: f64 = of()
            .map(|s| s.recall_detectable * s.visible_detectable as f64)
            .sum();
        println!(
            "| all frames | {finder} | | {visible} | {:.3} | | {:.3} ({detectable}) | |",
            found / visible as f64,
            found_detectable / detectable as f64
        );
    }
    println!(
        "\nSpeed: ms per frame, CPU time of one thread (1-minute load average {load_before} before, \
         {} after). search: a decoded frame; then a bitshuffle/LZ4 chunk decoded and searched in \
         two passes, and fused (search during decoding).\n",
        load()
    );
    println!("| frame | finder | search | decode, then search | fused | reference (16M) | ratio |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (frame, finder, det, t) in &speed {
        let reference = match (*det == Detector::EIGER2_16M, *finder) {
            (true, "radial") => format!(
                "peakfinder8 fast {PF8_FAST:.0} / full {PF8_FULL:.0} | **{:.1}x** / **{:.1}x**",
                PF8_FAST / t.search,
                PF8_FULL / t.search
            ),
            (true, "dispersion") => format!(
                "DIALS dispersion {DIALS_DISPERSION:.0} | **{:.1}x**",
                DIALS_DISPERSION / t.search
            ),
            (true, _) => format!(
                "DIALS dispersion_extended {DIALS_EXTENDED:.0} | **{:.1}x**",
                DIALS_EXTENDED / t.search
            ),
            (false, _) => "- | -".to_string(),
        };
        println!(
            "| {frame} | {finder} | {:.1} | {:.1} | {:.1} | {reference} |",
            t.search, t.two_pass, t.fused
        );
    }
    println!(
        "\nTargets (issue 6): precision >= 0.99; recall 1.0 for spots of >= 200 photons; recall \
         >= 0.82 (radial), >= 0.86 (dispersion), >= 0.95 at very low background. 16M: radial <= \
         20 ms, dispersion <= 40 ms; 4M: <= 6 ms and <= 10 ms."
    );
    Ok(())
}
