//! The NXmx facade on every master of the corpus: frame count, shape, type, mask, detector facts
//! and every frame equal to what h5py read through the same frame stack; template names; reads
//! from many threads; a missing VDS source as an error, or as HDF5's fill value when asked.

use std::path::{Path, PathBuf};

use neggia::nxmx::Master;
use neggia::{Datatype, Options};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files")
}

fn masters() -> Vec<(String, Json)> {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest");
    let m: Json = serde_json::from_str(&text).expect("JSON");
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("masters").is_some_and(|m| !m.is_null()))
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["masters"].clone(),
            )
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Frame `i` as little-endian bytes, read through the stored type.
fn frame_bytes(m: &Master, i: u64) -> neggia::Result<Vec<u8>> {
    let n = (m.shape()[0] * m.shape()[1]) as usize;
    Ok(match m.dtype() {
        Datatype::Int { size: 1, .. } => {
            let mut b = vec![0u8; n];
            m.read_frame_into(i, &mut b)?;
            b
        }
        Datatype::Int { size: 2, .. } => {
            let mut b = vec![0u16; n];
            m.read_frame_into(i, &mut b)?;
            b.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        Datatype::Int { size: 4, .. } => {
            let mut b = vec![0u32; n];
            m.read_frame_into(i, &mut b)?;
            b.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        other => panic!("frames of {other:?}"),
    })
}

#[test]
fn every_master_reads_as_h5py_read_it() {
    let list = masters();
    assert!(list.len() >= 10, "the corpus lists {} masters", list.len());
    for (name, want) in list {
        // The missing-source master is checked by its own tests.
        if name == "vds_missing.h5" {
            continue;
        }
        let m = Master::open(dir().join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            m.frames(),
            want["frames"].as_u64().unwrap(),
            "{name}: frames"
        );
        let shape: Vec<u64> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(m.shape().to_vec(), shape, "{name}: shape");
        assert_eq!(
            m.dtype().numpy(),
            want["dtype"].as_str().unwrap(),
            "{name}: dtype"
        );
        let mask = m.mask().unwrap_or_else(|| panic!("{name}: no mask"));
        let mask_le: Vec<u8> = mask.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            hex(&Sha256::digest(&mask_le)),
            want["mask_sha256"].as_str().unwrap(),
            "{name}: mask"
        );
        assert_eq!(
            m.bit_depth.map(u64::from),
            want["bit_depth"].as_u64(),
            "{name}: bit depth"
        );
        assert_eq!(
            m.saturation_value,
            want["saturation_value"].as_u64(),
            "{name}: saturation"
        );
        let (x, y) = m
            .pixel_size
            .unwrap_or_else(|| panic!("{name}: no pixel size"));
        assert_eq!(
            x,
            want["x_pixel_size"].as_f64().unwrap(),
            "{name}: x pixel size"
        );
        assert_eq!(
            y,
            want["y_pixel_size"].as_f64().unwrap(),
            "{name}: y pixel size"
        );
        for (i, sha) in want["frame_sha256"].as_array().unwrap().iter().enumerate() {
            let bytes =
                frame_bytes(&m, i as u64).unwrap_or_else(|e| panic!("{name} frame {i}: {e}"));
            assert_eq!(
                hex(&Sha256::digest(&bytes)),
                sha.as_str().unwrap(),
                "{name}: frame {i}"
            );
        }
        let past = m.read_frame_into(m.frames(), &mut [0u8; 0]);
        assert!(
            past.unwrap_err().to_string().contains("out of range"),
            "{name}: frame past the end"
        );
    }
}

#[test]
fn xds_template_names_open_the_master() {
    let m = Master::open(dir().join("eiger1_??????.h5")).expect("template form");
    assert_eq!(m.frames(), 10);
    assert_eq!(
        neggia::nxmx::master_path(Path::new("/d/x_??????.h5")),
        Path::new("/d/x_master.h5")
    );
}

#[test]
fn frames_read_from_many_threads_equal_one_thread() {
    for name in ["dls.h5", "eiger1_master.h5", "ib_b_master.h5"] {
        let m = Master::open(dir().join(name)).unwrap();
        let serial: Vec<Vec<u8>> = (0..m.frames())
            .map(|i| frame_bytes(&m, i).unwrap())
            .collect();
        // Each thread reads every frame, in its own shuffled order.
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (m, serial) = (&m, &serial);
                s.spawn(move || {
                    let n = m.frames();
                    for k in 0..n {
                        let i = (k * 7 + t * 3) % n;
                        assert_eq!(
                            frame_bytes(m, i).unwrap(),
                            serial[i as usize],
                            "{name} frame {i} thread {t}"
                        );
                    }
                });
            }
        });
    }
}

#[test]
fn a_missing_vds_source_is_an_error_naming_it() {
    let m = Master::open(dir().join("vds_missing.h5")).unwrap();
    assert!(frame_bytes(&m, 0).is_ok());
    for i in 3..6 {
        let err = frame_bytes(&m, i).unwrap_err().to_string();
        assert!(err.contains("vds_missing_000002.h5"), "frame {i}: {err}");
    }
    assert!(frame_bytes(&m, 6).is_ok());
}

#[test]
fn a_missing_vds_source_reads_as_fill_when_asked_as_h5py_does() {
    let (_, want) = masters()
        .into_iter()
        .find(|(n, _)| n == "vds_missing.h5")
        .unwrap();
    let options = Options {
        missing_vds_source_is_fill: true,
    };
    let m = Master::open_with(dir().join("vds_missing.h5"), options).unwrap();
    let fill = m
        .file()
        .dataset("/entry/data/data")
        .unwrap()
        .fill_value()
        .to_vec();
    let mut filled = 0;
    for (i, sha) in want["frame_sha256"].as_array().unwrap().iter().enumerate() {
        let bytes = frame_bytes(&m, i as u64).unwrap();
        match sha.as_str() {
            Some(sha) => assert_eq!(hex(&Sha256::digest(&bytes)), sha, "frame {i}"),
            // Where the source is missing, h5py returns the dataset's fill value.
            None => {
                assert!(
                    bytes.chunks(fill.len()).all(|e| e == fill),
                    "frame {i} is not the fill value"
                );
                filled += 1;
            }
        }
    }
    assert_eq!(filled, 3);
}

#[test]
fn readers_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<neggia::File>();
    check::<neggia::Dataset>();
    check::<Master>();
}

#[test]
fn a_missing_filewriter_data_file_fails_only_its_frames() {
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "eiger1_master.h5",
        "eiger1_data_000001.h5",
        "eiger1_data_000003.h5",
    ] {
        std::fs::copy(dir().join(f), tmp.path().join(f)).unwrap();
    }
    let full = Master::open(dir().join("eiger1_master.h5")).unwrap();
    let m = Master::open(tmp.path().join("eiger1_master.h5")).expect("opens without one data file");
    assert_eq!(m.frames(), full.frames());
    let mut failed = Vec::new();
    for i in 0..m.frames() {
        match frame_bytes(&m, i) {
            Ok(b) => assert_eq!(b, frame_bytes(&full, i).unwrap(), "frame {i}"),
            Err(e) => {
                assert!(
                    e.to_string().contains("eiger1_data_000002.h5"),
                    "frame {i}: {e}"
                );
                failed.push(i);
            }
        }
    }
    assert_eq!(failed, [4, 5, 6, 7]);
}
