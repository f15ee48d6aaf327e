//! Files written by durin-rs, read back by neggia-rs (an independent, libhdf5-free reader):
//! frames equal, metadata as an expectation written out here by hand.
use durin::{Layout, Metadata, Writer, WriterOptions};
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4};
use neggia::nxmx::Master;
use std::path::PathBuf;

const NX: usize = 40;
const NY: usize = 24;

fn metadata(elem_size: usize) -> Metadata {
    let mut mask = vec![0u32; NX * NY];
    mask[5] = 1;
    mask[NX * 3 + 7] = 2;
    Metadata {
        nx: NX,
        ny: NY,
        elem_size,
        x_pixel_size: 75e-6,
        y_pixel_size: 75e-6,
        distance: 0.2,
        beam_center_x: 20.5,
        beam_center_y: 11.25,
        wavelength: 0.9763,
        omega_start: 10.0,
        omega_increment: 0.1,
        count_time: 0.0099,
        frame_time: 0.01,
        sensor_material: "CdTe".into(),
        sensor_thickness: 750e-6,
        saturation_value: 12345,
        underload_value: -1,
        bit_depth_readout: 16,
        description: "test detector".into(),
        start_time: "2026-11-21T03:00:00Z".into(),
        pixel_mask: mask,
    }
}

fn frame(i: usize) -> Vec<u32> {
    (0..NX * NY)
        .map(|p| ((p * 7 + i * 13) % 50) as u32 * u32::from(p % 3 == 0))
        .collect()
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("durin-rs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(tag: &str, layout: Layout, codec: Codec, elem: usize, precompressed: bool) -> PathBuf {
    let dir = tempdir(tag);
    let opts = WriterOptions {
        frames_per_file: 2,
        layout,
        codec,
    };
    let mut w = Writer::create(&dir, "x", metadata(elem), opts).unwrap();
    for i in 0..5 {
        let raw: Vec<u8> = if elem == 2 {
            frame(i)
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect()
        } else {
            frame(i).iter().flat_map(|&v| v.to_le_bytes()).collect()
        };
        if precompressed {
            w.write_chunk(&codec.encode(&raw).unwrap()).unwrap();
        } else {
            w.write_frame(&raw).unwrap();
        }
    }
    w.finish().unwrap()
}

fn check_frames(master: &PathBuf) {
    let m = Master::open(master).unwrap();
    assert_eq!(m.frames(), 5);
    assert_eq!(m.shape(), [NY as u64, NX as u64]);
    for i in 0..5 {
        let mut out = vec![0u32; NX * NY];
        if m.dtype().size() == 2 {
            let mut o16 = vec![0u16; NX * NY];
            m.read_frame_into(i, &mut o16).unwrap();
            out = o16.iter().map(|&v| u32::from(v)).collect();
        } else {
            m.read_frame_into(i, &mut out).unwrap();
        }
        assert_eq!(out, frame(i as usize), "frame {i}");
    }
    let mask = m.mask().unwrap();
    assert_eq!(mask[5], 1);
    assert_eq!(mask[NX * 3 + 7], 2);
    assert_eq!(mask.iter().filter(|&&v| v != 0).count(), 2);
}

#[test]
fn vds_bslz4_raw_frames_u32() {
    let codec = Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).unwrap());
    check_frames(&write("vds32", Layout::Vds, codec, 4, false));
}

#[test]
fn vds_bslz4_precompressed_u16() {
    let codec = Codec::Bitshuffle(Bitshuffle::new(2, Compression::Lz4).unwrap());
    check_frames(&write("vds16", Layout::Vds, codec, 2, true));
}

#[test]
fn links_lz4_u32() {
    let codec = Codec::Lz4(Lz4::from_cd_values(&[]).unwrap());
    let master = write("links", Layout::Links, codec, 4, true);
    check_frames(&master);
    let f = neggia::File::open(&master).unwrap();
    for k in 1..=3 {
        assert!(f.dataset(&format!("/entry/data/data_{k:06}")).is_ok());
    }
}

fn value(f: &neggia::File, path: &str) -> neggia::Value {
    f.dataset(path).unwrap().read_value().unwrap()
}

fn attr(f: &neggia::File, path: &str, name: &str) -> neggia::Value {
    f.dataset(path).unwrap().attr(name).unwrap().unwrap()
}

#[test]
fn metadata_as_expected() {
    let codec = Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).unwrap());
    let master = write("meta", Layout::Vds, codec, 4, false);
    let f = neggia::File::open(&master).unwrap();
    let det = "/entry/instrument/detector";
    assert_eq!(value(&f, "/entry/definition").as_str(), Some("NXmx"));
    let num = |p: &str| value(&f, p).as_f64().unwrap();
    assert_eq!(num("/entry/instrument/beam/incident_wavelength"), 0.9763);
    assert_eq!(
        attr(&f, "/entry/instrument/beam/incident_wavelength", "units").as_str(),
        Some("angstrom")
    );
    assert_eq!(
        value(&f, &format!("{det}/sensor_material")).as_str(),
        Some("CdTe")
    );
    assert_eq!(num(&format!("{det}/sensor_thickness")), 750e-6);
    assert_eq!(num(&format!("{det}/saturation_value")), 12345.0);
    assert_eq!(num(&format!("{det}/bit_depth_readout")), 16.0);
    assert_eq!(num(&format!("{det}/count_time")), 0.0099);
    assert_eq!(num(&format!("{det}/frame_time")), 0.01);
    assert_eq!(num(&format!("{det}/beam_center_x")), 20.5);
    assert_eq!(num(&format!("{det}/beam_center_y")), 11.25);
    // The detector chain ends at ".", through module_offset and detector translation.
    let dep = value(&f, &format!("{det}/depends_on"));
    assert_eq!(
        dep.as_str(),
        Some("/entry/instrument/detector/transformations/translation")
    );
    let t = format!("{det}/transformations/translation");
    assert_eq!(num(&t), 0.2);
    assert_eq!(attr(&f, &t, "depends_on").as_str(), Some("."));
    assert_eq!(
        attr(&f, &t, "vector").to_f64s().unwrap(),
        vec![0.0, 0.0, 1.0]
    );
    let fast = format!("{det}/module/fast_pixel_direction");
    assert_eq!(num(&fast), 75e-6);
    assert_eq!(
        attr(&f, &fast, "vector").to_f64s().unwrap(),
        vec![-1.0, 0.0, 0.0]
    );
    assert_eq!(
        attr(&f, &fast, "transformation_type").as_str(),
        Some("translation")
    );
    let off = format!("{det}/module/module_offset");
    assert_eq!(attr(&f, &fast, "depends_on").as_str(), Some(off.as_str()));
    let o = attr(&f, &off, "offset").to_f64s().unwrap();
    assert!((o[0] - 20.5 * 75e-6).abs() < 1e-15 && (o[1] - 11.25 * 75e-6).abs() < 1e-15);
    let size = value(&f, &format!("{det}/module/data_size"))
        .to_f64s()
        .unwrap();
    assert_eq!(size, vec![NY as f64, NX as f64]);
    // The scan: omega from 10 in steps of 0.1, one value per frame.
    assert_eq!(
        value(&f, "/entry/sample/depends_on").as_str(),
        Some("/entry/sample/transformations/omega")
    );
    let w = value(&f, "/entry/sample/transformations/omega")
        .to_f64s()
        .unwrap();
    assert_eq!(w.len(), 5);
    for (i, x) in w.iter().enumerate() {
        assert!((x - (10.0 + 0.1 * i as f64)).abs() < 1e-12);
    }
    let om = "/entry/sample/transformations/omega";
    assert_eq!(
        attr(&f, om, "transformation_type").as_str(),
        Some("rotation")
    );
    assert_eq!(attr(&f, om, "units").as_str(), Some("deg"));
}

#[test]
fn wrong_frame_size_is_an_error() {
    let codec = Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).unwrap());
    let dir = tempdir("bad");
    let opts = WriterOptions {
        frames_per_file: 2,
        layout: Layout::Vds,
        codec,
    };
    let mut w = Writer::create(&dir, "x", metadata(4), opts).unwrap();
    assert!(w.write_frame(&[0u8; 10]).is_err());
}

#[test]
fn inverse_beam_and_multi_trigger_masters() {
    let codec = Codec::Bitshuffle(Bitshuffle::new(4, Compression::Lz4).unwrap());
    let dir = tempdir("partial");
    let opts = WriterOptions {
        frames_per_file: 5,
        layout: Layout::Vds,
        codec,
    };
    let mut w = Writer::create(&dir, "x", metadata(4), opts).unwrap();
    for i in 0..12 {
        let raw: Vec<u8> = frame(i).iter().flat_map(|&v| v.to_le_bytes()).collect();
        w.write_frame(&raw).unwrap();
    }
    let ib_a = [0..3, 6..9];
    let ib_b = [3..6, 9..12];
    // One range each: a trigger is a contiguous slice.
    let (t1, t2, t3) = (
        std::slice::from_ref(&(0..4)),
        std::slice::from_ref(&(4..8)),
        std::slice::from_ref(&(8..12)),
    );
    let paths = w
        .finish_with(&[
            ("ib_a", &ib_a),
            ("ib_b", &ib_b),
            ("t1", t1),
            ("t2", t2),
            ("t3", t3),
        ])
        .unwrap();
    assert_eq!(paths.len(), 6);
    let want: [&[u64]; 6] = [
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        &[0, 1, 2, 6, 7, 8],
        &[3, 4, 5, 9, 10, 11],
        &[0, 1, 2, 3],
        &[4, 5, 6, 7],
        &[8, 9, 10, 11],
    ];
    for (path, frames) in paths.iter().zip(want) {
        let m = Master::open(path).unwrap();
        let r = durin::Reader::open(path).unwrap();
        assert_eq!(m.frames(), frames.len() as u64, "{}", path.display());
        assert_eq!(r.frames(), frames.len() as u64, "{}", path.display());
        for (k, &g) in frames.iter().enumerate() {
            let (mut a, mut b) = (vec![0u32; NX * NY], vec![0u32; NX * NY]);
            m.read_frame_into(k as u64, &mut a).unwrap();
            r.read_frame_into(k as u64, &mut b).unwrap();
            assert_eq!(a, frame(g as usize), "{} frame {k}", path.display());
            assert_eq!(b, a, "{} frame {k}", path.display());
        }
        let f = neggia::File::open(path).unwrap();
        let omega = value(&f, "/entry/sample/transformations/omega")
            .to_f64s()
            .unwrap();
        let expected: Vec<f64> = frames.iter().map(|&g| 10.0 + 0.1 * g as f64).collect();
        assert_eq!(omega.len(), expected.len());
        for (a, b) in omega.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-12, "{omega:?} vs {expected:?}");
        }
    }
}

#[test]
fn partial_masters_need_a_vds() {
    let codec = Codec::Lz4(Lz4::from_cd_values(&[]).unwrap());
    let dir = tempdir("partial-links");
    let opts = WriterOptions {
        frames_per_file: 5,
        layout: Layout::Links,
        codec,
    };
    let mut w = Writer::create(&dir, "x", metadata(4), opts).unwrap();
    let raw: Vec<u8> = frame(0).iter().flat_map(|&v| v.to_le_bytes()).collect();
    w.write_frame(&raw).unwrap();
    assert!(w
        .finish_with(&[("a", std::slice::from_ref(&(0..1)))])
        .is_err());
}
