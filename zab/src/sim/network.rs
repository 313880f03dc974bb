//! The simulated network.
//!
//! Peer links model TCP connections: FIFO per direction while the link is
//! up; a link can break (a crash, a partition, a random reset), which drops
//! everything in flight on it and, after a short delay, tells both ends
//! (`Zab::peer_disconnected`). Messages sent on a broken link are lost until
//! both ends have been told, so a conversation never resumes after a gap.
//! Reordering therefore happens only across links or across a break.
//!
//! Election notifications travel separately (ZooKeeper uses its own
//! connections for them) and are dropped, duplicated and reordered at random:
//! FLE must tolerate that.

use std::collections::BTreeMap;

use crate::ServerId;

#[derive(Default, Clone, Debug)]
pub(crate) struct Link {
    /// Bumped on every break; deliveries of an older generation are dropped.
    pub(crate) generation: u64,
    /// Ends not yet told about the last break.
    pub(crate) unnotified: u8,
    /// Delivery time of the last message per direction (low id -> high id,
    /// high -> low), to keep FIFO.
    pub(crate) last_delivery: [u64; 2],
}

#[derive(Default)]
pub(crate) struct Network {
    links: BTreeMap<(ServerId, ServerId), Link>,
    /// Partition groups: servers with different labels cannot talk.
    pub(crate) group: BTreeMap<ServerId, u8>,
}

fn key(a: ServerId, b: ServerId) -> (ServerId, ServerId) {
    (a.min(b), a.max(b))
}

impl Network {
    pub(crate) fn link(&mut self, a: ServerId, b: ServerId) -> &mut Link {
        self.links.entry(key(a, b)).or_default()
    }

    pub(crate) fn partitioned(&self, a: ServerId, b: ServerId) -> bool {
        self.group.get(&a).copied().unwrap_or(0) != self.group.get(&b).copied().unwrap_or(0)
    }

    /// Whether a peer message from `a` to `b` can be sent now; if so, its
    /// link generation and FIFO delivery time (at least `earliest`).
    pub(crate) fn reserve(
        &mut self,
        a: ServerId,
        b: ServerId,
        earliest: u64,
    ) -> Option<(u64, u64)> {
        if self.partitioned(a, b) {
            return None;
        }
        let dir = usize::from(a > b);
        let l = self.link(a, b);
        if l.unnotified > 0 {
            return None;
        }
        let at = earliest.max(l.last_delivery[dir]);
        l.last_delivery[dir] = at;
        Some((l.generation, at))
    }

    /// Breaks the link; returns false if it was already broken and not yet
    /// reported to both ends.
    pub(crate) fn break_link(&mut self, a: ServerId, b: ServerId) -> bool {
        let l = self.link(a, b);
        if l.unnotified > 0 {
            return false;
        }
        l.generation += 1;
        l.unnotified = 2;
        true
    }

    pub(crate) fn notified(&mut self, a: ServerId, b: ServerId) {
        let l = self.link(a, b);
        l.unnotified = l.unnotified.saturating_sub(1);
    }

    pub(crate) fn generation(&mut self, a: ServerId, b: ServerId) -> u64 {
        self.link(a, b).generation
    }
}
