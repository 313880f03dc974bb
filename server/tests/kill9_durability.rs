//! `kill -9` during a write load loses no acknowledged write.
//!
//! Several clients pipeline creates; every create the server acknowledged is
//! recorded. The server is killed with SIGKILL at an arbitrary moment, restarted on
//! the same data directory, and every acknowledged node must be there with its
//! data. Three rounds on the same directory, so recovery also runs over logs that
//! earlier crashes cut.

mod common;

use common::{create, RawClient, ServerProcess};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zabkeeper_proto::wire::{self, request::Op, server_frame::Kind};

async fn writer(
    addr: std::net::SocketAddr,
    id: usize,
    round: usize,
    acked: Arc<Mutex<Vec<String>>>,
) {
    let Ok(mut c) = RawClient::connect_with(
        addr,
        wire::ConnectRequest {
            timeout_ms: 10_000,
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let mut in_flight: HashMap<i32, String> = HashMap::new();
    let mut i = 0u64;
    loop {
        while in_flight.len() < 16 {
            let path = format!("/r{round}-c{id}-{i}");
            i += 1;
            let data = path.as_bytes().to_vec();
            let xid = c
                .send(create(&path, &data, wire::CreateMode::Persistent))
                .await;
            in_flight.insert(xid, path);
        }
        match c.recv().await {
            Some(Kind::Response(r)) => {
                let path = in_flight.remove(&r.xid).expect("known xid");
                if r.error == 0 {
                    acked.lock().unwrap().push(path);
                }
            }
            Some(_) => {}
            None => return, // server died
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_write_load_loses_no_acknowledged_write() {
    let mut server = ServerProcess::start(&["--snap-count", "2000"]);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    for round in 0..3 {
        let tasks: Vec<_> = (0..4)
            .map(|id| tokio::spawn(writer(server.addr, id, round, acked.clone())))
            .collect();
        // Let the load run for a while, then pull the plug mid-stream.
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        server.kill9();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let before = acked.lock().unwrap().len();
        assert!(
            before > 100 * (round + 1),
            "load too small to mean anything: {before}"
        );
        server.restart9();

        let mut c = RawClient::connect(server.addr).await;
        let paths = acked.lock().unwrap().clone();
        for chunk in paths.chunks(256) {
            let mut xids = HashMap::new();
            for p in chunk {
                let xid = c
                    .send(Op::GetData(wire::PathWatchRequest {
                        path: p.clone(),
                        watch: false,
                    }))
                    .await;
                xids.insert(xid, p.clone());
            }
            while !xids.is_empty() {
                match c.recv().await {
                    Some(Kind::Response(r)) => {
                        let p = xids.remove(&r.xid).unwrap();
                        assert_eq!(
                            r.error, 0,
                            "acknowledged node {p} lost after kill -9 (round {round})"
                        );
                        match r.result {
                            Some(wire::response::Result::GetData(d)) => {
                                assert_eq!(&d.data[..], p.as_bytes())
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        eprintln!(
            "round {round}: {} acknowledged writes all present",
            paths.len()
        );
    }
}

/// Recovery reads the log after the newest snapshot while that snapshot loads; when
/// the newest snapshot proves corrupt, the older one is loaded and the log is read
/// again from there: nothing acknowledged is lost either way (standalone and member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_newest_snapshot_falls_back_to_the_older_one_and_the_log() {
    let mut s = ServerProcess::start(&["--snap-count", "10", "--snap-retain", "3"]);
    let mut c = RawClient::connect(s.addr).await;
    for i in 0..45 {
        let (r, _) = c
            .call(create(
                &format!("/n{i}"),
                format!("v{i}").as_bytes(),
                wire::CreateMode::Persistent,
            ))
            .await;
        assert_eq!(r.error, 0);
    }
    drop(c);
    s.kill9();
    let snap_dir = s.dir.join("snapshot");
    let mut snaps: Vec<_> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .collect();
    snaps.sort();
    assert!(snaps.len() >= 2, "snapshots: {snaps:?}");
    let newest = snaps.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(newest, bytes).unwrap();
    s.restart9();
    let mut c = RawClient::connect(s.addr).await;
    for i in 0..45 {
        let (r, _) = c.call(common::get(&format!("/n{i}"), false)).await;
        assert_eq!(
            r.error, 0,
            "/n{i} lost after falling back to an older snapshot"
        );
    }
}
