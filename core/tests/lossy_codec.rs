//! The lossy codec (filter 311) on arbitrary and extreme data, and on hostile chunks.
//!
//! Round trips (proptest): every element size (1, 2, 4), q from 0 (lossless) to 100, LZ4 and
//! zstd, lengths from 0 up, data from detector-like to full-range random, all-masked, all at
//! the largest count; decoded values within the bound, exact where promised, totals exact;
//! buffers that are not 4-byte aligned.
//!
//! Hostile chunks: every truncation, every single-byte corruption of a small chunk, and
//! hand-made chunks whose fields lie (counts, sizes, codes past the table, sums that do not
//! fit their pixels, sums for codes no pixel has, keys out of order): each an `Err` whose
//! message says what was wrong, never a panic.
use hdrmx_core::codec::lossy::{Inner, Lossy, FILTER_ID, MAGIC};
use hdrmx_core::codec::{Bitshuffle, Codec, CodecError, Compression};
use hdrmx_core::reduce::lossy::{Quantiser, CONTEXTS};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn max_of(e: usize) -> u32 {
    (((1u64 << (8 * e)) - 1) & 0xFFFF_FFFF) as u32
}

/// `n` values of `e` bytes shaped by `shape`, as u32.
fn data(shape: u8, n: usize, e: usize, seed: u64) -> Vec<u32> {
    let max = max_of(e);
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let r = rng.next();
            let v = match shape % 6 {
                // Detector-like: background, spots, gaps, counts near the maximum.
                0 => match r % 100 {
                    0..=59 => 0,
                    60..=89 => (r >> 8) as u32 % 4,
                    90..=95 => (r >> 8) as u32 % 300,
                    96 => max,
                    97 => max - 1 - (r >> 8) as u32 % 3,
                    _ => (r >> 8) as u32 % max,
                },
                1 => (r as u32) & max,
                2 => max,
                3 => max - 1,
                4 => (r >> 8) as u32 % 30,
                _ => 0,
            };
            v.min(max)
        })
        .collect()
}

fn to_bytes(v: &[u32], e: usize) -> Vec<u8> {
    v.iter()
        .flat_map(|x| x.to_le_bytes()[..e].to_vec())
        .collect()
}

fn from_bytes(b: &[u8], e: usize) -> Vec<u32> {
    b.chunks_exact(e)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..e].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

fn codec(q_milli: u32, zstd: bool, e: usize) -> Codec {
    let inner = if zstd { Inner::Zstd(1) } else { Inner::Lz4 };
    Codec::Lossy(Lossy::with_q_milli(q_milli, inner, e).unwrap())
}

/// Checks `back` against `truth` with the codec's promises.
fn check_promises(truth: &[u32], back: &[u32], q_milli: u32, e: usize) {
    let max = max_of(e);
    let q = Quantiser::with_max(q_milli, max).unwrap();
    let step = f64::from(q_milli) / 1000.0;
    for (i, (&t, &b)) in truth.iter().zip(back).enumerate() {
        if t == max || t < q.exact_below() {
            assert_eq!(b, t, "element {i} must be exact");
        } else {
            assert!(
                f64::from(t.abs_diff(b)) <= step / 2.0 * f64::from(t).sqrt() + 1e-9,
                "element {i}: {t} came back as {b} at q = {step}"
            );
        }
    }
    let total = |v: &[u32]| -> u64 { v.iter().filter(|&&x| x != max).map(|&x| u64::from(x)).sum() };
    assert_eq!(total(back), total(truth), "chunk total");
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn roundtrip_keeps_the_promises(
        e in prop::sample::select(vec![1usize, 2, 4]),
        q_milli in prop::sample::select(vec![0u32, 100, 250, 500, 999, 1000, 2000, 7300, 100_000]),
        zstd in any::<bool>(),
        shape in any::<u8>(),
        n in prop_oneof![0usize..20, 20usize..3000, Just(8193usize)],
        seed in any::<u64>(),
        misalign in any::<bool>(),
    ) {
        let truth = data(shape, n, e, seed);
        let c = codec(q_milli, zstd, e);
        let src = to_bytes(&truth, e);
        // An input and output one byte into their buffers, so neither is 4-byte aligned.
        let off = usize::from(misalign);
        let mut srcbuf = vec![0u8; src.len() + off];
        srcbuf[off..].copy_from_slice(&src);
        let mut chunk = vec![0u8; c.max_encoded_len(src.len()) + 1];
        let len = c.encode_into(&srcbuf[off..], &mut chunk[off..]).unwrap();
        let chunk = &chunk[off..off + len];
        prop_assert_eq!(c.decoded_len(chunk).unwrap(), Some(src.len() as u64));
        let mut out = vec![0xA5u8; src.len() + off];
        c.decode(chunk, &mut out[off..]).unwrap();
        let back = from_bytes(&out[off..], e);
        if q_milli == 0 {
            prop_assert_eq!(&back, &truth);
        }
        check_promises(&truth, &back, q_milli, e);
        // Deterministic: a second decode into a dirty buffer gives the same bytes.
        let mut again = vec![0x5Au8; src.len()];
        c.decode(chunk, &mut again).unwrap();
        prop_assert_eq!(&again[..], &out[off..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        e in prop::sample::select(vec![1usize, 2, 4]),
        n in 0usize..64,
    ) {
        let mut chunk = bytes;
        if chunk.len() >= 4 && chunk[0] & 1 == 0 {
            chunk[..4].copy_from_slice(&MAGIC);
        }
        let mut out = vec![0u8; n * e];
        let _ = codec(1000, false, e).decode(&chunk, &mut out);
    }
}

/// Found by the round-trip property: with every count exact (uint8 at q = 0.1) and every pixel
/// masked, the masked code is 0, which is also the code of count 0; masked must win.
#[test]
fn all_masked_when_every_count_is_exact() {
    for (e, q) in [(1, 100), (2, 0), (4, 1000)] {
        let c = codec(q, false, e);
        let truth = vec![max_of(e); 9];
        let chunk = c.encode(&to_bytes(&truth, e)).unwrap();
        let mut out = vec![0u8; 9 * e];
        c.decode(&chunk, &mut out).unwrap();
        assert_eq!(from_bytes(&out, e), truth, "e = {e}, q_milli = {q}");
    }
}

#[test]
fn cd_values_round_trip_and_bad_ones_are_refused() {
    let c = Lossy::new(1.0, Inner::Zstd(5), 2).unwrap();
    assert_eq!(c.cd_values(), [1, 1000, 1, 5, 2]);
    assert_eq!(
        Codec::from_filter(FILTER_ID, &c.cd_values(), 0).unwrap(),
        Codec::Lossy(c)
    );
    // The datatype's size fills in a 0 or missing elem_size.
    assert_eq!(
        Lossy::from_cd_values(&[1, 500, 0, 0], 4)
            .unwrap()
            .elem_size(),
        4
    );
    // q is rounded down to thousandths, so its bound holds.
    assert_eq!(Lossy::new(0.9999, Inner::Lz4, 2).unwrap().q_milli(), 999);
    for (cd, why) in [
        (vec![2, 1000, 0, 0, 2], "version"),
        (vec![1, 50, 0, 0, 2], "out of range"),
        (vec![1, 100_001, 0, 0, 2], "out of range"),
        (vec![1, 1000, 7, 0, 2], "inner compression 7"),
        (vec![1, 1000, 0, 0, 8], "element size 8"),
        (vec![], "no cd_values"),
    ] {
        let err = Lossy::from_cd_values(&cd, 2).unwrap_err().to_string();
        assert!(err.contains(why), "{cd:?}: {err}");
    }
    for q in [f64::NAN, -1.0, 0.05, 1e9] {
        assert!(Lossy::new(q, Inner::Lz4, 2).is_err(), "q = {q}");
    }
}

/// A detector-like chunk with multi-count codes, so that every section is present.
fn sample() -> (Codec, Vec<u8>, Vec<u8>) {
    let truth = data(0, 3000, 2, 99);
    let c = codec(1000, false, 2);
    let src = to_bytes(&truth, 2);
    let chunk = c.encode(&src).unwrap();
    (c, src, chunk)
}

fn decode_err(c: &Codec, chunk: &[u8], len: usize) -> String {
    let mut out = vec![0u8; len];
    match c.decode(chunk, &mut out) {
        Ok(()) => panic!("decoded a hostile chunk"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_truncation_is_an_error() {
    let (c, src, chunk) = sample();
    for len in 0..chunk.len() {
        let msg = decode_err(&c, &chunk[..len], src.len());
        assert!(
            msg.starts_with("lossy") || msg.starts_with("bitshuffle"),
            "{msg}"
        );
    }
    let mut long = chunk.clone();
    long.push(0);
    assert!(decode_err(&c, &long, src.len()).contains("unexpected bytes"));
}

#[test]
fn every_flipped_byte_fails_cleanly_or_decodes_within_the_table() {
    let (c, src, chunk) = sample();
    for i in 0..chunk.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = chunk.clone();
            bad[i] ^= flip;
            let mut out = vec![0u8; src.len()];
            // Corrupt codes may still decode (to other counts); never a panic.
            let _ = c.decode(&bad, &mut out);
        }
    }
}

#[test]
fn header_fields_that_lie_are_named() {
    let (c, src, chunk) = sample();
    let with = |at: usize, bytes: &[u8]| {
        let mut b = chunk.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        decode_err(&c, &b, src.len())
    };
    assert!(with(0, b"XXXX").contains("not a lossy chunk"));
    assert!(with(4, &[9]).contains("version 9"));
    assert!(with(5, &[4]).contains("4-byte elements"));
    assert!(with(6, &[3]).contains("code size 3"));
    assert!(
        with(6, &[4]).contains("code size 4"),
        "codes wider than the elements"
    );
    assert!(with(7, &[5]).contains("inner compression 5"));
    assert!(with(8, &2000u32.to_be_bytes()).contains("q = 2"));
    let huge = with(12, &(1u64 << 60).to_be_bytes());
    assert!(huge.contains("claims"), "{huge}");
    assert!(with(20, &u32::MAX.to_be_bytes()).contains("masked code"));
    // Masked code 0: the sums' keys lie past it (checked before any code).
    let m = with(20, &0u32.to_be_bytes());
    assert!(m.contains("outside 32..0"), "{m}");
    assert!(with(24, &u32::MAX.to_be_bytes()).contains("per-code sums in"));
    assert!(with(28, &u32::MAX.to_be_bytes()).contains("truncated"));
    // A chunk of the right format for a different length.
    assert!(decode_err(&c, &chunk, src.len() + 2).contains("claims"));
    assert!(decode_err(&c, &chunk, src.len() + 1).contains("whole number"));
    // The same bytes under other parameters.
    let other = codec(500, false, 2);
    assert!(decode_err(&other, &chunk, src.len()).contains("q = 1"));
}

/// A chunk assembled by hand: header, masked code, sums as given, codes (u16) bitshuffled with
/// LZ4.
fn forged(q_milli: u32, codes: &[u16], masked: u32, sums: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0;
    for &(key, n, d) in sums {
        for v in [key.wrapping_sub(prev), n, d] {
            let mut v = v;
            while v >= 0x80 {
                body.push(v as u8 | 0x80);
                v >>= 7;
            }
            body.push(v as u8);
        }
        prev = key;
    }
    let mut chunk = MAGIC.to_vec();
    chunk.extend([1, 2, 2, 0]);
    chunk.extend(q_milli.to_be_bytes());
    chunk.extend((codes.len() as u64).to_be_bytes());
    chunk.extend(masked.to_be_bytes());
    chunk.extend((sums.len() as u32).to_be_bytes());
    chunk.extend((body.len() as u32).to_be_bytes());
    chunk.extend(body);
    let raw: Vec<u8> = codes.iter().flat_map(|c| c.to_le_bytes()).collect();
    let bs = Codec::Bitshuffle(Bitshuffle::new(2, Compression::Lz4).unwrap());
    chunk.extend(bs.encode(&raw).unwrap());
    chunk
}

#[test]
fn forged_codes_and_sums_are_refused() {
    let c = codec(1000, false, 2);
    let q = Quantiser::with_max(1000, 0xFFFF).unwrap();
    let multi = q.exact_below(); // the first code covering more than one count
    let (lo, hi) = q.range(multi).unwrap();
    assert!(hi > lo);
    let masked = multi + 1;
    let len = 16 * 2;
    let decode = |chunk: &[u8]| {
        let mut out = vec![0u8; len];
        c.decode(chunk, &mut out).map(|()| from_bytes(&out, 2))
    };
    // One multi-count pixel among zeros and one masked pixel: the multi-count pixel's key has
    // context 0 (its neighbours are 0).
    let mut codes = vec![0u16; 16];
    codes[5] = multi as u16;
    codes[9] = masked as u16;
    let key = u64::from(multi) * CONTEXTS as u64;
    // The honest chunk decodes, to lo + d, and the masked pixel to the maximum.
    let ok = decode(&forged(1000, &codes, masked, &[(key, 1, 1)])).unwrap();
    assert_eq!((ok[5], ok[9], ok[0]), (lo + 1, 0xFFFF, 0));
    let err = |chunk: Vec<u8>| decode(&chunk).unwrap_err().to_string();
    let m = err(forged(
        1000,
        &codes,
        masked,
        &[(key, 1, u64::from(hi - lo) + 1)],
    ));
    assert!(m.contains("at most"), "{m}");
    // A sum for a key no pixel has; a pixel whose key has no sum; more pixels than a chunk.
    let m = err(forged(
        1000,
        &codes,
        masked,
        &[(key, 1, 0), (key + 1, 1, 0)],
    ));
    assert!(m.contains("the codes hold 0"), "{m}");
    let m = err(forged(1000, &codes, masked, &[(key + 1, 1, 0)]));
    assert!(m.contains("more pixels have key"), "{m}");
    let m = err(forged(1000, &codes, masked, &[(key, 2, 0)]));
    assert!(m.contains("the codes hold 1"), "{m}");
    let m = err(forged(1000, &codes, masked, &[(key, 17, 0)]));
    assert!(m.contains("chunk of 16 pixels"), "{m}");
    let m = err(forged(1000, &codes, masked, &[(key, 0, 0)]));
    assert!(m.contains("0 pixels"), "{m}");
    let m = err(forged(1000, &codes, masked, &[(key, 1, 0), (key, 1, 0)]));
    assert!(m.contains("keys must increase"), "{m}");
    let m = err(forged(1000, &codes, masked, &[(CONTEXTS as u64, 1, 0)]));
    assert!(m.contains("outside"), "{m}");
    // A code past the masked code; a masked code past the table.
    let mut past = vec![0u16; 16];
    past[3] = masked as u16 + 1;
    let m = err(forged(1000, &past, masked, &[]));
    assert!(m.contains("code 6 is past the masked code 5"), "{m}");
    let m = err(forged(1000, &codes, masked - 1, &[(key, 1, 0)]));
    assert!(m.contains("outside"), "{m}");
    let m = err(forged(1000, &codes, q.last_code() + 1, &[(key, 1, 0)]));
    assert!(m.contains("past the last code"), "{m}");
    // A missing sum: the pixel's key has none.
    let m = err(forged(1000, &codes, masked, &[]));
    assert!(m.contains("more pixels have key"), "{m}");
    // Lossless chunks carry no sums.
    let lossless = codec(0, false, 2);
    let mut out = vec![0u8; len];
    let e = lossless
        .decode(&forged(0, &codes, masked, &[(4, 1, 0)]), &mut out)
        .unwrap_err();
    assert!(matches!(e, CodecError::Corrupt { .. }), "{e}");
}

/// Seeds of the `decode_lossy` fuzz target (layout in its file):
/// `cargo test -p hdrmx-core --test lossy_codec -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files into fuzz/seeds"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/decode_lossy");
    std::fs::create_dir_all(&dir).unwrap();
    let q_index = |q: u32| {
        [0, 100, 500, 1000, 2000, 100_000]
            .iter()
            .position(|&x| x == q)
    };
    let cases = [
        (1000u32, 2usize, false, 700usize),
        (500, 4, true, 333),
        (0, 2, false, 256),
        (2000, 1, false, 97),
        (100, 4, false, 1000),
        (100_000, 2, true, 64),
    ];
    for (i, (q, e, zstd, n)) in cases.into_iter().enumerate() {
        let truth = data(0, n, e, i as u64 + 1);
        let chunk = codec(q, zstd, e).encode(&to_bytes(&truth, e)).unwrap();
        let esel = [1, 2, 4].iter().position(|&x| x == e).unwrap() as u8;
        let params = q_index(q).unwrap() as u8 | esel << 3 | u8::from(zstd) << 5 | 0x40;
        let mut seed = vec![params];
        seed.extend_from_slice(&(n as u16).to_le_bytes());
        seed.extend_from_slice(&chunk);
        std::fs::write(dir.join(format!("seed{i}")), seed).unwrap();
    }
}
