//! Interned ACL lists.
//!
//! Almost every znode of a deployment carries one of a handful of ACL lists, so
//! nodes hold a `u32` index into this table instead of their own list (ZooKeeper's
//! `ReferenceCountedACLCache` does the same with a `long`). Entries are
//! reference-counted; an entry whose count drops to zero is freed and its slot
//! reused.

use std::collections::HashMap;
use std::sync::Arc;

use crate::request::Acl;

#[derive(Debug, Clone, Default)]
pub(crate) struct AclTable {
    /// Slot -> (list, reference count). A free slot has count 0 and an empty list.
    /// Lists are shared so a watch trigger can carry its node's list cheaply.
    entries: Vec<(Arc<[Acl]>, u64)>,
    by_value: HashMap<Vec<Acl>, u32>,
    free: Vec<u32>,
}

impl AclTable {
    /// Takes a reference on `acl`, adding it to the table if new.
    pub(crate) fn intern(&mut self, acl: &[Acl]) -> u32 {
        if let Some(&i) = self.by_value.get(acl) {
            self.entries[i as usize].1 += 1;
            return i;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = (Arc::from(acl), 1);
                i
            }
            None => {
                self.entries.push((Arc::from(acl), 1));
                (self.entries.len() - 1) as u32
            }
        };
        self.by_value.insert(acl.to_vec(), i);
        i
    }

    /// Drops a reference taken by `intern`.
    pub(crate) fn release(&mut self, i: u32) {
        let e = &mut self.entries[i as usize];
        debug_assert!(e.1 > 0, "ACL slot {i} released more often than interned");
        e.1 = e.1.saturating_sub(1);
        if e.1 == 0 {
            let list = std::mem::replace(&mut e.0, Arc::from(Vec::new()));
            self.by_value.remove(&list[..]);
            self.free.push(i);
        }
    }

    pub(crate) fn get(&self, i: u32) -> &[Acl] {
        &self.entries[i as usize].0
    }

    /// The list of a slot in use, shared.
    pub(crate) fn shared(&self, i: u32) -> Arc<[Acl]> {
        self.entries[i as usize].0.clone()
    }

    /// Takes one more reference on a slot already in use.
    pub(crate) fn add_ref(&mut self, i: u32) {
        debug_assert!(self.entries[i as usize].1 > 0);
        self.entries[i as usize].1 += 1;
    }

    /// Slots in use and their lists, in slot order.
    pub(crate) fn live(&self) -> impl Iterator<Item = (u32, &[Acl])> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.1 > 0)
            .map(|(i, e)| (i as u32, &e.0[..]))
    }

    /// Number of distinct lists in use.
    pub(crate) fn len(&self) -> usize {
        self.by_value.len()
    }

    /// Reference count of a slot (for invariant checks).
    #[cfg(test)]
    pub(crate) fn refs(&self, i: u32) -> u64 {
        self.entries[i as usize].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_shares_and_frees_slots() {
        let mut t = AclTable::default();
        let open = Acl::open();
        let read = vec![Acl {
            perms: 1,
            scheme: "world".into(),
            id: "anyone".into(),
        }];
        let a = t.intern(&open);
        let b = t.intern(&open);
        let c = t.intern(&read);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(t.refs(a), 2);
        assert_eq!(t.get(c), &read[..]);
        t.release(c);
        assert_eq!(t.len(), 1);
        // The freed slot is reused for the next new list.
        let d = t.intern(&[]);
        assert_eq!(d, c);
        t.release(a);
        assert_eq!(t.get(a), &open[..]);
    }
}
