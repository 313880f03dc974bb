//! The admin HTTP port against real server processes: `/metrics` moves with
//! traffic, and every `/commands/<name>` answers on a live 3-member ensemble.

mod common;

use common::*;
use std::time::{Duration, Instant};
use zabkeeper_proto::wire::CreateMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counters_move_with_traffic() {
    let admin_port = free_port();
    let s = ServerProcess::start(&["--admin-port", &admin_port.to_string()]);
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let scrape = || {
        let (status, body) = http_get(admin, "/metrics");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    let before = scrape();
    let creates0 = metric(&before, "zabkeeper_requests_total{op=\"create\"}");
    let gets0 = metric(&before, "zabkeeper_requests_total{op=\"get_data\"}");
    let errors0 = metric(&before, "zabkeeper_request_errors_total{op=\"get_data\"}");
    let znodes0 = metric(&before, "zabkeeper_znodes");
    let fsyncs0 = metric(&before, "zabkeeper_fsync_total");
    assert_eq!(metric(&before, "zabkeeper_role{role=\"standalone\"}"), 1.0);
    assert_eq!(metric(&before, "zabkeeper_outstanding_requests"), 0.0);

    let mut c = RawClient::connect(s.addr).await;
    for i in 0..20 {
        let (r, _) = c
            .call(create(
                &format!("/m{i}"),
                b"0123456789",
                CreateMode::Persistent,
            ))
            .await;
        assert_eq!(r.error, 0);
    }
    for i in 0..10 {
        c.call(get(&format!("/m{i}"), false)).await;
    }
    let (r, _) = c.call(get("/missing", false)).await;
    assert_ne!(r.error, 0);
    c.call(exists("/m0", true)).await;
    c.call(add_watch("/m1", true)).await;

    let after = scrape();
    assert_eq!(
        metric(&after, "zabkeeper_requests_total{op=\"create\"}"),
        creates0 + 20.0
    );
    assert_eq!(
        metric(
            &after,
            "zabkeeper_request_latency_seconds_count{op=\"create\"}"
        ),
        creates0 + 20.0
    );
    assert_eq!(
        metric(&after, "zabkeeper_requests_total{op=\"get_data\"}"),
        gets0 + 11.0
    );
    assert_eq!(
        metric(&after, "zabkeeper_request_errors_total{op=\"get_data\"}"),
        errors0 + 1.0
    );
    assert_eq!(
        metric(&after, "zabkeeper_requests_total{op=\"exists\"}"),
        1.0
    );
    assert_eq!(metric(&after, "zabkeeper_znodes"), znodes0 + 20.0);
    assert!(metric(&after, "zabkeeper_data_bytes") >= 20.0 * 13.0);
    assert_eq!(metric(&after, "zabkeeper_watches{kind=\"data\"}"), 1.0);
    assert_eq!(
        metric(&after, "zabkeeper_watches{kind=\"persistent_recursive\"}"),
        1.0
    );
    assert!(metric(&after, "zabkeeper_sessions") >= 1.0);
    assert!(metric(&after, "zabkeeper_connections") >= 1.0);
    assert!(metric(&after, "zabkeeper_fsync_total") > fsyncs0);
    assert!(metric(&after, "zabkeeper_fsync_records_total") >= 20.0);
    assert!(metric(&after, "zabkeeper_fsync_batch_max") >= 1.0);
    assert!(metric(&after, "zabkeeper_fsync_latency_seconds_count") > fsyncs0);
    assert!(metric(&after, "zabkeeper_commit_latency_seconds_count") >= 21.0);
    assert_eq!(metric(&after, "zabkeeper_proposals_in_flight"), 0.0);
    assert_eq!(metric(&after, "zabkeeper_outstanding_requests"), 0.0);
    assert!(metric(&after, "zabkeeper_last_zxid") > metric(&before, "zabkeeper_last_zxid"));

    // The snapshot command writes one now; the snapshot metrics follow.
    let v = admin_json(admin, "/commands/snapshot");
    assert_eq!(v["error"], serde_json::Value::Null);
    assert!(v["zxid"].as_i64().unwrap() >= metric(&after, "zabkeeper_last_zxid") as i64);
    let snap = scrape();
    assert_eq!(metric(&snap, "zabkeeper_snapshots_total"), 1.0);
    assert!(metric(&snap, "zabkeeper_snapshot_bytes") > 200.0);
    assert_eq!(metric(&snap, "zabkeeper_snapshot_seconds_count"), 1.0);
    let files = std::fs::read_dir(s.dir.join("snapshot")).unwrap().count();
    assert_eq!(files, 1, "the snapshot file is on disk");

    let (status, _) = http_get(admin, "/commands/no_such_thing");
    assert_eq!(status, 404);
    let (status, _) = http_get(admin, "/nowhere");
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_off_by_flag_and_config_refused_with_key() {
    // --admin-port 0 (the harness default): nothing listens on an admin port.
    let s = ServerProcess::start(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .args(["--admin-port", &s.addr.port().to_string(), "--zk-port", "0"])
        .args(["--port", &s.addr.port().to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`admin_port`"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .args(["--log-format", "xml", "--zk-port", "0", "--admin-port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`log_format`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .args([
            "--port",
            &port.to_string(),
            "--zk-port",
            "0",
            "--admin-port",
            "0",
        ])
        .args(["--log-format", "json", "--log-level", "info"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: a clean stop, so stderr ends.
    send_sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert!(
        text.contains("\"serving\"") || text.contains("serving"),
        "{text}"
    );
}

fn send_sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_answers_on_a_live_cluster() {
    let cluster = Cluster::start_with_admin(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(60)).await;
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let mut c = cluster.client(leader).await;
    for i in 0..5 {
        let (r, _) = c
            .call(create(&format!("/c{i}"), b"x", CreateMode::Persistent))
            .await;
        assert_eq!(r.error, 0);
    }
    c.call(exists("/c0", true)).await;
    let created_zxid = c.call(get("/c4", false)).await.0.zxid;

    let mut leaders_seen = Vec::new();
    for i in 0..3 {
        let admin = cluster.admin_addr(i);
        let list = admin_json(admin, "/commands");
        assert_eq!(list["commands"].as_array().unwrap().len(), 9);
        for name in [
            "ruok",
            "stat",
            "srvr",
            "conf",
            "cons",
            "leader",
            "voting_view",
            "wchs",
            "snapshot",
        ] {
            let v = admin_json(admin, &format!("/commands/{name}"));
            assert_eq!(v["command"], name, "member {i}: {v}");
            assert_eq!(v["error"], serde_json::Value::Null, "member {i}: {v}");
        }
        let srvr = admin_json(admin, "/commands/srvr");
        assert_eq!(srvr["server_id"], (i + 1) as u64);
        let role = srvr["server_state"].as_str().unwrap().to_string();
        assert!(role == "leading" || role == "following", "{srvr}");
        assert_eq!(role == "leading", i == leader);
        assert!(srvr["node_count"].as_u64().unwrap() >= 9, "{srvr}");
        let stat = admin_json(admin, "/commands/stat");
        assert!(stat["connections"].is_array());
        let conf = admin_json(admin, "/commands/conf");
        assert_eq!(conf["id"], (i + 1) as u64);
        assert_eq!(conf["admin_port"], cluster.admin_ports[i]);
        assert_eq!(conf["members"].as_array().unwrap().len(), 3);
        let view = admin_json(admin, "/commands/voting_view");
        let members = view["current_config"].as_object().unwrap();
        assert_eq!(members.len(), 3);
        assert_eq!(members["2"]["client_port"], cluster.client_ports[1]);
        let l = admin_json(admin, "/commands/leader");
        assert_eq!(l["is_leader"], i == leader);
        leaders_seen.push(l["leader_id"].as_u64().unwrap());
        let snap = admin_json(admin, "/commands/snapshot");
        assert!(snap["zxid"].as_i64().unwrap() >= created_zxid, "{snap}");
        let metrics = String::from_utf8(http_get(admin, "/metrics").1).unwrap();
        assert_eq!(
            metric(&metrics, &format!("zabkeeper_role{{role=\"{role}\"}}")),
            1.0
        );
        assert!(metric(&metrics, "zabkeeper_elections_total") >= 1.0);
        assert!(metric(&metrics, "zabkeeper_election_seconds_count") >= 1.0);
        assert!(metric(&metrics, "zabkeeper_snapshots_total") >= 1.0);
        assert!(metric(&metrics, "zabkeeper_epoch") >= 1.0);
    }
    assert!(
        leaders_seen.iter().all(|l| *l == (leader + 1) as u64),
        "every member names the leader: {leaders_seen:?}"
    );
    // The leader's connections and watches are those of our client.
    let admin = cluster.admin_addr(leader);
    let cons = admin_json(admin, "/commands/cons");
    let ours = format!("{:#x}", c.session_id);
    assert!(
        cons["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["session_id"] == ours.as_str()),
        "{cons}"
    );
    let wchs = admin_json(admin, "/commands/wchs");
    assert_eq!(wchs["num_total_watches"], 1);
    // Followers are tracked by lag on the leader once they have acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = String::from_utf8(http_get(admin, "/metrics").1).unwrap();
        let lags: Vec<f64> = (1..=3)
            .filter(|id| *id != leader + 1)
            .filter_map(|id| {
                text.lines().find_map(|l| {
                    l.strip_prefix(&format!(
                        "zabkeeper_follower_lag_txns{{follower=\"{id}\"}} "
                    ))?
                    .parse()
                    .ok()
                })
            })
            .collect();
        if lags.len() == 2 && lags.iter().all(|l| *l == 0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "follower lag: {lags:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A frozen follower falls behind by the txns committed without it, then catches up.
    let frozen = (leader + 1) % 3;
    let pid = cluster.members[frozen].as_ref().unwrap().child.id();
    let lag_of = |text: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!(
                "zabkeeper_follower_lag_txns{{follower=\"{}\"}} ",
                frozen + 1
            ))?
            .parse()
            .ok()
        })
    };
    signal(pid, "-STOP");
    for i in 0..20 {
        let (r, _) = c
            .call(create(&format!("/lag{i}"), b"x", CreateMode::Persistent))
            .await;
        assert_eq!(r.error, 0);
    }
    let mut seen = 0.0;
    let deadline = Instant::now() + Duration::from_secs(1);
    while seen < 20.0 && Instant::now() < deadline {
        let text = String::from_utf8(http_get(admin, "/metrics").1).unwrap();
        seen = lag_of(&text).unwrap_or(0.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(pid, "-CONT");
    assert!(seen >= 20.0, "lag of the frozen follower: {seen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = String::from_utf8(http_get(admin, "/metrics").1).unwrap();
        if lag_of(&text) == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the thawed follower's lag: {:?}",
            lag_of(&text)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The `message` of every JSON log line in `path` (non-JSON lines fail the test).
fn log_messages(path: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            let message = v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (message, v["fields"].clone())
        })
        .collect()
}

/// Waits until member `i`'s log has a line whose message starts with `prefix`;
/// returns its fields.
async fn wait_for_line(cluster: &Cluster, i: usize, prefix: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, fields)) = log_messages(&cluster.log_path(i))
            .into_iter()
            .find(|(m, _)| m.starts_with(prefix))
        {
            return fields;
        }
        assert!(
            Instant::now() < deadline,
            "member {i} never logged `{prefix}`; its log:\n{}",
            std::fs::read_to_string(cluster.log_path(i)).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count_lines(cluster: &Cluster, i: usize, prefix: &str) -> usize {
    log_messages(&cluster.log_path(i))
        .iter()
        .filter(|(m, _)| m.starts_with(prefix))
        .count()
}

/// One log line per election (started, ended), session expiry, member joining and
/// leaving, snapshot and purge, in the JSON format, on a live 3-member cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_tell_elections_expiries_members_snapshots_and_purges() {
    let mut cluster = Cluster::start_logged(
        3,
        &[
            "--log-format",
            "json",
            "--snap-count",
            "10",
            "--snap-retain",
            "1",
        ],
    );
    cluster.wait_all_serving(Duration::from_secs(60)).await;
    let leader = cluster.leader(Duration::from_secs(30)).await;
    for i in 0..3 {
        wait_for_line(&cluster, i, "election started").await;
        let ended = wait_for_line(&cluster, i, "election ended").await;
        assert_eq!(ended["leader"], i == leader, "member {i}: {ended}");
        assert_eq!(
            ended["leader_id"],
            (leader + 1) as u64,
            "member {i}: {ended}"
        );
    }
    // A session abandoned without closing expires on the leader after its timeout.
    let abandoned = RawClient::connect_with(
        cluster.addr(leader),
        zabkeeper_proto::wire::ConnectRequest {
            timeout_ms: 4000,
            ..Default::default()
        },
    )
    .await
    .expect("session");
    let session = format!("{:#x}", abandoned.session_id);
    drop(abandoned);
    // Writes past snap_count: snapshots, and with snap_retain 1 the older ones purged.
    let mut c = cluster.client(leader).await;
    for i in 0..35 {
        let (r, _) = c
            .call(create(&format!("/n{i}"), b"x", CreateMode::Persistent))
            .await;
        assert_eq!(r.error, 0);
    }
    for i in 0..3 {
        let snap = wait_for_line(&cluster, i, "snapshot taken").await;
        assert!(snap["bytes"].as_u64().unwrap() > 0, "member {i}: {snap}");
        wait_for_line(&cluster, i, "purged old snapshots").await;
    }
    let expired = wait_for_line(&cluster, leader, "session expired").await;
    assert_eq!(expired["session"], session.as_str(), "{expired}");
    // A follower killed and brought back: the leader logs it leaving and joining.
    let follower = (leader + 1) % 3;
    let joined_before = count_lines(&cluster, leader, "member joined");
    cluster.kill9(follower);
    let left = wait_for_line(&cluster, leader, "member left").await;
    assert_eq!(left["member"], (follower + 1) as u64, "{left}");
    cluster.start_member(follower);
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_lines(&cluster, leader, "member joined") == joined_before {
        assert!(
            Instant::now() < deadline,
            "the restarted follower's join was not logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The restarted member logged its own election into the same file.
    assert!(count_lines(&cluster, follower, "election ended") >= 2);
}

/// RUST_LOG wins over `log_level`, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_overrides_the_configured_level() {
    for (rust_log, level, want_info) in [("info", "warn", true), ("warn", "info", false)] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let server = ServerProcess::start_logged(
            &dir.path().join("data"),
            free_port(),
            &["--log-format", "json", "--log-level", level],
            &[("RUST_LOG", rust_log)],
            &log,
        );
        let mut c = RawClient::connect(server.addr).await;
        c.call(create("/x", b"x", CreateMode::Persistent)).await;
        drop(server);
        let lines = log_messages(&log).len();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text.contains("\"level\":\"INFO\""),
            want_info,
            "RUST_LOG={rust_log} --log-level {level} ({lines} lines):\n{text}"
        );
    }
}
