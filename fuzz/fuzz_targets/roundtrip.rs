//! Property: any data encoded with any codec and parameters decodes to itself (serially, in
//! parallel for bitshuffle, into a buffer full of junk), within `max_encoded_len`, and the
//! parameters survive a trip through HDF5 cd_values.
//! Input layout: `hdrmx_fuzz` (`[kind, params, b0, b1, b2, b3, data...]`).
#![no_main]
use hdrmx_core::codec::Codec;
use hdrmx_fuzz::{decode_checked, RoundtripInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some(RoundtripInput { codec, data }) = RoundtripInput::parse(input) else {
        return;
    };
    let chunk = codec
        .encode(data)
        .expect("valid parameters and whole elements encode");
    assert!(chunk.len() <= codec.max_encoded_len(data.len()));
    let decoded = decode_checked(&codec, &chunk, data.len(), 0xA5);
    match decoded {
        Some(out) => assert!(out == data, "round trip changed the data"),
        None => panic!(
            "our own chunk does not decode: {:?}",
            codec.decode(&chunk, &mut vec![0; data.len()])
        ),
    }
    let elem_size = match codec {
        Codec::Bitshuffle(b) => b.elem_size(),
        _ => 1,
    };
    let again = Codec::from_filter(codec.filter_id(), &codec.cd_values(), elem_size)
        .expect("own cd_values");
    assert_eq!(again, codec, "cd_values round trip");
});
