//! The consistency check of a run: the history's register operations go through
//! `zabkeeper-check`, the same checker the server's loopback fault tests use.
//!
//! Register `write`s and `lread`s (linearizable reads) must be linearizable, key by
//! key, from the registers' initial state (empty, version 0: `run::prepare` makes
//! sure); plain `read`s must satisfy the session guarantee (never older than what
//! their session had seen). A write whose answer was lost (`info`, or no completion)
//! may or may not have happened; a `fail`ed one did not and is left out, and so are
//! reads that returned nothing.
//!
//! Times are the workload's wall clock; one process records every event, so they
//! are one clock.

use crate::error::{Error, Result};
use crate::history::{Kind, Operation};
use zabkeeper_check::{Counts, History, Op, OpKind, SessionRead, State};

/// The registers' state when the run starts.
pub fn initial_state() -> State {
    (Vec::new(), 0)
}

/// Converts the register operations of `ops` (keys starting with `registers`, the
/// registers' directory) into the checker's history.
pub fn history(ops: &[Operation], registers: &str) -> Result<History> {
    let origin = ops
        .iter()
        .map(|o| o.invoke.time_ms)
        .min_by(f64::total_cmp)
        .unwrap_or(0.0);
    let ns = |t: f64| ((t - origin).max(0.0) * 1e6) as u64;
    let mut h = History::default();
    for o in ops {
        let key = o.invoke.key.as_str();
        if !key.starts_with(registers) {
            continue;
        }
        let ok = o.done.as_ref().filter(|d| d.kind == Kind::Ok);
        let bad = |what: &str| {
            Error::BadHistory(format!(
                "client {} {} of {key} at {}: {what}",
                o.invoke.client, o.invoke.op, o.invoke.time_ms
            ))
        };
        match o.invoke.op.as_str() {
            "write" => {
                if o.outcome() == Kind::Fail {
                    continue;
                }
                let value = o.invoke.value.clone().ok_or_else(|| bad("no value"))?;
                if let Some(d) = ok {
                    h.wrote(key, d.zxid.ok_or_else(|| bad("no zxid"))?);
                }
                h.op(
                    key,
                    Op {
                        client: o.invoke.client,
                        invoke: ns(o.invoke.time_ms),
                        complete: ok.map(|d| ns(d.time_ms)),
                        kind: OpKind::Write(value.into_bytes()),
                    },
                );
            }
            "lread" | "read" => {
                let Some(d) = ok else { continue };
                let zxid = d.zxid.ok_or_else(|| bad("no zxid"))?;
                h.wrote(key, zxid);
                if o.invoke.op == "read" {
                    h.session_read(SessionRead {
                        key: key.to_string(),
                        seen: o.invoke.seen_zxid.ok_or_else(|| bad("no seen_zxid"))?,
                        mzxid: zxid,
                    });
                } else {
                    let value = d.value.clone().ok_or_else(|| bad("no value"))?;
                    let version = d.version.ok_or_else(|| bad("no version"))?;
                    h.op(
                        key,
                        Op {
                            client: o.invoke.client,
                            invoke: ns(o.invoke.time_ms),
                            complete: Some(ns(d.time_ms)),
                            kind: OpKind::Read((value.into_bytes(), version)),
                        },
                    );
                }
            }
            _ => {}
        }
    }
    Ok(h)
}

/// Runs both checks; `Err` is the violation (the checker's report).
pub fn check(h: &History) -> std::result::Result<Counts, zabkeeper_check::Error> {
    h.check(&initial_state())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, Event};

    fn ev(t: f64, client: usize, kind: Kind, op: &str) -> Event {
        Event {
            time_ms: t,
            client,
            kind,
            op: op.into(),
            key: "/w/r/k0".into(),
            value: None,
            zxid: None,
            note: None,
            seen_zxid: None,
            version: None,
        }
    }

    fn write(h: &mut Vec<Event>, t: f64, client: usize, v: &str, done: Kind, zxid: i64) {
        h.push(Event {
            value: Some(v.into()),
            ..ev(t, client, Kind::Invoke, "write")
        });
        h.push(Event {
            value: Some(v.into()),
            zxid: (done == Kind::Ok).then_some(zxid),
            version: None,
            ..ev(t + 1.0, client, done, "write")
        });
    }

    fn read(h: &mut Vec<Event>, t: f64, client: usize, op: &str, v: &str, ver: i32, zxid: i64) {
        h.push(Event {
            seen_zxid: Some(0),
            ..ev(t, client, Kind::Invoke, op)
        });
        h.push(Event {
            value: Some(v.into()),
            zxid: Some(zxid),
            version: Some(ver),
            ..ev(t + 1.0, client, Kind::Ok, op)
        });
    }

    #[test]
    fn writes_and_linearizable_reads_are_searched_plain_reads_session_checked() {
        let mut e = Vec::new();
        write(&mut e, 10.0, 1, "a", Kind::Ok, 5);
        write(&mut e, 20.0, 1, "b", Kind::Info, 0);
        write(&mut e, 30.0, 1, "c", Kind::Fail, 0);
        read(&mut e, 40.0, 2, "lread", "b", 2, 6);
        read(&mut e, 50.0, 2, "read", "", 0, 1);
        let h = history(&operations(&e).unwrap(), "/w/r").unwrap();
        let c = check(&h).unwrap();
        assert_eq!(
            (c.writes, c.unknown, c.linearizable_reads, c.plain_reads),
            (1, 1, 1, 1)
        );

        // A linearizable read of the state before a completed write: not linearizable.
        read(&mut e, 60.0, 3, "lread", "a", 1, 5);
        let h = history(&operations(&e).unwrap(), "/w/r").unwrap();
        let err = check(&h).unwrap_err().to_string();
        assert!(err.contains("cannot follow it: client 3"), "{err}");
    }

    #[test]
    fn a_plain_read_older_than_its_session_saw_fails() {
        let mut e = Vec::new();
        write(&mut e, 10.0, 1, "a", Kind::Ok, 5);
        e.push(Event {
            seen_zxid: Some(5),
            ..ev(20.0, 1, Kind::Invoke, "read")
        });
        e.push(Event {
            value: Some("".into()),
            zxid: Some(1),
            version: Some(0),
            ..ev(21.0, 1, Kind::Ok, "read")
        });
        let h = history(&operations(&e).unwrap(), "/w/r").unwrap();
        assert!(matches!(
            check(&h),
            Err(zabkeeper_check::Error::StaleRead { missed: 5, .. })
        ));
    }
}
