//! The write pipeline of a standalone server: prep, log, fsync, apply, answer.
//!
//! One task owns the pipeline, so writes are validated and numbered in one order:
//!
//! 1. **prep**: a write is validated against the tree *plus the writes still in
//!    flight* (`prep::Pending`), so pipelined writes validate against each other,
//!    and becomes a txn with the next zxid. A write that fails validation is
//!    answered at once; its connection still answers in request order.
//! 2. **log**: the txn is handed to the group-commit thread, which appends whatever
//!    is queued and makes it durable with one `fdatasync` for the whole batch.
//! 3. **apply**: when the log reports a zxid durable, every txn up to it is applied
//!    to the tree in zxid order (one write-lock acquisition per batch), its watches
//!    fire, and only then is the client answered. Nothing is acknowledged before it
//!    is on disk.
//!
//! The same task expires sessions (a `CloseSession` txn per expired lease), removes
//! empty containers and expired TTL nodes, and takes snapshots every `snap_count`
//! txns, purging old snapshots and the log segments only they needed.
//!
//! In an ensemble, step 2 becomes a ZAB proposal and step 3 happens on COMMIT.

use crate::auth::AuthId;
use crate::core::Core;
use crate::prep::{self, Pending};
use crate::reply::{Completion, Outcome};
use crate::request::WriteOp;
use crate::storage::group_commit::GroupCommit;
use crate::storage::SnapshotStore;
use crate::txn::Txn;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use zabkeeper_proto::ErrorCode;

/// What connections hand to the pipeline (standalone) or the replica (ensemble).
#[derive(Debug)]
pub enum PipelineMsg {
    Write(WriteRequest),
    Sync {
        path: String,
        completion: Completion,
    },
    /// A linearizable read asks to be confirmed (ensemble only).
    ReadIndex {
        completion: Completion,
    },
}

/// A write on its way into the pipeline.
#[derive(Debug)]
pub struct WriteRequest {
    pub session_id: i64,
    pub cxid: i32,
    pub op: WriteOp,
    /// The client's request number for an exactly-once write (0: none) and its
    /// acknowledged low-water mark (see `tree::results`).
    pub request_number: u64,
    pub acked_below: u64,
    /// The identities of the client's connection, for the ACL checks; None for
    /// writes the server issues itself (expiry, container removal), which have none.
    pub auth: Option<Arc<[AuthId]>>,
    /// None for writes the server issues itself (expiry, container removal).
    pub completion: Option<Completion>,
}

impl WriteRequest {
    /// A write the server issues itself, answered to nobody.
    pub fn internal(session_id: i64, op: WriteOp) -> WriteRequest {
        WriteRequest {
            session_id,
            cxid: 0,
            op,
            request_number: 0,
            acked_below: 0,
            auth: None,
            completion: None,
        }
    }
}

pub struct Pipeline {
    core: Arc<Core>,
    pending: Pending,
    log: GroupCommit,
    /// Shared with the blocking task that writes snapshot files.
    snapshots: Arc<Mutex<Box<dyn SnapshotStore>>>,
    /// Txns logged but not yet durable, in zxid order, with who waits for them
    /// (more than one when a numbered write was retried while in flight).
    in_flight: VecDeque<(Txn, Vec<Completion>)>,
    /// Refused writes, answered once every txn logged before them is applied
    /// (their refusal may rest on those txns: a client told NodeExists must be able
    /// to read the node next). Each waits for its zxid.
    held: VecDeque<(i64, Completion, Outcome)>,
    epoch: u32,
    counter: u32,
    since_snapshot: u64,
    commit_clock: crate::metrics::CommitClock,
}

impl Pipeline {
    pub fn new(
        core: Arc<Core>,
        log: GroupCommit,
        snapshots: Box<dyn SnapshotStore>,
        epoch: u32,
        since_snapshot: u64,
    ) -> Pipeline {
        Pipeline {
            core,
            pending: Pending::default(),
            log,
            snapshots: Arc::new(Mutex::new(snapshots)),
            in_flight: VecDeque::new(),
            held: VecDeque::new(),
            epoch,
            counter: 0,
            since_snapshot,
            commit_clock: Default::default(),
        }
    }

    /// Runs until shutdown; then waits for what is in flight to become durable.
    pub async fn run(
        mut self,
        mut writes: mpsc::UnboundedReceiver<PipelineMsg>,
        mut durable: mpsc::UnboundedReceiver<u64>,
        shutdown: CancellationToken,
    ) {
        let tick = Duration::from_millis((self.core.config().tick_ms / 2).clamp(10, 250));
        let mut expiry = tokio::time::interval(tick);
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut containers =
            tokio::time::interval(Duration::from_millis(self.core.config().container_check_ms));
        containers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                d = durable.recv() => match d {
                    Some(zxid) => self.commit_up_to(zxid as i64),
                    None => {
                        error!("txn log stopped: no write can be acknowledged any more");
                        break;
                    }
                },
                w = writes.recv() => {
                    let Some(w) = w else { break };
                    self.handle(w);
                    // Take everything queued now: it all shares the next fdatasync.
                    while let Ok(w) = writes.try_recv() {
                        self.handle(w);
                    }
                }
                _ = expiry.tick() => self.expire_sessions(),
                _ = containers.tick() => self.remove_containers(),
            }
            if self.in_flight.is_empty()
                && (self.since_snapshot >= self.core.config().snap_count
                    || self.core.take_snapshot_request())
            {
                self.snapshot().await;
            }
        }
        // Shutdown: answer what becomes durable, refuse the rest.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.in_flight.is_empty() && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), durable.recv()).await {
                Ok(Some(zxid)) => self.commit_up_to(zxid as i64),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        for (_, completions) in self.in_flight.drain(..) {
            for c in completions {
                c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
        for (_, c, _) in self.held.drain(..) {
            c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
        }
        writes.close();
        while let Ok(msg) = writes.try_recv() {
            match msg {
                PipelineMsg::Write(WriteRequest {
                    completion: Some(c),
                    ..
                })
                | PipelineMsg::Sync { completion: c, .. }
                | PipelineMsg::ReadIndex { completion: c } => {
                    c.complete(Outcome::Err(ErrorCode::ConnectionLoss))
                }
                PipelineMsg::Write(_) => {}
            }
        }
    }

    fn handle(&mut self, msg: PipelineMsg) {
        match msg {
            PipelineMsg::Write(w) => self.prepare(w),
            // Standalone: every committed txn is applied here already, and the
            // connection answers in request order, so a sync is complete at once.
            PipelineMsg::Sync { path, completion } => {
                completion.complete(Outcome::Ok(crate::reply::Reply::Synced(path)))
            }
            // Likewise a linearizable read (the core answers these itself).
            PipelineMsg::ReadIndex { completion } => {
                completion.complete(Outcome::Ok(crate::reply::Reply::Empty))
            }
        }
    }

    fn next_zxid(&self) -> i64 {
        ((self.epoch as i64) << 32) | (self.counter as i64 + 1)
    }

    fn prepare(&mut self, mut w: WriteRequest) {
        if w.request_number > 0 {
            // A retried exactly-once write: answer from its recorded result, or wait
            // for it if it is still in flight.
            let recorded = crate::apply::answer_of_numbered(
                self.core
                    .tree
                    .read()
                    .numbered(w.session_id, w.request_number),
            );
            if let Some(outcome) = recorded {
                if let Some(c) = w.completion {
                    c.complete(outcome);
                }
                return;
            }
            let twin = self.in_flight.iter_mut().find(|(t, _)| {
                t.session_id == w.session_id && t.request_number == w.request_number
            });
            if let Some((_, waiting)) = twin {
                waiting.extend(w.completion.take());
                return;
            }
        }
        if self.counter == u32::MAX {
            // ZooKeeper starts a new epoch here (by an election); a standalone server
            // needs a restart, which bumps the epoch.
            error!(
                "zxid counter exhausted in epoch {}; restart the server",
                self.epoch
            );
            if let Some(c) = w.completion {
                c.complete(Outcome::Err(ErrorCode::SystemError));
            }
            return;
        }
        let zxid = self.next_zxid();
        let prepared = {
            let tree = self.core.tree.read();
            prep::prepare_with_auth(
                &tree,
                &mut self.pending,
                w.session_id,
                w.cxid,
                zxid,
                crate::now_ms(),
                &w.op,
                w.auth.as_deref(),
            )
        };
        let prepared = match prepared {
            // A numbered write's refusal is logged, so a retry gets the same answer.
            Err(e) if w.request_number > 0 => Ok(prep::refusal_txn(
                w.session_id,
                w.cxid,
                zxid,
                crate::now_ms(),
                &e,
            )),
            other => other,
        };
        match prepared {
            Ok(mut txn) => {
                txn.request_number = w.request_number;
                txn.acked_below = w.acked_below;
                self.counter += 1;
                let payload = txn.encode();
                if let Err(e) = self.log.append(vec![(zxid as u64, payload.into())]) {
                    // The log thread stopped after a fatal error: acknowledge nothing more.
                    error!(error = %e, "cannot log txn");
                    if let Some(c) = w.completion {
                        c.complete(Outcome::Err(ErrorCode::SystemError));
                    }
                    return;
                }
                self.in_flight
                    .push_back((txn, w.completion.into_iter().collect()));
                self.commit_clock.proposed(zxid, &self.core.metrics);
            }
            Err(e) => {
                if let Some(c) = w.completion {
                    let outcome = crate::apply::prep_error_outcome(e);
                    match self.in_flight.back() {
                        Some((last, _)) => self.held.push_back((last.zxid, c, outcome)),
                        None => c.complete(outcome),
                    }
                }
            }
        }
    }

    /// Applies every in-flight txn up to `zxid`, now durable, and answers its client.
    fn commit_up_to(&mut self, zxid: i64) {
        let mut batch = Vec::new();
        while self.in_flight.front().is_some_and(|(t, _)| t.zxid <= zxid) {
            batch.push(self.in_flight.pop_front().expect("front checked"));
        }
        if batch.is_empty() {
            return;
        }
        self.since_snapshot += batch.len() as u64;
        let last = batch.last().map(|(t, _)| t.zxid).unwrap_or(zxid);
        self.commit_clock.committed(last, &self.core.metrics);
        crate::apply::apply_batch(&self.core, batch);
        self.pending.applied(last);
        while self
            .held
            .front()
            .is_some_and(|(after, _, _)| *after <= last)
        {
            let (_, c, outcome) = self.held.pop_front().expect("front checked");
            c.complete(outcome);
        }
    }

    fn expire_sessions(&mut self) {
        for session_id in self.core.leases.expired(Instant::now()) {
            info!(session = format_args!("{session_id:#x}"), "session expired");
            self.core
                .metrics
                .session_expirations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.prepare(WriteRequest::internal(session_id, WriteOp::CloseSession));
        }
    }

    fn remove_containers(&mut self) {
        let paths = self.core.tree.read().containers_to_delete(crate::now_ms());
        for path in paths {
            self.prepare(WriteRequest::internal(0, WriteOp::DeleteContainer { path }));
        }
    }

    /// Writes a snapshot of the tree as of the last applied zxid, then purges what
    /// it makes unnecessary. Runs only when nothing is in flight, so the snapshot
    /// is exactly the state at its zxid.
    async fn snapshot(&mut self) {
        self.since_snapshot = 0;
        let started = Instant::now();
        let (zxid, body) = {
            let tree = self.core.tree.read();
            let mut body = Vec::new();
            tree.serialize(&mut body);
            (tree.last_applied_zxid(), body)
        };
        let size = body.len();
        let retain = self.core.config().snap_retain;
        let store = self.snapshots.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut store = store.lock();
            let saved = store.save(zxid as u64, &body);
            let purged = saved.as_ref().ok().map(|_| store.purge(retain));
            let oldest = store.list().ok().and_then(|l| l.into_iter().min());
            (saved, purged, oldest)
        })
        .await;
        match result {
            Ok((saved, purged, oldest)) => {
                match saved {
                    Ok(()) => {
                        self.core
                            .metrics
                            .snapshot_taken(zxid, size, started.elapsed());
                        info!(
                            zxid = format_args!("{zxid:#x}"),
                            bytes = size,
                            ms = started.elapsed().as_millis() as u64,
                            "snapshot taken"
                        );
                        if let Some(Ok(deleted)) = purged {
                            if !deleted.is_empty() {
                                info!(snapshots = deleted.len(), "purged old snapshots");
                            }
                        }
                        if let Some(oldest) = oldest {
                            // Log records up to the oldest kept snapshot are covered by it.
                            match self.log.purge_before(oldest + 1) {
                                Ok(()) => info!(
                                    before = format_args!("{:#x}", oldest + 1),
                                    "purged log segments the kept snapshots cover"
                                ),
                                Err(e) => warn!(error = %e, "log purge failed"),
                            }
                        }
                    }
                    Err(e) => error!(error = %e, "snapshot failed; the log keeps everything"),
                }
            }
            Err(e) => error!(error = %e, "snapshot task failed"),
        }
    }
}
