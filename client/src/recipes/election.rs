//! Leader election (ZooKeeper's election recipe).
//!
//! Each candidate creates an ephemeral-sequential node `<dir>/<guid>-n-<seq>` holding
//! its payload; the lowest sequence is the leader. A follower watches only the
//! candidate just ahead of it, so a leader's departure wakes one process. Leadership
//! ends when the leader resigns (deletes its node), its node is deleted, or its session
//! ends; in the last case the ensemble deletes the node when it expires the session,
//! and the next candidate takes over within the session timeout.
//!
//! A background task follows the candidate's role and publishes it ([`Role`]); the
//! former leader hears [`Role::Lost`] as soon as its session is or must be presumed
//! gone ([`super::session_lost`]), at the latest one session timeout after its last
//! contact, which is when the ensemble lets the next candidate lead.
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::{LeaderElection, Role}};
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let election = LeaderElection::new(&zk, "/election/scheduler");
//! let mut me = election.join("host-a:8080").await?;
//! if me.wait_for(Role::Leader, None).await {
//!     println!("leading");
//!     me.wait_for(Role::Lost, None).await; // resigned, deleted or session gone
//! }
//! let who = election.leader().await?; // anyone can ask
//! println!("{:?}", who.map(|l| l.payload));
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{child, create_protected, new_guid, retry, session_lost, sorted_by_sequence};
use crate::{Client, CreateMode, Error};

/// A candidate's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waiting behind another candidate.
    Follower,
    Leader,
    /// Out of the election: resigned, node deleted, or session lost. Final.
    Lost,
}

/// The current leader as anyone can read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader's node name (unique per candidacy).
    pub id: String,
    pub payload: Bytes,
}

/// Handle on the election at `dir`.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    zk: Client,
    dir: String,
}

impl LeaderElection {
    pub fn new(zk: &Client, dir: &str) -> LeaderElection {
        LeaderElection {
            zk: zk.clone(),
            dir: dir.to_string(),
        }
    }

    /// The current leader, or `None` if there are no candidates.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, Error> {
        loop {
            let children = match retry(|| self.zk.get_children(&self.dir)).await {
                Ok(c) => sorted_by_sequence(c),
                Err(Error::NoNode) => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some(first) = children.into_iter().next() else {
                return Ok(None);
            };
            let path = child(&self.dir, &first);
            match retry(|| self.zk.get_data(&path)).await {
                Ok((payload, _)) => return Ok(Some(LeaderInfo { id: first, payload })),
                // Left between the two reads: look again.
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Enters the election with `payload`.
    pub async fn join(&self, payload: impl Into<Bytes>) -> Result<Candidate, Error> {
        let guid = new_guid();
        let (path, _) = create_protected(
            &self.zk,
            &self.dir,
            &guid,
            "n",
            payload.into(),
            CreateMode::EphemeralSequential,
        )
        .await?;
        let (tx, rx) = watch::channel(Role::Follower);
        let task = tokio::spawn(follow(self.zk.clone(), self.dir.clone(), path.clone(), tx));
        Ok(Candidate {
            zk: self.zk.clone(),
            path,
            role: rx,
            task,
            resigned: false,
        })
    }
}

/// Follows one candidacy until it ends, publishing the role.
async fn follow(zk: Client, dir: String, path: String, tx: watch::Sender<Role>) {
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    let lost = session_lost(&zk);
    tokio::pin!(lost);
    loop {
        let step = async {
            let children = sorted_by_sequence(zk.get_children(&dir).await?);
            let Some(me) = children.iter().position(|c| *c == name) else {
                return Ok::<_, Error>(false);
            };
            // The leader watches its own node (deleted by an operator), a follower the
            // candidate ahead of it.
            let target = if me == 0 { &name } else { &children[me - 1] };
            let (exists, w) = zk.exists_w(&child(&dir, target)).await?;
            if me == 0 {
                tx.send_replace(Role::Leader);
            }
            if exists.is_some() {
                w.await;
            }
            Ok(true)
        };
        tokio::select! {
            _ = &mut lost => break,
            r = step => match r {
                Ok(true) => {}
                Ok(false) | Err(Error::SessionExpired | Error::Closed) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "election step failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tx.send_replace(Role::Lost);
}

/// One candidacy. Dropping it resigns (in the background).
#[derive(Debug)]
pub struct Candidate {
    zk: Client,
    path: String,
    role: watch::Receiver<Role>,
    task: JoinHandle<()>,
    resigned: bool,
}

impl Candidate {
    /// This candidacy's node name (what [`LeaderInfo::id`] shows when it leads).
    pub fn id(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Waits for the next role change and returns the new role (`Lost` once final).
    pub async fn changed(&mut self) -> Role {
        if self.role.changed().await.is_err() {
            return Role::Lost;
        }
        *self.role.borrow_and_update()
    }

    /// Waits until the role is `want` (or `Lost`, which is final) or the timeout
    /// passes; whether the role is `want`.
    pub async fn wait_for(&mut self, want: Role, timeout: Option<Duration>) -> bool {
        let wait = self.role.wait_for(|r| *r == want || *r == Role::Lost);
        let r = match timeout {
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .ok()
                .and_then(Result::ok),
            None => wait.await.ok(),
        };
        matches!(r, Some(r) if *r == want)
    }

    /// Leaves the election (gives up leadership if held).
    pub async fn resign(mut self) -> Result<(), Error> {
        self.resigned = true;
        self.task.abort();
        super::delete_quietly(&self.zk, &self.path).await
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if !self.resigned {
            self.task.abort();
            super::spawn_delete(&self.zk, &self.path);
        }
    }
}
