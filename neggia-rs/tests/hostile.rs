//! Hostile input: corpus files (`tests/corpus`) truncated, corrupted byte by byte, and patched
//! into cycles and lying sizes. Whatever the bytes, opening, walking and reading gives `Ok` or an
//! error naming the file, never a panic, an abort or a hang; the patched cases give the error
//! that says what is wrong. The same bounded walk (`walk`) drives every case. What the fuzzer
//! (`fuzz/fuzz_targets/read_hdf5.rs`) found is here as a regression (`lying_frame_size_saturates`),
//! and so is each fix made while reviewing for it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use neggia::nxmx::Master;
use neggia::{Dataset, Error, File, Group, Link, Node};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("HDRMX_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files"),
    }
}

fn corpus(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bytes as if they were the corpus file `name` (so that its links and VDS sources resolve).
fn open(bytes: Vec<u8>, name: &str) -> neggia::Result<File> {
    File::from_bytes(bytes, corpus_dir().join(name))
}

/// Objects a walk visits at most, and how deep.
const MAX_OBJECTS: usize = 2000;
const MAX_DEPTH: usize = 16;
/// Datasets up to this size are read whole; larger ones by their first and last frames.
const MAX_READ: u64 = 1 << 20;
/// One walk of a corpus file, however corrupt, must end well within this.
const SLOW: Duration = Duration::from_secs(5);

/// What a walk saw: everything that read (names, shapes, types, attributes, a hash of the data)
/// and every error, as text.
#[derive(Default)]
struct Seen {
    log: Vec<String>,
    /// (what was being read, the error's message)
    errors: Vec<(String, String)>,
}

impl Seen {
    fn note<T>(&mut self, what: &str, r: neggia::Result<T>, show: impl FnOnce(&T) -> String) {
        match r {
            Ok(v) => self.log.push(format!("{what}: {}", show(&v))),
            Err(e) => self.error(what, e),
        }
    }

    fn error(&mut self, what: &str, e: Error) {
        self.errors.push((what.to_string(), e.to_string()));
    }
}

/// Opens `bytes` as corpus file `name` and reads everything reachable, as a reader would: every
/// group's links and attributes, every dataset's metadata, attributes and data (small ones whole,
/// big ones a frame at a time), and the NXmx frame stack. Bounded, so a loop of hard links ends.
fn walk(bytes: Vec<u8>, name: &str) -> Seen {
    let t = Instant::now();
    let mut seen = Seen::default();
    let file = match open(bytes, name) {
        Ok(f) => f,
        Err(e) => {
            seen.error("open", e);
            return seen;
        }
    };
    let mut state = (0usize, HashSet::new());
    walk_group(&file.root(), "/", 0, &mut state, &mut seen);
    match Master::open_file(file) {
        Ok(m) => {
            seen.log.push(format!(
                "master: {} frames of {:?} {}, mask {:?}",
                m.frames(),
                m.shape(),
                m.dtype().numpy(),
                m.mask()
                    .map(|v| hash(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()))
            ));
            let [ny, nx] = m.shape();
            let n = ny
                .checked_mul(nx)
                .filter(|n| n.saturating_mul(m.dtype().size() as u64) <= MAX_READ);
            if let Some(n) = n.filter(|_| m.frames() > 0) {
                let n = n as usize;
                for i in [0, m.frames() - 1] {
                    let r = match m.dtype().size() {
                        1 => read_frame::<u8>(&m, i, n),
                        2 => read_frame::<u16>(&m, i, n),
                        _ => read_frame::<u32>(&m, i, n),
                    };
                    seen.note(&format!("master frame {i}"), r, |b| hash(b));
                }
            }
        }
        Err(e) => seen.error("master", e),
    }
    assert!(
        t.elapsed() < SLOW,
        "{name}: one walk took {:?}",
        t.elapsed()
    );
    seen
}

/// Frame `i` of a frame stack, as little-endian bytes.
fn read_frame<T: neggia::Element + Default + Copy + Into<u64>>(
    m: &Master,
    i: u64,
    n: usize,
) -> neggia::Result<Vec<u8>> {
    let mut frame = vec![T::default(); n];
    m.read_frame_into(i, &mut frame)?;
    let size = std::mem::size_of::<T>();
    Ok(frame
        .into_iter()
        .flat_map(|v| v.into().to_le_bytes().into_iter().take(size))
        .collect())
}

fn walk_group(
    g: &Group,
    path: &str,
    depth: usize,
    state: &mut (usize, HashSet<u64>),
    seen: &mut Seen,
) {
    seen.note(&format!("{path} attributes"), g.attributes(), |a| {
        format!("{a:?}")
    });
    let links = match g.links() {
        Ok(l) => l,
        Err(e) => {
            seen.error(&format!("{path} links"), e);
            return;
        }
    };
    for (name, link) in links {
        if state.0 >= MAX_OBJECTS {
            return;
        }
        state.0 += 1;
        if let Link::Hard(addr) = link {
            if !state.1.insert(addr) {
                seen.log.push(format!("{path}/{name}: seen"));
                continue;
            }
        }
        let sub = if path == "/" {
            format!("/{name}")
        } else {
            format!("{path}/{name}")
        };
        let mut hops = 0;
        match g.follow(&name, &link, &mut hops) {
            Ok(Node::Group(child)) => {
                seen.log.push(format!("{sub}: group"));
                if matches!(link, Link::Hard(_)) && depth < MAX_DEPTH {
                    walk_group(&child, &sub, depth + 1, state, seen);
                }
            }
            Ok(Node::Dataset(d)) => walk_dataset(&d, &sub, seen),
            Err(e) => seen.error(&sub, e),
        }
    }
}

fn walk_dataset(d: &Dataset, path: &str, seen: &mut Seen) {
    seen.log.push(format!(
        "{path}: {:?} {:?} {} {:?} {:?} {:?}",
        d.shape(),
        d.max_shape(),
        d.dtype().numpy(),
        d.storage(),
        d.chunks(),
        d.filters()
    ));
    seen.note(&format!("{path} attributes"), d.attributes(), |a| {
        format!("{a:?}")
    });
    let shape = d.shape().to_vec();
    let bytes = |count: &[u64]| {
        count
            .iter()
            .try_fold(d.dtype().size() as u64, |a, &c| a.checked_mul(c))
    };
    match bytes(&shape) {
        Some(n) if n <= MAX_READ => seen.note(&format!("{path} data"), d.read_bytes(), |b| hash(b)),
        _ => {
            let Some((&frames, rest)) = shape.split_first() else {
                return;
            };
            let Some(n) = bytes(rest).filter(|&n| n <= MAX_READ && frames > 0) else {
                seen.log.push(format!("{path}: too big to read"));
                return;
            };
            let mut out = vec![0u8; n as usize];
            for i in [0, frames - 1] {
                let mut start = vec![0; shape.len()];
                start[0] = i;
                let mut count = shape.clone();
                count[0] = 1;
                let r = d.read_box(&start, &count, &mut out);
                seen.note(&format!("{path} frame {i}"), r, |_| hash(&out));
            }
        }
    }
}

/// FNV-1a: enough to tell two reads apart in a log.
fn hash(bytes: &[u8]) -> String {
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!("{} bytes {h:016x}", bytes.len())
}

/// Every error names a file of the corpus, and the walk of an intact file has none.
fn check_errors_name_files(seen: &Seen, what: &str) {
    let dir = corpus_dir();
    let dir = dir.to_string_lossy();
    for (at, msg) in &seen.errors {
        assert!(
            msg.starts_with(dir.as_ref()),
            "{what}: {at}: error does not name the file: {msg}"
        );
    }
}

fn intact(name: &str) -> Seen {
    let seen = walk(corpus(name), name);
    let expected: &[&str] = match name {
        // Its deliberate errors: the dangling soft link and the missing external file.
        "links_latest.h5" | "links_earliest.h5" => &["does/not/exist", "no_such_file.h5"],
        _ => &[],
    };
    let master = name.contains("master") || name.starts_with("nxmx") || name.starts_with("dls.");
    for (at, msg) in &seen.errors {
        let not_a_master = !master && at == "master" && msg.contains("no object /entry");
        assert!(
            not_a_master || expected.iter().any(|x| msg.contains(x)),
            "{name} intact: {at}: unexpected error: {msg}"
        );
    }
    assert!(seen.log.len() > 3, "{name}: the walk saw almost nothing");
    seen
}

/// Truncated anywhere, a file reads as much as before or fails: never silently different.
#[test]
fn truncated_files_fail_or_read_the_same() {
    // (file, stride): every length for a small file, a stride for bigger ones.
    for (name, stride) in [
        ("links_latest.h5", 1),
        ("attributes_earliest.h5", 37),
        ("nxmx_small_latest.h5", 53),
        ("nxmx_small_earliest.h5", 101),
        ("dls.h5", 29),
        ("eiger2_master.h5", 61),
        ("swmr_open.h5", 17),
        ("groups_latest.h5", 499),
    ] {
        let whole = corpus(name);
        let full = intact(name);
        let mut failed = 0;
        for len in (0..whole.len()).step_by(stride) {
            let seen = walk(whole[..len].to_vec(), name);
            check_errors_name_files(&seen, &format!("{name} cut at {len}"));
            if seen.errors == full.errors {
                assert_eq!(
                    seen.log, full.log,
                    "{name} cut at {len}: no error, but it reads differently"
                );
            } else {
                failed += 1;
            }
        }
        assert!(failed > 0, "{name}: no truncation was noticed");
    }
}

/// One byte changed at a stride through metadata and data: errors, no panic, no hang.
#[test]
fn corrupted_bytes_give_errors() {
    for (name, stride) in [
        ("vds_samefile.h5", 127),
        ("dls.h5", 83),
        ("nxmx_small_latest.h5", 37),
        ("nxmx_small_earliest.h5", 61),
        ("attributes_latest.h5", 29),
        ("superblock1.h5", 41),
        ("dls_000001.h5", 17),
    ] {
        let whole = corpus(name);
        intact(name);
        let mut failed = 0;
        for (k, at) in (0..whole.len()).step_by(stride).enumerate() {
            let mut bytes = whole.clone();
            // A different kind of damage at each position: zeroed, all ones, one bit.
            bytes[at] = match k % 3 {
                0 => 0,
                1 => 0xff,
                _ => bytes[at] ^ 0x10,
            };
            let seen = walk(bytes, name);
            check_errors_name_files(&seen, &format!("{name} byte {at}"));
            failed += usize::from(!seen.errors.is_empty());
        }
        assert!(failed > 0, "{name}: no corruption was noticed");
    }
}

// ---- Patching: a small reader of the structures to patch, written from the format spec. ----

fn le(b: &[u8]) -> usize {
    b.iter().rev().fold(0, |a, &x| (a << 8) | x as usize)
}

fn put_le(d: &mut [u8], at: usize, width: usize, v: u64) {
    d[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
}

/// The messages of the object header at `addr` (8-byte addresses and lengths), continuation
/// blocks included: (type, offset of the body in the file, body length).
fn messages(d: &[u8], addr: usize) -> Vec<(u16, usize, usize)> {
    let mut out = Vec::new();
    let v2 = &d[addr..addr + 4] == b"OHDR";
    let (mut blocks, header) = if v2 {
        let flags = d[addr + 5];
        let mut p = addr + 6;
        if flags & 0x20 != 0 {
            p += 16;
        }
        if flags & 0x10 != 0 {
            p += 4;
        }
        let n = 1 << (flags & 3);
        let size = le(&d[p..p + n]);
        p += n;
        (vec![(p, p + size)], if flags & 0x04 != 0 { 6 } else { 4 })
    } else {
        let size = le(&d[addr + 8..addr + 12]);
        (vec![(addr + 16, addr + 16 + size)], 8)
    };
    while let Some((start, end)) = blocks.pop() {
        let mut q = start;
        while q + header <= end {
            let (kind, len) = if v2 {
                (d[q] as u16, le(&d[q + 1..q + 3]))
            } else {
                (le(&d[q..q + 2]) as u16, le(&d[q + 2..q + 4]))
            };
            let body = q + header;
            out.push((kind, body, len));
            if kind == 0x10 {
                let at = le(&d[body..body + 8]);
                let n = le(&d[body + 8..body + 16]);
                // An OCHK block: signature, messages, checksum.
                blocks.push(if v2 {
                    (at + 4, at + n - 4)
                } else {
                    (at, at + n)
                });
            }
            q = body + len;
        }
    }
    out
}

/// The body offset of the first message of `kind` in the header at `addr`.
fn message(d: &[u8], addr: usize, kind: u16) -> usize {
    messages(d, addr)
        .into_iter()
        .find(|m| m.0 == kind)
        .unwrap_or_else(|| panic!("no message {kind:#x} at {addr:#x}"))
        .1
}

/// The object header address of `path` (hard links all the way).
fn addr_of(bytes: &[u8], name: &str, path: &str) -> usize {
    let f = open(bytes.to_vec(), name).expect("intact file opens");
    let (parent, leaf) = path.rsplit_once('/').expect("absolute path");
    let g = f
        .group(if parent.is_empty() { "/" } else { parent })
        .expect("parent group");
    match g
        .links()
        .expect("links")
        .into_iter()
        .find(|(n, _)| n == leaf)
    {
        Some((_, Link::Hard(a))) => a as usize,
        other => panic!("{path}: {other:?}"),
    }
}

/// Offset of the first dimension of a dataspace message body.
fn dims_at(d: &[u8], body: usize) -> usize {
    match d[body] {
        1 => body + 8,
        2 => body + 4,
        v => panic!("dataspace version {v}"),
    }
}

/// v1 B-tree nodes: (offset, node type, level, entries).
fn btree_nodes(d: &[u8]) -> Vec<(usize, u8, u8, usize)> {
    d.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"TREE")
        .map(|(at, _)| (at, d[at + 4], d[at + 5], le(&d[at + 6..at + 8])))
        .collect()
}

fn err_text<T>(r: neggia::Result<T>, what: &str) -> String {
    match r {
        Ok(_) => panic!("{what}: read, but should have failed"),
        Err(e) => e.to_string(),
    }
}

/// Runs `f` and checks it answers quickly (a cycle must be caught, not walked for long).
fn quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{what}: took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn v1_btree_child_pointing_at_its_parent_is_a_cycle() {
    // superblock1.h5: `/group` is a 2-level group B-tree; `/chunked` a 2-level chunk B-tree.
    let name = "superblock1.h5";
    let whole = corpus(name);
    for (ty, path) in [(0u8, "/group"), (1u8, "/chunked")] {
        let (root, ..) = *btree_nodes(&whole)
            .iter()
            .find(|n| n.1 == ty && n.2 == 1)
            .expect("a level-1 node");
        // Header: signature, type, level, entries, two siblings; then key 0 and child 0. A group
        // key is one length (8); a chunk key is size, mask and rank + 1 offsets.
        let rank = open(whole.clone(), name)
            .and_then(|f| f.dataset("/chunked"))
            .expect("/chunked")
            .shape()
            .len();
        let key = if ty == 0 { 8 } else { 8 + 8 * (rank + 1) };
        let mut bytes = whole.clone();
        put_le(&mut bytes, root + 24 + key, 8, root as u64);
        let f = open(bytes, name).expect("opens");
        let msg = quick(path, || match ty {
            0 => err_text(f.group(path).and_then(|g| g.links()), path),
            _ => err_text(f.dataset(path), path),
        });
        assert!(
            msg.contains(&format!("v1 B-tree node {root:#x} is reached twice")),
            "{path}: {msg}"
        );
    }
}

#[test]
fn v2_btree_child_pointing_at_its_parent_is_a_cycle() {
    // groups_latest.h5: `/big`'s link-name index (v2 B-tree type 5) has depth 2.
    let name = "groups_latest.h5";
    let mut bytes = corpus(name);
    let header = (0..bytes.len() - 4)
        .filter(|&at| &bytes[at..at + 4] == b"BTHD")
        .find(|&at| bytes[at + 5] == 5 && le(&bytes[at + 12..at + 14]) >= 1)
        .expect("a deep link-name index");
    // Header: signature, version, type, node size (4), record size (2), depth (2), split and
    // merge percentages, root address, root record count.
    let rec = le(&bytes[header + 10..header + 12]);
    let root = le(&bytes[header + 16..header + 24]);
    let n = le(&bytes[header + 24..header + 26]);
    assert_eq!(&bytes[root..root + 4], b"BTIN");
    // Internal node: signature, version, type, the records, then child 0's address.
    put_le(&mut bytes, root + 6 + n * rec, 8, root as u64);
    let f = open(bytes, name).expect("opens");
    let msg = quick(name, || {
        err_text(f.group("/big").and_then(|g| g.links()), "/big")
    });
    assert!(
        msg.contains(&format!("v2 B-tree node {root:#x} is reached twice")),
        "{msg}"
    );
}

#[test]
fn symbol_node_listed_twice_is_refused() {
    // A leaf of `/group`'s B-tree naming one symbol node twice (before, its entries were
    // listed once per mention).
    let name = "superblock1.h5";
    let mut bytes = corpus(name);
    let (leaf, ..) = *btree_nodes(&bytes)
        .iter()
        .find(|n| n.1 == 0 && n.2 == 0 && n.3 >= 2)
        .expect("a group leaf with two children");
    let child0 = le(&bytes[leaf + 32..leaf + 40]) as u64;
    put_le(&mut bytes, leaf + 48, 8, child0);
    let f = open(bytes, name).expect("opens");
    let msg = err_text(f.group("/group").and_then(|g| g.links()), "/group");
    assert!(
        msg.contains(&format!("symbol table node {child0:#x} is listed twice")),
        "{msg}"
    );
}

#[test]
fn continuation_loop_is_refused() {
    // `/continued` has continuation blocks: v1 in earliest, OCHK in latest. Point a
    // continuation back at a block already read.
    for name in ["attributes_earliest.h5", "attributes_latest.h5"] {
        let mut bytes = corpus(name);
        let addr = addr_of(&bytes, name, "/continued");
        let conts: Vec<(u16, usize, usize)> = messages(&bytes, addr)
            .into_iter()
            .filter(|m| m.0 == 0x10)
            .collect();
        assert!(!conts.is_empty(), "{name}: no continuation");
        let last = conts[conts.len() - 1].1;
        if conts.len() > 1 {
            // The last continuation message goes back to the first continuation block.
            let first = le(&bytes[conts[0].1..conts[0].1 + 8]) as u64;
            put_le(&mut bytes, last, 8, first);
        } else {
            // v1, one continuation: its target becomes the header's own message block, which
            // holds the continuation message again.
            assert_ne!(&bytes[addr..addr + 4], b"OHDR");
            let size = le(&bytes[addr + 8..addr + 12]) as u64;
            put_le(&mut bytes, last, 8, addr as u64 + 16);
            put_le(&mut bytes, last + 8, 8, size);
        }
        let f = open(bytes, name).expect("opens");
        let msg = quick(name, || {
            err_text(f.group("/continued").and_then(|g| g.attributes()), name)
        });
        assert!(msg.contains("reached twice (a loop)"), "{name}: {msg}");
    }
}

#[test]
fn soft_link_loop_is_refused() {
    // links_latest.h5's `/dangling` -> `/does/not/exist`, made to point at itself (empty path
    // components are skipped, so the value keeps its length).
    let name = "links_latest.h5";
    let mut bytes = corpus(name);
    let at = bytes
        .windows(15)
        .position(|w| w == b"/does/not/exist")
        .expect("the dangling link");
    bytes[at..at + 15].copy_from_slice(b"///////dangling");
    let f = open(bytes, name).expect("opens");
    let msg = quick(name, || err_text(f.get("/dangling"), "/dangling"));
    assert!(msg.contains("/dangling: soft link loop"), "{msg}");
    // The rest of the file still reads.
    f.dataset("/soft_to_data").expect("an intact soft link");
}

#[test]
fn vds_that_is_its_own_source_is_refused() {
    // vds_samefile.h5 maps `/entry/data/raw` of the same file; renamed to the VDS itself
    // ("entry/data/data" resolves from the root, and has the same length). Reading recursed
    // until the stack overflowed.
    let name = "vds_samefile.h5";
    let mut bytes = corpus(name);
    let mut patched = 0;
    while let Some(at) = bytes.windows(15).position(|w| w == b"/entry/data/raw") {
        bytes[at..at + 15].copy_from_slice(b"entry/data/data");
        patched += 1;
    }
    assert!(patched > 0);
    let f = open(bytes, name).expect("opens");
    let d = f.dataset("/entry/data/data").expect("the VDS opens");
    let mut out = vec![0u8; d.frame_len() as usize * d.dtype().size()];
    let msg = quick(name, || {
        err_text(
            d.read_box(&[0, 0, 0], &[1, d.shape()[1], d.shape()[2]], &mut out),
            name,
        )
    });
    assert!(msg.contains("VDS sources nest more than 8 deep"), "{msg}");
}

/// nxmx_small_latest.h5's frame stack: object header address and the dataset.
fn frame_stack(bytes: &[u8]) -> (usize, Dataset) {
    let name = "nxmx_small_latest.h5";
    let addr = addr_of(bytes, name, "/entry/data/data");
    let d = open(bytes.to_vec(), name)
        .and_then(|f| f.dataset("/entry/data/data"))
        .expect("frame stack");
    (addr, d)
}

#[test]
fn lying_frame_count_is_refused_without_allocating() {
    let name = "nxmx_small_latest.h5";
    let mut bytes = corpus(name);
    let (addr, _) = frame_stack(&bytes);
    let dims = dims_at(&bytes, message(&bytes, addr, 0x0001));
    put_le(&mut bytes, dims, 8, 1 << 60);
    let (_, d) = frame_stack(&bytes);
    assert_eq!(d.shape()[0], 1 << 60);
    let msg = err_text(d.read_bytes(), "read_bytes");
    assert!(msg.contains("does not fit in memory"), "{msg}");
    // A frame is still a frame.
    let mut out = vec![0u8; d.frame_len() as usize * d.dtype().size()];
    let count = [1, d.shape()[1], d.shape()[2]];
    d.read_box(&[0, 0, 0], &count, &mut out).expect("frame 0");
}

/// Found by the fuzzer: a frame of more than 2^64 elements overflowed `frame_len`.
#[test]
fn lying_frame_size_saturates() {
    let name = "nxmx_small_latest.h5";
    let mut bytes = corpus(name);
    let (addr, _) = frame_stack(&bytes);
    let dims = dims_at(&bytes, message(&bytes, addr, 0x0001));
    put_le(&mut bytes, dims + 8, 8, 1 << 40);
    put_le(&mut bytes, dims + 16, 8, 1 << 40);
    let (_, d) = frame_stack(&bytes);
    assert_eq!(d.frame_len(), u64::MAX);
    let count = [1, 1 << 40, 1 << 40];
    let msg = err_text(d.read_box(&[0, 0, 0], &count, &mut [0u8; 4]), "frame");
    assert!(
        msg.contains("/entry/data/data") && msg.contains("does not fit in memory"),
        "{msg}"
    );
    let f = open(bytes, name).expect("opens");
    assert!(Master::open_file(f).is_err());
}

#[test]
fn lying_chunk_size_is_refused() {
    // Chunk dimensions whose product passes HDF5's 4 GiB chunk limit (layout v3: u32
    // dimensions; the later versions' are as wide as the writer needed).
    let name = "nxmx_small_earliest.h5";
    let mut bytes = corpus(name);
    let addr = addr_of(&bytes, name, "/entry/data/data");
    let body = message(&bytes, addr, 0x0008);
    // Layout v3, chunked: version, class, rank + 1, B-tree address, dimensions.
    assert!(bytes[body] == 3 && bytes[body + 1] == 2, "layout");
    put_le(&mut bytes, body + 3 + 8 + 4, 4, u32::MAX as u64);
    let f = open(bytes, name).expect("opens");
    let msg = err_text(f.dataset("/entry/data/data"), "open");
    assert!(msg.contains("exceed HDF5's 4 GiB chunk limit"), "{msg}");
}

#[test]
fn lying_element_size_is_refused() {
    // A fixed-length string dataset whose datatype claims 4 GiB per element (the fill value of
    // one element was allocated at open), and one that claims 0 bytes.
    let name = "nxmx_small_latest.h5";
    let path = "/entry/definition";
    for (size, expect) in [(0xffff_ff00u64, "elements of"), (0, "datatype of size 0")] {
        let mut bytes = corpus(name);
        let addr = addr_of(&bytes, name, path);
        let dt = message(&bytes, addr, 0x0003);
        assert_eq!(bytes[dt] & 0x0f, 3, "a string type");
        put_le(&mut bytes, dt + 4, 4, size);
        let f = open(bytes, name).expect("opens");
        let msg = err_text(f.dataset(path), path);
        assert!(msg.contains(expect), "{msg}");
    }
}

#[test]
fn attribute_with_more_than_2_64_elements_is_refused() {
    // A rank-2 attribute whose dimensions multiply past 2^64 (an overflow before). In earliest
    // every attribute is a header message (latest keeps these dense).
    let name = "attributes_earliest.h5";
    let whole = corpus(name);
    let f = open(whole.clone(), name).expect("opens");
    let mut found = 0;
    for (obj, link) in f.root().links().expect("links") {
        let Link::Hard(addr) = link else { continue };
        for (kind, body, _) in messages(&whole, addr as usize) {
            if kind != 0x000C {
                continue;
            }
            // Attribute message: version, flags, name, datatype and dataspace sizes, (v3) a
            // character set, then name, datatype and dataspace (v1: each padded to 8).
            let name_len = le(&whole[body + 2..body + 4]);
            let dt_len = le(&whole[body + 4..body + 6]);
            let ds = match whole[body] {
                1 => body + 8 + name_len.next_multiple_of(8) + dt_len.next_multiple_of(8),
                2 => body + 8 + name_len + dt_len,
                _ => body + 9 + name_len + dt_len,
            };
            if whole[ds + 1] != 2 {
                continue;
            }
            let mut bytes = whole.clone();
            let dims = dims_at(&bytes, ds);
            put_le(&mut bytes, dims, 8, 1 << 40);
            put_le(&mut bytes, dims + 8, 8, 1 << 40);
            let f = open(bytes, name).expect("opens");
            let msg = match f.get(&format!("/{obj}")).expect("object") {
                Node::Group(g) => err_text(g.attributes(), &obj),
                Node::Dataset(d) => err_text(d.attributes(), &obj),
            };
            assert!(msg.contains("value of"), "/{obj}: {msg}");
            found += 1;
        }
    }
    assert!(found > 0, "no rank-2 attribute in {name}");
}

#[test]
fn corrupt_bslz4_chunk_names_dataset_and_chunk() {
    let name = "nxmx_small_latest.h5";
    let mut bytes = corpus(name);
    let (_, d) = frame_stack(&bytes);
    assert!(d.filters().iter().any(|f| f.id == 32008), "bitshuffle");
    let chunks = d.chunks().expect("chunked").to_vec();
    let loc = d.chunk_location(&[1, 0, 0]).expect("chunk 1 is stored");
    // bitshuffle + LZ4: u64 BE total, u32 BE block size, then u32 BE size of the first block.
    let at = loc.addr as usize + 12;
    bytes[at..at + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let (_, d) = frame_stack(&bytes);
    let count = [1, d.shape()[1], d.shape()[2]];
    let mut out = vec![0u8; d.frame_len() as usize * d.dtype().size()];
    d.read_box(&[0, 0, 0], &count, &mut out)
        .expect("frame 0 is intact");
    let e = d
        .read_box(&[chunks[0], 0, 0], &count, &mut out)
        .expect_err("frame in the corrupt chunk");
    match &e {
        Error::Chunk { dataset, chunk, .. } => {
            assert_eq!(dataset, "/entry/data/data");
            assert_eq!(chunk, &vec![chunks[0], 0, 0]);
        }
        e => panic!("not a chunk error: {e}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(name) && msg.contains("/entry/data/data") && msg.contains("chunk at"),
        "{msg}"
    );
}

#[test]
fn extensible_array_with_too_few_index_bits_is_refused() {
    // dls_000001.h5's frame stack uses an extensible array. Fewer element-count bits than its
    // smallest data block needs made the super block count wrap (a huge allocation).
    let name = "dls_000001.h5";
    let mut bytes = corpus(name);
    let at = bytes
        .windows(4)
        .position(|w| w == b"EAHD")
        .expect("an extensible array");
    // Signature, version, client, element size, then the bits of the maximum element count.
    bytes[at + 7] = 1;
    let f = open(bytes, name).expect("opens");
    let msg = err_text(f.dataset("/data"), "/data");
    assert!(
        msg.contains("extensible array parameters are inconsistent"),
        "{msg}"
    );
}

#[test]
fn extensible_array_block_listed_twice_is_refused() {
    // An index block naming one data block twice: each listing read all of its elements again
    // (quadratic in the file size for a block listed thousands of times).
    let name = "layouts_v110.h5";
    let mut bytes = corpus(name);
    let mut patched = None;
    for at in (0..bytes.len() - 4).filter(|&at| &bytes[at..at + 4] == b"EAHD") {
        // Header: signature, version, client, element size, max bits, index block elements,
        // min data block elements, min super block pointers, page bits, 6 statistics, then the
        // index block address.
        let (entry, elems, min_ptrs) = (bytes[at + 6], bytes[at + 8], bytes[at + 10]);
        let iblock = le(&bytes[at + 60..at + 68]);
        // Index block: signature, version, client, header address, elements, data blocks.
        let dblocks = iblock + 14 + elems as usize * entry as usize;
        let first = le(&bytes[dblocks..dblocks + 8]);
        let second = le(&bytes[dblocks + 8..dblocks + 16]);
        if min_ptrs >= 2 && first != usize::MAX && second != usize::MAX {
            put_le(&mut bytes, dblocks + 8, 8, first as u64);
            patched = Some(first);
            break;
        }
    }
    let first = patched.expect("an extensible array with two data blocks");
    let f = open(bytes, name).expect("opens");
    let mut errors = Vec::new();
    for (obj, _) in f.root().links().expect("links") {
        if let Err(e) = quick(&obj, || f.get(&format!("/{obj}"))) {
            errors.push(e.to_string());
        }
    }
    let expected = format!("extensible array block {first:#x} is listed twice");
    assert!(
        errors.len() == 1 && errors[0].contains(&expected),
        "{errors:?}"
    );
}
