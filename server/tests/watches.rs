//! Every watch kind against a real server: one-shot watches fire once, persistent
//! ones every time, recursive ones for the whole subtree, all in zxid order, and a
//! notification always precedes the response to a later request that sees the change.

mod common;

use common::*;
use std::time::Duration;
use zabkeeper_proto::wire::{self, CreateMode};
use zabkeeper_proto::EventType;

fn kinds(events: &[wire::WatchEvent]) -> Vec<(i32, String)> {
    events.iter().map(|e| (e.r#type, e.path.clone())).collect()
}

const CREATED: i32 = EventType::NodeCreated as i32;
const DELETED: i32 = EventType::NodeDeleted as i32;
const DATA: i32 = EventType::NodeDataChanged as i32;
const CHILDREN: i32 = EventType::NodeChildrenChanged as i32;

#[tokio::test]
async fn one_shot_data_exists_and_child_watches_fire_once() {
    let server = ServerProcess::start(&[]);
    let mut w = RawClient::connect(server.addr).await;
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(
        c.call(create("/a", b"0", CreateMode::Persistent))
            .await
            .0
            .error,
        0
    );

    // Data watch: two sets, one event, carrying the first set's zxid.
    assert_eq!(w.call(get("/a", true)).await.0.error, 0);
    let (r1, _) = c.call(set("/a", b"1", -1)).await;
    let (_r2, _) = c.call(set("/a", b"2", -1)).await;
    let ev = w.events_for(Duration::from_millis(300)).await;
    assert_eq!(kinds(&ev), vec![(DATA, "/a".to_string())]);
    assert_eq!(
        ev[0].zxid,
        stat_of(&r1).mzxid,
        "event carries the zxid of the change that fired it"
    );

    // Exists watch on a missing node fires NodeCreated once.
    assert_eq!(
        w.call(exists("/b", true)).await.0.error,
        zabkeeper_proto::ErrorCode::NoNode.code()
    );
    c.call(create("/b", b"", CreateMode::Persistent)).await;
    c.call(set("/b", b"x", -1)).await;
    assert_eq!(
        kinds(&w.events_for(Duration::from_millis(300)).await),
        vec![(CREATED, "/b".to_string())]
    );

    // Child watch: two creates, one NodeChildrenChanged.
    assert_eq!(w.call(children("/a", true)).await.0.error, 0);
    c.call(create("/a/x", b"", CreateMode::Persistent)).await;
    c.call(create("/a/y", b"", CreateMode::Persistent)).await;
    assert_eq!(
        kinds(&w.events_for(Duration::from_millis(300)).await),
        vec![(CHILDREN, "/a".to_string())]
    );

    // Delete fires the data watch (NodeDeleted) and the child watch of the parent.
    w.call(get("/a/x", true)).await;
    w.call(children("/a", true)).await;
    c.call(delete("/a/x", -1)).await;
    let ev = kinds(&w.events_for(Duration::from_millis(300)).await);
    assert_eq!(
        ev,
        vec![(DELETED, "/a/x".to_string()), (CHILDREN, "/a".to_string())]
    );
}

#[tokio::test]
async fn persistent_and_recursive_watches_fire_every_time_in_order() {
    let server = ServerProcess::start(&[]);
    let mut w = RawClient::connect(server.addr).await;
    let mut c = RawClient::connect(server.addr).await;
    c.call(create("/p", b"", CreateMode::Persistent)).await;
    c.call(create("/r", b"", CreateMode::Persistent)).await;
    assert_eq!(w.call(add_watch("/p", false)).await.0.error, 0);
    assert_eq!(w.call(add_watch("/r", true)).await.0.error, 0);

    let mut zxids = Vec::new();
    for op in [
        set("/p", b"1", -1),
        set("/p", b"2", -1),
        create("/p/c", b"", CreateMode::Persistent),
        create("/r/a", b"", CreateMode::Persistent),
        create("/r/a/b", b"", CreateMode::Persistent),
        set("/r/a/b", b"v", -1),
        delete("/r/a/b", -1),
        set("/r", b"top", -1),
    ] {
        let (r, _) = c.call(op).await;
        assert_eq!(r.error, 0);
        zxids.push(r.zxid);
    }
    let ev = w.events_for(Duration::from_millis(400)).await;
    assert_eq!(
        kinds(&ev),
        vec![
            (DATA, "/p".into()),
            (DATA, "/p".into()),
            (CHILDREN, "/p".into()),
            (CREATED, "/r/a".into()),
            (CREATED, "/r/a/b".into()),
            (DATA, "/r/a/b".into()),
            (DELETED, "/r/a/b".into()),
            (DATA, "/r".into()),
        ],
        "persistent watches fire each time; recursive ones never send NodeChildrenChanged"
    );
    let event_zxids: Vec<i64> = ev.iter().map(|e| e.zxid).collect();
    assert!(
        event_zxids.windows(2).all(|w| w[0] < w[1]),
        "events in zxid order: {event_zxids:?}"
    );

    // Removing the persistent watch stops it; removing it again is NoWatcher.
    let remove = |path: &str, t: wire::WatcherType| {
        wire::request::Op::RemoveWatches(wire::RemoveWatchesRequest {
            path: path.into(),
            r#type: t as i32,
        })
    };
    assert_eq!(
        w.call(remove("/p", wire::WatcherType::Any)).await.0.error,
        0
    );
    assert_eq!(
        w.call(remove("/p", wire::WatcherType::Any)).await.0.error,
        zabkeeper_proto::ErrorCode::NoWatcher.code()
    );
    c.call(set("/p", b"3", -1)).await;
    assert!(w.events_for(Duration::from_millis(300)).await.is_empty());
}

#[tokio::test]
async fn notification_precedes_the_response_that_sees_the_change() {
    let server = ServerProcess::start(&[]);
    let mut w = RawClient::connect(server.addr).await;
    let mut c = RawClient::connect(server.addr).await;
    c.call(create("/o", b"old", CreateMode::Persistent)).await;
    for round in 0..50 {
        w.call(get("/o", true)).await;
        let value = format!("v{round}");
        // The writer's set and the watcher's reads race; whenever a read returns the
        // new value, the watcher must already have had the event.
        let writer = c.call(set("/o", value.as_bytes(), -1));
        let reader = async {
            // An event may also come before an older read's answer (the read ran
            // first); what must never happen is the new value without the event.
            let mut seen = Vec::new();
            loop {
                let (r, events) = w.call(get("/o", false)).await;
                seen.extend(events);
                let data = match r.result {
                    Some(wire::response::Result::GetData(d)) => d.data,
                    other => panic!("{other:?}"),
                };
                if data == value.as_bytes() {
                    return seen;
                }
            }
        };
        let (_, events) = tokio::join!(writer, reader);
        assert_eq!(
            kinds(&events),
            vec![(DATA, "/o".to_string())],
            "round {round}"
        );
    }
}
