//! Property: neggia-rs opens, traverses and reads any bytes as an HDF5 file without a panic, an
//! abort, a hang or an absurd allocation. Every call may fail; none may crash.
//! Input: a whole HDF5 file (seeds are small corpus files, `tests/corpus/files`).
//!
//! The walk is bounded (objects, depth, hard-link targets seen once), and data is read only where
//! the target can afford it: a whole dataset up to `MAX_READ` bytes, otherwise its first and last
//! frames if those are that small, and never through chunks larger than `MAX_CHUNK`. The file
//! is named inside a directory that does not exist, so external links and VDS sources in other
//! files fail cleanly instead of reaching the disk.
#![no_main]
use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use neggia::nxmx::Master;
use neggia::{Dataset, Datatype, File, Group, Link, Node};

const MAX_OBJECTS: usize = 2000;
const MAX_DEPTH: usize = 16;
const MAX_READ: u64 = 4 << 20;
const MAX_CHUNK: u64 = 64 << 20;
/// Decoding values (vlen strings: one global-heap look-up each) only for small datasets.
const MAX_VALUE: u64 = 64 << 10;

struct Walk {
    objects: usize,
    /// Hard-link targets already walked: a group reached again (a loop, or an alias) is skipped.
    seen: HashSet<u64>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = File::from_bytes(data.to_vec(), "/nonexistent-neggia-fuzz/input.h5") else {
        return;
    };
    let _ = (file.superblock_version(), file.open_for_write());
    let root = file.root();
    let mut walk = Walk {
        objects: 0,
        seen: HashSet::new(),
    };
    group(&root, 0, &mut walk);
    let _ = file.get("/entry/data/data");
    if let Ok(master) = Master::open_file(file) {
        let [ny, nx] = master.shape();
        let _ = (master.mask(), master.bit_depth, master.saturation_value);
        let frames = master.frames();
        let ok = ny
            .checked_mul(nx)
            .and_then(|n| n.checked_mul(master.dtype().size() as u64))
            .is_some_and(|b| b <= MAX_READ);
        if ok && frames > 0 {
            let n = (ny * nx) as usize;
            for i in [0, frames - 1] {
                // Frames come from datasets the walk may not have vetted (data files are not
                // reachable here, but a VDS in the same file is): stay within the chunk bound.
                if master.locate(i).is_ok_and(|(d, _)| chunk_fits(d)) {
                    match master.dtype().size() {
                        1 => drop(master.read_frame_into(i, &mut vec![0u8; n])),
                        2 => drop(master.read_frame_into(i, &mut vec![0u16; n])),
                        4 => drop(master.read_frame_into(i, &mut vec![0u32; n])),
                        _ => {}
                    }
                }
            }
        }
    }
});

fn group(g: &Group, depth: usize, walk: &mut Walk) {
    let _ = g.attributes();
    let Ok(links) = g.links() else {
        return;
    };
    for (name, link) in links {
        if walk.objects >= MAX_OBJECTS {
            return;
        }
        walk.objects += 1;
        if let Link::Hard(addr) = link {
            if !walk.seen.insert(addr) {
                continue;
            }
        }
        let mut hops = 0;
        match g.follow(&name, &link, &mut hops) {
            // Groups reached through soft or external links are reached by hard links too.
            Ok(Node::Group(sub)) if matches!(link, Link::Hard(_)) && depth < MAX_DEPTH => {
                group(&sub, depth + 1, walk)
            }
            Ok(Node::Group(sub)) => drop(sub.attributes()),
            Ok(Node::Dataset(d)) => dataset(&d),
            Err(e) => drop(e.to_string()),
        }
    }
}

/// Bytes of a box of `count` elements, if it fits in a u64.
fn bytes(d: &Dataset, count: &[u64]) -> Option<u64> {
    count
        .iter()
        .try_fold(d.dtype().size() as u64, |a, &c| a.checked_mul(c))
}

/// Reading through this dataset's chunks allocates at most `MAX_CHUNK` for one chunk.
fn chunk_fits(d: &Dataset) -> bool {
    d.chunks()
        .is_none_or(|c| bytes(d, c).is_some_and(|b| b <= MAX_CHUNK))
}

fn dataset(d: &Dataset) {
    let _ = (
        d.name(),
        d.max_shape(),
        d.storage(),
        d.len(),
        d.fill_value(),
    );
    let _ = (d.dtype().numpy(), d.filters(), d.frame_len());
    let _ = d.attributes();
    let shape = d.shape().to_vec();
    if let Some(c) = d.chunks() {
        let first = vec![0; c.len()];
        let _ = d.chunk_location(&first);
        let _ = d.read_raw_chunk(&first);
    }
    if !chunk_fits(d) {
        return;
    }
    match bytes(d, &shape) {
        Some(n) if n <= MAX_VALUE => drop(d.read_value()),
        Some(n) if n <= MAX_READ => drop(d.read_bytes()),
        _ => {
            // Too big to read whole: its first and last frames, if they are small.
            let Some((&frames, rest)) = shape.split_first() else {
                return;
            };
            let Some(n) = bytes(d, rest).filter(|&n| n <= MAX_READ && frames > 0) else {
                return;
            };
            let mut out = vec![0u8; n as usize];
            for i in [0, frames - 1] {
                let mut start = vec![0; shape.len()];
                start[0] = i;
                let mut count = shape.clone();
                count[0] = 1;
                let _ = d.read_box(&start, &count, &mut out);
            }
        }
    }
    // The typed frame path too (type check, byte swap), for the types frames come in.
    let Some(n) = bytes(d, d.shape().get(1..).unwrap_or_default()).filter(|&n| n <= MAX_READ)
    else {
        return;
    };
    let len = n as usize / d.dtype().size().max(1);
    match d.dtype() {
        Datatype::Int { size: 1, .. } => drop(d.read_frame_into(0, &mut vec![0u8; len])),
        Datatype::Int { size: 2, .. } => drop(d.read_frame_into(0, &mut vec![0u16; len])),
        Datatype::Int { size: 4, .. } => drop(d.read_frame_into(0, &mut vec![0u32; len])),
        _ => {}
    }
}
