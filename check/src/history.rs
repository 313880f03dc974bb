//! A history as the checks take it: each key's register operations, the plain
//! reads with what their sessions had seen, and every zxid known to have written
//! each key. Recorders (the server's fault tests, the container workload) fill one
//! in and call [`History::check`].

use crate::register::{check_register, Op, OpKind, State};
use crate::session::{check_sessions, SessionRead};
use crate::Result;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

#[derive(Debug, Default, Clone)]
pub struct History {
    /// Per key (checked in key order, so a report is reproducible).
    pub ops: BTreeMap<String, Vec<Op>>,
    pub session_reads: Vec<SessionRead>,
    /// Every zxid known to have modified each key: write answers' mzxid, reads' mzxid.
    pub writes: HashMap<String, Vec<i64>>,
}

/// Operations checked, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub linearizable_reads: usize,
    pub plain_reads: usize,
    /// Writes and compare-and-sets with a known outcome.
    pub writes: usize,
    pub cas_ok: usize,
    pub cas_bad_version: usize,
    /// Writes and compare-and-sets whose answer was lost.
    pub unknown: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.linearizable_reads
            + self.plain_reads
            + self.writes
            + self.cas_ok
            + self.cas_bad_version
            + self.unknown
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} linearizable reads, {} plain reads, {} writes, {} cas ok, {} cas BadVersion, \
             {} outcome unknown",
            self.linearizable_reads,
            self.plain_reads,
            self.writes,
            self.cas_ok,
            self.cas_bad_version,
            self.unknown
        )
    }
}

impl History {
    pub fn op(&mut self, key: &str, op: Op) {
        self.ops.entry(key.to_string()).or_default().push(op);
    }

    pub fn wrote(&mut self, key: &str, zxid: i64) {
        self.writes.entry(key.to_string()).or_default().push(zxid);
    }

    pub fn session_read(&mut self, read: SessionRead) {
        self.session_reads.push(read);
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            plain_reads: self.session_reads.len(),
            ..Counts::default()
        };
        for op in self.ops.values().flatten() {
            match (&op.kind, op.complete) {
                (_, None) => c.unknown += 1,
                (OpKind::Read(_), _) => c.linearizable_reads += 1,
                (OpKind::Write(_), _) => c.writes += 1,
                (OpKind::Cas { ok: true, .. }, _) => c.cas_ok += 1,
                (OpKind::Cas { ok: false, .. }, _) => c.cas_bad_version += 1,
            }
        }
        c
    }

    /// Checks every key's register history from `init` and every plain read; the
    /// first violation found is the error.
    pub fn check(&self, init: &State) -> Result<Counts> {
        for (key, ops) in &self.ops {
            check_register(key, init.clone(), ops)?;
        }
        check_sessions(&self.session_reads, &self.writes)?;
        Ok(self.counts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn init() -> State {
        (b"init".to_vec(), 0)
    }

    #[test]
    fn counts_and_checks_every_key_and_every_plain_read() {
        let mut h = History::default();
        let write = |client, invoke, complete, d: &str| Op {
            client,
            invoke,
            complete,
            kind: OpKind::Write(d.as_bytes().to_vec()),
        };
        h.op("/a", write(0, 0, Some(1), "x"));
        h.op("/b", write(1, 0, None, "y"));
        h.op(
            "/a",
            Op {
                client: 1,
                invoke: 2,
                complete: Some(3),
                kind: OpKind::Read((b"x".to_vec(), 1)),
            },
        );
        h.wrote("/a", 5);
        h.session_read(SessionRead {
            key: "/a".into(),
            seen: 5,
            mzxid: 5,
        });
        let c = h.check(&init()).unwrap();
        assert_eq!(
            (c.linearizable_reads, c.plain_reads, c.writes, c.unknown),
            (1, 1, 1, 1)
        );
        assert_eq!(c.total(), 4);

        h.op("/b", write(2, 10, Some(11), "z"));
        h.op(
            "/b",
            Op {
                client: 3,
                invoke: 12,
                complete: Some(13),
                kind: OpKind::Read((b"init".to_vec(), 0)),
            },
        );
        match h.check(&init()) {
            Err(Error::NotLinearizable(r)) => assert_eq!(r.key, "/b"),
            other => panic!("a stale read of /b passed: {other:?}"),
        }
    }
}
