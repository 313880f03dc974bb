//! Jute requests to the server's internal requests, and outcomes back to jute replies.
//!
//! Decoding produces the same [`Decoded`] values as the native front-end, so both protocols
//! reach the core through one vocabulary. What the native protocol carries in its response
//! type, jute leaves to the opcode: `create` answers with a path, `create2` with a path and a
//! Stat, `getChildren` with names only, `getChildren2` with the parent's Stat too. So every
//! request also yields a [`Shape`], kept in the request's slot until its answer is encoded.
//!
//! ZooKeeper's validation rules that differ from the native front-end live here: an empty ACL
//! is `InvalidACL` (ZooKeeper's `fixupACL`), a TTL create mode outside `createTTL` or a TTL
//! out of range is `BadArguments`, and `reconfig` is `ReconfigDisabled` as on a ZooKeeper whose
//! `reconfigEnabled` is false (the default).

use crate::native::Decoded;
use crate::reply::{Event, MultiFailure, Outcome, Reply};
use crate::request::{Acl, ReadOp, WriteOp};
use zabkeeper_jute as jute;
use zabkeeper_jute::{MultiOp, MultiResult, OpCode, Request, Response};
use zabkeeper_proto::path::validate;
use zabkeeper_proto::wire::{self, CreateMode};
use zabkeeper_proto::{ErrorCode, KeeperState};

/// Largest TTL ZooKeeper accepts (`EphemeralType.TTL` max: 2^40 - 1 ms).
pub const MAX_TTL_MS: i64 = (1 << 40) - 1;

/// Which jute response record answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Header only.
    Empty,
    /// `create`: the path.
    Create,
    /// `create2`, `createContainer`, `createTTL`: path and Stat.
    Create2,
    Exists,
    GetData,
    SetData,
    GetAcl,
    SetAcl,
    GetChildren,
    GetChildren2,
    Sync,
    /// `multi`: one result per op, typed by the op's code.
    Multi(Vec<OpCode>),
    MultiRead,
    GetEphemerals,
    GetAllChildrenNumber,
    WhoAmI,
}

/// What the connection does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The same internal request the native front-end would make.
    Do(Decoded),
    /// `getEphemerals` (answered from the session's ephemerals).
    GetEphemerals(String),
    /// Answer with this error, in order.
    Fail(ErrorCode),
}

fn path(p: &str) -> Result<String, ErrorCode> {
    validate(p, false).map_err(|_| ErrorCode::BadArguments)?;
    Ok(p.to_string())
}

fn acl(list: &[jute::Acl]) -> Result<Vec<Acl>, ErrorCode> {
    if list.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    Ok(list
        .iter()
        .map(|a| Acl {
            perms: a.perms,
            scheme: a.id.scheme.clone(),
            id: a.id.id.clone(),
        })
        .collect())
}

/// Which opcode a create came with: the create mode must fit it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CreateKind {
    Plain,
    Container,
    Ttl,
}

fn create(
    kind: CreateKind,
    p: &str,
    data: &[u8],
    acl_list: &[jute::Acl],
    flags: i32,
    ttl: i64,
) -> Result<WriteOp, ErrorCode> {
    let mode = CreateMode::try_from(flags).map_err(|_| ErrorCode::BadArguments)?;
    let is_ttl = matches!(
        mode,
        CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
    );
    match kind {
        CreateKind::Plain if is_ttl => return Err(ErrorCode::BadArguments),
        CreateKind::Container if mode != CreateMode::Container => {
            return Err(ErrorCode::BadArguments)
        }
        CreateKind::Ttl if !is_ttl || ttl <= 0 || ttl > MAX_TTL_MS => {
            return Err(ErrorCode::BadArguments)
        }
        _ => {}
    }
    validate(p, mode.is_sequential()).map_err(|_| ErrorCode::BadArguments)?;
    Ok(WriteOp::Create {
        path: p.to_string(),
        data: data.to_vec().into(),
        acl: acl(acl_list)?,
        mode,
        ttl_ms: if kind == CreateKind::Ttl { ttl } else { 0 },
    })
}

fn multi_write(op: &MultiOp) -> Result<WriteOp, ErrorCode> {
    match op {
        MultiOp::Create(c) | MultiOp::Create2(c) => {
            create(CreateKind::Plain, &c.path, &c.data, &c.acl, c.flags, 0)
        }
        MultiOp::CreateContainer(c) => {
            create(CreateKind::Container, &c.path, &c.data, &c.acl, c.flags, 0)
        }
        MultiOp::CreateTtl(c) => create(CreateKind::Ttl, &c.path, &c.data, &c.acl, c.flags, c.ttl),
        MultiOp::Delete(d) => Ok(WriteOp::Delete {
            path: path(&d.path)?,
            version: d.version,
        }),
        MultiOp::SetData(s) => Ok(WriteOp::SetData {
            path: path(&s.path)?,
            data: s.data.clone().into(),
            version: s.version,
        }),
        MultiOp::Check(c) => Ok(WriteOp::Check {
            path: path(&c.path)?,
            version: c.version,
        }),
        MultiOp::GetChildren(_) | MultiOp::GetData(_) => Err(ErrorCode::BadArguments),
    }
}

fn multi_read(op: &MultiOp) -> Result<ReadOp, ErrorCode> {
    match op {
        MultiOp::GetData(g) => Ok(ReadOp::GetData {
            path: path(&g.path)?,
            watch: false,
        }),
        MultiOp::GetChildren(g) => Ok(ReadOp::GetChildren {
            path: path(&g.path)?,
            watch: false,
            with_stat: false,
        }),
        _ => Err(ErrorCode::BadArguments),
    }
}

/// Maps a decoded jute request onto an action and the shape of its answer.
pub fn decode(req: &Request) -> (Shape, Action) {
    let (shape, action) = decode_inner(req);
    (shape, action.unwrap_or_else(Action::Fail))
}

fn decode_inner(req: &Request) -> (Shape, Result<Action, ErrorCode>) {
    use Decoded as D;
    let write = |op: Result<WriteOp, ErrorCode>| op.map(|op| Action::Do(D::Write(op)));
    let read = |op: Result<ReadOp, ErrorCode>| op.map(|op| Action::Do(D::Read(op)));
    match req {
        Request::Create(c) => (
            Shape::Create,
            write(create(
                CreateKind::Plain,
                &c.path,
                &c.data,
                &c.acl,
                c.flags,
                0,
            )),
        ),
        Request::Create2(c) => (
            Shape::Create2,
            write(create(
                CreateKind::Plain,
                &c.path,
                &c.data,
                &c.acl,
                c.flags,
                0,
            )),
        ),
        Request::CreateContainer(c) => (
            Shape::Create2,
            write(create(
                CreateKind::Container,
                &c.path,
                &c.data,
                &c.acl,
                c.flags,
                0,
            )),
        ),
        Request::CreateTtl(c) => (
            Shape::Create2,
            write(create(
                CreateKind::Ttl,
                &c.path,
                &c.data,
                &c.acl,
                c.flags,
                c.ttl,
            )),
        ),
        Request::Delete(d) => (
            Shape::Empty,
            write(path(&d.path).map(|path| WriteOp::Delete {
                path,
                version: d.version,
            })),
        ),
        Request::Exists(e) => (
            Shape::Exists,
            read(path(&e.path).map(|path| ReadOp::Exists {
                path,
                watch: e.watch,
            })),
        ),
        Request::GetData(g) => (
            Shape::GetData,
            read(path(&g.path).map(|path| ReadOp::GetData {
                path,
                watch: g.watch,
            })),
        ),
        Request::SetData(s) => (
            Shape::SetData,
            write(path(&s.path).map(|path| WriteOp::SetData {
                path,
                data: s.data.clone().into(),
                version: s.version,
            })),
        ),
        Request::GetAcl(g) => (
            Shape::GetAcl,
            read(path(&g.path).map(|path| ReadOp::GetAcl { path })),
        ),
        Request::SetAcl(s) => (
            Shape::SetAcl,
            write(path(&s.path).and_then(|path| {
                Ok(WriteOp::SetAcl {
                    path,
                    acl: acl(&s.acl)?,
                    aversion: s.version,
                })
            })),
        ),
        Request::GetChildren(g) => (
            Shape::GetChildren,
            read(path(&g.path).map(|path| ReadOp::GetChildren {
                path,
                watch: g.watch,
                with_stat: false,
            })),
        ),
        Request::GetChildren2(g) => (
            Shape::GetChildren2,
            read(path(&g.path).map(|path| ReadOp::GetChildren {
                path,
                watch: g.watch,
                with_stat: true,
            })),
        ),
        Request::Sync(s) => (Shape::Sync, path(&s.path).map(|p| Action::Do(D::Sync(p)))),
        // A standalone check runs as a one-op multi; its error is the header's.
        Request::Check(c) => (
            Shape::Empty,
            write(path(&c.path).map(|path| {
                WriteOp::Multi(vec![WriteOp::Check {
                    path,
                    version: c.version,
                }])
            })),
        ),
        Request::Multi(ops) => (
            Shape::Multi(ops.iter().map(MultiOp::op_code).collect()),
            write(
                ops.iter()
                    .map(multi_write)
                    .collect::<Result<_, _>>()
                    .map(WriteOp::Multi),
            ),
        ),
        Request::MultiRead(ops) => (
            Shape::MultiRead,
            read(
                ops.iter()
                    .map(multi_read)
                    .collect::<Result<_, _>>()
                    .map(ReadOp::MultiRead),
            ),
        ),
        Request::Reconfig(_) => (Shape::GetData, Err(ErrorCode::ReconfigDisabled)),
        Request::CheckWatches(c) => (
            Shape::Empty,
            path(&c.path).map(|path| {
                Action::Do(D::CheckWatches {
                    path,
                    kind: c.watcher_type,
                })
            }),
        ),
        Request::RemoveWatches(r) => (
            Shape::Empty,
            path(&r.path).map(|path| {
                Action::Do(D::RemoveWatches {
                    path,
                    kind: r.watcher_type,
                })
            }),
        ),
        Request::AddWatch(a) => (
            Shape::Empty,
            match a.mode {
                0 | 1 => path(&a.path).map(|path| {
                    Action::Do(D::AddWatch {
                        path,
                        recursive: a.mode == 1,
                    })
                }),
                _ => Err(ErrorCode::BadArguments),
            },
        ),
        Request::SetWatches(s) => (
            Shape::Empty,
            Ok(Action::Do(D::SetWatches(wire::SetWatchesRequest {
                relative_zxid: s.relative_zxid,
                data_watches: s.data_watches.clone(),
                exist_watches: s.exist_watches.clone(),
                child_watches: s.child_watches.clone(),
                persistent_watches: Vec::new(),
                persistent_recursive_watches: Vec::new(),
            }))),
        ),
        Request::SetWatches2(s) => (
            Shape::Empty,
            Ok(Action::Do(D::SetWatches(wire::SetWatchesRequest {
                relative_zxid: s.relative_zxid,
                data_watches: s.data_watches.clone(),
                exist_watches: s.exist_watches.clone(),
                child_watches: s.child_watches.clone(),
                persistent_watches: s.persistent_watches.clone(),
                persistent_recursive_watches: s.persistent_recursive_watches.clone(),
            }))),
        ),
        Request::GetEphemerals(g) => {
            // ZooKeeper accepts "/" and any valid path as the prefix.
            (
                Shape::GetEphemerals,
                path(&g.prefix_path).map(Action::GetEphemerals),
            )
        }
        Request::GetAllChildrenNumber(g) => (
            Shape::GetAllChildrenNumber,
            read(path(&g.path).map(|path| ReadOp::GetAllChildrenNumber { path })),
        ),
        Request::Auth(a) => (
            Shape::Empty,
            Ok(Action::Do(D::Auth {
                scheme: a.scheme.clone(),
                auth: a.auth.clone(),
            })),
        ),
        Request::Ping => (Shape::Empty, Ok(Action::Do(D::Ping))),
        Request::WhoAmI => (Shape::WhoAmI, Ok(Action::Do(D::WhoAmI))),
        Request::CloseSession => (Shape::Empty, Ok(Action::Do(D::Close))),
        // No SASL on this server; unknown opcodes.
        Request::Sasl(_) | Request::Unknown(_) => (Shape::Empty, Err(ErrorCode::Unimplemented)),
    }
}

/// A Stat in jute's field order.
pub fn stat(s: &crate::tree::Stat) -> jute::Stat {
    jute::Stat {
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

fn acl_out(list: &[Acl]) -> Vec<jute::Acl> {
    list.iter()
        .map(|a| jute::Acl {
            perms: a.perms,
            id: jute::Id {
                scheme: a.scheme.clone(),
                id: a.id.clone(),
            },
        })
        .collect()
}

/// The reply's error code and body for an outcome. An error has no body, except a failed
/// `multi`, which ZooKeeper answers with err 0 in the header and an `ErrorResponse` per op.
pub fn response(shape: &Shape, outcome: Outcome) -> (i32, Response) {
    match outcome {
        Outcome::Err(e) => (e.code(), Response::Empty),
        Outcome::MultiFailed(MultiFailure { code, results }) => match shape {
            Shape::Multi(_) => (
                0,
                Response::Multi(results.into_iter().map(MultiResult::Error).collect()),
            ),
            _ => (code.code(), Response::Empty),
        },
        Outcome::Ok(reply) => match body(shape, reply) {
            Ok(resp) => (0, resp),
            Err(e) => (e.code(), Response::Empty),
        },
    }
}

/// The body for a successful reply; a reply that does not fit the shape is a server bug,
/// answered with `SystemError` rather than a body the client would misread.
fn body(shape: &Shape, reply: Reply) -> Result<Response, ErrorCode> {
    use jute::*;
    Ok(match (shape, reply) {
        (Shape::Empty, _) => Response::Empty,
        (Shape::Create, Reply::Create { path, .. }) => Response::Create(CreateResponse { path }),
        (Shape::Create2, Reply::Create { path, stat: s }) => Response::Create2(Create2Response {
            path,
            stat: stat(&s),
        }),
        (Shape::Exists, Reply::Stat(s)) => Response::Exists(ExistsResponse { stat: stat(&s) }),
        (Shape::GetData, Reply::Data { data, stat: s }) => Response::GetData(GetDataResponse {
            data: data.to_vec(),
            stat: stat(&s),
        }),
        (Shape::SetData, Reply::Stat(s)) => Response::SetData(SetDataResponse { stat: stat(&s) }),
        (Shape::GetAcl, Reply::Acl { acl, stat: s }) => Response::GetAcl(GetAclResponse {
            acl: acl_out(&acl),
            stat: stat(&s),
        }),
        (Shape::SetAcl, Reply::Stat(s)) => Response::SetAcl(SetAclResponse { stat: stat(&s) }),
        (Shape::GetChildren, Reply::Children { children, .. }) => {
            Response::GetChildren(GetChildrenResponse { children })
        }
        (Shape::GetChildren2, Reply::Children { children, stat: s }) => {
            Response::GetChildren2(GetChildren2Response {
                children,
                stat: stat(&s),
            })
        }
        (Shape::Sync, Reply::Synced(path)) => Response::Sync(SyncResponse { path }),
        (Shape::Multi(ops), Reply::Multi(results)) => {
            if ops.len() != results.len() {
                return Err(ErrorCode::SystemError);
            }
            Response::Multi(
                ops.iter()
                    .zip(results)
                    .map(|(op, r)| multi_result(*op, r))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Shape::MultiRead, Reply::Multi(results)) => Response::Multi(
            results
                .into_iter()
                .map(|r| match r {
                    Ok(Reply::Data { data, stat: s }) => {
                        Ok(MultiResult::GetData(GetDataResponse {
                            data: data.to_vec(),
                            stat: stat(&s),
                        }))
                    }
                    Ok(Reply::Children { children, .. }) => {
                        Ok(MultiResult::GetChildren(GetChildrenResponse { children }))
                    }
                    Ok(_) => Err(ErrorCode::SystemError),
                    Err(e) => Ok(MultiResult::Error(e.code())),
                })
                .collect::<Result<_, _>>()?,
        ),
        (Shape::GetEphemerals, Reply::Paths(ephemerals)) => {
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals })
        }
        (Shape::GetAllChildrenNumber, Reply::Count(total_number)) => {
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number })
        }
        (Shape::WhoAmI, Reply::WhoAmI(ids)) => Response::WhoAmI(WhoAmIResponse {
            client_info: ids
                .into_iter()
                .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                .collect(),
        }),
        _ => return Err(ErrorCode::SystemError),
    })
}

/// One result of a successful multi, typed by its op as ZooKeeper's `MultiResponse` does:
/// `create` → path, `create2`/`createContainer`/`createTTL` → path and Stat.
fn multi_result(op: OpCode, r: Result<Reply, ErrorCode>) -> Result<MultiResult, ErrorCode> {
    use jute::*;
    Ok(match (op, r) {
        (_, Err(e)) => MultiResult::Error(e.code()),
        (OpCode::Create, Ok(Reply::Create { path, .. })) => {
            MultiResult::Create(CreateResponse { path })
        }
        (
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl,
            Ok(Reply::Create { path, stat: s }),
        ) => MultiResult::Create2(Create2Response {
            path,
            stat: stat(&s),
        }),
        (OpCode::SetData, Ok(Reply::Stat(s))) => {
            MultiResult::SetData(SetDataResponse { stat: stat(&s) })
        }
        (OpCode::Delete, Ok(_)) => MultiResult::Delete,
        (OpCode::Check, Ok(_)) => MultiResult::Check,
        _ => return Err(ErrorCode::SystemError),
    })
}

/// A notification frame: reply xid -1, header zxid = the change's zxid.
pub fn event(e: &Event) -> Vec<u8> {
    jute::encode_response(
        jute::ReplyHeader {
            xid: jute::NOTIFICATION_XID,
            zxid: e.zxid,
            err: 0,
        },
        &Response::Event(jute::WatcherEvent {
            event_type: e.event_type as i32,
            state: KeeperState::SyncConnected as i32,
            path: e.path.clone(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jute::{CreateRequest, CreateTtlRequest, GetDataRequest, Id};

    fn open() -> Vec<jute::Acl> {
        vec![jute::Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }

    fn create_req(path: &str, flags: i32, acl: Vec<jute::Acl>) -> CreateRequest {
        CreateRequest {
            path: path.into(),
            data: b"x".to_vec(),
            acl,
            flags,
        }
    }

    #[test]
    fn create_rules_follow_zookeeper() {
        let (shape, action) = decode(&Request::Create(create_req("/a", 0, open())));
        assert_eq!(shape, Shape::Create);
        assert!(matches!(
            action,
            Action::Do(Decoded::Write(WriteOp::Create { .. }))
        ));
        // Empty ACL: InvalidACL.
        assert_eq!(
            decode(&Request::Create(create_req("/a", 0, vec![]))).1,
            Action::Fail(ErrorCode::InvalidAcl)
        );
        // A TTL mode outside createTTL, an unknown mode, a bad path: BadArguments.
        assert_eq!(
            decode(&Request::Create2(create_req("/a", 5, open()))).1,
            Action::Fail(ErrorCode::BadArguments)
        );
        assert_eq!(
            decode(&Request::Create(create_req("/a", 9, open()))).1,
            Action::Fail(ErrorCode::BadArguments)
        );
        assert_eq!(
            decode(&Request::Create(create_req("/a/", 0, open()))).1,
            Action::Fail(ErrorCode::BadArguments)
        );
        // Sequential creates may end in '/'.
        assert!(matches!(
            decode(&Request::Create(create_req("/a/", 2, open()))).1,
            Action::Do(_)
        ));
        // createContainer needs the container mode.
        assert_eq!(
            decode(&Request::CreateContainer(create_req("/c", 0, open()))).1,
            Action::Fail(ErrorCode::BadArguments)
        );
        let ttl = |flags, ttl| {
            decode(&Request::CreateTtl(CreateTtlRequest {
                path: "/t".into(),
                data: vec![],
                acl: open(),
                flags,
                ttl,
            }))
            .1
        };
        assert!(matches!(
            ttl(5, 1000),
            Action::Do(Decoded::Write(WriteOp::Create { ttl_ms: 1000, .. }))
        ));
        assert_eq!(ttl(0, 1000), Action::Fail(ErrorCode::BadArguments));
        assert_eq!(ttl(5, 0), Action::Fail(ErrorCode::BadArguments));
        assert_eq!(
            ttl(6, MAX_TTL_MS + 1),
            Action::Fail(ErrorCode::BadArguments)
        );
    }

    #[test]
    fn unknown_sasl_and_reconfig_fail() {
        assert_eq!(
            decode(&Request::Unknown(55)).1,
            Action::Fail(ErrorCode::Unimplemented)
        );
        let (_, a) = decode(&Request::Reconfig(jute::ReconfigRequest::default()));
        assert_eq!(a, Action::Fail(ErrorCode::ReconfigDisabled));
    }

    #[test]
    fn failed_multi_is_err_zero_with_per_op_error_results() {
        let shape = Shape::Multi(vec![OpCode::Create, OpCode::Delete, OpCode::SetData]);
        let f = MultiFailure {
            code: ErrorCode::NoNode,
            results: vec![0, -101, -2],
        };
        let (err, resp) = response(&shape, Outcome::MultiFailed(f.clone()));
        assert_eq!(err, 0);
        assert_eq!(
            resp,
            Response::Multi(vec![
                MultiResult::Error(0),
                MultiResult::Error(-101),
                MultiResult::Error(-2)
            ])
        );
        // A standalone check reports the failure in the header.
        assert_eq!(
            response(&Shape::Empty, Outcome::MultiFailed(f)),
            (-101, Response::Empty)
        );
    }

    #[test]
    fn result_types_follow_the_opcode() {
        let s = crate::tree::Stat {
            version: 3,
            ..Default::default()
        };
        let created = || {
            Ok(Reply::Create {
                path: "/n".into(),
                stat: s,
            })
        };
        let shape = Shape::Multi(vec![
            OpCode::Create,
            OpCode::Create2,
            OpCode::Delete,
            OpCode::Check,
            OpCode::SetData,
        ]);
        let reply = Reply::Multi(vec![
            created(),
            created(),
            Ok(Reply::Empty),
            Ok(Reply::Empty),
            Ok(Reply::Stat(s)),
        ]);
        let (err, resp) = response(&shape, Outcome::Ok(reply));
        assert_eq!(err, 0);
        let Response::Multi(r) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!(
            r[0],
            MultiResult::Create(jute::CreateResponse { path: "/n".into() })
        );
        assert!(matches!(&r[1], MultiResult::Create2(c) if c.stat.version == 3));
        assert_eq!((&r[2], &r[3]), (&MultiResult::Delete, &MultiResult::Check));
        assert!(matches!(&r[4], MultiResult::SetData(d) if d.stat.version == 3));
        // exists on a missing node: the error code alone.
        assert_eq!(
            response(&Shape::Exists, Outcome::Err(ErrorCode::NoNode)),
            (-101, Response::Empty)
        );
        // A reply that does not fit its shape is never sent as a misleading body.
        assert_eq!(
            response(&Shape::GetData, Outcome::Ok(Reply::Empty)).0,
            ErrorCode::SystemError.code()
        );
        let (_, resp) = response(&Shape::Create, created().into());
        assert_eq!(
            resp,
            Response::Create(jute::CreateResponse { path: "/n".into() })
        );
        let _ = GetDataRequest::default();
    }
}
