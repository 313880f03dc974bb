//! Exactly-once writes: the results of each session's recent numbered requests.
//!
//! A native client numbers its writes per session (1, 2, 3, ...) and, after a
//! reconnect or a failover, re-sends every write it has no answer for with the same
//! number. Applying a txn that carries a request number records its result here,
//! under (session, number), on every member, because it happens in
//! [`DataTree::apply`](super::DataTree::apply): the table is replicated state, it is
//! in snapshots, and a new leader has it. Before preparing a numbered write, the
//! leader (and a member receiving a retry) looks here and answers a number it
//! already applied with the recorded result instead of running it again; a
//! sequential create thus returns its original name.
//!
//! Refusals are recorded too: a numbered write that fails validation becomes an
//! `Error`/`MultiError` txn (`prep::refusal_txn`), so a retry cannot succeed
//! where the original failed after later writes of the same session ran.
//!
//! Bounds: each numbered txn also carries the client's `acked_below`, the lowest
//! number it still waits for; results below it are dropped (the client will never
//! ask again). The highest such mark is kept per session: a request numbered below
//! it is a stale copy (a forward that sat in a stalled link while the client moved,
//! had it applied elsewhere and went on), and is refused before it is proposed and,
//! should one be proposed anyway, applied as a no-op. So is a numbered txn whose
//! number already has a result: that result is its answer, it does not run twice.
//! Independently, at most [`RESULTS_PER_SESSION`] results are kept per session,
//! oldest dropped first (a client with more unanswered writes than that
//! would see an old write run twice after a reconnect). Closing or expiring a
//! session drops its results. Everything here changes only in `apply`, so every
//! member drops the same entries at the same zxid.

use std::collections::BTreeMap;

use zabkeeper_proto::ErrorCode;

use super::codec::{DecodeError, Reader, Writer};
use super::{DataTree, Stat, TxnResult};
use crate::txn::Txn;

/// Most results kept per session.
pub const RESULTS_PER_SESSION: usize = 1024;

/// One session's recorded results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionResults {
    /// The highest request number applied for the session (kept when its result goes).
    pub highest: u64,
    /// The highest `acked_below` the session's txns carried: the client has the
    /// answer to every number below it.
    pub acked_below: u64,
    pub results: BTreeMap<u64, TxnResult>,
}

/// What a numbered request is, given the session's recorded results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbered<'a> {
    /// Not applied yet: run it.
    New,
    /// Applied: this is its answer.
    Recorded(&'a TxnResult),
    /// Below the client's low-water mark: a stale copy nobody waits for.
    Stale,
}

impl DataTree {
    /// The recorded result of the session's request `number`, if still kept (the
    /// server asks [`numbered`](Self::numbered), which also knows stale copies).
    #[cfg(test)]
    pub fn recorded_result(&self, session_id: i64, number: u64) -> Option<&TxnResult> {
        self.results.get(&session_id)?.results.get(&number)
    }

    /// Whether the session's request `number` (> 0) is new, already applied, or a
    /// stale copy below the client's low-water mark.
    pub fn numbered(&self, session_id: i64, number: u64) -> Numbered<'_> {
        let Some(r) = self.results.get(&session_id) else {
            return Numbered::New;
        };
        match r.results.get(&number) {
            Some(result) => Numbered::Recorded(result),
            None if number < r.acked_below => Numbered::Stale,
            None => Numbered::New,
        }
    }

    /// The highest request number applied for the session (0 if none).
    pub fn last_request_number(&self, session_id: i64) -> u64 {
        self.results.get(&session_id).map_or(0, |r| r.highest)
    }

    /// Number of results kept, over all sessions.
    pub fn recorded_result_count(&self) -> usize {
        self.results.values().map(|r| r.results.len()).sum()
    }

    /// Records a numbered txn's result (called by `apply` once the txn is applied).
    pub(super) fn record_result(&mut self, txn: &Txn, result: &TxnResult) {
        if txn.request_number == 0 || !self.sessions.contains_key(&txn.session_id) {
            return;
        }
        let entry = self.results.entry(txn.session_id).or_default();
        entry.highest = entry.highest.max(txn.request_number);
        entry.acked_below = entry.acked_below.max(txn.acked_below);
        entry.results.insert(txn.request_number, result.clone());
        // Everything below the client's low-water mark is answered at the client.
        let keep = entry.results.split_off(&entry.acked_below);
        entry.results = keep;
        while entry.results.len() > RESULTS_PER_SESSION {
            entry.results.pop_first();
        }
    }

    /// Forgets a closed session's results.
    pub(super) fn drop_results(&mut self, session_id: i64) {
        self.results.remove(&session_id);
    }
}

/// Snapshot encoding of the table: sessions in id order, results in number order.
pub(super) fn write_results(w: &mut Writer<'_>, table: &BTreeMap<i64, SessionResults>) {
    w.u64(table.len() as u64);
    for (&session, r) in table {
        w.i64(session);
        w.u64(r.highest);
        w.u64(r.acked_below);
        w.u64(r.results.len() as u64);
        for (&n, result) in &r.results {
            w.u64(n);
            write_result(w, result, 0);
        }
    }
}

/// Reads the table; `with_marks` is false for snapshot version 2, which kept no
/// low-water marks (read as 0: only recorded results are then recognised).
pub(super) fn read_results(
    r: &mut Reader<'_>,
    with_marks: bool,
) -> Result<BTreeMap<i64, SessionResults>, DecodeError> {
    let mut table = BTreeMap::new();
    for _ in 0..r.count(3)? {
        let session = r.i64()?;
        let highest = r.u64()?;
        let acked_below = if with_marks { r.u64()? } else { 0 };
        let mut results = BTreeMap::new();
        for _ in 0..r.count(2)? {
            let n = r.u64()?;
            let result = read_result(r, 0)?;
            if n > highest || n < acked_below || results.insert(n, result).is_some() {
                return Err(DecodeError::Invalid("bad request-result table"));
            }
        }
        let entry = SessionResults {
            highest,
            acked_below,
            results,
        };
        if table.insert(session, entry).is_some() {
            return Err(DecodeError::Invalid("duplicate session in result table"));
        }
    }
    Ok(table)
}

mod tag {
    pub const CREATED: u8 = 1;
    pub const DELETED: u8 = 2;
    pub const DATA_SET: u8 = 3;
    pub const ACL_SET: u8 = 4;
    pub const CHECKED: u8 = 5;
    pub const MULTI: u8 = 6;
    pub const MULTI_FAILED: u8 = 7;
    pub const ERROR: u8 = 8;
}

fn write_stat(w: &mut Writer<'_>, s: &Stat) {
    w.i64(s.czxid);
    w.i64(s.mzxid);
    w.i64(s.ctime);
    w.i64(s.mtime);
    w.i32(s.version);
    w.i32(s.cversion);
    w.i32(s.aversion);
    w.i64(s.ephemeral_owner);
    w.i32(s.data_length);
    w.i32(s.num_children);
    w.i64(s.pzxid);
}

fn read_stat(r: &mut Reader<'_>) -> Result<Stat, DecodeError> {
    Ok(Stat {
        czxid: r.i64()?,
        mzxid: r.i64()?,
        ctime: r.i64()?,
        mtime: r.i64()?,
        version: r.i32()?,
        cversion: r.i32()?,
        aversion: r.i32()?,
        ephemeral_owner: r.i64()?,
        data_length: r.i32()?,
        num_children: r.i32()?,
        pzxid: r.i64()?,
    })
}

/// Results of session txns are never numbered, so they are not encoded (an
/// `Error(SystemError)` stands in should one ever be).
fn write_result(w: &mut Writer<'_>, result: &TxnResult, depth: usize) {
    match result {
        TxnResult::Created { path, stat } => {
            w.u8(tag::CREATED);
            w.str(path);
            write_stat(w, stat);
        }
        TxnResult::Deleted => w.u8(tag::DELETED),
        TxnResult::DataSet { stat } => {
            w.u8(tag::DATA_SET);
            write_stat(w, stat);
        }
        TxnResult::AclSet { stat } => {
            w.u8(tag::ACL_SET);
            write_stat(w, stat);
        }
        TxnResult::Checked => w.u8(tag::CHECKED),
        TxnResult::Multi(results) if depth == 0 => {
            w.u8(tag::MULTI);
            w.u64(results.len() as u64);
            for r in results {
                write_result(w, r, depth + 1);
            }
        }
        TxnResult::MultiFailed(codes) => {
            w.u8(tag::MULTI_FAILED);
            w.u64(codes.len() as u64);
            for c in codes {
                w.i32(*c);
            }
        }
        TxnResult::Error(code) => {
            w.u8(tag::ERROR);
            w.i32(code.code());
        }
        TxnResult::Multi(_) | TxnResult::SessionCreated | TxnResult::SessionClosed { .. } => {
            w.u8(tag::ERROR);
            w.i32(ErrorCode::SystemError.code());
        }
    }
}

fn read_result(r: &mut Reader<'_>, depth: usize) -> Result<TxnResult, DecodeError> {
    Ok(match r.u8()? {
        tag::CREATED => TxnResult::Created {
            path: r.str()?.to_string(),
            stat: read_stat(r)?,
        },
        tag::DELETED => TxnResult::Deleted,
        tag::DATA_SET => TxnResult::DataSet {
            stat: read_stat(r)?,
        },
        tag::ACL_SET => TxnResult::AclSet {
            stat: read_stat(r)?,
        },
        tag::CHECKED => TxnResult::Checked,
        tag::MULTI if depth == 0 => {
            let n = r.count(1)?;
            let mut results = Vec::with_capacity(n);
            for _ in 0..n {
                results.push(read_result(r, depth + 1)?);
            }
            TxnResult::Multi(results)
        }
        tag::MULTI_FAILED => {
            let n = r.count(1)?;
            let mut codes = Vec::with_capacity(n);
            for _ in 0..n {
                codes.push(r.i32()?);
            }
            TxnResult::MultiFailed(codes)
        }
        tag::ERROR => TxnResult::Error(
            ErrorCode::from_code(r.i32()?).ok_or(DecodeError::Invalid("unknown error code"))?,
        ),
        _ => return Err(DecodeError::Invalid("unknown result tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::TxnBody;

    fn numbered(zxid: i64, session: i64, n: u64, acked_below: u64, body: TxnBody) -> Txn {
        Txn {
            session_id: session,
            cxid: n as i32,
            zxid,
            time_ms: 1,
            request_number: n,
            acked_below,
            body,
        }
    }

    fn open_session(tree: &mut DataTree, zxid: i64, session: i64) {
        tree.apply(&Txn {
            session_id: session,
            cxid: 0,
            zxid,
            time_ms: 1,
            request_number: 0,
            acked_below: 0,
            body: TxnBody::CreateSession { timeout_ms: 10_000 },
        });
    }

    fn create(path: &str) -> TxnBody {
        TxnBody::Create {
            path: path.into(),
            data: Default::default(),
            acl: crate::request::Acl::open(),
            ephemeral_owner: 0,
            parent_cversion: -1,
        }
    }

    #[test]
    fn results_are_recorded_pruned_by_the_low_water_mark_and_dropped_on_close() {
        let mut t = DataTree::new();
        open_session(&mut t, 1, 7);
        t.apply(&numbered(2, 7, 1, 1, create("/a")));
        t.apply(&numbered(3, 7, 2, 1, TxnBody::Error { code: -110 }));
        assert!(matches!(
            t.recorded_result(7, 1),
            Some(TxnResult::Created { path, .. }) if path == "/a"
        ));
        assert_eq!(
            t.recorded_result(7, 2),
            Some(&TxnResult::Error(ErrorCode::NodeExists))
        );
        // The client got the answer to 1: number 3 says so.
        t.apply(&numbered(4, 7, 3, 2, create("/b")));
        assert_eq!(t.recorded_result(7, 1), None);
        assert!(t.recorded_result(7, 2).is_some());
        assert_eq!(t.last_request_number(7), 3);
        // A session that is not open records nothing.
        t.apply(&numbered(5, 8, 1, 1, create("/c")));
        assert_eq!(t.recorded_result(8, 1), None);
        t.apply(&Txn {
            session_id: 7,
            cxid: 0,
            zxid: 6,
            time_ms: 1,
            request_number: 0,
            acked_below: 0,
            body: TxnBody::CloseSession { ephemerals: vec![] },
        });
        assert_eq!(t.recorded_result(7, 2), None);
        assert_eq!(t.last_request_number(7), 0);
    }

    #[test]
    fn a_second_copy_does_not_run_and_a_stale_one_is_refused() {
        let mut t = DataTree::new();
        open_session(&mut t, 1, 7);
        // A txn carries the version the node gets (prep computes it).
        let set = |data: &'static [u8], version| TxnBody::SetData {
            path: "/a".into(),
            data: bytes::Bytes::from_static(data),
            version,
        };
        t.apply(&numbered(2, 7, 1, 1, create("/a")));
        let first = t.apply(&numbered(3, 7, 2, 2, set(b"A", 1))).result;
        assert!(matches!(first, TxnResult::DataSet { stat } if stat.version == 1));
        assert!(matches!(t.numbered(7, 2), Numbered::Recorded(_)));
        // The same number again, at a later zxid: the first result, no change.
        let again = t.apply(&numbered(4, 7, 2, 2, set(b"A", 2)));
        assert_eq!(again.result, first);
        assert!(again.triggers.is_empty());
        assert_eq!(t.get_data("/a").unwrap().1.version, 1);
        // Number 3 says the client has every answer below 3.
        t.apply(&numbered(5, 7, 3, 3, set(b"B", 2)));
        assert_eq!(t.numbered(7, 2), Numbered::Stale);
        assert_eq!(t.numbered(7, 4), Numbered::New);
        // A late copy of 2 (a forward that sat in a stalled link) changes nothing.
        let late = t.apply(&numbered(6, 7, 2, 2, set(b"A", 3)));
        assert_eq!(late.result, TxnResult::Error(ErrorCode::BadArguments));
        let (data, stat) = t.get_data("/a").unwrap();
        assert_eq!((&data[..], stat.version), (&b"B"[..], 2));
        assert_eq!(t.last_applied_zxid(), 6);
        // The mark survives a snapshot.
        let mut bytes = Vec::new();
        t.serialize(&mut bytes);
        let back = DataTree::deserialize(&bytes).expect("snapshot reads back");
        assert_eq!(back.numbered(7, 2), Numbered::Stale);
        assert!(matches!(back.numbered(7, 3), Numbered::Recorded(_)));
    }

    #[test]
    fn at_most_the_bound_is_kept_per_session() {
        let mut t = DataTree::new();
        open_session(&mut t, 1, 7);
        let n = RESULTS_PER_SESSION as u64 + 10;
        for i in 1..=n {
            t.apply(&numbered(
                1 + i as i64,
                7,
                i,
                1,
                TxnBody::Error { code: -101 },
            ));
        }
        assert_eq!(t.recorded_result_count(), RESULTS_PER_SESSION);
        assert_eq!(t.recorded_result(7, 10), None);
        assert!(t.recorded_result(7, 11).is_some());
    }

    #[test]
    fn the_table_survives_a_snapshot() {
        let mut t = DataTree::new();
        open_session(&mut t, 1, 7);
        t.apply(&numbered(2, 7, 1, 1, create("/a")));
        t.apply(&numbered(
            3,
            7,
            2,
            1,
            TxnBody::Multi(vec![
                create("/a/x"),
                TxnBody::Delete {
                    path: "/a/x".into(),
                },
            ]),
        ));
        t.apply(&numbered(
            4,
            7,
            3,
            1,
            TxnBody::MultiError {
                results: vec![0, -101, -2],
            },
        ));
        let mut bytes = Vec::new();
        t.serialize(&mut bytes);
        let back = DataTree::deserialize(&bytes).expect("snapshot reads back");
        for n in 1..=3 {
            assert_eq!(back.recorded_result(7, n), t.recorded_result(7, n), "{n}");
        }
        assert_eq!(
            back.recorded_result(7, 3),
            Some(&TxnResult::MultiFailed(vec![0, -101, -2]))
        );
        assert_eq!(back.last_request_number(7), 3);
    }
}
