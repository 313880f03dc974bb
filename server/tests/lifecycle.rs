//! Start, configuration and shutdown of the real binary.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use zabkeeper_proto::wire::CreateMode;

#[test]
fn help_names_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--port",
        "--bind",
        "--config",
        "--tick-ms",
        "--max-frame",
        "--max-connections",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn invalid_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zk.toml");
    std::fs::write(&cfg, "tick_ms = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tick_ms"));
    std::fs::write(&cfg, "no_such_key = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
}

#[tokio::test]
async fn config_file_is_read_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("zk.toml");
    // The file names a port that is in use; the flag overrides it.
    std::fs::write(
        &cfg,
        format!(
            "port = 1\ntick_ms = 100\ndata_dir = \"{}\"\n",
            dir.path().join("d").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .arg("--config")
        .arg(&cfg)
        .arg("--port")
        .arg(port.to_string())
        .args(["--admin-port", "0"])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    // tick_ms = 100 from the file: a requested 100 s timeout is negotiated down to 20 ticks.
    let c = RawClient::connect_with(
        addr,
        zabkeeper_proto::wire::ConnectRequest {
            timeout_ms: 100_000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    drop(c);
    assert!(dir.path().join("d").exists(), "data_dir from the file");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_data_stays() {
    let mut server = ServerProcess::start(&[]);
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(
        c.call(create("/kept", b"v", CreateMode::Persistent))
            .await
            .0
            .error,
        0
    );
    let started = Instant::now();
    unsafe_kill(server.pid(), 15);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(c.recv().await.is_none(), "connections closed on shutdown");
    let server2 = ServerProcess::start_in(&server.dir.clone(), server.addr.port(), &[]);
    let mut c = RawClient::connect(server2.addr).await;
    assert_eq!(c.call(get("/kept", false)).await.0.error, 0);
}

fn unsafe_kill(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn environment_configures_the_server_and_flags_win_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (port, zk_port, admin_port) = (free_port(), free_port(), free_port());
    // ZABKEEPER_PORT names a port in use by nobody we know; the flag wins over it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .env("ZABKEEPER_DATA_DIR", dir.path().join("from-env"))
        .env("ZABKEEPER_PORT", "1")
        .env("ZABKEEPER_ZK_PORT", zk_port.to_string())
        .env("ZABKEEPER_ADMIN_PORT", admin_port.to_string())
        .env("ZABKEEPER_BIND", "127.0.0.1")
        .env("ZABKEEPER_TICK_MS", "100")
        .env("RUST_LOG", "warn")
        .arg("--port")
        .arg(port.to_string())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", zk_port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", admin_port)).is_err()
    {
        assert!(
            Instant::now() < deadline,
            "did not start on the env's ports"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        dir.path().join("from-env").exists(),
        "data dir from the env"
    );
    let _ = child.kill();
    let _ = child.wait();

    // A bad value in the environment is refused like a bad flag.
    let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .env("ZABKEEPER_TICK_MS", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ZABKEEPER_TICK_MS")
            || String::from_utf8_lossy(&out.stderr).contains("tick-ms")
    );
}

#[tokio::test]
async fn status_exit_code_says_whether_the_member_serves() {
    let status = |addr: String| {
        Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
            .args(["status", &addr])
            .output()
            .unwrap()
    };
    let server = ServerProcess::start(&[]);
    let out = status(server.addr.to_string());
    assert_eq!(out.status.code(), Some(0), "a standalone server serves");
    assert!(String::from_utf8_lossy(&out.stdout).contains("serving=true"));

    // One member of three left alone: it answers the probe but, with no quorum, has
    // no epoch to serve in.
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    assert_eq!(status(cluster.addr(2).to_string()).status.code(), Some(0));
    cluster.kill9(0);
    cluster.kill9(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = status(cluster.addr(2).to_string());
        if out.status.code() != Some(0) || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("serving=false"));

    let gone = format!("127.0.0.1:{}", free_port());
    assert_eq!(status(gone).status.code(), Some(1), "unreachable");
}

#[tokio::test]
async fn a_member_whose_host_does_not_resolve_yet_does_not_stop_the_others() {
    // Member 3's name resolves nowhere (its container is not up, say): 1 and 2 start,
    // form a quorum and serve; they keep dialing 3 by name.
    let peer: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let spec = format!(
        "1=127.0.0.1:{}:{},2=localhost:{}:{},3=member-three.invalid:{}:{}",
        peer[0], client[0], peer[1], client[1], peer[2], client[2]
    );
    let dirs = tempfile::tempdir().unwrap();
    let mut members = Vec::new();
    for (i, port) in client.iter().take(2).enumerate() {
        let id = (i + 1).to_string();
        members.push(ServerProcess::start_in(
            &dirs.path().join(&id),
            *port,
            &["--id", &id, "--members", &spec],
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for m in &members {
        while !probe(m.addr).await.is_some_and(|s| s.serving) {
            assert!(Instant::now() < deadline, "{} does not serve", m.addr);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
