//! The recipes against a real server.
//!
//! By default each test starts its own standalone `zabkeeper` (`$ZABKEEPER_BIN`, or the
//! workspace's debug build, rebuilt once per run) with `--tick-ms 100`, so sessions can
//! be as short as 2 s. Set `ZABKEEPER_ADDRS=host:port,...` to run the same tests
//! against a running ensemble instead (each test then works under its own root
//! node); the tick there should also be short.
//!
//! A session is expired on demand the way ZooKeeper's own tests do it: a second
//! client attaches to the same session (id + password) and closes it.

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::timeout;
use zabkeeper_client::recipes::*;
use zabkeeper_client::*;

/// Where the tests run: a standalone server of their own, or `$ZABKEEPER_ADDRS`.
struct Ensemble {
    child: Option<Child>,
    addrs: String,
    _dir: Option<tempfile::TempDir>,
    /// Root node of this test.
    root: String,
    /// The standalone server's admin HTTP address (none for `$ZABKEEPER_ADDRS`).
    admin: Option<std::net::SocketAddr>,
}

impl Ensemble {
    async fn start(test: &str) -> Ensemble {
        let root = format!("/{test}-{:08x}", rand_u32());
        if let Ok(addrs) = std::env::var("ZABKEEPER_ADDRS") {
            return Ensemble {
                child: None,
                addrs,
                _dir: None,
                root,
                admin: None,
            };
        }
        let port = common::free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut e = Ensemble {
            child: None,
            addrs: format!("127.0.0.1:{port}"),
            _dir: Some(dir),
            root,
            admin: Some(
                format!("127.0.0.1:{}", common::free_port())
                    .parse()
                    .unwrap(),
            ),
        };
        e.spawn(port).await;
        e
    }

    async fn spawn(&mut self, port: u16) {
        let mut child = Command::new(common::server_binary())
            .args([
                "--port",
                &port.to_string(),
                "--tick-ms",
                "100",
                "--zk-port",
                "0",
                "--admin-port",
                &self.admin.map_or(0, |a| a.port()).to_string(),
                "--data-dir",
            ])
            .arg(self._dir.as_ref().unwrap().path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start zabkeeper");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("zabkeeper exited with {status} before accepting");
            }
            assert!(Instant::now() < deadline, "zabkeeper did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child = Some(child);
    }

    /// Kills the standalone server and starts it again on the same port and data
    /// (sessions survive a restart shorter than their timeout). `false` when running
    /// against `$ZABKEEPER_ADDRS`, which this harness cannot restart.
    async fn restart(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = c.kill();
        let _ = c.wait();
        let port = self.addrs.rsplit(':').next().unwrap().parse().unwrap();
        self.spawn(port).await;
        true
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    async fn client(&self) -> Client {
        Client::connect(&self.addrs, opts()).await.expect("connect")
    }

    async fn clients(&self, n: usize) -> Vec<Client> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.client().await);
        }
        v
    }

    /// Ends `c`'s session from another connection and waits until `c` hears it. `c`
    /// may win the session back (it reconnects as soon as the server drops its
    /// connection for the newcomer) before the close lands, so this repeats until `c`
    /// reports `Expired`.
    async fn expire(&self, c: &Client) {
        let resume = ConnectOptions {
            session: Some((c.session_id(), c.session_password())),
            ..opts()
        };
        for _ in 0..20 {
            match Client::connect(&self.addrs, resume.clone()).await {
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
            if timeout(Duration::from_millis(1500), expired).await.is_ok() {
                return;
            }
        }
        panic!("could not expire session {:#x}", c.session_id());
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

const SESSION: Duration = Duration::from_secs(2);

fn opts() -> ConnectOptions {
    ConnectOptions {
        session_timeout: SESSION,
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(15), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn children(c: &Client, path: &str) -> Vec<String> {
    match c.get_children(path).await {
        Ok(v) => v,
        Err(Error::NoNode) => Vec::new(),
        Err(e) => panic!("get_children {path}: {e}"),
    }
}

/// Polls `cond` (test-side only) until it holds or 10 s pass.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_excludes_across_ten_clients_with_increasing_tokens() {
    let zk = Ensemble::start("lock10").await;
    let dir = zk.path("lock");
    let clients = zk.clients(10).await;
    let holders = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in clients.iter() {
        let (c, dir, holders, tokens) = (c.clone(), dir.clone(), holders.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let lock = Lock::new(&c, &dir);
            for _ in 0..20 {
                let g = lock.acquire(None).await.unwrap().unwrap();
                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokens.lock().unwrap().push(g.fencing_token());
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert_eq!(holders.fetch_sub(1, Ordering::SeqCst), 1, "two holders");
                g.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        within("200 acquisitions", t).await.unwrap();
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 200);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens must strictly increase: {tokens:?}"
    );
    assert!(
        children(&clients[0], &dir).await.is_empty(),
        "no node left behind"
    );
}

#[tokio::test]
async fn lock_is_reentrant_times_out_and_cleans_up_when_cancelled() {
    let zk = Ensemble::start("lockre").await;
    let dir = zk.path("lock");
    let (a, b) = (zk.client().await, zk.client().await);
    let la = Lock::new(&a, &dir);
    let g1 = la.acquire(None).await.unwrap().unwrap();
    let g2 = la.acquire(Some(Duration::ZERO)).await.unwrap().unwrap();
    assert_eq!(
        g1.fencing_token(),
        g2.fencing_token(),
        "re-entry is the same hold"
    );
    assert_eq!(g1.path(), g2.path());
    assert!(la.is_held());

    let lb = Lock::new(&b, &dir);
    let t0 = Instant::now();
    assert!(lb
        .acquire(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .is_none());
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(lb.try_acquire().await.unwrap().is_none());
    assert_eq!(
        children(&a, &dir).await.len(),
        1,
        "timed-out waiters leave no node"
    );

    // Cancel a waiting acquire by dropping its future.
    let waiting = lb.acquire(None);
    assert!(timeout(Duration::from_millis(300), waiting).await.is_err());
    eventually("cancelled waiter's node removed", async || {
        children(&a, &dir).await.len() == 1
    })
    .await;

    g1.release().await.unwrap();
    assert_eq!(
        children(&a, &dir).await.len(),
        1,
        "still held by the second guard"
    );
    let token = g2.fencing_token();
    drop(g2); // released in the background
    let gb = within("lock after release", lb.acquire(None))
        .await
        .unwrap()
        .unwrap();
    assert!(gb.fencing_token() > token);
    assert!(!la.is_held());
    gb.release().await.unwrap();
    assert!(children(&a, &dir).await.is_empty());
}

#[tokio::test]
async fn lock_holder_expiry_frees_the_lock_and_tells_the_holder() {
    let zk = Ensemble::start("lockexp").await;
    let dir = zk.path("lock");
    let (a, b) = (zk.client().await, zk.client().await);
    let ga = Lock::new(&a, &dir).acquire(None).await.unwrap().unwrap();
    let lost = ga.lost();
    let lb = Lock::new(&b, &dir);
    let waiter = tokio::spawn(async move { lb.acquire(None).await.unwrap().unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "b must wait while a holds");

    // Ending the session may take the helper a few tries (the holder can win it back
    // first); the handover is timed from the end of the session.
    zk.expire(&a).await;
    let t0 = Instant::now();
    within("holder told of its loss", lost).await;
    let gb = within("waiter gets the lock", waiter).await.unwrap();
    assert!(
        t0.elapsed() < SESSION * 3,
        "handover took {:?}",
        t0.elapsed()
    );
    assert!(gb.fencing_token() > ga.fencing_token());
    assert_eq!(a.state(), SessionState::Expired);
    drop(ga); // releasing a lost lock is harmless
    gb.release().await.unwrap();
}

#[tokio::test]
async fn rwlock_readers_share_and_writers_exclude() {
    let zk = Ensemble::start("rw").await;
    let dir = zk.path("rw");
    let (a, b, c) = (zk.client().await, zk.client().await, zk.client().await);
    let (ra, rb, rc) = (
        ReadWriteLock::new(&a, &dir),
        ReadWriteLock::new(&b, &dir),
        ReadWriteLock::new(&c, &dir),
    );
    let r1 = ra
        .read(Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    let r2 = rb
        .read(Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert!(rc
        .write(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .is_none());

    // A queued writer holds back later readers (no writer starvation).
    let writer = tokio::spawn(async move {
        let w = rc.write(None).await.unwrap().unwrap();
        (rc, w)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = ReadWriteLock::new(&a, &dir);
    assert!(late
        .read(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .is_none());
    assert!(!writer.is_finished());

    r1.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished(), "one reader still holds");
    r2.release().await.unwrap();
    let (_rc, w) = within("writer", writer).await.unwrap();
    assert!(ra
        .read(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .is_none());
    assert!(rb
        .write(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .is_none());
    let token = w.fencing_token();
    w.release().await.unwrap();
    let r = ra
        .read(Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap();
    assert!(r.fencing_token() > token);
    r.release().await.unwrap();
    assert!(children(&a, &dir).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_bounds_holders() {
    let zk = Ensemble::start("sem").await;
    let dir = zk.path("sem");
    let clients = zk.clients(6).await;
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in &clients {
        let (c, dir, now, max) = (c.clone(), dir.clone(), now.clone(), max.clone());
        tasks.push(tokio::spawn(async move {
            let sem = Semaphore::new(&c, &dir, 3);
            for _ in 0..5 {
                let p = sem.acquire(None).await.unwrap().unwrap();
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                assert!(n <= 3, "{n} holders of 3 permits");
                tokio::time::sleep(Duration::from_millis(30)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                p.release().await.unwrap();
            }
        }));
    }
    for t in tasks {
        within("semaphore users", t).await.unwrap();
    }
    let max = max.load(Ordering::SeqCst);
    assert!((2..=3).contains(&max), "permits were shared: max {max}");
    let sem = Semaphore::new(&clients[0], &dir, 3);
    assert_eq!(sem.holders().await.unwrap(), 0);
    // Full semaphore: a fourth times out and leaves nothing behind.
    let held: Vec<_> = futures::future::join_all(clients[..3].iter().map(|c| {
        let dir = &dir;
        async move { Semaphore::new(c, dir, 3).acquire(None).await }
    }))
    .await;
    assert!(held.iter().all(|p| matches!(p, Ok(Some(_)))));
    assert!(sem
        .acquire(Some(Duration::from_millis(300)))
        .await
        .unwrap()
        .is_none());
    assert_eq!(sem.holders().await.unwrap(), 3);
}

#[tokio::test]
async fn election_hands_over_when_the_leader_session_dies() {
    let zk = Ensemble::start("elect").await;
    let dir = zk.path("election");
    let cs = zk.clients(4).await;
    let observer = LeaderElection::new(&cs[3], &dir);
    assert_eq!(observer.leader().await.unwrap(), None);

    let mut a = LeaderElection::new(&cs[0], &dir).join("a").await.unwrap();
    let mut b = LeaderElection::new(&cs[1], &dir).join("b").await.unwrap();
    let mut c = LeaderElection::new(&cs[2], &dir).join("c").await.unwrap();
    assert!(a.wait_for(Role::Leader, Some(Duration::from_secs(5))).await);
    assert!(
        !b.wait_for(Role::Leader, Some(Duration::from_millis(200)))
            .await
    );
    assert_eq!(b.role(), Role::Follower);
    let l = observer.leader().await.unwrap().unwrap();
    assert_eq!((l.id.as_str(), &l.payload[..]), (a.id(), &b"a"[..]));

    let t0 = Instant::now();
    zk.expire(&cs[0]).await;
    assert!(
        a.wait_for(Role::Lost, Some(SESSION * 2)).await,
        "old leader told"
    );
    assert!(
        b.wait_for(Role::Leader, Some(SESSION * 2)).await,
        "b takes over"
    );
    assert!(
        t0.elapsed() < SESSION * 2,
        "handover took {:?}",
        t0.elapsed()
    );
    assert_eq!(c.role(), Role::Follower);
    let l = observer.leader().await.unwrap().unwrap();
    assert_eq!(&l.payload[..], b"b");

    b.resign().await.unwrap();
    assert!(c.wait_for(Role::Leader, Some(Duration::from_secs(5))).await);
    assert_eq!(&observer.leader().await.unwrap().unwrap().payload[..], b"c");
    assert_eq!(c.role(), Role::Leader);
    assert_eq!(final_role(&mut a).await, Role::Lost);
}

/// A lost candidacy stays lost: `changed` reports `Lost` at once.
async fn final_role(c: &mut Candidate) -> Role {
    within("final role", c.changed()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_moves_1000_items_exactly_once_across_a_consumer_expiry() {
    let zk = Ensemble::start("queue").await;
    let dir = zk.path("q");
    let producers = zk.clients(3).await;
    let consumers = zk.clients(3).await;
    const PER: [usize; 3] = [334, 333, 333];

    let mut put = Vec::new();
    for (p, c) in producers.iter().enumerate() {
        let q = Queue::new(c, &dir);
        put.push(tokio::spawn(async move {
            for i in 0..PER[p] {
                q.put(format!("{p}:{i}")).await.unwrap();
            }
        }));
    }
    let taken = Arc::new(AtomicUsize::new(0));
    let (paused_tx, paused_rx) = tokio::sync::oneshot::channel::<()>();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
    let mut signals = Some((paused_tx, resume_rx));
    let mut take = Vec::new();
    for (k, c) in consumers.iter().enumerate() {
        let q = Queue::new(c, &dir);
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
    zk.expire(&consumers[0]).await;
    resume_tx.send(()).unwrap();
    for t in put {
        within("producers", t).await.unwrap();
    }
    let mut all = Vec::new();
    for (k, t) in take.into_iter().enumerate() {
        let got = timeout(Duration::from_secs(40), t)
            .await
            .expect("consumers")
            .unwrap();
        if k == 0 {
            assert_eq!(
                got.len(),
                100,
                "the expired consumer keeps what it took, no more"
            );
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
    let q = Queue::new(&producers[0], &dir);
    assert_eq!(q.len().await.unwrap(), 0);
    assert!(children(&producers[0], &format!("{dir}/taken"))
        .await
        .is_empty());
}

#[tokio::test]
async fn queue_priorities_and_blocking_take() {
    let zk = Ensemble::start("prio").await;
    let dir = zk.path("q");
    let (a, b) = (zk.client().await, zk.client().await);
    let q = Queue::new(&a, &dir);
    assert_eq!(q.take().await.unwrap(), None);
    let t0 = Instant::now();
    assert_eq!(
        q.take_timeout(Some(Duration::from_millis(300)))
            .await
            .unwrap(),
        None
    );
    assert!(t0.elapsed() >= Duration::from_millis(300));

    q.put("low-1").await.unwrap();
    q.put_with_priority("high", 1).await.unwrap();
    q.put("low-2").await.unwrap();
    q.put_with_priority("mid", 200).await.unwrap();
    assert_eq!(
        q.put_with_priority("x", 1000).await,
        Err(Error::BadArguments)
    );
    assert_eq!(q.len().await.unwrap(), 4);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(String::from_utf8(q.take().await.unwrap().unwrap().to_vec()).unwrap());
    }
    assert_eq!(seen, vec!["high", "mid", "low-1", "low-2"]);

    // A blocked taker wakes on a put from another client.
    let qa = q.clone();
    let waiter = tokio::spawn(async move { qa.take_timeout(None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    Queue::new(&b, &dir).put("wake").await.unwrap();
    let got = within("blocked take", waiter).await.unwrap().unwrap();
    assert_eq!(got.as_deref(), Some(&b"wake"[..]));
}

#[tokio::test]
async fn barrier_holds_waiters_until_removed() {
    let zk = Ensemble::start("barrier").await;
    let path = zk.path("gate");
    let cs = zk.clients(3).await;
    let gate = Barrier::new(&cs[0], &path);
    assert!(Barrier::new(&cs[1], &path)
        .wait(Some(Duration::ZERO))
        .await
        .unwrap());
    gate.set().await.unwrap();
    gate.set().await.unwrap();
    assert!(!Barrier::new(&cs[1], &path)
        .wait(Some(Duration::from_millis(200)))
        .await
        .unwrap());
    let waiters: Vec<_> = cs[1..]
        .iter()
        .map(|c| {
            let b = Barrier::new(c, &path);
            tokio::spawn(async move { b.wait(None).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    gate.remove().await.unwrap();
    for w in waiters {
        assert!(within("barrier release", w).await.unwrap().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_barrier_enters_and_leaves_together() {
    let zk = Ensemble::start("dbl").await;
    let dir = zk.path("round");
    let cs = zk.clients(4).await;
    let entered = Arc::new(AtomicUsize::new(0));
    let leaving = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let (c, dir, entered, leaving) = (c.clone(), dir.clone(), entered.clone(), leaving.clone());
        tasks.push(tokio::spawn(async move {
            if i == 3 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                assert_eq!(
                    entered.load(Ordering::SeqCst),
                    0,
                    "entered before all 4 came"
                );
            }
            let b = DoubleBarrier::new(&c, &dir, 4);
            assert!(b.enter(None).await.unwrap());
            entered.fetch_add(1, Ordering::SeqCst);
            // Stagger the leaving: nobody may return from leave before the last one.
            tokio::time::sleep(Duration::from_millis(100 * i as u64)).await;
            leaving.fetch_add(1, Ordering::SeqCst);
            assert!(b.leave(None).await.unwrap());
            // Nobody is out before the slowest (i = 3) has started leaving.
            assert_eq!(
                leaving.load(Ordering::SeqCst),
                4,
                "left before everyone started"
            );
        }));
    }
    for t in tasks {
        within("double barrier", t).await.unwrap();
    }
    assert_eq!(entered.load(Ordering::SeqCst), 4);
    assert!(
        children(&cs[0], &dir).await.is_empty(),
        "barrier is clean for reuse"
    );
    // A lone participant of a 2-barrier times out on enter and withdraws.
    let lone = DoubleBarrier::new(&cs[0], &dir, 2);
    assert!(!lone.enter(Some(Duration::from_millis(300))).await.unwrap());
    assert!(children(&cs[0], &dir).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_counts_every_add_once_under_contention() {
    let zk = Ensemble::start("counter").await;
    let path = zk.path("hits");
    let cs = zk.clients(5).await;
    let mut tasks = Vec::new();
    for c in &cs {
        let counter = Counter::new(c, &path);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..40 {
                seen.push(counter.add(1).await.unwrap());
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(within("counters", t).await.unwrap());
    }
    all.sort();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<i64>>(),
        "each add saw its own value"
    );
    let counter = Counter::new(&cs[0], &path);
    assert_eq!(counter.get().await.unwrap(), 200);
    assert!(!counter.compare_and_set(7, 8).await.unwrap());
    assert!(counter.compare_and_set(200, -5).await.unwrap());
    assert_eq!(counter.add(-1).await.unwrap(), -6);
    assert_eq!(
        Counter::new(&cs[1], &zk.path("fresh")).get().await.unwrap(),
        0
    );
}

#[tokio::test]
async fn discovery_cache_follows_joins_leaves_and_session_loss() {
    let mut zk = Ensemble::start("disc").await;
    let base = zk.path("services");
    let cs = zk.clients(4).await;
    let observer = ServiceDiscovery::new(&cs[3], &base);
    let mut cache = observer.cache("api").await.unwrap();
    assert!(cache.instances().is_empty());
    assert_eq!(cache.round_robin(), None);

    let mut regs = Vec::new();
    for (i, c) in cs[..3].iter().enumerate() {
        let inst =
            Instance::new(&format!("api-{i}"), "10.0.0.1", 8000 + i as u16).with("zone", "a");
        regs.push(
            ServiceDiscovery::new(c, &base)
                .register("api", &inst)
                .await
                .unwrap(),
        );
    }
    let ids = |v: &[Instance]| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    assert!(
        cache
            .wait_until(
                |v| ids(v) == ["api-0", "api-1", "api-2"],
                Duration::from_secs(5)
            )
            .await,
        "joins: {:?}",
        cache.instances()
    );
    let listed = observer.instances("api").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .any(|i| i.port == 8001 && i.metadata["zone"] == "a"));
    // Same id from another session is refused.
    let dup = ServiceDiscovery::new(&cs[3], &base)
        .register("api", &Instance::new("api-0", "x", 1))
        .await;
    assert_eq!(dup.unwrap_err(), Error::NodeExists);

    let rr: HashSet<_> = (0..3).map(|_| cache.round_robin().unwrap().id).collect();
    assert_eq!(rr.len(), 3, "round robin visits every instance");
    assert!(cache.random().is_some_and(|i| i.id.starts_with("api-")));

    regs.remove(1).unregister().await.unwrap();
    assert!(
        cache
            .wait_until(|v| ids(v) == ["api-0", "api-2"], Duration::from_secs(5))
            .await
    );

    zk.expire(&cs[0]).await;
    assert!(
        cache.wait_until(|v| ids(v) == ["api-2"], SESSION * 3).await,
        "an instance goes with its session: {:?}",
        cache.instances()
    );
    let back = zk.client().await;
    let r0 = ServiceDiscovery::new(&back, &base)
        .register("api", &Instance::new("api-0", "10.0.0.9", 9000))
        .await
        .unwrap();
    assert!(
        cache
            .wait_until(|v| ids(v) == ["api-0", "api-2"], Duration::from_secs(5))
            .await
    );
    assert_eq!(cache.instances()[0].address, "10.0.0.9");

    // The server restarts; the cache keeps following (watch restored, resync).
    if zk.restart().await {
        let late = zk.client().await;
        let _r3 = ServiceDiscovery::new(&late, &base)
            .register("api", &Instance::new("api-3", "10.0.0.3", 9003))
            .await
            .unwrap();
        drop(r0); // unregisters api-0
        assert!(
            cache
                .wait_until(|v| ids(v) == ["api-2", "api-3"], Duration::from_secs(10))
                .await,
            "after a restart: {:?}",
            cache.instances()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_rides_through_a_server_restart_without_orphans() {
    let mut zk = Ensemble::start("lockrestart").await;
    let dir = zk.path("lock");
    let clients = zk.clients(5).await;
    let holders = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in clients.iter() {
        let (c, dir, holders, done, tokens) = (
            c.clone(),
            dir.clone(),
            holders.clone(),
            done.clone(),
            tokens.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let lock = Lock::new(&c, &dir);
            for _ in 0..20 {
                let g = lock.acquire(None).await.unwrap().unwrap();
                assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                tokens.lock().unwrap().push(g.fencing_token());
                tokio::time::sleep(Duration::from_millis(5)).await;
                assert_eq!(holders.fetch_sub(1, Ordering::SeqCst), 1, "two holders");
                g.release().await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    eventually("some acquisitions", async || {
        done.load(Ordering::SeqCst) >= 20
    })
    .await;
    if !zk.restart().await {
        eprintln!("restart skipped: running against $ZABKEEPER_ADDRS");
    }
    for t in tasks {
        timeout(Duration::from_secs(40), t)
            .await
            .expect("acquisitions after the restart")
            .unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 100);
    let tokens = tokens.lock().unwrap().clone();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens: {tokens:?}");
    assert!(
        children(&clients[0], &dir).await.is_empty(),
        "no orphan node after lost answers"
    );
    for c in &clients {
        assert_eq!(c.state(), SessionState::Connected, "sessions survived");
    }
}

/// No herd: waiters queued on a lock each watch only the node just before their own,
/// so a release wakes the next waiter and nobody else. Every waiter talks through a
/// proxy that counts its requests: after each release only the new holder has sent
/// any (its re-listing); the others stayed asleep. Standalone, the server's watch
/// table shows one watch per waiter, each on a distinct node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_release_wakes_only_the_next_waiter() {
    const N: usize = 6;
    let zk = Ensemble::start("herd").await;
    let dir = zk.path("lock");
    let holder = zk.client().await;
    let first = Lock::new(&holder, &dir)
        .acquire(None)
        .await
        .unwrap()
        .unwrap();
    let target = zk.addrs.split(',').next().unwrap().parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut proxies = Vec::new();
    for i in 0..N {
        let proxy = common::CutProxy::start(target).await;
        let c = Client::connect(&proxy.addr.to_string(), opts())
            .await
            .unwrap();
        let (lock, tx) = (Lock::new(&c, &dir), tx.clone());
        tokio::spawn(async move {
            let g = lock.acquire(None).await.unwrap().unwrap();
            tx.send((i, g)).unwrap();
        });
        // Queue in order: waiter i is the (i+2)th node.
        eventually("the waiter queued", async || {
            children(&holder, &dir).await.len() == i + 2
        })
        .await;
        proxies.push(proxy);
    }
    if let Some(admin) = zk.admin {
        let wchs = || common::admin_json(admin, "/commands/wchs");
        eventually("every waiter watching", async || {
            wchs()["num_total_watches"] == N
        })
        .await;
        let wchs = wchs();
        assert_eq!(wchs["num_paths"], N, "one distinct node per waiter: {wchs}");
        assert_eq!(wchs["num_connections"], N, "one watch per waiter: {wchs}");
    }

    // A waiter's wake-up shows as a re-listing and a new watch; releases (deletes)
    // are not counted.
    let wakeups = |p: &common::CutProxy| (p.requests("GetChildren"), p.requests("Exists"));
    let mut guard = first;
    for turn in 0..N {
        // Let the queue settle before counting.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before: Vec<_> = proxies.iter().map(wakeups).collect();
        guard.release().await.unwrap();
        let (who, next) = within("the next holder", rx.recv()).await.unwrap();
        assert_eq!(who, turn, "FIFO: waiter {turn} is next");
        // Give woken waiters, if any, time to show themselves.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (i, p) in proxies.iter().enumerate() {
            let (lists, watches) = wakeups(p);
            let sent = (lists - before[i].0, watches - before[i].1);
            if i == turn {
                assert_eq!(sent, (1, 0), "the next waiter re-lists once, and holds");
            } else {
                assert_eq!(sent, (0, 0), "waiter {i} woke up on release {turn}");
            }
        }
        guard = next;
    }
    guard.release().await.unwrap();
    assert!(children(&holder, &dir).await.is_empty());
}
