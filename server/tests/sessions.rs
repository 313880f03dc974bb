//! Sessions: ephemerals vanish on close and on expiry (with their watches firing),
//! reconnect with id + password works, a wrong password or an expired session gets
//! a clear error, and sessions with their ephemerals survive a restart.

mod common;

use common::*;
use std::time::Duration;
use zabkeeper_proto::wire::{self, CreateMode};
use zabkeeper_proto::{ErrorCode, EventType};

fn resume(id: i64, password: &[u8], timeout_ms: i32) -> wire::ConnectRequest {
    wire::ConnectRequest {
        session_id: id,
        password: password.to_vec().into(),
        timeout_ms,
        ..Default::default()
    }
}

#[tokio::test]
async fn ephemerals_go_when_the_session_closes() {
    let server = ServerProcess::start(&[]);
    let mut owner = RawClient::connect(server.addr).await;
    let mut watcher = RawClient::connect(server.addr).await;
    let (r, _) = owner.call(create("/e", b"", CreateMode::Ephemeral)).await;
    assert_eq!(r.error, 0);
    assert_eq!(stat_of(&r).ephemeral_owner, owner.session_id);
    assert_eq!(
        owner
            .call(create("/e/child", b"", CreateMode::Persistent))
            .await
            .0
            .error,
        ErrorCode::NoChildrenForEphemerals.code()
    );
    assert_eq!(watcher.call(exists("/e", true)).await.0.error, 0);

    let (r, _) = owner
        .call(wire::request::Op::CloseSession(wire::Empty {}))
        .await;
    assert_eq!(r.error, 0);
    assert!(
        owner.recv().await.is_none(),
        "connection closes after closeSession"
    );

    let ev = watcher.events_for(Duration::from_millis(300)).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].r#type, ev[0].path.as_str()),
        (EventType::NodeDeleted as i32, "/e")
    );
    assert_eq!(
        watcher.call(exists("/e", false)).await.0.error,
        ErrorCode::NoNode.code()
    );

    // The closed session cannot be resumed.
    let err = RawClient::connect_with(
        server.addr,
        resume(owner.session_id, &owner.password, 10_000),
    )
    .await
    .err()
    .expect("closed session refused");
    assert_eq!(err.error, ErrorCode::SessionExpired.code());
}

#[tokio::test]
async fn ephemerals_go_when_the_session_expires() {
    // tick 100 ms: timeouts are negotiated into [200, 2000] ms.
    let server = ServerProcess::start(&["--tick-ms", "100"]);
    let owner = RawClient::connect_with(
        server.addr,
        wire::ConnectRequest {
            timeout_ms: 300,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut owner = owner;
    for i in 0..3 {
        assert_eq!(
            owner
                .call(create(&format!("/x{i}"), b"", CreateMode::Ephemeral))
                .await
                .0
                .error,
            0
        );
    }
    let mut watcher = RawClient::connect(server.addr).await;
    for i in 0..3 {
        assert_eq!(
            watcher.call(exists(&format!("/x{i}"), true)).await.0.error,
            0
        );
    }
    // While the owner pings, the session lives well past its timeout.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(owner.call(ping()).await.0.error, 0);
    }
    assert_eq!(watcher.call(exists("/x0", false)).await.0.error, 0);
    let (id, password) = (owner.session_id, owner.password.clone());
    drop(owner); // the client vanishes without closing

    let mut ev = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ev.len() < 3 && std::time::Instant::now() < deadline {
        ev.extend(watcher.events_for(Duration::from_millis(100)).await);
    }
    let mut deleted: Vec<_> = ev.iter().map(|e| (e.r#type, e.path.clone())).collect();
    deleted.sort();
    let want: Vec<_> = (0..3)
        .map(|i| (EventType::NodeDeleted as i32, format!("/x{i}")))
        .collect();
    assert_eq!(deleted, want);
    // All three went in one txn: one zxid.
    assert!(
        ev.iter().all(|e| e.zxid == ev[0].zxid),
        "ephemerals removed atomically: {ev:?}"
    );

    let err = RawClient::connect_with(server.addr, resume(id, &password, 300))
        .await
        .err()
        .expect("expired");
    assert_eq!(err.error, ErrorCode::SessionExpired.code());
}

#[tokio::test]
async fn reconnect_with_id_and_password_and_refuse_a_wrong_password() {
    let server = ServerProcess::start(&[]);
    let mut first = RawClient::connect(server.addr).await;
    first
        .call(create("/mine", b"", CreateMode::Ephemeral))
        .await;

    let mut bad = first.password.clone();
    bad[0] ^= 1;
    let err = RawClient::connect_with(server.addr, resume(first.session_id, &bad, 10_000))
        .await
        .err()
        .unwrap();
    assert_eq!(err.error, ErrorCode::AuthFailed.code());

    let mut second = RawClient::connect_with(
        server.addr,
        resume(first.session_id, &first.password, 10_000),
    )
    .await
    .unwrap();
    assert_eq!(second.session_id, first.session_id);
    // The session moved: the old connection is closed, the ephemeral still belongs to it.
    assert!(first.recv().await.is_none());
    let (r, _) = second.call(exists("/mine", false)).await;
    assert_eq!(stat_of(&r).ephemeral_owner, second.session_id);

    // A client that has seen a newer zxid than the server is refused (it would see time go back).
    let (r, _) = second.call(ping()).await;
    let err = RawClient::connect_with(
        server.addr,
        wire::ConnectRequest {
            last_zxid_seen: r.zxid + 1000,
            timeout_ms: 10_000,
            ..Default::default()
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.error, ErrorCode::NotCaughtUp.code());
}

#[tokio::test]
async fn sessions_and_ephemerals_survive_a_restart() {
    let mut server = ServerProcess::start(&["--tick-ms", "200"]);
    let mut c = RawClient::connect_with(
        server.addr,
        wire::ConnectRequest {
            timeout_ms: 3000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.call(create("/eph", b"", CreateMode::Ephemeral)).await;
    let (id, password) = (c.session_id, c.password.clone());
    server.restart9();

    // Resumed within the timeout: the session and its ephemeral are still there.
    let mut c = RawClient::connect_with(server.addr, resume(id, &password, 3000))
        .await
        .unwrap();
    let (r, _) = c.call(exists("/eph", false)).await;
    assert_eq!(stat_of(&r).ephemeral_owner, id);
    drop(c);

    // Left alone, it expires after the restart too.
    server.restart9();
    let mut other = RawClient::connect(server.addr).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if other.call(exists("/eph", false)).await.0.error == ErrorCode::NoNode.code() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
