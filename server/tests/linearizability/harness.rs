//! A 3-member loopback ensemble whose peer links run through test-controlled
//! proxies (one per directed link: member i's `members` list points at a proxy
//! in front of member j's peer port), concurrent clients recording histories,
//! and a seeded fault schedule (kill -9 and restart, silent and noticed
//! partitions, one-way cuts).

use super::proxy::{Mode, Proxy};
use crate::common::{free_port, probe, ServerProcess};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zabkeeper_check::{History, Op, OpKind, SessionRead, State};
use zabkeeper_client::{Client, ConnectOptions, Error};

pub struct Net {
    pub members: Vec<Option<ServerProcess>>,
    dirs: Vec<PathBuf>,
    pub client_ports: Vec<u16>,
    /// proxies[i][j]: member i dials member j through it.
    proxies: Vec<Vec<Option<Proxy>>>,
    specs: Vec<String>,
    env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

impl Net {
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Net {
        let tmp = tempfile::tempdir().unwrap();
        let peer: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let client: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut proxies = Vec::new();
        let mut specs = Vec::new();
        for i in 0..n {
            let mut row = Vec::new();
            let mut spec = Vec::new();
            for j in 0..n {
                if i == j {
                    row.push(None);
                    spec.push(format!("{}=127.0.0.1:{}:{}", j + 1, peer[j], client[j]));
                } else {
                    let target: SocketAddr = format!("127.0.0.1:{}", peer[j]).parse().unwrap();
                    let p = Proxy::start(target).await;
                    spec.push(format!("{}=127.0.0.1:{}:{}", j + 1, p.port, client[j]));
                    row.push(Some(p));
                }
            }
            proxies.push(row);
            specs.push(spec.join(","));
        }
        let mut net = Net {
            members: (0..n).map(|_| None).collect(),
            dirs: (0..n)
                .map(|i| tmp.path().join(format!("m{}", i + 1)))
                .collect(),
            client_ports: client,
            proxies,
            specs,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: tmp,
        };
        for i in 0..n {
            net.start_member(i);
        }
        net
    }

    pub fn n(&self) -> usize {
        self.members.len()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        format!("127.0.0.1:{}", self.client_ports[i])
            .parse()
            .unwrap()
    }

    /// The client connect string, starting with member `first`.
    pub fn servers_from(&self, first: usize) -> String {
        (0..self.n())
            .map(|k| format!("127.0.0.1:{}", self.client_ports[(first + k) % self.n()]))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_member(&mut self, i: usize) {
        let id = (i + 1).to_string();
        let args = ["--id", &id, "--members", &self.specs[i]];
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (dir, port) = (self.dirs[i].clone(), self.client_ports[i]);
        let p =
            tokio::task::block_in_place(|| ServerProcess::start_in_env(&dir, port, &args, &env));
        self.members[i] = Some(p);
    }

    pub fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].take() {
            p.kill9();
        }
    }

    /// Sets the mode of the link member `from` dials member `to` on.
    pub fn link(&self, from: usize, to: usize, mode: Mode) {
        if let Some(p) = &self.proxies[from][to] {
            p.set(mode);
        }
    }

    /// Cuts (or heals) every link to and from member `i`.
    pub fn isolate(&self, i: usize, mode: Mode) {
        for j in 0..self.n() {
            if j != i {
                self.link(i, j, mode);
                self.link(j, i, mode);
            }
        }
    }

    pub fn heal_all(&self) {
        for i in 0..self.n() {
            self.isolate(i, Mode::Up);
        }
    }

    /// Index of the serving leader, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            for i in 0..self.n() {
                if self.members[i].is_some() {
                    if let Some(s) = probe(self.addr(i)).await {
                        if s.role == "leading" && s.serving {
                            return i;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_all_serving(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for i in 0..self.n() {
            if self.members[i].is_none() {
                continue;
            }
            while !probe(self.addr(i)).await.is_some_and(|s| s.serving) {
                assert!(Instant::now() < deadline, "member {i} not serving");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

pub const KEYS: [&str; 3] = ["/k0", "/k1", "/k2"];

pub fn init_state() -> State {
    (b"init".to_vec(), 0)
}

pub fn nanos(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// A client's loop: random reads (linearizable and plain), writes and
/// compare-and-sets on the keys, until `stop`; a new session when one expires.
pub async fn worker(
    id: usize,
    servers: String,
    seed: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
    rec: Arc<Mutex<History>>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    let mut versions: HashMap<&str, i32> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let opts = ConnectOptions {
            session_timeout: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(4),
            ..ConnectOptions::default()
        };
        let client = match Client::connect(&servers, opts).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let lin = client.linearizable();
        while !stop.load(Ordering::Relaxed) {
            let key = KEYS[rng.gen_range(0..KEYS.len())];
            n += 1;
            let value = format!("c{id}-{n}").into_bytes();
            let dice = rng.gen_range(0..100);
            let invoke = nanos(start);
            let outcome: Result<(), Error> = if dice < 30 {
                match lin.get_data(key).await {
                    Ok((data, stat)) => {
                        let complete = Some(nanos(start));
                        versions.insert(key, stat.version);
                        let mut r = rec.lock().unwrap();
                        r.wrote(key, stat.mzxid);
                        r.op(
                            key,
                            Op {
                                client: id,
                                invoke,
                                complete,
                                kind: OpKind::Read((data.to_vec(), stat.version)),
                            },
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else if dice < 50 {
                let seen = client.last_zxid();
                match client.get_data(key).await {
                    Ok((_, stat)) => {
                        versions.insert(key, stat.version);
                        let mut r = rec.lock().unwrap();
                        r.wrote(key, stat.mzxid);
                        r.session_read(SessionRead {
                            key: key.to_string(),
                            seen,
                            mzxid: stat.mzxid,
                        });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            } else {
                let expected = if dice < 75 {
                    None
                } else {
                    Some(versions.get(key).copied().unwrap_or(0))
                };
                let result = client.set_data(key, value.clone(), expected).await;
                let complete = nanos(start);
                let mut r = rec.lock().unwrap();
                let (kind, complete, res) = match (&result, expected) {
                    (Ok(stat), e) => {
                        versions.insert(key, stat.version);
                        r.wrote(key, stat.mzxid);
                        let kind = match e {
                            None => OpKind::Write(value),
                            Some(expected) => OpKind::Cas {
                                expected,
                                data: value,
                                ok: true,
                            },
                        };
                        (kind, Some(complete), Ok(()))
                    }
                    (Err(Error::BadVersion), Some(expected)) => (
                        OpKind::Cas {
                            expected,
                            data: value,
                            ok: false,
                        },
                        Some(complete),
                        Ok(()),
                    ),
                    // Any other failure: it may or may not have happened.
                    (Err(e), e2) => (
                        match e2 {
                            None => OpKind::Write(value),
                            Some(expected) => OpKind::Cas {
                                expected,
                                data: value,
                                ok: true,
                            },
                        },
                        None,
                        Err(e.clone()),
                    ),
                };
                r.op(
                    key,
                    Op {
                        client: id,
                        invoke,
                        complete,
                        kind,
                    },
                );
                res
            };
            match outcome {
                Ok(()) => {}
                Err(Error::SessionExpired) | Err(Error::Closed) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..4))).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
    }
}

/// The result of one schedule.
pub struct Outcome {
    pub ops: usize,
    pub summary: String,
    pub faults: Vec<String>,
}

/// Runs one randomized fault schedule of `duration` with `clients` workers and
/// checks the history.
pub async fn run_schedule(
    seed: u64,
    duration: Duration,
    clients: usize,
) -> Result<Outcome, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    // `ZK_HISTORY_SERVER_FAULT=local-linearizable|stale-connect` runs deliberately
    // broken members, to see the checker fail on randomized schedules too.
    let fault = std::env::var("ZK_HISTORY_SERVER_FAULT").ok();
    let env: Vec<(&str, &str)> = fault
        .as_deref()
        .map(|f| vec![("ZABKEEPER_UNSAFE_TEST_FAULT", f)])
        .unwrap_or_default();
    let mut net = Net::start(3, &env).await;
    net.leader(Duration::from_secs(30)).await;
    net.wait_all_serving(Duration::from_secs(30)).await;
    {
        let c = Client::connect(&net.servers_from(0), ConnectOptions::default())
            .await
            .map_err(|e| format!("setup: {e}"))?;
        for k in KEYS {
            c.create(
                k,
                b"init".to_vec(),
                zabkeeper_client::CreateMode::Persistent,
            )
            .await
            .map_err(|e| format!("setup: {e}"))?;
        }
        let _ = c.close().await;
    }
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let rec = Arc::new(Mutex::new(History::default()));
    let mut tasks = Vec::new();
    for id in 0..clients {
        tasks.push(tokio::spawn(worker(
            id,
            net.servers_from(id % 3),
            seed.wrapping_mul(31).wrapping_add(id as u64),
            start,
            stop.clone(),
            rec.clone(),
        )));
    }
    let mut faults = Vec::new();
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1200))).await;
        let leader = {
            let mut l = None;
            for i in 0..3 {
                if let Some(s) = probe(net.addr(i)).await {
                    if s.role == "leading" {
                        l = Some(i);
                    }
                }
            }
            l
        };
        // Half of the faults target the leader.
        let target = match leader {
            Some(l) if rng.gen_bool(0.5) => l,
            _ => rng.gen_range(0..3),
        };
        let hold = Duration::from_millis(rng.gen_range(300..2500));
        let t = start.elapsed().as_millis();
        match rng.gen_range(0..5) {
            0 => {
                faults.push(format!("{t} ms: kill -9 member {target} for {hold:?}"));
                net.kill9(target);
                tokio::time::sleep(hold).await;
                net.start_member(target);
            }
            1 => {
                faults.push(format!(
                    "{t} ms: isolate member {target} (reset) for {hold:?}"
                ));
                net.isolate(target, Mode::Down);
                tokio::time::sleep(hold).await;
                net.isolate(target, Mode::Up);
            }
            2 => {
                faults.push(format!(
                    "{t} ms: isolate member {target} (silent) for {hold:?}"
                ));
                net.isolate(target, Mode::Paused);
                tokio::time::sleep(hold).await;
                net.isolate(target, Mode::Up);
            }
            3 => {
                let other = (target + rng.gen_range(1..3)) % 3;
                let mode = if rng.gen_bool(0.5) {
                    Mode::Paused
                } else {
                    Mode::Down
                };
                faults.push(format!(
                    "{t} ms: cut link {target}->{other} ({mode:?}) for {hold:?}"
                ));
                net.link(target, other, mode);
                tokio::time::sleep(hold).await;
                net.link(target, other, Mode::Up);
            }
            _ => faults.push(format!("{t} ms: calm")),
        }
    }
    net.heal_all();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
    }
    // Every member ends with the same state: after a sync, each key's data,
    // version and mzxid read the same on all three (a member that applied a txn
    // twice, or kept one the others dropped, shows here even when no client read
    // it there).
    let converged = converged(&net).await;
    let rec = rec.lock().unwrap();
    let checked = tokio::task::block_in_place(|| rec.check(&init_state()));
    if let Err(e) = converged {
        return Err(format!("{e}\nfaults:\n{}", faults.join("\n")));
    }
    match checked {
        Ok(counts) => Ok(Outcome {
            ops: counts.total(),
            summary: counts.to_string(),
            faults,
        }),
        Err(e) => Err(format!("{e}\nfaults:\n{}", faults.join("\n"))),
    }
}

/// Reads every key on every member after a `sync` and compares them.
async fn converged(net: &Net) -> Result<(), String> {
    net.wait_all_serving(Duration::from_secs(30)).await;
    let mut views = Vec::new();
    for i in 0..net.n() {
        let addr = net.addr(i).to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        let view = loop {
            let attempt = async {
                let c = Client::connect(&addr, ConnectOptions::default()).await?;
                c.sync("/").await?;
                let mut view = Vec::new();
                for k in KEYS {
                    let (data, stat) = c.get_data(k).await?;
                    view.push((
                        k,
                        String::from_utf8_lossy(&data).into_owned(),
                        stat.version,
                        stat.mzxid,
                    ));
                }
                let _ = c.close().await;
                Ok::<_, Error>(view)
            };
            match attempt.await {
                Ok(v) => break v,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("member {i} not readable after the heal: {e}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        views.push(view);
    }
    for i in 1..views.len() {
        if views[i] != views[0] {
            return Err(format!(
                "members diverged after the heal: member 0 {:?}, member {i} {:?}",
                views[0], views[i]
            ));
        }
    }
    Ok(())
}
