//! Helpers for tests that run the real `zabkeeper` binary on a loopback port.
#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame, request::Op, server_frame};

/// A server process with its own data directory.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Starts a server on a fresh data directory and waits until it accepts clients.
    pub fn start(extra: &[&str]) -> ServerProcess {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, free_port(), extra);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `dir` and `port` (a restart reuses both).
    pub fn start_in(dir: &Path, port: u16, extra: &[&str]) -> ServerProcess {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
            .arg("--data-dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            // The ZooKeeper port defaults to 2181; parallel tests must not share it.
            .args(if extra.iter().any(|a| a == "--zk-port") {
                &[][..]
            } else {
                &["--zk-port", "0"][..]
            })
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn zabkeeper");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let s = ServerProcess {
            child,
            addr,
            dir: dir.to_path_buf(),
            _tmp: None,
            extra,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("server on {} did not start", self.addr);
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process and starts a new one on the same directory and port.
    pub fn restart9(&mut self) {
        self.kill9();
        let extra: Vec<&str> = self.extra.iter().map(|s| s.as_str()).collect();
        let tmp = self._tmp.take();
        let mut next = Self::start_in(&self.dir, self.addr.port(), &extra);
        next._tmp = tmp;
        std::mem::swap(self, &mut next);
        drop(next); // the old process, already reaped; its `_tmp` was moved over
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal client speaking the native protocol frame by frame, for wire-level tests.
pub struct RawClient {
    pub io: Framed<TcpStream, Codec<wire::ServerFrame, wire::ClientFrame>>,
    pub session_id: i64,
    pub password: Vec<u8>,
    xid: i32,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        Self::connect_with(
            addr,
            wire::ConnectRequest {
                timeout_ms: 10_000,
                ..Default::default()
            },
        )
        .await
        .expect("connect")
    }

    pub async fn connect_with(
        addr: SocketAddr,
        req: wire::ConnectRequest,
    ) -> Result<RawClient, wire::ConnectResponse> {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut io = Framed::new(stream, Codec::new(16 * 1024 * 1024));
        io.send(wire::ClientFrame {
            kind: Some(client_frame::Kind::Connect(req)),
        })
        .await
        .unwrap();
        let resp = match io.next().await {
            Some(Ok(wire::ServerFrame {
                kind: Some(server_frame::Kind::Connect(c)),
            })) => c,
            other => panic!("expected ConnectResponse, got {other:?}"),
        };
        if resp.error != 0 {
            return Err(resp);
        }
        Ok(RawClient {
            io,
            session_id: resp.session_id,
            password: resp.password.to_vec(),
            xid: 0,
        })
    }

    /// Sends a request and returns its xid.
    pub async fn send(&mut self, op: Op) -> i32 {
        self.xid += 1;
        let req = wire::Request {
            xid: self.xid,
            consistency: 0,
            op: Some(op),
        };
        self.io
            .send(wire::ClientFrame {
                kind: Some(client_frame::Kind::Request(req)),
            })
            .await
            .unwrap();
        self.xid
    }

    /// Next frame (response or event), or None when the server closed the connection.
    pub async fn recv(&mut self) -> Option<server_frame::Kind> {
        match tokio::time::timeout(Duration::from_secs(10), self.io.next()).await {
            Ok(Some(Ok(f))) => f.kind,
            Ok(_) => None,
            Err(_) => panic!("no frame within 10 s"),
        }
    }

    /// Like `call`, but None when the server closes the connection first.
    pub async fn try_call(&mut self, op: Op) -> Option<wire::Response> {
        let xid = self.send(op).await;
        loop {
            match self.recv().await? {
                server_frame::Kind::Response(r) if r.xid == xid => return Some(r),
                _ => {}
            }
        }
    }

    /// Sends a request and waits for its response, collecting events seen before it.
    pub async fn call(&mut self, op: Op) -> (wire::Response, Vec<wire::WatchEvent>) {
        let xid = self.send(op).await;
        let mut events = Vec::new();
        loop {
            match self.recv().await {
                Some(server_frame::Kind::Response(r)) => {
                    assert_eq!(r.xid, xid, "responses come in request order");
                    return (r, events);
                }
                Some(server_frame::Kind::Event(e)) => events.push(e),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

pub fn create(path: &str, data: &[u8], mode: wire::CreateMode) -> Op {
    Op::Create(wire::CreateRequest {
        path: path.into(),
        data: data.to_vec().into(),
        acl: vec![],
        mode: mode as i32,
        ttl_ms: 0,
    })
}

pub fn get(path: &str, watch: bool) -> Op {
    Op::GetData(wire::PathWatchRequest {
        path: path.into(),
        watch,
    })
}

pub fn set(path: &str, data: &[u8], version: i32) -> Op {
    Op::SetData(wire::SetDataRequest {
        path: path.into(),
        data: data.to_vec().into(),
        version,
    })
}

pub fn delete(path: &str, version: i32) -> Op {
    Op::Delete(wire::DeleteRequest {
        path: path.into(),
        version,
    })
}

pub fn exists(path: &str, watch: bool) -> Op {
    Op::Exists(wire::PathWatchRequest {
        path: path.into(),
        watch,
    })
}

pub fn children(path: &str, watch: bool) -> Op {
    Op::GetChildren(wire::GetChildrenRequest {
        path: path.into(),
        watch,
        with_stat: false,
    })
}

pub fn add_watch(path: &str, recursive: bool) -> Op {
    let mode = if recursive {
        wire::AddWatchMode::PersistentRecursive
    } else {
        wire::AddWatchMode::Persistent
    };
    Op::AddWatch(wire::AddWatchRequest {
        path: path.into(),
        mode: mode as i32,
    })
}

pub fn ping() -> Op {
    Op::Ping(wire::Empty {})
}

impl RawClient {
    /// Events that arrive within `wait` (answers to nothing).
    pub async fn events_for(&mut self, wait: Duration) -> Vec<wire::WatchEvent> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(Ok(f))) = tokio::time::timeout_at(deadline, self.io.next()).await {
            match f.kind {
                Some(server_frame::Kind::Event(e)) => out.push(e),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        out
    }
}

/// The created path in a create response.
pub fn created_path(r: &wire::Response) -> String {
    match &r.result {
        Some(wire::response::Result::Create(c)) => c.path.clone(),
        other => panic!("not a create result: {other:?} (error {})", r.error),
    }
}

pub fn stat_of(r: &wire::Response) -> wire::Stat {
    match &r.result {
        Some(wire::response::Result::Stat(s)) => *s,
        Some(wire::response::Result::GetData(d)) => d.stat.unwrap(),
        Some(wire::response::Result::Create(c)) => c.stat.unwrap(),
        other => panic!("no stat in {other:?} (error {})", r.error),
    }
}

/// A loopback ensemble of real server processes.
pub struct Cluster {
    pub members: Vec<Option<ServerProcess>>,
    pub dirs: Vec<PathBuf>,
    pub client_ports: Vec<u16>,
    spec: String,
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members (ids 1..=n) and waits until each accepts connections.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let peer: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let client: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let spec = (0..n)
            .map(|i| format!("{}=127.0.0.1:{}:{}", i + 1, peer[i], client[i]))
            .collect::<Vec<_>>()
            .join(",");
        let dirs: Vec<PathBuf> = (0..n)
            .map(|i| tmp.path().join(format!("m{}", i + 1)))
            .collect();
        let mut c = Cluster {
            members: (0..n).map(|_| None).collect(),
            dirs,
            client_ports: client,
            spec,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
        };
        for i in 0..n {
            c.start_member(i);
        }
        c
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        format!("127.0.0.1:{}", self.client_ports[i])
            .parse()
            .unwrap()
    }

    /// (Re)starts member `i` (0-based) on its own directory.
    pub fn start_member(&mut self, i: usize) {
        let id = (i + 1).to_string();
        let mut args: Vec<&str> = vec!["--id", &id, "--members", &self.spec];
        args.extend(self.extra.iter().map(|s| s.as_str()));
        let p = ServerProcess::start_in(&self.dirs[i], self.client_ports[i], &args);
        self.members[i] = Some(p);
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].take() {
            p.kill9();
        }
    }

    /// Connects to member `i` once it serves (it refuses clients until it has a leader).
    pub async fn client(&self, i: usize) -> RawClient {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match RawClient::try_connect_with(
                self.addr(i),
                wire::ConnectRequest {
                    timeout_ms: 10_000,
                    ..Default::default()
                },
            )
            .await
            {
                Some(Ok(c)) => return c,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => panic!("member {i} does not serve: {:?}", other.map(|r| r.err())),
            }
        }
    }
}

impl RawClient {
    /// Like `connect_with`, but None when the TCP connection fails or closes early.
    pub async fn try_connect_with(
        addr: SocketAddr,
        req: wire::ConnectRequest,
    ) -> Option<Result<RawClient, wire::ConnectResponse>> {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut io = Framed::new(stream, Codec::new(16 * 1024 * 1024));
        io.send(wire::ClientFrame {
            kind: Some(client_frame::Kind::Connect(req)),
        })
        .await
        .ok()?;
        let resp = match tokio::time::timeout(Duration::from_secs(10), io.next()).await {
            Ok(Some(Ok(wire::ServerFrame {
                kind: Some(server_frame::Kind::Connect(c)),
            }))) => c,
            _ => return None,
        };
        if resp.error != 0 {
            return Some(Err(resp));
        }
        Some(Ok(RawClient {
            io,
            session_id: resp.session_id,
            password: resp.password.to_vec(),
            xid: 0,
        }))
    }
}

/// A member's state by the session-less probe, or None if it does not answer.
pub async fn probe(addr: SocketAddr) -> Option<wire::ServerStateResponse> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let mut io = Framed::new(
        stream,
        Codec::<wire::ServerFrame, wire::ClientFrame>::new(1 << 20),
    );
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Probe(wire::Empty {})),
    })
    .await
    .ok()?;
    match tokio::time::timeout(Duration::from_secs(5), io.next()).await {
        Ok(Some(Ok(wire::ServerFrame {
            kind: Some(server_frame::Kind::Response(r)),
        }))) => match r.result {
            Some(wire::response::Result::ServerState(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

impl Cluster {
    /// Waits until every running member serves (has joined the established epoch).
    pub async fn wait_all_serving(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for i in 0..self.members.len() {
            if self.members[i].is_none() {
                continue;
            }
            while !probe(self.addr(i)).await.is_some_and(|s| s.serving) {
                assert!(
                    Instant::now() < deadline,
                    "member {i} not serving within {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Index of the serving leader, waiting up to `within` for one.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..self.members.len() {
                if self.members[i].is_some() {
                    if let Some(s) = probe(self.addr(i)).await {
                        if s.role == "leading" && s.serving {
                            return i;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
