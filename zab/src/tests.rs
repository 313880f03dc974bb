//! Transition tests asserting the exact action lists (openraft style).

use bytes::Bytes;

use crate::{Action, Config, Message, PeerState, Persisted, Phase, Role, Txn, Vote, Zab, Zxid};

fn txn(e: u32, c: u32, d: &'static str) -> Txn {
    Txn {
        zxid: Zxid::new(e, c),
        data: Bytes::from_static(d.as_bytes()),
    }
}

fn send(to: u64, msg: Message) -> Action {
    Action::Send { to, msg }
}

fn vote(leader: u64, zxid: Zxid, epoch: u32, round: u64, state: PeerState) -> Message {
    Message::Vote {
        vote: Vote {
            leader,
            zxid,
            epoch,
        },
        round,
        state,
    }
}

fn three(id: u64) -> Zab {
    Zab::new(Config::new(id, vec![1, 2, 3]), Persisted::default(), 7)
}

#[test]
fn single_member_elects_itself_and_commits_without_messages() {
    let mut z = Zab::new(Config::new(1, vec![1]), Persisted::default(), 0);
    assert_eq!(
        z.start(),
        vec![
            Action::RoleChanged {
                role: Role::Looking,
                epoch: 0
            },
            Action::RoleChanged {
                role: Role::Leading,
                epoch: 0
            },
            Action::PersistEpochs {
                accepted_epoch: 1,
                current_epoch: 0
            },
            Action::PersistEpochs {
                accepted_epoch: 1,
                current_epoch: 1
            },
            Action::Established,
        ]
    );
    assert!(z.is_established_leader());
    let (zxid, actions) = z.propose(Bytes::from_static(b"a")).unwrap();
    assert_eq!(zxid, Zxid::new(1, 1));
    assert_eq!(actions, vec![Action::Append(vec![txn(1, 1, "a")])]);
    assert_eq!(
        z.last_committed(),
        Zxid::ZERO,
        "nothing committed before it is durable"
    );
    assert_eq!(
        z.log_durable(zxid),
        vec![Action::Deliver(vec![txn(1, 1, "a")])]
    );
    assert_eq!(z.last_committed(), zxid);
    assert_eq!(z.tick(), vec![], "no peers, no pings");
}

#[test]
fn single_member_restart_commits_its_log_in_a_new_epoch() {
    let persisted = Persisted {
        accepted_epoch: 1,
        current_epoch: 1,
        lease_mark: false,
        snapshot_zxid: Zxid::new(1, 1),
        log: vec![txn(1, 2, "b"), txn(1, 3, "c")],
    };
    let mut z = Zab::new(Config::new(1, vec![1]), persisted, 0);
    assert_eq!(
        z.last_committed(),
        Zxid::new(1, 1),
        "delivery restarts after the snapshot"
    );
    let actions = z.start();
    assert_eq!(
        actions[2..],
        [
            Action::PersistEpochs {
                accepted_epoch: 2,
                current_epoch: 1
            },
            Action::PersistEpochs {
                accepted_epoch: 2,
                current_epoch: 2
            },
            Action::Deliver(vec![txn(1, 2, "b"), txn(1, 3, "c")]),
            Action::Established,
        ]
    );
    let (zxid, _) = z.propose(Bytes::from_static(b"d")).unwrap();
    assert_eq!(
        zxid,
        Zxid::new(2, 1),
        "first proposal of the new epoch has counter 1"
    );
}

/// Drives server 3 of {1,2,3} to an established leader with follower 1.
fn established_leader() -> Zab {
    let mut z = three(3);
    z.start();
    assert_eq!(
        z.step(1, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking)),
        vec![]
    );
    // Every member agrees: no finalize wait.
    assert_eq!(
        z.step(2, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking)),
        vec![Action::RoleChanged {
            role: Role::Leading,
            epoch: 0
        }]
    );
    assert_eq!(z.phase(), Phase::Discovery);
    assert_eq!(
        z.step(
            1,
            Message::FollowerInfo {
                accepted_epoch: 0,
                last_zxid: Zxid::ZERO
            }
        ),
        vec![
            Action::PersistEpochs {
                accepted_epoch: 1,
                current_epoch: 0
            },
            send(1, Message::LeaderInfo { epoch: 1 }),
        ]
    );
    assert_eq!(
        z.step(
            1,
            Message::AckEpoch {
                current_epoch: 0,
                last_zxid: Zxid::ZERO,
                epoch_ends: vec![Zxid::ZERO],
                counted: true
            }
        ),
        vec![
            Action::PersistEpochs {
                accepted_epoch: 1,
                current_epoch: 1
            },
            send(1, Message::Diff { after: Zxid::ZERO }),
            send(
                1,
                Message::NewLeader {
                    epoch: 1,
                    zxid: Zxid::ZERO
                }
            ),
        ]
    );
    assert_eq!(z.phase(), Phase::Synchronisation);
    assert_eq!(
        z.step(1, Message::AckNewLeader { epoch: 1 }),
        vec![
            send(
                1,
                Message::UpToDate {
                    committed: Zxid::ZERO
                }
            ),
            Action::Established
        ]
    );
    z
}

#[test]
fn leader_commits_only_after_quorum_including_its_own_durability() {
    let mut z = established_leader();
    let (zxid, actions) = z.propose(Bytes::from_static(b"a")).unwrap();
    assert_eq!(
        actions,
        vec![
            Action::Append(vec![txn(1, 1, "a")]),
            send(
                1,
                Message::Proposal {
                    txn: txn(1, 1, "a")
                }
            )
        ]
    );
    // The follower's ack alone is not a quorum: the leader's log is not durable.
    assert_eq!(z.step(1, Message::Ack { zxid }), vec![]);
    assert_eq!(z.last_committed(), Zxid::ZERO);
    assert_eq!(
        z.log_durable(zxid),
        vec![
            Action::Deliver(vec![txn(1, 1, "a")]),
            send(1, Message::Commit { zxid })
        ]
    );
}

#[test]
fn leader_commits_in_order_with_cumulative_acks() {
    let mut z = established_leader();
    let (a, _) = z.propose(Bytes::from_static(b"a")).unwrap();
    let (b, _) = z.propose(Bytes::from_static(b"b")).unwrap();
    assert_eq!(z.log_durable(b), vec![]);
    assert_eq!(
        z.step(1, Message::Ack { zxid: a }),
        vec![
            Action::Deliver(vec![txn(1, 1, "a")]),
            send(1, Message::Commit { zxid: a })
        ]
    );
    assert_eq!(
        z.step(1, Message::Ack { zxid: b }),
        vec![
            Action::Deliver(vec![txn(1, 2, "b")]),
            send(1, Message::Commit { zxid: b })
        ]
    );
}

#[test]
fn leader_steps_down_without_a_quorum() {
    let mut z = established_leader();
    let timeout = z.config().leader_timeout_ticks;
    let mut stepped = false;
    for _ in 0..=timeout + 1 {
        if z.tick().contains(&Action::RoleChanged {
            role: Role::Looking,
            epoch: 1,
        }) {
            stepped = true;
            break;
        }
    }
    assert!(stepped);
    assert_eq!(z.role(), Role::Looking);
    assert!(z.propose(Bytes::new()).is_err());
}

/// Drives server 2 of {1,2,3} to follow 3 (finalize window included).
fn following() -> Zab {
    let mut z = three(2);
    z.start();
    let v3 = vote(3, Zxid::ZERO, 0, 1, PeerState::Looking);
    assert_eq!(
        z.step(3, v3.clone()),
        vec![send(1, v3.clone()), send(3, v3.clone())],
        "adopts the better vote and re-broadcasts it"
    );
    assert_eq!(
        z.role(),
        Role::Looking,
        "quorum but not unanimous: finalize window"
    );
    assert_eq!(z.tick(), vec![]);
    assert_eq!(
        z.tick(),
        vec![
            Action::RoleChanged {
                role: Role::Following { leader: 3 },
                epoch: 0
            },
            send(
                3,
                Message::FollowerInfo {
                    accepted_epoch: 0,
                    last_zxid: Zxid::ZERO
                }
            ),
        ]
    );
    z
}

#[test]
fn follower_acks_only_after_durability() {
    let mut z = following();
    assert_eq!(
        z.step(3, Message::LeaderInfo { epoch: 1 }),
        vec![
            Action::PersistEpochs {
                accepted_epoch: 1,
                current_epoch: 0
            },
            send(
                3,
                Message::AckEpoch {
                    current_epoch: 0,
                    last_zxid: Zxid::ZERO,
                    epoch_ends: vec![Zxid::ZERO],
                    counted: true
                }
            ),
        ]
    );
    assert_eq!(z.step(3, Message::Diff { after: Zxid::ZERO }), vec![]);
    assert_eq!(
        z.step(
            3,
            Message::Proposal {
                txn: txn(0, 1, "old")
            }
        ),
        vec![Action::Append(vec![txn(0, 1, "old")])]
    );
    assert_eq!(
        z.step(
            3,
            Message::NewLeader {
                epoch: 1,
                zxid: Zxid::new(0, 1)
            }
        ),
        vec![],
        "not durable yet"
    );
    assert_eq!(z.current_epoch(), 0);
    assert_eq!(
        z.log_durable(Zxid::new(0, 1)),
        vec![
            Action::PersistEpochs {
                accepted_epoch: 1,
                current_epoch: 1
            },
            send(3, Message::AckNewLeader { epoch: 1 })
        ]
    );
    assert_eq!(
        z.last_committed(),
        Zxid::ZERO,
        "nothing delivered before UPTODATE"
    );
    assert_eq!(
        z.step(
            3,
            Message::UpToDate {
                committed: Zxid::new(0, 1)
            }
        ),
        vec![Action::Deliver(vec![txn(0, 1, "old")]), Action::Established]
    );
    assert_eq!(z.phase(), Phase::Broadcast);
    let a = txn(1, 1, "a");
    assert_eq!(
        z.step(3, Message::Proposal { txn: a.clone() }),
        vec![Action::Append(vec![a.clone()])]
    );
    assert_eq!(
        z.step(3, Message::Commit { zxid: a.zxid }),
        vec![Action::Deliver(vec![a.clone()])],
        "commit may precede local durability"
    );
    assert_eq!(
        z.log_durable(a.zxid),
        vec![send(3, Message::Ack { zxid: a.zxid })]
    );
    assert_eq!(z.step(3, Message::Ping), vec![send(3, Message::Pong)]);
}

#[test]
fn follower_refuses_an_older_epoch_and_times_out() {
    let mut z = following();
    assert_eq!(z.step(3, Message::LeaderInfo { epoch: 1 }).len(), 2);
    // A different leader attempt with a stale epoch is refused.
    let mut y = Zab::new(
        Config::new(2, vec![1, 2, 3]),
        Persisted {
            accepted_epoch: 5,
            ..Persisted::default()
        },
        1,
    );
    y.start();
    y.step(3, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking));
    y.tick();
    y.tick();
    assert_eq!(y.role(), Role::Following { leader: 3 });
    let actions = y.step(3, Message::LeaderInfo { epoch: 4 });
    assert_eq!(
        actions[0],
        Action::RoleChanged {
            role: Role::Looking,
            epoch: 0
        }
    );
    assert_eq!(y.accepted_epoch(), 5);
    // Silence from the leader ends the following.
    let timeout = z.config().follower_timeout_ticks;
    for _ in 0..timeout {
        assert!(!z
            .tick()
            .iter()
            .any(|a| matches!(a, Action::RoleChanged { .. })));
    }
    assert_eq!(
        z.tick()[0],
        Action::RoleChanged {
            role: Role::Looking,
            epoch: 0
        }
    );
    // So does a lost connection.
    let mut w = following();
    assert_eq!(w.peer_disconnected(1), vec![]);
    assert_eq!(
        w.peer_disconnected(3)[0],
        Action::RoleChanged {
            role: Role::Looking,
            epoch: 0
        }
    );
}

#[test]
fn a_looking_server_answers_a_worse_vote_of_its_round_with_its_own() {
    // Server 3 votes for itself; server 1's vote for itself (same round) is worse:
    // 1 missed 3's vote (it arrived while 1 still followed its old leader, which
    // answers with that leader), so 3 tells it at once instead of at the resend.
    let mut z = three(3);
    let _ = z.start();
    let round = z.round;
    assert_eq!(
        z.step(1, vote(1, Zxid::ZERO, 0, round, PeerState::Looking)),
        vec![send(1, vote(3, Zxid::ZERO, 0, round, PeerState::Looking))]
    );
    // A peer that already votes as we do gets no answer.
    let actions = z.step(2, vote(3, Zxid::ZERO, 0, round, PeerState::Looking));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Send { to: 2, .. })),
        "{actions:?}"
    );
}

#[test]
fn an_election_does_not_wait_for_the_vote_of_an_unreachable_member() {
    // Server 2 follows 3; 3's link breaks (it crashed). Server 1, also looking,
    // votes for 2: a quorum agrees and the only member that does not is
    // unreachable, so 2 leads at once instead of waiting out the finalize window.
    let mut z = following();
    let _ = z.peer_disconnected(3);
    assert_eq!(z.role(), Role::Looking);
    let round = z.round;
    let actions = z.step(1, vote(2, Zxid::ZERO, 0, round, PeerState::Looking));
    assert!(
        actions.contains(&Action::RoleChanged {
            role: Role::Leading,
            epoch: 0
        }),
        "{actions:?}"
    );
    // With 3 reachable (it sent something since), the window applies again.
    let mut z = following();
    let _ = z.peer_disconnected(3);
    let _ = z.step(3, Message::Ping);
    let round = z.round;
    let actions = z.step(1, vote(2, Zxid::ZERO, 0, round, PeerState::Looking));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RoleChanged { .. })),
        "a reachable member may still send a better vote: {actions:?}"
    );
    assert_eq!(z.role(), Role::Looking);
    // A member that disconnects during the window ends it.
    let actions = z.peer_disconnected(3);
    assert!(
        actions.contains(&Action::RoleChanged {
            role: Role::Leading,
            epoch: 0
        }),
        "{actions:?}"
    );
    // A leader silent for the whole follower timeout (frozen, or cut off with
    // its connections open) counts as unreachable too.
    let mut z = following();
    let timeout = z.config().follower_timeout_ticks;
    for _ in 0..=timeout {
        let _ = z.tick();
    }
    assert_eq!(z.role(), Role::Looking);
    let round = z.round;
    let actions = z.step(1, vote(2, Zxid::ZERO, 0, round, PeerState::Looking));
    assert!(
        actions.contains(&Action::RoleChanged {
            role: Role::Leading,
            epoch: 0
        }),
        "{actions:?}"
    );
}

#[test]
fn sync_point_truncates_divergent_epochs_and_snaps_when_out_of_window() {
    // Leader history: (1,1) (1,2) (3,1); its window keeps everything.
    let persisted = Persisted {
        accepted_epoch: 3,
        current_epoch: 3,
        lease_mark: false,
        snapshot_zxid: Zxid::ZERO,
        log: vec![txn(1, 1, "a"), txn(1, 2, "b"), txn(3, 1, "c")],
    };
    let z = Zab::new(Config::new(1, vec![1, 2, 3]), persisted.clone(), 0);
    let e = |v: &[(u32, u32)]| v.iter().map(|&(a, b)| Zxid::new(a, b)).collect::<Vec<_>>();
    // Same history: nothing to send.
    assert_eq!(
        z.sync_point(&e(&[(0, 0), (1, 2), (3, 1)])),
        Some(Zxid::new(3, 1))
    );
    // Behind: DIFF from its last.
    assert_eq!(z.sync_point(&e(&[(0, 0), (1, 1)])), Some(Zxid::new(1, 1)));
    // Epoch 2 was never adopted by the leader: TRUNC to the end of epoch 1 the
    // follower has, even though (1,2) < (2,1) is in the leader's history.
    assert_eq!(
        z.sync_point(&e(&[(0, 0), (1, 1), (2, 1)])),
        Some(Zxid::new(1, 1))
    );
    // More of epoch 3 than the leader (impossible in practice): cut to ours.
    assert_eq!(
        z.sync_point(&e(&[(0, 0), (1, 2), (3, 5)])),
        Some(Zxid::new(3, 1))
    );
    // Out of the DIFF window: the leader trims (1,1) and (1,2) once committed.
    let mut cfg = Config::new(1, vec![1]);
    cfg.diff_window = 1;
    let mut solo = Zab::new(cfg, persisted, 0);
    solo.start();
    assert_eq!(solo.last_committed(), Zxid::new(3, 1));
    assert_eq!(solo.sync_point(&e(&[(0, 0), (1, 1)])), None, "SNAP");
    assert_eq!(solo.sync_point(&e(&[(0, 0), (2, 4)])), None, "SNAP");
    assert_eq!(
        solo.sync_point(&e(&[(0, 0), (1, 2)])),
        Some(Zxid::new(1, 2)),
        "the window base itself"
    );
}

#[test]
fn looking_server_joins_a_running_ensemble() {
    let mut z = three(1);
    z.start();
    let est = Vote::established(3, 4);
    let following = Message::Vote {
        vote: est,
        round: 9,
        state: PeerState::Following,
    };
    let leading = Message::Vote {
        vote: est,
        round: 9,
        state: PeerState::Leading,
    };
    assert_eq!(z.step(2, following), vec![]);
    assert_eq!(
        z.step(3, leading),
        vec![
            Action::RoleChanged {
                role: Role::Following { leader: 3 },
                epoch: 0
            },
            send(
                3,
                Message::FollowerInfo {
                    accepted_epoch: 0,
                    last_zxid: Zxid::ZERO
                }
            ),
        ]
    );
}

#[test]
fn follower_truncates_then_installs_snapshot() {
    let persisted = Persisted {
        accepted_epoch: 2,
        current_epoch: 2,
        lease_mark: false,
        snapshot_zxid: Zxid::ZERO,
        log: vec![txn(1, 1, "a"), txn(2, 1, "x")],
    };
    let mut z = Zab::new(Config::new(2, vec![1, 2, 3]), persisted.clone(), 3);
    z.start();
    z.step(3, vote(3, Zxid::new(2, 1), 2, 1, PeerState::Looking));
    z.tick();
    z.tick();
    assert_eq!(z.role(), Role::Following { leader: 3 });
    z.step(3, Message::LeaderInfo { epoch: 3 });
    assert_eq!(
        z.step(
            3,
            Message::Trunc {
                after: Zxid::new(1, 1)
            }
        ),
        vec![Action::Truncate {
            after: Zxid::new(1, 1)
        }]
    );
    assert_eq!(z.last_zxid(), Zxid::new(1, 1));
    let b = txn(1, 2, "b");
    assert_eq!(
        z.step(3, Message::Proposal { txn: b.clone() }),
        vec![Action::Append(vec![b])]
    );
    // Too far behind the leader's window: a snapshot replaces everything.
    let mut y = Zab::new(Config::new(2, vec![1, 2, 3]), persisted, 3);
    y.start();
    y.step(3, vote(3, Zxid::new(2, 1), 2, 1, PeerState::Looking));
    y.tick();
    y.tick();
    y.step(3, Message::LeaderInfo { epoch: 3 });
    let data = Bytes::from_static(b"state");
    assert_eq!(
        y.step(
            3,
            Message::Snapshot {
                zxid: Zxid::new(2, 7),
                data: data.clone()
            }
        ),
        vec![Action::InstallSnapshot {
            zxid: Zxid::new(2, 7),
            data
        }]
    );
    assert_eq!(
        (y.last_zxid(), y.last_committed()),
        (Zxid::new(2, 7), Zxid::new(2, 7))
    );
    // A TRUNC below what it has delivered would be a leader bug: refused.
    let mut w = Zab::new(
        Config::new(2, vec![1, 2, 3]),
        Persisted {
            snapshot_zxid: Zxid::new(2, 1),
            ..Persisted::default()
        },
        3,
    );
    w.start();
    w.step(3, vote(3, Zxid::new(2, 1), 0, 1, PeerState::Looking));
    w.tick();
    w.tick();
    w.step(3, Message::LeaderInfo { epoch: 3 });
    assert_eq!(
        w.step(
            3,
            Message::Trunc {
                after: Zxid::new(1, 1)
            }
        )[0],
        Action::RoleChanged {
            role: Role::Looking,
            epoch: 0
        }
    );
}

#[test]
fn leader_gives_up_when_a_follower_is_ahead() {
    let mut z = three(3);
    z.start();
    z.step(1, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking));
    z.step(2, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking));
    z.step(
        1,
        Message::FollowerInfo {
            accepted_epoch: 0,
            last_zxid: Zxid::new(0, 3),
        },
    );
    let ahead = Message::AckEpoch {
        current_epoch: 0,
        last_zxid: Zxid::new(0, 3),
        epoch_ends: vec![Zxid::new(0, 3)],
        counted: true,
    };
    let actions = z.step(1, ahead);
    assert_eq!(
        actions[0],
        Action::RoleChanged {
            role: Role::Looking,
            epoch: 0
        }
    );
    assert_eq!(z.current_epoch(), 0, "the new epoch was never made current");
}

#[test]
fn leader_steps_down_for_a_joiner_that_promised_a_newer_epoch() {
    let mut z = established_leader();
    let actions = z.step(
        2,
        Message::FollowerInfo {
            accepted_epoch: 5,
            last_zxid: Zxid::ZERO,
        },
    );
    assert_eq!(
        actions[0],
        Action::RoleChanged {
            role: Role::Looking,
            epoch: 1
        }
    );
}

#[test]
fn late_joiner_is_synced_while_the_leader_broadcasts() {
    let mut z = established_leader();
    let (a, _) = z.propose(Bytes::from_static(b"a")).unwrap();
    z.log_durable(a);
    z.step(1, Message::Ack { zxid: a });
    assert_eq!(z.last_committed(), a);
    assert_eq!(
        z.step(
            2,
            Message::FollowerInfo {
                accepted_epoch: 0,
                last_zxid: Zxid::ZERO
            }
        ),
        vec![send(2, Message::LeaderInfo { epoch: 1 })]
    );
    let ack_epoch = Message::AckEpoch {
        current_epoch: 0,
        last_zxid: Zxid::ZERO,
        epoch_ends: vec![Zxid::ZERO],
        counted: true,
    };
    assert_eq!(
        z.step(2, ack_epoch),
        vec![
            send(2, Message::Diff { after: Zxid::ZERO }),
            send(
                2,
                Message::Proposal {
                    txn: txn(1, 1, "a")
                }
            ),
            send(2, Message::NewLeader { epoch: 1, zxid: a }),
        ]
    );
    // Proposed while it syncs: forwarded after NEWLEADER on the FIFO link.
    let (_, actions) = z.propose(Bytes::from_static(b"b")).unwrap();
    assert_eq!(
        actions,
        vec![
            Action::Append(vec![txn(1, 2, "b")]),
            send(
                1,
                Message::Proposal {
                    txn: txn(1, 2, "b")
                }
            ),
            send(
                2,
                Message::Proposal {
                    txn: txn(1, 2, "b")
                }
            ),
        ]
    );
    assert_eq!(
        z.step(2, Message::AckNewLeader { epoch: 1 }),
        vec![send(2, Message::UpToDate { committed: a })]
    );
    // Its ack now counts: with the leader's own durability it commits b.
    z.log_durable(Zxid::new(1, 2));
    assert_eq!(
        z.step(
            2,
            Message::Ack {
                zxid: Zxid::new(1, 2)
            }
        ),
        vec![
            Action::Deliver(vec![txn(1, 2, "b")]),
            send(
                1,
                Message::Commit {
                    zxid: Zxid::new(1, 2)
                }
            ),
            send(
                2,
                Message::Commit {
                    zxid: Zxid::new(1, 2)
                }
            ),
        ]
    );
}

/// `established_leader`, with a read lease of `lease` ticks.
fn established_leader_with_lease(lease: u32) -> Zab {
    let mut z = established_leader();
    z.cfg.lease_ticks = lease;
    z
}

#[test]
fn read_index_waits_for_a_round_sent_after_the_read() {
    let mut z = established_leader();
    // The first read starts round 1 at once (no lease configured).
    assert_eq!(
        z.read_index(10),
        vec![send(1, Message::Heartbeat { epoch: 1, round: 1 })]
    );
    // A read arriving while round 1 is in flight needs round 2.
    assert_eq!(z.read_index(11), vec![]);
    // Round 1 acked by follower 1 (a quorum with the leader): read 10 is
    // answered, and round 2 starts for read 11.
    assert_eq!(
        z.step(1, Message::HeartbeatAck { epoch: 1, round: 1 }),
        vec![
            Action::ReadReady {
                id: 10,
                zxid: Zxid::ZERO
            },
            send(1, Message::Heartbeat { epoch: 1, round: 2 }),
        ]
    );
    // A repeated ack of round 1, or one of another epoch, confirms nothing.
    assert_eq!(
        z.step(1, Message::HeartbeatAck { epoch: 1, round: 1 }),
        vec![]
    );
    assert_eq!(
        z.step(1, Message::HeartbeatAck { epoch: 0, round: 2 }),
        vec![]
    );
    // Follower 2 is not synced: its ack does not count.
    assert_eq!(
        z.step(2, Message::HeartbeatAck { epoch: 1, round: 2 }),
        vec![]
    );
    assert_eq!(
        z.step(1, Message::HeartbeatAck { epoch: 1, round: 2 }),
        vec![Action::ReadReady {
            id: 11,
            zxid: Zxid::ZERO
        }]
    );
}

#[test]
fn read_index_answers_with_the_commit_point_and_serves_followers() {
    let mut z = established_leader();
    let (a, _) = z.propose(Bytes::from_static(b"a")).unwrap();
    z.log_durable(a);
    z.step(1, Message::Ack { zxid: a });
    assert_eq!(z.last_committed(), a);
    // A synced follower's read: a round, then the reply with the commit point.
    assert_eq!(
        z.step(1, Message::ReadIndex { id: 5 }),
        vec![send(1, Message::Heartbeat { epoch: 1, round: 1 })]
    );
    assert_eq!(
        z.step(1, Message::HeartbeatAck { epoch: 1, round: 1 }),
        vec![send(
            1,
            Message::ReadIndexReply {
                id: 5,
                zxid: Some(a)
            }
        )]
    );
    // A member that is not synced gets a refusal.
    assert_eq!(
        z.step(2, Message::ReadIndex { id: 6 }),
        vec![send(2, Message::ReadIndexReply { id: 6, zxid: None })]
    );
}

#[test]
fn a_lone_follower_or_a_looking_server_refuses_reads() {
    let mut z = three(1);
    z.start();
    assert_eq!(z.read_index(1), vec![Action::ReadFailed { id: 1 }]);
}

/// A leader's tick, after which both followers are heard from (a PONG each), so
/// it keeps leading however long a test ticks.
fn tick_heard(z: &mut Zab) -> Vec<Action> {
    let actions = z.tick();
    for f in [1, 2] {
        let _ = z.step(f, Message::Pong);
    }
    actions
}

#[test]
fn leader_lease_answers_at_once_until_it_ends() {
    let mut z = established_leader_with_lease(4);
    // No linearizable read yet: heartbeats are plain pings (no lease, so no
    // follower promises anything and failover never waits for a lease).
    for _ in 0..12 {
        let actions = tick_heard(&mut z);
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::Send {
                    msg: Message::Heartbeat { .. },
                    ..
                }
            )),
            "a round without linearizable reads: {actions:?}"
        );
    }
    // The first read waits for a round sent at once; its ack starts the lease.
    let sent = z.now;
    assert_eq!(
        z.read_index(1),
        vec![send(1, Message::Heartbeat { epoch: 1, round: 1 })]
    );
    assert_eq!(
        z.step(1, Message::HeartbeatAck { epoch: 1, round: 1 }),
        vec![Action::ReadReady {
            id: 1,
            zxid: Zxid::ZERO
        }]
    );
    // Within the lease: at once, no message.
    assert_eq!(
        z.read_index(2),
        vec![Action::ReadReady {
            id: 2,
            zxid: Zxid::ZERO
        }]
    );
    // Tick until the lease (sent + 4) ends, without acking further rounds; the
    // heartbeats meanwhile are rounds (leases are in use).
    let mut rounds = 0;
    while z.now < sent + 4 {
        rounds += tick_heard(&mut z)
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Send {
                        msg: Message::Heartbeat { .. },
                        ..
                    }
                )
            })
            .count();
    }
    assert!(rounds > 0, "heartbeats are rounds while leases are in use");
    let actions = z.read_index(3);
    assert!(
        !actions.contains(&Action::ReadReady {
            id: 3,
            zxid: Zxid::ZERO
        }),
        "after the lease a read waits for a round: {actions:?}"
    );
    // follower_timeout_ticks after the last read, heartbeats are pings again.
    let last_read = z.now;
    let timeout = z.cfg.follower_timeout_ticks as u64;
    while z.now < last_read + timeout {
        tick_heard(&mut z);
    }
    for _ in 0..4 {
        let actions = tick_heard(&mut z);
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::Send {
                    msg: Message::Heartbeat { .. },
                    ..
                }
            )),
            "rounds after the keep-alive window: {actions:?}"
        );
    }
}

#[test]
fn a_follower_that_acked_a_lease_round_does_not_accept_a_new_epoch_before_its_promise_ends() {
    let mut z = following();
    z.cfg.lease_ticks = 4;
    z.promise_until = 0;
    z.step(3, Message::LeaderInfo { epoch: 1 });
    z.step(
        3,
        Message::NewLeader {
            epoch: 1,
            zxid: Zxid::ZERO,
        },
    );
    z.step(
        3,
        Message::UpToDate {
            committed: Zxid::ZERO,
        },
    );
    assert_eq!(z.phase(), Phase::Broadcast);
    let now = z.now;
    // The first ack of a lease round persists the lease mark before it is sent;
    // later acks need not.
    assert_eq!(
        z.step(3, Message::Heartbeat { epoch: 1, round: 7 }),
        vec![
            Action::PersistLeaseMark { set: true },
            send(3, Message::HeartbeatAck { epoch: 1, round: 7 })
        ]
    );
    assert_eq!(
        z.step(3, Message::Heartbeat { epoch: 1, round: 8 }),
        vec![send(3, Message::HeartbeatAck { epoch: 1, round: 8 })]
    );
    assert_eq!(z.promise_until, now + 5);
    // The leader goes away; server 1 leads epoch 2. While the promise holds, the
    // follower does not answer LEADERINFO.
    z.peer_disconnected(3);
    let mut z = {
        // Make it follow server 1 directly.
        let leader = 1;
        let mut out = Vec::new();
        z.become_follower(leader, &mut out);
        z
    };
    assert_eq!(z.step(1, Message::LeaderInfo { epoch: 2 }), vec![]);
    assert_eq!(z.accepted_epoch(), 1);
    while z.now < now + 5 {
        z.now += 1;
    }
    let actions = z.step(1, Message::LeaderInfo { epoch: 2 });
    assert!(
        actions.contains(&Action::PersistEpochs {
            accepted_epoch: 2,
            current_epoch: 1
        }),
        "{actions:?}"
    );
}

#[test]
fn a_restarted_member_promises_again_only_with_the_lease_mark_set() {
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.lease_ticks = 4;
    // Stopped within a promise (the mark set): it promises lease + 1 ticks again.
    let marked = Persisted {
        accepted_epoch: 1,
        lease_mark: true,
        ..Persisted::default()
    };
    let mut z = Zab::new(cfg.clone(), marked, 1);
    assert_eq!(z.promise_until, 5);
    assert!(z.lease_promised());
    let _ = z.start();
    // It clears the mark once that promise has run out, not before.
    for _ in 1..5 {
        assert!(!z.tick().contains(&Action::PersistLeaseMark { set: false }));
    }
    assert!(z.tick().contains(&Action::PersistLeaseMark { set: false }));
    assert!(!z.lease_promised());
    assert!(!z.tick().contains(&Action::PersistLeaseMark { set: false }));
    // A member that acked no lease round lately (no mark; also a new data
    // directory) promises nothing.
    let unmarked = Persisted {
        accepted_epoch: 1,
        ..Persisted::default()
    };
    let z = Zab::new(cfg.clone(), unmarked, 1);
    assert_eq!(z.promise_until, 0);
    assert!(!z.lease_promised());
    let z = Zab::new(cfg, Persisted::default(), 1);
    assert!(!z.lease_promised());
}

#[test]
fn a_looking_server_sends_its_vote_to_a_peer_that_connects() {
    let mut z = three(2);
    let _ = z.start();
    assert_eq!(
        z.peer_connected(3),
        vec![send(3, vote(2, Zxid::ZERO, 0, 1, PeerState::Looking))]
    );
    // Once decided, a connect sends nothing (peers that look ask, and get an answer).
    let _ = z.step(1, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking));
    let _ = z.step(3, vote(3, Zxid::ZERO, 0, 1, PeerState::Looking));
    assert_eq!(z.role(), Role::Following { leader: 3 });
    assert!(z.peer_connected(1).is_empty());
}
