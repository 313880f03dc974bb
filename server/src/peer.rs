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

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub type ServerId = u64;

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
}

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
        peers: HashMap<ServerId, SocketAddr>,
        events: mpsc::UnboundedSender<PeerEvent>,
        shutdown: CancellationToken,
    ) -> PeerNet {
        let known: Vec<ServerId> = peers.keys().copied().collect();
        tokio::spawn(accept_loop(
            listener,
            known,
            events.clone(),
            shutdown.clone(),
        ));
        let mut outbound = HashMap::new();
        for (id, addr) in peers {
            if id == me {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            outbound.insert(id, tx);
            tokio::spawn(dial_loop(
                me,
                id,
                addr,
                rx,
                events.clone(),
                shutdown.clone(),
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
        tokio::spawn(async move {
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
    addr: SocketAddr,
    mut queue: mpsc::UnboundedReceiver<Bytes>,
    events: mpsc::UnboundedSender<PeerEvent>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(10);
    let mut was_connected = false;
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = TcpStream::connect(addr) => s,
        };
        let stream = match stream {
            Ok(s) => s,
            Err(_) => {
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
        peers: &HashMap<ServerId, SocketAddr>,
    ) -> (
        PeerNet,
        mpsc::UnboundedReceiver<PeerEvent>,
        CancellationToken,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        (
            PeerNet::start(me, listener, peers.clone(), tx, stop.clone()),
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
                Some(PeerEvent::Disconnected(_)) => continue,
                None => panic!("closed"),
            }
        }
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_members_start_in_any_order() {
        let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers: HashMap<_, _> =
            [(1, l1.local_addr().unwrap()), (2, l2.local_addr().unwrap())].into();
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
        let peers: HashMap<_, _> =
            [(1, l1.local_addr().unwrap()), (2, l2.local_addr().unwrap())].into();
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
