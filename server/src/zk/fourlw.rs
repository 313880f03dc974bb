//! ZooKeeper's four-letter words on the ZooKeeper port, in ZooKeeper 3.8's output formats so
//! that monitoring scripts (`echo mntr | nc`, check_zookeeper, exporters) parse them.
//!
//! Formats follow `org.apache.zookeeper.server.command.*Command`: `ruok` → `imok`; `srvr`/`stat`
//! → `ServerStats.toString()` lines (`stat` adds the client list); `mntr` → `key<TAB>value`
//! lines; `conf` → `key=value` lines; `envi` → `Environment:` then `key=value`; `wchs` → the
//! watch summary; `cons` → one line per connection; `dump` → sessions and ephemerals; `isro`
//! → `rw`. zabkeeper runs standalone, so the mode is always `standalone`. Latencies are measured
//! from a request's arrival to its reply, in whole milliseconds for min/max as ZooKeeper does.

use super::Stats;
use crate::core::{ConnId, Core};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use zabkeeper_watch::WatchKind;

/// The version string: ZooKeeper's protocol level, then ours.
pub fn version() -> String {
    format!(
        "3.8.0-zabkeeper-{}, built on 01/01/1970 00:00 GMT",
        env!("CARGO_PKG_VERSION")
    )
}

/// One live connection, as `cons` and `stat` list it.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub session_id: AtomicI64,
    pub timeout_ms: AtomicI64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicU64,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr) -> Self {
        ConnInfo {
            peer,
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicU64::new(0),
        }
    }
}

/// The live connections of the ZooKeeper port.
#[derive(Debug, Default)]
pub struct Registry {
    conns: Mutex<BTreeMap<ConnId, Arc<ConnInfo>>>,
}

impl Registry {
    pub fn add(&self, id: ConnId, info: Arc<ConnInfo>) {
        self.conns.lock().insert(id, info);
    }
    pub fn remove(&self, id: ConnId) {
        self.conns.lock().remove(&id);
    }
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn snapshot(&self) -> Vec<Arc<ConnInfo>> {
        self.conns.lock().values().cloned().collect()
    }
}

/// The text answer to a four-letter word (`word` is one of `zabkeeper_jute::FOUR_LETTER_WORDS`).
pub fn answer(word: &str, core: &Core, stats: &Stats) -> String {
    match word {
        "ruok" => "imok".to_string(),
        "srvr" => format!(
            "Zookeeper version: {}\n{}",
            version(),
            server_stats(core, stats)
        ),
        "stat" => {
            let mut s = format!("Zookeeper version: {}\nClients:\n", version());
            for c in stats.registry.snapshot() {
                let _ = writeln!(s, "{}\n", brief(&c));
            }
            s.push('\n');
            s + &server_stats(core, stats)
        }
        "mntr" => mntr(core, stats),
        "conf" => conf(core),
        "envi" => envi(),
        "wchs" => {
            let w = core.watches.lock();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                w.watcher_count(),
                w.path_count(),
                w.len()
            )
        }
        "cons" => {
            let mut s = String::new();
            for c in stats.registry.snapshot() {
                let _ = writeln!(
                    s,
                    " /{}[1](queued={},recved={},sent={},sid={:#x},to={})",
                    c.peer,
                    c.queued.load(Ordering::Relaxed),
                    c.received.load(Ordering::Relaxed),
                    c.sent.load(Ordering::Relaxed),
                    c.session_id.load(Ordering::Relaxed),
                    c.timeout_ms.load(Ordering::Relaxed),
                );
            }
            s.push('\n');
            s
        }
        "dump" => dump(core),
        "isro" => "rw".to_string(),
        other => format!("{other} is not executed because it is not in the whitelist.\n"),
    }
}

fn brief(c: &ConnInfo) -> String {
    format!(
        " /{}[1](queued={},recved={},sent={})",
        c.peer,
        c.queued.load(Ordering::Relaxed),
        c.received.load(Ordering::Relaxed),
        c.sent.load(Ordering::Relaxed)
    )
}

fn server_stats(core: &Core, stats: &Stats) -> String {
    let (min, avg, max) = stats.latency.millis();
    format!(
        "Latency min/avg/max: {min}/{avg:.4}/{max}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: standalone\nNode count: {}\n",
        stats.received.load(Ordering::Relaxed),
        stats.sent.load(Ordering::Relaxed),
        stats.registry.len(),
        core.outstanding_requests(),
        core.last_zxid(),
        core.tree.read().node_count(),
    )
}

fn mntr(core: &Core, stats: &Stats) -> String {
    let (nodes, data_size, ephemerals) = {
        let tree = core.tree.read();
        let sessions: Vec<i64> = tree.sessions().keys().copied().collect();
        let eph: usize = sessions
            .iter()
            .map(|s| tree.get_ephemerals(*s, "/").len())
            .sum();
        (tree.node_count(), tree.approximate_data_size(), eph)
    };
    let watches = core.watches.lock().len();
    let (min, avg, max) = stats.latency.millis();
    let (open_fds, max_fds) = fds();
    let rows: Vec<(&str, String)> = vec![
        ("zk_version", version()),
        ("zk_server_state", "standalone".into()),
        ("zk_avg_latency", format!("{avg:.4}")),
        ("zk_max_latency", max.to_string()),
        ("zk_min_latency", min.to_string()),
        (
            "zk_packets_received",
            stats.received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "zk_packets_sent",
            stats.sent.load(Ordering::Relaxed).to_string(),
        ),
        ("zk_num_alive_connections", stats.registry.len().to_string()),
        (
            "zk_outstanding_requests",
            core.outstanding_requests().to_string(),
        ),
        ("zk_znode_count", nodes.to_string()),
        ("zk_watch_count", watches.to_string()),
        ("zk_ephemerals_count", ephemerals.to_string()),
        ("zk_approximate_data_size", data_size.to_string()),
        ("zk_open_file_descriptor_count", open_fds.to_string()),
        ("zk_max_file_descriptor_count", max_fds.to_string()),
        ("zk_last_zxid", format!("0x{:x}", core.last_zxid())),
        (
            "zk_global_sessions",
            core.tree.read().sessions().len().to_string(),
        ),
        ("zk_persistent_watch_count", {
            let w = core.watches.lock();
            (w.count(WatchKind::Persistent) + w.count(WatchKind::PersistentRecursive)).to_string()
        }),
    ];
    let mut s = String::new();
    for (k, v) in rows {
        let _ = writeln!(s, "{k}\t{v}");
    }
    s
}

fn fds() -> (u64, u64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    // SAFETY: getrlimit only writes into the struct we pass.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as u64
    } else {
        0
    };
    (open, max)
}

fn conf(core: &Core) -> String {
    let c = core.config();
    let data = c.data_dir.display();
    format!(
        "clientPort={}\nsecureClientPort=-1\ndataDir={data}/snapshot\ndataLogDir={data}/log\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId=0\n",
        c.zk_port,
        c.tick_ms,
        c.max_connections,
        c.min_session_timeout(),
        c.max_session_timeout(),
    )
}

fn envi() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let dir = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={}\nhost.name={}\nos.name={}\nos.arch={}\nos.version={}\nuser.name={}\nuser.dir={}\n",
        version(),
        host.trim(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        os_version.trim(),
        user,
        dir,
    )
}

fn dump(core: &Core) -> String {
    let tree = core.tree.read();
    let sessions: Vec<(i64, i32)> = tree.sessions().iter().map(|(s, t)| (*s, *t)).collect();
    let mut s = format!(
        "SessionTracker dump:\nGlobal Sessions({}):\n",
        sessions.len()
    );
    for (id, timeout) in &sessions {
        let _ = writeln!(s, "0x{id:x}\t{timeout}ms");
    }
    let with_eph: Vec<(i64, Vec<String>)> = sessions
        .iter()
        .map(|(id, _)| (*id, tree.get_ephemerals(*id, "/")))
        .filter(|(_, e)| !e.is_empty())
        .collect();
    let _ = writeln!(
        s,
        "ephemeral nodes dump:\nSessions with Ephemerals ({}):",
        with_eph.len()
    );
    for (id, paths) in with_eph {
        let _ = writeln!(s, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s
}
