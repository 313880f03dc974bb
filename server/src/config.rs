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
    /// Native protocol over TLS (`tls.rs`); 0: none.
    pub tls_port: u16,
    /// ZooKeeper protocol over TLS; 0: none.
    pub zk_tls_port: u16,
    /// The plain client ports (`port`, `zk_port`) speak TLS too: plain clients are closed.
    pub tls_required: bool,
    /// This server's certificate chain (PEM), for its TLS ports and peer TLS.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that sign client certificates (which then authenticate as
    /// the `x509` scheme) and, with `peer_tls`, the members' certificates.
    pub tls_ca: Option<PathBuf>,
    /// Traffic between members over mutually authenticated TLS (needs `tls_ca`).
    pub peer_tls: bool,
    /// Basic time unit in ms; session timeouts are negotiated into [2, 20] ticks.
    pub tick_ms: u64,
    /// Lower bound of negotiated session timeouts (default 2 ticks).
    pub min_session_timeout_ms: Option<u64>,
    /// Upper bound of negotiated session timeouts (default 20 ticks).
    pub max_session_timeout_ms: Option<u64>,
    /// Largest client frame accepted, in bytes (data plus headers).
    pub max_frame: usize,
    /// Most client connections served at once, both client ports together.
    pub max_connections: usize,
    /// Most client connections from one client address (ZooKeeper's `maxClientCnxns`);
    /// 0: no per-address limit.
    pub max_connections_per_ip: usize,
    /// Requests of one connection waiting for their answers; at the limit the server
    /// stops reading that connection's socket until some are answered (back-pressure).
    pub max_outstanding_requests: usize,
    /// Distinct paths one session may watch; a read asking for a watch past it is
    /// answered `QuotaExceeded` (and registers nothing).
    pub max_watches_per_session: usize,
    /// Bytes of notifications queued for a connection that does not read them (a slow
    /// reader); past it the connection is closed (the session lives on).
    pub max_queued_bytes: usize,
    /// Requests per second one session may send, sustained (and as many in a burst);
    /// a session past it is cut off (its connection closes). 0: no limit.
    pub max_session_requests_per_sec: u64,
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
    /// Changes (one per node a txn touched) kept in memory for watches opened from a
    /// zxid (`AddWatchFrom`); a watch from further back is told the history is gone.
    pub watch_history: usize,
    /// The leader's read lease in ms (linearizable reads served by the leader
    /// without a heartbeat round), 0 to turn it off; must be below
    /// `election_timeout_ms`. Assumes members' clocks run at the same rate up to a
    /// small drift (see `zab/src/read_index.rs`). Unset: a third of the election
    /// timeout. Held only while linearizable reads are asked for (from one until an
    /// election timeout after the last): a leader's failure waits for it only then.
    pub read_lease_ms: Option<u64>,
    /// Admin HTTP port (`/metrics`, `/commands/<name>`, `/backup`) on `bind`; 0 turns it off.
    pub admin_port: u16,
    /// Log filter (`info`, `debug`, `zabkeeper_server=debug,warn`, ...); the
    /// `RUST_LOG` environment variable wins when set. Default `info`.
    pub log_level: Option<String>,
    /// `text` (default) or `json` (one JSON object per line).
    pub log_format: String,
    /// The digest id (`super:base64(sha1("super:password"))`, see `auth::digest_id`) whose
    /// owner passes every ACL check after `addauth digest super:password`: ZooKeeper's
    /// `zookeeper.DigestAuthenticationProvider.superDigest`. Unset: no super user.
    pub super_digest: Option<String>,
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
            tls_port: 0,
            zk_tls_port: 0,
            tls_required: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            peer_tls: false,
            tick_ms: 2000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_frame: zabkeeper_proto::DEFAULT_MAX_FRAME,
            max_connections: 10_000,
            max_connections_per_ip: 60,
            max_outstanding_requests: 1000,
            max_watches_per_session: 100_000,
            max_queued_bytes: 4 * 1024 * 1024,
            max_session_requests_per_sec: 100_000,
            snap_count: 100_000,
            snap_retain: 3,
            log_segment_bytes: 64 * 1024 * 1024,
            container_check_ms: 60_000,
            id: None,
            members: Vec::new(),
            zab_tick_ms: 50,
            election_timeout_ms: 1500,
            sync_diff_window: 10_000,
            watch_history: 10_000,
            read_lease_ms: None,
            admin_port: 8080,
            log_level: None,
            log_format: "text".into(),
            super_digest: None,
        }
    }
}

impl Config {
    /// The leader's read lease in ms (0: none).
    pub fn read_lease(&self) -> u64 {
        self.read_lease_ms.unwrap_or(self.election_timeout_ms / 3)
    }

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
        if self.max_outstanding_requests == 0 {
            return bad("max_outstanding_requests", "must be at least 1".into());
        }
        if self.max_watches_per_session == 0 {
            return bad("max_watches_per_session", "must be at least 1".into());
        }
        if self.max_queued_bytes < 1024 {
            return bad(
                "max_queued_bytes",
                format!("{} is below 1024", self.max_queued_bytes),
            );
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
        if self.uses_tls() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return bad(
                "tls_cert",
                "TLS ports, tls_required and peer_tls need tls_cert and tls_key".into(),
            );
        }
        if self.peer_tls && self.tls_ca.is_none() {
            return bad(
                "tls_ca",
                "peer_tls needs the CA that signs the members' certificates".into(),
            );
        }
        let lease = self.read_lease();
        if lease > 0 && lease + 2 * self.zab_tick_ms >= self.election_timeout_ms {
            return bad(
                "read_lease_ms",
                format!(
                    "{lease} must be below election_timeout_ms minus two zab ticks ({} ms)",
                    self.election_timeout_ms
                        .saturating_sub(2 * self.zab_tick_ms)
                ),
            );
        }
        if self.sync_diff_window == 0 {
            return bad("sync_diff_window", "must be at least 1".into());
        }
        if let Some(level) = &self.log_level {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
                return bad("log_level", format!("`{level}` is not a log filter: {e}"));
            }
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad(
                "log_format",
                format!("`{}` is neither `text` nor `json`", self.log_format),
            );
        }
        if self.admin_port != 0 && (self.admin_port == self.port || self.admin_port == self.zk_port)
        {
            return bad(
                "admin_port",
                format!("{} is already the `port` or `zk_port`", self.admin_port),
            );
        }
        if self.zk_port != 0 && self.zk_port == self.port {
            return bad(
                "zk_port",
                format!("{} is already the native `port`", self.zk_port),
            );
        }
        if let Some(d) = &self.super_digest {
            if d.split(':').filter(|p| !p.is_empty()).count() != 2 {
                return bad(
                    "super_digest",
                    "expected `user:base64(sha1(user:password))`".into(),
                );
            }
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
            for m in &self.members {
                if m.peer_port == 0 || m.client_port == 0 {
                    return bad(
                        "members",
                        format!("member {} needs nonzero peer and client ports", m.id),
                    );
                }
            }
        }
        Ok(())
    }

    /// True when any listener or the peer transport speaks TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls_port != 0 || self.zk_tls_port != 0 || self.tls_required || self.peer_tls
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

    /// docs/configuration.md documents every key.
    #[test]
    fn the_reference_names_every_key() {
        let doc = include_str!("../../docs/configuration.md");
        let keys = serde_json::to_value(Config::default()).unwrap();
        let keys = keys.as_object().unwrap();
        assert!(keys.len() >= 21);
        for key in keys.keys() {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/configuration.md has no row for `{key}`"
            );
        }
    }

    /// Where the reference gives a key's default as a plain value (a number, a
    /// boolean, a word), it is the default the server uses.
    #[test]
    fn the_reference_gives_the_defaults_the_server_uses() {
        let doc = include_str!("../../docs/configuration.md");
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut compared = 0;
        for line in doc.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (Some(key), Some(default)) = (cells.get(1), cells.get(2)) else {
                continue;
            };
            let (Some(key), Some(default)) = (
                key.strip_prefix('`').and_then(|k| k.strip_suffix('`')),
                default
                    .split(' ')
                    .next()
                    .and_then(|d| d.strip_prefix('`').and_then(|d| d.strip_suffix('`'))),
            ) else {
                continue;
            };
            let Some(value) = defaults.get(key) else {
                continue;
            };
            let value = match value {
                // Unset: the default is computed (`log_level` is `info` unless
                // RUST_LOG says otherwise); the sentence in the doc says how.
                serde_json::Value::Null if key == "log_level" => "info".into(),
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            assert_eq!(value, default, "docs/configuration.md: default of `{key}`");
            compared += 1;
        }
        assert!(compared >= 25, "only {compared} defaults compared");
    }

    /// Every key with a range refuses a value outside it, naming the key.
    #[test]
    fn every_bounded_key_is_checked_by_name() {
        let cases: Vec<(&str, Config)> = vec![
            (
                "tick_ms",
                Config {
                    tick_ms: 60_001,
                    ..Config::default()
                },
            ),
            (
                "min_session_timeout_ms",
                Config {
                    min_session_timeout_ms: Some(0),
                    ..Config::default()
                },
            ),
            (
                "max_session_timeout_ms",
                Config {
                    max_session_timeout_ms: Some(1 << 40),
                    ..Config::default()
                },
            ),
            (
                "max_frame",
                Config {
                    max_frame: 1 << 30,
                    ..Config::default()
                },
            ),
            (
                "max_connections",
                Config {
                    max_connections: 0,
                    ..Config::default()
                },
            ),
            (
                "snap_count",
                Config {
                    snap_count: 9,
                    ..Config::default()
                },
            ),
            (
                "snap_retain",
                Config {
                    snap_retain: 0,
                    ..Config::default()
                },
            ),
            (
                "log_segment_bytes",
                Config {
                    log_segment_bytes: 1000,
                    ..Config::default()
                },
            ),
            (
                "container_check_ms",
                Config {
                    container_check_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "data_dir",
                Config {
                    data_dir: PathBuf::new(),
                    ..Config::default()
                },
            ),
            (
                "zab_tick_ms",
                Config {
                    zab_tick_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "election_timeout_ms",
                Config {
                    election_timeout_ms: 100,
                    ..Config::default()
                },
            ),
            (
                "sync_diff_window",
                Config {
                    sync_diff_window: 0,
                    ..Config::default()
                },
            ),
            (
                "log_level",
                Config {
                    log_level: Some("info,[[".into()),
                    ..Config::default()
                },
            ),
            (
                "log_format",
                Config {
                    log_format: "xml".into(),
                    ..Config::default()
                },
            ),
            (
                "admin_port",
                Config {
                    admin_port: 2281,
                    ..Config::default()
                },
            ),
            (
                "zk_port",
                Config {
                    zk_port: 2281,
                    ..Config::default()
                },
            ),
            (
                "max_outstanding_requests",
                Config {
                    max_outstanding_requests: 0,
                    ..Config::default()
                },
            ),
            (
                "max_watches_per_session",
                Config {
                    max_watches_per_session: 0,
                    ..Config::default()
                },
            ),
            (
                "max_queued_bytes",
                Config {
                    max_queued_bytes: 1023,
                    ..Config::default()
                },
            ),
            (
                "read_lease_ms",
                Config {
                    read_lease_ms: Some(1450),
                    ..Config::default()
                },
            ),
            (
                "tls_cert",
                Config {
                    tls_port: 2400,
                    ..Config::default()
                },
            ),
            (
                "tls_ca",
                Config {
                    peer_tls: true,
                    tls_cert: Some("cert.pem".into()),
                    tls_key: Some("key.pem".into()),
                    ..Config::default()
                },
            ),
            (
                "super_digest",
                Config {
                    super_digest: Some("super".into()),
                    ..Config::default()
                },
            ),
        ];
        for (key, c) in cases {
            let err = c.validate().expect_err(key).to_string();
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        }
        let ok = Config {
            admin_port: 0,
            log_level: Some("zabkeeper_server=debug,warn".into()),
            log_format: "json".into(),
            ..Config::default()
        };
        ok.validate().unwrap();
    }
}
