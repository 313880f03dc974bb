//! Typed responses: the server encodes `(ReplyHeader, Response)` into a frame; the client decodes
//! a reply body given the opcode it sent under that xid.
//!
//! When the reply header's `err` is not 0 ZooKeeper sends the header alone and its clients do
//! not read a body, so such replies are encoded with [`Response::Empty`] and
//! [`decode_reply`] returns `Empty` for them whatever the opcode. The one exception to "errors
//! have no body" is a failed `multi`: its header err is 0 and the failure is in the results.

use crate::codec::{Reader, Writer};
use crate::multi::{self, MultiResult};
use crate::records::*;
use crate::{JuteError, OpCode, AUTH_XID, NOTIFICATION_XID, PING_XID, SET_WATCHES_XID};

/// The body of a reply (or a notification).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: error replies, and delete, setWatches(2), auth, ping, closeSession,
    /// checkWatches, removeWatches, addWatch, standalone check.
    Empty,
    /// `create`.
    Create(CreateResponse),
    /// `create2`, `createContainer`, `createTTL`.
    Create2(Create2Response),
    Exists(ExistsResponse),
    /// `getData`, and `reconfig` (the new configuration).
    GetData(GetDataResponse),
    SetData(SetDataResponse),
    GetAcl(GetAclResponse),
    SetAcl(SetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    /// `multi` and `multiRead`.
    Multi(Vec<MultiResult>),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    WhoAmI(WhoAmIResponse),
    Sasl(SetSaslResponse),
    /// A watch notification (reply xid -1, opcode `notification`).
    Event(WatcherEvent),
}

impl Response {
    /// Appends this response's body (no header) to `w`.
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Create(r) => r.encode(w),
            Response::Create2(r) => r.encode(w),
            Response::Exists(r) => r.encode(w),
            Response::GetData(r) => r.encode(w),
            Response::SetData(r) => r.encode(w),
            Response::GetAcl(r) => r.encode(w),
            Response::SetAcl(r) => r.encode(w),
            Response::GetChildren(r) => r.encode(w),
            Response::GetChildren2(r) => r.encode(w),
            Response::Sync(r) => r.encode(w),
            Response::Multi(results) => multi::encode_results(results, w),
            Response::GetEphemerals(r) => r.encode(w),
            Response::GetAllChildrenNumber(r) => r.encode(w),
            Response::WhoAmI(r) => r.encode(w),
            Response::Sasl(r) => r.encode(w),
            Response::Event(r) => r.encode(w),
        }
    }
}

/// Encodes a whole reply frame (4-byte length, header, body) (the server side). For a
/// notification pass `ReplyHeader { xid: NOTIFICATION_XID, zxid: <zxid of the change>, err: 0 }`
/// and [`Response::Event`].
pub fn encode_response(header: ReplyHeader, resp: &Response) -> Vec<u8> {
    let mut w = Writer::for_frame();
    header.encode(&mut w);
    resp.encode_body(&mut w);
    w.into_frame()
}

/// Encodes the handshake answer frame (4-byte length, `ConnectResponse`, no header).
pub fn encode_connect_response(resp: &ConnectResponse) -> Vec<u8> {
    let mut w = Writer::for_frame();
    resp.encode(&mut w);
    w.into_frame()
}

/// Decodes a successful reply's body for the opcode that was sent (the client side). Opcodes
/// whose replies have no body give [`Response::Empty`]; bytes after the body are ignored.
pub fn decode_response(op: OpCode, body: &[u8]) -> Result<Response, JuteError> {
    let r = &mut Reader::new(body);
    Ok(match op {
        OpCode::Create => Response::Create(CreateResponse::decode(r)?),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Response::Create2(Create2Response::decode(r)?)
        }
        OpCode::Exists => Response::Exists(ExistsResponse::decode(r)?),
        OpCode::GetData | OpCode::Reconfig => Response::GetData(GetDataResponse::decode(r)?),
        OpCode::SetData => Response::SetData(SetDataResponse::decode(r)?),
        OpCode::GetAcl => Response::GetAcl(GetAclResponse::decode(r)?),
        OpCode::SetAcl => Response::SetAcl(SetAclResponse::decode(r)?),
        OpCode::GetChildren => Response::GetChildren(GetChildrenResponse::decode(r)?),
        OpCode::GetChildren2 => Response::GetChildren2(GetChildren2Response::decode(r)?),
        OpCode::Sync => Response::Sync(SyncResponse::decode(r)?),
        OpCode::Multi | OpCode::MultiRead => Response::Multi(multi::decode_results(r)?),
        OpCode::GetEphemerals => Response::GetEphemerals(GetEphemeralsResponse::decode(r)?),
        OpCode::GetAllChildrenNumber => {
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse::decode(r)?)
        }
        OpCode::WhoAmI => Response::WhoAmI(WhoAmIResponse::decode(r)?),
        OpCode::Sasl => Response::Sasl(SetSaslResponse::decode(r)?),
        OpCode::Notification => Response::Event(WatcherEvent::decode(r)?),
        OpCode::Delete
        | OpCode::Check
        | OpCode::Ping
        | OpCode::CheckWatches
        | OpCode::RemoveWatches
        | OpCode::AddWatch
        | OpCode::SetWatches
        | OpCode::SetWatches2
        | OpCode::Auth
        | OpCode::CloseSession
        | OpCode::CreateSession
        | OpCode::DeleteContainer
        | OpCode::Error => Response::Empty,
    })
}

/// Decodes a reply payload (a frame without its length): the header, then the body (the client
/// side). `op_for` maps the reply's xid to the opcode the client sent with it; the special xids
/// are handled without asking (-1 a notification, decoded as [`Response::Event`]; -2 ping,
/// -4 auth and -8 setWatches, all bodiless). Error replies give [`Response::Empty`]. An xid
/// `op_for` does not know is [`JuteError::UnexpectedXid`].
pub fn decode_reply(
    payload: &[u8],
    op_for: impl FnOnce(i32) -> Option<OpCode>,
) -> Result<(ReplyHeader, Response), JuteError> {
    let mut r = Reader::new(payload);
    let header = ReplyHeader::decode(&mut r)?;
    let op = match header.xid {
        NOTIFICATION_XID => OpCode::Notification,
        PING_XID => OpCode::Ping,
        AUTH_XID => OpCode::Auth,
        SET_WATCHES_XID => OpCode::SetWatches,
        xid => op_for(xid).ok_or(JuteError::UnexpectedXid(xid))?,
    };
    if header.err != 0 {
        return Ok((header, Response::Empty));
    }
    let resp = decode_response(op, r.rest())?;
    Ok((header, resp))
}
