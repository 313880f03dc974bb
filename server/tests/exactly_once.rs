//! Exactly-once writes on real loopback ensembles: a numbered write retried after
//! its answer was lost gets the original result (a sequential create its original
//! name) and is applied once, through any member, after a session move and after
//! the leader that applied it is killed (`kill -9`). The answers are lost by a TCP
//! proxy in front of a member (`LossyProxy`), which drops the response and closes
//! the connection.

mod common;

use common::*;
use std::time::Duration;
use zabkeeper_client::{Client, ConnectOptions, CreateMode, Error, Op as COp, OpResult};
use zabkeeper_proto::wire::{self, response::Result as R};
use zabkeeper_proto::ErrorCode;

fn resume(c: &RawClient) -> wire::ConnectRequest {
    wire::ConnectRequest {
        timeout_ms: 10_000,
        session_id: c.session_id,
        password: c.password.clone().into(),
        ..Default::default()
    }
}

async fn children_on(c: &mut RawClient, path: &str) -> Vec<String> {
    let (r, _) = c.call(children(path, false)).await;
    match r.result {
        Some(R::GetChildren(g)) => g.children,
        other => panic!("no children of {path}: {other:?} (error {})", r.error),
    }
}

/// The member index that is not `a` nor `b`.
fn other(n: usize, a: usize, b: usize) -> usize {
    (0..n).find(|i| *i != a && *i != b).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numbered_write_sent_again_gets_its_original_result_through_any_member() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let follower = (leader + 1) % 3;
    let mut c = cluster.client(follower).await;
    assert_eq!(
        c.call(create("/eo", b"", wire::CreateMode::Persistent))
            .await
            .0
            .error,
        0
    );
    let seq = || create("/eo/n-", b"", wire::CreateMode::PersistentSequential);

    // Number 1, then the same number again: one node, the same name and Stat.
    let (first, _) = c.call_numbered(seq(), 1, 1).await;
    let (again, _) = c.call_numbered(seq(), 1, 1).await;
    assert_eq!(first.error, 0);
    assert_eq!(created_path(&again), created_path(&first));
    assert_eq!(stat_of(&again), stat_of(&first));
    let (second, _) = c.call_numbered(seq(), 2, 1).await;
    assert_ne!(created_path(&second), created_path(&first));

    // A refusal is recorded too: number 3 fails (NodeExists), number 4 deletes the
    // node, and number 3 sent again is still refused instead of creating it.
    let (r, _) = c
        .call(create("/eo/x", b"", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let (r, _) = c
        .call_numbered(create("/eo/x", b"", wire::CreateMode::Persistent), 3, 1)
        .await;
    assert_eq!(r.error, ErrorCode::NodeExists.code());
    let (r, _) = c.call_numbered(delete("/eo/x", -1), 4, 1).await;
    assert_eq!(r.error, 0);
    let (r, _) = c
        .call_numbered(create("/eo/x", b"", wire::CreateMode::Persistent), 3, 1)
        .await;
    assert_eq!(r.error, ErrorCode::NodeExists.code());

    // The session moves to another member: the same answers there (the table is
    // replicated), and its zxid has caught up, since the client saw it.
    let third = other(3, leader, follower);
    let req = resume(&c);
    drop(c);
    let mut c = connect_when_serving(cluster.addr(third), req.clone()).await;
    let (r, _) = c.call_numbered(seq(), 1, 1).await;
    assert_eq!(created_path(&r), created_path(&first));
    let (r, _) = c.call_numbered(seq(), 2, 1).await;
    assert_eq!(created_path(&r), created_path(&second));
    // And on the leader, which answers from its own table.
    drop(c);
    let mut c = connect_when_serving(cluster.addr(leader), req.clone()).await;
    let (r, _) = c.call_numbered(seq(), 2, 1).await;
    assert_eq!(created_path(&r), created_path(&second));
    let mut names = children_on(&mut c, "/eo").await;
    names.sort();
    assert_eq!(
        names,
        vec![
            created_path(&first).trim_start_matches("/eo/").to_string(),
            created_path(&second).trim_start_matches("/eo/").to_string(),
        ]
    );

    // Once the client says everything below 5 is answered, the results go, and a
    // number below 5 arriving now is a stale copy (a late forward, say): refused,
    // on the leader and through a follower, and it runs nowhere.
    let (r, _) = c.call_numbered(seq(), 5, 5).await;
    assert_eq!(r.error, 0);
    let (r, _) = c.call_numbered(seq(), 1, 5).await;
    assert_eq!(r.error, ErrorCode::BadArguments.code());
    drop(c);
    let req = resume_after(&cluster, leader, &req).await;
    let mut c = connect_when_serving(cluster.addr(follower), req).await;
    let (r, _) = c.call_numbered(seq(), 2, 5).await;
    assert_eq!(r.error, ErrorCode::BadArguments.code());
    assert_eq!(children_on(&mut c, "/eo").await.len(), 3);
}

/// `req` with the leader's last zxid as the one seen, so a follower takes it only
/// once it has caught up with everything the session did there.
async fn resume_after(
    cluster: &Cluster,
    leader: usize,
    req: &wire::ConnectRequest,
) -> wire::ConnectRequest {
    let mut probe = cluster.client(leader).await;
    let (r, _) = probe.call(get("/eo", false)).await;
    wire::ConnectRequest {
        last_zxid_seen: r.zxid,
        ..req.clone()
    }
}

async fn connect_when_serving(addr: std::net::SocketAddr, req: wire::ConnectRequest) -> RawClient {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match RawClient::try_connect_with(addr, req.clone()).await {
            Some(Ok(c)) => return c,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{addr} does not take the session: {:?}",
                    other.map(|r| r.err())
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

fn client_opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

/// Children of `path`, read by a fresh session on member `i` after a sync.
async fn children_via(cluster: &Cluster, i: usize, path: &str) -> Vec<String> {
    let zk = Client::connect(&cluster.addr(i).to_string(), client_opts())
        .await
        .unwrap();
    zk.sync(path).await.unwrap();
    let mut names = zk.get_children(path).await.unwrap();
    names.sort();
    zk.close().await.unwrap();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_whose_answers_are_lost_are_retried_by_the_client_and_applied_once() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let follower = (leader + 1) % 3;
    let proxy = LossyProxy::start(cluster.addr(follower)).await;
    let zk = Client::connect(&proxy.addr.to_string(), client_opts())
        .await
        .unwrap();
    zk.create("/lost", "", CreateMode::Persistent)
        .await
        .unwrap();

    // A sequential create: the retry returns the original name; one node exists.
    proxy.lose_next_response(false);
    let name = zk
        .create("/lost/n-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(proxy.dropped(), 1, "the answer was lost");
    assert_eq!(
        zk.get_children("/lost").await.unwrap(),
        vec![name.trim_start_matches("/lost/").to_string()]
    );

    // A conditional setData: run twice, the second would fail with BadVersion.
    proxy.lose_next_response(false);
    let stat = zk.set_data(&name, "v1", Some(0)).await.unwrap();
    assert_eq!(proxy.dropped(), 2);
    assert_eq!(stat.version, 1);

    // A multi: run twice, the second would fail with NodeExists.
    proxy.lose_next_response(false);
    let results = zk
        .multi(vec![
            COp::create("/lost/a", "", CreateMode::Persistent),
            COp::set_data(&name, "v2", Some(1)),
        ])
        .await
        .unwrap();
    assert_eq!(proxy.dropped(), 3);
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/lost/a"));

    // A delete: run twice, the second would fail with NoNode.
    proxy.lose_next_response(false);
    zk.delete("/lost/a", Some(0)).await.unwrap();
    assert_eq!(proxy.dropped(), 4);

    // A refused write stays refused.
    proxy.lose_next_response(false);
    assert_eq!(
        zk.create(&name, "", CreateMode::Persistent).await,
        Err(Error::NodeExists)
    );
    assert_eq!(proxy.dropped(), 5);

    let (data, stat) = zk.get_data(&name).await.unwrap();
    assert_eq!((&data[..], stat.version), (&b"v2"[..], 2));
    zk.close().await.unwrap();
    for i in 0..3 {
        assert_eq!(
            children_via(&cluster, i, "/lost").await,
            vec![name.trim_start_matches("/lost/").to_string()],
            "member {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_on_a_new_leader_after_the_old_one_is_killed() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let proxy = LossyProxy::start(cluster.addr(leader)).await;
    // The proxy (to the leader) first; the others are where the client goes next.
    let mut servers = vec![proxy.addr.to_string()];
    servers.extend(
        (0..3)
            .filter(|i| *i != leader)
            .map(|i| cluster.addr(i).to_string()),
    );
    let servers = servers.join(",");
    let opts = client_opts();
    // Connect through the proxy: retry until the shuffled list lands on it.
    let zk = loop {
        let zk = Client::connect(&servers, opts.clone()).await.unwrap();
        if zk.connected_server() == Some(proxy.addr.to_string()) {
            break zk;
        }
        zk.close().await.unwrap();
    };
    zk.create("/fo", "", CreateMode::Persistent).await.unwrap();
    zk.create("/fo/k", "", CreateMode::Persistent)
        .await
        .unwrap();

    proxy.lose_next_response(true);
    let create = tokio::spawn({
        let zk = zk.clone();
        async move {
            zk.create("/fo/n-", "", CreateMode::PersistentSequential)
                .await
        }
    });
    proxy.wait_dropped(1, Duration::from_secs(20)).await;
    cluster.kill9(leader);
    let name = create.await.unwrap().expect("the retry is answered");
    assert_ne!(zk.connected_server(), Some(proxy.addr.to_string()));
    let new_leader = cluster.leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);

    // The node exists once, with the name the client was given.
    let mut names = zk.get_children("/fo").await.unwrap();
    names.sort();
    assert_eq!(
        names,
        vec!["k".to_string(), name.trim_start_matches("/fo/").to_string()]
    );
    // The session carries on with the new leader.
    let stat = zk.set_data("/fo/k", "x", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    zk.close().await.unwrap();
    for i in (0..3).filter(|i| *i != leader) {
        assert_eq!(children_via(&cluster, i, "/fo").await, names, "member {i}");
    }
}
