//! Property: our LZ4 block decoder (through the 32004 codec) and lz4_flex agree on arbitrary
//! bytes: each accepts exactly what the other accepts and gives the same output.
//! Input layout: `[len0, len1, block...]`, the decoded length as u16 little-endian.
#![no_main]
use hdrmx_core::codec::{Codec, Lz4};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, block)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_le_bytes(*len));
    // A 32004 block of exactly its decoded size is stored raw, not LZ4, and an empty chunk has
    // no blocks at all.
    if block.len() == len || len == 0 {
        return;
    }
    let mut chunk = Vec::with_capacity(16 + block.len());
    chunk.extend_from_slice(&(len as u64).to_be_bytes());
    chunk.extend_from_slice(&(len as u32).to_be_bytes());
    chunk.extend_from_slice(&(block.len() as u32).to_be_bytes());
    chunk.extend_from_slice(block);
    let mut ours = vec![0u8; len];
    let ours_ok = Codec::Lz4(Lz4::default()).decode(&chunk, &mut ours).is_ok();
    let mut theirs = vec![0u8; len];
    let theirs_ok =
        matches!(lz4_flex::block::decompress_into(block, &mut theirs), Ok(n) if n == len);
    assert_eq!(
        ours_ok, theirs_ok,
        "accepted by ours: {ours_ok}, by lz4_flex: {theirs_ok}"
    );
    if ours_ok {
        assert_eq!(ours, theirs);
    }
});
