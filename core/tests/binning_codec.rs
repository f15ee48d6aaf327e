//! The binning filter codec (310): round trips that keep every invalid pixel and every bin
//! total, on random and simulated frames, and hostile chunks that must give errors.

use hdrmx_core::codec::binning::{Binning, FILTER_ID, HEADER_LEN};
use hdrmx_core::codec::{Codec, CodecError};
use hdrmx_core::sim::{simulate, Detector, FrameSpec, PixelType};
use proptest::prelude::*;

fn encode(b: &Binning, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    Codec::Binning(*b).encode(raw)
}

fn max_of(elem: usize) -> u32 {
    match elem {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => u32::MAX,
    }
}

fn to_bytes(v: &[u32], elem: usize) -> Vec<u8> {
    v.iter()
        .flat_map(|x| x.to_le_bytes()[..elem].to_vec())
        .collect()
}

fn from_bytes(b: &[u8], elem: usize) -> Vec<u32> {
    b.chunks_exact(elem)
        .map(|c| {
            let mut v = [0u8; 4];
            v[..elem].copy_from_slice(c);
            u32::from_le_bytes(v)
        })
        .collect()
}

/// Sums of the valid pixels of each bin, partial bins included, frame by frame.
fn bin_totals(v: &[u32], nx: usize, ny: usize, n: usize, max: u32) -> Vec<u64> {
    let (bx, by) = (nx.div_ceil(n), ny.div_ceil(n));
    let mut t = vec![0u64; v.len() / (nx * ny) * bx * by];
    for (i, &x) in v.iter().enumerate() {
        let (f, p) = (i / (nx * ny), i % (nx * ny));
        let (y, xx) = (p / nx, p % nx);
        if x != max {
            t[(f * by + y / n) * bx + xx / n] += u64::from(x);
        }
    }
    t
}

/// Encodes and decodes; checks the guarantees; returns the decoded values.
fn round_trip(v: &[u32], nx: usize, ny: usize, n: usize, elem: usize) -> Vec<u32> {
    let codec = Codec::Binning(Binning::new(n, nx, ny, elem).unwrap());
    let raw = to_bytes(v, elem);
    let enc = codec.encode(&raw).unwrap();
    assert_eq!(codec.decoded_len(&enc).unwrap(), Some(raw.len() as u64));
    let mut dec = vec![0xA5u8; raw.len()];
    codec.decode(&enc, &mut dec).unwrap();
    let mut again = vec![0x11u8; raw.len()];
    codec.decode(&enc, &mut again).unwrap();
    assert_eq!(dec, again, "deterministic");
    // Into a buffer not aligned for the element type: the same bytes.
    let mut shifted = vec![0x77u8; raw.len() + 1];
    codec.decode(&enc, &mut shifted[1..]).unwrap();
    assert_eq!(&shifted[1..], &dec[..], "unaligned output");
    let d = from_bytes(&dec, elem);
    let max = max_of(elem);
    for (a, b) in v.iter().zip(&d) {
        assert_eq!(*a == max, *b == max, "invalid pixels exact");
    }
    assert_eq!(
        bin_totals(v, nx, ny, n, max),
        bin_totals(&d, nx, ny, n, max)
    );
    d
}

fn value(max: u32) -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0..4u32,
        2 => Just(max),
        1 => Just(max - 1),
        1 => 0..=max,
    ]
}

fn case() -> impl Strategy<Value = (usize, usize, usize, usize, usize, Vec<u32>)> {
    (
        1usize..=5,
        1usize..70,
        1usize..12,
        1usize..4,
        prop_oneof![Just(1usize), Just(2), Just(4)],
    )
        .prop_flat_map(|(n, nx, ny, k, elem)| {
            let len = nx * ny * k;
            (
                Just(n),
                Just(nx),
                Just(ny),
                Just(k),
                Just(elem),
                prop_oneof![
                    prop::collection::vec(value(max_of(elem)), len),
                    // Long invalid runs, as in module gaps, across rows and frames.
                    (0..len, 0..len).prop_map(move |(a, b)| {
                        let (a, b) = (a.min(b), a.max(b));
                        (0..len)
                            .map(|i| {
                                if (a..=b).contains(&i) {
                                    max_of(elem)
                                } else {
                                    (i % 5) as u32
                                }
                            })
                            .collect()
                    }),
                ],
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn round_trips_keep_invalid_pixels_and_bin_totals((n, nx, ny, _k, elem, v) in case()) {
        round_trip(&v, nx, ny, n, elem);
    }

    /// Any damage to a chunk gives an error or some decoded frame, never a panic.
    #[test]
    fn damaged_chunks_never_panic((n, nx, ny, _k, elem, v) in case(), at: prop::sample::Index, byte: u8, cut: prop::sample::Index) {
        let codec = Codec::Binning(Binning::new(n, nx, ny, elem).unwrap());
        let raw = to_bytes(&v, elem);
        let enc = codec.encode(&raw).unwrap();
        let mut out = vec![0u8; raw.len()];
        let mut bad = enc.clone();
        let i = at.index(bad.len());
        bad[i] ^= byte | 1;
        let _ = codec.decode(&bad, &mut out);
        let _ = codec.decoded_len(&bad);
        let short = &enc[..cut.index(enc.len())];
        prop_assert!(codec.decode(short, &mut out).is_err());
    }
}

#[test]
fn values_spread_evenly_and_in_order() {
    // One 2x2 bin summing 7 over 4 valid pixels: 2, 2, 2, 1; with one invalid pixel, 7 over 3.
    assert_eq!(round_trip(&[1, 2, 3, 1], 2, 2, 2, 2), [2, 2, 2, 1]);
    assert_eq!(round_trip(&[1, 65535, 3, 3], 2, 2, 2, 2), [3, 65535, 2, 2]);
    // Partial bins at the right and bottom: 3 x 3 with n = 2 has bins of 4, 2, 2 and 1 pixels.
    assert_eq!(
        round_trip(&[1, 1, 5, 1, 1, 0, 4, 4, 9], 3, 3, 2, 1),
        [1, 1, 3, 1, 1, 2, 4, 4, 9]
    );
    // A bin of nothing but invalid pixels.
    assert_eq!(
        round_trip(&[255, 255, 7, 255], 2, 2, 1, 1),
        [255, 255, 7, 255]
    );
    // Sums that need more than 32 bits.
    let big = [u32::MAX - 1; 16];
    assert_eq!(round_trip(&big, 4, 4, 4, 4), big);
}

#[test]
fn simulated_frames_keep_total_counts_exactly() {
    for (pixel_type, n) in [
        (PixelType::U16, 2),
        (PixelType::U32, 3),
        (PixelType::U32, 4),
    ] {
        let mut spec = FrameSpec::new(Detector::EIGER2_1M, pixel_type, 1.5, 200, 7);
        spec.dead_fraction = 1e-4;
        spec.beamstop_radius = 30.0;
        let f = simulate(&spec);
        let elem = pixel_type.size();
        let max = pixel_type.max();
        let two: Vec<u32> = f.pixels.iter().chain(&f.pixels).copied().collect();
        let d = round_trip(&two, f.nx, f.ny, n, elem);
        let total =
            |v: &[u32]| -> u64 { v.iter().filter(|&&x| x != max).map(|&x| u64::from(x)).sum() };
        assert_eq!(total(&d), total(&two));
        let codec = Codec::Binning(Binning::new(n, f.nx, f.ny, elem).unwrap());
        let enc = codec.encode(&f.to_bytes()).unwrap();
        let bslz4 = Codec::from_filter(32008, &[0, 5, elem as u32, 0, 2], elem)
            .unwrap()
            .encode(&f.to_bytes())
            .unwrap();
        assert!(
            enc.len() < bslz4.len(),
            "{n}x{n}: {} vs bslz4 {}",
            enc.len(),
            bslz4.len()
        );
    }
}

#[test]
fn lying_chunks_are_refused() {
    let b = Binning::new(2, 4, 4, 2).unwrap();
    let v: Vec<u32> = (0..32)
        .map(|i| if i % 7 == 0 { 65535 } else { i })
        .collect();
    let enc = encode(&b, &to_bytes(&v, 2)).unwrap();
    let mut out = vec![0u8; 64];
    b.decode(&enc, &mut out).unwrap();
    let refused = |bytes: &[u8], out: &mut [u8]| b.decode(bytes, out).unwrap_err().to_string();
    // Wrong buffer size for the chunk.
    assert!(matches!(
        b.decode(&enc, &mut out[..32]),
        Err(CodecError::SizeMismatch { .. })
    ));
    for (at, value, what) in [
        (0, b'X', "magic"),
        (4, 2, "version"),
        (5, 3, "0x3 bins"),
        (11, 5, "frames are"),
        (19, 9, "frames of"),
        (31, 200, "invalid runs"),
    ] {
        let mut bad = enc.clone();
        bad[at] = value;
        let msg = refused(&bad, &mut out);
        assert!(msg.contains(what) || msg.contains("bins of"), "{at}: {msg}");
    }
    // Every truncation fails.
    for cut in 0..enc.len() {
        assert!(b.decode(&enc[..cut], &mut out).is_err(), "cut at {cut}");
    }
    // A header claiming an enormous run list is refused before allocating it.
    let mut bad = enc.clone();
    bad[28..32].copy_from_slice(&u32::MAX.to_be_bytes());
    bad[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(b.decode(&bad, &mut out).is_err());
    assert!(enc.len() > HEADER_LEN);
}

#[test]
fn a_bin_sum_that_cannot_fit_is_refused() {
    // Hand-built: one 1x1 u8 frame, no runs, and a bin sum of 255 (the invalid marker).
    let b = Binning::new(1, 1, 1, 1).unwrap();
    let good = encode(&b, &[254]).unwrap();
    let mut out = [0u8; 1];
    b.decode(&good, &mut out).unwrap();
    assert_eq!(out, [254]);
    let sums = Codec::Bitshuffle(
        hdrmx_core::codec::Bitshuffle::new(4, hdrmx_core::codec::Compression::Lz4).unwrap(),
    )
    .encode(&255u32.to_le_bytes())
    .unwrap();
    let mut bad = good[..HEADER_LEN].to_vec();
    bad.extend(sums);
    let err = b.decode(&bad, &mut out).unwrap_err().to_string();
    assert!(err.contains("more than its 1 valid pixels"), "{err}");
}

#[test]
fn parameters() {
    let b = Binning::new(3, 4148, 4362, 4).unwrap();
    assert_eq!(b.cd_values(), [3, 4, 4362, 4148]);
    assert_eq!(Binning::from_cd_values(&[3, 0, 4362, 4148], 4).unwrap(), b);
    let c = Codec::from_filter(FILTER_ID, &b.cd_values(), 4).unwrap();
    assert_eq!(c, Codec::Binning(b));
    assert_eq!((c.name(), c.filter_id()), ("binning", 310));
    assert!(Binning::new(0, 4, 4, 2).is_err());
    assert!(Binning::new(17, 4, 4, 2).is_err());
    assert!(Binning::new(2, 4, 4, 8).is_err());
    assert!(Binning::new(2, 0, 4, 2).is_err());
    assert!(Binning::new(2, 1 << 20, 1 << 20, 2).is_err());
    assert!(Binning::from_cd_values(&[2, 2, 4], 2).is_err());
    // Chunks must hold whole frames.
    assert!(encode(&b, &[0u8; 12]).is_err());
}

#[test]
fn a_run_gap_that_would_wrap_around_is_refused() {
    // A zero frame (sums all 0, no runs), then a run list of two runs whose second gap is
    // 2^64 - 2: added without checks it wraps back inside the chunk, over the first run.
    let b = Binning::new(2, 4, 4, 2).unwrap();
    let good = encode(&b, &[0u8; 32]).unwrap();
    let mut list = vec![1u8, 3];
    let mut v = u64::MAX - 1;
    while v >= 0x80 {
        list.push(v as u8 | 0x80);
        v >>= 7;
    }
    list.extend([v as u8, 3]);
    let mut bad = good[..HEADER_LEN].to_vec();
    bad[28..32].copy_from_slice(&2u32.to_be_bytes());
    bad[32..36].copy_from_slice(&(list.len() as u32).to_be_bytes());
    bad[36..40].copy_from_slice(&(list.len() as u32).to_be_bytes());
    bad.extend(&list);
    bad.extend(&good[HEADER_LEN..]);
    let err = b.decode(&bad, &mut [0u8; 32]).unwrap_err().to_string();
    assert!(err.contains("goes past"), "{err}");
}
