//! Golden bytes: encodings written out by hand from the jute layout in ZooKeeper's
//! `zookeeper.jute`, `MultiOperationRecord` and `MultiResponse`, so the encoding is pinned and not
//! merely symmetric. Each test checks both directions.

use zabkeeper_jute::*;

/// Parses a hex string with free whitespace and `|` separators.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| b.is_ascii_hexdigit())
        .map(|b| (b as char).to_digit(16).unwrap() as u8)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd hex in {s}");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

fn world_anyone_all() -> Acl {
    Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }
}

#[test]
fn connect_request_frame() {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0x10,
        time_out: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    let expected = hex("0000002d |
         00000000 | 0000000000000010 | 00007530 | 0000000000000000 |
         00000010 00000000000000000000000000000000 | 00");
    assert_eq!(encode_connect_request(&req), expected);
    let payload = frame(&expected, ZK_MAX_BUFFER).unwrap().unwrap();
    assert_eq!(ConnectRequest::from_bytes(payload).unwrap(), req);
}

#[test]
fn connect_request_from_an_old_client_has_no_read_only_byte() {
    let bytes = hex("00000000 | 0000000100000005 | 00002710 | 00000000deadbeef |
         00000004 01020304");
    let req = ConnectRequest::from_bytes(&bytes).unwrap();
    assert_eq!(
        req,
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1_0000_0005,
            time_out: 10_000,
            session_id: 0xdead_beef,
            passwd: vec![1, 2, 3, 4],
            read_only: None,
        }
    );
    assert_eq!(req.to_bytes(), bytes, "None is written as nothing");
}

#[test]
fn connect_response_with_and_without_read_only() {
    let resp = ConnectResponse {
        protocol_version: 0,
        time_out: 4000,
        session_id: 0x0100_0000_0000_0001,
        passwd: (0..16).collect(),
        read_only: Some(true),
    };
    let expected = hex("00000025 |
         00000000 | 00000fa0 | 0100000000000001 |
         00000010 000102030405060708090a0b0c0d0e0f | 01");
    assert_eq!(encode_connect_response(&resp), expected);
    let old = ConnectResponse::from_bytes(&expected[4..expected.len() - 1]).unwrap();
    assert_eq!(old.read_only, None);
    assert_eq!(old.passwd, resp.passwd);
}

#[test]
fn reply_header() {
    let h = ReplyHeader {
        xid: 1,
        zxid: 0x1_0000_0002,
        err: -101,
    };
    let expected = hex("00000001 | 0000000100000002 | ffffff9b");
    assert_eq!(h.to_bytes(), expected);
    assert_eq!(ReplyHeader::from_bytes(&expected).unwrap(), h);
}

#[test]
fn stat() {
    let s = Stat {
        czxid: 1,
        mzxid: 2,
        ctime: 3,
        mtime: 4,
        version: 5,
        cversion: 6,
        aversion: 7,
        ephemeral_owner: i64::MIN, // a container node
        data_length: 9,
        num_children: 10,
        pzxid: 11,
    };
    let expected = hex(
        "0000000000000001 0000000000000002 0000000000000003 0000000000000004 |
         00000005 00000006 00000007 | 8000000000000000 | 00000009 0000000a |
         000000000000000b",
    );
    assert_eq!(expected.len(), 68);
    assert_eq!(s.to_bytes(), expected);
    assert_eq!(Stat::from_bytes(&expected).unwrap(), s);
}

#[test]
fn get_data_request_frame() {
    let expected = hex("00000011 | 00000007 00000004 | 00000004 2f7a6b31 | 01");
    let req = Request::GetData(GetDataRequest {
        path: "/zk1".into(),
        watch: true,
    });
    assert_eq!(encode_request(7, &req), expected);
    let (h, decoded) = decode_request_payload(&expected[4..]).unwrap();
    assert_eq!(h, RequestHeader { xid: 7, op: 4 });
    assert_eq!(decoded, req);
}

#[test]
fn ping_frame() {
    let expected = hex("00000008 | fffffffe 0000000b");
    assert_eq!(encode_request(PING_XID, &Request::Ping), expected);
}

/// A multi of a create and a delete, with its terminator.
#[test]
fn multi_request_frame() {
    let req = Request::Multi(vec![
        MultiOp::Create(CreateRequest {
            path: "/a".into(),
            data: b"x".to_vec(),
            acl: vec![world_anyone_all()],
            flags: 0,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/b".into(),
            version: -1,
        }),
    ]);
    let expected = hex("00000057 |
         00000005 0000000e |
         00000001 00 ffffffff |
           00000002 2f61 | 00000001 78 |
           00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65 |
           00000000 |
         00000002 00 ffffffff |
           00000002 2f62 | ffffffff |
         ffffffff 01 ffffffff");
    assert_eq!(encode_request(5, &req), expected);
    let (h, decoded) = decode_request_payload(&expected[4..]).unwrap();
    assert_eq!(h, RequestHeader { xid: 5, op: 14 });
    assert_eq!(decoded, req);
}

/// A failed multi: the first op would have succeeded (error 0), the second failed with NoNode.
#[test]
fn failed_multi_response_frame() {
    let results = vec![MultiResult::Error(0), MultiResult::Error(-101)];
    let header = ReplyHeader {
        xid: 5,
        zxid: 0x20,
        err: 0,
    };
    let expected = hex("00000033 |
         00000005 0000000000000020 00000000 |
         ffffffff 00 00000000 | 00000000 |
         ffffffff 00 ffffff9b | ffffff9b |
         ffffffff 01 ffffffff");
    assert_eq!(
        encode_response(header.clone(), &Response::Multi(results.clone())),
        expected
    );
    let (h, resp) =
        decode_reply(&expected[4..], |xid| (xid == 5).then_some(OpCode::Multi)).unwrap();
    assert_eq!(h, header);
    assert_eq!(resp, Response::Multi(results));
}

/// A successful multi: a create result (path only) and a delete result (no body).
#[test]
fn successful_multi_response_body() {
    let results = vec![
        MultiResult::Create(CreateResponse { path: "/a".into() }),
        MultiResult::Delete,
    ];
    let expected = hex("00000001 00 00000000 | 00000002 2f61 |
         00000002 00 00000000 |
         ffffffff 01 ffffffff");
    let mut w = Writer::new();
    multi::encode_results(&results, &mut w);
    assert_eq!(w.into_inner(), expected);
    assert_eq!(
        decode_response(OpCode::Multi, &expected).unwrap(),
        Response::Multi(results)
    );
}

#[test]
fn notification_frame() {
    let header = ReplyHeader {
        xid: NOTIFICATION_XID,
        zxid: 7,
        err: 0,
    };
    let ev = WatcherEvent {
        event_type: 3,
        state: 3,
        path: "/a".into(),
    };
    let expected = hex("0000001e |
         ffffffff 0000000000000007 00000000 |
         00000003 00000003 00000002 2f61");
    assert_eq!(
        encode_response(header.clone(), &Response::Event(ev.clone())),
        expected
    );
    let (h, resp) = decode_reply(&expected[4..], |_| None).unwrap();
    assert_eq!(h, header);
    assert_eq!(resp, Response::Event(ev));
}

/// An error reply is the header alone, and the client reads no body.
#[test]
fn error_reply_has_no_body() {
    let header = ReplyHeader {
        xid: 9,
        zxid: 0x30,
        err: -101,
    };
    let expected = hex("00000010 | 00000009 0000000000000030 ffffff9b");
    assert_eq!(encode_response(header.clone(), &Response::Empty), expected);
    let (h, resp) = decode_reply(&expected[4..], |_| Some(OpCode::GetData)).unwrap();
    assert_eq!((h, resp), (header, Response::Empty));
}

#[test]
fn auth_packet() {
    let p = AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: b"u:p".to_vec(),
    };
    let expected = hex("00000000 | 00000006 646967657374 | 00000003 753a70");
    assert_eq!(p.to_bytes(), expected);
    assert_eq!(AuthPacket::from_bytes(&expected).unwrap(), p);
}

#[test]
fn refused_session_answer() {
    let current = ConnectRequest {
        read_only: Some(true),
        ..Default::default()
    };
    let expected = hex("00000025 | 00000000 00000000 0000000000000000 |
         00000010 00000000000000000000000000000000 | 00");
    assert_eq!(
        encode_connect_response(&ConnectResponse::refused(&current)),
        expected
    );
    // An old client (no readOnly byte) gets no readOnly byte back.
    let old = ConnectRequest::default();
    assert_eq!(
        encode_connect_response(&ConnectResponse::refused(&old)),
        [&[0, 0, 0, 0x24][..], &expected[4..expected.len() - 1]].concat()
    );
}

#[test]
fn special_xid_replies_need_no_lookup() {
    for (xid, zxid) in [(PING_XID, 5), (AUTH_XID, 6), (SET_WATCHES_XID, 7)] {
        let header = ReplyHeader { xid, zxid, err: 0 };
        let bytes = encode_response(header.clone(), &Response::Empty);
        assert_eq!(bytes.len(), 4 + 16);
        let looked_up = std::cell::Cell::new(false);
        let (h, resp) = decode_reply(&bytes[4..], |_| {
            looked_up.set(true);
            None
        })
        .unwrap();
        assert_eq!((h, resp), (header, Response::Empty));
        assert!(!looked_up.get());
    }
    // A failed auth: xid -4, AuthFailed (-115).
    let bytes = hex("00000010 | fffffffc 0000000000000009 ffffff8d");
    let (h, resp) = decode_reply(&bytes[4..], |_| None).unwrap();
    assert_eq!(h.err, -115);
    assert_eq!(resp, Response::Empty);
}
