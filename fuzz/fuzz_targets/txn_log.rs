//! The txn log reader: a segment file of arbitrary bytes, or a segment whose records
//! region holds arbitrary bytes (or valid records with arbitrary bytes XORed over them),
//! opens with an error or gives records, never panics.
//!
//! The first byte picks the mode: with its high bit set the rest is a whole segment file
//! (header, salt and record CRCs as the input has them: a segment copied from a real log
//! is valid as it stands); otherwise the log is made here with valid records (their
//! count from the low bits) and the rest is XORed over its records region (odd) or
//! written in its place (even). A segment made here has a random salt, so in those modes
//! only the records' framing, not their CRCs, carries over between runs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::FileExt;
use zabkeeper_server::storage::{FileTxnLog, LogOptions, TxnLog};
use zabkeeper_server::txn::Txn;

const HEADER: u64 = 32;

/// A temporary directory in memory where there is one (/dev/shm): the log fsyncs on
/// every open, which on a disk would leave a few dozen inputs a second.
fn scratch_dir() -> tempfile::TempDir {
    match std::path::Path::new("/dev/shm") {
        shm if shm.is_dir() => tempfile::tempdir_in(shm).unwrap(),
        _ => tempfile::tempdir().unwrap(),
    }
}

fn read_all(dir: &std::path::Path, opts: LogOptions) {
    if let Ok(log) = FileTxnLog::open(dir, opts) {
        if let Ok(records) = log.read_after(0) {
            for (_, payload) in records {
                let _ = Txn::decode(&payload);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let tmp = scratch_dir();
    let dir = tmp.path().join("log");
    let opts = LogOptions {
        segment_size: 64 * 1024,
        write_buffer: 1 << 16,
    };
    let body = &body[..body.len().min(60 * 1024)];
    if mode & 0x80 != 0 {
        // Named as the segment a log with this header's base would create.
        let base = body
            .get(16..24)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("log.{:016x}", base.wrapping_add(1));
        std::fs::write(dir.join(name), body).unwrap();
        read_all(&dir, opts);
        return;
    }
    {
        let mut log = FileTxnLog::open(&dir, opts.clone()).unwrap();
        // Valid records first (a new log has no segment before its first record), then
        // the input XORed over them (odd mode) or written in their place (even mode).
        for zxid in 1..=(mode as u64 >> 1) % 32 + 1 {
            log.append(zxid, &vec![zxid as u8; (zxid * 7) as usize])
                .unwrap();
        }
        log.sync().unwrap();
    }
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log."))
        })
        .expect("a segment");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&segment)
        .unwrap();
    let mut region = vec![0u8; body.len()];
    file.read_at(&mut region, HEADER).unwrap();
    if mode & 1 == 1 {
        region.iter_mut().zip(body).for_each(|(r, b)| *r ^= b);
    } else {
        region.copy_from_slice(body);
    }
    file.write_at(&region, HEADER).unwrap();
    drop(file);
    read_all(&dir, opts);
});
