//! The `hdrmx` binary, driven as a user would: round trips through files, and clear errors.
use std::path::Path;
use std::process::{Command, Output};

fn hdrmx(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hdrmx"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running hdrmx")
}

/// `hdrmx chunk decode` of a uint32 bitshuffle/LZ4 chunk file in `dir`.
fn decode_u32_bslz4(file: &str, dir: &Path) -> Output {
    hdrmx(
        &[
            "chunk",
            "decode",
            "--codec",
            "bslz4",
            "--elem-size",
            "4",
            file,
            "out.raw",
        ],
        dir,
    )
}

fn frame() -> Vec<u8> {
    // 10_001 u32 elements: several blocks, a partial block and a raw tail.
    (0u32..10_001)
        .flat_map(|i| (if i % 97 == 0 { i } else { i % 3 }).to_le_bytes())
        .collect()
}

#[test]
fn every_codec_round_trips_through_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("in.raw"), frame()).unwrap();
    for codec in ["bslz4", "bszstd", "bitshuffle", "lz4", "zstd"] {
        let enc = hdrmx(
            &[
                "chunk",
                "encode",
                "--codec",
                codec,
                "--elem-size",
                "4",
                "in.raw",
                "c.bin",
            ],
            &dir,
        );
        assert!(
            enc.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&enc.stderr)
        );
        let size = frame().len().to_string();
        let dec = hdrmx(
            &[
                "chunk",
                "decode",
                "--codec",
                codec,
                "--elem-size",
                "4",
                "--size",
                &size,
                "c.bin",
                "out.raw",
            ],
            &dir,
        );
        assert!(
            dec.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
        assert_eq!(
            std::fs::read(dir.join("out.raw")).unwrap(),
            frame(),
            "{codec}"
        );
    }
}

#[test]
fn a_corrupt_chunk_is_a_clear_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("in.raw"), frame()).unwrap();
    let enc = hdrmx(
        &[
            "chunk",
            "encode",
            "--codec",
            "bslz4",
            "--elem-size",
            "4",
            "in.raw",
            "c.bin",
        ],
        &dir,
    );
    assert!(enc.status.success());
    let mut chunk = std::fs::read(dir.join("c.bin")).unwrap();
    // Block 0's size field claims far more than the chunk holds.
    chunk[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    std::fs::write(dir.join("bad.bin"), &chunk).unwrap();
    let dec = decode_u32_bslz4("bad.bin", &dir);
    assert_eq!(dec.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&dec.stderr);
    assert!(
        stderr.contains("decoding bad.bin") && stderr.contains("block 0 claims 4294967295 bytes"),
        "{stderr}"
    );

    // A header that claims 2^60 bytes is refused before anything is allocated.
    chunk[..8].copy_from_slice(&(1u64 << 60).to_be_bytes());
    std::fs::write(dir.join("huge.bin"), &chunk).unwrap();
    let dec = decode_u32_bslz4("huge.bin", &dir);
    assert_eq!(dec.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dec.stderr).contains("claims 1152921504606846976 bytes"));
}

#[test]
fn a_missing_file_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let dec = hdrmx(
        &[
            "chunk",
            "decode",
            "--codec",
            "lz4",
            "nothere.bin",
            "out.raw",
        ],
        &dir,
    );
    assert_eq!(dec.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dec.stderr).contains("reading nothere.bin"));
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hdrmx"))
        .args(["demo", "--detector", "eiger2-1m", "--frames", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running hdrmx");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("Simulating"), "{first}");
    // The reader is gone: the next line hits a closed pipe.
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
