//! `hdrmx bin`, `sum`, `roi` and `compress` driven as a user would, their outputs read back by
//! neggia-rs (the reader behind the XDS plugin and the DIALS format). The values are checked
//! against `hdrmx_core::reduce` applied to the input as neggia-rs reads it (the independent numpy
//! oracle is tests/python/test_reduce_commands.py); here the point is the plumbing: every frame,
//! in order, with the right mask, shape and geometry, readable by neggia-rs.
use hdrmx_core::reduce::{bin, roi, sum::Summer};
use neggia::nxmx::Master;
use std::path::Path;
use std::process::{Command, Output};

fn hdrmx_output(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hdrmx"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running hdrmx")
}

fn hdrmx(args: &[&str], dir: &Path) -> String {
    let out = hdrmx_output(args, dir);
    assert!(
        out.status.success(),
        "hdrmx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn frames<T: neggia::Element + Default>(m: &Master) -> Vec<Vec<T>> {
    let [ny, nx] = m.shape();
    (0..m.frames())
        .map(|i| {
            let mut f = vec![T::default(); (ny * nx) as usize];
            m.read_frame_into(i, &mut f).unwrap();
            f
        })
        .collect()
}

fn number(m: &Master, dataset: &str) -> f64 {
    m.file()
        .dataset(dataset)
        .unwrap()
        .read_value()
        .unwrap()
        .as_f64()
        .unwrap()
}

const DET: &str = "/entry/instrument/detector";

fn simulate(dir: &Path, pixel: &str) {
    hdrmx(
        &[
            "simulate",
            "--detector",
            "eiger2-1m",
            "--frames",
            "7",
            "--frames-per-file",
            "3",
            "--pixel",
            pixel,
            "--out",
            "sim",
            "--name",
            "x",
            "--spots",
            "30",
        ],
        dir,
    );
}

#[test]
fn bin_a_dectris_master() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files");
    let input = corpus.join("eiger2_master.h5");
    hdrmx(
        &[
            "bin",
            input.to_str().unwrap(),
            "--factor",
            "3",
            "-o",
            "out/b_master.h5",
        ],
        tmp.path(),
    );
    let a = Master::open(&input).unwrap();
    let b = Master::open(tmp.path().join("out/b_master.h5")).unwrap();
    let [ny, nx] = a.shape().map(|v| v as usize);
    let (bx, by) = bin::binned_shape(nx, ny, 3);
    assert_eq!(b.shape(), [by as u64, bx as u64]);
    assert_eq!(b.frames(), a.frames());
    assert_eq!(b.dtype().numpy(), "<u4");
    let mask = a.mask();
    let saturation = number(&a, &format!("{DET}/saturation_value")) as u32;
    let mut want = vec![0u32; bx * by];
    for (src, got) in frames::<u16>(&a).iter().zip(frames::<u32>(&b)) {
        bin::bin(src, nx, ny, 3, mask, Some(saturation), &mut want);
        assert_eq!(got, want);
    }
    let want_mask = bin::bin_mask(mask.unwrap(), nx, ny, 3);
    assert_eq!(b.mask(), Some(&want_mask[..]));
    // Both in metres (the corpus's is a float32, hence the tolerance), beam centres in pixels.
    for (field, scale) in [
        ("x_pixel_size", 3.0),
        ("y_pixel_size", 3.0),
        ("beam_center_x", 1.0 / 3.0),
        ("beam_center_y", 1.0 / 3.0),
        ("saturation_value", 9.0),
    ] {
        let p = format!("{DET}/{field}");
        let (va, vb) = (number(&a, &p), number(&b, &p));
        assert!((vb / va - scale).abs() < 1e-6, "{field}: {va} -> {vb}");
    }
    let size = b
        .file()
        .dataset(&format!("{DET}/module/data_size"))
        .unwrap()
        .read_value()
        .unwrap()
        .to_f64s()
        .unwrap();
    assert_eq!(size, [by as f64, bx as f64]);
}

#[test]
fn sum_and_roi_of_a_simulated_uint16_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    simulate(dir, "uint16");
    let stderr = hdrmx(
        &[
            "sum",
            "sim/x_master.h5",
            "--frames",
            "3",
            "-o",
            "s/s_master.h5",
            "--links",
            "--frames-per-file",
            "1",
        ],
        dir,
    );
    assert!(stderr.contains("the last 1 of 7 frames"), "{stderr}");
    let a = Master::open(dir.join("sim/x_master.h5")).unwrap();
    let s = Master::open(dir.join("s/s_master.h5")).unwrap();
    assert_eq!(s.frames(), 2);
    assert!(dir.join("s/s_data_000002.h5").is_file());
    let src = frames::<u16>(&a);
    let saturation = number(&a, &format!("{DET}/saturation_value")) as u32;
    let mut summer = Summer::new(src[0].len(), Some(saturation));
    let mut want = vec![0u32; src[0].len()];
    for (j, got) in frames::<u32>(&s).iter().enumerate() {
        for f in &src[3 * j..3 * j + 3] {
            summer.add(f);
        }
        summer.finish_into(&mut want);
        assert_eq!(got, &want, "output frame {j}");
    }
    assert_eq!(s.mask(), a.mask());
    let ct = |m: &Master| number(m, &format!("{DET}/count_time"));
    assert!((ct(&s) / ct(&a) - 3.0).abs() < 1e-12);

    hdrmx(
        &[
            "roi",
            "sim/x_master.h5",
            "--roi",
            "500,520,64,32",
            "-o",
            "r/r_master.h5",
        ],
        dir,
    );
    let r = Master::open(dir.join("r/r_master.h5")).unwrap();
    assert_eq!((r.shape(), r.frames()), ([32, 64], 7));
    assert_eq!(r.dtype().numpy(), "<u2");
    let roi = roi::Roi::parse("500,520,64,32").unwrap();
    let mut cut = vec![0u16; 64 * 32];
    for (f, got) in src.iter().zip(frames::<u16>(&r)) {
        roi::cut(f, 1028, &roi, &mut cut);
        assert_eq!(got, cut);
    }
    let bx = |m: &Master| number(m, &format!("{DET}/beam_center_x"));
    assert_eq!(bx(&r), bx(&a) - 500.0);
}

#[test]
fn compress_lossy_and_lossless_read_back_by_neggia() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    simulate(dir, "uint16");
    let a = Master::open(dir.join("sim/x_master.h5")).unwrap();
    let src = frames::<u16>(&a);
    for (q, inner) in [("q=0", "zstd"), ("q=1", "lz4"), ("q=2", "zstd")] {
        let out = format!("{q}/c_master.h5");
        hdrmx(
            &[
                "compress",
                "sim/x_master.h5",
                "--lossy",
                q,
                "--inner",
                inner,
                "-o",
                &out,
            ],
            dir,
        );
        let c = Master::open(dir.join(&out)).unwrap();
        let f = neggia::File::open(dir.join(format!("{q}/c_data_000001.h5"))).unwrap();
        assert_eq!(f.dataset("/entry/data/data").unwrap().filters()[0].id, 311);
        assert_eq!((c.frames(), c.shape(), c.mask()), (7, a.shape(), a.mask()));
        let got = frames::<u16>(&c);
        let step: f64 = q[2..].parse().unwrap();
        if step == 0.0 {
            assert_eq!(got, src);
            continue;
        }
        let mut changed = 0;
        for (g, s) in got.iter().zip(&src) {
            for (&g, &s) in g.iter().zip(s) {
                let err = (f64::from(g) - f64::from(s)).abs();
                assert!(err <= step / 2.0 * f64::from(s).sqrt() + 1e-9, "{s} -> {g}");
                assert!(s != u16::MAX || g == s);
                changed += usize::from(g != s);
            }
        }
        assert!(changed > 0, "{q}: nothing quantised");
    }
}

#[test]
fn errors_are_clear_and_fail_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    simulate(dir, "uint32");
    for (args, message) in [
        (
            &[
                "bin",
                "missing_master.h5",
                "--factor",
                "2",
                "-o",
                "o_master.h5",
            ][..],
            "missing_master.h5",
        ),
        (
            &[
                "bin",
                "sim/x_master.h5",
                "--factor",
                "8",
                "-o",
                "o_master.h5",
            ],
            "--factor",
        ),
        (
            &[
                "sum",
                "sim/x_master.h5",
                "--frames",
                "8",
                "-o",
                "o_master.h5",
            ],
            "7 frames, fewer than one group of 8",
        ),
        (
            &[
                "roi",
                "sim/x_master.h5",
                "--roi",
                "0,0,2000,1",
                "-o",
                "o_master.h5",
            ],
            "does not fit",
        ),
        (
            &[
                "roi",
                "sim/x_master.h5",
                "--roi",
                "a,b",
                "-o",
                "o_master.h5",
            ],
            "--roi",
        ),
        (
            &[
                "bin",
                "sim/x_master.h5",
                "--factor",
                "2",
                "-o",
                "sim/x_master.h5",
            ],
            "overwrite the input",
        ),
        (
            &[
                "compress",
                "sim/x_master.h5",
                "--lossy",
                "q=x",
                "-o",
                "o_master.h5",
            ],
            "--lossy",
        ),
    ] {
        let out = hdrmx_output(args, dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The input is untouched.
    assert_eq!(
        Master::open(dir.join("sim/x_master.h5")).unwrap().frames(),
        7
    );

    // A truncated data file: an error naming it and the frame, from every command.
    std::fs::create_dir(dir.join("bad")).unwrap();
    for f in ["x_master.h5", "x_data_000001.h5", "x_data_000002.h5"] {
        std::fs::copy(dir.join("sim").join(f), dir.join("bad").join(f)).unwrap();
    }
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("bad/x_data_000002.h5"))
        .unwrap();
    cut.set_len(cut.metadata().unwrap().len() / 2).unwrap();
    for args in [
        &["bin", "bad/x_master.h5", "--factor", "2"][..],
        &["sum", "bad/x_master.h5", "--frames", "2"],
        &["roi", "bad/x_master.h5", "--roi", "0,0,10,10"],
        &["compress", "bad/x_master.h5", "--lossy", "q=1"],
    ] {
        let out = hdrmx_output(&[args, &["-o", "b/b_master.h5"]].concat(), dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("x_data_000002.h5"), "{args:?}: {stderr}");
        assert!(stderr.contains("reading frame 3"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // No master for a dataset that was not written whole.
        assert!(!dir.join("b/b_master.h5").exists());
    }
}
