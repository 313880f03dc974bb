//! Barriers (ZooKeeper's barrier and double-barrier recipes).
//!
//! [`Barrier`]: while the node `<path>` exists the barrier is up; waiters watch it and
//! go when it is deleted. Setting and removing are idempotent.
//!
//! [`DoubleBarrier`]: `count` participants `enter` together and `leave` together. Each
//! entrant creates an ephemeral `<dir>/<guid>` and counts the participants; the one who
//! sees `count` of them creates `<dir>/ready`, which everyone else awaits with an
//! exists watch. Leaving follows the recipe that avoids a herd: the lowest-named
//! participant waits for the highest to go, every other one deletes its node and
//! waits for the lowest; the lowest leaves last and removes `ready` so the barrier can
//! be used again. A participant whose session dies leaves implicitly (its node is
//! ephemeral); if a round is abandoned before the last one leaves, `ready` stays and
//! the next round misbehaves (some entrants pass early, others wait for its removal):
//! remove `<dir>/ready` before reusing an abandoned barrier.
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::{Barrier, DoubleBarrier}};
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let gate = Barrier::new(&zk, "/barriers/start");
//! gate.set().await?;              // coordinator
//! gate.wait(None).await?;         // workers block until `gate.remove()`
//!
//! let round = DoubleBarrier::new(&zk, "/barriers/round", 3);
//! round.enter(None).await?;       // returns when 3 have entered
//! // ... compute ...
//! round.leave(None).await?;       // returns when all 3 have left
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::{child, ensure_path, new_guid, retry, wait_watch};
use crate::{Client, CreateMode, Error, EventType};

/// A single barrier at `path`.
#[derive(Debug, Clone)]
pub struct Barrier {
    zk: Client,
    path: String,
}

impl Barrier {
    pub fn new(zk: &Client, path: &str) -> Barrier {
        Barrier {
            zk: zk.clone(),
            path: path.to_string(),
        }
    }

    /// Raises the barrier (creates the node; fine if it exists).
    pub async fn set(&self) -> Result<(), Error> {
        ensure_path(&self.zk, &self.path).await
    }

    /// Lowers the barrier, releasing the waiters.
    pub async fn remove(&self) -> Result<(), Error> {
        super::delete_quietly(&self.zk, &self.path).await
    }

    /// Waits until the barrier is down; `Ok(false)` on timeout.
    pub async fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = super::deadline(timeout);
        loop {
            let (exists, w) = retry(|| self.zk.exists_w(&self.path)).await?;
            if exists.is_none() {
                return Ok(true);
            }
            if !wait_watch(w, deadline).await {
                return Ok(false);
            }
        }
    }
}

const READY: &str = "ready";

/// A double barrier for `count` participants at `dir`. One handle per participant.
#[derive(Debug)]
pub struct DoubleBarrier {
    zk: Client,
    dir: String,
    count: usize,
    me: String,
}

impl DoubleBarrier {
    pub fn new(zk: &Client, dir: &str, count: usize) -> DoubleBarrier {
        DoubleBarrier {
            zk: zk.clone(),
            dir: dir.to_string(),
            count,
            me: new_guid(),
        }
    }

    async fn participants(&self) -> Result<Vec<String>, Error> {
        let mut v: Vec<String> = retry(|| self.zk.get_children(&self.dir))
            .await?
            .into_iter()
            .filter(|c| c != READY)
            .collect();
        v.sort();
        Ok(v)
    }

    /// Joins and waits until `count` participants have; `Ok(false)` on timeout (the
    /// participant then withdraws).
    pub async fn enter(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = super::deadline(timeout);
        let ready = child(&self.dir, READY);
        let me = child(&self.dir, &self.me);
        ensure_path(&self.zk, &self.dir).await?;
        let (_, w) = retry(|| self.zk.exists_w(&ready)).await?;
        loop {
            match self
                .zk
                .create(&me, Bytes::new(), CreateMode::Ephemeral)
                .await
            {
                // The guid is ours alone: NodeExists means an earlier attempt applied.
                Ok(_) | Err(Error::NodeExists) => break,
                Err(Error::ConnectionLoss | Error::OperationTimeout) => continue,
                Err(e) => return Err(e),
            }
        }
        if self.participants().await?.len() >= self.count {
            match self
                .zk
                .create(&ready, Bytes::new(), CreateMode::Persistent)
                .await
            {
                Ok(_) | Err(Error::NodeExists) => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        // Ready may already exist (the watch was set before we joined) and may even be
        // gone again by the time we look, so the creation event itself is the signal.
        let mut w = w;
        loop {
            let done = match deadline {
                Some(d) => tokio::time::timeout_at(d, &mut w).await.ok(),
                None => Some((&mut w).await),
            };
            match done {
                None => {
                    super::delete_quietly(&self.zk, &me).await?;
                    return Ok(false);
                }
                Some(ev) if ev.event_type == EventType::NodeCreated => return Ok(true),
                Some(ev) if ev.event_type == EventType::None => {
                    return Err(Error::SessionExpired);
                }
                Some(_) => {
                    let (exists, nw) = retry(|| self.zk.exists_w(&ready)).await?;
                    if exists.is_some() {
                        return Ok(true);
                    }
                    w = nw;
                }
            }
        }
    }

    /// Leaves and waits until every participant has; `Ok(false)` on timeout.
    pub async fn leave(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = super::deadline(timeout);
        let me = child(&self.dir, &self.me);
        loop {
            let ps = self.participants().await?;
            let i_am_in = ps.contains(&self.me);
            if ps.is_empty() || (i_am_in && ps.len() == 1) {
                if i_am_in {
                    super::delete_quietly(&self.zk, &me).await?;
                }
                super::delete_quietly(&self.zk, &child(&self.dir, READY)).await?;
                return Ok(true);
            }
            let target = if i_am_in && ps[0] == self.me {
                ps.last().cloned()
            } else {
                if i_am_in {
                    super::delete_quietly(&self.zk, &me).await?;
                }
                ps.iter().find(|p| **p != self.me).cloned()
            };
            let Some(target) = target else { continue };
            let target = child(&self.dir, &target);
            let (exists, w) = retry(|| self.zk.exists_w(&target)).await?;
            if exists.is_some() && !wait_watch(w, deadline).await {
                return Ok(false);
            }
        }
    }
}
