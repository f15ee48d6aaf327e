//! How the fuzz targets read their input. Seeds in `seeds/<target>/` follow this layout; they are
//! written by `cargo test -p hdrmx-core --test roundtrip -- --ignored write_fuzz_seeds`, which
//! mirrors it.
//!
//! Decode targets: `[flags, len0, len1, len2, chunk...]`
//! - `flags` bits 0-1: element size 1, 2, 4 or 8 (bitshuffle only);
//! - `flags` bit 2: take the output size from the chunk's own header when it has one and it is
//!   at most [`MAX_OUT`] (otherwise the fuzzer would have to guess a u64 to get past the check);
//! - `flags` bits 4-7: the codec, [`Kind::ALL`]`[(flags >> 4) % 5]` (multi-codec targets only);
//! - `len0..len2`: the output size in bytes, u24 little-endian, capped at [`MAX_OUT`].
//!
//! `roundtrip`: `[kind, params, b0, b1, b2, b3, data...]`
//! - `kind % 5` picks the codec, `params` bits 0-1 the element size, bits 2-4 the zstd level
//!   ([`LEVELS`]), bit 5 small blocks (block parameter mod 256);
//! - `b0..b3`: the block parameter, u32 little-endian (bitshuffle: elements, rounded down to a
//!   multiple of 8, 0 = default; 32004: bytes, 0 = default);
//! - `data`: what is encoded, cut to a whole number of elements.
use hdrmx_core::codec::{Bitshuffle, Codec, Compression, Lz4, Zstd};

/// The largest output buffer a decode target allocates.
pub const MAX_OUT: usize = 1 << 20;
/// zstd levels `roundtrip` picks from.
pub const LEVELS: [i32; 8] = [-7, -1, 1, 2, 3, 5, 9, 12];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BitshuffleNone,
    BitshuffleLz4,
    BitshuffleZstd,
    Lz4,
    Zstd,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::BitshuffleNone,
        Kind::BitshuffleLz4,
        Kind::BitshuffleZstd,
        Kind::Lz4,
        Kind::Zstd,
    ];

    /// The codec with default parameters (a decoder takes block sizes from the chunk).
    pub fn codec(self, elem_size: usize) -> Codec {
        let bs = |c| Codec::Bitshuffle(Bitshuffle::new(elem_size, c).expect("1, 2, 4 or 8"));
        match self {
            Kind::BitshuffleNone => bs(Compression::None),
            Kind::BitshuffleLz4 => bs(Compression::Lz4),
            Kind::BitshuffleZstd => bs(Compression::Zstd { level: 3 }),
            Kind::Lz4 => Codec::Lz4(Lz4::default()),
            Kind::Zstd => Codec::Zstd(Zstd::default()),
        }
    }
}

pub fn elem_size(bits: u8) -> usize {
    1 << (bits & 3)
}

/// A decode target's input.
pub struct DecodeInput<'a> {
    pub codec: Codec,
    pub out_len: usize,
    pub chunk: &'a [u8],
}

impl<'a> DecodeInput<'a> {
    /// Parses `data`; `kind` is the target's codec, or `None` to take it from the flags.
    pub fn parse(data: &'a [u8], kind: Option<Kind>) -> Option<Self> {
        let (&[flags, l0, l1, l2], chunk) = data.split_first_chunk::<4>()?;
        let kind = kind.unwrap_or(Kind::ALL[usize::from(flags >> 4) % Kind::ALL.len()]);
        let codec = kind.codec(elem_size(flags));
        let given = u32::from_le_bytes([l0, l1, l2, 0]) as usize;
        let from_header = match codec {
            Codec::Bitshuffle(b) => b.decoded_len(chunk).ok(),
            Codec::Lz4(l) => l.decoded_len(chunk).ok(),
            Codec::Zstd(z) => z.decoded_len(chunk),
            other => other.decoded_len(chunk).ok().flatten(),
        };
        let out_len = match from_header {
            Some(len) if flags & 4 != 0 && len <= MAX_OUT as u64 => len as usize,
            _ => given.min(MAX_OUT),
        };
        Some(DecodeInput {
            codec,
            out_len,
            chunk,
        })
    }
}

/// Decodes, checks that the error (if any) formats, and for bitshuffle that `decode_parallel`
/// agrees with `decode`. Returns the decoded bytes.
pub fn decode_checked(codec: &Codec, chunk: &[u8], out_len: usize, fill: u8) -> Option<Vec<u8>> {
    let mut out = vec![fill; out_len];
    let serial = codec.decode(chunk, &mut out);
    if let Err(e) = &serial {
        assert!(!e.to_string().is_empty());
    }
    if let Codec::Bitshuffle(b) = codec {
        let mut par = vec![!fill; out_len];
        let parallel = b.decode_parallel(chunk, &mut par);
        assert_eq!(
            serial.is_ok(),
            parallel.is_ok(),
            "decode {serial:?} vs decode_parallel {parallel:?}"
        );
        if serial.is_ok() {
            assert!(out == par, "decode_parallel gives other bytes than decode");
        }
    }
    serial.ok().map(|()| out)
}

/// The `roundtrip` target's input.
pub struct RoundtripInput<'a> {
    pub codec: Codec,
    pub data: &'a [u8],
}

impl<'a> RoundtripInput<'a> {
    pub fn parse(input: &'a [u8]) -> Option<Self> {
        let (&[kind, params, b0, b1, b2, b3], data) = input.split_first_chunk::<6>()?;
        let kind = Kind::ALL[usize::from(kind) % Kind::ALL.len()];
        let e = elem_size(params);
        let level = LEVELS[usize::from(params >> 2 & 7)];
        let mut block = u32::from_le_bytes([b0, b1, b2, b3]) as usize;
        if params & 0x20 != 0 {
            block %= 256;
        }
        let bs = |c| {
            Bitshuffle::new(e, c)
                .ok()?
                .with_block_size(block / 8 * 8)
                .ok()
                .map(Codec::Bitshuffle)
        };
        let codec = match kind {
            Kind::BitshuffleNone => bs(Compression::None)?,
            Kind::BitshuffleLz4 => bs(Compression::Lz4)?,
            Kind::BitshuffleZstd => bs(Compression::Zstd { level })?,
            Kind::Lz4 => {
                // Keep the block count sane: tiny blocks over a long input are slow, not deep.
                let block = if block != 0 && data.len() / block > 4096 {
                    0
                } else {
                    block
                };
                Codec::Lz4(Lz4::new(block).ok()?)
            }
            Kind::Zstd => Codec::Zstd(Zstd::new(level)),
        };
        let e = match codec {
            Codec::Bitshuffle(_) => e,
            _ => 1,
        };
        Some(RoundtripInput {
            codec,
            data: &data[..data.len() / e * e],
        })
    }
}
