//! Durable storage: the transaction log, snapshots and the epoch files.
//!
//! The authoritative state of a server is a snapshot of the tree at some zxid
//! plus the transaction log after it, and the two ZAB epochs. This module
//! writes all of it itself (no embedded database) so that the one property a
//! coordination service lives by is checked here and nowhere else: **a write
//! that was made durable (and therefore may have been acknowledged) survives
//! `kill -9` and a machine crash, and nothing that was not written whole is
//! ever replayed.** Payloads and snapshot bodies are opaque bytes to this
//! module; the tree and the ZAB runtime give them meaning.
//!
//! # Layout on disk
//! ```text
//! DIR/log/log.<16 hex>           txn log segments (see `log.rs`)
//! DIR/snapshot/snapshot.<16 hex> snapshots (see `snapshot.rs`)
//! DIR/acceptedEpoch              decimal text, written atomically (see `epoch.rs`)
//! DIR/currentEpoch               decimal text, written atomically
//! DIR/leaseMark                  0 or 1, written atomically (ZAB's lease mark)
//! ```
//!
//! # Log record format
//! A segment starts with a 32-byte header (magic `ZABKLOG\0`, version, the
//! segment's *base* zxid: every record in it is greater). Records follow, each
//! padded with zeros to a multiple of 8 bytes, all integers little-endian:
//! ```text
//! [u32 payload len][u32 crc32c(zxid LE bytes ++ payload)][u64 zxid][payload][0-7 zero bytes]
//! ```
//! The CRC is seeded with a random per-segment salt kept in the segment
//! header, so bytes a client puts in a payload can never pass for a record.
//! An all-zero record header marks the end of the data (zxid 0 is never a
//! valid record, so a real record never has one). Segments are preallocated
//! (`fallocate`) so appending does not change the file size, and `fdatasync`
//! has no metadata to flush besides the extent state.
//!
//! # Durability and crash semantics
//! - [`TxnLog::append`] only buffers; [`TxnLog::sync`] writes and issues one
//!   `fdatasync` for everything appended since the previous sync. That is the
//!   group-commit primitive: [`group_commit::GroupCommit`] batches many writers
//!   into one sync on a dedicated thread.
//! - Everything that changes which files exist (new segment, truncation, reset,
//!   snapshot, epoch) is done with fsynced files and an fsynced directory, so a
//!   crash leaves either the old or the new state.
//! - On open the log is scanned and every record's CRC checked. A torn tail of
//!   the **last** segment (a zero, short or bad-CRC record with nothing valid
//!   after it) is what a crash in the middle of an unsynced write leaves; it is
//!   cut off with a warning. A bad record followed by a valid one, or a bad
//!   record in an earlier segment, cannot come from a torn append of a synced
//!   log: it is reported as [`Error::Corrupt`] with the file and offset, and
//!   the server must not start on it (its peers still hold the data).
//!   Caveat: on a power loss, the disk may persist a later page of an
//!   *unsynced* batch and not an earlier one; the scan then reports corruption
//!   although nothing acknowledged was lost. Refusing to start is the safe
//!   answer to an ambiguity that cannot be resolved from the bytes alone.
//! - Snapshots carry a trailing CRC32C; a corrupt newest snapshot is skipped
//!   with a warning and an older one is used.
//!
//! # Zxid floor
//! Every log has a *base* zxid: all records it holds are greater, and all
//! records greater than the base that were ever made durable (and not
//! truncated) are present. A new log has base 0; [`TxnLog::reset`] sets it,
//! [`TxnLog::purge_before`] raises it, and [`TxnLog::truncate_after`] to a
//! zxid below it lowers it to that zxid (emptying the log). The base is
//! persisted (in the first segment's header), so it survives a restart.
//! [`TxnLog::read_after`] below the base returns [`Error::Compacted`] rather
//! than a silently incomplete answer. [`TxnLog::last_zxid`] is the newest
//! record, or the base when the log holds no record.
//!
//! # How the server is expected to use it
//! - Start: load [`SnapshotStore::latest`] at zxid `S` (or an empty tree at
//!   0), open the log, apply `read_after(S)` in order; the server's last zxid
//!   is `max(S, last_zxid())`. `Compacted` here means the log was purged past
//!   the snapshot: fatal.
//! - Leader DIFF for a follower at `F`: `read_after(F)`; `Compacted` means
//!   send a SNAP instead.
//! - Follower TRUNC to `T`: `truncate_after(T)`; snapshots newer than `T`
//!   hold undone txns and must be deleted by the caller.
//! - Follower SNAP at `S`: `save(S, body)` then `reset(S)`.
//! - Compaction: after a snapshot at `S`, `SnapshotStore::purge(n)` and
//!   `purge_before(oldest kept snapshot zxid + 1)`.

pub mod epoch;
pub(crate) mod fsutil;
pub mod group_commit;
pub mod log;
pub mod memory;
pub mod snapshot;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod kill9;

use std::path::PathBuf;

use bytes::Bytes;

pub use epoch::{EpochStore, Epochs, FileEpochStore, MemoryEpochStore};
pub use group_commit::{GroupCommit, GroupCommitStats};
pub use log::{FileTxnLog, LogOptions};
pub use memory::{MemoryLogDisk, MemorySnapshotStore, MemoryTxnLog};
pub use snapshot::FileSnapshotStore;

/// The three stores of one server's data directory, laid out as in the
/// module doc (`DIR/log`, `DIR/snapshot`, `DIR/acceptedEpoch`,
/// `DIR/currentEpoch`).
#[derive(Debug)]
pub struct DataDir {
    pub log: FileTxnLog,
    pub snapshots: FileSnapshotStore,
    pub epochs: FileEpochStore,
}

impl DataDir {
    /// Opens (creating as needed) every store under `dir`.
    pub fn open(dir: impl AsRef<std::path::Path>, log_options: LogOptions) -> Result<Self> {
        let dir = dir.as_ref();
        Ok(DataDir {
            epochs: FileEpochStore::open(dir)?,
            snapshots: FileSnapshotStore::open(dir.join("snapshot"))?,
            log: FileTxnLog::open(dir.join("log"), log_options)?,
        })
    }
}

/// Errors of the storage layer. All of them are fatal for the server except
/// [`Error::Compacted`] (the caller asked for history that was purged; send a
/// snapshot instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed. After a failed `fdatasync` the page cache state is
    /// unknown, so the caller must not retry the sync and carry on.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk that cannot come from a crash of this code.
    #[error("corrupt storage in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// Zxids handed to the log must strictly increase.
    #[error("zxid {got:#x} does not follow {last:#x}")]
    ZxidOrder { last: u64, got: u64 },
    /// `read_after` asked for records that were purged or reset away.
    #[error("records after {requested:#x} are not all in the log (base {base:#x})")]
    Compacted { requested: u64, base: u64 },
    /// A payload bigger than a record can describe.
    #[error("record of {0} bytes is too large")]
    RecordTooLarge(usize),
    /// The group-commit thread stopped (after a fatal error or shutdown).
    #[error("group commit thread stopped: {0}")]
    Stopped(String),
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// An append-only log of txns keyed by strictly increasing zxids.
///
/// See the module doc for the durability contract and the zxid base.
pub trait TxnLog: Send {
    /// Buffers one record; not durable until [`TxnLog::sync`] returns.
    /// `zxid` must be greater than [`TxnLog::last_zxid`].
    fn append(&mut self, zxid: u64, payload: &[u8]) -> Result<()>;
    /// Makes everything appended so far durable (one `fdatasync`).
    fn sync(&mut self) -> Result<()>;
    /// The newest appended zxid (durable or not), or the base when empty.
    fn last_zxid(&self) -> u64;
    /// The zxid every record in the log is greater than (0 for a new log).
    fn base_zxid(&self) -> u64;
    /// Durable records with zxid greater than `zxid`, in order.
    /// [`Error::Compacted`] if `zxid` is below the base.
    fn read_after(&self, zxid: u64) -> Result<Vec<(u64, Bytes)>>;
    /// Durably drops every record with zxid greater than `zxid` (ZAB TRUNC).
    /// Records kept become durable too. The base does not move, unless
    /// `zxid` is below it: then the log is empty with base `zxid`, as after
    /// `reset(zxid)`.
    fn truncate_after(&mut self, zxid: u64) -> Result<()>;
    /// Deletes whole segments that hold only records below `zxid`; the base
    /// rises to the last deleted record. Records `>= zxid` are always kept,
    /// as is the newest record.
    fn purge_before(&mut self, zxid: u64) -> Result<()>;
    /// Durably drops everything (after a SNAP sync); the base becomes `after`
    /// and the next append must be greater.
    fn reset(&mut self, after: u64) -> Result<()>;
}

/// Snapshots of the tree, each identified by the zxid it includes.
pub trait SnapshotStore: Send {
    /// Stores a snapshot atomically and durably; an existing one with the
    /// same zxid is replaced.
    fn save(&mut self, zxid: u64, body: &[u8]) -> Result<()>;
    /// The newest valid snapshot. Corrupt newer ones are skipped with a
    /// warning; an I/O error (unreadable file) is returned, not skipped.
    fn latest(&self) -> Result<Option<(u64, Bytes)>>;
    /// Zxids of the stored snapshots (valid or not), ascending.
    fn list(&self) -> Result<Vec<u64>>;
    /// Keeps the newest `keep` *valid* snapshots and deletes every snapshot
    /// older than the oldest kept one; returns the deleted zxids, ascending.
    /// Corrupt snapshots newer than that are left for inspection. `keep` is
    /// at least 1: the newest valid snapshot is never deleted.
    fn purge(&mut self, keep: usize) -> Result<Vec<u64>>;
}
