//! Quotas on subtrees, kept as ZooKeeper keeps them.
//!
//! A quota on `/a/b` is two ordinary nodes that clients (zkCli's `setquota`, the shell)
//! create: `/zookeeper/quota/a/b/zookeeper_limits`, whose data is a [`StatsTrack`] with
//! the limits (`count`, `bytes` soft; `countHardLimit`, `byteHardLimit` hard; -1 = none),
//! and `/zookeeper/quota/a/b/zookeeper_stats`, whose data the tree itself maintains: the
//! number of nodes of the subtree (its root included) and the sum of their data lengths.
//!
//! As in ZooKeeper's `DataTree`: creating a limits node makes its path a quota root,
//! deleting it removes the root; creating a stats node recomputes the subtree's usage
//! into it; every create, delete and setData under a root adjusts the stats of the
//! deepest root above it (never `/`). The stats data changes without a version bump or
//! a watch event, and is derived state: every member computes the same from the same
//! txns, and a loaded snapshot recomputes it ([`DataTree::rebuild_quotas`]).
//!
//! Changes are noted while a txn applies and settled only once it fully applied, so a
//! multi that rolls back leaves the stats as they were.
//!
//! Prep enforces the hard limits (QuotaExceeded) with [`DataTree::quota_of`], against the
//! applied stats as ZooKeeper's `checkQuota` does; unlike ZooKeeper, without needing
//! `zookeeper.enforceQuota` (a hard limit only exists when someone set one).

use std::collections::{BTreeMap, BTreeSet};

use super::DataTree;

/// Where quota nodes live.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// The node holding a quota's limits.
pub const LIMITS_NODE: &str = "zookeeper_limits";
/// The node holding a quota's current usage.
pub const STATS_NODE: &str = "zookeeper_stats";

/// ZooKeeper's `StatsTrack`: `key=value` pairs. Written `count=C,bytes=B`, then, if
/// there are others, `=` and `;key=value` for each in key order (the extra `=` makes
/// old parsers ignore the new keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    pub const COUNT: &'static str = "count";
    pub const BYTES: &'static str = "bytes";
    pub const COUNT_HARD: &'static str = "countHardLimit";
    pub const BYTES_HARD: &'static str = "byteHardLimit";

    /// Parses pairs separated by `,` or `;`; a pair that does not parse is ignored.
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut values = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let (Some(k), v) = (kv.next(), kv.next()) else {
                continue;
            };
            let v = match v {
                None | Some("") => -1,
                Some(v) => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            values.insert(k.to_string(), v);
        }
        StatsTrack { values }
    }

    /// A value, -1 when absent.
    pub fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, value: i64) {
        self.values.insert(key.to_string(), value);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{}={},{}={}",
            Self::COUNT,
            self.get(Self::COUNT),
            Self::BYTES,
            self.get(Self::BYTES)
        );
        let rest: Vec<_> = self
            .values
            .iter()
            .filter(|(k, _)| *k != Self::COUNT && *k != Self::BYTES)
            .collect();
        if !rest.is_empty() {
            out.push('=');
            for (k, v) in rest {
                out.push_str(&format!(";{k}={v}"));
            }
        }
        out.into_bytes()
    }
}

/// A change noted while a txn applies.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A node at `path` changed the usage by `bytes` and `count`.
    Usage {
        path: String,
        bytes: i64,
        count: i64,
    },
    LimitsCreated(String),
    LimitsDeleted(String),
    StatsCreated(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Quotas {
    roots: BTreeSet<String>,
    pending: Vec<Change>,
}

/// The quota root a `/zookeeper/quota/...` limits or stats node belongs to.
fn quota_root_of(path: &str, node: &str) -> Option<String> {
    let rest = path.strip_prefix(QUOTA_ROOT)?;
    let root = rest.strip_suffix(node)?.strip_suffix('/')?;
    (!root.is_empty()).then(|| root.to_string())
}

fn stats_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{STATS_NODE}")
}

fn limits_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{LIMITS_NODE}")
}

impl DataTree {
    /// Notes a created node (after it was attached).
    pub(super) fn quota_created(&mut self, path: &str, bytes: usize) {
        if let Some(root) = quota_root_of(path, LIMITS_NODE) {
            self.quotas.pending.push(Change::LimitsCreated(root));
        } else if let Some(root) = quota_root_of(path, STATS_NODE) {
            self.quotas.pending.push(Change::StatsCreated(root));
        }
        self.quota_usage(path, bytes as i64, 1);
    }

    /// Notes a deleted node (after it was detached).
    pub(super) fn quota_deleted(&mut self, path: &str, bytes: usize) {
        if let Some(root) = quota_root_of(path, LIMITS_NODE) {
            self.quotas.pending.push(Change::LimitsDeleted(root));
        }
        self.quota_usage(path, -(bytes as i64), -1);
    }

    /// Notes a data change by `bytes`.
    pub(super) fn quota_usage(&mut self, path: &str, bytes: i64, count: i64) {
        // Without roots nothing is noted unless a root is created in this same txn.
        if self.quotas.roots.is_empty() && self.quotas.pending.is_empty() {
            return;
        }
        self.quotas.pending.push(Change::Usage {
            path: path.to_string(),
            bytes,
            count,
        });
    }

    /// How many changes are noted (a multi rolls back to this mark on failure).
    pub(super) fn quota_mark(&self) -> usize {
        self.quotas.pending.len()
    }

    pub(super) fn quota_rollback(&mut self, mark: usize) {
        self.quotas.pending.truncate(mark);
    }

    /// Applies what the txn noted (it applied fully).
    pub(super) fn quota_settle(&mut self) {
        for change in std::mem::take(&mut self.quotas.pending) {
            match change {
                Change::Usage { path, bytes, count } => {
                    if let Some(root) = self.quota_root(&path) {
                        let root = root.to_string();
                        self.adjust_stats(&root, bytes, count);
                    }
                }
                Change::LimitsCreated(root) => {
                    self.quotas.roots.insert(root);
                }
                Change::LimitsDeleted(root) => {
                    self.quotas.roots.remove(&root);
                }
                Change::StatsCreated(root) => self.recompute_stats(&root),
            }
        }
    }

    /// The deepest quota root at or above `path` (`/` never has one).
    fn quota_root(&self, path: &str) -> Option<&str> {
        if self.quotas.roots.is_empty() {
            return None;
        }
        let mut p = path;
        while p != "/" && !p.is_empty() {
            if let Some(r) = self.quotas.roots.get(p) {
                return Some(r);
            }
            p = zabkeeper_proto::path::parent(p);
        }
        None
    }

    /// The quota that covers `path`: its root, limits and current usage.
    pub fn quota_of(&self, path: &str) -> Option<(String, StatsTrack, StatsTrack)> {
        let root = self.quota_root(path)?;
        let limits = StatsTrack::parse(self.get_data(&limits_path(root)).ok()?.0.as_ref());
        let stats = StatsTrack::parse(self.get_data(&stats_path(root)).ok()?.0.as_ref());
        Some((root.to_string(), limits, stats))
    }

    /// Every quota root, sorted.
    pub fn quota_roots(&self) -> Vec<String> {
        self.quotas.roots.iter().cloned().collect()
    }

    fn adjust_stats(&mut self, root: &str, bytes: i64, count: i64) {
        let Some(id) = self.arena.resolve(&stats_path(root)) else {
            return;
        };
        let mut stats = StatsTrack::parse(self.arena.get(id).data());
        stats.set(StatsTrack::COUNT, stats.get(StatsTrack::COUNT) + count);
        stats.set(StatsTrack::BYTES, stats.get(StatsTrack::BYTES) + bytes);
        self.write_stats(id, stats);
    }

    /// ZooKeeper's `updateQuotaForPath`: the subtree's usage, counted afresh.
    fn recompute_stats(&mut self, root: &str) {
        let Some(id) = self.arena.resolve(&stats_path(root)) else {
            return;
        };
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(top) = self.arena.resolve(root) {
            let mut stack = vec![top];
            while let Some(n) = stack.pop() {
                count += 1;
                bytes += self.arena.get(n).data().len() as i64;
                stack.extend(self.arena.children(n));
            }
        }
        let mut stats = StatsTrack::default();
        stats.set(StatsTrack::COUNT, count);
        stats.set(StatsTrack::BYTES, bytes);
        self.write_stats(id, stats);
    }

    fn write_stats(&mut self, id: u32, stats: StatsTrack) {
        let data = stats.to_bytes();
        let n = self.arena.get_mut(id);
        let old = n.replace_data(&data);
        self.data_size += data.len() as i64 - old.len() as i64;
    }

    /// Rebuilds the quota roots from the `/zookeeper/quota` subtree and recomputes their
    /// usage (after loading a snapshot, as ZooKeeper's `traverseNode`).
    pub(crate) fn rebuild_quotas(&mut self) {
        self.quotas = Quotas::default();
        let Some(top) = self.arena.resolve(QUOTA_ROOT) else {
            return;
        };
        let mut stack = vec![top];
        let mut roots = Vec::new();
        while let Some(n) = stack.pop() {
            let children: Vec<u32> = self.arena.children(n).collect();
            if children.is_empty() {
                let path = self.arena.path_of(n);
                if let Some(root) = quota_root_of(&path, LIMITS_NODE) {
                    roots.push(root);
                }
            }
            stack.extend(children);
        }
        for root in roots {
            self.recompute_stats(&root);
            self.quotas.roots.insert(root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_reads_and_writes_zookeepers_format() {
        let mut s = StatsTrack::parse(b"count=-1,bytes=-1=;countHardLimit=3");
        assert_eq!(s.get(StatsTrack::COUNT), -1);
        assert_eq!(s.get(StatsTrack::COUNT_HARD), 3);
        assert_eq!(s.get(StatsTrack::BYTES_HARD), -1);
        s.set(StatsTrack::BYTES_HARD, 100);
        assert_eq!(
            String::from_utf8(s.to_bytes()).unwrap(),
            "count=-1,bytes=-1=;byteHardLimit=100;countHardLimit=3"
        );
        assert_eq!(
            StatsTrack::parse(b"count=2,bytes=10").to_bytes(),
            b"count=2,bytes=10"
        );
        assert_eq!(
            StatsTrack::parse(b"garbage,count=x,bytes=4").get("bytes"),
            4
        );
        assert_eq!(StatsTrack::parse(b"").get("count"), -1);
    }

    #[test]
    fn quota_nodes_name_their_root() {
        assert_eq!(
            quota_root_of("/zookeeper/quota/a/b/zookeeper_limits", LIMITS_NODE),
            Some("/a/b".into())
        );
        assert_eq!(
            quota_root_of("/zookeeper/quota/zookeeper_limits", LIMITS_NODE),
            None
        );
        assert_eq!(quota_root_of("/a/zookeeper_limits", LIMITS_NODE), None);
        assert_eq!(
            quota_root_of("/zookeeper/quota/a/zookeeper_stats", LIMITS_NODE),
            None
        );
    }
}
