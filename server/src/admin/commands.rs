//! The admin commands: each a JSON object, named and shaped after ZooKeeper's
//! AdminServer commands (`org.apache.zookeeper.server.admin.Commands`), every
//! answer carrying `command` and `error` (null on success) as ZooKeeper's do.

use crate::core::Core;
use crate::reply::{Completion, Outcome};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every command `/commands/<name>` answers.
pub const COMMANDS: [&str; 9] = [
    "ruok",
    "stat",
    "srvr",
    "conf",
    "cons",
    "leader",
    "voting_view",
    "wchs",
    "snapshot",
];

/// How long `snapshot` and `backup` wait for the pipeline.
const WAIT: Duration = Duration::from_secs(60);

/// Runs a command; None for an unknown name, `Err` when it cannot be answered now.
pub async fn run(core: &Arc<Core>, name: &str) -> Option<Result<Value, String>> {
    let mut v = match name {
        "ruok" => json!({}),
        "srvr" => server_stats(core),
        "stat" => {
            let mut v = server_stats(core);
            v["connections"] = connections(core);
            v
        }
        "conf" => serde_json::to_value(core.config()).unwrap_or(Value::Null),
        "cons" => json!({ "connections": connections(core) }),
        "leader" => leader(core),
        "voting_view" => voting_view(core),
        "wchs" => watches(core),
        "snapshot" => match snapshot(core).await {
            Ok(v) => v,
            Err(e) => return Some(Err(e)),
        },
        _ => return None,
    };
    if let Value::Object(map) = &mut v {
        map.insert("command".into(), json!(name));
        map.insert("error".into(), Value::Null);
    }
    Some(Ok(v))
}

fn server_stats(core: &Core) -> Value {
    let g = core.gauges();
    let m = &core.metrics;
    let requests: u64 = crate::metrics::OpKind::ALL
        .iter()
        .map(|k| m.requests(*k))
        .sum();
    json!({
        "version": crate::zk::fourlw::version(),
        "server_id": g.server_id,
        "server_state": g.role,
        "serving": g.serving,
        "epoch": g.epoch,
        "last_zxid": g.last_zxid,
        "last_zxid_hex": format!("{:#x}", g.last_zxid),
        "node_count": g.znodes,
        "data_size": g.data_bytes,
        "sessions": g.sessions,
        "num_connections": g.connections,
        "outstanding_requests": m.outstanding(),
        "requests": requests,
        "watches": g.watches.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "elections": m.elections.load(Ordering::Relaxed),
        "snapshots": m.snapshots.load(Ordering::Relaxed),
    })
}

fn connections(core: &Core) -> Value {
    Value::Array(
        core.connections()
            .into_iter()
            .map(|(conn, session, timeout)| {
                json!({
                    "connection_id": conn,
                    "session_id": session.map(|s| format!("{s:#x}")),
                    "session_timeout_ms": timeout,
                })
            })
            .collect(),
    )
}

fn leader(core: &Core) -> Value {
    let state = core.server_state();
    let leader_id = core.leader_id();
    let leader = core
        .config()
        .members
        .iter()
        .find(|m| Some(m.id) == leader_id);
    json!({
        "is_leader": state.role == "leading" || state.role == "standalone",
        "leader_id": leader_id,
        "leader_host": leader.map(|m| m.host.clone()),
        "leader_client_port": leader.map(|m| m.client_port),
        "epoch": state.epoch,
    })
}

fn voting_view(core: &Core) -> Value {
    let members: serde_json::Map<String, Value> = core
        .config()
        .members
        .iter()
        .map(|m| {
            (
                m.id.to_string(),
                json!({
                    "host": m.host,
                    "peer_port": m.peer_port,
                    "client_port": m.client_port,
                    "role": "participant",
                }),
            )
        })
        .collect();
    json!({ "current_config": members })
}

fn watches(core: &Core) -> Value {
    let w = core.watches.lock();
    json!({
        "num_connections": w.watcher_count(),
        "num_paths": w.path_count(),
        "num_total_watches": w.len(),
    })
}

/// Asks for a snapshot and waits until one at least as new as now is written.
async fn snapshot(core: &Core) -> Result<Value, String> {
    let before = core.metrics.snapshots.load(Ordering::Acquire);
    let started = Instant::now();
    core.request_snapshot();
    while core.metrics.snapshots.load(Ordering::Acquire) == before {
        if started.elapsed() > WAIT {
            return Err("no snapshot written within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let zxid = core.metrics.snapshot_zxid.load(Ordering::Relaxed);
    Ok(json!({
        "zxid": zxid,
        "zxid_hex": format!("{zxid:#x}"),
        "bytes": core.metrics.snapshot_bytes.load(Ordering::Relaxed),
        "ms": started.elapsed().as_millis() as u64,
    }))
}

/// The tree as a snapshot file, after catching up with the leader's commit point.
pub async fn backup(core: &Arc<Core>) -> Result<(i64, Vec<u8>), String> {
    if !core.is_serving() {
        return Err("this member is not serving (no leader): ask another".into());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    core.sync("/".into(), Completion::new(tx, 0));
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some((_, Outcome::Ok(_)))) => {}
        Ok(Some((_, other))) => return Err(format!("sync failed: error {}", other.code())),
        Ok(None) => return Err("server shutting down".into()),
        Err(_) => return Err("sync did not finish within 60 s".into()),
    }
    let core = core.clone();
    tokio::task::spawn_blocking(move || {
        let mut body = Vec::new();
        let zxid = {
            let tree = core.tree.read();
            tree.serialize(&mut body);
            tree.last_applied_zxid()
        };
        (
            zxid,
            crate::storage::snapshot::encode_file(zxid as u64, &body),
        )
    })
    .await
    .map_err(|e| format!("backup task failed: {e}"))
}
