//! The `Zab` state machine: shared state, the public API, and the role
//! transitions (each in one place: `become_looking`, `become_follower`,
//! `become_leader`). Per-role message handling lives in `election.rs`,
//! `follower.rs` and `leader.rs`.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::election::Election;
use crate::follower::FollowerState;
use crate::history::History;
use crate::leader::LeaderState;
use crate::rng::Rng;
use crate::{Action, Config, Message, Persisted, Phase, Role, ServerId, Txn, Vote, ZabError, Zxid};

pub(crate) enum RoleState {
    Looking(Election),
    Following(FollowerState),
    Leading(Box<LeaderState>),
}

/// One member's ZAB state machine. See the crate docs.
pub struct Zab {
    pub(crate) cfg: Config,
    pub(crate) rng: Rng,
    pub(crate) accepted_epoch: u32,
    pub(crate) current_epoch: u32,
    pub(crate) hist: History,
    /// Delivered (applied) up to here in this incarnation.
    pub(crate) committed: Zxid,
    /// Ticks since creation.
    pub(crate) now: u64,
    /// FLE logical clock.
    pub(crate) round: u64,
    /// The current vote (the decided one while following or leading).
    pub(crate) vote: Vote,
    pub(crate) role: RoleState,
    started: bool,
    /// Lease promise: do not help establish a new leader before this tick
    /// (see `read_index.rs`).
    pub(crate) promise_until: u64,
    /// The lease mark as last persisted (see `read_index.rs`).
    pub(crate) lease_mark: bool,
    /// Peers whose link broke, or a leader silent past the follower timeout,
    /// that sent nothing since: an election does not wait for their votes (see
    /// `check_election`).
    pub(crate) unreachable: BTreeSet<ServerId>,
}

impl Zab {
    /// Builds a server from its config and what it had on disk. Randomness
    /// (election jitter) comes only from `seed`.
    pub fn new(config: Config, persisted: Persisted, seed: u64) -> Zab {
        let hist = History::new(persisted.snapshot_zxid, persisted.log);
        let vote = Vote {
            leader: config.id,
            zxid: hist.last(),
            epoch: persisted.current_epoch,
        };
        // A restarted member may have acked lease rounds in its previous life, and
        // then promised not to help elect a new leader for a while: it persisted the
        // lease mark before its first such ack and clears it only once the promise
        // ran out, so with the mark set it keeps the promise again, from now.
        let promise_until = match (config.lease_ticks, persisted.lease_mark) {
            (0, _) | (_, false) => 0,
            (t, true) => t as u64 + 1,
        };
        Zab {
            promise_until,
            lease_mark: persisted.lease_mark,
            unreachable: BTreeSet::new(),
            rng: Rng::new(seed),
            accepted_epoch: persisted.accepted_epoch,
            current_epoch: persisted.current_epoch,
            committed: persisted.snapshot_zxid,
            hist,
            now: 0,
            round: 0,
            vote,
            role: RoleState::Looking(Election::default()),
            cfg: config,
            started: false,
        }
    }

    /// Starts the first election. A one-member ensemble elects itself and is
    /// established at once, without any message.
    pub fn start(&mut self) -> Vec<Action> {
        if self.started {
            return Vec::new();
        }
        self.started = true;
        let mut out = Vec::new();
        self.become_looking(&mut out);
        out
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, from: ServerId, msg: Message) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.started || from == self.cfg.id || !self.cfg.members.contains(&from) {
            return out;
        }
        self.unreachable.remove(&from);
        if let Message::Vote { vote, round, state } = msg {
            self.on_vote(from, vote, round, state, &mut out);
            return out;
        }
        match &self.role {
            RoleState::Looking(_) => {}
            RoleState::Following(_) => self.follower_step(from, msg, &mut out),
            RoleState::Leading(_) => self.leader_step(from, msg, &mut out),
        }
        out
    }

    /// Advances time by one tick.
    pub fn tick(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.started {
            return out;
        }
        self.now += 1;
        if self.lease_mark && self.now >= self.promise_until {
            // The promise ran out: a restart need not keep it again.
            self.lease_mark = false;
            out.push(Action::PersistLeaseMark { set: false });
        }
        match &self.role {
            RoleState::Looking(_) => self.election_tick(&mut out),
            RoleState::Following(_) => self.follower_tick(&mut out),
            RoleState::Leading(_) => self.leader_tick(&mut out),
        }
        out
    }

    /// Proposes a transaction; only an established leader may.
    pub fn propose(&mut self, data: Bytes) -> Result<(Zxid, Vec<Action>), ZabError> {
        let mut out = Vec::new();
        let zxid = self.leader_propose(data, &mut out)?;
        Ok((zxid, out))
    }

    /// The runtime reports that every Append up to `up_to` is durable.
    pub fn log_durable(&mut self, up_to: Zxid) -> Vec<Action> {
        let mut out = Vec::new();
        self.hist.mark_durable(up_to);
        match &self.role {
            RoleState::Looking(_) => {}
            RoleState::Following(_) => self.follower_durable(&mut out),
            RoleState::Leading(_) => self.leader_durable(&mut out),
        }
        out
    }

    /// The runtime (re)connected to `peer`. A looking server sends it its vote at
    /// once: votes sent while the peer was unreachable were lost, and waiting for the
    /// periodic resend would stall an election by `election_resend_ticks` or more
    /// (ZooKeeper's FLE likewise sends the current vote on every new connection).
    pub fn peer_connected(&mut self, peer: ServerId) -> Vec<Action> {
        let mut out = Vec::new();
        self.unreachable.remove(&peer);
        if matches!(self.role, RoleState::Looking(_)) && peer != self.cfg.id {
            out.push(Action::Send {
                to: peer,
                msg: self.vote_msg(),
            });
        }
        out
    }

    /// The runtime lost its connection to `peer`.
    pub fn peer_disconnected(&mut self, peer: ServerId) -> Vec<Action> {
        let mut out = Vec::new();
        if peer != self.cfg.id && self.cfg.members.contains(&peer) {
            self.unreachable.insert(peer);
        }
        match &mut self.role {
            RoleState::Looking(_) => self.check_election(&mut out),
            RoleState::Following(f) => {
                if f.leader == peer {
                    self.become_looking(&mut out);
                }
            }
            RoleState::Leading(l) => l.drop_learner(peer),
        }
        out
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Looking(_) => Role::Looking,
            RoleState::Following(f) => Role::Following { leader: f.leader },
            RoleState::Leading(_) => Role::Leading,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match &self.role {
            RoleState::Looking(_) => Phase::Election,
            RoleState::Following(f) => f.phase,
            RoleState::Leading(l) => l.phase,
        }
    }

    /// Whether this server leads and may propose.
    pub fn is_established_leader(&self) -> bool {
        matches!(&self.role, RoleState::Leading(l) if l.phase == Phase::Broadcast)
    }

    /// The epoch of the last leader this server synced with.
    pub fn current_epoch(&self) -> u32 {
        self.current_epoch
    }

    /// The epoch this server last promised.
    pub fn accepted_epoch(&self) -> u32 {
        self.accepted_epoch
    }

    /// The last zxid in this server's history (durable or not).
    pub fn last_zxid(&self) -> Zxid {
        self.hist.last()
    }

    /// Delivered up to here.
    pub fn last_committed(&self) -> Zxid {
        self.committed
    }

    /// The leader, when following or leading.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.role {
            RoleState::Looking(_) => None,
            RoleState::Following(f) => Some(f.leader),
            RoleState::Leading(_) => Some(self.cfg.id),
        }
    }

    /// On a leader, every synced follower with the zxid it has acknowledged
    /// as durable (monitoring: follower lag); empty on other roles.
    pub fn follower_acks(&self) -> Vec<(ServerId, Zxid)> {
        match &self.role {
            RoleState::Leading(l) => l.learner_acks(),
            _ => Vec::new(),
        }
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub(crate) fn self_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.id,
            zxid: self.hist.last(),
            epoch: self.current_epoch,
        }
    }

    pub(crate) fn broadcast(&self, msg: &Message, out: &mut Vec<Action>) {
        for to in self.cfg.peers() {
            out.push(Action::Send {
                to,
                msg: msg.clone(),
            });
        }
    }

    /// Delivers committed transactions in `(committed, up_to]`.
    pub(crate) fn deliver_up_to(&mut self, up_to: Zxid, out: &mut Vec<Action>) {
        let up_to = up_to.min(self.hist.last());
        if up_to <= self.committed {
            return;
        }
        let txns: Vec<Txn> = self.hist.range(self.committed, up_to);
        self.committed = up_to;
        if !txns.is_empty() {
            out.push(Action::Deliver(txns));
        }
        self.hist.trim(self.committed, self.cfg.diff_window);
    }

    pub(crate) fn become_looking(&mut self, out: &mut Vec<Action>) {
        self.round += 1;
        self.vote = self.self_vote();
        let mut e = Election::default();
        e.recv.insert(self.cfg.id, self.vote);
        e.next_resend = self.now + self.resend_interval();
        self.role = RoleState::Looking(e);
        out.push(Action::RoleChanged {
            role: Role::Looking,
            epoch: self.current_epoch,
        });
        self.broadcast(&self.vote_msg(), out);
        self.check_election(out);
    }

    pub(crate) fn become_follower(&mut self, leader: ServerId, out: &mut Vec<Action>) {
        self.role = RoleState::Following(FollowerState::new(
            leader,
            self.now,
            self.now + self.cfg.init_timeout_ticks as u64,
            self.now + self.cfg.heartbeat_ticks as u64,
        ));
        out.push(Action::RoleChanged {
            role: Role::Following { leader },
            epoch: self.current_epoch,
        });
        out.push(Action::Send {
            to: leader,
            msg: Message::FollowerInfo {
                accepted_epoch: self.accepted_epoch,
                last_zxid: self.hist.last(),
            },
        });
    }

    pub(crate) fn become_leader(&mut self, out: &mut Vec<Action>) {
        let l = LeaderState::new(
            self.cfg.id,
            self.accepted_epoch,
            (self.current_epoch, self.hist.last()),
            self.now,
            self.now + self.cfg.init_timeout_ticks as u64,
        );
        self.role = RoleState::Leading(Box::new(l));
        out.push(Action::RoleChanged {
            role: Role::Leading,
            epoch: self.current_epoch,
        });
        self.leader_check_discovery(out);
    }
}
