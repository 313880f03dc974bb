//! Starting and stopping a server: recovery from disk, the pipeline task, the
//! client listener, and clean shutdown.
//!
//! Recovery: the newest valid snapshot is loaded, then every txn in the log after
//! it is replayed (the log drops a torn tail itself; corruption in the middle stops
//! the start with an error naming the file and offset). The epoch is bumped on every
//! start, as a new ZAB leader does, so zxids never repeat across restarts.

use crate::config::Config;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::storage::epoch::{EpochStore, Epochs, FileEpochStore};
use crate::storage::group_commit::GroupCommit;
use crate::storage::log::{FileTxnLog, LogOptions};
use crate::storage::snapshot::FileSnapshotStore;
use crate::storage::{SnapshotStore, TxnLog};
use crate::tree::DataTree;
use crate::txn::Txn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// A running server.
pub struct Server {
    native_addr: SocketAddr,
    zk_addr: Option<SocketAddr>,
    core: Arc<Core>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// State rebuilt from the data directory.
struct Recovered {
    tree: DataTree,
    epoch: u32,
    log: FileTxnLog,
    snapshots: FileSnapshotStore,
    since_snapshot: u64,
}

fn recover(config: &Config) -> Result<Recovered> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let mut epochs = FileEpochStore::open(dir)?;
    let snapshots = FileSnapshotStore::open(dir.join("snapshot"))?;
    let log = FileTxnLog::open(
        dir.join("log"),
        LogOptions {
            segment_size: config.log_segment_bytes,
            ..LogOptions::default()
        },
    )?;
    let mut tree = match snapshots.latest()? {
        Some((zxid, body)) => {
            let tree = DataTree::deserialize(&body)
                .map_err(|e| Error::Corrupt(format!("snapshot {zxid:#x}: {e}")))?;
            info!(
                zxid = format_args!("{zxid:#x}"),
                nodes = tree.node_count(),
                "loaded snapshot"
            );
            tree
        }
        None => DataTree::new(),
    };
    let from = tree.last_applied_zxid() as u64;
    let records = log.read_after(from)?;
    let replayed = records.len() as u64;
    for (zxid, payload) in records {
        let txn =
            Txn::decode(&payload).map_err(|e| Error::Corrupt(format!("txn {zxid:#x}: {e}")))?;
        tree.apply(&txn);
    }
    let last = tree.last_applied_zxid().max(log.last_zxid() as i64);
    let stored = epochs.load()?;
    let epoch = stored.current.max(stored.accepted).max((last >> 32) as u32) + 1;
    epochs.save(Epochs {
        accepted: epoch,
        current: epoch,
    })?;
    info!(
        last_zxid = format_args!("{last:#x}"),
        replayed,
        epoch,
        ms = started.elapsed().as_millis() as u64,
        "recovered data directory {}",
        dir.display()
    );
    Ok(Recovered {
        tree,
        epoch,
        log,
        snapshots,
        since_snapshot: replayed,
    })
}

/// What an ensemble member rebuilds from its data directory: the tree at its
/// newest snapshot and the durable log after it, which ZAB will deliver (or
/// truncate) once the member has synchronised with a leader.
struct RecoveredMember {
    tree: DataTree,
    persisted: zabkeeper_zab::Persisted,
    log: FileTxnLog,
    snapshots: FileSnapshotStore,
    epochs: FileEpochStore,
}

fn recover_member(config: &Config) -> Result<RecoveredMember> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)?;
    let epochs = FileEpochStore::open(dir)?;
    let snapshots = FileSnapshotStore::open(dir.join("snapshot"))?;
    let log = FileTxnLog::open(
        dir.join("log"),
        LogOptions {
            segment_size: config.log_segment_bytes,
            ..LogOptions::default()
        },
    )?;
    let tree = match snapshots.latest()? {
        Some((zxid, body)) => DataTree::deserialize(&body)
            .map_err(|e| Error::Corrupt(format!("snapshot {zxid:#x}: {e}")))?,
        None => DataTree::new(),
    };
    let snapshot_zxid = tree.last_applied_zxid() as u64;
    let log_txns = log
        .read_after(snapshot_zxid)?
        .into_iter()
        .map(|(zxid, data)| zabkeeper_zab::Txn {
            zxid: zabkeeper_zab::Zxid(zxid),
            data,
        })
        .collect::<Vec<_>>();
    let stored = epochs.load()?;
    info!(
        snapshot = format_args!("{snapshot_zxid:#x}"),
        logged = log_txns.len(),
        accepted_epoch = stored.accepted,
        current_epoch = stored.current,
        "recovered member data directory {}",
        dir.display()
    );
    Ok(RecoveredMember {
        tree,
        persisted: zabkeeper_zab::Persisted {
            accepted_epoch: stored.accepted,
            current_epoch: stored.current,
            snapshot_zxid: zabkeeper_zab::Zxid(snapshot_zxid),
            log: log_txns,
        },
        log,
        snapshots,
        epochs,
    })
}

/// ZAB's configuration from the server's: time in zab ticks.
fn zab_config(config: &Config) -> Result<zabkeeper_zab::Config> {
    let id = config
        .id
        .ok_or_else(|| Error::Config("`id` is required in an ensemble".into()))?;
    let mut z = zabkeeper_zab::Config::new(id, config.members.iter().map(|m| m.id).collect());
    let ticks = |ms: u64| ((ms / config.zab_tick_ms).max(1)) as u32;
    z.heartbeat_ticks = 2;
    z.follower_timeout_ticks = ticks(config.election_timeout_ms).max(z.heartbeat_ticks + 1);
    z.leader_timeout_ticks = z.follower_timeout_ticks;
    z.election_resend_ticks = 4;
    z.finalize_ticks = 1;
    // Discovery and sync must finish within 5 s, else back to election: this also
    // bounds how long a would-be leader that lost its voters to a better vote
    // (FLE's inherent race) blocks the next election.
    z.init_timeout_ticks = ticks(5_000);
    z.diff_window = config.sync_diff_window;
    z.validate().map_err(|e| Error::Config(e.to_string()))?;
    Ok(z)
}

/// The client-facing listeners: the native port, and ZooKeeper's unless `zk_port` is 0.
struct ClientListeners {
    native: TcpListener,
    native_addr: SocketAddr,
    zk: Option<TcpListener>,
    zk_addr: Option<SocketAddr>,
}

async fn bind_clients(config: &Config) -> Result<ClientListeners> {
    let native = TcpListener::bind((config.bind, config.port)).await?;
    let native_addr = native.local_addr()?;
    let zk = match config.zk_port {
        0 => None,
        port => Some(TcpListener::bind((config.bind, port)).await?),
    };
    let zk_addr = zk.as_ref().map(|l| l.local_addr()).transpose()?;
    Ok(ClientListeners {
        native,
        native_addr,
        zk,
        zk_addr,
    })
}

/// Starts the group-commit thread; durable zxids arrive on the returned channel. A
/// log that cannot sync stops the server: it may not acknowledge anything more.
fn spawn_log(
    log: FileTxnLog,
    shutdown: &CancellationToken,
) -> Result<(GroupCommit, mpsc::UnboundedReceiver<u64>)> {
    let (durable_tx, durable_rx) = mpsc::unbounded_channel();
    let fatal = shutdown.clone();
    let log = GroupCommit::spawn(
        Box::new(log) as Box<dyn TxnLog>,
        Box::new(move |zxid| {
            let _ = durable_tx.send(zxid);
        }),
        Box::new(move |e| {
            tracing::error!(error = %e, "txn log failed: stopping the server");
            fatal.cancel();
        }),
    )?;
    Ok((log, durable_rx))
}

impl ClientListeners {
    /// Serves both front-ends from `core`; returns their tasks.
    fn serve(self, core: &Arc<Core>, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(crate::native::serve(
            self.native,
            core.clone(),
            shutdown.clone(),
        ))];
        if let Some(l) = self.zk {
            tasks.push(tokio::spawn(crate::zk::serve(
                l,
                core.clone(),
                shutdown.clone(),
            )));
        }
        tasks
    }
}

impl Server {
    /// Recovers the data directory, binds the client port and starts serving.
    pub async fn start(config: Config) -> Result<Server> {
        config.validate()?;
        if config.is_ensemble() {
            return Self::start_member(config).await;
        }
        let recovered = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || recover(&config))
                .await
                .map_err(|e| Error::Task(format!("recovery task failed: {e}")))??
        };
        let listeners = bind_clients(&config).await?;
        let (native_addr, zk_addr) = (listeners.native_addr, listeners.zk_addr);
        let shutdown = CancellationToken::new();
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let (log, durable_rx) = spawn_log(recovered.log, &shutdown)?;
        let core = Arc::new(Core::new(config, recovered.tree, 0, writes_tx, false));
        let pipeline = Pipeline::new(
            core.clone(),
            log,
            Box::new(recovered.snapshots),
            recovered.epoch,
            recovered.since_snapshot,
        );
        let mut tasks = listeners.serve(&core, &shutdown);
        tasks.push(tokio::spawn(pipeline.run(
            writes_rx,
            durable_rx,
            shutdown.clone(),
        )));
        info!(%native_addr, ?zk_addr, "serving");
        Ok(Server {
            native_addr,
            zk_addr,
            core,
            shutdown,
            tasks,
        })
    }

    /// Starts an ensemble member: peer transport, ZAB replica, client port.
    async fn start_member(mut config: Config) -> Result<Server> {
        let me = config
            .me()
            .cloned()
            .ok_or_else(|| Error::Config("`id` is not among `members`".into()))?;
        config.port = me.client_port;
        let zab_config = zab_config(&config)?;
        let recovered = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || recover_member(&config))
                .await
                .map_err(|e| Error::Task(format!("recovery task failed: {e}")))??
        };
        let peer_listener = TcpListener::bind((config.bind, me.peer_port)).await?;
        let listeners = bind_clients(&config).await?;
        let (native_addr, zk_addr) = (listeners.native_addr, listeners.zk_addr);
        let shutdown = CancellationToken::new();

        let mut peers = std::collections::HashMap::new();
        for m in &config.members {
            let addr = tokio::net::lookup_host((m.host.as_str(), m.peer_port))
                .await?
                .next()
                .ok_or_else(|| {
                    Error::Config(format!(
                        "member {} host `{}` does not resolve",
                        m.id, m.host
                    ))
                })?;
            peers.insert(m.id, addr);
        }
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let net =
            crate::peer::PeerNet::start(me.id, peer_listener, peers, peer_tx, shutdown.clone());

        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let (log, durable_rx) = spawn_log(recovered.log, &shutdown)?;
        let core = Arc::new(Core::new(config, recovered.tree, me.id, writes_tx, true));
        let seed = crate::now_ms() as u64 ^ (me.id << 48);
        let zab = zabkeeper_zab::Zab::new(zab_config, recovered.persisted, seed);
        let replica = crate::ensemble::Replica::new(crate::ensemble::ReplicaParts {
            core: core.clone(),
            zab,
            net,
            log,
            epochs: recovered.epochs,
            snapshots: Box::new(recovered.snapshots),
            shutdown: shutdown.clone(),
        });
        let mut tasks = listeners.serve(&core, &shutdown);
        tasks.push(tokio::spawn(replica.run(writes_rx, peer_rx, durable_rx)));
        info!(id = me.id, %native_addr, ?zk_addr, peer_port = me.peer_port, "ensemble member started");
        Ok(Server {
            native_addr,
            zk_addr,
            core,
            shutdown,
            tasks,
        })
    }

    pub fn native_addr(&self) -> SocketAddr {
        self.native_addr
    }

    /// The ZooKeeper-protocol address, unless `zk_port` is 0.
    pub fn zk_addr(&self) -> Option<SocketAddr> {
        self.zk_addr
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Stops accepting, closes connections, lets in-flight writes become durable.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
