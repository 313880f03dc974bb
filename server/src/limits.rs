//! Limits that protect the server from its clients, shared by the native and the
//! ZooKeeper front-ends (the limits on one connection live where that connection is
//! served; this module holds what is counted across connections).
//!
//! * **Admission** ([`Admission`]): at most `max_connections` client connections in
//!   total (both ports together) and at most `max_connections_per_ip` from one client
//!   address (0: no per-address limit), as ZooKeeper's `maxClientCnxns`. A connection
//!   past either is closed at once, before anything is read from it.
//! * **Flood** ([`FloodGuard`]): each session has a token bucket of
//!   `max_session_requests_per_sec` tokens refilled at that rate per second; every
//!   request takes one. A session that empties its bucket is cut off (its connection
//!   closes; the session lives on and may reconnect, but its bucket does not refill
//!   faster for that), so one client sending as fast as it can costs the server a
//!   bounded rate of work instead of slowing every other client.
//!
//! Kept per connection, in the front-ends: `max_outstanding_requests` (back-pressure:
//! the socket is not read while that many requests wait for their answers),
//! `max_queued_bytes` ([`crate::outbox`]), and in the core `max_watches_per_session`.

/// Requests a connection task handles from its read buffer before it lets the other
/// connections' tasks run (`yield_now`). A client that pipelines a large batch would
/// otherwise have its whole batch run in one poll, since reading from an already
/// filled buffer never returns Pending, and every client whose task waits behind it
/// on the same worker thread would see that batch as latency. Sixteen keeps a
/// pipelining client's throughput (a yield costs well under a microsecond) and
/// bounds the wait it can cause to sixteen requests' work.
pub const FRAMES_PER_TURN: u32 = 16;

/// A connection task's count of requests handled since it last let others run.
#[derive(Default)]
pub struct Turn(u32);

impl Turn {
    /// Counts one request taken from the read buffer.
    pub fn handled(&mut self) {
        self.0 += 1;
    }

    /// Yields to the other tasks once [`FRAMES_PER_TURN`] requests were handled.
    pub async fn yield_if_due(&mut self) {
        if self.0 >= FRAMES_PER_TURN {
            self.0 = 0;
            tokio::task::yield_now().await;
        }
    }
}

use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total(usize),
    PerAddress(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Total(n) => write!(f, "max_connections ({n}) reached"),
            Refusal::PerAddress(n) => {
                write!(f, "max_connections_per_ip ({n}) reached for this address")
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Connection counts, in total and per client address.
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

/// A connection's place in the counts; dropping it frees the place.
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Takes a place for a connection from `ip`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        // Short critical section: two counters, no I/O.
        let mut c = self.counts.lock();
        if c.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return Err(Refusal::PerAddress(self.max_per_ip));
        }
        c.total += 1;
        c.by_ip.insert(ip, from_ip + 1);
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections admitted now.
    pub fn total(&self) -> usize {
        self.counts.lock().total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut c = self.admission.counts.lock();
        c.total -= 1;
        if let Some(n) = c.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&self.ip);
            }
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Per-session request-rate buckets.
pub struct FloodGuard {
    rate: f64,
    buckets: DashMap<i64, Bucket>,
}

impl FloodGuard {
    /// `rate` requests per second (and as many in a burst); 0 turns the guard off.
    pub fn new(rate: u64) -> FloodGuard {
        FloodGuard {
            rate: rate as f64,
            buckets: DashMap::new(),
        }
    }

    /// Takes one request's token from the session's bucket; false when it is empty (the
    /// session floods).
    pub fn charge(&self, session: i64) -> bool {
        self.charge_at(session, Instant::now())
    }

    fn charge_at(&self, session: i64, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let mut b = self.buckets.entry(session).or_insert(Bucket {
            tokens: self.rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.rate);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    /// Forgets a session that ended.
    pub fn forget(&self, session: i64) {
        self.buckets.remove(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn admission_counts_total_and_per_address() {
        let a = Admission::new(3, 2);
        let ip1: IpAddr = "10.0.0.1".parse().unwrap();
        let ip2: IpAddr = "10.0.0.2".parse().unwrap();
        let x = a.admit(ip1).unwrap();
        let _y = a.admit(ip1).unwrap();
        assert_eq!(a.admit(ip1).err(), Some(Refusal::PerAddress(2)));
        let _z = a.admit(ip2).unwrap();
        assert_eq!(a.admit(ip2).err(), Some(Refusal::Total(3)));
        drop(x);
        assert_eq!(a.total(), 2);
        let _w = a.admit(ip1).unwrap();
        let unlimited = Admission::new(10, 0);
        let held: Vec<_> = (0..10).map(|_| unlimited.admit(ip1).unwrap()).collect();
        assert_eq!(unlimited.admit(ip1).err(), Some(Refusal::Total(10)));
        drop(held);
        assert_eq!(unlimited.total(), 0);
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let g = FloodGuard::new(10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(g.charge_at(1, t0));
        }
        assert!(!g.charge_at(1, t0), "burst spent");
        assert!(g.charge_at(2, t0), "other sessions have their own bucket");
        let t1 = t0 + Duration::from_millis(250); // 2.5 tokens back
        assert!(g.charge_at(1, t1));
        assert!(g.charge_at(1, t1));
        assert!(!g.charge_at(1, t1));
        // The bucket holds at most one second's worth.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..10 {
            assert!(g.charge_at(1, t2));
        }
        assert!(!g.charge_at(1, t2));
        g.forget(1);
        assert!(g.charge_at(1, t2), "a forgotten session starts full");
        let off = FloodGuard::new(0);
        assert!((0..100_000).all(|_| off.charge_at(1, t0)));
    }
}
