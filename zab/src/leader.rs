//! The leader side of discovery, synchronisation and broadcast.
//!
//! - Discovery: collect FOLLOWERINFO (accepted epochs) from a quorum, itself
//!   included; pick `newEpoch = max(acceptedEpoch) + 1`, persist it as its
//!   own accepted epoch and send LEADERINFO. Collect counted ACKEPOCHs from a
//!   quorum (itself included). A follower whose `(currentEpoch, lastZxid)`
//!   is ahead of the leader's sends the leader back to election (FLE should
//!   have elected that follower's history; ZooKeeper does the same).
//! - Synchronisation: persist `currentEpoch = newEpoch`, then bring each
//!   follower to the leader's history (see [`Zab::sync_point`]) followed by
//!   NEWLEADER. Once a quorum, the leader included once its own log is
//!   durable, acked NEWLEADER, the leader is *established*: it delivers its
//!   initial history and sends UPTODATE.
//! - Broadcast: proposals get zxids `(newEpoch, 1), (newEpoch, 2), ...`, are
//!   appended locally and sent to every learner that has been synced (or is
//!   being synced: the follower's link is FIFO, so the proposal arrives after
//!   the sync). The commit point is the largest zxid durable on a quorum
//!   (the leader's own durability counts only once reported); commits are
//!   cumulative and therefore strictly in zxid order.
//!
//! Late joiners (FOLLOWERINFO after the epoch is decided) get LEADERINFO at
//! once and are synced as soon as their ACKEPOCH arrives. A late joiner that
//! already promised a higher epoch (to a leader attempt that failed) would
//! refuse ours forever; the leader then steps down so that the next election
//! picks an epoch above every promise (ZooKeeper leaves such a server out
//! until the next election).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::node::{RoleState, Zab};
use crate::read_index::ReadRounds;
use crate::{Action, Message, Phase, ServerId, Txn, Vote, ZabError, Zxid};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// FOLLOWERINFO received; waiting for the new epoch.
    Info,
    /// LEADERINFO sent.
    EpochSent,
    /// ACKEPOCH received; waiting for the epoch quorum before syncing.
    AckedEpoch { last: Zxid, ends: Vec<Zxid> },
    /// Sync and NEWLEADER sent; proposals are forwarded.
    Syncing,
    /// NEWLEADER acked; acks count toward commits.
    Synced,
}

struct Learner {
    stage: Stage,
    last_heard: u64,
    /// Durable on the learner up to here (cumulative ACK).
    acked: Zxid,
    /// The zxid of the NEWLEADER sent to it.
    nl_zxid: Zxid,
}

pub(crate) struct LeaderState {
    pub(crate) phase: Phase,
    learners: BTreeMap<ServerId, Learner>,
    /// Accepted epochs heard in discovery, the leader's own included.
    infos: BTreeMap<ServerId, u32>,
    new_epoch: Option<u32>,
    epoch_acks: BTreeSet<ServerId>,
    /// The leader's `(currentEpoch, lastZxid)` when elected.
    summary: (u32, Zxid),
    /// The leader's last zxid when synchronisation started.
    nl_zxid: Zxid,
    deadline: u64,
    next_ping: u64,
    next_counter: u32,
    /// Linearizable reads: heartbeat rounds and the lease.
    pub(crate) reads: ReadRounds,
}

impl LeaderState {
    /// Each synced learner's durable point (its cumulative ACK), for monitoring.
    pub(crate) fn learner_acks(&self) -> Vec<(ServerId, Zxid)> {
        self.learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced)
            .map(|(id, l)| (*id, l.acked))
            .collect()
    }

    pub(crate) fn new(
        id: ServerId,
        accepted: u32,
        summary: (u32, Zxid),
        now: u64,
        deadline: u64,
    ) -> LeaderState {
        LeaderState {
            phase: Phase::Discovery,
            learners: BTreeMap::new(),
            infos: BTreeMap::from([(id, accepted)]),
            new_epoch: None,
            epoch_acks: BTreeSet::new(),
            summary,
            nl_zxid: Zxid::ZERO,
            deadline,
            next_ping: now,
            next_counter: 1,
            reads: ReadRounds::default(),
        }
    }

    pub(crate) fn drop_learner(&mut self, peer: ServerId) {
        self.learners.remove(&peer);
        self.infos.remove(&peer);
        self.reads.forget(peer);
    }

    pub(crate) fn is_synced(&self, peer: ServerId) -> bool {
        self.learners
            .get(&peer)
            .is_some_and(|l| l.stage == Stage::Synced)
    }

    pub(crate) fn synced(&self) -> Vec<ServerId> {
        self.learners
            .iter()
            .filter(|(_, l)| l.stage == Stage::Synced)
            .map(|(id, _)| *id)
            .collect()
    }

    fn forward_to(&self) -> Vec<ServerId> {
        self.learners
            .iter()
            .filter(|(_, l)| matches!(l.stage, Stage::Syncing | Stage::Synced))
            .map(|(id, _)| *id)
            .collect()
    }
}

impl Zab {
    fn leader_state(&mut self) -> &mut LeaderState {
        match &mut self.role {
            RoleState::Leading(l) => l,
            _ => unreachable!("leader handler called while not leading"),
        }
    }

    pub(crate) fn leader_step(&mut self, from: ServerId, msg: Message, out: &mut Vec<Action>) {
        let now = self.now;
        let l = self.leader_state();
        if let Some(learner) = l.learners.get_mut(&from) {
            learner.last_heard = now;
        }
        match msg {
            Message::FollowerInfo { accepted_epoch, .. } => {
                if l.new_epoch.is_some_and(|e| accepted_epoch > e) {
                    // It promised a newer epoch and cannot join ours: elect
                    // again so that the next epoch is above its promise.
                    return self.become_looking(out);
                }
                match l.learners.get(&from).map(|x| &x.stage) {
                    // A repeat within the same conversation.
                    Some(Stage::Info) => return,
                    Some(Stage::EpochSent) => {
                        let epoch = l.new_epoch.unwrap_or_default();
                        out.push(Action::Send {
                            to: from,
                            msg: Message::LeaderInfo { epoch },
                        });
                        return;
                    }
                    _ => {}
                }
                let mut learner = Learner {
                    stage: Stage::Info,
                    last_heard: now,
                    acked: Zxid::ZERO,
                    nl_zxid: Zxid::ZERO,
                };
                if let Some(epoch) = l.new_epoch {
                    learner.stage = Stage::EpochSent;
                    out.push(Action::Send {
                        to: from,
                        msg: Message::LeaderInfo { epoch },
                    });
                } else {
                    l.infos.insert(from, accepted_epoch);
                }
                l.learners.insert(from, learner);
                self.leader_check_discovery(out);
            }
            Message::AckEpoch {
                current_epoch,
                last_zxid,
                epoch_ends,
                counted,
            } => {
                let Some(learner) = l.learners.get_mut(&from) else {
                    return;
                };
                if learner.stage != Stage::EpochSent {
                    return;
                }
                if counted && l.phase == Phase::Discovery && (current_epoch, last_zxid) > l.summary
                {
                    // The follower's history is newer than ours.
                    return self.become_looking(out);
                }
                learner.stage = Stage::AckedEpoch {
                    last: last_zxid,
                    ends: epoch_ends,
                };
                if counted {
                    l.epoch_acks.insert(from);
                }
                if l.phase == Phase::Discovery {
                    self.leader_check_epoch_quorum(out);
                } else {
                    self.sync_learner(from, out);
                }
            }
            Message::AckNewLeader { epoch } => {
                let new_epoch = l.new_epoch;
                let Some(learner) = l.learners.get_mut(&from) else {
                    return;
                };
                if learner.stage != Stage::Syncing || Some(epoch) != new_epoch {
                    return;
                }
                learner.stage = Stage::Synced;
                learner.acked = learner.nl_zxid;
                if l.phase == Phase::Broadcast {
                    out.push(Action::Send {
                        to: from,
                        msg: Message::UpToDate {
                            committed: self.committed,
                        },
                    });
                    self.leader_try_commit(out);
                } else {
                    self.leader_check_established(out);
                }
            }
            Message::Ack { zxid } => {
                let last = self.hist.last();
                let l = self.leader_state();
                let Some(learner) = l.learners.get_mut(&from) else {
                    return;
                };
                if learner.stage == Stage::Synced {
                    learner.acked = learner.acked.max(zxid.min(last));
                    self.leader_try_commit(out);
                }
            }
            Message::HeartbeatAck { epoch, round } => {
                self.leader_on_heartbeat_ack(from, epoch, round, out)
            }
            Message::ReadIndex { id } => self.leader_read(id, Some(from), out),
            _ => {}
        }
    }

    /// Decides the new epoch once a quorum reported its accepted epoch.
    pub(crate) fn leader_check_discovery(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum();
        let id = self.cfg.id;
        let l = self.leader_state();
        if l.new_epoch.is_some() || l.infos.len() < quorum {
            return;
        }
        let epoch = l.infos.values().copied().max().unwrap_or(0) + 1;
        l.new_epoch = Some(epoch);
        l.epoch_acks.insert(id);
        let mut sends = Vec::new();
        for (peer, learner) in l.learners.iter_mut() {
            if learner.stage == Stage::Info {
                learner.stage = Stage::EpochSent;
                sends.push(Action::Send {
                    to: *peer,
                    msg: Message::LeaderInfo { epoch },
                });
            }
        }
        self.accepted_epoch = epoch;
        out.push(Action::PersistEpochs {
            accepted_epoch: epoch,
            current_epoch: self.current_epoch,
        });
        out.extend(sends);
        self.leader_check_epoch_quorum(out);
    }

    fn leader_check_epoch_quorum(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum();
        let last = self.hist.last();
        let l = self.leader_state();
        let Some(epoch) = l.new_epoch else { return };
        if l.phase != Phase::Discovery || l.epoch_acks.len() < quorum {
            return;
        }
        if self.lease_promised() {
            // Counting ourselves now could end an old leader's lease early:
            // wait (leader_tick checks again).
            return;
        }
        let l = self.leader_state();
        l.phase = Phase::Synchronisation;
        l.nl_zxid = last;
        let waiting: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, x)| matches!(x.stage, Stage::AckedEpoch { .. }))
            .map(|(id, _)| *id)
            .collect();
        self.current_epoch = epoch;
        out.push(Action::PersistEpochs {
            accepted_epoch: self.accepted_epoch,
            current_epoch: epoch,
        });
        for id in waiting {
            self.sync_learner(id, out);
        }
        self.leader_check_established(out);
    }

    /// The end of the longest common prefix of our history and a follower's,
    /// given the follower's epoch ends; `None` when it is not in memory any
    /// more (the follower then gets a snapshot).
    ///
    /// Take the follower's newest epoch `e` that we know (our base or a kept
    /// txn has epoch `e`). Both histories contain `e`'s leader's initial
    /// history followed by a prefix of its proposals, so the common prefix
    /// ends at our largest zxid `<=` the follower's last zxid of `e`. Newer
    /// follower epochs we do not know were never adopted by us and are
    /// truncated.
    pub(crate) fn sync_point(&self, follower_ends: &[Zxid]) -> Option<Zxid> {
        let z = follower_ends
            .iter()
            .rev()
            .find(|z| self.hist.knows_epoch(z.epoch()))?;
        self.hist.largest_at_most(*z)
    }

    fn sync_learner(&mut self, id: ServerId, out: &mut Vec<Action>) {
        let last = self.hist.last();
        let committed = self.committed;
        let RoleState::Leading(l) = &self.role else {
            return;
        };
        let Some(Learner {
            stage: Stage::AckedEpoch { last: f_last, ends },
            ..
        }) = l.learners.get(&id)
        else {
            return;
        };
        let (f_last, point) = (*f_last, self.sync_point(ends));
        let from = match point {
            Some(p) if p < f_last => {
                out.push(Action::Send {
                    to: id,
                    msg: Message::Trunc { after: p },
                });
                p
            }
            Some(p) => {
                out.push(Action::Send {
                    to: id,
                    msg: Message::Diff { after: p },
                });
                p
            }
            None => {
                out.push(Action::SendSnapshot {
                    to: id,
                    zxid: committed,
                });
                committed
            }
        };
        for txn in self.hist.range(from, last) {
            out.push(Action::Send {
                to: id,
                msg: Message::Proposal { txn },
            });
        }
        let epoch = self.current_epoch;
        out.push(Action::Send {
            to: id,
            msg: Message::NewLeader { epoch, zxid: last },
        });
        if let Some(learner) = self.leader_state().learners.get_mut(&id) {
            learner.stage = Stage::Syncing;
            learner.nl_zxid = last;
        }
    }

    fn leader_check_established(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum();
        let durable = self.hist.durable();
        let l = self.leader_state();
        if l.phase != Phase::Synchronisation {
            return;
        }
        let synced = l
            .learners
            .values()
            .filter(|x| x.stage == Stage::Synced)
            .count();
        let me = usize::from(durable >= l.nl_zxid);
        if synced + me < quorum {
            return;
        }
        l.phase = Phase::Broadcast;
        let nl = l.nl_zxid;
        let synced: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, x)| x.stage == Stage::Synced)
            .map(|(id, _)| *id)
            .collect();
        self.vote = Vote::established(self.cfg.id, self.current_epoch);
        self.deliver_up_to(nl, out);
        for to in synced {
            out.push(Action::Send {
                to,
                msg: Message::UpToDate {
                    committed: self.committed,
                },
            });
        }
        out.push(Action::Established);
        self.leader_try_commit(out);
    }

    fn leader_try_commit(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum();
        let durable = self.hist.durable();
        let committed = self.committed;
        let l = self.leader_state();
        if l.phase != Phase::Broadcast {
            return;
        }
        let mut acks: Vec<Zxid> = l
            .learners
            .values()
            .filter(|x| x.stage == Stage::Synced)
            .map(|x| x.acked)
            .collect();
        acks.push(durable);
        if acks.len() < quorum {
            return;
        }
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let point = acks[quorum - 1];
        if point <= committed {
            return;
        }
        let targets = l.forward_to();
        self.deliver_up_to(point, out);
        for to in targets {
            out.push(Action::Send {
                to,
                msg: Message::Commit { zxid: point },
            });
        }
    }

    pub(crate) fn leader_durable(&mut self, out: &mut Vec<Action>) {
        match self.leader_state().phase {
            Phase::Synchronisation => self.leader_check_established(out),
            Phase::Broadcast => self.leader_try_commit(out),
            _ => {}
        }
    }

    pub(crate) fn leader_propose(
        &mut self,
        data: Bytes,
        out: &mut Vec<Action>,
    ) -> Result<Zxid, ZabError> {
        let epoch = self.current_epoch;
        let leader = self.leader();
        let l = match &mut self.role {
            RoleState::Leading(l) if l.phase == Phase::Broadcast => l,
            _ => return Err(ZabError::NotLeader { leader }),
        };
        if l.next_counter == u32::MAX {
            return Err(ZabError::CounterExhausted { epoch });
        }
        let zxid = Zxid::new(epoch, l.next_counter);
        l.next_counter += 1;
        let targets = l.forward_to();
        let txn = Txn { zxid, data };
        self.hist.append(txn.clone());
        out.push(Action::Append(vec![txn.clone()]));
        for to in targets {
            out.push(Action::Send {
                to,
                msg: Message::Proposal { txn: txn.clone() },
            });
        }
        Ok(zxid)
    }

    pub(crate) fn leader_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now;
        let quorum = self.cfg.quorum();
        let heartbeat = self.cfg.heartbeat_ticks as u64;
        let timeout = self.cfg.leader_timeout_ticks as u64;
        let lease = self.cfg.lease_ticks > 0;
        let l = self.leader_state();
        if l.phase != Phase::Broadcast && now >= l.deadline {
            return self.become_looking(out);
        }
        if l.phase == Phase::Discovery {
            self.leader_check_epoch_quorum(out);
            if !matches!(&self.role, RoleState::Leading(_)) {
                return;
            }
        }
        let l = self.leader_state();
        if l.phase == Phase::Broadcast {
            let alive = 1 + l
                .learners
                .values()
                .filter(|x| x.stage == Stage::Synced && now - x.last_heard <= timeout)
                .count();
            if alive < quorum {
                return self.become_looking(out);
            }
        }
        if now >= l.next_ping {
            l.next_ping = now + heartbeat;
            // While leases are in use, synced followers get numbered rounds
            // instead (each renews their promise; see `read_index.rs`).
            let round = lease && l.phase == Phase::Broadcast && now < l.reads.wanted_until;
            for (to, learner) in l.learners.iter() {
                if !(round && learner.stage == Stage::Synced) {
                    out.push(Action::Send {
                        to: *to,
                        msg: Message::Ping,
                    });
                }
            }
            if round {
                self.leader_round(out);
            }
        }
    }
}
