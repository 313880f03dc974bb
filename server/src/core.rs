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

use crate::config::Config;
use crate::pipeline::{PipelineMsg, WriteRequest};
use crate::reply::{Completion, Event, Outbox, Outcome, Outgoing, Reply};
use crate::request::{ReadOp, WriteOp};
use crate::session::{password_for, SessionIds, SessionTracker};
use crate::tree::DataTree;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;
use zabkeeper_proto::wire::{self, WatcherType};
use zabkeeper_proto::{ErrorCode, EventType};
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
}

pub struct Core {
    config: Config,
    pub(crate) tree: RwLock<DataTree>,
    pub(crate) watches: Mutex<WatchManager<ConnId>>,
    conns: DashMap<ConnId, Outbox>,
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
        Core {
            config,
            tree: RwLock::new(tree),
            watches: Mutex::new(WatchManager::new()),
            conns: DashMap::new(),
            session_conn: DashMap::new(),
            leases,
            session_ids: SessionIds::new(server_id, now_ms),
            next_conn: AtomicU64::new(1),
            last_zxid: AtomicI64::new(last),
            writes,
            serving: AtomicBool::new(!ensemble),
            touched: ensemble.then(|| Mutex::new(HashSet::new())),
            server_id,
            role: Mutex::new((if ensemble { "looking" } else { "standalone" }, (last >> 32) as u32)),
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
                let _ = conn.value().send(Outgoing::Close(ErrorCode::ConnectionLoss));
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

    pub fn register_conn(&self, outbox: Outbox) -> ConnId {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.conns.insert(id, outbox);
        id
    }

    pub fn unregister_conn(&self, conn: ConnId, session: Option<i64>) {
        self.conns.remove(&conn);
        self.watches.lock().remove_watcher(conn);
        if let Some(s) = session {
            self.session_conn.remove_if(&s, |_, c| *c == conn);
        }
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
            return Err((ErrorCode::NoLeader, "this member has no leader yet; try another".into()));
        }
        // A member behind the client waits a little to catch up before refusing.
        let deadline = Instant::now() + std::time::Duration::from_millis(CATCH_UP_WAIT_MS);
        while req.last_zxid_seen > self.last_zxid() && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let ours = self.last_zxid();
        if req.last_zxid_seen > ours {
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
                Completion { tx, seq: 0 },
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
            });
        }
        let id = req.session_id;
        if req.password.as_ref() != password_for(id).as_slice() {
            return Err((
                ErrorCode::AuthFailed,
                format!("wrong password for session {id:#x}"),
            ));
        }
        let timeout_ms = self.tree.read().session_timeout(id);
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
        })
    }

    /// Makes `conn` the session's connection; a previous one is told the session moved.
    fn bind(&self, session: i64, conn: ConnId) {
        if let Some(old) = self.session_conn.insert(session, conn) {
            if old != conn {
                if let Some(outbox) = self.conns.get(&old) {
                    let _ = outbox.send(Outgoing::Close(ErrorCode::SessionMoved));
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

    /// Hands a write to the pipeline; its outcome goes to `completion`.
    pub fn submit(&self, session_id: i64, cxid: i32, op: WriteOp, completion: Completion) {
        let req = WriteRequest {
            session_id,
            cxid,
            op,
            completion: Some(completion),
        };
        if let Err(e) = self.writes.send(PipelineMsg::Write(req)) {
            if let PipelineMsg::Write(WriteRequest { completion: Some(c), .. }) = e.0 {
                c.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
    }

    /// `sync`: completes once this member has applied every write committed before
    /// the sync began (in an ensemble, the leader's commit point at that moment).
    pub fn sync(&self, path: String, completion: Completion) {
        if let Err(e) = self.writes.send(PipelineMsg::Sync { path, completion }) {
            if let PipelineMsg::Sync { completion, .. } = e.0 {
                completion.complete(Outcome::Err(ErrorCode::ConnectionLoss));
            }
        }
    }

    /// Serves a read from the local tree, registering its watch atomically with it.
    pub fn read(&self, conn: ConnId, op: &ReadOp) -> Outcome {
        let tree = self.tree.read();
        let mut watches = None;
        let mut watch = |path: &str, kind: WatchKind| {
            watches
                .get_or_insert_with(|| self.watches.lock())
                .add(path, conn, kind);
        };
        let result = match op {
            ReadOp::Exists { path, watch: w } => {
                // exists() watches a missing node too: it fires on creation.
                if *w {
                    watch(path, WatchKind::Data);
                }
                tree.exists(path).map(Reply::Stat).ok_or(ErrorCode::NoNode)
            }
            ReadOp::GetData { path, watch: w } => {
                let r = tree
                    .get_data(path)
                    .map(|(data, stat)| Reply::Data { data, stat });
                if *w && r.is_ok() {
                    watch(path, WatchKind::Data);
                }
                r
            }
            ReadOp::GetChildren { path, watch: w, .. } => {
                let r = tree
                    .get_children(path)
                    .map(|(children, stat)| Reply::Children { children, stat });
                if *w && r.is_ok() {
                    watch(path, WatchKind::Child);
                }
                r
            }
            other => Self::read_plain(&tree, other),
        };
        result.into()
    }

    fn read_plain(tree: &DataTree, op: &ReadOp) -> Result<Reply, ErrorCode> {
        match op {
            ReadOp::Exists { path, .. } => {
                tree.exists(path).map(Reply::Stat).ok_or(ErrorCode::NoNode)
            }
            ReadOp::GetData { path, .. } => tree
                .get_data(path)
                .map(|(data, stat)| Reply::Data { data, stat }),
            ReadOp::GetChildren { path, .. } => tree
                .get_children(path)
                .map(|(children, stat)| Reply::Children { children, stat }),
            ReadOp::GetAcl { path } => tree
                .get_acl(path)
                .map(|(acl, stat)| Reply::Acl { acl, stat }),
            ReadOp::GetAllChildrenNumber { path } => tree
                .get_all_children_number(path)
                .map(|n| Reply::Count(n as i32)),
            ReadOp::GetEphemerals { .. } => Err(ErrorCode::BadArguments),
            ReadOp::MultiRead(ops) => Ok(Reply::Multi(
                ops.iter().map(|op| Self::read_plain(tree, op)).collect(),
            )),
        }
    }

    /// getEphemerals: the session's ephemerals under a prefix.
    pub fn get_ephemerals(&self, session: i64, prefix: &str) -> Outcome {
        Outcome::Ok(Reply::Paths(
            self.tree.read().get_ephemerals(session, prefix),
        ))
    }

    pub fn add_watch(&self, conn: ConnId, path: &str, recursive: bool) {
        let kind = if recursive {
            WatchKind::PersistentRecursive
        } else {
            WatchKind::Persistent
        };
        let _tree = self.tree.read();
        self.watches.lock().add(path, conn, kind);
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
    pub fn set_watches(&self, conn: ConnId, req: &wire::SetWatchesRequest) {
        let rel = req.relative_zxid;
        let tree = self.tree.read();
        let mut watches = self.watches.lock();
        let mut fire = Vec::new();
        for path in &req.data_watches {
            match tree.exists(path) {
                None => fire.push((EventType::NodeDeleted, path, self.last_zxid())),
                Some(s) if s.mzxid > rel => fire.push((EventType::NodeDataChanged, path, s.mzxid)),
                Some(_) => {
                    watches.add(path, conn, WatchKind::Data);
                }
            }
        }
        for path in &req.exist_watches {
            match tree.exists(path) {
                Some(s) => fire.push((EventType::NodeCreated, path, s.czxid)),
                None => {
                    watches.add(path, conn, WatchKind::Data);
                }
            }
        }
        for path in &req.child_watches {
            match tree.exists(path) {
                None => fire.push((EventType::NodeDeleted, path, self.last_zxid())),
                Some(s) if s.pzxid > rel => {
                    fire.push((EventType::NodeChildrenChanged, path, s.pzxid))
                }
                Some(_) => {
                    watches.add(path, conn, WatchKind::Child);
                }
            }
        }
        for path in &req.persistent_watches {
            watches.add(path, conn, WatchKind::Persistent);
        }
        for path in &req.persistent_recursive_watches {
            watches.add(path, conn, WatchKind::PersistentRecursive);
        }
        drop(watches);
        if let Some(outbox) = self.conns.get(&conn) {
            for (event_type, path, zxid) in fire {
                let _ = outbox.send(Outgoing::Event(Event {
                    event_type,
                    path: path.clone(),
                    zxid,
                }));
            }
        }
    }

    /// Queues notifications for the watchers a change fired. Called with the tree's
    /// write lock held (see the module doc).
    pub(crate) fn notify(
        &self,
        watches: &mut WatchManager<ConnId>,
        path: &str,
        event: EventType,
        zxid: i64,
    ) {
        for (conn, event_type) in watches.trigger(path, event) {
            if let Some(outbox) = self.conns.get(&conn) {
                let _ = outbox.send(Outgoing::Event(Event {
                    event_type,
                    path: path.to_string(),
                    zxid,
                }));
            }
        }
    }

    /// A session ended (CloseSession applied): forget its lease and, unless the
    /// client asked for the close itself, close its connection.
    pub(crate) fn session_closed(&self, session: i64, client_initiated: bool) {
        self.leases.remove(session);
        if let Some((_, conn)) = self.session_conn.remove(&session) {
            if !client_initiated {
                if let Some(outbox) = self.conns.get(&conn) {
                    let _ = outbox.send(Outgoing::Close(ErrorCode::SessionExpired));
                }
            }
        }
    }
}
