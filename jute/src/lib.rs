//! ZooKeeper's client wire protocol ("jute") as plain Rust values: no I/O, no async.
//!
//! The server maps these onto its internal requests so that unmodified ZooKeeper clients
//! (Kazoo, Curator, zkCli, the C client) can talk to zabkeeper; the load generator uses the same
//! types as a ZooKeeper client. Both directions of every record are implemented.
//!
//! # The protocol in one page
//!
//! **Encoding** ([`codec`]): big-endian `int`/`long`, one-byte `boolean`, length-prefixed
//! `buffer`/`ustring`/`vector` (length -1 = null). A record is its fields in order, nothing else.
//!
//! **Framing** ([`mod@frame`], and `FrameCodec` for tokio): every packet in both directions is
//! a 4-byte big-endian length then the payload. ZooKeeper closes the connection on a length over
//! `jute.maxbuffer` (1 MiB - 1 by default) instead of answering.
//!
//! **Four-letter words** ([`four_letter_word`]): if the first 4 bytes of a fresh connection
//! spell a known admin word (`ruok`, `srvr`, `mntr`, …) they are a command, not a length; the
//! server answers in text and closes.
//!
//! **Handshake**: the client's first frame is a bare [`ConnectRequest`] (no request header):
//! `{protocolVersion, lastZxidSeen, timeOut, sessionId, passwd}` followed by a `readOnly` byte
//! that clients before 3.4 omit. The server answers a bare [`ConnectResponse`]
//! `{protocolVersion, timeOut, sessionId, passwd(16 bytes)}` plus its own `readOnly` byte.
//! `sessionId` 0 asks for a new session; a non-zero id with its password resumes one. An
//! unknown or expired session or a wrong password is answered with
//! [`ConnectResponse::refused`] (time_out 0, session_id 0), then the connection is closed. A
//! `lastZxidSeen` newer than anything the server has applied gets no answer at all: the server
//! closes the connection and the client tries another server, so a session never sees time go
//! backwards. The server echoes the `readOnly` byte only to clients that sent one.
//!
//! **Requests**: every later client frame is [`RequestHeader`] `{xid, type}` and the op's
//! record ([`Request`], [`decode_request`], [`encode_request`]). The client numbers its requests
//! with increasing xids; the server answers strictly in the order received, so the client matches
//! replies by xid in FIFO order.
//!
//! **Replies**: [`ReplyHeader`] `{xid, zxid, err}` then, only when `err` is 0, the op's response
//! record ([`Response`], [`encode_response`], [`decode_response`]). `zxid` is the server's last
//! applied zxid when it answered; the client remembers the highest it has seen and sends it as
//! `lastZxidSeen` when it reconnects.
//!
//! **Special xids** (a server answers these with the same xid):
//! [`NOTIFICATION_XID`] -1 marks a server-pushed [`WatcherEvent`] (type, keeper state, path),
//! whose header zxid is the zxid of the change; [`PING_XID`] -2 is a ping (opcode 11, no body),
//! sent by the client when idle for a third of the timeout; [`AUTH_XID`] -4 an [`AuthPacket`]
//! (a failed auth is answered with err AuthFailed and the session closed);
//! [`SET_WATCHES_XID`] -8 the [`SetWatches`]/[`SetWatches2`] a client sends right after
//! reconnecting to re-register its watches relative to its last zxid. Notifications must be
//! sent before the reply to any later request that could observe the change.
//!
//! **Multi** ([`multi`]): the body of `multi` (14) / `multiRead` (22) is a sequence of
//! `MultiHeader {type, done, err}` + op record, ended by `{-1, true, -1}`; the response mirrors
//! it with one result per op, a failed op being type -1 with an `ErrorResponse {err}`.
//!
//! **Close**: the client sends `closeSession` (-11, no body); the server answers with an empty
//! reply and closes the connection.
//!
//! # Example: one exchange, both sides
//!
//! ```
//! use zabkeeper_jute::*;
//!
//! // Client: a getData with a watch, xid 1.
//! let req = Request::GetData(GetDataRequest { path: "/cfg".into(), watch: true });
//! let wire = encode_request(1, &req);
//!
//! // Server: split the frame, decode, answer.
//! let payload = frame(&wire, ZK_MAX_BUFFER).unwrap().expect("complete frame");
//! let (header, decoded) = decode_request_payload(payload).unwrap();
//! assert_eq!(decoded, req);
//! let reply = match decoded {
//!     Request::GetData(_) => Response::GetData(GetDataResponse {
//!         data: b"v1".to_vec(),
//!         stat: Stat::default(),
//!     }),
//!     Request::Unknown(_) => Response::Empty, // with err = Unimplemented (-6)
//!     _ => unimplemented!(),
//! };
//! let wire = encode_response(ReplyHeader { xid: header.xid, zxid: 0x100000001, err: 0 }, &reply);
//!
//! // Client: match the reply to its request by xid.
//! let payload = frame(&wire, ZK_MAX_BUFFER).unwrap().unwrap();
//! let (h, resp) = decode_reply(payload, |xid| (xid == 1).then_some(OpCode::GetData)).unwrap();
//! assert_eq!(h.zxid, 0x100000001);
//! assert_eq!(resp, reply);
//! ```
//!
//! # Errors
//! Decoding never panics and never allocates more than the input's size, whatever the input:
//! short input is [`JuteError::Truncated`], a negative length [`JuteError::InvalidLength`], and
//! so on. An opcode without a known body is not an error but [`Request::Unknown`], which the
//! server answers with `Unimplemented` (-6).

pub mod codec;
mod fourlw;
pub mod frame;
#[cfg(feature = "codec")]
mod framed;
pub mod multi;
pub mod records;
mod request;
mod response;

pub use codec::{Reader, Writer};
pub use fourlw::{four_letter_word, FOUR_LETTER_WORDS};
pub use frame::{encode_frame, frame, frame_len, ZK_MAX_BUFFER};
#[cfg(feature = "codec")]
pub use framed::{FrameCodec, Inbound};
pub use multi::{MultiOp, MultiResult};
pub use records::*;
pub use request::{
    decode_request, decode_request_payload, encode_connect_request, encode_request, Request,
};
pub use response::{
    decode_reply, decode_response, encode_connect_response, encode_response, Response,
};

/// Reply xid of a watch notification.
pub const NOTIFICATION_XID: i32 = -1;
/// Xid of pings and their replies.
pub const PING_XID: i32 = -2;
/// Xid of auth packets and their replies.
pub const AUTH_XID: i32 = -4;
/// Xid of setWatches/setWatches2 and their replies.
pub const SET_WATCHES_XID: i32 = -8;

/// The crate's one error type: why bytes could not be decoded (or framed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JuteError {
    /// The input ended before a value was complete.
    #[error("truncated at offset {offset}: need {needed} bytes, {available} left")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A length or count below -1, or a negative frame length.
    #[error("invalid length {len} at offset {offset}")]
    InvalidLength { offset: usize, len: i32 },
    /// A frame longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// A `ustring` that is not UTF-8.
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    /// Bytes left after a record decoded with [`Record::from_bytes`].
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    /// An op or result type that cannot appear inside a multi.
    #[error("type {0} cannot appear in a multi")]
    InvalidMultiOp(i32),
    /// Read and write ops mixed in one multi, or the wrong kind for multi / multiRead.
    #[error("multi mixes read and write ops")]
    MixedMultiOps,
    /// A reply whose xid matches no outstanding request.
    #[error("reply xid {0} matches no outstanding request")]
    UnexpectedXid(i32),
    /// The connection failed underneath [`FrameCodec`] (kept as kind and text so the error stays
    /// `Clone` and `PartialEq`).
    #[error("i/o error ({kind:?}): {message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
}

/// ZooKeeper's opcodes (`ZooDefs.OpCode`). There is no opcode 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum OpCode {
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    Error = -1,
}

impl OpCode {
    /// Every opcode, for iteration in tests and tables.
    pub const ALL: [OpCode; 33] = [
        OpCode::Notification,
        OpCode::Create,
        OpCode::Delete,
        OpCode::Exists,
        OpCode::GetData,
        OpCode::SetData,
        OpCode::GetAcl,
        OpCode::SetAcl,
        OpCode::GetChildren,
        OpCode::Sync,
        OpCode::Ping,
        OpCode::GetChildren2,
        OpCode::Check,
        OpCode::Multi,
        OpCode::Create2,
        OpCode::Reconfig,
        OpCode::CheckWatches,
        OpCode::RemoveWatches,
        OpCode::CreateContainer,
        OpCode::DeleteContainer,
        OpCode::CreateTtl,
        OpCode::MultiRead,
        OpCode::Auth,
        OpCode::SetWatches,
        OpCode::Sasl,
        OpCode::GetEphemerals,
        OpCode::GetAllChildrenNumber,
        OpCode::SetWatches2,
        OpCode::AddWatch,
        OpCode::WhoAmI,
        OpCode::CreateSession,
        OpCode::CloseSession,
        OpCode::Error,
    ];

    /// The opcode with this number, if ZooKeeper defines one.
    pub fn from_i32(v: i32) -> Option<OpCode> {
        Some(match v {
            0 => OpCode::Notification,
            1 => OpCode::Create,
            2 => OpCode::Delete,
            3 => OpCode::Exists,
            4 => OpCode::GetData,
            5 => OpCode::SetData,
            6 => OpCode::GetAcl,
            7 => OpCode::SetAcl,
            8 => OpCode::GetChildren,
            9 => OpCode::Sync,
            11 => OpCode::Ping,
            12 => OpCode::GetChildren2,
            13 => OpCode::Check,
            14 => OpCode::Multi,
            15 => OpCode::Create2,
            16 => OpCode::Reconfig,
            17 => OpCode::CheckWatches,
            18 => OpCode::RemoveWatches,
            19 => OpCode::CreateContainer,
            20 => OpCode::DeleteContainer,
            21 => OpCode::CreateTtl,
            22 => OpCode::MultiRead,
            100 => OpCode::Auth,
            101 => OpCode::SetWatches,
            102 => OpCode::Sasl,
            103 => OpCode::GetEphemerals,
            104 => OpCode::GetAllChildrenNumber,
            105 => OpCode::SetWatches2,
            106 => OpCode::AddWatch,
            107 => OpCode::WhoAmI,
            -10 => OpCode::CreateSession,
            -11 => OpCode::CloseSession,
            -1 => OpCode::Error,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_numbers_are_zookeepers() {
        let expected = [
            (OpCode::Notification, 0),
            (OpCode::Create, 1),
            (OpCode::Delete, 2),
            (OpCode::Exists, 3),
            (OpCode::GetData, 4),
            (OpCode::SetData, 5),
            (OpCode::GetAcl, 6),
            (OpCode::SetAcl, 7),
            (OpCode::GetChildren, 8),
            (OpCode::Sync, 9),
            (OpCode::Ping, 11),
            (OpCode::GetChildren2, 12),
            (OpCode::Check, 13),
            (OpCode::Multi, 14),
            (OpCode::Create2, 15),
            (OpCode::Reconfig, 16),
            (OpCode::CheckWatches, 17),
            (OpCode::RemoveWatches, 18),
            (OpCode::CreateContainer, 19),
            (OpCode::DeleteContainer, 20),
            (OpCode::CreateTtl, 21),
            (OpCode::MultiRead, 22),
            (OpCode::Auth, 100),
            (OpCode::SetWatches, 101),
            (OpCode::Sasl, 102),
            (OpCode::GetEphemerals, 103),
            (OpCode::GetAllChildrenNumber, 104),
            (OpCode::SetWatches2, 105),
            (OpCode::AddWatch, 106),
            (OpCode::WhoAmI, 107),
            (OpCode::CreateSession, -10),
            (OpCode::CloseSession, -11),
            (OpCode::Error, -1),
        ];
        assert_eq!(expected.len(), OpCode::ALL.len());
        for (op, n) in expected {
            assert_eq!(op as i32, n);
            assert_eq!(OpCode::from_i32(n), Some(op));
        }
        for op in OpCode::ALL {
            assert_eq!(OpCode::from_i32(op as i32), Some(op));
        }
        assert_eq!(OpCode::from_i32(10), None);
        assert_eq!(OpCode::from_i32(23), None);
        assert_eq!(OpCode::from_i32(108), None);
    }
}
