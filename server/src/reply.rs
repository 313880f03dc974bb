//! Front-end-neutral results and the messages a connection receives from the core.
//!
//! The core answers reads and writes with a [`Reply`]; the native and the ZooKeeper
//! front-ends each encode it in their own protocol. Watch notifications and session
//! ends reach a connection through its outbox as [`Outgoing`] values.

use crate::request::Acl;
use crate::tree::Stat;
use bytes::Bytes;
use tokio::sync::mpsc;
use zabkeeper_proto::{ErrorCode, EventType};

/// The result of one successful operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Empty,
    Create {
        path: String,
        stat: Stat,
    },
    Stat(Stat),
    Data {
        data: Bytes,
        stat: Stat,
    },
    Children {
        children: Vec<String>,
        stat: Stat,
    },
    Acl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    Count(i32),
    Paths(Vec<String>),
    /// One entry per op of a multi or multi-read, each its own result or error.
    Multi(Vec<Result<Reply, ErrorCode>>),
    /// `sync`: the path it was called with.
    Synced(String),
    WhoAmI(Vec<(String, String)>),
    ServerState(crate::core::ServerState),
}

/// A multi that failed: the code of the failing op, and every op's code as
/// ZooKeeper reports them (0 before the failing op, its code, then
/// RuntimeInconsistency).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiFailure {
    pub code: ErrorCode,
    pub results: Vec<i32>,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(Reply),
    Err(ErrorCode),
    /// A failed multi carries per-op codes (ZooKeeper answers it with them).
    MultiFailed(MultiFailure),
}

impl Outcome {
    pub fn code(&self) -> i32 {
        match self {
            Outcome::Ok(_) => 0,
            Outcome::Err(e) => e.code(),
            Outcome::MultiFailed(f) => f.code.code(),
        }
    }
}

impl From<Result<Reply, ErrorCode>> for Outcome {
    fn from(r: Result<Reply, ErrorCode>) -> Self {
        match r {
            Ok(r) => Outcome::Ok(r),
            Err(e) => Outcome::Err(e),
        }
    }
}

/// A watch notification for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    pub path: String,
    /// zxid of the change that fired the watch.
    pub zxid: i64,
    /// For a watch opened from a zxid (native protocol only): its id, the node's
    /// Stat after the change and its data if asked for.
    pub change: Option<Box<ChangeInfo>>,
}

/// What an event of a watch opened from a zxid carries besides the plain event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInfo {
    pub watch_id: u64,
    pub stat: Option<Stat>,
    pub data: Option<Bytes>,
}

/// What the core pushes into a connection's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Event(Event),
    /// The connection's session ended (expired or closed elsewhere), or the session
    /// moved to another connection: close this one.
    Close(ErrorCode),
}

/// Where the answer to a submitted operation goes: the submitting connection's
/// completion channel, tagged with the connection's sequence number for the request
/// so the connection can answer in request order.
#[derive(Debug)]
pub struct Completion {
    pub tx: mpsc::UnboundedSender<(u64, Outcome)>,
    pub seq: u64,
    /// Set by the core when the request enters it (metrics: count and latency).
    pub timer: Option<crate::metrics::OpTimer>,
}

impl Completion {
    pub fn new(tx: mpsc::UnboundedSender<(u64, Outcome)>, seq: u64) -> Completion {
        Completion {
            tx,
            seq,
            timer: None,
        }
    }

    pub fn complete(self, outcome: Outcome) {
        if let Some(t) = self.timer {
            t.finish(outcome.code() != 0);
        }
        // The connection may have gone away; then nobody is waiting for the answer.
        let _ = self.tx.send((self.seq, outcome));
    }
}
