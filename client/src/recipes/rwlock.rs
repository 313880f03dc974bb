//! A fair distributed read-write lock (ZooKeeper's shared-lock recipe).
//!
//! Readers create `<guid>-read-<seq>`, writers `<guid>-write-<seq>`, ephemeral and
//! sequential under one directory. A reader goes when no writer is ahead of it and
//! watches only the last writer ahead; a writer goes when it is first and watches the
//! node just before it. Readers therefore share, a writer excludes everyone, and a
//! waiting writer is not starved by readers arriving after it. Timeouts, cancellation,
//! lost answers and session loss behave as for [`super::Lock`]; the guard's fencing token
//! is its node's czxid. Not re-entrant.
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::ReadWriteLock};
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let rw = ReadWriteLock::new(&zk, "/locks/config");
//! let r = rw.read(None).await?.expect("no timeout");
//! // ... read the shared resource alongside other readers ...
//! r.release().await?;
//! let w = rw.write(None).await?.expect("no timeout");
//! // ... alone ...
//! w.release().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use super::lock::{blocked_by_predecessor, contend, kind};
use crate::{Client, Error};

/// Blocked by the last writer ahead.
fn reader_blocker(children: &[String], me: usize) -> Option<usize> {
    children[..me].iter().rposition(|c| kind(c) == "write")
}

/// Handle on the read-write lock at `dir`.
#[derive(Debug, Clone)]
pub struct ReadWriteLock {
    zk: Client,
    dir: String,
}

impl ReadWriteLock {
    pub fn new(zk: &Client, dir: &str) -> ReadWriteLock {
        ReadWriteLock {
            zk: zk.clone(),
            dir: dir.to_string(),
        }
    }

    /// Waits for a shared hold; `Ok(None)` on timeout.
    pub async fn read(&self, timeout: Option<Duration>) -> Result<Option<RwGuard>, Error> {
        self.lock("read", reader_blocker, timeout).await
    }

    /// Waits for an exclusive hold; `Ok(None)` on timeout.
    pub async fn write(&self, timeout: Option<Duration>) -> Result<Option<RwGuard>, Error> {
        self.lock("write", blocked_by_predecessor, timeout).await
    }

    async fn lock(
        &self,
        k: &str,
        blocker: super::lock::Blocker,
        timeout: Option<Duration>,
    ) -> Result<Option<RwGuard>, Error> {
        let got = contend(&self.zk, &self.dir, k, blocker, super::deadline(timeout)).await?;
        Ok(got.map(|(path, token)| RwGuard {
            zk: self.zk.clone(),
            path,
            token,
            released: false,
        }))
    }
}

/// A read or write hold; dropping it releases in the background.
#[derive(Debug)]
pub struct RwGuard {
    zk: Client,
    path: String,
    token: i64,
    released: bool,
}

impl RwGuard {
    /// The node's czxid (grows with every acquisition).
    pub fn fencing_token(&self) -> i64 {
        self.token
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Resolves when the session is or must be presumed lost.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::session_lost(&self.zk)
    }

    /// Held, Suspended while disconnected, Lost (final): see [`super::ownership`].
    pub fn ownership(&self) -> impl futures::Stream<Item = super::Ownership> + Send + 'static {
        super::ownership(&self.zk)
    }

    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        super::delete_quietly(&self.zk, &self.path).await
    }
}

impl Drop for RwGuard {
    fn drop(&mut self) {
        if !self.released {
            super::spawn_delete(&self.zk, &self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_wait_only_for_writers_ahead() {
        let c: Vec<String> = [
            "a-read-0000000001",
            "b-write-0000000002",
            "c-read-0000000003",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(reader_blocker(&c, 0), None);
        assert_eq!(reader_blocker(&c, 2), Some(1));
        assert_eq!(blocked_by_predecessor(&c, 1), Some(0));
        assert_eq!(blocked_by_predecessor(&c, 0), None);
    }
}
