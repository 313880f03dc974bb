//! Runs a workload: setup, warm-up plus measured window, cleanup.
//!
//! Each client is one session; `pipeline` worker tasks share it, each sending its next
//! request as soon as its previous one is answered, so a session has `pipeline`
//! requests in flight (the client matches answers by xid). A request counts, in the
//! histogram and in ops/s, when it was sent after the warm-up and answered before the
//! end of the window; requests still in flight at the end are neither counted nor
//! waited for beyond their answer. Latency is send-to-answer in microseconds.
//!
//! Setup and cleanup are outside the window: setup creates the run's root and each
//! client's 16 nodes; cleanup deletes everything the run created, pipelined over all
//! sessions (the nodes a `create` run made are known from the per-client counters,
//! so no listing of a possibly huge directory is needed).

use crate::session::{Fail, Session};
use crate::workload::{created_node, own_node, request, OpKind, Request, NODES_PER_CLIENT};
use bytes::Bytes;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Plan {
    pub op: OpKind,
    pub pipeline: usize,
    pub value_size: usize,
    pub read_ratio: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
}

/// What the measured window saw.
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    /// Latencies of successful requests, µs.
    pub hist: Histogram<u64>,
    pub first_error: Option<String>,
    /// Requests issued per client (all phases), for cleanup of `create` runs.
    pub issued: Vec<u64>,
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits; larger values are clamped by saturating_record.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Creates the run's root and every client's own nodes.
pub async fn setup<S: Session>(sessions: &[S], root: &str, plan: &Plan) -> Result<(), String> {
    let first = sessions.first().ok_or("no sessions")?;
    first
        .create(root, Bytes::new())
        .await
        .map_err(|e| format!("create {root}: {e}"))?;
    if !plan.op.needs_nodes() {
        return Ok(());
    }
    let value = Bytes::from(vec![b'x'; plan.value_size]);
    let mut tasks = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let (s, root, value) = (s.clone(), root.to_string(), value.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..NODES_PER_CLIENT {
                let p = own_node(&root, i, n);
                s.create(&p, value.clone())
                    .await
                    .map_err(|e| format!("create {p}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

struct WorkerResult {
    ok: u64,
    errors: u64,
    hist: Histogram<u64>,
    first_error: Option<String>,
}

/// Runs warm-up and the measured window.
pub async fn measure<S: Session>(sessions: &[S], root: &str, plan: &Plan) -> Outcome {
    let value = Bytes::from(vec![b'v'; plan.value_size]);
    let start = Instant::now();
    let window_start = start + plan.warmup;
    let end = window_start + plan.duration;
    let counters: Vec<Arc<AtomicU64>> = sessions
        .iter()
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let mut tasks = Vec::new();
    for (client, s) in sessions.iter().enumerate() {
        for w in 0..plan.pipeline.max(1) {
            let (s, root, value, counter, plan) = (
                s.clone(),
                root.to_string(),
                value.clone(),
                counters[client].clone(),
                plan.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(
                    plan.seed ^ ((client as u64) << 20) ^ w as u64,
                );
                let mut r = WorkerResult {
                    ok: 0,
                    errors: 0,
                    hist: new_hist(),
                    first_error: None,
                };
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let seq = counter.fetch_add(1, Ordering::Relaxed);
                    let coin: f64 = rng.gen();
                    let pick = rng.gen_range(0..NODES_PER_CLIENT);
                    let req = request(plan.op, &root, client, seq, plan.read_ratio, coin, pick);
                    let result = send(&s, req, &value).await;
                    let done = Instant::now();
                    if sent < window_start || done > end {
                        continue;
                    }
                    match result {
                        Ok(()) => {
                            r.ok += 1;
                            r.hist
                                .saturating_record((done - sent).as_micros().max(1) as u64);
                        }
                        Err(e) => {
                            r.errors += 1;
                            r.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                r
            }));
        }
    }
    let mut out = Outcome {
        ok: 0,
        errors: 0,
        hist: new_hist(),
        first_error: None,
        issued: Vec::new(),
    };
    for t in tasks {
        match t.await {
            Ok(r) => {
                out.ok += r.ok;
                out.errors += r.errors;
                out.hist.add(&r.hist).expect("same bounds");
                if out.first_error.is_none() {
                    out.first_error = r.first_error;
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    out.issued = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    out
}

async fn send<S: Session>(s: &S, req: Request, value: &Bytes) -> Result<(), Fail> {
    match req {
        Request::Create(p) => s.create(&p, value.clone()).await,
        Request::Set(p) => s.set(&p, value.clone()).await,
        Request::Get(p) => s.get(&p).await,
        Request::Multi(a, b) => s.multi_set(&a, &b, value.clone()).await,
    }
}

/// Deletes everything the run created, then the root. Returns how many deletes failed
/// for a reason other than the node being absent.
pub async fn cleanup<S: Session>(sessions: &[S], root: &str, plan: &Plan, issued: &[u64]) -> u64 {
    let mut paths = Vec::new();
    for (client, &n) in issued.iter().enumerate() {
        if plan.op == OpKind::Create {
            paths.extend((0..n).map(|k| created_node(root, client, k)));
        } else {
            paths.extend((0..NODES_PER_CLIENT).map(|k| own_node(root, client, k)));
        }
    }
    let paths = Arc::new(paths);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for s in sessions {
        for _ in 0..plan.pipeline.max(8) {
            let (s, paths, next) = (s.clone(), paths.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(p) = paths.get(i) else { break };
                    match s.delete(p).await {
                        Ok(()) | Err(Fail::NoNode) => {}
                        Err(_) => failed += 1,
                    }
                }
                failed
            }));
        }
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.unwrap_or(1);
    }
    if let Some(s) = sessions.first() {
        if !matches!(s.delete(root).await, Ok(()) | Err(Fail::NoNode)) {
            failed += 1;
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fake::FakeSession;

    fn plan(op: OpKind, pipeline: usize) -> Plan {
        Plan {
            op,
            pipeline,
            value_size: 100,
            read_ratio: 0.9,
            warmup: Duration::from_millis(30),
            duration: Duration::from_millis(150),
            seed: 7,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_run_counts_and_cleans_up() {
        let fake = FakeSession::default();
        let sessions = vec![fake.clone(), fake.clone(), fake.clone()];
        let p = plan(OpKind::Set, 4);
        setup(&sessions, "/r", &p).await.unwrap();
        assert_eq!(fake.len(), 1 + 3 * NODES_PER_CLIENT);
        let out = measure(&sessions, "/r", &p).await;
        assert!(out.ok > 0);
        assert_eq!(out.errors, 0, "{:?}", out.first_error);
        assert_eq!(out.hist.len(), out.ok);
        // Warm-up requests are issued but not counted.
        assert!(out.issued.iter().sum::<u64>() > out.ok);
        assert!(fake.sets() >= out.ok);
        assert_eq!(cleanup(&sessions, "/r", &p, &out.issued).await, 0);
        assert_eq!(fake.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_run_deletes_every_created_node() {
        let fake = FakeSession::default();
        let sessions = vec![fake.clone(), fake.clone()];
        let p = plan(OpKind::Create, 2);
        setup(&sessions, "/r", &p).await.unwrap();
        assert_eq!(fake.len(), 1);
        let out = measure(&sessions, "/r", &p).await;
        assert!(out.ok > 0 && out.errors == 0);
        assert_eq!(fake.len() as u64, 1 + out.issued.iter().sum::<u64>());
        assert_eq!(cleanup(&sessions, "/r", &p, &out.issued).await, 0);
        assert_eq!(fake.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_counted_not_timed() {
        let fake = FakeSession::default();
        let sessions = vec![fake.clone()];
        let p = plan(OpKind::Get, 1);
        // No setup: every get fails with NoNode.
        let out = measure(&sessions, "/r", &p).await;
        assert_eq!(out.ok, 0);
        assert!(out.errors > 0);
        assert_eq!(out.hist.len(), 0);
        assert_eq!(out.first_error.as_deref(), Some("Node does not exist"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mixed_reads_and_writes_by_ratio() {
        let fake = FakeSession::default();
        let sessions = vec![fake.clone()];
        let mut p = plan(OpKind::Mixed, 1);
        p.read_ratio = 0.5;
        setup(&sessions, "/r", &p).await.unwrap();
        let _ = measure(&sessions, "/r", &p).await;
        let (gets, sets) = (fake.gets() as f64, fake.sets() as f64);
        assert!(gets > 100.0 && sets > 100.0, "gets {gets} sets {sets}");
        let share = gets / (gets + sets);
        assert!((0.4..0.6).contains(&share), "read share {share}");
    }
}
