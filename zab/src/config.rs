//! Configuration of one ZAB member.
//!
//! Time inside the core is counted in ticks; the runtime decides how long a
//! tick is (ZooKeeper's `tickTime`). The defaults suit a tick of ~100 ms.

use crate::{ServerId, ZabError};

/// Static configuration of one member of the ensemble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This server's id; must appear in `members`.
    pub id: ServerId,
    /// Every voting member, this server included.
    pub members: Vec<ServerId>,
    /// The leader pings each follower this often.
    pub heartbeat_ticks: u32,
    /// A follower that hears nothing from its leader this long goes LOOKING.
    pub follower_timeout_ticks: u32,
    /// A leader that has not heard from a quorum this long steps down.
    pub leader_timeout_ticks: u32,
    /// A LOOKING server re-sends its vote this often (plus random jitter).
    pub election_resend_ticks: u32,
    /// After a quorum agrees, wait this long for a better vote (skipped when
    /// every member agrees).
    pub finalize_ticks: u32,
    /// Discovery and synchronisation must finish within this many ticks
    /// (ZooKeeper's `initLimit`), else the server goes back to LOOKING.
    pub init_timeout_ticks: u32,
    /// Committed transactions kept in memory so that lagging followers can be
    /// synchronised with DIFF; a follower further behind gets SNAP.
    pub diff_window: usize,
    /// Leader lease for linearizable reads, 0 to turn it off (every read then
    /// takes a heartbeat round). A leader whose heartbeat round sent at tick
    /// `T` was acked by a quorum serves linearizable reads locally until
    /// `T + lease_ticks`; each member that acked promises not to help elect a
    /// new leader for `lease_ticks + 1` of its own ticks (and a restarted
    /// member waits as long before it does). Leases are held only while
    /// linearizable reads are asked for: rounds go out every heartbeat from a
    /// read until `follower_timeout_ticks` after the last one. Must be below
    /// `follower_timeout_ticks`. Assumes members' ticks advance at the same
    /// rate up to a drift the margin absorbs (see `read_index.rs`).
    pub lease_ticks: u32,
}

impl Config {
    /// A config with default timings.
    pub fn new(id: ServerId, members: Vec<ServerId>) -> Config {
        Config {
            id,
            members,
            heartbeat_ticks: 2,
            follower_timeout_ticks: 10,
            leader_timeout_ticks: 10,
            election_resend_ticks: 4,
            finalize_ticks: 2,
            init_timeout_ticks: 30,
            diff_window: 1000,
            lease_ticks: 0,
        }
    }

    /// Checks the config once, at start-up.
    pub fn validate(&self) -> Result<(), ZabError> {
        let bad = |m: &str| Err(ZabError::InvalidConfig(m.to_string()));
        let mut sorted = self.members.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != self.members.len() {
            return bad("duplicate member ids");
        }
        if !self.members.contains(&self.id) {
            return bad("id is not a member");
        }
        if self.heartbeat_ticks == 0 || self.election_resend_ticks == 0 {
            return bad("heartbeat and election resend intervals must be positive");
        }
        if self.follower_timeout_ticks <= self.heartbeat_ticks
            || self.leader_timeout_ticks <= self.heartbeat_ticks
        {
            return bad("timeouts must exceed the heartbeat interval");
        }
        if self.init_timeout_ticks == 0 {
            return bad("init timeout must be positive");
        }
        if self.lease_ticks >= self.follower_timeout_ticks {
            return bad("the read lease must be shorter than the follower timeout");
        }
        if self.lease_ticks > 0
            && self.lease_ticks + self.heartbeat_ticks >= self.init_timeout_ticks
        {
            return bad("the read lease plus a heartbeat must be shorter than the init timeout");
        }
        Ok(())
    }

    /// The size of a majority of the members.
    pub fn quorum(&self) -> usize {
        self.members.len() / 2 + 1
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.members.iter().copied().filter(move |&m| m != self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(Config::new(1, vec![1, 2, 3]).validate().is_ok());
        assert!(Config::new(4, vec![1, 2, 3]).validate().is_err());
        assert!(Config::new(1, vec![1, 1, 3]).validate().is_err());
        let mut c = Config::new(1, vec![1]);
        c.follower_timeout_ticks = 1;
        assert!(c.validate().is_err());
        assert_eq!(Config::new(1, vec![1, 2, 3, 4, 5]).quorum(), 3);
        assert_eq!(Config::new(1, vec![1, 2, 3, 4]).quorum(), 3);
        let mut c = Config::new(1, vec![1, 2, 3]);
        c.lease_ticks = c.follower_timeout_ticks;
        assert!(
            c.validate().is_err(),
            "lease as long as the election timeout"
        );
        c.lease_ticks = c.follower_timeout_ticks - 1;
        assert!(c.validate().is_ok());
    }
}
