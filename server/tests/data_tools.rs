//! The `zabkeeper` data tools against real data directories and real processes:
//! verify (and its corruption reports), dump-log / dump-snapshot, export/import,
//! and backup under write load restored into a fresh 3-member ensemble.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zabkeeper_proto::wire::CreateMode;
use zabkeeper_server::tools::datadir::{scan_segment, segment_files, snapshot_files};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zabkeeper"))
        .args(args)
        .output()
        .expect("run zabkeeper")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn flip(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).unwrap();
}

/// A stopped standalone server's data directory holding /n0../n{count-1}.
async fn data_dir_with(count: usize, extra: &[&str]) -> ServerProcess {
    let mut s = ServerProcess::start(extra);
    let mut c = RawClient::connect(s.addr).await;
    for i in 0..count {
        let (r, _) = c
            .call(create(
                &format!("/n{i}"),
                format!("value {i}").as_bytes(),
                CreateMode::Persistent,
            ))
            .await;
        assert_eq!(r.error, 0);
    }
    drop(c);
    s.kill9();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_corrupted_log_and_snapshot_with_file_and_offset() {
    // snap-count 10: some snapshots, and a log after the newest.
    let s = data_dir_with(40, &["--snap-count", "10", "--snap-retain", "10"]).await;
    let dir = s.dir.to_str().unwrap();
    let out = tool(&["verify", dir]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("OK: every checksum matches"),
        "{}",
        text(&out)
    );

    // dump-log and dump-snapshot print readable contents.
    let out = tool(&["dump-log", dir]);
    assert!(out.status.success(), "{}", text(&out));
    let dump = text(&out);
    assert!(dump.contains("Create { path: \"/n39\""), "{dump}");
    let out = tool(&["dump-snapshot", dir]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\n/n0\n"), "{}", text(&out));
    assert!(text(&out).contains("data \"value 0\""), "{}", text(&out));

    // A flipped byte inside a record that valid records follow: corruption, located.
    let segments = segment_files(&s.dir.join("log")).unwrap();
    let (_, seg) = segments.last().unwrap();
    let scan = scan_segment(seg).unwrap();
    assert!(scan.records.len() >= 3, "{} records", scan.records.len());
    let victim = scan.records[scan.records.len() / 2].offset;
    flip(seg, victim + 20);
    let out = tool(&["verify", dir]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = text(&out);
    let expected = format!("CORRUPT {} at offset {victim}: crc mismatch", seg.display());
    assert!(report.contains(&expected), "want `{expected}` in\n{report}");
    assert!(!report.contains("torn tail"), "{report}");

    // A flipped byte in a snapshot: reported with the snapshot's file name.
    let snaps = snapshot_files(&s.dir.join("snapshot")).unwrap();
    let (_, snap) = &snaps[0];
    flip(snap, 100);
    let out = tool(&["verify", dir]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    let size = std::fs::metadata(snap).unwrap().len();
    let expected = format!(
        "CORRUPT {} at offset {}: crc mismatch",
        snap.display(),
        size - 4
    );
    assert!(report.contains(&expected), "want `{expected}` in\n{report}");
    assert!(report.contains("FAILED: 2 problem(s)"), "{report}");

    // A missing directory is an error of its own (exit 2), not a pass.
    let out = tool(&["verify", "/nonexistent/zabkeeper"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_into_a_fresh_data_dir() {
    let s = data_dir_with(25, &["--snap-count", "10"]).await;
    let out = tool(&["export", s.dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 25);
    assert_eq!(nodes[0]["kind"], "persistent");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("tree.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let fresh = tmp.path().join("fresh");
    let out = tool(&["import", file.to_str().unwrap(), fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("imported 25 nodes"), "{}", text(&out));
    // Importing over existing data is refused.
    let out = tool(&["import", file.to_str().unwrap(), s.dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    let out = tool(&["verify", fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let port = free_port();
    let server = ServerProcess::start_in(&fresh, port, &[]);
    let mut c = RawClient::connect(server.addr).await;
    for i in [0, 13, 24] {
        let (r, _) = c.call(get(&format!("/n{i}"), false)).await;
        assert_eq!(r.error, 0, "/n{i}");
        match r.result {
            Some(zabkeeper_proto::wire::response::Result::GetData(d)) => {
                assert_eq!(d.data.as_ref(), format!("value {i}").as_bytes())
            }
            other => panic!("{other:?}"),
        }
    }
    let (r, _) = c.call(create("/new", b"", CreateMode::Persistent)).await;
    assert_eq!(r.error, 0, "the imported server takes writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_write_load_restores_into_a_fresh_ensemble() {
    let cluster = Cluster::start_with_admin(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(60)).await;
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    {
        let mut c = cluster.client(leader).await;
        let (r, _) = c.call(create("/w", b"", CreateMode::Persistent)).await;
        assert_eq!(r.error, 0);
    }

    // Writers on every member, each recording when each create was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut c = cluster.client(w % 3).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/w/{w}-{i}");
                let Some(r) = c
                    .try_call(create(&path, path.as_bytes(), CreateMode::Persistent))
                    .await
                else {
                    break;
                };
                if r.error == 0 {
                    acked.push((path, Instant::now()));
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The backup begins now, from a follower, while the writers go on.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("backup.zk");
    let began = Instant::now();
    let out = {
        let addr = cluster.admin_addr(follower).to_string();
        let file = file.clone();
        tokio::task::spawn_blocking(move || tool(&["backup", &addr, file.to_str().unwrap()]))
            .await
            .unwrap()
    };
    assert!(out.status.success(), "{}", text(&out));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut before = Vec::new();
    let mut after = 0;
    for w in writers {
        for (path, at) in w.await.unwrap() {
            if at < began {
                before.push(path);
            } else {
                after += 1;
            }
        }
    }
    assert!(
        before.len() >= 20,
        "only {} writes before the backup",
        before.len()
    );
    assert!(after > 0, "the writers kept going during the backup");

    // A new ensemble (new ports, new directories), every member restored from the file.
    let fresh = Cluster::prepare(3, &[], true);
    for d in &fresh.dirs {
        let out = tool(&["restore", file.to_str().unwrap(), d.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    drop(cluster);
    let mut fresh = fresh;
    for i in 0..3 {
        fresh.start_member(i);
    }
    fresh.wait_all_serving(Duration::from_secs(60)).await;
    let new_leader = fresh.leader(Duration::from_secs(30)).await;
    let mut c = fresh.client(new_leader).await;
    for path in &before {
        let (r, _) = c.call(get(path, false)).await;
        assert_eq!(
            r.error, 0,
            "{path} was acknowledged before the backup began"
        );
    }
    // Every member holds them, and the new ensemble takes writes in a later epoch.
    for i in 0..3 {
        let mut m = fresh.client(i).await;
        let (r, _) = m.call(get(before.last().unwrap(), false)).await;
        assert_eq!(r.error, 0, "member {i}");
    }
    let (r, _) = c
        .call(create("/after-restore", b"", CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let srvr = admin_json(fresh.admin_addr(new_leader), "/commands/srvr");
    assert!(srvr["epoch"].as_u64().unwrap() >= 2, "{srvr}");

    // export from a running member's admin address holds the same nodes; the backup
    // file itself reads with dump-snapshot.
    let addr = fresh.admin_addr((new_leader + 1) % 3).to_string();
    let out = tokio::task::spawn_blocking(move || tool(&["export", &addr]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: std::collections::HashSet<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains("/after-restore"));
    assert!(before.iter().all(|p| paths.contains(p.as_str())));
    let out = tool(&["dump-snapshot", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("\n{}\n", before[0])),
        "{}",
        text(&out)
    );
}
