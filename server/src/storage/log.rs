//! The file transaction log: preallocated segments with CRC32C records.
//!
//! # Segments
//! `DIR/log/log.<16 hex>` where the hex is a lower bound of the zxids in the
//! segment: the first record's zxid for a segment opened by rolling over,
//! `after + 1` for the segment [`TxnLog::reset`] creates. Names sort in log
//! order. A segment is created whole (temp file, `fallocate` to the segment
//! size, header, fsync, rename, fsync directory) so it never exists
//! half-made. Its 32-byte header, little-endian:
//! ```text
//! [8 magic "ZABKLOG\0"][u32 version = 1][u32 salt][u64 base][u32 reserved = 0][u32 crc32c of the 28 bytes before]
//! ```
//! `base` is the zxid every record of the segment exceeds; for a segment
//! opened by rolling over it equals the last zxid of the segment before,
//! which the open-time scan checks. `salt` is a random seed for the record
//! CRCs of this segment (`crc32c_append(salt, zxid ++ payload)`), so bytes a
//! client stored inside a payload can never pass for a record of the log
//! during the corruption scan described in the parent module.
//!
//! # Records
//! `[u32 len][u32 crc][u64 zxid][payload][zero padding to 8 bytes]`. Records
//! are 8-aligned so the scan that looks for valid records after a bad one
//! only tries aligned offsets.
//!
//! # Writing
//! `append` encodes into a buffer (flushed early with `pwrite` when it grows
//! past [`LogOptions::write_buffer`]); `sync` writes the buffer and calls
//! `fdatasync` once. Before rolling to a new segment the old one is synced, so
//! only the last segment can ever hold unsynced (possibly torn) bytes; that is
//! why a bad record in an earlier segment is corruption, never a torn tail.
//!
//! # Truncation and reset
//! `truncate_after` deletes later segments newest first, then cuts the
//! segment holding the new tail and re-extends it with zeros; a crash midway
//! leaves a consistent, longer prefix. `reset` builds the new, empty log in
//! the sibling directory `log.reset`, then renames `log` to `log.trash` and
//! `log.reset` to `log` (each rename followed by a directory fsync), so a
//! crash leaves either the old or the new log; `open` finishes or discards
//! an interrupted reset.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::fsutil::{
    create_dir_durable, fsync_dir, io_err, parse_zxid_name, remove_tmp_files, zxid_name, TMP_SUFFIX,
};
use super::{Error, Result, TxnLog};

const MAGIC: &[u8; 8] = b"ZABKLOG\0";
const VERSION: u32 = 1;
/// Size of the segment header; records start here.
pub const SEGMENT_HEADER: u64 = 32;
/// Size of a record header.
pub const RECORD_HEADER: u64 = 16;
pub(crate) const PREFIX: &str = "log.";
/// Every this many records a segment's sparse index remembers an offset.
const INDEX_EVERY: usize = 64;
/// Largest payload accepted (far above any frame limit; keeps `len` sane).
const MAX_PAYLOAD: usize = 1 << 30;

/// Tuning of the file log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Preallocated size of a segment (a larger record gets a larger one).
    pub segment_size: u64,
    /// Appended bytes buffered before they are written (not synced) early.
    pub write_buffer: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size: 64 << 20,
            write_buffer: 1 << 20,
        }
    }
}

/// Bytes a record with `len` payload bytes takes in a segment.
pub fn record_size(len: usize) -> u64 {
    RECORD_HEADER + (len as u64).div_ceil(8) * 8
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// The zxid in the file name.
    name: u64,
    file: File,
    salt: u32,
    base: u64,
    /// File length (the preallocated size).
    size: u64,
    /// Offset after the last record, including records still in the buffer.
    end: u64,
    first: Option<u64>,
    last: Option<u64>,
    /// (zxid, offset) of every `INDEX_EVERY`th record, the first included.
    index: Vec<(u64, u64)>,
    count: usize,
}

impl Segment {
    fn last_or_base(&self) -> u64 {
        self.last.unwrap_or(self.base)
    }

    fn note_record(&mut self, zxid: u64, offset: u64) {
        if self.count.is_multiple_of(INDEX_EVERY) {
            self.index.push((zxid, offset));
        }
        self.count += 1;
        self.first.get_or_insert(zxid);
        self.last = Some(zxid);
    }

    /// Offset to start parsing from to find the first record `> zxid`, and
    /// the ordinal (within the segment) of the record there.
    fn seek_hint(&self, zxid: u64) -> (u64, usize) {
        let i = self.index.partition_point(|e| e.0 <= zxid);
        if i == 0 {
            (SEGMENT_HEADER, 0)
        } else {
            (self.index[i - 1].1, (i - 1) * INDEX_EVERY)
        }
    }
}

/// Outcome of decoding the bytes at one offset.
pub(crate) enum Parsed<'a> {
    Record {
        zxid: u64,
        payload: &'a [u8],
        size: u64,
    },
    /// An all-zero record header: no data from here on.
    Zero,
    Bad(String),
}

/// Decodes the record at `off` of `buf` (`buf` starts at file offset 0 or at
/// any record boundary; offsets are relative to it).
pub(crate) fn parse_record(buf: &[u8], off: usize, salt: u32, after: u64) -> Parsed<'_> {
    let Some(h) = buf.get(off..off + RECORD_HEADER as usize) else {
        if buf[off.min(buf.len())..].iter().all(|b| *b == 0) {
            return Parsed::Zero;
        }
        return Parsed::Bad("short record header".into());
    };
    if h.iter().all(|b| *b == 0) {
        return Parsed::Zero;
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let zxid = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let start = off + RECORD_HEADER as usize;
    let Some(payload) = buf.get(start..start + len) else {
        return Parsed::Bad(format!("record length {len} runs past the end"));
    };
    let actual = crc32c::crc32c_append(crc32c::crc32c_append(salt, &h[8..16]), payload);
    if actual != crc {
        return Parsed::Bad(format!(
            "crc mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    if zxid <= after {
        return Parsed::Bad(format!("zxid {zxid:#x} does not follow {after:#x}"));
    }
    Parsed::Record {
        zxid,
        payload,
        size: record_size(len),
    }
}

fn encode_record(out: &mut Vec<u8>, salt: u32, zxid: u64, payload: &[u8]) {
    let z = zxid.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c_append(salt, &z), payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&z);
    out.extend_from_slice(payload);
    let pad = record_size(payload.len()) as usize - RECORD_HEADER as usize - payload.len();
    out.resize(out.len() + pad, 0);
}

/// The bytes of a segment holding `records` (zxid, payload), as the log writes them
/// with this salt and base, without the preallocated tail: for tools and tests (the
/// fuzz seeds) that need a valid segment without the random salt of a new one.
pub fn encode_segment(salt: u32, base: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = encode_header(salt, base).to_vec();
    for (zxid, payload) in records {
        encode_record(&mut out, salt, *zxid, payload);
    }
    out
}

fn encode_header(salt: u32, base: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut h = [0u8; SEGMENT_HEADER as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&salt.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// (salt, base) of a segment header.
pub(crate) fn decode_header(path: &Path, buf: &[u8]) -> Result<(u32, u64)> {
    let corrupt = |reason: &str| Error::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: reason.to_string(),
    };
    let h = buf
        .get(..SEGMENT_HEADER as usize)
        .ok_or_else(|| corrupt("segment shorter than its header"))?;
    if &h[0..8] != MAGIC {
        return Err(corrupt("bad segment magic"));
    }
    let stored = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if crc32c::crc32c(&h[0..28]) != stored {
        return Err(corrupt("segment header crc mismatch"));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(corrupt(&format!("unsupported segment version {version}")));
    }
    let salt = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[16..24]);
    Ok((salt, u64::from_le_bytes(b)))
}

/// Reserves `size` bytes for `file` so appends do not change its size.
fn preallocate(file: &File, path: &Path, size: u64) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(size).map_err(|_| Error::RecordTooLarge(size as usize))?;
        // SAFETY: plain syscall on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        // Not supported by this file system: fall back to a sparse extension.
    }
    file.set_len(size).map_err(io_err("set_len", path))
}

/// Creates a complete, durable, empty segment `dir/log.<name>`.
fn create_segment(dir: &Path, name: u64, base: u64, size: u64) -> Result<Segment> {
    let file_name = zxid_name(PREFIX, name);
    let path = dir.join(&file_name);
    let tmp = dir.join(format!("{file_name}{TMP_SUFFIX}"));
    if path.exists() {
        return Err(Error::Corrupt {
            path,
            offset: 0,
            reason: "segment to create already exists".into(),
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    preallocate(&file, &tmp, size)?;
    let salt: u32 = rand::random();
    file.write_all_at(&encode_header(salt, base), 0)
        .map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    fsync_dir(dir)?;
    Ok(Segment {
        path,
        name,
        file,
        salt,
        base,
        size,
        end: SEGMENT_HEADER,
        first: None,
        last: None,
        index: Vec::new(),
        count: 0,
    })
}

/// Cuts `seg` at `offset` (dropping every record from there) and restores
/// its preallocated size with zeros, durably.
fn cut_segment(seg: &mut Segment, offset: u64) -> Result<()> {
    seg.file
        .set_len(offset)
        .map_err(io_err("truncate", &seg.path))?;
    preallocate(&seg.file, &seg.path, seg.size)?;
    seg.file.sync_all().map_err(io_err("fsync", &seg.path))?;
    seg.end = offset;
    Ok(())
}

/// A sibling of `dir` named `<dir name><suffix>`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file-backed [`TxnLog`]. See the module doc for the format.
#[derive(Debug)]
pub struct FileTxnLog {
    dir: PathBuf,
    opts: LogOptions,
    /// In log order; the last one is the active segment.
    segments: Vec<Segment>,
    /// Encoded records of the active segment not yet written.
    buf: Vec<u8>,
    /// Bytes written to the active segment since its last fdatasync.
    dirty: bool,
    last: u64,
    durable: u64,
}

impl FileTxnLog {
    /// Opens (or creates) the log in `dir`, checking every record and
    /// cutting a torn tail off the last segment (see the parent module).
    pub fn open(dir: impl AsRef<Path>, opts: LogOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        recover_reset(&dir)?;
        create_dir_durable(&dir)?;
        remove_tmp_files(&dir)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("read dir", &dir))? {
            let entry = entry.map_err(io_err("read dir", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match parse_zxid_name(&name, PREFIX) {
                Some(z) => names.push(z),
                None => {
                    tracing::warn!(file = %entry.path().display(), "ignoring unknown file in log directory")
                }
            }
        }
        names.sort_unstable();
        let mut segments: Vec<Segment> = Vec::with_capacity(names.len());
        let n = names.len();
        for (i, name) in names.into_iter().enumerate() {
            let prev_last = segments.last().map(Segment::last_or_base);
            let seg = scan_segment(&dir, name, prev_last, i + 1 == n)?;
            segments.push(seg);
        }
        // An empty last segment not named `base + 1` is a roll-over whose
        // first record never became durable. Appending to it could put a
        // smaller zxid under its name, so it goes; if it was the only
        // segment (the ones before were purged), an empty segment named
        // `base + 1` is created first so the base survives.
        if let Some(s) = segments.last().filter(|s| s.last.is_none()) {
            if s.name != s.base.saturating_add(1) {
                let (base, size) = (s.base, s.size);
                if let Some(s) = segments.pop() {
                    if segments.is_empty() {
                        segments.push(create_segment(&dir, base.saturating_add(1), base, size)?);
                    }
                    tracing::info!(file = %s.path.display(), "removing empty last segment");
                    fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
                    fsync_dir(&dir)?;
                }
            }
        }
        let last = segments.last().map_or(0, Segment::last_or_base);
        Ok(FileTxnLog {
            dir,
            opts,
            segments,
            buf: Vec::new(),
            dirty: false,
            last,
            durable: last,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Paths of the segment files, in log order.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// Writes the buffered records to the active segment (no sync).
    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(seg) = self.segments.last() else {
            return Ok(());
        };
        let at = seg.end - self.buf.len() as u64;
        seg.file
            .write_all_at(&self.buf, at)
            .map_err(io_err("write", &seg.path))?;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    /// Starts a new segment for a record of `size` bytes with `zxid`, after
    /// making the current one fully durable.
    fn roll(&mut self, zxid: u64, size: u64) -> Result<()> {
        self.sync()?;
        let seg_size = self.opts.segment_size.max(SEGMENT_HEADER + size);
        let seg = create_segment(&self.dir, zxid, self.last, seg_size)?;
        tracing::debug!(file = %seg.path.display(), "new log segment");
        self.segments.push(seg);
        Ok(())
    }

    /// Replaces the whole log with one empty segment of base `after`.
    fn replace_with_empty(&mut self, after: u64) -> Result<()> {
        self.buf.clear();
        self.dirty = false;
        let staging = sibling(&self.dir, ".reset");
        let trash = sibling(&self.dir, ".trash");
        let parent = parent_of(&self.dir);
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io_err("remove dir", &staging))?;
        }
        fs::create_dir(&staging).map_err(io_err("create dir", &staging))?;
        let mut seg = create_segment(
            &staging,
            after.saturating_add(1),
            after,
            self.opts.segment_size,
        )?;
        if trash.exists() {
            fs::remove_dir_all(&trash).map_err(io_err("remove dir", &trash))?;
        }
        fs::rename(&self.dir, &trash).map_err(io_err("rename", &self.dir))?;
        fsync_dir(&parent)?;
        fs::rename(&staging, &self.dir).map_err(io_err("rename", &staging))?;
        fsync_dir(&parent)?;
        fs::remove_dir_all(&trash).map_err(io_err("remove dir", &trash))?;
        seg.path = self.dir.join(seg.path.file_name().unwrap_or_default());
        self.segments = vec![seg];
        self.last = after;
        self.durable = after;
        Ok(())
    }

    /// Reads the durable records `> zxid` of one segment, in order.
    fn read_segment_after(&self, i: usize, zxid: u64, out: &mut Vec<(u64, Bytes)>) -> Result<()> {
        let seg = &self.segments[i];
        let written_end = if i + 1 == self.segments.len() {
            seg.end - self.buf.len() as u64
        } else {
            seg.end
        };
        let (start, _) = seg.seek_hint(zxid);
        if start >= written_end {
            return Ok(());
        }
        let mut bytes = vec![0u8; (written_end - start) as usize];
        seg.file
            .read_exact_at(&mut bytes, start)
            .map_err(io_err("read", &seg.path))?;
        let mut off = 0usize;
        let mut prev = 0u64;
        while off < bytes.len() {
            match parse_record(&bytes, off, seg.salt, prev) {
                Parsed::Record {
                    zxid: z,
                    payload,
                    size,
                } => {
                    if z > self.durable {
                        break;
                    }
                    if z > zxid {
                        out.push((z, Bytes::copy_from_slice(payload)));
                    }
                    prev = z;
                    off += size as usize;
                }
                Parsed::Zero => break,
                Parsed::Bad(reason) => {
                    return Err(Error::Corrupt {
                        path: seg.path.clone(),
                        offset: start + off as u64,
                        reason,
                    })
                }
            }
        }
        Ok(())
    }

    /// Offset of the first record `> zxid` in segment `i`, the zxid of the
    /// record before it (`None` if there is none in the segment) and the
    /// number of records before it.
    fn locate_after(&self, i: usize, zxid: u64) -> Result<(u64, Option<u64>, usize)> {
        let seg = &self.segments[i];
        let (start, mut count) = seg.seek_hint(zxid);
        let mut bytes = vec![0u8; (seg.end - start) as usize];
        seg.file
            .read_exact_at(&mut bytes, start)
            .map_err(io_err("read", &seg.path))?;
        let mut off = 0usize;
        let mut before = None;
        while off < bytes.len() {
            match parse_record(&bytes, off, seg.salt, before.unwrap_or(0)) {
                Parsed::Record { zxid: z, size, .. } if z <= zxid => {
                    before = Some(z);
                    count += 1;
                    off += size as usize;
                }
                Parsed::Record { .. } | Parsed::Zero => break,
                Parsed::Bad(reason) => {
                    return Err(Error::Corrupt {
                        path: seg.path.clone(),
                        offset: start + off as u64,
                        reason,
                    })
                }
            }
        }
        Ok((start + off as u64, before, count))
    }
}

/// Finishes or discards a `reset` interrupted by a crash.
fn recover_reset(dir: &Path) -> Result<()> {
    let staging = sibling(dir, ".reset");
    let trash = sibling(dir, ".trash");
    let parent = parent_of(dir);
    if !dir.exists() && staging.exists() {
        tracing::warn!(dir = %dir.display(), "finishing an interrupted log reset");
        fs::rename(&staging, dir).map_err(io_err("rename", &staging))?;
        fsync_dir(&parent)?;
    }
    if staging.exists() {
        tracing::warn!(dir = %staging.display(), "discarding an interrupted log reset");
        fs::remove_dir_all(&staging).map_err(io_err("remove dir", &staging))?;
    }
    if trash.exists() {
        fs::remove_dir_all(&trash).map_err(io_err("remove dir", &trash))?;
    }
    Ok(())
}

/// Offset of the first 8-byte word at or after `from` (a multiple of 8)
/// holding a non-zero byte; a short last word counts as a word.
fn first_nonzero_word(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let mut words = rest.chunks_exact(8);
    if let Some(i) = words.by_ref().position(|w| w != [0u8; 8]) {
        return Some(from + i * 8);
    }
    let tail = words.remainder();
    tail.iter()
        .any(|b| *b != 0)
        .then(|| from + rest.len() - tail.len())
}

/// Reads and checks one segment. `prev_last` is the last zxid of the segment
/// before (which must equal this one's base); `is_last` allows a torn tail.
fn scan_segment(dir: &Path, name: u64, prev_last: Option<u64>, is_last: bool) -> Result<Segment> {
    let path = dir.join(zxid_name(PREFIX, name));
    let bytes = fs::read(&path).map_err(io_err("read", &path))?;
    let (salt, base) = decode_header(&path, &bytes)?;
    let corrupt = |offset: u64, reason: String| Error::Corrupt {
        path: path.clone(),
        offset,
        reason,
    };
    if let Some(prev) = prev_last {
        if base != prev {
            return Err(corrupt(
                0,
                format!("segment base {base:#x} does not continue the previous segment (last {prev:#x})"),
            ));
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    let mut seg = Segment {
        path: path.clone(),
        name,
        file,
        salt,
        base,
        size: bytes.len() as u64,
        end: SEGMENT_HEADER,
        first: None,
        last: None,
        index: Vec::new(),
        count: 0,
    };
    let mut off = SEGMENT_HEADER as usize;
    let bad_reason = loop {
        match parse_record(&bytes, off, salt, seg.last_or_base()) {
            Parsed::Record { zxid, size, .. } => {
                if seg.first.is_none() && zxid < name {
                    return Err(corrupt(
                        off as u64,
                        format!("first zxid {zxid:#x} is below the segment name"),
                    ));
                }
                seg.note_record(zxid, off as u64);
                off += size as usize;
            }
            Parsed::Zero => break None,
            Parsed::Bad(reason) => break Some(reason),
        }
    };
    seg.end = off as u64;
    if seg.end > seg.size {
        // A file cut inside the last record's zero padding (only possible
        // without preallocation): the record is whole; restore the padding.
        tracing::warn!(file = %path.display(), "restoring the padding of the last record");
        seg.size = seg.end;
        cut_segment(&mut seg, off as u64)?;
    }
    // Anything valid after the stop point means the stop is not a torn tail.
    // Zero words are skipped fast: the preallocated rest of the segment is
    // mostly zeros. A record header holding a non-zero word starts at that
    // word or at the one before (when its len and crc are both zero).
    let mut p = off + 8;
    while p + RECORD_HEADER as usize <= bytes.len() {
        let Some(q) = first_nonzero_word(&bytes, p) else {
            break;
        };
        p = q.saturating_sub(8).max(p);
        if let Parsed::Record { zxid, .. } = parse_record(&bytes, p, salt, seg.last_or_base()) {
            return Err(corrupt(
                off as u64,
                format!(
                    "{} followed by a valid record (zxid {zxid:#x}) at offset {p}",
                    bad_reason.as_deref().unwrap_or("zeroed record")
                ),
            ));
        }
        p += 8;
    }
    let garbage = first_nonzero_word(&bytes, off).is_some();
    if garbage {
        let reason = bad_reason.unwrap_or_else(|| "non-zero bytes after the end".into());
        if !is_last {
            return Err(corrupt(
                off as u64,
                format!("{reason} in a segment that is not the last"),
            ));
        }
        tracing::warn!(
            file = %path.display(),
            offset = off,
            reason = %reason,
            "dropping torn tail of the txn log"
        );
        cut_segment(&mut seg, off as u64)?;
    }
    Ok(seg)
}

impl TxnLog for FileTxnLog {
    fn append(&mut self, zxid: u64, payload: &[u8]) -> Result<()> {
        if zxid <= self.last {
            return Err(Error::ZxidOrder {
                last: self.last,
                got: zxid,
            });
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::RecordTooLarge(payload.len()));
        }
        let size = record_size(payload.len());
        let fits = self.segments.last().is_some_and(|s| s.end + size <= s.size);
        if !fits {
            self.roll(zxid, size)?;
        }
        let salt = match self.segments.last_mut() {
            Some(seg) => {
                let offset = seg.end;
                seg.note_record(zxid, offset);
                seg.end += size;
                seg.salt
            }
            None => unreachable!("roll created a segment"),
        };
        encode_record(&mut self.buf, salt, zxid, payload);
        self.last = zxid;
        if self.buf.len() >= self.opts.write_buffer {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush_buf()?;
        if self.dirty {
            if let Some(seg) = self.segments.last() {
                seg.file
                    .sync_data()
                    .map_err(io_err("fdatasync", &seg.path))?;
            }
            self.dirty = false;
        }
        self.durable = self.last;
        Ok(())
    }

    fn last_zxid(&self) -> u64 {
        self.last
    }

    fn base_zxid(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.base)
    }

    fn read_after(&self, zxid: u64) -> Result<Vec<(u64, Bytes)>> {
        let base = self.base_zxid();
        if zxid < base {
            return Err(Error::Compacted {
                requested: zxid,
                base,
            });
        }
        let mut out = Vec::new();
        for i in 0..self.segments.len() {
            if self.segments[i].last.is_some_and(|l| l > zxid) {
                self.read_segment_after(i, zxid, &mut out)?;
            }
        }
        Ok(out)
    }

    fn truncate_after(&mut self, zxid: u64) -> Result<()> {
        self.sync()?;
        if zxid >= self.last {
            return Ok(());
        }
        let keep = self
            .segments
            .iter()
            .rposition(|s| s.first.is_some_and(|f| f <= zxid));
        let Some(k) = keep else {
            return self.replace_with_empty(zxid.min(self.base_zxid()));
        };
        let mut removed = false;
        while self.segments.len() > k + 1 {
            if let Some(s) = self.segments.pop() {
                fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
                removed = true;
            }
        }
        if removed {
            fsync_dir(&self.dir)?;
        }
        let (offset, before, count) = self.locate_after(k, zxid)?;
        let seg = &mut self.segments[k];
        if offset < seg.end {
            cut_segment(seg, offset)?;
        }
        seg.last = before;
        seg.index.retain(|e| e.0 <= zxid);
        seg.count = count;
        self.last = seg.last_or_base();
        self.durable = self.last;
        Ok(())
    }

    fn purge_before(&mut self, zxid: u64) -> Result<()> {
        // Segment i holds only records <= base(i + 1); the last one is kept.
        let n = self
            .segments
            .windows(2)
            .take_while(|w| w[1].base < zxid)
            .count();
        if n == 0 {
            return Ok(());
        }
        for s in self.segments.drain(..n) {
            tracing::info!(file = %s.path.display(), "purging log segment");
            fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
        }
        fsync_dir(&self.dir)
    }

    fn reset(&mut self, after: u64) -> Result<()> {
        self.replace_with_empty(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_nonzero_word_finds_words_and_short_tails() {
        let mut b = vec![0u8; 64];
        assert_eq!(first_nonzero_word(&b, 0), None);
        b[19] = 1;
        assert_eq!(first_nonzero_word(&b, 0), Some(16));
        assert_eq!(first_nonzero_word(&b, 16), Some(16));
        assert_eq!(first_nonzero_word(&b, 24), None);
        b.extend_from_slice(&[0, 0, 3]);
        assert_eq!(first_nonzero_word(&b, 24), Some(64));
        assert_eq!(first_nonzero_word(&b, 200), None);
    }
}
