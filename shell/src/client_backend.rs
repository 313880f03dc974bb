//! [`Backend`] over the async client, the only place the shell uses its API.

use crate::backend::{Backend, SessionInfo};
use crate::command::Mode;
use crate::error::{OpError, ShellError};
use std::time::Duration;
use zabkeeper_client::{Client, ConnectOptions, CreateMode, CreateOptions, Error};
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
    fn session(&self) -> SessionInfo {
        SessionInfo {
            session_id: self.client.session_id(),
            timeout_ms: self.client.session_timeout().as_millis() as u64,
            server: self.client.connected_server(),
            last_zxid: self.client.last_zxid(),
        }
    }
}
