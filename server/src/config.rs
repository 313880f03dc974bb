//! Server configuration: a serde struct read from TOML, overridden by command-line
//! flags, validated once at start.
//!
//! Every flag has a config key of the same name with `_` for `-` (`--data-dir` is
//! `data_dir`). Unknown keys are refused so a typo cannot silently fall back to a
//! default. `validate` names the offending key in its message.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Everything a server needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding the txn log, snapshots and epoch files.
    pub data_dir: PathBuf,
    /// Address the client ports bind to.
    pub bind: IpAddr,
    /// Native protocol port.
    pub port: u16,
    /// ZooKeeper-protocol port (`zk/`); 0 turns the ZooKeeper front-end off.
    pub zk_port: u16,
    /// Basic time unit in ms; session timeouts are negotiated into [2, 20] ticks.
    pub tick_ms: u64,
    /// Lower bound of negotiated session timeouts (default 2 ticks).
    pub min_session_timeout_ms: Option<u64>,
    /// Upper bound of negotiated session timeouts (default 20 ticks).
    pub max_session_timeout_ms: Option<u64>,
    /// Largest client frame accepted, in bytes (data plus headers).
    pub max_frame: usize,
    /// Most client connections served at once.
    pub max_connections: usize,
    /// A snapshot is taken after this many txns.
    pub snap_count: u64,
    /// How many snapshots (and the logs they need) to keep.
    pub snap_retain: usize,
    /// Size a new log segment is preallocated to, in bytes.
    pub log_segment_bytes: u64,
    /// How often the leader looks for empty containers and expired TTL nodes, in ms.
    pub container_check_ms: u64,
    /// This member's id in an ensemble (ZooKeeper's `myid`); unset when standalone.
    pub id: Option<u64>,
    /// Every voting member, this one included. Empty: standalone.
    pub members: Vec<Member>,
    /// The replication protocol's clock tick in ms (heartbeats are 2 ticks).
    pub zab_tick_ms: u64,
    /// A follower that hears nothing from its leader this long (or a leader that
    /// hears from no quorum) starts an election, in ms.
    pub election_timeout_ms: u64,
    /// Committed txns the leader keeps in memory to bring a lagging follower up to
    /// date by DIFF; a follower further behind gets the whole tree (SNAP).
    pub sync_diff_window: usize,
}

/// One ensemble member as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: u64,
    pub host: String,
    /// Port for traffic between members.
    pub peer_port: u16,
    /// Native client port of that member (what clients connect to).
    pub client_port: u16,
}

impl Member {
    /// Parses `ID=HOST:PEER_PORT:CLIENT_PORT`.
    pub fn parse(spec: &str) -> Result<Member> {
        let bad = || {
            Error::Config(format!(
                "invalid member `{spec}`: expected ID=HOST:PEER_PORT:CLIENT_PORT"
            ))
        };
        let (id, rest) = spec.split_once('=').ok_or_else(bad)?;
        let mut parts = rest.rsplitn(3, ':');
        let client_port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let peer_port = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let host = parts
            .next()
            .filter(|h| !h.is_empty())
            .ok_or_else(bad)?
            .to_string();
        Ok(Member {
            id: id.trim().parse().map_err(|_| bad())?,
            host,
            peer_port,
            client_port,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("zabkeeper-data"),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 2281,
            zk_port: 2181,
            tick_ms: 2000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_frame: zabkeeper_proto::DEFAULT_MAX_FRAME,
            max_connections: 10_000,
            snap_count: 100_000,
            snap_retain: 3,
            log_segment_bytes: 64 * 1024 * 1024,
            container_check_ms: 60_000,
            id: None,
            members: Vec::new(),
            zab_tick_ms: 50,
            election_timeout_ms: 1500,
            sync_diff_window: 10_000,
        }
    }
}

impl Config {
    /// Reads a TOML file; keys not present keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    pub fn min_session_timeout(&self) -> u64 {
        self.min_session_timeout_ms.unwrap_or(2 * self.tick_ms)
    }

    pub fn max_session_timeout(&self) -> u64 {
        self.max_session_timeout_ms.unwrap_or(20 * self.tick_ms)
    }

    /// Checks every key; the error names the key at fault.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::Config(format!("invalid `{key}`: {why}")));
        if self.tick_ms == 0 || self.tick_ms > 60_000 {
            return bad("tick_ms", format!("{} is outside 1..=60000", self.tick_ms));
        }
        if self.min_session_timeout() == 0 {
            return bad("min_session_timeout_ms", "must be positive".into());
        }
        if self.min_session_timeout() > self.max_session_timeout() {
            return bad(
                "max_session_timeout_ms",
                format!(
                    "{} is below min_session_timeout_ms {}",
                    self.max_session_timeout(),
                    self.min_session_timeout()
                ),
            );
        }
        if self.max_session_timeout() > i32::MAX as u64 {
            return bad(
                "max_session_timeout_ms",
                "does not fit a 32-bit timeout".into(),
            );
        }
        if self.max_frame < 1024 || self.max_frame > 256 * 1024 * 1024 {
            return bad(
                "max_frame",
                format!("{} is outside 1024..=268435456", self.max_frame),
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1".into());
        }
        if self.snap_count < 10 {
            return bad("snap_count", format!("{} is below 10", self.snap_count));
        }
        if self.snap_retain == 0 {
            return bad("snap_retain", "must keep at least 1 snapshot".into());
        }
        if self.log_segment_bytes < 64 * 1024 {
            return bad(
                "log_segment_bytes",
                format!("{} is below 65536", self.log_segment_bytes),
            );
        }
        if self.container_check_ms == 0 {
            return bad("container_check_ms", "must be positive".into());
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir", "must not be empty".into());
        }
        if self.zab_tick_ms == 0 || self.zab_tick_ms > 10_000 {
            return bad(
                "zab_tick_ms",
                format!("{} is outside 1..=10000", self.zab_tick_ms),
            );
        }
        if self.election_timeout_ms < 4 * self.zab_tick_ms {
            return bad(
                "election_timeout_ms",
                format!(
                    "{} must be at least 4 zab ticks ({} ms)",
                    self.election_timeout_ms,
                    4 * self.zab_tick_ms
                ),
            );
        }
        if !self.members.is_empty() {
            let Some(id) = self.id else {
                return bad("id", "an ensemble member needs its id".into());
            };
            if !self.members.iter().any(|m| m.id == id) {
                return bad("id", format!("{id} is not among `members`"));
            }
            let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != self.members.len() {
                return bad("members", "duplicate member ids".into());
            }
            if ids.contains(&0) {
                return bad("members", "member ids start at 1".into());
            }
        }
        Ok(())
    }

    /// True when this server is a member of a replicated ensemble.
    pub fn is_ensemble(&self) -> bool {
        !self.members.is_empty()
    }

    /// This member's own entry (ensemble mode).
    pub fn me(&self) -> Option<&Member> {
        self.members.iter().find(|m| Some(m.id) == self.id)
    }

    /// Negotiates a client's requested session timeout into the allowed range.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let req = requested_ms.max(0) as u64;
        req.clamp(self.min_session_timeout(), self.max_session_timeout()) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_docs() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.port, 2281);
        assert_eq!(c.data_dir, PathBuf::from("zabkeeper-data"));
        assert_eq!(c.min_session_timeout(), 4000);
        assert_eq!(c.max_session_timeout(), 40000);
    }

    #[test]
    fn negotiation_clamps_into_two_to_twenty_ticks() {
        let c = Config {
            tick_ms: 100,
            ..Config::default()
        };
        assert_eq!(c.negotiate_timeout(1), 200);
        assert_eq!(c.negotiate_timeout(-5), 200);
        assert_eq!(c.negotiate_timeout(1500), 1500);
        assert_eq!(c.negotiate_timeout(1_000_000), 2000);
    }

    #[test]
    fn toml_keys_and_unknown_key_refused() {
        let c: Config = toml::from_str("port = 3000\ntick_ms = 50\ndata_dir = \"/tmp/x\"").unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.tick_ms, 50);
        assert_eq!(c.bind, IpAddr::from([127, 0, 0, 1]));
        let err = toml::from_str::<Config>("prot = 3000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn members_parse_and_validate() {
        let m = Member::parse("2=127.0.0.1:2882:2282").unwrap();
        assert_eq!(
            m,
            Member {
                id: 2,
                host: "127.0.0.1".into(),
                peer_port: 2882,
                client_port: 2282
            }
        );
        assert!(Member::parse("2=127.0.0.1:2882").is_err());
        assert!(Member::parse("x=h:1:2").is_err());
        let members: Vec<Member> = (1..=3)
            .map(|i| Member::parse(&format!("{i}=127.0.0.1:{}:{}", 2880 + i, 2280 + i)).unwrap())
            .collect();
        let c = Config {
            members: members.clone(),
            id: Some(2),
            ..Config::default()
        };
        c.validate().unwrap();
        assert_eq!(c.me().unwrap().client_port, 2282);
        let c = Config {
            members: members.clone(),
            id: Some(9),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("`id`"));
        let c = Config {
            members,
            id: None,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("`id`"));
    }

    #[test]
    fn validation_names_the_key() {
        let c = Config {
            tick_ms: 0,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("tick_ms"));
        let c = Config {
            min_session_timeout_ms: Some(5000),
            max_session_timeout_ms: Some(1000),
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_session_timeout_ms"));
        let c = Config {
            max_frame: 10,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("max_frame"));
    }
}
