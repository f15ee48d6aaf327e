//! `cargo xtask bench codecs`: ours and the reference bitshuffle on the same frames, in one run.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{bootstrap, build_release, root, run_cmd};

/// The three plugins alone in a directory, for `HDF5_PLUGIN_PATH`.
pub const PLUGINS: [&str; 3] = [
    "libhdrmx_h5bshuf.so",
    "libhdrmx_h5lz4.so",
    "libhdrmx_h5zstd.so",
];

/// A fresh `target/NAME` with the plugins alone in `plugins/` and the benchmark frames in
/// `frames/`.
fn plugins_and_frames(name: &str, quick: bool) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let dir = root().join("target").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    for p in PLUGINS {
        std::fs::copy(root().join("target/release").join(p), plugins.join(p))?;
    }
    let frames = dir.join("frames");
    let mut hdrmx = Command::new(root().join("target/release/hdrmx"));
    hdrmx.args(["bench", "frames", "--out"]).arg(&frames);
    if quick {
        hdrmx.arg("--quick");
    }
    run_cmd(hdrmx.stdout(std::process::Stdio::null()))?;
    Ok((dir, plugins, frames))
}

/// `cargo xtask demo`: the codecs on simulated frames, then the plugins through h5py, then the
/// peak finders.
pub fn demo() -> Result<()> {
    bootstrap::python()?;
    build_release()?;
    run_cmd(Command::new(root().join("target/release/hdrmx")).arg("demo"))?;
    let (dir, plugins, frames) = plugins_and_frames("demo", true)?;
    run_cmd(
        Command::new(bootstrap::venv_python())
            .arg(root().join("tests/python/demo_filters.py"))
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("--frames")
            .arg(&frames)
            .arg("--out")
            .arg(dir.join("files")),
    )?;
    // Peak search on simulated frames, one of them drawn with its peaks circled.
    let mut spots = Command::new(root().join("target/release/hdrmx"));
    spots.args([
        "spots",
        "--simulate",
        "eiger2-4m",
        "--frames",
        "0..4",
        "--png",
    ]);
    run_cmd(spots.arg(dir.join("spots.png")))
}

pub fn filters(quick: bool) -> Result<()> {
    bootstrap::python()?;
    build_release()?;
    let (dir, plugins, frames) = plugins_and_frames("bench-filters", quick)?;
    run_cmd(
        Command::new(bootstrap::venv_python())
            .arg(root().join("tests/python/bench_filters.py"))
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("--frames")
            .arg(&frames)
            .arg("--out")
            .arg(dir.join("results.json")),
    )?;
    println!("\nTargets (issue 3): reads >= 1.5x hdf5plugin's, writes >= 1.3x.");
    Ok(())
}

pub fn codecs(quick: bool) -> Result<()> {
    bootstrap::python()?;
    build_release()?;
    let dir = root().join("target/bench-codecs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ours = dir.join("ours.json");
    let reference = dir.join("reference.json");
    let frames = dir.join("frames");
    let mut hdrmx = Command::new(root().join("target/release/hdrmx"));
    hdrmx
        .args(["bench", "codecs", "--frames-dir"])
        .arg(&frames)
        .arg("--json")
        .arg(&ours);
    if quick {
        hdrmx.arg("--quick");
    }
    run_cmd(&mut hdrmx)?;
    run_cmd(
        Command::new(bootstrap::venv_python())
            .arg(root().join("tests/python/bench_reference.py"))
            .arg("--frames")
            .arg(&frames)
            .arg("--out")
            .arg(&reference),
    )?;
    let read = |p: &std::path::Path| -> Result<Value> {
        serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))
    };
    let (ours, reference) = (read(&ours)?, read(&reference)?);
    let key = |r: &Value| {
        (
            r["frame"].as_str().unwrap_or("").to_owned(),
            r["codec"].as_str().unwrap_or("").to_owned(),
        )
    };
    let refs: HashMap<_, _> = reference["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (key(r), r.clone()))
        .collect();
    println!(
        "\nOne thread, same frames, same run. Ours: transpose kernel {}. Reference: {} (AVX2 build: {}).\n",
        ours["kernel"].as_str().unwrap_or("?"),
        reference["reference"].as_str().unwrap_or("?"),
        reference["avx2"]
    );
    println!("| frame | codec | decode MB/s ours | ref | ratio | encode MB/s ours | ref | ratio | size ours / ref |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in ours["results"].as_array().into_iter().flatten() {
        let Some(reference) = refs.get(&key(r)) else {
            continue;
        };
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {:.0} | {:.0} | **{:.2}x** | {:.0} | {:.0} | **{:.2}x** | {:.4} |",
            r["frame"].as_str().unwrap_or(""),
            r["codec"].as_str().unwrap_or(""),
            f(r, "decode_MBps"),
            f(reference, "decode_MBps"),
            f(r, "decode_MBps") / f(reference, "decode_MBps"),
            f(r, "encode_MBps"),
            f(reference, "encode_MBps"),
            f(r, "encode_MBps") / f(reference, "encode_MBps"),
            f(r, "compressed_bytes") / f(reference, "compressed_bytes"),
        );
    }
    println!("\nTargets (issue 2): bslz4 decode >= 2.0x, encode >= 1.5x, size within 2% of the reference.");
    Ok(())
}
