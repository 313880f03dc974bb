//! Sample values of every record, request and response, shared by the round-trip and
//! truncation tests. Values are chosen so that no field is at its default (a field dropped or
//! swapped by the encoder shows up as a mismatch).

#![allow(dead_code)]

use zabkeeper_jute::*;

pub fn stat(seed: i64) -> Stat {
    Stat {
        czxid: seed + 1,
        mzxid: seed + 2,
        ctime: seed + 3,
        mtime: seed + 4,
        version: 5,
        cversion: -6,
        aversion: 7,
        ephemeral_owner: -1 - seed,
        data_length: 9,
        num_children: 10,
        pzxid: seed + 11,
    }
}

pub fn acls() -> Vec<Acl> {
    vec![
        Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        },
        Acl {
            perms: 1 | 8,
            id: Id {
                scheme: "digest".into(),
                id: "bob:qX1xJf7Tq2lS0kNm9C1a2b3c4d5=".into(),
            },
        },
    ]
}

pub fn create() -> CreateRequest {
    CreateRequest {
        path: "/app/lock-".into(),
        data: vec![0, 1, 2, 0xff],
        acl: acls(),
        flags: 3,
    }
}

pub fn create_ttl() -> CreateTtlRequest {
    CreateTtlRequest {
        path: "/ttl".into(),
        data: b"d".to_vec(),
        acl: acls(),
        flags: 5,
        ttl: 60_000,
    }
}

pub fn strings(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}/a"), format!("{prefix}/ü"), String::new()]
}

pub fn write_ops() -> Vec<MultiOp> {
    vec![
        MultiOp::Create(create()),
        MultiOp::Create2(create()),
        MultiOp::CreateContainer(create()),
        MultiOp::CreateTtl(create_ttl()),
        MultiOp::Delete(DeleteRequest {
            path: "/d".into(),
            version: 4,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/s".into(),
            data: b"new".to_vec(),
            version: -1,
        }),
        MultiOp::Check(CheckVersionRequest {
            path: "/c".into(),
            version: 2,
        }),
    ]
}

pub fn read_ops() -> Vec<MultiOp> {
    vec![
        MultiOp::GetChildren(GetChildrenRequest {
            path: "/gc".into(),
            watch: false,
        }),
        MultiOp::GetData(GetDataRequest {
            path: "/gd".into(),
            watch: true,
        }),
    ]
}

/// One of every request variant that has a body layout (everything but `Unknown`).
pub fn requests() -> Vec<Request> {
    vec![
        Request::Create(create()),
        Request::Create2(create()),
        Request::CreateContainer(create()),
        Request::CreateTtl(create_ttl()),
        Request::Delete(DeleteRequest {
            path: "/x".into(),
            version: 3,
        }),
        Request::Exists(ExistsRequest {
            path: "/x".into(),
            watch: true,
        }),
        Request::GetData(GetDataRequest {
            path: "/x".into(),
            watch: true,
        }),
        Request::SetData(SetDataRequest {
            path: "/x".into(),
            data: vec![9; 100],
            version: 12,
        }),
        Request::GetAcl(GetAclRequest { path: "/x".into() }),
        Request::SetAcl(SetAclRequest {
            path: "/x".into(),
            acl: acls(),
            version: 1,
        }),
        Request::GetChildren(GetChildrenRequest {
            path: "/x".into(),
            watch: true,
        }),
        Request::GetChildren2(GetChildren2Request {
            path: "/x".into(),
            watch: true,
        }),
        Request::Sync(SyncRequest { path: "/x".into() }),
        Request::Check(CheckVersionRequest {
            path: "/x".into(),
            version: 8,
        }),
        Request::Multi(write_ops()),
        Request::Multi(vec![]),
        Request::MultiRead(read_ops()),
        Request::Reconfig(ReconfigRequest {
            joining_servers: "server.4=h:2888:3888;2181".into(),
            leaving_servers: "2".into(),
            new_members: String::new(),
            cur_config_id: -1,
        }),
        Request::CheckWatches(CheckWatchesRequest {
            path: "/x".into(),
            watcher_type: 3,
        }),
        Request::RemoveWatches(RemoveWatchesRequest {
            path: "/x".into(),
            watcher_type: 1,
        }),
        Request::AddWatch(AddWatchRequest {
            path: "/x".into(),
            mode: 1,
        }),
        Request::SetWatches(SetWatches {
            relative_zxid: 0x5_0000_0001,
            data_watches: strings("/d"),
            exist_watches: strings("/e"),
            child_watches: strings("/c"),
        }),
        Request::SetWatches2(SetWatches2 {
            relative_zxid: 77,
            data_watches: strings("/d"),
            exist_watches: vec![],
            child_watches: strings("/c"),
            persistent_watches: strings("/p"),
            persistent_recursive_watches: strings("/r"),
        }),
        Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: "/e".into(),
        }),
        Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: "/n".into() }),
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"bob:secret".to_vec(),
        }),
        Request::Sasl(GetSaslRequest {
            token: vec![0x60, 0x82, 1, 2],
        }),
        Request::Ping,
        Request::WhoAmI,
        Request::CloseSession,
    ]
}

/// One of every response variant, with the opcode a client would decode it under.
pub fn responses() -> Vec<(OpCode, Response)> {
    vec![
        (OpCode::Delete, Response::Empty),
        (
            OpCode::Create,
            Response::Create(CreateResponse {
                path: "/app/lock-0000000007".into(),
            }),
        ),
        (
            OpCode::Create2,
            Response::Create2(Create2Response {
                path: "/c2".into(),
                stat: stat(100),
            }),
        ),
        (
            OpCode::CreateTtl,
            Response::Create2(Create2Response {
                path: "/ttl".into(),
                stat: stat(110),
            }),
        ),
        (
            OpCode::Exists,
            Response::Exists(ExistsResponse { stat: stat(200) }),
        ),
        (
            OpCode::GetData,
            Response::GetData(GetDataResponse {
                data: b"hello".to_vec(),
                stat: stat(300),
            }),
        ),
        (
            OpCode::Reconfig,
            Response::GetData(GetDataResponse {
                data: b"server.1=h:2888:3888\nversion=100000000".to_vec(),
                stat: stat(310),
            }),
        ),
        (
            OpCode::SetData,
            Response::SetData(SetDataResponse { stat: stat(400) }),
        ),
        (
            OpCode::GetAcl,
            Response::GetAcl(GetAclResponse {
                acl: acls(),
                stat: stat(500),
            }),
        ),
        (
            OpCode::SetAcl,
            Response::SetAcl(SetAclResponse { stat: stat(600) }),
        ),
        (
            OpCode::GetChildren,
            Response::GetChildren(GetChildrenResponse {
                children: vec!["a".into(), "b".into()],
            }),
        ),
        (
            OpCode::GetChildren2,
            Response::GetChildren2(GetChildren2Response {
                children: vec!["c".into()],
                stat: stat(700),
            }),
        ),
        (
            OpCode::Sync,
            Response::Sync(SyncResponse { path: "/s".into() }),
        ),
        (
            OpCode::Multi,
            Response::Multi(vec![
                MultiResult::Create(CreateResponse { path: "/a".into() }),
                MultiResult::Create2(Create2Response {
                    path: "/b".into(),
                    stat: stat(800),
                }),
                MultiResult::Delete,
                MultiResult::SetData(SetDataResponse { stat: stat(810) }),
                MultiResult::Check,
            ]),
        ),
        (
            OpCode::Multi,
            Response::Multi(vec![
                MultiResult::Error(0),
                MultiResult::Error(-103),
                MultiResult::Error(-2),
            ]),
        ),
        (
            OpCode::MultiRead,
            Response::Multi(vec![
                MultiResult::GetChildren(GetChildrenResponse {
                    children: vec!["x".into(), "y".into()],
                }),
                MultiResult::GetData(GetDataResponse {
                    data: vec![1, 2, 3],
                    stat: stat(900),
                }),
                MultiResult::Error(-101),
            ]),
        ),
        (
            OpCode::GetEphemerals,
            Response::GetEphemerals(GetEphemeralsResponse {
                ephemerals: strings("/eph"),
            }),
        ),
        (
            OpCode::GetAllChildrenNumber,
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number: 42 }),
        ),
        (
            OpCode::WhoAmI,
            Response::WhoAmI(WhoAmIResponse {
                client_info: vec![
                    ClientInfo {
                        auth_scheme: "ip".into(),
                        user: "127.0.0.1".into(),
                    },
                    ClientInfo {
                        auth_scheme: "digest".into(),
                        user: "bob".into(),
                    },
                ],
            }),
        ),
        (
            OpCode::Sasl,
            Response::Sasl(SetSaslResponse {
                token: vec![5, 6, 7],
            }),
        ),
        (
            OpCode::Notification,
            Response::Event(WatcherEvent {
                event_type: 4,
                state: 3,
                path: "/parent".into(),
            }),
        ),
    ]
}
