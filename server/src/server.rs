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
    admin_addr: Option<SocketAddr>,
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

/// What recovery reads from a data directory: the snapshot store, the txn log, the
/// tree at the newest valid snapshot and the log's records after it.
struct Loaded<T> {
    snapshots: FileSnapshotStore,
    log: FileTxnLog,
    tree: DataTree,
    /// The records after the snapshot, each made ready by the caller's `prepare`.
    after_snapshot: Vec<T>,
}

/// Opens the txn log (which reads every segment to find and check its end) and reads
/// its records after the newest snapshot on one thread, while this one maps and
/// decodes that snapshot: the two are independent, and on a restart with a large
/// tree each is a good part of the time to serving. The log thread reads after the
/// newest snapshot by name; should that one prove corrupt (an older one is loaded),
/// the records are read again from the older zxid. `prepare` turns each record into
/// what the caller replays (decoding it, say), on the log thread too.
fn open_log_and_load_snapshot<T: Send>(
    config: &Config,
    prepare: impl Fn(u64, bytes::Bytes) -> Result<T> + Sync,
) -> Result<Loaded<T>> {
    let prepare_all = |records: Vec<(u64, bytes::Bytes)>| -> Result<Vec<T>> {
        records.into_iter().map(|(z, b)| prepare(z, b)).collect()
    };
    let dir = &config.data_dir;
    let log_dir = dir.join("log");
    let log_options = LogOptions {
        segment_size: config.log_segment_bytes,
        ..LogOptions::default()
    };
    let snapshots = FileSnapshotStore::open(dir.join("snapshot"))?;
    let newest = snapshots.list()?.last().copied().unwrap_or(0);
    std::thread::scope(|scope| {
        let log = std::thread::Builder::new()
            .name("log-open".into())
            .spawn_scoped(scope, move || {
                let started = Instant::now();
                let log = FileTxnLog::open(log_dir, log_options)?;
                let records = log
                    .read_after(newest)
                    .map_err(Error::from)
                    .and_then(prepare_all);
                info!(
                    last_zxid = format_args!("{:#x}", log.last_zxid()),
                    after_snapshot = records.as_ref().map_or(0, |r| r.len()),
                    ms = started.elapsed().as_millis() as u64,
                    "opened txn log"
                );
                Ok::<_, Error>((log, records))
            })?;
        let loaded = (|| {
            let started = Instant::now();
            let tree = match snapshots.latest()? {
                Some((zxid, body)) => {
                    let tree = DataTree::deserialize(&body)
                        .map_err(|e| Error::Corrupt(format!("snapshot {zxid:#x}: {e}")))?;
                    info!(
                        zxid = format_args!("{zxid:#x}"),
                        nodes = tree.node_count(),
                        ms = started.elapsed().as_millis() as u64,
                        "loaded snapshot"
                    );
                    tree
                }
                None => DataTree::new(),
            };
            Ok::<_, Error>(tree)
        })();
        let (log, records) = log
            .join()
            .map_err(|_| Error::Corrupt("the txn log reader panicked".into()))??;
        let tree = loaded?;
        let from = tree.last_applied_zxid() as u64;
        let after_snapshot = if from == newest {
            records?
        } else {
            prepare_all(log.read_after(from)?)?
        };
        Ok(Loaded {
            snapshots,
            log,
            tree,
            after_snapshot,
        })
    })
}

fn recover(config: &Config) -> Result<Recovered> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)?;
    let started = Instant::now();
    let mut epochs = FileEpochStore::open(dir)?;
    let Loaded {
        snapshots,
        log,
        mut tree,
        after_snapshot: txns,
    } = open_log_and_load_snapshot(config, |zxid, payload| {
        Txn::decode(&payload).map_err(|e| Error::Corrupt(format!("txn {zxid:#x}: {e}")))
    })?;
    let replayed = txns.len() as u64;
    let replay_started = Instant::now();
    for txn in &txns {
        tree.apply(txn);
    }
    // The decoded txns were built on the log thread's arena: give those pages back now
    // rather than at the trimmer's next look.
    drop(txns);
    crate::memory_trim::trim_if_worth_it();
    let replay_ms = replay_started.elapsed().as_millis() as u64;
    let last = tree.last_applied_zxid().max(log.last_zxid() as i64);
    let stored = epochs.load()?;
    let epoch = stored.current.max(stored.accepted).max((last >> 32) as u32) + 1;
    let epoch_started = Instant::now();
    epochs.save(Epochs {
        accepted: epoch,
        current: epoch,
        lease_mark: false,
    })?;
    info!(
        last_zxid = format_args!("{last:#x}"),
        replayed,
        replay_ms,
        epoch,
        epoch_save_ms = epoch_started.elapsed().as_millis() as u64,
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
    let Loaded {
        snapshots,
        log,
        tree,
        after_snapshot: log_txns,
    } = open_log_and_load_snapshot(config, |zxid, data| {
        Ok(zabkeeper_zab::Txn {
            zxid: zabkeeper_zab::Zxid(zxid),
            data,
        })
    })?;
    let snapshot_zxid = tree.last_applied_zxid() as u64;
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
            lease_mark: stored.lease_mark,
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
    // Rounded down: a lease never outlasts what was configured.
    z.lease_ticks = (config.read_lease() / config.zab_tick_ms) as u32;
    z.validate().map_err(|e| Error::Config(e.to_string()))?;
    Ok(z)
}

/// The client-facing listeners: the native port, ZooKeeper's unless `zk_port` is 0, and
/// the TLS ports that are configured.
struct ClientListeners {
    native: TcpListener,
    native_addr: SocketAddr,
    zk: Option<TcpListener>,
    zk_addr: Option<SocketAddr>,
    native_tls: Option<TcpListener>,
    zk_tls: Option<TcpListener>,
    /// The client-side TLS acceptor, when any client port speaks TLS.
    tls: Option<tokio_rustls::TlsAcceptor>,
    tls_required: bool,
    admin: Option<TcpListener>,
    admin_addr: Option<SocketAddr>,
}

async fn bind_optional(config: &Config, port: u16) -> Result<Option<TcpListener>> {
    Ok(match port {
        0 => None,
        port => Some(TcpListener::bind((config.bind, port)).await?),
    })
}

async fn bind_clients(config: &Config) -> Result<ClientListeners> {
    let native = TcpListener::bind((config.bind, config.port)).await?;
    let native_addr = native.local_addr()?;
    let zk = bind_optional(config, config.zk_port).await?;
    let zk_addr = zk.as_ref().map(|l| l.local_addr()).transpose()?;
    let client_tls = config.tls_required || config.tls_port != 0 || config.zk_tls_port != 0;
    if client_tls && config.tls_ca.is_some() {
        // Client certificates are verified: `x509` ids exist, so it is an ACL scheme.
        crate::prep::acl::register_x509_provider();
    }
    let tls = match (client_tls, &config.tls_cert, &config.tls_key) {
        (true, Some(cert), Some(key)) => Some(crate::tls::acceptor(
            cert,
            key,
            config.tls_ca.as_deref(),
            false,
        )?),
        _ => None,
    };
    let admin = crate::admin::bind(config).await?;
    let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
    Ok(ClientListeners {
        native,
        native_addr,
        zk,
        zk_addr,
        native_tls: bind_optional(config, config.tls_port).await?,
        zk_tls: bind_optional(config, config.zk_tls_port).await?,
        tls,
        tls_required: config.tls_required,
        admin,
        admin_addr,
    })
}

/// Mutual TLS between members when `peer_tls` is set: every member's certificate must
/// be signed by `tls_ca` and name its host.
fn peer_tls(config: &Config) -> Result<Option<crate::peer::PeerTls>> {
    let (true, Some(cert), Some(key), Some(ca)) = (
        config.peer_tls,
        &config.tls_cert,
        &config.tls_key,
        &config.tls_ca,
    ) else {
        return Ok(None);
    };
    let names = config
        .members
        .iter()
        .map(|m| Ok((m.id, crate::tls::server_name(&m.host)?)))
        .collect::<Result<_>>()?;
    Ok(Some(crate::peer::PeerTls {
        acceptor: crate::tls::acceptor(cert, key, Some(ca), true)?,
        connector: crate::tls::connector(ca, Some((cert, key)))?,
        names,
    }))
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
    /// Serves both front-ends from `core` on every bound port; returns their tasks.
    fn serve(self, core: &Arc<Core>, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
        let plain_tls = if self.tls_required {
            self.tls.clone()
        } else {
            None
        };
        let mut tasks = vec![tokio::spawn(crate::native::serve(
            self.native,
            core.clone(),
            shutdown.clone(),
            plain_tls.clone(),
        ))];
        if let Some(l) = self.native_tls {
            tasks.push(tokio::spawn(crate::native::serve(
                l,
                core.clone(),
                shutdown.clone(),
                self.tls.clone(),
            )));
        }
        let stats = Arc::new(crate::zk::Stats::default());
        if let Some(l) = self.zk {
            tasks.push(tokio::spawn(crate::zk::serve(
                l,
                core.clone(),
                stats.clone(),
                shutdown.clone(),
                plain_tls,
            )));
        }
        if let Some(l) = self.zk_tls {
            tasks.push(tokio::spawn(crate::zk::serve(
                l,
                core.clone(),
                stats,
                shutdown.clone(),
                self.tls.clone(),
            )));
        }
        if let Some(l) = self.admin {
            tasks.push(tokio::spawn(crate::admin::serve(
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
        let (native_addr, zk_addr, admin_addr) = (
            listeners.native_addr,
            listeners.zk_addr,
            listeners.admin_addr,
        );
        let shutdown = CancellationToken::new();
        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let (log, durable_rx) = spawn_log(recovered.log, &shutdown)?;
        let core = Arc::new(Core::new(config, recovered.tree, 0, writes_tx, false));
        core.metrics.set_log_stats(log.stats());
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
        info!(%native_addr, ?zk_addr, ?admin_addr, "serving");
        Ok(Server {
            native_addr,
            zk_addr,
            admin_addr,
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
        let (native_addr, zk_addr, admin_addr) = (
            listeners.native_addr,
            listeners.zk_addr,
            listeners.admin_addr,
        );
        let shutdown = CancellationToken::new();

        // Names are resolved at every dial (peer.rs): a member whose name does not
        // resolve yet (its container is not up) must not stop this one.
        let peers = config
            .members
            .iter()
            .map(|m| {
                let host = if m.host.contains(':') && !m.host.starts_with('[') {
                    format!("[{}]", m.host) // an IPv6 literal
                } else {
                    m.host.clone()
                };
                (m.id, format!("{host}:{}", m.peer_port))
            })
            .collect();
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let peer_tls = peer_tls(&config)?;
        let net = crate::peer::PeerNet::start(
            me.id,
            peer_listener,
            peers,
            peer_tx,
            shutdown.clone(),
            peer_tls,
        );

        let (writes_tx, writes_rx) = mpsc::unbounded_channel();
        let (log, durable_rx) = spawn_log(recovered.log, &shutdown)?;
        let core = Arc::new(Core::new(config, recovered.tree, me.id, writes_tx, true));
        core.metrics.set_log_stats(log.stats());
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
        info!(id = me.id, %native_addr, ?zk_addr, ?admin_addr, peer_port = me.peer_port, "ensemble member started");
        Ok(Server {
            native_addr,
            zk_addr,
            admin_addr,
            core,
            shutdown,
            tasks,
        })
    }

    pub fn native_addr(&self) -> SocketAddr {
        self.native_addr
    }

    /// The admin HTTP address, unless `admin_port` is 0.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
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
