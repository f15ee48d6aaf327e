//! durin-rs: NXmx files through libhdf5.
//!
//! [`Writer`] writes a gold-standard NXmx dataset: data files of N frames each, whose chunks are
//! written directly (`H5Dwrite_chunk`: frames arrive compressed, or raw and compressed here by
//! `hdrmx-core`), and a master with the full geometry and either a virtual dataset over the data
//! files or DECTRIS-style `data_NNNNNN` external links. Our filters (32008, 32004, 32015, and
//! hdrmx binning 310 and lossy 311) are registered in-process, so nothing needs
//! `HDF5_PLUGIN_PATH`. [`Metadata::binned`], [`Metadata::summed`] and [`Metadata::cut`] give the
//! geometry of reduced data. Every libhdf5 call holds one reentrant lock ([`h5::lock`]): Debian's
//! libhdf5 is not thread-safe.

mod filters;
pub mod h5;
mod reader;
mod reduced;
mod writer;

pub use reader::{Pixel, Reader};
pub use writer::{Layout, Metadata, Writer, WriterOptions};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("HDF5: {what}: {stack}")]
    Hdf5 { what: String, stack: String },
    #[error("name with a NUL byte: {0:?}")]
    Name(String),
    #[error("{0}")]
    Codec(#[from] hdrmx_core::codec::CodecError),
    #[error("frame of {actual} bytes, expected {expected}")]
    FrameSize { expected: usize, actual: usize },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
