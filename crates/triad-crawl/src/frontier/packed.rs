//! The frontier's compact parts: a host's queue of paths packed in one byte buffer, and the
//! table of pages whose links are queued, each URL kept once and counted.

use std::collections::VecDeque;
use std::sync::Arc;

/// A host's queue of paths: bytes packed in one buffer, a fixed entry each.
#[derive(Debug, Default)]
pub(super) struct PackedQueue {
    bytes: Vec<u8>,
    /// Bytes before this were handed out.
    head: usize,
    pub(super) entries: VecDeque<Entry>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    offset: u32,
    len: u32,
    pub(super) parent: u32,
    pub(super) depth: u16,
}

/// No parent (a start URL).
pub(super) const NO_PARENT: u32 = u32::MAX;

impl PackedQueue {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends a path, unless the buffer cannot address it (then the caller keeps it apart).
    pub(super) fn push(&mut self, path: &str, depth: u16, parent: u32) -> bool {
        if self.head > 0 && self.head >= self.bytes.len() / 2 {
            self.bytes.drain(..self.head);
            let shift = self.head as u32;
            self.entries.iter_mut().for_each(|e| e.offset -= shift);
            self.head = 0;
        }
        let (Ok(offset), Ok(len)) = (u32::try_from(self.bytes.len()), u32::try_from(path.len()))
        else {
            return false;
        };
        if offset.checked_add(len).is_none() {
            return false;
        }
        self.bytes.extend_from_slice(path.as_bytes());
        self.entries.push_back(Entry {
            offset,
            len,
            parent,
            depth,
        });
        true
    }

    pub(super) fn front(&self) -> Option<&str> {
        self.entries.front().map(|e| self.path(e))
    }

    pub(super) fn path(&self, e: &Entry) -> &str {
        let bytes = &self.bytes[e.offset as usize..(e.offset + e.len) as usize];
        std::str::from_utf8(bytes).expect("queued paths are whole strings")
    }

    pub(super) fn pop(&mut self) -> Option<(String, Entry)> {
        let e = self.entries.pop_front()?;
        let path = self.path(&e).to_owned();
        self.head = (e.offset + e.len) as usize;
        if self.entries.is_empty() {
            // Nothing left: give the buffers back.
            *self = PackedQueue::default();
        }
        Some((path, e))
    }
}

/// The pages whose links are queued: each URL once, with how many of its links wait.
#[derive(Debug, Default)]
pub(super) struct Parents {
    slots: Vec<(Option<Arc<str>>, u32)>,
    free: Vec<u32>,
    last: Option<(Arc<str>, u32)>,
}

impl Parents {
    pub(super) fn hold(&mut self, parent: &Arc<str>) -> u32 {
        if let Some((last, id)) = &self.last
            && Arc::ptr_eq(last, parent)
            && self.slots[*id as usize].0.is_some()
        {
            self.slots[*id as usize].1 += 1;
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = (Some(parent.clone()), 1);
                id
            }
            None => {
                self.slots.push((Some(parent.clone()), 1));
                (self.slots.len() - 1) as u32
            }
        };
        self.last = Some((parent.clone(), id));
        id
    }

    pub(super) fn get(&self, id: u32) -> Option<Arc<str>> {
        (id != NO_PARENT)
            .then(|| self.slots[id as usize].0.clone())
            .flatten()
    }

    pub(super) fn release(&mut self, id: u32) {
        if id == NO_PARENT {
            return;
        }
        let slot = &mut self.slots[id as usize];
        slot.1 -= 1;
        if slot.1 == 0 {
            slot.0 = None;
            self.free.push(id);
            if self.last.as_ref().is_some_and(|(_, l)| *l == id) {
                self.last = None;
            }
        }
    }
}
