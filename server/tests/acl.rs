//! ACL enforcement through the native port, standalone and in an ensemble, with the
//! Rust client: each permission and scheme denying and allowing as ZooKeeper 3.8's
//! `checkACL` does. (The ZooKeeper port is tested in `zk_wire.rs`, and against Apache
//! ZooKeeper itself in `tests/zk/differential.py`.)

mod common;

use common::{Cluster, ServerProcess};
use std::time::Duration;
use zabkeeper_client::{
    Acl, Client, ConnectOptions, CreateMode, CreateOptions, Error, Op, ReadOp, ReadResult,
};

/// `addauth digest super:admin` gives super; its digest id (ZooKeeper's documentation's).
const SUPER_DIGEST: &str = "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=";

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        scheme: scheme.into(),
        id: id.into(),
    }
}

async fn connect(servers: &str) -> Client {
    Client::connect(servers, ConnectOptions::default())
        .await
        .expect("connect")
}

async fn create_with_acl(c: &Client, path: &str, list: Vec<Acl>) -> Result<String, Error> {
    let mut opts = CreateOptions::new(CreateMode::Persistent);
    opts.acl = list;
    c.create_with(path, &b"secret"[..], opts)
        .await
        .map(|(p, _)| p)
}

const R: i32 = 1;
const W: i32 = 2;
const C: i32 = 4;
const D: i32 = 8;
const A: i32 = 16;

/// The whole scenario against one set of servers: `owner_at` and `other_at` may be
/// different members of an ensemble (reads checked where served, writes by the leader).
async fn scenario(owner_at: &str, other_at: &str) {
    let owner = connect(owner_at).await;
    let anon = connect(other_at).await;
    let admin = connect(other_at).await;
    admin.add_auth("digest", &b"super:admin"[..]).await.unwrap();
    owner.add_auth("digest", &b"bob:secret"[..]).await.unwrap();

    // `auth` expands to the session's digest id; with none it is InvalidACL.
    create_with_acl(&owner, "/b", vec![acl(31, "auth", "")])
        .await
        .unwrap();
    let (list, _) = owner.get_acl("/b").await.unwrap();
    assert_eq!(
        list,
        vec![acl(31, "digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")]
    );
    assert_eq!(
        create_with_acl(&anon, "/x", vec![acl(31, "auth", "")]).await,
        Err(Error::InvalidAcl)
    );
    assert_eq!(
        create_with_acl(&anon, "/x", vec![acl(31, "world", "someone")]).await,
        Err(Error::InvalidAcl)
    );

    // Without the digest: READ, WRITE, CREATE, DELETE, ADMIN all denied.
    assert_eq!(anon.get_data("/b").await, Err(Error::NoAuth));
    assert_eq!(anon.get_children("/b").await, Err(Error::NoAuth));
    assert_eq!(
        anon.get_children2("/b").await.map(|_| ()),
        Err(Error::NoAuth)
    );
    assert_eq!(anon.get_all_children_number("/b").await, Err(Error::NoAuth));
    assert_eq!(anon.exists("/b").await.map(|_| ()), Err(Error::NoAuth));
    assert_eq!(
        anon.set_data("/b", &b"x"[..], None).await.map(|_| ()),
        Err(Error::NoAuth)
    );
    assert_eq!(
        anon.create("/b/c", &b""[..], CreateMode::Persistent).await,
        Err(Error::NoAuth)
    );
    assert_eq!(
        anon.set_acl("/b", &Acl::open_unsafe(), None)
            .await
            .map(|_| ()),
        Err(Error::NoAuth)
    );
    assert_eq!(anon.get_acl("/b").await.map(|_| ()), Err(Error::NoAuth));
    // NoNode is answered before NoAuth: the node is looked up first.
    assert_eq!(anon.get_data("/b/none").await, Err(Error::NoNode));
    assert_eq!(anon.exists("/b/none").await, Ok(None));

    // A multi is refused as a whole when one op lacks permission.
    let r = anon
        .multi(vec![
            Op::Create {
                path: "/ok".into(),
                data: Default::default(),
                options: CreateOptions::new(CreateMode::Persistent),
            },
            Op::SetData {
                path: "/b".into(),
                data: Default::default(),
                version: -1,
            },
        ])
        .await;
    assert!(
        matches!(r, Err(Error::Multi { code, .. }) if code == zabkeeper_client::ErrorCode::NoAuth),
        "{r:?}"
    );
    assert_eq!(anon.exists("/ok").await, Ok(None));
    // A multi-read answers per op.
    let r = anon
        .multi_read(vec![
            ReadOp::GetData("/b".into()),
            ReadOp::GetData("/".into()),
        ])
        .await
        .unwrap();
    assert!(matches!(r[0], ReadResult::Error(Error::NoAuth)), "{r:?}");
    assert!(matches!(r[1], ReadResult::Data { .. }), "{r:?}");

    // The same digest on the other connection opens everything.
    anon.add_auth("digest", &b"bob:secret"[..]).await.unwrap();
    assert_eq!(&anon.get_data("/b").await.unwrap().0[..], b"secret");
    anon.create("/b/c", &b""[..], CreateMode::Persistent)
        .await
        .unwrap();
    anon.delete("/b/c", None).await.unwrap();

    // Each permission alone: /p grants everyone only what its entry says.
    for (perm, name) in [(R, "r"), (W, "w"), (C, "c"), (D, "d"), (A, "a")] {
        let path = format!("/p{name}");
        create_with_acl(&owner, &path, vec![acl(perm, "world", "anyone")])
            .await
            .unwrap();
        let guest = connect(other_at).await;
        let read = guest.get_data(&path).await.map(|_| ());
        let write = guest.set_data(&path, &b"v"[..], None).await.map(|_| ());
        let create = guest
            .create(&format!("{path}/k"), &b""[..], CreateMode::Persistent)
            .await
            .map(|_| ());
        let delete = guest.delete(&format!("{path}/k"), None).await;
        let admin = guest
            .set_acl(&path, &[acl(perm, "world", "anyone")], None)
            .await
            .map(|_| ());
        let want = |bit: i32| {
            if perm == bit {
                Ok(())
            } else {
                Err(Error::NoAuth)
            }
        };
        assert_eq!(read, want(R), "read on {path}");
        assert_eq!(write, want(W), "write on {path}");
        assert_eq!(create, want(C), "create under {path}");
        // DELETE on the parent: NoAuth without it; with it the child is missing (NoNode)
        // unless CREATE made one, which never happens in the same round.
        let want_delete = if perm == D {
            Err(Error::NoNode)
        } else {
            Err(Error::NoAuth)
        };
        assert_eq!(delete, want_delete, "delete under {path}");
        assert_eq!(admin, want(A), "setACL on {path}");
        // getACL needs READ or ADMIN.
        let get_acl = guest.get_acl(&path).await.map(|_| ());
        let want_get_acl = if perm == R || perm == A {
            Ok(())
        } else {
            Err(Error::NoAuth)
        };
        assert_eq!(get_acl, want_get_acl, "getACL on {path}");
        guest.close().await.unwrap();
    }
    // DELETE permission: a child made by the super user (nobody else may create
    // under /pd) can be deleted by anyone.
    admin
        .create("/pd/k", &b""[..], CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(owner.delete("/pd/k", None).await, Ok(()));

    // getACL without ADMIN hides digest hashes.
    create_with_acl(
        &owner,
        "/mixed",
        vec![acl(R, "world", "anyone"), acl(31, "digest", "amy:abc=")],
    )
    .await
    .unwrap();
    let guest = connect(other_at).await;
    assert_eq!(
        guest.get_acl("/mixed").await.unwrap().0,
        vec![acl(R, "world", "anyone"), acl(31, "digest", "amy:x")]
    );

    // setACL checks the aversion (BadVersion), then bumps it.
    assert_eq!(
        owner
            .set_acl("/b", &[acl(31, "auth", "")], Some(3))
            .await
            .map(|_| ()),
        Err(Error::BadVersion)
    );
    let stat = owner
        .set_acl("/b", &[acl(31, "auth", "")], Some(0))
        .await
        .unwrap();
    assert_eq!(stat.aversion, 1);

    // ip scheme: the client's address (loopback) in CIDR form.
    create_with_acl(&owner, "/net", vec![acl(R, "ip", "127.0.0.0/8")])
        .await
        .unwrap();
    create_with_acl(&owner, "/far", vec![acl(R, "ip", "10.0.0.0/8")])
        .await
        .unwrap();
    assert!(guest.get_data("/net").await.is_ok());
    assert_eq!(guest.get_data("/far").await, Err(Error::NoAuth));
    assert_eq!(
        create_with_acl(&owner, "/v6", vec![acl(R, "ip", "::1")]).await,
        Err(Error::InvalidAcl)
    );

    // The super user passes everything; a wrong super password is just a digest.
    let wrong = connect(other_at).await;
    wrong.add_auth("digest", &b"super:nope"[..]).await.unwrap();
    assert_eq!(wrong.get_data("/far").await, Err(Error::NoAuth));
    assert!(admin.get_data("/far").await.is_ok());
    assert!(admin.get_data("/b").await.is_ok());
    admin.set_data("/b", &b"by super"[..], None).await.unwrap();

    // An unknown scheme is refused.
    assert_eq!(
        guest.add_auth("kerberos", &b"x"[..]).await,
        Err(Error::AuthFailed)
    );
}

#[tokio::test]
async fn acls_enforced_on_the_native_port() {
    let s = ServerProcess::start(&["--super-digest", SUPER_DIGEST]);
    let addr = s.addr.to_string();
    scenario(&addr, &addr).await;
}

#[tokio::test]
async fn acls_enforced_in_an_ensemble_with_follower_clients() {
    let cluster = Cluster::start(3, &["--super-digest", SUPER_DIGEST]);
    let leader = cluster.leader(Duration::from_secs(20)).await;
    cluster.wait_all_serving(Duration::from_secs(20)).await;
    let f1 = cluster.addr((leader + 1) % 3).to_string();
    let f2 = cluster.addr((leader + 2) % 3).to_string();
    // Both clients on followers: every write is forwarded with its connection's ids.
    scenario(&f1, &f2).await;
}
