//! The values exchanged between the core and its runtime.

use bytes::Bytes;

use crate::{Message, Zxid};

/// A member id (ZooKeeper's `myid`).
pub type ServerId = u64;

/// A transaction: a zxid and an opaque payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// Its position in the total order.
    pub zxid: Zxid,
    /// Opaque to zab.
    pub data: Bytes,
}

/// What a server had durably when it (re)started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    /// The epoch this server promised (LEADERINFO accepted).
    pub accepted_epoch: u32,
    /// The epoch of the last leader this server synced with (NEWLEADER).
    pub current_epoch: u32,
    /// The lease mark ([`Action::PersistLeaseMark`]): set, this server may have
    /// acked lease rounds shortly before it stopped, and keeps that promise
    /// again for `lease_ticks + 1` ticks after it starts.
    pub lease_mark: bool,
    /// The zxid the runtime's state machine snapshot covers.
    pub snapshot_zxid: Zxid,
    /// Durable transactions after the snapshot, in order.
    pub log: Vec<Txn>,
}

/// A server's role.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Electing a leader.
    Looking,
    /// Following `leader`.
    Following {
        /// The leader.
        leader: crate::ServerId,
    },
    /// Leading.
    Leading,
}

/// A server's phase in the protocol.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Fast Leader Election.
    Election,
    /// Agreeing on the new epoch.
    Discovery,
    /// Bringing followers to the leader's history.
    Synchronisation,
    /// Proposing and committing.
    Broadcast,
}

/// An instruction for the runtime, executed in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send a message to a peer (FIFO per peer link).
    Send {
        /// The peer.
        to: ServerId,
        /// The message.
        msg: Message,
    },
    /// Durably store both epochs before executing the next action.
    PersistEpochs {
        /// The accepted epoch.
        accepted_epoch: u32,
        /// The current epoch.
        current_epoch: u32,
    },
    /// Durably store the lease mark before executing the next action: set
    /// before the first ack of a lease round, cleared once the promise it made
    /// has run out (see `read_index.rs`).
    PersistLeaseMark {
        /// The mark.
        set: bool,
    },
    /// Append to the log, asynchronously; report with `Zab::log_durable`.
    Append(Vec<Txn>),
    /// Durably drop log entries with zxid > `after` before the next action.
    /// Appends still in flight beyond `after` are abandoned: their durability
    /// must never be reported.
    Truncate {
        /// Keep up to here.
        after: Zxid,
    },
    /// Apply these committed transactions to the state machine (strictly
    /// increasing zxids, each once per incarnation).
    Deliver(Vec<Txn>),
    /// Send `Message::Snapshot { zxid, data }` to `to`, built from the state
    /// machine, which at this point of the action order has applied exactly
    /// up to `zxid`.
    SendSnapshot {
        /// The peer.
        to: ServerId,
        /// The zxid the snapshot covers.
        zxid: Zxid,
    },
    /// Replace the state machine with `data` and reset the log to start after
    /// `zxid`, durably, before the next action; abandon in-flight appends.
    InstallSnapshot {
        /// The zxid the snapshot covers.
        zxid: Zxid,
        /// The snapshot.
        data: Bytes,
    },
    /// The role changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The server's current epoch at the change.
        epoch: u32,
    },
    /// Leader: may now propose. Follower: synced (UPTODATE), may serve.
    Established,
    /// The linearizable read `id` (from [`crate::Zab::read_index`]) may be
    /// served once the state machine has applied up to `zxid`: leadership was
    /// confirmed after the read began (a quorum heartbeat round, or the
    /// leader's lease), and `zxid` is the leader's commit point then.
    ReadReady {
        /// The runtime's read id.
        id: u64,
        /// Serve once applied up to here.
        zxid: Zxid,
    },
    /// The linearizable read `id` cannot be confirmed here (no established
    /// leader); the client should retry, possibly on another member. Reads
    /// still outstanding when `RoleChanged` is emitted are abandoned without
    /// either answer: the runtime fails them itself.
    ReadFailed {
        /// The runtime's read id.
        id: u64,
    },
}
