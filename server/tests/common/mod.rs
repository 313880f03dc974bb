//! Helpers for tests that run the real `zabkeeper` binary on a loopback port.
//!
//! The server crate's tests use Cargo's own build of the binary; other crates' tests
//! include this file (`#[path = "../../server/tests/common/mod.rs"]`) and get
//! `$ZABKEEPER_BIN`, or the workspace's debug build, built once per test binary.
#![allow(dead_code)]

use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
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

/// The `zabkeeper` binary the tests run.
pub fn server_binary() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_zabkeeper") {
        return PathBuf::from(bin);
    }
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("ZABKEEPER_BIN") {
            return PathBuf::from(bin);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "zabkeeper-server", "--bin", "zabkeeper"])
            .current_dir(root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the zabkeeper server failed");
        target.join("debug/zabkeeper")
    })
    .clone()
}

/// A free loopback port below the kernel's ephemeral range (`ip_local_port_range`).
///
/// Port 0 would give one from inside that range, where any outgoing connection (a
/// client, a proxy, a peer link) may take it while its server is down between a kill
/// and a restart: the restart then fails with "address in use". Ports below the range
/// are only ever taken by a bind. Each process starts at its own offset and walks on,
/// so test processes running side by side rarely try the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1000));
    let start = std::process::id().wrapping_mul(7919) % span;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (first + (start + n) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        assert!(n < 10 * span, "no free port below {low}");
    }
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
        Self::start_in_env(dir, port, extra, &[])
    }

    /// Like `start_in`, with extra environment variables for the process.
    pub fn start_in_env(
        dir: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        Self::spawn(dir, port, extra, env, None)
    }

    /// Like `start_in_env`, appending the server's standard error (its log) to `log`.
    pub fn start_logged(
        dir: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> ServerProcess {
        Self::spawn(dir, port, extra, env, Some(log))
    }

    fn spawn(
        dir: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> ServerProcess {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the server's log file"),
            ),
            None => Stdio::inherit(),
        };
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Command::new(server_binary())
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
            // The admin port defaults to 8080: off unless the test asks for one.
            .args(if extra.iter().any(|a| a == "--admin-port") {
                &[][..]
            } else {
                &["--admin-port", "0"][..]
            })
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
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
        self.send_with(op, wire::Consistency::Session).await
    }

    /// Sends a request with the given read consistency and returns its xid.
    pub async fn send_with(&mut self, op: Op, consistency: wire::Consistency) -> i32 {
        self.send_full(op, consistency, 0, 0).await
    }

    /// Sends an exactly-once write with a request number and low-water mark.
    pub async fn send_numbered(&mut self, op: Op, number: i64, acked_below: i64) -> i32 {
        self.send_full(op, wire::Consistency::Session, number, acked_below)
            .await
    }

    async fn send_full(
        &mut self,
        op: Op,
        consistency: wire::Consistency,
        number: i64,
        acked_below: i64,
    ) -> i32 {
        self.xid += 1;
        let req = wire::Request {
            xid: self.xid,
            consistency: consistency as i32,
            op: Some(op),
            request_number: number,
            acked_below,
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
        self.call_numbered(op, 0, 0).await
    }

    /// `call` for an exactly-once write.
    pub async fn call_numbered(
        &mut self,
        op: Op,
        number: i64,
        acked_below: i64,
    ) -> (wire::Response, Vec<wire::WatchEvent>) {
        let xid = self.send_numbered(op, number, acked_below).await;
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
    /// Each member's admin HTTP port; empty when the cluster runs without them.
    pub admin_ports: Vec<u16>,
    spec: String,
    extra: Vec<String>,
    /// With `start_logged`: member i's log is appended to `log_path(i)` (RUST_LOG=info).
    logged: bool,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` members (ids 1..=n) and waits until each accepts connections.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let mut c = Self::prepare(n, extra, false);
        for i in 0..n {
            c.start_member(i);
        }
        c
    }

    /// Like `start`, each member with its own admin HTTP port (`admin_addr`).
    pub fn start_with_admin(n: usize, extra: &[&str]) -> Cluster {
        let mut c = Self::prepare(n, extra, true);
        for i in 0..n {
            c.start_member(i);
        }
        c
    }

    /// Like `start`, each member's log (RUST_LOG=info, with `extra`'s log flags)
    /// appended to `log_path(i)` across restarts.
    pub fn start_logged(n: usize, extra: &[&str]) -> Cluster {
        let mut c = Self::prepare(n, extra, false);
        c.logged = true;
        for i in 0..n {
            c.start_member(i);
        }
        c
    }

    /// Member `i`'s log file (see `start_logged`).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self._tmp.path().join(format!("m{}.log", i + 1))
    }

    /// Plans `n` members without starting any (see `start_member_with`).
    pub fn new(n: usize, extra: &[&str]) -> Cluster {
        Self::prepare(n, extra, false)
    }

    /// Ports and (not yet existing) data directories for `n` members, none started:
    /// a test may fill `dirs` first (restore, import).
    pub fn prepare(n: usize, extra: &[&str], admin: bool) -> Cluster {
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
        Cluster {
            members: (0..n).map(|_| None).collect(),
            dirs,
            client_ports: client,
            admin_ports: if admin {
                (0..n).map(|_| free_port()).collect()
            } else {
                Vec::new()
            },
            spec,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            logged: false,
            _tmp: tmp,
        }
    }

    /// Member `i`'s admin address (the cluster must have been started with admin ports).
    pub fn admin_addr(&self, i: usize) -> SocketAddr {
        format!("127.0.0.1:{}", self.admin_ports[i])
            .parse()
            .unwrap()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        format!("127.0.0.1:{}", self.client_ports[i])
            .parse()
            .unwrap()
    }

    /// (Re)starts member `i` (0-based) on its own directory.
    pub fn start_member(&mut self, i: usize) {
        let extra = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
        self.start_member_with(i, &extra);
    }

    /// (Re)starts member `i` with `extra` flags instead of the cluster's.
    pub fn start_member_with(&mut self, i: usize, extra: &[&str]) {
        let id = (i + 1).to_string();
        let admin = self.admin_ports.get(i).map(|p| p.to_string());
        let mut args: Vec<&str> = vec!["--id", &id, "--members", &self.spec];
        if let Some(port) = &admin {
            args.extend(["--admin-port", port.as_str()]);
        }
        args.extend(extra.iter().copied());
        let p = if self.logged {
            ServerProcess::start_logged(
                &self.dirs[i],
                self.client_ports[i],
                &args,
                &[("RUST_LOG", "info")],
                &self.log_path(i),
            )
        } else {
            ServerProcess::start_in(&self.dirs[i], self.client_ports[i], &args)
        };
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

/// A TCP proxy in front of a member that can lose an answer: armed, it drops the
/// next response to a client request (xid > 0) and closes both sides of that
/// connection instead of passing it on, as a network cut between the request and
/// its response would. Optionally it then refuses every later connection (its
/// member unreachable), so the client has to go to another member.
pub struct LossyProxy {
    pub addr: SocketAddr,
    state: std::sync::Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    armed: std::sync::atomic::AtomicBool,
    /// Armed for the answer to a multi only.
    multi_only: std::sync::atomic::AtomicBool,
    block_after: std::sync::atomic::AtomicBool,
    blocked: std::sync::atomic::AtomicBool,
    dropped: std::sync::atomic::AtomicUsize,
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LossyProxy {
    pub async fn start(target: SocketAddr) -> LossyProxy {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(ProxyState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if st.blocked.load(SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                tokio::spawn(proxy_conn(client, server, st.clone()));
            }
        });
        LossyProxy { addr, state, task }
    }

    /// Drops the next response (and its connection); with `then_block`, every later
    /// connection too.
    pub fn lose_next_response(&self, then_block: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.block_after.store(then_block, SeqCst);
        self.state.armed.store(true, SeqCst);
    }

    /// Like `lose_next_response`, for the next answer to a multi: the calls before it
    /// (reads, say) are answered.
    pub fn lose_next_multi_response(&self, then_block: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.multi_only.store(true, SeqCst);
        self.lose_next_response(then_block);
    }

    /// How many responses were dropped so far.
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until a response was dropped.
    pub async fn wait_dropped(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.dropped() < n {
            assert!(
                Instant::now() < deadline,
                "no response dropped within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn proxy_conn(client: TcpStream, server: TcpStream, st: std::sync::Arc<ProxyState>) {
    use prost::Message;
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    });
    // Server -> client, frame by frame (4-byte length, then a ServerFrame).
    loop {
        let mut len = [0u8; 4];
        if sr.read_exact(&mut len).await.is_err() {
            break;
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        if sr.read_exact(&mut body).await.is_err() {
            break;
        }
        let (is_answer, is_multi) = match wire::ServerFrame::decode(&body[..]) {
            Ok(wire::ServerFrame {
                kind: Some(server_frame::Kind::Response(r)),
            }) if r.xid > 0 => (
                true,
                matches!(r.result, Some(wire::response::Result::Multi(_))),
            ),
            _ => (false, false),
        };
        let wanted = is_answer && (is_multi || !st.multi_only.load(SeqCst));
        if wanted && st.armed.swap(false, SeqCst) {
            st.multi_only.store(false, SeqCst);
            if st.block_after.load(SeqCst) {
                st.blocked.store(true, SeqCst);
            }
            st.dropped.fetch_add(1, SeqCst);
            break;
        }
        if cw.write_all(&len).await.is_err() || cw.write_all(&body).await.is_err() {
            break;
        }
    }
    up.abort();
    let _ = cw.shutdown().await;
}

/// A TCP proxy in front of a member that can cut the network: `cut` freezes every
/// connection through it (nothing passes either way, nothing is closed, as in a
/// partition or a frozen client process) and holds new ones unanswered; `heal` drops
/// the frozen connections and passes new ones again. It also counts the requests
/// clients send through it, by kind (pings aside).
pub struct CutProxy {
    pub addr: SocketAddr,
    cut: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    requests: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Frozen connections wait for a heal; let them go.
        self.cut.send_replace(false);
    }
}

impl CutProxy {
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(tokio::sync::watch::Sender::new(false));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Default::default()));
        let (c, r) = (cut.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = c.subscribe();
                if *rx.borrow() {
                    tokio::spawn(async move {
                        let _held = client;
                        let _ = rx.wait_for(|cut| !*cut).await;
                    });
                    continue;
                }
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(cut_pipe(cr, sw, c.subscribe(), Some(r.clone())));
                tokio::spawn(cut_pipe(sr, cw, rx, None));
            }
        });
        CutProxy {
            addr,
            cut,
            requests,
            task,
        }
    }

    /// Freezes the network between the clients and the member.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Ends the cut: frozen connections close, new ones pass.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// Requests of this kind (the `Op` variant's name, e.g. "GetChildren") sent so far.
    pub fn requests(&self, kind: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Every request sent so far, pings aside.
    pub fn all_requests(&self) -> usize {
        self.requests.lock().unwrap().values().sum()
    }
}

/// One direction of a `CutProxy` connection, frame by frame (4-byte length, then the
/// frame), counting the client's requests when `count` is given.
async fn cut_pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: tokio::sync::watch::Receiver<bool>,
    count: Option<std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>>,
) {
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn read_frame(from: &mut tokio::net::tcp::OwnedReadHalf) -> Option<([u8; 4], Vec<u8>)> {
        let mut len = [0u8; 4];
        from.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        from.read_exact(&mut body).await.ok()?;
        Some((len, body))
    }
    loop {
        // A frame half read when the cut comes is lost with the connection anyway.
        let next = tokio::select! {
            f = read_frame(&mut from) => f,
            _ = cut.wait_for(|c| *c) => break,
        };
        let Some((len, body)) = next else { return };
        if *cut.borrow() {
            break;
        }
        if let Some(count) = &count {
            if let Ok(wire::ClientFrame {
                kind: Some(client_frame::Kind::Request(r)),
            }) = wire::ClientFrame::decode(&body[..])
            {
                let kind = format!("{:?}", r.op);
                let kind = kind.trim_start_matches("Some(");
                let kind = kind
                    .split(['(', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if kind != "Ping" {
                    *count.lock().unwrap().entry(kind).or_default() += 1;
                }
            }
        }
        if to.write_all(&len).await.is_err() || to.write_all(&body).await.is_err() {
            return;
        }
    }
    // Cut: hold both ends open and silent until the heal, then close.
    let _ = cut.wait_for(|c| !*c).await;
}

/// One HTTP GET (`Connection: close`): (status code, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the admin port");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, raw[end + 4..].to_vec())
}

/// GETs a JSON admin command, asserting a 200 answer.
pub fn admin_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let (status, body) = http_get(addr, path);
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
}

/// The value of one sample (`name{labels}` exactly as exposed) in a `/metrics` text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in /metrics"))
}
