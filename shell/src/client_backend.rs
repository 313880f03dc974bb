//! [`Backend`] over the async client, the only place the shell uses its API.

use crate::acl::AclEntry;
use crate::backend::{Backend, SessionInfo};
use crate::command::Mode;
use crate::error::{OpError, ShellError};
use std::time::Duration;
use zabkeeper_client::{
    Acl, AddWatchMode, Client, ConnectOptions, CreateMode, CreateOptions, Error, Op, OpResult,
    SessionState, WatchedEvent, WatcherType,
};
use zabkeeper_proto::wire;

pub struct ClientBackend {
    pub client: Client,
}

/// Opens a session; `timeout` bounds both the connection attempt and each request.
pub async fn connect(servers: &str, timeout: Duration) -> Result<ClientBackend, ShellError> {
    let opts = ConnectOptions {
        connect_timeout: timeout,
        request_timeout: timeout,
        ..ConnectOptions::default()
    };
    match tokio::time::timeout(timeout, Client::connect(servers, opts)).await {
        Ok(Ok(client)) => Ok(ClientBackend { client }),
        Ok(Err(e)) => Err(ShellError::Connect(format!("{servers}: {e}"))),
        Err(_) => Err(ShellError::Connect(format!(
            "{servers}: no session within {} ms",
            timeout.as_millis()
        ))),
    }
}

fn op(e: Error) -> OpError {
    let code = e.code();
    // The code's own words are enough for the common cases; keep the client's for the rest.
    let detail = match e {
        Error::NoNode
        | Error::NodeExists
        | Error::NotEmpty
        | Error::BadVersion
        | Error::NoChildrenForEphemerals => String::new(),
        other => other.to_string(),
    };
    OpError { code, detail }
}

fn stat(s: zabkeeper_client::Stat) -> wire::Stat {
    wire::Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    }
}

fn create_mode(mode: Mode) -> CreateMode {
    match mode {
        Mode::Persistent => CreateMode::Persistent,
        Mode::Ephemeral => CreateMode::Ephemeral,
        Mode::PersistentSequential => CreateMode::PersistentSequential,
        Mode::EphemeralSequential => CreateMode::EphemeralSequential,
        Mode::Container => CreateMode::Container,
        Mode::PersistentWithTtl => CreateMode::PersistentWithTtl,
        Mode::PersistentSequentialWithTtl => CreateMode::PersistentSequentialWithTtl,
    }
}

impl Backend for ClientBackend {
    async fn create(
        &self,
        path: &str,
        data: Vec<u8>,
        mode: Mode,
        ttl_ms: Option<i64>,
    ) -> Result<String, OpError> {
        let mut opts = CreateOptions::new(create_mode(mode));
        if let Some(ms) = ttl_ms {
            opts = opts.ttl(Duration::from_millis(ms.max(0) as u64));
        }
        self.client
            .create_with(path, data, opts)
            .await
            .map(|(p, _)| p)
            .map_err(op)
    }
    async fn get_data(&self, path: &str) -> Result<(Vec<u8>, wire::Stat), OpError> {
        self.client
            .get_data(path)
            .await
            .map(|(d, s)| (d.to_vec(), stat(s)))
            .map_err(op)
    }
    async fn set_data(
        &self,
        path: &str,
        data: Vec<u8>,
        version: Option<i32>,
    ) -> Result<wire::Stat, OpError> {
        self.client
            .set_data(path, data, version)
            .await
            .map(stat)
            .map_err(op)
    }
    async fn exists(&self, path: &str) -> Result<Option<wire::Stat>, OpError> {
        self.client
            .exists(path)
            .await
            .map(|s| s.map(stat))
            .map_err(op)
    }
    async fn get_children(&self, path: &str) -> Result<Vec<String>, OpError> {
        self.client.get_children(path).await.map_err(op)
    }
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), OpError> {
        self.client.delete(path, version).await.map_err(op)
    }
    async fn sync(&self, path: &str) -> Result<(), OpError> {
        self.client.sync(path).await.map_err(op)
    }
    async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, OpError> {
        self.client.get_ephemerals(prefix).await.map_err(op)
    }
    async fn who_am_i(&self) -> Result<Vec<(String, String)>, OpError> {
        self.client.who_am_i().await.map_err(op)
    }
    async fn get_acl(&self, path: &str) -> Result<(Vec<AclEntry>, wire::Stat), OpError> {
        let (list, s) = self.client.get_acl(path).await.map_err(op)?;
        let list = list
            .into_iter()
            .map(|a| AclEntry {
                perms: a.perms,
                scheme: a.scheme,
                id: a.id,
            })
            .collect();
        Ok((list, stat(s)))
    }
    async fn set_acl(
        &self,
        path: &str,
        acl: &[AclEntry],
        version: Option<i32>,
    ) -> Result<wire::Stat, OpError> {
        let list: Vec<Acl> = acl
            .iter()
            .map(|a| Acl {
                perms: a.perms,
                scheme: a.scheme.clone(),
                id: a.id.clone(),
            })
            .collect();
        self.client
            .set_acl(path, &list, version)
            .await
            .map(stat)
            .map_err(op)
    }
    async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), OpError> {
        self.client
            .add_auth(scheme, auth.to_vec())
            .await
            .map_err(op)
    }
    fn session(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.client.session_id(),
            timeout_ms: self.client.session_timeout().as_millis() as u64,
            server: self.client.connected_server(),
            last_zxid: self.client.last_zxid(),
        }
    }
}

/// One op of an interactive `multi` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create {
        path: String,
        data: Vec<u8>,
        mode: Mode,
        ttl_ms: Option<i64>,
    },
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    Check {
        path: String,
        version: i32,
    },
}

impl MultiOp {
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { path, .. }
            | MultiOp::Set { path, .. }
            | MultiOp::Delete { path, .. }
            | MultiOp::Check { path, .. } => path,
        }
    }
}

/// The interactive shell's calls that script mode does not make (watches, multi, the
/// session state stream): kept here so the client's API stays in this file.
impl ClientBackend {
    /// Data and stat of `path`, and a one-shot data watch; the event is rendered as text,
    /// `None` when the watch ends because this handle was closed (nothing to tell).
    pub async fn get_data_watch(
        &self,
        path: &str,
    ) -> Result<
        (
            Vec<u8>,
            wire::Stat,
            impl std::future::Future<Output = Option<String>>,
        ),
        OpError,
    > {
        let ((data, s), watch) = self.client.get_data_w(path).await.map_err(op)?;
        Ok((data.to_vec(), stat(s), async move {
            let e = watch.await;
            (e.state != zabkeeper_client::KeeperState::Closed).then(|| event_text(&e))
        }))
    }

    /// A persistent (`recursive`: persistent-recursive) watch as a stream of event lines.
    pub async fn watch(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<impl futures::Stream<Item = String> + Unpin, OpError> {
        use futures::StreamExt;
        let mode = if recursive {
            AddWatchMode::PersistentRecursive
        } else {
            AddWatchMode::Persistent
        };
        let w = self.client.add_watch(path, mode).await.map_err(op)?;
        Ok(w.map(|e| event_text(&e)))
    }

    /// Removes the persistent watches this session holds on `path`.
    pub async fn unwatch(&self, path: &str) -> Result<(), OpError> {
        match self.client.remove_watches(path, WatcherType::Any).await {
            Ok(()) | Err(Error::NoWatcher) => Ok(()),
            Err(e) => Err(op(e)),
        }
    }

    /// Applies `ops` atomically. Ok: one line per op. Err: the failing op's index and
    /// error, nothing applied.
    pub async fn multi(&self, ops: &[MultiOp]) -> Result<Vec<String>, (usize, OpError)> {
        let client_ops: Vec<Op> = ops
            .iter()
            .map(|o| match o {
                MultiOp::Create {
                    path,
                    data,
                    mode,
                    ttl_ms,
                } => {
                    let mut opts = CreateOptions::new(create_mode(*mode));
                    if let Some(ms) = ttl_ms {
                        opts = opts.ttl(Duration::from_millis((*ms).max(0) as u64));
                    }
                    Op::create_with(path, data.clone(), opts)
                }
                MultiOp::Set {
                    path,
                    data,
                    version,
                } => Op::set_data(path, data.clone(), *version),
                MultiOp::Delete { path, version } => Op::delete(path, *version),
                MultiOp::Check { path, version } => Op::check(path, *version),
            })
            .collect();
        match self.client.multi(client_ops).await {
            Ok(results) => Ok(results
                .iter()
                .zip(ops)
                .map(|(r, o)| match r {
                    OpResult::Create { path, .. } => format!("create {path}: ok"),
                    OpResult::SetData(s) => {
                        format!("set {}: ok (version {})", o.path(), s.version)
                    }
                    OpResult::Delete => format!("delete {}: ok", o.path()),
                    OpResult::Check => format!("check {}: ok", o.path()),
                    OpResult::Error(c) => format!("{}: error {c}", o.path()),
                })
                .collect()),
            Err(Error::Multi { index, code, .. }) => Err((
                index,
                OpError {
                    code,
                    detail: String::new(),
                },
            )),
            Err(e) => Err((usize::MAX, op(e))),
        }
    }

    /// The session's state now and at each change, as the prompt names it.
    pub fn states(&self) -> impl futures::Stream<Item = SessionState> + Send + 'static {
        self.client.state_stream()
    }

    pub fn state(&self) -> SessionState {
        self.client.state()
    }
}

/// An event as zkCli prints it.
pub fn event_text(e: &WatchedEvent) -> String {
    format!(
        "WatchedEvent state:{:?} type:{:?} path:{}",
        e.state, e.event_type, e.path
    )
}
