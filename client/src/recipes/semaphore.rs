//! A counting distributed semaphore: at most `permits` holders at once.
//!
//! Curator's lease scheme: holders own ephemeral-sequential lease nodes under
//! `<dir>/leases`. To take a permit a contender first takes the fair lock
//! `<dir>/lock` ([`super::Lock`]), creates its lease, and waits (child watch on the
//! leases) until at most `permits` leases exist; then it lets the lock go. Only the
//! lock holder ever watches the leases, so a release wakes one process, not all of
//! them, and permits are granted in arrival order. A lease goes with its holder's
//! session; timeouts, cancellation and lost answers behave as for the lock.
//!
//! All contenders must agree on `permits`; nothing checks it.
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::Semaphore};
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let pool = Semaphore::new(&zk, "/semaphores/db", 3);
//! let permit = pool.acquire(None).await?.expect("no timeout");
//! // ... one of at most 3 users of the database ...
//! permit.release().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::{child, create_protected, new_guid, retry, wait_watch, Cleanup, Lock};
use crate::{Client, CreateMode, Error};

/// Handle on the semaphore at `dir`.
#[derive(Debug, Clone)]
pub struct Semaphore {
    zk: Client,
    leases: String,
    lock: Lock,
    permits: usize,
}

impl Semaphore {
    pub fn new(zk: &Client, dir: &str, permits: usize) -> Semaphore {
        Semaphore {
            zk: zk.clone(),
            leases: child(dir, "leases"),
            lock: Lock::new(zk, &child(dir, "lock")),
            permits,
        }
    }

    /// Waits for a permit; `Ok(None)` on timeout.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<Option<Permit>, Error> {
        let deadline = super::deadline(timeout);
        let remaining = deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now()));
        let Some(turn) = self.lock.acquire(remaining).await? else {
            return Ok(None);
        };
        let guid = new_guid();
        let mut cleanup = Cleanup::new(&self.zk, &self.leases, &guid);
        let (path, _) = create_protected(
            &self.zk,
            &self.leases,
            &guid,
            "lease",
            Bytes::new(),
            CreateMode::EphemeralSequential,
        )
        .await?;
        loop {
            let (leases, watch) = retry(|| self.zk.get_children_w(&self.leases)).await?;
            if leases.len() <= self.permits {
                break;
            }
            if !wait_watch(watch, deadline).await {
                cleanup.run().await?;
                turn.release().await?;
                return Ok(None);
            }
        }
        cleanup.disarm();
        turn.release().await?;
        Ok(Some(Permit {
            zk: self.zk.clone(),
            path,
            released: false,
        }))
    }

    /// Number of leases right now: the permits held, plus one while the head waiter
    /// has queued its lease and waits for room.
    pub async fn holders(&self) -> Result<usize, Error> {
        match self.zk.get_children(&self.leases).await {
            Ok(l) => Ok(l.len()),
            Err(Error::NoNode) => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// One permit; dropping it releases in the background.
#[derive(Debug)]
pub struct Permit {
    zk: Client,
    path: String,
    released: bool,
}

impl Permit {
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Resolves when the session is or must be presumed lost (the permit with it).
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

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.released {
            super::spawn_delete(&self.zk, &self.path);
        }
    }
}
