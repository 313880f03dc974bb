//! Applying committed txns: tree, watches, session leases, answers.
//!
//! A batch is applied under one acquisition of the tree's write lock. Watch
//! notifications are queued while the lock is held (see `core`), answers are sent
//! after it is released, so a client always has a notification before the answer
//! to any later request that depends on it.

use crate::core::Core;
use crate::history::Change;
use crate::prep::PrepError;
use crate::reply::{Completion, MultiFailure, Outcome, Reply};
use crate::tree::TxnResult;
use crate::txn::{Txn, TxnBody};
use std::time::Instant;
use zabkeeper_proto::{ErrorCode, EventType};

/// Applies committed txns in zxid order and answers whoever waits for them (more
/// than one waiter when a numbered write was retried while in flight).
pub fn apply_batch(core: &Core, batch: Vec<(Txn, Vec<Completion>)>) {
    let mut answers = Vec::with_capacity(batch.len());
    let mut closed = Vec::new();
    {
        let mut tree = core.tree.write();
        let mut watches = core.watches.lock();
        for (txn, completions) in batch {
            let applied = tree.apply(&txn);
            core.set_last_zxid(txn.zxid);
            for t in &applied.triggers {
                core.notify(&mut watches, &t.path, t.event, txn.zxid, &t.acl);
                let (stat, data) = match tree.get_data(&t.path) {
                    Ok((data, stat)) if t.event != EventType::NodeDeleted => {
                        (Some(stat), Some(data))
                    }
                    _ => (None, None),
                };
                core.record_change(Change {
                    zxid: txn.zxid,
                    path: t.path.clone(),
                    event: t.event,
                    stat,
                    data,
                });
            }
            match (&txn.body, &applied.result) {
                (TxnBody::CreateSession { timeout_ms }, TxnResult::SessionCreated) => {
                    core.leases
                        .add(txn.session_id, *timeout_ms as u64, Instant::now());
                }
                (TxnBody::CloseSession { .. }, _) => {
                    closed.push((txn.session_id, !completions.is_empty()))
                }
                _ => {}
            }
            if !completions.is_empty() {
                let outcome = outcome_of(applied.result);
                for c in completions {
                    answers.push((c, outcome.clone()));
                }
            }
        }
    }
    for (session, client_initiated) in closed {
        core.session_closed(session, client_initiated);
    }
    for (c, outcome) in answers {
        c.complete(outcome);
    }
}

fn reply_of(result: TxnResult) -> Result<Reply, ErrorCode> {
    Ok(match result {
        TxnResult::Created { path, stat } => Reply::Create { path, stat },
        TxnResult::DataSet { stat } | TxnResult::AclSet { stat } => Reply::Stat(stat),
        TxnResult::Deleted | TxnResult::Checked | TxnResult::SessionCreated => Reply::Empty,
        TxnResult::SessionClosed { .. } => Reply::Empty,
        TxnResult::Multi(results) => Reply::Multi(results.into_iter().map(reply_of).collect()),
        TxnResult::MultiFailed(codes) => return Err(first_failure(&codes)),
        TxnResult::Error(code) => return Err(code),
    })
}

/// The code a failed multi answers with: its first failing op's.
fn first_failure(codes: &[i32]) -> ErrorCode {
    codes
        .iter()
        .filter(|c| **c != 0 && **c != ErrorCode::RuntimeInconsistency.code())
        .find_map(|c| ErrorCode::from_code(*c))
        .unwrap_or(ErrorCode::RuntimeInconsistency)
}

/// The answer to a numbered write that must not run (again): its recorded result,
/// or `BadArguments` for a stale copy below the client's low-water mark (nobody
/// waits for it); None for a new one.
pub fn answer_of_numbered(numbered: crate::tree::Numbered<'_>) -> Option<Outcome> {
    use crate::tree::Numbered;
    match numbered {
        Numbered::New => None,
        Numbered::Recorded(result) => Some(outcome_of(result.clone())),
        Numbered::Stale => Some(Outcome::Err(ErrorCode::BadArguments)),
    }
}

/// The answer for an applied txn's result.
pub fn outcome_of(result: TxnResult) -> Outcome {
    match result {
        TxnResult::MultiFailed(codes) => Outcome::MultiFailed(MultiFailure {
            code: first_failure(&codes),
            results: codes,
        }),
        other => reply_of(other).into(),
    }
}

/// The answer for a write that failed validation.
pub fn prep_error_outcome(e: PrepError) -> Outcome {
    match e {
        PrepError::Op(code) => Outcome::Err(code),
        PrepError::Multi { code, results } => Outcome::MultiFailed(MultiFailure { code, results }),
    }
}
