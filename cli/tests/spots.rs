//! `hdrmx spots`, driven as a user would: simulated frames, corpus masters, a drawing, errors.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn hdrmx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hdrmx"))
        .args(args)
        .output()
        .expect("running hdrmx")
}

fn corpus(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus/files")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// The JSON lines of a successful run.
fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn simulated_frames_are_searched_and_scored() {
    for finder in ["radial", "dispersion", "dispersion-extended"] {
        let out = hdrmx(&[
            "spots",
            "--simulate",
            "eiger2-1m",
            "--frames",
            "3..5",
            "--finder",
            finder,
            "--json",
        ]);
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 3, "two frames and the summary");
        for (line, frame) in lines.iter().zip([3, 4]) {
            assert_eq!(line["frame"], frame);
            let peaks = line["peaks"].as_array().unwrap();
            assert!(peaks.len() > 40, "{finder}: {} peaks", peaks.len());
            assert_eq!(line["hit"], true);
            assert!(
                line["recall"].as_f64().unwrap() > 0.8
                    && line["precision"].as_f64().unwrap() > 0.95
            );
            let p = &peaks[0];
            assert!(p["fs"].as_f64().unwrap() >= 0.0 && p["bbox"].as_array().unwrap().len() == 4);
        }
        let summary = &lines[2]["summary"];
        assert_eq!(
            (summary["frames"].clone(), summary["hits"].clone()),
            (2.into(), 2.into())
        );
        assert_eq!(summary["finder"], finder);
    }
}

#[test]
fn a_master_is_read_and_drawn() {
    let tmp = tempfile::tempdir().unwrap();
    let png: PathBuf = tmp.path().join("frame.png");
    let master = corpus("eiger2_master.h5");
    let out = hdrmx(&[
        "spots",
        &master,
        "--frames",
        "1..3",
        "--min-peaks",
        "1",
        "--png",
        png.to_str().unwrap(),
        "--png-frame",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("2 frames of") && text.contains("hits: 2 of 2"),
        "{text}"
    );
    assert!(text.contains("beam centre from the master"), "{text}");
    // A PNG of the frame's size (64 x 48).
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[16..24], &[0, 0, 0, 64, 0, 0, 0, 48]);

    // The same frames as JSON, through a VDS master too.
    for master in [master, corpus("dls.nxs")] {
        let lines = json_lines(&hdrmx(&["spots", &master, "--frames", "1..3", "--json"]));
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["summary"]["frames"], 2);
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let missing = hdrmx(&["spots", "/nonexistent/x_master.h5"]);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("opening /nonexistent/x_master.h5"), "{err}");

    let range = hdrmx(&["spots", &corpus("eiger2_master.h5"), "--frames", "5..99"]);
    assert_eq!(range.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&range.stderr).contains("the frames are 0..7"));

    // Neither a master nor --simulate, or both: usage errors.
    assert_eq!(hdrmx(&["spots"]).status.code(), Some(2));
    let both = hdrmx(&["spots", "x.h5", "--simulate", "eiger2-1m"]);
    assert_eq!(both.status.code(), Some(2));
    assert_eq!(
        hdrmx(&[
            "spots",
            "--simulate",
            "eiger2-1m",
            "--finder",
            "peakfinder9"
        ])
        .status
        .code(),
        Some(2)
    );
}
