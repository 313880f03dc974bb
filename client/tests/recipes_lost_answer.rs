//! The recipes' handling of a write whose answer is lost (a create, the queue's take
//! multi), against a scripted server (a real server cannot be made to apply a write
//! and then lose its answer on demand, nor to lag behind it). The script drops the connection instead of answering the create; the
//! client reconnects to the same session, and the recipe must look its node up by its
//! guid before creating anything again. The client's exactly-once retry is turned
//! off here: these scripts test the recipes' own fallback, which a zabkeeper client
//! still needs when a retried write runs out of its request timeout.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::codec::Framed;
use zabkeeper_client::recipes::{Lock, Queue};
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

    /// Accepts a connection and grants (or resumes) session 0x55.
    async fn accept(&self) -> Peer {
        let (stream, _) = timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("no connection")
            .unwrap();
        let mut io = Framed::new(stream, ServerCodec::new(1 << 20));
        let frame = io.next().await.unwrap().unwrap();
        let Some(wire::client_frame::Kind::Connect(req)) = frame.kind else {
            panic!("expected handshake, got {frame:?}")
        };
        let mut peer = Peer { io };
        peer.send(wire::server_frame::Kind::Connect(wire::ConnectResponse {
            error: 0,
            protocol_version: 1,
            timeout_ms: req.timeout_ms.max(1000),
            session_id: 0x55,
            password: bytes::Bytes::from_static(b"secret"),
            read_only: false,
            zxid: 1,
            message: String::new(),
            last_request_number: 0,
        }))
        .await;
        peer
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

    /// Next request, answering pings and watch restoration on the way.
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
            match req.op {
                Some(Q::Ping(_)) | Some(Q::SetWatches(_)) => {
                    self.reply(req.xid, None).await;
                }
                _ => return req,
            }
        }
    }

    async fn reply(&mut self, xid: i32, result: Option<R>) {
        self.send(wire::server_frame::Kind::Response(wire::Response {
            xid,
            zxid: 10,
            error: 0,
            result,
        }))
        .await;
    }

    async fn children(&mut self, dir: &str, children: &[String]) {
        let r = self.recv().await;
        match r.op {
            Some(Q::GetChildren(g)) => assert_eq!(g.path, dir),
            other => panic!("expected a listing of {dir}, got {other:?}"),
        }
        let resp = wire::GetChildrenResponse {
            children: children.to_vec(),
            stat: None,
        };
        self.reply(r.xid, Some(R::GetChildren(resp))).await;
    }

    /// Receives a create under `prefix`; returns the requested path.
    async fn create(&mut self, prefix: &str) -> (i32, String) {
        let r = self.recv().await;
        match r.op {
            Some(Q::Create(c)) => {
                assert!(c.path.starts_with(prefix), "create {}", c.path);
                (r.xid, c.path)
            }
            other => panic!("expected a create under {prefix}, got {other:?}"),
        }
    }
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        exactly_once: false,
        ..Default::default()
    }
}

/// The name part of a protected create path `/dir/<guid>-<kind>-`.
fn tag_of(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn lock_finds_its_node_after_a_lost_create_answer() {
    let fake = Fake::new().await;
    let (zk, mut peer) = tokio::join!(Client::connect(&fake.addr, opts()), fake.accept());
    let zk = zk.unwrap();
    let server = async move {
        let (_, path) = peer.create("/l/").await;
        drop(peer); // applied, but the answer is lost with the connection
        let mut peer = fake.accept().await;
        let mine = format!("{}0000000007", tag_of(&path));
        let listing = vec!["0abc-lock-0000000008".to_string(), mine.clone()];
        peer.children("/l", &listing).await;
        let r = peer.recv().await;
        match &r.op {
            Some(Q::Exists(e)) => assert_eq!(e.path, format!("/l/{mine}")),
            other => panic!("expected exists on the found node, got {other:?}"),
        }
        let stat = wire::Stat {
            czxid: 42,
            ..Default::default()
        };
        peer.reply(r.xid, Some(R::Stat(stat))).await;
        // Not a second create: the lock checks its position with the node it found.
        peer.children("/l", &listing).await;
        let r = peer.recv().await;
        match &r.op {
            Some(Q::Delete(d)) => assert_eq!(d.path, format!("/l/{mine}")),
            other => panic!("expected the release, got {other:?}"),
        }
        peer.reply(r.xid, None).await;
        peer
    };
    let client = async {
        let g = Lock::new(&zk, "/l").acquire(None).await.unwrap().unwrap();
        assert_eq!(g.fencing_token(), 42);
        assert!(g.path().ends_with("-lock-0000000007"));
        g.release().await.unwrap();
    };
    let (_, _peer) = tokio::join!(client, server);
}

#[tokio::test]
async fn lock_creates_again_when_the_lost_create_was_not_applied() {
    let fake = Fake::new().await;
    let (zk, mut peer) = tokio::join!(Client::connect(&fake.addr, opts()), fake.accept());
    let zk = zk.unwrap();
    let server = async move {
        let (_, first) = peer.create("/l/").await;
        drop(peer);
        let mut peer = fake.accept().await;
        peer.children("/l", &["0abc-lock-0000000003".to_string()])
            .await;
        let (xid, again) = peer.create("/l/").await;
        assert_eq!(again, first, "the retry keeps the attempt's guid");
        let mine = format!("{again}0000000004");
        let resp = wire::CreateResponse {
            path: mine.clone(),
            stat: Some(wire::Stat {
                czxid: 50,
                ..Default::default()
            }),
        };
        peer.reply(xid, Some(R::Create(resp))).await;
        let listing = vec![tag_of(&mine)];
        peer.children("/l", &listing).await;
        peer
    };
    let client = async {
        let g = Lock::new(&zk, "/l").acquire(None).await.unwrap().unwrap();
        assert_eq!(g.fencing_token(), 50);
        drop(g); // its background release goes unanswered: the script ends here
    };
    let (_, _peer) = tokio::join!(client, server);
}

#[tokio::test]
async fn queue_put_is_not_duplicated_by_a_lost_answer() {
    let fake = Fake::new().await;
    let (zk, mut peer) = tokio::join!(Client::connect(&fake.addr, opts()), fake.accept());
    let zk = zk.unwrap();
    let server = async move {
        let (_, path) = peer.create("/q/items/p500-").await;
        drop(peer);
        let mut peer = fake.accept().await;
        let item = format!("{}0000000001", tag_of(&path));
        peer.children("/q/items", &[item]).await;
        peer
    };
    let client = async {
        Queue::new(&zk, "/q").put("job").await.unwrap();
    };
    let (_, _peer) = tokio::join!(client, server);
}

/// The take's multi (delete the item, create the receipt) is applied but its answer
/// is lost; the member the client reconnects to has not applied it yet. Reading the
/// receipt there would say "no receipt" (the item is still listed too), the client
/// would try the multi again, fail on the missing item, and the taken item would be
/// lost (the bug fixed in a219213). The take must sync first, then find its receipt,
/// and deliver the item once.
#[tokio::test]
async fn queue_take_syncs_before_reading_its_receipt_after_a_lost_answer() {
    let fake = Fake::new().await;
    let (zk, mut peer) = tokio::join!(Client::connect(&fake.addr, opts()), fake.accept());
    let zk = zk.unwrap();
    let item = "p500-0abc-0000000001".to_string();
    let server = {
        let item = item.clone();
        async move {
            peer.children("/q/items", std::slice::from_ref(&item)).await;
            let r = peer.recv().await;
            match &r.op {
                Some(Q::GetData(g)) => assert_eq!(g.path, format!("/q/items/{item}")),
                other => panic!("expected the item's read, got {other:?}"),
            }
            let data = wire::GetDataResponse {
                data: bytes::Bytes::from_static(b"job"),
                stat: Some(wire::Stat::default()),
            };
            peer.reply(r.xid, Some(R::GetData(data))).await;
            let r = peer.recv().await;
            match &r.op {
                Some(Q::Multi(m)) => assert_eq!(m.ops.len(), 2, "delete + receipt"),
                other => panic!("expected the take's multi, got {other:?}"),
            }
            drop(peer); // applied by the ensemble; the answer is lost
            let mut peer = fake.accept().await;
            // The first request on the new member must be a sync: before it, this
            // member would still show the item and no receipt.
            let r = peer.recv().await;
            match &r.op {
                Some(Q::Sync(s)) => assert_eq!(s.path, "/q/taken"),
                other => panic!("expected a sync before reading the receipt, got {other:?}"),
            }
            let synced = wire::PathRequest {
                path: "/q/taken".into(),
            };
            peer.reply(r.xid, Some(R::Sync(synced))).await;
            let r = peer.recv().await;
            match &r.op {
                Some(Q::Exists(e)) => assert_eq!(e.path, format!("/q/taken/{item}")),
                other => panic!("expected the receipt's lookup, got {other:?}"),
            }
            let receipt = wire::Stat {
                ephemeral_owner: 0x55,
                ..Default::default()
            };
            peer.reply(r.xid, Some(R::Stat(receipt))).await;
            let r = peer.recv().await;
            match &r.op {
                Some(Q::Delete(d)) => assert_eq!(d.path, format!("/q/taken/{item}")),
                other => panic!("expected the receipt's removal, got {other:?}"),
            }
            peer.reply(r.xid, None).await;
            peer
        }
    };
    let client = async {
        let got = Queue::new(&zk, "/q").take().await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&b"job"[..]),
            "the taken item is delivered"
        );
    };
    let (_, _peer) = tokio::join!(client, server);
}
