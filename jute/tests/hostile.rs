//! Short, corrupt and random input: decoding returns an error and never panics.

mod common;

use proptest::prelude::*;
use zabkeeper_jute::*;

fn request_body(req: &Request) -> Vec<u8> {
    let mut w = Writer::new();
    req.encode_body(&mut w);
    w.into_inner()
}

fn header_for(req: &Request) -> RequestHeader {
    RequestHeader {
        xid: 1,
        op: req.op(),
    }
}

/// The task's named case: a multi with two ops and its terminator, cut at every byte offset.
#[test]
fn multi_request_truncated_at_every_offset_is_an_error() {
    let req = Request::Multi(vec![
        MultiOp::Create(common::create()),
        MultiOp::Delete(DeleteRequest {
            path: "/b".into(),
            version: -1,
        }),
    ]);
    let bytes = encode_request(5, &req);
    let payload = &bytes[4..];
    assert_eq!(decode_request_payload(payload).unwrap().1, req);
    for cut in 0..payload.len() {
        let res = decode_request_payload(&payload[..cut]);
        assert!(
            matches!(res, Err(JuteError::Truncated { .. })),
            "cut at {cut}: {res:?}"
        );
    }
    // The framing layer sees every cut frame as incomplete rather than as a message.
    for cut in 0..bytes.len() {
        assert_eq!(
            frame(&bytes[..cut], ZK_MAX_BUFFER),
            Ok(None),
            "cut at {cut}"
        );
    }
}

#[test]
fn every_request_body_truncated_anywhere_is_an_error() {
    for req in common::requests() {
        let body = request_body(&req);
        assert_eq!(decode_request(header_for(&req), &body), Ok(req.clone()));
        for cut in 0..body.len() {
            let res = decode_request(header_for(&req), &body[..cut]);
            assert!(
                matches!(res, Err(JuteError::Truncated { .. })),
                "{req:?} cut at {cut}: {res:?}"
            );
        }
    }
}

#[test]
fn every_response_body_truncated_anywhere_is_an_error() {
    for (op, resp) in common::responses() {
        let mut w = Writer::new();
        resp.encode_body(&mut w);
        let body = w.into_inner();
        assert_eq!(decode_response(op, &body), Ok(resp.clone()));
        for cut in 0..body.len() {
            let res = decode_response(op, &body[..cut]);
            assert!(
                matches!(res, Err(JuteError::Truncated { .. })),
                "{op:?} cut at {cut}: {res:?}"
            );
        }
    }
}

#[test]
fn connect_request_truncation_and_the_optional_read_only_byte() {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 5,
        time_out: 3000,
        session_id: 9,
        passwd: vec![1; 16],
        read_only: Some(true),
    };
    let bytes = req.to_bytes();
    assert_eq!(bytes.len(), 45);
    for cut in 0..44 {
        assert!(
            matches!(
                ConnectRequest::from_bytes(&bytes[..cut]),
                Err(JuteError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    assert_eq!(
        ConnectRequest::from_bytes(&bytes[..44]).unwrap().read_only,
        None
    );
    assert_eq!(ConnectRequest::from_bytes(&bytes).unwrap(), req);
}

#[test]
fn hostile_buffer_length_with_three_bytes_following() {
    // setData("/a", <length 0x7fffffff, then 3 bytes>)
    let body = [0, 0, 0, 2, b'/', b'a', 0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
    let h = RequestHeader { xid: 1, op: 5 };
    assert_eq!(
        decode_request(h, &body),
        Err(JuteError::Truncated {
            offset: 10,
            needed: 0x7fff_ffff,
            available: 3
        })
    );
}

#[test]
fn hostile_vector_counts_are_errors() {
    // create("/a", "", acl count 0x7fffffff, …)
    let body = [
        0, 0, 0, 2, b'/', b'a', 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0,
    ];
    let h = RequestHeader { xid: 1, op: 1 };
    assert!(matches!(
        decode_request(h, &body),
        Err(JuteError::Truncated { offset: 10, .. })
    ));
    // getChildren reply claiming i32::MAX children.
    assert!(matches!(
        decode_response(OpCode::GetChildren, &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        Err(JuteError::Truncated { .. })
    ));
    // Negative counts other than -1.
    assert!(matches!(
        decode_response(OpCode::GetChildren, &[0x80, 0, 0, 0]),
        Err(JuteError::InvalidLength { .. })
    ));
}

/// A tiny deterministic PRNG so the loop below is reproducible without extra dependencies.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Decodes `bytes` every way this crate can; only a panic fails.
fn decode_every_way(bytes: &[u8]) {
    let _ = decode_request_payload(bytes);
    for op in OpCode::ALL {
        let _ = decode_request(
            RequestHeader {
                xid: 1,
                op: op as i32,
            },
            bytes,
        );
        let _ = decode_response(op, bytes);
    }
    let _ = decode_reply(bytes, |x| OpCode::from_i32(x & 0x7f));
    let _ = ConnectRequest::from_bytes(bytes);
    let _ = ConnectResponse::from_bytes(bytes);
    let _ = frame(bytes, ZK_MAX_BUFFER);
    let mut r = Reader::new(bytes);
    let _ = multi::decode_ops(&mut r);
    let mut r = Reader::new(bytes);
    let _ = multi::decode_results(&mut r);
}

/// Random bytes, and valid messages with random bytes overwritten: 20 000 inputs each.
#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = (rng.next() % 96) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        decode_every_way(&bytes);
    }
    let mut seeds: Vec<Vec<u8>> = common::requests()
        .iter()
        .map(|r| encode_request(1, r)[4..].to_vec())
        .collect();
    for (op, resp) in common::responses() {
        let mut w = Writer::new();
        resp.encode_body(&mut w);
        let _ = op;
        seeds.push(w.into_inner());
    }
    for i in 0..20_000 {
        let mut bytes = seeds[i % seeds.len()].clone();
        if bytes.is_empty() {
            continue;
        }
        for _ in 0..=(rng.next() % 4) {
            let at = (rng.next() as usize) % bytes.len();
            // Favour values that make hostile lengths: 0x00, 0x7f, 0x80, 0xff.
            bytes[at] = match rng.next() % 5 {
                0 => 0,
                1 => 0x7f,
                2 => 0x80,
                3 => 0xff,
                _ => rng.next() as u8,
            };
        }
        decode_every_way(&bytes);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_every_way(&bytes);
    }

    #[test]
    fn arbitrary_opcode_and_body_never_panic(
        op in any::<i32>(),
        xid in any::<i32>(),
        body in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let _ = decode_request(RequestHeader { xid, op }, &body);
    }
}
