//! Linearizability and session guarantees under faults, checked on recorded
//! histories (the `zabkeeper-check` crate): concurrent clients on every
//! member of a 3-member ensemble read (linearizable and plain), write and
//! compare-and-set three keys while members are killed (-9), restarted and
//! partitioned through per-link TCP proxies (`linearizability/proxy.rs`).
//!
//! `ZK_HISTORY_SCHEDULES=N` (default 20) randomized schedules of
//! `ZK_HISTORY_SECONDS` (default 10) each, `ZK_HISTORY_PARALLEL` (default 2) at a
//! time; a failing schedule prints its seed, and `ZK_HISTORY_SEED=S` replays
//! exactly that schedule. Two deliberately broken servers (a hidden test-only
//! fault switch) must make the checker fail (the two `the_checker_catches_*`
//! tests). `ZK_HISTORY_SERVER_FAULT=local-linearizable` runs the randomized
//! schedules with such members: they fail (seen on every schedule tried).
//! `stale-connect` rarely shows in them (a session must move to a member behind
//! what it saw), hence its own scenario.

mod common;
#[path = "linearizability/harness.rs"]
mod harness;
#[path = "linearizability/proxy.rs"]
mod proxy;

use common::{get, set, RawClient};
use harness::{init_state, nanos, run_schedule, Net};
use proxy::Mode;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zabkeeper_check::{check_register, check_sessions, Op, OpKind, SessionRead};
use zabkeeper_proto::wire::{self, response::Result as R};

/// Fewer operations than this in a 10 s schedule of 5 clients means the workload
/// never got going (a few hundred to a few thousand is normal).
const MIN_OPS_PER_SCHEDULE: usize = 100;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_under_faults_are_linearizable_and_session_consistent() {
    let seconds = Duration::from_secs(env_u64("ZK_HISTORY_SECONDS", 10));
    let seeds: Vec<u64> = match std::env::var("ZK_HISTORY_SEED") {
        Ok(s) => vec![s.parse().expect("ZK_HISTORY_SEED is a number")],
        Err(_) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                .wrapping_mul(1000);
            (0..env_u64("ZK_HISTORY_SCHEDULES", 20))
                .map(|i| base + i)
                .collect()
        }
    };
    let parallel = env_u64("ZK_HISTORY_PARALLEL", 2).max(1) as usize;
    let mut failures = Vec::new();
    let (mut histories, mut ops) = (0, 0);
    for chunk in seeds.chunks(parallel) {
        let runs: Vec<_> = chunk
            .iter()
            .map(|&seed| tokio::spawn(async move { (seed, run_schedule(seed, seconds, 5).await) }))
            .collect();
        for r in runs {
            let (seed, result) = r.await.expect("schedule task");
            match result {
                // A schedule whose clients got next to nothing done checked nothing:
                // that is a failure of the run, not a pass.
                Ok(o) if o.ops < MIN_OPS_PER_SCHEDULE => {
                    println!(
                        "schedule seed {seed} FAILED: only {} ops recorded ({}), fewer than {MIN_OPS_PER_SCHEDULE}\nreplay with ZK_HISTORY_SEED={seed}",
                        o.ops, o.summary
                    );
                    failures.push(seed);
                }
                Ok(o) => {
                    histories += 1;
                    ops += o.ops;
                    println!(
                        "schedule seed {seed}: {} ops checked ({}), {} faults",
                        o.ops,
                        o.summary,
                        o.faults.len()
                    );
                }
                Err(e) => {
                    println!(
                        "schedule seed {seed} FAILED: {e}\nreplay with ZK_HISTORY_SEED={seed}"
                    );
                    failures.push(seed);
                }
            }
        }
    }
    println!("{histories} histories, {ops} operations checked");
    assert!(
        failures.is_empty(),
        "failing seeds (replay with ZK_HISTORY_SEED=S): {failures:?}"
    );
}

fn data_stat(r: &wire::Response) -> Option<(Vec<u8>, wire::Stat)> {
    match &r.result {
        Some(R::GetData(d)) if r.error == 0 => Some((d.data.to_vec(), d.stat.unwrap())),
        _ => None,
    }
}

/// A follower cut off from its leader's messages (a silent one-way partition),
/// a write committed by the leader and the other follower, then a linearizable
/// read on the cut-off follower. Returns the recorded history of the key.
async fn stale_follower_scenario(fault: Option<&str>) -> Vec<Op> {
    let env: Vec<(&str, &str)> = fault
        .map(|f| vec![("ZABKEEPER_UNSAFE_TEST_FAULT", f)])
        .unwrap_or_default();
    let net = Net::start(3, &env).await;
    let leader = net.leader(Duration::from_secs(30)).await;
    net.wait_all_serving(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let mut w = RawClient::connect(net.addr(leader)).await;
    let (r, _) = w
        .call(common::create("/k0", b"init", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let mut reader = RawClient::connect(net.addr(follower)).await;
    // The reader's member must have the key before the cut.
    let deadline = Instant::now() + Duration::from_secs(10);
    while data_stat(&reader.call(get("/k0", false)).await.0).is_none() {
        assert!(Instant::now() < deadline);
    }
    net.link(leader, follower, Mode::Paused);
    let start = Instant::now();
    let mut ops = Vec::new();
    let invoke = nanos(start);
    let (r, _) = w.call(set("/k0", b"new", -1)).await;
    assert_eq!(r.error, 0, "the leader and the other follower commit");
    ops.push(Op {
        client: 0,
        invoke,
        complete: Some(nanos(start)),
        kind: OpKind::Write(b"new".to_vec()),
    });
    let invoke = nanos(start);
    let xid = reader
        .send_with(get("/k0", false), wire::Consistency::Linearizable)
        .await;
    let r = loop {
        match reader.recv().await {
            Some(wire::server_frame::Kind::Response(r)) if r.xid == xid => break Some(r),
            Some(_) => {}
            None => break None,
        }
    };
    if let Some((data, stat)) = r.as_ref().and_then(data_stat) {
        ops.push(Op {
            client: 1,
            invoke,
            complete: Some(nanos(start)),
            kind: OpKind::Read((data, stat.version)),
        });
    }
    net.heal_all();
    if ops.len() == 1 && fault.is_none() {
        // The cut-off member did not answer (it may not: it cannot reach the leader).
        // After the heal a linearizable read there must see the write, so the run
        // always checks a read.
        ops.push(linearizable_read_after_heal(&net, follower, start).await);
    }
    ops
}

/// A linearizable read of /k0 on member `m`, retried on new connections until it
/// is answered (the member may be electing or syncing just after a heal).
async fn linearizable_read_after_heal(net: &Net, m: usize, start: Instant) -> Op {
    let invoke = nanos(start);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "member {m} serves no linearizable read 30 s after the heal"
        );
        if let Some(Ok(mut c)) = RawClient::try_connect_with(
            net.addr(m),
            wire::ConnectRequest {
                timeout_ms: 10_000,
                ..Default::default()
            },
        )
        .await
        {
            let xid = c
                .send_with(get("/k0", false), wire::Consistency::Linearizable)
                .await;
            while let Some(frame) = c.recv().await {
                if let wire::server_frame::Kind::Response(r) = frame {
                    if r.xid != xid {
                        continue;
                    }
                    if let Some((data, stat)) = data_stat(&r) {
                        return Op {
                            client: 2,
                            invoke,
                            complete: Some(nanos(start)),
                            kind: OpKind::Read((data, stat.version)),
                        };
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_on_a_cut_off_follower_are_never_stale() {
    let ops = stale_follower_scenario(None).await;
    assert_eq!(ops.len(), 2, "the write and one answered read: {ops:?}");
    check_register("/k0", init_state(), &ops).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_linearizable_reads_served_without_a_read_index() {
    let ops = stale_follower_scenario(Some("local-linearizable")).await;
    assert_eq!(ops.len(), 2, "the broken member answered the read: {ops:?}");
    assert!(
        check_register("/k0", init_state(), &ops).is_err(),
        "a stale linearizable read passed the checker: {ops:?}"
    );
}

/// A session writes through the leader, then moves to a follower cut off from
/// the leader's messages and reads there. Returns its plain read and the writes.
async fn moving_session_scenario(
    fault: Option<&str>,
) -> (Vec<SessionRead>, HashMap<String, Vec<i64>>) {
    let env: Vec<(&str, &str)> = fault
        .map(|f| vec![("ZABKEEPER_UNSAFE_TEST_FAULT", f)])
        .unwrap_or_default();
    let net = Net::start(3, &env).await;
    let leader = net.leader(Duration::from_secs(30)).await;
    net.wait_all_serving(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let mut c = RawClient::connect(net.addr(leader)).await;
    let (r, _) = c
        .call(common::create("/k0", b"init", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
    let mut writes: HashMap<String, Vec<i64>> = HashMap::new();
    writes.entry("/k0".into()).or_default().push(r.zxid);
    // Let the follower have the key, then cut it off from the leader's messages.
    let mut probe_client = RawClient::connect(net.addr(follower)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while data_stat(&probe_client.call(get("/k0", false)).await.0).is_none() {
        assert!(Instant::now() < deadline);
    }
    net.link(leader, follower, Mode::Paused);
    let (r, _) = c.call(set("/k0", b"new", -1)).await;
    assert_eq!(r.error, 0);
    let seen = r.zxid;
    writes
        .entry("/k0".into())
        .or_default()
        .push(common::stat_of(&r).mzxid);
    let resume = wire::ConnectRequest {
        session_id: c.session_id,
        password: c.password.clone().into(),
        timeout_ms: 10_000,
        last_zxid_seen: seen,
        ..Default::default()
    };
    let mut reads = Vec::new();
    if let Some(Ok(mut moved)) =
        RawClient::try_connect_with(net.addr(follower), resume.clone()).await
    {
        if let Some((_, stat)) = moved
            .try_call(get("/k0", false))
            .await
            .as_ref()
            .and_then(data_stat)
        {
            reads.push(SessionRead {
                key: "/k0".into(),
                seen,
                mzxid: stat.mzxid,
            });
        }
    }
    net.heal_all();
    if reads.is_empty() && fault.is_none() {
        // The member behind refused the session (or closed it): after the heal it
        // must take the session and serve it at least what it saw, so the run always
        // checks a read.
        let deadline = Instant::now() + Duration::from_secs(30);
        while reads.is_empty() {
            assert!(
                Instant::now() < deadline,
                "the follower never served the moved session after the heal"
            );
            if let Some(Ok(mut moved)) =
                RawClient::try_connect_with(net.addr(follower), resume.clone()).await
            {
                if let Some((_, stat)) = moved
                    .try_call(get("/k0", false))
                    .await
                    .as_ref()
                    .and_then(data_stat)
                {
                    reads.push(SessionRead {
                        key: "/k0".into(),
                        seen,
                        mzxid: stat.mzxid,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (reads, writes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_session_never_reads_older_state_than_it_saw() {
    let (reads, writes) = moving_session_scenario(None).await;
    assert_eq!(reads.len(), 1, "one answered read of the moved session");
    check_sessions(&reads, &writes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_a_member_serving_a_session_without_the_zxid_check() {
    let (reads, writes) = moving_session_scenario(Some("stale-connect")).await;
    assert_eq!(reads.len(), 1, "the broken member served the session");
    assert!(
        check_sessions(&reads, &writes).is_err(),
        "a stale session read passed the checker: {reads:?}"
    );
}
