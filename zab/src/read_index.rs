//! Linearizable reads: read-index rounds and the leader lease.
//!
//! ZooKeeper's reads (and `sync` + read) are not linearizable: a member, even
//! the leader, may serve a read while a newer leader already commits writes.
//! A linearizable read must see every write committed before it began. The
//! runtime asks with [`Zab::read_index`]; the core answers with
//! [`Action::ReadReady`] `{ id, zxid }` (serve once the state machine has
//! applied up to `zxid`) or [`Action::ReadFailed`]. Reads still outstanding at
//! a `RoleChanged` are abandoned without an answer; the runtime fails them.
//!
//! # Read index (no clocks)
//!
//! The leader numbers heartbeat rounds (`Heartbeat { epoch, round }`); a
//! follower answers `HeartbeatAck` only while it follows this leader in this
//! epoch, in broadcast. A read that arrives at the leader waits for a round
//! *sent after it arrived* to be acked by a quorum (the leader included), then
//! is answered with the leader's commit point at that moment. Why that is
//! enough: a newer leader can only be established with a quorum that left
//! this one (each member of it accepted a higher epoch, and such a member
//! never follows an older epoch again), and that quorum intersects the one
//! that acked our round; so when our round is confirmed no newer epoch had
//! been established before the read began, and every write committed before
//! it was committed by this leader, hence is at or below its commit point. A
//! follower forwards the read (`ReadIndex`) over its FIFO link and gets the
//! leader's answer (`ReadIndexReply`); every COMMIT up to that zxid precedes
//! the reply on the link, so the follower reaches it without waiting on
//! anything else. Rounds are batched: reads that arrive while a round is in
//! flight share the next one, sent as soon as the current one is confirmed.
//!
//! # Leader lease (bounded clock drift)
//!
//! With `lease_ticks > 0` the leader also sends a round every heartbeat while
//! leases are in use: from a linearizable read until `follower_timeout_ticks`
//! after the last one (the lease's keep-alive window; heartbeats are plain
//! PINGs otherwise, which promise nothing). A cluster that never asks for a
//! linearizable read so never holds a lease and its failover never waits for
//! one; the first read after an idle window waits for a round, as without a
//! lease, and the lease resumes from it. When
//! a round sent at tick `T` is confirmed, the leader may answer reads at once
//! until tick `T + lease_ticks`. In exchange, every member that acks a round
//! promises not to help establish a newer leader (ACKEPOCH for a new epoch,
//! or counting itself as a new leader) for `lease_ticks + 1` of its own ticks.
//! The promise outlives a crash: before its first ack of a lease round a
//! member persists the lease mark (`PersistLeaseMark`), and it clears the mark
//! once its promise has run out; a member restarted with the mark set makes
//! the promise again at start, since it may have acked a round just before it
//! stopped. A member that acked no lease round lately (no mark) starts without
//! it, so a cluster without linearizable reads pays neither the wait on
//! failover nor on restart. A new epoch needs a quorum, which
//! contains a member of the lease quorum, so it cannot be decided before the
//! lease ends. The extra tick absorbs the phase difference between members'
//! tick counters.
//!
//! The clock assumption: every member's ticks advance at the same rate up to
//! a bounded drift, and the runtime delivers ticks on time (a runtime that
//! falls behind must catch up by ticking for the time it missed, not skip
//! it). With drift `d` (fraction), a lease is safe when
//! `lease_ticks * (1 + d) + 1 <= (lease_ticks + 1) * (1 - d)`; choosing
//! `lease_ticks` well under the follower timeout leaves room for that. A
//! process pause between the lease check and the answer is not covered
//! (as with every lease). Reads without a lease (read index only) assume
//! nothing about clocks.

use std::collections::{BTreeMap, VecDeque};

use crate::node::{RoleState, Zab};
use crate::{Action, Message, Phase, ServerId};

/// The leader's read-index and lease bookkeeping (one per leadership).
#[derive(Default)]
pub(crate) struct ReadRounds {
    /// The last round sent.
    sent: u64,
    /// Rounds sent and not yet confirmed, with the tick each was sent at.
    in_flight: VecDeque<(u64, u64)>,
    /// The highest round acknowledged by a quorum.
    confirmed: u64,
    /// The highest round each follower acknowledged.
    acked: BTreeMap<ServerId, u64>,
    /// Reads are answered at once before this tick.
    lease_until: u64,
    /// Heartbeats are lease rounds before this tick: a linearizable read arrived
    /// less than `follower_timeout_ticks` ago.
    pub(crate) wanted_until: u64,
    /// Reads waiting for a round: (id, asked by (None: this server), round needed).
    waiting: Vec<(u64, Option<ServerId>, u64)>,
}

impl ReadRounds {
    pub(crate) fn forget(&mut self, peer: ServerId) {
        self.acked.remove(&peer);
    }
}

impl Zab {
    /// Asks to serve the linearizable read `id` (ids are the runtime's, unique
    /// per incarnation). See `read_index.rs`.
    pub fn read_index(&mut self, id: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match &self.role {
            RoleState::Leading(_) => self.leader_read(id, None, &mut out),
            RoleState::Following(f) if f.phase == Phase::Broadcast => {
                out.push(Action::Send {
                    to: f.leader,
                    msg: Message::ReadIndex { id },
                });
            }
            _ => out.push(Action::ReadFailed { id }),
        }
        out
    }

    fn answer_read(&self, id: u64, asker: Option<ServerId>, ok: bool, out: &mut Vec<Action>) {
        let zxid = self.committed;
        out.push(match (asker, ok) {
            (None, true) => Action::ReadReady { id, zxid },
            (None, false) => Action::ReadFailed { id },
            (Some(to), ok) => Action::Send {
                to,
                msg: Message::ReadIndexReply {
                    id,
                    zxid: ok.then_some(zxid),
                },
            },
        });
    }

    /// A read at the leader, its own (`asker` None) or a follower's.
    pub(crate) fn leader_read(&mut self, id: u64, asker: Option<ServerId>, out: &mut Vec<Action>) {
        let now = self.now;
        let single = self.cfg.members.len() == 1;
        let RoleState::Leading(l) = &mut self.role else {
            return self.answer_read(id, asker, false, out);
        };
        if l.phase != Phase::Broadcast || asker.is_some_and(|a| !l.is_synced(a)) {
            return self.answer_read(id, asker, false, out);
        }
        l.reads.wanted_until = now + self.cfg.follower_timeout_ticks as u64;
        if single || now < l.reads.lease_until {
            return self.answer_read(id, asker, true, out);
        }
        let r = &mut l.reads;
        if r.in_flight.is_empty() {
            r.waiting.push((id, asker, r.sent + 1));
            self.leader_round(out);
        } else {
            // Shares the round sent once the one in flight is confirmed.
            r.waiting.push((id, asker, r.sent + 1));
        }
    }

    /// Sends a new heartbeat round to every synced follower.
    pub(crate) fn leader_round(&mut self, out: &mut Vec<Action>) {
        let (now, epoch) = (self.now, self.current_epoch);
        let RoleState::Leading(l) = &mut self.role else {
            return;
        };
        let synced = l.synced();
        let r = &mut l.reads;
        r.sent += 1;
        r.in_flight.push_back((r.sent, now));
        let round = r.sent;
        for to in synced {
            out.push(Action::Send {
                to,
                msg: Message::Heartbeat { epoch, round },
            });
        }
        // Alone (or with too few synced followers) a round may already count.
        self.leader_check_rounds(out);
    }

    pub(crate) fn leader_on_heartbeat_ack(
        &mut self,
        from: ServerId,
        epoch: u32,
        round: u64,
        out: &mut Vec<Action>,
    ) {
        let current = self.current_epoch;
        let RoleState::Leading(l) = &mut self.role else {
            return;
        };
        if epoch != current || !l.is_synced(from) || round > l.reads.sent {
            return;
        }
        let a = l.reads.acked.entry(from).or_default();
        *a = (*a).max(round);
        self.leader_check_rounds(out);
    }

    /// Advances the confirmed round, extends the lease, answers the reads it
    /// covers, and starts the next round for reads still waiting.
    fn leader_check_rounds(&mut self, out: &mut Vec<Action>) {
        let quorum = self.cfg.quorum();
        let lease = self.cfg.lease_ticks as u64;
        let RoleState::Leading(l) = &mut self.role else {
            return;
        };
        if l.phase != Phase::Broadcast {
            return;
        }
        let synced = l.synced();
        let r = &mut l.reads;
        let mut rounds: Vec<u64> = synced
            .iter()
            .map(|id| r.acked.get(id).copied().unwrap_or(0))
            .collect();
        rounds.push(r.sent);
        if rounds.len() < quorum {
            return;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let point = rounds[quorum - 1];
        if point <= r.confirmed {
            return;
        }
        r.confirmed = point;
        while let Some(&(round, sent_at)) = r.in_flight.front() {
            if round > point {
                break;
            }
            r.in_flight.pop_front();
            if round == point && lease > 0 {
                r.lease_until = r.lease_until.max(sent_at + lease);
            }
        }
        let (ready, waiting): (Vec<_>, Vec<_>) =
            r.waiting.drain(..).partition(|(_, _, need)| *need <= point);
        r.waiting = waiting;
        let more = !r.waiting.is_empty() && r.in_flight.is_empty();
        for (id, asker, _) in ready {
            self.answer_read(id, asker, true, out);
        }
        if more {
            self.leader_round(out);
        }
    }

    /// A follower's answer to a heartbeat round: only while it follows this
    /// leader in broadcast, in the same epoch; it renews the lease promise.
    pub(crate) fn follower_on_heartbeat(
        &mut self,
        leader: ServerId,
        epoch: u32,
        round: u64,
        out: &mut Vec<Action>,
    ) {
        let broadcast =
            matches!(&self.role, RoleState::Following(f) if f.phase == Phase::Broadcast);
        if !broadcast || epoch != self.current_epoch {
            return;
        }
        if self.cfg.lease_ticks > 0 {
            if !self.lease_mark {
                self.lease_mark = true;
                out.push(Action::PersistLeaseMark { set: true });
            }
            self.promise_until = self
                .promise_until
                .max(self.now + self.cfg.lease_ticks as u64 + 1);
        }
        out.push(Action::Send {
            to: leader,
            msg: Message::HeartbeatAck { epoch, round },
        });
    }

    /// Whether this member promised (by acking a lease round, or by starting)
    /// not to help establish a new leader yet.
    pub(crate) fn lease_promised(&self) -> bool {
        self.cfg.members.len() > 1 && self.now < self.promise_until
    }
}
