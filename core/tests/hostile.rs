//! Hostile chunks: truncated, bit-flipped, with size fields that lie, with trailing garbage, into
//! buffers of the wrong size. Each must give an `Err` with a message that says what was wrong,
//! never a panic, and a decoder never allocates from a size field (a header claiming 2^60 bytes
//! is rejected against the known size before anything else happens).
//!
//! The chunks are frame-like: u32 detector counts (mostly 0 and small values), three full blocks,
//! a last partial block and a raw tail of `n % 8` elements; one block's worth of random bytes
//! makes LZ4 (32004) store a block raw.

use hdrmx_core::codec::bitshuffle::default_block_size;
use hdrmx_core::codec::{Bitshuffle, Codec, CodecError, Compression, Lz4, Zstd};

const E: usize = 4;
/// Three full default blocks (2048 u32 elements each), a last block of 200, a raw tail of 3.
const N: usize = 3 * 2048 + 203;
const LZ4_BLOCK: usize = 8192;
const HUGE: u64 = 1 << 60;

fn frame(n: usize, e: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = vec![0u8; n * e];
    for element in out.chunks_exact_mut(e) {
        let r = next();
        let v: u64 = match r % 100 {
            0..=74 => 0,
            75..=98 => (r >> 8) % 7,
            _ => (r >> 8) % 60_000,
        };
        element.copy_from_slice(&v.to_le_bytes()[..e]);
    }
    // One incompressible stretch: LZ4 block 1 of the 32004 chunk is stored raw.
    for b in out.iter_mut().skip(LZ4_BLOCK).take(LZ4_BLOCK) {
        *b = next() as u8;
    }
    out
}

fn bslz4() -> Codec {
    Codec::Bitshuffle(Bitshuffle::new(E, Compression::Lz4).unwrap())
}
fn bszstd() -> Codec {
    Codec::Bitshuffle(Bitshuffle::new(E, Compression::Zstd { level: 3 }).unwrap())
}
fn bsnone() -> Codec {
    Codec::Bitshuffle(Bitshuffle::new(E, Compression::None).unwrap())
}
fn lz4() -> Codec {
    Codec::Lz4(Lz4::new(LZ4_BLOCK).unwrap())
}
fn zstd() -> Codec {
    Codec::Zstd(Zstd::new(3))
}

/// The compressed codecs under test, by name, with a valid chunk of `frame(N, E)`.
fn cases() -> Vec<(&'static str, Codec, Vec<u8>, Vec<u8>)> {
    let raw = frame(N, E);
    [
        ("bslz4", bslz4()),
        ("bszstd", bszstd()),
        ("lz4", lz4()),
        ("zstd", zstd()),
    ]
    .into_iter()
    .map(|(name, codec)| {
        let chunk = codec.encode(&raw).unwrap();
        (name, codec, raw.clone(), chunk)
    })
    .collect()
}

/// Decodes with `Codec::decode`, and for bitshuffle also with `decode_parallel`; the two must
/// agree on success, and on the decoded bytes when both succeed.
fn decode(codec: &Codec, chunk: &[u8], out_len: usize) -> Result<Vec<u8>, CodecError> {
    decode_with(codec, chunk, out_len, true)
}

fn decode_with(
    codec: &Codec,
    chunk: &[u8],
    out_len: usize,
    parallel: bool,
) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![0u8; out_len];
    let serial = codec.decode(chunk, &mut out).map(|()| out);
    #[cfg(not(feature = "parallel"))]
    let _ = parallel;
    #[cfg(feature = "parallel")]
    if let (Codec::Bitshuffle(b), true) = (codec, parallel) {
        let mut par = vec![0u8; out_len];
        let parallel = b.decode_parallel(chunk, &mut par).map(|()| par);
        match (&serial, &parallel) {
            (Ok(a), Ok(b)) => assert!(a == b, "decode_parallel gives different bytes"),
            (Err(_), Err(_)) => {}
            (s, p) => panic!(
                "decode and decode_parallel disagree: {:?} vs {:?}",
                s.as_ref().err(),
                p.as_ref().err()
            ),
        }
    }
    serial
}

fn expect_err(codec: &Codec, chunk: &[u8], out_len: usize, what: &str) -> CodecError {
    match decode(codec, chunk, out_len) {
        Ok(_) => panic!("{what}: decoded without error"),
        Err(e) => e,
    }
}

fn assert_msg(err: &CodecError, needles: &[&str], what: &str) {
    let msg = err.to_string();
    assert!(
        needles.iter().any(|n| msg.contains(n)),
        "{what}: message {msg:?} contains none of {needles:?}"
    );
}

fn put_u32(chunk: &mut [u8], at: usize, v: u32) {
    chunk[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Offsets of the per-block u32 size fields of a bitshuffle or 32004 chunk.
fn block_fields(chunk: &[u8], blocks: usize) -> Vec<usize> {
    let mut pos = 12;
    (0..blocks)
        .map(|_| {
            let at = pos;
            pos += 4 + u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap()) as usize;
            at
        })
        .collect()
}

/// How many size-prefixed blocks the test chunks have.
fn block_count(name: &str) -> usize {
    match name {
        "bslz4" | "bszstd" => 4,
        "lz4" => (N * E).div_ceil(LZ4_BLOCK),
        _ => 0,
    }
}

/// Where the frame content size of a zstd frame sits, and how long it is.
fn zstd_fcs(chunk: &[u8]) -> (usize, usize) {
    let fhd = chunk[4];
    let single_segment = fhd >> 5 & 1 == 1;
    let did = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs = match fhd >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    (5 + usize::from(!single_segment) + did, fcs)
}

#[test]
fn the_test_chunks_are_valid_and_shaped_as_intended() {
    for (name, codec, raw, chunk) in cases() {
        assert_eq!(decode(&codec, &chunk, raw.len()).unwrap(), raw, "{name}");
        if name != "zstd" {
            let fields = block_fields(&chunk, block_count(name));
            let end = fields.last().unwrap()
                + 4
                + u32::from_be_bytes(chunk[fields[fields.len() - 1]..][..4].try_into().unwrap())
                    as usize;
            let tail = if name == "lz4" { 0 } else { N % 8 * E };
            assert_eq!(end + tail, chunk.len(), "{name}: block layout");
        }
        if name == "lz4" {
            let f = block_fields(&chunk, block_count(name))[1];
            assert_eq!(
                u32::from_be_bytes(chunk[f..f + 4].try_into().unwrap()) as usize,
                LZ4_BLOCK,
                "block 1 stored raw"
            );
        }
    }
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    for (name, codec, raw, chunk) in cases() {
        for i in 0..chunk.len() {
            // (decode_parallel too, at every 8th cut: it is the slow part of this test.)
            let err = decode_with(&codec, &chunk[..i], raw.len(), i % 8 == 0)
                .expect_err(&format!("{name} cut at {i}: decoded without error"));
            let needles: &[&str] = match name {
                // A cut header is truncation; a cut size field, block or raw tail is truncation or
                // a block that claims more than is left.
                "zstd" => &["zstd:"],
                _ => &["truncated", "claims"],
            };
            assert_msg(&err, needles, &format!("{name} cut at {i}"));
            if i < 12 && name != "zstd" {
                assert_msg(&err, &["chunk header"], &format!("{name} cut at {i}"));
            }
        }
    }
    // Without compression a shorter chunk is simply the wrong size.
    let raw = frame(N, E);
    let chunk = bsnone().encode(&raw).unwrap();
    for i in (0..chunk.len()).step_by(97) {
        expect_err(&bsnone(), &chunk[..i], raw.len(), "bitshuffle/none cut");
    }
}

#[test]
fn flipped_bits_never_panic_and_size_field_flips_are_errors() {
    for (name, codec, raw, chunk) in cases() {
        // Positions that must give an error when any of their bits flips: the size fields.
        let size_fields: Vec<std::ops::Range<usize>> = match name {
            "zstd" => {
                let (at, len) = zstd_fcs(&chunk);
                assert!(len > 0, "our zstd frames carry their content size");
                vec![0..4, at..at + len] // magic number, frame content size
            }
            _ => {
                // The chunk header, then each block's size field.
                std::iter::once(0..12)
                    .chain(
                        block_fields(&chunk, block_count(name))
                            .into_iter()
                            .map(|f| f..f + 4),
                    )
                    .collect()
            }
        };
        // Every bit of the header and of the first block's size field (or of the zstd frame
        // header), every bit of every other size field, and a sample of the rest.
        let header_end = size_fields[..2]
            .iter()
            .map(|r| r.end)
            .max()
            .unwrap()
            .max(24);
        let positions = (0..header_end.min(chunk.len()))
            .chain((header_end..chunk.len()).step_by(53))
            .chain(size_fields.iter().flat_map(|r| r.clone()))
            .chain(chunk.len().saturating_sub(8)..chunk.len());
        for pos in positions {
            for bit in 0..8 {
                let mut bad = chunk.clone();
                bad[pos] ^= 1 << bit;
                let what = format!("{name}: bit {bit} of byte {pos} flipped");
                let result = decode(&codec, &bad, raw.len());
                if size_fields.iter().any(|r| r.contains(&pos)) {
                    assert!(result.is_err(), "{what}: decoded without error");
                }
                if pos < 8 && name != "zstd" {
                    assert!(
                        matches!(result, Err(CodecError::SizeMismatch { .. })),
                        "{what}: {result:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_header_claiming_2_pow_60_bytes_is_rejected_without_allocating() {
    // The decoders take the known size from the caller's buffer and compare the header with it
    // before doing anything else; nothing is sized from the header.
    for (name, codec, raw, chunk) in cases() {
        let mut bad = chunk.clone();
        if name == "zstd" {
            // A hand-made frame: 8-byte content size of 2^60, then one empty last raw block.
            bad = vec![0x28, 0xB5, 0x2F, 0xFD, 0xC0, 0x50];
            bad.extend_from_slice(&HUGE.to_le_bytes());
            bad.extend_from_slice(&[0x01, 0x00, 0x00]);
            if let Codec::Zstd(z) = codec {
                assert_eq!(z.decoded_len(&bad), Some(HUGE));
            }
        } else {
            bad[..8].copy_from_slice(&HUGE.to_be_bytes());
        }
        let err = expect_err(&codec, &bad, raw.len(), name);
        assert_eq!(
            err,
            CodecError::SizeMismatch {
                codec: match name {
                    "bslz4" | "bszstd" => "bitshuffle",
                    other => other,
                },
                claimed: HUGE,
                expected: raw.len() as u64,
            },
            "{name}"
        );
        assert_msg(&err, &["claims 1152921504606846976 bytes"], name);
        // The same with no output buffer at all.
        expect_err(&codec, &bad, 0, name);
    }
    let b = Bitshuffle::new(E, Compression::Lz4).unwrap();
    let mut chunk = bslz4().encode(&frame(N, E)).unwrap();
    chunk[..8].copy_from_slice(&HUGE.to_be_bytes());
    assert_eq!(
        b.decoded_len(&chunk).unwrap(),
        HUGE,
        "decoded_len reports, callers cap"
    );
}

#[test]
fn bitshuffle_block_size_field() {
    for codec in [bslz4(), bszstd()] {
        let raw = frame(N, E);
        let chunk = codec.encode(&raw).unwrap();
        let with = |block_bytes: u32| {
            let mut c = chunk.clone();
            put_u32(&mut c, 8, block_bytes);
            c
        };
        let cases: [(u32, &str); 4] = [
            (0, "invalid block size 0: zero"),
            (
                8190,
                "invalid block size 8190: not a whole number of elements",
            ),
            (
                8188,
                "invalid block size 8188: not a multiple of 8 elements",
            ),
            (36, "not a multiple of 8 elements"),
        ];
        for (field, needle) in cases {
            let err = expect_err(&codec, &with(field), raw.len(), needle);
            assert!(matches!(err, CodecError::BadBlockSize { .. }), "{err:?}");
            assert_msg(&err, &[needle], needle);
        }
        // A legal block size that is not the one the chunk was written with: the blocks do not
        // decompress to the sizes the header implies.
        for field in [4096, 16384, 8192 + 32, 1 << 31, u32::MAX / 32 * 32] {
            let err = expect_err(
                &codec,
                &with(field),
                raw.len(),
                &format!("block size {field}"),
            );
            assert_msg(
                &err,
                &["is corrupt", "claims", "truncated", "unexpected bytes"],
                &format!("{field}"),
            );
        }
    }
}

#[test]
fn a_block_size_larger_than_the_chunk_is_legitimate() {
    // The reference writes the default block size (8192 bytes) even for a 400-byte chunk.
    let raw = frame(100, E);
    for codec in [bslz4(), bszstd()] {
        let chunk = codec.encode(&raw).unwrap();
        assert_eq!(
            u32::from_be_bytes(chunk[8..12].try_into().unwrap()) as usize,
            default_block_size(E) * E
        );
        assert_eq!(decode(&codec, &chunk, raw.len()).unwrap(), raw);
        for field in [16384u32, 1 << 31, u32::MAX / 32 * 32] {
            let mut c = chunk.clone();
            put_u32(&mut c, 8, field);
            assert_eq!(
                decode(&codec, &c, raw.len()).unwrap(),
                raw,
                "block size field {field}"
            );
        }
    }
    // 32004: one block, whatever the block size field says as long as it covers the chunk.
    let chunk = Codec::Lz4(Lz4::default()).encode(&raw).unwrap();
    for field in [400u32, 401, 8192, u32::MAX] {
        let mut c = chunk.clone();
        put_u32(&mut c, 8, field);
        assert_eq!(
            decode(&lz4(), &c, raw.len()).unwrap(),
            raw,
            "32004 block size field {field}"
        );
    }
}

#[test]
fn lz4_block_size_field() {
    let raw = frame(N, E);
    let chunk = lz4().encode(&raw).unwrap();
    let with = |field: u32| {
        let mut c = chunk.clone();
        put_u32(&mut c, 8, field);
        c
    };
    let err = expect_err(&lz4(), &with(0), raw.len(), "zero");
    assert_msg(&err, &["lz4: invalid block size 0: zero"], "zero");
    for field in [1, 4096, 8191, 8193, 16384, raw.len() as u32, u32::MAX] {
        let err = expect_err(
            &lz4(),
            &with(field),
            raw.len(),
            &format!("block size {field}"),
        );
        assert_msg(
            &err,
            &["is corrupt", "claims", "truncated", "unexpected bytes"],
            &format!("{field}"),
        );
    }
    // An empty chunk may say 0.
    let empty = lz4().encode(&[]).unwrap();
    assert_eq!(decode(&lz4(), &empty, 0).unwrap(), Vec::<u8>::new());
}

#[test]
fn block_length_fields_that_overrun() {
    for (name, codec, raw, chunk) in cases() {
        if name == "zstd" {
            continue;
        }
        let fields = block_fields(&chunk, block_count(name));
        for (block, &at) in fields.iter().enumerate() {
            let left = chunk.len() - at - 4;
            for claim in [left as u32 + 1, u32::MAX] {
                let mut bad = chunk.clone();
                put_u32(&mut bad, at, claim);
                let err = expect_err(&codec, &bad, raw.len(), &format!("{name} block {block}"));
                assert_eq!(
                    err.to_string(),
                    format!(
                        "{}: block {block} claims {claim} bytes, chunk has {left} left",
                        if name == "lz4" { "lz4" } else { "bitshuffle" }
                    )
                );
            }
            // Shorter than it is: the block does not decompress to its size.
            let mut bad = chunk.clone();
            let size = u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap());
            put_u32(&mut bad, at, size - 1);
            expect_err(
                &codec,
                &bad,
                raw.len(),
                &format!("{name} block {block} one byte short"),
            );
        }
    }
}

#[test]
fn blocks_that_decompress_to_the_wrong_size() {
    let raw = frame(N, E);
    let codec = bslz4();
    let chunk = codec.encode(&raw).unwrap();
    let fields = block_fields(&chunk, 4);
    let rest = &chunk[fields[1]..];
    for (len, needle) in [
        (8192 + 8, "block 0 is corrupt"),
        (8192 - 8, "decompresses to 8184 bytes, expected 8192"),
    ] {
        let block = lz4_flex::block::compress(&vec![0u8; len]);
        let mut bad = chunk[..12].to_vec();
        bad.extend_from_slice(&(block.len() as u32).to_be_bytes());
        bad.extend_from_slice(&block);
        bad.extend_from_slice(rest);
        let err = expect_err(&codec, &bad, raw.len(), needle);
        assert_msg(&err, &[needle], needle);
    }
}

#[test]
fn trailing_garbage_is_an_error() {
    for (name, codec, raw, chunk) in cases() {
        let garbage: [&[u8]; 5] = [&[0], &[0; 4], &[0xFF; 7], &[0x28, 0xB5, 0x2F, 0xFD], &chunk];
        for extra in garbage {
            let mut bad = chunk.clone();
            bad.extend_from_slice(extra);
            let err = expect_err(
                &codec,
                &bad,
                raw.len(),
                &format!("{name} + {} bytes", extra.len()),
            );
            if name != "zstd" {
                assert_eq!(
                    err.to_string(),
                    format!(
                        "{}: {} unexpected bytes after the last block",
                        err_codec(name),
                        extra.len()
                    )
                );
            }
        }
    }
    let raw = frame(N, E);
    let mut bad = bsnone().encode(&raw).unwrap();
    bad.push(0);
    expect_err(&bsnone(), &bad, raw.len(), "bitshuffle/none + 1 byte");
}

fn err_codec(name: &str) -> &str {
    match name {
        "bslz4" | "bszstd" => "bitshuffle",
        other => other,
    }
}

#[test]
fn an_output_buffer_of_the_wrong_size_is_an_error() {
    for (name, codec, raw, chunk) in [(
        "bsnone",
        bsnone(),
        frame(N, E),
        bsnone().encode(&frame(N, E)).unwrap(),
    )]
    .into_iter()
    .chain(cases())
    {
        let n = raw.len();
        for len in [0, 1, n - 1, n + 1, n - E, n + E, 2 * n] {
            let err = expect_err(&codec, &chunk, len, &format!("{name} into {len} bytes"));
            let needles: &[&str] = if name.starts_with("bs") && len % E != 0 {
                &["is not a whole number of 4-byte elements"]
            } else {
                &["claims"]
            };
            assert_msg(&err, needles, &format!("{name} into {len} bytes"));
        }
    }
}

#[test]
fn zstd_frame_without_a_content_size_into_the_wrong_buffer() {
    let raw = frame(N, E);
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
        .unwrap();
    let chunk = c.compress(&raw).unwrap();
    let codec = zstd();
    if let Codec::Zstd(z) = codec {
        assert_eq!(z.decoded_len(&chunk), None);
    }
    assert_eq!(decode(&codec, &chunk, raw.len()).unwrap(), raw);
    let err = expect_err(&codec, &chunk, raw.len() + 1, "bigger buffer");
    assert_msg(
        &err,
        &[&format!(
            "decompresses to {} bytes, expected {}",
            raw.len(),
            raw.len() + 1
        )],
        "bigger",
    );
    expect_err(&codec, &chunk, raw.len() - 1, "smaller buffer");
    expect_err(&codec, &chunk, 0, "empty buffer");
}

#[test]
fn no_output_leak() {
    // Decoding writes every byte of the output: what the buffer held before does not matter.
    let small = frame(100, E);
    let mut all = cases();
    all.push((
        "bsnone",
        bsnone(),
        frame(N, E),
        bsnone().encode(&frame(N, E)).unwrap(),
    ));
    for codec in [bslz4(), bszstd(), lz4(), zstd(), bsnone()] {
        all.push(("small", codec, small.clone(), codec.encode(&small).unwrap()));
    }
    for (name, codec, raw, chunk) in all {
        let mut outs = Vec::new();
        for fill in [0x00u8, 0xFF, 0x5A] {
            let mut out = vec![fill; raw.len()];
            codec.decode(&chunk, &mut out).unwrap();
            outs.push(out);
            #[cfg(feature = "parallel")]
            if let Codec::Bitshuffle(b) = codec {
                let mut out = vec![fill; raw.len()];
                b.decode_parallel(&chunk, &mut out).unwrap();
                outs.push(out);
            }
        }
        assert!(
            outs.iter().all(|o| *o == raw),
            "{name}: output depends on the buffer's old contents"
        );
    }
}

#[test]
fn bad_parameters() {
    let err = Codec::from_filter(32008, &[0, 5, 3, 0, 2], 3).unwrap_err();
    assert_msg(&err, &["unsupported element size 3"], "elem 3");
    let err = Codec::from_filter(32008, &[0, 5, 4, 0, 1], 4).unwrap_err();
    assert_msg(&err, &["unknown compression code 1"], "compression 1");
    let err = Codec::from_filter(32008, &[0, 5, 4, 12, 2], 4).unwrap_err();
    assert_msg(
        &err,
        &["invalid block size 12: not a multiple of 8 elements"],
        "block 12",
    );
    let err = Codec::from_filter(307, &[], 4).unwrap_err();
    assert_msg(&err, &["unsupported filter 307"], "filter 307");
    let err = Bitshuffle::new(4, Compression::Lz4)
        .unwrap()
        .with_block_size(7)
        .unwrap_err();
    assert!(matches!(
        err,
        CodecError::BadBlockSize { block_size: 7, .. }
    ));
    // Data that is not a whole number of elements cannot be encoded either.
    let err = bslz4().encode(&[0u8; 7]).unwrap_err();
    assert_msg(
        &err,
        &["7 bytes is not a whole number of 4-byte elements"],
        "encode 7 bytes",
    );
}

#[test]
fn empty_and_tiny_chunks() {
    for codec in [bslz4(), bszstd(), lz4(), zstd(), bsnone()] {
        for bytes in [&[][..], &[0], &[0; 11], &[0; 12], &[0xFF; 16]] {
            for len in [0, 4, 400] {
                let _ = decode(&codec, bytes, len);
            }
        }
    }
    // An all-zero 12-byte header is an empty 32004 chunk, but not a zstd frame.
    assert_eq!(decode(&lz4(), &[0; 12], 0).unwrap(), Vec::<u8>::new());
    expect_err(&zstd(), &[0; 12], 0, "zeros as zstd");
    expect_err(&zstd(), &[], 4, "nothing as zstd");
    // (libzstd decodes zero bytes of input to zero bytes of output, so an empty chunk into an
    // empty buffer is Ok; HDF5 chunks are never empty.)
}

/// Found by `fuzz/roundtrip` (minimised): bitshuffle/LZ4, 8-byte elements, block size parameter
/// 0x8000_0008 elements. The header's u32 block-size field (bytes) silently wrapped to 64, so
/// our own chunk did not decode. Block sizes whose byte count does not fit the field are now
/// rejected as parameters.
#[test]
fn bug_fuzz_1() {
    const INPUT: &[u8] = &[
        0x01, 0x13, 0x08, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x07, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    ];
    // The fuzz target's layout: [kind 1 = bitshuffle/LZ4, params (element size 1 << (p & 3)),
    // block u32 LE, data].
    let e = 1 << (INPUT[1] & 3);
    let block = u32::from_le_bytes(INPUT[2..6].try_into().unwrap()) as usize / 8 * 8;
    assert_eq!((e, block), (8, 0x8000_0008));
    let data = &INPUT[6..6 + (INPUT.len() - 6) / e * e];

    let err = Bitshuffle::new(e, Compression::Lz4)
        .unwrap()
        .with_block_size(block)
        .unwrap_err();
    assert_msg(
        &err,
        &["invalid block size 2147483656: larger than the header's u32 field"],
        "param",
    );
    let err = Codec::from_filter(32008, &[0, 5, 8, 0x8000_0008, 2], 8).unwrap_err();
    assert!(matches!(err, CodecError::BadBlockSize { .. }), "{err:?}");

    // The largest block that fits still round-trips, as does this data with a sane block.
    for block in [u32::MAX as usize / e / 8 * 8, 0] {
        let codec = Codec::Bitshuffle(
            Bitshuffle::new(e, Compression::Lz4)
                .unwrap()
                .with_block_size(block)
                .unwrap(),
        );
        let chunk = codec.encode(data).unwrap();
        assert_eq!(
            decode(&codec, &chunk, data.len()).unwrap(),
            data,
            "block {block}"
        );
    }
}

/// Malformed LZ4 sequences inside an otherwise valid chunk (one block of 64 bytes): each is a
/// corrupt block with a reason, for bitshuffle/LZ4 and for 32004.
#[test]
fn corrupt_lz4_sequences() {
    let cases: [(&[u8], &str); 8] = [
        (&[], "ends before its last sequence"),
        (&[0xF0], "ends inside a length"),
        (
            &[0xF0, 200, b'x'],
            "literal run of 215 bytes passes the end of the block",
        ),
        (&[0x10, b'x', 1], "ends inside a match offset"),
        (&[0x10, b'x', 0, 0], "offset 0"),
        (
            &[0x10, b'x', 2, 0],
            "offset 2 at output byte 1 points before the block",
        ),
        (
            &[0x1F, b'x', 1, 0, 255, 0],
            "decompresses to more than 64 bytes",
        ),
        (&[0x10, b'x'], "decompresses to 1 bytes, expected 64"),
    ];
    let bs = Codec::Bitshuffle(Bitshuffle::new(1, Compression::Lz4).unwrap());
    for (block, needle) in cases {
        for (codec, block_field, name) in [(bs, 8192u32, "bitshuffle"), (lz4(), 64, "lz4")] {
            let mut chunk = 64u64.to_be_bytes().to_vec();
            chunk.extend_from_slice(&block_field.to_be_bytes());
            chunk.extend_from_slice(&(block.len() as u32).to_be_bytes());
            chunk.extend_from_slice(block);
            let err = expect_err(&codec, &chunk, 64, needle);
            assert_msg(&err, &[&format!("{name}: block 0 is corrupt")], needle);
            assert_msg(&err, &[needle], needle);
        }
    }
}
