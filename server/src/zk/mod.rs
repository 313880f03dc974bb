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
//!   `ConnectResponse::refused`, then the close. The `readOnly` byte is answered only to
//!   clients that sent one;
//! * a frame whose header cannot be read, a length over `max_frame`, or garbage before the
//!   handshake closes the connection with a log line; a readable header with a malformed body
//!   is answered `MarshallingError` under its xid and the session goes on; an unknown opcode is
//!   answered `Unimplemented`;
//! * an `auth` packet with an unsupported scheme is answered `AuthFailed` and the connection
//!   closes (ZooKeeper's behaviour); `digest` identities are recorded for `whoAmI` (ACL
//!   enforcement is a later issue);
//! * `closeSession` is answered, then the connection closes.

pub mod convert;
pub mod fourlw;

use crate::core::{ConnId, Core, Grant};
use crate::native::Decoded;
use crate::reply::{Completion, Outcome, Outgoing, Reply};
use convert::{Action, Shape};
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zabkeeper_jute::{
    self as jute, FrameCodec, Inbound, JuteError, Reader as JuteReader, Record, ReplyHeader,
    RequestHeader,
};
use zabkeeper_proto::{wire, ErrorCode};

type Reader = FramedRead<OwnedReadHalf, FrameCodec>;
type Writer = FramedWrite<OwnedWriteHalf, FrameCodec>;

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

/// Accepts ZooKeeper-protocol connections until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, core: Arc<Core>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(core.config().max_connections));
    let stats = Arc::new(Stats::default());
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "zk port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                warn!(%peer, "zk port: connection refused: max_connections reached");
                continue;
            }
        };
        let core = core.clone();
        let shutdown = shutdown.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            handle(stream, peer, core, stats, shutdown).await;
            drop(permit);
        });
    }
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    core: Arc<Core>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let max = core.config().max_frame;
    let (r, w) = stream.into_split();
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

    let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
    let conn_id = core.register_conn(outbox_tx);
    let grant = match core.connect(conn_id, &native_request).await {
        Ok(g) => g,
        Err((code, message)) => {
            info!(%peer, ?code, %message, "zk port: connection refused");
            if code != ErrorCode::NotCaughtUp {
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
        auth: Vec::new(),
        closing: false,
    };
    let end = conn.run(reader, done_rx, shutdown).await;
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
    /// A read-like request deferred behind earlier writes.
    Deferred {
        xid: i32,
        shape: Shape,
        action: Action,
    },
}

struct Connection {
    core: Arc<Core>,
    stats: Arc<Stats>,
    info: Arc<fourlw::ConnInfo>,
    peer: SocketAddr,
    conn_id: ConnId,
    session_id: i64,
    writer: Writer,
    outbox: mpsc::UnboundedReceiver<Outgoing>,
    done_tx: mpsc::UnboundedSender<(u64, Outcome)>,
    /// Slots in request order; `base_seq` is the sequence number of the front.
    pending: VecDeque<Slot>,
    /// Arrival time of every request not answered yet, in request order (one reply each).
    arrivals: VecDeque<Instant>,
    base_seq: u64,
    /// Identities added by `auth` packets: (scheme, user).
    auth: Vec<(String, String)>,
    /// Set once the session is closing: answer what is pending, then close.
    closing: bool,
}

#[derive(Debug, thiserror::Error)]
enum ConnEnd {
    #[error("{0}")]
    Frame(#[from] JuteError),
    #[error("session ended: {0:?}")]
    SessionEnded(ErrorCode),
    #[error("client closed the session")]
    Closed,
    #[error("authentication failed")]
    AuthFailed,
    #[error("server shutting down")]
    Shutdown,
}

impl Connection {
    async fn run(
        &mut self,
        mut reader: Reader,
        mut done_rx: mpsc::UnboundedReceiver<(u64, Outcome)>,
        shutdown: CancellationToken,
    ) -> Result<(), ConnEnd> {
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
                frame = reader.next(), if !self.closing => match frame {
                    None => return Ok(()),
                    Some(Err(e)) => {
                        warn!(peer = %self.peer, error = %e, "zk port: closing connection: bad frame");
                        return Err(e.into());
                    }
                    Some(Ok(Inbound::Frame(payload))) => self.on_frame(&payload).await?,
                    Some(Ok(Inbound::FourLetterWord(_))) => unreachable!("only before the first frame"),
                },
            }
            if self.closing && self.pending.is_empty() {
                let _ = self.writer.flush().await;
                return Err(ConnEnd::Closed);
            }
            if reader.read_buffer().is_empty() {
                self.writer.flush().await?;
            }
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
                let completion = self.next_completion();
                self.pending.push_back(Slot::Waiting {
                    xid,
                    shape,
                    close_after: false,
                });
                self.core.submit(self.session_id, xid, op, completion);
            }
            Action::Do(Decoded::Close) => {
                let completion = self.next_completion();
                self.pending.push_back(Slot::Waiting {
                    xid,
                    shape,
                    close_after: true,
                });
                self.closing = true;
                self.core.submit(
                    self.session_id,
                    xid,
                    crate::request::WriteOp::CloseSession,
                    completion,
                );
            }
            Action::Do(Decoded::Sync(path)) => {
                let completion = self.next_completion();
                self.pending.push_back(Slot::Waiting {
                    xid,
                    shape,
                    close_after: false,
                });
                self.core.sync(path, completion);
            }
            action => {
                if self.pending.is_empty() {
                    let (outcome, close) = self.execute(action);
                    self.respond(xid, &shape, outcome).await?;
                    if close {
                        self.writer.flush().await?;
                        return Err(ConnEnd::AuthFailed);
                    }
                } else {
                    self.pending
                        .push_back(Slot::Deferred { xid, shape, action });
                }
            }
        }
        self.info
            .queued
            .store(self.pending.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn next_completion(&self) -> Completion {
        Completion {
            tx: self.done_tx.clone(),
            seq: self.base_seq + self.pending.len() as u64,
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
                _ => return Ok(()),
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
                Slot::Deferred { xid, shape, action } => {
                    let (outcome, close) = self.execute(action);
                    self.respond(xid, &shape, outcome).await?;
                    if close {
                        self.writer.flush().await?;
                        return Err(ConnEnd::AuthFailed);
                    }
                }
                Slot::Waiting { .. } => unreachable!("front checked above"),
            }
        }
    }

    /// Executes a read-like request against the local state. The flag asks to close the
    /// connection after answering (a failed auth).
    fn execute(&mut self, action: Action) -> (Outcome, bool) {
        let core = &self.core;
        let outcome = match action {
            Action::Fail(code) => Outcome::Err(code),
            Action::GetEphemerals(prefix) => core.get_ephemerals(self.session_id, &prefix),
            Action::Do(Decoded::Read(op)) => core.read(self.conn_id, &op),
            Action::Do(Decoded::Ping) => Outcome::Ok(Reply::Empty),
            Action::Do(Decoded::ServerState) => {
                Outcome::Ok(Reply::ServerState(core.server_state()))
            }
            Action::Do(Decoded::AddWatch { path, recursive }) => {
                core.add_watch(self.conn_id, &path, recursive);
                Outcome::Ok(Reply::Empty)
            }
            Action::Do(Decoded::RemoveWatches { path, kind }) => {
                core.remove_watches(self.conn_id, &path, kind, true)
            }
            Action::Do(Decoded::CheckWatches { path, kind }) => {
                core.remove_watches(self.conn_id, &path, kind, false)
            }
            Action::Do(Decoded::SetWatches(req)) => {
                core.set_watches(self.conn_id, &req);
                Outcome::Ok(Reply::Empty)
            }
            Action::Do(Decoded::Auth { scheme, auth }) => match digest_user(&scheme, &auth) {
                Some(user) => {
                    self.auth.push((scheme, user));
                    Outcome::Ok(Reply::Empty)
                }
                None => {
                    info!(peer = %self.peer, %scheme, "zk port: auth failed, closing the connection");
                    return (Outcome::Err(ErrorCode::AuthFailed), true);
                }
            },
            Action::Do(Decoded::WhoAmI) => {
                let mut ids = vec![("ip".to_string(), self.peer.ip().to_string())];
                ids.extend(self.auth.iter().cloned());
                Outcome::Ok(Reply::WhoAmI(ids))
            }
            Action::Do(Decoded::Write(_) | Decoded::Close | Decoded::Sync(_)) => {
                unreachable!("writes are submitted, never executed in place")
            }
        };
        (outcome, false)
    }

    /// Writes a reply after every notification already queued for this connection.
    async fn respond(&mut self, xid: i32, shape: &Shape, outcome: Outcome) -> Result<(), ConnEnd> {
        while let Ok(out) = self.outbox.try_recv() {
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

/// The user of a `digest` auth (`user:password`); other schemes are not supported and fail,
/// as they do on a ZooKeeper without their provider.
fn digest_user(scheme: &str, auth: &[u8]) -> Option<String> {
    if scheme != "digest" {
        return None;
    }
    let text = std::str::from_utf8(auth).ok()?;
    let (user, _) = text.split_once(':')?;
    (!user.is_empty()).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_auth_needs_user_and_password() {
        assert_eq!(digest_user("digest", b"alice:secret"), Some("alice".into()));
        assert_eq!(digest_user("digest", b"alice:"), Some("alice".into()));
        assert_eq!(digest_user("digest", b":secret"), None);
        assert_eq!(digest_user("digest", b"nocolon"), None);
        assert_eq!(digest_user("digest", &[0xff, b':']), None);
        assert_eq!(digest_user("kerberos", b"a:b"), None);
    }
}
