//! A distributed counter: an `i64` in a node's data, changed by compare-and-set.
//!
//! `add` reads the value and its version and writes the new value conditioned on that
//! version; a `BadVersion` answer means another writer got in first, so it reads again
//! and retries. Every successful `add` is therefore applied exactly once, atomically.
//! A write whose answer was lost (`ConnectionLoss`, `OperationTimeout`) is NOT retried
//! blindly, which could count twice: the error is returned and the caller decides.
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::Counter};
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let hits = Counter::new(&zk, "/counters/hits");
//! let now = hits.add(1).await?;
//! assert!(hits.get().await? >= now);
//! # Ok(()) }
//! ```

use bytes::Bytes;

use crate::{Client, CreateMode, Error};

/// Handle on the counter at `path` (created with value 0 on first use).
#[derive(Debug, Clone)]
pub struct Counter {
    zk: Client,
    path: String,
}

fn parse(data: &[u8]) -> Result<i64, Error> {
    if data.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(Error::BadArguments)
}

impl Counter {
    pub fn new(zk: &Client, path: &str) -> Counter {
        Counter {
            zk: zk.clone(),
            path: path.to_string(),
        }
    }

    async fn read(&self) -> Result<(i64, i32), Error> {
        loop {
            match super::retry(|| self.zk.get_data(&self.path)).await {
                Ok((d, stat)) => return Ok((parse(&d)?, stat.version)),
                Err(Error::NoNode) => {
                    let parent = zabkeeper_proto::path::parent(&self.path);
                    if parent != "/" {
                        super::ensure_path(&self.zk, parent).await?;
                    }
                    match self
                        .zk
                        .create(&self.path, "0", CreateMode::Persistent)
                        .await
                    {
                        Ok(_) | Err(Error::NodeExists) => {}
                        Err(Error::ConnectionLoss | Error::OperationTimeout) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The current value (0 if never set).
    pub async fn get(&self) -> Result<i64, Error> {
        Ok(self.read().await?.0)
    }

    /// Adds `delta` and returns the new value.
    pub async fn add(&self, delta: i64) -> Result<i64, Error> {
        self.update(|v| v.checked_add(delta)).await
    }

    /// Sets the value if it is `expected`; whether it was.
    pub async fn compare_and_set(&self, expected: i64, new: i64) -> Result<bool, Error> {
        loop {
            let (v, version) = self.read().await?;
            if v != expected {
                return Ok(false);
            }
            match self.write(new, version).await {
                Ok(()) => return Ok(true),
                Err(Error::BadVersion) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Applies `f` atomically (retrying on conflict) and returns the new value;
    /// `BadArguments` if `f` returns `None` (e.g. overflow).
    pub async fn update(&self, f: impl Fn(i64) -> Option<i64>) -> Result<i64, Error> {
        loop {
            let (v, version) = self.read().await?;
            let new = f(v).ok_or(Error::BadArguments)?;
            match self.write(new, version).await {
                Ok(()) => return Ok(new),
                Err(Error::BadVersion) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn write(&self, value: i64, version: i32) -> Result<(), Error> {
        let data = Bytes::from(value.to_string());
        self.zk.set_data(&self.path, data, Some(version)).await?;
        Ok(())
    }
}
