//! Property: decoding arbitrary bytes as a lossy (311) chunk never panics, and a chunk that
//! decodes keeps the codec's promises as far as they can be checked without the truth: decoded
//! counts are a fixed point (encoding them again and decoding gives the same counts, because
//! every count lies in its bin and every (code, context) sum is exact), and at q = 0 the round
//! trip is exact.
//!
//! Input layout: `[params, len0, len1, chunk...]`: `params % 6` picks q from [`Q_MILLI`],
//! bits 3-4 the element size `[1, 2, 4, 2]`, bit 5 zstd instead of LZ4, bit 6 takes the output
//! size from the chunk's header (when at most `MAX_OUT`) instead of `len0..len1` (u16 LE
//! elements).
#![no_main]
use hdrmx_core::codec::lossy::{Inner, Lossy};
use hdrmx_core::codec::Codec;
use hdrmx_fuzz::MAX_OUT;
use libfuzzer_sys::fuzz_target;

const Q_MILLI: [u32; 6] = [0, 100, 500, 1000, 2000, 100_000];

fuzz_target!(|data: &[u8]| {
    let [params, l0, l1, chunk @ ..] = data else {
        return;
    };
    let q_milli = Q_MILLI[usize::from(*params) % Q_MILLI.len()];
    let elem = [1, 2, 4, 2][usize::from(*params >> 3 & 3)];
    let inner = if params & 0x20 != 0 {
        Inner::Zstd(1)
    } else {
        Inner::Lz4
    };
    let codec = Codec::Lossy(Lossy::with_q_milli(q_milli, inner, elem).expect("valid q"));
    let len = match codec.decoded_len(chunk) {
        Ok(Some(n)) if params & 0x40 != 0 && n <= MAX_OUT as u64 => n as usize,
        _ => usize::from(u16::from_le_bytes([*l0, *l1])) * elem,
    };
    let mut out = vec![0u8; len];
    match codec.decode(chunk, &mut out) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(()) => {
            let again = codec.encode(&out).expect("whole elements encode");
            let mut back = vec![0xA5u8; len];
            codec
                .decode(&again, &mut back)
                .expect("our own chunk decodes");
            assert!(back == out, "decoded counts are not a fixed point");
        }
    }
});
