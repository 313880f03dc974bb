//! Prep tests: every refusal, sequential numbering, multi atomicity and per-op
//! results, pipelined validation against the overlay, and the overlay's lifetime.

use bytes::Bytes;
use zabkeeper_proto::{wire::CreateMode, ErrorCode, EventType, MAX_TTL_MS};

use super::*;
use crate::request::{Acl, WriteOp};
use crate::tree::tests::{check_invariants, create, dump, mk, Harness};
use crate::tree::{Trigger, TxnResult};

fn del(path: &str, version: i32) -> WriteOp {
    WriteOp::Delete {
        path: path.into(),
        version,
    }
}

fn set(path: &str, version: i32) -> WriteOp {
    WriteOp::SetData {
        path: path.into(),
        data: Bytes::from_static(b"v"),
        version,
    }
}

fn check(path: &str, version: i32) -> WriteOp {
    WriteOp::Check {
        path: path.into(),
        version,
    }
}

fn ttl(path: &str, mode: CreateMode, ttl_ms: i64) -> WriteOp {
    WriteOp::Create {
        path: path.into(),
        data: Bytes::new(),
        acl: Acl::open(),
        mode,
        ttl_ms,
    }
}

fn created_path(r: &crate::tree::ApplyResult) -> String {
    match &r.result {
        TxnResult::Created { path, .. } => path.clone(),
        other => panic!("not a create: {other:?}"),
    }
}

#[test]
fn sequential_suffix_is_the_parent_cversion_and_survives_deletes() {
    let mut h = Harness::new();
    h.run(1, mk("/q")).unwrap();
    let a = created_path(
        &h.run(1, create("/q/job-", CreateMode::PersistentSequential))
            .unwrap(),
    );
    let b = created_path(
        &h.run(1, create("/q/job-", CreateMode::EphemeralSequential))
            .unwrap(),
    );
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("/q/job-0000000000", "/q/job-0000000001")
    );
    h.run(1, del(&b, -1)).unwrap();
    h.run(1, mk("/q/plain")).unwrap();
    h.run(1, del("/q/plain", -1)).unwrap();
    // Two creates and a delete later the counter is at 3: deletes do not move it.
    assert_eq!(h.tree.exists("/q").unwrap().cversion, 3);
    let c = created_path(
        &h.run(1, create("/q/job-", CreateMode::PersistentSequential))
            .unwrap(),
    );
    assert_eq!(c, "/q/job-0000000003");
    // A sequential create of a trailing-slash path gets only the number as its name.
    let d = created_path(
        &h.run(1, create("/q/", CreateMode::PersistentSequential))
            .unwrap(),
    );
    assert_eq!(d, "/q/0000000004");
}

#[test]
fn pipelined_sequential_creates_get_distinct_suffixes() {
    let mut h = Harness::new();
    h.run(1, mk("/q")).unwrap();
    let t1 = h
        .prep(1, create("/q/n", CreateMode::PersistentSequential))
        .unwrap();
    let t2 = h
        .prep(2, create("/q/n", CreateMode::PersistentSequential))
        .unwrap();
    let path = |t: &Txn| match &t.body {
        TxnBody::Create {
            path,
            parent_cversion,
            ..
        } => (path.clone(), *parent_cversion),
        b => panic!("{b:?}"),
    };
    assert_eq!(path(&t1), ("/q/n0000000000".to_string(), 1));
    assert_eq!(path(&t2), ("/q/n0000000001".to_string(), 2));
    h.apply(&t1);
    h.apply(&t2);
    assert_eq!(
        h.tree.get_children("/q").unwrap().0,
        vec!["n0000000000", "n0000000001"]
    );
}

#[test]
fn create_refusals() {
    let mut h = Harness::new();
    h.run(1, mk("/a")).unwrap();
    h.run(1, create("/eph", CreateMode::Ephemeral)).unwrap();
    assert_eq!(h.code(1, mk("/missing/x")), ErrorCode::NoNode);
    assert_eq!(h.code(1, mk("/a")), ErrorCode::NodeExists);
    assert_eq!(h.code(1, mk("/")), ErrorCode::NodeExists);
    assert_eq!(h.code(1, mk("/eph/x")), ErrorCode::NoChildrenForEphemerals);
    for bad in ["a", "/a/", "//", "/a/./b", "/a/..", "/\u{1}"] {
        assert_eq!(h.code(1, mk(bad)), ErrorCode::BadArguments, "{bad:?}");
    }
    // TTLs: TTL modes need one in (0, MAX_TTL_MS]; other modes must not carry one.
    assert_eq!(
        h.code(1, ttl("/t", CreateMode::PersistentWithTtl, 0)),
        ErrorCode::BadArguments
    );
    assert_eq!(
        h.code(1, ttl("/t", CreateMode::PersistentWithTtl, -5)),
        ErrorCode::BadArguments
    );
    assert_eq!(
        h.code(
            1,
            ttl(
                "/t",
                CreateMode::PersistentSequentialWithTtl,
                MAX_TTL_MS + 1
            )
        ),
        ErrorCode::BadArguments
    );
    assert_eq!(
        h.code(1, ttl("/t", CreateMode::Persistent, 10)),
        ErrorCode::BadArguments
    );
    h.run(1, ttl("/t", CreateMode::PersistentWithTtl, MAX_TTL_MS))
        .unwrap();
    let acl_create = |acl: Vec<Acl>| WriteOp::Create {
        path: "/z".into(),
        data: Bytes::new(),
        acl,
        mode: CreateMode::Persistent,
        ttl_ms: 0,
    };
    assert_eq!(h.code(1, acl_create(vec![])), ErrorCode::InvalidAcl);
    assert_eq!(
        h.code(
            1,
            acl_create(vec![Acl {
                perms: 31,
                scheme: "world".into(),
                id: "x".into()
            }])
        ),
        ErrorCode::InvalidAcl
    );
    // Ephemerals need an open session.
    assert_eq!(
        h.code(9, create("/e9", CreateMode::Ephemeral)),
        ErrorCode::SessionExpired
    );
    assert_eq!(
        h.code(9, create("/e9", CreateMode::EphemeralSequential)),
        ErrorCode::SessionExpired
    );
    h.run(9, mk("/p9")).unwrap();
    // Nothing refused left a trace.
    assert!(h.pending.is_empty());
    check_invariants(&h.tree);
}

#[test]
fn ephemeral_create_is_refused_once_the_close_is_in_flight() {
    let mut h = Harness::new();
    let close = h.prep(1, WriteOp::CloseSession).unwrap();
    assert_eq!(
        h.prep(1, create("/e", CreateMode::Ephemeral)).unwrap_err(),
        PrepError::Op(ErrorCode::SessionExpired)
    );
    // A session created in flight may create ephemerals at once.
    h.prep(5, WriteOp::CreateSession { timeout_ms: 100 })
        .unwrap();
    let e = h.prep(5, create("/e5", CreateMode::Ephemeral)).unwrap();
    assert!(matches!(
        e.body,
        TxnBody::Create {
            ephemeral_owner: 5,
            ..
        }
    ));
    h.apply(&close);
}

#[test]
fn delete_set_and_check_refusals() {
    let mut h = Harness::new();
    h.run(1, mk("/a")).unwrap();
    h.run(1, mk("/a/b")).unwrap();
    assert_eq!(h.code(1, del("/a", -1)), ErrorCode::NotEmpty);
    assert_eq!(h.code(1, del("/a/b", 3)), ErrorCode::BadVersion);
    assert_eq!(h.code(1, del("/a/zz", -1)), ErrorCode::NoNode);
    assert_eq!(h.code(1, del("/x/zz", -1)), ErrorCode::NoNode);
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            h.code(1, del(special, -1)),
            ErrorCode::BadArguments,
            "{special}"
        );
    }
    assert_eq!(h.code(1, del("a", -1)), ErrorCode::BadArguments);
    assert_eq!(h.code(1, set("/a", 1)), ErrorCode::BadVersion);
    assert_eq!(h.code(1, set("/nope", -1)), ErrorCode::NoNode);
    assert_eq!(h.code(1, set("/a/", -1)), ErrorCode::BadArguments);
    let set_acl = |acl: Vec<Acl>, aversion| WriteOp::SetAcl {
        path: "/a".into(),
        acl,
        aversion,
    };
    assert_eq!(h.code(1, set_acl(Acl::open(), 2)), ErrorCode::BadVersion);
    assert_eq!(h.code(1, set_acl(vec![], -1)), ErrorCode::InvalidAcl);
    assert_eq!(
        h.code(
            1,
            WriteOp::SetAcl {
                path: "/q".into(),
                acl: Acl::open(),
                aversion: -1
            }
        ),
        ErrorCode::NoNode
    );
    // /zookeeper exists and is not special for creates, as in ZooKeeper.
    assert_eq!(h.code(1, mk("/zookeeper")), ErrorCode::NodeExists);
    h.run(1, mk("/zookeeper/mine")).unwrap();
    // The versions the txns carry are the new ones.
    let t = h.prep(1, set("/a", 0)).unwrap();
    assert!(matches!(t.body, TxnBody::SetData { version: 1, .. }));
    let t = h
        .prep(
            1,
            WriteOp::SetAcl {
                path: "/a".into(),
                acl: Acl::open(),
                aversion: 0,
            },
        )
        .unwrap();
    assert!(matches!(t.body, TxnBody::SetAcl { version: 1, .. }));
}

#[test]
fn versions_skip_minus_one_when_they_wrap() {
    assert_eq!(next_version(0, -1), Ok(1));
    assert_eq!(next_version(4, 4), Ok(5));
    assert_eq!(next_version(4, 3), Err(ErrorCode::BadVersion));
    assert_eq!(next_version(i32::MAX, -1), Ok(i32::MIN));
    assert_eq!(next_version(-2, -2), Ok(0));
}

#[test]
fn multi_success_is_one_atomic_txn_seeing_its_own_earlier_ops() {
    let mut h = Harness::new();
    let ops = vec![
        mk("/m"),
        create("/m/s-", CreateMode::PersistentSequential),
        set("/m", 0),
        check("/m", 1),
        mk("/m/x"),
        del("/m/x", 0),
    ];
    let txn = h.prep(1, WriteOp::Multi(ops)).unwrap();
    let TxnBody::Multi(bodies) = &txn.body else {
        panic!("{:?}", txn.body)
    };
    assert_eq!(bodies.len(), 6);
    assert!(matches!(&bodies[3], TxnBody::Check { version: 1, .. }));
    let r = h.apply(&txn);
    let TxnResult::Multi(results) = &r.result else {
        panic!("{:?}", r.result)
    };
    assert!(matches!(&results[1], TxnResult::Created { path, .. } if path == "/m/s-0000000000"));
    assert_eq!(results[3], TxnResult::Checked);
    assert_eq!(results[5], TxnResult::Deleted);
    let t = |p: &str, e| Trigger {
        path: p.into(),
        event: e,
        acl: Acl::open().into(),
    };
    assert_eq!(
        r.triggers,
        vec![
            t("/m", EventType::NodeCreated),
            t("/", EventType::NodeChildrenChanged),
            t("/m/s-0000000000", EventType::NodeCreated),
            t("/m", EventType::NodeChildrenChanged),
            t("/m", EventType::NodeDataChanged),
            t("/m/x", EventType::NodeCreated),
            t("/m", EventType::NodeChildrenChanged),
            t("/m/x", EventType::NodeDeleted),
            t("/m", EventType::NodeChildrenChanged),
        ]
    );
    // One zxid for everything.
    let m = h.tree.exists("/m").unwrap();
    assert_eq!(
        (
            m.czxid,
            m.mzxid,
            m.pzxid,
            m.version,
            m.cversion,
            m.num_children
        ),
        (txn.zxid, txn.zxid, txn.zxid, 1, 2, 1)
    );
    assert_eq!(h.tree.last_applied_zxid(), txn.zxid);
}

#[test]
fn failed_multi_reports_zookeeper_per_op_results_and_leaves_no_trace() {
    let mut h = Harness::new();
    h.run(1, mk("/q")).unwrap();
    let before = dump(&h.tree);
    let zxid = h.zxid;
    let ops = vec![
        mk("/m"),
        create("/q/s-", CreateMode::PersistentSequential),
        set("/q", 5),
        mk("/never"),
    ];
    let err = h.prep(1, WriteOp::Multi(ops)).unwrap_err();
    assert_eq!(
        err,
        PrepError::Multi {
            code: ErrorCode::BadVersion,
            results: vec![0, 0, -103, -2]
        }
    );
    assert_eq!(err.code(), ErrorCode::BadVersion);
    assert!(h.pending.is_empty());
    assert_eq!(h.zxid, zxid);
    assert_eq!(dump(&h.tree), before);
    // The overlay forgot the failed multi: /m can be created and the sequence did not move.
    h.run(1, mk("/m")).unwrap();
    let s = created_path(
        &h.run(1, create("/q/s-", CreateMode::PersistentSequential))
            .unwrap(),
    );
    assert_eq!(s, "/q/s-0000000000");
    // Ops a multi may not hold fail it at their position.
    let err = h
        .prep(
            1,
            WriteOp::Multi(vec![check("/m", -1), WriteOp::CloseSession]),
        )
        .unwrap_err();
    assert_eq!(
        err,
        PrepError::Multi {
            code: ErrorCode::BadArguments,
            results: vec![0, -8]
        }
    );
    let err = h
        .prep(1, WriteOp::Multi(vec![check("/nope", -1), mk("/z")]))
        .unwrap_err();
    assert_eq!(
        err,
        PrepError::Multi {
            code: ErrorCode::NoNode,
            results: vec![-101, -2]
        }
    );
}

#[test]
fn failed_multi_keeps_earlier_in_flight_changes_of_the_same_paths() {
    let mut h = Harness::new();
    h.run(1, mk("/q")).unwrap();
    // In flight: a sequential create under /q (cversion 1 pending).
    let t1 = h
        .prep(1, create("/q/a-", CreateMode::PersistentSequential))
        .unwrap();
    // A multi touching /q and failing must not roll /q back to the tree's state.
    let err = h
        .prep(
            1,
            WriteOp::Multi(vec![
                create("/q/b-", CreateMode::PersistentSequential),
                check("/q", 7),
            ]),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadVersion);
    let t2 = h
        .prep(1, create("/q/c-", CreateMode::PersistentSequential))
        .unwrap();
    assert!(matches!(&t2.body, TxnBody::Create { path, .. } if path == "/q/c-0000000001"));
    h.apply(&t1);
    h.apply(&t2);
    assert!(h.pending.is_empty());
}

#[test]
fn pipelined_writes_validate_against_each_other() {
    let mut h = Harness::new();
    let t1 = h.prep(1, mk("/p")).unwrap();
    let t2 = h.prep(1, set("/p", 0)).unwrap();
    let t3 = h.prep(2, mk("/p/c")).unwrap();
    assert_eq!(
        h.prep(1, mk("/p")).unwrap_err(),
        PrepError::Op(ErrorCode::NodeExists)
    );
    assert_eq!(
        h.prep(1, set("/p", 0)).unwrap_err(),
        PrepError::Op(ErrorCode::BadVersion)
    );
    assert_eq!(
        h.prep(1, del("/p", 1)).unwrap_err(),
        PrepError::Op(ErrorCode::NotEmpty)
    );
    let t4 = h.prep(1, del("/p/c", 0)).unwrap();
    let t5 = h.prep(1, del("/p", 1)).unwrap();
    let t6 = h.prep(1, mk("/p")).unwrap();
    // Applying in order never fails, and the overlay shrinks as txns land.
    let mut sizes = Vec::new();
    for t in [&t1, &t2, &t3, &t4, &t5, &t6] {
        let r = h.apply(t);
        assert!(
            !matches!(r.result, TxnResult::Error(_)),
            "{t:?}: {:?}",
            r.result
        );
        sizes.push(h.pending.len());
    }
    assert_eq!(*sizes.last().unwrap(), 0);
    assert_eq!(h.tree.exists("/p").unwrap().version, 0);
    check_invariants(&h.tree);
}

#[test]
fn applied_drops_only_entries_not_overwritten_later() {
    let mut h = Harness::new();
    let t1 = h.prep(1, mk("/p")).unwrap();
    let t2 = h.prep(1, set("/p", 0)).unwrap();
    h.tree.apply(&t1);
    h.pending.applied(t1.zxid);
    // /p's entry is t2's and must stay: the tree still says version 0.
    assert_eq!(
        h.prep(1, set("/p", 0)).unwrap_err(),
        PrepError::Op(ErrorCode::BadVersion)
    );
    let t3 = h.prep(1, set("/p", 1)).unwrap();
    h.apply(&t2);
    h.apply(&t3);
    assert!(h.pending.is_empty());
    assert_eq!(h.tree.exists("/p").unwrap().version, 2);
}

#[test]
fn clear_forgets_everything_in_flight() {
    let mut h = Harness::new();
    h.prep(1, mk("/p")).unwrap();
    h.prep(7, WriteOp::CreateSession { timeout_ms: 5 }).unwrap();
    assert!(!h.pending.is_empty());
    h.pending.clear();
    assert!(h.pending.is_empty());
    assert_eq!(
        h.prep(1, mk("/p/c")).unwrap_err(),
        PrepError::Op(ErrorCode::NoNode)
    );
    assert_eq!(
        h.prep(7, create("/e", CreateMode::Ephemeral)).unwrap_err(),
        PrepError::Op(ErrorCode::SessionExpired)
    );
}

#[test]
fn close_session_lists_ephemerals_of_tree_and_overlay() {
    let mut h = Harness::new();
    h.run(1, create("/e1", CreateMode::Ephemeral)).unwrap();
    h.run(1, create("/e2", CreateMode::Ephemeral)).unwrap();
    h.run(2, create("/e3", CreateMode::Ephemeral)).unwrap();
    let t1 = h.prep(1, create("/e4", CreateMode::Ephemeral)).unwrap();
    let t2 = h.prep(1, del("/e2", -1)).unwrap();
    let close = h.prep(1, WriteOp::CloseSession).unwrap();
    assert_eq!(
        close.body,
        TxnBody::CloseSession {
            ephemerals: vec!["/e1".into(), "/e4".into()]
        }
    );
    // A delete of a closing session's ephemeral now finds it gone.
    assert_eq!(
        h.prep(2, del("/e1", -1)).unwrap_err(),
        PrepError::Op(ErrorCode::NoNode)
    );
    for t in [&t1, &t2, &close] {
        h.apply(t);
    }
    assert_eq!(h.tree.get_ephemerals(1, ""), Vec::<String>::new());
    assert_eq!(h.tree.get_children("/").unwrap().0, vec!["e3", "zookeeper"]);
    assert_eq!(h.tree.exists("/").unwrap().num_children, 2);
    assert!(h.pending.is_empty());
}

#[test]
fn delete_container_revalidates() {
    let mut h = Harness::new();
    h.run(1, create("/c", CreateMode::Container)).unwrap();
    h.run(1, mk("/c/x")).unwrap();
    h.run(1, mk("/plain")).unwrap();
    h.run(1, create("/e", CreateMode::Ephemeral)).unwrap();
    h.run(1, ttl("/t", CreateMode::PersistentWithTtl, 50))
        .unwrap();
    let dc = |p: &str| WriteOp::DeleteContainer { path: p.into() };
    assert_eq!(h.code(0, dc("/c")), ErrorCode::NotEmpty);
    assert_eq!(h.code(0, dc("/plain")), ErrorCode::BadVersion);
    assert_eq!(h.code(0, dc("/e")), ErrorCode::BadVersion);
    assert_eq!(h.code(0, dc("/t")), ErrorCode::BadVersion);
    assert_eq!(h.code(0, dc("/nope")), ErrorCode::NoNode);
    assert_eq!(h.code(0, dc("/zookeeper")), ErrorCode::BadArguments);
    h.run(1, del("/c/x", -1)).unwrap();
    assert_eq!(h.tree.containers_to_delete(h.time), vec!["/c"]);
    // A child created in flight makes the container busy again.
    let busy = h.prep(1, mk("/c/y")).unwrap();
    assert_eq!(
        h.prep(0, dc("/c")).unwrap_err(),
        PrepError::Op(ErrorCode::NotEmpty)
    );
    h.apply(&busy);
    h.run(1, del("/c/y", -1)).unwrap();
    let r = h.run(0, dc("/c")).unwrap();
    assert_eq!(r.result, TxnResult::Deleted);
    h.time += 100;
    assert_eq!(h.tree.containers_to_delete(h.time), vec!["/t"]);
    h.run(0, dc("/t")).unwrap();
    assert_eq!(h.tree.exists("/t"), None);
    check_invariants(&h.tree);
}

fn prep_as(h: &mut Harness, auth: &[AuthId], op: WriteOp) -> Result<Txn, PrepError> {
    h.time += 1;
    let txn = prepare_with_auth(
        &h.tree,
        &mut h.pending,
        1,
        0,
        h.zxid + 1,
        h.time,
        &op,
        Some(auth),
    )?;
    h.zxid += 1;
    Ok(txn)
}

fn bob() -> Vec<AuthId> {
    vec![AuthId {
        scheme: "digest".into(),
        id: "bob:h".into(),
    }]
}

fn bob_only(perms: i32) -> Vec<Acl> {
    vec![Acl {
        perms,
        scheme: "digest".into(),
        id: "bob:h".into(),
    }]
}

#[test]
fn acl_permissions_are_checked_when_auth_is_given() {
    let mut h = Harness::new();
    let anon: &[AuthId] = &[];
    // /zookeeper/config is read-only for everyone, as in ZooKeeper.
    assert_eq!(
        prep_as(&mut h, anon, set("/zookeeper/config", -1)).unwrap_err(),
        PrepError::Op(ErrorCode::NoAuth)
    );
    h.run(
        1,
        WriteOp::Create {
            path: "/b".into(),
            data: Bytes::new(),
            acl: bob_only(31),
            mode: CreateMode::Persistent,
            ttl_ms: 0,
        },
    )
    .unwrap();
    h.run(1, mk("/b/x")).unwrap();
    let no = |r: Result<Txn, PrepError>| r.unwrap_err().code();
    assert_eq!(no(prep_as(&mut h, anon, mk("/b/y"))), ErrorCode::NoAuth);
    assert_eq!(
        no(prep_as(&mut h, anon, del("/b/x", -1))),
        ErrorCode::NoAuth
    );
    assert_eq!(no(prep_as(&mut h, anon, set("/b", -1))), ErrorCode::NoAuth);
    assert_eq!(
        no(prep_as(
            &mut h,
            anon,
            WriteOp::SetAcl {
                path: "/b".into(),
                acl: Acl::open(),
                aversion: -1
            }
        )),
        ErrorCode::NoAuth
    );
    assert_eq!(
        prep_as(
            &mut h,
            anon,
            WriteOp::Multi(vec![mk("/ok"), check("/b", -1)])
        )
        .unwrap_err(),
        PrepError::Multi {
            code: ErrorCode::NoAuth,
            results: vec![0, -102]
        }
    );
    // NoNode is reported before NoAuth, as ZooKeeper looks the node up first.
    assert_eq!(
        no(prep_as(&mut h, anon, set("/b/none", -1))),
        ErrorCode::NoNode
    );
    // The nodes below /b have their own (open) ACL.
    prep_as(&mut h, anon, set("/b/x", -1)).unwrap();
    // bob, and a super user, may do everything.
    prep_as(&mut h, &bob(), mk("/b/y")).unwrap();
    prep_as(
        &mut h,
        &[AuthId {
            scheme: "super".into(),
            id: "x".into(),
        }],
        set("/b", -1),
    )
    .unwrap();
    // Without auth (plain `prepare`) nothing is checked.
    h.prep(1, mk("/b/z")).unwrap();
}

#[test]
fn in_flight_acls_are_seen_by_later_requests() {
    let mut h = Harness::new();
    let anon: &[AuthId] = &[];
    // A create with an `auth` entry stores bob's digest id.
    let t = prep_as(
        &mut h,
        &bob(),
        WriteOp::Create {
            path: "/p".into(),
            data: Bytes::new(),
            acl: vec![Acl {
                perms: 31,
                scheme: "auth".into(),
                id: "".into(),
            }],
            mode: CreateMode::Persistent,
            ttl_ms: 0,
        },
    )
    .unwrap();
    assert!(matches!(&t.body, TxnBody::Create { acl, .. } if *acl == bob_only(31)));
    // In flight, and after an in-flight setData, /p is still bob's only.
    prep_as(&mut h, &bob(), set("/p", -1)).unwrap();
    assert_eq!(
        prep_as(&mut h, anon, mk("/p/c")).unwrap_err().code(),
        ErrorCode::NoAuth
    );
    // An in-flight setACL opening it lets the anonymous create through.
    prep_as(
        &mut h,
        &bob(),
        WriteOp::SetAcl {
            path: "/p".into(),
            acl: Acl::open(),
            aversion: -1,
        },
    )
    .unwrap();
    let c = prep_as(&mut h, anon, mk("/p/c")).unwrap();
    assert!(matches!(&c.body, TxnBody::Create { path, .. } if path == "/p/c"));
    assert_eq!(
        prep_as(
            &mut h,
            anon,
            WriteOp::Create {
                path: "/q".into(),
                data: Bytes::new(),
                acl: vec![Acl {
                    perms: 31,
                    scheme: "auth".into(),
                    id: "".into()
                }],
                mode: CreateMode::Persistent,
                ttl_ms: 0
            }
        )
        .unwrap_err()
        .code(),
        ErrorCode::InvalidAcl
    );
}
