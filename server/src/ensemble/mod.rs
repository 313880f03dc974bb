//! An ensemble member: the runtime around the pure ZAB core (`zabkeeper_zab`).
//!
//! One task (the *replica*) owns the `Zab` state machine and executes its actions
//! in order: `Send` goes to the peer transport, `PersistEpochs` is written
//! durably before the next action, `Append` goes to the group-commit log thread
//! whose durability reports come back as `log_durable`, `Deliver` applies
//! committed txns to the tree (and answers the clients waiting for them),
//! `SendSnapshot` serialises the tree (which at that point has applied exactly up
//! to the snapshot's zxid, because deliveries are applied synchronously in action
//! order), and `InstallSnapshot` replaces the tree and resets the log.
//!
//! Writes: on the leader a client's write is validated against the tree plus the
//! writes in flight (`prep`), becomes a txn with the next zxid and is proposed. A
//! follower forwards the write to the leader over the same FIFO link ZAB uses,
//! and answers its client when the committed txn is delivered locally (matched by
//! session id and client xid), or when the leader refuses it.
//!
//! Exactly-once writes (see `tree::results`): a numbered write whose result is
//! already in this member's table is answered from it at once. Otherwise a
//! follower waits for it by (session, request number) and forwards it; the leader
//! answers it from its own table or, when the same number is already proposed,
//! joins the proposal's waiters (a follower's retry needs nothing: the follower
//! answers when the txn is delivered there), and proposes it only if neither. A
//! numbered write that fails validation is proposed as a refusal txn, so its retry
//! is refused the same way.
//!
//! Sessions: creation and close are txns, so every member knows every session.
//! Only the leader expires sessions; followers forward the sessions their clients
//! touched every tick. A newly established leader gives every session a fresh
//! full timeout before expiring anything.
//!
//! Linearizable reads (`PipelineMsg::ReadIndex`): the replica asks the core for a
//! read index (`Zab::read_index`: the leader's lease, or a heartbeat round the
//! leader starts after the read arrived; a follower forwards it to the leader) and
//! answers once this member has applied up to the zxid the core returns; the
//! connection then executes the read. Reads outstanding when the role changes, or
//! unanswered after `READ_INDEX_TIMEOUT`, fail with ConnectionLoss. The core's
//! tick follows real time (missed ticks are made up), which the lease relies on.
//!
//! Serving: a member serves clients only while it is part of an established
//! epoch (after UPTODATE, or as the established leader). When it leaves that state
//! it closes every client connection, so clients move to a member that has a
//! leader; their in-flight writes end with ConnectionLoss (outcome unknown, as
//! in ZooKeeper).

pub mod message;

use crate::apply::{apply_batch, prep_error_outcome};
use crate::auth::AuthId;
use crate::core::Core;
use crate::pipeline::{PipelineMsg, WriteRequest};
use crate::prep::{self, Pending};
use crate::reply::{Completion, Outcome, Reply};
use crate::request::WriteOp;
use crate::storage::epoch::{EpochStore, Epochs, FileEpochStore};
use crate::storage::group_commit::GroupCommit;
use crate::storage::SnapshotStore;
use crate::tree::{DataTree, Numbered};
use crate::txn::Txn;
use message::{envelope::Body, Forward, ForwardedId, ForwardedOp, Refused, SyncReply, Touch};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use zabkeeper_proto::ErrorCode;
use zabkeeper_zab::{Action, Message, Role, ServerId, Zab, Zxid};

use crate::peer::{PeerEvent, PeerNet};

/// What a local client's write waits for: its txn, matched by client xid, or by
/// request number for an exactly-once write (whose retries have other xids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WaitKey {
    Xid(i64, i32),
    Request(i64, u64),
}

impl WaitKey {
    fn of(session_id: i64, cxid: i32, request_number: u64) -> WaitKey {
        if request_number > 0 {
            WaitKey::Request(session_id, request_number)
        } else {
            WaitKey::Xid(session_id, cxid)
        }
    }
}
/// How long a linearizable read may wait for its read index before it fails.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a write came from, to know whom to answer.
enum Origin {
    /// A client of this member (None: the server's own, e.g. session expiry).
    Local(Option<Completion>),
    /// Forwarded by a follower, which answers its own client.
    Remote(ServerId),
}

pub struct Replica {
    core: Arc<Core>,
    zab: Zab,
    net: PeerNet,
    log: GroupCommit,
    epochs: FileEpochStore,
    snapshots: Arc<Mutex<Box<dyn SnapshotStore>>>,
    pending: Pending,
    /// Local clients' writes waiting for their txn.
    waiters: HashMap<WaitKey, VecDeque<Completion>>,
    /// Leader: numbered writes proposed and not yet delivered, by (session, number).
    proposed: HashSet<(i64, u64)>,
    /// Syncs sent to the leader, waiting for its commit point.
    syncs: HashMap<u64, (String, Completion)>,
    /// Linearizable reads waiting for their read index, by read id.
    reads: HashMap<u64, (Instant, Completion)>,
    next_sync: u64,
    /// Answers that wait for this member to apply up to a zxid: syncs whose
    /// commit point is known, and refused writes whose refusal may rest on txns
    /// proposed before them.
    parked: Vec<(i64, Completion, Outcome)>,
    since_snapshot: u64,
    shutdown: CancellationToken,
    commit_clock: crate::metrics::CommitClock,
    /// When this member last left an established epoch (or started): election time.
    looking_since: Option<Instant>,
    /// On the leader: the followers synced with it at the last tick (join/leave log lines).
    synced_followers: Vec<ServerId>,
}

pub struct ReplicaParts {
    pub core: Arc<Core>,
    pub zab: Zab,
    pub net: PeerNet,
    pub log: GroupCommit,
    pub epochs: FileEpochStore,
    pub snapshots: Box<dyn SnapshotStore>,
    pub shutdown: CancellationToken,
}

impl Replica {
    pub fn new(parts: ReplicaParts) -> Replica {
        Replica {
            core: parts.core,
            zab: parts.zab,
            net: parts.net,
            log: parts.log,
            epochs: parts.epochs,
            snapshots: Arc::new(Mutex::new(parts.snapshots)),
            pending: Pending::new(),
            waiters: HashMap::new(),
            proposed: HashSet::new(),
            syncs: HashMap::new(),
            reads: HashMap::new(),
            next_sync: 1,
            parked: Vec::new(),
            since_snapshot: 0,
            shutdown: parts.shutdown,
            commit_clock: Default::default(),
            looking_since: Some(Instant::now()),
            synced_followers: Vec::new(),
        }
    }

    pub async fn run(
        mut self,
        mut writes: mpsc::UnboundedReceiver<PipelineMsg>,
        mut peers: mpsc::UnboundedReceiver<PeerEvent>,
        mut durable: mpsc::UnboundedReceiver<u64>,
    ) {
        let config = self.core.config().clone();
        let mut tick = tokio::time::interval(Duration::from_millis(config.zab_tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut containers =
            tokio::time::interval(Duration::from_millis(config.container_check_ms));
        containers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let actions = self.zab.start();
        self.execute(actions);
        let started = Instant::now();
        let mut ticks = 0u64;
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                d = durable.recv() => match d {
                    Some(zxid) => {
                        let a = self.zab.log_durable(Zxid(zxid));
                        self.execute(a);
                    }
                    None => break,
                },
                ev = peers.recv() => match ev {
                    Some(ev) => self.on_peer(ev),
                    None => break,
                },
                w = writes.recv() => {
                    let Some(w) = w else { break };
                    self.on_client(w);
                    while let Ok(w) = writes.try_recv() {
                        self.on_client(w);
                    }
                }
                _ = tick.tick() => {
                    // The core's clock must follow real time (its read lease
                    // depends on it): tick for every period elapsed, even when this
                    // task was late.
                    let due = started.elapsed().as_millis() as u64 / config.zab_tick_ms;
                    let behind = due.saturating_sub(ticks).clamp(1, 1000);
                    for _ in 0..behind {
                        let a = self.zab.tick();
                        self.execute(a);
                    }
                    ticks += behind;
                    self.on_tick();
                }
                _ = containers.tick() => self.remove_containers(),
            }
            if self.since_snapshot >= config.snap_count || self.core.take_snapshot_request() {
                self.snapshot();
            }
        }
        self.fail_waiting();
    }

    fn is_leader(&self) -> bool {
        self.zab.is_established_leader()
    }

    fn on_client(&mut self, msg: PipelineMsg) {
        match msg {
            PipelineMsg::Write(WriteRequest {
                session_id,
                cxid,
                op,
                request_number,
                acked_below,
                auth,
                completion,
            }) => {
                let numbered = (request_number, acked_below);
                if !self.core.is_serving() {
                    if let Some(c) = completion {
                        c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                    }
                } else if let Some((outcome, _)) = self.recorded(session_id, request_number) {
                    if let Some(c) = completion {
                        c.complete(outcome);
                    }
                } else if self.is_leader() {
                    self.lead_write(
                        session_id,
                        cxid,
                        numbered,
                        op,
                        auth.as_deref(),
                        Origin::Local(completion),
                    );
                } else if let Some(leader) = self.zab.leader() {
                    if let Some(c) = completion {
                        self.waiters
                            .entry(WaitKey::of(session_id, cxid, request_number))
                            .or_default()
                            .push_back(c);
                    }
                    let fwd = Forward {
                        session_id,
                        cxid,
                        op: Some(ForwardedOp::from_op(&op)),
                        request_number,
                        acked_below,
                        auth: ForwardedId::from_ids(auth.as_deref().unwrap_or_default()),
                    };
                    self.net.send(leader, message::encode(Body::Forward(fwd)));
                } else if let Some(c) = completion {
                    c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                }
            }
            PipelineMsg::ReadIndex { completion } => {
                if !self.core.is_serving() {
                    return completion.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                }
                let id = self.next_sync;
                self.next_sync += 1;
                self.reads.insert(id, (Instant::now(), completion));
                let a = self.zab.read_index(id);
                self.execute(a);
            }
            PipelineMsg::Sync { path, completion } => {
                if self.is_leader() {
                    // Everything committed is applied here already.
                    completion.complete(Outcome::Ok(Reply::Synced(path)));
                } else if let (true, Some(leader)) = (self.core.is_serving(), self.zab.leader()) {
                    let id = self.next_sync;
                    self.next_sync += 1;
                    self.syncs.insert(id, (path, completion));
                    self.net.send(leader, message::encode(Body::Sync(id)));
                } else {
                    completion.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                }
            }
        }
    }

    /// The zxid the next proposal will get.
    fn next_zxid(&self) -> Zxid {
        let last = self.zab.last_zxid();
        let epoch = self.zab.current_epoch();
        if last.epoch() == epoch {
            Zxid(last.0 + 1)
        } else {
            Zxid::new(epoch, 1)
        }
    }

    /// The answer to an exactly-once write this member already applied (its
    /// recorded result), or to a stale copy of one (refused), and whether it is a
    /// stale copy; None for a new one.
    fn recorded(&self, session_id: i64, request_number: u64) -> Option<(Outcome, bool)> {
        if request_number == 0 {
            return None;
        }
        let tree = self.core.tree.read();
        let numbered = tree.numbered(session_id, request_number);
        let stale = numbered == Numbered::Stale;
        if stale {
            debug!(
                session = format_args!("{session_id:#x}"),
                request_number, "refused a stale copy of an exactly-once write"
            );
        }
        crate::apply::answer_of_numbered(numbered).map(|outcome| (outcome, stale))
    }

    /// Validates and proposes a write; `auth` is None only for the server's own
    /// writes (expiry, container removal), which are not ACL-checked.
    fn lead_write(
        &mut self,
        session_id: i64,
        cxid: i32,
        numbered: (u64, u64),
        op: WriteOp,
        auth: Option<&[AuthId]>,
        origin: Origin,
    ) {
        let (request_number, acked_below) = numbered;
        if request_number > 0 {
            if let Some((outcome, stale)) = self.recorded(session_id, request_number) {
                match origin {
                    Origin::Local(Some(c)) => c.complete(outcome),
                    Origin::Local(None) => {}
                    // A forwarding follower answers an applied one when the txn is
                    // delivered there; a stale copy is refused so its wait ends.
                    Origin::Remote(from) => {
                        if stale {
                            let mut refused = Refused::new(session_id, cxid, &outcome);
                            refused.request_number = request_number;
                            self.net.send(from, message::encode(Body::Refused(refused)));
                        }
                    }
                }
                return;
            }
            if self.proposed.contains(&(session_id, request_number)) {
                if let Origin::Local(Some(c)) = origin {
                    self.waiters
                        .entry(WaitKey::Request(session_id, request_number))
                        .or_default()
                        .push_back(c);
                }
                return;
            }
        }
        let predicted = self.next_zxid();
        let prepared = {
            let tree = self.core.tree.read();
            prep::prepare_with_auth(
                &tree,
                &mut self.pending,
                session_id,
                cxid,
                predicted.0 as i64,
                crate::now_ms(),
                &op,
                auth,
            )
        };
        let prepared = match prepared {
            // A numbered write's refusal is a txn, so a retry gets the same answer.
            Err(e) if request_number > 0 => Ok(prep::refusal_txn(
                session_id,
                cxid,
                predicted.0 as i64,
                crate::now_ms(),
                &e,
            )),
            other => other,
        };
        let txn = match prepared {
            Ok(mut txn) => {
                txn.request_number = request_number;
                txn.acked_below = acked_below;
                txn
            }
            Err(e) => {
                let outcome = prep_error_outcome(e);
                let after = self.zab.last_zxid().0 as i64;
                match origin {
                    Origin::Local(Some(c)) => self.answer_after(after, c, outcome),
                    Origin::Local(None) => {}
                    Origin::Remote(from) => {
                        let mut refused = Refused::new(session_id, cxid, &outcome);
                        refused.after_zxid = after;
                        self.net.send(from, message::encode(Body::Refused(refused)));
                    }
                }
                return;
            }
        };
        match self.zab.propose(txn.encode().into()) {
            Ok((zxid, actions)) => {
                if zxid != predicted {
                    // prep numbered the overlay with a zxid zab did not use: drop it
                    // (validation falls back to the tree) rather than trust it.
                    error!(%zxid, %predicted, "proposal zxid differs from the predicted one");
                    self.pending.clear();
                }
                if request_number > 0 {
                    self.proposed.insert((session_id, request_number));
                }
                self.commit_clock
                    .proposed(zxid.0 as i64, &self.core.metrics);
                if let Origin::Local(Some(c)) = origin {
                    self.waiters
                        .entry(WaitKey::of(session_id, cxid, request_number))
                        .or_default()
                        .push_back(c);
                }
                self.execute(actions);
            }
            Err(e) => {
                warn!(error = %e, "cannot propose");
                self.pending.clear();
                match origin {
                    Origin::Local(Some(c)) => c.complete(Outcome::Err(ErrorCode::ConnectionLoss)),
                    Origin::Local(None) => {}
                    Origin::Remote(from) => {
                        let mut refused = Refused::new(
                            session_id,
                            cxid,
                            &Outcome::Err(ErrorCode::ConnectionLoss),
                        );
                        refused.request_number = request_number;
                        self.net.send(from, message::encode(Body::Refused(refused)));
                    }
                }
            }
        }
    }

    fn on_peer(&mut self, ev: PeerEvent) {
        let (from, bytes) = match ev {
            PeerEvent::Message { from, bytes } => (from, bytes),
            PeerEvent::Disconnected(peer) => {
                let a = self.zab.peer_disconnected(peer);
                self.execute(a);
                return;
            }
            PeerEvent::Connected(peer) => {
                let a = self.zab.peer_connected(peer);
                self.execute(a);
                return;
            }
        };
        let Some(body) = message::decode(&bytes) else {
            warn!(from, "undecodable peer message");
            return;
        };
        match body {
            Body::Zab(b) => match Message::decode(&b) {
                Ok(m) => {
                    let a = self.zab.step(from, m);
                    self.execute(a);
                }
                Err(e) => warn!(from, error = %e, "undecodable zab message"),
            },
            Body::Forward(f) => {
                let op =
                    f.op.ok_or(ErrorCode::MarshallingError)
                        .and_then(|o| o.into_op());
                match op {
                    Ok(op) if self.is_leader() => {
                        // A forwarded client write always carries its connection's ids
                        // (none at all means an anonymous client, never "unchecked").
                        let auth = ForwardedId::into_ids(f.auth);
                        self.lead_write(
                            f.session_id,
                            f.cxid,
                            (f.request_number, f.acked_below),
                            op,
                            Some(&auth),
                            Origin::Remote(from),
                        )
                    }
                    Ok(_) => {
                        let mut r = Refused::new(
                            f.session_id,
                            f.cxid,
                            &Outcome::Err(ErrorCode::ConnectionLoss),
                        );
                        r.request_number = f.request_number;
                        self.net.send(from, message::encode(Body::Refused(r)));
                    }
                    Err(code) => {
                        let mut r = Refused::new(f.session_id, f.cxid, &Outcome::Err(code));
                        r.request_number = f.request_number;
                        self.net.send(from, message::encode(Body::Refused(r)));
                    }
                }
            }
            Body::Refused(r) => {
                let key = WaitKey::of(r.session_id, r.cxid, r.request_number);
                for c in self.take_waiters(key) {
                    self.answer_after(r.after_zxid, c, r.outcome());
                }
            }
            Body::Touch(t) => {
                if self.is_leader() {
                    let now = Instant::now();
                    for s in t.sessions {
                        self.core.leases.touch(s, now);
                    }
                }
            }
            Body::Sync(id) => {
                // Every COMMIT up to this point is already queued on the link to `from`.
                let zxid = self.zab.last_committed().0 as i64;
                self.net.send(
                    from,
                    message::encode(Body::SyncReply(SyncReply { id, zxid })),
                );
            }
            Body::SyncReply(r) => {
                if let Some((path, c)) = self.syncs.remove(&r.id) {
                    self.answer_after(r.zxid, c, Outcome::Ok(Reply::Synced(path)));
                }
            }
        }
    }

    /// Answers once this member has applied up to `zxid`.
    fn answer_after(&mut self, zxid: i64, c: Completion, outcome: Outcome) {
        if self.core.last_zxid() >= zxid {
            c.complete(outcome);
        } else {
            self.parked.push((zxid, c, outcome));
        }
    }

    /// Who waits for `key`: the oldest waiter for an xid, every waiter (the
    /// original and its retries) for a request number.
    fn take_waiters(&mut self, key: WaitKey) -> Vec<Completion> {
        let Some(queue) = self.waiters.get_mut(&key) else {
            return Vec::new();
        };
        let taken = match key {
            WaitKey::Xid(..) => queue.pop_front().into_iter().collect(),
            WaitKey::Request(..) => queue.drain(..).collect(),
        };
        if queue.is_empty() {
            self.waiters.remove(&key);
        }
        taken
    }

    fn on_tick(&mut self) {
        // A read forwarded to a leader that dropped it (it stopped leading, the
        // link broke) is failed rather than kept forever.
        if !self.reads.is_empty() {
            let now = Instant::now();
            let late: Vec<u64> = self
                .reads
                .iter()
                .filter(|(_, (at, _))| now.duration_since(*at) > READ_INDEX_TIMEOUT)
                .map(|(id, _)| *id)
                .collect();
            for id in late {
                if let Some((_, c)) = self.reads.remove(&id) {
                    c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                }
            }
        }
        let last = self.zab.last_zxid();
        let acks = self.zab.follower_acks();
        let synced: Vec<ServerId> = acks.iter().map(|(id, _)| *id).collect();
        if synced != self.synced_followers {
            let epoch = self.zab.current_epoch();
            for id in synced
                .iter()
                .filter(|id| !self.synced_followers.contains(id))
            {
                info!(member = id, epoch, "member joined: synced with this leader");
            }
            for id in self
                .synced_followers
                .iter()
                .filter(|id| !synced.contains(id))
            {
                info!(
                    member = id,
                    epoch, "member left: no longer follows this leader"
                );
            }
            self.synced_followers = synced;
        }
        let lag = acks
            .into_iter()
            .map(|(id, acked)| (id, txns_between(acked, last)))
            .collect();
        self.core.metrics.set_follower_lag(lag);
        if self.is_leader() {
            for session_id in self.core.leases.expired(Instant::now()) {
                info!(session = format_args!("{session_id:#x}"), "session expired");
                self.core
                    .metrics
                    .session_expirations
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.lead_write(
                    session_id,
                    0,
                    (0, 0),
                    WriteOp::CloseSession,
                    None,
                    Origin::Local(None),
                );
            }
        } else if let Some(leader) = self.zab.leader() {
            let sessions = self.core.take_touched();
            if !sessions.is_empty() {
                self.net
                    .send(leader, message::encode(Body::Touch(Touch { sessions })));
            }
        }
    }

    fn remove_containers(&mut self) {
        if !self.is_leader() {
            return;
        }
        let paths = self.core.tree.read().containers_to_delete(crate::now_ms());
        for path in paths {
            self.lead_write(
                0,
                0,
                (0, 0),
                WriteOp::DeleteContainer { path },
                None,
                Origin::Local(None),
            );
        }
    }

    fn fatal(&self, what: &str, e: impl std::fmt::Display) {
        error!(error = %e, "{what}: stopping this member");
        self.shutdown.cancel();
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    self.net
                        .send(to, message::encode(Body::Zab(msg.encode().into())));
                }
                Action::PersistEpochs {
                    accepted_epoch,
                    current_epoch,
                } => {
                    let epochs = Epochs {
                        accepted: accepted_epoch,
                        current: current_epoch,
                        ..self.epochs.stored()
                    };
                    if let Err(e) = self.epochs.save(epochs) {
                        return self.fatal("cannot persist epochs", e);
                    }
                }
                Action::PersistLeaseMark { set } => {
                    let epochs = Epochs {
                        lease_mark: set,
                        ..self.epochs.stored()
                    };
                    if let Err(e) = self.epochs.save(epochs) {
                        return self.fatal("cannot persist the lease mark", e);
                    }
                }
                Action::Append(txns) => {
                    let records = txns.into_iter().map(|t| (t.zxid.0, t.data)).collect();
                    if let Err(e) = self.log.append(records) {
                        return self.fatal("cannot append to the log", e);
                    }
                }
                Action::Truncate { after } => {
                    if let Err(e) = self.log.truncate_after(after.0) {
                        return self.fatal("cannot truncate the log", e);
                    }
                }
                Action::Deliver(txns) => self.deliver(txns),
                Action::SendSnapshot { to, zxid } => {
                    let mut body = Vec::new();
                    {
                        let tree = self.core.tree.read();
                        debug_assert_eq!(tree.last_applied_zxid(), zxid.0 as i64);
                        tree.serialize(&mut body);
                    }
                    info!(to, %zxid, bytes = body.len(), "sending snapshot");
                    let msg = Message::Snapshot {
                        zxid,
                        data: body.into(),
                    };
                    self.net
                        .send(to, message::encode(Body::Zab(msg.encode().into())));
                }
                Action::InstallSnapshot { zxid, data } => {
                    let tree = match DataTree::deserialize(&data) {
                        Ok(t) => t,
                        Err(e) => return self.fatal("leader's snapshot is unreadable", e),
                    };
                    if let Err(e) = self.snapshots.lock().save(zxid.0, &data) {
                        return self.fatal("cannot save snapshot", e);
                    }
                    if let Err(e) = self.log.reset(zxid.0) {
                        return self.fatal("cannot reset the log", e);
                    }
                    info!(%zxid, nodes = tree.node_count(), "installed leader's snapshot");
                    self.core.install_tree(tree);
                    self.since_snapshot = 0;
                }
                Action::RoleChanged { role, epoch } => {
                    info!(?role, epoch, "role changed");
                    if self.looking_since.is_none() {
                        self.looking_since = Some(Instant::now());
                    }
                    self.commit_clock.clear(&self.core.metrics);
                    let name = match role {
                        Role::Looking => "looking",
                        Role::Following { .. } => "following",
                        Role::Leading => "leading",
                    };
                    self.core.set_role(name, epoch);
                    self.core.set_leader_id(0);
                    self.core.set_serving(false);
                    self.pending.clear();
                    self.proposed.clear();
                    self.fail_waiting();
                    if role == Role::Looking {
                        info!(epoch, "election started");
                    }
                }
                Action::ReadReady { id, zxid } => {
                    if let Some((_, c)) = self.reads.remove(&id) {
                        self.answer_after(zxid.0 as i64, c, Outcome::Ok(Reply::Empty));
                    }
                }
                Action::ReadFailed { id } => {
                    if let Some((_, c)) = self.reads.remove(&id) {
                        c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                    }
                }
                Action::Established => {
                    if self.is_leader() {
                        // A new leader grants every session a full timeout before
                        // expiring anything: clients of the old leader need time to move.
                        let now = Instant::now();
                        let sessions: Vec<(i64, i32)> = self
                            .core
                            .tree
                            .read()
                            .sessions()
                            .iter()
                            .map(|(&id, &t)| (id, t))
                            .collect();
                        for (id, timeout) in sessions {
                            self.core.leases.add(id, timeout as u64, now);
                        }
                        self.pending.clear();
                    }
                    let name = if self.is_leader() {
                        "leading"
                    } else {
                        "following"
                    };
                    self.core.set_role(name, self.zab.current_epoch());
                    self.core.set_leader_id(self.zab.leader().unwrap_or(0));
                    let election_ms = match self.looking_since.take() {
                        Some(since) => {
                            let took = since.elapsed();
                            self.core
                                .metrics
                                .elections
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            self.core.metrics.election_time.observe(took);
                            took.as_millis() as u64
                        }
                        None => 0,
                    };
                    info!(
                        leader = self.is_leader(),
                        leader_id = self.zab.leader().unwrap_or(0),
                        epoch = self.zab.current_epoch(),
                        zxid = %self.zab.last_zxid(),
                        election_ms,
                        "election ended: established, serving clients"
                    );
                    self.core.set_serving(true);
                }
            }
        }
    }

    fn deliver(&mut self, txns: Vec<zabkeeper_zab::Txn>) {
        let mut batch = Vec::with_capacity(txns.len());
        for t in txns {
            let mut txn = match Txn::decode(&t.data) {
                Ok(txn) => txn,
                Err(e) => {
                    return self.fatal(&format!("committed txn {} is undecodable", t.zxid), e)
                }
            };
            txn.zxid = t.zxid.0 as i64;
            if txn.request_number > 0 {
                self.proposed.remove(&(txn.session_id, txn.request_number));
            }
            let key = WaitKey::of(txn.session_id, txn.cxid, txn.request_number);
            let completions = self.take_waiters(key);
            batch.push((txn, completions));
        }
        let Some(last) = batch.last().map(|(t, _)| t.zxid) else {
            return;
        };
        self.since_snapshot += batch.len() as u64;
        self.commit_clock.committed(last, &self.core.metrics);
        apply_batch(&self.core, batch);
        self.pending.applied(last);
        if !self.parked.is_empty() {
            let applied = self.core.last_zxid();
            let mut keep = Vec::new();
            for (zxid, c, outcome) in self.parked.drain(..) {
                if zxid <= applied {
                    c.complete(outcome);
                } else {
                    keep.push((zxid, c, outcome));
                }
            }
            self.parked = keep;
        }
    }

    /// Ends every wait with ConnectionLoss: their outcome is unknown.
    fn fail_waiting(&mut self) {
        for (_, queue) in self.waiters.drain() {
            for c in queue {
                c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
        for (_, (_, c)) in self.syncs.drain() {
            c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
        }
        for (_, (_, c)) in self.reads.drain() {
            c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
        }
        for (_, c, _) in self.parked.drain(..) {
            c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
        }
    }

    /// Snapshot of the tree at its last applied zxid (taken between applies, so
    /// exact), then purge of snapshots and log segments no longer needed.
    fn snapshot(&mut self) {
        self.since_snapshot = 0;
        let started = Instant::now();
        let (zxid, body) = {
            let tree = self.core.tree.read();
            let mut body = Vec::new();
            tree.serialize(&mut body);
            (tree.last_applied_zxid(), body)
        };
        let retain = self.core.config().snap_retain;
        let store = self.snapshots.clone();
        let saved = {
            let mut store = store.lock();
            store.save(zxid as u64, &body).and_then(|_| {
                let deleted = store.purge(retain)?;
                Ok((deleted, store.list()?))
            })
        };
        match saved {
            Ok((deleted, list)) => {
                self.core
                    .metrics
                    .snapshot_taken(zxid, body.len(), started.elapsed());
                info!(
                    zxid = format_args!("{zxid:#x}"),
                    bytes = body.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot taken"
                );
                if !deleted.is_empty() {
                    info!(snapshots = deleted.len(), "purged old snapshots");
                }
                if let Some(oldest) = list.into_iter().min() {
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
}

/// Txns from `from` (exclusive) to `to` (inclusive): the counter difference within
/// an epoch; across epochs, `to`'s counter (what the new epoch has added).
fn txns_between(from: Zxid, to: Zxid) -> u64 {
    if to <= from {
        0
    } else if to.epoch() == from.epoch() {
        to.0 - from.0
    } else {
        to.0 & 0xffff_ffff
    }
}
