//! TLS (issue 10): client ports over TLS beside the plain ones, TLS required on the plain
//! ports, a client certificate authenticating as `x509` and granting what an `x509` ACL
//! entry names (on both protocols), and an ensemble whose members talk over mutual TLS,
//! which a member with a certificate from another CA cannot join.
//! The certificates are made here with rcgen.

mod common;

use common::{free_port, Cluster, ServerProcess};
use futures::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use zabkeeper_jute as jute;
use zabkeeper_jute::Record;
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame, request::Op, server_frame};

/// A CA and certificates it signed, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} test CA"));
        params.distinguished_name = dn;
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for 127.0.0.1 / localhost with subject `CN=<cn>,O=zabkeeper`, usable
    /// by servers and clients; returns (cert, key) paths.
    fn issue(&self, cn: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "zabkeeper");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (
            self.dir.path().join(format!("{cn}.pem")),
            self.dir.path().join(format!("{cn}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// Server flags presenting `cn`'s certificate and trusting this CA.
    fn server_flags(&self, cn: &str) -> Vec<String> {
        let (cert, key) = self.issue(cn);
        vec![
            "--tls-cert".into(),
            path_str(&cert),
            "--tls-key".into(),
            path_str(&key),
            "--tls-ca".into(),
            path_str(&self.ca()),
        ]
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn wait_port(a: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(a).is_err() {
        assert!(Instant::now() < deadline, "{a} not open");
        std::thread::sleep(Duration::from_millis(10));
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A TLS connection trusting `pki`'s CA, presenting `client` (a certificate `pki` issues)
/// when given; None when the handshake fails.
async fn tls(to: SocketAddr, pki: &Pki, client: Option<&str>) -> Option<Box<dyn Io>> {
    let issued = client.map(|cn| pki.issue(cn));
    let connector = zabkeeper_server::tls::connector(
        &pki.ca(),
        issued.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .unwrap();
    let tcp = TcpStream::connect(to).await.ok()?;
    let name = zabkeeper_server::tls::server_name("127.0.0.1").unwrap();
    let s = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    Some(Box::new(s))
}

async fn plain(to: SocketAddr) -> Box<dyn Io> {
    Box::new(TcpStream::connect(to).await.unwrap())
}

type Native = Framed<Box<dyn Io>, Codec<wire::ServerFrame, wire::ClientFrame>>;

/// A native session on `stream`; None when the server closes instead of answering.
async fn native(stream: Box<dyn Io>) -> Option<Native> {
    let mut io = Framed::new(stream, Codec::new(1 << 20));
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Connect(wire::ConnectRequest {
            timeout_ms: 10_000,
            ..Default::default()
        })),
    })
    .await
    .ok()?;
    match tokio::time::timeout(Duration::from_secs(10), io.next()).await {
        Ok(Some(Ok(wire::ServerFrame {
            kind: Some(server_frame::Kind::Connect(c)),
        }))) if c.error == 0 => Some(io),
        _ => None,
    }
}

async fn call(io: &mut Native, xid: i32, op: Op) -> wire::Response {
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Request(wire::Request {
            xid,
            consistency: 0,
            op: Some(op),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), io.next()).await {
            Ok(Some(Ok(wire::ServerFrame {
                kind: Some(server_frame::Kind::Response(r)),
            }))) => return r,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no response: {other:?}"),
        }
    }
}

/// Creates `path` with `data` and reads it back over a native session.
async fn native_roundtrip(io: &mut Native, path: &str, data: &[u8]) {
    let r = call(
        io,
        1,
        common::create(path, data, wire::CreateMode::Persistent),
    )
    .await;
    assert_eq!(r.error, 0, "{r:?}");
    let r = call(io, 2, common::get(path, false)).await;
    match r.result {
        Some(wire::response::Result::GetData(d)) => assert_eq!(&d.data[..], data),
        other => panic!("{other:?}"),
    }
}

async fn who_am_i(io: &mut Native) -> Vec<(String, String)> {
    let r = call(io, 3, Op::WhoAmI(wire::Empty {})).await;
    match r.result {
        Some(wire::response::Result::WhoAmI(w)) => w
            .clients
            .into_iter()
            .map(|i| (i.auth_scheme, i.user))
            .collect(),
        other => panic!("{other:?}"),
    }
}

type Zk = Framed<Box<dyn Io>, jute::FrameCodec>;

/// A ZooKeeper session on `stream`; None when the server closes instead of answering the
/// handshake.
async fn zk_session(stream: Box<dyn Io>) -> Option<Zk> {
    let mut io = Framed::new(stream, jute::FrameCodec::client(jute::ZK_MAX_BUFFER));
    let req = jute::ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 10_000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    io.send(jute::encode_connect_request(&req)).await.ok()?;
    match tokio::time::timeout(Duration::from_secs(10), io.next()).await {
        Ok(Some(Ok(jute::Inbound::Frame(_)))) => Some(io),
        _ => None,
    }
}

/// A request's error code on a ZooKeeper session.
async fn zk_call(io: &mut Zk, xid: i32, req: &jute::Request) -> i32 {
    io.send(jute::encode_request(xid, req)).await.unwrap();
    let Ok(Some(Ok(jute::Inbound::Frame(f)))) =
        tokio::time::timeout(Duration::from_secs(10), io.next()).await
    else {
        panic!("no reply to xid {xid}")
    };
    let h = jute::ReplyHeader::decode(&mut jute::Reader::new(&f)).unwrap();
    assert_eq!(h.xid, xid);
    h.err
}

fn zk_create(path: &str, scheme: &str, id: &str) -> jute::Request {
    jute::Request::Create(jute::CreateRequest {
        path: path.into(),
        data: b"zk".to_vec(),
        acl: vec![jute::Acl {
            perms: 31,
            id: jute::Id {
                scheme: scheme.into(),
                id: id.into(),
            },
        }],
        flags: 0,
    })
}

/// A ZooKeeper session on `stream`: creates `path` and reads it back; false when the
/// server closes instead of answering the handshake.
async fn zk_roundtrip(stream: Box<dyn Io>, path: &str) -> bool {
    let Some(mut io) = zk_session(stream).await else {
        return false;
    };
    assert_eq!(
        zk_call(&mut io, 1, &zk_create(path, "world", "anyone")).await,
        0
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ports_serve_beside_plain_ones_and_a_client_certificate_is_an_x509_id() {
    let pki = Pki::new("good");
    let (tls_port, zk_tls_port, zk_port) = (free_port(), free_port(), free_port());
    let mut args = pki.server_flags("server");
    args.extend([
        "--tls-port".into(),
        tls_port.to_string(),
        "--zk-tls-port".into(),
        zk_tls_port.to_string(),
        "--zk-port".into(),
        zk_port.to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let server = ServerProcess::start(&args);
    for p in [tls_port, zk_tls_port, zk_port] {
        wait_port(addr(p));
    }

    // Native over TLS, with a client certificate: it is the session's x509 identity.
    let stream = tls(addr(tls_port), &pki, Some("alice")).await.expect("TLS");
    let mut c = native(stream).await.expect("native session over TLS");
    native_roundtrip(&mut c, "/tls", b"secret").await;
    let ids = who_am_i(&mut c).await;
    assert!(
        ids.contains(&("x509".into(), "CN=alice,O=zabkeeper".into())),
        "{ids:?}"
    );
    // Without a client certificate: served, no x509 identity.
    let stream = tls(addr(tls_port), &pki, None).await.expect("TLS");
    let mut c = native(stream).await.expect("native session over TLS");
    assert!(who_am_i(&mut c).await.iter().all(|(s, _)| s != "x509"));
    // ZooKeeper protocol over TLS.
    let stream = tls(addr(zk_tls_port), &pki, None).await.expect("TLS");
    assert!(zk_roundtrip(stream, "/zk-tls").await);
    // The plain ports stay plain.
    let mut c = native(plain(server.addr).await)
        .await
        .expect("plain native");
    native_roundtrip(&mut c, "/plain", b"p").await;
    assert!(zk_roundtrip(plain(addr(zk_port)).await, "/zk-plain").await);
    // A plain client on a TLS port gets nothing.
    assert!(native(plain(addr(tls_port)).await).await.is_none());
    // A client trusting another CA refuses the server's certificate.
    let other = Pki::new("other");
    assert!(tls(addr(tls_port), &other, None).await.is_none());
}

const NO_AUTH: i32 = -102;
const INVALID_ACL: i32 = -114;

fn native_create_with_acl(path: &str, scheme: &str, id: &str) -> Op {
    Op::Create(wire::CreateRequest {
        path: path.into(),
        data: b"n".to_vec().into(),
        acl: vec![wire::Acl {
            perms: 31,
            id: Some(wire::Id {
                scheme: scheme.into(),
                id: id.into(),
            }),
        }],
        mode: wire::CreateMode::Persistent as i32,
        ttl_ms: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_acl_grants_the_named_certificate_only_on_both_protocols() {
    let pki = Pki::new("good");
    let (tls_port, zk_tls_port, zk_port) = (free_port(), free_port(), free_port());
    let mut args = pki.server_flags("server");
    args.extend([
        "--tls-port".into(),
        tls_port.to_string(),
        "--zk-tls-port".into(),
        zk_tls_port.to_string(),
        "--zk-port".into(),
        zk_port.to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let server = ServerProcess::start(&args);
    for p in [tls_port, zk_tls_port, zk_port] {
        wait_port(addr(p));
    }
    let alice = "CN=alice,O=zabkeeper";

    // Alice (certificate A) protects one node from each port with her DN as whoAmI
    // reports it, and one with `auth`, which expands to her x509 id.
    let stream = tls(addr(tls_port), &pki, Some("alice")).await.expect("TLS");
    let mut a = native(stream).await.expect("native session over TLS");
    assert!(who_am_i(&mut a)
        .await
        .contains(&("x509".into(), alice.into())));
    let r = call(
        &mut a,
        1,
        native_create_with_acl("/by-native", "x509", alice),
    )
    .await;
    assert_eq!(r.error, 0, "{r:?}");
    let r = call(&mut a, 2, native_create_with_acl("/by-auth", "auth", "")).await;
    assert_eq!(r.error, 0, "{r:?}");
    let r = call(
        &mut a,
        3,
        Op::GetAcl(wire::PathRequest {
            path: "/by-auth".into(),
        }),
    )
    .await;
    let Some(wire::response::Result::GetAcl(list)) = r.result else {
        panic!("{r:?}")
    };
    let ids: Vec<(i32, String, String)> = list
        .acl
        .into_iter()
        .map(|a| {
            let id = a.id.unwrap();
            (a.perms, id.scheme, id.id)
        })
        .collect();
    assert_eq!(ids, [(31, "x509".to_string(), alice.to_string())]);
    let r = call(
        &mut a,
        4,
        native_create_with_acl("/bad", "x509", "not a DN"),
    )
    .await;
    assert_eq!(r.error, INVALID_ACL, "{r:?}");
    let stream = tls(addr(zk_tls_port), &pki, Some("alice"))
        .await
        .expect("TLS");
    let mut z = zk_session(stream).await.expect("zk session over TLS");
    assert_eq!(
        zk_call(&mut z, 1, &zk_create("/by-zk", "x509", alice)).await,
        0
    );
    assert_eq!(
        zk_call(&mut z, 2, &zk_create("/bad", "x509", "CN=a,,O=b")).await,
        INVALID_ACL
    );

    // Read by certificate A, certificate B, a TLS client without a certificate and a
    // plain client, on each protocol.
    let paths = ["/by-native", "/by-auth", "/by-zk"];
    for (who, cert, expect) in [
        ("cert A", Some("alice"), 0),
        ("cert B", Some("bob"), NO_AUTH),
        ("no cert", None, NO_AUTH),
        ("plain", None, NO_AUTH),
    ] {
        let plain_client = who == "plain";
        let stream = if plain_client {
            plain(server.addr).await
        } else {
            tls(addr(tls_port), &pki, cert).await.expect("TLS")
        };
        let mut c = native(stream).await.expect("native session");
        for (xid, path) in (10..).zip(paths) {
            let r = call(&mut c, xid, common::get(path, false)).await;
            assert_eq!(r.error, expect, "native, {who}, getData {path}: {r:?}");
            let r = call(&mut c, xid + 100, common::set(path, b"w", -1)).await;
            assert_eq!(r.error, expect, "native, {who}, setData {path}: {r:?}");
        }
        let stream = if plain_client {
            plain(addr(zk_port)).await
        } else {
            tls(addr(zk_tls_port), &pki, cert).await.expect("TLS")
        };
        let mut z = zk_session(stream).await.expect("zk session");
        for (xid, path) in (10..).zip(paths) {
            let get = jute::Request::GetData(jute::GetDataRequest {
                path: path.into(),
                watch: false,
            });
            let err = zk_call(&mut z, xid, &get).await;
            assert_eq!(err, expect, "zk, {who}, getData {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_plain_clients_on_both_ports() {
    let pki = Pki::new("good");
    let zk_port = free_port();
    let mut args = pki.server_flags("server");
    args.extend([
        "--tls-required".into(),
        "--zk-port".into(),
        zk_port.to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let server = ServerProcess::start(&args);
    wait_port(addr(zk_port));
    assert!(
        native(plain(server.addr).await).await.is_none(),
        "plain native client refused"
    );
    assert!(
        !zk_roundtrip(plain(addr(zk_port)).await, "/nope").await,
        "plain ZooKeeper client refused"
    );
    let stream = tls(server.addr, &pki, None).await.expect("TLS");
    let mut c = native(stream).await.expect("native session over TLS");
    native_roundtrip(&mut c, "/t", b"1").await;
    let stream = tls(addr(zk_port), &pki, Some("bob")).await.expect("TLS");
    assert!(zk_roundtrip(stream, "/z").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_over_peer_tls_elects_replicates_and_keeps_out_another_ca() {
    let pki = Pki::new("good");
    let rogue = Pki::new("rogue");
    let flags = |pki: &Pki, cn: &str| {
        let mut f = pki.server_flags(cn);
        f.push("--peer-tls".into());
        f
    };
    let mut cluster = Cluster::new(3, &[]);
    // Member 3 has a certificate from another CA (and trusts only that CA).
    let m3 = flags(&rogue, "m3");
    cluster.start_member_with(2, &m3.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let m1 = flags(&pki, "m1");
    cluster.start_member_with(0, &m1.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    // 1 and 3 are two of three, a quorum if they could talk: they cannot.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for i in [0, 2] {
        let s = common::probe(cluster.addr(i)).await.expect("probe");
        assert!(
            !s.serving,
            "member {} serves without a quorum: {s:?}",
            i + 1
        );
    }
    let m2 = flags(&pki, "m2");
    cluster.start_member_with(1, &m2.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let leader = cluster.leader(Duration::from_secs(30)).await;
    assert!(leader < 2, "the leader is member 1 or 2");
    // Replication between the TLS members.
    let mut a = cluster.client(0).await;
    let (r, _) = a
        .call(common::create(
            "/over-tls",
            b"v",
            wire::CreateMode::Persistent,
        ))
        .await;
    assert_eq!(r.error, 0);
    let mut b = cluster.client(1).await;
    let (r, _) = b
        .call(Op::Sync(wire::PathRequest {
            path: "/over-tls".into(),
        }))
        .await;
    assert_eq!(r.error, 0);
    let (r, _) = b.call(common::get("/over-tls", false)).await;
    assert_eq!(r.error, 0, "replicated to the other TLS member");
    // The rogue member never joins.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = common::probe(cluster.addr(2)).await.expect("probe");
    assert!(
        !s.serving,
        "member 3 joined with another CA's certificate: {s:?}"
    );
}
