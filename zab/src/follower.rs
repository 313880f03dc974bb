//! The follower side of discovery, synchronisation and broadcast.
//!
//! - Discovery: after FOLLOWERINFO, wait for LEADERINFO(e). Accept it only if
//!   `e > acceptedEpoch` (persist, ACKEPOCH counted) or `e == acceptedEpoch`
//!   (a reconnect to the leader already promised: ACKEPOCH not counted);
//!   a lower epoch sends the server back to election.
//! - Synchronisation: apply TRUNC / DIFF / SNAPSHOT, append the proposals
//!   that follow, then on NEWLEADER wait until the log is durable up to its
//!   zxid, persist `currentEpoch` and send ACKNEWLEADER. Nothing is delivered
//!   before UPTODATE, which carries the leader's commit point.
//! - Broadcast: append each PROPOSAL; ACK cumulatively once durable; deliver
//!   on COMMIT; answer PING with PONG.
//!
//! Any message that does not fit the phase is a protocol error: the server
//! goes back to LOOKING rather than guess.

use crate::node::{RoleState, Zab};
use crate::{Action, Message, Phase, ServerId, Vote, Zxid};

pub(crate) struct FollowerState {
    pub(crate) leader: ServerId,
    pub(crate) phase: Phase,
    last_heard: u64,
    deadline: u64,
    /// When to repeat FOLLOWERINFO while in discovery.
    next_info: u64,
    new_epoch: Option<u32>,
    /// NEWLEADER's zxid, once received.
    nl_zxid: Option<Zxid>,
    nl_acked: bool,
    commit_target: Zxid,
    acked: Zxid,
}

impl FollowerState {
    pub(crate) fn new(leader: ServerId, now: u64, deadline: u64, next_info: u64) -> FollowerState {
        FollowerState {
            leader,
            phase: Phase::Discovery,
            last_heard: now,
            deadline,
            next_info,
            new_epoch: None,
            nl_zxid: None,
            nl_acked: false,
            commit_target: Zxid::ZERO,
            acked: Zxid::ZERO,
        }
    }
}

impl Zab {
    fn follower(&mut self) -> &mut FollowerState {
        match &mut self.role {
            RoleState::Following(f) => f,
            _ => unreachable!("follower handler called while not following"),
        }
    }

    pub(crate) fn follower_step(&mut self, from: ServerId, msg: Message, out: &mut Vec<Action>) {
        let now = self.now;
        let f = self.follower();
        if from != f.leader {
            return;
        }
        f.last_heard = now;
        let phase = f.phase;
        let before_nl = f.nl_zxid.is_none();
        match msg {
            Message::LeaderInfo { epoch } if phase == Phase::Discovery => {
                if epoch > self.accepted_epoch && self.lease_promised() {
                    // Promised to an old leader's lease: answer a later
                    // repeat (FOLLOWERINFO is re-sent every heartbeat).
                    return;
                }
                let counted = if epoch > self.accepted_epoch {
                    self.accepted_epoch = epoch;
                    out.push(Action::PersistEpochs {
                        accepted_epoch: epoch,
                        current_epoch: self.current_epoch,
                    });
                    true
                } else if epoch == self.accepted_epoch {
                    false
                } else {
                    return self.become_looking(out);
                };
                let f = self.follower();
                f.phase = Phase::Synchronisation;
                f.new_epoch = Some(epoch);
                let leader = f.leader;
                out.push(Action::Send {
                    to: leader,
                    msg: Message::AckEpoch {
                        current_epoch: self.current_epoch,
                        last_zxid: self.hist.last(),
                        epoch_ends: self.hist.epoch_ends(),
                        counted,
                    },
                });
            }
            // A repeat caused by a repeated FOLLOWERINFO.
            Message::LeaderInfo { epoch }
                if before_nl && Some(epoch) == self.follower().new_epoch => {}
            Message::Trunc { after } if phase == Phase::Synchronisation && before_nl => {
                if after > self.hist.last() || after < self.committed || after < self.hist.base() {
                    return self.become_looking(out);
                }
                out.push(Action::Truncate { after });
                self.hist.truncate(after);
            }
            Message::Diff { after } if phase == Phase::Synchronisation && before_nl => {
                if after != self.hist.last() {
                    self.become_looking(out);
                }
            }
            Message::Snapshot { zxid, data } if phase == Phase::Synchronisation && before_nl => {
                if zxid < self.committed {
                    return self.become_looking(out);
                }
                out.push(Action::InstallSnapshot { zxid, data });
                self.hist.reset(zxid);
                self.committed = zxid;
            }
            Message::Proposal { txn } if phase != Phase::Discovery => {
                if txn.zxid <= self.hist.last() {
                    return self.become_looking(out);
                }
                self.hist.append(txn.clone());
                out.push(Action::Append(vec![txn]));
            }
            Message::NewLeader { epoch, zxid } if phase == Phase::Synchronisation && before_nl => {
                if Some(epoch) != self.follower().new_epoch || zxid != self.hist.last() {
                    return self.become_looking(out);
                }
                self.follower().nl_zxid = Some(zxid);
                self.follower_durable(out);
            }
            Message::UpToDate { committed } if phase == Phase::Synchronisation && !before_nl => {
                let f = self.follower();
                if !f.nl_acked {
                    return self.become_looking(out);
                }
                f.phase = Phase::Broadcast;
                f.commit_target = f.commit_target.max(committed);
                let (target, leader) = (f.commit_target, f.leader);
                self.vote = Vote::established(leader, self.current_epoch);
                self.deliver_up_to(target, out);
                out.push(Action::Established);
            }
            Message::Commit { zxid } if phase != Phase::Discovery => {
                let f = self.follower();
                f.commit_target = f.commit_target.max(zxid);
                if f.phase == Phase::Broadcast {
                    self.deliver_up_to(zxid, out);
                }
            }
            Message::Ping => out.push(Action::Send {
                to: from,
                msg: Message::Pong,
            }),
            Message::Heartbeat { epoch, round } => {
                self.follower_on_heartbeat(from, epoch, round, out)
            }
            Message::ReadIndexReply { id, zxid } => out.push(match zxid {
                Some(zxid) => Action::ReadReady { id, zxid },
                None => Action::ReadFailed { id },
            }),
            // Not ours to answer: we do not lead.
            Message::ReadIndex { id } => out.push(Action::Send {
                to: from,
                msg: Message::ReadIndexReply { id, zxid: None },
            }),
            // Leftovers of an earlier conversation with the same leader.
            _ if phase == Phase::Discovery => {}
            _ => self.become_looking(out),
        }
    }

    /// Acknowledges NEWLEADER and proposals once they are durable.
    pub(crate) fn follower_durable(&mut self, out: &mut Vec<Action>) {
        let durable = self.hist.durable();
        let accepted = self.accepted_epoch;
        let f = self.follower();
        let leader = f.leader;
        if let (Some(nl), false) = (f.nl_zxid, f.nl_acked) {
            if durable >= nl {
                let epoch = f.new_epoch.unwrap_or(accepted);
                f.nl_acked = true;
                f.acked = nl;
                self.current_epoch = epoch;
                out.push(Action::PersistEpochs {
                    accepted_epoch: accepted,
                    current_epoch: epoch,
                });
                out.push(Action::Send {
                    to: leader,
                    msg: Message::AckNewLeader { epoch },
                });
            }
        }
        let f = self.follower();
        if f.nl_acked && durable > f.acked {
            f.acked = durable;
            out.push(Action::Send {
                to: leader,
                msg: Message::Ack { zxid: durable },
            });
        }
    }

    pub(crate) fn follower_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now;
        let timeout = self.cfg.follower_timeout_ticks as u64;
        let heartbeat = self.cfg.heartbeat_ticks as u64;
        let (accepted_epoch, last_zxid) = (self.accepted_epoch, self.hist.last());
        let f = self.follower();
        if now - f.last_heard > timeout {
            // Silent for the whole timeout (frozen, or cut off): unreachable as
            // far as the election goes, until it sends something again.
            let leader = f.leader;
            self.unreachable.insert(leader);
            return self.become_looking(out);
        }
        if f.phase != Phase::Broadcast && now >= f.deadline {
            return self.become_looking(out);
        }
        // The leader may not have been leading yet when FOLLOWERINFO came
        // (it drops it while still LOOKING): repeat it until LEADERINFO.
        if f.phase == Phase::Discovery && now >= f.next_info {
            f.next_info = now + heartbeat;
            let leader = f.leader;
            out.push(Action::Send {
                to: leader,
                msg: Message::FollowerInfo {
                    accepted_epoch,
                    last_zxid,
                },
            });
        }
    }
}
