//! Typed requests: the server decodes `(RequestHeader, body)` into a [`Request`]; the client
//! encodes a [`Request`] with its xid into a frame.
//!
//! Decoding is as lenient as ZooKeeper where ZooKeeper is lenient and no more: bytes after a
//! complete body are ignored (ZooKeeper reads the record and drops the rest), an opcode this
//! crate does not know is [`Request::Unknown`] (the server answers `Unimplemented`), and a body
//! that is short or malformed is an `Err`. ZooKeeper answers such a body with `MarshallingError`
//! (-5) under the request's xid and keeps the session (`PrepRequestProcessor` turns the failed
//! deserialisation into an error txn); the header was readable, so a server can do the same.
//! Only a frame whose header cannot be read leaves nothing to answer, and the connection closes.

use crate::codec::{Reader, Writer};
use crate::multi::{self, MultiOp};
use crate::records::*;
use crate::{JuteError, OpCode};

/// A client request after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    Sync(SyncRequest),
    /// Standalone `check` (opcode 13); ZooKeeper's clients send it only inside a multi.
    Check(CheckVersionRequest),
    /// `multi` (14): write ops applied atomically.
    Multi(Vec<MultiOp>),
    /// `multiRead` (22): read ops, each answered on its own.
    MultiRead(Vec<MultiOp>),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    AddWatch(AddWatchRequest),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    Auth(AuthPacket),
    Sasl(GetSaslRequest),
    /// No body; sent with xid -2.
    Ping,
    /// No body.
    WhoAmI,
    /// No body; the server answers, then closes the connection.
    CloseSession,
    /// An opcode without a body layout here (unknown numbers, `createSession`, `deleteContainer`,
    /// `error`, `notification`). The server answers `Unimplemented`.
    Unknown(i32),
}

impl Request {
    /// The opcode this request is sent with (`Unknown` carries its raw number).
    pub fn op(&self) -> i32 {
        let code = match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Sync(_) => OpCode::Sync,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::Auth(_) => OpCode::Auth,
            Request::Sasl(_) => OpCode::Sasl,
            Request::Ping => OpCode::Ping,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
            Request::Unknown(op) => return *op,
        };
        code as i32
    }

    /// True for requests that change the tree or the session (forwarded to the leader).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// The path a single-path request names (`None` for multi, session-level and bodiless
    /// requests).
    pub fn path(&self) -> Option<&str> {
        Some(match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => &r.path,
            Request::CreateTtl(r) => &r.path,
            Request::Delete(r) => &r.path,
            Request::Exists(r) => &r.path,
            Request::GetData(r) => &r.path,
            Request::SetData(r) => &r.path,
            Request::GetAcl(r) => &r.path,
            Request::SetAcl(r) => &r.path,
            Request::GetChildren(r) => &r.path,
            Request::GetChildren2(r) => &r.path,
            Request::Sync(r) => &r.path,
            Request::Check(r) => &r.path,
            Request::CheckWatches(r) => &r.path,
            Request::RemoveWatches(r) => &r.path,
            Request::AddWatch(r) => &r.path,
            Request::GetEphemerals(r) => &r.prefix_path,
            Request::GetAllChildrenNumber(r) => &r.path,
            Request::Multi(_)
            | Request::MultiRead(_)
            | Request::Reconfig(_)
            | Request::SetWatches(_)
            | Request::SetWatches2(_)
            | Request::Auth(_)
            | Request::Sasl(_)
            | Request::Ping
            | Request::WhoAmI
            | Request::CloseSession
            | Request::Unknown(_) => return None,
        })
    }

    /// Appends this request's body (no header) to `w`.
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.encode(w),
            Request::CreateTtl(r) => r.encode(w),
            Request::Delete(r) => r.encode(w),
            Request::Exists(r) => r.encode(w),
            Request::GetData(r) => r.encode(w),
            Request::SetData(r) => r.encode(w),
            Request::GetAcl(r) => r.encode(w),
            Request::SetAcl(r) => r.encode(w),
            Request::GetChildren(r) => r.encode(w),
            Request::GetChildren2(r) => r.encode(w),
            Request::Sync(r) => r.encode(w),
            Request::Check(r) => r.encode(w),
            Request::Multi(ops) | Request::MultiRead(ops) => multi::encode_ops(ops, w),
            Request::Reconfig(r) => r.encode(w),
            Request::CheckWatches(r) => r.encode(w),
            Request::RemoveWatches(r) => r.encode(w),
            Request::AddWatch(r) => r.encode(w),
            Request::SetWatches(r) => r.encode(w),
            Request::SetWatches2(r) => r.encode(w),
            Request::GetEphemerals(r) => r.encode(w),
            Request::GetAllChildrenNumber(r) => r.encode(w),
            Request::Auth(r) => r.encode(w),
            Request::Sasl(r) => r.encode(w),
            Request::Ping | Request::WhoAmI | Request::CloseSession | Request::Unknown(_) => {}
        }
    }
}

/// Decodes a request body given its header (the server side). See the module doc for what is
/// an error and what is [`Request::Unknown`].
pub fn decode_request(header: RequestHeader, body: &[u8]) -> Result<Request, JuteError> {
    let r = &mut Reader::new(body);
    let Some(op) = OpCode::from_i32(header.op) else {
        return Ok(Request::Unknown(header.op));
    };
    Ok(match op {
        OpCode::Create => Request::Create(CreateRequest::decode(r)?),
        OpCode::Create2 => Request::Create2(CreateRequest::decode(r)?),
        OpCode::CreateContainer => Request::CreateContainer(CreateRequest::decode(r)?),
        OpCode::CreateTtl => Request::CreateTtl(CreateTtlRequest::decode(r)?),
        OpCode::Delete => Request::Delete(DeleteRequest::decode(r)?),
        OpCode::Exists => Request::Exists(ExistsRequest::decode(r)?),
        OpCode::GetData => Request::GetData(GetDataRequest::decode(r)?),
        OpCode::SetData => Request::SetData(SetDataRequest::decode(r)?),
        OpCode::GetAcl => Request::GetAcl(GetAclRequest::decode(r)?),
        OpCode::SetAcl => Request::SetAcl(SetAclRequest::decode(r)?),
        OpCode::GetChildren => Request::GetChildren(GetChildrenRequest::decode(r)?),
        OpCode::GetChildren2 => Request::GetChildren2(GetChildren2Request::decode(r)?),
        OpCode::Sync => Request::Sync(SyncRequest::decode(r)?),
        OpCode::Check => Request::Check(CheckVersionRequest::decode(r)?),
        OpCode::Multi => {
            let ops = multi::decode_ops(r)?;
            if ops.iter().any(MultiOp::is_read) {
                return Err(JuteError::MixedMultiOps);
            }
            Request::Multi(ops)
        }
        OpCode::MultiRead => {
            let ops = multi::decode_ops(r)?;
            if ops.iter().any(|o| !o.is_read()) {
                return Err(JuteError::MixedMultiOps);
            }
            Request::MultiRead(ops)
        }
        OpCode::Reconfig => Request::Reconfig(ReconfigRequest::decode(r)?),
        OpCode::CheckWatches => Request::CheckWatches(CheckWatchesRequest::decode(r)?),
        OpCode::RemoveWatches => Request::RemoveWatches(RemoveWatchesRequest::decode(r)?),
        OpCode::AddWatch => Request::AddWatch(AddWatchRequest::decode(r)?),
        OpCode::SetWatches => Request::SetWatches(SetWatches::decode(r)?),
        OpCode::SetWatches2 => Request::SetWatches2(SetWatches2::decode(r)?),
        OpCode::GetEphemerals => Request::GetEphemerals(GetEphemeralsRequest::decode(r)?),
        OpCode::GetAllChildrenNumber => {
            Request::GetAllChildrenNumber(GetAllChildrenNumberRequest::decode(r)?)
        }
        OpCode::Auth => Request::Auth(AuthPacket::decode(r)?),
        OpCode::Sasl => Request::Sasl(GetSaslRequest::decode(r)?),
        OpCode::Ping => Request::Ping,
        OpCode::WhoAmI => Request::WhoAmI,
        OpCode::CloseSession => Request::CloseSession,
        OpCode::Notification | OpCode::CreateSession | OpCode::DeleteContainer | OpCode::Error => {
            Request::Unknown(header.op)
        }
    })
}

/// Splits a request payload (a frame without its length) into header and typed request.
pub fn decode_request_payload(payload: &[u8]) -> Result<(RequestHeader, Request), JuteError> {
    let mut r = Reader::new(payload);
    let header = RequestHeader::decode(&mut r)?;
    let req = decode_request(header.clone(), r.rest())?;
    Ok((header, req))
}

/// Encodes a whole request frame (4-byte length, header, body) with this xid (the client side).
/// Use [`crate::PING_XID`] for `Ping`, [`crate::AUTH_XID`] for `Auth` and
/// [`crate::SET_WATCHES_XID`] for `SetWatches`/`SetWatches2`, as ZooKeeper's clients do.
pub fn encode_request(xid: i32, req: &Request) -> Vec<u8> {
    let mut w = Writer::for_frame();
    RequestHeader { xid, op: req.op() }.encode(&mut w);
    req.encode_body(&mut w);
    w.into_frame()
}

/// Encodes the handshake frame (4-byte length, `ConnectRequest`, no header).
pub fn encode_connect_request(req: &ConnectRequest) -> Vec<u8> {
    let mut w = Writer::for_frame();
    req.encode(&mut w);
    w.into_frame()
}
