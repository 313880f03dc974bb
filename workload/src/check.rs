//! The checks after a run: each a pure function of the history (and, for the
//! durability check, of what every member holds), returning what it found.
//!
//! * **Durability on every member**: every `create` acknowledged (`ok`) exists on
//!   every member, read on that member alone after a `sync`; the registers have the
//!   same value and mzxid on every member.
//! * **Mutual exclusion**: the hold intervals of the lock, from an `ok` acquire to the
//!   invocation of its release (the holder stops using the resource before it
//!   releases), never overlap; fencing tokens strictly increase in acquisition order.
//! * **Queue exactly once**: no item is taken twice (counting the items drained at
//!   the end); every taken item was put; every item whose put was acknowledged was
//!   taken or is still queued, except at most one per take whose answer was lost (a
//!   take is an atomic delete + receipt; if its answer and then its session are lost,
//!   the item is gone with nobody knowing who has it).
//! * **Consistency** (`consistency.rs`, through `zabkeeper-check`): register writes
//!   and linearizable reads are linearizable, plain reads never older than what their
//!   session had seen. A failure reports the longest linearizable prefix and the
//!   operation that cannot follow it.
//! * **Recovery**: the time from the heal to the first acknowledged write after it,
//!   within a bound (`--max-heal-to-write-s`).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::history::{Kind, Operation};

/// What the consistency check covered.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Checked {
    /// Register writes with a known outcome, and those whose answer was lost.
    pub writes: usize,
    pub writes_unknown: usize,
    pub linearizable_reads: usize,
    pub plain_reads: usize,
    /// How long the check took.
    pub ms: f64,
}

/// What the checks found. `violations` empty means the run passed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub operations: usize,
    pub ok: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub acked_creates: usize,
    pub acked_writes: usize,
    pub reads: usize,
    pub lock_holds: usize,
    pub queue_puts_acked: usize,
    pub queue_taken: usize,
    pub queue_drained: usize,
    pub queue_takes_in_doubt: usize,
    pub queue_unaccounted: usize,
    pub checked: Checked,
    pub heal_to_first_write_ms: Option<f64>,
    pub max_heal_to_first_write_ms: Option<f64>,
    /// The longest time without any write acknowledged (the fault's unavailability).
    pub longest_write_gap_ms: f64,
    pub violations: Vec<String>,
}

/// Counts by outcome.
pub fn tally(ops: &[Operation], r: &mut Report) {
    r.operations = ops.len();
    for o in ops {
        match o.outcome() {
            Kind::Ok => r.ok += 1,
            Kind::Fail => r.failed += 1,
            _ => r.indeterminate += 1,
        }
        if o.outcome() == Kind::Ok {
            match o.invoke.op.as_str() {
                "create" => r.acked_creates += 1,
                "write" => r.acked_writes += 1,
                "read" => r.reads += 1,
                "put" => r.queue_puts_acked += 1,
                _ => {}
            }
        }
    }
}

/// Acknowledged creates missing from a member's listing of the created directory.
pub fn missing_creates<'a>(ops: &'a [Operation], present: &HashSet<String>) -> Vec<&'a str> {
    ops.iter()
        .filter(|o| o.invoke.op == "create" && o.outcome() == Kind::Ok)
        .map(|o| o.invoke.key.rsplit('/').next().unwrap_or_default())
        .filter(|name| !present.contains(*name))
        .collect()
}

/// Lock holds as (acquired, released, token, client), in acquisition order.
pub fn lock_holds(ops: &[Operation]) -> Vec<(f64, f64, i64, usize)> {
    let mut holds = Vec::new();
    let mut pending: HashMap<usize, (f64, i64)> = HashMap::new();
    for o in ops {
        match (o.invoke.op.as_str(), &o.done) {
            ("acquire", Some(d)) if d.kind == Kind::Ok => {
                pending.insert(o.invoke.client, (d.time_ms, d.zxid.unwrap_or(0)));
            }
            ("release", _) => {
                if let Some((t, token)) = pending.remove(&o.invoke.client) {
                    holds.push((t, o.invoke.time_ms, token, o.invoke.client));
                }
            }
            _ => {}
        }
    }
    // A hold never released (the run ended): it lasts to its acquisition at least.
    for (client, (t, token)) in pending {
        holds.push((t, f64::INFINITY, token, client));
    }
    holds.sort_by(|a, b| a.0.total_cmp(&b.0));
    holds
}

pub fn check_lock(ops: &[Operation], r: &mut Report) {
    let holds = lock_holds(ops);
    r.lock_holds = holds.len();
    for w in holds.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.0 < a.1 {
            r.violations.push(format!(
                "lock held by client {} (token {}) and client {} (token {}) at once: \
                 {:.1} ms overlap",
                a.3,
                a.2,
                b.3,
                b.2,
                a.1 - b.0
            ));
        }
        if b.2 <= a.2 {
            r.violations.push(format!(
                "fencing token {} (client {}) after {} (client {})",
                b.2, b.3, a.2, a.3
            ));
        }
    }
}

/// `drained`: the items left in the queue at the end (taken by the checker).
pub fn check_queue(ops: &[Operation], drained: &[String], r: &mut Report) {
    let mut put_ok = BTreeSet::new();
    let mut put_any = HashSet::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    for o in ops {
        match o.invoke.op.as_str() {
            "put" => {
                let v = o.invoke.value.clone().unwrap_or_default();
                if o.outcome() == Kind::Ok {
                    put_ok.insert(v.clone());
                }
                if o.outcome() != Kind::Fail {
                    put_any.insert(v);
                }
            }
            "take" => match o.outcome() {
                Kind::Ok => {
                    if let Some(v) = o.done.as_ref().and_then(|d| d.value.clone()) {
                        *taken.entry(v).or_default() += 1;
                    }
                }
                Kind::Info => r.queue_takes_in_doubt += 1,
                _ => {}
            },
            _ => {}
        }
    }
    r.queue_taken = taken.values().sum();
    r.queue_drained = drained.len();
    for d in drained {
        *taken.entry(d.clone()).or_default() += 1;
    }
    for (item, n) in &taken {
        if *n > 1 {
            r.violations
                .push(format!("queue item {item} handed out {n} times"));
        }
        if !put_any.contains(item) {
            r.violations
                .push(format!("queue item {item} was never put"));
        }
    }
    let lost: Vec<&String> = put_ok.iter().filter(|v| !taken.contains_key(*v)).collect();
    r.queue_unaccounted = lost.len();
    if lost.len() > r.queue_takes_in_doubt {
        r.violations.push(format!(
            "{} acknowledged queue items lost (only {} takes were in doubt): {:?}",
            lost.len(),
            r.queue_takes_in_doubt,
            lost.iter().take(10).collect::<Vec<_>>()
        ));
    }
}

/// Checks the register operations (keys under `registers`) for linearizability and
/// the plain reads for the session guarantee.
pub fn check_consistency(ops: &[Operation], registers: &str, r: &mut Report) {
    let started = std::time::Instant::now();
    let h = match crate::consistency::history(ops, registers) {
        Ok(h) => h,
        Err(e) => {
            r.violations.push(format!("consistency not checked: {e}"));
            return;
        }
    };
    let counts = h.counts();
    r.checked = Checked {
        writes: counts.writes,
        writes_unknown: counts.unknown,
        linearizable_reads: counts.linearizable_reads,
        plain_reads: counts.plain_reads,
        ms: 0.0,
    };
    if let Err(e) = crate::consistency::check(&h) {
        r.violations.push(format!("consistency: {e}"));
    }
    if counts.linearizable_reads == 0 || counts.writes == 0 {
        r.violations.push(format!(
            "consistency: nothing to check the registers with ({counts})"
        ));
    }
    r.checked.ms = started.elapsed().as_secs_f64() * 1000.0;
}

/// The time from the heal to the first acknowledged write, which must come within
/// `bound_ms`.
pub fn check_recovery(ops: &[Operation], heal_ms: f64, bound_ms: f64, r: &mut Report) {
    r.heal_to_first_write_ms = heal_to_first_write(ops, heal_ms);
    r.max_heal_to_first_write_ms = Some(bound_ms);
    match r.heal_to_first_write_ms {
        None => r
            .violations
            .push("no write was acknowledged after the heal".to_string()),
        Some(t) if t > bound_ms => r.violations.push(format!(
            "the first write after the heal took {:.2} s (bound {:.2} s)",
            t / 1000.0,
            bound_ms / 1000.0
        )),
        Some(_) => {}
    }
}

/// Time from `heal_ms` to the first write (create or register write) acknowledged
/// after it.
pub fn heal_to_first_write(ops: &[Operation], heal_ms: f64) -> Option<f64> {
    ops.iter()
        .filter(|o| matches!(o.invoke.op.as_str(), "create" | "write"))
        .filter_map(|o| o.done.as_ref())
        .filter(|d| d.kind == Kind::Ok && d.time_ms >= heal_ms)
        .map(|d| d.time_ms - heal_ms)
        .min_by(f64::total_cmp)
}

/// The longest interval between consecutive acknowledged writes (creates and
/// register writes), by completion time.
pub fn longest_write_gap(ops: &[Operation]) -> f64 {
    let mut t: Vec<f64> = ops
        .iter()
        .filter(|o| matches!(o.invoke.op.as_str(), "create" | "write"))
        .filter_map(|o| o.done.as_ref())
        .filter(|d| d.kind == Kind::Ok)
        .map(|d| d.time_ms)
        .collect();
    t.sort_by(f64::total_cmp);
    t.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{operations, Event};

    fn ev(
        t: f64,
        client: usize,
        kind: Kind,
        op: &str,
        value: Option<&str>,
        zxid: Option<i64>,
    ) -> Event {
        Event {
            time_ms: t,
            client,
            kind,
            op: op.into(),
            key: "/k".into(),
            value: value.map(Into::into),
            zxid,
            note: None,
            seen_zxid: None,
            version: None,
        }
    }

    fn hold(v: &mut Vec<Event>, client: usize, from: f64, to: f64, token: i64) {
        v.push(ev(from - 1.0, client, Kind::Invoke, "acquire", None, None));
        v.push(ev(from, client, Kind::Ok, "acquire", None, Some(token)));
        v.push(ev(to, client, Kind::Invoke, "release", None, None));
        v.push(ev(to + 1.0, client, Kind::Ok, "release", None, None));
    }

    #[test]
    fn overlapping_holds_and_falling_tokens_are_caught() {
        let mut h = Vec::new();
        hold(&mut h, 1, 10.0, 20.0, 5);
        hold(&mut h, 2, 30.0, 40.0, 6);
        let mut r = Report::default();
        check_lock(&operations(&h).unwrap(), &mut r);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.lock_holds, 2);

        hold(&mut h, 3, 35.0, 50.0, 7);
        let mut r = Report::default();
        check_lock(&operations(&h).unwrap(), &mut r);
        assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
        assert!(r.violations[0].contains("at once"));

        let mut h = Vec::new();
        hold(&mut h, 1, 10.0, 20.0, 9);
        hold(&mut h, 2, 30.0, 40.0, 8);
        let mut r = Report::default();
        check_lock(&operations(&h).unwrap(), &mut r);
        assert!(
            r.violations[0].contains("fencing token"),
            "{:?}",
            r.violations
        );
    }

    fn put(v: &mut Vec<Event>, client: usize, item: &str, kind: Kind) {
        v.push(ev(0.0, client, Kind::Invoke, "put", Some(item), None));
        v.push(ev(1.0, client, kind, "put", Some(item), None));
    }

    fn take(v: &mut Vec<Event>, client: usize, item: Option<&str>, kind: Kind) {
        v.push(ev(0.0, client, Kind::Invoke, "take", None, None));
        v.push(ev(1.0, client, kind, "take", item, None));
    }

    #[test]
    fn queue_loss_duplication_and_invention_are_caught() {
        let mut h = Vec::new();
        put(&mut h, 1, "a", Kind::Ok);
        put(&mut h, 1, "b", Kind::Ok);
        put(&mut h, 1, "c", Kind::Info);
        take(&mut h, 2, Some("a"), Kind::Ok);
        take(&mut h, 2, None, Kind::Ok);
        let ops = operations(&h).unwrap();
        let mut r = Report::default();
        check_queue(&ops, &["b".into(), "c".into()], &mut r);
        assert!(r.violations.is_empty(), "{:?}", r.violations);

        let mut r = Report::default();
        check_queue(&ops, &["a".into(), "b".into()], &mut r);
        assert!(r.violations[0].contains("2 times"), "{:?}", r.violations);

        let mut r = Report::default();
        check_queue(&ops, &[], &mut r);
        assert!(r.violations[0].contains("lost"), "{:?}", r.violations);

        let mut r = Report::default();
        check_queue(&ops, &["b".into(), "zz".into()], &mut r);
        assert!(r.violations[0].contains("never put"), "{:?}", r.violations);

        // A take whose answer was lost may account for one missing item.
        take(&mut h, 3, None, Kind::Info);
        let mut r = Report::default();
        check_queue(&operations(&h).unwrap(), &[], &mut r);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!((r.queue_unaccounted, r.queue_takes_in_doubt), (1, 1));
    }

    #[test]
    fn missing_creates_and_recovery_time() {
        let h = vec![
            ev(0.0, 1, Kind::Invoke, "create", Some("x"), None),
            ev(5.0, 1, Kind::Ok, "create", Some("x"), Some(1)),
            ev(6.0, 1, Kind::Invoke, "create", Some("y"), None),
            ev(9.0, 1, Kind::Info, "create", None, None),
            ev(10.0, 2, Kind::Invoke, "create", Some("z"), None),
            ev(20.0, 2, Kind::Ok, "create", Some("z"), Some(2)),
        ];
        let mut h = h;
        for (e, name) in h.iter_mut().zip(["x", "x", "y", "y", "z", "z"]) {
            e.key = format!("/w/{name}");
        }
        let ops = operations(&h).unwrap();
        let present: HashSet<String> = ["x".to_string()].into();
        assert_eq!(missing_creates(&ops, &present), vec!["z"]);
        assert_eq!(heal_to_first_write(&ops, 7.0), Some(13.0));
        assert_eq!(heal_to_first_write(&ops, 25.0), None);
        assert_eq!(longest_write_gap(&ops), 15.0);
        let mut r = Report::default();
        check_recovery(&ops, 7.0, 13.0, &mut r);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        check_recovery(&ops, 7.0, 12.0, &mut r);
        assert!(r.violations[0].contains("bound"), "{:?}", r.violations);
        let mut r = Report::default();
        check_recovery(&ops, 25.0, 1e9, &mut r);
        assert!(r.violations[0].contains("no write"), "{:?}", r.violations);
    }

    #[test]
    fn history_pairs_are_checked() {
        let h = vec![
            ev(0.0, 1, Kind::Invoke, "read", None, None),
            ev(0.0, 1, Kind::Invoke, "read", None, None),
        ];
        assert!(operations(&h).is_err());
        let h = vec![ev(0.0, 1, Kind::Ok, "read", None, None)];
        assert!(operations(&h).is_err());
    }
}
