//! neggia-rs: a pure-Rust, read-only HDF5 reader for detector data.
//!
//! No libhdf5 and no global lock: a [`File`] is a read-only memory map, every object is
//! `Send + Sync`, and frames decode straight into the caller's buffer through `hdrmx-core`.
//! It reads what NXmx and EIGER writers produce: superblocks 0 to 3, old- and new-style groups,
//! soft and external links, every chunk index, the detector filters plus deflate, shuffle and
//! fletcher32, and virtual datasets. [`nxmx`] finds the frame stack of a master file.
//!
//! ```no_run
//! let f = neggia::File::open("x_master.h5")?;
//! let data = f.dataset("/entry/data/data")?;
//! let mut frame = vec![0u32; data.frame_len() as usize];
//! data.read_frame_into(0, &mut frame)?;
//! # Ok::<(), neggia::Error>(())
//! ```

mod btree;
mod chunks;
mod dataset;
mod datatype;
mod error;
mod file;
mod filters;
mod group;
mod heap;
mod layout;
mod object;
mod raw;
mod superblock;
mod value;
mod vds;

pub mod nxmx;

pub use chunks::ChunkLoc;
pub use dataset::{Dataset, Element, Kind, Storage};
pub use datatype::Datatype;
pub use error::{ChunkError, Error, Result};
pub use file::{File, Group, Node, Options};
pub use group::{Attribute, Link};
pub use layout::Filter;
pub use value::{Value, Values};
