//! ZAB atomic broadcast as a pure, deterministic state machine.
//!
//! This crate is the consensus core of zabkeeper: the ZooKeeper Atomic
//! Broadcast protocol (Junqueira, Reed, Serafini, "Zab: High-performance
//! broadcast for primary-backup systems", and ZooKeeper's implementation of
//! it). It never touches a socket, a clock, a disk or a thread. A runtime
//! (the server crate, or the simulation in `sim`) feeds it inputs and
//! executes the [`Action`]s it returns, in order:
//!
//! ```text
//!   start() / tick() / step(from, msg) / propose(data) /
//!   log_durable(zxid) / peer_disconnected(peer)      ──►  Vec<Action>
//! ```
//!
//! Time enters only as ticks, randomness only through the seed given to
//! [`Zab::new`], so every run is reproducible.
//!
//! # Transactions and histories
//!
//! A [`Zxid`] is `(epoch << 32) | counter`. Only the single established
//! leader of an epoch creates zxids of that epoch, counters `1, 2, 3, ...`,
//! appended after the history it had when it was established (its *initial
//! history*). Hence a zxid names a whole history prefix: two servers that
//! both hold zxid `z` agree on everything up to `z`. The synchronisation
//! rule in `leader.rs` relies on that.
//!
//! # Roles and phases
//!
//! A server is [`Role::Looking`], [`Role::Following`] or [`Role::Leading`],
//! and goes through four [`Phase`]s. The transitions live in `node.rs`
//! (`become_looking`, `become_follower`, `become_leader`); each phase's
//! handling has its own file.
//!
//! 1. **Election** (`election.rs`): Fast Leader Election. Votes
//!    `(leader, its last zxid, its current epoch)` are compared by
//!    `(epoch, zxid, id)`; a round counter (logical clock) separates
//!    elections. A server decides once a quorum of its round agrees with its
//!    vote, after a `finalize_ticks` window in which a better vote may still
//!    arrive (skipped when every member agrees). A LOOKING server joins a
//!    running ensemble when a quorum of FOLLOWING/LEADING members answers
//!    with the same leader and that leader itself answers LEADING.
//! 2. **Discovery**: followers send FOLLOWERINFO (accepted epoch); the
//!    leader, once it heard a quorum (itself included), picks
//!    `newEpoch = max(acceptedEpoch) + 1` and sends LEADERINFO. A follower
//!    accepts only an epoch above its accepted epoch (persisting the promise
//!    before it answers), answering ACKEPOCH with its current epoch, last
//!    zxid and the last zxid of every epoch in its history. If a counted
//!    follower is ahead of the leader, the leader goes back to election.
//! 3. **Synchronisation**: the leader persists `currentEpoch = newEpoch` and
//!    brings every follower to its own history: DIFF (missing txns), TRUNC
//!    (drop txns the leader never adopted, then the missing txns) or, when
//!    the follower is behind the `diff_window` of committed txns kept in
//!    memory, SNAP (the runtime sends a snapshot of its state machine, then
//!    the txns after it). NEWLEADER ends the sync; the follower acks it only
//!    once its log is durable and it has persisted `currentEpoch`. When a
//!    quorum, the leader included once its own log is durable, has acked,
//!    the leader is *established*: it delivers its initial history, sends
//!    UPTODATE (with its commit point) and may propose.
//! 4. **Broadcast**: PROPOSAL in zxid order on each follower's FIFO link;
//!    followers ACK cumulatively once durable; the leader delivers and sends
//!    COMMIT (cumulative, hence in zxid order) for the largest zxid durable
//!    on a quorum, its own durability included. Followers deliver on COMMIT.
//!    The leader pings every heartbeat; followers answer.
//!
//! Failure detection: a follower that hears nothing from its leader for
//! `follower_timeout_ticks`, that is not synced within `init_timeout_ticks`,
//! or whose link to the leader breaks (`peer_disconnected`), goes LOOKING.
//! A leader not established within `init_timeout_ticks`, or that has not
//! heard from a quorum of synced followers within `leader_timeout_ticks`,
//! steps down. Any message that does not fit a follower's phase is treated
//! as a protocol error: it goes LOOKING rather than guess.
//!
//! # Invariants
//!
//! Checked over thousands of seeds by the simulation (`sim/invariants/`,
//! one per file) and by the transition tests (`tests.rs`):
//!
//! - at most one established leader per epoch;
//! - every server's applied sequence is a prefix of one common sequence
//!   (agreement, total order), and never goes backwards within an
//!   incarnation (a snapshot always extends what was applied);
//! - a committed txn (delivered anywhere) is in every later leader's
//!   initial history: never lost or reordered, across crashes and restarts
//!   of a minority or of every server;
//! - primary order: within an epoch txns are delivered in proposal order
//!   without gaps, after every delivered txn of earlier epochs;
//! - the core's commit point equals what the runtime applied, `committed <=
//!   last zxid`, `acceptedEpoch >= currentEpoch`;
//! - liveness: after the network heals and crashes stop, a leader is
//!   established and a new proposal is applied everywhere in bounded time.
//!
//! Durability rules the core relies on: nothing is acked (ACK, ACKNEWLEADER)
//! or counted by the leader before `log_durable` reported it; epochs are
//! persisted (`PersistEpochs`) before the message that depends on them.
//!
//! # The runtime's contract
//!
//! See [`Action`]. In short: execute actions in order; `PersistEpochs`,
//! `Truncate` and `InstallSnapshot` are durable before the next action;
//! `Append` is asynchronous and reported through [`Zab::log_durable`] in log
//! order; appends in flight beyond a `Truncate` point, or before an
//! `InstallSnapshot`, are abandoned and never reported; links to peers are
//! FIFO and a broken link is reported with [`Zab::peer_disconnected`]
//! (messages of a broken link must not be delivered after a reconnect).
//! On restart, build the server with [`Zab::new`] from what is on disk:
//! its state machine restarts from the snapshot at `snapshot_zxid`; the
//! logged txns after it are delivered again only once sync says they are
//! committed (after UPTODATE, or at the leader's establishment).
//!
//! # Caveats and decisions
//!
//! - ACKs and COMMITs are cumulative (one zxid covers everything before it)
//!   rather than ZooKeeper's per-zxid packets; FIFO links make it equivalent.
//! - Instead of ZooKeeper's `peerLastZxid`-only sync decision (which has had
//!   TRUNC bugs), ACKEPOCH carries the follower's epoch ends and the leader
//!   computes the exact common prefix (`Zab::sync_point`).
//! - A follower re-sends FOLLOWERINFO every heartbeat until LEADERINFO (the
//!   leader drops it while still LOOKING); a repeat of an already-accepted
//!   epoch is acknowledged but not counted toward the epoch quorum, as in
//!   ZooKeeper.
//! - A leader steps down when a joining follower promised a higher epoch
//!   (it could never join otherwise); ZooKeeper leaves it out until the
//!   next election.
//! - Established members answer LOOKING peers with a canonical vote
//!   `(leader, (epoch, 0), epoch)`, so that late joiners see one vote.
//! - Membership is static (no reconfiguration), there are no observers, and
//!   a follower does not serve reads before UPTODATE.
//! - The zxid counter is 32 bits; `propose` fails with
//!   [`ZabError::CounterExhausted`] when an epoch runs out (a new election is
//!   needed, as in ZooKeeper).

#![warn(missing_docs)]

mod config;
mod election;
mod error;
mod follower;
mod history;
mod leader;
mod message;
mod node;
mod read_index;
mod rng;
mod types;
mod zxid;

#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod tests;

pub use config::Config;
pub use error::ZabError;
pub use message::{Message, PeerState, Vote};
pub use node::Zab;
pub use types::{Action, Persisted, Phase, Role, ServerId, Txn};
pub use zxid::Zxid;
