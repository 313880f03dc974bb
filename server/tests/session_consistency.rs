//! The session guarantees a client relies on, on real loopback ensembles:
//! FIFO per session, read-your-writes on a follower right after a write it
//! forwarded, monotonic reads when a session moves to a member that is behind
//! (it catches up or refuses with NotCaughtUp, never serves older state), and
//! `sync`.

mod common;

use common::*;
use std::time::{Duration, Instant};
use zabkeeper_proto::wire::{self, request::Op, response::Result as R, server_frame::Kind};
use zabkeeper_proto::ErrorCode;

fn sync(path: &str) -> Op {
    Op::Sync(wire::PathRequest { path: path.into() })
}

fn data_of(r: &wire::Response) -> Vec<u8> {
    match &r.result {
        Some(R::GetData(d)) => d.data.to_vec(),
        other => panic!("no data in {other:?} (error {})", r.error),
    }
}

/// Pauses (SIGSTOP) or resumes (SIGCONT) a member's process.
fn signal(cluster: &Cluster, i: usize, sig: i32) {
    let pid = cluster.members[i].as_ref().expect("member running").pid();
    // SAFETY: plain kill(2) on a child process we own.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

async fn ready_cluster() -> (Cluster, usize) {
    let cluster = Cluster::start(3, &[]);
    let leader = cluster.leader(Duration::from_secs(20)).await;
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    (cluster, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_on_a_follower_are_answered_in_order_and_reads_see_earlier_writes() {
    let (cluster, leader) = ready_cluster().await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(follower).await;
    let (r, _) = c
        .call(create("/fifo", b"v0", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    // Everything pipelined without waiting: writes are forwarded to the leader,
    // reads are served locally, yet every read sees the write sent just before it.
    let mut expected = Vec::new();
    for i in 1..=200 {
        let value = format!("v{i}");
        let w = c.send(set("/fifo", value.as_bytes(), -1)).await;
        let g = c.send(get("/fifo", false)).await;
        expected.push((w, None));
        expected.push((g, Some(value)));
    }
    let mut last_zxid = 0;
    for (xid, want) in expected {
        let r = match c.recv().await {
            Some(Kind::Response(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r.xid, xid, "answers come in request order");
        assert_eq!(r.error, 0);
        assert!(r.zxid >= last_zxid, "zxids never go back in a session");
        last_zxid = r.zxid;
        if let Some(v) = want {
            assert_eq!(data_of(&r), v.into_bytes(), "read sees the write before it");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_its_own_forwarded_write_at_once() {
    let (cluster, leader) = ready_cluster().await;
    for follower in [(leader + 1) % 3, (leader + 2) % 3] {
        let mut c = cluster.client(follower).await;
        for i in 0..100 {
            let path = format!("/ryw{follower}-{i}");
            let (r, _) = c
                .call(create(&path, b"mine", wire::CreateMode::Persistent))
                .await;
            assert_eq!(r.error, 0);
            let (r, _) = c.call(get(&path, false)).await;
            assert_eq!(data_of(&r), b"mine", "{path} on member {follower}");
            let (r, _) = c.call(set(&path, b"again", 0)).await;
            assert_eq!(r.error, 0);
            let (r, _) = c.call(get(&path, false)).await;
            assert_eq!(data_of(&r), b"again");
            assert_eq!(stat_of(&r).version, 1);
        }
    }
}

/// Writes `n` values of `path` through `c` and returns the zxid of the last answer.
async fn write_values(c: &mut RawClient, path: &str, from: usize, n: usize) -> i64 {
    let mut zxid = 0;
    for i in from..from + n {
        let (r, _) = c.call(set(path, format!("{i}").as_bytes(), -1)).await;
        assert_eq!(r.error, 0);
        zxid = r.zxid;
    }
    zxid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moving_to_a_member_behind_it_never_reads_older_state() {
    let (cluster, leader) = ready_cluster().await;
    let lagging = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    let (r, _) = c
        .call(create("/mono", b"0", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let mut next = 1;
    for round in 0..4 {
        // The lagging member is frozen while the majority commits more writes.
        signal(&cluster, lagging, libc::SIGSTOP);
        let seen = write_values(&mut c, "/mono", next, 50).await;
        next += 50;
        let latest = format!("{}", next - 1).into_bytes();
        signal(&cluster, lagging, libc::SIGCONT);
        // The session moves there at once, presenting the zxid it has seen.
        let resume = wire::ConnectRequest {
            session_id: c.session_id,
            password: c.password.clone().into(),
            timeout_ms: 10_000,
            last_zxid_seen: seen,
            ..Default::default()
        };
        match RawClient::try_connect_with(cluster.addr(lagging), resume).await {
            Some(Ok(mut moved)) => {
                let (r, _) = moved.call(get("/mono", false)).await;
                assert!(r.zxid >= seen, "round {round}: answer older than seen");
                assert_eq!(data_of(&r), latest, "round {round}: stale read");
            }
            Some(Err(resp)) => assert!(
                [ErrorCode::NotCaughtUp.code(), ErrorCode::NoLeader.code()].contains(&resp.error),
                "round {round}: refused with {resp:?}"
            ),
            None => {} // the member dropped the connection (e.g. it went looking)
        }
        // Back on the leader (the move above may have taken the session away).
        c = cluster.client(leader).await;
        cluster.wait_all_serving(Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_waits_for_the_clients_zxid_or_refuses_with_not_caught_up() {
    let (cluster, leader) = ready_cluster().await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(leader).await;
    let (r, _) = c
        .call(create("/wait", b"0", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let seen = r.zxid;
    // A client that has seen a zxid nobody has yet (it will exist in a moment):
    // the member waits for it instead of serving older state.
    let connect = tokio::spawn({
        let addr = cluster.addr(follower);
        async move {
            RawClient::try_connect_with(
                addr,
                wire::ConnectRequest {
                    timeout_ms: 10_000,
                    last_zxid_seen: seen + 1,
                    ..Default::default()
                },
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (r, _) = c.call(set("/wait", b"1", -1)).await;
    assert_eq!(r.error, 0);
    assert_eq!(r.zxid, seen + 1, "the next txn has the awaited zxid");
    let mut moved = connect
        .await
        .unwrap()
        .expect("connection")
        .expect("the member caught up within its wait");
    let (r, _) = moved.call(get("/wait", false)).await;
    assert_eq!(data_of(&r), b"1");
    // A zxid far ahead of the ensemble: refused after the bounded wait.
    let started = Instant::now();
    let refused = RawClient::try_connect_with(
        cluster.addr(follower),
        wire::ConnectRequest {
            timeout_ms: 10_000,
            last_zxid_seen: seen + 1_000_000,
            ..Default::default()
        },
    )
    .await
    .expect("an answer");
    match refused {
        Err(resp) => {
            assert_eq!(resp.error, ErrorCode::NotCaughtUp.code(), "{resp:?}");
            assert!(!resp.message.is_empty());
        }
        Ok(_) => panic!("a member behind the client served it"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_on_a_follower_sees_every_write_committed_before_it() {
    let (cluster, leader) = ready_cluster().await;
    let mut w = cluster.client(leader).await;
    let mut readers = Vec::new();
    for f in [(leader + 1) % 3, (leader + 2) % 3] {
        readers.push(cluster.client(f).await);
    }
    let (r, _) = w
        .call(create("/synced", b"0", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    for i in 1..=100 {
        let (r, _) = w.call(set("/synced", format!("{i}").as_bytes(), -1)).await;
        assert_eq!(r.error, 0);
        let committed = r.zxid;
        for reader in readers.iter_mut() {
            let (s, _) = reader.call(sync("/synced")).await;
            assert_eq!(s.error, 0);
            assert!(s.zxid >= committed, "sync answered before catching up");
            let (r, _) = reader.call(get("/synced", false)).await;
            assert_eq!(data_of(&r), format!("{i}").into_bytes());
        }
    }
}

async fn linearizable_get(c: &mut RawClient, path: &str) -> wire::Response {
    let xid = c
        .send_with(get(path, false), wire::Consistency::Linearizable)
        .await;
    loop {
        match c.recv().await {
            Some(Kind::Response(r)) if r.xid == xid => return r,
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_on_every_member_see_every_completed_write() {
    let (cluster, leader) = ready_cluster().await;
    let mut w = cluster.client(leader).await;
    let mut readers = Vec::new();
    for i in 0..3 {
        readers.push(cluster.client(i).await);
    }
    let (r, _) = w
        .call(create("/lin", b"0", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    for i in 1..=50 {
        let (r, _) = w.call(set("/lin", format!("{i}").as_bytes(), -1)).await;
        assert_eq!(r.error, 0);
        // Other sessions, no sync: the read index alone makes them see the write.
        for reader in readers.iter_mut() {
            let r = linearizable_get(reader, "/lin").await;
            assert_eq!(data_of(&r), format!("{i}").into_bytes());
        }
    }
    // Pipelined: a linearizable read between two writes of its session sees the
    // first and not the second.
    let c = &mut readers[(leader + 1) % 3];
    let w1 = c.send(set("/lin", b"a", -1)).await;
    let r1 = c
        .send_with(get("/lin", false), wire::Consistency::Linearizable)
        .await;
    let w2 = c.send(set("/lin", b"b", -1)).await;
    for (xid, want) in [(w1, None), (r1, Some(b"a")), (w2, None)] {
        let r = match c.recv().await {
            Some(Kind::Response(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!((r.xid, r.error), (xid, 0));
        if let Some(want) = want {
            assert_eq!(data_of(&r), want.to_vec());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_serves_linearizable_reads_directly() {
    let server = ServerProcess::start(&[]);
    let mut c = RawClient::connect(server.addr).await;
    let (r, _) = c
        .call(create("/solo", b"x", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let r = linearizable_get(&mut c, "/solo").await;
    assert_eq!(data_of(&r), b"x");
    let r = linearizable_get(&mut c, "/missing").await;
    assert_eq!(r.error, ErrorCode::NoNode.code());
}
