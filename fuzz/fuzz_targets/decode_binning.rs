//! Property: decoding arbitrary bytes as a binning (310) chunk never panics, and a chunk that
//! decodes keeps its promises: the output is filled, and re-encoding the decoded frames gives a
//! chunk that decodes to the same frames (the spread is deterministic and bin totals exact).
//!
//! Input layout: `[n, elem, nx, ny, frames, chunk...]`: bin size `n % 17`, element size
//! `[1, 2, 4][elem % 3]`, frame `(nx + 1) x (ny + 1)` pixels, `frames % 4 + 1` frames.
#![no_main]
use hdrmx_core::codec::{Binning, Codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [n, elem, nx, ny, frames, chunk @ ..] = data else {
        return;
    };
    let elem = [1, 2, 4][usize::from(*elem) % 3];
    let (nx, ny) = (usize::from(*nx) + 1, usize::from(*ny) + 1);
    let Ok(b) = Binning::new(usize::from(*n % 17), nx, ny, elem) else {
        return;
    };
    let codec = Codec::Binning(b);
    let len = (usize::from(*frames) % 4 + 1) * nx * ny * elem;
    let _ = codec.decoded_len(chunk);
    let mut out = vec![0u8; len];
    if codec.decode(chunk, &mut out).is_err() {
        return;
    }
    // Decoded frames are a fixed point: binning them again and decoding gives them back.
    let again = codec.encode(&out).expect("whole frames encode");
    let mut back = vec![0xA5u8; len];
    codec
        .decode(&again, &mut back)
        .expect("our own chunk decodes");
    assert_eq!(back, out);
});
