//! Txn log throughput and `fdatasync` latency on this machine's disk.
//!
//! `cargo run --release -p zabkeeper-server --example log_bench [DIR]`
//!
//! Appends 1 KiB records to a [`FileTxnLog`] in DIR (default: a temporary
//! directory) with one sync per record, then one sync per 32 records, then
//! through the group-commit thread with 32 closed-loop writers, then times
//! a reopen. Prints records/s and sync latency percentiles. Nothing here
//! asserts on time.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zabkeeper_server::storage::{FileTxnLog, GroupCommit, LogOptions, TxnLog};

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn run_direct(dir: &std::path::Path, batch: usize, records: usize) {
    let mut log = FileTxnLog::open(dir.join(format!("log-b{batch}")), LogOptions::default())
        .expect("open log");
    let payload = vec![0x5au8; 1024];
    let mut syncs = Vec::with_capacity(records / batch);
    let start = Instant::now();
    let first = log.last_zxid();
    let mut z = first;
    while ((z - first) as usize) < records {
        for _ in 0..batch {
            z += 1;
            log.append(z, &payload).expect("append");
        }
        let t = Instant::now();
        log.sync().expect("sync");
        syncs.push(t.elapsed());
    }
    let total = start.elapsed();
    syncs.sort();
    println!(
        "direct batch={batch:>2}: {records} x 1 KiB in {:.2}s = {:.0} records/s; fdatasync p50 {:?} p99 {:?} max {:?}",
        total.as_secs_f64(),
        records as f64 / total.as_secs_f64(),
        percentile(&syncs, 0.5),
        percentile(&syncs, 0.99),
        syncs[syncs.len() - 1],
    );
}

fn run_group_commit(dir: &std::path::Path, writers: usize, per_writer: usize) {
    let log = FileTxnLog::open(dir.join("log-gc"), LogOptions::default()).expect("open log");
    let durable = Arc::new((Mutex::new(0u64), Condvar::new()));
    let d = durable.clone();
    let (fatal_tx, _fatal_rx) = mpsc::channel();
    let gc = GroupCommit::spawn(
        Box::new(log),
        Box::new(move |z| {
            *d.0.lock().expect("lock") = z;
            d.1.notify_all();
        }),
        Box::new(move |e| {
            let _ = fatal_tx.send(e.to_string());
        }),
    )
    .expect("spawn");
    let next = Mutex::new(0u64);
    let payload = Bytes::from(vec![0x5au8; 1024]);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(|| {
                for _ in 0..per_writer {
                    let z = {
                        let mut n = next.lock().expect("lock");
                        *n += 1;
                        gc.append(vec![(*n, payload.clone())]).expect("append");
                        *n
                    };
                    let mut cur = durable.0.lock().expect("lock");
                    while *cur < z {
                        cur = durable.1.wait(cur).expect("wait");
                    }
                }
            });
        }
    });
    let total = start.elapsed();
    let records = writers * per_writer;
    let stats = gc.stats();
    println!(
        "group commit, {writers} closed-loop writers: {records} x 1 KiB in {:.2}s = {:.0} records/s; mean batch {:.1}; sync p50 <= {:?} p99 <= {:?}",
        total.as_secs_f64(),
        records as f64 / total.as_secs_f64(),
        stats.mean_batch(),
        stats.sync_latency_quantile(0.5).unwrap_or_default(),
        stats.sync_latency_quantile(0.99).unwrap_or_default(),
    );
}

fn main() {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().expect("tempdir");
            tmp.path().to_path_buf()
        }
    };
    println!("log directory: {}", dir.display());
    run_direct(&dir, 1, 2000);
    run_direct(&dir, 32, 32 * 300);
    run_group_commit(&dir, 32, 200);
    let t = Instant::now();
    let log = FileTxnLog::open(dir.join("log-b32"), LogOptions::default()).expect("reopen");
    println!(
        "reopen (scan + CRC check of {} records in a 64 MiB segment): {:?}",
        log.last_zxid(),
        t.elapsed()
    );
}
