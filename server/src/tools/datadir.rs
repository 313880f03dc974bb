//! Read-only access to a data directory: scanning log segments record by record,
//! reading snapshots, rebuilding the tree, and `verify`.
//!
//! The server's own `FileTxnLog::open` repairs what it finds (it cuts a torn
//! tail), so the tools scan the files themselves with the log's record parser and
//! never write. Layout and formats: `storage/mod.rs`, `storage/log.rs`,
//! `storage/snapshot.rs`.

use crate::error::{Error, Result};
use crate::storage::fsutil::parse_zxid_name;
use crate::storage::log::{decode_header, parse_record, Parsed, PREFIX, SEGMENT_HEADER};
use crate::storage::snapshot::decode_file;
use crate::tree::DataTree;
use crate::txn::Txn;
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong in a data directory, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}: {}",
            self.file.display(),
            self.offset,
            self.reason
        )
    }
}

/// A log record as found in a segment.
#[derive(Debug, Clone)]
pub struct Record {
    pub offset: u64,
    pub zxid: u64,
    pub payload: Vec<u8>,
}

/// What a segment holds, up to its first bad record.
#[derive(Debug)]
pub struct SegmentScan {
    pub path: PathBuf,
    pub base: u64,
    pub records: Vec<Record>,
    /// The first bad record (or header), and whether a valid record follows it
    /// (then it cannot be a torn tail).
    pub bad: Option<(Problem, bool)>,
}

/// Reads and checks one segment file without changing it.
pub fn scan_segment(path: &Path) -> Result<SegmentScan> {
    let bytes = std::fs::read(path)?;
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
        base: 0,
        records: Vec::new(),
        bad: None,
    };
    let salt = match decode_header(path, &bytes) {
        Ok((salt, base)) => {
            scan.base = base;
            salt
        }
        Err(e) => {
            scan.bad = Some((
                Problem {
                    file: path.to_path_buf(),
                    offset: 0,
                    reason: strip_location(&e),
                },
                true,
            ));
            return Ok(scan);
        }
    };
    let mut off = SEGMENT_HEADER as usize;
    let mut prev = scan.base;
    while off < bytes.len() {
        match parse_record(&bytes, off, salt, prev) {
            Parsed::Record {
                zxid,
                payload,
                size,
            } => {
                scan.records.push(Record {
                    offset: off as u64,
                    zxid,
                    payload: payload.to_vec(),
                });
                prev = zxid;
                off += size as usize;
            }
            Parsed::Zero => {
                // The end of the data, unless a valid record follows (a zeroed header).
                if let Some(at) = valid_record_after(&bytes, off, salt, prev) {
                    scan.bad = Some((
                        Problem {
                            file: path.to_path_buf(),
                            offset: off as u64,
                            reason: format!(
                                "zeroed record header, yet a valid record follows at offset {at}"
                            ),
                        },
                        true,
                    ));
                }
                break;
            }
            Parsed::Bad(reason) => {
                let later = valid_record_after(&bytes, off, salt, prev);
                scan.bad = Some((
                    Problem {
                        file: path.to_path_buf(),
                        offset: off as u64,
                        reason,
                    },
                    later.is_some(),
                ));
                break;
            }
        }
    }
    Ok(scan)
}

/// Offset of a valid record at an 8-aligned offset after `off`, if any.
fn valid_record_after(bytes: &[u8], off: usize, salt: u32, prev: u64) -> Option<usize> {
    (off + 8..bytes.len())
        .step_by(8)
        .find(|&o| matches!(parse_record(bytes, o, salt, prev), Parsed::Record { .. }))
}

/// The storage error's reason without its own "in FILE at offset N" prefix.
fn strip_location(e: &crate::storage::Error) -> String {
    match e {
        crate::storage::Error::Corrupt { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// Segment files of a log directory, in log order.
pub fn segment_files(log_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    files_with_prefix(log_dir, PREFIX)
}

/// Snapshot files of a snapshot directory, oldest first.
pub fn snapshot_files(snap_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    files_with_prefix(snap_dir, "snapshot.")
}

fn files_with_prefix(dir: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(z) = parse_zxid_name(&entry.file_name().to_string_lossy(), prefix) {
            out.push((z, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a snapshot file: `(zxid, tree)` or the problem with it.
pub fn read_snapshot(path: &Path) -> Result<std::result::Result<(u64, DataTree), Problem>> {
    let bytes = std::fs::read(path)?;
    let problem = |offset: u64, reason: String| Problem {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    let (zxid, body) = match decode_file(&bytes) {
        Ok(v) => v,
        Err(reason) => {
            // The trailing CRC covers the whole file; header checks are at its start.
            let offset = if reason.contains("crc") {
                bytes.len().saturating_sub(4) as u64
            } else {
                0
            };
            return Ok(Err(problem(offset, reason)));
        }
    };
    if let Some(named) = path
        .file_name()
        .and_then(|n| parse_zxid_name(&n.to_string_lossy(), "snapshot."))
    {
        if named != zxid {
            return Ok(Err(problem(
                16,
                format!("header zxid {zxid:#x} does not match the file name ({named:#x})"),
            )));
        }
    }
    match DataTree::deserialize(body) {
        Ok(tree) => Ok(Ok((zxid, tree))),
        Err(e) => Ok(Err(problem(
            32,
            format!("snapshot body does not decode: {e}"),
        ))),
    }
}

/// What `load_tree` found.
#[derive(Debug)]
pub struct Loaded {
    pub tree: DataTree,
    pub snapshot_zxid: u64,
    pub replayed: u64,
}

/// The tree a server would recover from `dir`: the newest valid snapshot plus the
/// valid log records after it (read-only; stops at the first bad record).
pub fn load_tree(dir: &Path) -> Result<Loaded> {
    if !dir.is_dir() {
        return Err(Error::Tool(format!("{} is not a directory", dir.display())));
    }
    let mut start = None;
    for (_, path) in snapshot_files(&dir.join("snapshot"))?.into_iter().rev() {
        if let Ok(found) = read_snapshot(&path)? {
            start = Some(found);
            break;
        }
    }
    let (snapshot_zxid, mut tree) = start.unwrap_or((0, DataTree::new()));
    let mut replayed = 0;
    'segments: for (_, path) in segment_files(&dir.join("log"))? {
        let scan = scan_segment(&path)?;
        for r in &scan.records {
            if r.zxid <= snapshot_zxid {
                continue;
            }
            let txn = Txn::decode(&r.payload).map_err(|e| {
                Error::Tool(format!(
                    "{} at offset {}: txn does not decode: {e}",
                    path.display(),
                    r.offset
                ))
            })?;
            tree.apply(&txn);
            replayed += 1;
        }
        if scan.bad.is_some() {
            break 'segments;
        }
    }
    Ok(Loaded {
        tree,
        snapshot_zxid,
        replayed,
    })
}

/// The result of `verify`.
#[derive(Debug, Default)]
pub struct Report {
    pub dir: PathBuf,
    pub segments: usize,
    pub records: u64,
    pub last_zxid: u64,
    /// (zxid, file size) of every valid snapshot.
    pub snapshots: Vec<(u64, u64)>,
    pub epochs: Vec<(String, String)>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory {}", self.dir.display())?;
        writeln!(
            f,
            "log: {} segments, {} records, last zxid {:#x}",
            self.segments, self.records, self.last_zxid
        )?;
        for (zxid, size) in &self.snapshots {
            writeln!(f, "snapshot {zxid:#x}: {size} bytes, ok")?;
        }
        for (name, value) in &self.epochs {
            writeln!(f, "{name}: {value}")?;
        }
        for p in &self.problems {
            writeln!(f, "CORRUPT {p}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "OK: every checksum matches")
        } else {
            writeln!(f, "FAILED: {} problem(s)", self.problems.len())
        }
    }
}

/// Checks every log record, segment header, snapshot and epoch file of `dir`.
///
/// A bad record in the last segment with nothing valid after it is reported as a
/// torn tail (what a power loss during an unsynced write leaves, which the server
/// drops at start); anything else is corruption. Both are problems: a clean data
/// directory has neither.
pub fn verify(dir: &Path) -> Result<Report> {
    if !dir.is_dir() {
        return Err(Error::Tool(format!("{} is not a directory", dir.display())));
    }
    let mut report = Report {
        dir: dir.to_path_buf(),
        ..Report::default()
    };
    let segments = segment_files(&dir.join("log"))?;
    report.segments = segments.len();
    let mut prev_last: Option<u64> = None;
    let mut log_base = None;
    for (i, (_, path)) in segments.iter().enumerate() {
        let scan = scan_segment(path)?;
        let last_segment = i + 1 == segments.len();
        log_base.get_or_insert(scan.base);
        if let (Some(prev), Some(first)) = (prev_last, scan.records.first()) {
            if scan.base != prev {
                report.problems.push(Problem {
                    file: path.clone(),
                    offset: 16,
                    reason: format!(
                        "segment base {:#x} is not the previous segment's last zxid {prev:#x} (first record {:#x})",
                        scan.base, first.zxid
                    ),
                });
            }
        }
        for r in &scan.records {
            if let Err(e) = Txn::decode(&r.payload) {
                report.problems.push(Problem {
                    file: path.clone(),
                    offset: r.offset,
                    reason: format!("record {:#x} passes its CRC but is not a txn: {e}", r.zxid),
                });
            }
        }
        report.records += scan.records.len() as u64;
        if let Some(last) = scan.records.last() {
            report.last_zxid = last.zxid;
            prev_last = Some(last.zxid);
        } else if prev_last.is_none() {
            prev_last = Some(scan.base);
        }
        if let Some((mut problem, valid_after)) = scan.bad {
            if last_segment && !valid_after {
                problem.reason = format!(
                    "torn tail ({}): what a crash in the middle of an unsynced write leaves; the server drops it at start",
                    problem.reason
                );
            }
            report.problems.push(problem);
        }
    }
    let mut newest_snapshot = None;
    for (_, path) in snapshot_files(&dir.join("snapshot"))? {
        match read_snapshot(&path)? {
            Ok((zxid, _)) => {
                let size = std::fs::metadata(&path)?.len();
                report.snapshots.push((zxid, size));
                newest_snapshot = Some(zxid);
            }
            Err(p) => report.problems.push(p),
        }
    }
    if let (Some(snap), Some(base)) = (newest_snapshot, log_base) {
        if base > snap {
            report.problems.push(Problem {
                file: dir.join("log"),
                offset: 0,
                reason: format!(
                    "the log starts after zxid {base:#x} but the newest valid snapshot is {snap:#x}: txns in between are missing"
                ),
            });
        }
    }
    for name in crate::storage::epoch::FILES {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => match crate::storage::epoch::parse_file(name, &text) {
                Ok(v) => report.epochs.push((name.into(), v.to_string())),
                Err(reason) => report.problems.push(Problem {
                    file: path,
                    offset: 0,
                    reason,
                }),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.epochs.push((name.into(), "absent (0)".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{FileTxnLog, LogOptions, TxnLog};
    use crate::txn::TxnBody;
    use std::os::unix::fs::FileExt;

    fn log_with(dir: &Path, n: u64) -> PathBuf {
        let mut log = FileTxnLog::open(dir.join("log"), LogOptions::default()).unwrap();
        for zxid in 1..=n {
            let txn = Txn {
                session_id: 0,
                cxid: 0,
                zxid: zxid as i64,
                time_ms: 0,
                request_number: 0,
                acked_below: 0,
                body: TxnBody::CreateSession { timeout_ms: 1000 },
            };
            log.append(zxid, &txn.encode()).unwrap();
        }
        log.sync().unwrap();
        log.segment_paths().pop().unwrap()
    }

    fn flip(path: &Path, at: u64) {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
    }

    #[test]
    fn clean_log_verifies() {
        let d = tempfile::tempdir().unwrap();
        log_with(d.path(), 5);
        let r = verify(d.path()).unwrap();
        assert!(r.problems.is_empty(), "{r}");
        assert_eq!((r.records, r.last_zxid), (5, 5));
    }

    #[test]
    fn bad_last_record_is_a_torn_tail_and_bad_middle_record_is_corruption() {
        let d = tempfile::tempdir().unwrap();
        let seg = log_with(d.path(), 5);
        let offsets: Vec<u64> = scan_segment(&seg)
            .unwrap()
            .records
            .iter()
            .map(|r| r.offset)
            .collect();
        flip(&seg, offsets[4] + 17);
        let r = verify(d.path()).unwrap();
        assert_eq!(r.problems.len(), 1, "{r}");
        assert_eq!(r.problems[0].offset, offsets[4]);
        assert!(r.problems[0].reason.starts_with("torn tail"), "{r}");
        assert_eq!(r.records, 4);
        flip(&seg, offsets[4] + 17);
        flip(&seg, offsets[1] + 17);
        let r = verify(d.path()).unwrap();
        assert_eq!(r.problems.len(), 1, "{r}");
        assert_eq!(r.problems[0].offset, offsets[1]);
        assert!(r.problems[0].reason.contains("crc mismatch"), "{r}");
        assert!(!r.problems[0].reason.contains("torn"), "{r}");
        assert_eq!(r.problems[0].file, seg);
    }

    #[test]
    fn bad_segment_header_is_reported_at_offset_zero() {
        let d = tempfile::tempdir().unwrap();
        let seg = log_with(d.path(), 2);
        flip(&seg, 3);
        let r = verify(d.path()).unwrap();
        assert_eq!(r.problems.len(), 1, "{r}");
        assert_eq!((r.problems[0].offset, r.records), (0, 0));
        assert!(r.problems[0].reason.contains("magic"), "{r}");
    }

    #[test]
    fn epoch_files_are_checked_as_the_store_reads_them() {
        let d = tempfile::tempdir().unwrap();
        log_with(d.path(), 1);
        std::fs::write(d.path().join("acceptedEpoch"), "3\n").unwrap();
        std::fs::write(d.path().join("leaseMark"), "1\n").unwrap();
        let r = verify(d.path()).unwrap();
        assert!(r.problems.is_empty(), "{r}");
        assert!(r.epochs.contains(&("leaseMark".into(), "1".into())), "{r}");
        std::fs::write(d.path().join("leaseMark"), "2\n").unwrap();
        std::fs::write(d.path().join("currentEpoch"), "x\n").unwrap();
        let r = verify(d.path()).unwrap();
        assert_eq!(r.problems.len(), 2, "{r}");
        let bad: Vec<_> = r.problems.iter().map(|p| p.file.clone()).collect();
        assert!(bad.contains(&d.path().join("leaseMark")), "{r}");
        assert!(bad.contains(&d.path().join("currentEpoch")), "{r}");
        assert!(
            r.problems.iter().any(|p| p.reason.contains("not 0 or 1")),
            "{r}"
        );
    }
}
