//! Watch bookkeeping for zabkeeper, on both sides of the connection.
//!
//! * [`WatchManager`] is the server's table: which watcher (a connection id) waits on
//!   which path, and who must be told when a committed change is applied. It follows
//!   ZooKeeper 3.8 (`WatchManager.triggerWatch`, `DataTree.addWatch/removeWatch`):
//!   one-shot data and child watches, plus the persistent and persistent-recursive
//!   watches of `addWatch`.
//! * [`ClientWatches`] is the client's registry: which local registrations an incoming
//!   notification resolves (ZooKeeper's `ZKWatchManager.materialize`), and which paths
//!   to re-register with `SetWatches` after a reconnect.
//!
//! Both are plain data structures: no I/O, no clock, no locking. The owner decides the
//! threading (the server keeps the manager next to its tree and triggers watches as it
//! applies each committed txn; the client keeps the registry inside its connection task).
//!
//! The firing rules, shared by both sides:
//!
//! | event                 | one-shot watches on the path     | persistent on path | recursive on path or ancestor |
//! |-----------------------|----------------------------------|--------------------|-------------------------------|
//! | `NodeCreated`         | data (and client-side exist)     | yes                | yes                           |
//! | `NodeDataChanged`     | data (and client-side exist)     | yes                | yes                           |
//! | `NodeDeleted`         | data, child (and exist)          | yes                | yes                           |
//! | `NodeChildrenChanged` | child                            | yes                | never                         |
//!
//! One-shot watches are removed when they fire; persistent ones stay until removed or
//! until their watcher goes away.

mod client;
mod server;

pub use client::{ClientKind, ClientWatches, WatchPaths};
pub use server::{WatchKind, WatchManager};

/// The path itself, then each ancestor up to and including `/`.
pub(crate) fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let cur = next?;
        next = if cur == "/" {
            None
        } else {
            match cur.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&cur[..i]),
                None => None,
            }
        };
        Some(cur)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_walk_to_root() {
        assert_eq!(
            self_and_ancestors("/a/b/c").collect::<Vec<_>>(),
            vec!["/a/b/c", "/a/b", "/a", "/"]
        );
        assert_eq!(
            self_and_ancestors("/a").collect::<Vec<_>>(),
            vec!["/a", "/"]
        );
        assert_eq!(self_and_ancestors("/").collect::<Vec<_>>(), vec!["/"]);
    }
}
