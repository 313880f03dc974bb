//! Peer transport: ordered byte messages between ensemble members over TCP.
//!
//! Every member dials every other member for its *outbound* messages and accepts
//! their dials for *inbound* ones, so each direction of each pair is one TCP
//! connection: FIFO while it lives, as ZAB needs. A connection starts with a hello
//! frame carrying the dialer's server id. Frames are a 4-byte big-endian length
//! and the message bytes.
//!
//! When a connection breaks, the messages queued for it are dropped and a
//! `Disconnected` event is reported: exactly the semantics of a TCP reset, which
//! the consensus core handles (a follower that loses its leader goes back to
//! election, a leader re-syncs a follower that reconnects). Dialing retries with
//! capped exponential back-off, so members may start in any order.
//!
//! With [`PeerTls`] (`peer_tls = true`) every connection is mutually authenticated TLS
//! (`tls.rs`): the dialer checks the acceptor's certificate against the CA and the
//! member's host name, the acceptor requires a client certificate the same CA signed.
//! A member with a certificate from another CA fails the handshake both ways.
//! A peer's address is its `host:port` as configured, resolved again at every dial:
//! in containers a member's name resolves only once its container exists, and its
//! address may change when the container restarts or rejoins the network.

use crate::tls::Io;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub type ServerId = u64;

/// A dial that gets no answer this long is given up and retried (a SYN to a
/// partitioned peer would otherwise wait on the kernel's retries for minutes).
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Data a peer leaves unacknowledged this long breaks the connection
/// (`TCP_USER_TIMEOUT`), so a peer cut off by a partition, or moved to a new address,
/// is redialed instead of the connection waiting on retransmissions for many minutes.
const UNACKED_TIMEOUT: Duration = Duration::from_secs(3);

#[cfg(target_os = "linux")]
fn limit_unacked(s: &TcpStream, t: Duration) {
    use std::os::fd::AsRawFd;
    let ms = t.as_millis() as libc::c_uint;
    // SAFETY: a valid socket fd and a c_uint option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            &ms as *const libc::c_uint as *const libc::c_void,
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        debug!(
            "TCP_USER_TIMEOUT not set: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn limit_unacked(_: &TcpStream, _: Duration) {}

/// Largest peer message (a snapshot travels as one message).
pub const MAX_PEER_FRAME: usize = 1 << 30;

/// What the transport reports to the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    Message {
        from: ServerId,
        bytes: Bytes,
    },
    /// A connection to or from this peer broke; messages in flight may be lost.
    Disconnected(ServerId),
    /// Our outbound connection to this peer is up (again): what was sent while it was
    /// down is lost, so the replica may resend what matters (a looking server's vote).
    Connected(ServerId),
}

/// TLS between members: how to accept, how to dial, and each member's name as its
/// certificate must show it.
#[derive(Clone)]
pub struct PeerTls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    pub names: HashMap<ServerId, ServerName<'static>>,
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_PEER_FRAME)
        .new_codec()
}

/// Handle for sending to peers.
#[derive(Clone)]
pub struct PeerNet {
    outbound: HashMap<ServerId, mpsc::UnboundedSender<Bytes>>,
}

impl PeerNet {
    /// Starts listening on `listener` and dialing every peer in `peers` (this
    /// member excluded). Events go to `events` until `shutdown`.
    pub fn start(
        me: ServerId,
        listener: TcpListener,
        peers: HashMap<ServerId, String>,
        events: mpsc::UnboundedSender<PeerEvent>,
        shutdown: CancellationToken,
        tls: Option<PeerTls>,
    ) -> PeerNet {
        let known: Vec<ServerId> = peers.keys().copied().collect();
        tokio::spawn(accept_loop(
            listener,
            known,
            events.clone(),
            shutdown.clone(),
            tls.as_ref().map(|t| t.acceptor.clone()),
        ));
        let mut outbound = HashMap::new();
        for (id, addr) in peers {
            if id == me {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            outbound.insert(id, tx);
            let tls = tls
                .as_ref()
                .and_then(|t| Some((t.connector.clone(), t.names.get(&id)?.clone())));
            tokio::spawn(dial_loop(
                me,
                id,
                addr,
                rx,
                events.clone(),
                shutdown.clone(),
                tls,
            ));
        }
        PeerNet { outbound }
    }

    /// Queues a message for `to`. Dropped silently if `to` is unknown.
    pub fn send(&self, to: ServerId, bytes: Bytes) {
        if let Some(tx) = self.outbound.get(&to) {
            let _ = tx.send(bytes);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    known: Vec<ServerId>,
    events: mpsc::UnboundedSender<PeerEvent>,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let events = events.clone();
        let shutdown = shutdown.clone();
        let known = known.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            warn!(%addr, error = %e, "peer TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            warn!(%addr, "peer TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let mut framed = Framed::new(stream, codec());
            let hello = tokio::time::timeout(Duration::from_secs(5), framed.next()).await;
            let from = match hello {
                Ok(Some(Ok(b))) if b.len() == 8 => {
                    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
                }
                _ => {
                    warn!(%addr, "peer connection without a valid hello");
                    return;
                }
            };
            if !known.contains(&from) {
                warn!(%addr, from, "peer connection from an unknown server id");
                return;
            }
            debug!(from, "inbound peer connection");
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    frame = framed.next() => match frame {
                        Some(Ok(bytes)) => {
                            if events.send(PeerEvent::Message { from, bytes: bytes.freeze() }).is_err() {
                                return;
                            }
                        }
                        _ => {
                            let _ = events.send(PeerEvent::Disconnected(from));
                            return;
                        }
                    }
                }
            }
        });
    }
}

async fn dial_loop(
    me: ServerId,
    peer: ServerId,
    addr: String,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<PeerEvent>,
    shutdown: CancellationToken,
    tls: Option<(TlsConnector, ServerName<'static>)>,
) {
    let mut backoff = Duration::from_millis(10);
    let mut was_connected = false;
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr.as_str())) => s,
        };
        let stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => {
                // Messages for an unreachable peer are lost, as on a broken connection.
                while queue.try_recv().is_ok() {}
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        limit_unacked(&stream, UNACKED_TIMEOUT);
        let stream: Box<dyn Io> = match &tls {
            None => Box::new(stream),
            Some((connector, name)) => {
                let handshake = connector.connect(name.clone(), stream);
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(s)) => Box::new(s),
                    failed => {
                        if let Ok(Err(e)) = failed {
                            warn!(peer, %addr, error = %e, "peer TLS handshake failed");
                        }
                        while queue.try_recv().is_ok() {}
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_millis(500));
                        continue;
                    }
                }
            }
        };
        let mut framed = Framed::new(stream, codec());
        if framed
            .send(Bytes::copy_from_slice(&me.to_be_bytes()))
            .await
            .is_err()
        {
            continue;
        }
        if !was_connected {
            info!(peer, %addr, "connected to peer");
        }
        was_connected = true;
        backoff = Duration::from_millis(10);
        let _ = events.send(PeerEvent::Connected(peer));
        let broke = loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = queue.recv() => {
                    let Some(msg) = msg else { return };
                    if framed.feed(msg).await.is_err() {
                        break true;
                    }
                    // Write out everything already queued with one flush.
                    let mut ok = true;
                    while let Ok(more) = queue.try_recv() {
                        if framed.feed(more).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if !ok || SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
                        break true;
                    }
                }
                // A peer never writes on our outbound connection: readable means closed.
                r = framed.next() => {
                    let _ = r;
                    break true;
                }
            }
        };
        if broke {
            warn!(peer, "lost connection to peer");
            while queue.try_recv().is_ok() {}
            let _ = events.send(PeerEvent::Disconnected(peer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn net(
        me: ServerId,
        listener: TcpListener,
        peers: &HashMap<ServerId, String>,
    ) -> (
        PeerNet,
        mpsc::UnboundedReceiver<PeerEvent>,
        CancellationToken,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        (
            PeerNet::start(me, listener, peers.clone(), tx, stop.clone(), None),
            rx,
            stop,
        )
    }

    async fn next_message(rx: &mut mpsc::UnboundedReceiver<PeerEvent>) -> (ServerId, Bytes) {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("event in time")
            {
                Some(PeerEvent::Message { from, bytes }) => return (from, bytes),
                Some(PeerEvent::Disconnected(_) | PeerEvent::Connected(_)) => continue,
                None => panic!("closed"),
            }
        }
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_members_start_in_any_order() {
        let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers: HashMap<_, _> = [
            (1, l1.local_addr().unwrap().to_string()),
            (2, l2.local_addr().unwrap().to_string()),
        ]
        .into();
        let (n1, _rx1, _s1) = net(1, l1, &peers).await;
        // Member 2 starts later; member 1 keeps dialing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_n2, mut rx2, _s2) = net(2, l2, &peers).await;
        // Until the link is up, messages may be dropped; once one arrives, order holds.
        let mut got = None;
        for i in 0..200u32 {
            n1.send(2, Bytes::from(i.to_be_bytes().to_vec()));
            if let Ok(Some(PeerEvent::Message { bytes, .. })) =
                tokio::time::timeout(Duration::from_millis(20), rx2.recv()).await
            {
                got = Some(u32::from_be_bytes(bytes[..4].try_into().unwrap()));
                break;
            }
        }
        let first = got.expect("link came up");
        for i in 0..100u32 {
            n1.send(2, Bytes::from((1000 + i).to_be_bytes().to_vec()));
        }
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let (from, b) = next_message(&mut rx2).await;
            assert_eq!(from, 1);
            let v = u32::from_be_bytes(b[..4].try_into().unwrap());
            if v >= 1000 {
                seen.push(v);
            } else {
                assert!(v > first, "late probe out of order");
            }
        }
        assert_eq!(seen, (1000..1100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_stopped_peer_is_reported_disconnected() {
        let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers: HashMap<_, _> = [
            (1, l1.local_addr().unwrap().to_string()),
            (2, l2.local_addr().unwrap().to_string()),
        ]
        .into();
        let (n1, mut rx1, _s1) = net(1, l1, &peers).await;
        let (n2, mut rx2, s2) = net(2, l2, &peers).await;
        n2.send(1, Bytes::from_static(b"hi"));
        n1.send(2, Bytes::from_static(b"yo"));
        assert_eq!(next_message(&mut rx1).await, (2, Bytes::from_static(b"hi")));
        assert_eq!(next_message(&mut rx2).await, (1, Bytes::from_static(b"yo")));
        s2.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let ev = tokio::time::timeout_at(deadline, rx1.recv())
                .await
                .expect("disconnect reported");
            if ev == Some(PeerEvent::Disconnected(2)) {
                break;
            }
        }
    }
}
