//! In-memory log and snapshots for simulation and tests.
//!
//! They follow the same contract as the file implementations (the
//! conformance suite runs against both) and model a crash: what lives in a
//! [`MemoryLogDisk`] is "on disk", what a [`MemoryTxnLog`] buffered since its
//! last `sync` is lost when the log is dropped or [`MemoryTxnLog::crash`] is
//! called. A simulated server restarts by opening a new log on the same disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::{Error, Result, SnapshotStore, TxnLog};

#[derive(Debug, Default)]
struct DiskState {
    base: u64,
    records: Vec<(u64, Bytes)>,
}

/// The durable part of a [`MemoryTxnLog`]; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryLogDisk(Arc<Mutex<DiskState>>);

impl MemoryLogDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// The short critical sections below never panic while holding the
    /// lock, so a poisoned lock still guards consistent data.
    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`TxnLog`] whose durable records live in a [`MemoryLogDisk`].
#[derive(Debug)]
pub struct MemoryTxnLog {
    disk: MemoryLogDisk,
    pending: Vec<(u64, Bytes)>,
    last: u64,
}

impl MemoryTxnLog {
    /// Opens the log stored on `disk` (as a restarted server would).
    pub fn open(disk: &MemoryLogDisk) -> Self {
        let mut log = MemoryTxnLog {
            disk: disk.clone(),
            pending: Vec::new(),
            last: 0,
        };
        log.last = log.durable_last();
        log
    }

    /// Loses everything appended since the last sync, as a crash would.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.last = self.durable_last();
    }

    fn durable_last(&self) -> u64 {
        let d = self.disk.lock();
        d.records.last().map_or(d.base, |r| r.0)
    }
}

impl TxnLog for MemoryTxnLog {
    fn append(&mut self, zxid: u64, payload: &[u8]) -> Result<()> {
        if zxid <= self.last {
            return Err(Error::ZxidOrder {
                last: self.last,
                got: zxid,
            });
        }
        self.pending.push((zxid, Bytes::copy_from_slice(payload)));
        self.last = zxid;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.disk.lock().records.append(&mut self.pending);
        Ok(())
    }

    fn last_zxid(&self) -> u64 {
        self.last
    }

    fn base_zxid(&self) -> u64 {
        self.disk.lock().base
    }

    fn read_after(&self, zxid: u64) -> Result<Vec<(u64, Bytes)>> {
        let d = self.disk.lock();
        if zxid < d.base {
            return Err(Error::Compacted {
                requested: zxid,
                base: d.base,
            });
        }
        let start = d.records.partition_point(|r| r.0 <= zxid);
        Ok(d.records[start..].to_vec())
    }

    fn truncate_after(&mut self, zxid: u64) -> Result<()> {
        self.sync()?;
        if zxid >= self.last {
            return Ok(());
        }
        let mut d = self.disk.lock();
        let keep = d.records.partition_point(|r| r.0 <= zxid);
        d.records.truncate(keep);
        if zxid < d.base {
            d.base = zxid;
        }
        self.last = d.records.last().map_or(d.base, |r| r.0);
        Ok(())
    }

    fn purge_before(&mut self, zxid: u64) -> Result<()> {
        let mut d = self.disk.lock();
        let below = d.records.partition_point(|r| r.0 < zxid);
        let drop = below.min(d.records.len().saturating_sub(1));
        if drop > 0 {
            d.base = d.records[drop - 1].0;
            d.records.drain(..drop);
        }
        Ok(())
    }

    fn reset(&mut self, after: u64) -> Result<()> {
        self.pending.clear();
        let mut d = self.disk.lock();
        d.records.clear();
        d.base = after;
        self.last = after;
        Ok(())
    }
}

/// In-memory [`SnapshotStore`]; clones share the same snapshots.
#[derive(Debug, Clone, Default)]
pub struct MemorySnapshotStore(Arc<Mutex<BTreeMap<u64, Option<Bytes>>>>);

impl MemorySnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks a stored snapshot corrupt (as a bad disk sector would); tests
    /// use it to check the fall-back to an older snapshot.
    pub fn corrupt(&self, zxid: u64) {
        if let Some(s) = self.lock().get_mut(&zxid) {
            *s = None;
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Option<Bytes>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SnapshotStore for MemorySnapshotStore {
    fn save(&mut self, zxid: u64, body: &[u8]) -> Result<()> {
        self.lock().insert(zxid, Some(Bytes::copy_from_slice(body)));
        Ok(())
    }

    fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        for (zxid, body) in self.lock().iter().rev() {
            match body {
                Some(b) => return Ok(Some((*zxid, b.clone()))),
                None => tracing::warn!(zxid = %format!("{zxid:#x}"), "skipping corrupt snapshot"),
            }
        }
        Ok(None)
    }

    fn list(&self) -> Result<Vec<u64>> {
        Ok(self.lock().keys().copied().collect())
    }

    fn purge(&mut self, keep: usize) -> Result<Vec<u64>> {
        let keep = keep.max(1);
        let mut map = self.lock();
        let oldest_kept = map
            .iter()
            .rev()
            .filter(|(_, b)| b.is_some())
            .take(keep)
            .last()
            .map(|(z, _)| *z);
        let Some(oldest_kept) = oldest_kept else {
            // No valid snapshot: deleting would leave nothing to recover from.
            return Ok(Vec::new());
        };
        let deleted: Vec<u64> = map.range(..oldest_kept).map(|(z, _)| *z).collect();
        for z in &deleted {
            map.remove(z);
        }
        Ok(deleted)
    }
}
