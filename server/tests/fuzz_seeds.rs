//! The fuzz targets' seeds (`fuzz/seeds/TARGET/`): a few valid inputs per target, made
//! here with the real encoders so that they can be made again when a format changes.
//! The test checks that the checked-in seeds are exactly what it makes (and that each
//! is valid for its reader); `ZABKEEPER_WRITE_FUZZ_SEEDS=1` writes them instead:
//!
//! ```text
//! ZABKEEPER_WRITE_FUZZ_SEEDS=1 cargo test -p zabkeeper-server --test fuzz_seeds
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;
use zabkeeper_jute as jute;
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame, request::Op};
use zabkeeper_server::request::Acl;
use zabkeeper_server::storage::log::encode_segment;
use zabkeeper_server::storage::snapshot::{decode_file, encode_file};
use zabkeeper_server::storage::{FileTxnLog, LogOptions, TxnLog};
use zabkeeper_server::tree::DataTree;
use zabkeeper_server::txn::{Txn, TxnBody};

/// (target, file name) → bytes.
type Seeds = BTreeMap<(&'static str, &'static str), Vec<u8>>;

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

fn world() -> Vec<wire::Acl> {
    vec![wire::Acl {
        perms: 31,
        id: Some(wire::Id {
            scheme: "world".into(),
            id: "anyone".into(),
        }),
    }]
}

fn native_frames(frames: Vec<client_frame::Kind>) -> Vec<u8> {
    let mut codec = Codec::<wire::ServerFrame, wire::ClientFrame>::new(1 << 20);
    let mut out = BytesMut::new();
    for kind in frames {
        codec
            .encode(wire::ClientFrame { kind: Some(kind) }, &mut out)
            .unwrap();
    }
    out.to_vec()
}

fn request(xid: i32, op: Op) -> client_frame::Kind {
    client_frame::Kind::Request(wire::Request {
        xid,
        consistency: 0,
        op: Some(op),
        ..Default::default()
    })
}

fn native_seeds(seeds: &mut Seeds) {
    let create = |path: &str, mode: wire::CreateMode| wire::CreateRequest {
        path: path.into(),
        data: Bytes::from_static(b"data"),
        acl: world(),
        mode: mode as i32,
        ttl_ms: 0,
    };
    let path = |p: &str| wire::PathRequest { path: p.into() };
    let session = vec![
        client_frame::Kind::Connect(wire::ConnectRequest {
            timeout_ms: 10_000,
            ..Default::default()
        }),
        request(1, Op::Create(create("/a", wire::CreateMode::Persistent))),
        request(
            2,
            Op::GetData(wire::PathWatchRequest {
                path: "/a".into(),
                watch: true,
            }),
        ),
        request(
            3,
            Op::SetData(wire::SetDataRequest {
                path: "/a".into(),
                data: Bytes::from_static(b"v2"),
                version: 0,
            }),
        ),
        request(
            4,
            Op::GetChildren(wire::GetChildrenRequest {
                path: "/".into(),
                watch: false,
                with_stat: true,
            }),
        ),
        request(
            5,
            Op::Auth(wire::AuthRequest {
                scheme: "digest".into(),
                auth: Bytes::from_static(b"bob:secret"),
            }),
        ),
        request(
            6,
            Op::AddWatch(wire::AddWatchRequest {
                path: "/a".into(),
                mode: wire::AddWatchMode::PersistentRecursive as i32,
            }),
        ),
        request(7, Op::Sync(path("/a"))),
        request(8, Op::Ping(wire::Empty {})),
        request(9, Op::CloseSession(wire::Empty {})),
    ];
    seeds.insert(("native_frame", "session"), native_frames(session));
    let multi = wire::MultiRequest {
        ops: vec![
            wire::op::Op::Create(create("/m", wire::CreateMode::EphemeralSequential)),
            wire::op::Op::Check(wire::CheckRequest {
                path: "/a".into(),
                version: 1,
            }),
            wire::op::Op::Delete(wire::DeleteRequest {
                path: "/a".into(),
                version: -1,
            }),
        ]
        .into_iter()
        .map(|op| wire::Op { op: Some(op) })
        .collect(),
    };
    seeds.insert(
        ("native_frame", "multi"),
        native_frames(vec![
            request(1, Op::Multi(multi)),
            request(2, Op::GetAcl(path("/a"))),
        ]),
    );
}

fn jute_seeds(seeds: &mut Seeds) {
    let connect = jute::encode_connect_request(&jute::ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    });
    let acl = vec![jute::Acl {
        perms: 31,
        id: jute::Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }];
    let create = jute::CreateRequest {
        path: "/a".into(),
        data: b"data".to_vec(),
        acl,
        flags: 0,
    };
    let requests = [
        (1, jute::Request::Create(create.clone())),
        (
            2,
            jute::Request::GetData(jute::GetDataRequest {
                path: "/a".into(),
                watch: true,
            }),
        ),
        (
            3,
            jute::Request::SetData(jute::SetDataRequest {
                path: "/a".into(),
                data: b"v2".to_vec(),
                version: -1,
            }),
        ),
        (
            4,
            jute::Request::GetChildren2(jute::GetChildren2Request {
                path: "/".into(),
                watch: false,
            }),
        ),
        (
            5,
            jute::Request::Multi(vec![
                jute::MultiOp::Create(jute::CreateRequest {
                    path: "/b".into(),
                    flags: 3,
                    ..create.clone()
                }),
                jute::MultiOp::Check(jute::CheckVersionRequest {
                    path: "/a".into(),
                    version: 1,
                }),
                jute::MultiOp::Delete(jute::DeleteRequest {
                    path: "/a".into(),
                    version: -1,
                }),
            ]),
        ),
        (
            -4,
            jute::Request::Auth(jute::AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: b"bob:secret".to_vec(),
            }),
        ),
        (
            6,
            jute::Request::AddWatch(jute::AddWatchRequest {
                path: "/a".into(),
                mode: 1,
            }),
        ),
        (-2, jute::Request::Ping),
        (7, jute::Request::CloseSession),
    ];
    let mut session = connect;
    for (xid, r) in &requests {
        session.extend(jute::encode_request(*xid, r));
    }
    seeds.insert(("jute_request", "session"), session);
    // A bare request payload (header and body, no length), the target's second reading.
    let framed = jute::encode_request(5, &requests[4].1);
    seeds.insert(("jute_request", "multi_payload"), framed[4..].to_vec());
    seeds.insert(("jute_request", "mntr"), b"mntr".to_vec());
}

fn path_seeds(seeds: &mut Seeds) {
    seeds.insert(("path", "root"), b"/".to_vec());
    seeds.insert(("path", "nested"), b"/app/locks/lock-0000000007".to_vec());
    seeds.insert(("path", "quota"), b"/zookeeper/quota/app".to_vec());
}

/// A txn as prep makes them (fixed times and ids).
fn txn(zxid: i64, body: TxnBody) -> Txn {
    Txn {
        session_id: 0x100,
        cxid: zxid as i32,
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        request_number: 0,
        acked_below: 0,
        body,
    }
}

/// A small history: a session, nodes with data, an ACL, an ephemeral, a multi.
fn history() -> Vec<Txn> {
    let world = vec![Acl {
        perms: 31,
        scheme: "world".into(),
        id: "anyone".into(),
    }];
    let create = |path: &str, owner: i64, parent_cversion: i32| TxnBody::Create {
        path: path.into(),
        data: Bytes::from(format!("data of {path}")),
        acl: world.clone(),
        ephemeral_owner: owner,
        parent_cversion,
    };
    vec![
        txn(1, TxnBody::CreateSession { timeout_ms: 30_000 }),
        txn(2, create("/app", 0, 1)),
        txn(3, create("/app/config", 0, 1)),
        txn(4, create("/app/lock-0000000000", 0x100, 2)),
        txn(
            5,
            TxnBody::SetAcl {
                path: "/app/config".into(),
                acl: vec![Acl {
                    perms: 1,
                    scheme: "digest".into(),
                    id: "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=".into(),
                }],
                version: 1,
            },
        ),
        txn(
            6,
            TxnBody::Multi(vec![
                TxnBody::Check {
                    path: "/app".into(),
                    version: 0,
                },
                TxnBody::SetData {
                    path: "/app".into(),
                    data: Bytes::from_static(b"v1"),
                    version: 1,
                },
            ]),
        ),
    ]
}

fn storage_seeds(seeds: &mut Seeds) {
    let history = history();
    let mut tree = DataTree::new();
    for t in &history {
        tree.apply(t);
    }
    let mut body = Vec::new();
    tree.serialize(&mut body);
    seeds.insert(("snapshot", "file"), encode_file(6, &body));
    seeds.insert(("snapshot", "tree"), body);
    seeds.insert(("snapshot", "txn_multi"), history[5].encode());
    // txn_log: a whole segment (mode byte with the high bit set), and a records region
    // to XOR over a segment made by the target (odd mode, all zero: left valid).
    let payloads: Vec<Vec<u8>> = history.iter().map(Txn::encode).collect();
    let records: Vec<(u64, &[u8])> = (1..).zip(payloads.iter().map(|p| &p[..])).collect();
    let mut segment = vec![0x80];
    segment.extend(encode_segment(0x5eed, 0, &records));
    seeds.insert(("txn_log", "segment"), segment);
    let mut unchanged = vec![0x07];
    unchanged.extend([0u8; 256]);
    seeds.insert(("txn_log", "xor_nothing"), unchanged);
}

fn all_seeds() -> Seeds {
    let mut seeds = Seeds::new();
    native_seeds(&mut seeds);
    jute_seeds(&mut seeds);
    path_seeds(&mut seeds);
    storage_seeds(&mut seeds);
    seeds
}

#[test]
fn seeds_are_valid_inputs() {
    let seeds = all_seeds();
    let (_, body) = decode_file(&seeds[&("snapshot", "file")]).unwrap();
    let tree = DataTree::deserialize(body).unwrap();
    assert_eq!(tree.get_data("/app").unwrap().0, Bytes::from_static(b"v1"));
    assert!(tree.exists("/app/lock-0000000000").is_some());
    assert!(Txn::decode(&seeds[&("snapshot", "txn_multi")]).is_ok());
    // The segment opens and gives back every txn.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("log.0000000000000001"),
        &seeds[&("txn_log", "segment")][1..],
    )
    .unwrap();
    let log = FileTxnLog::open(
        dir.path(),
        LogOptions {
            segment_size: 64 * 1024,
            write_buffer: 1 << 16,
        },
    )
    .unwrap();
    let records = log.read_after(0).unwrap();
    let txns: Vec<Txn> = records
        .iter()
        .map(|(_, p)| Txn::decode(p).unwrap())
        .collect();
    assert_eq!(txns, history());
    // The native and jute sessions decode frame by frame.
    use tokio_util::codec::Decoder;
    let mut codec = Codec::<wire::ClientFrame, wire::ServerFrame>::new(64 * 1024);
    let mut buf = BytesMut::from(&seeds[&("native_frame", "session")][..]);
    let mut n = 0;
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        if let Some(client_frame::Kind::Request(r)) = frame.kind {
            assert!(zabkeeper_server::native::decode(r.op).is_ok());
        }
        n += 1;
    }
    assert_eq!(n, 10);
    let mut codec = jute::FrameCodec::server(64 * 1024);
    let mut buf = BytesMut::from(&seeds[&("jute_request", "session")][..]);
    let mut n = 0;
    while let Some(jute::Inbound::Frame(_)) = codec.decode(&mut buf).unwrap() {
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn checked_in_seeds_are_the_generated_ones() {
    let seeds = all_seeds();
    let dir = seeds_dir();
    if std::env::var_os("ZABKEEPER_WRITE_FUZZ_SEEDS").is_some() {
        for ((target, name), bytes) in &seeds {
            let d = dir.join(target);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), bytes).unwrap();
        }
    }
    let mut on_disk = BTreeMap::new();
    for target in std::fs::read_dir(&dir).expect("fuzz/seeds") {
        let target = target.unwrap().path();
        for f in std::fs::read_dir(&target).unwrap() {
            let f = f.unwrap().path();
            let key = (
                target.file_name().unwrap().to_string_lossy().into_owned(),
                f.file_name().unwrap().to_string_lossy().into_owned(),
            );
            on_disk.insert(key, std::fs::read(&f).unwrap());
        }
    }
    let made: BTreeMap<(String, String), Vec<u8>> = seeds
        .into_iter()
        .map(|((t, n), b)| ((t.to_string(), n.to_string()), b))
        .collect();
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        made.keys().collect::<Vec<_>>(),
        "fuzz/seeds holds other files than this test makes (ZABKEEPER_WRITE_FUZZ_SEEDS=1 \
         writes them; remove stale ones)"
    );
    for (key, bytes) in &made {
        assert!(
            on_disk[key] == *bytes,
            "fuzz/seeds/{}/{} differs from what this test makes",
            key.0,
            key.1
        );
    }
}
