//! Plain Rust types for what the client sends and gets back.
//!
//! They mirror ZooKeeper's records with Rust names (`Stat` keeps ZooKeeper's field
//! names) and convert to and from the prost messages in `zabkeeper_proto::wire`. A
//! response that lacks the part its request promises is a protocol error, never a
//! default value the caller could mistake for data.

use std::time::Duration;

use bytes::Bytes;
use zabkeeper_proto::{wire, EventType, KeeperState};

use crate::error::Error;

pub use zabkeeper_proto::wire::{AddWatchMode, CreateMode, WatcherType};

/// A znode's metadata (ZooKeeper's `Stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl From<wire::Stat> for Stat {
    fn from(s: wire::Stat) -> Stat {
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: s.data_length,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

/// One ACL entry: permission bits (see `zabkeeper_proto::perms`) for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    /// `world:anyone` with every permission (ZooKeeper's OPEN_ACL_UNSAFE).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: zabkeeper_proto::perms::ALL,
            scheme: "world".into(),
            id: "anyone".into(),
        }]
    }

    /// `world:anyone` may read (ZooKeeper's READ_ACL_UNSAFE).
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: zabkeeper_proto::perms::READ,
            scheme: "world".into(),
            id: "anyone".into(),
        }]
    }

    /// Every permission for the authenticated creator (ZooKeeper's CREATOR_ALL_ACL).
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl {
            perms: zabkeeper_proto::perms::ALL,
            scheme: "auth".into(),
            id: String::new(),
        }]
    }
}

impl From<&Acl> for wire::Acl {
    fn from(a: &Acl) -> wire::Acl {
        wire::Acl {
            perms: a.perms,
            id: Some(wire::Id {
                scheme: a.scheme.clone(),
                id: a.id.clone(),
            }),
        }
    }
}

impl From<wire::Acl> for Acl {
    fn from(a: wire::Acl) -> Acl {
        let id = a.id.unwrap_or_default();
        Acl {
            perms: a.perms,
            scheme: id.scheme,
            id: id.id,
        }
    }
}

/// How to create a node: its kind, ACL and (for the TTL kinds) time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    pub mode: CreateMode,
    /// Empty means world:anyone with all permissions.
    pub acl: Vec<Acl>,
    /// Required by the TTL modes, refused by the others.
    pub ttl: Option<Duration>,
}

impl CreateOptions {
    pub fn new(mode: CreateMode) -> Self {
        CreateOptions {
            mode,
            acl: Vec::new(),
            ttl: None,
        }
    }
    pub fn acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub(crate) fn to_wire(&self, path: &str, data: Bytes) -> Result<wire::CreateRequest, Error> {
        zabkeeper_proto::path::validate(path, self.mode.is_sequential())?;
        let ttl_ms = match (self.mode.is_ttl(), self.ttl) {
            (true, Some(ttl)) => {
                let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
                if ms <= 0 || ms > zabkeeper_proto::MAX_TTL_MS {
                    return Err(Error::BadArguments);
                }
                ms
            }
            (false, None) => 0,
            _ => return Err(Error::BadArguments),
        };
        Ok(wire::CreateRequest {
            path: path.to_string(),
            data,
            acl: self.acl.iter().map(wire::Acl::from).collect(),
            mode: self.mode as i32,
            ttl_ms,
        })
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions::new(CreateMode::Persistent)
    }
}

/// A watch notification or a final state change delivered to a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub state: KeeperState,
    pub path: String,
    /// zxid of the change that fired the watch; 0 for events the client makes itself.
    pub zxid: i64,
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Looking for a member to (re)attach the session to.
    Connecting,
    Connected,
    /// The connection dropped; reconnecting. Calls wait (up to their timeout).
    Disconnected,
    /// The cluster ended the session: ephemerals are gone, every later call fails.
    Expired,
    /// Closed by the application.
    Closed,
}

impl SessionState {
    /// Whether the session can never be used again.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionState::Expired | SessionState::Closed)
    }
}

/// One write inside [`crate::Client::multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Bytes,
        options: CreateOptions,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Bytes,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

impl Op {
    pub fn create(path: &str, data: impl Into<Bytes>, mode: CreateMode) -> Op {
        Op::create_with(path, data, CreateOptions::new(mode))
    }
    pub fn create_with(path: &str, data: impl Into<Bytes>, options: CreateOptions) -> Op {
        Op::Create {
            path: path.to_string(),
            data: data.into(),
            options,
        }
    }
    /// `None` matches any version.
    pub fn delete(path: &str, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.to_string(),
            version: version.unwrap_or(-1),
        }
    }
    /// `None` matches any version.
    pub fn set_data(path: &str, data: impl Into<Bytes>, version: Option<i32>) -> Op {
        Op::SetData {
            path: path.to_string(),
            data: data.into(),
            version: version.unwrap_or(-1),
        }
    }
    pub fn check(path: &str, version: i32) -> Op {
        Op::Check {
            path: path.to_string(),
            version,
        }
    }

    pub(crate) fn to_wire(&self) -> Result<wire::Op, Error> {
        use wire::op::Op as W;
        let op = match self {
            Op::Create {
                path,
                data,
                options,
            } => W::Create(options.to_wire(path, data.clone())?),
            Op::Delete { path, version } => {
                zabkeeper_proto::path::validate(path, false)?;
                W::Delete(wire::DeleteRequest {
                    path: path.clone(),
                    version: *version,
                })
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                zabkeeper_proto::path::validate(path, false)?;
                W::SetData(wire::SetDataRequest {
                    path: path.clone(),
                    data: data.clone(),
                    version: *version,
                })
            }
            Op::Check { path, version } => {
                zabkeeper_proto::path::validate(path, false)?;
                W::Check(wire::CheckRequest {
                    path: path.clone(),
                    version: *version,
                })
            }
        };
        Ok(wire::Op { op: Some(op) })
    }
}

/// The outcome of one op of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The created path (with the sequence suffix) and, when the server sent it, its Stat.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData(Stat),
    Check,
    /// Only in a failed multi: ZooKeeper's per-op code. 0 for ops before the failing one
    /// (they would have succeeded; nothing was applied), RuntimeInconsistency (-2) after.
    Error(i32),
}

impl OpResult {
    /// Reads one op's result. The op that asked is known, so a success is reported as
    /// that op's result even when the server sends a bare acknowledgement for it.
    pub(crate) fn from_wire(r: wire::OpResult, op: &Op) -> Result<OpResult, Error> {
        use wire::op_result::Result as R;
        if r.error != 0 {
            return Ok(OpResult::Error(r.error));
        }
        Ok(match (op, r.result) {
            // In a failed multi ZooKeeper reports the ops that did not fail as code 0.
            (_, None) => OpResult::Error(0),
            (Op::Create { .. }, Some(R::Create(c))) => OpResult::Create {
                path: c.path,
                stat: c.stat.map(Stat::from),
            },
            (Op::Delete { .. }, Some(R::Delete(_) | R::Check(_))) => OpResult::Delete,
            (Op::SetData { .. }, Some(R::SetData(s))) => OpResult::SetData(s.into()),
            (Op::Check { .. }, Some(R::Check(_) | R::Delete(_))) => OpResult::Check,
            (op, Some(other)) => {
                return Err(Error::Protocol(format!("result {other:?} for {op:?}")))
            }
        })
    }
}

/// One read inside [`crate::Client::multi_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData(String),
    GetChildren(String),
}

impl ReadOp {
    pub(crate) fn to_wire(&self) -> Result<wire::Op, Error> {
        use wire::op::Op as W;
        let op = match self {
            ReadOp::GetData(p) => {
                zabkeeper_proto::path::validate(p, false)?;
                W::GetData(wire::PathRequest { path: p.clone() })
            }
            ReadOp::GetChildren(p) => {
                zabkeeper_proto::path::validate(p, false)?;
                W::GetChildren(wire::PathRequest { path: p.clone() })
            }
        };
        Ok(wire::Op { op: Some(op) })
    }
}

/// The outcome of one read of a multi_read; each read succeeds or fails on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Data { data: Bytes, stat: Stat },
    Children(Vec<String>),
    Error(Error),
}

impl ReadResult {
    pub(crate) fn from_wire(r: wire::OpResult) -> Result<ReadResult, Error> {
        use wire::op_result::Result as R;
        if r.error != 0 {
            return Ok(ReadResult::Error(Error::from_code(r.error)));
        }
        Ok(match r.result {
            Some(R::GetData(d)) => ReadResult::Data {
                data: d.data,
                stat: d.stat.unwrap_or_default().into(),
            },
            Some(R::GetChildren(c)) => ReadResult::Children(c.children),
            other => {
                return Err(Error::Protocol(format!(
                    "unexpected multi_read result {other:?}"
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_keeps_every_field() {
        let w = wire::Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let s = Stat::from(w);
        assert_eq!(
            (s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion),
            (1, 2, 3, 4, 5, 6, 7)
        );
        assert_eq!(
            (s.ephemeral_owner, s.data_length, s.num_children, s.pzxid),
            (8, 9, 10, 11)
        );
    }

    #[test]
    fn acl_round_trips() {
        let a = Acl {
            perms: 3,
            scheme: "digest".into(),
            id: "u:x".into(),
        };
        assert_eq!(Acl::from(wire::Acl::from(&a)), a);
    }

    #[test]
    fn create_options_check_ttl_and_path() {
        let o = CreateOptions::new(CreateMode::PersistentWithTtl).ttl(Duration::from_secs(2));
        let w = o.to_wire("/a", Bytes::from_static(b"x")).unwrap();
        assert_eq!(
            (w.ttl_ms, w.mode),
            (2000, CreateMode::PersistentWithTtl as i32)
        );
        assert_eq!(
            CreateOptions::new(CreateMode::PersistentWithTtl).to_wire("/a", Bytes::new()),
            Err(Error::BadArguments)
        );
        assert_eq!(
            CreateOptions::new(CreateMode::Persistent)
                .ttl(Duration::from_secs(1))
                .to_wire("/a", Bytes::new()),
            Err(Error::BadArguments)
        );
        assert!(matches!(
            CreateOptions::default().to_wire("a", Bytes::new()),
            Err(Error::InvalidPath(_))
        ));
        assert!(CreateOptions::new(CreateMode::PersistentSequential)
            .to_wire("/q/", Bytes::new())
            .is_ok());
        assert!(CreateOptions::new(CreateMode::Persistent)
            .to_wire("/q/", Bytes::new())
            .is_err());
    }

    #[test]
    fn op_results_from_wire() {
        use wire::op_result::Result as R;
        let ok = |r| wire::OpResult {
            error: 0,
            result: Some(r),
        };
        let del = Op::delete("/a", None);
        let create = Op::create("/a", "", CreateMode::PersistentSequential);
        assert_eq!(
            OpResult::from_wire(ok(R::Delete(wire::Empty {})), &del),
            Ok(OpResult::Delete)
        );
        assert_eq!(
            OpResult::from_wire(ok(R::Check(wire::Empty {})), &del),
            Ok(OpResult::Delete)
        );
        assert_eq!(
            OpResult::from_wire(ok(R::Check(wire::Empty {})), &Op::check("/a", 1)),
            Ok(OpResult::Check)
        );
        let created = ok(R::Create(wire::CreateResponse {
            path: "/a1".into(),
            stat: None,
        }));
        assert_eq!(
            OpResult::from_wire(created, &create),
            Ok(OpResult::Create {
                path: "/a1".into(),
                stat: None
            })
        );
        let failed = wire::OpResult {
            error: -101,
            result: None,
        };
        assert_eq!(OpResult::from_wire(failed, &del), Ok(OpResult::Error(-101)));
        let rolled_back = wire::OpResult {
            error: 0,
            result: None,
        };
        assert_eq!(
            OpResult::from_wire(rolled_back, &del),
            Ok(OpResult::Error(0))
        );
        let children = ok(R::GetChildren(wire::GetChildrenResponse::default()));
        assert!(matches!(
            OpResult::from_wire(children, &del),
            Err(Error::Protocol(_))
        ));
        let deleted = ok(R::Delete(wire::Empty {}));
        assert!(matches!(
            OpResult::from_wire(deleted, &create),
            Err(Error::Protocol(_))
        ));
        assert_eq!(
            ReadResult::from_wire(wire::OpResult {
                error: -101,
                result: None
            }),
            Ok(ReadResult::Error(Error::NoNode))
        );
        assert!(matches!(
            ReadResult::from_wire(ok(R::Delete(wire::Empty {}))),
            Err(Error::Protocol(_))
        ));
    }
}
