//! Conversions between the native wire types and the server's internal model.

use crate::reply::{Event, Outcome, Reply};
use crate::request::{Acl, ReadOp, WriteOp};
use crate::tree::Stat;
use zabkeeper_proto::path::validate;
use zabkeeper_proto::wire::{self, request::Op};
use zabkeeper_proto::{ErrorCode, KeeperState};

/// What a request asks the server to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Write(WriteOp),
    Read(ReadOp),
    Ping,
    Sync(String),
    AddWatch { path: String, recursive: bool },
    AddWatchFrom(wire::AddWatchFromRequest),
    RemoveWatches { path: String, kind: i32 },
    CheckWatches { path: String, kind: i32 },
    SetWatches(wire::SetWatchesRequest),
    Auth { scheme: String, auth: Vec<u8> },
    WhoAmI,
    ServerState,
    Close,
}

fn path(p: &str) -> Result<String, ErrorCode> {
    validate(p, false).map_err(|_| ErrorCode::BadArguments)?;
    Ok(p.to_string())
}

pub fn acl_from_wire(acl: &[wire::Acl]) -> Vec<Acl> {
    if acl.is_empty() {
        return Acl::open();
    }
    acl.iter()
        .map(|a| {
            let id = a.id.clone().unwrap_or_default();
            Acl {
                perms: a.perms,
                scheme: id.scheme,
                id: id.id,
            }
        })
        .collect()
}

pub fn acl_to_wire(acl: &[Acl]) -> Vec<wire::Acl> {
    acl.iter()
        .map(|a| wire::Acl {
            perms: a.perms,
            id: Some(wire::Id {
                scheme: a.scheme.clone(),
                id: a.id.clone(),
            }),
        })
        .collect()
}

pub(crate) fn create(c: wire::CreateRequest) -> Result<WriteOp, ErrorCode> {
    let mode = wire::CreateMode::try_from(c.mode).map_err(|_| ErrorCode::BadArguments)?;
    validate(&c.path, mode.is_sequential()).map_err(|_| ErrorCode::BadArguments)?;
    Ok(WriteOp::Create {
        path: c.path,
        data: c.data,
        acl: acl_from_wire(&c.acl),
        mode,
        ttl_ms: c.ttl_ms,
    })
}

pub(crate) fn multi_op(op: wire::Op) -> Result<WriteOp, ErrorCode> {
    use wire::op::Op as M;
    match op.op {
        Some(M::Create(c)) => create(c),
        Some(M::Delete(d)) => Ok(WriteOp::Delete {
            path: path(&d.path)?,
            version: d.version,
        }),
        Some(M::SetData(s)) => Ok(WriteOp::SetData {
            path: path(&s.path)?,
            data: s.data,
            version: s.version,
        }),
        Some(M::Check(c)) => Ok(WriteOp::Check {
            path: path(&c.path)?,
            version: c.version,
        }),
        _ => Err(ErrorCode::BadArguments),
    }
}

fn read_op(op: wire::Op) -> Result<ReadOp, ErrorCode> {
    use wire::op::Op as M;
    match op.op {
        Some(M::GetData(p)) => Ok(ReadOp::GetData {
            path: path(&p.path)?,
            watch: false,
        }),
        Some(M::GetChildren(p)) => Ok(ReadOp::GetChildren {
            path: path(&p.path)?,
            watch: false,
            with_stat: false,
        }),
        _ => Err(ErrorCode::BadArguments),
    }
}

/// Decodes a request's op. `Unimplemented` for an op this server does not know.
pub fn decode(op: Option<Op>) -> Result<Decoded, ErrorCode> {
    let op = op.ok_or(ErrorCode::Unimplemented)?;
    Ok(match op {
        Op::Create(c) => Decoded::Write(create(c)?),
        Op::Delete(d) => Decoded::Write(WriteOp::Delete {
            path: path(&d.path)?,
            version: d.version,
        }),
        Op::Exists(p) => Decoded::Read(ReadOp::Exists {
            path: path(&p.path)?,
            watch: p.watch,
        }),
        Op::GetData(p) => Decoded::Read(ReadOp::GetData {
            path: path(&p.path)?,
            watch: p.watch,
        }),
        Op::SetData(s) => Decoded::Write(WriteOp::SetData {
            path: path(&s.path)?,
            data: s.data,
            version: s.version,
        }),
        Op::GetAcl(p) => Decoded::Read(ReadOp::GetAcl {
            path: path(&p.path)?,
        }),
        Op::SetAcl(s) => {
            if s.acl.is_empty() {
                return Err(ErrorCode::InvalidAcl);
            }
            Decoded::Write(WriteOp::SetAcl {
                path: path(&s.path)?,
                acl: acl_from_wire(&s.acl),
                aversion: s.aversion,
            })
        }
        Op::GetChildren(g) => Decoded::Read(ReadOp::GetChildren {
            path: path(&g.path)?,
            watch: g.watch,
            with_stat: g.with_stat,
        }),
        Op::Sync(p) => Decoded::Sync(path(&p.path)?),
        Op::Ping(_) => Decoded::Ping,
        Op::Check(c) => Decoded::Write(WriteOp::Multi(vec![WriteOp::Check {
            path: path(&c.path)?,
            version: c.version,
        }])),
        Op::Multi(m) => Decoded::Write(WriteOp::Multi(
            m.ops.into_iter().map(multi_op).collect::<Result<_, _>>()?,
        )),
        Op::MultiRead(m) => Decoded::Read(ReadOp::MultiRead(
            m.ops.into_iter().map(read_op).collect::<Result<_, _>>()?,
        )),
        Op::GetAllChildrenNumber(p) => Decoded::Read(ReadOp::GetAllChildrenNumber {
            path: path(&p.path)?,
        }),
        Op::GetEphemerals(p) => {
            // ZooKeeper accepts "/" and any valid prefix path.
            Decoded::Read(ReadOp::GetEphemerals {
                prefix: path(&p.path)?,
            })
        }
        Op::AddWatch(a) => Decoded::AddWatch {
            path: path(&a.path)?,
            recursive: a.mode == wire::AddWatchMode::PersistentRecursive as i32,
        },
        Op::AddWatchFrom(a) => {
            path(&a.path)?;
            Decoded::AddWatchFrom(a)
        }
        Op::RemoveWatches(r) => Decoded::RemoveWatches {
            path: path(&r.path)?,
            kind: r.r#type,
        },
        Op::CheckWatches(r) => Decoded::CheckWatches {
            path: path(&r.path)?,
            kind: r.r#type,
        },
        Op::SetWatches(s) => Decoded::SetWatches(s),
        Op::Auth(a) => Decoded::Auth {
            scheme: a.scheme,
            auth: a.auth.to_vec(),
        },
        Op::WhoAmI(_) => Decoded::WhoAmI,
        Op::CloseSession(_) => Decoded::Close,
        Op::ServerState(_) => Decoded::ServerState,
    })
}

pub fn stat_to_wire(s: &Stat) -> wire::Stat {
    wire::Stat {
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

fn result_to_wire(reply: Reply) -> wire::response::Result {
    use wire::response::Result as R;
    match reply {
        Reply::Empty => R::Empty(wire::Empty {}),
        Reply::Create { path, stat } => R::Create(wire::CreateResponse {
            path,
            stat: Some(stat_to_wire(&stat)),
        }),
        Reply::Stat(s) => R::Stat(stat_to_wire(&s)),
        Reply::Data { data, stat } => R::GetData(wire::GetDataResponse {
            data,
            stat: Some(stat_to_wire(&stat)),
        }),
        Reply::Children { children, stat } => R::GetChildren(wire::GetChildrenResponse {
            children,
            stat: Some(stat_to_wire(&stat)),
        }),
        Reply::Acl { acl, stat } => R::GetAcl(wire::GetAclResponse {
            acl: acl_to_wire(&acl),
            stat: Some(stat_to_wire(&stat)),
        }),
        Reply::Count(count) => R::Count(wire::CountResponse { count }),
        Reply::Paths(paths) => R::Paths(wire::PathsResponse { paths }),
        Reply::Multi(results) => R::Multi(wire::MultiResponse {
            results: results.into_iter().map(op_result_to_wire).collect(),
        }),
        Reply::Synced(path) => R::Sync(wire::PathRequest { path }),
        Reply::ServerState(s) => R::ServerState(wire::ServerStateResponse {
            id: s.id,
            role: s.role.to_string(),
            epoch: s.epoch,
            last_zxid: s.last_zxid,
            serving: s.serving,
        }),
        Reply::WhoAmI(ids) => R::WhoAmI(wire::WhoAmIResponse {
            clients: ids
                .into_iter()
                .map(|(auth_scheme, user)| wire::ClientInfo { auth_scheme, user })
                .collect(),
        }),
    }
}

fn op_result_to_wire(r: Result<Reply, ErrorCode>) -> wire::OpResult {
    use wire::op_result::Result as R;
    match r {
        Err(e) => wire::OpResult {
            error: e.code(),
            result: None,
        },
        Ok(reply) => {
            let result = match reply {
                Reply::Create { path, stat } => Some(R::Create(wire::CreateResponse {
                    path,
                    stat: Some(stat_to_wire(&stat)),
                })),
                Reply::Stat(s) => Some(R::SetData(stat_to_wire(&s))),
                Reply::Data { data, stat } => Some(R::GetData(wire::GetDataResponse {
                    data,
                    stat: Some(stat_to_wire(&stat)),
                })),
                Reply::Children { children, stat } => {
                    Some(R::GetChildren(wire::GetChildrenResponse {
                        children,
                        stat: Some(stat_to_wire(&stat)),
                    }))
                }
                // delete and check succeed with no payload.
                _ => Some(R::Check(wire::Empty {})),
            };
            wire::OpResult { error: 0, result }
        }
    }
}

/// Builds the response frame for an outcome.
pub fn response(xid: i32, zxid: i64, outcome: Outcome) -> wire::ServerFrame {
    let (error, result) = match outcome {
        Outcome::Ok(reply) => (0, Some(result_to_wire(reply))),
        Outcome::Err(e) => (e.code(), None),
        Outcome::MultiFailed(f) => (
            f.code.code(),
            Some(wire::response::Result::Multi(wire::MultiResponse {
                results: f
                    .results
                    .into_iter()
                    .map(|error| wire::OpResult {
                        error,
                        result: None,
                    })
                    .collect(),
            })),
        ),
    };
    wire::ServerFrame {
        kind: Some(wire::server_frame::Kind::Response(wire::Response {
            xid,
            zxid,
            error,
            result,
        })),
    }
}

pub fn event(e: Event) -> wire::ServerFrame {
    let mut ev = wire::WatchEvent {
        r#type: e.event_type as i32,
        state: KeeperState::SyncConnected as i32,
        path: e.path,
        zxid: e.zxid,
        ..Default::default()
    };
    if let Some(c) = e.change {
        ev.watch_id = c.watch_id;
        ev.stat = c.stat;
        ev.has_data = c.data.is_some();
        ev.data = c.data.unwrap_or_default();
    }
    wire::ServerFrame {
        kind: Some(wire::server_frame::Kind::Event(ev)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_op_is_unimplemented() {
        assert_eq!(decode(None), Err(ErrorCode::Unimplemented));
    }

    #[test]
    fn invalid_paths_are_bad_arguments() {
        let op = Op::GetData(wire::PathWatchRequest {
            path: "a/b".into(),
            watch: false,
        });
        assert_eq!(decode(Some(op)), Err(ErrorCode::BadArguments));
        let op = Op::Create(wire::CreateRequest {
            path: "/a/".into(),
            ..Default::default()
        });
        assert_eq!(decode(Some(op)), Err(ErrorCode::BadArguments));
        let op = Op::Create(wire::CreateRequest {
            path: "/a/".into(),
            mode: wire::CreateMode::PersistentSequential as i32,
            ..Default::default()
        });
        assert!(decode(Some(op)).is_ok());
        let op = Op::Create(wire::CreateRequest {
            path: "/a".into(),
            mode: 42,
            ..Default::default()
        });
        assert_eq!(decode(Some(op)), Err(ErrorCode::BadArguments));
    }

    #[test]
    fn empty_acl_means_open_on_create() {
        let op = Op::Create(wire::CreateRequest {
            path: "/a".into(),
            ..Default::default()
        });
        match decode(Some(op)).unwrap() {
            Decoded::Write(WriteOp::Create { acl, .. }) => assert_eq!(acl, Acl::open()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failed_multi_carries_per_op_codes() {
        let f = crate::reply::MultiFailure {
            code: ErrorCode::NoNode,
            results: vec![
                0,
                ErrorCode::NoNode.code(),
                ErrorCode::RuntimeInconsistency.code(),
            ],
        };
        let frame = response(5, 9, Outcome::MultiFailed(f));
        let Some(wire::server_frame::Kind::Response(r)) = frame.kind else {
            panic!()
        };
        assert_eq!((r.xid, r.zxid, r.error), (5, 9, -101));
        let Some(wire::response::Result::Multi(m)) = r.result else {
            panic!()
        };
        let codes: Vec<i32> = m.results.iter().map(|r| r.error).collect();
        assert_eq!(codes, vec![0, -101, -2]);
    }
}
