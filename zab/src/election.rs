//! Fast Leader Election (FLE).
//!
//! A LOOKING server votes for itself `(id, last zxid, current epoch)` in a
//! new round (its logical clock) and broadcasts the vote. On a notification
//! from a LOOKING peer:
//! - of a higher round: it jumps to that round, forgets the votes it
//!   collected, adopts the better of its own and the peer's vote and
//!   re-broadcasts;
//! - of its round: it adopts the peer's vote if it beats its own (by
//!   `(epoch, zxid, id)`) and re-broadcasts; if its own beats the peer's, it
//!   answers the peer with it (the peer missed it: it may have arrived while
//!   the peer still followed a leader, which answers with that leader only);
//! - of a lower round: it answers with its vote so the laggard catches up.
//!
//! Once a quorum of the round agrees with its vote it waits `finalize_ticks`
//! for a better vote and decides: lead if the vote names itself, else follow.
//! The wait is skipped when every member agrees, or when each member that does
//! not is unreachable (its link broke, or it was a leader silent for the
//! whole follower timeout, and it sent nothing since): no better
//! vote can come from it in time, and after a leader's crash the survivors
//! would otherwise wait out the window for the dead one (ZooKeeper's fixed
//! 200 ms `finalizeWait`). The wait only prefers the best vote; the choice is
//! safe without it, since the agreeing quorum's votes are all at most the
//! chosen one.
//!
//! Servers already FOLLOWING or LEADING answer a LOOKING peer with their
//! decided vote and state. A LOOKING server joins an existing leader when a
//! quorum of such answers names the same leader and the leader itself
//! answered LEADING (ZooKeeper's `outofelection` check), so a restarted
//! server finds the running ensemble without disturbing it.
//!
//! Votes are re-sent every `election_resend_ticks` plus random jitter, so
//! lost notifications only delay the election.

use std::collections::BTreeMap;

use crate::node::{RoleState, Zab};
use crate::{Action, Message, PeerState, ServerId, Vote};

#[derive(Default)]
pub(crate) struct Election {
    /// Votes of the current round, this server's own included.
    pub(crate) recv: BTreeMap<ServerId, Vote>,
    /// Answers from servers that are following or leading.
    pub(crate) out_of_election: BTreeMap<ServerId, (Vote, PeerState)>,
    /// Decide at this tick if the quorum still holds.
    pub(crate) finalize_at: Option<u64>,
    pub(crate) next_resend: u64,
}

impl Zab {
    pub(crate) fn vote_msg(&self) -> Message {
        let state = match &self.role {
            RoleState::Looking(_) => PeerState::Looking,
            RoleState::Following(_) => PeerState::Following,
            RoleState::Leading(_) => PeerState::Leading,
        };
        Message::Vote {
            vote: self.vote,
            round: self.round,
            state,
        }
    }

    pub(crate) fn resend_interval(&mut self) -> u64 {
        let base = self.cfg.election_resend_ticks as u64;
        base + self.rng.below(base + 1)
    }

    pub(crate) fn on_vote(
        &mut self,
        from: ServerId,
        vote: Vote,
        round: u64,
        state: PeerState,
        out: &mut Vec<Action>,
    ) {
        let RoleState::Looking(e) = &mut self.role else {
            // Following or leading: tell a looking peer who leads.
            if state == PeerState::Looking {
                out.push(Action::Send {
                    to: from,
                    msg: self.vote_msg(),
                });
            }
            return;
        };
        match state {
            PeerState::Looking => {
                if round > self.round {
                    self.round = round;
                    e.recv.clear();
                    e.finalize_at = None;
                    let mine = Vote {
                        leader: self.cfg.id,
                        zxid: self.hist.last(),
                        epoch: self.current_epoch,
                    };
                    self.vote = if vote.beats(&mine) { vote } else { mine };
                    e.recv.insert(self.cfg.id, self.vote);
                    e.recv.insert(from, vote);
                    self.broadcast(&self.vote_msg(), out);
                } else if round < self.round {
                    out.push(Action::Send {
                        to: from,
                        msg: self.vote_msg(),
                    });
                    return;
                } else {
                    e.recv.insert(from, vote);
                    if vote.beats(&self.vote) {
                        self.vote = vote;
                        e.recv.insert(self.cfg.id, vote);
                        e.finalize_at = None;
                        self.broadcast(&self.vote_msg(), out);
                    } else if vote != self.vote {
                        // The peer has not seen our better vote: it may have
                        // reached it while the peer was still following (and
                        // answered with its old leader), and nothing else would
                        // tell it before the next resend.
                        out.push(Action::Send {
                            to: from,
                            msg: self.vote_msg(),
                        });
                    }
                }
                self.check_election(out);
            }
            PeerState::Following | PeerState::Leading => {
                if round == self.round {
                    e.recv.insert(from, vote);
                    let agree = e.recv.values().filter(|v| **v == vote).count();
                    if agree >= self.cfg.quorum() && self.leader_confirmed(vote.leader, round) {
                        self.decide(vote, out);
                        return;
                    }
                }
                let RoleState::Looking(e) = &mut self.role else {
                    return;
                };
                e.out_of_election.insert(from, (vote, state));
                let agree = e
                    .out_of_election
                    .values()
                    .filter(|(v, _)| v.leader == vote.leader && v.epoch == vote.epoch)
                    .count();
                if agree >= self.cfg.quorum() && self.leader_confirmed(vote.leader, round) {
                    self.round = round;
                    self.decide(vote, out);
                }
            }
        }
    }

    /// ZooKeeper's `checkLeader`: a leader other than us must have told us
    /// itself that it leads; we may only be named leader in our own round.
    fn leader_confirmed(&self, leader: ServerId, round: u64) -> bool {
        let RoleState::Looking(e) = &self.role else {
            return false;
        };
        if leader == self.cfg.id {
            return round == self.round;
        }
        matches!(
            e.out_of_election.get(&leader),
            Some((_, PeerState::Leading))
        )
    }

    /// Decides at once when every member agrees (or every member that does not
    /// is unreachable), else starts the finalize window once a quorum agrees.
    pub(crate) fn check_election(&mut self, out: &mut Vec<Action>) {
        let vote = self.vote;
        let quorum = self.cfg.quorum();
        let now = self.now;
        let finalize = self.cfg.finalize_ticks as u64;
        let RoleState::Looking(e) = &mut self.role else {
            return;
        };
        let agree = e.recv.values().filter(|v| **v == vote).count();
        let awaited = self
            .cfg
            .members
            .iter()
            .filter(|m| e.recv.get(m) != Some(&vote) && !self.unreachable.contains(m))
            .count();
        if agree >= quorum && (finalize == 0 || awaited == 0) {
            self.decide(vote, out);
        } else if agree >= quorum {
            if e.finalize_at.is_none() {
                e.finalize_at = Some(now + finalize);
            }
        } else {
            e.finalize_at = None;
        }
    }

    pub(crate) fn election_tick(&mut self, out: &mut Vec<Action>) {
        let RoleState::Looking(e) = &mut self.role else {
            return;
        };
        if e.finalize_at.is_some_and(|t| self.now >= t) {
            e.finalize_at = None;
            let vote = self.vote;
            let agree = e.recv.values().filter(|v| **v == vote).count();
            if agree >= self.cfg.quorum() {
                self.decide(vote, out);
                return;
            }
        }
        let RoleState::Looking(e) = &mut self.role else {
            return;
        };
        if self.now >= e.next_resend {
            let next = self.now + {
                let base = self.cfg.election_resend_ticks as u64;
                base + self.rng.below(base + 1)
            };
            if let RoleState::Looking(e) = &mut self.role {
                e.next_resend = next;
            }
            self.broadcast(&self.vote_msg(), out);
        }
    }

    fn decide(&mut self, vote: Vote, out: &mut Vec<Action>) {
        self.vote = vote;
        if vote.leader == self.cfg.id {
            self.become_leader(out);
        } else {
            self.become_follower(vote.leader, out);
        }
    }
}
