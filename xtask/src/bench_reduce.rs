//! `cargo xtask bench reduce`: `hdrmx bench reduce` on simulated 4M and 16M uint32 frames (sizes
//! and speeds of the lossless, lossy and binning codecs; binning time beside a memory-bandwidth
//! reference; the lossy filter's spot-intensity bias). Results also in
//! target/bench-reduce/reduce.json.
use anyhow::Result;

use crate::{cargo, root, run_cmd};

pub fn reduce(quick: bool) -> Result<()> {
    cargo(&["build", "--release", "-p", "hdrmx-cli"])?;
    let dir = root().join("target/bench-reduce");
    std::fs::create_dir_all(&dir)?;
    let mut cmd = std::process::Command::new(root().join("target/release/hdrmx"));
    cmd.args(["bench", "reduce", "--json"])
        .arg(dir.join("reduce.json"));
    if quick {
        cmd.args(["--quick", "--seconds", "0.2"]);
    }
    run_cmd(&mut cmd)
}
