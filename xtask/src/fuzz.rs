//! Fuzz smoke runs: every target in fuzz/ for a bounded time, from its seed corpus.
use std::process::Command;

use anyhow::{Context, Result};

use crate::{root, run_cmd};

/// Runs each cargo-fuzz target for `seconds`; any crash fails.
pub fn smoke(seconds: u64) -> Result<()> {
    let fuzz = root().join("fuzz");
    let list = Command::new("cargo-fuzz")
        .args(["list"])
        .current_dir(&fuzz)
        .output()
        .context("cargo fuzz list")?;
    let targets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!targets.is_empty(), "cargo fuzz list found no targets");
    // cargo-fuzz needs nightly flags: use a nightly toolchain when rustup has one, otherwise let
    // stable accept them.
    let nightly = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("nightly"))
        });
    let fuzz_cmd = || {
        let mut cmd = Command::new("cargo");
        if nightly {
            cmd.arg("+nightly");
        } else {
            cmd.env("RUSTC_BOOTSTRAP", "1");
        }
        cmd.arg("fuzz").current_dir(&fuzz);
        cmd
    };
    run_cmd(fuzz_cmd().args(["build", "-O"]))?;
    for target in &targets {
        // A fresh corpus per run, seeded from the committed seeds, so runs do not grow the repo.
        let corpus = root().join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        run_cmd(
            fuzz_cmd()
                .args(["run", "-O", target])
                .arg(&corpus)
                .arg(fuzz.join("seeds").join(target))
                .args([
                    "--",
                    &format!("-max_total_time={seconds}"),
                    "-rss_limit_mb=2048",
                    "-print_final_stats=1",
                ]),
        )?;
    }
    Ok(())
}
