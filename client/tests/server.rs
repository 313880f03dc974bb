//! The client against the real server binary (`zabkeeper --port N --data-dir DIR`).
//!
//! Each test starts its own server on a free port with a fresh data directory. The
//! binary is `$ZABKEEPER_BIN` if set, else the workspace's debug build (in
//! `$CARGO_TARGET_DIR` or `target/`), brought up to date once per run with
//! `cargo build -p zabkeeper-server --bin zabkeeper`. These tests need the server
//! runtime: before it is merged they fail at startup ("exited before accepting").

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use tokio::time::timeout;
use zabkeeper_client::*;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of the server binary: `$ZABKEEPER_BIN`, or the workspace's debug build, which
/// is (re)built once per test run so a stale binary is never tested.
fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("ZABKEEPER_BIN") {
            return PathBuf::from(bin);
        }
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "zabkeeper-server", "--bin", "zabkeeper"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the zabkeeper server failed");
        target.join("debug/zabkeeper")
    })
    .clone()
}

struct Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Server {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        s.spawn();
        s
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new(server_binary())
            .args([
                "--port",
                &self.port.to_string(),
                "--zk-port",
                "0",
                "--admin-port",
                "0",
                "--data-dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start zabkeeper");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "zabkeeper exited with {status} before accepting on port {}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "zabkeeper did not accept on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.addr(), opts())
            .await
            .expect("connect")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: Duration::from_secs(6),
        ..Default::default()
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn connect_and_crud() {
    let server = Server::start();
    let c = server.client().await;
    assert_eq!(c.state(), SessionState::Connected);
    assert_ne!(c.session_id(), 0);
    assert_eq!(c.connected_server(), Some(server.addr()));

    assert_eq!(
        c.create("/crud", "v0", CreateMode::Persistent)
            .await
            .unwrap(),
        "/crud"
    );
    let (data, stat) = c.get_data("/crud").await.unwrap();
    assert_eq!(
        (&data[..], stat.version, stat.data_length, stat.num_children),
        (&b"v0"[..], 0, 2, 0)
    );
    assert!(stat.czxid > 0 && stat.czxid == stat.mzxid);
    assert_eq!(stat.ephemeral_owner, 0);

    let s1 = c.set_data("/crud", "v1", Some(0)).await.unwrap();
    assert_eq!(s1.version, 1);
    assert!(s1.mzxid > stat.mzxid);
    assert_eq!(c.exists("/crud").await.unwrap(), Some(s1));

    c.create("/crud/a", "", CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/crud/b", "", CreateMode::Persistent)
        .await
        .unwrap();
    let mut kids = c.get_children("/crud").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["a", "b"]);
    let (_, parent) = c.get_children2("/crud").await.unwrap();
    assert_eq!((parent.num_children, parent.cversion), (2, 2));
    assert_eq!(c.get_all_children_number("/crud").await.unwrap(), 2);

    let (created, cstat) = c
        .create_with("/crud/c", "x", CreateOptions::new(CreateMode::Persistent))
        .await
        .unwrap();
    assert_eq!((created.as_str(), cstat.data_length), ("/crud/c", 1));

    c.delete("/crud/a", None).await.unwrap();
    c.delete("/crud/b", Some(0)).await.unwrap();
    c.delete("/crud/c", None).await.unwrap();
    c.delete("/crud", None).await.unwrap();
    assert_eq!(c.exists("/crud").await.unwrap(), None);
    c.sync("/").await.unwrap();
    assert!(c.last_zxid() >= s1.mzxid);
    c.close().await.unwrap();
    assert_eq!(c.state(), SessionState::Closed);
    assert_eq!(c.get_data("/").await.unwrap_err(), Error::Closed);
}

#[tokio::test]
async fn errors_mirror_zookeeper_codes() {
    let server = Server::start();
    let c = server.client().await;
    assert_eq!(c.get_data("/missing").await.unwrap_err(), Error::NoNode);
    assert_eq!(
        c.create("/missing/child", "", CreateMode::Persistent)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    c.create("/e", "", CreateMode::Persistent).await.unwrap();
    assert_eq!(
        c.create("/e", "", CreateMode::Persistent)
            .await
            .unwrap_err(),
        Error::NodeExists
    );
    c.create("/e/k", "", CreateMode::Persistent).await.unwrap();
    assert_eq!(c.delete("/e", None).await.unwrap_err(), Error::NotEmpty);
    assert_eq!(
        c.set_data("/e", "x", Some(7)).await.unwrap_err(),
        Error::BadVersion
    );
    assert_eq!(
        c.delete("/e/k", Some(3)).await.unwrap_err(),
        Error::BadVersion
    );
    c.create("/eph", "", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(
        c.create("/eph/x", "", CreateMode::Persistent)
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    assert!(matches!(
        c.create("bad", "", CreateMode::Persistent).await,
        Err(Error::InvalidPath(_))
    ));
    // The connection survives errors.
    assert!(c.exists("/e").await.unwrap().is_some());
}

#[tokio::test]
async fn sequential_nodes_get_increasing_ten_digit_suffixes() {
    let server = Server::start();
    let c = server.client().await;
    c.create("/q", "", CreateMode::Persistent).await.unwrap();
    let mut names = vec![];
    for mode in [
        CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential,
        CreateMode::PersistentSequential,
    ] {
        names.push(c.create("/q/n-", "", mode).await.unwrap());
    }
    for n in &names {
        let suffix = n.strip_prefix("/q/n-").unwrap();
        assert_eq!(suffix.len(), 10, "{n}");
        assert!(suffix.chars().all(|ch| ch.is_ascii_digit()), "{n}");
    }
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
}

#[tokio::test]
async fn ephemerals_go_when_their_session_closes() {
    let server = Server::start();
    let a = server.client().await;
    let b = server.client().await;
    a.create("/owner", "", CreateMode::Ephemeral).await.unwrap();
    let stat = b
        .exists("/owner")
        .await
        .unwrap()
        .expect("visible to others");
    assert_eq!(stat.ephemeral_owner, a.session_id());
    assert_eq!(a.get_ephemerals("/").await.unwrap(), vec!["/owner"]);
    assert!(b.get_ephemerals("/").await.unwrap().is_empty());
    let (_, gone) = b.exists_w("/owner").await.unwrap();
    a.close().await.unwrap();
    let ev = within("NodeDeleted", gone).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDeleted, "/owner")
    );
    assert_eq!(b.exists("/owner").await.unwrap(), None);
}

#[tokio::test]
async fn one_shot_watches_fire_once_with_the_right_event() {
    let server = Server::start();
    let c = server.client().await;
    let other = server.client().await;

    // exists on a missing node: NodeCreated.
    let (none, created) = c.exists_w("/w").await.unwrap();
    assert_eq!(none, None);
    other
        .create("/w", "1", CreateMode::Persistent)
        .await
        .unwrap();
    let ev = within("NodeCreated", created).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/w")
    );
    assert!(ev.zxid > 0);

    // data watch: the first change fires it; the second change needs a new watch.
    let (_, changed) = c.get_data_w("/w").await.unwrap();
    let s = other.set_data("/w", "2", None).await.unwrap();
    other.set_data("/w", "3", None).await.unwrap();
    let ev = within("NodeDataChanged", changed).await;
    assert_eq!(
        (ev.event_type, ev.zxid),
        (EventType::NodeDataChanged, s.mzxid)
    );
    let ((d, _), next) = c.get_data_w("/w").await.unwrap();
    assert_eq!(&d[..], b"3");
    assert!(next.now_or_never().is_none(), "no stale second event");

    // child watch: NodeChildrenChanged on create, not on the child's data change.
    let (_, kids) = c.get_children_w("/w").await.unwrap();
    let (_, data_w) = c.get_data_w("/w").await.unwrap();
    other
        .create("/w/k", "", CreateMode::Persistent)
        .await
        .unwrap();
    let ev = within("NodeChildrenChanged", kids).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );
    // delete fires the data watch with NodeDeleted.
    other.delete("/w/k", None).await.unwrap();
    other.delete("/w", None).await.unwrap();
    let ev = within("NodeDeleted", data_w).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
}

#[tokio::test]
async fn persistent_and_recursive_watches_stream_every_event() {
    let server = Server::start();
    let c = server.client().await;
    let other = server.client().await;
    c.create("/p", "", CreateMode::Persistent).await.unwrap();
    let mut p = c.add_watch("/p", AddWatchMode::Persistent).await.unwrap();
    let mut r = c
        .add_watch("/p", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    other.set_data("/p", "1", None).await.unwrap();
    other
        .create("/p/a", "", CreateMode::Persistent)
        .await
        .unwrap();
    other
        .create("/p/a/b", "", CreateMode::Persistent)
        .await
        .unwrap();
    other.set_data("/p", "2", None).await.unwrap();

    let mut got = vec![];
    for _ in 0..3 {
        let e = within("persistent event", p.next()).await.unwrap();
        got.push((e.event_type, e.path));
    }
    assert_eq!(
        got,
        vec![
            (EventType::NodeDataChanged, "/p".into()),
            (EventType::NodeChildrenChanged, "/p".into()),
            (EventType::NodeDataChanged, "/p".into()),
        ]
    );
    let mut got = vec![];
    for _ in 0..4 {
        let e = within("recursive event", r.next()).await.unwrap();
        got.push((e.event_type, e.path));
    }
    assert_eq!(
        got,
        vec![
            (EventType::NodeDataChanged, "/p".into()),
            (EventType::NodeCreated, "/p/a".into()),
            (EventType::NodeCreated, "/p/a/b".into()),
            (EventType::NodeDataChanged, "/p".into()),
        ]
    );

    c.remove_watches("/p", WatcherType::Persistent)
        .await
        .unwrap();
    let e = within("removal", p.next()).await.unwrap();
    assert_eq!(e.event_type, EventType::PersistentWatchRemoved);
    assert!(p.next().await.is_none());
    assert_eq!(
        c.remove_watches("/p", WatcherType::Persistent)
            .await
            .unwrap_err(),
        Error::NoWatcher
    );
    other.delete("/p/a/b", None).await.unwrap();
    let e = within("recursive after removal", r.next()).await.unwrap();
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDeleted, "/p/a/b")
    );
}

#[tokio::test]
async fn multi_is_all_or_nothing() {
    let server = Server::start();
    let c = server.client().await;
    let results = c
        .multi(vec![
            Op::create("/m", "", CreateMode::Persistent),
            Op::create("/m/x", "x", CreateMode::Persistent),
            Op::set_data("/m/x", "y", Some(0)),
            Op::check("/m", 0),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/m"));
    assert!(matches!(&results[2], OpResult::SetData(s) if s.version == 1));
    assert_eq!(results[3], OpResult::Check);
    let results = c
        .multi(vec![Op::delete("/m/x", None), Op::delete("/m", Some(0))])
        .await
        .unwrap();
    assert_eq!(results, vec![OpResult::Delete, OpResult::Delete]);
    c.multi(vec![
        Op::create("/m", "", CreateMode::Persistent),
        Op::create("/m/x", "x", CreateMode::Persistent),
        Op::set_data("/m/x", "y", None),
    ])
    .await
    .unwrap();

    let err = c
        .multi(vec![
            Op::create("/m/y", "", CreateMode::Persistent),
            Op::check("/m/x", 0),
            Op::delete("/m/x", None),
        ])
        .await
        .unwrap_err();
    match err {
        Error::Multi { index, code, .. } => assert_eq!((index, code), (1, ErrorCode::BadVersion)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.exists("/m/y").await.unwrap(),
        None,
        "nothing of a failed multi is applied"
    );

    let reads = c
        .multi_read(vec![
            ReadOp::GetData("/m/x".into()),
            ReadOp::GetChildren("/m".into()),
            ReadOp::GetData("/no".into()),
        ])
        .await
        .unwrap();
    assert!(matches!(&reads[0], ReadResult::Data { data, .. } if &data[..] == b"y"));
    assert_eq!(reads[1], ReadResult::Children(vec!["x".into()]));
    assert_eq!(reads[2], ReadResult::Error(Error::NoNode));
}

#[tokio::test]
async fn session_survives_a_server_restart_with_its_watches() {
    let mut server = Server::start();
    let c = server.client().await;
    let id = c.session_id();
    c.create("/durable", "before", CreateMode::Persistent)
        .await
        .unwrap();
    let (_, watch) = c.get_data_w("/durable").await.unwrap();
    let zxid_before = c.last_zxid();
    let mut states = Box::pin(c.state_stream());
    assert_eq!(states.next().await, Some(SessionState::Connected));

    server.kill();
    assert_eq!(
        within("Disconnected", states.next()).await,
        Some(SessionState::Disconnected)
    );
    assert_eq!(
        c.get_data("/durable").now_or_never(),
        None,
        "calls wait while disconnected"
    );
    server.spawn();
    assert_eq!(
        within("Connected again", states.next()).await,
        Some(SessionState::Connected)
    );
    assert_eq!(c.session_id(), id, "same session after reconnect");
    assert!(c.last_zxid() >= zxid_before);

    let (data, _) = c.get_data("/durable").await.unwrap();
    assert_eq!(
        &data[..],
        b"before",
        "acknowledged write survived the restart"
    );
    // The data watch was re-registered on the new server process.
    let other = server.client().await;
    other.set_data("/durable", "after", None).await.unwrap();
    let ev = within("re-registered watch", watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/durable")
    );
}

/// A client process that died without closing: its session and ephemeral stay,
/// and another client resumes the session with its id and password. (Two live
/// clients sharing one session would take it from each other on every reconnect,
/// as with ZooKeeper, so the first one here is a bare connection that just stops.)
#[tokio::test]
async fn resumed_session_keeps_its_ephemerals() {
    use futures::SinkExt;
    use zabkeeper_proto::wire::{self, client_frame, request, server_frame};
    let server = Server::start();
    let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut io = tokio_util::codec::Framed::new(
        stream,
        zabkeeper_proto::frame::Codec::<wire::ServerFrame, wire::ClientFrame>::new(1 << 20),
    );
    let hello = wire::ConnectRequest {
        timeout_ms: 10_000,
        ..Default::default()
    };
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Connect(hello)),
    })
    .await
    .unwrap();
    let Some(Ok(wire::ServerFrame {
        kind: Some(server_frame::Kind::Connect(granted)),
    })) = io.next().await
    else {
        panic!("no ConnectResponse");
    };
    let create = request::Op::Create(wire::CreateRequest {
        path: "/mine".into(),
        mode: CreateMode::Ephemeral as i32,
        ..Default::default()
    });
    let req = wire::Request {
        xid: 1,
        consistency: 0,
        op: Some(create),
        ..Default::default()
    };
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Request(req)),
    })
    .await
    .unwrap();
    let Some(Ok(wire::ServerFrame {
        kind: Some(server_frame::Kind::Response(r)),
    })) = io.next().await
    else {
        panic!("no response");
    };
    assert_eq!(r.error, 0);
    drop(io); // the first client vanishes without closing its session

    let resume = ConnectOptions {
        session: Some((granted.session_id, granted.password.to_vec())),
        ..opts()
    };
    let b = Client::connect(&server.addr(), resume).await.unwrap();
    assert_eq!(b.session_id(), granted.session_id);
    assert_eq!(b.get_ephemerals("/").await.unwrap(), vec!["/mine"]);
    b.close().await.unwrap();
    let c = server.client().await;
    assert_eq!(c.exists("/mine").await.unwrap(), None);
}

#[tokio::test]
async fn who_am_i_and_zxid_tracking() {
    let server = Server::start();
    let c = server.client().await;
    let ids = c.who_am_i().await.unwrap();
    assert!(
        !ids.is_empty(),
        "an unauthenticated session is at least ip:<addr>"
    );
    let mut last = c.last_zxid();
    for i in 0..5 {
        let path = c
            .create(&format!("/z{i}"), "", CreateMode::Persistent)
            .await
            .unwrap();
        let (_, stat) = c.get_data(&path).await.unwrap();
        assert!(c.last_zxid() >= stat.mzxid && c.last_zxid() > last);
        last = c.last_zxid();
    }
}
