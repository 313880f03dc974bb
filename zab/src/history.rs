//! The in-memory view of a server's history: the transactions after `base`.
//!
//! `base` is the zxid of the last transaction *not* kept in memory: the
//! snapshot a restarted server started from, or the last committed txn
//! trimmed out of the DIFF window. Everything after `base` is kept: all
//! uncommitted transactions and up to `diff_window` committed ones.
//!
//! `epoch_ends` records, for every epoch present in the history (the base
//! included), the last zxid of that epoch. A follower sends it to the leader
//! in ACKEPOCH so that the leader can find the longest common prefix of the
//! two histories (see `Zab::sync_point` in `leader.rs`). That works because a
//! zxid names a whole history prefix: the transactions of epoch `e` are
//! created by the single leader of `e`, appended after that leader's initial
//! history, so two servers holding the same zxid hold the same prefix up to
//! it.

use std::collections::{BTreeMap, VecDeque};

use crate::{Txn, Zxid};

#[derive(Clone, Debug)]
pub(crate) struct History {
    base: Zxid,
    txns: VecDeque<Txn>,
    epoch_ends: BTreeMap<u32, Zxid>,
    /// Everything up to here is durable (reported by the runtime).
    durable: Zxid,
}

impl History {
    /// A history restored from disk: all of `log` is durable.
    pub(crate) fn new(base: Zxid, log: Vec<Txn>) -> History {
        let mut h = History {
            base,
            txns: VecDeque::new(),
            epoch_ends: BTreeMap::from([(base.epoch(), base)]),
            durable: base,
        };
        for t in log {
            if t.zxid > h.last() {
                h.append(t);
            }
        }
        h.durable = h.last();
        h
    }

    pub(crate) fn base(&self) -> Zxid {
        self.base
    }

    pub(crate) fn last(&self) -> Zxid {
        self.txns.back().map_or(self.base, |t| t.zxid)
    }

    pub(crate) fn durable(&self) -> Zxid {
        self.durable
    }

    pub(crate) fn append(&mut self, txn: Txn) {
        debug_assert!(txn.zxid > self.last());
        self.epoch_ends.insert(txn.zxid.epoch(), txn.zxid);
        self.txns.push_back(txn);
    }

    /// Records durability reported by the runtime (never beyond `last`).
    pub(crate) fn mark_durable(&mut self, up_to: Zxid) {
        let up_to = up_to.min(self.last());
        if up_to > self.durable {
            self.durable = up_to;
        }
    }

    /// Drops everything after `after` (which must be `>= base`).
    pub(crate) fn truncate(&mut self, after: Zxid) {
        debug_assert!(after >= self.base);
        while self.txns.back().is_some_and(|t| t.zxid > after) {
            self.txns.pop_back();
        }
        self.epoch_ends.retain(|_, z| *z <= after);
        self.epoch_ends.insert(after.epoch(), after);
        self.durable = self.durable.min(after);
    }

    /// Replaces the whole history with a snapshot at `zxid`.
    pub(crate) fn reset(&mut self, zxid: Zxid) {
        *self = History::new(zxid, Vec::new());
    }

    /// Forgets committed transactions beyond the `keep` most recent ones.
    pub(crate) fn trim(&mut self, committed: Zxid, keep: usize) {
        let n_committed = self.txns.partition_point(|t| t.zxid <= committed);
        let drop = n_committed.saturating_sub(keep);
        for _ in 0..drop {
            if let Some(t) = self.txns.pop_front() {
                self.base = t.zxid;
            }
        }
    }

    /// The transactions in `(after, up_to]`; `after` must be `>= base`.
    pub(crate) fn range(&self, after: Zxid, up_to: Zxid) -> Vec<Txn> {
        let start = self.txns.partition_point(|t| t.zxid <= after);
        let end = self.txns.partition_point(|t| t.zxid <= up_to);
        self.txns.range(start..end.max(start)).cloned().collect()
    }

    /// The last zxid of every epoch in the history, ascending.
    pub(crate) fn epoch_ends(&self) -> Vec<Zxid> {
        self.epoch_ends.values().copied().collect()
    }

    /// Whether `base` or a kept transaction belongs to `epoch`.
    pub(crate) fn knows_epoch(&self, epoch: u32) -> bool {
        self.base.epoch() == epoch || self.epoch_ends.get(&epoch).is_some_and(|z| *z > self.base)
    }

    /// The largest zxid among `base` and the kept transactions that is
    /// `<= z`, or `None` when `z < base` (it is no longer in memory).
    pub(crate) fn largest_at_most(&self, z: Zxid) -> Option<Zxid> {
        if z < self.base {
            return None;
        }
        let n = self.txns.partition_point(|t| t.zxid <= z);
        Some(if n == 0 {
            self.base
        } else {
            self.txns[n - 1].zxid
        })
    }

    #[cfg(test)]
    pub(crate) fn zxids(&self) -> Vec<Zxid> {
        self.txns.iter().map(|t| t.zxid).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn t(e: u32, c: u32) -> Txn {
        Txn {
            zxid: Zxid::new(e, c),
            data: Bytes::new(),
        }
    }

    #[test]
    fn append_truncate_trim() {
        let mut h = History::new(Zxid::ZERO, vec![t(1, 1), t(1, 2), t(2, 1)]);
        assert_eq!(h.last(), Zxid::new(2, 1));
        assert_eq!(h.durable(), Zxid::new(2, 1));
        assert_eq!(
            h.epoch_ends(),
            vec![Zxid::ZERO, Zxid::new(1, 2), Zxid::new(2, 1)]
        );
        h.truncate(Zxid::new(1, 1));
        assert_eq!(h.zxids(), vec![Zxid::new(1, 1)]);
        assert_eq!(h.epoch_ends(), vec![Zxid::ZERO, Zxid::new(1, 1)]);
        assert_eq!(h.durable(), Zxid::new(1, 1));
        h.append(t(1, 2));
        h.append(t(3, 1));
        assert_eq!(h.durable(), Zxid::new(1, 1));
        h.mark_durable(Zxid::new(9, 9));
        assert_eq!(h.durable(), Zxid::new(3, 1));
        h.trim(Zxid::new(1, 2), 1);
        assert_eq!(h.base(), Zxid::new(1, 1));
        assert_eq!(h.zxids(), vec![Zxid::new(1, 2), Zxid::new(3, 1)]);
        assert!(h.knows_epoch(1) && h.knows_epoch(3) && !h.knows_epoch(2) && !h.knows_epoch(0));
        assert_eq!(h.largest_at_most(Zxid::new(2, 7)), Some(Zxid::new(1, 2)));
        assert_eq!(h.largest_at_most(Zxid::new(1, 1)), Some(Zxid::new(1, 1)));
        assert_eq!(h.largest_at_most(Zxid::new(0, 5)), None);
        assert_eq!(h.range(Zxid::new(1, 1), Zxid::new(3, 1)).len(), 2);
        assert_eq!(h.range(Zxid::new(1, 2), Zxid::new(1, 2)).len(), 0);
    }
}
