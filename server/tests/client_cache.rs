//! The client cache on a real loopback ensemble: a reader with the cache never
//! observes a value older than one it, or its own writes, already saw, while
//! writers on the other members change the same nodes, nor across the loss of its
//! member (the cache is emptied with the connection); and the size bound and the
//! counters hold over many keys.

mod common;

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zabkeeper_client::{Client, ConnectOptions, CreateMode, Error, SessionState};

fn opts(cache: usize) -> ConnectOptions {
    ConnectOptions {
        session_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        cache_capacity: cache,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_read_is_never_older_than_what_the_session_saw() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let reader_member = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let reader = Client::connect(&cluster.addr(reader_member).to_string(), opts(64))
        .await
        .unwrap();
    reader
        .create("/c", "0", CreateMode::Persistent)
        .await
        .unwrap();
    reader
        .create("/kids", "", CreateMode::Persistent)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (n, member) in [leader, other].into_iter().enumerate() {
        let w = Client::connect(&cluster.addr(member).to_string(), opts(0))
            .await
            .unwrap();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                w.set_data("/c", format!("w{n}-{i}"), None).await.unwrap();
                if i.is_multiple_of(5) {
                    w.create(&format!("/kids/w{n}-{i}"), "", CreateMode::Persistent)
                        .await
                        .unwrap();
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            i
        }));
    }

    let mut max_seen = 0;
    let mut kids_seen = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut round = 0u64;
    while std::time::Instant::now() < deadline {
        round += 1;
        let (_, stat) = reader.get_data_cached("/c").await.unwrap();
        assert!(
            stat.version >= max_seen,
            "cached version {} older than {} already seen",
            stat.version,
            max_seen
        );
        max_seen = stat.version;
        if round.is_multiple_of(7) {
            // A plain read moves the session's zxid; the cache must keep up at once.
            let (_, plain) = reader.get_data("/c").await.unwrap();
            let (_, cached) = reader.get_data_cached("/c").await.unwrap();
            assert!(cached.version >= plain.version, "{cached:?} vs {plain:?}");
            max_seen = cached.version;
        }
        if round.is_multiple_of(13) {
            // The reader's own write is visible in its next cached read.
            let mine = reader.set_data("/c", "r", None).await.unwrap();
            let (data, cached) = reader.get_data_cached("/c").await.unwrap();
            assert!(cached.version >= mine.version);
            if cached.version == mine.version {
                assert_eq!(&data[..], b"r");
            }
            max_seen = cached.version;
            let path = format!("/kids/r{round}");
            reader
                .create(&path, "", CreateMode::Persistent)
                .await
                .unwrap();
            let kids = reader.get_children_cached("/kids").await.unwrap();
            assert!(kids.contains(&format!("r{round}")), "own child missing");
        }
        let kids = reader.get_children_cached("/kids").await.unwrap();
        assert!(kids.len() >= kids_seen, "a listing went back in time");
        kids_seen = kids.len();
    }
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    let stats = reader.cache_stats().unwrap();
    assert!(writes > 20, "writers made progress ({writes})");
    assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
    assert!(stats.invalidations > 0, "{stats:?}");
    assert!(stats.entries <= stats.capacity);
    eprintln!("reader rounds {round}, writes {writes}, cache {stats:?}");
}

/// The reader's member is killed under it while writers on the other members keep
/// changing the nodes it reads. The session moves to another member; the cache is
/// empty whenever the session is disconnected (changes made meanwhile are not seen,
/// so nothing cached may survive), no cached read before, across or after the move
/// is older than what the session already saw, and the cache works again after the
/// move (hits resume, kept valid by the new member's watch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_emptied_on_connection_loss_and_never_goes_back_across_a_failover() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let leader = cluster.leader(Duration::from_secs(20)).await;
    let all = (0..3)
        .map(|i| cluster.addr(i).to_string())
        .collect::<Vec<_>>()
        .join(",");
    // The reader on a follower (members are tried in random order).
    let (reader, reader_member) = loop {
        let c = Client::connect(&all, opts(64)).await.unwrap();
        let on = c.connected_server().unwrap();
        if let Some(i) = (0..3).find(|&i| i != leader && cluster.addr(i).to_string() == on) {
            break (c, i);
        }
        c.close().await.unwrap();
    };
    reader
        .create("/c", "0", CreateMode::Persistent)
        .await
        .unwrap();
    reader
        .create("/kids", "", CreateMode::Persistent)
        .await
        .unwrap();

    // While disconnected the cache must be empty: sampled at each state change.
    let (samples_tx, mut samples) = tokio::sync::mpsc::unbounded_channel();
    let watcher = {
        let reader = reader.clone();
        let mut states = Box::pin(reader.state_stream());
        tokio::spawn(async move {
            while let Some(s) = futures::StreamExt::next(&mut states).await {
                if s == SessionState::Disconnected || s == SessionState::Connecting {
                    let entries = reader.cache_stats().unwrap().entries;
                    // Only a sample taken while still disconnected counts.
                    if !matches!(reader.state(), SessionState::Connected) {
                        let _ = samples_tx.send(entries);
                    }
                }
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (n, member) in (0..3).filter(|&i| i != reader_member).enumerate() {
        let w = Client::connect(&cluster.addr(member).to_string(), opts(0))
            .await
            .unwrap();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                w.set_data("/c", format!("w{n}-{i}"), None).await.unwrap();
                if i.is_multiple_of(5) {
                    w.create(&format!("/kids/w{n}-{i}"), "", CreateMode::Persistent)
                        .await
                        .unwrap();
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            i
        }));
    }

    let mut seen = Seen::default();
    seen.read_for(&reader, Duration::from_secs(2)).await;
    let before = reader.cache_stats().unwrap();
    assert!(before.hits > 0 && before.entries > 0, "warm: {before:?}");

    let session = reader.session_id();
    let zxid_before_kill = reader.last_zxid();
    cluster.kill9(reader_member);
    seen.read_for(&reader, Duration::from_secs(3)).await;
    let moved_to = reader.connected_server().expect("reconnected");
    assert_ne!(moved_to, cluster.addr(reader_member).to_string());
    assert_eq!(reader.session_id(), session, "the same session moved");
    assert!(reader.last_zxid() >= zxid_before_kill);

    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    watcher.abort();
    let mut disconnected = Vec::new();
    while let Ok(n) = samples.try_recv() {
        disconnected.push(n);
    }
    let after = reader.cache_stats().unwrap();
    eprintln!(
        "writes {writes}, rounds {}, cache before the kill {before:?}, after {after:?}, \
         entries while disconnected {disconnected:?}",
        seen.rounds
    );
    assert!(!disconnected.is_empty(), "the kill was noticed");
    assert!(
        disconnected.iter().all(|&n| n == 0),
        "cache entries survived a connection loss: {disconnected:?}"
    );
    assert!(after.misses > before.misses, "refilled after the move");
    assert!(
        after.hits > seen.hits_at_move,
        "hits resume after the move: {after:?}"
    );
    assert!(after.entries <= after.capacity);
}

/// What a reader has seen so far; every cached read must be at least as new.
#[derive(Default)]
struct Seen {
    version: i32,
    kids: usize,
    rounds: u64,
    /// Hits when the reader last found itself reconnected elsewhere.
    hits_at_move: u64,
    server: Option<String>,
}

impl Seen {
    /// Cached reads of /c and /kids for `d`, checked against what was seen, with a
    /// plain read now and then (it moves the session's zxid: the cache must keep up).
    async fn read_for(&mut self, reader: &Client, d: Duration) {
        let deadline = std::time::Instant::now() + d;
        while std::time::Instant::now() < deadline {
            // A read in flight when the connection is lost fails with ConnectionLoss
            // (only writes are retried): the round is tried again.
            if let Err(e) = self.round(reader).await {
                assert_eq!(e, Error::ConnectionLoss, "a read failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    async fn round(&mut self, reader: &Client) -> Result<(), Error> {
        {
            self.rounds += 1;
            let (_, stat) = reader.get_data_cached("/c").await?;
            assert!(
                stat.version >= self.version,
                "cached version {} older than {} already seen",
                stat.version,
                self.version
            );
            self.version = stat.version;
            if self.rounds.is_multiple_of(7) {
                let (_, plain) = reader.get_data("/c").await?;
                let (_, cached) = reader.get_data_cached("/c").await?;
                assert!(cached.version >= plain.version, "{cached:?} vs {plain:?}");
                self.version = cached.version;
            }
            let kids = reader.get_children_cached("/kids").await?;
            assert!(kids.len() >= self.kids, "a listing went back in time");
            self.kids = kids.len();
            let server = reader.connected_server();
            if server.is_some() && server != self.server {
                self.server = server;
                self.hits_at_move = reader.cache_stats().unwrap().hits;
            }
        }
        Ok(())
    }
}

/// The bound holds whatever the number of keys, least recently used first out, and
/// the counters add up: every cached lookup is exactly one hit or one miss.
#[tokio::test]
async fn the_cache_stays_within_its_capacity_over_many_keys_and_counts_every_lookup() {
    const CAP: usize = 8;
    const KEYS: usize = 100;
    let server = ServerProcess::start(&[]);
    let c = Client::connect(&server.addr.to_string(), opts(CAP))
        .await
        .unwrap();
    c.create("/k", "", CreateMode::Persistent).await.unwrap();
    for i in 0..KEYS {
        c.create(&format!("/k/{i}"), format!("{i}"), CreateMode::Persistent)
            .await
            .unwrap();
    }
    // A plain read after the creates: their watch events are in before its answer,
    // so none can drop an entry filled later.
    c.get_data("/k").await.unwrap();
    let mut lookups = 0u64;
    let read = async |i: usize, lookups: &mut u64| {
        let (data, _) = c.get_data_cached(&format!("/k/{i}")).await.unwrap();
        assert_eq!(data, format!("{i}").as_bytes());
        *lookups += 1;
        let s = c.cache_stats().unwrap();
        assert!(s.entries <= CAP, "over the bound: {s:?}");
        assert_eq!(s.hits + s.misses, *lookups, "{s:?}");
    };
    // Every key once: all misses, the last CAP stay.
    for i in 0..KEYS {
        read(i, &mut lookups).await;
    }
    let s = c.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses, s.entries), (0, KEYS as u64, CAP));
    // The last CAP again: all hits.
    for i in KEYS - CAP..KEYS {
        read(i, &mut lookups).await;
    }
    let s = c.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses), (CAP as u64, KEYS as u64));
    // A cycle longer than the capacity: LRU evicts each key before its turn comes.
    for i in 0..KEYS {
        read(i, &mut lookups).await;
    }
    let s = c.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses), (CAP as u64, 2 * KEYS as u64));
    // A listing shares the bound with the data.
    assert_eq!(c.get_children_cached("/k").await.unwrap().len(), KEYS);
    assert_eq!(c.get_children_cached("/k").await.unwrap().len(), KEYS);
    let s = c.cache_stats().unwrap();
    assert_eq!((s.hits, s.misses), (CAP as u64 + 1, 2 * KEYS as u64 + 1));
    assert_eq!((s.entries, s.capacity, s.invalidations), (CAP, CAP, 0));
    assert!((s.hit_rate() - s.hits as f64 / (s.hits + s.misses) as f64).abs() < 1e-12);
}
