//! Project tasks: `cargo xtask bootstrap|test|demo|bench`.
//!
//! Everything a fresh machine needs is installed here (Debian packages when root, cargo-fuzz,
//! a Python virtualenv with pinned test dependencies), so `cargo xtask test` is the one command
//! for CI and for people.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

mod bench;
mod bench_peaks;
mod bench_reduce;
mod bench_write;
mod bench_xds;
mod bootstrap;
mod dials;
mod fuzz;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  bootstrap              install what the tests need (Debian packages, cargo-fuzz, .venv)
  test [--quick] [--fuzz-seconds N]
                         the whole suite: fmt, clippy, cargo tests (also with SIMD off),
                         Python tests against the reference, fuzz smoke runs (60 s each)
  demo                   simulate EIGER2 frames, round-trip them through every codec, and
                         write them with h5py through our plugin, read back by hdf5plugin
  bench xds [--quick] [--realtime]
                         the XDS plugin through the C host: ms per plugin_get_data on 4M
                         and 16M uint32 frames, links and VDS masters, 1 and 2 threads;
                         --realtime runs the host under SCHED_FIFO (a machine shared with
                         other jobs)
  bench dials [--quick]  hdrmx_dials (the DIALS format's reader) against h5py + hdf5plugin
                         on 4M uint32 VDS frames, one process, with ratios
  bench codecs [--quick] our codecs and the reference bitshuffle on the same frames, one
                         thread, with ratios
  bench write [--quick]  durin-rs writing pre-compressed 16M frames (direct chunk writes,
                         VDS master) against h5py's write_direct_chunk, one thread, ratio
  bench peaks [--quick]  the peak finders against the simulator's truth (recall, precision)
                         and their speed, one thread, with ratios to the issue's references
  bench filters [--quick] h5py reading and writing through hdf5plugin and through our
                         plugins, separate processes, one thread, with ratios
  bench read [--quick]   neggia-rs (pure Rust) against h5py + hdf5plugin: open a VDS and a
                         links master over the same data files, read every 16M frame (one
                         thread, and neggia-rs on two), with ratios; files in target/bench-read
  bench reduce [--quick] bslz4, bszstd, the mask remap, the lossy filter and binning on 4M
                         and 16M uint32 frames: ratios to raw and bslz4, MB/s, binning ms
                         beside a memory-bandwidth pass, spot-intensity bias at each q";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    match args.first().map(String::as_str) {
        Some("bootstrap") => bootstrap::all(),
        Some("test") => {
            let fuzz_seconds = match value("--fuzz-seconds") {
                Some(v) => v.parse().context("--fuzz-seconds takes a number")?,
                None => 60,
            };
            test(flag("--quick"), fuzz_seconds)
        }
        Some("demo") => bench::demo(),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("xds") => bench_xds::xds(flag("--quick"), flag("--realtime")),
            Some("dials") => dials::bench(flag("--quick")),
            Some("codecs") => bench::codecs(flag("--quick")),
            Some("filters") => bench::filters(flag("--quick")),
            Some("peaks") => bench_peaks::peaks(flag("--quick")),
            Some("write") => bench_write::write(flag("--quick")),
            Some("read") => bench::read(flag("--quick")),
            Some("reduce") => bench_reduce::reduce(flag("--quick")),
            _ => bail!("bench what?\n\n{USAGE}"),
        },
        None | Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo` as the one that runs us.
pub fn cargo_cmd() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The release `hdrmx`, the three filter plugins, and the XDS plugin with its C test host.
pub fn build_release() -> Result<()> {
    cargo(&[
        "build",
        "--release",
        "-p",
        "hdrmx-cli",
        "-p",
        "hdrmx-h5bshuf",
        "-p",
        "hdrmx-h5lz4",
        "-p",
        "hdrmx-h5zstd",
        "-p",
        "hdrmx-h5binning",
        "-p",
        "hdrmx-h5lossy",
        "-p",
        "hdrmx-xds",
        "-p",
        "hdrmx-xds-host",
    ])
}

pub fn cargo(args: &[&str]) -> Result<()> {
    run_cmd(cargo_cmd().args(args))
}

/// Runs a command to completion, failing loudly with the command line.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let status = cmd.status().with_context(|| format!("starting {line}"))?;
    if !status.success() {
        bail!("{line} failed: {status}");
    }
    Ok(())
}

/// A named step of the suite.
type Stage = (&'static str, Box<dyn Fn() -> Result<()>>);

fn test(quick: bool, fuzz_seconds: u64) -> Result<()> {
    bootstrap::all()?;
    let python = bootstrap::venv_python();
    let mut stages: Vec<Stage> = vec![
        (
            "fmt",
            Box::new(|| cargo(&["fmt", "--all", "--", "--check"])),
        ),
        (
            "clippy",
            Box::new(|| {
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ])
            }),
        ),
        ("cargo test", Box::new(|| cargo(&["test", "--workspace"]))),
        (
            // The portable fallback alone: every SIMD path has a scalar twin that must hold up.
            "cargo test, SIMD off",
            Box::new(|| {
                run_cmd(
                    cargo_cmd()
                        .args(["test", "-p", "hdrmx-core"])
                        .env("HDRMX_SIMD", "scalar"),
                )
            }),
        ),
        (
            "python tests",
            Box::new(move || {
                build_release()?;
                dials::install()?;
                run_cmd(
                    Command::new(&python)
                        .args(["-m", "pytest", "-q", "tests/python"])
                        .current_dir(root())
                        .env("HDRMX_BIN", root().join("target/release/hdrmx"))
                        .env("HDRMX_PLUGIN_DIR", root().join("target/release")),
                )
            }),
        ),
    ];
    if !quick {
        stages.push(("fuzz", Box::new(move || fuzz::smoke(fuzz_seconds))));
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, stage) in &stages {
        let start = Instant::now();
        eprintln!("\n=== {name}");
        match stage() {
            Ok(()) => {
                passed += 1;
                eprintln!("=== {name}: ok ({:.0} s)", start.elapsed().as_secs_f64());
            }
            Err(e) => {
                failed += 1;
                eprintln!("=== {name}: FAILED: {e:#}");
            }
        }
    }
    println!("\nstages: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} stage(s) failed");
    }
    Ok(())
}
