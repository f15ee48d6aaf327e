//! `Master::read_frame_with` on every corpus master: the same frames as `read_frame_into`,
//! handed over in ordered pieces that cover the frame, block by block where the frame is one
//! bitshuffle chunk (VDS frames followed to their source), and the same errors.

use std::path::{Path, PathBuf};

use neggia::nxmx::Master;
use neggia::{Datatype, Element};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files")
}

const MASTERS: &[&str] = &[
    "eiger1_master.h5",
    "eiger2_master.h5",
    "dls.h5",
    "dls.nxs",
    "ib_a_master.h5",
    "ib_a_earliest_master.h5",
    "ib_b_master.h5",
    "mt_trigger_1_master.h5",
    "mt_trigger_2_master.h5",
    "mt_trigger_3_master.h5",
    "vds_printf.h5",
    "vds_printf_v110.h5",
    "vds_samefile.h5",
    "vds_missing.h5",
];

/// Every frame both ways; returns how many pieces each frame came in (None: an error, which
/// must be the same error both ways).
fn compare<T: Element + PartialEq + std::fmt::Debug>(m: &Master, name: &str) -> Vec<Option<usize>> {
    let n = (m.shape()[0] * m.shape()[1]) as usize;
    let size = std::mem::size_of::<T>();
    (0..m.frames())
        .map(|i| {
            let mut want = vec![T::zeroed(); n];
            let expected = m.read_frame_into(i, &mut want);
            let mut got = vec![T::zeroed(); n];
            let (mut next, mut pieces) = (0usize, 0usize);
            let result = m.read_frame_with(i, &mut got, |at, part| {
                assert_eq!(at, next, "{name} frame {i}: pieces in order");
                assert_eq!(part.len() % size, 0, "{name} frame {i}: whole elements");
                next += part.len();
                pieces += 1;
            });
            match (expected, result) {
                (Ok(()), Ok(())) => {
                    assert_eq!(next, n * size, "{name} frame {i}: pieces cover the frame");
                    assert!(got == want, "{name} frame {i}");
                    Some(pieces)
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a.to_string(), b.to_string(), "{name} frame {i}");
                    None
                }
                (a, b) => panic!("{name} frame {i}: read_frame_into {a:?}, read_frame_with {b:?}"),
            }
        })
        .collect()
}

#[test]
fn same_frames_in_cache_sized_pieces() {
    for name in MASTERS {
        let m = Master::open(dir().join(name)).unwrap();
        let pieces = match m.dtype() {
            Datatype::Int { size: 2, .. } => compare::<u16>(&m, name),
            Datatype::Int { size: 4, .. } => compare::<u32>(&m, name),
            other => panic!("{name}: frames of {other:?}"),
        };
        if *name == "vds_missing.h5" {
            assert_eq!(pieces.iter().filter(|p| p.is_none()).count(), 3, "{name}");
        } else {
            assert!(pieces.iter().all(Option::is_some), "{name}");
        }
        // A 48 x 64 uint32 frame is two 8 KiB bitshuffle blocks: two pieces show the block path,
        // through links and through VDS mappings alike. (A uint16 frame is one block.)
        if matches!(m.dtype(), Datatype::Int { size: 4, .. }) {
            assert!(
                pieces.iter().flatten().all(|&p| p == 2),
                "{name}: {pieces:?}"
            );
        }
    }
}

#[test]
fn wrong_type_or_size_is_an_error() {
    let m = Master::open(dir().join("dls.h5")).unwrap();
    let n = (m.shape()[0] * m.shape()[1]) as usize;
    let e = m
        .read_frame_with(0, &mut vec![0u16; n], |_, _| {})
        .unwrap_err();
    assert!(e.to_string().contains("<u4"), "{e}");
    let e = m
        .read_frame_with(0, &mut vec![0u32; n - 1], |_, _| {})
        .unwrap_err();
    assert!(e.to_string().contains("48 x 64"), "{e}");
    let e = m
        .read_frame_with(12, &mut vec![0u32; n], |_, _| {})
        .unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
}
