//! Smoke test of the `zabkeeper-bench` binary against a real server: each workload runs
//! briefly without errors, the JSON line carries every field, server CPU and RSS are
//! read from `/proc`, and nothing the run created is left in the tree. No timing is
//! asserted: this checks the tool works, not how fast the server is.
//!
//! The server is `$ZABKEEPER_BIN` or the workspace's debug build, built on demand, as in
//! the shell's and client's tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("ZABKEEPER_BIN") {
        return PathBuf::from(bin);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
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
}

struct Server {
    child: Child,
    port: u16,
    zk_port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// A server with its native port and its ZooKeeper port on free ports.
    fn start() -> Server {
        let (port, zk_port) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(server_binary())
            .args([
                "--port",
                &port.to_string(),
                "--zk-port",
                &zk_port.to_string(),
                "--admin-port",
                "0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start zabkeeper");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", zk_port)).is_err()
        {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("zabkeeper exited with {status} before accepting on port {port}");
            }
            assert!(
                Instant::now() < deadline,
                "zabkeeper did not accept on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            port,
            zk_port,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench_at(server: &Server, port: u16, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper-bench"))
        .args([
            "--servers",
            &format!("127.0.0.1:{port}"),
            "--server-pid",
            &server.child.id().to_string(),
        ])
        .args([
            "--duration-s",
            "0.3",
            "--warmup-s",
            "0.1",
            "--value-size",
            "100",
            "--json",
        ])
        .args(args)
        .output()
        .expect("run zabkeeper-bench");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {stdout}"))
}

fn check_clean_runs(server: &Server, port: u16, protocol: &str) {
    for op in ["create", "set", "get", "mixed", "multi"] {
        let r = bench_at(
            server,
            port,
            &[
                "--protocol",
                protocol,
                "--op",
                op,
                "--clients",
                "2",
                "--pipeline",
                "2",
            ],
        );
        assert_eq!(r["op"], op);
        assert_eq!(r["protocol"], protocol);
        assert_eq!(r["errors"], 0, "{protocol} {op}: {r}");
        assert_eq!(r["cleanup_failures"], 0, "{protocol} {op}: {r}");
        assert!(r["ok"].as_u64().unwrap() > 0, "{protocol} {op}: {r}");
        let p50 = r["p50_us"].as_u64().unwrap();
        assert!(
            p50 > 0
                && p50 <= r["p99_us"].as_u64().unwrap()
                && r["p99_us"].as_u64() <= r["max_us"].as_u64(),
            "{r}"
        );
        assert!(r["server_cpu_s"].as_f64().unwrap() >= 0.0, "{r}");
        assert!(r["server_rss_mib"].as_f64().unwrap() > 0.0, "{r}");
    }
}

/// The children of `/`, read over the native protocol.
fn root_children(server: &Server) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = zabkeeper_client::Client::connect(
            &format!("127.0.0.1:{}", server.port),
            Default::default(),
        )
        .await
        .unwrap();
        let children = c.get_children("/").await.unwrap();
        c.close().await.unwrap();
        children
    })
}

#[test]
fn every_workload_runs_clean_and_leaves_no_nodes() {
    let server = Server::start();
    check_clean_runs(&server, server.port, "native");
    // Every run removed its root: only the built-in nodes remain.
    let children = root_children(&server);
    assert!(
        children.iter().all(|c| !c.starts_with("zkbench-")),
        "left behind: {children:?}"
    );
}

#[test]
fn zookeeper_protocol_runs_every_workload_against_our_zookeeper_port() {
    let server = Server::start();
    check_clean_runs(&server, server.zk_port, "zookeeper");
    let children = root_children(&server);
    assert!(
        children.iter().all(|c| !c.starts_with("zkbench-")),
        "left behind: {children:?}"
    );
}

#[test]
fn zookeeper_protocol_reports_an_unreachable_server() {
    let port = free_port(); // nothing listens there
    let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper-bench"))
        .args(["--protocol", "zookeeper", "--timeout-s", "5", "--servers"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
