//! One key used as a register with read, write and compare-and-set (setData with a
//! version), checked in the style of Wing & Gong / Knossos: search for an order of
//! the operations that respects real time (an operation that completed before
//! another was invoked comes first) and the register's sequential specification.
//!
//! The search is a depth-first search over (set of operations linearized, register
//! state) with memoization: at each step the candidates are the operations not yet
//! linearized that were invoked before the earliest completion among those left (any
//! later one would jump ahead of an operation that finished before it began). The
//! memo keeps the cost near linear for histories whose operations overlap little;
//! many concurrent operations of unknown outcome can make it exponential, hence the
//! step bound.

use crate::error::{Error, NotLinearizable, Result};
use std::collections::HashSet;
use std::fmt;

/// The register: (data, version).
pub type State = (Vec<u8>, i32);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A linearizable read that returned (data, version).
    Read(State),
    /// setData(data, -1).
    Write(Vec<u8>),
    /// setData(data, expected version); `ok` false: BadVersion.
    Cas {
        expected: i32,
        data: Vec<u8>,
        ok: bool,
    },
}

/// One operation on a key. Times are in nanoseconds from any common origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub invoke: u64,
    /// None: the outcome is unknown (it may or may not have happened).
    pub complete: Option<u64>,
    pub kind: OpKind,
}

pub(crate) fn show_state(s: &State) -> String {
    format!("{:?} v{}", String::from_utf8_lossy(&s.0), s.1)
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |t: u64| t as f64 / 1e9;
        write!(f, "client {} [{:.3} s, ", self.client, secs(self.invoke))?;
        match self.complete {
            Some(t) => write!(f, "{:.3} s] ", secs(t))?,
            None => write!(f, "outcome unknown] ")?,
        }
        let data = |d: &[u8]| format!("{:?}", String::from_utf8_lossy(d));
        match &self.kind {
            OpKind::Read(s) => write!(f, "read -> {}", show_state(s)),
            OpKind::Write(d) => write!(f, "write {}", data(d)),
            OpKind::Cas {
                expected,
                data: d,
                ok,
            } => write!(
                f,
                "cas v{expected} -> {} {}",
                data(d),
                if *ok { "ok" } else { "BadVersion" }
            ),
        }
    }
}

fn apply(state: &State, kind: &OpKind) -> Option<State> {
    match kind {
        OpKind::Read(seen) => (seen == state).then(|| state.clone()),
        OpKind::Write(data) => Some((data.clone(), state.1 + 1)),
        OpKind::Cas { expected, data, ok } => {
            if *ok {
                (state.1 == *expected).then(|| (data.clone(), state.1 + 1))
            } else {
                (state.1 != *expected).then(|| state.clone())
            }
        }
    }
}

/// The search gives up after this many steps.
pub const MAX_STEPS: u64 = 50_000_000;
/// How many of the longest prefix's last operations a failure report shows.
const TAIL: usize = 8;

/// Checks one key's history from `init`.
pub fn check_register(key: &str, init: State, ops: &[Op]) -> Result<()> {
    let mut ops: Vec<Op> = ops.to_vec();
    ops.sort_by_key(|o| o.invoke);
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    let known: Vec<usize> = (0..n).filter(|&i| ops[i].complete.is_some()).collect();
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    // The ops linearized so far, in order, each with the state before it.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = init;
    let mut known_left = known.len();
    // Candidate iteration position per depth.
    let mut cursor: Vec<usize> = vec![0];
    let is_done = |d: &[u64], i: usize| d[i / 64] >> (i % 64) & 1 == 1;
    let mut steps: u64 = 0;
    // For the failure report: the longest prefix (by known ops linearized) and the
    // op that could not follow it.
    let mut best_left = usize::MAX;
    let mut best: Option<NotLinearizable> = None;
    loop {
        steps += 1;
        if steps > MAX_STEPS {
            return Err(Error::SearchTooLarge {
                key: key.to_string(),
                steps: MAX_STEPS,
            });
        }
        if known_left == 0 {
            return Ok(());
        }
        // The earliest completion among ops not linearized bounds the candidates.
        let horizon = known
            .iter()
            .filter(|&&i| !is_done(&done, i))
            .filter_map(|&i| ops[i].complete)
            .min()
            .unwrap_or(u64::MAX);
        if known_left < best_left {
            best_left = known_left;
            let stuck = known
                .iter()
                .copied()
                .filter(|&i| !is_done(&done, i))
                .min_by_key(|&i| ops[i].complete);
            best = Some(NotLinearizable {
                key: key.to_string(),
                ops: n,
                known: known.len(),
                prefix_len: stack.len(),
                prefix_tail: stack[stack.len().saturating_sub(TAIL)..]
                    .iter()
                    .map(|(i, _)| ops[*i].clone())
                    .collect(),
                state: state.clone(),
                stuck: stuck.map(|i| ops[i].clone()),
            });
        }
        let depth = cursor.len() - 1;
        let mut advanced = false;
        let mut i = cursor[depth];
        while i < n && ops[i].invoke <= horizon {
            if !is_done(&done, i) {
                if let Some(next) = apply(&state, &ops[i].kind) {
                    let mut d = done.clone();
                    d[i / 64] |= 1 << (i % 64);
                    if seen.insert((d.clone(), next.clone())) {
                        cursor[depth] = i + 1;
                        stack.push((i, state));
                        state = next;
                        done = d;
                        if ops[i].complete.is_some() {
                            known_left -= 1;
                        }
                        cursor.push(0);
                        advanced = true;
                        break;
                    }
                }
            }
            i += 1;
        }
        if advanced {
            continue;
        }
        // Dead end: undo the last choice.
        cursor.pop();
        let Some((i, prev)) = stack.pop() else {
            let report = best.expect("a report is kept from the first step");
            return Err(Error::NotLinearizable(Box::new(report)));
        };
        done[i / 64] &= !(1 << (i % 64));
        if ops[i].complete.is_some() {
            known_left += 1;
        }
        state = prev;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: &str, v: i32) -> State {
        (d.as_bytes().to_vec(), v)
    }
    fn op(client: usize, invoke: u64, complete: Option<u64>, kind: OpKind) -> Op {
        Op {
            client,
            invoke,
            complete,
            kind,
        }
    }
    fn w(d: &str) -> OpKind {
        OpKind::Write(d.as_bytes().to_vec())
    }
    fn r(d: &str, v: i32) -> OpKind {
        OpKind::Read(s(d, v))
    }
    fn cas(expected: i32, d: &str, ok: bool) -> OpKind {
        OpKind::Cas {
            expected,
            data: d.as_bytes().to_vec(),
            ok,
        }
    }
    fn check(h: &[Op]) -> Result<()> {
        check_register("/k", s("init", 0), h)
    }

    #[test]
    fn sequential_history_passes() {
        let h = vec![
            op(0, 0, Some(1), w("a")),
            op(1, 2, Some(3), r("a", 1)),
            op(0, 4, Some(5), cas(1, "b", true)),
            op(1, 6, Some(7), cas(1, "c", false)),
            op(1, 8, Some(9), r("b", 2)),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn concurrent_ops_may_take_effect_in_either_order() {
        // The read overlaps the write: it may see either value.
        for seen in [s("init", 0), s("a", 1)] {
            let h = vec![
                op(0, 0, Some(10), w("a")),
                op(1, 1, Some(5), OpKind::Read(seen)),
            ];
            check(&h).unwrap();
        }
    }

    #[test]
    fn stale_read_after_a_completed_write_fails() {
        let h = vec![op(0, 0, Some(1), w("a")), op(1, 2, Some(3), r("init", 0))];
        assert!(check(&h).is_err());
    }

    #[test]
    fn the_report_names_the_longest_prefix_and_the_op_that_cannot_follow() {
        let h = vec![
            op(0, 0, Some(1), w("a")),
            op(1, 2, Some(3), r("a", 1)),
            op(0, 4, Some(5), w("b")),
            op(1, 6, Some(7), r("a", 1)),
        ];
        let Err(Error::NotLinearizable(r)) = check(&h) else {
            panic!("a stale read passed");
        };
        assert_eq!(r.key, "/k");
        assert_eq!((r.prefix_len, r.state.clone()), (3, s("b", 2)));
        assert_eq!(r.prefix_tail, h[..3].to_vec());
        assert_eq!(r.stuck, Some(h[3].clone()));
        let text = Error::NotLinearizable(r).to_string();
        assert!(text.contains("prefix has 3 ops"), "{text}");
        assert!(text.contains("cannot follow it: client 1"), "{text}");
    }

    #[test]
    fn reads_going_back_in_time_fail() {
        let h = vec![
            op(0, 0, Some(100), w("a")),
            op(1, 1, Some(2), r("a", 1)),
            op(2, 3, Some(4), r("init", 0)),
        ];
        assert!(check(&h).is_err());
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        let lost = vec![op(0, 0, None, w("a")), op(1, 5, Some(6), r("init", 0))];
        check(&lost).unwrap();
        let applied = vec![op(0, 0, None, w("a")), op(1, 5, Some(6), r("a", 1))];
        check(&applied).unwrap();
        // But not before it was invoked.
        let early = vec![op(1, 0, Some(1), r("a", 1)), op(0, 5, None, w("a"))];
        assert!(check(&early).is_err());
    }

    #[test]
    fn two_successful_cas_on_the_same_version_fail() {
        let h = vec![
            op(0, 0, Some(10), cas(0, "x", true)),
            op(1, 0, Some(10), cas(0, "y", true)),
        ];
        assert!(check(&h).is_err());
        // One wins, the other sees BadVersion: fine.
        let h = vec![
            op(0, 0, Some(10), cas(0, "x", true)),
            op(1, 0, Some(10), cas(0, "y", false)),
            op(2, 11, Some(12), r("x", 1)),
        ];
        check(&h).unwrap();
    }

    #[test]
    fn a_failed_cas_needs_a_different_version() {
        let h = vec![op(0, 0, Some(1), cas(0, "x", false))];
        assert!(check(&h).is_err());
    }

    #[test]
    fn many_sequential_ops_are_checked_quickly() {
        let mut h = Vec::new();
        let mut t = 0;
        for i in 0..5000 {
            let d = format!("v{i}");
            h.push(op(
                i % 4,
                t,
                Some(t + 3),
                OpKind::Write(d.clone().into_bytes()),
            ));
            // Invoked at t+1, before the write completes at t+3: concurrent with it.
            h.push(op((i + 1) % 4, t + 1, Some(t + 4), r(&d, i as i32 + 1)));
            t += 5;
        }
        check(&h).unwrap();
    }
}
