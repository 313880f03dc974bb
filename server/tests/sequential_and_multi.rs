//! Sequential names under concurrency, node kinds, and multi atomicity.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use zabkeeper_proto::wire::{self, request::Op, CreateMode};
use zabkeeper_proto::ErrorCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_names_are_unique_and_ordered_under_eight_creators() {
    let server = ServerProcess::start(&[]);
    let mut c = RawClient::connect(server.addr).await;
    c.call(create("/seq", b"", CreateMode::Persistent)).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut c = RawClient::connect(addr).await;
                let mut mine = Vec::new();
                for _ in 0..50 {
                    let (r, _) = c
                        .call(create("/seq/n-", b"", CreateMode::PersistentSequential))
                        .await;
                    assert_eq!(r.error, 0);
                    mine.push(created_path(&r));
                }
                mine
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for t in tasks {
        let mine = t.await.unwrap();
        let suffixes: Vec<u32> = mine
            .iter()
            .map(|p| p["/seq/n-".len()..].parse().unwrap())
            .collect();
        assert!(
            suffixes.windows(2).all(|w| w[0] < w[1]),
            "one creator's names increase: {suffixes:?}"
        );
        assert!(
            mine.iter().all(|p| p.len() == "/seq/n-".len() + 10),
            "10-digit suffix"
        );
        all.extend(suffixes);
    }
    assert_eq!(
        all,
        (0..400).collect::<BTreeSet<u32>>(),
        "400 distinct names, no gaps"
    );

    // Deleting does not reuse numbers: the suffix is the parent's cversion, which
    // counts child creations (ZooKeeper 3.8: a delete moves pzxid, not cversion).
    c.call(delete("/seq/n-0000000399", -1)).await;
    let (r, _) = c
        .call(create("/seq/n-", b"", CreateMode::PersistentSequential))
        .await;
    assert_eq!(created_path(&r), "/seq/n-0000000400");
    let (r, _) = c
        .call(create("/seq/n-", b"", CreateMode::PersistentSequential))
        .await;
    assert_eq!(created_path(&r), "/seq/n-0000000401");
}

fn mop(op: wire::op::Op) -> wire::Op {
    wire::Op { op: Some(op) }
}

#[tokio::test]
async fn multi_is_all_or_nothing() {
    let server = ServerProcess::start(&[]);
    let mut c = RawClient::connect(server.addr).await;
    c.call(create("/m", b"0", CreateMode::Persistent)).await;
    let (before, _) = c.call(get("/m", false)).await;

    use wire::op::Op as M;
    let failing = Op::Multi(wire::MultiRequest {
        ops: vec![
            mop(M::Create(wire::CreateRequest {
                path: "/m/a".into(),
                ..Default::default()
            })),
            mop(M::SetData(wire::SetDataRequest {
                path: "/m".into(),
                data: b"1".to_vec().into(),
                version: -1,
            })),
            mop(M::Check(wire::CheckRequest {
                path: "/m".into(),
                version: 7,
            })),
            mop(M::Create(wire::CreateRequest {
                path: "/m/b".into(),
                ..Default::default()
            })),
        ],
    });
    let (r, _) = c.call(failing).await;
    assert_eq!(r.error, ErrorCode::BadVersion.code());
    let codes: Vec<i32> = match r.result {
        Some(wire::response::Result::Multi(m)) => m.results.iter().map(|r| r.error).collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        codes,
        vec![
            0,
            0,
            ErrorCode::BadVersion.code(),
            ErrorCode::RuntimeInconsistency.code()
        ]
    );
    // Nothing of it applied.
    assert_eq!(
        c.call(exists("/m/a", false)).await.0.error,
        ErrorCode::NoNode.code()
    );
    let (after, _) = c.call(get("/m", false)).await;
    assert_eq!(stat_of(&after), stat_of(&before));

    let ok = Op::Multi(wire::MultiRequest {
        ops: vec![
            mop(M::Create(wire::CreateRequest {
                path: "/m/a".into(),
                ..Default::default()
            })),
            mop(M::Create(wire::CreateRequest {
                path: "/m/a/b".into(),
                ..Default::default()
            })),
            mop(M::SetData(wire::SetDataRequest {
                path: "/m".into(),
                data: b"1".to_vec().into(),
                version: 0,
            })),
            mop(M::Check(wire::CheckRequest {
                path: "/m".into(),
                version: 1,
            })),
            mop(M::Delete(wire::DeleteRequest {
                path: "/m/a/b".into(),
                version: -1,
            })),
        ],
    });
    let (r, _) = c.call(ok).await;
    assert_eq!(r.error, 0);
    let results = match r.result {
        Some(wire::response::Result::Multi(m)) => m.results,
        other => panic!("{other:?}"),
    };
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|r| r.error == 0));
    // One txn: every change carries the same zxid.
    let (a, _) = c.call(exists("/m/a", false)).await;
    let (m, _) = c.call(exists("/m", false)).await;
    assert_eq!(stat_of(&a).czxid, stat_of(&m).mzxid);
    assert_eq!(stat_of(&m).version, 1);

    // Read-only multi: each op its own result.
    let read = Op::MultiRead(wire::MultiRequest {
        ops: vec![
            mop(M::GetData(wire::PathRequest { path: "/m".into() })),
            mop(M::GetChildren(wire::PathRequest { path: "/m".into() })),
            mop(M::GetData(wire::PathRequest {
                path: "/nope".into(),
            })),
        ],
    });
    let (r, _) = c.call(read).await;
    assert_eq!(r.error, 0);
    let results = match r.result {
        Some(wire::response::Result::Multi(m)) => m.results,
        other => panic!("{other:?}"),
    };
    assert_eq!(results[2].error, ErrorCode::NoNode.code());
    match &results[1].result {
        Some(wire::op_result::Result::GetChildren(g)) => {
            assert_eq!(g.children, vec!["a".to_string()])
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn stat_versions_errors_and_counts() {
    let server = ServerProcess::start(&[]);
    let mut c = RawClient::connect(server.addr).await;
    let (r, _) = c.call(create("/s", b"abc", CreateMode::Persistent)).await;
    let s0 = stat_of(&r);
    assert_eq!(
        (
            s0.version,
            s0.cversion,
            s0.aversion,
            s0.data_length,
            s0.num_children
        ),
        (0, 0, 0, 3, 0)
    );
    assert_eq!((s0.czxid, s0.mzxid, s0.pzxid), (r.zxid, r.zxid, r.zxid));
    assert_eq!(
        c.call(create("/s", b"", CreateMode::Persistent))
            .await
            .0
            .error,
        ErrorCode::NodeExists.code()
    );
    assert_eq!(
        c.call(create("/no/such", b"", CreateMode::Persistent))
            .await
            .0
            .error,
        ErrorCode::NoNode.code()
    );
    assert_eq!(
        c.call(set("/s", b"x", 5)).await.0.error,
        ErrorCode::BadVersion.code()
    );
    let (r, _) = c.call(set("/s", b"xy", 0)).await;
    let s1 = stat_of(&r);
    assert_eq!(
        (s1.version, s1.data_length, s1.czxid, s1.mzxid),
        (1, 2, s0.czxid, r.zxid)
    );
    let (r, _) = c.call(create("/s/c", b"", CreateMode::Persistent)).await;
    let (p, _) = c.call(exists("/s", false)).await;
    let ps = stat_of(&p);
    assert_eq!(
        (ps.cversion, ps.num_children, ps.pzxid, ps.mzxid),
        (1, 1, r.zxid, s1.mzxid)
    );
    assert_eq!(
        c.call(delete("/s", -1)).await.0.error,
        ErrorCode::NotEmpty.code()
    );
    assert_eq!(
        c.call(delete("/s/c", 3)).await.0.error,
        ErrorCode::BadVersion.code()
    );
    c.call(create("/s/c/d", b"", CreateMode::Persistent)).await;
    let (r, _) = c
        .call(Op::GetAllChildrenNumber(wire::PathRequest {
            path: "/s".into(),
        }))
        .await;
    match r.result {
        Some(wire::response::Result::Count(n)) => assert_eq!(n.count, 2),
        other => panic!("{other:?}"),
    }
    c.call(create("/s/e1", b"", CreateMode::Ephemeral)).await;
    c.call(create("/e2", b"", CreateMode::Ephemeral)).await;
    let (r, _) = c
        .call(Op::GetEphemerals(wire::PathRequest { path: "/s".into() }))
        .await;
    match r.result {
        Some(wire::response::Result::Paths(p)) => assert_eq!(p.paths, vec!["/s/e1".to_string()]),
        other => panic!("{other:?}"),
    }
    let (r, _) = c
        .call(Op::GetChildren(wire::GetChildrenRequest {
            path: "/s".into(),
            watch: false,
            with_stat: true,
        }))
        .await;
    match r.result {
        Some(wire::response::Result::GetChildren(g)) => {
            let mut names = g.children.clone();
            names.sort();
            assert_eq!(names, vec!["c".to_string(), "e1".to_string()]);
            assert_eq!(g.stat.unwrap().num_children, 2);
        }
        other => panic!("{other:?}"),
    }
    let (r, _) = c
        .call(Op::Sync(wire::PathRequest { path: "/s".into() }))
        .await;
    assert_eq!(r.error, 0);
}

#[tokio::test]
async fn containers_and_ttl_nodes_are_removed_when_due() {
    let server = ServerProcess::start(&["--container-check-ms", "100"]);
    let mut c = RawClient::connect(server.addr).await;
    let (r, _) = c.call(create("/box", b"", CreateMode::Container)).await;
    assert_eq!(stat_of(&r).ephemeral_owner, i64::MIN);
    c.call(create("/box/item", b"", CreateMode::Persistent))
        .await;
    // A container that never had children stays (ZooKeeper's rule).
    c.call(create("/fresh-box", b"", CreateMode::Container))
        .await;
    let ttl = Op::Create(wire::CreateRequest {
        path: "/ttl".into(),
        mode: CreateMode::PersistentWithTtl as i32,
        ttl_ms: 300,
        ..Default::default()
    });
    let (r, _) = c.call(ttl).await;
    assert_eq!(r.error, 0);
    assert_eq!(
        stat_of(&r).ephemeral_owner,
        zabkeeper_proto::TTL_EPHEMERAL_OWNER_PREFIX | 300
    );
    let bad_ttl = Op::Create(wire::CreateRequest {
        path: "/ttl2".into(),
        mode: CreateMode::PersistentWithTtl as i32,
        ttl_ms: 0,
        ..Default::default()
    });
    assert_eq!(
        c.call(bad_ttl).await.0.error,
        ErrorCode::BadArguments.code()
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        c.call(exists("/box", false)).await.0.error,
        0,
        "container with a child stays"
    );
    c.call(delete("/box/item", -1)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let gone_box = c.call(exists("/box", false)).await.0.error == ErrorCode::NoNode.code();
        let gone_ttl = c.call(exists("/ttl", false)).await.0.error == ErrorCode::NoNode.code();
        if gone_box && gone_ttl {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container {gone_box} ttl {gone_ttl}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.call(exists("/fresh-box", false)).await.0.error, 0);
}

/// Creates `path`; if refused with NodeExists, reads it at once. 1 if refused.
async fn attempt(c: &mut RawClient, path: String) -> usize {
    let (r, _) = c.call(create(&path, b"x", CreateMode::Persistent)).await;
    if r.error == ErrorCode::NodeExists.code() {
        let (g, _) = c.call(get(&path, false)).await;
        assert_eq!(g.error, 0, "told {path} exists, but cannot read it");
        return 1;
    }
    assert_eq!(r.error, 0);
    0
}

/// A write refused because of another session's write still in flight is answered
/// only after that write is applied: a client told NodeExists can read the node at
/// once (ZooKeeper sends such refusals through its commit pipeline in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_never_ahead_of_the_write_it_rests_on() {
    let server = ServerProcess::start(&[]);
    let mut a = RawClient::connect(server.addr).await;
    let mut b = RawClient::connect(server.addr).await;
    let mut refused = 0;
    for i in 0..300 {
        let path = format!("/race{i}");
        // Both create the same node at once; at most one wins. Whoever is refused
        // reads the node right away, without waiting for the other's answer.
        let (x, y) = tokio::join!(attempt(&mut a, path.clone()), attempt(&mut b, path));
        refused += x + y;
    }
    assert_eq!(refused, 300, "exactly one create of each pair fails");
}
