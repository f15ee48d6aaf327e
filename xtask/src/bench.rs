//! `cargo xtask bench codecs|filters|read`: ours and the reference on the same data, in one run.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
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
/// peak finders, then the reduction commands (sizes before and after).
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
    // A gold-standard NXmx dataset written by durin-rs (VDS master over data files of 10
    // frames), read back by neggia-rs, then searched for peaks with one frame drawn.
    let hdrmx = || Command::new(root().join("target/release/hdrmx"));
    let nxmx = dir.join("nxmx");
    let _ = std::fs::remove_dir_all(&nxmx);
    run_cmd(
        hdrmx()
            .args(["simulate", "--detector", "eiger2-4m", "--frames", "20"])
            .args(["--frames-per-file", "10", "--name", "demo", "--out"])
            .arg(&nxmx),
    )?;
    let master = nxmx.join("demo_master.h5");
    run_cmd(
        hdrmx()
            .args(["bench", "read", "--passes", "1", "--opens", "1", "--master"])
            .arg(&master),
    )?;
    run_cmd(
        hdrmx()
            .arg("spots")
            .arg(&master)
            .args(["--frames", "0..4", "--png"])
            .arg(dir.join("spots.png")),
    )?;
    // The same dataset reduced: binned 2 x 2, and recompressed with the lossy filter at q = 1
    // (and q = 0, lossless), each a new NXmx dataset; sizes of master + data files.
    let reduced = dir.join("reduced");
    let _ = std::fs::remove_dir_all(&reduced);
    let steps: [(&str, &[&str]); 4] = [
        ("bin2", &["bin", "--factor", "2"]),
        ("sum2", &["sum", "--frames", "2"]),
        ("lossy-q1", &["compress", "--lossy", "q=1"]),
        ("lossy-q0", &["compress", "--lossy", "q=0"]),
    ];
    let before = dataset_bytes(&nxmx, "demo")?;
    println!(
        "\nReduction of {} ({:.1} MB):",
        master.display(),
        mb(before)
    );
    for (name, args) in steps {
        let out = reduced.join(name);
        run_cmd(
            hdrmx()
                .arg(args[0])
                .arg(&master)
                .args(&args[1..])
                .arg("-o")
                .arg(out.join(format!("{name}_master.h5")))
                .stdout(std::process::Stdio::null()),
        )?;
        let after = dataset_bytes(&out, name)?;
        println!(
            "  hdrmx {:<28} {:>8.1} MB  before/after {:.2}",
            args.join(" "),
            mb(after),
            before as f64 / after as f64
        );
    }
    Ok(())
}

/// Bytes of `<dir>/<name>_master.h5` and its `<name>_data_NNNNNN.h5` files.
fn dataset_bytes(dir: &std::path::Path, name: &str) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let file = e.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&format!("{name}_")) && file.ends_with(".h5") {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
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

/// A command's stdout, failing loudly with the command line (stderr passes through).
fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {line}"))?;
    if !out.status.success() {
        bail!("{line} failed: {}", out.status);
    }
    Ok(out.stdout)
}

/// Free bytes on the file system that holds `dir`, from `df`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// CPU time in clock ticks: the whole machine's busy and total time (`/proc/stat`), and that of
/// our finished children (`/proc/self/stat`).
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let t: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = t.first()? + t.get(1)? + t.get(2)? + t.get(5)? + t.get(6)?;
    let total = t.iter().take(8).sum();
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    let f: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, cutime and cstime fields 16 and 17.
    let children = f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?;
    Some((busy, total, children))
}

/// Runs `f` and says how many cores other processes kept busy meanwhile, on average: the
/// machine's busy time less our children's. Other work skews a 2-thread figure on 2 cores.
fn with_others<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Option<f64>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let before = cpu_ticks();
    let out = f()?;
    let others = match (before, cpu_ticks()) {
        (Some((b0, t0, c0)), Some((b1, t1, c1))) if t1 > t0 => {
            let busy = (b1 - b0).saturating_sub(c1 - c0);
            Some(busy as f64 * cores / (t1 - t0) as f64)
        }
        _ => None,
    };
    Ok((out, others))
}

/// Timed read passes on each side of `bench read`; the best counts.
const PASSES: usize = 5;

/// `cargo xtask bench read`: neggia-rs (`hdrmx bench read`) against h5py + hdf5plugin opening
/// two masters (VDS and external links) over the same data files and reading every frame.
pub fn read(quick: bool) -> Result<()> {
    bootstrap::python()?;
    build_release()?;
    let dir = root().join("target/bench-read");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // The data files are small (about 3.4 MB per bitshuffle/LZ4 16M frame), the frames and the
    // masters' masks a few hundred MB; ask for 2 GB to be safe.
    if let Some(free) = free_bytes(&dir) {
        if free < 2_000_000_000 {
            bail!(
                "{}: only {:.1} GB free, the benchmark wants 2 GB",
                dir.display(),
                free as f64 / 1e9
            );
        }
    }
    let (n, per_file) = if quick { (8, 4) } else { (24, 8) };
    let frames = dir.join("frames");
    run_cmd(
        Command::new(root().join("target/release/hdrmx"))
            .args(["bench", "frames", "--out"])
            .arg(&frames)
            .stdout(std::process::Stdio::null()),
    )?;
    let files = dir.join("files");
    let reference = dir.join("reference.json");
    let ((), others_ref) = with_others(|| {
        run_cmd(
            Command::new(bootstrap::venv_python())
                .arg(root().join("tests/python/bench_read.py"))
                .arg("--frames")
                .arg(&frames)
                .arg("--work")
                .arg(&files)
                .arg("--hdrmx")
                .arg(root().join("target/release/hdrmx"))
                .arg("--out")
                .arg(&reference)
                .args(["--n", &n.to_string(), "--per-file", &per_file.to_string()])
                .args(["--passes", &PASSES.to_string()]),
        )
    })?;
    let reference: Value = serde_json::from_slice(
        &std::fs::read(&reference).with_context(|| format!("reading {}", reference.display()))?,
    )
    .context("parsing the reference results")?;
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let mut rows = Vec::new();
    let mut others_ours: Option<f64> = Some(0.0);
    for (kind, label) in [("vds", "VDS"), ("links", "data_NNNNNN links")] {
        let r = &reference["masters"][kind];
        let path = r["path"].as_str().context("reference: master path")?;
        let (stdout, others) = with_others(|| {
            output(
                Command::new(root().join("target/release/hdrmx"))
                    .args(["bench", "read", "--json", "--threads", "2", "--passes"])
                    .arg(PASSES.to_string())
                    .arg("--master")
                    .arg(path),
            )
        })?;
        others_ours = others_ours.zip(others).map(|(a, b)| a.max(b));
        let ours: Value =
            serde_json::from_slice(&stdout).context("parsing `hdrmx bench read --json`")?;
        if ours["frame_sums"] != r["frame_sums"] {
            bail!("{path}: neggia-rs and h5py read different pixels (per-frame sums differ)");
        }
        rows.push((label, r.clone(), ours));
    }

    println!(
        "\n{} frames of 4362 x 4148 uint32 (bitshuffle + LZ4, one frame per chunk, {} per data file, {:.0} MB stored), \
         files in the page cache, best of {} passes; open = best of {} (pixel mask: one {} chunk).",
        n,
        per_file,
        f(&reference, "stored_bytes") / 1e6,
        reference["passes"],
        reference["opens"],
        reference["mask_layout"].as_str().unwrap_or("?"),
    );
    println!(
        "Reference: {}, one thread. neggia-rs: transpose kernel {}. Every frame's pixel sum agrees.\n",
        reference["reference"].as_str().unwrap_or("?"),
        rows[0].2["kernel"].as_str().unwrap_or("?"),
    );
    println!("| master | open ms: h5py | neggia-rs | ms/frame, 1 thread: h5py | neggia-rs | ratio | neggia-rs, 2 threads ms/frame | 2 threads vs 1 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut missed = Vec::new();
    for (label, r, ours) in &rows {
        let ratio = f(r, "read_ms_per_frame") / f(ours, "read_1t_ms_per_frame");
        let speedup = f(ours, "speedup");
        let open = f(ours, "open_ms");
        println!(
            "| {label} | {:.1} | {open:.1} | {:.2} | {:.2} | **{ratio:.2}x** | {:.2} | **{speedup:.2}x** |",
            f(r, "open_ms"),
            f(r, "read_ms_per_frame"),
            f(ours, "read_1t_ms_per_frame"),
            f(ours, "read_nt_ms_per_frame"),
        );
        if ratio < 3.0 {
            missed.push(format!("{label}: reading {ratio:.2}x h5py, target 3x"));
        }
        if speedup < 1.8 {
            missed.push(format!("{label}: 2 threads {speedup:.2}x one, target 1.8x"));
        }
        if open >= 50.0 {
            missed.push(format!("{label}: open {open:.1} ms, target < 50 ms"));
        }
    }
    println!(
        "\nTargets (neggia-rs issue): reading >= 3x h5py per frame, 2 threads >= 1.8x one, \
         master open < 50 ms (Neggia, DECTRIS's C++ reader: 156 ms)."
    );
    for m in &missed {
        println!("  missed: {m}");
    }
    let show = |o: Option<f64>| o.map_or("?".to_string(), |o| format!("{o:.2}"));
    println!(
        "Other processes kept {} cores busy on average during the reference run, {} during neggia-rs's.",
        show(others_ref),
        show(others_ours)
    );
    if others_ours.is_some_and(|o| o > 0.1) {
        println!(
            "  That skews the 2-thread figure (2 cores here): rerun on a quiet machine for the real one."
        );
    }
    Ok(())
}
