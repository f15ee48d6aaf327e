//! The two block compressors the chunk formats are built on: LZ4 (lz4_flex to compress, our own
//! [`super::lz4_block`] to decompress) and zstd (libzstd through the `zstd` crate). Each decompresses into a slice of exactly the expected size and
//! reports anything else as an error; contexts are kept per thread.
use std::cell::RefCell;

/// Decompresses one LZ4 block into `dst[..len]`, which must be filled exactly; `dst[len..]` is
/// room the decoder may scribble on (see [`super::lz4_block::SLACK`]).
pub(crate) fn lz4_decompress(src: &[u8], dst: &mut [u8], len: usize) -> Result<(), String> {
    super::lz4_block::decompress(src, dst, len)
}

/// Worst-case size of one compressed LZ4 block of `len` bytes.
pub(crate) fn lz4_bound(len: usize) -> usize {
    lz4_flex::block::get_maximum_output_size(len)
}

thread_local! {
    // Kept per thread so that each block does not allocate a fresh hash table.
    static LZ4_TABLE: RefCell<lz4_flex::block::CompressTable> = RefCell::default();
}

/// Compresses `src` as one LZ4 block into `dst` (at least [`lz4_bound`] long).
pub(crate) fn lz4_compress(src: &[u8], dst: &mut [u8]) -> usize {
    LZ4_TABLE.with(|table| {
        lz4_flex::block::compress_into_with_table(src, dst, &mut table.borrow_mut())
            .expect("destination holds lz4_bound bytes")
    })
}

thread_local! {
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static ZSTD_C: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Decompresses one zstd frame into `dst`, which must be filled exactly.
pub(crate) fn zstd_decompress(src: &[u8], dst: &mut [u8]) -> Result<(), String> {
    ZSTD_D.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
        }
        let d = slot.as_mut().expect("set above");
        match d.decompress_to_buffer(src, dst) {
            Ok(n) if n == dst.len() => Ok(()),
            Ok(n) => Err(format!(
                "zstd data decompresses to {n} bytes, expected {}",
                dst.len()
            )),
            Err(e) => Err(format!("zstd: {e}")),
        }
    })
}

pub(crate) fn zstd_bound(len: usize) -> usize {
    zstd::zstd_safe::compress_bound(len)
}

/// The uncompressed size a zstd frame declares, if it declares one.
pub(crate) fn zstd_content_size(src: &[u8]) -> Option<u64> {
    zstd::zstd_safe::get_frame_content_size(src).ok().flatten()
}

/// Compresses `src` as one zstd frame into `dst` (at least [`zstd_bound`] long).
pub(crate) fn zstd_compress(src: &[u8], dst: &mut [u8], level: i32) -> Result<usize, String> {
    ZSTD_C.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            let c = zstd::bulk::Compressor::new(level)
                .map_err(|e| format!("zstd level {level}: {e}"))?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress_to_buffer(src, dst)
            .map_err(|e| format!("zstd: {e}"))
    })
}
