//! The client against a scripted in-process server: each test plays the server's side
//! of the protocol frame by frame, so ordering, reconnect and failure paths are checked
//! exactly, without the real server.

use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::Framed;
use zabkeeper_client::*;
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, request::Op as Q, response::Result as R};

type ServerCodec = Codec<wire::ClientFrame, wire::ServerFrame>;

struct Fake {
    listener: TcpListener,
    addr: String,
}

impl Fake {
    async fn new() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        Fake { listener, addr }
    }

    /// Accepts a connection and reads its handshake.
    async fn accept(&self) -> (Peer, wire::ConnectRequest) {
        let (stream, _) = timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("no connection")
            .unwrap();
        let mut io = Framed::new(stream, ServerCodec::new(1 << 20));
        let frame = io.next().await.unwrap().unwrap();
        let Some(wire::client_frame::Kind::Connect(req)) = frame.kind else {
            panic!("expected handshake, got {frame:?}")
        };
        (Peer { io }, req)
    }

    /// Accepts a connection and grants session `id` (timeout 3 s unless asked).
    async fn accept_session(&self, id: i64, zxid: i64) -> (Peer, wire::ConnectRequest) {
        let (mut peer, req) = self.accept().await;
        let timeout_ms = if req.timeout_ms > 0 {
            req.timeout_ms
        } else {
            3000
        };
        peer.send(wire::server_frame::Kind::Connect(wire::ConnectResponse {
            error: 0,
            protocol_version: 1,
            timeout_ms,
            session_id: id,
            password: Bytes::from_static(b"secret"),
            read_only: false,
            zxid,
            message: String::new(),
            last_request_number: 0,
        }))
        .await;
        (peer, req)
    }
}

struct Peer {
    io: Framed<TcpStream, ServerCodec>,
}

impl Peer {
    async fn send(&mut self, kind: wire::server_frame::Kind) {
        self.io
            .send(wire::ServerFrame { kind: Some(kind) })
            .await
            .unwrap();
    }

    async fn refuse(mut self, code: ErrorCode) {
        self.send(wire::server_frame::Kind::Connect(wire::ConnectResponse {
            error: code.code(),
            message: "refused".into(),
            ..Default::default()
        }))
        .await;
    }

    /// Next request, answering pings on the way.
    async fn recv(&mut self) -> wire::Request {
        loop {
            let frame = timeout(Duration::from_secs(10), self.io.next())
                .await
                .expect("no request")
                .unwrap()
                .unwrap();
            let Some(wire::client_frame::Kind::Request(req)) = frame.kind else {
                panic!("expected request")
            };
            if matches!(req.op, Some(Q::Ping(_))) {
                self.reply(req.xid, 0, 0, Some(R::Empty(wire::Empty {})))
                    .await;
                continue;
            }
            return req;
        }
    }

    async fn reply(&mut self, xid: i32, zxid: i64, error: i32, result: Option<R>) {
        self.send(wire::server_frame::Kind::Response(wire::Response {
            xid,
            zxid,
            error,
            result,
        }))
        .await;
    }

    async fn event(&mut self, t: EventType, path: &str, zxid: i64) {
        self.send(wire::server_frame::Kind::Event(wire::WatchEvent {
            r#type: t as i32,
            state: KeeperState::SyncConnected as i32,
            path: path.into(),
            zxid,
            ..Default::default()
        }))
        .await;
    }
}

fn stat(version: i32, mzxid: i64) -> wire::Stat {
    wire::Stat {
        version,
        mzxid,
        ..Default::default()
    }
}

fn data(d: &'static [u8], version: i32) -> Option<R> {
    Some(R::GetData(wire::GetDataResponse {
        data: Bytes::from_static(d),
        stat: Some(stat(version, 1)),
    }))
}

fn path_of(req: &wire::Request) -> String {
    match req.op.as_ref().unwrap() {
        Q::GetData(p) | Q::Exists(p) => p.path.clone(),
        Q::GetChildren(p) => p.path.clone(),
        Q::SetData(p) => p.path.clone(),
        Q::Create(p) => p.path.clone(),
        Q::Delete(p) => p.path.clone(),
        Q::AddWatch(p) => p.path.clone(),
        other => panic!("no path in {other:?}"),
    }
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

async fn connected(fake: &Fake, id: i64) -> (Client, Peer) {
    let (c, (peer, _)) = tokio::join!(
        Client::connect(&fake.addr, opts()),
        fake.accept_session(id, 1)
    );
    (c.unwrap(), peer)
}

#[tokio::test]
async fn handshake_carries_options_and_session_terms_are_taken() {
    let fake = Fake::new().await;
    let (c, (_peer, req)) = tokio::join!(
        Client::connect(&fake.addr, opts()),
        fake.accept_session(0x55, 7)
    );
    let c = c.unwrap();
    assert_eq!(
        (req.session_id, req.timeout_ms, req.last_zxid_seen),
        (0, 3000, 0)
    );
    assert_eq!(c.session_id(), 0x55);
    assert_eq!(c.session_password(), b"secret");
    assert_eq!(c.session_timeout(), Duration::from_secs(3));
    assert_eq!(c.last_zxid(), 7);
    assert_eq!(c.connected_server(), Some(fake.addr.clone()));
    assert_eq!(c.state(), SessionState::Connected);
}

#[tokio::test]
async fn pipelined_calls_are_matched_in_order() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 1).await;
    let server = async {
        let mut reqs = vec![];
        for _ in 0..3 {
            reqs.push(peer.recv().await);
        }
        let xids: Vec<i32> = reqs.iter().map(|r| r.xid).collect();
        assert!(
            xids.windows(2).all(|w| w[0] < w[1]),
            "xids increase: {xids:?}"
        );
        for r in &reqs {
            let p = path_of(r);
            let body: &'static [u8] = match p.as_str() {
                "/a" => b"A",
                "/b" => b"B",
                _ => b"C",
            };
            peer.reply(r.xid, 10, 0, data(body, 1)).await;
        }
        peer
    };
    let (a, b, cc, _peer) =
        tokio::join!(c.get_data("/a"), c.get_data("/b"), c.get_data("/c"), server);
    assert_eq!(&a.unwrap().0[..], b"A");
    assert_eq!(&b.unwrap().0[..], b"B");
    assert_eq!(&cc.unwrap().0[..], b"C");
}

#[tokio::test]
async fn errors_are_typed_and_exists_maps_no_node_to_none() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 1).await;
    let server = async move {
        let r = peer.recv().await;
        peer.reply(r.xid, 2, ErrorCode::NoNode.code(), None).await;
        let r = peer.recv().await;
        peer.reply(r.xid, 2, ErrorCode::NoNode.code(), None).await;
        let r = peer.recv().await;
        peer.reply(r.xid, 2, ErrorCode::NotCaughtUp.code(), None)
            .await;
        let r = peer.recv().await;
        peer.reply(r.xid, 2, 0, Some(R::Empty(wire::Empty {})))
            .await; // wrong result kind
        peer
    };
    let calls = async {
        assert_eq!(c.get_data("/x").await, Err(Error::NoNode));
        assert_eq!(c.exists("/x").await, Ok(None));
        assert_eq!(
            c.delete("/x", None).await,
            Err(Error::Other(ErrorCode::NotCaughtUp))
        );
        assert!(matches!(
            c.get_children("/x").await,
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            c.get_data("bad").await,
            Err(Error::InvalidPath(_))
        ));
    };
    tokio::join!(calls, server);
}

#[tokio::test]
async fn zxid_from_answers_and_events_never_decreases() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 1).await;
    let server = async {
        let r = peer.recv().await;
        peer.reply(r.xid, 50, 0, data(b"", 1)).await;
        peer.event(EventType::NodeDataChanged, "/nobody", 40).await;
        let r = peer.recv().await;
        peer.reply(r.xid, 30, 0, data(b"", 1)).await;
        peer
    };
    let calls = async {
        c.get_data("/a").await.unwrap();
        assert_eq!(c.last_zxid(), 50);
        c.get_data("/a").await.unwrap();
        assert_eq!(c.last_zxid(), 50);
    };
    tokio::join!(calls, server);
}

#[tokio::test]
async fn watch_event_is_delivered_before_a_later_answer() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 1).await;
    let server = async {
        let r = peer.recv().await;
        assert!(matches!(&r.op, Some(Q::GetData(p)) if p.watch));
        peer.reply(r.xid, 5, 0, data(b"v1", 1)).await;
        let r = peer.recv().await;
        peer.event(EventType::NodeDataChanged, "/a", 6).await;
        peer.reply(r.xid, 6, 0, data(b"v2", 2)).await;
        peer.event(EventType::NodeDataChanged, "/a", 7).await; // the one-shot is spent
        peer
    };
    let calls = async {
        let ((d, s), watch) = c.get_data_w("/a").await.unwrap();
        assert_eq!((&d[..], s.version), (&b"v1"[..], 1));
        let (d, _) = c.get_data("/a").await.unwrap();
        assert_eq!(&d[..], b"v2");
        let ev = watch.now_or_never().expect("event before the later answer");
        assert_eq!(
            (ev.event_type, ev.path.as_str(), ev.zxid),
            (EventType::NodeDataChanged, "/a", 6)
        );
        assert_eq!(ev.state, KeeperState::SyncConnected);
    };
    tokio::join!(calls, server);
}

#[tokio::test]
async fn persistent_and_recursive_streams_and_remove_watches() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 1).await;
    let (p, r) = {
        let server = async {
            let r = peer.recv().await;
            assert!(
                matches!(&r.op, Some(Q::AddWatch(a)) if a.mode == AddWatchMode::Persistent as i32)
            );
            peer.reply(r.xid, 2, 0, Some(R::Empty(wire::Empty {})))
                .await;
            let r = peer.recv().await;
            assert!(
                matches!(&r.op, Some(Q::AddWatch(a)) if a.mode == AddWatchMode::PersistentRecursive as i32)
            );
            peer.reply(r.xid, 2, 0, Some(R::Empty(wire::Empty {})))
                .await;
        };
        let calls = async {
            let p = c.add_watch("/a", AddWatchMode::Persistent).await.unwrap();
            let r = c
                .add_watch("/", AddWatchMode::PersistentRecursive)
                .await
                .unwrap();
            (p, r)
        };
        tokio::join!(calls, server).0
    };
    let (mut p, mut r) = (p, r);
    peer.event(EventType::NodeCreated, "/a", 3).await;
    peer.event(EventType::NodeChildrenChanged, "/a", 4).await;
    peer.event(EventType::NodeCreated, "/a/b", 4).await;
    let types = |evs: Vec<WatchedEvent>| {
        evs.into_iter()
            .map(|e| (e.event_type, e.path))
            .collect::<Vec<_>>()
    };
    let mut got = vec![];
    for _ in 0..2 {
        got.push(
            timeout(Duration::from_secs(5), p.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        types(got),
        vec![
            (EventType::NodeCreated, "/a".to_string()),
            (EventType::NodeChildrenChanged, "/a".to_string())
        ]
    );
    let mut got = vec![];
    for _ in 0..2 {
        got.push(
            timeout(Duration::from_secs(5), r.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        types(got),
        vec![
            (EventType::NodeCreated, "/a".into()),
            (EventType::NodeCreated, "/a/b".into())
        ]
    );

    let server = async {
        let req = peer.recv().await;
        assert!(
            matches!(&req.op, Some(Q::RemoveWatches(w)) if w.r#type == WatcherType::Persistent as i32)
        );
        peer.reply(req.xid, 5, 0, Some(R::Empty(wire::Empty {})))
            .await;
        let req = peer.recv().await;
        peer.reply(req.xid, 5, ErrorCode::NoWatcher.code(), None)
            .await;
    };
    let calls = async {
        c.remove_watches("/a", WatcherType::Persistent)
            .await
            .unwrap();
        assert_eq!(
            c.remove_watches("/a", WatcherType::Persistent).await,
            Err(Error::NoWatcher)
        );
    };
    tokio::join!(calls, server);
    let last = p.next().await.unwrap();
    assert_eq!(last.event_type, EventType::PersistentWatchRemoved);
    assert!(p.next().await.is_none(), "stream ends after removal");
}

#[tokio::test]
async fn reconnect_resumes_session_and_restores_watches_before_queued_calls() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 0x77).await;
    // Register a data watch, an exist watch and a child watch; leave one call unanswered.
    let server = async {
        let r = peer.recv().await;
        peer.reply(r.xid, 20, 0, data(b"x", 1)).await;
        let r = peer.recv().await;
        peer.reply(r.xid, 21, ErrorCode::NoNode.code(), None).await;
        let r = peer.recv().await;
        let children = wire::GetChildrenResponse {
            children: vec!["k".into()],
            stat: None,
        };
        peer.reply(r.xid, 22, 0, Some(R::GetChildren(children)))
            .await;
    };
    let calls = async {
        let (_, w1) = c.get_data_w("/d").await.unwrap();
        let (s, w2) = c.exists_w("/e").await.unwrap();
        assert_eq!(s, None);
        let (kids, w3) = c.get_children_w("/c").await.unwrap();
        assert_eq!(kids, vec!["k"]);
        (w1, w2, w3)
    };
    let ((w1, w2, w3), ()) = tokio::join!(calls, server);
    let mut states = Box::pin(c.state_stream());
    assert_eq!(states.next().await, Some(SessionState::Connected));

    // A read and a write in flight when the connection drops: the read fails, the
    // write is kept and re-sent with the same request number.
    let read = tokio::spawn({
        let c = c.clone();
        async move { c.get_data("/r").await }
    });
    let req = peer.recv().await;
    assert_eq!(path_of(&req), "/r");
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.set_data("/d", "y", None).await }
    });
    let req = peer.recv().await;
    assert!(matches!(req.op, Some(Q::SetData(_))));
    assert_eq!((req.request_number, req.acked_below), (1, 1));
    drop(peer);
    assert_eq!(read.await.unwrap(), Err(Error::ConnectionLoss));
    assert_eq!(states.next().await, Some(SessionState::Disconnected));
    assert_eq!(c.connected_server(), None);

    // A call made while disconnected waits for the new connection.
    let queued = tokio::spawn({
        let c = c.clone();
        async move { c.get_data("/q").await }
    });
    let (mut peer, req) = fake.accept_session(0x77, 22).await;
    assert_eq!(
        (req.session_id, &req.password[..], req.last_zxid_seen),
        (0x77, &b"secret"[..], 22)
    );
    let first = peer.recv().await;
    let Some(Q::SetWatches(sw)) = first.op else {
        panic!("SetWatches must come first, got {first:?}")
    };
    assert_eq!(sw.relative_zxid, 22);
    assert_eq!(
        (sw.data_watches, sw.exist_watches, sw.child_watches),
        (vec!["/d".into()], vec!["/e".into()], vec!["/c".into()])
    );
    assert!(sw.persistent_watches.is_empty() && sw.persistent_recursive_watches.is_empty());
    // The server fires the data watch at once: /d changed while we were away.
    peer.event(EventType::NodeDataChanged, "/d", 23).await;
    peer.reply(first.xid, 23, 0, Some(R::Empty(wire::Empty {})))
        .await;
    // The unanswered write comes next, with its number, before the queued call.
    let retried = peer.recv().await;
    assert!(matches!(retried.op, Some(Q::SetData(_))));
    assert_eq!((retried.request_number, retried.acked_below), (1, 1));
    peer.reply(retried.xid, 23, 0, Some(R::Stat(stat(2, 23))))
        .await;
    assert_eq!(in_flight.await.unwrap().unwrap().version, 2);
    let q = peer.recv().await;
    assert_eq!(path_of(&q), "/q");
    peer.reply(q.xid, 23, 0, data(b"q", 1)).await;
    assert_eq!(&queued.await.unwrap().unwrap().0[..], b"q");
    assert_eq!(states.next().await, Some(SessionState::Connected));
    assert_eq!(w1.await.zxid, 23);
    assert!(
        w2.now_or_never().is_none() && w3.now_or_never().is_none(),
        "unfired watches stay pending"
    );
    assert_eq!(c.session_id(), 0x77);
}

#[tokio::test]
async fn reconnect_skips_a_member_that_is_behind() {
    let a = Fake::new().await;
    let b = Fake::new().await;
    let servers = format!("{},{}", a.addr, b.addr);
    // Whichever member the client picks first gets the session.
    let accept_either = async {
        tokio::select! {
            r = a.accept_session(9, 100) => r.0,
            r = b.accept_session(9, 100) => r.0,
        }
    };
    let (c, who) = tokio::join!(Client::connect(&servers, opts()), accept_either);
    let c = c.unwrap();
    let first = c.connected_server().unwrap();
    drop(who);
    // Now both refuse as not caught up until the other one accepts; the client must keep trying.
    let (behind, ahead) = if first == a.addr { (&a, &b) } else { (&b, &a) };
    let refuse = async {
        loop {
            let (peer, req) = behind.accept().await;
            assert_eq!(req.last_zxid_seen, 100);
            peer.refuse(ErrorCode::NotCaughtUp).await;
        }
    };
    let accept = async {
        let (peer, req) = ahead.accept_session(9, 120).await;
        assert_eq!((req.session_id, req.last_zxid_seen), (9, 100));
        peer
    };
    let _peer = tokio::select! { p = accept => p, _ = refuse => unreachable!() };
    timeout(Duration::from_secs(5), async {
        while c.state() != SessionState::Connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(c.connected_server(), Some(ahead.addr.clone()));
    assert_eq!(c.last_zxid(), 120);
}

#[tokio::test]
async fn expiry_on_reconnect_ends_session_and_watches() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 3).await;
    let server = async {
        let r = peer.recv().await;
        peer.reply(r.xid, 2, 0, Some(R::Empty(wire::Empty {})))
            .await;
    };
    let (w, ()) = tokio::join!(c.add_watch("/", AddWatchMode::PersistentRecursive), server);
    let mut w = w.unwrap();
    drop(peer);
    let (peer, _) = fake.accept().await;
    peer.refuse(ErrorCode::SessionExpired).await;
    let last = timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.event_type, last.state),
        (EventType::None, KeeperState::Expired)
    );
    assert!(w.next().await.is_none());
    assert_eq!(c.state(), SessionState::Expired);
    assert_eq!(c.get_data("/a").await, Err(Error::SessionExpired));
    let states: Vec<_> = c.state_stream().collect().await;
    assert_eq!(
        states,
        vec![SessionState::Expired],
        "stream ends at a terminal state"
    );
}

#[tokio::test]
async fn malformed_frame_drops_the_connection_and_reconnects() {
    let fake = Fake::new().await;
    let (c, peer) = connected(&fake, 4).await;
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.get_data("/a").await }
    });
    let mut peer = peer;
    let _req = peer.recv().await;
    // A length prefix followed by bytes that are not a ServerFrame.
    use tokio::io::AsyncWriteExt;
    let mut raw = peer.io.into_inner();
    raw.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(call.await.unwrap(), Err(Error::ConnectionLoss));
    let (_peer, req) = fake.accept_session(4, 1).await;
    assert_eq!(req.session_id, 4);
}

#[tokio::test]
async fn answer_out_of_order_is_a_protocol_violation() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 4).await;
    let calls = async { tokio::join!(c.get_data("/a"), c.get_data("/b")) };
    let server = async {
        let r1 = peer.recv().await;
        let r2 = peer.recv().await;
        peer.reply(r2.xid, 1, 0, data(b"", 1)).await;
        let _ = r1;
        peer
    };
    let ((a, b), _peer) = tokio::join!(calls, server);
    assert_eq!(
        (a, b),
        (Err(Error::ConnectionLoss), Err(Error::ConnectionLoss))
    );
}

#[tokio::test]
async fn slow_answer_times_out_and_is_dropped_when_it_comes() {
    let fake = Fake::new().await;
    let o = ConnectOptions {
        request_timeout: Duration::from_millis(200),
        ..opts()
    };
    let (c, (mut peer, _)) =
        tokio::join!(Client::connect(&fake.addr, o), fake.accept_session(5, 1));
    let c = c.unwrap();
    let slow = peer.recv();
    let (r, req) = tokio::join!(c.get_data("/slow"), slow);
    assert_eq!(r, Err(Error::OperationTimeout));
    peer.reply(req.xid, 2, 0, data(b"late", 1)).await;
    let server = async {
        let r = peer.recv().await;
        peer.reply(r.xid, 3, 0, data(b"next", 1)).await;
    };
    let (r, ()) = tokio::join!(c.get_data("/next"), server);
    assert_eq!(&r.unwrap().0[..], b"next");
    assert_eq!(c.state(), SessionState::Connected);
}

#[tokio::test]
async fn idle_connection_sends_pings_and_silent_server_is_dropped() {
    let fake = Fake::new().await;
    let o = ConnectOptions {
        session_timeout: Duration::from_millis(300),
        ..opts()
    };
    let (c, (mut peer, _)) =
        tokio::join!(Client::connect(&fake.addr, o), fake.accept_session(6, 1));
    let c = c.unwrap();
    // Pings come every ~100 ms; answer two of them.
    for _ in 0..2 {
        let f = timeout(Duration::from_secs(2), peer.io.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Some(wire::client_frame::Kind::Request(r)) = f.kind else {
            panic!()
        };
        assert!(matches!(r.op, Some(Q::Ping(_))));
        assert_eq!(r.xid, -2);
        peer.reply(r.xid, 1, 0, Some(R::Empty(wire::Empty {})))
            .await;
    }
    assert_eq!(c.state(), SessionState::Connected);
    // Stop answering: the client gives up on this connection and comes back.
    let (_peer2, req) = fake.accept_session(6, 1).await;
    assert_eq!(req.session_id, 6);
    drop(peer);
}

#[tokio::test]
async fn close_ends_the_session() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 8).await;
    let server = async {
        let r = peer.recv().await;
        assert!(matches!(r.op, Some(Q::CloseSession(_))));
        peer.reply(r.xid, 9, 0, Some(R::Empty(wire::Empty {})))
            .await;
    };
    let (r, ()) = tokio::join!(c.close(), server);
    r.unwrap();
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(c.get_data("/a").await, Err(Error::Closed));
    c.close().await.unwrap();
}

#[tokio::test]
async fn dropping_every_handle_closes_the_session() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 8).await;
    let c2 = c.clone();
    drop(c);
    drop(c2);
    let r = peer.recv().await;
    assert!(matches!(r.op, Some(Q::CloseSession(_))));
}

#[tokio::test]
async fn multi_reports_the_failing_op() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 8).await;
    let server = async {
        let r = peer.recv().await;
        let Some(Q::Multi(m)) = &r.op else { panic!() };
        assert_eq!(m.ops.len(), 3);
        let code = |error| wire::OpResult {
            error,
            result: None,
        };
        let results = vec![code(0), code(ErrorCode::BadVersion.code()), code(-2)];
        peer.reply(
            r.xid,
            3,
            ErrorCode::BadVersion.code(),
            Some(R::Multi(wire::MultiResponse { results })),
        )
        .await;
    };
    let ops = vec![
        Op::create("/m", "", CreateMode::Persistent),
        Op::check("/m", 4),
        Op::delete("/m", None),
    ];
    let (r, ()) = tokio::join!(c.multi(ops), server);
    match r {
        Err(Error::Multi {
            index,
            code,
            results,
        }) => {
            assert_eq!((index, code), (1, ErrorCode::BadVersion));
            assert_eq!(results.len(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connect_fails_when_nobody_listens() {
    let fake = Fake::new().await;
    let addr = fake.addr.clone();
    drop(fake);
    let o = ConnectOptions {
        session_timeout: Duration::from_millis(300),
        ..opts()
    };
    assert_eq!(
        Client::connect(&addr, o).await.unwrap_err(),
        Error::ConnectionLoss
    );
}

#[tokio::test]
async fn many_concurrent_calls_from_clones_each_get_their_own_answer() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 1).await;
    const N: usize = 500;
    let server = async {
        let mut last_xid = 0;
        for _ in 0..N {
            let r = peer.recv().await;
            assert!(r.xid > last_xid, "xids grow in send order");
            last_xid = r.xid;
            // Echo the path back as the data, so a mismatched answer would show.
            let p = path_of(&r);
            let body = wire::GetDataResponse {
                data: Bytes::from(p),
                stat: Some(stat(0, 1)),
            };
            peer.reply(r.xid, 1, 0, Some(R::GetData(body))).await;
        }
        peer
    };
    let calls = futures::future::join_all((0..N).map(|i| {
        let c = c.clone();
        async move {
            let path = format!("/n{i}");
            let (data, _) = c.get_data(&path).await.unwrap();
            assert_eq!(&data[..], path.as_bytes());
        }
    }));
    let (_, _peer) = tokio::join!(calls, server);
}

#[tokio::test]
async fn credentials_are_replayed_before_set_watches_after_a_reconnect() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 2).await;
    let server = async {
        let r = peer.recv().await;
        assert!(matches!(&r.op, Some(Q::Auth(a)) if a.scheme == "digest" && &a.auth[..] == b"u:p"));
        peer.reply(r.xid, 1, 0, Some(R::Empty(wire::Empty {})))
            .await;
        let r = peer.recv().await;
        peer.reply(r.xid, 1, 0, Some(R::Empty(wire::Empty {})))
            .await;
    };
    let calls = async {
        c.add_auth("digest", "u:p").await.unwrap();
        c.add_watch("/w", AddWatchMode::Persistent).await.unwrap()
    };
    let (_watch, ()) = tokio::join!(calls, server);
    drop(peer);
    let (mut peer, _) = fake.accept_session(2, 1).await;
    let first = peer.recv().await;
    assert!(
        matches!(&first.op, Some(Q::Auth(a)) if a.scheme == "digest"),
        "{first:?}"
    );
    let second = peer.recv().await;
    let Some(Q::SetWatches(sw)) = &second.op else {
        panic!("{second:?}")
    };
    assert_eq!(sw.persistent_watches, vec!["/w"]);
}

#[tokio::test]
async fn calls_time_out_while_no_member_is_reachable() {
    let fake = Fake::new().await;
    let o = ConnectOptions {
        request_timeout: Duration::from_millis(300),
        ..opts()
    };
    let (c, (peer, _)) = tokio::join!(Client::connect(&fake.addr, o), fake.accept_session(5, 1));
    let c = c.unwrap();
    drop(peer);
    drop(fake); // nobody listens any more
    let mut states = Box::pin(c.state_stream());
    while within_secs(states.next()).await != Some(SessionState::Disconnected) {}
    let started = std::time::Instant::now();
    assert_eq!(c.exists("/a").await, Err(Error::OperationTimeout));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(c.state(), SessionState::Disconnected);
}

#[tokio::test]
async fn an_expired_state_event_ends_the_session() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 5).await;
    let server = async {
        let r = peer.recv().await;
        peer.reply(r.xid, 1, 0, data(b"", 0)).await;
    };
    let (r, ()) = tokio::join!(c.get_data_w("/a"), server);
    let (_, watch) = r.unwrap();
    peer.send(wire::server_frame::Kind::Event(wire::WatchEvent {
        r#type: EventType::None as i32,
        state: KeeperState::Expired as i32,
        path: String::new(),
        zxid: 0,
        ..Default::default()
    }))
    .await;
    let ev = within_secs(watch).await;
    assert_eq!(
        (ev.event_type, ev.state, ev.path.as_str()),
        (EventType::None, KeeperState::Expired, "/a")
    );
    assert_eq!(c.state(), SessionState::Expired);
    assert_eq!(c.sync("/").await, Err(Error::SessionExpired));
}

async fn within_secs<T>(f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(5), f).await.expect("timed out")
}

#[tokio::test]
async fn oversized_request_is_refused_without_losing_the_connection() {
    let fake = Fake::new().await;
    let o = ConnectOptions {
        max_frame: 64 * 1024,
        ..opts()
    };
    let (c, (mut peer, _)) =
        tokio::join!(Client::connect(&fake.addr, o), fake.accept_session(5, 1));
    let c = c.unwrap();
    let big = vec![7u8; 64 * 1024];
    assert_eq!(c.set_data("/a", big, None).await, Err(Error::BadArguments));
    let server = async {
        let r = peer.recv().await;
        assert!(
            matches!(&r.op, Some(Q::SetData(d)) if d.data.len() == 60 * 1024),
            "the big one was never sent"
        );
        peer.reply(r.xid, 2, 0, Some(R::Stat(stat(1, 2)))).await;
    };
    let (r, ()) = tokio::join!(c.set_data("/a", vec![7u8; 60 * 1024], None), server);
    assert_eq!(r.unwrap().version, 1);
}

#[tokio::test]
async fn close_then_drop_sends_one_close_session() {
    let fake = Fake::new().await;
    let (c, mut peer) = connected(&fake, 8).await;
    {
        // Start closing (the request is queued on first poll), then drop every handle.
        let mut closing = Box::pin(c.close());
        assert!(futures::poll!(&mut closing).is_pending());
    }
    drop(c);
    let r = peer.recv().await;
    assert!(matches!(r.op, Some(Q::CloseSession(_))));
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.reply(r.xid, 9, 0, Some(R::Empty(wire::Empty {})))
        .await;
    // Nothing else was sent: the next read sees the client hang up.
    let next = timeout(Duration::from_secs(5), peer.io.next())
        .await
        .unwrap();
    assert!(matches!(next, None | Some(Err(_))), "{next:?}");
}
