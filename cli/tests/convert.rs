//! `hdrmx simulate` and `hdrmx convert`, driven as a user would; the files read back by neggia-rs.
use neggia::nxmx::Master;
use std::path::Path;
use std::process::Command;

fn hdrmx(args: &[&str], dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_hdrmx"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running hdrmx");
    assert!(
        out.status.success(),
        "hdrmx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn frames_u32(m: &Master) -> Vec<Vec<u32>> {
    let [ny, nx] = m.shape();
    (0..m.frames())
        .map(|i| {
            let mut f = vec![0u32; (ny * nx) as usize];
            m.read_frame_into(i, &mut f).unwrap();
            f
        })
        .collect()
}

fn frames_u16(m: &Master) -> Vec<Vec<u16>> {
    let [ny, nx] = m.shape();
    (0..m.frames())
        .map(|i| {
            let mut f = vec![0u16; (ny * nx) as usize];
            m.read_frame_into(i, &mut f).unwrap();
            f
        })
        .collect()
}

fn number(path: &Path, dataset: &str) -> f64 {
    let f = neggia::File::open(path).unwrap();
    f.dataset(dataset)
        .unwrap()
        .read_value()
        .unwrap()
        .as_f64()
        .unwrap()
}

#[test]
fn simulate_then_convert_to_links_and_lz4() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    hdrmx(
        &[
            "simulate",
            "--detector",
            "eiger2-1m",
            "--frames",
            "5",
            "--out",
            "sim",
            "--spots",
            "20",
            "--frames-per-file",
            "3",
        ],
        dir,
    );
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sim/sim_truth.json")).unwrap())
            .unwrap();
    assert_eq!(truth["frames"], 5);
    assert_eq!(truth["truth"].as_array().unwrap().len(), 5);
    std::fs::create_dir(dir.join("out")).unwrap();
    hdrmx(
        &[
            "convert",
            "sim/sim_master.h5",
            "out/y_master.h5",
            "--codec",
            "lz4",
            "--links",
            "--frames-per-file",
            "2",
        ],
        dir,
    );
    let a = Master::open(dir.join("sim/sim_master.h5")).unwrap();
    let b = Master::open(dir.join("out/y_master.h5")).unwrap();
    assert_eq!(b.frames(), 5);
    assert_eq!(frames_u32(&a), frames_u32(&b));
    assert_eq!(a.mask(), b.mask());
    assert!(dir.join("out/y_data_000003.h5").is_file());
    let f = neggia::File::open(dir.join("out/y_master.h5")).unwrap();
    let d = f.dataset("/entry/data/data_000001").unwrap();
    assert_eq!(d.filters()[0].id, 32004);
    for p in [
        "/entry/instrument/beam/incident_wavelength",
        "/entry/instrument/detector/beam_center_x",
        "/entry/instrument/detector/transformations/translation",
        "/entry/instrument/detector/saturation_value",
    ] {
        assert_eq!(
            number(&dir.join("sim/sim_master.h5"), p),
            number(&dir.join("out/y_master.h5"), p),
            "{p}"
        );
    }
}

#[test]
fn convert_a_dectris_master_to_vds() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files");
    let input = corpus.join("eiger2_master.h5");
    hdrmx(
        &[
            "convert",
            input.to_str().unwrap(),
            "z_master.h5",
            "--codec",
            "bszstd",
        ],
        tmp.path(),
    );
    let a = Master::open(&input).unwrap();
    let b = Master::open(tmp.path().join("z_master.h5")).unwrap();
    assert_eq!(frames_u16(&a), frames_u16(&b));
    assert_eq!(a.mask(), b.mask());
}

#[test]
fn convert_refuses_a_bad_output_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hdrmx"))
        .args(["convert", "missing_master.h5", "out.h5"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing_master.h5"));
}
