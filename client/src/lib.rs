//! zabkeeper's async Rust client.
//!
//! A [`Client`] is a handle on one session with a zabkeeper ensemble. The session lives
//! in a background tokio task that owns the single TCP connection (its life cycle is
//! described in `session.rs`): calls from any number of clones are pipelined on that connection
//! and matched to their answers by xid; the server answers a session's calls in the
//! order they were sent, and a watch notification always arrives before the answer to
//! any later call that could see the change behind it.
//!
//! Guarantees the client keeps:
//! * **Time never goes backwards**: the highest zxid seen ([`Client::last_zxid`]) is sent
//!   when reconnecting; a member behind it refuses and another is tried.
//! * **Watches survive reconnects**: they are re-registered with `SetWatches` before any
//!   other call on the new connection, so a change made while disconnected still fires.
//! * **Uncertain outcomes are reported as such**: `ConnectionLoss` and `OperationTimeout`
//!   mean a write may or may not have been applied.
//!
//! Timeouts: a call not answered within [`ConnectOptions::request_timeout`] fails with
//! `OperationTimeout` but the connection is kept (a slow answer is not a dead server; the
//! late answer is dropped). A dead connection is detected by silence: nothing received for
//! two thirds of the session timeout while pings go out every third. That choice differs
//! from ZooKeeper's Java client, which has no per-call timeout.
//!
//! ```no_run
//! use zabkeeper_client::{AddWatchMode, Client, ConnectOptions, CreateMode, Error};
//! use futures::StreamExt;
//!
//! # async fn demo() -> Result<(), Error> {
//! let zk = Client::connect("127.0.0.1:2281,127.0.0.1:2282", ConnectOptions::default()).await?;
//! zk.create("/app", "config v1", CreateMode::Persistent).await?;
//! let ((data, stat), changed) = zk.get_data_w("/app").await?;
//! println!("{} at version {}", String::from_utf8_lossy(&data), stat.version);
//!
//! zk.set_data("/app", "config v2", Some(stat.version)).await?;
//! let event = changed.await; // NodeDataChanged on /app
//! println!("{:?} {}", event.event_type, event.path);
//!
//! let mut tree = zk.add_watch("/app", AddWatchMode::PersistentRecursive).await?;
//! zk.create("/app/worker-", "", CreateMode::EphemeralSequential).await?;
//! if let Some(event) = tree.next().await {
//!     println!("{:?} {}", event.event_type, event.path);
//! }
//! match zk.delete("/app", None).await {
//!     Err(Error::NotEmpty) => println!("still has children"),
//!     other => other?,
//! }
//! zk.close().await
//! # }
//! ```

mod cache;
mod change_watch;
mod client;
mod connection;
mod error;
mod inflight;
mod options;
pub mod recipes;
mod session;
mod types;
mod watches;

pub use cache::CacheStats;
pub use change_watch::{ChangeEvent, ChangeStream};
pub use client::Client;
pub use error::Error;
pub use options::{ConnectOptions, DEFAULT_PORT};
pub use types::{
    Acl, AddWatchMode, CreateMode, CreateOptions, Op, OpResult, ReadOp, ReadResult, SessionState,
    Stat, WatchedEvent, WatcherType,
};
pub use watches::{OneshotWatch, PersistentWatch};
pub use zabkeeper_proto::{ErrorCode, EventType, KeeperState};
