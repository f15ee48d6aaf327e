//! The differential test: every file of the h5py-written corpus (`tests/corpus`, see its
//! README), read by neggia-rs, equals what h5py read when it wrote the manifest: the same groups,
//! datasets, shapes, types, layouts, filters, attributes and links, and data equal bit for bit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use neggia::{Dataset, File, Group, Link, Node, Storage, Values};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("HDRMX_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/files"),
    }
}

fn manifest() -> Json {
    let path = corpus_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn sha_native(d: &Dataset) -> neggia::Result<String> {
    let mut bytes = d.read_bytes()?;
    if let neggia::Datatype::Int {
        size,
        big_endian: true,
        ..
    }
    | neggia::Datatype::Float {
        size,
        big_endian: true,
    } = *d.dtype()
    {
        for e in bytes.chunks_exact_mut(size) {
            e.reverse();
        }
    }
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every group and dataset reachable from `/` by hard and soft links (not external ones), by
/// the paths that reach them. `stack` holds the groups being walked, so a link back up is not
/// followed again.
fn walk(
    g: &Group,
    path: &str,
    groups: &mut BTreeSet<String>,
    datasets: &mut Vec<(String, Dataset)>,
    stack: &mut Vec<String>,
) {
    groups.insert(path.to_string());
    stack.push(g.name().to_string());
    for (name, link) in g.links().unwrap_or_else(|e| panic!("{path}: {e}")) {
        if matches!(link, Link::External { .. }) {
            continue;
        }
        let mut hops = 0;
        let node = match g.follow(&name, &link, &mut hops) {
            Ok(n) => n,
            Err(neggia::Error::NotFound { .. }) if matches!(link, Link::Soft(_)) => continue, // dangling
            Err(e) => panic!("{path}/{name}: {e}"),
        };
        let sub_path = if path == "/" {
            format!("/{name}")
        } else {
            format!("{path}/{name}")
        };
        match node {
            Node::Group(sub) => {
                if stack.iter().any(|s| s == sub.name()) {
                    groups.insert(sub_path);
                } else {
                    walk(&sub, &sub_path, groups, datasets, stack);
                }
            }
            Node::Dataset(d) => datasets.push((sub_path, d)),
        }
    }
    stack.pop();
}

fn json_of(v: &neggia::Value) -> Json {
    let flat: Vec<Json> = match &v.data {
        Values::Int(x) => x.iter().map(|&i| Json::from(i)).collect(),
        Values::UInt(x) => x.iter().map(|&i| Json::from(i)).collect(),
        Values::Float(x) => x.iter().map(|&f| Json::from(f)).collect(),
        Values::Str(x) => x.iter().map(|s| Json::from(s.as_str())).collect(),
        Values::Unsupported(what) => return Json::from(format!("<unsupported {what}>")),
    };
    nest(&flat, &v.shape)
}

fn nest(flat: &[Json], shape: &[u64]) -> Json {
    match shape.split_first() {
        None => flat.first().cloned().unwrap_or(Json::Null),
        Some((&n, rest)) => {
            let step = rest.iter().product::<u64>() as usize;
            Json::Array(
                (0..n as usize)
                    .map(|i| nest(&flat[i * step..(i + 1) * step], rest))
                    .collect(),
            )
        }
    }
}

/// JSON equality, with floats compared as floats (1.0 == 1).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x.as_f64() == y.as_f64() && (x.is_f64() || y.is_f64() || x == y)
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn storage_name(s: Storage) -> &'static str {
    match s {
        Storage::Compact => "compact",
        Storage::Contiguous => "contiguous",
        Storage::Chunked => "chunked",
        Storage::Virtual => "virtual",
    }
}

#[test]
fn every_corpus_file_reads_as_h5py_read_it() {
    let m = manifest();
    let dir = corpus_dir();
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for entry in m["files"].as_array().expect("files") {
        let name = entry["file"].as_str().expect("file");
        let path = dir.join(name);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{name}: open: {e}"));
                continue;
            }
        };
        if let Some(sb) = entry.get("superblock").and_then(Json::as_u64) {
            if u64::from(f.superblock_version()) != sb {
                failures.push(format!(
                    "{name}: superblock {} != {sb}",
                    f.superblock_version()
                ));
            }
        }
        let (mut groups, mut dsets) = (BTreeSet::new(), Vec::new());
        walk(&f.root(), "/", &mut groups, &mut dsets, &mut Vec::new());
        let want_groups: BTreeSet<String> = entry["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|g| g.as_str().unwrap().to_string())
            .collect();
        if groups != want_groups {
            failures.push(format!(
                "{name}: groups differ: extra {:?}, missing {:?}",
                groups.difference(&want_groups).collect::<Vec<_>>(),
                want_groups.difference(&groups).collect::<Vec<_>>()
            ));
        }
        let found: BTreeSet<String> = dsets.iter().map(|(p, _)| p.clone()).collect();
        for d in entry["datasets"].as_array().expect("datasets") {
            let p = d["path"].as_str().expect("path");
            let via_external = d.get("via").is_some();
            if !via_external && !found.contains(p) {
                failures.push(format!("{name}: dataset {p} not found by traversal"));
            }
            let ds = match f.dataset(p) {
                Ok(ds) => ds,
                Err(e) => {
                    failures.push(format!("{name}:{p}: {e}"));
                    continue;
                }
            };
            checked += 1;
            let shape: Vec<u64> = d["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            if ds.shape() != shape.as_slice() {
                failures.push(format!("{name}:{p}: shape {:?} != {shape:?}", ds.shape()));
                continue;
            }
            if let Some(dt) = d.get("dtype").and_then(Json::as_str) {
                // Strings are checked by value; numbers by numpy's type string as stored.
                let string = dt.starts_with("|S") || dt == "|O" || dt.starts_with("<U");
                if !string && ds.dtype().numpy() != dt {
                    failures.push(format!("{name}:{p}: dtype {} != {dt}", ds.dtype().numpy()));
                }
            }
            if let Some(l) = d.get("layout").and_then(Json::as_str) {
                if storage_name(ds.storage()) != l {
                    failures.push(format!("{name}:{p}: layout {:?} != {l}", ds.storage()));
                }
            }
            if let Some(c) = d.get("chunks").and_then(Json::as_array) {
                let c: Vec<u64> = c.iter().map(|x| x.as_u64().unwrap()).collect();
                if ds.chunks() != Some(c.as_slice()) {
                    failures.push(format!("{name}:{p}: chunks {:?} != {c:?}", ds.chunks()));
                }
            }
            if let Some(fl) = d.get("filters").and_then(Json::as_array) {
                let want: Vec<u64> = fl.iter().map(|x| x.as_u64().unwrap()).collect();
                let got: Vec<u64> = ds.filters().iter().map(|f| f.id as u64).collect();
                if got != want {
                    failures.push(format!("{name}:{p}: filters {got:?} != {want:?}"));
                }
            }
            let expected_error = m["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["file"].as_str() == Some(name) && e["path"].as_str() == Some(p));
            if expected_error {
                continue;
            }
            if let Some(sha) = d.get("sha256").and_then(Json::as_str) {
                match sha_native(&ds) {
                    Ok(got) if got == sha => {}
                    Ok(_) => failures.push(format!("{name}:{p}: data differs from h5py's")),
                    Err(e) => failures.push(format!("{name}:{p}: read: {e}")),
                }
            } else if let Some(v) = d.get("value") {
                match ds.read_value() {
                    Ok(got) if same(&json_of(&got), v) => {}
                    Ok(got) => failures.push(format!("{name}:{p}: value {} != {v}", json_of(&got))),
                    Err(e) => failures.push(format!("{name}:{p}: read: {e}")),
                }
            }
        }
        for a in entry["attributes"].as_array().into_iter().flatten() {
            let (p, an) = (a["path"].as_str().unwrap(), a["name"].as_str().unwrap());
            let got = match f.get(p) {
                Ok(Node::Group(g)) => g.attr(an),
                Ok(Node::Dataset(d)) => d.attr(an),
                Err(e) => Err(e),
            };
            match got {
                Ok(Some(v)) if same(&json_of(&v), &a["value"]) => {}
                Ok(Some(v)) => failures.push(format!(
                    "{name}:{p}@{an}: {} != {}",
                    json_of(&v),
                    a["value"]
                )),
                Ok(None) => failures.push(format!("{name}:{p}@{an}: missing")),
                Err(e) => failures.push(format!("{name}:{p}@{an}: {e}")),
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "the manifest lists no files");
}

#[test]
fn expected_errors_are_clear() {
    let m = manifest();
    let dir = corpus_dir();
    for e in m["errors"].as_array().into_iter().flatten() {
        let (name, p) = (e["file"].as_str().unwrap(), e["path"].as_str().unwrap());
        let mention = e["mentions"].as_str().unwrap_or("");
        let result = File::open(dir.join(name))
            .and_then(|f| f.dataset(p))
            .and_then(|d| match e["frame"].as_u64() {
                Some(i) => {
                    let mut buf = vec![0u8; d.frame_len() as usize * d.dtype().size()];
                    let mut start = vec![0; d.shape().len()];
                    start[0] = i;
                    let mut count = d.shape().to_vec();
                    count[0] = 1;
                    d.read_box(&start, &count, &mut buf)
                }
                None => d.read_bytes().map(|_| ()),
            });
        match result {
            Ok(()) => panic!(
                "{name}:{p}: read succeeded, expected an error ({})",
                e["why"]
            ),
            Err(err) => {
                let msg = err.to_string();
                assert!(
                    msg.contains(mention),
                    "{name}:{p}: error {msg:?} does not mention {mention:?}"
                );
            }
        }
    }
}
