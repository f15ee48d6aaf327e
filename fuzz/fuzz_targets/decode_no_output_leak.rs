//! Property: what the output buffer held before decoding never shows in the result. Any chunk,
//! any codec: decoding into a 0x00-filled and into a 0xFF-filled buffer succeeds or fails alike,
//! and gives the same bytes when it succeeds.
//! Input layout: `hdrmx_fuzz` (`[flags, len0, len1, len2, chunk...]`, codec from the flags).
#![no_main]
use hdrmx_fuzz::{decode_checked, DecodeInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = DecodeInput::parse(data, None) else {
        return;
    };
    let zeros = decode_checked(&input.codec, input.chunk, input.out_len, 0x00);
    let ones = decode_checked(&input.codec, input.chunk, input.out_len, 0xFF);
    assert_eq!(
        zeros.is_some(),
        ones.is_some(),
        "success depends on the buffer's old contents"
    );
    assert!(
        zeros == ones,
        "decoded bytes depend on the buffer's old contents"
    );
});
