//! A distributed FIFO queue with optional priorities, many producers and consumers.
//!
//! Items are persistent-sequential nodes `<dir>/items/p<prio>-<guid>-<seq>`, taken in
//! (priority, sequence) order: lower priority numbers first, FIFO within a priority.
//! The guid makes `put` safe to retry after a lost answer (it looks the item up before
//! creating it again), so an item is never enqueued twice.
//!
//! **Exactly once.** A consumer takes an item with one atomic multi: delete the item and
//! create an ephemeral receipt `<dir>/taken/<item>` owned by its session. Only one
//! consumer's multi can succeed. If the answer is lost (`ConnectionLoss`), the receipt
//! tells whether this session took it: receipt present and ours means taken, item
//! still there means try again, neither means another consumer won. An item whose
//! receipt is ours is this consumer's even if its session expires later; an item not
//! yet taken stays for the others. The receipt is removed once the item is handed out.
//!
//! **Blocking take** lists the items with a child watch and, if none can be taken,
//! waits for the watch (no polling).
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::Queue};
//! # use std::time::Duration;
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let q = Queue::new(&zk, "/queues/jobs");
//! q.put("job 1").await?;
//! q.put_with_priority("urgent", 0).await?;
//! assert_eq!(q.take().await?.as_deref(), Some(&b"urgent"[..]));
//! let next = q.take_timeout(Some(Duration::from_secs(1))).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;

use super::{child, ensure_path, find_protected, new_guid, retry, sequence, wait_watch};
use crate::{Client, CreateMode, Error, Op};

/// Priority of [`Queue::put`]; priorities run from 0 (first) to 999.
pub const DEFAULT_PRIORITY: u16 = 500;

/// Handle on the queue at `dir`.
#[derive(Debug, Clone)]
pub struct Queue {
    zk: Client,
    items: String,
    taken: String,
}

fn order_key(name: &str) -> Option<(u16, u64)> {
    let prio = name.strip_prefix('p')?.get(..3)?.parse().ok()?;
    Some((prio, sequence(name)?))
}

fn is_uncertain(e: &Error) -> bool {
    matches!(e, Error::ConnectionLoss | Error::OperationTimeout)
}

enum Attempt {
    Got(Bytes),
    Gone,
}

impl Queue {
    pub fn new(zk: &Client, dir: &str) -> Queue {
        Queue {
            zk: zk.clone(),
            items: child(dir, "items"),
            taken: child(dir, "taken"),
        }
    }

    /// Enqueues with [`DEFAULT_PRIORITY`].
    pub async fn put(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.put_with_priority(data, DEFAULT_PRIORITY).await
    }

    /// Enqueues; lower `priority` is taken first (0..=999).
    pub async fn put_with_priority(
        &self,
        data: impl Into<Bytes>,
        priority: u16,
    ) -> Result<(), Error> {
        if priority > 999 {
            return Err(Error::BadArguments);
        }
        let data = data.into();
        let guid = new_guid();
        let prefix = child(&self.items, &format!("p{priority:03}-{guid}-"));
        let tag = format!("p{priority:03}-{guid}");
        loop {
            match self
                .zk
                .create(&prefix, data.clone(), CreateMode::PersistentSequential)
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::NoNode) => {
                    ensure_path(&self.zk, &self.items).await?;
                    ensure_path(&self.zk, &self.taken).await?;
                }
                Err(e) if is_uncertain(&e) => {
                    // Look for the item by its guid before creating it again.
                    let found = loop {
                        match find_protected(&self.zk, &self.items, &tag).await {
                            Ok(f) => break f,
                            Err(e) if is_uncertain(&e) => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    if !found.is_empty() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The items waiting, in the order they will be taken.
    async fn list(&self, watch: bool) -> Result<(Vec<String>, Option<crate::OneshotWatch>), Error> {
        let (names, w) = if watch {
            loop {
                match retry(|| self.zk.get_children_w(&self.items)).await {
                    Ok((n, w)) => break (n, Some(w)),
                    Err(Error::NoNode) => {
                        ensure_path(&self.zk, &self.items).await?;
                        ensure_path(&self.zk, &self.taken).await?;
                        // A NodeExists answer can come before the other session's
                        // create is visible to reads (see the report); look again.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        } else {
            match retry(|| self.zk.get_children(&self.items)).await {
                Ok(n) => (n, None),
                Err(Error::NoNode) => (Vec::new(), None),
                Err(e) => return Err(e),
            }
        };
        let mut keyed: Vec<((u16, u64), String)> = names
            .into_iter()
            .filter_map(|n| order_key(&n).map(|k| (k, n)))
            .collect();
        keyed.sort();
        Ok((keyed.into_iter().map(|(_, n)| n).collect(), w))
    }

    /// Number of items waiting.
    pub async fn len(&self) -> Result<usize, Error> {
        Ok(self.list(false).await?.0.len())
    }

    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Takes the head item if there is one, without waiting.
    pub async fn take(&self) -> Result<Option<Bytes>, Error> {
        let (names, _) = self.list(false).await?;
        self.take_first(&names).await
    }

    /// Takes the head item, waiting up to `timeout` (`None`: for ever) for one to come.
    /// `Ok(None)` on timeout.
    pub async fn take_timeout(&self, timeout: Option<Duration>) -> Result<Option<Bytes>, Error> {
        let deadline = super::deadline(timeout);
        loop {
            let (names, watch) = self.list(true).await?;
            if let Some(data) = self.take_first(&names).await? {
                return Ok(Some(data));
            }
            if let Some(w) = watch {
                if names.is_empty() && !wait_watch(w, deadline).await {
                    return Ok(None);
                }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    async fn take_first(&self, names: &[String]) -> Result<Option<Bytes>, Error> {
        for name in names {
            if let Attempt::Got(data) = self.try_take(name).await? {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// Tries to take one item: exactly one consumer's multi succeeds.
    async fn try_take(&self, name: &str) -> Result<Attempt, Error> {
        let item = child(&self.items, name);
        let receipt = child(&self.taken, name);
        let data = match retry(|| self.zk.get_data(&item)).await {
            Ok((d, _)) => d,
            Err(Error::NoNode) => return Ok(Attempt::Gone),
            Err(e) => return Err(e),
        };
        loop {
            let ops = vec![
                Op::delete(&item, None),
                Op::create(&receipt, Bytes::new(), CreateMode::Ephemeral),
            ];
            match self.zk.multi(ops).await {
                Ok(_) => break,
                Err(Error::Multi { .. }) => return Ok(Attempt::Gone),
                Err(e) if is_uncertain(&e) => {
                    // Did our multi apply? The receipt tells, read after a sync: the
                    // member we reconnected to may not have applied our multi yet,
                    // and "no receipt, no item" read there would wrongly say another
                    // consumer won (the item would be lost; seen in the power-loss
                    // fault test).
                    super::retry(|| self.zk.sync(&self.taken)).await?;
                    match self.zk.exists(&receipt).await {
                        Ok(Some(s)) if s.ephemeral_owner == self.zk.session_id() => break,
                        Ok(Some(_)) => return Ok(Attempt::Gone),
                        Ok(None) => match self.zk.exists(&item).await {
                            Ok(Some(_)) => continue,
                            Ok(None) => return Ok(Attempt::Gone),
                            Err(e) if is_uncertain(&e) => continue,
                            Err(e) => return Err(e),
                        },
                        Err(e) if is_uncertain(&e) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if let Err(e) = super::delete_quietly(&self.zk, &receipt).await {
            // The receipt is ephemeral: it goes with the session anyway.
            tracing::debug!(error = %e, receipt, "receipt not removed");
        }
        Ok(Attempt::Got(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_sort_by_priority_then_sequence() {
        assert_eq!(order_key("p007-abc-0000000012"), Some((7, 12)));
        assert_eq!(order_key("junk"), None);
        let mut v = [
            ("p500-a-0000000001", order_key("p500-a-0000000001")),
            ("p000-b-0000000009", order_key("p000-b-0000000009")),
            ("p500-c-0000000002", order_key("p500-c-0000000002")),
        ];
        v.sort_by_key(|x| x.1);
        let names: Vec<_> = v.iter().map(|x| x.0).collect();
        assert_eq!(
            names,
            vec![
                "p000-b-0000000009",
                "p500-a-0000000001",
                "p500-c-0000000002"
            ]
        );
    }
}
