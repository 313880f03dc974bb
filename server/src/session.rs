//! Session leases, session ids and passwords.
//!
//! A session is replicated state (its creation and close are txns, see `txn`), but
//! its *lease* is not: only the member that owns the session table (the leader;
//! in standalone mode the server itself) tracks deadlines. Every request and ping
//! on a session pushes its deadline to `now + timeout`; a session whose deadline
//! passes is closed with a `CloseSession` txn, which deletes its ephemerals in the
//! same txn. After a restart (or a leader change) every known session gets a fresh
//! full timeout before anything is expired, so a restart never expires a session
//! whose client is still there.
//!
//! Touching is on the hot path of every request, so a lease is one atomic word in a
//! sharded map: no global lock is taken per request. Expiry is a periodic scan.
//!
//! Passwords are derived from the session id with a keyed hash, as ZooKeeper does,
//! so that every member can check a reconnecting client's password without
//! storing it.

use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Length of a session password in bytes (ZooKeeper's).
pub const PASSWORD_LEN: usize = 16;

/// Derives a session's password. Constant secret, like ZooKeeper's `superSecret`:
/// passwords stop accidental session theft, not a determined attacker (that is what
/// authentication and TLS are for).
pub fn password_for(session_id: i64) -> Vec<u8> {
    const SECRET: u64 = 0xB341_5C00_9E37_79B9;
    let mut x = (session_id as u64) ^ SECRET;
    let mut out = Vec::with_capacity(PASSWORD_LEN);
    for _ in 0..PASSWORD_LEN / 8 {
        x = splitmix64(x);
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hands out session ids: the server id in the top byte, then a millisecond
/// timestamp, then a counter, so ids stay unique across restarts and members.
pub struct SessionIds {
    next: AtomicU64,
}

impl SessionIds {
    pub fn new(server_id: u64, now_unix_ms: u64) -> SessionIds {
        // ZooKeeper's layout: id << 56 | (time << 24 >> 8), which leaves 16 bits of counter.
        let base = (server_id << 56) | ((now_unix_ms << 24) >> 8);
        SessionIds {
            next: AtomicU64::new(base),
        }
    }

    pub fn next(&self) -> i64 {
        self.next.fetch_add(1, Ordering::Relaxed) as i64
    }
}

struct Lease {
    timeout_ms: u64,
    /// Deadline in ms since the tracker's epoch.
    deadline_ms: AtomicU64,
    closing: AtomicBool,
}

/// The lease table of the member that expires sessions.
pub struct SessionTracker {
    epoch: Instant,
    leases: DashMap<i64, Lease>,
}

impl Default for SessionTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionTracker {
    pub fn new() -> SessionTracker {
        SessionTracker {
            epoch: Instant::now(),
            leases: DashMap::new(),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Starts (or restarts) a lease with a full timeout from `now`.
    pub fn add(&self, session_id: i64, timeout_ms: u64, now: Instant) {
        let deadline = self.now_ms(now) + timeout_ms;
        self.leases.insert(
            session_id,
            Lease {
                timeout_ms,
                deadline_ms: AtomicU64::new(deadline),
                closing: AtomicBool::new(false),
            },
        );
    }

    /// Extends a live session's lease. False if the session is unknown or closing.
    pub fn touch(&self, session_id: i64, now: Instant) -> bool {
        match self.leases.get(&session_id) {
            Some(lease) if !lease.closing.load(Ordering::Relaxed) => {
                let deadline = self.now_ms(now) + lease.timeout_ms;
                lease.deadline_ms.fetch_max(deadline, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// True if the session has a lease and is not being closed.
    pub fn is_live(&self, session_id: i64) -> bool {
        self.leases
            .get(&session_id)
            .is_some_and(|l| !l.closing.load(Ordering::Relaxed))
    }

    /// Marks a session as closing: later touches fail. False if it was not live.
    pub fn mark_closing(&self, session_id: i64) -> bool {
        match self.leases.get(&session_id) {
            Some(lease) => !lease.closing.swap(true, Ordering::Relaxed),
            None => false,
        }
    }

    /// Forgets a session (its CloseSession txn was applied).
    pub fn remove(&self, session_id: i64) {
        self.leases.remove(&session_id);
    }

    /// Sessions whose lease ran out, marked closing so they are returned once.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let now_ms = self.now_ms(now);
        let mut out = Vec::new();
        for lease in self.leases.iter() {
            if lease.deadline_ms.load(Ordering::Relaxed) <= now_ms
                && !lease.closing.swap(true, Ordering::Relaxed)
            {
                out.push(*lease.key());
            }
        }
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn passwords_are_stable_distinct_and_sixteen_bytes() {
        let a = password_for(1);
        assert_eq!(a.len(), PASSWORD_LEN);
        assert_eq!(a, password_for(1));
        assert_ne!(a, password_for(2));
    }

    #[test]
    fn ids_are_unique_and_carry_the_server_id() {
        let ids = SessionIds::new(3, 1_700_000_000_000);
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!((a as u64) >> 56, 3);
    }

    #[test]
    fn lease_expires_after_timeout_unless_touched() {
        let t = SessionTracker::new();
        let t0 = Instant::now();
        t.add(7, 100, t0);
        t.add(8, 100, t0);
        assert!(t.expired(t0 + Duration::from_millis(50)).is_empty());
        assert!(t.touch(7, t0 + Duration::from_millis(80)));
        assert_eq!(t.expired(t0 + Duration::from_millis(120)), vec![8]);
        // Returned once, and a closing session can no longer be touched.
        assert!(t.expired(t0 + Duration::from_millis(130)).is_empty());
        assert!(!t.touch(8, t0 + Duration::from_millis(130)));
        assert_eq!(t.expired(t0 + Duration::from_millis(181)), vec![7]);
        t.remove(7);
        assert!(!t.touch(7, t0 + Duration::from_millis(200)));
        assert!(!t.is_live(7));
    }

    #[test]
    fn mark_closing_once() {
        let t = SessionTracker::new();
        t.add(1, 1000, Instant::now());
        assert!(t.mark_closing(1));
        assert!(!t.mark_closing(1));
        assert!(!t.is_live(1));
        assert!(!t.mark_closing(99));
    }
}
