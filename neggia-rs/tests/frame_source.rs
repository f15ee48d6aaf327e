//! `Dataset::frame_source`: every VDS frame of the corpus followed to the source frame that is
//! it, and read from there, equals the frame read through the VDS; fill, missing sources and
//! plain datasets.

use std::path::{Path, PathBuf};

use neggia::nxmx::Master;
use neggia::{Dataset, Storage};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files")
}

fn frame(d: &Dataset, i: u64) -> Vec<u8> {
    let n = d.frame_len() as usize * d.dtype().size();
    let mut out = vec![0u8; n];
    let mut start = vec![0; d.shape().len()];
    start[0] = i;
    let mut count = d.shape().to_vec();
    count[0] = 1;
    d.read_box(&start, &count, &mut out).unwrap();
    out
}

#[test]
fn vds_frames_lead_to_their_source_frames() {
    for name in [
        "dls.h5",
        "ib_a_master.h5",
        "ib_a_earliest_master.h5",
        "ib_b_master.h5",
        "mt_trigger_2_master.h5",
        "vds_printf.h5",
        "vds_samefile.h5",
    ] {
        let m = Master::open(dir().join(name)).unwrap();
        let vds = m.file().dataset("/entry/data/data").unwrap();
        assert_eq!(vds.storage(), Storage::Virtual, "{name}");
        for i in 0..m.frames() {
            let (src, local) = vds
                .frame_source(i)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} frame {i}: no single source"));
            assert_ne!(src.storage(), Storage::Virtual, "{name} frame {i}");
            assert_eq!(frame(src, local), frame(&vds, i), "{name} frame {i}");
        }
    }
}

#[test]
fn fill_missing_sources_and_plain_datasets() {
    let f = neggia::File::open(dir().join("vds_samefile.h5")).unwrap();
    let partial = f.dataset("/entry/data/partial").unwrap();
    // Frames 0 and 7 are not mapped: they are fill, with no source.
    assert!(partial.frame_source(0).unwrap().is_none());
    assert!(partial.frame_source(7).unwrap().is_none());
    assert!(partial.frame_source(3).unwrap().is_some());
    let raw = f.dataset("/entry/data/raw").unwrap();
    let (same, i) = raw.frame_source(4).unwrap().unwrap();
    assert_eq!((same.name(), i), (raw.name(), 4));

    let m = Master::open(dir().join("vds_missing.h5")).unwrap();
    let vds = m.file().dataset("/entry/data/data").unwrap();
    assert!(vds.frame_source(2).unwrap().is_some());
    for i in 3..6 {
        let e = vds
            .frame_source(i)
            .err()
            .expect("a missing source is an error");
        assert!(e.to_string().contains("vds_missing_000002.h5"), "{e}");
    }
}
