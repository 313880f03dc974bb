//! The native protocol front-end: one tokio task per client connection.
//!
//! A connection starts with a `ConnectRequest` (refused connections get a
//! `ConnectResponse` with an error, then the socket closes). After that the task
//! reads requests, hands writes to the core's pipeline and serves reads from the
//! local tree, and answers **in request order**: every request takes a slot in
//! `pending`; a read that arrives while writes of the same session are still in
//! flight waits in its slot and is executed only when every earlier slot is
//! answered, so it sees those writes (read-your-writes, FIFO). Writes that arrive
//! after such a read are held back until it has executed, so that it does not see
//! them either (a session's operations take effect in the order sent, as in
//! ZooKeeper's CommitProcessor).
//!
//! Reads sent with `CONSISTENCY_LINEARIZABLE` first ask the core for a read index
//! (`Core::read_index`: the leader's lease or a heartbeat round through the
//! leader, see `zab/src/read_index.rs`) and execute once this member has applied
//! up to the confirmed commit point; standalone, at once.
//!
//! Watch notifications arrive in the connection's outbox, pushed by the core while
//! it applies a txn. Before any response is written the outbox is drained, so a
//! notification always precedes the response to any later request that could see
//! the change that fired it.
//!
//! Bad input never panics: an oversized or undecodable frame, a second connect, or
//! silence before the handshake closes this connection (with a log line) and
//! nothing else.
//!
//! Limits ([`crate::limits`]): connections are admitted by the shared accept loop
//! (`max_connections`, `max_connections_per_ip`); while `max_outstanding_requests`
//! slots are pending the socket is not read (back-pressure: the client's own sends
//! block, nothing grows here); every request is charged to the session's rate bucket
//! and a flooding session is cut off; a connection whose outbox passes
//! `max_queued_bytes` is abandoned and closed. The session survives each cut.

pub(crate) mod convert;

pub use convert::{decode, Decoded};

use crate::auth::{AuthId, ConnAuth};
use crate::core::{Core, Grant};
use crate::outbox::OutboxRx;
use crate::reply::{Completion, Outcome, Outgoing, Reply};
use crate::tls::Io;
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame::Kind as In, server_frame::Kind as Out};
use zabkeeper_proto::ErrorCode;

type Reader = FramedRead<ReadHalf<Box<dyn Io>>, Codec<wire::ClientFrame, wire::ServerFrame>>;
type Writer = FramedWrite<WriteHalf<Box<dyn Io>>, Codec<wire::ClientFrame, wire::ServerFrame>>;

/// How long a new connection may take to send its `ConnectRequest`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts native-protocol connections until `shutdown` is cancelled; over TLS when
/// `tls` is given.
pub async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    shutdown: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let c = core.clone();
    let s = shutdown.clone();
    let port = if tls.is_some() {
        "native-tls"
    } else {
        "native"
    };
    crate::accept::accept_loop(listener, core, shutdown, port, tls, move |a| {
        handle(a, c.clone(), s.clone())
    })
    .await
}

async fn handle(accepted: crate::accept::Accepted, core: Arc<Core>, shutdown: CancellationToken) {
    let crate::accept::Accepted { stream, peer, x509 } = accepted;
    let max = core.config().max_frame;
    let (r, w) = tokio::io::split(stream);
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
            let _ = writer
                .send(convert::response(0, core.last_zxid(), reply))
                .await;
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

    let (conn_id, outbox_rx, cutoff) = core.register_conn();
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
        last_request_number,
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
        last_request_number: last_request_number as i64,
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
    let mut auth = ConnAuth::new(peer.ip());
    if let Some(dn) = x509 {
        auth.add_x509(dn);
    }
    core.set_conn_auth(conn_id, auth.ids());
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
        auth,
        closing: false,
        unexecuted_reads: 0,
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
    /// A read-like request deferred behind earlier writes, with the connection's
    /// identities when it arrived (ZooKeeper captures them at receipt too).
    Deferred {
        xid: i32,
        request: Decoded,
        auth: Arc<[AuthId]>,
    },
    /// A linearizable read waiting for its read index (filled with Ok once this
    /// member has applied up to the confirmed commit point, or with an error).
    Confirming {
        xid: i32,
        request: Decoded,
        auth: Arc<[AuthId]>,
        ready: Option<Outcome>,
    },
    /// A write, sync or close held back behind an earlier read of the session
    /// that has not executed yet: that read must not see it (FIFO per session).
    Held { xid: i32, submit: Submit },
}

/// What a held slot submits once every read before it has executed, with the
/// connection's identities when it arrived.
enum Submit {
    /// A write, with its (request number, acked below) for exactly-once writes.
    Write(crate::request::WriteOp, Arc<[AuthId]>, (u64, u64)),
    Close(Arc<[AuthId]>),
    Sync(String),
}

struct Connection {
    core: Arc<Core>,
    peer: SocketAddr,
    conn_id: u64,
    session_id: i64,
    writer: Writer,
    outbox: OutboxRx,
    done_tx: mpsc::UnboundedSender<(u64, Outcome)>,
    /// Slots in request order; `base_seq` is the sequence number of the front.
    pending: VecDeque<Slot>,
    base_seq: u64,
    /// Who the connection is: ACLs are checked against these identities.
    auth: ConnAuth,
    /// Set once the session is closed: answer what is pending, then close.
    closing: bool,
    /// The socket is not read while this many requests wait (back-pressure).
    max_outstanding: usize,
    /// This connection's share of the core's outstanding-requests gauge.
    reported: usize,
    /// Reads in `pending` not executed yet (Deferred, Confirming): writes after
    /// them are held.
    unexecuted_reads: usize,
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
                frame = reader.next(), if !self.closing && self.pending.len() < self.max_outstanding => match frame {
                    None => return Ok(()),
                    Some(Err(e)) => {
                        warn!(peer = %self.peer, error = %e, "closing connection: bad frame");
                        return Err(e.into());
                    }
                    Some(Ok(frame)) => {
                        self.on_frame(frame).await?;
                        turn.handled();
                    }
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

    async fn on_frame(&mut self, frame: wire::ClientFrame) -> Result<(), ConnEnd> {
        let request = match frame.kind {
            Some(In::Request(r)) => r,
            Some(In::Connect(_)) | Some(In::Probe(_)) => {
                return Err(ConnEnd::Protocol("handshake frame after the handshake"))
            }
            None => return Err(ConnEnd::Protocol("empty frame")),
        };
        let xid = request.xid;
        if !self.core.flood.charge(self.session_id) {
            warn!(peer = %self.peer, session = format_args!("{:#x}", self.session_id), "cutting off a flooding session");
            return Err(ConnEnd::Flood);
        }
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
        let linearizable = request.consistency == wire::Consistency::Linearizable as i32;
        match decoded {
            Decoded::Write(op) => {
                let auth = self.auth.ids();
                // Negative numbers are nonsense; treat them as unnumbered.
                let numbered = (
                    request.request_number.max(0) as u64,
                    request.acked_below.max(0) as u64,
                );
                self.submit_or_hold(xid, Submit::Write(op, auth, numbered));
            }
            Decoded::Auth { scheme, auth } => {
                // Effective at once for every later request (as in ZooKeeper, which
                // handles auth on receipt); answered in request order. A refused
                // auth is answered AuthFailed and, unlike ZooKeeper's port, the
                // connection stays open (the native client reports the error).
                let outcome = match self.auth.authenticate(
                    &scheme,
                    &auth,
                    self.peer.ip(),
                    self.core.config().super_digest.as_deref(),
                ) {
                    Ok(()) => {
                        self.core.set_conn_auth(self.conn_id, self.auth.ids());
                        Outcome::Ok(Reply::Empty)
                    }
                    Err(code) => {
                        info!(peer = %self.peer, %scheme, "auth failed");
                        Outcome::Err(code)
                    }
                };
                self.push_ready(xid, outcome, false);
                return self.drain().await;
            }
            Decoded::Close => {
                self.closing = true;
                let auth = self.auth.ids();
                self.submit_or_hold(xid, Submit::Close(auth));
            }
            Decoded::Sync(path) => self.submit_or_hold(xid, Submit::Sync(path)),
            request @ Decoded::Read(_) if linearizable => {
                let completion = self.next_completion();
                let auth = self.auth.ids();
                self.pending.push_back(Slot::Confirming {
                    xid,
                    request,
                    auth,
                    ready: None,
                });
                self.unexecuted_reads += 1;
                self.core.read_index(completion);
            }
            request => {
                if self.pending.is_empty() {
                    let outcome = self.execute(request, &self.auth.ids());
                    self.respond(xid, outcome).await?;
                } else {
                    let auth = self.auth.ids();
                    self.pending
                        .push_back(Slot::Deferred { xid, request, auth });
                    self.unexecuted_reads += 1;
                }
            }
        }
        Ok(())
    }

    /// Submits a write-like request now, or holds it while an earlier read of the
    /// session is still to execute.
    fn submit_or_hold(&mut self, xid: i32, submit: Submit) {
        if self.unexecuted_reads > 0 {
            self.pending.push_back(Slot::Held { xid, submit });
        } else {
            let seq = self.base_seq + self.pending.len() as u64;
            let slot = self.submit(xid, submit, seq);
            self.pending.push_back(slot);
        }
    }

    /// Hands a write-like request to the core; returns its waiting slot.
    fn submit(&mut self, xid: i32, submit: Submit, seq: u64) -> Slot {
        let completion = Completion::new(self.done_tx.clone(), seq);
        let close_after = matches!(submit, Submit::Close(_));
        match submit {
            Submit::Write(op, auth, numbered) => {
                self.core
                    .submit_numbered(self.session_id, xid, numbered, op, auth, completion)
            }
            Submit::Close(auth) => self.core.submit(
                self.session_id,
                xid,
                crate::request::WriteOp::CloseSession,
                auth,
                completion,
            ),
            Submit::Sync(path) => self.core.sync(path, completion),
        }
        Slot::Waiting { xid, close_after }
    }

    /// Submits the held slots that no unexecuted read precedes any more.
    fn release_held(&mut self) {
        for i in 0..self.pending.len() {
            match &self.pending[i] {
                Slot::Deferred { .. } | Slot::Confirming { .. } => return,
                Slot::Held { .. } => {
                    let seq = self.base_seq + i as u64;
                    let placeholder = Slot::Waiting {
                        xid: 0,
                        close_after: false,
                    };
                    let Slot::Held { xid, submit } =
                        std::mem::replace(&mut self.pending[i], placeholder)
                    else {
                        unreachable!("matched above")
                    };
                    self.pending[i] = self.submit(xid, submit, seq);
                }
                _ => {}
            }
        }
    }

    fn next_completion(&self) -> Completion {
        Completion::new(
            self.done_tx.clone(),
            self.base_seq + self.pending.len() as u64,
        )
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
        match self.pending.get_mut(index as usize) {
            Some(slot @ Slot::Waiting { .. }) => {
                if let Slot::Waiting { xid, close_after } = *slot {
                    *slot = Slot::Done {
                        xid,
                        outcome,
                        close_after,
                    };
                }
            }
            Some(Slot::Confirming { ready, .. }) => *ready = Some(outcome),
            _ => {}
        }
    }

    /// Answers every slot at the front that can be answered now, then submits
    /// the held writes no unexecuted read precedes any more.
    async fn drain(&mut self) -> Result<(), ConnEnd> {
        loop {
            match self.pending.front() {
                Some(Slot::Done { .. })
                | Some(Slot::Deferred { .. })
                | Some(Slot::Confirming { ready: Some(_), .. }) => {}
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
                    outcome,
                    close_after,
                } => {
                    self.respond(xid, outcome).await?;
                    if close_after {
                        self.writer.flush().await?;
                        return Err(ConnEnd::Closed);
                    }
                }
                Slot::Deferred { xid, request, auth } => {
                    self.unexecuted_reads -= 1;
                    let outcome = self.execute(request, &auth);
                    self.respond(xid, outcome).await?;
                }
                Slot::Confirming {
                    xid,
                    request,
                    auth,
                    ready: Some(ready),
                } => {
                    self.unexecuted_reads -= 1;
                    let outcome = match ready {
                        Outcome::Ok(_) => self.execute(request, &auth),
                        err => err,
                    };
                    self.respond(xid, outcome).await?;
                }
                Slot::Waiting { .. } | Slot::Confirming { .. } | Slot::Held { .. } => {
                    unreachable!("front checked above")
                }
            }
        }
    }

    /// Executes a read-like request against the local state, as `auth`.
    fn execute(&mut self, request: Decoded, auth: &[AuthId]) -> Outcome {
        let core = &self.core;
        match request {
            Decoded::Read(crate::request::ReadOp::GetEphemerals { prefix }) => {
                core.get_ephemerals(self.session_id, &prefix)
            }
            Decoded::Read(op) => core.read(self.conn_id, &op, auth),
            Decoded::Ping => Outcome::Ok(Reply::Empty),
            Decoded::AddWatch { path, recursive } => core.add_watch(self.conn_id, &path, recursive),
            Decoded::AddWatchFrom(req) => core.add_watch_from(self.conn_id, &req),
            Decoded::RemoveWatches { path, kind } => {
                core.remove_watches(self.conn_id, &path, kind, true)
            }
            Decoded::CheckWatches { path, kind } => {
                core.remove_watches(self.conn_id, &path, kind, false)
            }
            Decoded::SetWatches(req) => core.set_watches(self.conn_id, &req),
            Decoded::ServerState => Outcome::Ok(Reply::ServerState(core.server_state())),
            Decoded::WhoAmI => Outcome::Ok(Reply::WhoAmI(crate::auth::who_am_i(auth))),
            Decoded::Write(_) | Decoded::Close | Decoded::Sync(_) | Decoded::Auth { .. } => {
                unreachable!("writes are submitted, never executed in place")
            }
        }
    }

    /// Writes a response after every notification already queued for this connection.
    async fn respond(&mut self, xid: i32, outcome: Outcome) -> Result<(), ConnEnd> {
        while let Some(out) = self.outbox.try_recv() {
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
