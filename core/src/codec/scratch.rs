//! Per-thread scratch for one decompressed block, so that steady-state decoding allocates
//! nothing: a block is decompressed here (it stays in L1/L2) and untransposed into the caller's
//! buffer.
use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch buffer of exactly `len` bytes (contents unspecified).
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..len])
        }
        // Re-entered (cannot happen in this crate today): fall back to a fresh buffer.
        Err(_) => f(&mut vec![0u8; len]),
    })
}
