//! Files, groups and paths: opening, link resolution (hard, soft, external), traversal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::group::{self, Attribute, Link};
use crate::object::ObjectHeader;
use crate::raw::{Bytes, Raw};
use crate::superblock;
use crate::value::Value;

/// How a file (and the files it links to) is read.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Read a missing VDS source as the fill value, as HDF5 does, instead of failing.
    pub missing_vds_source_is_fill: bool,
}

/// An open HDF5 file. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct File(Arc<Inner>);

struct Inner {
    raw: Raw,
    root: u64,
    superblock_version: u8,
    open_for_write: bool,
    options: Options,
    /// Files reached through external links and VDS sources, opened once each.
    related: Mutex<HashMap<PathBuf, File>>,
}

/// Soft and external links followed while resolving one path; more is a loop.
const MAX_LINK_HOPS: usize = 64;

/// What `hops` counts while resolving one path: a soft or external link followed costs `HOP`
/// steps, a path component looked up one. Why: each component reads a group's links, and a soft
/// link whose value is thousands of components through a hard-link cycle, followed 64 times,
/// multiplied into hours. The total is bounded instead, and a loop of links alone still ends
/// after 64 hops.
const HOP: usize = 64;
const MAX_STEPS: usize = MAX_LINK_HOPS * HOP;

/// An object reached by a path.
#[derive(Clone)]
pub enum Node {
    Group(Group),
    Dataset(Dataset),
}

/// A group: a set of named links.
#[derive(Clone)]
pub struct Group {
    file: File,
    addr: u64,
    name: String,
}

impl File {
    pub fn open(path: impl AsRef<Path>) -> Result<File> {
        Self::open_with(path, Options::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<File> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. A file truncated by another
        // process while mapped is outside what any reader can defend against (libhdf5 included).
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(io)?;
        Self::from_raw(Raw::new(Bytes::Map(map), path.to_path_buf()), options)
    }

    /// A file held in memory (fuzzing, tests); `path` names it in errors and anchors its links.
    pub fn from_bytes(bytes: Vec<u8>, path: impl Into<PathBuf>) -> Result<File> {
        Self::from_raw(
            Raw::new(Bytes::Owned(bytes), path.into()),
            Options::default(),
        )
    }

    fn from_raw(mut raw: Raw, options: Options) -> Result<File> {
        let sb = superblock::read(&mut raw)?;
        Ok(File(Arc::new(Inner {
            raw,
            root: sb.root,
            superblock_version: sb.version,
            open_for_write: sb.open_for_write,
            options,
            related: Mutex::new(HashMap::new()),
        })))
    }

    pub(crate) fn raw(&self) -> &Raw {
        &self.0.raw
    }

    pub fn path(&self) -> &Path {
        self.0.raw.path()
    }

    pub fn options(&self) -> &Options {
        &self.0.options
    }

    pub fn superblock_version(&self) -> u8 {
        self.0.superblock_version
    }

    /// A writer (SWMR, or one that crashed) still had the file open.
    pub fn open_for_write(&self) -> bool {
        self.0.open_for_write
    }

    pub fn root(&self) -> Group {
        Group {
            file: self.clone(),
            addr: self.0.root,
            name: "/".into(),
        }
    }

    /// Opens another file once per path, for external links and VDS sources.
    pub(crate) fn open_related(&self, path: &Path) -> Result<File> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Ok(me) = std::fs::canonicalize(self.path()) {
            if me == key {
                return Ok(self.clone());
            }
        }
        let mut related = self.0.related.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = related.get(&key) {
            return Ok(f.clone());
        }
        let f = File::open_with(path, self.0.options.clone())?;
        related.insert(key, f.clone());
        Ok(f)
    }

    /// The object at an absolute path, following soft and external links.
    pub fn get(&self, path: &str) -> Result<Node> {
        self.root().get(path)
    }

    pub fn dataset(&self, path: &str) -> Result<Dataset> {
        match self.get(path)? {
            Node::Dataset(d) => Ok(d),
            Node::Group(_) => Err(self.not_found(format!("{path} (a group, not a dataset)"))),
        }
    }

    pub fn group(&self, path: &str) -> Result<Group> {
        match self.get(path)? {
            Node::Group(g) => Ok(g),
            Node::Dataset(_) => Err(self.not_found(format!("{path} (a dataset, not a group)"))),
        }
    }

    pub fn exists(&self, path: &str) -> bool {
        self.get(path).is_ok()
    }

    fn not_found(&self, object: String) -> Error {
        Error::NotFound {
            path: self.path().to_path_buf(),
            object,
        }
    }

    /// An external link's target file, resolved as HDF5 does: `HDF5_EXT_PREFIX` entries first,
    /// then the referring file's directory, then the name as given.
    fn external_file(&self, name: &str) -> Result<File> {
        let p = Path::new(name);
        let mut candidates = Vec::new();
        if p.is_absolute() {
            candidates.push(p.to_path_buf());
        } else {
            if let Some(prefix) = std::env::var_os("HDF5_EXT_PREFIX") {
                for dir in std::env::split_paths(&prefix) {
                    candidates.push(dir.join(p));
                }
            }
            if let Some(dir) = self.path().parent() {
                candidates.push(dir.join(p));
            }
            candidates.push(p.to_path_buf());
        }
        match candidates.iter().find(|c| c.exists()) {
            Some(c) => self.open_related(c),
            None => Err(Error::NotFound {
                path: self.path().to_path_buf(),
                object: format!("external link target file {name}"),
            }),
        }
    }
}

impl Group {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Links in this group, sorted by name.
    pub fn links(&self) -> Result<Vec<(String, Link)>> {
        let raw = self.file.raw();
        group::links(raw, &ObjectHeader::read(raw, self.addr)?)
    }

    /// Member names, sorted.
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self.links()?.into_iter().map(|(n, _)| n).collect())
    }

    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        let raw = self.file.raw();
        group::attributes(raw, &ObjectHeader::read(raw, self.addr)?)
    }

    pub fn attr(&self, name: &str) -> Result<Option<Value>> {
        Ok(self
            .attributes()?
            .into_iter()
            .find(|a| a.name == name)
            .map(|a| a.value))
    }

    /// The object at `path`, relative to this group (absolute paths start at the file's root).
    pub fn get(&self, path: &str) -> Result<Node> {
        let mut hops = 0;
        self.get_hops(path, &mut hops)
    }

    fn get_hops(&self, path: &str, hops: &mut usize) -> Result<Node> {
        let mut node = if path.starts_with('/') {
            Node::Group(self.file.root())
        } else {
            Node::Group(self.clone())
        };
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            *hops += 1;
            if *hops > MAX_STEPS {
                return Err(self.file.raw().corrupt(format_args!(
                    "{path}: resolving it looks up more than {MAX_STEPS} path components (a link loop?)"
                )));
            }
            let Node::Group(g) = node else {
                return Err(self
                    .file
                    .not_found(format!("{path} ({part} is inside a dataset)")));
            };
            let links = g.links()?;
            let Some((_, link)) = links.into_iter().find(|(n, _)| n == part) else {
                return Err(g.file.not_found(join(&g.name, part)));
            };
            node = g.follow(part, &link, hops)?;
        }
        Ok(node)
    }

    /// The object a link of this group points to. `hops` counts the steps of one resolution
    /// (start it at 0): a loop of links ends in an error.
    pub fn follow(&self, name: &str, link: &Link, hops: &mut usize) -> Result<Node> {
        let full = join(&self.name, name);
        match link {
            Link::Hard(addr) => self.file.node_at(*addr, &full),
            Link::Soft(target) => {
                *hops += HOP;
                if *hops > MAX_STEPS {
                    return Err(self
                        .file
                        .raw()
                        .corrupt(format_args!("{full}: soft link loop")));
                }
                self.get_hops(target, hops).map_err(|e| match e {
                    Error::NotFound { path, object } => Error::NotFound {
                        path,
                        object: format!("{object} (dangling soft link {full} -> {target})"),
                    },
                    e => e,
                })
            }
            Link::External { file, path } => {
                *hops += HOP;
                if *hops > MAX_STEPS {
                    return Err(self
                        .file
                        .raw()
                        .corrupt(format_args!("{full}: external link loop")));
                }
                let target = self.file.external_file(file)?;
                target.root().get_hops(path, hops)
            }
        }
    }
}

impl File {
    fn node_at(&self, addr: u64, name: &str) -> Result<Node> {
        let raw = self.raw();
        let oh = ObjectHeader::read(raw, addr)?;
        if group::is_group(&oh) {
            Ok(Node::Group(Group {
                file: self.clone(),
                addr,
                name: name.to_string(),
            }))
        } else if oh.find(crate::object::LAYOUT).is_some() {
            Ok(Node::Dataset(Dataset::open(self, addr, name)?))
        } else if oh.find(crate::object::DATATYPE).is_some() {
            Err(self.not_found(format!("{name} (a committed datatype)")))
        } else {
            // A group whose header has no link storage yet (created empty by a new-style writer).
            Ok(Node::Group(Group {
                file: self.clone(),
                addr,
                name: name.to_string(),
            }))
        }
    }
}

fn join(group: &str, name: &str) -> String {
    if group.ends_with('/') {
        format!("{group}{name}")
    } else {
        format!("{group}/{name}")
    }
}
