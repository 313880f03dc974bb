//! Watches that miss nothing: the recent-change history and the watches opened
//! from a zxid.
//!
//! Every member records, as it applies committed txns, one [`Change`] per watch
//! trigger (the node's path, the event, the txn's zxid, the node's Stat and data
//! right after the txn). The last `watch_history` changes are kept in memory; the
//! history *covers* every zxid above `covered_from` (the zxid of the newest change
//! evicted, or the tree's zxid when the history started or a snapshot was
//! installed).
//!
//! `AddWatchFrom(path, from_zxid)` is served under the tree's read lock, which
//! excludes applying: the member replays the covered changes after `from_zxid`
//! that match the watch, queues them on the connection, and registers the watch,
//! all before any later txn is applied, so the client sees every matching change
//! after `from_zxid` exactly once, in zxid order (changes of one txn in trigger
//! order), with nothing lost between the replay and the live events. Because apply
//! is deterministic, every member records the same changes in the same order, so a
//! client resuming on another member gets the same sequence.
//!
//! Matching is a persistent watch's: a plain watch sees every event on its path;
//! a recursive one every event on the path and below it except NodeChildrenChanged.
//! Live matching scans the registered watches per change (fine for the tens to
//! thousands of such watches a member serves; an index by path would be next).

use std::collections::VecDeque;

use bytes::Bytes;
use zabkeeper_proto::EventType;

use crate::core::ConnId;
use crate::tree::Stat;

/// One node change, as recorded when its txn was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub zxid: i64,
    pub path: String,
    pub event: EventType,
    /// The node's Stat after the change; None when it was deleted.
    pub stat: Option<Stat>,
    /// The node's data after the change (None when deleted).
    pub data: Option<Bytes>,
}

/// The recent changes, oldest first.
#[derive(Debug)]
pub struct History {
    cap: usize,
    changes: VecDeque<Change>,
    covered_from: i64,
}

impl History {
    pub fn new(cap: usize, start_zxid: i64) -> History {
        History {
            cap,
            changes: VecDeque::new(),
            covered_from: start_zxid,
        }
    }

    pub fn push(&mut self, change: Change) {
        if self.cap == 0 {
            self.covered_from = change.zxid;
            return;
        }
        self.changes.push_back(change);
        while self.changes.len() > self.cap {
            if let Some(old) = self.changes.pop_front() {
                self.covered_from = old.zxid;
            }
        }
    }

    /// Forgets everything: the tree was replaced by one at `zxid`.
    pub fn reset(&mut self, zxid: i64) {
        self.changes.clear();
        self.covered_from = zxid;
    }

    /// Every change after `from_zxid`, or None if the history does not reach back.
    pub fn since(&self, from_zxid: i64) -> Option<impl Iterator<Item = &Change>> {
        if from_zxid < self.covered_from {
            return None;
        }
        Some(self.changes.iter().filter(move |c| c.zxid > from_zxid))
    }

    pub fn covered_from(&self) -> i64 {
        self.covered_from
    }
}

/// A watch opened from a zxid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZxidWatch {
    pub conn: ConnId,
    pub id: u64,
    pub path: String,
    pub recursive: bool,
    pub with_data: bool,
}

impl ZxidWatch {
    pub fn matches(&self, change: &Change) -> bool {
        if change.path == self.path {
            return !(self.recursive && change.event == EventType::NodeChildrenChanged);
        }
        self.recursive
            && change.event != EventType::NodeChildrenChanged
            && is_under(&change.path, &self.path)
    }
}

fn is_under(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path != "/";
    }
    path.len() > ancestor.len()
        && path.starts_with(ancestor)
        && path.as_bytes()[ancestor.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(zxid: i64, path: &str, event: EventType) -> Change {
        Change {
            zxid,
            path: path.into(),
            event,
            stat: None,
            data: None,
        }
    }

    #[test]
    fn history_covers_what_it_kept() {
        let mut h = History::new(3, 10);
        assert_eq!(h.since(9).map(|i| i.count()), None);
        assert_eq!(h.since(10).map(|i| i.count()), Some(0));
        for z in 11..=14 {
            h.push(change(z, "/a", EventType::NodeDataChanged));
        }
        // 11 was evicted: changes after 11 are all here, after 10 they are not.
        assert_eq!(h.covered_from(), 11);
        assert!(h.since(10).is_none());
        let z: Vec<i64> = h.since(11).unwrap().map(|c| c.zxid).collect();
        assert_eq!(z, vec![12, 13, 14]);
        assert_eq!(h.since(13).unwrap().count(), 1);
        h.reset(20);
        assert!(h.since(14).is_none());
        assert_eq!(h.since(20).unwrap().count(), 0);
    }

    #[test]
    fn matching_is_a_persistent_watch_s() {
        let w = |path: &str, recursive| ZxidWatch {
            conn: 1,
            id: 1,
            path: path.into(),
            recursive,
            with_data: false,
        };
        let c = |p: &str, e| change(1, p, e);
        use EventType::*;
        assert!(w("/a", false).matches(&c("/a", NodeChildrenChanged)));
        assert!(!w("/a", false).matches(&c("/a/b", NodeCreated)));
        assert!(w("/a", true).matches(&c("/a/b/c", NodeCreated)));
        assert!(!w("/a", true).matches(&c("/a/b", NodeChildrenChanged)));
        assert!(!w("/a", true).matches(&c("/ab", NodeCreated)));
        assert!(w("/", true).matches(&c("/x", NodeDataChanged)));
    }
}
