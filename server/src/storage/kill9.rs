//! Process-crash test: the test re-runs its own binary as a child that
//! appends and syncs in a loop, printing each synced zxid ("ACK z"), and
//! kills it with SIGKILL at arbitrary points. After every kill the log must
//! hold every acknowledged record, contiguous and intact, and a new child
//! must be able to carry on. (A machine crash is modelled by the torn-write
//! tests in `conformance.rs`; this one checks the real write/fsync path.)

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::{FileTxnLog, LogOptions, TxnLog};

const CHILD_ENV: &str = "ZABKEEPER_STORAGE_KILL9_CHILD_DIR";
const TEST_NAME: &str = "storage::kill9::kill_9_never_loses_a_synced_record";

fn opts() -> LogOptions {
    LogOptions {
        segment_size: 64 << 10,
        write_buffer: 4 << 10,
    }
}

fn payload(z: u64) -> Vec<u8> {
    format!("txn-{z};")
        .repeat((z % 40) as usize + 1)
        .into_bytes()
}

fn child(dir: &str) -> ! {
    let mut log = FileTxnLog::open(dir, opts()).expect("child: open log");
    let mut z = log.last_zxid();
    let mut out = std::io::stdout().lock();
    loop {
        for _ in 0..(z % 7 + 1) {
            z += 1;
            log.append(z, &payload(z)).expect("child: append");
        }
        log.sync().expect("child: sync");
        writeln!(out, "\nACK {z}").expect("child: stdout");
        out.flush().expect("child: flush");
    }
}

#[test]
fn kill_9_never_loses_a_synced_record() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let tmp = tempfile::tempdir().unwrap();
    let log_dir = tmp.path().join("log");
    let mut acked = 0u64;
    for round in 0..6u64 {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &log_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = c.stdout.take().unwrap();
        let mut acks = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let Some(z) = line.strip_prefix("ACK ") else {
                continue;
            };
            let z: u64 = z.trim().parse().unwrap();
            assert!(z > acked, "acks must increase: {z} after {acked}");
            acked = z;
            acks += 1;
            if acks == 50 + round * 61 {
                break;
            }
        }
        c.kill().unwrap(); // SIGKILL, possibly in the middle of a write
        c.wait().unwrap();
        assert!(acks > 0, "child produced no acks in round {round}");
        let log = FileTxnLog::open(&log_dir, opts()).unwrap();
        assert!(
            log.last_zxid() >= acked,
            "round {round}: last {} < acked {acked}",
            log.last_zxid()
        );
        let records = log.read_after(0).unwrap();
        assert_eq!(records.len() as u64, log.last_zxid());
        for (i, (z, p)) in records.iter().enumerate() {
            assert_eq!(
                *z,
                i as u64 + 1,
                "round {round}: records must be contiguous"
            );
            assert_eq!(&p[..], &payload(*z)[..], "round {round}: payload of {z}");
        }
    }
}
