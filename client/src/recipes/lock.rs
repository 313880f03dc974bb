//! A fair, re-entrant distributed lock with fencing tokens (ZooKeeper's lock recipe).
//!
//! Each acquisition creates an ephemeral-sequential node `<dir>/<guid>-lock-<seq>`. The
//! lowest sequence holds the lock; every other contender watches only the node just
//! before its own (no herd when the lock changes hands) and re-checks when it goes.
//! First come, first served: the queue is the sequence order.
//!
//! * **Fencing token**: the holder's node czxid. Nodes are granted in creation order and
//!   zxids grow, so tokens strictly increase from one holder to the next; a protected
//!   resource refuses a token lower than the highest it has seen.
//! * **Re-entrant per handle**: acquiring a [`Lock`] that this handle already holds
//!   returns another guard on the same hold (same token); the node goes when the last
//!   guard is released. Clones of a handle share the hold.
//! * **Timeout and cancellation**: `acquire(Some(t))` gives up after `t` and removes its
//!   node; dropping the `acquire` future does the same (the clean-up is queued on the same session).
//! * **Lost answers**: see the [module doc](super).
//! * **Session loss**: [`LockGuard::ownership`] says `Suspended` as soon as the
//!   connection is noticed down and `Lost` when the session is gone or may have been
//!   expired, which is before the ensemble can hand the lock to the next waiter;
//!   [`LockGuard::lost`] resolves then. From `Lost` on the holder must stop using
//!   the resource (from `Suspended` on, to be safe).
//!
//! ```no_run
//! # use zabkeeper_client::{Client, ConnectOptions, Error, recipes::Lock};
//! # use std::time::Duration;
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let lock = Lock::new(&zk, "/locks/printer");
//! if let Some(guard) = lock.acquire(Some(Duration::from_secs(5))).await? {
//!     println!("printing with token {}", guard.fencing_token());
//!     tokio::select! {
//!         _ = tokio::time::sleep(Duration::from_secs(1)) => {}
//!         _ = guard.lost() => println!("session lost: stop printing"),
//!     }
//!     guard.release().await?;
//! }
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::{
    child, create_protected, kind_of, new_guid, retry, sorted_by_sequence, wait_watch, Cleanup,
};
use crate::{Client, CreateMode, Error};

/// Which earlier node (index into the sorted children) blocks the node at `me`, if any.
pub(crate) type Blocker = fn(&[String], usize) -> Option<usize>;

/// Blocked by the node just before (exclusive locks, write locks).
pub(crate) fn blocked_by_predecessor(_: &[String], me: usize) -> Option<usize> {
    me.checked_sub(1)
}

/// Queues at `dir` with a node of `kind` until `blocker` lets it through. Returns the
/// node's path and czxid, or `None` on timeout (the node is then deleted).
pub(crate) async fn contend(
    zk: &Client,
    dir: &str,
    kind: &str,
    blocker: Blocker,
    deadline: Option<Instant>,
) -> Result<Option<(String, i64)>, Error> {
    let guid = new_guid();
    let mut cleanup = Cleanup::new(zk, dir, &guid);
    let (path, stat) = create_protected(
        zk,
        dir,
        &guid,
        kind,
        Bytes::new(),
        CreateMode::EphemeralSequential,
    )
    .await?;
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    loop {
        let children = sorted_by_sequence(retry(|| zk.get_children(dir)).await?);
        let me = children
            .iter()
            .position(|c| *c == name)
            // Our ephemeral node is gone while the session lives: someone deleted it.
            .ok_or(Error::NoNode)?;
        let Some(b) = blocker(&children, me) else {
            cleanup.disarm();
            return Ok(Some((path, stat.czxid)));
        };
        let pred = child(dir, &children[b]);
        let (exists, watch) = retry(|| zk.exists_w(&pred)).await?;
        if exists.is_some() && !wait_watch(watch, deadline).await {
            cleanup.run().await?;
            return Ok(None);
        }
    }
}

/// The kind of a contender's node (`lock`, `read`, `write`, ...).
pub(crate) fn kind(name: &str) -> &str {
    kind_of(name).unwrap_or_default()
}

#[derive(Debug)]
struct Hold {
    path: String,
    token: i64,
    guards: usize,
}

#[derive(Debug)]
struct Inner {
    zk: Client,
    dir: String,
    hold: Mutex<Option<Hold>>,
    /// One acquisition at a time per handle, so a handle never queues twice.
    acquiring: tokio::sync::Mutex<()>,
}

/// A handle on the lock at `dir`. Cheap to clone; clones share the hold (re-entrancy
/// is per handle, not per task).
#[derive(Debug, Clone)]
pub struct Lock {
    inner: Arc<Inner>,
}

impl Lock {
    pub fn new(zk: &Client, dir: &str) -> Lock {
        Lock {
            inner: Arc::new(Inner {
                zk: zk.clone(),
                dir: dir.to_string(),
                hold: Mutex::new(None),
                acquiring: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Waits for the lock, up to `timeout` (`None`: for ever). `Ok(None)` on timeout.
    pub async fn acquire(&self, timeout: Option<Duration>) -> Result<Option<LockGuard>, Error> {
        let deadline = super::deadline(timeout);
        let _one = match deadline {
            Some(d) => match tokio::time::timeout_at(d, self.inner.acquiring.lock()).await {
                Ok(g) => g,
                Err(_) => return Ok(None),
            },
            None => self.inner.acquiring.lock().await,
        };
        if let Some(g) = self.reenter() {
            return Ok(Some(g));
        }
        let z = &self.inner.zk;
        let got = contend(z, &self.inner.dir, "lock", blocked_by_predecessor, deadline).await?;
        Ok(got.map(|(path, token)| {
            *self.inner.hold.lock().unwrap() = Some(Hold {
                path: path.clone(),
                token,
                guards: 1,
            });
            LockGuard {
                lock: self.clone(),
                path,
                token,
                released: false,
            }
        }))
    }

    /// Takes the lock only if it is free right now (after queueing once).
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        self.acquire(Some(Duration::ZERO)).await
    }

    fn reenter(&self) -> Option<LockGuard> {
        let mut hold = self.inner.hold.lock().unwrap();
        if self.inner.zk.state().is_terminal() {
            // The hold died with the session; queue again (and fail with the session).
            *hold = None;
        }
        let h = hold.as_mut()?;
        h.guards += 1;
        Some(LockGuard {
            lock: self.clone(),
            path: h.path.clone(),
            token: h.token,
            released: false,
        })
    }

    /// Whether this handle holds the lock.
    pub fn is_held(&self) -> bool {
        self.inner.hold.lock().unwrap().is_some()
    }

    /// Drops one guard; returns the node to delete if it was the last.
    fn leave(&self) -> Option<String> {
        let mut hold = self.inner.hold.lock().unwrap();
        let h = hold.as_mut()?;
        h.guards -= 1;
        if h.guards == 0 {
            hold.take().map(|h| h.path)
        } else {
            None
        }
    }
}

/// Proof of holding the lock. Dropping it releases (in the background); prefer
/// [`LockGuard::release`] to know when the next waiter may go.
#[derive(Debug)]
pub struct LockGuard {
    lock: Lock,
    path: String,
    token: i64,
    released: bool,
}

impl LockGuard {
    /// The fencing token: the lock node's czxid, strictly increasing across holders.
    pub fn fencing_token(&self) -> i64 {
        self.token
    }

    /// The lock node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Resolves when the session is or must be presumed lost: the lock is no longer held.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        super::session_lost(&self.lock.inner.zk)
    }

    /// `Held` now, `Suspended` while the connection is down (stop using the resource
    /// until `Held` again), `Lost` once the session is or may be expired (final; the
    /// next waiter may hold the lock from then on). See [`super::ownership`].
    pub fn ownership(&self) -> impl futures::Stream<Item = super::Ownership> + Send + 'static {
        super::ownership(&self.lock.inner.zk)
    }

    /// Releases this guard; the node is deleted when the last guard of the hold goes.
    pub async fn release(mut self) -> Result<(), Error> {
        self.released = true;
        match self.lock.leave() {
            Some(path) => super::delete_quietly(&self.lock.inner.zk, &path).await,
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            if let Some(path) = self.lock.leave() {
                super::spawn_delete(&self.lock.inner.zk, &path);
            }
        }
    }
}
