//! Object headers (versions 1 and 2) and their messages, continuation blocks followed.

use std::collections::HashSet;

use crate::error::Result;
use crate::raw::{Cursor, Raw, UNDEF};

pub(crate) const DATASPACE: u16 = 0x0001;
pub(crate) const LINK_INFO: u16 = 0x0002;
pub(crate) const DATATYPE: u16 = 0x0003;
pub(crate) const FILL_OLD: u16 = 0x0004;
pub(crate) const FILL: u16 = 0x0005;
pub(crate) const LINK: u16 = 0x0006;
pub(crate) const EXTERNAL_FILES: u16 = 0x0007;
pub(crate) const LAYOUT: u16 = 0x0008;
pub(crate) const PIPELINE: u16 = 0x000B;
pub(crate) const ATTRIBUTE: u16 = 0x000C;
pub(crate) const CONTINUATION: u16 = 0x0010;
pub(crate) const SYMBOL_TABLE: u16 = 0x0011;
pub(crate) const ATTRIBUTE_INFO: u16 = 0x0015;

/// Message flag: the body is a reference to a message stored elsewhere.
const SHARED: u8 = 0x02;

/// Continuation blocks one header may chain; a loop in them is corruption.
const MAX_CONTINUATIONS: usize = 4096;

/// The continuation blocks of one header read so far.
#[derive(Default)]
struct Continuations {
    seen: HashSet<u64>,
    bytes: u64,
}

impl Continuations {
    /// Why: a continuation back to a block already read is a loop, and blocks that add up to
    /// more than the file overlap. Without this a loop was followed 4096 times, re-reading (and
    /// collecting the messages of) the same blocks each time.
    fn check(&mut self, raw: &Raw, at: u64, len: u64) -> Result<()> {
        if self.seen.len() >= MAX_CONTINUATIONS {
            return Err(raw.corrupt("object header has too many continuation blocks"));
        }
        if !self.seen.insert(at) {
            return Err(raw.corrupt(format_args!(
                "object header continuation block {at:#x} is reached twice (a loop)"
            )));
        }
        self.bytes = self.bytes.saturating_add(len);
        if self.bytes > raw.data().len() as u64 {
            return Err(raw.corrupt(format_args!(
                "object header continuation blocks add up to {} bytes, more than the file",
                self.bytes
            )));
        }
        Ok(())
    }
}

/// One header message: its type and body, borrowed from the file.
#[derive(Clone, Copy)]
pub(crate) struct Message<'a> {
    pub(crate) kind: u16,
    pub(crate) flags: u8,
    pub(crate) body: &'a [u8],
}

/// The messages of one object, in header order.
pub(crate) struct ObjectHeader<'a> {
    pub(crate) messages: Vec<Message<'a>>,
}

impl<'a> ObjectHeader<'a> {
    pub(crate) fn read(raw: &'a Raw, addr: u64) -> Result<ObjectHeader<'a>> {
        let mut messages = Vec::new();
        let mut c = raw.at(addr, "object header")?;
        let first = c.clone().bytes(4)?;
        let mut pending: Vec<(u64, u64)> = Vec::new();
        let v2 = first == b"OHDR";
        if v2 {
            c.skip(4)?;
            let version = c.u8()?;
            if version != 2 {
                return Err(c.corrupt(format_args!("OHDR version {version}")));
            }
            let flags = c.u8()?;
            if flags & 0x20 != 0 {
                c.skip(16)?; // access, modification, change and birth times
            }
            if flags & 0x10 != 0 {
                c.skip(4)?; // attribute storage phase change values
            }
            let size = c.uint(1 << (flags & 3))? as usize;
            let block = c.bytes(size)?;
            read_v2_messages(raw, block, flags & 0x04 != 0, &mut messages, &mut pending)?;
            let mut next = 0;
            let mut walked = Continuations::default();
            while let Some(&(at, len)) = pending.get(next) {
                next += 1;
                walked.check(raw, at, len)?;
                let mut k = raw.at(at, "object header continuation")?;
                let block = k.bytes(len as usize)?;
                let mut k = raw.over(block, "object header continuation");
                k.signature(b"OCHK")?;
                let body = k.bytes(block.len().saturating_sub(8))?;
                read_v2_messages(raw, body, flags & 0x04 != 0, &mut messages, &mut pending)?;
            }
        } else {
            let version = c.u8()?;
            if version != 1 {
                return Err(c.corrupt(format_args!("object header version {version}")));
            }
            c.skip(1)?;
            c.skip(2)?; // message count (the blocks' sizes bound the walk)
            c.skip(4)?; // reference count
            let size = c.u32()? as usize;
            c.skip(4)?; // alignment to 8 bytes
            let block = c.bytes(size)?;
            read_v1_messages(raw, block, &mut messages, &mut pending)?;
            let mut next = 0;
            let mut walked = Continuations::default();
            while let Some(&(at, len)) = pending.get(next) {
                next += 1;
                walked.check(raw, at, len)?;
                let block = raw.slice(at, len, "object header continuation")?;
                read_v1_messages(raw, block, &mut messages, &mut pending)?;
            }
        }
        Ok(ObjectHeader { messages })
    }

    pub(crate) fn find(&self, kind: u16) -> Option<&Message<'a>> {
        self.messages.iter().find(|m| m.kind == kind)
    }

    pub(crate) fn all(&self, kind: u16) -> impl Iterator<Item = &Message<'a>> {
        self.messages.iter().filter(move |m| m.kind == kind)
    }

    /// A message's body, following a shared-message reference to a committed object.
    pub(crate) fn body_of(&self, raw: &'a Raw, m: &Message<'a>) -> Result<&'a [u8]> {
        if m.flags & SHARED == 0 {
            Ok(m.body)
        } else {
            shared_body(raw, m.body, m.kind)
        }
    }
}

/// The body of the message of type `kind` that a shared-message reference points to (a committed
/// datatype, say). References into the shared-message heap are not supported.
pub(crate) fn shared_body<'a>(raw: &'a Raw, reference: &'a [u8], kind: u16) -> Result<&'a [u8]> {
    let mut c = raw.over(reference, "shared message");
    let version = c.u8()?;
    let ty = c.u8()?;
    let addr = match (version, ty) {
        (1, _) => {
            c.skip(6)?;
            c.addr()?
        }
        (2, _) | (3, 2) => c.addr()?,
        _ => {
            return Err(c.unsupported(format_args!(
                "shared message version {version} type {ty} (shared object header message table)"
            )))
        }
    };
    let target = ObjectHeader::read(raw, addr)?;
    match target.find(kind) {
        Some(t) if t.flags & SHARED == 0 => Ok(t.body),
        _ => Err(raw.corrupt(format_args!(
            "shared message {kind:#x} at {addr:#x} not found"
        ))),
    }
}

fn read_v1_messages<'a>(
    raw: &'a Raw,
    block: &'a [u8],
    out: &mut Vec<Message<'a>>,
    pending: &mut Vec<(u64, u64)>,
) -> Result<()> {
    let mut c = raw.over(block, "object header");
    while c.remaining() >= 8 {
        let kind = c.u16()?;
        let size = c.u16()? as usize;
        let flags = c.u8()?;
        c.skip(3)?;
        let body = c.bytes(size)?;
        push(raw, kind, flags, body, out, pending)?;
    }
    Ok(())
}

fn read_v2_messages<'a>(
    raw: &'a Raw,
    block: &'a [u8],
    creation_order: bool,
    out: &mut Vec<Message<'a>>,
    pending: &mut Vec<(u64, u64)>,
) -> Result<()> {
    let header = if creation_order { 6 } else { 4 };
    let mut c: Cursor<'a> = raw.over(block, "object header");
    while c.remaining() >= header {
        let kind = c.u8()? as u16;
        let size = c.u16()? as usize;
        let flags = c.u8()?;
        if creation_order {
            c.skip(2)?;
        }
        let body = c.bytes(size)?;
        push(raw, kind, flags, body, out, pending)?;
    }
    Ok(())
}

fn push<'a>(
    raw: &'a Raw,
    kind: u16,
    flags: u8,
    body: &'a [u8],
    out: &mut Vec<Message<'a>>,
    pending: &mut Vec<(u64, u64)>,
) -> Result<()> {
    match kind {
        0 => {}
        CONTINUATION => {
            let mut c = raw.over(body, "continuation message");
            let at = c.addr()?;
            let len = c.length()?;
            if at != UNDEF {
                pending.push((at, len));
            }
        }
        _ => out.push(Message { kind, flags, body }),
    }
    Ok(())
}
