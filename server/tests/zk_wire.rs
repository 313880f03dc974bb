//! The ZooKeeper port at the wire level: the real `zabkeeper` binary, spoken to with the jute
//! crate as the client, byte for byte what ZooKeeper's clients send.

mod common;

use common::{free_port, ServerProcess};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use zabkeeper_jute::*;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A server with a ZooKeeper port; returns it and that port's address.
fn start() -> (ServerProcess, SocketAddr) {
    let port = free_port().to_string();
    let s = ServerProcess::start(&["--zk-port", &port, "--tick-ms", "100"]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_port(addr);
    (s, addr)
}

fn wait_port(addr: SocketAddr) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("zk port {addr} not open");
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn create(path: &str, data: &[u8], flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: data.to_vec(),
        acl: open_acl(),
        flags,
    }
}

/// A minimal ZooKeeper client: one request at a time or pipelined, events kept aside.
struct Zk {
    io: Framed<TcpStream, FrameCodec>,
    next_xid: i32,
    ops: HashMap<i32, OpCode>,
    session: ConnectResponse,
    events: Vec<(ReplyHeader, WatcherEvent)>,
}

async fn handshake(
    addr: SocketAddr,
    req: &ConnectRequest,
) -> (Framed<TcpStream, FrameCodec>, Option<ConnectResponse>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut io = Framed::new(stream, FrameCodec::client(ZK_MAX_BUFFER));
    io.send(encode_connect_request(req)).await.unwrap();
    let resp = match tokio::time::timeout(TIMEOUT, io.next())
        .await
        .expect("handshake answer")
    {
        Some(Ok(Inbound::Frame(f))) => Some(ConnectResponse::from_bytes(&f).unwrap()),
        None | Some(Err(_)) => None,
        Some(Ok(other)) => panic!("{other:?}"),
    };
    (io, resp)
}

fn new_session() -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 1500,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    }
}

impl Zk {
    async fn connect(addr: SocketAddr) -> Zk {
        Self::connect_with(addr, &new_session()).await
    }

    async fn connect_with(addr: SocketAddr, req: &ConnectRequest) -> Zk {
        let (io, resp) = handshake(addr, req).await;
        let session = resp.expect("connect response");
        assert_ne!(session.session_id, 0, "refused: {session:?}");
        Zk {
            io,
            next_xid: 1,
            ops: HashMap::new(),
            session,
            events: Vec::new(),
        }
    }

    async fn send(&mut self, req: &Request) -> i32 {
        let xid = match req {
            Request::Ping => PING_XID,
            Request::Auth(_) => AUTH_XID,
            Request::SetWatches(_) | Request::SetWatches2(_) => SET_WATCHES_XID,
            _ => {
                self.next_xid += 1;
                self.next_xid
            }
        };
        // An opcode the crate does not know is answered with an error, hence no body to type.
        let op = OpCode::from_i32(req.op()).unwrap_or(OpCode::Error);
        self.ops.insert(xid, op);
        self.io.send(encode_request(xid, req)).await.unwrap();
        xid
    }

    async fn send_raw(&mut self, frame: Vec<u8>) {
        self.io.get_mut().write_all(&frame).await.unwrap();
    }

    /// The next reply (not a notification); notifications before it go to `events`.
    async fn reply(&mut self) -> (ReplyHeader, Response) {
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.io.next())
                .await
                .expect("reply in time");
            let Some(Ok(Inbound::Frame(f))) = frame else {
                panic!("connection ended: {frame:?}")
            };
            let ops = &self.ops;
            let (h, r) = decode_reply(&f, |xid| ops.get(&xid).copied()).unwrap();
            if let Response::Event(e) = r {
                assert_eq!(h.xid, NOTIFICATION_XID);
                self.events.push((h, e));
                continue;
            }
            return (h, r);
        }
    }

    async fn call(&mut self, req: Request) -> (i32, Response) {
        let xid = self.send(&req).await;
        let (h, r) = self.reply().await;
        assert_eq!(h.xid, xid, "replies come in request order");
        (h.err, r)
    }

    async fn ok(&mut self, req: Request) -> Response {
        let (err, r) = self.call(req.clone()).await;
        assert_eq!(err, 0, "{req:?}");
        r
    }

    /// Waits for the next notification.
    async fn event(&mut self) -> (ReplyHeader, WatcherEvent) {
        if !self.events.is_empty() {
            return self.events.remove(0);
        }
        let frame = tokio::time::timeout(TIMEOUT, self.io.next())
            .await
            .expect("event in time");
        let Some(Ok(Inbound::Frame(f))) = frame else {
            panic!("connection ended: {frame:?}")
        };
        match decode_reply(&f, |_| None).unwrap() {
            (h, Response::Event(e)) => (h, e),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// True if the server closed the connection (EOF or reset) within the timeout.
    async fn closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(TIMEOUT, self.io.next()).await,
            Ok(None) | Ok(Some(Err(_)))
        )
    }
}

async fn zxid_of(zk: &mut Zk, path: &str) -> Stat {
    match zk
        .ok(Request::Exists(ExistsRequest {
            path: path.into(),
            watch: false,
        }))
        .await
    {
        Response::Exists(e) => e.stat,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn handshake_variants() {
    let (_s, addr) = start();
    // Current client: the readOnly byte is answered.
    let zk = Zk::connect(addr).await;
    assert_eq!(zk.session.read_only, Some(false));
    assert_eq!(zk.session.passwd.len(), 16);
    assert_eq!(zk.session.time_out, 1500);
    // Old client without the byte: no byte in the answer; the timeout is negotiated into
    // [2, 20] ticks (tick 100 ms).
    let mut old = new_session();
    old.read_only = None;
    old.time_out = 1;
    let (_io, resp) = handshake(addr, &old).await;
    let resp = resp.unwrap();
    assert_eq!(resp.read_only, None);
    assert_eq!(resp.time_out, 200);
    let mut big = new_session();
    big.time_out = 1_000_000;
    assert_eq!(handshake(addr, &big).await.1.unwrap().time_out, 2000);

    // Resume with the password: same session.
    let mut resume = new_session();
    resume.session_id = zk.session.session_id;
    resume.passwd = zk.session.passwd.clone();
    let again = Zk::connect_with(addr, &resume).await;
    assert_eq!(again.session.session_id, zk.session.session_id);

    // Wrong password: ZooKeeper's refusal, then close.
    let mut wrong = resume.clone();
    wrong.passwd = vec![7; 16];
    let (mut io, resp) = handshake(addr, &wrong).await;
    assert_eq!(resp.unwrap(), ConnectResponse::refused(&wrong));
    assert!(matches!(
        tokio::time::timeout(TIMEOUT, io.next()).await,
        Ok(None) | Ok(Some(Err(_)))
    ));

    // A client that has seen a newer zxid than the server: closed without an answer.
    let mut ahead = new_session();
    ahead.last_zxid_seen = i64::MAX;
    let (_io, resp) = handshake(addr, &ahead).await;
    assert_eq!(resp, None);
}

#[tokio::test]
async fn expired_and_closed_sessions_are_refused() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    let sid = zk.session.session_id;
    let passwd = zk.session.passwd.clone();
    zk.ok(Request::Create(create("/eph", b"", 1))).await;
    let (err, _) = zk.call(Request::CloseSession).await;
    assert_eq!(err, 0);
    assert!(zk.closed().await, "closeSession closes the connection");
    let mut resume = new_session();
    resume.session_id = sid;
    resume.passwd = passwd;
    let (_io, resp) = handshake(addr, &resume).await;
    assert_eq!(resp.unwrap(), ConnectResponse::refused(&resume));
    // Its ephemeral went with it.
    let mut other = Zk::connect(addr).await;
    let (err, body) = other
        .call(Request::Exists(ExistsRequest {
            path: "/eph".into(),
            watch: false,
        }))
        .await;
    assert_eq!((err, body), (-101, Response::Empty));

    // A session left alone past its timeout expires and is refused too.
    let mut short = new_session();
    short.time_out = 200;
    let zk = Zk::connect_with(addr, &short).await;
    let mut resume = new_session();
    resume.session_id = zk.session.session_id;
    resume.passwd = zk.session.passwd.clone();
    drop(zk);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_io, resp) = handshake(addr, &resume).await;
    assert_eq!(resp.unwrap(), ConnectResponse::refused(&resume));
}

#[tokio::test]
async fn every_data_opcode() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;

    // create (path only) and create2 (path and Stat).
    assert_eq!(
        zk.ok(Request::Create(create("/a", b"one", 0))).await,
        Response::Create(CreateResponse { path: "/a".into() })
    );
    let Response::Create2(c2) = zk.ok(Request::Create2(create("/a/b", b"two", 0))).await else {
        panic!()
    };
    assert_eq!(c2.path, "/a/b");
    assert_eq!(
        (
            c2.stat.version,
            c2.stat.data_length,
            c2.stat.ephemeral_owner
        ),
        (0, 3, 0)
    );
    assert_eq!(c2.stat.czxid, c2.stat.mzxid);
    assert_eq!(
        zk.call(Request::Create(create("/a", b"", 0))).await.0,
        -110,
        "NodeExists"
    );
    assert_eq!(
        zk.call(Request::Create(create("/x/y", b"", 0))).await.0,
        -101,
        "NoNode parent"
    );
    let mut no_acl = create("/noacl", b"", 0);
    no_acl.acl.clear();
    assert_eq!(zk.call(Request::Create(no_acl)).await.0, -114, "InvalidACL");
    assert_eq!(
        zk.call(Request::Create(create("bad", b"", 0))).await.0,
        -8,
        "BadArguments"
    );

    // Sequential names: ten digits, parent's cversion.
    let Response::Create(s1) = zk.ok(Request::Create(create("/a/s-", b"", 2))).await else {
        panic!()
    };
    let Response::Create(s2) = zk.ok(Request::Create(create("/a/s-", b"", 2))).await else {
        panic!()
    };
    assert_eq!(s1.path, "/a/s-0000000001");
    assert_eq!(s2.path, "/a/s-0000000002");

    // exists: Stat, or NoNode with no body.
    let st = zxid_of(&mut zk, "/a").await;
    assert_eq!(st.num_children, 3);
    assert_eq!(
        zk.call(Request::Exists(ExistsRequest {
            path: "/nope".into(),
            watch: false
        }))
        .await,
        (-101, Response::Empty)
    );

    // getData / setData with versions.
    let Response::GetData(g) = zk
        .ok(Request::GetData(GetDataRequest {
            path: "/a".into(),
            watch: false,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(g.data, b"one");
    let set = |v| {
        Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: b"uno".to_vec(),
            version: v,
        })
    };
    let Response::SetData(sd) = zk.ok(set(0)).await else {
        panic!()
    };
    assert_eq!((sd.stat.version, sd.stat.data_length), (1, 3));
    assert!(sd.stat.mzxid > sd.stat.czxid);
    assert_eq!(zk.call(set(0)).await, (-103, Response::Empty), "BadVersion");
    assert_eq!(
        zk.call(Request::GetData(GetDataRequest {
            path: "/zz".into(),
            watch: false
        }))
        .await,
        (-101, Response::Empty)
    );

    // ACLs.
    let Response::GetAcl(acl) = zk
        .ok(Request::GetAcl(GetAclRequest { path: "/a".into() }))
        .await
    else {
        panic!()
    };
    assert_eq!(acl.acl, open_acl());
    let read_only = vec![Acl {
        perms: 1,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }];
    let Response::SetAcl(sa) = zk
        .ok(Request::SetAcl(SetAclRequest {
            path: "/a/b".into(),
            acl: read_only.clone(),
            version: -1,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(sa.stat.aversion, 1);
    // ADMIN is gone now, and ZooKeeper checks it before the aversion: NoAuth, not BadVersion.
    assert_eq!(
        zk.call(Request::SetAcl(SetAclRequest {
            path: "/a/b".into(),
            acl: read_only,
            version: 0
        }))
        .await
        .0,
        -102
    );
    assert_eq!(
        zk.call(Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl: open_acl(),
            version: 5
        }))
        .await
        .0,
        -103
    );

    // Children: names only, then with the parent's Stat.
    let Response::GetChildren(ch) = zk
        .ok(Request::GetChildren(GetChildrenRequest {
            path: "/a".into(),
            watch: false,
        }))
        .await
    else {
        panic!()
    };
    let mut names = ch.children.clone();
    names.sort();
    assert_eq!(names, vec!["b", "s-0000000001", "s-0000000002"]);
    let Response::GetChildren2(ch2) = zk
        .ok(Request::GetChildren2(GetChildren2Request {
            path: "/a".into(),
            watch: false,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(ch2.stat.num_children, 3);
    assert_eq!(
        zk.ok(Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
            path: "/a".into()
        }))
        .await,
        Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number: 3 })
    );

    // sync echoes the path.
    assert_eq!(
        zk.ok(Request::Sync(SyncRequest { path: "/a".into() }))
            .await,
        Response::Sync(SyncResponse { path: "/a".into() })
    );

    // delete: NotEmpty, BadVersion, then success with an empty body.
    assert_eq!(
        zk.call(Request::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1
        }))
        .await
        .0,
        -111
    );
    assert_eq!(
        zk.call(Request::Delete(DeleteRequest {
            path: "/a/b".into(),
            version: 5
        }))
        .await
        .0,
        -103
    );
    assert_eq!(
        zk.call(Request::Delete(DeleteRequest {
            path: "/a/b".into(),
            version: -1
        }))
        .await,
        (0, Response::Empty)
    );

    // Standalone check.
    assert_eq!(
        zk.call(Request::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 1
        }))
        .await
        .0,
        0
    );
    assert_eq!(
        zk.call(Request::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 0
        }))
        .await
        .0,
        -103
    );

    // Ephemerals of this session.
    zk.ok(Request::Create(create("/a/e1", b"", 1))).await;
    zk.ok(Request::Create(create("/e2", b"", 1))).await;
    let Response::GetEphemerals(eph) = zk
        .ok(Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: "/a".into(),
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(eph.ephemerals, vec!["/a/e1"]);
    assert_eq!(
        zk.call(Request::Create(create("/e2/child", b"", 0)))
            .await
            .0,
        -108,
        "NoChildrenForEphemerals"
    );

    // Container and TTL nodes.
    let mut container = create("/c", b"", 4);
    let Response::Create2(c) = zk.ok(Request::CreateContainer(container.clone())).await else {
        panic!()
    };
    assert_eq!(c.path, "/c");
    container.flags = 0;
    assert_eq!(zk.call(Request::CreateContainer(container)).await.0, -8);
    let ttl = CreateTtlRequest {
        path: "/t".into(),
        data: vec![],
        acl: open_acl(),
        flags: 5,
        ttl: 60_000,
    };
    let Response::Create2(t) = zk.ok(Request::CreateTtl(ttl.clone())).await else {
        panic!()
    };
    assert_eq!(t.path, "/t");
    assert_eq!(
        zk.call(Request::CreateTtl(CreateTtlRequest { ttl: 0, ..ttl }))
            .await
            .0,
        -8
    );

    // reconfig is disabled; unknown opcodes are unimplemented and the session goes on.
    let rc = ReconfigRequest {
        joining_servers: "".into(),
        leaving_servers: "".into(),
        new_members: "".into(),
        cur_config_id: -1,
    };
    assert_eq!(
        zk.call(Request::Reconfig(rc)).await,
        (-123, Response::Empty)
    );
    assert_eq!(zk.call(Request::Unknown(77)).await, (-6, Response::Empty));
    assert_eq!(zk.call(Request::Ping).await.0, 0);

    // multiRead: each op on its own.
    let Response::Multi(r) = zk
        .ok(Request::MultiRead(vec![
            MultiOp::GetData(GetDataRequest {
                path: "/a".into(),
                watch: false,
            }),
            MultiOp::GetData(GetDataRequest {
                path: "/missing".into(),
                watch: false,
            }),
            MultiOp::GetChildren(GetChildrenRequest {
                path: "/c".into(),
                watch: false,
            }),
        ]))
        .await
    else {
        panic!()
    };
    assert!(matches!(&r[0], MultiResult::GetData(d) if d.data == b"uno"));
    assert_eq!(r[1], MultiResult::Error(-101));
    assert_eq!(
        r[2],
        MultiResult::GetChildren(GetChildrenResponse { children: vec![] })
    );
}

#[tokio::test]
async fn multi_framing_success_and_failure() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    zk.ok(Request::Create(create("/m", b"", 0))).await;
    let Response::Multi(r) = zk
        .ok(Request::Multi(vec![
            MultiOp::Create(create("/m/a", b"x", 0)),
            MultiOp::Create2(create("/m/b", b"yy", 0)),
            MultiOp::SetData(SetDataRequest {
                path: "/m/a".into(),
                data: b"z".to_vec(),
                version: 0,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/m/a".into(),
                version: 1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/m/b".into(),
                version: -1,
            }),
        ]))
        .await
    else {
        panic!()
    };
    assert_eq!(r.len(), 5);
    assert_eq!(
        r[0],
        MultiResult::Create(CreateResponse {
            path: "/m/a".into()
        })
    );
    assert!(
        matches!(&r[1], MultiResult::Create2(c) if c.path == "/m/b" && c.stat.data_length == 2)
    );
    assert!(matches!(&r[2], MultiResult::SetData(s) if s.stat.version == 1));
    assert_eq!((&r[3], &r[4]), (&MultiResult::Check, &MultiResult::Delete));

    // A failing op: header err 0, every result an ErrorResponse (0 before, the code, then -2).
    let (err, body) = zk
        .call(Request::Multi(vec![
            MultiOp::Create(create("/m/c", b"", 0)),
            MultiOp::Delete(DeleteRequest {
                path: "/m/none".into(),
                version: -1,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/m/a".into(),
                data: vec![],
                version: -1,
            }),
        ]))
        .await;
    assert_eq!(err, 0);
    assert_eq!(
        body,
        Response::Multi(vec![
            MultiResult::Error(0),
            MultiResult::Error(-101),
            MultiResult::Error(-2)
        ])
    );
    // Nothing of it applied.
    assert_eq!(
        zk.call(Request::Exists(ExistsRequest {
            path: "/m/c".into(),
            watch: false
        }))
        .await
        .0,
        -101
    );
}

#[tokio::test]
async fn notifications_carry_the_change_zxid_and_precede_later_replies() {
    let (_s, addr) = start();
    let mut watcher = Zk::connect(addr).await;
    let mut writer = Zk::connect(addr).await;
    writer.ok(Request::Create(create("/w", b"", 0))).await;
    watcher
        .ok(Request::GetData(GetDataRequest {
            path: "/w".into(),
            watch: true,
        }))
        .await;
    watcher
        .ok(Request::GetChildren(GetChildrenRequest {
            path: "/w".into(),
            watch: true,
        }))
        .await;
    let (e, _) = watcher
        .call(Request::Exists(ExistsRequest {
            path: "/later".into(),
            watch: true,
        }))
        .await;
    assert_eq!(e, -101);

    let Response::SetData(sd) = writer
        .ok(Request::SetData(SetDataRequest {
            path: "/w".into(),
            data: b"v".to_vec(),
            version: -1,
        }))
        .await
    else {
        panic!()
    };
    writer.ok(Request::Create(create("/later", b"", 0))).await;
    // The watcher's next reply comes after both notifications, each with its change's zxid.
    let Response::GetData(g) = watcher
        .ok(Request::GetData(GetDataRequest {
            path: "/w".into(),
            watch: false,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(g.data, b"v");
    let later = zxid_of(&mut writer, "/later").await;
    assert_eq!(
        watcher.events.len(),
        2,
        "events before the reply: {:?}",
        watcher.events
    );
    let (h, ev) = watcher.events[0].clone();
    assert_eq!((ev.event_type, ev.state, ev.path.as_str()), (3, 3, "/w"));
    assert_eq!(h.zxid, sd.stat.mzxid);
    let (h, ev) = watcher.events[1].clone();
    assert_eq!((ev.event_type, ev.path.as_str()), (1, "/later"));
    assert_eq!(h.zxid, later.czxid);
    watcher.events.clear();

    // A child watch fires once.
    writer.ok(Request::Create(create("/w/k", b"", 0))).await;
    let (_, ev) = watcher.event().await;
    assert_eq!((ev.event_type, ev.path.as_str()), (4, "/w"));
}

#[tokio::test]
async fn set_watches_after_reconnect_fires_missed_changes() {
    let (_s, addr) = start();
    let mut a = Zk::connect(addr).await;
    a.ok(Request::Create(create("/sw", b"", 0))).await;
    a.ok(Request::Create(create("/same", b"", 0))).await;
    let seen = zxid_of(&mut a, "/same").await.mzxid;
    // While "disconnected", another client changes /sw and creates /born.
    let mut b = Zk::connect(addr).await;
    b.ok(Request::SetData(SetDataRequest {
        path: "/sw".into(),
        data: b"new".to_vec(),
        version: -1,
    }))
    .await;
    b.ok(Request::Create(create("/born", b"", 0))).await;

    let mut resume = new_session();
    resume.session_id = a.session.session_id;
    resume.passwd = a.session.passwd.clone();
    resume.last_zxid_seen = seen;
    let mut a2 = Zk::connect_with(addr, &resume).await;
    let (err, _) = a2
        .call(Request::SetWatches2(SetWatches2 {
            relative_zxid: seen,
            data_watches: vec!["/sw".into(), "/same".into()],
            exist_watches: vec!["/born".into()],
            child_watches: vec![],
            persistent_watches: vec![],
            persistent_recursive_watches: vec![],
        }))
        .await;
    assert_eq!(err, 0);
    a2.ok(Request::Ping).await;
    let mut got: Vec<(i32, String)> = a2
        .events
        .drain(..)
        .map(|(_, e)| (e.event_type, e.path))
        .collect();
    got.sort();
    assert_eq!(got, vec![(1, "/born".to_string()), (3, "/sw".to_string())]);
    // The unchanged node's watch is registered and fires on the next change.
    b.ok(Request::SetData(SetDataRequest {
        path: "/same".into(),
        data: vec![],
        version: -1,
    }))
    .await;
    let (_, ev) = a2.event().await;
    assert_eq!((ev.event_type, ev.path.as_str()), (3, "/same"));
}

#[tokio::test]
async fn persistent_recursive_watch_via_add_watch() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    zk.ok(Request::Create(create("/p", b"", 0))).await;
    zk.ok(Request::AddWatch(AddWatchRequest {
        path: "/p".into(),
        mode: 1,
    }))
    .await;
    zk.ok(Request::Create(create("/p/q", b"", 0))).await;
    zk.ok(Request::SetData(SetDataRequest {
        path: "/p/q".into(),
        data: vec![1],
        version: -1,
    }))
    .await;
    zk.ok(Request::SetData(SetDataRequest {
        path: "/p/q".into(),
        data: vec![2],
        version: -1,
    }))
    .await;
    let got: Vec<(i32, String)> = zk
        .events
        .drain(..)
        .map(|(_, e)| (e.event_type, e.path))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "/p/q".to_string()),
            (3, "/p/q".to_string()),
            (3, "/p/q".to_string())
        ],
        "a persistent watch keeps firing, for descendants too"
    );
    // checkWatches / removeWatches (type 5: persistent-recursive; 2: data).
    assert_eq!(
        zk.call(Request::CheckWatches(CheckWatchesRequest {
            path: "/p".into(),
            watcher_type: 5
        }))
        .await
        .0,
        0
    );
    assert_eq!(
        zk.call(Request::RemoveWatches(RemoveWatchesRequest {
            path: "/p".into(),
            watcher_type: 5
        }))
        .await
        .0,
        0
    );
    assert_eq!(
        zk.call(Request::RemoveWatches(RemoveWatchesRequest {
            path: "/p".into(),
            watcher_type: 2
        }))
        .await
        .0,
        -121,
        "NoWatcher"
    );
}

#[tokio::test]
async fn pipelined_reads_wait_for_earlier_writes() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    let mut xids = Vec::new();
    for i in 0..50 {
        xids.push(
            zk.send(&Request::Create(create(&format!("/n{i}"), b"d", 0)))
                .await,
        );
        xids.push(
            zk.send(&Request::Exists(ExistsRequest {
                path: format!("/n{i}"),
                watch: false,
            }))
            .await,
        );
    }
    for xid in xids {
        let (h, _) = zk.reply().await;
        assert_eq!(h.xid, xid);
        assert_eq!(
            h.err, 0,
            "read of xid {xid} saw its session's earlier create"
        );
    }
}

#[tokio::test]
async fn pipelined_reads_do_not_see_later_writes_of_their_session() {
    // ZooKeeper executes a session's requests in order: a read sent between two
    // writes sees the first and not the second, however the writes are batched.
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    zk.ok(Request::Create(create("/p", b"v0", 0))).await;
    let mut expected = Vec::new();
    for i in 1..=200 {
        let value = format!("v{i}").into_bytes();
        let w = zk
            .send(&Request::SetData(SetDataRequest {
                path: "/p".into(),
                data: value.clone(),
                version: -1,
            }))
            .await;
        let r = zk
            .send(&Request::GetData(GetDataRequest {
                path: "/p".into(),
                watch: false,
            }))
            .await;
        expected.push((w, None));
        expected.push((r, Some(value)));
    }
    for (xid, want) in expected {
        let (h, resp) = zk.reply().await;
        assert_eq!(h.xid, xid);
        assert_eq!(h.err, 0);
        if let Some(want) = want {
            let Response::GetData(g) = resp else {
                panic!("{resp:?}")
            };
            assert_eq!(g.data, want, "the read saw exactly the write before it");
        }
    }
}

#[tokio::test]
async fn auth_and_who_am_i() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    let auth = |scheme: &str| {
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.into(),
            auth: b"alice:pw".to_vec(),
        })
    };
    let (err, _) = zk.call(auth("digest")).await;
    assert_eq!(err, 0);
    let Response::WhoAmI(w) = zk.ok(Request::WhoAmI).await else {
        panic!()
    };
    let ids: Vec<(String, String)> = w
        .client_info
        .into_iter()
        .map(|c| (c.auth_scheme, c.user))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("ip".into(), "127.0.0.1".into()),
            ("digest".into(), "alice".into())
        ]
    );
    // An unsupported scheme: AuthFailed, then the connection closes.
    let (err, _) = zk.call(auth("kerberos")).await;
    assert_eq!(err, -115);
    assert!(zk.closed().await);
}

fn acl_entry(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id {
            scheme: scheme.into(),
            id: id.into(),
        },
    }
}

fn digest_auth(user_password: &str) -> Request {
    Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: user_password.as_bytes().to_vec(),
    })
}

/// The same rules as the native port (`tests/acl.rs`), spoken in jute: each read and write
/// checked, per-op codes in a multi, getACL's redaction, the super user, and watches that
/// a refused read does not leave behind.
#[tokio::test]
async fn acls_are_enforced_on_the_zookeeper_port() {
    let port = free_port().to_string();
    let _s = ServerProcess::start(&[
        "--zk-port",
        &port,
        "--tick-ms",
        "100",
        "--super-digest",
        "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=",
    ]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_port(addr);
    let mut owner = Zk::connect(addr).await;
    let mut anon = Zk::connect(addr).await;
    assert_eq!(owner.call(digest_auth("bob:secret")).await.0, 0);
    let bob = "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=";
    let mut req = create("/s", b"secret", 0);
    req.acl = vec![acl_entry(31, "auth", "")];
    owner.ok(Request::Create(req)).await;
    let mut req = create("/s/open", b"", 0);
    req.acl = open_acl();
    owner.ok(Request::Create(req)).await;
    let mut req = create("/x", b"", 0);
    req.acl = vec![acl_entry(31, "auth", "")];
    assert_eq!(anon.call(Request::Create(req)).await.0, -114, "InvalidACL");

    let get = |p: &str, watch| {
        Request::GetData(GetDataRequest {
            path: p.into(),
            watch,
        })
    };
    let no_auth = -102;
    assert_eq!(anon.call(get("/s", true)).await.0, no_auth);
    assert_eq!(
        anon.call(Request::Exists(ExistsRequest {
            path: "/s".into(),
            watch: false
        }))
        .await
        .0,
        no_auth
    );
    assert_eq!(
        anon.call(Request::GetChildren(GetChildrenRequest {
            path: "/s".into(),
            watch: true
        }))
        .await
        .0,
        no_auth
    );
    assert_eq!(
        anon.call(Request::GetChildren2(GetChildren2Request {
            path: "/s".into(),
            watch: false
        }))
        .await
        .0,
        no_auth
    );
    assert_eq!(
        anon.call(Request::GetAcl(GetAclRequest { path: "/s".into() }))
            .await
            .0,
        no_auth
    );
    assert_eq!(
        anon.call(Request::SetData(SetDataRequest {
            path: "/s".into(),
            data: b"x".to_vec(),
            version: -1
        }))
        .await
        .0,
        no_auth
    );
    assert_eq!(
        anon.call(Request::Create(create("/s/c", b"", 0))).await.0,
        no_auth
    );
    assert_eq!(
        anon.call(Request::Delete(DeleteRequest {
            path: "/s/open".into(),
            version: -1
        }))
        .await
        .0,
        no_auth
    );
    // A readable child of an unreadable parent: exists and getData answer (ZooKeeper
    // checks only the node's own ACL), but listing the parent does not.
    assert_eq!(anon.call(get("/s/open", false)).await.0, 0);

    // A multi with one denied op fails whole, with ZooKeeper's per-op codes.
    let (err, r) = anon
        .call(Request::Multi(vec![
            MultiOp::Create(create("/m", b"", 0)),
            MultiOp::SetData(SetDataRequest {
                path: "/s".into(),
                data: vec![],
                version: -1,
            }),
        ]))
        .await;
    assert_eq!(err, 0);
    assert_eq!(
        r,
        Response::Multi(vec![MultiResult::Error(0), MultiResult::Error(no_auth)])
    );

    // The refused getData and getChildren left no watch: changes fire nothing.
    owner
        .ok(Request::SetData(SetDataRequest {
            path: "/s".into(),
            data: b"changed".to_vec(),
            version: -1,
        }))
        .await;

    // getACL with READ but not ADMIN hides the digest hash.
    let mut req = create("/r", b"", 0);
    req.acl = vec![
        acl_entry(1, "world", "anyone"),
        acl_entry(31, "digest", bob),
    ];
    owner.ok(Request::Create(req)).await;
    let Response::GetAcl(acl) = anon
        .ok(Request::GetAcl(GetAclRequest { path: "/r".into() }))
        .await
    else {
        panic!()
    };
    assert_eq!(
        acl.acl,
        vec![
            acl_entry(1, "world", "anyone"),
            acl_entry(31, "digest", "bob:x")
        ]
    );
    let Response::GetAcl(acl) = owner
        .ok(Request::GetAcl(GetAclRequest { path: "/r".into() }))
        .await
    else {
        panic!()
    };
    assert_eq!(acl.acl[1], acl_entry(31, "digest", bob));

    // The super user passes every check.
    assert_eq!(anon.call(digest_auth("super:admin")).await.0, 0);
    assert_eq!(anon.call(get("/s", false)).await.0, 0);
    assert!(anon.events.is_empty(), "{:?}", anon.events);
    let Response::WhoAmI(w) = anon.ok(Request::WhoAmI).await else {
        panic!()
    };
    let schemes: Vec<&str> = w
        .client_info
        .iter()
        .map(|c| c.auth_scheme.as_str())
        .collect();
    assert_eq!(schemes, vec!["ip", "super", "digest"]);
}

#[tokio::test]
async fn bad_input_is_answered_or_closes() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    // A readable header with a truncated body: MarshallingError, the session goes on.
    let mut w = Writer::for_frame();
    RequestHeader {
        xid: 42,
        op: OpCode::GetData as i32,
    }
    .encode(&mut w);
    w.write_int(1000); // a string length with no string after it
    zk.ops.insert(42, OpCode::GetData);
    zk.send_raw(w.into_frame()).await;
    let (h, body) = zk.reply().await;
    assert_eq!((h.xid, h.err, body), (42, -5, Response::Empty));
    assert_eq!(zk.call(Request::Ping).await.0, 0);

    // A frame too short for a header: closed.
    zk.send_raw(vec![0, 0, 0, 2, 0, 0]).await;
    assert!(zk.closed().await);

    // Oversized frame: closed without an answer.
    let mut zk = Zk::connect(addr).await;
    zk.send_raw(((2 * 1024 * 1024) as u32).to_be_bytes().to_vec())
        .await;
    assert!(zk.closed().await);

    // Garbage before the handshake: closed, nothing written.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);

    // The server is still fine.
    let mut zk = Zk::connect(addr).await;
    assert_eq!(zk.call(Request::Ping).await.0, 0);
}

async fn four(addr: SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(word.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(TIMEOUT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn four_letter_words() {
    let (s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    zk.ok(Request::Create(create("/f", b"abc", 0))).await;
    zk.ok(Request::Create(create("/f/e", b"", 1))).await;
    zk.ok(Request::GetData(GetDataRequest {
        path: "/f".into(),
        watch: true,
    }))
    .await;
    let last = zxid_of(&mut zk, "/f/e").await.czxid;

    assert_eq!(four(addr, "ruok").await, "imok");
    assert_eq!(four(addr, "isro").await, "rw");

    let srvr = four(addr, "srvr").await;
    assert!(srvr.starts_with("Zookeeper version: "), "{srvr}");
    for line in [
        "Mode: standalone",
        "Connections: 1",
        &format!("Zxid: 0x{last:x}"),
    ] {
        assert!(srvr.lines().any(|l| l == line), "{line} in {srvr}");
    }
    let nodes: usize = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Node count: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(nodes >= 4, "{srvr}");

    let stat = four(addr, "stat").await;
    assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
    assert!(stat.contains("Mode: standalone"), "{stat}");

    let mntr: HashMap<String, String> = four(addr, "mntr")
        .await
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("not key\\tvalue: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(mntr["zk_server_state"], "standalone");
    assert_eq!(mntr["zk_num_alive_connections"], "1");
    assert_eq!(mntr["zk_watch_count"], "1");
    assert_eq!(mntr["zk_ephemerals_count"], "1");
    assert_eq!(mntr["zk_znode_count"].parse::<usize>().unwrap(), nodes);
    assert!(mntr["zk_packets_received"].parse::<u64>().unwrap() >= 4);
    let (min, avg, max): (u64, f64, u64) = (
        mntr["zk_min_latency"].parse().unwrap(),
        mntr["zk_avg_latency"].parse().unwrap(),
        mntr["zk_max_latency"].parse().unwrap(),
    );
    assert!(
        min as f64 <= avg && avg <= max as f64 + 1.0,
        "{min}/{avg}/{max}"
    );
    let lat = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Latency min/avg/max: "))
        .unwrap();
    assert_eq!(lat.split('/').count(), 3, "{lat}");

    let conf = four(addr, "conf").await;
    assert!(
        conf.lines()
            .any(|l| l == format!("clientPort={}", addr.port())),
        "{conf}"
    );
    assert!(conf.lines().any(|l| l == "tickTime=100"), "{conf}");

    assert!(four(addr, "envi")
        .await
        .starts_with("Environment:\nzookeeper.version="));
    assert_eq!(
        four(addr, "wchs").await,
        "1 connections watching 1 paths\nTotal watches:1\n"
    );
    let cons = four(addr, "cons").await;
    assert!(
        cons.contains(&format!("sid={:#x}", zk.session.session_id)),
        "{cons}"
    );
    let dump = four(addr, "dump").await;
    assert!(
        dump.contains(&format!("0x{:x}:\n\t/f/e\n", zk.session.session_id)),
        "{dump}"
    );
    drop(s);
}

#[tokio::test]
async fn own_change_notification_precedes_the_write_reply_and_set_watches_v1() {
    let (_s, addr) = start();
    let mut zk = Zk::connect(addr).await;
    zk.ok(Request::Create(create("/own", b"", 0))).await;
    zk.ok(Request::GetData(GetDataRequest {
        path: "/own".into(),
        watch: true,
    }))
    .await;
    let Response::SetData(sd) = zk
        .ok(Request::SetData(SetDataRequest {
            path: "/own".into(),
            data: b"1".to_vec(),
            version: -1,
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(
        zk.events.len(),
        1,
        "the session's own change is notified before its reply"
    );
    assert_eq!(zk.events[0].0.zxid, sd.stat.mzxid);
    assert_eq!(zk.events[0].1.event_type, 3);

    // setWatches (opcode 101, no persistent lists) after reconnecting: a child watch on a
    // node whose children changed fires at once.
    let seen = sd.stat.mzxid;
    let mut other = Zk::connect(addr).await;
    other.ok(Request::Create(create("/own/kid", b"", 0))).await;
    let mut resume = new_session();
    resume.session_id = zk.session.session_id;
    resume.passwd = zk.session.passwd.clone();
    resume.last_zxid_seen = seen;
    let mut again = Zk::connect_with(addr, &resume).await;
    let (err, _) = again
        .call(Request::SetWatches(SetWatches {
            relative_zxid: seen,
            data_watches: vec![],
            exist_watches: vec!["/still-missing".into()],
            child_watches: vec!["/own".into()],
        }))
        .await;
    assert_eq!(err, 0);
    again.ok(Request::Ping).await;
    let got: Vec<(i32, String)> = again
        .events
        .drain(..)
        .map(|(_, e)| (e.event_type, e.path))
        .collect();
    assert_eq!(got, vec![(4, "/own".to_string())]);
    // The exist watch was kept and fires on creation.
    other
        .ok(Request::Create(create("/still-missing", b"", 0)))
        .await;
    let (_, ev) = again.event().await;
    assert_eq!((ev.event_type, ev.path.as_str()), (1, "/still-missing"));
}

/// Watches never tell a client about a node it may not read (ZooKeeper 3.8.4's fix of
/// CVE-2024-23944, also in Debian's 3.8.0): a recursive watch above a protected node, and
/// a persistent watch on a protected parent, stay silent about it.
#[tokio::test]
async fn watch_events_are_filtered_by_the_node_acl() {
    let (_s, addr) = start();
    let mut owner = Zk::connect(addr).await;
    let mut spy = Zk::connect(addr).await;
    assert_eq!(owner.call(digest_auth("bob:secret")).await.0, 0);
    owner.ok(Request::Create(create("/w", b"", 0))).await;
    let mut req = create("/w/sec", b"", 0);
    req.acl = vec![acl_entry(31, "auth", "")];
    owner.ok(Request::Create(req)).await;
    spy.ok(Request::AddWatch(AddWatchRequest {
        path: "/w".into(),
        mode: 1,
    }))
    .await;
    spy.ok(Request::AddWatch(AddWatchRequest {
        path: "/w/sec".into(),
        mode: 0,
    }))
    .await;
    let mut req = create("/w/sec/inner", b"", 0);
    req.acl = vec![acl_entry(31, "auth", "")];
    owner.ok(Request::Create(req)).await;
    owner
        .ok(Request::SetData(SetDataRequest {
            path: "/w/sec".into(),
            data: b"x".to_vec(),
            version: -1,
        }))
        .await;
    owner.ok(Request::Create(create("/w/open", b"", 0))).await;
    owner
        .ok(Request::Delete(DeleteRequest {
            path: "/w/sec/inner".into(),
            version: -1,
        }))
        .await;
    // A marker: once its event is in, every earlier event would be too.
    owner.ok(Request::Create(create("/w/zz", b"", 0))).await;
    let mut got = Vec::new();
    while got.last().map(|(_, p): &(i32, String)| p.as_str()) != Some("/w/zz") {
        let (_, e) = spy.event().await;
        got.push((e.event_type, e.path));
    }
    assert_eq!(
        got,
        vec![(1, "/w/open".to_string()), (1, "/w/zz".to_string())],
        "nothing about /w/sec or its child"
    );
    // The owner, who may read them, is told.
    let mut watcher = Zk::connect(addr).await;
    assert_eq!(watcher.call(digest_auth("bob:secret")).await.0, 0);
    watcher
        .ok(Request::AddWatch(AddWatchRequest {
            path: "/w".into(),
            mode: 1,
        }))
        .await;
    owner
        .ok(Request::SetData(SetDataRequest {
            path: "/w/sec".into(),
            data: b"y".to_vec(),
            version: -1,
        }))
        .await;
    let (_, e) = watcher.event().await;
    assert_eq!((e.event_type, e.path.as_str()), (3, "/w/sec"));
}
