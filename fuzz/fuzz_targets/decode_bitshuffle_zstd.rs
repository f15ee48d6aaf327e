//! Property: decoding arbitrary bytes as a bitshuffle + zstd (32008, compression 3) chunk never panics,
//! whatever output size the caller knows (up to 1 MiB), and `decode_parallel` agrees with
//! `decode` (both fail, or both give the same bytes).
//! Input layout: `hdrmx_fuzz` (`[flags, len0, len1, len2, chunk...]`).
#![no_main]
use hdrmx_fuzz::{decode_checked, DecodeInput, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(input) = DecodeInput::parse(data, Some(Kind::BitshuffleZstd)) {
        decode_checked(&input.codec, input.chunk, input.out_len, 0);
    }
});
