//! hdrmx-core: the frame-decoding and reduction core of hdrmx.
//!
//! Pure Rust, no file I/O. A reader hands [`codec`] compressed chunk bytes and a destination
//! buffer; nothing else crosses. See the workspace README for the architecture.

pub mod codec;
pub mod frame;
pub mod peaks;
pub mod reduce;
pub mod sim;
