//! Messages between ensemble members beyond ZAB's own: forwarded writes, their
//! refusals, session touches and sync rounds. All travel on the same FIFO peer
//! links as ZAB's messages, which is what makes `sync` sound: the leader's answer
//! to a sync follows every COMMIT it sent before it.

use crate::auth::AuthId;
use crate::native::convert;
use crate::reply::{MultiFailure, Outcome};
use crate::request::WriteOp;
use bytes::Bytes;
use zabkeeper_proto::wire;
use zabkeeper_proto::ErrorCode;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(oneof = "envelope::Body", tags = "1, 2, 3, 4, 5, 6")]
    pub body: Option<envelope::Body>,
}

pub mod envelope {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Body {
        /// An encoded `zabkeeper_zab::Message`.
        #[prost(bytes = "bytes", tag = "1")]
        Zab(Bytes),
        #[prost(message, tag = "2")]
        Forward(Forward),
        #[prost(message, tag = "3")]
        Refused(Refused),
        #[prost(message, tag = "4")]
        Touch(Touch),
        #[prost(uint64, tag = "5")]
        Sync(u64),
        #[prost(message, tag = "6")]
        SyncReply(SyncReply),
    }
}

/// Follower -> leader: a client's write.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Forward {
    #[prost(int64, tag = "1")]
    pub session_id: i64,
    #[prost(int32, tag = "2")]
    pub cxid: i32,
    #[prost(message, optional, tag = "3")]
    pub op: Option<ForwardedOp>,
    /// The identities of the client's connection: the leader checks ACLs with them,
    /// as ZooKeeper's `QuorumPacket.authinfo` carries them.
    #[prost(message, repeated, tag = "4")]
    pub auth: Vec<ForwardedId>,
    /// Exactly-once writes: the client's request number (0: none) and low-water mark.
    #[prost(uint64, tag = "5")]
    pub request_number: u64,
    #[prost(uint64, tag = "6")]
    pub acked_below: u64,
}

/// One identity of a forwarded write's connection (`scheme:id`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardedId {
    #[prost(string, tag = "1")]
    pub scheme: String,
    #[prost(string, tag = "2")]
    pub id: String,
}

impl ForwardedId {
    pub fn from_ids(ids: &[AuthId]) -> Vec<ForwardedId> {
        ids.iter()
            .map(|a| ForwardedId {
                scheme: a.scheme.clone(),
                id: a.id.clone(),
            })
            .collect()
    }

    pub fn into_ids(ids: Vec<ForwardedId>) -> Vec<AuthId> {
        ids.into_iter()
            .map(|f| AuthId {
                scheme: f.scheme,
                id: f.id,
            })
            .collect()
    }
}

/// Leader -> follower: a forwarded write failed validation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Refused {
    #[prost(int64, tag = "1")]
    pub session_id: i64,
    #[prost(int32, tag = "2")]
    pub cxid: i32,
    #[prost(int32, tag = "3")]
    pub code: i32,
    /// Per-op codes of a failed multi.
    #[prost(int32, repeated, tag = "4")]
    pub multi: Vec<i32>,
    #[prost(bool, tag = "5")]
    pub is_multi: bool,
    /// The leader's last proposed zxid when it refused: the follower answers only
    /// once it has applied that far (the refusal may rest on those txns).
    #[prost(int64, tag = "6")]
    pub after_zxid: i64,
    /// The refused write's request number (0: none), to find the follower's waiter.
    #[prost(uint64, tag = "7")]
    pub request_number: u64,
}

/// Follower -> leader: sessions with client activity since the last touch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Touch {
    #[prost(int64, repeated, tag = "1")]
    pub sessions: Vec<i64>,
}

/// Leader -> follower: a sync round's commit point.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SyncReply {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub zxid: i64,
}

/// A write op on the wire between members.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ForwardedOp {
    #[prost(oneof = "forwarded_op::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9")]
    pub kind: Option<forwarded_op::Kind>,
}

pub mod forwarded_op {
    use super::*;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Create(wire::CreateRequest),
        #[prost(message, tag = "2")]
        Delete(wire::DeleteRequest),
        #[prost(message, tag = "3")]
        SetData(wire::SetDataRequest),
        #[prost(message, tag = "4")]
        SetAcl(wire::SetAclRequest),
        #[prost(message, tag = "5")]
        Check(wire::CheckRequest),
        #[prost(message, tag = "6")]
        Multi(wire::MultiRequest),
        #[prost(int32, tag = "7")]
        CreateSession(i32),
        #[prost(message, tag = "8")]
        CloseSession(wire::Empty),
        #[prost(string, tag = "9")]
        DeleteContainer(String),
    }
}

fn create_to_wire(op: &WriteOp) -> Option<wire::CreateRequest> {
    match op {
        WriteOp::Create {
            path,
            data,
            acl,
            mode,
            ttl_ms,
        } => Some(wire::CreateRequest {
            path: path.clone(),
            data: data.clone(),
            acl: convert::acl_to_wire(acl),
            mode: *mode as i32,
            ttl_ms: *ttl_ms,
        }),
        _ => None,
    }
}

fn multi_op_to_wire(op: &WriteOp) -> wire::Op {
    use wire::op::Op as M;
    let op = match op {
        WriteOp::Create { .. } => create_to_wire(op).map(M::Create),
        WriteOp::Delete { path, version } => Some(M::Delete(wire::DeleteRequest {
            path: path.clone(),
            version: *version,
        })),
        WriteOp::SetData {
            path,
            data,
            version,
        } => Some(M::SetData(wire::SetDataRequest {
            path: path.clone(),
            data: data.clone(),
            version: *version,
        })),
        WriteOp::Check { path, version } => Some(M::Check(wire::CheckRequest {
            path: path.clone(),
            version: *version,
        })),
        _ => None,
    };
    wire::Op { op }
}

impl ForwardedOp {
    pub fn from_op(op: &WriteOp) -> ForwardedOp {
        use forwarded_op::Kind as K;
        let kind = match op {
            WriteOp::Create { .. } => create_to_wire(op).map(K::Create),
            WriteOp::Delete { path, version } => Some(K::Delete(wire::DeleteRequest {
                path: path.clone(),
                version: *version,
            })),
            WriteOp::SetData {
                path,
                data,
                version,
            } => Some(K::SetData(wire::SetDataRequest {
                path: path.clone(),
                data: data.clone(),
                version: *version,
            })),
            WriteOp::SetAcl {
                path,
                acl,
                aversion,
            } => Some(K::SetAcl(wire::SetAclRequest {
                path: path.clone(),
                acl: convert::acl_to_wire(acl),
                aversion: *aversion,
            })),
            WriteOp::Check { path, version } => Some(K::Check(wire::CheckRequest {
                path: path.clone(),
                version: *version,
            })),
            WriteOp::Multi(ops) => Some(K::Multi(wire::MultiRequest {
                ops: ops.iter().map(multi_op_to_wire).collect(),
            })),
            WriteOp::CreateSession { timeout_ms } => Some(K::CreateSession(*timeout_ms)),
            WriteOp::CloseSession => Some(K::CloseSession(wire::Empty {})),
            WriteOp::DeleteContainer { path } => Some(K::DeleteContainer(path.clone())),
        };
        ForwardedOp { kind }
    }

    pub fn into_op(self) -> Result<WriteOp, ErrorCode> {
        use forwarded_op::Kind as K;
        Ok(match self.kind.ok_or(ErrorCode::MarshallingError)? {
            K::Create(c) => convert::create(c)?,
            K::Delete(d) => WriteOp::Delete {
                path: d.path,
                version: d.version,
            },
            K::SetData(s) => WriteOp::SetData {
                path: s.path,
                data: s.data,
                version: s.version,
            },
            K::SetAcl(s) => WriteOp::SetAcl {
                path: s.path,
                acl: convert::acl_from_wire(&s.acl),
                aversion: s.aversion,
            },
            K::Check(c) => WriteOp::Check {
                path: c.path,
                version: c.version,
            },
            K::Multi(m) => WriteOp::Multi(
                m.ops
                    .into_iter()
                    .map(convert::multi_op)
                    .collect::<Result<_, _>>()?,
            ),
            K::CreateSession(timeout_ms) => WriteOp::CreateSession { timeout_ms },
            K::CloseSession(_) => WriteOp::CloseSession,
            K::DeleteContainer(path) => WriteOp::DeleteContainer { path },
        })
    }
}

impl Refused {
    pub fn new(session_id: i64, cxid: i32, outcome: &Outcome) -> Refused {
        match outcome {
            Outcome::MultiFailed(f) => Refused {
                session_id,
                cxid,
                code: f.code.code(),
                multi: f.results.clone(),
                is_multi: true,
                after_zxid: 0,
                request_number: 0,
            },
            other => Refused {
                session_id,
                cxid,
                code: other.code(),
                multi: Vec::new(),
                is_multi: false,
                after_zxid: 0,
                request_number: 0,
            },
        }
    }

    pub fn outcome(&self) -> Outcome {
        let code = ErrorCode::from_code(self.code).unwrap_or(ErrorCode::SystemError);
        if self.is_multi {
            Outcome::MultiFailed(MultiFailure {
                code,
                results: self.multi.clone(),
            })
        } else {
            Outcome::Err(code)
        }
    }
}

pub fn encode(body: envelope::Body) -> Bytes {
    prost::Message::encode_to_vec(&Envelope { body: Some(body) }).into()
}

pub fn decode(bytes: &[u8]) -> Option<envelope::Body> {
    <Envelope as prost::Message>::decode(bytes)
        .ok()
        .and_then(|e| e.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Acl;

    #[test]
    fn every_write_op_round_trips() {
        let create = WriteOp::Create {
            path: "/a".into(),
            data: Bytes::from_static(b"x"),
            acl: Acl::open(),
            mode: wire::CreateMode::EphemeralSequential,
            ttl_ms: 0,
        };
        let ops = vec![
            create.clone(),
            WriteOp::Delete {
                path: "/a".into(),
                version: 3,
            },
            WriteOp::SetData {
                path: "/a".into(),
                data: Bytes::from_static(b"y"),
                version: -1,
            },
            WriteOp::SetAcl {
                path: "/a".into(),
                acl: Acl::open(),
                aversion: 2,
            },
            WriteOp::Multi(vec![
                create,
                WriteOp::Check {
                    path: "/a".into(),
                    version: 1,
                },
            ]),
            WriteOp::CreateSession { timeout_ms: 4000 },
            WriteOp::CloseSession,
            WriteOp::DeleteContainer { path: "/c".into() },
        ];
        for op in ops {
            let auth = vec![
                AuthId {
                    scheme: "ip".into(),
                    id: "10.0.0.1".into(),
                },
                AuthId {
                    scheme: "digest".into(),
                    id: "bob:h=".into(),
                },
            ];
            let msg = encode(envelope::Body::Forward(Forward {
                session_id: 5,
                cxid: 7,
                op: Some(ForwardedOp::from_op(&op)),
                request_number: 9,
                acked_below: 8,
                auth: ForwardedId::from_ids(&auth),
            }));
            match decode(&msg) {
                Some(envelope::Body::Forward(f)) => {
                    assert_eq!((f.session_id, f.cxid), (5, 7));
                    assert_eq!((f.request_number, f.acked_below), (9, 8));
                    assert_eq!(ForwardedId::into_ids(f.auth.clone()), auth);
                    assert_eq!(f.op.unwrap().into_op().unwrap(), op);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(decode(&[0xff, 0xff, 0x01]), None);
    }

    #[test]
    fn refusals_keep_multi_codes() {
        let f = Outcome::MultiFailed(MultiFailure {
            code: ErrorCode::NoNode,
            results: vec![0, -101, -2],
        });
        assert_eq!(Refused::new(1, 2, &f).outcome(), f);
        let e = Outcome::Err(ErrorCode::BadVersion);
        assert_eq!(Refused::new(1, 2, &e).outcome(), e);
    }
}
