//! The core shared by every connection: the tree, the watches, the connection
//! registry and the session leases, plus the door into the write pipeline.
//!
//! Concurrency: the tree sits behind one `RwLock`. Reads run on the connection
//! tasks under the read lock; committed txns are applied in batches under the
//! write lock by the pipeline. Watch notifications are pushed into connection
//! outboxes *while the write lock is held*, and reads register their watches while
//! holding the read lock, so (a) a read never misses a change that happened after
//! it registered its watch, and (b) any read that sees a change is answered after
//! the notification of that change was queued on its connection.

use crate::auth::AuthId;
use crate::config::Config;
use crate::history::{Change, History, ZxidWatch};
use crate::limits::{Admission, FloodGuard};
use crate::metrics::{Gauges, Metrics, OpKind, OpTimer};
use crate::outbox::{outbox, OutboxRx, OutboxTx};
use crate::pipeline::{PipelineMsg, WriteRequest};
use crate::prep::permits;
use crate::reply::{ChangeInfo, Completion, Event, Outcome, Outgoing, Reply};
use crate::request::{ReadOp, WriteOp};
use crate::session::{password_for, SessionIds, SessionTracker};
use crate::tree::DataTree;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use zabkeeper_proto::wire::{self, WatcherType};
use zabkeeper_proto::{perms, ErrorCode, EventType};
use zabkeeper_watch::{WatchKind, WatchManager};

/// A connection's identity inside the server (not the session: a session may move
/// between connections).
pub type ConnId = u64;

/// How long a member behind a reconnecting client's last zxid waits to catch up
/// before refusing it with `NotCaughtUp`.
const CATCH_UP_WAIT_MS: u64 = 2000;

/// A member's place in the ensemble, as reported to clients and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub id: u64,
    pub role: &'static str,
    pub epoch: u32,
    pub last_zxid: i64,
    pub serving: bool,
}

/// What a successful handshake grants.
#[derive(Debug, Clone)]
pub struct Grant {
    pub session_id: i64,
    pub timeout_ms: i32,
    pub password: Vec<u8>,
    pub zxid: i64,
    /// The highest request number applied here for the session.
    pub last_request_number: u64,
}

pub struct Core {
    config: Config,
    pub(crate) tree: RwLock<DataTree>,
    pub(crate) watches: Mutex<WatchManager<ConnId>>,
    conns: DashMap<ConnId, OutboxTx>,
    /// Connection counts across both client ports.
    pub(crate) admission: std::sync::Arc<Admission>,
    /// Request-rate buckets of the sessions.
    pub(crate) flood: FloodGuard,
    /// Requests received and not yet answered, over every connection of both ports.
    outstanding: AtomicU64,
    /// Each connection's identities, to filter the watch events it may see.
    conn_auth: DashMap<ConnId, Arc<[AuthId]>>,
    session_conn: DashMap<i64, ConnId>,
    pub(crate) leases: SessionTracker,
    session_ids: SessionIds,
    next_conn: AtomicU64,
    last_zxid: AtomicI64,
    writes: mpsc::UnboundedSender<PipelineMsg>,
    /// False while an ensemble member has no established leader: it then refuses
    /// clients (they go to another member) instead of serving stale or stuck state.
    serving: AtomicBool,
    /// Ensemble followers collect touched sessions here and forward them to the
    /// leader, which owns the leases. None in standalone mode.
    touched: Option<Mutex<HashSet<i64>>>,
    server_id: u64,
    /// (role, epoch) as the replica last reported them.
    role: Mutex<(&'static str, u32)>,
    /// Recent changes and the watches opened from a zxid (see `history`). Locked
    /// after the tree and the watch manager.
    pub(crate) history: Mutex<History>,
    pub(crate) zxid_watches: Mutex<Vec<ZxidWatch>>,
    /// Deliberate faults for the history checker's negative tests only.
    pub(crate) test_fault: TestFault,
    /// Counters and histograms served on the admin port's `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set by the admin `snapshot` command; the pipeline or replica takes one soon.
    snapshot_request: AtomicBool,
    /// The established leader's id (0: none known; a standalone server is its own).
    leader_id: AtomicU64,
}

/// Deliberately broken behaviours, set only through the environment variable
/// `ZABKEEPER_UNSAFE_TEST_FAULT` by the linearizability tests, which must show that
/// their checker catches them. Never set it in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    None,
    /// `stale-connect`: accept a reconnecting client without the zxid check.
    StaleConnect,
    /// `local-linearizable`: serve linearizable reads locally, without a read index.
    LocalLinearizable,
}

impl TestFault {
    fn from_env() -> TestFault {
        match std::env::var("ZABKEEPER_UNSAFE_TEST_FAULT").as_deref() {
            Ok("stale-connect") => TestFault::StaleConnect,
            Ok("local-linearizable") => TestFault::LocalLinearizable,
            _ => TestFault::None,
        }
    }
}

impl Core {
    pub fn new(
        config: Config,
        tree: DataTree,
        server_id: u64,
        writes: mpsc::UnboundedSender<PipelineMsg>,
        ensemble: bool,
    ) -> Core {
        let now_ms = crate::now_ms() as u64;
        let last = tree.last_applied_zxid();
        let leases = SessionTracker::new();
        let now = Instant::now();
        // Every session known from disk gets a fresh full lease: a restart must not
        // expire sessions whose clients are still there and about to reconnect.
        for (&id, &timeout_ms) in tree.sessions() {
            leases.add(id, timeout_ms as u64, now);
        }
        let history = History::new(config.watch_history, last);
        Core {
            admission: Admission::new(config.max_connections, config.max_connections_per_ip),
            flood: FloodGuard::new(config.max_session_requests_per_sec),
            config,
            history: Mutex::new(history),
            zxid_watches: Mutex::new(Vec::new()),
            tree: RwLock::new(tree),
            watches: Mutex::new(WatchManager::new()),
            outstanding: AtomicU64::new(0),
            conns: DashMap::new(),
            conn_auth: DashMap::new(),
            session_conn: DashMap::new(),
            leases,
            session_ids: SessionIds::new(server_id, now_ms),
            next_conn: AtomicU64::new(1),
            last_zxid: AtomicI64::new(last),
            writes,
            serving: AtomicBool::new(!ensemble),
            touched: ensemble.then(|| Mutex::new(HashSet::new())),
            server_id,
            role: Mutex::new((
                if ensemble { "looking" } else { "standalone" },
                (last >> 32) as u32,
            )),
            test_fault: TestFault::from_env(),
            metrics: Arc::new(Metrics::default()),
            snapshot_request: AtomicBool::new(false),
            leader_id: AtomicU64::new(0),
        }
    }

    pub fn server_state(&self) -> ServerState {
        let (role, epoch) = *self.role.lock();
        ServerState {
            id: self.server_id,
            role,
            epoch,
            last_zxid: self.last_zxid(),
            serving: self.is_serving(),
        }
    }

    /// Asks the pipeline (or replica) to take a snapshot at its next turn.
    pub fn request_snapshot(&self) {
        self.snapshot_request.store(true, Ordering::Release);
    }

    pub(crate) fn take_snapshot_request(&self) -> bool {
        self.snapshot_request.swap(false, Ordering::AcqRel)
    }

    /// The leader this member follows or is (None while looking, or standalone).
    pub fn leader_id(&self) -> Option<u64> {
        Some(self.leader_id.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    pub(crate) fn set_leader_id(&self, id: u64) {
        self.leader_id.store(id, Ordering::Release);
    }

    /// Every client connection: (connection id, its session, the session's timeout).
    pub fn connections(&self) -> Vec<(ConnId, Option<i64>, Option<i32>)> {
        let mut by_conn: std::collections::HashMap<ConnId, i64> = self
            .session_conn
            .iter()
            .map(|e| (*e.value(), *e.key()))
            .collect();
        let mut conns: Vec<ConnId> = self.conns.iter().map(|e| *e.key()).collect();
        conns.sort_unstable();
        let tree = self.tree.read();
        conns
            .into_iter()
            .map(|c| {
                let session = by_conn.remove(&c);
                (c, session, session.and_then(|s| tree.session_timeout(s)))
            })
            .collect()
    }

    pub(crate) fn set_role(&self, role: &'static str, epoch: u32) {
        *self.role.lock() = (role, epoch);
    }

    /// Whether this member serves clients now.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Starts or stops serving clients; stopping closes every client connection so
    /// clients move to a member that has a leader.
    pub fn set_serving(&self, serving: bool) {
        let was = self.serving.swap(serving, Ordering::AcqRel);
        if was && !serving {
            for conn in self.conns.iter() {
                conn.value()
                    .push(Outgoing::Close(ErrorCode::ConnectionLoss));
            }
        }
    }

    /// Sessions touched since the last call (ensemble followers forward them).
    pub fn take_touched(&self) -> Vec<i64> {
        match &self.touched {
            Some(t) => t.lock().drain().collect(),
            None => Vec::new(),
        }
    }

    /// Replaces the whole tree (a follower installing the leader's snapshot).
    pub(crate) fn install_tree(&self, tree: DataTree) {
        let mut current = self.tree.write();
        self.set_last_zxid(tree.last_applied_zxid());
        self.history.lock().reset(tree.last_applied_zxid());
        *current = tree;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The last zxid applied to this member's tree.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Acquire)
    }

    pub(crate) fn set_last_zxid(&self, zxid: i64) {
        self.last_zxid.store(zxid, Ordering::Release);
    }

    /// Registers a new connection: its id, the receiving end of its outbox, and the
    /// token that fires when the connection must be cut off (its outbox overflowed).
    pub fn register_conn(&self) -> (ConnId, OutboxRx, tokio_util::sync::CancellationToken) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx, cutoff) = outbox(self.config.max_queued_bytes);
        self.conns.insert(id, tx);
        (id, rx, cutoff)
    }

    /// Records the connection's identities (at start and after each `auth`).
    pub fn set_conn_auth(&self, conn: ConnId, ids: Arc<[AuthId]>) {
        self.conn_auth.insert(conn, ids);
    }

    pub fn unregister_conn(&self, conn: ConnId, session: Option<i64>) {
        self.conns.remove(&conn);
        self.conn_auth.remove(&conn);
        self.watches.lock().remove_watcher(conn);
        self.zxid_watches.lock().retain(|w| w.conn != conn);
        if let Some(s) = session {
            self.session_conn.remove_if(&s, |_, c| *c == conn);
        }
    }

    /// Moves a connection's share of the outstanding-requests gauge from `*reported`
    /// to `now`.
    pub(crate) fn report_outstanding(&self, reported: &mut usize, now: usize) {
        if now > *reported {
            self.outstanding
                .fetch_add((now - *reported) as u64, Ordering::Relaxed);
        } else if now < *reported {
            self.outstanding
                .fetch_sub((*reported - now) as u64, Ordering::Relaxed);
        }
        *reported = now;
    }

    /// Requests received and not yet answered, over every client connection.
    pub fn outstanding_requests(&self) -> u64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Handshake: opens a new session or resumes one.
    pub async fn connect(
        &self,
        conn: ConnId,
        req: &wire::ConnectRequest,
    ) -> Result<Grant, (ErrorCode, String)> {
        if !self.is_serving() {
            return Err((
                ErrorCode::NoLeader,
                "this member has no leader yet; try another".into(),
            ));
        }
        // A member behind the client waits a little to catch up before refusing.
        let deadline = Instant::now() + std::time::Duration::from_millis(CATCH_UP_WAIT_MS);
        let check = self.test_fault != TestFault::StaleConnect;
        while check && req.last_zxid_seen > self.last_zxid() && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let ours = self.last_zxid();
        if check && req.last_zxid_seen > ours {
            return Err((
                ErrorCode::NotCaughtUp,
                format!(
                    "this server has seen zxid {ours:#x}, older than the client's {:#x}; try another server",
                    req.last_zxid_seen
                ),
            ));
        }
        if req.session_id == 0 {
            let timeout_ms = self.config.negotiate_timeout(req.timeout_ms);
            let session_id = self.session_ids.next();
            let (tx, mut rx) = mpsc::unbounded_channel();
            self.submit(
                session_id,
                0,
                WriteOp::CreateSession { timeout_ms },
                Arc::from(Vec::new()),
                Completion::new(tx, 0),
            );
            match rx.recv().await {
                Some((_, Outcome::Ok(_))) => {}
                Some((_, other)) => {
                    return Err((
                        ErrorCode::from_code(other.code()).unwrap_or(ErrorCode::SystemError),
                        "could not create session".into(),
                    ))
                }
                None => return Err((ErrorCode::ConnectionLoss, "server shutting down".into())),
            }
            self.bind(session_id, conn);
            return Ok(Grant {
                session_id,
                timeout_ms,
                password: password_for(session_id),
                zxid: self.last_zxid(),
                last_request_number: 0,
            });
        }
        let id = req.session_id;
        if req.password.as_ref() != password_for(id).as_slice() {
            return Err((
                ErrorCode::AuthFailed,
                format!("wrong password for session {id:#x}"),
            ));
        }
        let (timeout_ms, last_request_number) = {
            let tree = self.tree.read();
            (tree.session_timeout(id), tree.last_request_number(id))
        };
        let Some(timeout_ms) = timeout_ms else {
            return Err((
                ErrorCode::SessionExpired,
                format!("session {id:#x} has expired"),
            ));
        };
        if !self.leases.touch(id, Instant::now()) {
            return Err((
                ErrorCode::SessionExpired,
                format!("session {id:#x} has expired"),
            ));
        }
        self.bind(id, conn);
        Ok(Grant {
            session_id: id,
            timeout_ms,
            password: password_for(id),
            zxid: self.last_zxid(),
            last_request_number,
        })
    }

    /// Makes `conn` the session's connection; a previous one is told the session moved.
    fn bind(&self, session: i64, conn: ConnId) {
        if let Some(old) = self.session_conn.insert(session, conn) {
            if old != conn {
                if let Some(outbox) = self.conns.get(&old) {
                    outbox.push(Outgoing::Close(ErrorCode::SessionMoved));
                }
            }
        }
    }

    /// Extends the session's lease. False if the session is gone or closing.
    pub fn touch(&self, session: i64) -> bool {
        let live = self.leases.touch(session, Instant::now());
        if live {
            if let Some(t) = &self.touched {
                t.lock().insert(session);
            }
        }
        live
    }

    /// Hands a write to the pipeline; its outcome goes to `completion`. The leader
    /// checks its ACLs against `auth`, the identities of the client's connection.
    pub fn submit(
        &self,
        session_id: i64,
        cxid: i32,
        op: WriteOp,
        auth: Arc<[AuthId]>,
        completion: Completion,
    ) {
        self.submit_numbered(session_id, cxid, (0, 0), op, auth, completion)
    }

    /// [`submit`](Self::submit) for an exactly-once write: `numbered` is the client's
    /// (request number, acked below); a number already applied for the session is
    /// answered with its recorded result (see `tree::results`).
    pub fn submit_numbered(
        &self,
        session_id: i64,
        cxid: i32,
        numbered: (u64, u64),
        op: WriteOp,
        auth: Arc<[AuthId]>,
        mut completion: Completion,
    ) {
        if let Some(kind) = OpKind::of_write(&op) {
            completion.timer = Some(OpTimer::start(&self.metrics, kind));
        }
        let req = WriteRequest {
            session_id,
            cxid,
            op,
            request_number: numbered.0,
            acked_below: numbered.1,
            auth: Some(auth),
            completion: Some(completion),
        };
        if let Err(e) = self.writes.send(PipelineMsg::Write(req)) {
            if let PipelineMsg::Write(WriteRequest {
                completion: Some(c),
                ..
            }) = e.0
            {
                c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
    }

    /// `sync`: completes once this member has applied every write committed before
    /// the sync began (in an ensemble, the leader's commit point at that moment).
    pub fn sync(&self, path: String, mut completion: Completion) {
        completion.timer = Some(OpTimer::start(&self.metrics, OpKind::Sync));
        if let Err(e) = self.writes.send(PipelineMsg::Sync { path, completion }) {
            if let PipelineMsg::Sync { completion, .. } = e.0 {
                completion.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
    }

    /// Linearizable read: completes (Ok) once this member may serve the read, that
    /// is, once it has applied every write committed before now (read index or
    /// lease, see `zab/src/read_index.rs`). Standalone, that is at once.
    pub fn read_index(&self, completion: Completion) {
        if self.touched.is_none() || self.test_fault == TestFault::LocalLinearizable {
            return completion.complete(Outcome::Ok(Reply::Empty));
        }
        if let Err(e) = self.writes.send(PipelineMsg::ReadIndex { completion }) {
            if let PipelineMsg::ReadIndex { completion } = e.0 {
                completion.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
    }

    /// Serves a read from the local tree, registering its watch atomically with it.
    /// ACLs are checked against `auth` as ZooKeeper 3.8's `FinalRequestProcessor`
    /// does (see [`check_read`]); a refused read registers no watch.
    pub fn read(&self, conn: ConnId, op: &ReadOp, auth: &[AuthId]) -> Outcome {
        self.metrics.time(
            OpKind::of_read(op),
            || self.read_untimed(conn, op, auth),
            |o| o.code() != 0,
        )
    }

    fn read_untimed(&self, conn: ConnId, op: &ReadOp, auth: &[AuthId]) -> Outcome {
        let tree = self.tree.read();
        if let ReadOp::Exists { path, watch: true }
        | ReadOp::GetData { path, watch: true }
        | ReadOp::GetChildren {
            path, watch: true, ..
        } = op
        {
            if !self.watch_allowed(&self.watches.lock(), conn, path) {
                return Outcome::Err(ErrorCode::QuotaExceeded);
            }
        }
        let mut watches = None;
        let mut watch = |path: &str, kind: WatchKind| {
            watches
                .get_or_insert_with(|| self.watches.lock())
                .add(path, conn, kind);
        };
        let result = match op {
            ReadOp::Exists { path, watch: w } => match tree.acl_of(path) {
                Some(acl) if !permits(acl, perms::READ, auth) => Err(ErrorCode::NoAuth),
                _ => {
                    // exists() watches a missing node too: it fires on creation.
                    if *w {
                        watch(path, WatchKind::Data);
                    }
                    tree.exists(path).map(Reply::Stat).ok_or(ErrorCode::NoNode)
                }
            },
            ReadOp::GetData { path, watch: w } => {
                let r = check_read(&tree, path, perms::READ, auth).and_then(|_| {
                    tree.get_data(path)
                        .map(|(data, stat)| Reply::Data { data, stat })
                });
                if *w && r.is_ok() {
                    watch(path, WatchKind::Data);
                }
                r
            }
            ReadOp::GetChildren { path, watch: w, .. } => {
                let r = check_read(&tree, path, perms::READ, auth).and_then(|_| {
                    tree.get_children(path)
                        .map(|(children, stat)| Reply::Children { children, stat })
                });
                if *w && r.is_ok() {
                    watch(path, WatchKind::Child);
                }
                r
            }
            other => Self::read_plain(&tree, other, auth),
        };
        result.into()
    }

    fn read_plain(tree: &DataTree, op: &ReadOp, auth: &[AuthId]) -> Result<Reply, ErrorCode> {
        match op {
            ReadOp::Exists { path, .. } => match tree.acl_of(path) {
                Some(acl) if !permits(acl, perms::READ, auth) => Err(ErrorCode::NoAuth),
                _ => tree.exists(path).map(Reply::Stat).ok_or(ErrorCode::NoNode),
            },
            ReadOp::GetData { path, .. } => {
                check_read(tree, path, perms::READ, auth)?;
                tree.get_data(path)
                    .map(|(data, stat)| Reply::Data { data, stat })
            }
            ReadOp::GetChildren { path, .. } => {
                check_read(tree, path, perms::READ, auth)?;
                tree.get_children(path)
                    .map(|(children, stat)| Reply::Children { children, stat })
            }
            ReadOp::GetAcl { path } => {
                check_read(tree, path, perms::READ | perms::ADMIN, auth)?;
                let (mut acl, stat) = tree.get_acl(path)?;
                if check_read(tree, path, perms::ADMIN, auth).is_err() {
                    // Without ADMIN the digest hashes are hidden (`user:x`), as in ZooKeeper.
                    for a in acl.iter_mut().filter(|a| a.scheme == "digest") {
                        if let Some((user, _)) = a.id.split_once(':') {
                            a.id = format!("{user}:x");
                        }
                    }
                }
                Ok(Reply::Acl { acl, stat })
            }
            ReadOp::GetAllChildrenNumber { path } => {
                check_read(tree, path, perms::READ, auth)?;
                tree.get_all_children_number(path)
                    .map(|n| Reply::Count(n as i32))
            }
            ReadOp::GetEphemerals { .. } => Err(ErrorCode::BadArguments),
            ReadOp::MultiRead(ops) => Ok(Reply::Multi(
                ops.iter()
                    .map(|op| Self::read_plain(tree, op, auth))
                    .collect(),
            )),
        }
    }

    /// getEphemerals: the session's ephemerals under a prefix.
    pub fn get_ephemerals(&self, session: i64, prefix: &str) -> Outcome {
        self.metrics.time(
            OpKind::GetEphemerals,
            || {
                Outcome::Ok(Reply::Paths(
                    self.tree.read().get_ephemerals(session, prefix),
                ))
            },
            |_| false,
        )
    }

    /// The figures `/metrics` reads from the tree, watches and connections.
    pub fn gauges(&self) -> Gauges {
        let (znodes, data_bytes, sessions) = {
            let tree = self.tree.read();
            (
                tree.node_count() as u64,
                tree.approximate_data_size(),
                tree.sessions().len() as u64,
            )
        };
        let watches = {
            let w = self.watches.lock();
            [
                ("data", WatchKind::Data),
                ("child", WatchKind::Child),
                ("persistent", WatchKind::Persistent),
                ("persistent_recursive", WatchKind::PersistentRecursive),
            ]
            .into_iter()
            .map(|(name, kind)| (name, w.count(kind) as u64))
            .collect()
        };
        let state = self.server_state();
        Gauges {
            znodes,
            data_bytes,
            watches,
            sessions,
            connections: self.connection_count() as u64,
            role: state.role,
            serving: state.serving,
            epoch: state.epoch,
            last_zxid: state.last_zxid,
            server_id: state.id,
        }
    }

    /// Whether `conn` may watch `path`: it already does, or it watches fewer paths than
    /// `max_watches_per_session` (a session has one connection at a time).
    fn watch_allowed(&self, watches: &WatchManager<ConnId>, conn: ConnId, path: &str) -> bool {
        watches.paths_of(conn) < self.config.max_watches_per_session
            || watches.watches_path(path, conn)
    }

    /// addWatch: a persistent (recursive) watch; `QuotaExceeded` past the session's limit.
    pub fn add_watch(&self, conn: ConnId, path: &str, recursive: bool) -> Outcome {
        let kind = if recursive {
            WatchKind::PersistentRecursive
        } else {
            WatchKind::Persistent
        };
        let _tree = self.tree.read();
        let mut watches = self.watches.lock();
        if !self.watch_allowed(&watches, conn, path) {
            return Outcome::Err(ErrorCode::QuotaExceeded);
        }
        watches.add(path, conn, kind);
        Outcome::Ok(Reply::Empty)
    }

    /// `AddWatchFrom`: replays the recorded changes after `from_zxid` that match,
    /// then registers the watch for the live ones, with applying held off by the
    /// tree's read lock so nothing falls between (see `history`).
    pub fn add_watch_from(&self, conn: ConnId, req: &wire::AddWatchFromRequest) -> Outcome {
        if req.watch_id == 0 {
            return Outcome::Err(ErrorCode::BadArguments);
        }
        let _tree = self.tree.read();
        if req.from_zxid > self.last_zxid() {
            return Outcome::Err(ErrorCode::NotCaughtUp);
        }
        let watch = ZxidWatch {
            conn,
            id: req.watch_id,
            path: req.path.clone(),
            recursive: req.recursive,
            with_data: req.with_data,
        };
        {
            let history = self.history.lock();
            let Some(changes) = history.since(req.from_zxid) else {
                return Outcome::Err(ErrorCode::WatchHistoryGone);
            };
            if let Some(outbox) = self.conns.get(&conn) {
                for c in changes.filter(|c| watch.matches(c)) {
                    outbox.push(Outgoing::Event(change_event(&watch, c)));
                }
            }
        }
        let mut watches = self.zxid_watches.lock();
        watches.retain(|w| !(w.conn == conn && w.id == req.watch_id));
        watches.push(watch);
        Outcome::Ok(Reply::Empty)
    }

    /// Records an applied change and sends it to the zxid watches it matches.
    /// Called with the tree's write lock held (see the module doc).
    pub(crate) fn record_change(&self, change: Change) {
        let watches = self.zxid_watches.lock();
        for w in watches.iter().filter(|w| w.matches(&change)) {
            if let Some(outbox) = self.conns.get(&w.conn) {
                outbox.push(Outgoing::Event(change_event(w, &change)));
            }
        }
        drop(watches);
        self.history.lock().push(change);
    }

    /// removeWatches (`remove`) or checkWatches (`!remove`) for a watcher type number.
    pub fn remove_watches(&self, conn: ConnId, path: &str, kind: i32, remove: bool) -> Outcome {
        let Ok(kind) = WatcherType::try_from(kind) else {
            return Outcome::Err(ErrorCode::BadArguments);
        };
        let mut watches = self.watches.lock();
        let found = if remove {
            watches.remove(path, conn, kind)
        } else {
            watches.contains(path, conn, kind)
        };
        if found {
            Outcome::Ok(Reply::Empty)
        } else {
            Outcome::Err(ErrorCode::NoWatcher)
        }
    }

    /// Re-registers a reconnecting client's watches; any that would have fired
    /// after `relative_zxid` fire at once, as ZooKeeper's `setWatches` does.
    ///
    /// Past `max_watches_per_session` the remaining watches are not registered and the
    /// answer is `QuotaExceeded` (those that fire at once still fire).
    pub fn set_watches(&self, conn: ConnId, req: &wire::SetWatchesRequest) -> Outcome {
        let rel = req.relative_zxid;
        let tree = self.tree.read();
        let mut watches = self.watches.lock();
        let mut fire = Vec::new();
        let mut refused = false;
        let mut add = |watches: &mut WatchManager<ConnId>, path: &str, kind: WatchKind| {
            if self.watch_allowed(watches, conn, path) {
                watches.add(path, conn, kind);
            } else {
                refused = true;
            }
        };
        for path in &req.data_watches {
            match tree.exists(path) {
                None => fire.push((EventType::NodeDeleted, path, self.last_zxid())),
                Some(s) if s.mzxid > rel => fire.push((EventType::NodeDataChanged, path, s.mzxid)),
                Some(_) => add(&mut watches, path, WatchKind::Data),
            }
        }
        for path in &req.exist_watches {
            match tree.exists(path) {
                Some(s) => fire.push((EventType::NodeCreated, path, s.czxid)),
                None => add(&mut watches, path, WatchKind::Data),
            }
        }
        for path in &req.child_watches {
            match tree.exists(path) {
                None => fire.push((EventType::NodeDeleted, path, self.last_zxid())),
                Some(s) if s.pzxid > rel => {
                    fire.push((EventType::NodeChildrenChanged, path, s.pzxid))
                }
                Some(_) => add(&mut watches, path, WatchKind::Child),
            }
        }
        for path in &req.persistent_watches {
            add(&mut watches, path, WatchKind::Persistent);
        }
        for path in &req.persistent_recursive_watches {
            add(&mut watches, path, WatchKind::PersistentRecursive);
        }
        drop(watches);
        if let Some(outbox) = self.conns.get(&conn) {
            for (event_type, path, zxid) in fire {
                outbox.push(Outgoing::Event(Event {
                    event_type,
                    path: path.clone(),
                    zxid,
                    change: None,
                }));
            }
        }
        if refused {
            Outcome::Err(ErrorCode::QuotaExceeded)
        } else {
            Outcome::Ok(Reply::Empty)
        }
    }

    /// Queues notifications for the watchers a change fired, except to connections
    /// that may not READ the node (`acl`), as ZooKeeper 3.8.4 filters them (the fix of
    /// CVE-2024-23944: a watch on a parent must not reveal children it cannot read).
    /// The watch is consumed either way, as in ZooKeeper. Called with the tree's write
    /// lock held (see the module doc).
    pub(crate) fn notify(
        &self,
        watches: &mut WatchManager<ConnId>,
        path: &str,
        event: EventType,
        zxid: i64,
        acl: &[crate::request::Acl],
    ) {
        for (conn, event_type) in watches.trigger(path, event) {
            let allowed = match self.conn_auth.get(&conn) {
                Some(ids) => permits(acl, perms::READ, &ids),
                None => permits(acl, perms::READ, &[]),
            };
            if !allowed {
                continue;
            }
            if let Some(outbox) = self.conns.get(&conn) {
                outbox.push(Outgoing::Event(Event {
                    event_type,
                    path: path.to_string(),
                    zxid,
                    change: None,
                }));
            }
        }
    }

    /// A session ended (CloseSession applied): forget its lease and, unless the
    /// client asked for the close itself, close its connection.
    pub(crate) fn session_closed(&self, session: i64, client_initiated: bool) {
        self.leases.remove(session);
        self.flood.forget(session);
        if let Some((_, conn)) = self.session_conn.remove(&session) {
            if !client_initiated {
                if let Some(outbox) = self.conns.get(&conn) {
                    outbox.push(Outgoing::Close(ErrorCode::SessionExpired));
                }
            }
        }
    }
}

fn change_event(w: &ZxidWatch, c: &Change) -> Event {
    Event {
        event_type: c.event,
        path: c.path.clone(),
        zxid: c.zxid,
        change: Some(Box::new(ChangeInfo {
            watch_id: w.id,
            stat: c.stat,
            data: if w.with_data { c.data.clone() } else { None },
        })),
    }
}

/// NoNode if the node is missing, NoAuth unless `auth` may do `perm` on it.
fn check_read(tree: &DataTree, path: &str, perm: i32, auth: &[AuthId]) -> Result<(), ErrorCode> {
    let acl = tree.acl_of(path).ok_or(ErrorCode::NoNode)?;
    if permits(acl, perm, auth) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}
