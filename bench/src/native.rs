//! [`Session`] over the async client (`--protocol native`).

use crate::session::{Fail, Session};
use bytes::Bytes;
use std::time::Duration;
use zabkeeper_client::{Client, ConnectOptions, CreateMode, Error, Op};

#[derive(Clone)]
pub struct Native {
    client: Client,
    /// Reads go through the client cache (`--cache N`).
    cached: bool,
}

impl Native {
    /// `cache`: entries of the client cache; 0 reads from the server every time.
    pub async fn connect(server: &str, timeout: Duration, cache: usize) -> Result<Native, String> {
        let opts = ConnectOptions {
            connect_timeout: timeout,
            request_timeout: timeout,
            cache_capacity: cache,
            ..ConnectOptions::default()
        };
        Client::connect(server, opts)
            .await
            .map(|client| Native {
                client,
                cached: cache > 0,
            })
            .map_err(|e| format!("{server}: {e}"))
    }

    /// The same session, its reads linearizable (and not through the cache).
    pub fn linearizable_reads(self) -> Native {
        Native {
            client: self.client.linearizable(),
            cached: false,
        }
    }

    /// (hits, misses) of the client cache, if on.
    pub fn cache_counts(&self) -> Option<(u64, u64)> {
        self.client.cache_stats().map(|s| (s.hits, s.misses))
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
        let r = if self.cached {
            self.client.get_data_cached(path).await
        } else {
            self.client.get_data(path).await
        };
        r.map(|_| ()).map_err(fail)
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
