//! Installs what the suite needs, idempotently.
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run_cmd};

/// Debian packages the suite needs: HDF5's command-line tools (HDF5 1.10), which load our filter
/// plugins in the tests.
const DEBIAN_PACKAGES: &[&str] = &["hdf5-tools", "libhdf5-dev", "pkg-config"];
const REQUIREMENTS: &str = "tests/python/requirements.txt";

pub fn all() -> Result<()> {
    python()?;
    cargo_fuzz()
}

/// What the Python side needs: HDF5's tools and the virtualenv.
pub fn python() -> Result<()> {
    debian()?;
    venv()
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn debian() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!("missing Debian packages; run as root:\n  {install}");
    }
    run_cmd(
        Command::new("sh")
            .args(["-c", &install])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn cargo_fuzz() -> Result<()> {
    if have("cargo-fuzz", "--version") {
        return Ok(());
    }
    run_cmd(crate::cargo_cmd().args(["install", "cargo-fuzz", "--locked"]))
}

pub fn venv_python() -> PathBuf {
    root().join(".venv/bin/python")
}

/// A virtualenv in `.venv` with the pinned test dependencies, reinstalled when the
/// requirements change.
fn venv() -> Result<()> {
    let python = venv_python();
    let requirements =
        std::fs::read_to_string(root().join(REQUIREMENTS)).context("reading requirements")?;
    let stamp = root().join(".venv/requirements.installed");
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == requirements) {
        return Ok(());
    }
    if !python.exists() {
        let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        if run_cmd(
            Command::new(&base)
                .args(["-m", "venv", ".venv"])
                .current_dir(root()),
        )
        .is_err()
        {
            if !is_root() {
                bail!(
                    "`{base} -m venv` failed; install python3-venv (apt-get install python3-venv)"
                );
            }
            run_cmd(
                Command::new("sh")
                    .args(["-c", "apt-get update && apt-get install -y python3-venv"]),
            )?;
            run_cmd(
                Command::new(&base)
                    .args(["-m", "venv", ".venv"])
                    .current_dir(root()),
            )?;
        }
    }
    run_cmd(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                REQUIREMENTS,
            ])
            .current_dir(root()),
    )?;
    std::fs::write(&stamp, requirements).context("writing the requirements stamp")
}
