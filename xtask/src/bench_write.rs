//! `cargo xtask bench write`: durin-rs writing pre-compressed 16M frames (direct chunk writes,
//! 1000-frame data files, VDS master) against h5py doing the same with `write_direct_chunk`, the
//! same chunk bytes, one thread each, alternated, best of three.
use anyhow::{Context, Result};
use serde_json::Value;
use std::process::Command;

use crate::{bootstrap, cargo, root};

fn last_json(out: &[u8]) -> Result<Value> {
    let text = String::from_utf8_lossy(out);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON line in the output")?;
    Ok(serde_json::from_str(line)?)
}

fn run(cmd: &mut Command) -> Result<Value> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let out = cmd.output().with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{line} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    last_json(&out.stdout)
}

pub fn write(quick: bool) -> Result<()> {
    bootstrap::python()?;
    cargo(&[
        "build",
        "--release",
        "-p",
        "durin-rs",
        "--example",
        "bench_write",
    ])?;
    let dir = root().join("target/bench-write");
    std::fs::create_dir_all(&dir)?;
    let chunk = dir.join("chunk.bin");
    let frames = if quick { "100" } else { "500" };
    let (mut ours, mut ours_frames, mut reference) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut raw_bytes = 0.0;
    for _ in 0..3 {
        let v = run(
            Command::new(root().join("target/release/examples/bench_write"))
                .arg(frames)
                .arg(dir.join("durin"))
                .arg(&chunk),
        )?;
        ours = ours.min(v["seconds"].as_f64().context("seconds")?);
        ours_frames = ours_frames.min(v["frames_seconds"].as_f64().context("frames_seconds")?);
        raw_bytes = v["raw_bytes"].as_f64().context("raw_bytes")?;
        let v = run(Command::new(bootstrap::venv_python())
            .arg(root().join("tests/python/bench_write.py"))
            .arg("--chunk")
            .arg(&chunk)
            .arg("--frames")
            .arg(frames)
            .arg("--dir")
            .arg(dir.join("h5py")))?;
        reference = reference.min(v["seconds"].as_f64().context("seconds")?);
    }
    let n: f64 = frames.parse()?;
    let gbs = |s: f64| raw_bytes * n / s / 1e9;
    println!("\npre-compressed 16M uint32 frames, {frames} per run, best of 3, one thread");
    println!(
        "durin-rs  {:>7.0} frames/s  {:>6.2} GB/s uncompressed-equivalent (data files only)",
        n / ours_frames,
        gbs(ours_frames)
    );
    println!(
        "durin-rs  {:>7.0} frames/s  {:>6.2} GB/s with the master (NXmx metadata, deflated mask)",
        n / ours,
        gbs(ours)
    );
    println!(
        "h5py      {:>7.0} frames/s  {:>6.2} GB/s (write_direct_chunk, VDS master, no metadata)",
        n / reference,
        gbs(reference)
    );
    println!(
        "ratio     {:.2}x h5py (data files); target 1 GB/s with the master: {}",
        reference / ours_frames,
        if gbs(ours) >= 1.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
