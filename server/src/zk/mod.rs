//! The ZooKeeper-protocol front-end: unmodified ZooKeeper clients (Kazoo, Curator, zkCli, the C
//! client) talk to zabkeeper on a second port (`zk_port`, default 2181).
//!
//! It is the native front-end (`native/`) with jute on the wire, and keeps its rules:
//! requests become the same internal requests ([`Decoded`], via [`convert`]); every request
//! takes a slot in `pending` and is answered **in request order**; a read that arrives while
//! writes of the session are in flight waits in its slot and runs only when every earlier slot
//! is answered (read-your-writes); the outbox is drained before any reply is written, so a
//! notification precedes the reply to any later request that could see its change. What jute
//! adds is the reply's shape per opcode (kept in the slot, see [`convert::Shape`]).
//!
//! Connection life, as ZooKeeper's `NIOServerCnxn` does it:
//! * the first 4 bytes may be a four-letter word ([`fourlw`]): answered in text, then closed;
//! * the first frame is a bare `ConnectRequest`. A client whose `lastZxidSeen` is ahead of this
//!   server gets no answer and the connection closes (it tries another server; time never goes
//!   backwards). An unknown or expired session or a wrong password gets
//!   `ConnectResponse::refused`, then the close; a member that is not serving (no leader yet)
//!   closes without an answer, so the client keeps its session and tries another member. The `readOnly` byte is answered only to
//!   clients that sent one;
//! * a frame whose header cannot be read, a length over `max_frame`, or garbage before the
//!   handshake closes the connection with a log line; a readable header with a malformed body
//!   is answered `MarshallingError` under its xid and the session goes on; an unknown opcode is
//!   answered `Unimplemented`;
//! * an `auth` packet takes effect on receipt for every later request (see [`crate::auth`]);
//!   one with an unsupported scheme is answered `AuthFailed` and the connection closes
//!   (ZooKeeper's behaviour). Each request is checked against the identities the
//!   connection had when it arrived; a verified TLS client certificate adds `x509`;
//! * `closeSession` is answered, then the connection closes;
//! * the limits of [`crate::limits`] hold as on the native port: admission by the shared
//!   accept loop, back-pressure at `max_outstanding_requests`, flooding sessions cut off,
//!   slow readers closed past `max_queued_bytes`.

pub mod convert;
pub mod fourlw;

use crate::auth::{AuthId, ConnAuth};
use crate::core::{ConnId, Core, Grant};
use crate::native::Decoded;
use crate::outbox::OutboxRx;
use crate::reply::{Completion, Outcome, Outgoing, Reply};
use crate::tls::Io;
use convert::{Action, Shape};
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zabkeeper_jute::{
    self as jute, FrameCodec, Inbound, JuteError, Reader as JuteReader, Record, ReplyHeader,
    RequestHeader,
};
use zabkeeper_proto::{wire, ErrorCode};

type Reader = FramedRead<ReadHalf<Box<dyn Io>>, FrameCodec>;
type Writer = FramedWrite<WriteHalf<Box<dyn Io>>, FrameCodec>;

/// How long a new connection may take to send its `ConnectRequest`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters and live connections of this front-end, for the four-letter words.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub registry: fourlw::Registry,
    /// Request latencies (arrival of the request to its reply being queued), in µs.
    pub latency: Latency,
}

/// Min/avg/max of request latencies, as ZooKeeper's `ServerStats` reports them.
#[derive(Debug)]
pub struct Latency {
    min_us: AtomicU64,
    max_us: AtomicU64,
    total_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub fn record(&self, elapsed: Duration) {
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.min_us.fetch_min(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        self.total_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// (min, avg, max) in milliseconds; zeros before the first request.
    pub fn millis(&self) -> (u64, f64, u64) {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return (0, 0.0, 0);
        }
        let avg = self.total_us.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0;
        (
            self.min_us.load(Ordering::Relaxed) / 1000,
            avg,
            self.max_us.load(Ordering::Relaxed) / 1000,
        )
    }
}

/// Accepts ZooKeeper-protocol connections until `shutdown` is cancelled; over TLS when
/// `tls` is given. `stats` is shared by the plain and the TLS port.
pub async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let c = core.clone();
    let s = shutdown.clone();
    let port = if tls.is_some() { "zk-tls" } else { "zk" };
    crate::accept::accept_loop(listener, core, shutdown, port, tls, move |a| {
        handle(a, c.clone(), stats.clone(), s.clone())
    })
    .await
}

async fn handle(
    accepted: crate::accept::Accepted,
    core: Arc<Core>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let crate::accept::Accepted { stream, peer, x509 } = accepted;
    let max = core.config().max_frame;
    let (r, w) = tokio::io::split(stream);
    let mut reader: Reader = FramedRead::new(r, FrameCodec::server(max));
    let mut writer: Writer = FramedWrite::new(w, FrameCodec::server(max));

    let payload = match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
        Ok(Some(Ok(Inbound::FourLetterWord(word)))) => {
            let text = fourlw::answer(word, &core, &stats);
            let mut w = writer.into_inner();
            let _ = w.write_all(text.as_bytes()).await;
            let _ = w.shutdown().await;
            return;
        }
        Ok(Some(Ok(Inbound::Frame(payload)))) => payload,
        Ok(Some(Err(e))) => {
            warn!(%peer, error = %e, "zk port: closing connection: bad handshake frame");
            return;
        }
        Ok(None) => return,
        Err(_) => {
            warn!(%peer, "zk port: closing connection: no ConnectRequest within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    // ZooKeeper reads the record and ignores anything after the optional readOnly byte.
    let request = match jute::ConnectRequest::decode(&mut JuteReader::new(&payload)) {
        Ok(r) => r,
        Err(e) => {
            warn!(%peer, error = %e, "zk port: closing connection: undecodable ConnectRequest");
            return;
        }
    };
    let ours = core.last_zxid();
    if request.last_zxid_seen > ours {
        info!(
            %peer,
            client = format_args!("{:#x}", request.last_zxid_seen),
            server = format_args!("{ours:#x}"),
            "zk port: refusing a client ahead of this server (closing without an answer)"
        );
        return;
    }
    let native_request = wire::ConnectRequest {
        protocol_version: request.protocol_version,
        last_zxid_seen: request.last_zxid_seen,
        timeout_ms: request.time_out,
        session_id: request.session_id,
        password: request.passwd.clone().into(),
        read_only: request.read_only.unwrap_or(false),
    };

    let (conn_id, outbox_rx, cutoff) = core.register_conn();
    let grant = match core.connect(conn_id, &native_request).await {
        Ok(g) => g,
        Err((code, message)) => {
            info!(%peer, ?code, %message, "zk port: connection refused");
            // Only a verdict on the session itself (expired, unknown, wrong password) is
            // answered: ZooKeeper's clients read any refusal as "session expired" and drop
            // the session. A member that is behind or not serving closes without an answer,
            // as ZooKeeper does, and the client tries the next member with its session.
            if matches!(code, ErrorCode::SessionExpired | ErrorCode::AuthFailed) {
                let refused = jute::ConnectResponse::refused(&request);
                let _ = writer.send(jute::encode_connect_response(&refused)).await;
            }
            core.unregister_conn(conn_id, None);
            return;
        }
    };
    let Grant {
        session_id,
        timeout_ms,
        password,
        ..
    } = grant;
    let resp = jute::ConnectResponse {
        protocol_version: 0,
        time_out: timeout_ms,
        session_id,
        passwd: password,
        read_only: request.read_only.map(|_| false),
    };
    if writer
        .send(jute::encode_connect_response(&resp))
        .await
        .is_err()
    {
        core.unregister_conn(conn_id, Some(session_id));
        return;
    }
    debug!(%peer, session = format_args!("{session_id:#x}"), "zk session connected");

    let info = Arc::new(fourlw::ConnInfo::new(peer));
    info.session_id.store(session_id, Ordering::Relaxed);
    info.timeout_ms.store(timeout_ms as i64, Ordering::Relaxed);
    stats.registry.add(conn_id, info.clone());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut auth = ConnAuth::new(peer.ip());
    if let Some(dn) = x509 {
        auth.add_x509(dn);
    }
    core.set_conn_auth(conn_id, auth.ids());
    let mut conn = Connection {
        core: core.clone(),
        stats: stats.clone(),
        info,
        peer,
        conn_id,
        session_id,
        writer,
        outbox: outbox_rx,
        done_tx,
        pending: VecDeque::new(),
        arrivals: VecDeque::new(),
        base_seq: 0,
        auth,
        closing: false,
        deferred_reads: 0,
        max_outstanding: core.config().max_outstanding_requests,
        reported: 0,
    };
    // A slow reader's connection is abandoned wherever it waits (even in a write to
    // its full socket) once its outbox overflows.
    let end = tokio::select! {
        end = conn.run(reader, done_rx, shutdown) => end,
        _ = cutoff.cancelled() => Err(ConnEnd::SlowReader),
    };
    core.report_outstanding(&mut conn.reported, 0);
    if let Err(e) = end {
        debug!(%peer, error = %e, "zk connection ended");
    }
    stats.registry.remove(conn_id);
    core.unregister_conn(conn_id, Some(session_id));
}

/// A request waiting for its turn to be answered.
enum Slot {
    /// A write (or sync) submitted to the core; filled by its completion.
    Waiting {
        xid: i32,
        shape: Shape,
        close_after: bool,
    },
    Done {
        xid: i32,
        shape: Shape,
        outcome: Outcome,
        close_after: bool,
    },
    /// A read-like request deferred behind earlier writes, with the connection's
    /// identities when it arrived.
    Deferred {
        xid: i32,
        shape: Shape,
        action: Action,
        auth: Arc<[AuthId]>,
    },
    /// A write, sync or close held back behind an earlier deferred read of the
    /// session, which must not see it (ZooKeeper's CommitProcessor orders them so).
    Held {
        xid: i32,
        shape: Shape,
        submit: Submit,
    },
}

/// What a held slot submits once no deferred read precedes it, with the
/// connection's identities when it arrived.
enum Submit {
    Write(crate::request::WriteOp, Arc<[AuthId]>),
    Close(Arc<[AuthId]>),
    Sync(String),
}

struct Connection {
    core: Arc<Core>,
    stats: Arc<Stats>,
    info: Arc<fourlw::ConnInfo>,
    peer: SocketAddr,
    conn_id: ConnId,
    session_id: i64,
    writer: Writer,
    outbox: OutboxRx,
    done_tx: mpsc::UnboundedSender<(u64, Outcome)>,
    /// Slots in request order; `base_seq` is the sequence number of the front.
    pending: VecDeque<Slot>,
    /// Arrival time of every request not answered yet, in request order (one reply each).
    arrivals: VecDeque<Instant>,
    base_seq: u64,
    /// Who the connection is: ACLs are checked against these identities.
    auth: ConnAuth,
    /// Set once the session is closing: answer what is pending, then close.
    closing: bool,
    /// The socket is not read while this many requests wait (back-pressure).
    max_outstanding: usize,
    /// This connection's share of the core's outstanding-requests gauge.
    reported: usize,
    /// Deferred reads in `pending`: writes after them are held.
    deferred_reads: usize,
}

#[derive(Debug, thiserror::Error)]
enum ConnEnd {
    #[error("{0}")]
    Frame(#[from] JuteError),
    #[error("session ended: {0:?}")]
    SessionEnded(ErrorCode),
    #[error("client closed the session")]
    Closed,
    #[error("server shutting down")]
    Shutdown,
    #[error("slow reader: its queued notifications passed max_queued_bytes")]
    SlowReader,
    #[error("session flooding: past max_session_requests_per_sec")]
    Flood,
}

impl Connection {
    async fn run(
        &mut self,
        mut reader: Reader,
        mut done_rx: mpsc::UnboundedReceiver<(u64, Outcome)>,
        shutdown: CancellationToken,
    ) -> Result<(), ConnEnd> {
        let mut turn = crate::limits::Turn::default();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = self.writer.flush().await;
                    return Err(ConnEnd::Shutdown);
                }
                out = self.outbox.recv() => match out {
                    Some(Outgoing::Event(e)) => {
                        self.stats.sent.fetch_add(1, Ordering::Relaxed);
                        self.writer.feed(convert::event(&e)).await?
                    }
                    Some(Outgoing::Close(code)) => {
                        let _ = self.writer.flush().await;
                        return Err(ConnEnd::SessionEnded(code));
                    }
                    None => return Err(ConnEnd::Shutdown),
                },
                done = done_rx.recv() => {
                    let Some((seq, outcome)) = done else { return Err(ConnEnd::Shutdown) };
                    self.fill(seq, outcome);
                    self.drain().await?;
                }
                frame = reader.next(), if !self.closing && self.pending.len() < self.max_outstanding => match frame {
                    None => return Ok(()),
                    Some(Err(e)) => {
                        warn!(peer = %self.peer, error = %e, "zk port: closing connection: bad frame");
                        return Err(e.into());
                    }
                    Some(Ok(Inbound::Frame(payload))) => {
                        self.on_frame(&payload).await?;
                        turn.handled();
                    }
                    Some(Ok(Inbound::FourLetterWord(_))) => unreachable!("only before the first frame"),
                },
            }
            if self.closing && self.pending.is_empty() {
                let _ = self.writer.flush().await;
                return Err(ConnEnd::Closed);
            }
            self.core
                .report_outstanding(&mut self.reported, self.pending.len());
            // Flush once no more pipelined requests are already buffered, or when
            // back-pressure stops reading them.
            if reader.read_buffer().is_empty() || self.pending.len() >= self.max_outstanding {
                self.writer.flush().await?;
            }
            turn.yield_if_due().await;
        }
    }

    async fn on_frame(&mut self, payload: &[u8]) -> Result<(), ConnEnd> {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        self.info.received.fetch_add(1, Ordering::Relaxed);
        let mut r = JuteReader::new(payload);
        let header = match RequestHeader::decode(&mut r) {
            Ok(h) => h,
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "zk port: closing connection: unreadable request header");
                return Err(e.into());
            }
        };
        let xid = header.xid;
        if !self.core.flood.charge(self.session_id) {
            warn!(peer = %self.peer, session = format_args!("{:#x}", self.session_id), "zk port: cutting off a flooding session");
            return Err(ConnEnd::Flood);
        }
        self.arrivals.push_back(Instant::now());
        if !self.core.touch(self.session_id) {
            // The session expired or was closed under us: tell the client, then close.
            self.pending.push_back(Slot::Done {
                xid,
                shape: Shape::Empty,
                outcome: Outcome::Err(ErrorCode::SessionExpired),
                close_after: true,
            });
            return self.drain().await;
        }
        let request = match jute::decode_request(header, r.rest()) {
            Ok(req) => req,
            Err(e) => {
                debug!(peer = %self.peer, xid, error = %e, "zk port: malformed request body");
                self.push_ready(xid, Shape::Empty, Outcome::Err(ErrorCode::MarshallingError));
                return self.drain().await;
            }
        };
        let (shape, action) = convert::decode(&request);
        match action {
            Action::Fail(code) => {
                self.push_ready(xid, shape, Outcome::Err(code));
                self.drain().await?;
            }
            Action::Do(Decoded::Write(op)) => {
                let auth = self.auth.ids();
                self.submit_or_hold(xid, shape, Submit::Write(op, auth));
            }
            Action::Do(Decoded::Auth { scheme, auth }) => {
                // Effective at once for every later request, answered in request order;
                // a refused auth closes the connection after its answer (ZooKeeper's).
                match self.auth.authenticate(
                    &scheme,
                    &auth,
                    self.peer.ip(),
                    self.core.config().super_digest.as_deref(),
                ) {
                    Ok(()) => {
                        self.core.set_conn_auth(self.conn_id, self.auth.ids());
                        self.push_ready(xid, shape, Outcome::Ok(Reply::Empty));
                    }
                    Err(code) => {
                        info!(peer = %self.peer, %scheme, "zk port: auth failed, closing the connection");
                        self.pending.push_back(Slot::Done {
                            xid,
                            shape,
                            outcome: Outcome::Err(code),
                            close_after: true,
                        });
                        self.closing = true;
                    }
                }
                self.drain().await?;
            }
            Action::Do(Decoded::Close) => {
                self.closing = true;
                let auth = self.auth.ids();
                self.submit_or_hold(xid, shape, Submit::Close(auth));
            }
            Action::Do(Decoded::Sync(path)) => self.submit_or_hold(xid, shape, Submit::Sync(path)),
            action => {
                if self.pending.is_empty() {
                    let outcome = self.execute(action, &self.auth.ids());
                    self.respond(xid, &shape, outcome).await?;
                } else {
                    let auth = self.auth.ids();
                    self.pending.push_back(Slot::Deferred {
                        xid,
                        shape,
                        action,
                        auth,
                    });
                    self.deferred_reads += 1;
                }
            }
        }
        self.info
            .queued
            .store(self.pending.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Submits a write-like request now, or holds it behind a deferred read.
    fn submit_or_hold(&mut self, xid: i32, shape: Shape, submit: Submit) {
        if self.deferred_reads > 0 {
            self.pending.push_back(Slot::Held { xid, shape, submit });
        } else {
            let seq = self.base_seq + self.pending.len() as u64;
            let slot = self.submit(xid, shape, submit, seq);
            self.pending.push_back(slot);
        }
    }

    fn submit(&mut self, xid: i32, shape: Shape, submit: Submit, seq: u64) -> Slot {
        let completion = Completion::new(self.done_tx.clone(), seq);
        let close_after = matches!(submit, Submit::Close(_));
        match submit {
            Submit::Write(op, auth) => self.core.submit(self.session_id, xid, op, auth, completion),
            Submit::Close(auth) => self.core.submit(
                self.session_id,
                xid,
                crate::request::WriteOp::CloseSession,
                auth,
                completion,
            ),
            Submit::Sync(path) => self.core.sync(path, completion),
        }
        Slot::Waiting {
            xid,
            shape,
            close_after,
        }
    }

    /// Submits the held slots no deferred read precedes any more.
    fn release_held(&mut self) {
        for i in 0..self.pending.len() {
            match &self.pending[i] {
                Slot::Deferred { .. } => return,
                Slot::Held { .. } => {
                    let seq = self.base_seq + i as u64;
                    let placeholder = Slot::Waiting {
                        xid: 0,
                        shape: Shape::Empty,
                        close_after: false,
                    };
                    let Slot::Held { xid, shape, submit } =
                        std::mem::replace(&mut self.pending[i], placeholder)
                    else {
                        unreachable!("matched above")
                    };
                    self.pending[i] = self.submit(xid, shape, submit, seq);
                }
                _ => {}
            }
        }
    }

    fn push_ready(&mut self, xid: i32, shape: Shape, outcome: Outcome) {
        self.pending.push_back(Slot::Done {
            xid,
            shape,
            outcome,
            close_after: false,
        });
    }

    fn fill(&mut self, seq: u64, outcome: Outcome) {
        let Some(index) = seq.checked_sub(self.base_seq) else {
            return;
        };
        if let Some(slot) = self.pending.get_mut(index as usize) {
            if let Slot::Waiting {
                xid,
                shape,
                close_after,
            } = slot
            {
                let (xid, close_after) = (*xid, *close_after);
                let shape = std::mem::replace(shape, Shape::Empty);
                *slot = Slot::Done {
                    xid,
                    shape,
                    outcome,
                    close_after,
                };
            }
        }
    }

    /// Answers every slot at the front that can be answered now.
    async fn drain(&mut self) -> Result<(), ConnEnd> {
        loop {
            match self.pending.front() {
                Some(Slot::Done { .. }) | Some(Slot::Deferred { .. }) => {}
                _ => {
                    self.release_held();
                    return Ok(());
                }
            }
            let slot = self.pending.pop_front().expect("front checked above");
            self.base_seq += 1;
            match slot {
                Slot::Done {
                    xid,
                    shape,
                    outcome,
                    close_after,
                } => {
                    self.respond(xid, &shape, outcome).await?;
                    if close_after {
                        self.writer.flush().await?;
                        return Err(ConnEnd::Closed);
                    }
                }
                Slot::Deferred {
                    xid,
                    shape,
                    action,
                    auth,
                } => {
                    self.deferred_reads -= 1;
                    let outcome = self.execute(action, &auth);
                    self.respond(xid, &shape, outcome).await?;
                }
                Slot::Waiting { .. } | Slot::Held { .. } => unreachable!("front checked above"),
            }
        }
    }

    /// Executes a read-like request against the local state, as `auth`.
    fn execute(&mut self, action: Action, auth: &[AuthId]) -> Outcome {
        let core = &self.core;
        match action {
            Action::Fail(code) => Outcome::Err(code),
            Action::GetEphemerals(prefix) => core.get_ephemerals(self.session_id, &prefix),
            Action::Do(Decoded::Read(op)) => core.read(self.conn_id, &op, auth),
            Action::Do(Decoded::Ping) => Outcome::Ok(Reply::Empty),
            Action::Do(Decoded::ServerState) => {
                Outcome::Ok(Reply::ServerState(core.server_state()))
            }
            Action::Do(Decoded::AddWatch { path, recursive }) => {
                core.add_watch(self.conn_id, &path, recursive)
            }
            // Native-protocol only; ZooKeeper's protocol has no such request.
            Action::Do(Decoded::AddWatchFrom(_)) => Outcome::Err(ErrorCode::Unimplemented),
            Action::Do(Decoded::RemoveWatches { path, kind }) => {
                core.remove_watches(self.conn_id, &path, kind, true)
            }
            Action::Do(Decoded::CheckWatches { path, kind }) => {
                core.remove_watches(self.conn_id, &path, kind, false)
            }
            Action::Do(Decoded::SetWatches(req)) => core.set_watches(self.conn_id, &req),
            Action::Do(Decoded::WhoAmI) => Outcome::Ok(Reply::WhoAmI(crate::auth::who_am_i(auth))),
            Action::Do(
                Decoded::Write(_) | Decoded::Close | Decoded::Sync(_) | Decoded::Auth { .. },
            ) => {
                unreachable!("writes and auth are handled on receipt, never deferred")
            }
        }
    }

    /// Writes a reply after every notification already queued for this connection.
    async fn respond(&mut self, xid: i32, shape: &Shape, outcome: Outcome) -> Result<(), ConnEnd> {
        while let Some(out) = self.outbox.try_recv() {
            match out {
                Outgoing::Event(e) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    self.writer.feed(convert::event(&e)).await?
                }
                Outgoing::Close(code) => {
                    self.writer.flush().await?;
                    return Err(ConnEnd::SessionEnded(code));
                }
            }
        }
        if let Some(at) = self.arrivals.pop_front() {
            self.stats.latency.record(at.elapsed());
        }
        let (err, body) = convert::response(shape, outcome);
        let zxid = self.core.last_zxid();
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        self.info.sent.fetch_add(1, Ordering::Relaxed);
        self.info
            .queued
            .store(self.pending.len() as u64, Ordering::Relaxed);
        self.writer
            .feed(jute::encode_response(ReplyHeader { xid, zxid, err }, &body))
            .await?;
        Ok(())
    }
}
