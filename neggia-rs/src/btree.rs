//! B-trees: version 1 (old-style groups and chunk indices) and version 2 (dense links and
//! attributes, chunk indices of datasets with several unlimited dimensions). Both are walked in
//! full. Every level must be strictly lower than its parent's and no node may be visited twice,
//! so neither a cycle nor a node shared by many parents can make a walk run away.

use std::collections::HashSet;

use crate::error::Result;
use crate::raw::{bytes_for, Raw, UNDEF};

const MAX_DEPTH: u32 = 64;

/// Visits every (key, child) pair of the leaves of a version-1 B-tree of `node_type` (0 groups,
/// 1 chunks). `key_len` is the size of one key. The callback gets the key before the child.
pub(crate) fn walk_v1(
    raw: &Raw,
    addr: u64,
    node_type: u8,
    key_len: usize,
    visit: &mut dyn FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    walk_v1_node(
        raw,
        addr,
        node_type,
        key_len,
        None,
        &mut HashSet::new(),
        visit,
    )
}

fn walk_v1_node(
    raw: &Raw,
    addr: u64,
    node_type: u8,
    key_len: usize,
    expect_level: Option<u32>,
    seen: &mut HashSet<u64>,
    visit: &mut dyn FnMut(&[u8], u64) -> Result<()>,
) -> Result<()> {
    if !seen.insert(addr) {
        return Err(raw.corrupt(format_args!("v1 B-tree node {addr:#x} is reached twice")));
    }
    let mut c = raw.at(addr, "v1 B-tree node")?;
    c.signature(b"TREE")?;
    let ty = c.u8()?;
    if ty != node_type {
        return Err(c.corrupt(format_args!("node type {ty}, expected {node_type}")));
    }
    let level = c.u8()? as u32;
    if expect_level.is_some_and(|e| e != level) || level > MAX_DEPTH {
        return Err(c.corrupt(format_args!("node at {addr:#x} has level {level}")));
    }
    let entries = c.u16()? as usize;
    c.addr()?; // left sibling
    c.addr()?; // right sibling
    for _ in 0..entries {
        let key = c.bytes(key_len)?;
        let child = c.addr()?;
        if level == 0 {
            visit(key, child)?;
        } else {
            walk_v1_node(raw, child, node_type, key_len, Some(level - 1), seen, visit)?;
        }
    }
    Ok(())
}

/// Visits every record of a version-2 B-tree, in key order; returns the tree's record type.
pub(crate) fn walk_v2(
    raw: &Raw,
    addr: u64,
    visit: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u8> {
    let mut c = raw.at(addr, "v2 B-tree header")?;
    c.signature(b"BTHD")?;
    c.skip(1)?; // version
    let ty = c.u8()?;
    let node_size = c.u32()? as u64;
    let rec = c.u16()? as u64;
    let depth = c.u16()? as u32;
    c.skip(2)?; // split, merge percentages
    let root = c.addr()?;
    let root_n = c.u16()? as u64;
    if root == UNDEF || root_n == 0 {
        return Ok(ty);
    }
    if rec == 0 || node_size <= 10 || depth > MAX_DEPTH {
        return Err(c.corrupt("v2 B-tree parameters are inconsistent"));
    }
    let tree = V2 {
        raw,
        seen: std::cell::RefCell::new(HashSet::new()),
        ty,
        rec: rec as usize,
        info: node_info(raw.so as u64, node_size, rec, depth),
    };
    tree.node(root, depth, root_n, visit)?;
    Ok(ty)
}

struct V2<'a> {
    raw: &'a Raw,
    seen: std::cell::RefCell<HashSet<u64>>,
    ty: u8,
    rec: usize,
    /// Per depth: (bytes of a child's record count, bytes of a child's total record count).
    info: Vec<(usize, usize)>,
}

/// The widths of the child-pointer fields of internal nodes, derived from the node size the way
/// the HDF5 library derives them.
fn node_info(so: u64, node_size: u64, rec: u64, depth: u32) -> Vec<(usize, usize)> {
    const PREFIX: u64 = 10; // signature, version, type, checksum
    let leaf_max = (node_size - PREFIX) / rec;
    let nrec_size = bytes_for(leaf_max) as u64;
    let mut cum_max = vec![leaf_max];
    let mut cum_size = vec![0u64];
    let mut info = vec![(0usize, 0usize)];
    for d in 1..=depth as usize {
        let ptr = so + nrec_size + if d > 1 { cum_size[d - 1] } else { 0 };
        let max = node_size.saturating_sub(PREFIX + ptr) / (rec + ptr);
        let cum = (max + 1).saturating_mul(cum_max[d - 1]).saturating_add(max);
        cum_max.push(cum);
        cum_size.push(bytes_for(cum) as u64);
        info.push((nrec_size as usize, cum_size[d - 1] as usize));
    }
    info
}

impl V2<'_> {
    fn node(
        &self,
        addr: u64,
        depth: u32,
        n: u64,
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let raw = self.raw;
        if !self.seen.borrow_mut().insert(addr) {
            return Err(raw.corrupt(format_args!("v2 B-tree node {addr:#x} is reached twice")));
        }
        let sig: &[u8; 4] = if depth == 0 { b"BTLF" } else { b"BTIN" };
        let mut c = raw.at(addr, "v2 B-tree node")?;
        c.signature(sig)?;
        c.skip(1)?;
        if c.u8()? != self.ty {
            return Err(c.corrupt("node type differs from its tree's"));
        }
        let records = c.bytes((n as usize).saturating_mul(self.rec))?;
        if depth == 0 {
            for r in records.chunks_exact(self.rec) {
                visit(r)?;
            }
            return Ok(());
        }
        let (nrec_size, total_size) = self.info[depth as usize];
        let mut children = Vec::with_capacity(n as usize + 1);
        for _ in 0..=n {
            let child = c.addr()?;
            let cn = c.uint(nrec_size)?;
            if depth > 1 {
                c.uint(total_size)?;
            }
            children.push((child, cn));
        }
        // In-order: child 0, record 0, child 1, record 1, ..., child n.
        for (i, (child, cn)) in children.into_iter().enumerate() {
            self.node(child, depth - 1, cn, visit)?;
            if let Some(r) = records.chunks_exact(self.rec).nth(i) {
                visit(r)?;
            }
        }
        Ok(())
    }
}
