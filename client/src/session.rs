//! The session task: the one owner of the connection, the in-flight requests and the
//! watches. Handles ([`crate::Client`]) talk to it through a channel.
//!
//! Life of a session:
//!
//! ```text
//!   connect() ──► Connected ──(connection lost)──► Disconnected ──(reattached)──► Connected
//!                    │                                  │
//!                    │ close()                          │ server says SessionExpired
//!                    ▼                                  ▼
//!                  Closed                            Expired
//! ```
//!
//! * Requests are pipelined: each gets the next xid and joins the in-flight queue;
//!   answers come back in order ([`crate::inflight`]).
//! * After a third of the session timeout without sending, a ping goes out; after two
//!   thirds without receiving anything, the connection is deemed dead.
//! * The lease as this client can know it: an answer proves the ensemble heard the
//!   session after its request was sent, and the ensemble extends a lease by a full
//!   timeout from the moment it hears a request or ping (a follower forwards that
//!   later, never earlier). So the session cannot expire before the newest such send
//!   time plus the timeout ([`Shared::may_expire_at`]); the recipes presume it gone
//!   from then on while disconnected. Counting from when the loss was noticed instead
//!   would be up to two thirds of the timeout late. (A handshake does not count: a
//!   follower does not forward the touch of a reattach.)
//! * Writes are exactly-once: each write (create, delete, setData, setACL, multi) gets
//!   the session's next request number, sent with the lowest number still unanswered
//!   (`acked_below`). On connection loss an unanswered write is *not* failed: it is
//!   re-sent on the next connection with the same number, before any later call, and
//!   the server answers a number it already applied with the original result (see the
//!   server's `tree::results`). Every other in-flight call fails with `ConnectionLoss`.
//!   Calls made while disconnected wait for the reconnect (bounded by the caller's
//!   request timeout, which also bounds how long a retried write is waited for).
//! * Reconnecting tries the members in random order with a short growing back-off,
//!   presenting the session id, password and the highest zxid seen, so a member behind
//!   this client refuses (`NotCaughtUp`) and the next is tried: time never goes backwards.
//! * After reattaching, the first frames sent are the saved credentials (`auth`) and
//!   `SetWatches` with the last zxid seen (in 128 KiB pieces, as ZooKeeper's client
//!   does), then the writes to retry, then the queued calls, so changes made while
//!   disconnected fire the watches at once.
//! * Expired: every waiting and later call fails with `SessionExpired` and every watch
//!   gets a final `Expired` event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep, sleep_until, Instant};
use zabkeeper_proto::{wire, ErrorCode, EventType, KeeperState};

use crate::cache::{self, Cache};
use crate::change_watch::ChangeWatch;
use crate::connection::{self, AttemptError, Conn};
use crate::error::Error;
use crate::inflight::{InFlight, AUTH_XID, PING_XID, SET_WATCHES_XID};
use crate::options::ConnectOptions;
use crate::types::{SessionState, WatchedEvent, WatcherType};
use crate::watches::{WatchReg, Watches};
use std::collections::HashMap;
use zabkeeper_watch::WatchPaths;

/// What the handles and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: watch::Sender<SessionState>,
    pub last_zxid: AtomicI64,
    pub session: Mutex<SessionInfo>,
    pub opts: ConnectOptions,
    pub servers: Vec<String>,
    /// Ids for watches opened from a zxid.
    pub next_watch_id: std::sync::atomic::AtomicU64,
    /// The client cache, when enabled.
    pub cache: Option<Cache>,
    /// The send time of the newest request answered: the ensemble heard the session no
    /// earlier than this.
    heard: Mutex<Instant>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SessionInfo {
    pub id: i64,
    pub password: Bytes,
    pub timeout: Duration,
    pub server: Option<String>,
}

impl Shared {
    pub(crate) fn new(servers: Vec<String>, opts: ConnectOptions) -> Shared {
        let (id, password) = match &opts.session {
            Some((id, pw)) => (*id, Bytes::copy_from_slice(pw)),
            None => (0, Bytes::new()),
        };
        let cache = std::num::NonZeroUsize::new(opts.cache_capacity).map(Cache::new);
        Shared {
            state: watch::Sender::new(SessionState::Connecting),
            last_zxid: AtomicI64::new(0),
            session: Mutex::new(SessionInfo {
                id,
                password,
                timeout: opts.session_timeout,
                server: None,
            }),
            opts,
            servers,
            next_watch_id: std::sync::atomic::AtomicU64::new(1),
            cache,
            heard: Mutex::new(Instant::now()),
        }
    }

    /// The ensemble heard the session at `at` (a request sent then was answered).
    fn heard(&self, at: Instant) {
        // A copy under a short lock, never across an await.
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        *heard = (*heard).max(at);
    }

    /// The earliest moment the ensemble may expire the session, as far as this client
    /// can tell: one session timeout after it was last known to hear it.
    ///
    /// A tenth of the timeout is kept in hand: the ensemble's clock may run a little
    /// faster than ours, and this process may wake late on a busy machine. Presuming
    /// the session gone early is the safe side for whoever holds a lock with it.
    pub(crate) fn may_expire_at(&self) -> Instant {
        let heard = *self.heard.lock().unwrap_or_else(|e| e.into_inner());
        let timeout = self.session().timeout;
        heard + timeout - timeout / 10
    }

    /// Records a zxid seen from the server; the tracked value never decreases.
    pub(crate) fn observe_zxid(&self, zxid: i64) {
        self.last_zxid.fetch_max(zxid, Ordering::AcqRel);
    }

    pub(crate) fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Acquire)
    }

    pub(crate) fn session(&self) -> SessionInfo {
        // Held only to copy or replace a few fields; never across an await.
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_state(&self, s: SessionState) {
        self.state.send_if_modified(|cur| {
            let changed = *cur != s && !cur.is_terminal();
            if changed {
                *cur = s;
            }
            changed
        });
    }

    fn connect_request(&self) -> wire::ConnectRequest {
        let s = self.session();
        wire::ConnectRequest {
            protocol_version: zabkeeper_proto::PROTOCOL_VERSION,
            last_zxid_seen: self.last_zxid(),
            timeout_ms: i32::try_from(self.opts.session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: s.id,
            password: s.password,
            read_only: self.opts.read_only,
        }
    }

    /// Takes a new connection's terms; false if they mean the session is gone.
    fn accept(&self, conn: &Conn) -> bool {
        let resp = &conn.accepted;
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if resp.timeout_ms <= 0 || (s.id != 0 && resp.session_id != s.id) {
            return false;
        }
        s.id = resp.session_id;
        s.password = resp.password.clone();
        s.timeout = Duration::from_millis(resp.timeout_ms as u64);
        s.server = Some(conn.server.clone());
        drop(s);
        self.observe_zxid(resp.zxid);
        true
    }

    fn disconnected(&self) {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .server = None;
    }
}

/// Tries each member once, in random order, until one accepts. Stops early on an
/// answer no other member would change (session expired, auth failed).
pub(crate) async fn attempt_all(shared: &Shared) -> Result<Conn, AttemptError> {
    let mut servers = shared.servers.clone();
    servers.shuffle(&mut rand::thread_rng());
    let mut last = AttemptError::Failed("no servers".into());
    for server in servers {
        let req = shared.connect_request();
        match connection::attempt(
            &server,
            req,
            shared.opts.max_frame,
            shared.opts.connect_timeout,
        )
        .await
        {
            Ok(conn) => {
                if shared.accept(&conn) {
                    return Ok(conn);
                }
                return Err(AttemptError::Refused(
                    ErrorCode::SessionExpired,
                    "session not resumed".into(),
                ));
            }
            Err(
                e @ AttemptError::Refused(ErrorCode::SessionExpired | ErrorCode::AuthFailed, _),
            ) => return Err(e),
            Err(e) => {
                tracing::debug!(%server, error = ?e, "connection attempt failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// Back-off between rounds: 50 ms doubling to 1 s, with jitter.
pub(crate) fn backoff(round: u32) -> Duration {
    let base = 50u64.saturating_mul(1 << round.min(5)).min(1000);
    Duration::from_millis(base / 2 + rand::thread_rng().gen_range(0..=base / 2))
}

/// A call from a handle.
pub(crate) enum Command {
    Request {
        op: wire::request::Op,
        consistency: i32,
        effect: Effect,
        reply: Reply,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

pub(crate) type Reply = oneshot::Sender<Result<wire::Response, Error>>;

/// What the task does besides answering when a call succeeds.
pub(crate) enum Effect {
    None,
    Watch {
        path: String,
        reg: WatchReg,
    },
    RemoveWatches {
        path: String,
        kind: WatcherType,
    },
    Auth {
        scheme: String,
        auth: Bytes,
    },
    /// A watch opened from a zxid: registered when sent (its replayed events come
    /// before the answer), dropped if the answer is an error.
    ChangeWatch {
        id: u64,
        watch: Option<Box<ChangeWatch>>,
    },
    /// A cacheable read: its answer fills the cache unless a change raced it.
    CacheFill {
        key: cache::Key,
    },
}

enum Pending {
    Call {
        effect: Effect,
        reply: Reply,
        /// A numbered write: what to re-send after a reconnect.
        retry: Option<Retry>,
    },
    Ping,
    Internal(&'static str),
    /// A watch opened from a zxid, re-opened after a reconnect.
    ChangeWatchRestore(u64),
    Close,
}

/// An exactly-once write, kept to be re-sent with its number until answered.
struct Retry {
    number: u64,
    op: wire::request::Op,
    consistency: i32,
}

/// Whether an op is a write, numbered for exactly-once execution.
fn is_write(op: &wire::request::Op) -> bool {
    use wire::request::Op as W;
    matches!(
        op,
        W::Create(_) | W::Delete(_) | W::SetData(_) | W::SetAcl(_) | W::Multi(_)
    )
}

/// Request numbers of a session's writes and which are still unanswered.
#[derive(Debug)]
struct Numbers {
    next: u64,
    unanswered: std::collections::BTreeSet<u64>,
}

impl Numbers {
    fn new() -> Numbers {
        Numbers {
            next: 1,
            unanswered: Default::default(),
        }
    }

    fn take(&mut self) -> u64 {
        let n = self.next;
        self.next += 1;
        self.unanswered.insert(n);
        n
    }

    /// Every number below this one is answered.
    fn acked_below(&self) -> u64 {
        self.unanswered.first().copied().unwrap_or(self.next)
    }

    fn answered(&mut self, n: u64) {
        self.unanswered.remove(&n);
    }

    /// A resumed session continues above the numbers the server has seen.
    fn resume_above(&mut self, last: u64) {
        self.next = self.next.max(last + 1);
    }
}

enum Outcome {
    Lost(String),
    Ended(End),
}

enum End {
    Closed,
    Expired,
}

pub(crate) struct Session {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    handles_gone: bool,
    closing: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    queued: VecDeque<Command>,
    /// With each request its send time (see `Shared::may_expire_at`).
    inflight: InFlight<(Instant, Pending)>,
    watches: Watches,
    auths: Vec<(String, Bytes)>,
    numbers: Numbers,
    change_watches: HashMap<u64, ChangeWatch>,
    /// Unanswered writes of a lost connection, in send order, to re-send first.
    retries: VecDeque<(Retry, Effect, Reply)>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, commands: mpsc::UnboundedReceiver<Command>) -> Session {
        Session {
            shared,
            commands,
            handles_gone: false,
            closing: false,
            close_waiters: Vec::new(),
            queued: VecDeque::new(),
            inflight: InFlight::new(),
            watches: Watches::default(),
            auths: Vec::new(),
            numbers: Numbers::new(),
            change_watches: HashMap::new(),
            retries: VecDeque::new(),
        }
    }

    /// Runs the session from its first connection until it ends.
    pub(crate) async fn run(mut self, first: Conn) {
        let mut conn = Some(first);
        let end = loop {
            let c = match conn.take() {
                Some(c) => c,
                None => match self.reconnect().await {
                    Ok(c) => c,
                    Err(end) => break end,
                },
            };
            tracing::debug!(server = %c.server, session = self.shared.session().id, "connected");
            self.shared.set_state(SessionState::Connected);
            match self.serve(c).await {
                Outcome::Ended(end) => break end,
                Outcome::Lost(reason) => {
                    tracing::info!(%reason, "connection lost");
                    // Emptied before anyone can see the session disconnected: from
                    // then on changes go unseen (see `cache.rs`).
                    if let Some(cache) = &self.shared.cache {
                        cache.clear();
                    }
                    self.shared.disconnected();
                    self.shared.set_state(SessionState::Disconnected);
                    let mut lost = Vec::new();
                    for (_, p) in self.inflight.drain() {
                        lost.push(p);
                    }
                    for p in lost {
                        match p {
                            Pending::Call {
                                effect,
                                reply,
                                retry: Some(retry),
                            } => self.retries.push_back((retry, effect, reply)),
                            Pending::Call { reply, effect, .. } => {
                                self.unfilled(effect);
                                let _ = reply.send(Err(Error::ConnectionLoss));
                            }
                            _ => {}
                        }
                    }
                    if self.closing || self.handles_gone {
                        break End::Closed;
                    }
                }
            }
        };
        self.finish(end);
    }

    /// Reattaches the session to some member; ends on expiry or close.
    async fn reconnect(&mut self) -> Result<Conn, End> {
        let mut round = 0;
        loop {
            let shared = self.shared.clone();
            let attempt = attempt_all(&shared);
            tokio::pin!(attempt);
            loop {
                tokio::select! {
                    r = &mut attempt => match r {
                        Ok(conn) => return Ok(conn),
                        Err(AttemptError::Refused(ErrorCode::SessionExpired, _)) => return Err(End::Expired),
                        Err(AttemptError::Refused(code, msg)) => {
                            tracing::debug!(?code, %msg, "reconnect refused");
                            break;
                        }
                        Err(AttemptError::Failed(msg)) => {
                            tracing::debug!(%msg, "reconnect failed");
                            break;
                        }
                    },
                    cmd = self.commands.recv(), if !self.handles_gone => {
                        if self.hold(cmd) {
                            return Err(End::Closed);
                        }
                    }
                }
            }
            let pause = sleep(backoff(round));
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    cmd = self.commands.recv(), if !self.handles_gone => {
                        if self.hold(cmd) {
                            return Err(End::Closed);
                        }
                    }
                }
            }
            round += 1;
        }
    }

    /// Keeps a command for the next connection; true if it asks to close.
    fn hold(&mut self, cmd: Option<Command>) -> bool {
        match cmd {
            Some(Command::Close { reply }) => {
                self.close_waiters.push(reply);
                true
            }
            Some(cmd) => {
                self.queued.push_back(cmd);
                false
            }
            None => {
                self.handles_gone = true;
                true
            }
        }
    }

    async fn serve(&mut self, mut conn: Conn) -> Outcome {
        let timeout = self.shared.session().timeout;
        let ping_every = timeout / 3;
        let read_timeout = timeout * 2 / 3;
        self.numbers
            .resume_above(conn.accepted.last_request_number.max(0) as u64);
        self.restore(&conn);
        while let Some((retry, effect, reply)) = self.retries.pop_front() {
            let xid = self.inflight.next_xid();
            let Retry {
                number,
                op,
                consistency,
            } = retry;
            tracing::debug!(number, "re-sending an unanswered write");
            self.send_numbered(&conn, xid, op, consistency, number, effect, reply);
        }
        while let Some(cmd) = self.queued.pop_front() {
            self.dispatch(&conn, cmd);
        }
        if self.handles_gone && !self.closing {
            self.start_close(&conn);
        }
        let mut last_sent = Instant::now();
        let mut last_received = Instant::now();
        loop {
            tokio::select! {
                frame = conn.reader.next() => {
                    last_received = Instant::now();
                    let frame = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => return Outcome::Lost(format!("read: {e}")),
                        None => return Outcome::Lost("closed by the server".into()),
                    };
                    if let Some(outcome) = self.on_frame(frame) {
                        return outcome;
                    }
                }
                cmd = self.commands.recv(), if !self.handles_gone => {
                    match cmd {
                        Some(cmd) => {
                            self.dispatch(&conn, cmd);
                            while let Ok(cmd) = self.commands.try_recv() {
                                self.dispatch(&conn, cmd);
                            }
                        }
                        None => {
                            self.handles_gone = true;
                            if !self.closing {
                                self.start_close(&conn);
                            }
                        }
                    }
                    last_sent = Instant::now();
                }
                _ = sleep_until(last_sent + ping_every) => {
                    self.send(&conn, PING_XID, wire::request::Op::Ping(wire::Empty {}), 0, Pending::Ping);
                    last_sent = Instant::now();
                }
                _ = sleep_until(last_received + read_timeout) => {
                    return Outcome::Lost(format!("nothing received for {read_timeout:?}"));
                }
                _ = conn.writer.closed() => return Outcome::Lost("write failed".into()),
            }
        }
    }

    /// A cacheable read that will never be answered.
    fn unfilled(&self, effect: Effect) {
        if let (Effect::CacheFill { key }, Some(cache)) = (effect, &self.shared.cache) {
            cache.answered(key, None);
        }
    }

    /// First frames on a new connection: the cache's watch, credentials, then the
    /// watches to re-register.
    fn restore(&mut self, conn: &Conn) {
        if self.shared.cache.is_some() {
            let op = wire::request::Op::AddWatch(wire::AddWatchRequest {
                path: "/".into(),
                mode: wire::AddWatchMode::PersistentRecursive as i32,
            });
            let xid = self.inflight.next_xid();
            self.send(conn, xid, op, 0, Pending::Internal("cache watch"));
        }
        for (scheme, auth) in self.auths.clone() {
            let op = wire::request::Op::Auth(wire::AuthRequest { scheme, auth });
            self.send(conn, AUTH_XID, op, 0, Pending::Internal("auth"));
        }
        let mut reopen: Vec<(u64, wire::AddWatchFromRequest)> = self
            .change_watches
            .iter_mut()
            .map(|(id, w)| (*id, w.request(*id)))
            .collect();
        reopen.sort_by_key(|(id, _)| *id);
        for (id, req) in reopen {
            let xid = self.inflight.next_xid();
            let op = wire::request::Op::AddWatchFrom(req);
            self.send(conn, xid, op, 0, Pending::ChangeWatchRestore(id));
        }
        let paths = self.watches.paths_to_restore();
        let limit = SET_WATCHES_CHUNK.min(self.shared.opts.max_frame / 2);
        for chunk in set_watches_chunks(paths, self.shared.last_zxid(), limit) {
            let op = wire::request::Op::SetWatches(chunk);
            self.send(
                conn,
                SET_WATCHES_XID,
                op,
                0,
                Pending::Internal("set_watches"),
            );
        }
    }

    fn send(
        &mut self,
        conn: &Conn,
        xid: i32,
        op: wire::request::Op,
        consistency: i32,
        pending: Pending,
    ) {
        self.send_request(conn, xid, op, consistency, 0, pending);
    }

    /// Sends a numbered write, keeping it to re-send until it is answered.
    #[allow(clippy::too_many_arguments)]
    fn send_numbered(
        &mut self,
        conn: &Conn,
        xid: i32,
        op: wire::request::Op,
        consistency: i32,
        number: u64,
        effect: Effect,
        reply: Reply,
    ) {
        let retry = Retry {
            number,
            op: op.clone(),
            consistency,
        };
        let pending = Pending::Call {
            effect,
            reply,
            retry: Some(retry),
        };
        self.send_request(conn, xid, op, consistency, number, pending);
    }

    fn send_request(
        &mut self,
        conn: &Conn,
        xid: i32,
        op: wire::request::Op,
        consistency: i32,
        number: u64,
        pending: Pending,
    ) {
        let (request_number, acked_below) = if number > 0 {
            (number as i64, self.numbers.acked_below() as i64)
        } else {
            (0, 0)
        };
        let request = wire::Request {
            xid,
            consistency,
            op: Some(op),
            request_number,
            acked_below,
        };
        // A failed send shows up as a lost connection; the entry then fails with it.
        conn.send(wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Request(request)),
        });
        self.inflight.push(xid, (Instant::now(), pending));
    }

    fn dispatch(&mut self, conn: &Conn, cmd: Command) {
        match cmd {
            Command::Request { reply, .. } if self.closing => {
                let _ = reply.send(Err(Error::Closed));
            }
            Command::Request {
                op,
                consistency,
                mut effect,
                reply,
            } => {
                if reply.is_closed() {
                    return; // the caller gave up before it was sent
                }
                if let Effect::ChangeWatch { id, watch } = &mut effect {
                    if let Some(w) = watch.take() {
                        self.change_watches.insert(*id, *w);
                    }
                }
                if let (Effect::CacheFill { key }, Some(cache)) = (&effect, &self.shared.cache) {
                    cache.sent(key);
                }
                let xid = self.inflight.next_xid();
                if self.shared.opts.exactly_once && is_write(&op) {
                    let number = self.numbers.take();
                    self.send_numbered(conn, xid, op, consistency, number, effect, reply);
                } else {
                    let pending = Pending::Call {
                        effect,
                        reply,
                        retry: None,
                    };
                    self.send(conn, xid, op, consistency, pending);
                }
            }
            Command::Close { reply } => {
                self.close_waiters.push(reply);
                if !self.closing {
                    self.start_close(conn);
                }
            }
        }
    }

    fn start_close(&mut self, conn: &Conn) {
        self.closing = true;
        let xid = self.inflight.next_xid();
        self.send(
            conn,
            xid,
            wire::request::Op::CloseSession(wire::Empty {}),
            0,
            Pending::Close,
        );
    }

    /// Handles one frame; `Some` when it ends the connection or the session.
    fn on_frame(&mut self, frame: wire::ServerFrame) -> Option<Outcome> {
        use wire::server_frame::Kind;
        match frame.kind {
            Some(Kind::Response(resp)) => {
                if resp.zxid > 0 {
                    self.shared.observe_zxid(resp.zxid);
                }
                let pending = match self.inflight.complete(resp.xid) {
                    Ok((sent, p)) => {
                        self.shared.heard(sent);
                        p
                    }
                    Err(u) => {
                        return Some(Outcome::Lost(format!(
                            "answer for xid {} while xid {:?} was expected",
                            u.got, u.expected
                        )))
                    }
                };
                match pending {
                    Pending::Call {
                        effect,
                        reply,
                        retry,
                    } => {
                        if let Some(r) = retry {
                            self.numbers.answered(r.number);
                        }
                        self.apply(effect, &resp, &reply);
                        let _ = reply.send(Ok(resp));
                    }
                    Pending::Ping => {}
                    Pending::ChangeWatchRestore(id) => {
                        if resp.error != 0 {
                            if let Some(w) = self.change_watches.remove(&id) {
                                w.fail(Error::from_code(resp.error));
                            }
                        }
                    }
                    Pending::Internal(what) => {
                        if resp.error != 0 {
                            tracing::warn!(
                                what,
                                code = resp.error,
                                "restoring the session partly failed"
                            );
                        }
                    }
                    Pending::Close => return Some(Outcome::Ended(End::Closed)),
                }
                None
            }
            Some(Kind::Event(ev)) => {
                if ev.zxid > 0 {
                    self.shared.observe_zxid(ev.zxid);
                }
                let Some(event_type) = EventType::from_code(ev.r#type) else {
                    tracing::warn!(code = ev.r#type, "ignoring a watch event of unknown type");
                    return None;
                };
                if ev.state == KeeperState::Expired as i32 {
                    return Some(Outcome::Ended(End::Expired));
                }
                if let Some(cache) = &self.shared.cache {
                    // Before the next frame: see `cache.rs`.
                    cache.invalidate(event_type, &ev.path);
                }
                if ev.watch_id > 0 {
                    let id = ev.watch_id;
                    if let Some(w) = self.change_watches.get_mut(&id) {
                        if !w.deliver(ev) {
                            // The consumer dropped the stream; the member keeps sending
                            // until the connection ends, and the events are dropped here.
                            self.change_watches.remove(&id);
                        }
                    }
                    return None;
                }
                let state = keeper_state(ev.state);
                self.watches.deliver(&WatchedEvent {
                    event_type,
                    state,
                    path: ev.path,
                    zxid: ev.zxid,
                });
                None
            }
            Some(Kind::Connect(_)) => Some(Outcome::Lost("second handshake answer".into())),
            None => Some(Outcome::Lost("empty frame".into())),
        }
    }

    /// Registers or removes watches, or saves credentials, once the server said yes.
    fn apply(&mut self, effect: Effect, resp: &wire::Response, reply: &Reply) {
        match effect {
            Effect::None => {}
            Effect::Watch { path, reg } => {
                let missing = resp.error == ErrorCode::NoNode.code();
                if (resp.error == 0 || missing) && !reply.is_closed() {
                    self.watches.register(&path, reg, missing);
                }
            }
            Effect::RemoveWatches { path, kind } => {
                if resp.error == 0 {
                    self.watches.remove(&path, kind, resp.zxid);
                }
            }
            Effect::Auth { scheme, auth } => {
                if resp.error == 0 {
                    self.auths.push((scheme, auth));
                }
            }
            Effect::ChangeWatch { id, .. } => {
                if resp.error != 0 {
                    self.change_watches.remove(&id);
                }
            }
            Effect::CacheFill { key } => {
                if let Some(cache) = &self.shared.cache {
                    use wire::response::Result as R;
                    let entry = match (&key.0, &resp.result) {
                        (cache::Kind::Data, Some(R::GetData(d))) if resp.error == 0 => {
                            d.stat.map(|s| cache::Entry::Data(d.data.clone(), s.into()))
                        }
                        (cache::Kind::Children, Some(R::GetChildren(c))) if resp.error == 0 => {
                            Some(cache::Entry::Children(c.children.clone()))
                        }
                        _ => None,
                    };
                    cache.answered(key, entry);
                }
            }
        }
    }

    fn finish(mut self, end: End) {
        let (state, keeper, error) = match end {
            End::Closed => (SessionState::Closed, KeeperState::Closed, Error::Closed),
            End::Expired => (
                SessionState::Expired,
                KeeperState::Expired,
                Error::SessionExpired,
            ),
        };
        tracing::debug!(?state, "session ended");
        self.shared.disconnected();
        self.shared.set_state(state);
        self.commands.close();
        for (_, p) in self.inflight.drain() {
            if let Pending::Call { reply, .. } = p {
                let _ = reply.send(Err(error.clone()));
            }
        }
        if let Some(cache) = &self.shared.cache {
            cache.clear();
        }
        let mut late = Vec::new();
        while let Ok(cmd) = self.commands.try_recv() {
            late.push(cmd);
        }
        for (_, _, reply) in self.retries.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        for cmd in self.queued.drain(..).chain(late) {
            match cmd {
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Close { reply } => {
                    let _ = reply.send(());
                }
            }
        }
        self.watches.finish(keeper);
        for (_, w) in self.change_watches.drain() {
            if matches!(end, End::Expired) {
                w.fail(Error::SessionExpired);
            }
        }
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

/// Most path bytes in one `SetWatches` (ZooKeeper's client uses the same 128 KiB), so
/// a session with many watches never sends a frame the server would refuse.
const SET_WATCHES_CHUNK: usize = 128 * 1024;

/// Splits the watches to restore into `SetWatches` requests of at most about `limit`
/// bytes each, keeping every path and the order of each list.
fn set_watches_chunks(
    paths: WatchPaths,
    relative_zxid: i64,
    limit: usize,
) -> Vec<wire::SetWatchesRequest> {
    let empty = || wire::SetWatchesRequest {
        relative_zxid,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut cur = empty();
    let mut size = 0;
    let lists = [
        (paths.data, 0),
        (paths.exist, 1),
        (paths.child, 2),
        (paths.persistent, 3),
        (paths.persistent_recursive, 4),
    ];
    for (list, which) in lists {
        for path in list {
            // A path's bytes plus its field tag and length prefix.
            let cost = path.len() + 4;
            if size > 0 && size + cost > limit {
                out.push(std::mem::replace(&mut cur, empty()));
                size = 0;
            }
            size += cost;
            match which {
                0 => cur.data_watches.push(path),
                1 => cur.exist_watches.push(path),
                2 => cur.child_watches.push(path),
                3 => cur.persistent_watches.push(path),
                _ => cur.persistent_recursive_watches.push(path),
            }
        }
    }
    if size > 0 {
        out.push(cur);
    }
    out
}

fn keeper_state(code: i32) -> KeeperState {
    use KeeperState::*;
    [
        Disconnected,
        NoSyncConnected,
        SyncConnected,
        AuthFailed,
        ConnectedReadOnly,
        SaslAuthenticated,
        Expired,
        Closed,
    ]
    .into_iter()
    .find(|s| *s as i32 == code)
    .unwrap_or(Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn zxid_never_goes_backwards() {
        let s = Shared::new(vec![], ConnectOptions::default());
        s.observe_zxid(5);
        s.observe_zxid(3);
        assert_eq!(s.last_zxid(), 5);
        s.observe_zxid(9);
        assert_eq!(s.last_zxid(), 9);
        assert_eq!(s.connect_request().last_zxid_seen, 9);
    }

    #[test]
    fn terminal_states_stick() {
        let s = Shared::new(vec![], ConnectOptions::default());
        s.set_state(SessionState::Connected);
        s.set_state(SessionState::Expired);
        s.set_state(SessionState::Connected);
        assert_eq!(*s.state.borrow(), SessionState::Expired);
    }

    #[test]
    fn resume_presents_the_saved_session() {
        let opts = ConnectOptions {
            session: Some((42, vec![1, 2])),
            ..Default::default()
        };
        let s = Shared::new(vec![], opts);
        let req = s.connect_request();
        assert_eq!(
            (req.session_id, &req.password[..], req.timeout_ms),
            (42, &[1u8, 2][..], 10_000)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for round in 0..10 {
            let d = backoff(round);
            let base = (50u64 << round.min(5)).min(1000);
            assert!(
                d.as_millis() as u64 >= base / 2 && d.as_millis() as u64 <= base,
                "{round}: {d:?}"
            );
        }
    }

    #[test]
    fn set_watches_are_split_under_the_limit_keeping_every_path() {
        let paths = |prefix: &str, n: usize| {
            (0..n)
                .map(|i| format!("/{prefix}/{i:06}"))
                .collect::<Vec<_>>()
        };
        let input = WatchPaths {
            data: paths("d", 300),
            exist: paths("e", 5),
            child: paths("c", 300),
            persistent: vec![],
            persistent_recursive: paths("r", 10),
        };
        let chunks = set_watches_chunks(input.clone(), 77, 1000);
        assert!(chunks.len() > 5);
        let mut joined = WatchPaths::default();
        for c in &chunks {
            assert_eq!(c.relative_zxid, 77);
            assert!(
                c.encoded_len() <= 1000 + 16,
                "chunk of {} bytes",
                c.encoded_len()
            );
            joined.data.extend(c.data_watches.iter().cloned());
            joined.exist.extend(c.exist_watches.iter().cloned());
            joined.child.extend(c.child_watches.iter().cloned());
            joined
                .persistent
                .extend(c.persistent_watches.iter().cloned());
            joined
                .persistent_recursive
                .extend(c.persistent_recursive_watches.iter().cloned());
        }
        assert_eq!(joined, input);
        assert!(set_watches_chunks(WatchPaths::default(), 1, 1000).is_empty());
        let one = set_watches_chunks(
            WatchPaths {
                data: vec!["/a".into()],
                ..Default::default()
            },
            1,
            1000,
        );
        assert_eq!(one.len(), 1);
    }

    #[test]
    fn request_numbers_and_the_low_water_mark() {
        let mut n = Numbers::new();
        assert_eq!(n.acked_below(), 1);
        let (a, b, c) = (n.take(), n.take(), n.take());
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(n.acked_below(), 1);
        n.answered(2);
        assert_eq!(n.acked_below(), 1);
        n.answered(1);
        assert_eq!(n.acked_below(), 3);
        n.answered(3);
        assert_eq!(n.acked_below(), 4);
        n.resume_above(10);
        assert_eq!(n.take(), 11);
        n.resume_above(2);
        assert_eq!(n.take(), 12);
        assert!(is_write(&wire::request::Op::Delete(Default::default())));
        assert!(!is_write(&wire::request::Op::GetData(Default::default())));
        assert!(!is_write(&wire::request::Op::CloseSession(wire::Empty {})));
    }

    #[test]
    fn keeper_states_map() {
        assert_eq!(keeper_state(3), KeeperState::SyncConnected);
        assert_eq!(keeper_state(-112), KeeperState::Expired);
        assert_eq!(keeper_state(99), KeeperState::Unknown);
    }
}
