//! [`Session`] over the async client (`--protocol native`).

use crate::session::{Fail, Session};
use bytes::Bytes;
use std::time::Duration;
use zabkeeper_client::{Client, ConnectOptions, CreateMode, Error, Op};

#[derive(Clone)]
pub struct Native {
    client: Client,
}

impl Native {
    pub async fn connect(server: &str, timeout: Duration) -> Result<Native, String> {
        let opts = ConnectOptions {
            connect_timeout: timeout,
            request_timeout: timeout,
            ..ConnectOptions::default()
        };
        Client::connect(server, opts)
            .await
            .map(|client| Native { client })
            .map_err(|e| format!("{server}: {e}"))
    }

    pub async fn close(&self) {
        let _ = self.client.close().await;
    }
}

fn fail(e: Error) -> Fail {
    match e {
        Error::NoNode => Fail::NoNode,
        other => Fail::Other(other.to_string()),
    }
}

impl Session for Native {
    async fn create(&self, path: &str, data: Bytes) -> Result<(), Fail> {
        self.client
            .create(path, data, CreateMode::Persistent)
            .await
            .map(|_| ())
            .map_err(fail)
    }
    async fn set(&self, path: &str, data: Bytes) -> Result<(), Fail> {
        self.client
            .set_data(path, data, None)
            .await
            .map(|_| ())
            .map_err(fail)
    }
    async fn get(&self, path: &str) -> Result<(), Fail> {
        self.client.get_data(path).await.map(|_| ()).map_err(fail)
    }
    async fn multi_set(&self, a: &str, b: &str, data: Bytes) -> Result<(), Fail> {
        let ops = vec![
            Op::set_data(a, data.clone(), None),
            Op::set_data(b, data, None),
        ];
        self.client.multi(ops).await.map(|_| ()).map_err(fail)
    }
    async fn delete(&self, path: &str) -> Result<(), Fail> {
        self.client.delete(path, None).await.map_err(fail)
    }
}
