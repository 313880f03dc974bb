//! Server metrics and their Prometheus text encoding (`/metrics` on the admin port).
//!
//! Why not the `prometheus` or `metrics` crates: every figure here is either an
//! atomic bumped on the request path or a gauge read from the core at scrape time
//! (node count, watches, sessions, role), so a global registry, labels looked up
//! in a hash map per update, or a recorder behind a trait object would add cost
//! and indirection for nothing. What remains is the exposition format, which is
//! a few lines of text (`# HELP`, `# TYPE`, `name{labels} value`).
//!
//! Hot-path cost: a request bumps one counter and, when it is answered, one
//! histogram bucket, the histogram sum and count (relaxed atomics, no lock, no
//! allocation). Writes carry an [`OpTimer`] in their completion; reads are timed
//! around the tree lookup. Everything else is updated by the single pipeline or
//! replica task, or read at scrape time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::request::{ReadOp, WriteOp};
use crate::storage::GroupCommitStats;

/// Latency buckets in seconds (upper bounds; `+Inf` is implied).
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A Prometheus histogram with fixed buckets, updated with relaxed atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts, one per bound plus `+Inf`.
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn latency() -> Histogram {
        Self::with_bounds(&LATENCY_BUCKETS)
    }

    pub fn with_bounds(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn encode(&self, out: &mut Encoder, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(bound) => format!("{bound}"),
                None => "+Inf".to_string(),
            };
            out.sample(
                &format!("{name}_bucket"),
                &join_labels(labels, &format!("le=\"{le}\"")),
                cumulative as f64,
            );
        }
        out.sample(
            &format!("{name}_sum"),
            labels,
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        );
        out.sample(&format!("{name}_count"), labels, cumulative as f64);
    }
}

fn join_labels(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a},{b}"),
    }
}

/// The operations counted per kind, as the `op` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Exists,
    GetData,
    GetChildren,
    GetAcl,
    GetAllChildrenNumber,
    GetEphemerals,
    MultiRead,
    Create,
    Delete,
    SetData,
    SetAcl,
    Multi,
    CreateSession,
    CloseSession,
    Sync,
}

impl OpKind {
    pub const ALL: [OpKind; 15] = [
        OpKind::Exists,
        OpKind::GetData,
        OpKind::GetChildren,
        OpKind::GetAcl,
        OpKind::GetAllChildrenNumber,
        OpKind::GetEphemerals,
        OpKind::MultiRead,
        OpKind::Create,
        OpKind::Delete,
        OpKind::SetData,
        OpKind::SetAcl,
        OpKind::Multi,
        OpKind::CreateSession,
        OpKind::CloseSession,
        OpKind::Sync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Exists => "exists",
            OpKind::GetData => "get_data",
            OpKind::GetChildren => "get_children",
            OpKind::GetAcl => "get_acl",
            OpKind::GetAllChildrenNumber => "get_all_children_number",
            OpKind::GetEphemerals => "get_ephemerals",
            OpKind::MultiRead => "multi_read",
            OpKind::Create => "create",
            OpKind::Delete => "delete",
            OpKind::SetData => "set_data",
            OpKind::SetAcl => "set_acl",
            OpKind::Multi => "multi",
            OpKind::CreateSession => "create_session",
            OpKind::CloseSession => "close_session",
            OpKind::Sync => "sync",
        }
    }

    pub fn of_read(op: &ReadOp) -> OpKind {
        match op {
            ReadOp::Exists { .. } => OpKind::Exists,
            ReadOp::GetData { .. } => OpKind::GetData,
            ReadOp::GetChildren { .. } => OpKind::GetChildren,
            ReadOp::GetAcl { .. } => OpKind::GetAcl,
            ReadOp::GetAllChildrenNumber { .. } => OpKind::GetAllChildrenNumber,
            ReadOp::GetEphemerals { .. } => OpKind::GetEphemerals,
            ReadOp::MultiRead(_) => OpKind::MultiRead,
        }
    }

    /// None for writes the server issues itself (not client requests).
    pub fn of_write(op: &WriteOp) -> Option<OpKind> {
        Some(match op {
            WriteOp::Create { .. } => OpKind::Create,
            WriteOp::Delete { .. } => OpKind::Delete,
            WriteOp::SetData { .. } => OpKind::SetData,
            WriteOp::SetAcl { .. } => OpKind::SetAcl,
            WriteOp::Multi(_) | WriteOp::Check { .. } => OpKind::Multi,
            WriteOp::CreateSession { .. } => OpKind::CreateSession,
            WriteOp::CloseSession => OpKind::CloseSession,
            WriteOp::DeleteContainer { .. } => return None,
        })
    }
}

/// Per-operation counters and latency.
#[derive(Debug)]
struct OpMetrics {
    requests: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// Started when a write or sync is submitted; ends when it is answered. One
/// dropped unanswered (its connection or the server went away) counts as an error,
/// so `outstanding` never leaks.
#[derive(Debug)]
pub struct OpTimer {
    metrics: Arc<Metrics>,
    kind: OpKind,
    started: Instant,
    done: bool,
}

impl OpTimer {
    /// Counts the request and starts its clock; it is outstanding until `finish`.
    pub fn start(metrics: &Arc<Metrics>, kind: OpKind) -> OpTimer {
        metrics.begin(kind);
        OpTimer {
            metrics: metrics.clone(),
            kind,
            started: Instant::now(),
            done: false,
        }
    }

    pub fn finish(mut self, error: bool) {
        self.done = true;
        self.metrics.end(self.kind, self.started.elapsed(), error);
    }
}

impl Drop for OpTimer {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.end(self.kind, self.started.elapsed(), true);
        }
    }
}

/// Election and snapshot durations and sizes, and what only the replica knows.
#[derive(Debug, Default)]
struct Replication {
    /// (follower id, txns behind the leader), refreshed every replication tick.
    follower_lag: Vec<(u64, u64)>,
}

/// Every metric of one server.
#[derive(Debug)]
pub struct Metrics {
    ops: Vec<OpMetrics>,
    outstanding: AtomicI64,
    /// Proposed (or logged, standalone) but not yet committed txns.
    pub proposals_in_flight: AtomicI64,
    /// From proposal (standalone: log append) to commit.
    pub commit_latency: Histogram,
    pub elections: AtomicU64,
    pub election_time: Histogram,
    pub snapshots: AtomicU64,
    pub snapshot_time: Histogram,
    pub snapshot_bytes: AtomicU64,
    /// Zxid of the last snapshot written (0 before the first).
    pub snapshot_zxid: AtomicI64,
    pub session_expirations: AtomicU64,
    replication: Mutex<Replication>,
    log_stats: OnceLock<Arc<GroupCommitStats>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ops: OpKind::ALL
                .iter()
                .map(|_| OpMetrics {
                    requests: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    latency: Histogram::latency(),
                })
                .collect(),
            outstanding: AtomicI64::new(0),
            proposals_in_flight: AtomicI64::new(0),
            commit_latency: Histogram::latency(),
            elections: AtomicU64::new(0),
            election_time: Histogram::latency(),
            snapshots: AtomicU64::new(0),
            snapshot_time: Histogram::latency(),
            snapshot_bytes: AtomicU64::new(0),
            snapshot_zxid: AtomicI64::new(0),
            session_expirations: AtomicU64::new(0),
            replication: Mutex::new(Replication::default()),
            log_stats: OnceLock::new(),
        }
    }
}

/// The figures read from the core at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub znodes: u64,
    pub data_bytes: i64,
    /// (kind label, count)
    pub watches: Vec<(&'static str, u64)>,
    pub sessions: u64,
    pub connections: u64,
    pub role: &'static str,
    pub serving: bool,
    pub epoch: u32,
    pub last_zxid: i64,
    pub server_id: u64,
}

/// Role names a member can report, for the one-hot `zabkeeper_role` gauge.
const ROLES: [&str; 4] = ["standalone", "looking", "following", "leading"];

impl Metrics {
    fn op(&self, kind: OpKind) -> &OpMetrics {
        &self.ops[kind as usize]
    }

    fn begin(&self, kind: OpKind) {
        self.op(kind).requests.fetch_add(1, Ordering::Relaxed);
        self.outstanding.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self, kind: OpKind, took: Duration, error: bool) {
        let op = self.op(kind);
        op.latency.observe(took);
        if error {
            op.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
    }

    /// Times a request answered in place (a read).
    pub fn time<T>(&self, kind: OpKind, f: impl FnOnce() -> T, is_error: impl Fn(&T) -> bool) -> T {
        self.begin(kind);
        let started = Instant::now();
        let r = f();
        self.end(kind, started.elapsed(), is_error(&r));
        r
    }

    /// Requests of one kind so far.
    pub fn requests(&self, kind: OpKind) -> u64 {
        self.op(kind).requests.load(Ordering::Relaxed)
    }

    pub fn outstanding(&self) -> i64 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The group-commit thread's counters (fsync latency, batch sizes).
    pub fn set_log_stats(&self, stats: Arc<GroupCommitStats>) {
        let _ = self.log_stats.set(stats);
    }

    pub fn set_follower_lag(&self, lag: Vec<(u64, u64)>) {
        self.replication.lock().follower_lag = lag;
    }

    pub fn follower_lag(&self) -> Vec<(u64, u64)> {
        self.replication.lock().follower_lag.clone()
    }

    /// Prometheus text exposition format, version 0.0.4.
    pub fn encode(&self, g: &Gauges) -> String {
        let mut e = Encoder::default();
        e.family(
            "zabkeeper_requests_total",
            "counter",
            "Client requests received, by operation.",
        );
        for kind in OpKind::ALL {
            let op = self.op(kind);
            e.sample(
                "zabkeeper_requests_total",
                &format!("op=\"{}\"", kind.name()),
                op.requests.load(Ordering::Relaxed) as f64,
            );
        }
        e.family(
            "zabkeeper_request_errors_total",
            "counter",
            "Requests answered with an error code, by operation.",
        );
        for kind in OpKind::ALL {
            e.sample(
                "zabkeeper_request_errors_total",
                &format!("op=\"{}\"", kind.name()),
                self.op(kind).errors.load(Ordering::Relaxed) as f64,
            );
        }
        e.family(
            "zabkeeper_request_latency_seconds",
            "histogram",
            "Time from a request reaching the core to its answer, by operation.",
        );
        for kind in OpKind::ALL {
            self.op(kind).latency.encode(
                &mut e,
                "zabkeeper_request_latency_seconds",
                &format!("op=\"{}\"", kind.name()),
            );
        }
        e.gauge(
            "zabkeeper_outstanding_requests",
            "Requests received and not yet answered.",
            self.outstanding() as f64,
        );
        e.gauge(
            "zabkeeper_proposals_in_flight",
            "Txns proposed (standalone: logged) and not yet committed.",
            self.proposals_in_flight.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "zabkeeper_commit_latency_seconds",
            "histogram",
            "Time from proposal (standalone: log append) to commit.",
        );
        self.commit_latency
            .encode(&mut e, "zabkeeper_commit_latency_seconds", "");
        if let Some(log) = self.log_stats.get() {
            e.counter(
                "zabkeeper_fsync_total",
                "fdatasync calls of the txn log (one per group-commit batch).",
                log.syncs.load(Ordering::Relaxed) as f64,
            );
            e.counter(
                "zabkeeper_fsync_records_total",
                "Txn log records made durable; divided by zabkeeper_fsync_total, the mean batch size.",
                log.records.load(Ordering::Relaxed) as f64,
            );
            e.gauge(
                "zabkeeper_fsync_batch_max",
                "Largest group-commit batch, in records.",
                log.max_batch.load(Ordering::Relaxed) as f64,
            );
            e.family(
                "zabkeeper_fsync_latency_seconds",
                "histogram",
                "fdatasync latency of the txn log (power-of-two microsecond buckets).",
            );
            let counts = log.sync_histogram();
            let mut cumulative = 0;
            for (i, c) in counts.iter().enumerate() {
                cumulative += c;
                let le = if i + 1 == counts.len() {
                    "+Inf".to_string()
                } else {
                    format!("{}", (1u64 << i) as f64 / 1e6)
                };
                e.sample(
                    "zabkeeper_fsync_latency_seconds_bucket",
                    &format!("le=\"{le}\""),
                    cumulative as f64,
                );
            }
            e.sample(
                "zabkeeper_fsync_latency_seconds_sum",
                "",
                log.sync_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            );
            e.sample(
                "zabkeeper_fsync_latency_seconds_count",
                "",
                cumulative as f64,
            );
        }
        e.gauge("zabkeeper_znodes", "Nodes in the tree.", g.znodes as f64);
        e.gauge(
            "zabkeeper_data_bytes",
            "Approximate data size: path plus data length over all nodes.",
            g.data_bytes as f64,
        );
        e.family("zabkeeper_watches", "gauge", "Watches registered, by kind.");
        for (kind, n) in &g.watches {
            e.sample("zabkeeper_watches", &format!("kind=\"{kind}\""), *n as f64);
        }
        e.gauge("zabkeeper_sessions", "Live sessions.", g.sessions as f64);
        e.gauge(
            "zabkeeper_connections",
            "Open client connections (native and ZooKeeper ports).",
            g.connections as f64,
        );
        e.counter(
            "zabkeeper_session_expirations_total",
            "Sessions this server expired.",
            self.session_expirations.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "zabkeeper_role",
            "gauge",
            "1 for the role this member has now.",
        );
        for role in ROLES {
            e.sample(
                "zabkeeper_role",
                &format!("role=\"{role}\""),
                if role == g.role { 1.0 } else { 0.0 },
            );
        }
        e.gauge(
            "zabkeeper_serving",
            "1 while this member serves clients.",
            if g.serving { 1.0 } else { 0.0 },
        );
        e.gauge(
            "zabkeeper_server_id",
            "This member's id.",
            g.server_id as f64,
        );
        e.gauge("zabkeeper_epoch", "Current epoch.", g.epoch as f64);
        e.gauge(
            "zabkeeper_last_zxid",
            "Last zxid applied to the tree.",
            g.last_zxid as f64,
        );
        e.family(
            "zabkeeper_follower_lag_txns",
            "gauge",
            "On the leader: txns each synced follower has not yet acknowledged.",
        );
        for (id, lag) in self.follower_lag() {
            e.sample(
                "zabkeeper_follower_lag_txns",
                &format!("follower=\"{id}\""),
                lag as f64,
            );
        }
        e.counter(
            "zabkeeper_elections_total",
            "Elections this member took part in that ended in an established epoch.",
            self.elections.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "zabkeeper_election_seconds",
            "histogram",
            "Time from leaving an established epoch (or starting) to joining the next.",
        );
        self.election_time
            .encode(&mut e, "zabkeeper_election_seconds", "");
        e.counter(
            "zabkeeper_snapshots_total",
            "Snapshots written by this member.",
            self.snapshots.load(Ordering::Relaxed) as f64,
        );
        e.gauge(
            "zabkeeper_snapshot_bytes",
            "Size of the last snapshot written.",
            self.snapshot_bytes.load(Ordering::Relaxed) as f64,
        );
        e.family(
            "zabkeeper_snapshot_seconds",
            "histogram",
            "Time to serialise and write a snapshot.",
        );
        self.snapshot_time
            .encode(&mut e, "zabkeeper_snapshot_seconds", "");
        e.out
    }

    /// Records a snapshot written.
    pub fn snapshot_taken(&self, zxid: i64, bytes: usize, took: Duration) {
        self.snapshot_zxid.store(zxid, Ordering::Relaxed);
        self.snapshots.fetch_add(1, Ordering::Release);
        self.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
        self.snapshot_time.observe(took);
    }
}

/// Times txns from proposal to commit. Owned by the one task that proposes and
/// commits (pipeline or replica), so it needs no lock.
#[derive(Debug, Default)]
pub struct CommitClock {
    proposed: std::collections::VecDeque<(i64, Instant)>,
}

impl CommitClock {
    pub fn proposed(&mut self, zxid: i64, metrics: &Metrics) {
        self.proposed.push_back((zxid, Instant::now()));
        metrics
            .proposals_in_flight
            .store(self.proposed.len() as i64, Ordering::Relaxed);
    }

    pub fn committed(&mut self, up_to: i64, metrics: &Metrics) {
        while let Some(&(zxid, at)) = self.proposed.front() {
            if zxid > up_to {
                break;
            }
            self.proposed.pop_front();
            metrics.commit_latency.observe(at.elapsed());
        }
        metrics
            .proposals_in_flight
            .store(self.proposed.len() as i64, Ordering::Relaxed);
    }

    /// Forgets every proposal (leadership lost: they commit elsewhere or not at all).
    pub fn clear(&mut self, metrics: &Metrics) {
        self.proposed.clear();
        metrics.proposals_in_flight.store(0, Ordering::Relaxed);
    }
}

/// Builds the exposition text.
#[derive(Debug, Default)]
struct Encoder {
    out: String,
}

impl Encoder {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: f64) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, "", value);
    }

    fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help);
        self.sample(name, "", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one sample line `name{labels} value` in exposition text.
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let h = Histogram::latency();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let mut e = Encoder::default();
        h.encode(&mut e, "x", "op=\"a\"");
        assert_eq!(value(&e.out, "x_bucket{op=\"a\",le=\"0.0001\"}"), 1.0);
        assert_eq!(value(&e.out, "x_bucket{op=\"a\",le=\"0.0025\"}"), 1.0);
        assert_eq!(value(&e.out, "x_bucket{op=\"a\",le=\"0.005\"}"), 2.0);
        assert_eq!(value(&e.out, "x_bucket{op=\"a\",le=\"10\"}"), 2.0);
        assert_eq!(value(&e.out, "x_bucket{op=\"a\",le=\"+Inf\"}"), 3.0);
        assert_eq!(value(&e.out, "x_count{op=\"a\"}"), 3.0);
        let sum = value(&e.out, "x_sum{op=\"a\"}");
        assert!((sum - 20.00305).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn timers_count_requests_errors_and_outstanding() {
        let m = Arc::new(Metrics::default());
        let t = OpTimer::start(&m, OpKind::Create);
        assert_eq!(m.outstanding(), 1);
        t.finish(true);
        assert_eq!(m.outstanding(), 0);
        let r = m.time(OpKind::GetData, || 7, |_| false);
        assert_eq!(r, 7);
        let text = m.encode(&Gauges {
            role: "leading",
            ..Gauges::default()
        });
        assert_eq!(value(&text, "zabkeeper_requests_total{op=\"create\"}"), 1.0);
        assert_eq!(
            value(&text, "zabkeeper_request_errors_total{op=\"create\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "zabkeeper_requests_total{op=\"get_data\"}"),
            1.0
        );
        assert_eq!(
            value(
                &text,
                "zabkeeper_request_latency_seconds_count{op=\"get_data\"}"
            ),
            1.0
        );
        assert_eq!(value(&text, "zabkeeper_role{role=\"leading\"}"), 1.0);
        assert_eq!(value(&text, "zabkeeper_role{role=\"following\"}"), 0.0);
        // Every family is declared once, before its samples.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert!(
                declared.insert(l.split(' ').nth(2).unwrap().to_string()),
                "{l}"
            );
        }
    }

    #[test]
    fn commit_clock_tracks_in_flight_and_latency() {
        let m = Metrics::default();
        let mut c = CommitClock::default();
        c.proposed(1, &m);
        c.proposed(2, &m);
        assert_eq!(m.proposals_in_flight.load(Ordering::Relaxed), 2);
        c.committed(1, &m);
        assert_eq!(m.proposals_in_flight.load(Ordering::Relaxed), 1);
        assert_eq!(m.commit_latency.count(), 1);
        c.clear(&m);
        assert_eq!(m.proposals_in_flight.load(Ordering::Relaxed), 0);
    }
}
