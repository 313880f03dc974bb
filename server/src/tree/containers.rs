//! Choosing containers and TTL nodes to remove.
//!
//! The leader periodically asks [`DataTree::containers_to_delete`] for candidates and
//! submits a `DeleteContainer` for each; prep re-validates each one against the tree
//! plus in-flight changes, since a child may have been created meanwhile. The rules
//! are ZooKeeper's `ContainerManager.getCandidates`: a container with no children
//! whose cversion is above 0 (it has had a child, so a freshly created container is
//! not removed before it is used); a TTL node with no children not modified for more
//! than its TTL (`now - mtime > ttl`).

use super::{DataTree, EphemeralKind};

impl DataTree {
    /// Paths of empty used containers and expired childless TTL nodes, sorted.
    pub fn containers_to_delete(&self, now_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for &id in &self.containers {
            let n = self.arena.get(id);
            if n.num_children() == 0 && n.cversion > 0 {
                out.push(self.arena.path_of(id));
            }
        }
        for &id in &self.ttls {
            let n = self.arena.get(id);
            if n.num_children() == 0 && ttl_expired(n.kind(), n.mtime, now_ms) {
                out.push(self.arena.path_of(id));
            }
        }
        out.sort_unstable();
        out
    }
}

/// Whether a node of this kind, last modified at `mtime`, has outlived its TTL at `now_ms`.
pub fn ttl_expired(kind: EphemeralKind, mtime: i64, now_ms: i64) -> bool {
    match kind {
        EphemeralKind::Ttl(ttl) => ttl != 0 && now_ms.saturating_sub(mtime) > ttl,
        _ => false,
    }
}
