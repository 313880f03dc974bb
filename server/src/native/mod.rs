//! The native protocol front-end: one tokio task per client connection.
//!
//! A connection starts with a `ConnectRequest` (refused connections get a
//! `ConnectResponse` with an error, then the socket closes). After that the task
//! reads requests, hands writes to the core's pipeline and serves reads from the
//! local tree, and answers **in request order**: every request takes a slot in
//! `pending`; a read that arrives while writes of the same session are still in
//! flight waits in its slot and is executed only when every earlier slot is
//! answered, so it sees those writes (read-your-writes, FIFO).
//!
//! Watch notifications arrive in the connection's outbox, pushed by the core while
//! it applies a txn. Before any response is written the outbox is drained, so a
//! notification always precedes the response to any later request that could see
//! the change that fired it.
//!
//! Bad input never panics: an oversized or undecodable frame, a second connect, or
//! silence before the handshake closes this connection (with a log line) and
//! nothing else. Connections are capped by a semaphore (`max_connections`).

pub(crate) mod convert;

pub use convert::{decode, Decoded};

use crate::core::{Core, Grant};
use crate::reply::{Completion, Outcome, Outgoing, Reply};
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame::Kind as In, server_frame::Kind as Out};
use zabkeeper_proto::ErrorCode;

type Reader = FramedRead<OwnedReadHalf, Codec<wire::ClientFrame, wire::ServerFrame>>;
type Writer = FramedWrite<OwnedWriteHalf, Codec<wire::ClientFrame, wire::ServerFrame>>;

/// How long a new connection may take to send its `ConnectRequest`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts native-protocol connections until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, core: Arc<Core>, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(core.config().max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                warn!(%peer, "connection refused: max_connections reached");
                drop(stream);
                continue;
            }
        };
        let core = core.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            handle(stream, peer, core, shutdown).await;
            drop(permit);
        });
    }
}

async fn handle(stream: TcpStream, peer: SocketAddr, core: Arc<Core>, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let max = core.config().max_frame;
    let (r, w) = stream.into_split();
    let mut reader: Reader = FramedRead::new(r, Codec::new(max));
    let mut writer: Writer = FramedWrite::new(w, Codec::new(max));

    let request = match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
        Ok(Some(Ok(wire::ClientFrame {
            kind: Some(In::Connect(req)),
        }))) => req,
        Ok(Some(Ok(wire::ClientFrame {
            kind: Some(In::Probe(_)),
        }))) => {
            let reply = Outcome::Ok(Reply::ServerState(core.server_state()));
            let _ = writer.send(convert::response(0, core.last_zxid(), reply)).await;
            return;
        }
        Ok(Some(Ok(_))) => {
            warn!(%peer, "closing connection: first frame is not a ConnectRequest");
            return;
        }
        Ok(Some(Err(e))) => {
            warn!(%peer, error = %e, "closing connection: bad handshake frame");
            return;
        }
        Ok(None) => return,
        Err(_) => {
            warn!(%peer, "closing connection: no ConnectRequest within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };

    let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
    let conn_id = core.register_conn(outbox_tx);
    let grant = core.connect(conn_id, &request).await;
    let grant = match grant {
        Ok(g) => g,
        Err((code, message)) => {
            info!(%peer, ?code, %message, "connection refused");
            let resp = wire::ConnectResponse {
                error: code.code(),
                protocol_version: zabkeeper_proto::PROTOCOL_VERSION,
                zxid: core.last_zxid(),
                message,
                ..Default::default()
            };
            let _ = writer
                .send(wire::ServerFrame {
                    kind: Some(Out::Connect(resp)),
                })
                .await;
            core.unregister_conn(conn_id, None);
            return;
        }
    };
    let Grant {
        session_id,
        timeout_ms,
        password,
        zxid,
    } = grant;
    let resp = wire::ConnectResponse {
        error: 0,
        protocol_version: zabkeeper_proto::PROTOCOL_VERSION,
        timeout_ms,
        session_id,
        password: password.into(),
        read_only: false,
        zxid,
        message: String::new(),
    };
    if writer
        .send(wire::ServerFrame {
            kind: Some(Out::Connect(resp)),
        })
        .await
        .is_err()
    {
        core.unregister_conn(conn_id, Some(session_id));
        return;
    }
    debug!(%peer, session = format_args!("{session_id:#x}"), "session connected");

    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut conn = Connection {
        core: core.clone(),
        peer,
        conn_id,
        session_id,
        writer,
        outbox: outbox_rx,
        done_tx,
        pending: VecDeque::new(),
        base_seq: 0,
        auth: Vec::new(),
        closing: false,
    };
    let end = conn.run(reader, done_rx, shutdown).await;
    if let Err(e) = end {
        debug!(%peer, error = %e, "connection ended");
    }
    core.unregister_conn(conn_id, Some(session_id));
}

/// A request waiting for its turn to be answered.
enum Slot {
    /// A write (or sync) submitted to the core; filled by its completion.
    Waiting { xid: i32, close_after: bool },
    Done {
        xid: i32,
        outcome: Outcome,
        close_after: bool,
    },
    /// A read-like request deferred behind earlier writes.
    Deferred { xid: i32, request: Decoded },
}

struct Connection {
    core: Arc<Core>,
    peer: SocketAddr,
    conn_id: u64,
    session_id: i64,
    writer: Writer,
    outbox: mpsc::UnboundedReceiver<Outgoing>,
    done_tx: mpsc::UnboundedSender<(u64, Outcome)>,
    /// Slots in request order; `base_seq` is the sequence number of the front.
    pending: VecDeque<Slot>,
    base_seq: u64,
    auth: Vec<(String, String)>,
    /// Set once the session is closed: answer what is pending, then close.
    closing: bool,
}

#[derive(Debug, thiserror::Error)]
enum ConnEnd {
    #[error("{0}")]
    Frame(#[from] zabkeeper_proto::frame::FrameError),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("session ended: {0:?}")]
    SessionEnded(ErrorCode),
    #[error("client closed the session")]
    Closed,
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
                    Some(Outgoing::Event(e)) => self.writer.feed(convert::event(e)).await?,
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
                        warn!(peer = %self.peer, error = %e, "closing connection: bad frame");
                        return Err(e.into());
                    }
                    Some(Ok(frame)) => self.on_frame(frame).await?,
                },
            }
            if self.closing && self.pending.is_empty() {
                let _ = self.writer.flush().await;
                return Err(ConnEnd::Closed);
            }
            // Flush once no more pipelined requests are already buffered.
            if reader.read_buffer().is_empty() {
                self.writer.flush().await?;
            }
        }
    }

    async fn on_frame(&mut self, frame: wire::ClientFrame) -> Result<(), ConnEnd> {
        let request = match frame.kind {
            Some(In::Request(r)) => r,
            Some(In::Connect(_)) | Some(In::Probe(_)) => {
                return Err(ConnEnd::Protocol("handshake frame after the handshake"))
            }
            None => return Err(ConnEnd::Protocol("empty frame")),
        };
        let xid = request.xid;
        if !self.core.touch(self.session_id) {
            // The session expired or was closed under us: tell the client, then close.
            self.push_ready(xid, Outcome::Err(ErrorCode::SessionExpired), true);
            return self.drain().await;
        }
        let decoded = match decode(request.op) {
            Ok(d) => d,
            Err(code) => {
                self.push_ready(xid, Outcome::Err(code), false);
                return self.drain().await;
            }
        };
        match decoded {
            Decoded::Write(op) => {
                let completion = self.next_completion();
                self.pending.push_back(Slot::Waiting {
                    xid,
                    close_after: false,
                });
                self.core.submit(self.session_id, xid, op, completion);
            }
            Decoded::Close => {
                let completion = self.next_completion();
                self.pending.push_back(Slot::Waiting {
                    xid,
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
            Decoded::Sync(path) => {
                let completion = self.next_completion();
                self.pending.push_back(Slot::Waiting {
                    xid,
                    close_after: false,
                });
                self.core.sync(path, completion);
            }
            request => {
                if self.pending.is_empty() {
                    let outcome = self.execute(request);
                    self.respond(xid, outcome).await?;
                } else {
                    self.pending.push_back(Slot::Deferred { xid, request });
                }
            }
        }
        Ok(())
    }

    fn next_completion(&self) -> Completion {
        Completion {
            tx: self.done_tx.clone(),
            seq: self.base_seq + self.pending.len() as u64,
        }
    }

    fn push_ready(&mut self, xid: i32, outcome: Outcome, close_after: bool) {
        self.pending.push_back(Slot::Done {
            xid,
            outcome,
            close_after,
        });
    }

    fn fill(&mut self, seq: u64, outcome: Outcome) {
        let Some(index) = seq.checked_sub(self.base_seq) else {
            return;
        };
        if let Some(slot) = self.pending.get_mut(index as usize) {
            if let Slot::Waiting { xid, close_after } = *slot {
                *slot = Slot::Done {
                    xid,
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
                    outcome,
                    close_after,
                } => {
                    self.respond(xid, outcome).await?;
                    if close_after {
                        self.writer.flush().await?;
                        return Err(ConnEnd::Closed);
                    }
                }
                Slot::Deferred { xid, request } => {
                    let outcome = self.execute(request);
                    self.respond(xid, outcome).await?;
                }
                Slot::Waiting { .. } => unreachable!("front checked above"),
            }
        }
    }

    /// Executes a read-like request against the local state.
    fn execute(&mut self, request: Decoded) -> Outcome {
        let core = &self.core;
        match request {
            Decoded::Read(crate::request::ReadOp::GetEphemerals { prefix }) => {
                core.get_ephemerals(self.session_id, &prefix)
            }
            Decoded::Read(op) => core.read(self.conn_id, &op),
            Decoded::Ping => Outcome::Ok(Reply::Empty),
            Decoded::AddWatch { path, recursive } => {
                core.add_watch(self.conn_id, &path, recursive);
                Outcome::Ok(Reply::Empty)
            }
            Decoded::RemoveWatches { path, kind } => {
                core.remove_watches(self.conn_id, &path, kind, true)
            }
            Decoded::CheckWatches { path, kind } => {
                core.remove_watches(self.conn_id, &path, kind, false)
            }
            Decoded::SetWatches(req) => {
                core.set_watches(self.conn_id, &req);
                Outcome::Ok(Reply::Empty)
            }
            Decoded::Auth { scheme, auth } => {
                let id = String::from_utf8_lossy(&auth).to_string();
                let user = id.split(':').next().unwrap_or_default().to_string();
                self.auth.push((scheme, user));
                Outcome::Ok(Reply::Empty)
            }
            Decoded::ServerState => Outcome::Ok(Reply::ServerState(core.server_state())),
            Decoded::WhoAmI => {
                let mut ids = vec![("ip".to_string(), self.peer.ip().to_string())];
                ids.extend(self.auth.iter().cloned());
                Outcome::Ok(Reply::WhoAmI(ids))
            }
            Decoded::Write(_) | Decoded::Close | Decoded::Sync(_) => {
                unreachable!("writes are submitted, never executed in place")
            }
        }
    }

    /// Writes a response after every notification already queued for this connection.
    async fn respond(&mut self, xid: i32, outcome: Outcome) -> Result<(), ConnEnd> {
        while let Ok(out) = self.outbox.try_recv() {
            match out {
                Outgoing::Event(e) => self.writer.feed(convert::event(e)).await?,
                Outgoing::Close(code) => {
                    self.writer.flush().await?;
                    return Err(ConnEnd::SessionEnded(code));
                }
            }
        }
        let zxid = self.core.last_zxid();
        self.writer
            .feed(convert::response(xid, zxid, outcome))
            .await?;
        Ok(())
    }
}
