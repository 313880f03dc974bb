//! One contract, two implementations: every test here runs against the file
//! log (with tiny segments, so rolling and multi-segment paths are hit) and
//! the memory log, and against both snapshot stores. Reopening a log without
//! `sync` is a crash. File-only crash-point and corruption tests follow.

use std::fs;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::log::{record_size, LogOptions, RECORD_HEADER, SEGMENT_HEADER};
use super::memory::{MemoryLogDisk, MemorySnapshotStore, MemoryTxnLog};
use super::snapshot::FileSnapshotStore;
use super::{Error, FileTxnLog, SnapshotStore, TxnLog};

/// Opens a log over durable state that outlives each opened log.
trait Harness {
    fn open(&mut self) -> Box<dyn TxnLog>;
}

struct FileHarness {
    dir: tempfile::TempDir,
    opts: LogOptions,
}

impl FileHarness {
    fn new() -> Self {
        FileHarness {
            dir: tempfile::tempdir().unwrap(),
            opts: LogOptions {
                segment_size: 1024,
                write_buffer: 256,
            },
        }
    }
    fn log_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("log")
    }
}

impl Harness for FileHarness {
    fn open(&mut self) -> Box<dyn TxnLog> {
        Box::new(FileTxnLog::open(self.log_dir(), self.opts.clone()).unwrap())
    }
}

struct MemHarness(MemoryLogDisk);

impl Harness for MemHarness {
    fn open(&mut self) -> Box<dyn TxnLog> {
        Box::new(MemoryTxnLog::open(&self.0))
    }
}

/// Payload of record `z`: length varies with `z` (0 to 97 bytes, padding
/// included), content names it, and it never ends in a zero byte.
fn payload(z: u64) -> Vec<u8> {
    let len = (z * 7 % 98) as usize;
    (0..len).map(|i| (z as usize + i) as u8 | 1).collect()
}

fn append_all(log: &mut dyn TxnLog, zxids: impl IntoIterator<Item = u64>) {
    for z in zxids {
        log.append(z, &payload(z)).unwrap();
    }
}

fn expect(zxids: impl IntoIterator<Item = u64>) -> Vec<(u64, Bytes)> {
    zxids
        .into_iter()
        .map(|z| (z, Bytes::from(payload(z))))
        .collect()
}

fn all(log: &dyn TxnLog) -> Vec<(u64, Bytes)> {
    log.read_after(log.base_zxid()).unwrap()
}

fn append_sync_reopen(h: &mut dyn Harness) {
    let mut log = h.open();
    assert_eq!(log.last_zxid(), 0);
    assert_eq!(log.base_zxid(), 0);
    assert_eq!(log.read_after(0).unwrap(), vec![]);
    append_all(log.as_mut(), 1..=60);
    assert_eq!(log.last_zxid(), 60);
    log.sync().unwrap();
    assert_eq!(log.read_after(0).unwrap(), expect(1..=60));
    drop(log);
    let mut log = h.open();
    assert_eq!(log.last_zxid(), 60);
    assert_eq!(log.read_after(0).unwrap(), expect(1..=60));
    append_all(log.as_mut(), 61..=80);
    log.sync().unwrap();
    drop(log);
    let log = h.open();
    assert_eq!(log.read_after(0).unwrap(), expect(1..=80));
}

fn unsynced_records_are_lost_or_a_prefix(h: &mut dyn Harness) {
    let mut log = h.open();
    append_all(log.as_mut(), 1..=10);
    log.sync().unwrap();
    append_all(log.as_mut(), 11..=40);
    // Unsynced records are not read, unless a segment roll synced them.
    let visible = log.read_after(0).unwrap();
    assert!(visible.len() >= 10);
    assert_eq!(visible, expect(1..=visible.len() as u64));
    drop(log); // crash
    let mut log = h.open();
    let got = log.read_after(0).unwrap();
    let last = log.last_zxid();
    assert!((10..=40).contains(&last), "last {last}");
    assert_eq!(got, expect(1..=last), "durable records plus a prefix");
    log.append(last + 1, b"next").unwrap();
    log.sync().unwrap();
    assert_eq!(
        log.read_after(last).unwrap(),
        vec![(last + 1, "next".into())]
    );
}

fn zxids_must_increase(h: &mut dyn Harness) {
    let mut log = h.open();
    assert!(matches!(
        log.append(0, b"x"),
        Err(Error::ZxidOrder { last: 0, got: 0 })
    ));
    log.append(5, b"a").unwrap();
    assert!(matches!(
        log.append(5, b"b"),
        Err(Error::ZxidOrder { last: 5, got: 5 })
    ));
    assert!(matches!(log.append(4, b"b"), Err(Error::ZxidOrder { .. })));
    log.append(1 << 32 | 1, b"new epoch").unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = h.open();
    assert!(matches!(
        log.append(1 << 32 | 1, b"again"),
        Err(Error::ZxidOrder { .. })
    ));
    assert_eq!(
        log.read_after(0).unwrap(),
        vec![(5, "a".into()), (1 << 32 | 1, "new epoch".into())]
    );
}

fn read_after_with_gaps(h: &mut dyn Harness) {
    let mut log = h.open();
    let zxids: Vec<u64> = (1..=50).map(|i| i * 10).collect();
    append_all(log.as_mut(), zxids.clone());
    log.sync().unwrap();
    for probe in [0, 5, 10, 11, 249, 250, 251, 499, 500, 10_000] {
        let want: Vec<u64> = zxids.iter().copied().filter(|z| *z > probe).collect();
        assert_eq!(
            log.read_after(probe).unwrap(),
            expect(want),
            "after {probe}"
        );
    }
}

fn truncate_after(h: &mut dyn Harness) {
    let mut log = h.open();
    let zxids: Vec<u64> = (1..=60).map(|i| i * 2).collect();
    append_all(log.as_mut(), zxids.clone());
    log.sync().unwrap();
    append_all(log.as_mut(), [130, 132]); // unsynced, also dropped
    log.truncate_after(61).unwrap();
    assert_eq!(log.last_zxid(), 60);
    assert_eq!(log.read_after(0).unwrap(), expect((1..=30).map(|i| i * 2)));
    assert!(matches!(log.append(60, b"x"), Err(Error::ZxidOrder { .. })));
    log.append(61, &payload(61)).unwrap();
    // truncate at or after the end is a no-op that makes records durable
    log.truncate_after(1000).unwrap();
    drop(log);
    let mut log = h.open();
    let mut want: Vec<u64> = (1..=30).map(|i| i * 2).collect();
    want.push(61);
    assert_eq!(log.read_after(0).unwrap(), expect(want));
    log.truncate_after(2).unwrap();
    assert_eq!(log.read_after(0).unwrap(), expect([2]));
    drop(log);
    let mut log = h.open();
    assert_eq!(log.last_zxid(), 2);
    log.truncate_after(1).unwrap();
    assert_eq!(log.last_zxid(), 0, "nothing left, the base stays");
    assert_eq!(log.base_zxid(), 0);
    assert_eq!(log.read_after(0).unwrap(), vec![]);
    log.append(2, b"fresh").unwrap();
    log.sync().unwrap();
    drop(log);
    let log = h.open();
    assert_eq!(log.read_after(0).unwrap(), vec![(2, "fresh".into())]);
}

fn reset(h: &mut dyn Harness) {
    let mut log = h.open();
    append_all(log.as_mut(), 1..=40);
    log.sync().unwrap();
    append_all(log.as_mut(), 41..=45);
    log.reset(1000).unwrap();
    assert_eq!(log.last_zxid(), 1000);
    assert_eq!(log.base_zxid(), 1000);
    assert_eq!(log.read_after(1000).unwrap(), vec![]);
    assert!(matches!(
        log.read_after(999),
        Err(Error::Compacted {
            requested: 999,
            base: 1000
        })
    ));
    drop(log); // the reset is durable without a sync
    let mut log = h.open();
    assert_eq!(log.last_zxid(), 1000);
    assert_eq!(log.base_zxid(), 1000);
    assert!(matches!(
        log.append(1000, b"x"),
        Err(Error::ZxidOrder { .. })
    ));
    append_all(log.as_mut(), 1001..=1030);
    log.sync().unwrap();
    drop(log);
    let mut log = h.open();
    assert_eq!(log.read_after(1000).unwrap(), expect(1001..=1030));
    log.truncate_after(1010).unwrap();
    assert_eq!(log.base_zxid(), 1000);
    log.truncate_after(1000).unwrap();
    assert_eq!((log.base_zxid(), log.last_zxid()), (1000, 1000));
    log.append(1001, &payload(1001)).unwrap();
    log.truncate_after(990).unwrap(); // below the base: empty, base 990
    assert_eq!((log.base_zxid(), log.last_zxid()), (990, 990));
    drop(log);
    let mut log = h.open();
    assert_eq!((log.base_zxid(), log.last_zxid()), (990, 990));
    log.reset(5).unwrap(); // a reset may also move the base down
    assert_eq!(log.last_zxid(), 5);
    assert_eq!(log.read_after(5).unwrap(), vec![]);
}

fn purge_before(h: &mut dyn Harness) {
    let mut log = h.open();
    append_all(log.as_mut(), 1..=200);
    log.sync().unwrap();
    log.purge_before(150).unwrap();
    let base = log.base_zxid();
    assert!(base < 150, "records >= 150 must be kept, base {base}");
    assert_eq!(log.read_after(149).unwrap(), expect(150..=200));
    assert_eq!(all(log.as_ref()), expect(base + 1..=200));
    assert_eq!(log.last_zxid(), 200);
    drop(log);
    let mut log = h.open();
    assert_eq!(log.base_zxid(), base);
    assert_eq!(log.read_after(149).unwrap(), expect(150..=200));
    if base > 0 {
        assert!(matches!(log.read_after(0), Err(Error::Compacted { .. })));
    }
    log.purge_before(u64::MAX).unwrap();
    assert_eq!(log.last_zxid(), 200, "the newest record is always kept");
    assert!(log
        .read_after(log.base_zxid())
        .unwrap()
        .contains(&(200, Bytes::from(payload(200)))));
    log.append(201, b"x").unwrap();
    log.sync().unwrap();
    drop(log);
    let log = h.open();
    assert_eq!(log.last_zxid(), 201);
}

fn truncate_is_durable_without_sync(h: &mut dyn Harness) {
    let mut log = h.open();
    append_all(log.as_mut(), 1..=30);
    log.sync().unwrap();
    log.truncate_after(10).unwrap();
    drop(log);
    let log = h.open();
    assert_eq!(log.last_zxid(), 10);
    assert_eq!(log.read_after(0).unwrap(), expect(1..=10));
}

macro_rules! log_conformance {
    ($($name:ident),* $(,)?) => {
        mod file_log {
            $(#[test] fn $name() { super::$name(&mut super::FileHarness::new()); })*
        }
        mod memory_log {
            $(#[test] fn $name() {
                super::$name(&mut super::MemHarness(super::MemoryLogDisk::new()));
            })*
        }
    };
}

log_conformance!(
    append_sync_reopen,
    unsynced_records_are_lost_or_a_prefix,
    zxids_must_increase,
    read_after_with_gaps,
    truncate_after,
    reset,
    purge_before,
    truncate_is_durable_without_sync,
);

// ---- snapshots ----

fn snapshot_contract(s: &mut dyn SnapshotStore, corrupt: &dyn Fn(u64)) {
    assert_eq!(s.latest().unwrap(), None);
    assert_eq!(s.list().unwrap(), Vec::<u64>::new());
    for z in [10u64, 20, 30, 40] {
        s.save(z, format!("body {z}").as_bytes()).unwrap();
    }
    s.save(30, b"body 30 again").unwrap();
    assert_eq!(s.list().unwrap(), vec![10, 20, 30, 40]);
    assert_eq!(s.latest().unwrap(), Some((40, "body 40".into())));
    corrupt(40);
    assert_eq!(
        s.latest().unwrap(),
        Some((30, "body 30 again".into())),
        "corrupt newest falls back to the next"
    );
    assert_eq!(s.purge(2).unwrap(), vec![10]);
    assert_eq!(s.list().unwrap(), vec![20, 30, 40]);
    assert_eq!(s.purge(1).unwrap(), vec![20]);
    assert_eq!(s.list().unwrap(), vec![30, 40]);
    assert_eq!(s.purge(0).unwrap(), Vec::<u64>::new(), "keep is at least 1");
    s.save(50, b"").unwrap();
    assert_eq!(s.latest().unwrap(), Some((50, Bytes::new())));
    assert_eq!(s.purge(1).unwrap(), vec![30, 40]);
    assert_eq!(s.list().unwrap(), vec![50]);
}

#[test]
fn file_snapshot_contract() {
    let d = tempfile::tempdir().unwrap();
    let mut s = FileSnapshotStore::open(d.path().join("snapshot")).unwrap();
    let dir = d.path().join("snapshot");
    let corrupt = move |z: u64| {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join(format!("snapshot.{z:016x}")))
            .unwrap();
        f.write_all_at(b"\xff", 34).unwrap();
    };
    snapshot_contract(&mut s, &corrupt);
    drop(s);
    let s = FileSnapshotStore::open(d.path().join("snapshot")).unwrap();
    assert_eq!(s.latest().unwrap(), Some((50, Bytes::new())));
}

#[test]
fn memory_snapshot_contract() {
    let mut s = MemorySnapshotStore::new();
    let handle = s.clone();
    snapshot_contract(&mut s, &move |z| handle.corrupt(z));
}

// ---- file log: crash points and corruption ----

/// Where record `z`'s bytes sit, assuming records were appended in order
/// into one segment starting at the header.
fn offsets(zxids: &[u64]) -> Vec<(u64, u64)> {
    let mut off = SEGMENT_HEADER;
    zxids
        .iter()
        .map(|z| {
            let start = off;
            off += record_size(payload(*z).len());
            (start, off)
        })
        .collect()
}

/// A log of records 1..=n in one segment; returns the harness and the path
/// of the segment.
fn one_segment_log(n: u64) -> (FileHarness, std::path::PathBuf) {
    let mut h = FileHarness::new();
    h.opts.segment_size = 64 << 10;
    let mut log = h.open();
    append_all(log.as_mut(), 1..=n);
    log.sync().unwrap();
    drop(log);
    let seg = fs::read_dir(h.log_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("log."))
        .unwrap();
    (h, seg)
}

#[test]
fn file_log_torn_last_record_at_every_offset_is_dropped() {
    let n = 20;
    let (mut h, seg) = one_segment_log(n);
    let good = fs::read(&seg).unwrap();
    let zxids: Vec<u64> = (1..=n).collect();
    let (start, end) = offsets(&zxids)[(n - 1) as usize];
    let payload_end = start + RECORD_HEADER + payload(n).len() as u64;
    assert!(
        payload_end - start > RECORD_HEADER + 8,
        "want a real payload"
    );
    for cut in start..end {
        for mode in 0..3 {
            let mut bytes = good.clone();
            match mode {
                // never written: zeros from the cut on
                0 => bytes[cut as usize..].fill(0),
                // a shorter file (no preallocation left)
                1 => bytes.truncate(cut as usize),
                // garbage from the cut to the end of the record
                _ => bytes[cut as usize..end as usize].fill(0xA5),
            }
            for e in fs::read_dir(h.log_dir()).unwrap() {
                fs::remove_file(e.unwrap().path()).unwrap();
            }
            fs::write(&seg, &bytes).unwrap();
            let mut log = h.open();
            let survived = cut >= payload_end;
            let want_last = if survived { n } else { n - 1 };
            assert_eq!(log.last_zxid(), want_last, "cut {cut} mode {mode}");
            assert_eq!(log.read_after(0).unwrap(), expect(1..=want_last));
            log.append(want_last + 1, b"after the tear").unwrap();
            log.sync().unwrap();
            drop(log);
            let log = h.open();
            let mut want = expect(1..=want_last);
            want.push((want_last + 1, "after the tear".into()));
            assert_eq!(log.read_after(0).unwrap(), want, "cut {cut} mode {mode}");
        }
    }
}

#[test]
fn file_log_bit_flip_before_good_records_is_corruption_with_file_and_offset() {
    let n = 20;
    let (mut h, seg) = one_segment_log(n);
    let good = fs::read(&seg).unwrap();
    let zxids: Vec<u64> = (1..=n).collect();
    let offs = offsets(&zxids);
    for victim in [0usize, 7, 18] {
        let (start, end) = offs[victim];
        let payload_end = start + RECORD_HEADER + payload(zxids[victim]).len() as u64;
        for at in start..end {
            let mut bytes = good.clone();
            bytes[at as usize] ^= 0x04;
            fs::write(&seg, &bytes).unwrap();
            let opened = FileTxnLog::open(h.log_dir(), h.opts.clone());
            if at >= payload_end {
                // padding is not covered by the CRC and holds no data
                let log = opened.expect("flip in padding is harmless");
                assert_eq!(log.read_after(0).unwrap(), expect(1..=n));
                continue;
            }
            match opened {
                Err(Error::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, seg, "flip at {at}");
                    assert_eq!(offset, start, "flip at {at}");
                }
                other => panic!("flip at {at}: expected corruption, got {other:?}"),
            }
        }
    }
    fs::write(&seg, &good).unwrap();
    assert_eq!(all(h.open().as_ref()), expect(1..=n));
}

#[test]
fn file_log_bad_record_in_earlier_segment_is_corruption() {
    let mut h = FileHarness::new();
    let mut log = h.open();
    append_all(log.as_mut(), 1..=100);
    log.sync().unwrap();
    drop(log);
    let mut segs: Vec<_> = fs::read_dir(h.log_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert!(segs.len() >= 3, "tiny segments must roll: {}", segs.len());
    // the last record of the first segment: nothing valid follows it there
    let good = fs::read(&segs[0]).unwrap();
    let first_zxids: Vec<u64> = (1..=100)
        .take_while(|z| offsets(&(1..=*z).collect::<Vec<_>>()).last().unwrap().1 <= 1024)
        .collect();
    let (start, _) = *offsets(&first_zxids).last().unwrap();
    let mut bytes = good.clone();
    bytes[start as usize + RECORD_HEADER as usize] ^= 0x80;
    fs::write(&segs[0], &bytes).unwrap();
    match FileTxnLog::open(h.log_dir(), h.opts.clone()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, segs[0]);
            assert_eq!(offset, start);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // a broken segment header is corruption too
    fs::write(&segs[0], &good).unwrap();
    let mut second = fs::read(&segs[1]).unwrap();
    second[20] ^= 1; // inside the base field
    fs::write(&segs[1], &second).unwrap();
    match FileTxnLog::open(h.log_dir(), h.opts.clone()) {
        Err(Error::Corrupt {
            path, offset: 0, ..
        }) => assert_eq!(path, segs[1]),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn file_log_missing_middle_segment_is_corruption() {
    let mut h = FileHarness::new();
    let mut log = h.open();
    append_all(log.as_mut(), 1..=100);
    log.sync().unwrap();
    drop(log);
    let mut segs: Vec<_> = fs::read_dir(h.log_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    fs::remove_file(&segs[1]).unwrap();
    match FileTxnLog::open(h.log_dir(), h.opts.clone()) {
        Err(Error::Corrupt {
            path, offset: 0, ..
        }) => assert_eq!(path, segs[2]),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn file_log_segments_roll_are_named_by_first_zxid_and_purge_deletes_files() {
    let mut h = FileHarness::new();
    let mut log = FileTxnLog::open(h.log_dir(), h.opts.clone()).unwrap();
    append_all(&mut log, 1..=100);
    log.sync().unwrap();
    let paths = log.segment_paths();
    assert!(paths.len() >= 3);
    let mut firsts = Vec::new();
    for p in &paths {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let z = u64::from_str_radix(name.strip_prefix("log.").unwrap(), 16).unwrap();
        assert_eq!(fs::metadata(p).unwrap().len(), 1024, "preallocated");
        firsts.push(z);
    }
    assert_eq!(firsts[0], 1);
    let records = log.read_after(0).unwrap();
    for w in firsts.windows(2) {
        // the record before a segment's first zxid is the previous one's last
        assert!(records.iter().any(|r| r.0 == w[1]));
    }
    log.purge_before(firsts[2]).unwrap();
    assert_eq!(log.segment_paths(), paths[2..].to_vec());
    assert_eq!(log.base_zxid(), firsts[2] - 1);
    assert!(!paths[0].exists() && !paths[1].exists());
    drop(log);
    let log = h.open();
    assert_eq!(
        log.read_after(firsts[2] - 1).unwrap(),
        expect(firsts[2]..=100)
    );
}

#[test]
fn file_log_empty_rolled_segment_after_crash_is_removed() {
    let h = FileHarness::new();
    let mut log = FileTxnLog::open(h.log_dir(), h.opts.clone()).unwrap();
    append_all(&mut log, 1..=10);
    log.sync().unwrap();
    let before = log.segment_paths().len();
    let mut z = 10;
    while log.segment_paths().len() == before {
        z += 3; // a gap: the new segment's name is not `base + 1`
        log.append(z, &payload(z)).unwrap();
    }
    // the roll synced everything before `z`; `z` itself is only buffered
    drop(log);
    let mut log = FileTxnLog::open(h.log_dir(), h.opts.clone()).unwrap();
    assert_eq!(log.segment_paths().len(), before);
    assert_eq!(log.last_zxid(), z - 3);
    let want: Vec<u64> = (1..=10).chain((13..z).step_by(3)).collect();
    assert_eq!(all(&log), expect(want));
    log.append(z + 5, &payload(z)).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = FileTxnLog::open(h.log_dir(), h.opts.clone()).unwrap();
    let last_seg = log.segment_paths().pop().unwrap();
    assert!(last_seg.ends_with(format!("log.{:016x}", z + 5)));
    assert_eq!(
        log.read_after(z - 3).unwrap(),
        vec![(z + 5, payload(z).into())]
    );
}

#[test]
fn file_log_interrupted_reset_is_finished_or_discarded() {
    // Build a finished reset elsewhere to get a valid staged directory.
    let staged = FileHarness::new();
    let mut l = FileTxnLog::open(staged.log_dir(), staged.opts.clone()).unwrap();
    l.reset(500).unwrap();
    drop(l);

    // Crash after the old log moved away, before the staged one moved in.
    let mut h = FileHarness::new();
    let mut log = h.open();
    append_all(log.as_mut(), 1..=20);
    log.sync().unwrap();
    drop(log);
    let trash = h.dir.path().join("log.trash");
    let reset = h.dir.path().join("log.reset");
    fs::rename(h.log_dir(), &trash).unwrap();
    copy_dir(&staged.log_dir(), &reset);
    let log = h.open();
    assert_eq!(log.last_zxid(), 500);
    assert_eq!(log.base_zxid(), 500);
    assert!(!trash.exists() && !reset.exists());

    // Crash before the old log moved: the staged directory is discarded.
    let mut h = FileHarness::new();
    let mut log = h.open();
    append_all(log.as_mut(), 1..=20);
    log.sync().unwrap();
    drop(log);
    copy_dir(&staged.log_dir(), &reset_of(&h));
    let log = h.open();
    assert_eq!(log.read_after(0).unwrap(), expect(1..=20));
    assert!(!reset_of(&h).exists());
}

fn reset_of(h: &FileHarness) -> std::path::PathBuf {
    h.dir.path().join("log.reset")
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn file_log_payload_cannot_forge_a_record() {
    // A payload holding a well-formed record (CRC seeded with 0, as a client
    // could compute) is torn: the scan must not take the forgery as a valid
    // record after the tear, so the tear is a clean tail, not corruption.
    let mut h = FileHarness::new();
    h.opts.segment_size = 64 << 10;
    let mut log = h.open();
    append_all(log.as_mut(), 1..=3);
    let mut forged = Vec::new();
    let inner: &[u8] = b"forged";
    let zx = 1_000u64.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&zx), inner);
    forged.extend_from_slice(&[0u8; 16]);
    forged.extend_from_slice(&(inner.len() as u32).to_le_bytes());
    forged.extend_from_slice(&crc.to_le_bytes());
    forged.extend_from_slice(&zx);
    forged.extend_from_slice(inner);
    log.append(4, &forged).unwrap();
    log.sync().unwrap();
    drop(log);
    let seg = h.log_dir().join("log.0000000000000001");
    let zxids = [1u64, 2, 3];
    let (_, start) = *offsets(&zxids).last().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[start as usize + 4] ^= 0xff; // tear record 4's CRC
    fs::write(&seg, &bytes).unwrap();
    let log = h.open();
    assert_eq!(log.last_zxid(), 3);
}

// ---- differential test: file log, memory log and a model agree ----

/// Random appends, syncs, crashes, truncations, purges and resets applied
/// to both logs and a plain vector. Where the implementations may differ
/// (how much unsynced data a crash keeps, how much a purge deletes) the test
/// checks each against the model and then brings them back in line.
#[test]
fn file_and_memory_logs_agree_under_random_ops() {
    use rand::{Rng, SeedableRng};
    for seed in 0..8u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut fh = FileHarness::new();
        fh.opts.segment_size = 512;
        fh.opts.write_buffer = 128;
        let mut mh = MemHarness(MemoryLogDisk::new());
        let (mut f, mut m) = (fh.open(), mh.open());
        let mut model: Vec<u64> = Vec::new();
        let mut durable = 0usize; // model[..durable] is durable in both
        let mut floor = 0u64; // the model's base
        for step in 0..200 {
            let ctx = format!("seed {seed} step {step}");
            let op = rng.gen_range(0..100);
            match op {
                0..=49 => {
                    for _ in 0..rng.gen_range(1..6) {
                        let last = model.last().copied().unwrap_or(floor);
                        let z = if rng.gen_ratio(1, 20) {
                            ((last >> 32) + 1) << 32 | 1
                        } else {
                            last + rng.gen_range(1..4)
                        };
                        f.append(z, &payload(z)).unwrap();
                        m.append(z, &payload(z)).unwrap();
                        model.push(z);
                    }
                }
                50..=69 => {
                    f.sync().unwrap();
                    m.sync().unwrap();
                    durable = model.len();
                }
                70..=79 => {
                    drop((f, m)); // crash
                    f = fh.open();
                    m = mh.open();
                    for log in [&f, &m] {
                        let got = all(log.as_ref());
                        assert!(
                            got.len()
                                >= durable.saturating_sub(model_purged(&model, log.base_zxid())),
                            "{ctx}"
                        );
                        let want: Vec<u64> = model
                            .iter()
                            .copied()
                            .filter(|z| *z > log.base_zxid())
                            .collect();
                        assert_eq!(got, expect(want[..got.len()].to_vec()), "{ctx}");
                    }
                    let keep = f.last_zxid().min(m.last_zxid());
                    f.truncate_after(keep).unwrap();
                    m.truncate_after(keep).unwrap();
                    model.retain(|z| *z <= keep);
                    durable = model.len();
                }
                80..=87 if !model.is_empty() => {
                    let lo = f.base_zxid().max(m.base_zxid()).max(floor);
                    let hi = model.last().copied().unwrap_or(lo);
                    let z = rng.gen_range(lo..=hi);
                    f.truncate_after(z).unwrap();
                    m.truncate_after(z).unwrap();
                    model.retain(|x| *x <= z);
                    durable = model.len();
                }
                88..=95 if !model.is_empty() => {
                    let z = model[rng.gen_range(0..model.len())];
                    f.purge_before(z).unwrap();
                    m.purge_before(z).unwrap();
                }
                96..=99 => {
                    let z = model.last().copied().unwrap_or(floor) + rng.gen_range(0..50);
                    f.reset(z).unwrap();
                    m.reset(z).unwrap();
                    model.clear();
                    floor = z;
                    durable = 0;
                }
                _ => {}
            }
            assert_eq!(f.last_zxid(), m.last_zxid(), "{ctx}");
            assert_eq!(
                f.last_zxid(),
                model.last().copied().unwrap_or(floor),
                "{ctx}"
            );
            if durable == model.len() {
                let base = f.base_zxid().max(m.base_zxid());
                let want: Vec<u64> = model.iter().copied().filter(|z| *z > base).collect();
                assert_eq!(f.read_after(base).unwrap(), expect(want.clone()), "{ctx}");
                assert_eq!(m.read_after(base).unwrap(), expect(want), "{ctx}");
            }
        }
    }
}

/// How many model records a log with this base no longer holds.
fn model_purged(model: &[u64], base: u64) -> usize {
    model.iter().filter(|z| **z <= base).count()
}

#[test]
fn file_log_purge_then_crash_before_the_only_segment_got_a_record() {
    // Found by the differential test: the only segment left after a purge
    // was a roll-over whose first record was lost in a crash; appending a
    // smaller zxid under its name made the next open fail.
    let mut h = FileHarness::new();
    let mut log = FileTxnLog::open(h.log_dir(), h.opts.clone()).unwrap();
    append_all(&mut log, 1..=5);
    log.sync().unwrap();
    let mut z = 5;
    while log.segment_paths().len() == 1 {
        z += 100;
        log.append(z, &payload(z)).unwrap();
    }
    log.purge_before(u64::MAX).unwrap();
    assert_eq!(log.segment_paths().len(), 1);
    drop(log); // record `z` was never synced
    let mut log = h.open();
    let before = z - 100;
    assert_eq!((log.base_zxid(), log.last_zxid()), (before, before));
    log.append(before + 1, b"small").unwrap();
    log.sync().unwrap();
    drop(log);
    let log = h.open();
    assert_eq!(
        log.read_after(before).unwrap(),
        vec![(before + 1, "small".into())]
    );
}

#[test]
fn file_log_record_larger_than_a_segment_gets_its_own() {
    let mut h = FileHarness::new();
    let mut log = FileTxnLog::open(h.log_dir(), h.opts.clone()).unwrap();
    let big = vec![7u8; 3000];
    log.append(1, b"small").unwrap();
    log.append(2, &big).unwrap();
    log.append(3, b"after").unwrap();
    log.sync().unwrap();
    assert_eq!(log.segment_paths().len(), 3);
    drop(log);
    let log = h.open();
    assert_eq!(
        log.read_after(0).unwrap(),
        vec![(1, "small".into()), (2, big.into()), (3, "after".into())]
    );
}

#[test]
fn data_dir_lays_out_the_three_stores() {
    use super::{DataDir, EpochStore, Epochs};
    let d = tempfile::tempdir().unwrap();
    let mut dd = DataDir::open(d.path(), LogOptions::default()).unwrap();
    dd.log.append(1, b"a").unwrap();
    dd.log.sync().unwrap();
    dd.snapshots.save(1, b"tree").unwrap();
    let e = Epochs {
        accepted: 2,
        current: 1,
        lease_mark: true,
    };
    dd.epochs.save(e).unwrap();
    drop(dd);
    assert!(d.path().join("log/log.0000000000000001").is_file());
    assert!(d
        .path()
        .join("snapshot/snapshot.0000000000000001")
        .is_file());
    assert!(d.path().join("acceptedEpoch").is_file());
    let dd = DataDir::open(d.path(), LogOptions::default()).unwrap();
    assert_eq!(dd.log.read_after(0).unwrap(), vec![(1, "a".into())]);
    assert_eq!(dd.snapshots.latest().unwrap(), Some((1, "tree".into())));
    assert_eq!(dd.epochs.load().unwrap(), e);
}
