//! Hostile and broken clients get an error code or a closed connection; the server
//! never panics and keeps serving well-behaved clients meanwhile.

mod common;

use common::{create, get, RawClient, ServerProcess};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zabkeeper_proto::wire::{self, request::Op, server_frame::Kind};

/// Reads until the server closes the connection; fails if it stays open.
async fn expect_closed(mut s: TcpStream) {
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept a bad connection open");
}

async fn healthy(client: &mut RawClient, i: usize) {
    let path = format!("/ok{i}");
    let (r, _) = client
        .call(create(&path, b"v", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0, "create {path}");
    let (r, _) = client.call(get(&path, false)).await;
    assert_eq!(r.error, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_flood_and_oversized_frame_do_not_stop_the_server() {
    let server = ServerProcess::start(&["--max-frame", "65536"]);
    let mut good = RawClient::connect(server.addr).await;
    healthy(&mut good, 0).await;

    let mut rng = 0x1234_5678_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..200 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let payload: Vec<u8> = match round % 5 {
            // Random garbage, length prefix included.
            0 => (0..64).map(|_| next() as u8).collect(),
            // A plausible length with an undecodable body.
            1 => {
                let mut v = 12u32.to_be_bytes().to_vec();
                v.extend(std::iter::repeat_n(0xff, 12));
                v
            }
            // Oversized frame: far over --max-frame.
            2 => (100 * 1024 * 1024u32).to_be_bytes().to_vec(),
            // A valid frame that is not a ConnectRequest.
            3 => {
                let f = wire::ClientFrame {
                    kind: Some(wire::client_frame::Kind::Request(wire::Request {
                        xid: 1,
                        consistency: 0,
                        op: Some(Op::Ping(wire::Empty {})),
                        ..Default::default()
                    })),
                };
                let body = prost::Message::encode_to_vec(&f);
                let mut v = (body.len() as u32).to_be_bytes().to_vec();
                v.extend(body);
                v
            }
            // Length 0xFFFFFFFF.
            _ => vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        };
        s.write_all(&payload).await.unwrap();
        expect_closed(s).await;
        if round % 20 == 0 {
            healthy(&mut good, round + 1).await;
        }
    }

    // An oversized frame after a good handshake: that connection is closed...
    let mut victim = RawClient::connect(server.addr).await;
    let big = vec![b'x'; 200 * 1024];
    victim
        .send(create("/big", &big, wire::CreateMode::Persistent))
        .await;
    assert!(
        victim.recv().await.is_none(),
        "oversized frame must close the connection"
    );
    // ...and nothing of it was applied, while the other client is still served.
    let (r, _) = good
        .call(Op::Exists(wire::PathWatchRequest {
            path: "/big".into(),
            watch: false,
        }))
        .await;
    assert_eq!(r.error, zabkeeper_proto::ErrorCode::NoNode.code());
    healthy(&mut good, 9999).await;
}

#[tokio::test]
async fn unknown_op_and_invalid_paths_get_error_codes_and_the_connection_lives_on() {
    let server = ServerProcess::start(&[]);
    let mut c = RawClient::connect(server.addr).await;
    // A request whose op this server does not know decodes as "no op".
    c.xid_send_raw_unknown().await;
    match c.recv().await {
        Some(Kind::Response(r)) => {
            assert_eq!(r.error, zabkeeper_proto::ErrorCode::Unimplemented.code())
        }
        other => panic!("{other:?}"),
    }
    for bad in ["", "a", "/a/", "//", "/a/../b", "/a\u{1}"] {
        let (r, _) = c.call(get(bad, false)).await;
        assert_eq!(
            r.error,
            zabkeeper_proto::ErrorCode::BadArguments.code(),
            "path {bad:?}"
        );
    }
    let (r, _) = c
        .call(create("/still-here", b"", wire::CreateMode::Persistent))
        .await;
    assert_eq!(r.error, 0);
}

trait RawExt {
    async fn xid_send_raw_unknown(&mut self);
}

impl RawExt for RawClient {
    /// Sends a Request frame carrying a oneof field number this server does not know (99).
    async fn xid_send_raw_unknown(&mut self) {
        use futures::SinkExt;
        // Request { xid: 77, <field 99: empty message> } wrapped in ClientFrame.request (field 2).
        let mut req = vec![0x08, 77]; // field 1 varint 77
        req.extend([0x9a, 0x06, 0x00]); // field 99, length-delimited, 0 bytes
        let mut frame = vec![0x12, req.len() as u8];
        frame.extend(req);
        let stream = self.io.get_mut();
        let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
        bytes.extend(frame);
        stream.write_all(&bytes).await.unwrap();
        let _ = self.io.flush().await;
    }
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_and_the_others_keep_working() {
    let server = ServerProcess::start(&["--max-connections", "2"]);
    let mut first = RawClient::connect(server.addr).await;
    let second = RawClient::connect(server.addr).await;
    // A third connection is closed at once, before any handshake.
    let third = TcpStream::connect(server.addr).await.unwrap();
    expect_closed(third).await;
    healthy(&mut first, 1).await;
    // When one goes, a new client gets in.
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        let req = wire::ConnectRequest {
            timeout_ms: 10_000,
            ..Default::default()
        };
        if let Some(Ok(c)) = RawClient::try_connect_with(server.addr, req).await {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after a client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    healthy(&mut again, 2).await;
}
