//! Every jute record of ZooKeeper's client protocol, field for field as in ZooKeeper's
//! `zookeeper.jute` (modules `org.apache.zookeeper.data` and `org.apache.zookeeper.proto`).
//!
//! Names follow Rust casing (`Acl`, `GetAclRequest`, `CreateTtlRequest` for jute's `ACL`,
//! `GetACLRequest`, `CreateTTLRequest`); field order is the wire order and must not change.
//! Fields that jute types as `buffer` are `Vec<u8>`, `ustring` is `String`, `vector<…>` is `Vec`
//! (null decodes as empty, see [`crate::codec`]).
//!
//! Two records deviate from plain jute and are written by hand: [`ConnectRequest`] and
//! [`ConnectResponse`] end with a `readOnly` boolean that ZooKeeper appends outside the jute
//! definition and that old clients and servers leave out, so it is an `Option<bool>`: `None`
//! on decode when the bytes end before it, and not written on encode when `None`.
//!
//! Requests with no body (ping, closeSession, whoAmI) and responses with no body (delete,
//! setWatches, auth, …) have no record here; see [`crate::Request`] and [`crate::Response`].

use crate::codec::{Reader, Writer};
use crate::JuteError;

/// A jute record: a value with a fixed field layout.
pub trait Record: Sized {
    /// Reads the record's fields in order.
    fn decode(r: &mut Reader<'_>) -> Result<Self, JuteError>;
    /// Appends the record's fields in order.
    fn encode(&self, w: &mut Writer);

    /// Decodes a whole byte slice holding exactly this record.
    fn from_bytes(bytes: &[u8]) -> Result<Self, JuteError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Encodes this record alone.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_inner()
    }
}

/// How one field type is read and written, and the fewest bytes it can occupy (used to bound
/// vector counts before allocating).
trait Field: Sized {
    const MIN_SIZE: usize;
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError>;
    fn write(&self, w: &mut Writer);
}

impl Field for i32 {
    const MIN_SIZE: usize = 4;
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_int()
    }
    fn write(&self, w: &mut Writer) {
        w.write_int(*self)
    }
}

impl Field for i64 {
    const MIN_SIZE: usize = 8;
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_long()
    }
    fn write(&self, w: &mut Writer) {
        w.write_long(*self)
    }
}

impl Field for bool {
    const MIN_SIZE: usize = 1;
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_bool()
    }
    fn write(&self, w: &mut Writer) {
        w.write_bool(*self)
    }
}

/// `buffer`.
impl Field for Vec<u8> {
    const MIN_SIZE: usize = 4;
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_buffer()
    }
    fn write(&self, w: &mut Writer) {
        w.write_buffer(self)
    }
}

/// `ustring`.
impl Field for String {
    const MIN_SIZE: usize = 4;
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_ustring()
    }
    fn write(&self, w: &mut Writer) {
        w.write_ustring(self)
    }
}

/// `vector<…>` of strings or records (`Vec<u8>` is taken by `buffer`).
macro_rules! vector_field {
    ($($elem:ty),*) => {$(
        impl Field for Vec<$elem> {
            const MIN_SIZE: usize = 4;
            fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
                r.read_vec(<$elem as Field>::MIN_SIZE, <$elem as Field>::read)
            }
            fn write(&self, w: &mut Writer) {
                w.write_vec(self, |w, e| e.write(w))
            }
        }
    )*};
}

/// Defines a record struct whose fields are read and written in declaration order.
macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl Record for $name {
            #[allow(unused_variables)]
            fn decode(r: &mut Reader<'_>) -> Result<Self, JuteError> {
                // Struct expressions evaluate their fields in the order written: wire order.
                Ok($name { $($field: <$ty as Field>::read(r)?,)* })
            }
            #[allow(unused_variables)]
            fn encode(&self, w: &mut Writer) {
                $(Field::write(&self.$field, w);)*
            }
        }

        impl Field for $name {
            const MIN_SIZE: usize = 0 $(+ <$ty as Field>::MIN_SIZE)*;
            fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
                <$name as Record>::decode(r)
            }
            fn write(&self, w: &mut Writer) {
                Record::encode(self, w)
            }
        }
    };
}

// ---- org.apache.zookeeper.data ----

record! {
    /// An identity: `scheme` (`world`, `auth`, `digest`, `ip`, `x509`, `sasl`) and its `id`.
    Id { scheme: String, id: String }
}

record! {
    /// One ACL entry: permission bits (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16) for an id.
    Acl { perms: i32, id: Id }
}

record! {
    /// A znode's metadata as the client sees it.
    Stat {
        czxid: i64,
        mzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
        data_length: i32,
        num_children: i32,
        pzxid: i64,
    }
}

record! {
    /// One authenticated identity of a session, in a [`WhoAmIResponse`].
    ClientInfo { auth_scheme: String, user: String }
}

vector_field!(String, Acl, Id, ClientInfo);

// ---- headers ----

record! {
    /// Precedes every request after the handshake. `op` is jute's `type`: an [`crate::OpCode`]
    /// number, kept raw so that unknown opcodes survive decoding.
    RequestHeader {
        /// Client-chosen request id, echoed in the reply; increasing, or a special xid.
        xid: i32,
        op: i32,
    }
}

record! {
    /// Precedes every reply and notification.
    ReplyHeader {
        /// The request's xid, or a special xid (-1 for a notification).
        xid: i32,
        /// The server's last applied zxid (for a notification: the zxid of the change).
        zxid: i64,
        /// 0, or a ZooKeeper error code; when non-zero no body follows.
        err: i32,
    }
}

record! {
    /// Precedes each op (request) or result (response) inside a multi; `done` marks the end.
    /// `op` is jute's `type` (-1 for an error result); `err` is -1 in requests, the result's
    /// error code (0 if none) in responses.
    MultiHeader { op: i32, done: bool, err: i32 }
}

impl MultiHeader {
    /// The header that ends a multi request or response: `{type -1, done true, err -1}`.
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };
}

// ---- handshake ----

/// The first message on a connection (no [`RequestHeader`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    /// The highest zxid the client has seen; a server behind it must not serve the session.
    pub last_zxid_seen: i64,
    /// Requested session timeout in milliseconds.
    pub time_out: i32,
    /// 0 for a new session, else the session being resumed.
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Whether the client accepts a read-only server; `None` when an old client left it out.
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(ConnectRequest {
            protocol_version: r.read_int()?,
            last_zxid_seen: r.read_long()?,
            time_out: r.read_int()?,
            session_id: r.read_long()?,
            passwd: r.read_buffer()?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.write_int(self.protocol_version);
        w.write_long(self.last_zxid_seen);
        w.write_int(self.time_out);
        w.write_long(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

/// The server's answer to a [`ConnectRequest`] (no [`ReplyHeader`]). A refused or expired
/// session is answered with `time_out` 0, `session_id` 0 and 16 zero bytes of password, then the
/// connection is closed. ZooKeeper writes the `readOnly` byte only when the request carried one
/// (`ZooKeeperServer.finishSessionInit` checks `isOldClient`), so a server should answer
/// `read_only: None` to a request whose `read_only` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    /// Negotiated session timeout in milliseconds.
    pub time_out: i32,
    pub session_id: i64,
    /// The session password (16 bytes from ZooKeeper).
    pub passwd: Vec<u8>,
    /// Whether this server is read-only; `None` when an old server left it out.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// ZooKeeper's answer to a session it will not serve (unknown, expired, wrong password):
    /// timeout 0, session 0, 16 zero bytes of password; `read_only` echoes the request's
    /// presence of the byte (`Some(false)` for current clients, `None` for old ones).
    pub fn refused(request: &ConnectRequest) -> Self {
        ConnectResponse {
            protocol_version: 0,
            time_out: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: request.read_only.map(|_| false),
        }
    }
}

impl Record for ConnectResponse {
    fn decode(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(ConnectResponse {
            protocol_version: r.read_int()?,
            time_out: r.read_int()?,
            session_id: r.read_long()?,
            passwd: r.read_buffer()?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
    fn encode(&self, w: &mut Writer) {
        w.write_int(self.protocol_version);
        w.write_int(self.time_out);
        w.write_long(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

// ---- requests ----

record! {
    /// `auth` (xid -4): add an identity to the session, e.g. scheme `digest`, auth `user:pass`.
    /// `auth_type` is always 0.
    AuthPacket { auth_type: i32, scheme: String, auth: Vec<u8> }
}

record! {
    /// `create`, `create2`, `createContainer` (and those ops inside a multi).
    CreateRequest { path: String, data: Vec<u8>, acl: Vec<Acl>, flags: i32 }
}

record! {
    /// `createTTL`: a create with a time-to-live in milliseconds.
    CreateTtlRequest { path: String, data: Vec<u8>, acl: Vec<Acl>, flags: i32, ttl: i64 }
}

record! {
    /// `delete`; version -1 matches any.
    DeleteRequest { path: String, version: i32 }
}

record! {
    /// `exists`; `watch` leaves a data watch (or an exist watch if the node is absent).
    ExistsRequest { path: String, watch: bool }
}

record! {
    /// `getData`.
    GetDataRequest { path: String, watch: bool }
}

record! {
    /// `setData`; version -1 matches any.
    SetDataRequest { path: String, data: Vec<u8>, version: i32 }
}

record! {
    /// `getACL`.
    GetAclRequest { path: String }
}

record! {
    /// `setACL`; version is the expected ACL version (aversion), -1 matches any.
    SetAclRequest { path: String, acl: Vec<Acl>, version: i32 }
}

record! {
    /// `getChildren`.
    GetChildrenRequest { path: String, watch: bool }
}

record! {
    /// `getChildren2` (children and the parent's Stat).
    GetChildren2Request { path: String, watch: bool }
}

record! {
    /// `sync`.
    SyncRequest { path: String }
}

record! {
    /// `check` inside a multi: fail unless the node's version is `version`.
    CheckVersionRequest { path: String, version: i32 }
}

record! {
    /// `reconfig` (decoded so the server can refuse it properly).
    ReconfigRequest {
        joining_servers: String,
        leaving_servers: String,
        new_members: String,
        cur_config_id: i64,
    }
}

record! {
    /// `checkWatches`; `watcher_type`: Children 1, Data 2, Any 3, Persistent 4, PersistentRecursive 5.
    CheckWatchesRequest { path: String, watcher_type: i32 }
}

record! {
    /// `removeWatches`; `watcher_type` as in [`CheckWatchesRequest`].
    RemoveWatchesRequest { path: String, watcher_type: i32 }
}

record! {
    /// `setWatches` (xid -8): re-register watches after reconnect; the server fires at once
    /// any that changed after `relative_zxid`.
    SetWatches {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
    }
}

record! {
    /// `setWatches2`: [`SetWatches`] plus persistent and persistent-recursive watches.
    SetWatches2 {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
        persistent_watches: Vec<String>,
        persistent_recursive_watches: Vec<String>,
    }
}

record! {
    /// `addWatch`; mode 0 persistent, 1 persistent-recursive.
    AddWatchRequest { path: String, mode: i32 }
}

record! {
    /// `getEphemerals`: the session's ephemerals under `prefix_path`.
    GetEphemeralsRequest { prefix_path: String }
}

record! {
    /// `getAllChildrenNumber`: number of descendants of `path`.
    GetAllChildrenNumberRequest { path: String }
}

record! {
    /// `sasl`: one SASL token from the client (jute `GetSASLRequest`).
    GetSaslRequest { token: Vec<u8> }
}

// ---- responses ----

record! {
    /// A failed op inside a multi response.
    ErrorResponse { err: i32 }
}

record! {
    /// `create` (and `create` inside a multi).
    CreateResponse { path: String }
}

record! {
    /// `create2`, `createContainer`, `createTTL`.
    Create2Response { path: String, stat: Stat }
}

record! {
    /// `exists` when the node exists (otherwise the reply header carries NoNode and no body).
    ExistsResponse { stat: Stat }
}

record! {
    /// `getData`; also `reconfig`'s answer (the new config and its Stat).
    GetDataResponse { data: Vec<u8>, stat: Stat }
}

record! {
    /// `setData`.
    SetDataResponse { stat: Stat }
}

record! {
    /// `getACL`.
    GetAclResponse { acl: Vec<Acl>, stat: Stat }
}

record! {
    /// `setACL`.
    SetAclResponse { stat: Stat }
}

record! {
    /// `getChildren`: names, not paths.
    GetChildrenResponse { children: Vec<String> }
}

record! {
    /// `getChildren2`.
    GetChildren2Response { children: Vec<String>, stat: Stat }
}

record! {
    /// `sync`.
    SyncResponse { path: String }
}

record! {
    /// `getEphemerals`: full paths.
    GetEphemeralsResponse { ephemerals: Vec<String> }
}

record! {
    /// `getAllChildrenNumber`.
    GetAllChildrenNumberResponse { total_number: i32 }
}

record! {
    /// `whoAmI`.
    WhoAmIResponse { client_info: Vec<ClientInfo> }
}

record! {
    /// `sasl`: the server's SASL token (jute `SetSASLResponse`).
    SetSaslResponse { token: Vec<u8> }
}

record! {
    /// A watch notification, sent with reply xid -1. `event_type`: NodeCreated 1, NodeDeleted 2,
    /// NodeDataChanged 3, NodeChildrenChanged 4, …; `state`: SyncConnected 3, ….
    WatcherEvent { event_type: i32, state: i32, path: String }
}
