//! The recipes on a real 3-member loopback ensemble (issue 6's "done when"): every
//! member is a `zabkeeper` process, clients connect through the whole member list, and
//! the ensemble's leader is killed with `kill -9` while the recipes are in use.
//!
//! Members run with `--tick-ms 500` (sessions of 1 to 10 s); clients ask for 4 s: long
//! enough to ride through a leader election (the ensemble re-elects in well under a
//! second when the leader's connections break), short enough for expiry tests.
//!
//! A session is expired on demand the way ZooKeeper's own tests do it: another
//! connection attaches to the same session (id + password) and closes it.

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use tokio::time::timeout;
use zabkeeper_client::recipes::*;
use zabkeeper_client::*;

const SESSION: Duration = Duration::from_secs(4);

/// A 3-member ensemble, every member serving.
async fn ensemble() -> Cluster {
    let c = Cluster::start(3, &["--tick-ms", "500"]);
    c.wait_all_serving(Duration::from_secs(30)).await;
    c
}

/// All members as a connect string.
fn servers(c: &Cluster) -> String {
    (0..c.members.len())
        .map(|i| c.addr(i).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: SESSION,
        request_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

async fn client(c: &Cluster) -> Client {
    Client::connect(&servers(c), opts()).await.expect("connect")
}

async fn clients(c: &Cluster, n: usize) -> Vec<Client> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(client(c).await);
    }
    v
}

/// A client on member `i` alone (it cannot move elsewhere), with a 10 s session so
/// that it outlives a restart of its member.
async fn client_on(c: &Cluster, i: usize) -> Client {
    let opts = ConnectOptions {
        session_timeout: Duration::from_secs(10),
        ..opts()
    };
    Client::connect(&c.addr(i).to_string(), opts)
        .await
        .expect("connect")
}

/// Kills the ensemble's leader with `kill -9`; returns its index.
async fn kill_leader(c: &mut Cluster) -> usize {
    let leader = c.leader(Duration::from_secs(20)).await;
    c.kill9(leader);
    leader
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn children(c: &Client, path: &str) -> Vec<String> {
    match c.get_children(path).await {
        Ok(v) => v,
        Err(Error::NoNode) => Vec::new(),
        Err(e) => panic!("get_children {path}: {e}"),
    }
}

/// Ends `c`'s session from another connection and waits until `c` hears it (`c` may win
/// the session back before the close lands, so this repeats).
async fn expire(cluster: &Cluster, c: &Client) {
    let resume = ConnectOptions {
        session: Some((c.session_id(), c.session_password())),
        ..opts()
    };
    for _ in 0..20 {
        match Client::connect(&servers(cluster), resume.clone()).await {
            Ok(other) => other.close().await.expect("close the session"),
            Err(Error::SessionExpired) => {}
            Err(e) => panic!("attach to the session: {e}"),
        }
        let mut states = std::pin::pin!(c.state_stream());
        let expired = async {
            while let Some(s) = futures::StreamExt::next(&mut states).await {
                if s == SessionState::Expired {
                    return;
                }
            }
        };
        if timeout(Duration::from_millis(2000), expired).await.is_ok() {
            return;
        }
    }
    panic!("could not expire session {:#x}", c.session_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_excludes_200_acquisitions_of_10_clients_across_a_leader_kill() {
    let mut cluster = ensemble().await;
    let cs = clients(&cluster, 10).await;
    let dir = "/lock";
    let holders = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in &cs {
        let (c, holders, done, tokens) = (c.clone(), holders.clone(), done.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Lock::new(&c, dir);
            for _ in 0..20 {
                let g = lock.acquire(None).await.unwrap().unwrap();
                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokens.lock().unwrap().push(g.fencing_token());
                tokio::time::sleep(Duration::from_millis(2)).await;
                assert_eq!(holders.fetch_sub(1, Ordering::SeqCst), 1, "two holders");
                g.release().await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    eventually("60 acquisitions before the kill", async || {
        done.load(Ordering::SeqCst) >= 60
    })
    .await;
    let killed = kill_leader(&mut cluster).await;
    let at_kill = done.load(Ordering::SeqCst);
    for t in tasks {
        within("200 acquisitions", t).await.unwrap();
    }
    assert!(
        at_kill < 200,
        "the kill came in the middle ({at_kill} done)"
    );
    assert_eq!(done.load(Ordering::SeqCst), 200);
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 200);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens must strictly increase: {tokens:?}"
    );
    // Tokens of the new epoch are above every token of the old one.
    assert!(tokens[199] >> 32 > tokens[0] >> 32, "the epoch changed");
    for c in &cs {
        assert_eq!(c.state(), SessionState::Connected, "sessions survived");
    }
    assert!(
        children(&cs[0], dir).await.is_empty(),
        "no node left behind"
    );
    // The killed member comes back and has the same (empty) lock directory.
    cluster.start_member(killed);
    let back = client_on(&cluster, killed).await;
    back.sync(dir).await.unwrap();
    assert!(children(&back, dir).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_moves_1000_items_exactly_once_across_expiry_and_a_leader_kill() {
    let mut cluster = ensemble().await;
    let dir = "/q";
    let producers = clients(&cluster, 3).await;
    let consumers = clients(&cluster, 3).await;
    const PER: [usize; 3] = [334, 333, 333];

    let put_done = Arc::new(AtomicUsize::new(0));
    let mut put = Vec::new();
    for (p, c) in producers.iter().enumerate() {
        let q = Queue::new(c, dir);
        let put_done = put_done.clone();
        put.push(tokio::spawn(async move {
            for i in 0..PER[p] {
                q.put(format!("{p}:{i}")).await.unwrap();
                put_done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let taken = Arc::new(AtomicUsize::new(0));
    let (paused_tx, paused_rx) = tokio::sync::oneshot::channel::<()>();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
    let mut signals = Some((paused_tx, resume_rx));
    let mut take = Vec::new();
    for (k, c) in consumers.iter().enumerate() {
        let q = Queue::new(c, dir);
        let taken = taken.clone();
        let mut signal = if k == 0 { signals.take() } else { None };
        take.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                if got.len() == 100 {
                    if let Some((paused, resume)) = signal.take() {
                        // Let the test expire this consumer's session between takes.
                        paused.send(()).unwrap();
                        resume.await.unwrap();
                    }
                }
                if taken.load(Ordering::SeqCst) >= 1000 {
                    return got;
                }
                match q.take_timeout(Some(Duration::from_millis(200))).await {
                    Ok(Some(item)) => {
                        taken.fetch_add(1, Ordering::SeqCst);
                        got.push(String::from_utf8(item.to_vec()).unwrap());
                    }
                    Ok(None) => {}
                    Err(Error::SessionExpired) => {
                        assert_eq!(k, 0, "only consumer 0 expires");
                        return got;
                    }
                    Err(e) => panic!("consumer {k}: {e}"),
                }
            }
        }));
    }
    within("consumer 0 pause", paused_rx).await.unwrap();
    expire(&cluster, &consumers[0]).await;
    resume_tx.send(()).unwrap();
    eventually("half the items put", async || {
        put_done.load(Ordering::SeqCst) >= 500
    })
    .await;
    let killed = kill_leader(&mut cluster).await;
    for t in put {
        within("producers", t).await.unwrap();
    }
    let mut all = Vec::new();
    for (k, t) in take.into_iter().enumerate() {
        let got = within("consumers", t).await.unwrap();
        if k == 0 {
            assert_eq!(got.len(), 100, "the expired consumer keeps what it took");
        }
        // FIFO per producer, as each consumer saw it.
        let mut last: BTreeMap<usize, usize> = BTreeMap::new();
        for item in &got {
            let (p, i) = item.split_once(':').unwrap();
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            if let Some(prev) = last.insert(p, i) {
                assert!(prev < i, "consumer {k} got {p}:{i} after {p}:{prev}");
            }
        }
        all.extend(got);
    }
    assert_eq!(all.len(), 1000, "every item taken once");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 1000, "no item taken twice");
    let q = Queue::new(&producers[0], dir);
    assert_eq!(q.len().await.unwrap(), 0);
    assert!(children(&producers[0], &format!("{dir}/taken"))
        .await
        .is_empty());
    cluster.start_member(killed);
    let back = client_on(&cluster, killed).await;
    back.sync(dir).await.unwrap();
    assert_eq!(Queue::new(&back, dir).len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_survives_a_leader_kill_and_hands_over_within_the_session_timeout() {
    let mut cluster = ensemble().await;
    let dir = "/election";
    let cs = clients(&cluster, 4).await;
    let observer = LeaderElection::new(&cs[3], dir);
    let mut a = LeaderElection::new(&cs[0], dir).join("a").await.unwrap();
    let mut b = LeaderElection::new(&cs[1], dir).join("b").await.unwrap();
    let mut c = LeaderElection::new(&cs[2], dir).join("c").await.unwrap();
    assert!(
        a.wait_for(Role::Leader, Some(Duration::from_secs(10)))
            .await
    );
    assert_eq!(b.role(), Role::Follower);
    assert_eq!(c.role(), Role::Follower);

    // The ensemble's own leader dies: sessions ride through, nobody's role changes.
    let killed = kill_leader(&mut cluster).await;
    cluster.wait_all_serving(Duration::from_secs(30)).await;
    tokio::time::sleep(SESSION).await;
    assert_eq!(
        a.role(),
        Role::Leader,
        "the candidate leader kept its session"
    );
    assert_eq!((b.role(), c.role()), (Role::Follower, Role::Follower));
    let l = observer.leader().await.unwrap().unwrap();
    assert_eq!(&l.payload[..], b"a");

    // The candidate leader's session dies: the next in line takes over at once.
    let t0 = Instant::now();
    expire(&cluster, &cs[0]).await;
    assert!(
        b.wait_for(Role::Leader, Some(SESSION)).await,
        "b takes over"
    );
    let handover = t0.elapsed();
    assert!(handover < SESSION, "handover took {handover:?}");
    assert_eq!(
        within("old leader told", a.changed()).await,
        Role::Lost,
        "the old leader hears it lost"
    );
    assert_eq!(c.role(), Role::Follower);
    eventually("observer sees b", async || {
        observer
            .leader()
            .await
            .unwrap()
            .is_some_and(|l| &l.payload[..] == b"b")
    })
    .await;

    // The killed member returns; an observer there sees the same leader.
    cluster.start_member(killed);
    let late = client_on(&cluster, killed).await;
    late.sync(dir).await.unwrap();
    let l = LeaderElection::new(&late, dir)
        .leader()
        .await
        .unwrap()
        .unwrap();
    assert_eq!((l.id.as_str(), &l.payload[..]), (b.id(), &b"b"[..]));
    b.resign().await.unwrap();
    assert!(c.wait_for(Role::Leader, Some(SESSION)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_cache_converges_after_joins_leaves_and_a_member_restart() {
    let mut cluster = ensemble().await;
    let base = "/services";
    let ids = |v: &[Instance]| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    // The observer sits on one member; that member is the one restarted below.
    let watched = 0;
    let observer = client_on(&cluster, watched).await;
    let observer_any = client(&cluster).await;
    let mut cache = ServiceDiscovery::new(&observer_any, base)
        .cache("api")
        .await
        .unwrap();
    let mut pinned = ServiceDiscovery::new(&observer, base)
        .cache("api")
        .await
        .unwrap();
    let regs_c = clients(&cluster, 3).await;
    let mut regs = Vec::new();
    for (i, c) in regs_c.iter().enumerate() {
        let inst = Instance::new(&format!("api-{i}"), "10.0.0.1", 8000 + i as u16);
        regs.push(
            ServiceDiscovery::new(c, base)
                .register("api", &inst)
                .await
                .unwrap(),
        );
    }
    for cache in [&mut cache, &mut pinned] {
        assert!(
            cache
                .wait_until(
                    |v| ids(v) == ["api-0", "api-1", "api-2"],
                    Duration::from_secs(10)
                )
                .await,
            "joins: {:?}",
            cache.instances()
        );
    }
    regs.remove(1).unregister().await.unwrap();
    for cache in [&mut cache, &mut pinned] {
        assert!(
            cache
                .wait_until(|v| ids(v) == ["api-0", "api-2"], Duration::from_secs(10))
                .await,
            "leave: {:?}",
            cache.instances()
        );
    }

    // The member the pinned observer uses is killed; while it is down an instance
    // leaves (its session expires) and another joins; then it comes back.
    cluster.kill9(watched);
    expire(&cluster, &regs_c[0]).await;
    let late = client(&cluster).await;
    let _r3 = ServiceDiscovery::new(&late, base)
        .register("api", &Instance::new("api-3", "10.0.0.3", 9003))
        .await
        .unwrap();
    assert!(
        cache
            .wait_until(|v| ids(v) == ["api-2", "api-3"], Duration::from_secs(10))
            .await,
        "cache on the live members: {:?}",
        cache.instances()
    );
    cluster.start_member(watched);
    assert!(
        pinned
            .wait_until(|v| ids(v) == ["api-2", "api-3"], Duration::from_secs(30))
            .await,
        "cache whose member restarted: {:?}",
        pinned.instances()
    );
    // And it keeps following after the restart.
    regs.remove(1).unregister().await.unwrap();
    for cache in [&mut cache, &mut pinned] {
        assert!(
            cache
                .wait_until(|v| ids(v) == ["api-3"], Duration::from_secs(10))
                .await,
            "leave after the restart: {:?}",
            cache.instances()
        );
    }
}

/// A client whose only way in is `proxy`: cutting the proxy cuts it off.
async fn client_via(proxy: &common::CutProxy) -> Client {
    Client::connect(&proxy.addr.to_string(), opts())
        .await
        .expect("connect through the proxy")
}

/// The holder's network is cut (no close, no reset: a partition or a frozen process)
/// for longer than the session timeout. It hears `Suspended` when it notices the
/// silence, `Lost` when the ensemble may expire its session, and that comes before
/// the next waiter gets the lock; after the heal it learns the session expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_cut_off_is_told_it_lost_the_lock_before_another_client_takes_it() {
    let cluster = ensemble().await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    // The holder sits on a follower, which forwards its session's touches.
    let proxy = common::CutProxy::start(cluster.addr((leader + 1) % 3)).await;
    let holder = client_via(&proxy).await;
    let waiter = client(&cluster).await;
    let dir = "/cut-lock";
    let guard = Lock::new(&holder, dir)
        .acquire(None)
        .await
        .unwrap()
        .unwrap();
    let token = guard.fencing_token();
    let mut ownership = std::pin::pin!(guard.ownership());
    let mut next_ownership = async || {
        let o = within(
            "an ownership change",
            futures::StreamExt::next(&mut ownership),
        )
        .await;
        (o, Instant::now())
    };
    assert_eq!(next_ownership().await.0, Some(Ownership::Held));
    let next = Lock::new(&waiter, dir);
    let taken = tokio::spawn(async move {
        let g = next.acquire(None).await.unwrap().unwrap();
        (Instant::now(), g.fencing_token(), g)
    });
    eventually("the waiter queued", async || {
        children(&holder, dir).await.len() == 2
    })
    .await;

    let cut = Instant::now();
    proxy.cut();
    let (o, suspended_at) = next_ownership().await;
    assert_eq!(o, Some(Ownership::Suspended));
    let (o, lost_at) = next_ownership().await;
    assert_eq!(o, Some(Ownership::Lost));
    assert_eq!(next_ownership().await.0, None, "Lost is final");
    let (taken_at, next_token, _g) = within("the waiter takes the lock", taken).await.unwrap();
    eprintln!(
        "after the cut: suspended {:?}, lost {:?}, next holder {:?}",
        suspended_at - cut,
        lost_at - cut,
        taken_at - cut
    );
    assert!(
        suspended_at - cut < SESSION,
        "suspended only {:?} after the cut",
        suspended_at - cut
    );
    assert!(
        lost_at <= taken_at,
        "the holder was told {:?} after the next holder took the lock",
        lost_at - taken_at
    );
    assert!(
        lost_at - cut <= SESSION + Duration::from_millis(100),
        "lost {:?} after the cut",
        lost_at - cut
    );
    assert!(next_token > token, "fencing token grows");
    assert!(
        taken_at - cut < SESSION + Duration::from_millis(1500),
        "the lock came free {:?} after the cut",
        taken_at - cut
    );
    within("lost() agrees", guard.lost()).await;

    // The network comes back: the holder's session is gone, and it says so.
    proxy.heal();
    eventually("the holder hears its session expired", async || {
        holder.state() == SessionState::Expired
    })
    .await;
    assert!(matches!(
        holder.exists(dir).await,
        Err(Error::SessionExpired)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_hands_over_within_the_session_timeout_when_the_leader_is_cut_off() {
    let cluster = ensemble().await;
    let dir = "/cut-election";
    let proxy = common::CutProxy::start(cluster.addr(0)).await;
    let gone = client_via(&proxy).await;
    let next = client(&cluster).await;
    let mut a = LeaderElection::new(&gone, dir).join("a").await.unwrap();
    assert!(
        a.wait_for(Role::Leader, Some(Duration::from_secs(10)))
            .await
    );
    let mut b = LeaderElection::new(&next, dir).join("b").await.unwrap();
    assert!(
        !b.wait_for(Role::Leader, Some(Duration::from_millis(500)))
            .await
    );

    // The leader's process is as good as dead: no close, no FIN, nothing.
    let cut = Instant::now();
    proxy.cut();
    let a_lost = tokio::spawn(async move {
        a.wait_for(Role::Lost, None).await;
        Instant::now()
    });
    assert!(
        b.wait_for(Role::Leader, Some(SESSION * 3)).await,
        "b never took over"
    );
    let handover = cut.elapsed();
    let b_at = Instant::now();
    let a_at = within("a told", a_lost).await.unwrap();
    eprintln!(
        "handover {handover:?} after the cut; a told it lost {:?} after the cut",
        a_at - cut
    );
    assert!(
        handover < SESSION + Duration::from_millis(1500),
        "handover took {handover:?} (session timeout {SESSION:?})"
    );
    assert!(
        a_at <= b_at,
        "a heard it lost {:?} after b led",
        a_at - b_at
    );
}

/// Pauses (`STOP`) or resumes (`CONT`) member `i`'s process.
fn signal(c: &Cluster, i: usize, sig: &str) {
    let pid = c.members[i].as_ref().expect("member running").pid();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// A take's multi is applied but its answer is lost with the consumer's connection
/// to a follower; the session moves to the other follower, which was frozen while
/// the multi committed (it may or may not have applied it when the session's reads
/// arrive there; the scripted test in `recipes_lost_answer.rs` pins the lagging
/// case). The item is delivered exactly once: the take returns it, nothing is left
/// to take, no receipt is left behind. Once with the client's exactly-once retry off
/// (the recipe's own fallback: sync, then its receipt), once with it on (the retried
/// multi gets its original answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_take_whose_answer_is_lost_on_a_follower_delivers_the_item_once() {
    let cluster = ensemble().await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let (near, behind) = ((leader + 1) % 3, (leader + 2) % 3);
    let producer = client(&cluster).await;
    let on_behind = client_on(&cluster, behind).await;
    for exactly_once in [false, true] {
        let dir = format!("/lost-take-{exactly_once}");
        let proxy = common::LossyProxy::start(cluster.addr(near)).await;
        let servers = format!("{},{}", proxy.addr, cluster.addr(behind));
        let opts = ConnectOptions {
            exactly_once,
            connect_timeout: Duration::from_millis(500),
            ..opts()
        };
        // The consumer must start on the proxy; members are tried in random order.
        let consumer = loop {
            let c = Client::connect(&servers, opts.clone()).await.unwrap();
            if c.connected_server() == Some(proxy.addr.to_string()) {
                break c;
            }
            c.close().await.unwrap();
        };
        Queue::new(&producer, &dir).put("only").await.unwrap();
        // The other follower has the item and the consumer's session, then stops.
        on_behind.sync(&dir).await.unwrap();
        signal(&cluster, behind, "STOP");
        proxy.lose_next_multi_response(true);
        let q = Queue::new(&consumer, &dir);
        let take = tokio::spawn(async move { q.take().await });
        proxy.wait_dropped(1, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        signal(&cluster, behind, "CONT");
        let got = within("the take", take).await.unwrap().unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&b"only"[..]),
            "exactly_once={exactly_once}: the taken item is delivered, not lost"
        );
        assert_eq!(
            consumer.connected_server(),
            Some(cluster.addr(behind).to_string()),
            "the session moved to the member that was frozen"
        );
        // The producer is another session, maybe on another member: it syncs to see
        // everything the consumer's session did.
        producer.sync(&dir).await.unwrap();
        let q = Queue::new(&producer, &dir);
        assert_eq!(q.take().await.unwrap(), None, "taken once, not twice");
        assert!(
            children(&producer, &format!("{dir}/taken"))
                .await
                .is_empty(),
            "exactly_once={exactly_once}: no receipt left behind"
        );
        consumer.close().await.unwrap();
    }
}
