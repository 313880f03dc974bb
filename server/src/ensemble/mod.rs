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
//! Sessions: creation and close are txns, so every member knows every session.
//! Only the leader expires sessions; followers forward the sessions their clients
//! touched every tick. A newly established leader gives every session a fresh
//! full timeout before expiring anything.
//!
//! Serving: a member serves clients only while it is part of an established
//! epoch (after UPTODATE, or as the established leader). When it leaves that state
//! it closes every client connection, so clients move to a member that has a
//! leader; their in-flight writes end with ConnectionLoss (outcome unknown, as
//! in ZooKeeper).

pub mod message;

use crate::apply::{apply_batch, prep_error_outcome};
use crate::core::Core;
use crate::pipeline::{PipelineMsg, WriteRequest};
use crate::prep::{self, Pending};
use crate::reply::{Completion, Outcome, Reply};
use crate::request::WriteOp;
use crate::storage::epoch::{EpochStore, Epochs, FileEpochStore};
use crate::storage::group_commit::GroupCommit;
use crate::storage::SnapshotStore;
use crate::tree::DataTree;
use crate::txn::Txn;
use message::{envelope::Body, Forward, ForwardedOp, Refused, SyncReply, Touch};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use zabkeeper_proto::ErrorCode;
use zabkeeper_zab::{Action, Message, Role, ServerId, Zab, Zxid};

use crate::peer::{PeerEvent, PeerNet};

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
    /// Local clients' writes waiting for their txn, by (session, client xid).
    waiters: HashMap<(i64, i32), VecDeque<Completion>>,
    /// Syncs sent to the leader, waiting for its commit point.
    syncs: HashMap<u64, (String, Completion)>,
    next_sync: u64,
    /// Answers that wait for this member to apply up to a zxid: syncs whose
    /// commit point is known, and refused writes whose refusal may rest on txns
    /// proposed before them.
    parked: Vec<(i64, Completion, Outcome)>,
    since_snapshot: u64,
    shutdown: CancellationToken,
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
            syncs: HashMap::new(),
            next_sync: 1,
            parked: Vec::new(),
            since_snapshot: 0,
            shutdown: parts.shutdown,
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
                    let a = self.zab.tick();
                    self.execute(a);
                    self.on_tick();
                }
                _ = containers.tick() => self.remove_containers(),
            }
            if self.since_snapshot >= config.snap_count {
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
                completion,
            }) => {
                if !self.core.is_serving() {
                    if let Some(c) = completion {
                        c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                    }
                } else if self.is_leader() {
                    self.lead_write(session_id, cxid, op, Origin::Local(completion));
                } else if let Some(leader) = self.zab.leader() {
                    if let Some(c) = completion {
                        self.waiters
                            .entry((session_id, cxid))
                            .or_default()
                            .push_back(c);
                    }
                    let fwd = Forward {
                        session_id,
                        cxid,
                        op: Some(ForwardedOp::from_op(&op)),
                    };
                    self.net.send(leader, message::encode(Body::Forward(fwd)));
                } else if let Some(c) = completion {
                    c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
                }
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

    fn lead_write(&mut self, session_id: i64, cxid: i32, op: WriteOp, origin: Origin) {
        let predicted = self.next_zxid();
        let prepared = {
            let tree = self.core.tree.read();
            prep::prepare(
                &tree,
                &mut self.pending,
                session_id,
                cxid,
                predicted.0 as i64,
                crate::now_ms(),
                &op,
            )
        };
        let txn = match prepared {
            Ok(txn) => txn,
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
                if let Origin::Local(Some(c)) = origin {
                    self.waiters
                        .entry((session_id, cxid))
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
                        let refused = Refused::new(
                            session_id,
                            cxid,
                            &Outcome::Err(ErrorCode::ConnectionLoss),
                        );
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
                        self.lead_write(f.session_id, f.cxid, op, Origin::Remote(from))
                    }
                    Ok(_) => {
                        let r = Refused::new(
                            f.session_id,
                            f.cxid,
                            &Outcome::Err(ErrorCode::ConnectionLoss),
                        );
                        self.net.send(from, message::encode(Body::Refused(r)));
                    }
                    Err(code) => {
                        let r = Refused::new(f.session_id, f.cxid, &Outcome::Err(code));
                        self.net.send(from, message::encode(Body::Refused(r)));
                    }
                }
            }
            Body::Refused(r) => {
                if let Some(c) = self.take_waiter(r.session_id, r.cxid) {
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

    fn take_waiter(&mut self, session_id: i64, cxid: i32) -> Option<Completion> {
        let key = (session_id, cxid);
        let queue = self.waiters.get_mut(&key)?;
        let c = queue.pop_front();
        if queue.is_empty() {
            self.waiters.remove(&key);
        }
        c
    }

    fn on_tick(&mut self) {
        if self.is_leader() {
            for session_id in self.core.leases.expired(Instant::now()) {
                info!(session = format_args!("{session_id:#x}"), "session expired");
                self.lead_write(session_id, 0, WriteOp::CloseSession, Origin::Local(None));
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
            self.lead_write(0, 0, WriteOp::DeleteContainer { path }, Origin::Local(None));
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
                    if let Err(e) = self.epochs.save(Epochs {
                        accepted: accepted_epoch,
                        current: current_epoch,
                    }) {
                        return self.fatal("cannot persist epochs", e);
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
                    let name = match role {
                        Role::Looking => "looking",
                        Role::Following { .. } => "following",
                        Role::Leading => "leading",
                    };
                    self.core.set_role(name, epoch);
                    self.core.set_serving(false);
                    self.pending.clear();
                    self.fail_waiting();
                    if role == Role::Looking {
                        debug!("election started");
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
                    info!(
                        leader = self.is_leader(),
                        epoch = self.zab.current_epoch(),
                        zxid = %self.zab.last_zxid(),
                        "established: serving clients"
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
            let completion = self.take_waiter(txn.session_id, txn.cxid);
            batch.push((txn, completion));
        }
        let Some(last) = batch.last().map(|(t, _)| t.zxid) else {
            return;
        };
        self.since_snapshot += batch.len() as u64;
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
            store
                .save(zxid as u64, &body)
                .and_then(|_| store.purge(retain))
                .and_then(|_| store.list())
        };
        match saved {
            Ok(list) => {
                info!(
                    zxid = format_args!("{zxid:#x}"),
                    bytes = body.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot taken"
                );
                if let Some(oldest) = list.into_iter().min() {
                    if let Err(e) = self.log.purge_before(oldest + 1) {
                        warn!(error = %e, "log purge failed");
                    }
                }
            }
            Err(e) => error!(error = %e, "snapshot failed; the log keeps everything"),
        }
    }
}
