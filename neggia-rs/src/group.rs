//! What an object header holds besides data: its links (when it is a group) and attributes.
//! Both come in three storages, old symbol tables, compact messages and dense fractal heaps.

use std::collections::HashSet;

use crate::btree;
use crate::datatype::{Dataspace, Datatype};
use crate::error::Result;
use crate::heap::{self, FractalHeap};
use crate::object::{self, ObjectHeader};
use crate::raw::{Raw, UNDEF};
use crate::value::{self, Value};

/// Where a link points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// An object header in the same file.
    Hard(u64),
    /// A path in the same file.
    Soft(String),
    /// An object in another file: (file name as stored, object path).
    External { file: String, path: String },
}

/// Does this object header describe a group?
pub(crate) fn is_group(oh: &ObjectHeader<'_>) -> bool {
    oh.find(object::SYMBOL_TABLE).is_some()
        || oh.find(object::LINK_INFO).is_some()
        || oh.find(object::LINK).is_some()
}

/// All links of a group, as (name, target), sorted by name.
pub(crate) fn links(raw: &Raw, oh: &ObjectHeader<'_>) -> Result<Vec<(String, Link)>> {
    let mut out = Vec::new();
    if let Some(m) = oh.find(object::SYMBOL_TABLE) {
        let mut c = raw.over(m.body, "symbol table message");
        let tree = c.addr()?;
        let heap_addr = c.addr()?;
        let names = heap::local_heap(raw, heap_addr)?;
        let key_len = raw.sl as usize;
        // Why: the B-tree walk visits each node once, but its leaves could still name one
        // symbol node thousands of times, each listing all of its entries again.
        let mut seen = HashSet::new();
        btree::walk_v1(raw, tree, 0, key_len, &mut |_, snod| {
            if !seen.insert(snod) {
                return Err(
                    raw.corrupt(format_args!("symbol table node {snod:#x} is listed twice"))
                );
            }
            symbol_node(raw, snod, names, &mut out)
        })?;
    }
    for m in oh.all(object::LINK) {
        out.push(link_message(raw, m.body)?);
    }
    if let Some(m) = oh.find(object::LINK_INFO) {
        let mut c = raw.over(m.body, "link info message");
        c.skip(1)?;
        let flags = c.u8()?;
        if flags & 1 != 0 {
            c.skip(8)?; // maximum creation index
        }
        let heap_addr = c.addr()?;
        let names = c.addr()?;
        if heap_addr != UNDEF && names != UNDEF {
            let heap = FractalHeap::read(raw, heap_addr)?;
            btree::walk_v2(raw, names, &mut |rec| {
                // Link name record: name hash (4), heap ID.
                let obj = heap.object(raw, &rec[4.min(rec.len())..])?;
                out.push(link_message(raw, obj)?);
                Ok(())
            })?;
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn symbol_node(raw: &Raw, addr: u64, names: &[u8], out: &mut Vec<(String, Link)>) -> Result<()> {
    let mut c = raw.at(addr, "symbol table node")?;
    c.signature(b"SNOD")?;
    c.skip(2)?; // version, reserved
    let n = c.u16()?;
    for _ in 0..n {
        let name_off = c.addr()?;
        let header = c.addr()?;
        let cache = c.u32()?;
        c.skip(4)?;
        let scratch = c.bytes(16)?;
        let name = heap::local_name(raw, names, name_off)?;
        let link = if cache == 2 {
            // A soft link: its value is a name in the same local heap.
            let off = u32::from_le_bytes(scratch[..4].try_into().expect("4 bytes")) as u64;
            Link::Soft(heap::local_name(raw, names, off)?)
        } else {
            Link::Hard(header)
        };
        out.push((name, link));
    }
    Ok(())
}

fn link_message(raw: &Raw, body: &[u8]) -> Result<(String, Link)> {
    let mut c = raw.over(body, "link message");
    let version = c.u8()?;
    if version != 1 {
        return Err(c.corrupt(format_args!("link message version {version}")));
    }
    let flags = c.u8()?;
    let ty = if flags & 0x08 != 0 { c.u8()? } else { 0 };
    if flags & 0x04 != 0 {
        c.skip(8)?; // creation order
    }
    if flags & 0x10 != 0 {
        c.skip(1)?; // character set
    }
    let name_len = c.uint(1 << (flags & 3))? as usize;
    let name = String::from_utf8_lossy(c.bytes(name_len)?).into_owned();
    let link = match ty {
        0 => Link::Hard(c.addr()?),
        1 => {
            let n = c.u16()? as usize;
            Link::Soft(String::from_utf8_lossy(c.bytes(n)?).into_owned())
        }
        64 => {
            let n = c.u16()? as usize;
            let mut e = raw.over(c.bytes(n)?, "external link");
            e.skip(1)?; // version and flags
            let file = String::from_utf8_lossy(e.cstr()?).into_owned();
            let path = String::from_utf8_lossy(e.cstr()?).into_owned();
            Link::External { file, path }
        }
        t => return Err(c.unsupported(format_args!("user-defined link type {t} ({name})"))),
    };
    Ok((name, link))
}

/// One attribute, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub dtype: Datatype,
    pub value: Value,
}

/// All attributes of an object, sorted by name.
pub(crate) fn attributes(raw: &Raw, oh: &ObjectHeader<'_>) -> Result<Vec<Attribute>> {
    let mut out = Vec::new();
    for m in oh.all(object::ATTRIBUTE) {
        out.push(attribute_message(raw, oh.body_of(raw, m)?)?);
    }
    if let Some(m) = oh.find(object::ATTRIBUTE_INFO) {
        let mut c = raw.over(m.body, "attribute info message");
        c.skip(1)?;
        let flags = c.u8()?;
        if flags & 1 != 0 {
            c.skip(2)?; // maximum creation index
        }
        let heap_addr = c.addr()?;
        let names = c.addr()?;
        if heap_addr != UNDEF && names != UNDEF {
            let heap = FractalHeap::read(raw, heap_addr)?;
            btree::walk_v2(raw, names, &mut |rec| {
                // Attribute name record: heap ID (8), flags (1), creation order (4), hash (4).
                let id = rec
                    .get(..8)
                    .ok_or_else(|| raw.corrupt("short attribute record"))?;
                let flags = rec[8..].first().copied().unwrap_or(0);
                let body = heap.object(raw, id)?;
                let body = if flags & 0x02 != 0 {
                    object::shared_body(raw, body, object::ATTRIBUTE)?
                } else {
                    body
                };
                out.push(attribute_message(raw, body)?);
                Ok(())
            })?;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn attribute_message(raw: &Raw, body: &[u8]) -> Result<Attribute> {
    let mut c = raw.over(body, "attribute message");
    let version = c.u8()?;
    let flags = c.u8()?;
    let name_len = c.u16()? as usize;
    let dt_len = c.u16()? as usize;
    let ds_len = c.u16()? as usize;
    if version == 3 {
        c.skip(1)?; // name character set
    }
    let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
    let name = c.bytes(pad(name_len))?;
    let name = &name[..name_len.min(name.len())];
    let name = String::from_utf8_lossy(name.strip_suffix(&[0]).unwrap_or(name)).into_owned();
    let dt_bytes = c.bytes(pad(dt_len))?;
    let ds_bytes = c.bytes(pad(ds_len))?;
    let dt_bytes = if flags & 0x01 != 0 {
        object::shared_body(raw, dt_bytes, object::DATATYPE)?
    } else {
        dt_bytes
    };
    if flags & 0x02 != 0 {
        return Err(c.unsupported(format_args!("shared dataspace in attribute {name}")));
    }
    let dtype = Datatype::parse(
        &mut raw.over(dt_bytes, "attribute datatype"),
        raw.so as usize,
    )?;
    let space = Dataspace::parse(&mut raw.over(ds_bytes, "attribute dataspace"))?;
    let data = c.rest();
    let value = if space.null {
        // An empty attribute (h5py.Empty): it has a type but no value.
        Value {
            shape: Vec::new(),
            data: crate::value::Values::Unsupported("no value (null dataspace)".into()),
        }
    } else {
        value::decode(raw, &dtype, space.dims.clone(), data)?
    };
    Ok(Attribute { name, dtype, value })
}
