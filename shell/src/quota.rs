//! Quotas as zkCli manages them (`setquota`, `listquota`, `delquota`): plain nodes under
//! `/zookeeper/quota/<path>/`, `zookeeper_limits` (set by the shell) and
//! `zookeeper_stats` (kept up to date by the server), each holding ZooKeeper's
//! `StatsTrack` text: `count=C,bytes=B`, then `=;key=value` for the hard limits
//! (`countHardLimit`, `byteHardLimit`). -1 means no limit.

use std::collections::BTreeMap;

pub const QUOTA_ROOT: &str = "/zookeeper/quota";
pub const LIMITS: &str = "zookeeper_limits";
pub const STATS: &str = "zookeeper_stats";
pub const COUNT: &str = "count";
pub const BYTES: &str = "bytes";
pub const COUNT_HARD: &str = "countHardLimit";
pub const BYTES_HARD: &str = "byteHardLimit";

/// The quota node directory of `path` (`/a/b` -> `/zookeeper/quota/a/b`).
pub fn quota_dir(path: &str) -> String {
    if path == "/" {
        QUOTA_ROOT.to_string()
    } else {
        format!("{QUOTA_ROOT}{path}")
    }
}

/// ZooKeeper's `StatsTrack`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    values: BTreeMap<String, i64>,
}

impl StatsTrack {
    pub fn parse(data: &[u8]) -> StatsTrack {
        let text = String::from_utf8_lossy(data);
        let mut values = BTreeMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                let v = if v.is_empty() { Ok(-1) } else { v.parse() };
                if let Ok(v) = v {
                    values.insert(k.to_string(), v);
                }
            }
        }
        StatsTrack { values }
    }

    pub fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, v: i64) {
        self.values.insert(key.to_string(), v);
    }

    /// Keys beyond count and bytes that are set at all.
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub fn text(&self) -> String {
        let mut out = format!("{COUNT}={},{BYTES}={}", self.get(COUNT), self.get(BYTES));
        let rest: Vec<_> = self
            .values
            .iter()
            .filter(|(k, _)| *k != COUNT && *k != BYTES)
            .collect();
        if !rest.is_empty() {
            out.push('=');
            for (k, v) in rest {
                out.push_str(&format!(";{k}={v}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_round_trips_zookeepers_text() {
        let t = "count=-1,bytes=-1=;byteHardLimit=100;countHardLimit=3";
        let s = StatsTrack::parse(t.as_bytes());
        assert_eq!(s.get(COUNT_HARD), 3);
        assert_eq!(s.text(), t);
        let mut s = StatsTrack::default();
        s.set(COUNT, 5);
        assert_eq!(s.text(), "count=5,bytes=-1");
        assert_eq!(quota_dir("/a/b"), "/zookeeper/quota/a/b");
    }
}
