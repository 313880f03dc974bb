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
