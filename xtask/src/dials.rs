//! The DIALS format package (`dials-format/`): its wheel, built with maturin and installed
//! into `.venv` for the Python tests, and `cargo xtask bench dials`.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{bootstrap, root, run_cmd};

/// Builds the hdrmx-dials wheel (release, abi3) with the pinned maturin and installs it into
/// `.venv` in place of any earlier build. Returns the wheel.
pub fn install() -> Result<PathBuf> {
    let out = root().join("target/wheels/dials");
    let _ = std::fs::remove_dir_all(&out);
    let maturin = root().join(".venv/bin/maturin");
    run_cmd(
        Command::new(&maturin)
            .args(["build", "--release", "-m", "dials-format/Cargo.toml", "-o"])
            .arg(&out)
            .current_dir(root()),
    )?;
    let wheels: Vec<PathBuf> = std::fs::read_dir(&out)
        .with_context(|| format!("reading {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    let [wheel] = wheels.as_slice() else {
        bail!("{}: expected one wheel, found {wheels:?}", out.display());
    };
    run_cmd(
        Command::new(bootstrap::venv_python())
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(["--force-reinstall", "--no-deps"])
            .arg(wheel),
    )?;
    Ok(wheel.clone())
}

/// `cargo xtask bench dials`: 4M uint32 frames through hdrmx_dials and through h5py +
/// hdf5plugin, in one process, with ratios (`tests/python/bench_dials.py`); files in
/// `target/bench-dials`.
pub fn bench(quick: bool) -> Result<()> {
    bootstrap::python()?;
    install()?;
    let dir = root().join("target/bench-dials");
    let _ = std::fs::remove_dir_all(&dir);
    let (frames, passes) = if quick { ("6", "2") } else { ("40", "5") };
    run_cmd(
        Command::new(bootstrap::venv_python())
            .arg(root().join("tests/python/bench_dials.py"))
            .arg("--work")
            .arg(dir.join("files"))
            .args(["--frames", frames, "--passes", passes])
            .arg("--out")
            .arg(dir.join("results.json")),
    )?;
    println!("\nTarget (issue 7): at least 5x h5py + hdf5plugin per 4M uint32 frame.");
    Ok(())
}
