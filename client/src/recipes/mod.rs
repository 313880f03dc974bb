//! Coordination recipes built on the [`crate::Client`]: locks, a read-write lock,
//! a semaphore, leader election, a queue, barriers, a counter and service discovery.
//!
//! They follow ZooKeeper's published recipes and Curator's hardening of them:
//!
//! * **Ordering comes from sequential nodes.** Contenders create ephemeral-sequential
//!   children; the sequence suffix decides who goes first, so locks are fair, and each
//!   waiter watches only the node it waits on (no herd).
//! * **Lost answers do not leave orphans.** A create whose answer was lost to a
//!   connection failure (`ConnectionLoss`, `OperationTimeout`) may or may not have been
//!   applied. Nodes are therefore named `<guid>-<kind>-<seq>` with a fresh random guid
//!   per attempt ("protected" names, as in Curator); after a lost answer the recipe
//!   looks for a child with its guid before creating again (`create_protected`).
//! * **Cancellation cleans up.** Dropping an `acquire` future deletes the node it may
//!   have created: the clean-up is queued on the same session after the create, so it
//!   sees it (the server answers a session's calls in order).
//! * **Session loss is ownership loss.** Ephemeral nodes go with the session, so a
//!   holder must stop acting as one as soon as the session may be gone. [`ownership`]
//!   tells it as Curator's `ConnectionState` does: [`Ownership::Suspended`] when the
//!   connection drops (the session may live on: wait, do not act), back to
//!   [`Ownership::Held`] if it is reattached in time, [`Ownership::Lost`] (final) on
//!   `Expired`/`Closed` or once the ensemble may have expired the session: nine tenths
//!   of a session timeout after the ensemble was last known to hear it (the send time of the
//!   newest answered request), not after the loss was noticed, so the holder hears
//!   `Lost` before the ensemble can give its node's place to anyone else.
//!   [`session_lost`] is the `Lost` alone.
//!
//! Timeouts are `Option<Duration>` (`None` waits for ever) and a timed-out wait returns
//! `Ok(None)`/`Ok(false)` rather than an error; every other failure is the client's
//! [`Error`].

mod barrier;
mod counter;
mod discovery;
mod election;
mod lock;
mod queue;
mod rwlock;
mod semaphore;

pub use barrier::{Barrier, DoubleBarrier};
pub use counter::Counter;
pub use discovery::{Instance, Registration, ServiceCache, ServiceDiscovery};
pub use election::{Candidate, LeaderElection, LeaderInfo, Role};
pub use lock::{Lock, LockGuard};
pub use queue::{Queue, DEFAULT_PRIORITY};
pub use rwlock::{ReadWriteLock, RwGuard};
pub use semaphore::{Permit, Semaphore};

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::{Client, CreateMode, CreateOptions, Error, OneshotWatch, SessionState, Stat};

/// A fresh random name tag: 32 hex digits, no `-` (names are split on `-`).
pub(crate) fn new_guid() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The 10-digit sequence suffix of a sequential node's name.
pub(crate) fn sequence(name: &str) -> Option<u64> {
    let tail = name.get(name.len().checked_sub(10)?..)?;
    if tail.bytes().all(|b| b.is_ascii_digit()) {
        tail.parse().ok()
    } else {
        None
    }
}

/// The children that carry a sequence suffix, in sequence order.
pub(crate) fn sorted_by_sequence(children: Vec<String>) -> Vec<String> {
    let mut v: Vec<(u64, String)> = children
        .into_iter()
        .filter_map(|c| sequence(&c).map(|s| (s, c)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, c)| c).collect()
}

/// The `<kind>` of a protected name `<guid>-<kind>-<seq>`.
pub(crate) fn kind_of(name: &str) -> Option<&str> {
    let (_, rest) = name.split_once('-')?;
    let (kind, _) = rest.rsplit_once('-')?;
    Some(kind)
}

/// `dir/name`.
pub(crate) fn child(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

pub(crate) fn is_uncertain(e: &Error) -> bool {
    matches!(e, Error::ConnectionLoss | Error::OperationTimeout)
}

/// Repeats an idempotent call (a read, a watch) while its answer is lost to a
/// connection failure: the client reconnects (possibly to another member) meanwhile, so
/// a recipe rides through a member's failure instead of failing its caller.
pub(crate) async fn retry<T, F, Fut>(mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        match call().await {
            Err(e) if is_uncertain(&e) => {
                tracing::debug!(error = %e, "retrying a read");
            }
            r => return r,
        }
    }
}

/// Creates `path` and its missing ancestors as persistent nodes; existing ones are fine.
pub(crate) async fn ensure_path(zk: &Client, path: &str) -> Result<(), Error> {
    if zk.exists(path).await?.is_some() {
        return Ok(());
    }
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        loop {
            match zk.create(&at, Bytes::new(), CreateMode::Persistent).await {
                Ok(_) | Err(Error::NodeExists) => break,
                // Applied or not, the next attempt settles it (NodeExists).
                Err(e) if is_uncertain(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Children of `dir` whose name starts with `<guid>-`.
pub(crate) async fn find_protected(
    zk: &Client,
    dir: &str,
    guid: &str,
) -> Result<Vec<String>, Error> {
    let prefix = format!("{guid}-");
    Ok(zk
        .get_children(dir)
        .await?
        .into_iter()
        .filter(|c| c.starts_with(&prefix))
        .collect())
}

/// Creates a sequential node `dir/<guid>-<kind>-<seq>`, creating `dir` if missing, and
/// returns its path and Stat. After an answer lost to a connection failure it looks the
/// node up by its guid before trying again, so at most one node is ever created.
pub(crate) async fn create_protected(
    zk: &Client,
    dir: &str,
    guid: &str,
    kind: &str,
    data: Bytes,
    mode: CreateMode,
) -> Result<(String, Stat), Error> {
    let prefix = child(dir, &format!("{guid}-{kind}-"));
    loop {
        match zk
            .create_with(&prefix, data.clone(), CreateOptions::new(mode))
            .await
        {
            Ok(r) => return Ok(r),
            Err(Error::NoNode) => ensure_path(zk, dir).await?,
            Err(e) if is_uncertain(&e) => loop {
                match find_protected(zk, dir, guid).await {
                    Ok(found) => match found.first() {
                        Some(name) => {
                            let path = child(dir, name);
                            if let Some(stat) = zk.exists(&path).await? {
                                return Ok((path, stat));
                            }
                            break;
                        }
                        None => break,
                    },
                    Err(e) if is_uncertain(&e) => continue,
                    Err(Error::NoNode) => break,
                    Err(e) => return Err(e),
                }
            },
            Err(e) => return Err(e),
        }
    }
}

/// Deletes a node, ignoring `NoNode`; retries while the outcome is uncertain.
pub(crate) async fn delete_quietly(zk: &Client, path: &str) -> Result<(), Error> {
    loop {
        match zk.delete(path, None).await {
            Ok(()) | Err(Error::NoNode) => return Ok(()),
            Err(e) if is_uncertain(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Deletes every child of `dir` tagged with `guid` (the nodes of one abandoned attempt).
pub(crate) async fn delete_protected(zk: &Client, dir: &str, guid: &str) -> Result<(), Error> {
    let found = loop {
        match find_protected(zk, dir, guid).await {
            Ok(f) => break f,
            Err(Error::NoNode) => return Ok(()),
            Err(e) if is_uncertain(&e) => continue,
            Err(e) => return Err(e),
        }
    };
    for name in found {
        delete_quietly(zk, &child(dir, &name)).await?;
    }
    Ok(())
}

/// Removes an attempt's nodes when dropped while armed: the clean-up for a cancelled
/// or failed acquisition. It runs on a spawned task (drop cannot wait), queued on the
/// same session after the create it undoes.
pub(crate) struct Cleanup {
    zk: Client,
    dir: String,
    guid: String,
    armed: bool,
}

impl Cleanup {
    pub(crate) fn new(zk: &Client, dir: &str, guid: &str) -> Cleanup {
        Cleanup {
            zk: zk.clone(),
            dir: dir.to_string(),
            guid: guid.to_string(),
            armed: true,
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Cleans up now and waits for it.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        self.armed = false;
        delete_protected(&self.zk, &self.dir, &self.guid).await
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (zk, dir, guid) = (self.zk.clone(), self.dir.clone(), self.guid.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = delete_protected(&zk, &dir, &guid).await {
                    tracing::debug!(error = %e, dir, "clean-up of an abandoned node failed");
                }
            });
        }
    }
}

/// Deletes a node from a spawned task (for `Drop` impls).
pub(crate) fn spawn_delete(zk: &Client, path: &str) {
    let (zk, path) = (zk.clone(), path.to_string());
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            if let Err(e) = delete_quietly(&zk, &path).await {
                tracing::debug!(error = %e, path, "release failed");
            }
        });
    }
}

/// What the holder of an ephemeral node (a lock, a permit, a leadership) can know
/// about it; see [the module doc](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Connected: the node, and what it stands for, is ours.
    Held,
    /// The connection is down and the session may or may not live: act as if not
    /// holding until `Held` comes back.
    Suspended,
    /// The session is gone or must be presumed gone: someone else may hold it now.
    /// Final.
    Lost,
}

/// The session's [`Ownership`] now, then each change; ends after `Lost`.
///
/// `Lost` comes on `Expired` or `Closed`, or while disconnected at the moment the
/// ensemble may expire the session (see `session.rs` on the lease): nine tenths of a
/// session timeout after the send time of the newest request it answered, which is
/// earlier than the ensemble's own deadline (a tenth kept for clock-rate differences
/// and late wake-ups). Holding this stream does not keep the session
/// open.
pub fn ownership(zk: &Client) -> impl Stream<Item = Ownership> + Send + 'static {
    let shared = zk.shared();
    let states = shared.state.subscribe();
    futures::stream::unfold(Some((shared, states, None::<Ownership>)), |st| async move {
        let (shared, mut states, last) = st?;
        loop {
            let state = *states.borrow_and_update();
            let now = match state {
                SessionState::Connected => Ownership::Held,
                SessionState::Expired | SessionState::Closed => Ownership::Lost,
                SessionState::Disconnected | SessionState::Connecting => {
                    if Instant::now() >= shared.may_expire_at() {
                        Ownership::Lost
                    } else {
                        Ownership::Suspended
                    }
                }
            };
            if last != Some(now) {
                let next = (now != Ownership::Lost).then_some((shared, states, Some(now)));
                return Some((now, next));
            }
            if now == Ownership::Suspended {
                // Wake at the deadline if nothing changes first.
                let deadline = shared.may_expire_at();
                let _ = tokio::time::timeout_at(deadline, states.changed()).await;
            } else if states.changed().await.is_err() {
                return Some((Ownership::Lost, None));
            }
        }
    })
}

/// Resolves when the session is, or must be presumed, gone: [`Ownership::Lost`].
/// Ephemeral nodes (locks, leadership, registrations) must be presumed lost from then.
pub fn session_lost(zk: &Client) -> impl std::future::Future<Output = ()> + Send + 'static {
    let states = ownership(zk);
    async move {
        let mut states = std::pin::pin!(states);
        while let Some(o) = states.next().await {
            if o == Ownership::Lost {
                return;
            }
        }
    }
}

/// `now + timeout`, or `None` for no limit.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Waits for a watch until the deadline; `false` if the deadline passed first.
pub(crate) async fn wait_watch(watch: OneshotWatch, deadline: Option<Instant>) -> bool {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, watch).await.is_ok(),
        None => {
            watch.await;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(sequence("abc-lock-0000000042"), Some(42));
        assert_eq!(sequence("lock-42"), None);
        assert_eq!(sequence("ready"), None);
        assert_eq!(kind_of("0123abcd-read-0000000001"), Some("read"));
        assert_eq!(kind_of("ready"), None);
        let sorted = sorted_by_sequence(vec![
            "b-write-0000000003".into(),
            "ready".into(),
            "a-read-0000000010".into(),
            "c-read-0000000001".into(),
        ]);
        assert_eq!(
            sorted,
            vec![
                "c-read-0000000001",
                "b-write-0000000003",
                "a-read-0000000010"
            ]
        );
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/x", "a"), "/x/a");
        let g = new_guid();
        assert_eq!(g.len(), 32);
        assert!(!g.contains('-'));
        assert_ne!(g, new_guid());
    }
}
