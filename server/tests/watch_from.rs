//! Watches that miss nothing, on real loopback servers: a watch opened from a zxid
//! gets exactly the changes after it, in zxid order, with their Stat and data,
//! across the kill of its member (the session moves and the watch resumes from the
//! last change it delivered), checked against the zxids the writers were
//! acknowledged; a watch from further back than the member's history is told so.

mod common;

use common::*;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use zabkeeper_client::{ChangeStream, Client, ConnectOptions, CreateMode, Error, EventType};

fn opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// Next event of the stream within a generous bound.
async fn next(s: &mut ChangeStream) -> Result<zabkeeper_client::ChangeEvent, Error> {
    tokio::time::timeout(Duration::from_secs(30), s.next())
        .await
        .expect("an event within 30 s")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_zxid_gets_every_later_change_once_in_order_across_a_member_kill() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let doomed = (leader + 1) % 3;
    let spare = (leader + 2) % 3;
    let all: String = (0..3)
        .map(|i| cluster.addr(i).to_string())
        .collect::<Vec<_>>()
        .join(",");

    // Writers on the members that stay up; the watcher on the one that will die.
    let w1 = Client::connect(&cluster.addr(leader).to_string(), opts())
        .await
        .unwrap();
    let w2 = Client::connect(&cluster.addr(spare).to_string(), opts())
        .await
        .unwrap();
    let (_, root) = w1
        .create_with(
            "/w",
            "",
            zabkeeper_client::CreateOptions::new(CreateMode::Persistent),
        )
        .await
        .unwrap();
    let from = root.czxid;
    // acked zxid -> (path, data) of every change after `from`.
    let mut acked: BTreeMap<i64, (String, Vec<u8>)> = BTreeMap::new();
    for i in 0..5 {
        let path = format!("/w/pre{i}");
        let (_, st) = w2
            .create_with(
                &path,
                format!("p{i}"),
                zabkeeper_client::CreateOptions::new(CreateMode::Persistent),
            )
            .await
            .unwrap();
        acked.insert(st.czxid, (path, format!("p{i}").into_bytes()));
    }

    let watcher = loop {
        let c = Client::connect(&all, opts()).await.unwrap();
        if c.connected_server() == Some(cluster.addr(doomed).to_string()) {
            break c;
        }
        c.close().await.unwrap();
    };
    let mut stream = watcher.watch_from("/w", from, true, true).await.unwrap();

    let write = |c: Client, tag: &'static str| async move {
        let mut mine = Vec::new();
        for i in 0..30 {
            let path = format!("/w/{tag}{}", i % 5);
            let data = format!("{tag}-{i}");
            if i < 5 {
                let (_, st) = c
                    .create_with(
                        &path,
                        data.clone(),
                        zabkeeper_client::CreateOptions::new(CreateMode::Persistent),
                    )
                    .await
                    .unwrap();
                mine.push((st.czxid, path, data.into_bytes()));
            } else {
                let st = c.set_data(&path, data.clone(), None).await.unwrap();
                mine.push((st.mzxid, path, data.into_bytes()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        mine
    };
    let t1 = tokio::spawn(write(w1.clone(), "a"));
    let t2 = tokio::spawn(write(w2.clone(), "b"));

    // Some events arrive, then the watcher's member is killed mid-stream.
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(next(&mut stream).await.unwrap());
    }
    cluster.kill9(doomed);
    for (z, p, d) in t1.await.unwrap().into_iter().chain(t2.await.unwrap()) {
        acked.insert(z, (p, d));
    }
    let last = *acked.keys().last().unwrap();
    while seen.last().map(|e| e.zxid) != Some(last) {
        seen.push(next(&mut stream).await.unwrap());
    }
    assert_ne!(
        watcher.connected_server(),
        Some(cluster.addr(doomed).to_string()),
        "the session moved"
    );

    // Exactly the acknowledged changes, in zxid order, each once, with its data.
    let got: Vec<i64> = seen.iter().map(|e| e.zxid).collect();
    let want: Vec<i64> = acked.keys().copied().collect();
    assert_eq!(got, want);
    for e in &seen {
        let (path, data) = &acked[&e.zxid];
        assert_eq!(&e.path, path);
        assert_eq!(e.data.as_deref(), Some(&data[..]), "data at {:#x}", e.zxid);
        let stat = e.stat.expect("a stat");
        assert_eq!(stat.mzxid, e.zxid);
        let kind = if stat.czxid == e.zxid {
            EventType::NodeCreated
        } else {
            EventType::NodeDataChanged
        };
        assert_eq!(e.event_type, kind);
    }
    // Nothing more is pending.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_beyond_the_history_is_told_plainly() {
    let server = ServerProcess::start(&["--watch-history", "4"]);
    let c = Client::connect(&server.addr.to_string(), opts())
        .await
        .unwrap();
    let (_, st) = c
        .create_with(
            "/h",
            "",
            zabkeeper_client::CreateOptions::new(CreateMode::Persistent),
        )
        .await
        .unwrap();
    let created = st.czxid;
    let mut zxids = Vec::new();
    for i in 0..10 {
        zxids.push(c.set_data("/h", format!("{i}"), None).await.unwrap().mzxid);
    }
    // Ten changes later, four are kept: the creation is out of reach.
    assert_eq!(
        c.watch_from("/h", created, false, false).await.err(),
        Some(Error::WatchHistoryGone)
    );
    // From the seventh change: the last three, then live changes.
    let mut s = c.watch_from("/h", zxids[6], false, true).await.unwrap();
    for (i, z) in zxids.iter().enumerate().skip(7) {
        let e = next(&mut s).await.unwrap();
        assert_eq!((e.zxid, e.event_type), (*z, EventType::NodeDataChanged));
        assert_eq!(e.data.as_deref(), Some(format!("{i}").as_bytes()));
    }
    let live = c.set_data("/h", "live", None).await.unwrap().mzxid;
    let e = next(&mut s).await.unwrap();
    assert_eq!((e.zxid, e.data.as_deref()), (live, Some(&b"live"[..])));
    // A zxid the member has not reached yet is refused.
    assert_eq!(
        c.watch_from("/h", live + 1000, false, false).await.err(),
        Some(Error::Other(zabkeeper_client::ErrorCode::NotCaughtUp))
    );
}
