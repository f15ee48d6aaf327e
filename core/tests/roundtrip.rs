//! Property tests: every codec round-trips, the parallel decoder agrees with the serial one, and
//! every SIMD transpose kernel is bit-identical to the scalar one.
//!
//! Lengths are biased towards the awkward ones (not a multiple of 8 elements, one element either
//! side of a block boundary) and data towards what detectors produce (mostly zeros and small
//! counts), with fully random data mixed in so that LZ4 stores blocks raw. Data comes from a seed
//! so that a failing case prints in a few numbers; `PROPTEST_CASES` overrides the case counts.

use hdrmx_core::codec::bitshuffle::default_block_size;
use hdrmx_core::codec::transpose::Kernel;
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4, Zstd};
use proptest::prelude::*;

/// `cases` unless `PROPTEST_CASES` is set.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// What the bytes of a test input look like.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Zeros,
    /// Detector-like: mostly 0, some small counts, rarely a saturated pixel.
    Counts,
    /// Small values in the low byte of each element only.
    Small,
    /// Every byte random.
    Random,
    /// Runs of one random byte.
    Runs,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        1 => Just(Shape::Zeros),
        4 => Just(Shape::Counts),
        2 => Just(Shape::Small),
        3 => Just(Shape::Random),
        1 => Just(Shape::Runs),
    ]
}

/// xorshift64*: deterministic data from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn data(shape: Shape, n: usize, elem_size: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; n * elem_size];
    match shape {
        Shape::Zeros => {}
        Shape::Counts => {
            for element in out.chunks_exact_mut(elem_size) {
                let r = rng.next();
                let value: u64 = match r % 100 {
                    0..=69 => 0,
                    70..=97 => (r >> 8) % 6,
                    98 => (r >> 8) % 5000,
                    _ => u64::MAX, // saturated: all bits of the element set
                };
                element.copy_from_slice(&value.to_le_bytes()[..elem_size]);
            }
        }
        Shape::Small => {
            for element in out.chunks_exact_mut(elem_size) {
                element[0] = (rng.next() % 16) as u8;
            }
        }
        Shape::Random => out.iter_mut().for_each(|b| *b = rng.next() as u8),
        Shape::Runs => {
            let mut i = 0;
            while i < out.len() {
                let r = rng.next();
                let len = (1 + r % 64) as usize;
                let end = (i + len).min(out.len());
                out[i..end].fill((r >> 32) as u8);
                i = end;
            }
        }
    }
    out
}

fn elem_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(2), Just(4), Just(8)]
}

/// Element counts for blocks of `block` elements: small ones, any up to a few thousand, and
/// one to two blocks give or take a few elements (awkward tails, blocks that barely fill).
fn element_count(block: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..=40,
        3 => 0usize..=3000,
        4 => (1usize..=3, -9isize..=9).prop_map(move |(k, d)| (k * block).saturating_add_signed(d)),
    ]
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        prop_oneof![Just(-1), Just(1), Just(3)].prop_map(|level| Compression::Zstd { level }),
    ]
}

/// Bitshuffle block sizes in elements: 0 (the default), tiny, and random multiples of 8.
fn bitshuffle_block() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        2 => prop_oneof![Just(8usize), Just(16), Just(24)],
        2 => (1usize..=160).prop_map(|k| k * 8),
    ]
}

fn bitshuffle_case() -> impl Strategy<Value = (Bitshuffle, usize, Shape, u64)> {
    (elem_size(), compression(), bitshuffle_block())
        .prop_map(|(e, c, b)| Bitshuffle::new(e, c).unwrap().with_block_size(b).unwrap())
        .prop_flat_map(|codec| {
            (
                Just(codec),
                element_count(codec.block_size()),
                shape(),
                any::<u64>(),
            )
        })
}

/// Checks everything a valid chunk promises, for any codec.
fn check_codec(codec: Codec, src: &[u8]) -> Result<(), TestCaseError> {
    let chunk = codec
        .encode(src)
        .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    prop_assert!(
        chunk.len() <= codec.max_encoded_len(src.len()),
        "encoded length over the bound"
    );

    // encode_into into a buffer of exactly the bound gives the same bytes.
    let mut exact = vec![0xA5u8; codec.max_encoded_len(src.len())];
    let len = codec.encode_into(src, &mut exact).unwrap();
    prop_assert_eq!(&exact[..len], &chunk[..]);

    // Decoding fills every byte: the same result whatever the buffer held before.
    for fill in [0x00u8, 0xFF] {
        let mut out = vec![fill; src.len()];
        codec
            .decode(&chunk, &mut out)
            .map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
        prop_assert!(
            out == src,
            "decoded bytes differ (buffer pre-filled with {fill:#04x})"
        );
    }

    // decode_with hands over whole elements, in order, covering the buffer, and the bytes it
    // hands over are the decoded ones.
    let e = match codec {
        Codec::Bitshuffle(b) => b.elem_size(),
        _ => 1,
    };
    let mut out = vec![0x5Au8; src.len()];
    let mut next = 0;
    let mut seen = Vec::new();
    codec
        .decode_with(&chunk, &mut out, |at, part| {
            assert_eq!(at, next, "parts in order, without gaps");
            assert_eq!(part.len() % e, 0, "whole elements");
            next = at + part.len();
            seen.extend_from_slice(part);
        })
        .map_err(|err| TestCaseError::fail(format!("decode_with: {err}")))?;
    prop_assert_eq!(next, src.len());
    prop_assert!(
        seen == src && out == src,
        "decode_with differs from the input"
    );

    // The parameters survive a trip through HDF5 cd_values.
    let again = Codec::from_filter(codec.filter_id(), &codec.cd_values(), e).unwrap();
    prop_assert_eq!(again, codec);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn bitshuffle_round_trips((codec, n, shape, seed) in bitshuffle_case()) {
        let e = codec.elem_size();
        let src = data(shape, n, e, seed);
        check_codec(Codec::Bitshuffle(codec), &src)?;

        let chunk = Codec::Bitshuffle(codec).encode(&src).unwrap();
        let header_len = if codec.compression() == Compression::None { 0 } else { 12 };
        prop_assert!(chunk.len() >= header_len);
        prop_assert_eq!(codec.decoded_len(&chunk).unwrap(), src.len() as u64);
        if header_len > 0 {
            let block_bytes = u32::from_be_bytes(chunk[8..12].try_into().unwrap()) as usize;
            prop_assert_eq!(block_bytes, codec.block_size() * e);
        }
        // The last n % 8 elements are stored raw at the very end.
        let tail = n % 8 * e;
        prop_assert_eq!(&chunk[chunk.len() - tail..], &src[src.len() - tail..]);

        #[cfg(feature = "parallel")]
        for fill in [0x00u8, 0xFF] {
            let mut out = vec![fill; src.len()];
            codec.decode_parallel(&chunk, &mut out).unwrap();
            prop_assert!(out == src, "decode_parallel differs from the input");
        }
    }

    #[test]
    fn lz4_round_trips(
        block in prop_oneof![
            Just(0usize),
            1usize..=16,
            prop_oneof![Just(64usize), Just(100), Just(1000), Just(4096), Just(8192)],
        ],
        n in prop_oneof![0usize..=64, 0usize..=6000],
        shape in shape(),
        seed in any::<u64>(),
    ) {
        let codec = Lz4::new(block).unwrap();
        // Tiny blocks on a long input make thousands of blocks: keep those inputs short.
        let n = if block != 0 && block < 16 { n.min(600) } else { n };
        let src = data(shape, n, 1, seed);
        check_codec(Codec::Lz4(codec), &src)?;

        let chunk = Codec::Lz4(codec).encode(&src).unwrap();
        prop_assert_eq!(codec.decoded_len(&chunk).unwrap(), n as u64);
        // The header's block size is the parameter, or the chunk's size if that is smaller.
        let header_block = u32::from_be_bytes(chunk[8..12].try_into().unwrap()) as usize;
        prop_assert_eq!(header_block, codec.block_size().min(n));
    }

    #[test]
    fn zstd_round_trips(
        level in prop_oneof![Just(-5), Just(-1), Just(1), Just(3), Just(9)],
        n in prop_oneof![0usize..=64, 0usize..=20_000],
        shape in shape(),
        seed in any::<u64>(),
    ) {
        let codec = Zstd::new(level);
        let src = data(shape, n, 1, seed);
        check_codec(Codec::Zstd(codec), &src)?;
        let chunk = Codec::Zstd(codec).encode(&src).unwrap();
        prop_assert_eq!(codec.decoded_len(&chunk), Some(n as u64));
    }

    /// Each available SIMD kernel gives the scalar kernel's bytes, both ways, for any block of
    /// whole groups of 8 (vector-width multiples, and the scalar tail after them).
    #[test]
    fn kernels_match_scalar(
        e in elem_size(),
        groups in prop_oneof![1usize..=20, 1usize..=600],
        shape in shape(),
        seed in any::<u64>(),
    ) {
        let src = data(shape, groups * 8, e, seed);
        let mut want = vec![0u8; src.len()];
        Kernel::Scalar.transpose(&src, &mut want, e);
        let mut want_back = vec![0u8; src.len()];
        Kernel::Scalar.untranspose(&src, &mut want_back, e);

        for kernel in Kernel::ALL.into_iter().filter(|k| k.is_available()) {
            let mut planes = vec![0x5Au8; src.len()];
            kernel.transpose(&src, &mut planes, e);
            prop_assert!(planes == want, "{} transpose differs from scalar (e={e}, n={})", kernel.name(), groups * 8);

            // Untranspose of arbitrary bytes (not only of a transpose's output).
            let mut back = vec![0xA5u8; src.len()];
            kernel.untranspose(&src, &mut back, e);
            prop_assert!(back == want_back, "{} untranspose differs from scalar (e={e}, n={})", kernel.name(), groups * 8);

            // Inverse of each other.
            let mut again = vec![0u8; src.len()];
            kernel.untranspose(&planes, &mut again, e);
            prop_assert!(again == src, "{} untranspose(transpose(x)) != x", kernel.name());
        }
    }
}

/// The default block of the reference, for each element size (cd_values and header both).
#[test]
fn default_block_sizes() {
    for (e, want) in [(1, 8192), (2, 4096), (4, 2048), (8, 1024)] {
        assert_eq!(default_block_size(e), want);
        assert_eq!(
            Bitshuffle::new(e, Compression::Lz4).unwrap().block_size(),
            want
        );
    }
}

/// Small LZ4 blocks over incompressible data store blocks raw (compressed size == raw size), and
/// those raw blocks decode.
#[test]
fn lz4_stores_incompressible_blocks_raw() {
    let mut src = data(Shape::Random, 1000, 1, 7);
    src[500..].fill(0); // second half compresses
    let codec = Lz4::new(100).unwrap();
    let chunk = Codec::Lz4(codec).encode(&src).unwrap();
    let (mut pos, mut raw, mut packed) = (12, 0, 0);
    for block in src.chunks(100) {
        let size = u32::from_be_bytes(chunk[pos..pos + 4].try_into().unwrap()) as usize;
        if size == block.len() {
            raw += 1;
        } else {
            packed += 1;
        }
        pos += 4 + size;
    }
    assert_eq!(pos, chunk.len());
    assert_eq!((raw, packed), (5, 5));
    let mut out = vec![0u8; src.len()];
    codec.decode(&chunk, &mut out).unwrap();
    assert_eq!(out, src);
}

/// Every length from 0 to 3 blocks + 9, one element size at a time, with tiny blocks: each
/// combination of full blocks, last partial block and raw tail.
#[test]
fn bitshuffle_every_small_length() {
    for e in [1, 2, 4, 8] {
        for compression in [
            Compression::None,
            Compression::Lz4,
            Compression::Zstd { level: 1 },
        ] {
            for block in [8, 16] {
                let codec = Bitshuffle::new(e, compression)
                    .unwrap()
                    .with_block_size(block)
                    .unwrap();
                for n in 0..=3 * block + 9 {
                    let src = data(Shape::Counts, n, e, n as u64);
                    let chunk = Codec::Bitshuffle(codec).encode(&src).unwrap();
                    let mut out = vec![0xEEu8; src.len()];
                    codec.decode(&chunk, &mut out).unwrap();
                    assert_eq!(out, src, "e={e} {compression:?} block={block} n={n}");
                    #[cfg(feature = "parallel")]
                    {
                        let mut par = vec![0x11u8; src.len()];
                        codec.decode_parallel(&chunk, &mut par).unwrap();
                        assert_eq!(
                            par, src,
                            "parallel e={e} {compression:?} block={block} n={n}"
                        );
                    }
                }
            }
        }
    }
}

/// The process-wide transpose (best kernel) agrees with the scalar kernel.
#[test]
fn best_kernel_matches_scalar() {
    for e in [1, 2, 4, 8] {
        for n in [8, 16, 120, 128, 136, 1024, 2048 + 8] {
            let src = data(Shape::Random, n, e, (n * e) as u64);
            let mut want = vec![0u8; src.len()];
            Kernel::Scalar.transpose(&src, &mut want, e);
            let mut got = vec![0u8; src.len()];
            hdrmx_core::codec::transpose::transpose(&src, &mut got, e);
            assert_eq!(got, want, "{} e={e} n={n}", Kernel::best().name());
            let mut back = vec![0u8; src.len()];
            hdrmx_core::codec::transpose::untranspose(&got, &mut back, e);
            assert_eq!(back, src);
        }
    }
}

/// Writes the seed corpora of `fuzz/` (`fuzz/seeds/<target>/`), small valid chunks in the input
/// layout `fuzz/src/lib.rs` documents. Run by hand after changing that layout:
/// `cargo test -p hdrmx-core --test roundtrip -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files into fuzz/seeds"]
fn write_fuzz_seeds() {
    use std::path::Path;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let esel = |e: usize| e.trailing_zeros() as u8;
    // [flags, len u24 LE, chunk]: bit 2 = output size from the chunk's header; bits 4-7 = codec
    // (0 bitshuffle/none, 1 bitshuffle/LZ4, 2 bitshuffle/zstd, 3 LZ4, 4 zstd).
    let decode_input = |kind: u8, e: usize, len: usize, chunk: &[u8]| {
        let mut v = vec![kind << 4 | 4 | esel(e)];
        v.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
        v.extend_from_slice(chunk);
        v
    };
    // Frame-like inputs: several blocks of counts, a partial block and a raw tail.
    let inputs = [
        (4usize, 3 * 16 + 13, 16usize),
        (2, 200, 0),
        (1, 77, 8),
        (8, 41, 16),
        (4, 0, 0),
    ];
    for (e, n, block) in inputs {
        let src = data(Shape::Counts, n, e, n as u64);
        for (kind, compression) in [
            (0u8, Compression::None),
            (1, Compression::Lz4),
            (2, Compression::Zstd { level: 3 }),
        ] {
            let codec = Bitshuffle::new(e, compression)
                .unwrap()
                .with_block_size(block)
                .unwrap();
            let chunk = Codec::Bitshuffle(codec).encode(&src).unwrap();
            let name = format!("e{e}_n{n}_b{block}");
            let input = decode_input(kind, e, src.len(), &chunk);
            match kind {
                1 => write("decode_bitshuffle_lz4", &name, &input),
                2 => write("decode_bitshuffle_zstd", &name, &input),
                _ => {}
            }
            write("decode_no_output_leak", &format!("k{kind}_{name}"), &input);
        }
    }
    let bytes = data(Shape::Runs, 300, 1, 3);
    let mut mixed = data(Shape::Random, 120, 1, 4);
    mixed.extend_from_slice(&bytes[..180]);
    for (name, src, block) in [
        ("runs_b64", &bytes, 64usize),
        ("mixed_b50", &mixed, 50),
        ("runs_one_block", &bytes, 0),
    ] {
        let chunk = Codec::Lz4(Lz4::new(block).unwrap()).encode(src).unwrap();
        let input = decode_input(3, 1, src.len(), &chunk);
        write("decode_lz4", name, &input);
        write("decode_no_output_leak", &format!("k3_{name}"), &input);
    }
    for (name, src) in [("runs", &bytes), ("mixed", &mixed), ("empty", &Vec::new())] {
        let chunk = Codec::Zstd(Zstd::new(3)).encode(src).unwrap();
        let input = decode_input(4, 1, src.len(), &chunk);
        write("decode_zstd", name, &input);
        write("decode_no_output_leak", &format!("k4_{name}"), &input);
    }
    // roundtrip: [kind, params, block u32 LE, data]; params bits 0-1 element size, 2-4 zstd
    // level index, 5 small blocks.
    for (kind, e, block, n) in [
        (0u8, 4usize, 16u32, 61usize),
        (1, 2, 0, 130),
        (2, 4, 24, 53),
        (1, 8, 8, 20),
        (3, 1, 40, 200),
        (4, 1, 0, 150),
    ] {
        let mut v = vec![kind, esel(e) | 4 << 2];
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&data(Shape::Counts, n, e, n as u64));
        write("roundtrip", &format!("k{kind}_e{e}_b{block}_n{n}"), &v);
    }
}
