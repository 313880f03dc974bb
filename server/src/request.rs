//! The server's internal request model.
//!
//! Both client front-ends (the native prost protocol and, later, ZooKeeper's jute
//! protocol) decode their frames into these types, so the pipeline, validation and
//! the tree see one vocabulary. Write operations become txns (see `txn`) after
//! validation on the leader; reads are served from the local tree.

use bytes::Bytes;
use zabkeeper_proto::wire::CreateMode;

/// One ACL entry: permissions (see `zabkeeper_proto::perms`) for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    /// `world:anyone` with every permission: ZooKeeper's OPEN_ACL_UNSAFE.
    pub fn open() -> Vec<Acl> {
        vec![Acl {
            perms: zabkeeper_proto::perms::ALL,
            scheme: "world".into(),
            id: "anyone".into(),
        }]
    }
}

/// A write as a client asked for it, before validation.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Create {
        path: String,
        data: Bytes,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl_ms: i64,
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
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        aversion: i32,
    },
    /// Only inside `Multi`: fails the multi unless the node has this version (-1: exists).
    Check {
        path: String,
        version: i32,
    },
    /// All or nothing; ops are Create, Delete, SetData and Check.
    Multi(Vec<WriteOp>),
    /// Opens a session with the negotiated timeout; the session id is assigned before prep.
    CreateSession {
        timeout_ms: i32,
    },
    /// Closes the request's session and deletes its ephemerals atomically.
    CloseSession,
    /// Issued by the leader: removes an empty container or an expired TTL node.
    DeleteContainer {
        path: String,
    },
}

/// A read, served from the tree of the member the client is connected to.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadOp {
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    GetAcl {
        path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    GetEphemerals {
        prefix: String,
    },
    /// Read-only multi: each op is GetData or GetChildren, each with its own result.
    MultiRead(Vec<ReadOp>),
}

impl WriteOp {
    /// The path the op names, if any (for error messages and routing).
    pub fn path(&self) -> Option<&str> {
        match self {
            WriteOp::Create { path, .. }
            | WriteOp::Delete { path, .. }
            | WriteOp::SetData { path, .. }
            | WriteOp::SetAcl { path, .. }
            | WriteOp::Check { path, .. }
            | WriteOp::DeleteContainer { path } => Some(path),
            WriteOp::Multi(_) | WriteOp::CreateSession { .. } | WriteOp::CloseSession => None,
        }
    }
}
