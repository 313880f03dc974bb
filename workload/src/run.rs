//! The workload: `clients` independent sessions, each doing one operation at a time
//! for `duration`, chosen at random among unique creates, register writes, plain and
//! linearizable register reads, lock acquire/release and queue put/take, every one
//! recorded in the history. `readers_per_member` more sessions each stay on one member
//! and only read (half plain, half linearizable): the sessions that see a member
//! that lost its quorum, since a mixed session soon blocks there on a write.
//!
//! A client rides through faults as an application would: the client library moves
//! it to another member when its connection breaks; an operation whose answer was
//! lost is recorded `info` and the client goes on; a session that expired is replaced
//! by a new one (a new session is a new process for the checker: a new client id).

use std::time::Duration;

use rand::Rng;
use zabkeeper_client::recipes::{Lock, Queue};
use zabkeeper_client::{Client, ConnectOptions, CreateMode, Error};

use crate::history::{now_ms, Event, Kind, Recorder};

/// Parameters of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub servers: String,
    pub clients: usize,
    pub duration: Duration,
    /// Root node of this run; everything lives under it.
    pub prefix: String,
    pub session_timeout: Duration,
    pub request_timeout: Duration,
    /// Registers read and written (`<prefix>/r/k0..`).
    pub registers: usize,
    /// Read-only sessions pinned to each member of `servers`.
    pub readers_per_member: usize,
    /// The run also ends, before `duration`, once this file exists.
    pub stop_file: Option<std::path::PathBuf>,
}

impl Plan {
    pub fn created_dir(&self) -> String {
        format!("{}/w", self.prefix)
    }
    pub fn register(&self, k: usize) -> String {
        format!("{}/r/k{k}", self.prefix)
    }
    pub fn lock_dir(&self) -> String {
        format!("{}/lock", self.prefix)
    }
    pub fn queue_dir(&self) -> String {
        format!("{}/q", self.prefix)
    }
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            session_timeout: self.session_timeout,
            request_timeout: self.request_timeout,
            ..Default::default()
        }
    }
}

/// Whether an error leaves the outcome unknown (`info`) rather than certain (`fail`).
pub fn uncertain(e: &Error) -> bool {
    matches!(
        e,
        Error::ConnectionLoss | Error::OperationTimeout | Error::SessionExpired | Error::Closed
    )
}

/// Connects, retrying until `until` (the ensemble may be down or electing).
pub async fn connect(plan: &Plan, until: tokio::time::Instant) -> Option<Client> {
    while tokio::time::Instant::now() < until {
        match Client::connect(&plan.servers, plan.options()).await {
            Ok(c) => return Some(c),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    None
}

/// Creates the run's directories (retrying through faults). The registers must be
/// new (empty, version 0): the linearizability check starts from that state.
pub async fn prepare(plan: &Plan) -> crate::error::Result<()> {
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    let c = connect(plan, until).await.ok_or(Error::ConnectionLoss)?;
    let mut dirs = vec![
        plan.prefix.clone(),
        plan.created_dir(),
        format!("{}/r", plan.prefix),
    ];
    dirs.extend((0..plan.registers).map(|k| plan.register(k)));
    for d in dirs {
        loop {
            match c
                .create(&d, "".as_bytes().to_vec(), CreateMode::Persistent)
                .await
            {
                Ok(_) | Err(Error::NodeExists) => break,
                Err(e) if uncertain(&e) && tokio::time::Instant::now() < until => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    for k in 0..plan.registers {
        let (data, stat) = loop {
            match c.linearizable().get_data(&plan.register(k)).await {
                Err(e) if uncertain(&e) && tokio::time::Instant::now() < until => continue,
                r => break r?,
            }
        };
        if !data.is_empty() || stat.version != 0 {
            return Err(crate::error::Error::Setup(format!(
                "register {} was written before this run (version {}): use a new --prefix",
                plan.register(k),
                stat.version
            )));
        }
    }
    let _ = c.close().await;
    Ok(())
}

struct Session {
    id: usize,
    zk: Client,
    /// The same session, reading with the linearizable consistency flag.
    lin: Client,
    lock: Lock,
    queue: Queue,
}

/// Runs the workload; returns when `plan.duration` has passed or the stop file
/// appeared (operations under way then complete first).
pub async fn run(plan: Plan, rec: Recorder) {
    let end = tokio::time::Instant::now() + plan.duration;
    let stop = tokio_stop(plan.stop_file.clone(), end);
    // Mixed sessions use every member; readers one each.
    let mut sessions: Vec<(Plan, bool)> = vec![(plan.clone(), false); plan.clients];
    for member in plan.servers.split(',') {
        let pinned = Plan {
            servers: member.to_string(),
            ..plan.clone()
        };
        sessions.extend(std::iter::repeat_n((pinned, true), plan.readers_per_member));
    }
    let ids = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(sessions.len()));
    let mut tasks = Vec::new();
    for (c, (plan, reader)) in sessions.into_iter().enumerate() {
        let (rec, ids, stop) = (rec.clone(), ids.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            client(c, plan, reader, rec, ids, end, stop).await
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = rec.flush();
}

async fn client(
    first_id: usize,
    plan: Plan,
    reader: bool,
    rec: Recorder,
    ids: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    end: tokio::time::Instant,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    let mut id = first_id;
    let going = || tokio::time::Instant::now() < end && !*stop.borrow();
    while going() {
        let Some(zk) = connect(&plan, end).await else {
            return;
        };
        let s = Session {
            id,
            lock: Lock::new(&zk, &plan.lock_dir()),
            queue: Queue::new(&zk, &plan.queue_dir()),
            lin: zk.linearizable(),
            zk,
        };
        while going() && !s.zk.state().is_terminal() {
            seq += 1;
            if reader {
                let linearizable = rand::thread_rng().gen_bool(0.5);
                read(&plan, &rec, &s, linearizable).await;
                // Reads are local and fast: a pause keeps the history checkable.
                tokio::time::sleep(Duration::from_millis(5)).await;
            } else {
                step(&plan, &rec, &s, seq).await;
            }
        }
        let _ = s.zk.close().await;
        // A new session is a new process for the checker.
        id = ids.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A flag that turns true once `file` exists (checked every 100 ms until `end`).
fn tokio_stop(
    file: Option<std::path::PathBuf>,
    end: tokio::time::Instant,
) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    if let Some(file) = file {
        tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                if file.exists() {
                    let _ = tx.send(true);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    rx
}

fn event(s: &Session, kind: Kind, op: &str, key: &str) -> Event {
    Event {
        time_ms: now_ms(),
        client: s.id,
        kind,
        op: op.into(),
        key: key.into(),
        value: None,
        zxid: None,
        note: None,
        seen_zxid: None,
        version: None,
    }
}

fn completion<T>(s: &Session, op: &str, key: &str, r: &Result<T, Error>) -> Event {
    match r {
        Ok(_) => event(s, Kind::Ok, op, key),
        Err(e) => Event {
            note: Some(e.to_string()),
            ..event(
                s,
                if uncertain(e) { Kind::Info } else { Kind::Fail },
                op,
                key,
            )
        },
    }
}

fn invoke(rec: &Recorder, s: &Session, op: &str, key: &str, value: Option<String>) {
    rec.record(&Event {
        value,
        note: s.zk.connected_server(),
        seen_zxid: Some(s.zk.last_zxid()),
        ..event(s, Kind::Invoke, op, key)
    });
}

/// A read of a random register, plain or `linearizable`.
async fn read(plan: &Plan, rec: &Recorder, s: &Session, linearizable: bool) {
    let key = plan.register(rand::thread_rng().gen_range(0..plan.registers));
    let (op, zk) = if linearizable {
        ("lread", &s.lin)
    } else {
        ("read", &s.zk)
    };
    invoke(rec, s, op, &key, None);
    let r = zk.get_data(&key).await;
    let mut e = completion(s, op, &key, &r);
    if let Ok((data, stat)) = &r {
        e.value = Some(String::from_utf8_lossy(data).into_owned());
        e.zxid = Some(stat.mzxid);
        e.version = Some(stat.version);
    }
    rec.record(&e);
}

/// One random operation (two for a lock: acquire, then release).
async fn step(plan: &Plan, rec: &Recorder, s: &Session, seq: u64) {
    let value = format!("c{}-{seq}", s.id);
    let roll = rand::thread_rng().gen_range(0..100);
    if roll < 25 {
        let key = format!("{}/{value}", plan.created_dir());
        invoke(rec, s, "create", &key, Some(value.clone()));
        let r =
            s.zk.create_with(
                &key,
                value.clone().into_bytes(),
                zabkeeper_client::CreateOptions::new(CreateMode::Persistent),
            )
            .await;
        let mut e = completion(s, "create", &key, &r);
        if let Ok((_, stat)) = &r {
            e.value = Some(value);
            e.zxid = Some(stat.czxid);
        }
        rec.record(&e);
    } else if roll < 45 {
        let key = plan.register(rand::thread_rng().gen_range(0..plan.registers));
        invoke(rec, s, "write", &key, Some(value.clone()));
        let r = s.zk.set_data(&key, value.clone().into_bytes(), None).await;
        let mut e = completion(s, "write", &key, &r);
        if let Ok(stat) = &r {
            e.value = Some(value);
            e.zxid = Some(stat.mzxid);
            e.version = Some(stat.version);
        }
        rec.record(&e);
    } else if roll < 70 {
        // Half the reads plain (session-consistent), half linearizable.
        read(plan, rec, s, roll >= 58).await;
    } else if roll < 80 {
        let key = plan.lock_dir();
        invoke(rec, s, "acquire", &key, None);
        let r = s.lock.acquire(Some(Duration::from_secs(3))).await;
        match r {
            Ok(Some(g)) => {
                let token = g.fencing_token();
                rec.record(&Event {
                    value: Some(token.to_string()),
                    zxid: Some(token),
                    ..event(s, Kind::Ok, "acquire", &key)
                });
                // The protected work: a short hold.
                tokio::time::sleep(Duration::from_millis(10)).await;
                invoke(rec, s, "release", &key, Some(token.to_string()));
                let r = g.release().await;
                let mut e = completion(s, "release", &key, &r);
                e.value = Some(token.to_string());
                rec.record(&e);
            }
            Ok(None) => rec.record(&Event {
                note: Some("timed out".into()),
                ..event(s, Kind::Fail, "acquire", &key)
            }),
            Err(e) => rec.record(&completion::<()>(s, "acquire", &key, &Err(e))),
        }
    } else if roll < 90 {
        let key = plan.queue_dir();
        invoke(rec, s, "put", &key, Some(value.clone()));
        let r = s.queue.put(value.clone()).await;
        let mut e = completion(s, "put", &key, &r);
        e.value = Some(value);
        rec.record(&e);
    } else {
        let key = plan.queue_dir();
        invoke(rec, s, "take", &key, None);
        let r = s.queue.take().await;
        let mut e = completion(s, "take", &key, &r);
        if let Ok(item) = &r {
            e.value = item
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
        }
        rec.record(&e);
    }
}
