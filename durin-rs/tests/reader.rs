//! The libhdf5 reader against neggia-rs (pure Rust): every master of the test corpus, and files
//! durin-rs writes. Frames and masks equal; where one cannot read, the reason is stated here.
use durin::{Layout, Metadata, Reader, Writer, WriterOptions};
use hdrmx_core::codec::{Bitshuffle, Codec, Compression};
use neggia::nxmx::Master;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files")
}

fn masters() -> Vec<String> {
    let text = std::fs::read_to_string(corpus().join("manifest.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("masters").is_some_and(|m| !m.is_null()))
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect()
}

/// Every frame of both, as bytes; `None` where the reader failed.
fn frames_equal(path: &Path) -> Result<usize, String> {
    let ours = Reader::open(path).map_err(|e| e.to_string())?;
    let theirs = Master::open(path).unwrap();
    assert_eq!(ours.frames(), theirs.frames(), "{}", path.display());
    assert_eq!(ours.shape(), theirs.shape(), "{}", path.display());
    assert_eq!(ours.mask(), theirs.mask(), "{}", path.display());
    let n = (ours.shape()[0] * ours.shape()[1]) as usize;
    for i in 0..ours.frames() {
        match (ours.elem_size(), ours.is_signed()) {
            (2, false) => {
                let (mut a, mut b) = (vec![0u16; n], vec![1u16; n]);
                ours.read_frame_into(i, &mut a).unwrap();
                theirs.read_frame_into(i, &mut b).unwrap();
                assert_eq!(a, b, "{} frame {i}", path.display());
            }
            (4, false) => {
                let (mut a, mut b) = (vec![0u32; n], vec![1u32; n]);
                ours.read_frame_into(i, &mut a).unwrap();
                theirs.read_frame_into(i, &mut b).unwrap();
                assert_eq!(a, b, "{} frame {i}", path.display());
            }
            other => panic!("{}: pixel type {other:?} not in this test", path.display()),
        }
    }
    Ok(ours.frames() as usize)
}

#[test]
fn agrees_with_neggia_on_the_corpus() {
    let names = masters();
    assert!(names.len() >= 10, "{names:?}");
    let (mut read, mut too_new) = (Vec::new(), Vec::new());
    for name in names {
        let path = corpus().join(&name);
        let r = frames_equal(&path);
        match name.as_str() {
            // A VDS source was deleted after writing: an error naming it, not fill values.
            "vds_missing.h5" => {
                let e = r.unwrap_err();
                assert!(e.contains("vds_missing_000002.h5"), "{e}");
            }
            // printf-style source names (%b): refused, with a message saying so.
            "vds_printf.h5" | "vds_printf_v110.h5" => {
                let e = r.unwrap_err();
                assert!(e.contains("printf"), "{e}");
            }
            // Written by HDF5 2.0 (layout message 5), which libhdf5 1.10 does not know.
            _ if r.as_ref().is_err_and(|e| e.contains("bad version")) => too_new.push(name),
            _ => {
                let n = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(n > 0, "{name}");
                read.push(name);
            }
        }
    }
    eprintln!("read and equal: {read:?}; too new for libhdf5 1.10: {too_new:?}");
    // The DLS-style, inverse-beam and multi-trigger masters written for HDF5 1.10 are read.
    for must in ["ib_a_earliest_master.h5", "eiger1_master.h5"] {
        assert!(read.iter().any(|r| r == must), "{must} not read: {read:?}");
    }
}

#[test]
fn reads_what_durin_writes() {
    let dir = std::env::temp_dir().join(format!("durin-rs-reader-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (nx, ny) = (33, 17);
    let meta = Metadata {
        nx,
        ny,
        elem_size: 4,
        x_pixel_size: 75e-6,
        y_pixel_size: 75e-6,
        distance: 0.1,
        beam_center_x: 16.0,
        beam_center_y: 8.0,
        wavelength: 1.0,
        omega_start: 0.0,
        omega_increment: 1.0,
        count_time: 0.1,
        frame_time: 0.1,
        sensor_material: "Si".into(),
        sensor_thickness: 450e-6,
        saturation_value: 1000,
        underload_value: -1,
        bit_depth_readout: 32,
        description: "t".into(),
        start_time: "2026-01-01T00:00:00Z".into(),
        pixel_mask: Vec::new(),
    };
    for layout in [Layout::Vds, Layout::Links] {
        let codec = Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).unwrap());
        let sub = dir.join(format!("{layout:?}"));
        std::fs::create_dir_all(&sub).unwrap();
        let opts = WriterOptions {
            frames_per_file: 3,
            layout,
            codec,
        };
        let mut w = Writer::create(&sub, "x", meta.clone(), opts).unwrap();
        for i in 0..8u32 {
            let raw: Vec<u8> = (0..(nx * ny) as u32)
                .flat_map(|p| (p * i % 97).to_le_bytes())
                .collect();
            w.write_frame(&raw).unwrap();
        }
        let master = w.finish().unwrap();
        assert_eq!(frames_equal(&master).unwrap(), 8);
        let r = Reader::open(&master).unwrap();
        assert!(r.mask().is_none());
        let mut out = vec![0u32; nx * ny];
        r.read_frame_into(5, &mut out).unwrap();
        assert_eq!(out[40], 40 * 5 % 97);
        assert!(r.read_frame_into(8, &mut out).is_err());
        let mut wrong = vec![0u16; nx * ny];
        assert!(r.read_frame_into(0, &mut wrong).is_err());
        drop(r);
        // A data file gone: opening the master says which, rather than reading fill values.
        std::fs::remove_file(sub.join("x_data_000002.h5")).unwrap();
        let e = Reader::open(&master)
            .err()
            .expect("a missing data file")
            .to_string();
        assert!(
            e.contains("x_data_000002.h5") || e.contains("data_000002"),
            "{e}"
        );
    }
}

/// A master whose frames are not one per chunk (two frames a chunk, deflated): read through
/// H5Dread, equal to neggia-rs, from two threads at once.
#[test]
fn h5dread_path_and_threads() {
    use durin::h5;
    let dir = std::env::temp_dir().join(format!("durin-rs-h5dread-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m_master.h5");
    let (n, ny, nx) = (6u64, 9u64, 14u64);
    let pixels: Vec<u32> = (0..n * ny * nx).map(|p| (p * 31 % 1000) as u32).collect();
    {
        let _g = h5::lock();
        let f = h5::create_file(path.to_str().unwrap()).unwrap();
        let e = h5::group(&f, "entry", "NXentry").unwrap();
        let d = h5::group(&e, "data", "NXdata").unwrap();
        let dims = [n, ny, nx];
        let ds = h5::chunked(
            &d,
            "data",
            h5::types::u32_le(),
            &dims,
            &dims,
            &[2, ny, nx],
            Some((1, &[4])),
        )
        .unwrap();
        let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_ne_bytes()).collect();
        h5::write_all(&ds, h5::types::u32(), &bytes).unwrap();
    }
    assert_eq!(frames_equal(&path).unwrap(), n as usize);
    let r = Reader::open(&path).unwrap();
    let frame = (ny * nx) as usize;
    std::thread::scope(|s| {
        for t in 0..2 {
            let (r, pixels) = (&r, &pixels);
            s.spawn(move || {
                let mut out = vec![0u32; frame];
                for round in 0..20 {
                    let i = (t + round) % n as usize;
                    r.read_frame_into(i as u64, &mut out).unwrap();
                    assert_eq!(out, pixels[i * frame..(i + 1) * frame]);
                }
            });
        }
    });
}
