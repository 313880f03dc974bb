//! Group commit: one thread owns the txn log and shares each `fdatasync`
//! among every write queued while the previous one ran.
//!
//! Writers send batches of `(zxid, payload)`; the thread takes everything
//! already in its channel (up to [`MAX_BATCH_RECORDS`] records or
//! [`MAX_BATCH_BYTES`]), appends it, syncs once, and reports the highest
//! durable zxid through the `on_durable` callback. Under load the channel
//! fills while a sync runs, so the next sync covers many writers; with one
//! writer the latency is one `fdatasync`, never more.
//!
//! Control commands (`truncate_after`, `reset`, `purge_before`,
//! `read_after`) travel through the same channel, so they are ordered with
//! the appends around them: appends sent before a command are durable (and
//! reported) before it runs. Each command blocks its caller until the thread
//! answers.
//!
//! A failed append, sync or log change is fatal: after a failed `fdatasync`
//! the kernel may have dropped the dirty pages, so retrying could report as
//! durable data that is not. The thread calls `on_fatal` once, stops, and
//! every later call returns [`Error::Stopped`]. Dropping [`GroupCommit`]
//! syncs what was queued, reports it, and joins the thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Error, Result, TxnLog};

/// Most records appended under one sync.
pub const MAX_BATCH_RECORDS: usize = 8192;
/// Most payload bytes appended under one sync.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

const BUCKETS: usize = 40;

/// Counters a metrics endpoint can read while the thread runs.
#[derive(Debug)]
pub struct GroupCommitStats {
    /// Number of `sync` calls (one per batch).
    pub syncs: AtomicU64,
    /// Records made durable.
    pub records: AtomicU64,
    /// Largest batch, in records.
    pub max_batch: AtomicU64,
    /// Total time spent in `sync`, in nanoseconds.
    pub sync_nanos: AtomicU64,
    /// Longest `sync`, in nanoseconds.
    pub max_sync_nanos: AtomicU64,
    /// Sync latency histogram: bucket `i` counts syncs of `< 2^i` µs (and
    /// `>= 2^(i-1)` µs).
    sync_hist: [AtomicU64; BUCKETS],
}

impl Default for GroupCommitStats {
    fn default() -> Self {
        GroupCommitStats {
            syncs: AtomicU64::new(0),
            records: AtomicU64::new(0),
            max_batch: AtomicU64::new(0),
            sync_nanos: AtomicU64::new(0),
            max_sync_nanos: AtomicU64::new(0),
            sync_hist: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl GroupCommitStats {
    fn record_sync(&self, records: usize, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
        self.max_batch.fetch_max(records as u64, Ordering::Relaxed);
        self.sync_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_sync_nanos.fetch_max(nanos, Ordering::Relaxed);
        let micros = nanos / 1000;
        let bucket = (64 - micros.leading_zeros() as usize).min(BUCKETS - 1);
        self.sync_hist[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Upper bound of the sync latency below which a fraction `q` (0..=1) of
    /// syncs fall, at power-of-two resolution; `None` before the first sync.
    pub fn sync_latency_quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .sync_hist
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(Duration::from_micros(1u64 << i));
            }
        }
        Some(Duration::from_micros(1u64 << (BUCKETS - 1)))
    }

    /// Syncs per latency bucket (bucket `i`: `< 2^i` µs; the last also holds
    /// everything slower), for the metrics endpoint.
    pub fn sync_histogram(&self) -> Vec<u64> {
        self.sync_hist
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Mean records per sync.
    pub fn mean_batch(&self) -> f64 {
        let syncs = self.syncs.load(Ordering::Relaxed);
        if syncs == 0 {
            return 0.0;
        }
        self.records.load(Ordering::Relaxed) as f64 / syncs as f64
    }
}

type Reply<T> = Sender<Result<T>>;

enum Cmd {
    Append(Vec<(u64, Bytes)>),
    TruncateAfter(u64, Reply<()>),
    Reset(u64, Reply<()>),
    PurgeBefore(u64, Reply<()>),
    ReadAfter(u64, Reply<Vec<(u64, Bytes)>>),
}

/// Handle of the group-commit thread. Dropping it flushes and joins.
pub struct GroupCommit {
    tx: Option<Sender<Cmd>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<GroupCommitStats>,
    durable: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("durable", &self.durable_zxid())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the thread. `on_durable(z)` is called (on that thread) after
    /// each sync with the highest durable zxid `z`; `on_fatal` once if the
    /// log fails. The callbacks must be quick and must not call back into
    /// this handle's blocking methods (that would deadlock the thread);
    /// forward to a channel instead.
    pub fn spawn(
        log: Box<dyn TxnLog>,
        on_durable: Box<dyn Fn(u64) + Send>,
        on_fatal: Box<dyn FnOnce(&Error) + Send>,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(GroupCommitStats::default());
        let durable = Arc::new(AtomicU64::new(log.last_zxid()));
        let failure = Arc::new(Mutex::new(None));
        let worker = Worker {
            log,
            rx,
            on_durable,
            stats: stats.clone(),
            durable: durable.clone(),
        };
        let fail_slot = failure.clone();
        let thread = std::thread::Builder::new()
            .name("zk-group-commit".into())
            .spawn(move || {
                if let Err(e) = worker.run() {
                    tracing::error!(error = %e, "txn log failed; group commit stopped");
                    *fail_slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                    on_fatal(&e);
                }
            })
            .map_err(|source| Error::Io {
                op: "spawn group commit thread",
                path: Default::default(),
                source,
            })?;
        Ok(GroupCommit {
            tx: Some(tx),
            thread: Some(thread),
            stats,
            durable,
            failure,
        })
    }

    /// Queues records; they are reported through `on_durable` once synced.
    pub fn append(&self, records: Vec<(u64, Bytes)>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.send(Cmd::Append(records))
    }

    /// `TxnLog::truncate_after`, after everything queued before it.
    pub fn truncate_after(&self, zxid: u64) -> Result<()> {
        self.call(|r| Cmd::TruncateAfter(zxid, r))
    }

    /// `TxnLog::reset`, after everything queued before it.
    pub fn reset(&self, after: u64) -> Result<()> {
        self.call(|r| Cmd::Reset(after, r))
    }

    /// `TxnLog::purge_before`, after everything queued before it.
    pub fn purge_before(&self, zxid: u64) -> Result<()> {
        self.call(|r| Cmd::PurgeBefore(zxid, r))
    }

    /// `TxnLog::read_after`, after everything queued before it is durable.
    pub fn read_after(&self, zxid: u64) -> Result<Vec<(u64, Bytes)>> {
        self.call(|r| Cmd::ReadAfter(zxid, r))
    }

    /// Highest zxid known durable (or the log's last zxid after a
    /// truncate/reset).
    pub fn durable_zxid(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Counters for metrics.
    pub fn stats(&self) -> Arc<GroupCommitStats> {
        self.stats.clone()
    }

    /// Flushes what is queued, joins the thread, and reports a fatal error
    /// if the thread had one.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop();
        match self.failure() {
            Some(msg) => Err(Error::Stopped(msg)),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("group commit thread panicked");
            }
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stopped(&self) -> Error {
        Error::Stopped(self.failure().unwrap_or_else(|| "shut down".into()))
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        match &self.tx {
            Some(tx) => tx.send(cmd).map_err(|_| self.stopped()),
            None => Err(self.stopped()),
        }
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.send(make(tx))?;
        rx.recv().map_err(|_| self.stopped())?
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    log: Box<dyn TxnLog>,
    rx: Receiver<Cmd>,
    on_durable: Box<dyn Fn(u64) + Send>,
    stats: Arc<GroupCommitStats>,
    durable: Arc<AtomicU64>,
}

impl Worker {
    fn run(mut self) -> Result<()> {
        let mut unsynced = 0usize;
        // Blocks for the first command of a batch; ends when every sender is gone.
        while let Ok(first) = self.rx.recv() {
            let mut next = Some(first);
            let mut bytes = 0usize;
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append(records) => {
                        for (zxid, payload) in &records {
                            self.log.append(*zxid, payload)?;
                            bytes += payload.len();
                        }
                        unsynced += records.len();
                    }
                    other => {
                        self.sync(&mut unsynced)?;
                        self.control(other)?;
                    }
                }
                if unsynced < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
                    next = self.rx.try_recv().ok();
                }
            }
            self.sync(&mut unsynced)?;
        }
        Ok(())
    }

    fn sync(&mut self, unsynced: &mut usize) -> Result<()> {
        if *unsynced == 0 {
            return Ok(());
        }
        let start = Instant::now();
        self.log.sync()?;
        self.stats.record_sync(*unsynced, start.elapsed());
        *unsynced = 0;
        let z = self.log.last_zxid();
        self.durable.store(z, Ordering::Release);
        (self.on_durable)(z);
        Ok(())
    }

    /// Runs a control command; log changes that fail are fatal (and also
    /// answered), a failed read only to its caller.
    fn control(&mut self, cmd: Cmd) -> Result<()> {
        let (result, reply) = match cmd {
            Cmd::ReadAfter(z, reply) => {
                // The caller may be gone; nothing to do then.
                let _ = reply.send(self.log.read_after(z));
                return Ok(());
            }
            Cmd::TruncateAfter(z, reply) => (self.log.truncate_after(z), reply),
            Cmd::Reset(z, reply) => (self.log.reset(z), reply),
            Cmd::PurgeBefore(z, reply) => (self.log.purge_before(z), reply),
            Cmd::Append(_) => return Ok(()),
        };
        self.durable.store(self.log.last_zxid(), Ordering::Release);
        match result {
            Ok(()) => {
                let _ = reply.send(Ok(()));
                Ok(())
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Stopped(e.to_string())));
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FileTxnLog, LogOptions, MemoryLogDisk, MemoryTxnLog};
    use std::sync::mpsc::RecvTimeoutError;

    type Seen = Arc<Mutex<Vec<u64>>>;

    fn recorder() -> (Seen, Box<dyn Fn(u64) + Send>) {
        let seen: Seen = Arc::default();
        let s = seen.clone();
        (seen, Box::new(move |z| s.lock().unwrap().push(z)))
    }

    fn no_fatal() -> Box<dyn FnOnce(&Error) + Send> {
        Box::new(|e| panic!("unexpected fatal error: {e}"))
    }

    fn rec(z: u64) -> (u64, Bytes) {
        (z, Bytes::from(format!("txn {z}")))
    }

    #[test]
    fn concurrent_writers_all_become_durable_in_order() {
        let disk = MemoryLogDisk::new();
        let (seen, on_durable) = recorder();
        let gc = GroupCommit::spawn(Box::new(MemoryTxnLog::open(&disk)), on_durable, no_fatal())
            .unwrap();
        // The zxid is assigned and sent under one lock, as the leader does.
        let next = Mutex::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..250 {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        gc.append(vec![rec(*n)]).unwrap();
                    }
                });
            }
        });
        let stats = gc.stats();
        gc.shutdown().unwrap();
        let log = MemoryTxnLog::open(&disk);
        let got = log.read_after(0).unwrap();
        assert_eq!(got, (1..=1000).map(rec).collect::<Vec<_>>());
        let seen = seen.lock().unwrap();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(seen.last(), Some(&1000));
        assert_eq!(stats.records.load(Ordering::Relaxed), 1000);
        assert_eq!(stats.syncs.load(Ordering::Relaxed), seen.len() as u64);
        assert!(stats.sync_latency_quantile(0.5).is_some());
    }

    /// A log whose `sync` announces itself and waits for the test's go.
    struct GatedLog {
        inner: MemoryTxnLog,
        entered: Sender<()>,
        go: Receiver<()>,
    }

    impl TxnLog for GatedLog {
        fn append(&mut self, zxid: u64, payload: &[u8]) -> Result<()> {
            self.inner.append(zxid, payload)
        }
        fn sync(&mut self) -> Result<()> {
            let _ = self.entered.send(());
            let _ = self.go.recv();
            self.inner.sync()
        }
        fn last_zxid(&self) -> u64 {
            self.inner.last_zxid()
        }
        fn base_zxid(&self) -> u64 {
            self.inner.base_zxid()
        }
        fn read_after(&self, zxid: u64) -> Result<Vec<(u64, Bytes)>> {
            self.inner.read_after(zxid)
        }
        fn truncate_after(&mut self, zxid: u64) -> Result<()> {
            self.inner.truncate_after(zxid)
        }
        fn purge_before(&mut self, zxid: u64) -> Result<()> {
            self.inner.purge_before(zxid)
        }
        fn reset(&mut self, after: u64) -> Result<()> {
            self.inner.reset(after)
        }
    }

    #[test]
    fn writes_queued_during_a_sync_share_the_next_one() {
        let disk = MemoryLogDisk::new();
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let log = GatedLog {
            inner: MemoryTxnLog::open(&disk),
            entered: entered_tx,
            go: go_rx,
        };
        let (seen, on_durable) = recorder();
        let gc = GroupCommit::spawn(Box::new(log), on_durable, no_fatal()).unwrap();
        gc.append(vec![rec(1)]).unwrap();
        entered.recv().unwrap(); // the thread is inside the first sync
        for z in 2..=11 {
            gc.append(vec![rec(z)]).unwrap();
        }
        go.send(()).unwrap();
        entered.recv().unwrap(); // second sync: everything queued meanwhile
        go.send(()).unwrap();
        let stats = gc.stats();
        drop(gc);
        assert_eq!(*seen.lock().unwrap(), vec![1, 11]);
        assert_eq!(stats.syncs.load(Ordering::Relaxed), 2);
        assert_eq!(stats.max_batch.load(Ordering::Relaxed), 10);
        assert_eq!(stats.mean_batch(), 5.5);
        assert_eq!(
            entered.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Disconnected),
            "no third sync"
        );
    }

    #[test]
    fn control_commands_are_ordered_with_appends() {
        let disk = MemoryLogDisk::new();
        let (seen, on_durable) = recorder();
        let gc = GroupCommit::spawn(Box::new(MemoryTxnLog::open(&disk)), on_durable, no_fatal())
            .unwrap();
        gc.append((1..=10).map(rec).collect()).unwrap();
        gc.truncate_after(5).unwrap();
        assert_eq!(
            seen.lock().unwrap().last(),
            Some(&10),
            "synced before truncating"
        );
        assert_eq!(gc.durable_zxid(), 5);
        assert_eq!(
            gc.read_after(0).unwrap(),
            (1..=5).map(rec).collect::<Vec<_>>()
        );
        gc.append(vec![rec(6)]).unwrap();
        assert_eq!(
            gc.read_after(5).unwrap(),
            vec![rec(6)],
            "read waits for the sync"
        );
        gc.reset(100).unwrap();
        assert!(matches!(gc.read_after(50), Err(Error::Compacted { .. })));
        gc.append((101..=103).map(rec).collect()).unwrap();
        gc.purge_before(102).unwrap();
        assert_eq!(gc.read_after(101).unwrap(), vec![rec(102), rec(103)]);
        assert_eq!(gc.durable_zxid(), 103);
        gc.shutdown().unwrap();
    }

    #[test]
    fn a_failing_log_stops_the_thread_and_reports_once() {
        let (fatal_tx, fatal_rx) = mpsc::channel();
        let (seen, on_durable) = recorder();
        let gc = GroupCommit::spawn(
            Box::new(MemoryTxnLog::open(&MemoryLogDisk::new())),
            on_durable,
            Box::new(move |e| fatal_tx.send(e.to_string()).unwrap()),
        )
        .unwrap();
        gc.append(vec![rec(5)]).unwrap();
        gc.append(vec![rec(3)]).unwrap(); // out of order: a caller bug, fatal
        let msg = fatal_rx.recv().unwrap();
        assert!(msg.contains("does not follow"), "{msg}");
        assert!(
            matches!(gc.truncate_after(1), Err(Error::Stopped(m)) if m.contains("does not follow"))
        );
        assert!(matches!(gc.append(vec![rec(9)]), Err(Error::Stopped(_))));
        assert!(matches!(gc.shutdown(), Err(Error::Stopped(_))));
        assert!(!seen.lock().unwrap().contains(&3));
    }

    #[test]
    fn dropping_the_handle_flushes_to_the_file_log() {
        let d = tempfile::tempdir().unwrap();
        let opts = LogOptions {
            segment_size: 4096,
            write_buffer: 1024,
        };
        let log = FileTxnLog::open(d.path().join("log"), opts.clone()).unwrap();
        let (seen, on_durable) = recorder();
        let gc = GroupCommit::spawn(Box::new(log), on_durable, no_fatal()).unwrap();
        for z in 1..=300 {
            gc.append(vec![rec(z)]).unwrap();
        }
        drop(gc);
        assert_eq!(seen.lock().unwrap().last(), Some(&300));
        let log = FileTxnLog::open(d.path().join("log"), opts).unwrap();
        assert_eq!(
            log.read_after(0).unwrap(),
            (1..=300).map(rec).collect::<Vec<_>>()
        );
    }

    #[test]
    fn latency_quantiles_come_from_the_histogram() {
        let s = GroupCommitStats::default();
        assert_eq!(s.sync_latency_quantile(0.5), None);
        for _ in 0..9 {
            s.record_sync(1, Duration::from_micros(100)); // bucket < 128 µs
        }
        s.record_sync(1, Duration::from_millis(10)); // bucket < 16384 µs
        assert_eq!(
            s.sync_latency_quantile(0.5),
            Some(Duration::from_micros(128))
        );
        assert_eq!(
            s.sync_latency_quantile(0.9),
            Some(Duration::from_micros(128))
        );
        assert_eq!(
            s.sync_latency_quantile(0.99),
            Some(Duration::from_micros(16384))
        );
        assert_eq!(s.max_sync_nanos.load(Ordering::Relaxed), 10_000_000);
    }
}
