//! A write forwarded by a follower whose link to the leader stalls (a silent
//! partition: the bytes wait in the network) reaches the leader late, after the
//! client has moved, had the write applied elsewhere and gone on to later writes.
//! Such a late copy must not run again: the client's low-water mark (`acked_below`)
//! says it has every answer below it, so a copy below it is stale.
//!
//! The peer links run through the proxies of `linearizability/proxy.rs`, whose
//! `Paused` mode holds a link's bytes and delivers them on the heal, as TCP does
//! after a partition shorter than its retransmission timeout.

mod common;
#[allow(dead_code)]
#[path = "linearizability/harness.rs"]
mod harness;
#[path = "linearizability/proxy.rs"]
mod proxy;

use common::{create, get, set, stat_of, RawClient};
use harness::Net;
use proxy::Mode;
use std::time::{Duration, Instant};
use zabkeeper_proto::wire::{self, response::Result as R};

async fn data_on(c: &mut RawClient, path: &str) -> (Vec<u8>, i32) {
    let (r, _) = c.call(get(path, false)).await;
    match r.result {
        Some(R::GetData(d)) if r.error == 0 => (d.data.to_vec(), d.stat.unwrap().version),
        other => panic!("no data at {path}: {other:?} (error {})", r.error),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_copy_of_a_forwarded_write_does_not_run_again() {
    let net = Net::start(3, &[]).await;
    let leader = net.leader(Duration::from_secs(30)).await;
    net.wait_all_serving(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;

    let mut c = RawClient::connect(net.addr(follower)).await;
    let (r, _) = c
        .call_numbered(create("/k0", b"init", wire::CreateMode::Persistent), 1, 1)
        .await;
    assert_eq!(r.error, 0);

    // The follower's messages to the leader stall; its forward of write 2 waits
    // in the link.
    net.link(follower, leader, Mode::Paused);
    c.send_numbered(set("/k0", b"A", -1), 2, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The client moves to the leader, sends write 2 again (applied there), then
    // write 3, which says every answer below 3 is in.
    let resume = wire::ConnectRequest {
        session_id: c.session_id,
        password: c.password.clone().into(),
        timeout_ms: 10_000,
        ..Default::default()
    };
    let mut moved = RawClient::connect_with(net.addr(leader), resume)
        .await
        .expect("the session moves to the leader");
    let (r, _) = moved.call_numbered(set("/k0", b"A", -1), 2, 2).await;
    assert_eq!((r.error, stat_of(&r).version), (0, 1));
    let (r, _) = moved.call_numbered(set("/k0", b"B", -1), 3, 3).await;
    assert_eq!((r.error, stat_of(&r).version), (0, 2));

    // The stalled link delivers the late copy of write 2.
    net.link(follower, leader, Mode::Up);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            data_on(&mut moved, "/k0").await,
            (b"B".to_vec(), 2),
            "the late copy of write 2 ran again"
        );
    }
    // And the next write of the session is the third change, not the fourth.
    let (r, _) = moved.call_numbered(set("/k0", b"C", -1), 4, 4).await;
    assert_eq!((r.error, stat_of(&r).version), (0, 3));
}
