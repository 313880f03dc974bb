//! Encode-then-decode gives back the same value, for every record, request and response.

mod common;

use proptest::prelude::*;
use std::fmt::Debug;
use zabkeeper_jute::*;

fn rt<R: Record + PartialEq + Debug>(v: R) {
    let bytes = v.to_bytes();
    assert_eq!(R::from_bytes(&bytes).unwrap(), v);
}

#[test]
fn every_record_round_trips() {
    let s = common::stat(1);
    rt(Id {
        scheme: "ip".into(),
        id: "10.0.0.0/8".into(),
    });
    rt(common::acls().remove(1));
    rt(s.clone());
    rt(ClientInfo {
        auth_scheme: "x509".into(),
        user: "CN=me".into(),
    });
    rt(RequestHeader { xid: 12, op: 4 });
    rt(ReplyHeader {
        xid: -8,
        zxid: i64::MAX,
        err: -112,
    });
    rt(MultiHeader::END);
    rt(MultiHeader {
        op: 5,
        done: false,
        err: -1,
    });
    rt(ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 99,
        time_out: 6000,
        session_id: 0x1234,
        passwd: vec![7; 16],
        read_only: Some(true),
    });
    rt(ConnectRequest {
        read_only: None,
        ..Default::default()
    });
    rt(ConnectResponse {
        protocol_version: 0,
        time_out: 6000,
        session_id: 0x1234,
        passwd: vec![7; 16],
        read_only: Some(false),
    });
    rt(ConnectResponse::default());
    rt(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: b"a:b".to_vec(),
    });
    rt(common::create());
    rt(common::create_ttl());
    rt(DeleteRequest {
        path: "/d".into(),
        version: -1,
    });
    rt(ExistsRequest {
        path: "/e".into(),
        watch: true,
    });
    rt(GetDataRequest {
        path: "/g".into(),
        watch: false,
    });
    rt(SetDataRequest {
        path: "/s".into(),
        data: vec![1; 10],
        version: 3,
    });
    rt(GetAclRequest { path: "/a".into() });
    rt(SetAclRequest {
        path: "/a".into(),
        acl: common::acls(),
        version: 2,
    });
    rt(GetChildrenRequest {
        path: "/c".into(),
        watch: true,
    });
    rt(GetChildren2Request {
        path: "/c".into(),
        watch: true,
    });
    rt(SyncRequest { path: "/".into() });
    rt(CheckVersionRequest {
        path: "/v".into(),
        version: 9,
    });
    rt(ReconfigRequest {
        joining_servers: "j".into(),
        leaving_servers: "l".into(),
        new_members: "n".into(),
        cur_config_id: 3,
    });
    rt(CheckWatchesRequest {
        path: "/w".into(),
        watcher_type: 2,
    });
    rt(RemoveWatchesRequest {
        path: "/w".into(),
        watcher_type: 5,
    });
    rt(SetWatches {
        relative_zxid: 1,
        data_watches: common::strings("/d"),
        exist_watches: common::strings("/e"),
        child_watches: common::strings("/c"),
    });
    rt(SetWatches2 {
        relative_zxid: 2,
        data_watches: common::strings("/d"),
        exist_watches: common::strings("/e"),
        child_watches: common::strings("/c"),
        persistent_watches: common::strings("/p"),
        persistent_recursive_watches: common::strings("/r"),
    });
    rt(AddWatchRequest {
        path: "/w".into(),
        mode: 0,
    });
    rt(GetEphemeralsRequest {
        prefix_path: "/".into(),
    });
    rt(GetAllChildrenNumberRequest { path: "/".into() });
    rt(GetSaslRequest { token: vec![1] });
    rt(ErrorResponse { err: -110 });
    rt(CreateResponse { path: "/p".into() });
    rt(Create2Response {
        path: "/p".into(),
        stat: s.clone(),
    });
    rt(ExistsResponse { stat: s.clone() });
    rt(GetDataResponse {
        data: vec![3; 3],
        stat: s.clone(),
    });
    rt(SetDataResponse { stat: s.clone() });
    rt(GetAclResponse {
        acl: common::acls(),
        stat: s.clone(),
    });
    rt(SetAclResponse { stat: s.clone() });
    rt(GetChildrenResponse {
        children: common::strings(""),
    });
    rt(GetChildren2Response {
        children: common::strings(""),
        stat: s.clone(),
    });
    rt(SyncResponse { path: "/".into() });
    rt(GetEphemeralsResponse {
        ephemerals: common::strings("/e"),
    });
    rt(GetAllChildrenNumberResponse { total_number: 7 });
    rt(WhoAmIResponse {
        client_info: vec![ClientInfo {
            auth_scheme: "ip".into(),
            user: "::1".into(),
        }],
    });
    rt(SetSaslResponse { token: vec![] });
    rt(WatcherEvent {
        event_type: -1,
        state: -112,
        path: String::new(),
    });
}

#[test]
fn every_request_round_trips_through_a_frame() {
    for (i, req) in common::requests().into_iter().enumerate() {
        let xid = i as i32 + 1;
        let bytes = encode_request(xid, &req);
        let payload = frame(&bytes, ZK_MAX_BUFFER).unwrap().unwrap();
        assert_eq!(payload.len() + 4, bytes.len(), "{req:?}");
        let (h, decoded) = decode_request_payload(payload).unwrap();
        assert_eq!(h, RequestHeader { xid, op: req.op() });
        assert_eq!(decoded, req);
    }
}

#[test]
fn every_response_round_trips_through_a_frame() {
    for (i, (op, resp)) in common::responses().into_iter().enumerate() {
        let xid = if op == OpCode::Notification {
            NOTIFICATION_XID
        } else {
            i as i32 + 1
        };
        let header = ReplyHeader {
            xid,
            zxid: 0x7_0000_0000 + i as i64,
            err: 0,
        };
        let bytes = encode_response(header.clone(), &resp);
        let payload = frame(&bytes, ZK_MAX_BUFFER).unwrap().unwrap();
        let (h, decoded) = decode_reply(payload, |x| (x == xid).then_some(op)).unwrap();
        assert_eq!(h, header);
        assert_eq!(decoded, resp, "{op:?}");
    }
}

#[test]
fn unknown_and_bodiless_opcodes_are_unknown_not_errors() {
    for op in [10, 23, 99, 108, 1000, -2, -12, i32::MIN, i32::MAX] {
        let h = RequestHeader { xid: 1, op };
        assert_eq!(
            decode_request(h, &[0xde, 0xad]),
            Ok(Request::Unknown(op)),
            "{op}"
        );
    }
    // Opcodes ZooKeeper defines but a client may not send with a body we parse.
    for op in [
        OpCode::Notification,
        OpCode::CreateSession,
        OpCode::DeleteContainer,
        OpCode::Error,
    ] {
        let h = RequestHeader {
            xid: 1,
            op: op as i32,
        };
        assert_eq!(decode_request(h, b"/x"), Ok(Request::Unknown(op as i32)));
    }
    let bytes = encode_request(3, &Request::Unknown(999));
    assert_eq!(
        decode_request_payload(&bytes[4..]),
        Ok((RequestHeader { xid: 3, op: 999 }, Request::Unknown(999)))
    );
}

#[test]
fn trailing_bytes_after_a_request_body_are_ignored_like_zookeeper() {
    let mut body = SyncRequest { path: "/a".into() }.to_bytes();
    body.extend_from_slice(&[1, 2, 3]);
    let h = RequestHeader { xid: 1, op: 9 };
    assert_eq!(
        decode_request(h, &body),
        Ok(Request::Sync(SyncRequest { path: "/a".into() }))
    );
    // …but Record::from_bytes is strict.
    assert_eq!(
        SyncRequest::from_bytes(&body),
        Err(JuteError::TrailingBytes(3))
    );
}

fn multi_body(ops: &[MultiOp]) -> Vec<u8> {
    let mut w = Writer::new();
    multi::encode_ops(ops, &mut w);
    w.into_inner()
}

#[test]
fn multi_kinds_are_not_mixed() {
    let mut mixed = common::write_ops();
    mixed.extend(common::read_ops());
    let body = multi_body(&mixed);
    for op in [OpCode::Multi, OpCode::MultiRead] {
        let h = RequestHeader {
            xid: 1,
            op: op as i32,
        };
        assert_eq!(decode_request(h, &body), Err(JuteError::MixedMultiOps));
    }
    // Reads alone in a multi, writes alone in a multiRead: wrong kind for the opcode.
    let h = RequestHeader { xid: 1, op: 14 };
    assert_eq!(
        decode_request(h, &multi_body(&common::read_ops())),
        Err(JuteError::MixedMultiOps)
    );
    let h = RequestHeader { xid: 1, op: 22 };
    assert_eq!(
        decode_request(h, &multi_body(&common::write_ops())),
        Err(JuteError::MixedMultiOps)
    );
}

#[test]
fn ops_that_cannot_be_in_a_multi_are_rejected() {
    // An exists (3) op inside a multi.
    let mut w = Writer::new();
    MultiHeader {
        op: 3,
        done: false,
        err: -1,
    }
    .encode(&mut w);
    ExistsRequest {
        path: "/x".into(),
        watch: false,
    }
    .encode(&mut w);
    MultiHeader::END.encode(&mut w);
    let h = RequestHeader { xid: 1, op: 14 };
    assert_eq!(
        decode_request(h, &w.into_inner()),
        Err(JuteError::InvalidMultiOp(3))
    );
    // A result of type exists inside a multi response.
    let body = [0, 0, 0, 3, 0, 0, 0, 0, 0];
    assert_eq!(
        decode_response(OpCode::Multi, &body),
        Err(JuteError::InvalidMultiOp(3))
    );
}

#[test]
fn reply_with_unknown_xid_is_an_error() {
    let bytes = encode_response(
        ReplyHeader {
            xid: 42,
            zxid: 1,
            err: 0,
        },
        &Response::Empty,
    );
    assert_eq!(
        decode_reply(&bytes[4..], |_| None),
        Err(JuteError::UnexpectedXid(42))
    );
}

#[test]
fn request_write_classification() {
    for req in common::requests() {
        let expected = matches!(
            OpCode::from_i32(req.op()).unwrap(),
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CloseSession
        );
        assert_eq!(req.is_write(), expected, "{req:?}");
    }
}

// ---- property tests over generated values ----

fn any_stat() -> impl Strategy<Value = Stat> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<i32>(), any::<i32>(), any::<i32>()),
        any::<i64>(),
        (any::<i32>(), any::<i32>()),
        any::<i64>(),
    )
        .prop_map(|((cz, mz, ct, mt), (v, cv, av), eo, (dl, nc), pz)| Stat {
            czxid: cz,
            mzxid: mz,
            ctime: ct,
            mtime: mt,
            version: v,
            cversion: cv,
            aversion: av,
            ephemeral_owner: eo,
            data_length: dl,
            num_children: nc,
            pzxid: pz,
        })
}

fn any_acl() -> impl Strategy<Value = Acl> {
    (any::<i32>(), ".{0,12}", ".{0,24}").prop_map(|(perms, scheme, id)| Acl {
        perms,
        id: Id { scheme, id },
    })
}

fn any_create() -> impl Strategy<Value = CreateRequest> {
    (
        "/.{0,30}",
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any_acl(), 0..4),
        any::<i32>(),
    )
        .prop_map(|(path, data, acl, flags)| CreateRequest {
            path,
            data,
            acl,
            flags,
        })
}

fn any_write_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        any_create().prop_map(MultiOp::Create),
        any_create().prop_map(MultiOp::Create2),
        (any_create(), any::<i64>()).prop_map(|(c, ttl)| MultiOp::CreateTtl(CreateTtlRequest {
            path: c.path,
            data: c.data,
            acl: c.acl,
            flags: c.flags,
            ttl,
        })),
        (".{0,20}", any::<i32>())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (
            ".{0,20}",
            proptest::collection::vec(any::<u8>(), 0..32),
            any::<i32>()
        )
            .prop_map(|(path, data, version)| MultiOp::SetData(SetDataRequest {
                path,
                data,
                version
            })),
        (".{0,20}", any::<i32>())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn any_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        ".{0,20}".prop_map(|path| MultiResult::Create(CreateResponse { path })),
        (".{0,20}", any_stat())
            .prop_map(|(path, stat)| MultiResult::Create2(Create2Response { path, stat })),
        Just(MultiResult::Delete),
        Just(MultiResult::Check),
        any_stat().prop_map(|stat| MultiResult::SetData(SetDataResponse { stat })),
        proptest::collection::vec(".{0,8}", 0..5)
            .prop_map(|children| MultiResult::GetChildren(GetChildrenResponse { children })),
        (proptest::collection::vec(any::<u8>(), 0..32), any_stat())
            .prop_map(|(data, stat)| MultiResult::GetData(GetDataResponse { data, stat })),
        any::<i32>().prop_map(MultiResult::Error),
    ]
}

proptest! {
    #[test]
    fn stat_round_trips(s in any_stat()) {
        let bytes = s.to_bytes();
        prop_assert_eq!(bytes.len(), 68);
        prop_assert_eq!(Stat::from_bytes(&bytes).unwrap(), s);
    }

    #[test]
    fn create_round_trips(c in any_create()) {
        let req = Request::Create(c);
        let bytes = encode_request(1, &req);
        prop_assert_eq!(decode_request_payload(&bytes[4..]).unwrap().1, req);
    }

    #[test]
    fn multi_request_round_trips(ops in proptest::collection::vec(any_write_op(), 0..6), xid in any::<i32>()) {
        let req = Request::Multi(ops);
        let bytes = encode_request(xid, &req);
        let (h, decoded) = decode_request_payload(frame(&bytes, usize::MAX).unwrap().unwrap()).unwrap();
        prop_assert_eq!(h, RequestHeader { xid, op: 14 });
        prop_assert_eq!(decoded, req);
    }

    #[test]
    fn multi_response_round_trips(results in proptest::collection::vec(any_result(), 0..6)) {
        let resp = Response::Multi(results);
        let bytes = encode_response(ReplyHeader { xid: 1, zxid: 2, err: 0 }, &resp);
        let (_, decoded) = decode_reply(&bytes[4..], |_| Some(OpCode::Multi)).unwrap();
        prop_assert_eq!(decoded, resp);
    }

    #[test]
    fn connect_request_round_trips(
        pv in any::<i32>(), z in any::<i64>(), t in any::<i32>(), sid in any::<i64>(),
        pw in proptest::collection::vec(any::<u8>(), 0..20), ro in proptest::option::of(any::<bool>()),
    ) {
        let req = ConnectRequest { protocol_version: pv, last_zxid_seen: z, time_out: t, session_id: sid, passwd: pw, read_only: ro };
        prop_assert_eq!(ConnectRequest::from_bytes(&req.to_bytes()).unwrap(), req);
    }
}

#[test]
fn request_path_names_the_target() {
    let req = Request::Delete(DeleteRequest {
        path: "/d".into(),
        version: 0,
    });
    assert_eq!(req.path(), Some("/d"));
    let req = Request::GetEphemerals(GetEphemeralsRequest {
        prefix_path: "/e".into(),
    });
    assert_eq!(req.path(), Some("/e"));
    assert_eq!(Request::Multi(common::write_ops()).path(), None);
    assert_eq!(Request::Ping.path(), None);
    // Every sample with a single-path body reports a path starting with '/'.
    for req in common::requests() {
        if let Some(p) = req.path() {
            assert!(p.starts_with('/'), "{req:?}");
        }
    }
}
