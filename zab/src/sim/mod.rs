//! A deterministic simulation of a ZAB ensemble.
//!
//! Every run is a pure function of its seed: one PRNG drives message delays,
//! losses, duplicates, link breaks, partitions, crashes, restarts, disk
//! latency and client proposals, and seeds each server's own PRNG. The
//! harness is the runtime the real server must be: it executes each
//! server's actions in order, exactly as documented on [`Action`]:
//!
//! - `Append` goes to a volatile queue and becomes durable after a random
//!   delay, in order; only then is `log_durable` called. A crash loses the
//!   queue; the simulated disk keeps only durable appends, the epochs, and
//!   the last installed snapshot.
//! - `Truncate` and `InstallSnapshot` are durable at once and abandon queued
//!   appends beyond them (their durability is never reported).
//! - `SendSnapshot` encodes the applied sequence (the state machine of the
//!   simulation is simply the list of applied txns) and checks that it ends
//!   exactly at the requested zxid.
//!
//! The network is described in `network.rs`. The invariants (one per file
//! in `invariants/`) are checked after every executed action; liveness is
//! checked at the end: once the chaos stops, the network heals and crashed
//! servers restart, a leader must be established and a new proposal applied
//! everywhere within `settle_ticks`.
//!
//! A failing run returns its error and, when tracing is on, the full event
//! and message trace; the test driver replays failing seeds with tracing.

pub mod invariants;
mod network;
#[cfg(test)]
mod script;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes};

use crate::rng::Rng;
use crate::{Action, Config, Message, Persisted, Phase, Role, ServerId, Txn, Zab, Zxid};
use invariants::{
    check_node_state, check_primary_order, CommittedNeverLost, OneLeaderPerEpoch, PrefixAgreement,
    ReadIndexFresh,
};
use network::Network;

/// Simulated time units per tick.
const TICK: u64 = 10;

/// Knobs of a simulation run; probabilities are per mille, per tick.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Ensemble size.
    pub nodes: usize,
    /// Ticks of chaos.
    pub chaos_ticks: u64,
    /// Ticks allowed, after the chaos, for a leader and a new commit.
    pub settle_ticks: u64,
    /// Maximum one-way message delay, in time units (a tick is 10).
    pub max_delay: u64,
    /// Maximum disk append latency, in time units.
    pub max_disk_delay: u64,
    /// Chance of a client proposal to the leader.
    pub propose: u64,
    /// Chance of crashing a live server.
    pub crash: u64,
    /// Chance of crashing every server at once.
    pub crash_all: u64,
    /// Chance of restarting a crashed server.
    pub restart: u64,
    /// Chance of starting a partition (when none).
    pub partition: u64,
    /// Chance of healing the partition.
    pub heal: u64,
    /// Chance of breaking a random link.
    pub break_link: u64,
    /// Chance of losing an election notification.
    pub vote_drop: u64,
    /// Chance of duplicating an election notification.
    pub vote_dup: u64,
    /// The servers' DIFF window (small, to exercise SNAP).
    pub diff_window: usize,
    /// Chance of beginning a linearizable read on a random live server.
    pub read: u64,
    /// The servers' read lease (0: read index only).
    pub lease_ticks: u32,
    /// How long a leader without a quorum keeps leading.
    pub leader_timeout_ticks: u32,
}

impl SimOptions {
    /// Moderate chaos for `nodes` servers.
    pub fn chaos(nodes: usize) -> SimOptions {
        SimOptions {
            nodes,
            chaos_ticks: 300,
            settle_ticks: 400,
            max_delay: 25,
            max_disk_delay: 30,
            propose: 300,
            crash: 12,
            crash_all: 1,
            restart: 60,
            partition: 10,
            heal: 40,
            break_link: 10,
            vote_drop: 100,
            vote_dup: 50,
            diff_window: 4,
            read: 300,
            lease_ticks: 6,
            leader_timeout_ticks: 25,
        }
    }
}

enum Event {
    Chaos,
    Tick {
        node: usize,
        incarnation: u64,
    },
    Deliver {
        from: ServerId,
        to: ServerId,
        msg: Message,
        generation: Option<u64>,
    },
    Durable {
        node: usize,
        incarnation: u64,
        batch: u64,
    },
    Notify {
        node: usize,
        peer: ServerId,
    },
}

struct Disk {
    accepted_epoch: u32,
    current_epoch: u32,
    lease_mark: bool,
    snapshot: Vec<Txn>,
    log: Vec<Txn>,
}

struct SimNode {
    id: ServerId,
    zab: Option<Zab>,
    incarnation: u64,
    disk: Disk,
    /// Appends not yet durable: (batch id, txns).
    pending: Vec<(u64, Vec<Txn>)>,
    last_disk_time: u64,
    /// The state machine: every txn applied, from the first one ever.
    applied: Vec<Txn>,
}

/// What a run exercised (so that tests can check the chaos reaches the
/// interesting paths).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Leaders established.
    pub leaders: u64,
    /// Txns delivered, over all servers.
    pub delivered: u64,
    /// TRUNCs executed.
    pub truncs: u64,
    /// Snapshots installed.
    pub snapshots: u64,
    /// Server crashes.
    pub crashes: u64,
    /// Whole-ensemble crashes.
    pub crash_alls: u64,
    /// Linearizable reads answered (read index or lease).
    pub reads: u64,
    /// Linearizable reads refused (no leader).
    pub reads_failed: u64,
}

impl std::ops::AddAssign for SimStats {
    fn add_assign(&mut self, o: SimStats) {
        self.leaders += o.leaders;
        self.delivered += o.delivered;
        self.truncs += o.truncs;
        self.snapshots += o.snapshots;
        self.crashes += o.crashes;
        self.crash_alls += o.crash_alls;
        self.reads += o.reads;
        self.reads_failed += o.reads_failed;
    }
}

/// A simulated ensemble.
pub struct Sim {
    stats: SimStats,
    opts: SimOptions,
    rng: Rng,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<SimNode>,
    net: Network,
    next_batch: u64,
    next_client: u64,
    chaos: bool,
    trace: Option<Vec<String>>,
    one_leader: OneLeaderPerEpoch,
    prefix: PrefixAgreement,
    never_lost: CommittedNeverLost,
    fresh_reads: ReadIndexFresh,
    next_read: u64,
    /// The current partition drops messages without breaking links (as TCP
    /// does before it notices); its links break when it heals.
    silent: bool,
}

fn encode_applied(txns: &[Txn]) -> Bytes {
    let mut b = Vec::new();
    for t in txns {
        b.put_u64(t.zxid.0);
        b.put_u32(t.data.len() as u32);
        b.put_slice(&t.data);
    }
    Bytes::from(b)
}

fn decode_applied(mut b: Bytes) -> Result<Vec<Txn>, String> {
    let mut out = Vec::new();
    while b.has_remaining() {
        if b.remaining() < 12 {
            return Err("truncated snapshot".into());
        }
        let zxid = Zxid(b.get_u64());
        let len = b.get_u32() as usize;
        if b.remaining() < len {
            return Err("truncated snapshot".into());
        }
        out.push(Txn {
            zxid,
            data: b.split_to(len),
        });
    }
    Ok(out)
}

fn short(msg: &Message) -> String {
    match msg {
        Message::Proposal { txn } => format!("Proposal({})", txn.zxid),
        Message::Snapshot { zxid, data } => format!("Snapshot({zxid}, {} bytes)", data.len()),
        m => format!("{m:?}"),
    }
}

fn short_action(a: &Action) -> String {
    match a {
        Action::Send { to, msg } => format!("send n{to} {}", short(msg)),
        Action::Append(t) => format!(
            "append {:?}",
            t.iter().map(|t| t.zxid.to_string()).collect::<Vec<_>>()
        ),
        Action::Deliver(t) => format!(
            "deliver {:?}",
            t.iter().map(|t| t.zxid.to_string()).collect::<Vec<_>>()
        ),
        Action::InstallSnapshot { zxid, .. } => format!("install snapshot {zxid}"),
        a => format!("{a:?}"),
    }
}

impl Sim {
    /// A fresh ensemble (servers 1..=n, all started).
    pub fn new(seed: u64, opts: SimOptions, trace: bool) -> Sim {
        let mut sim = Sim {
            rng: Rng::new(seed),
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes: Vec::new(),
            net: Network::default(),
            next_batch: 0,
            next_client: 0,
            chaos: true,
            trace: trace.then(Vec::new),
            stats: SimStats::default(),
            one_leader: OneLeaderPerEpoch::default(),
            prefix: PrefixAgreement::default(),
            never_lost: CommittedNeverLost,
            fresh_reads: ReadIndexFresh::default(),
            next_read: 0,
            silent: false,
            opts,
        };
        for i in 0..sim.opts.nodes {
            sim.nodes.push(SimNode {
                id: i as ServerId + 1,
                zab: None,
                incarnation: 0,
                disk: Disk {
                    accepted_epoch: 0,
                    current_epoch: 0,
                    lease_mark: false,
                    snapshot: Vec::new(),
                    log: Vec::new(),
                },
                pending: Vec::new(),
                last_disk_time: 0,
                applied: Vec::new(),
            });
        }
        sim
    }

    /// What the run exercised so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The trace recorded so far (empty unless tracing).
    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    fn log(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("t={:>5} {}", self.now, f()));
        }
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.rng.below(1000) < per_mille
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn config(&self, id: ServerId) -> Config {
        let mut c = Config::new(id, (1..=self.opts.nodes as u64).collect());
        c.diff_window = self.opts.diff_window;
        c.lease_ticks = self.opts.lease_ticks;
        // A leader slower to give up than its followers (allowed by the config):
        // it still believes it leads while they elect another, which is when a
        // read not confirmed by a quorum would be stale.
        c.leader_timeout_ticks = self.opts.leader_timeout_ticks;
        c
    }

    fn start_node(&mut self, i: usize) -> Result<(), String> {
        let n = &self.nodes[i];
        let persisted = Persisted {
            accepted_epoch: n.disk.accepted_epoch,
            current_epoch: n.disk.current_epoch,
            lease_mark: n.disk.lease_mark,
            snapshot_zxid: n.disk.snapshot.last().map_or(Zxid::ZERO, |t| t.zxid),
            log: n.disk.log.clone(),
        };
        let seed = self.rng.next_u64();
        let mut zab = Zab::new(self.config(n.id), persisted, seed);
        let actions = zab.start();
        let n = &mut self.nodes[i];
        n.zab = Some(zab);
        n.incarnation += 1;
        n.applied = n.disk.snapshot.clone();
        n.pending.clear();
        let inc = n.incarnation;
        let id = n.id;
        self.log(|| format!("n{id} starts (incarnation {inc})"));
        let first = self.now + 1 + self.rng.below(TICK);
        self.schedule(
            first,
            Event::Tick {
                node: i,
                incarnation: inc,
            },
        );
        self.execute(i, actions)
    }

    fn crash(&mut self, i: usize) {
        let id = self.nodes[i].id;
        if self.nodes[i].zab.take().is_none() {
            return;
        }
        self.nodes[i].pending.clear();
        self.nodes[i].applied.clear();
        self.fresh_reads.abandon(i);
        self.stats.crashes += 1;
        self.log(|| format!("n{id} crashes"));
        for j in 0..self.nodes.len() {
            if j != i {
                self.break_link(i, j);
            }
        }
    }

    fn break_link(&mut self, i: usize, j: usize) {
        let (a, b) = (self.nodes[i].id, self.nodes[j].id);
        if !self.net.break_link(a, b) {
            return;
        }
        self.log(|| format!("link n{a}-n{b} breaks"));
        for (node, peer) in [(i, b), (j, a)] {
            if self.nodes[node].zab.is_some() {
                let at = self.now + self.rng.below(2 * TICK);
                self.schedule(at, Event::Notify { node, peer });
            } else {
                self.net.notified(a, b);
            }
        }
    }

    fn send(&mut self, from: ServerId, to: ServerId, msg: Message) {
        let delay = 1 + self.rng.below(self.opts.max_delay);
        if matches!(msg, Message::Vote { .. }) {
            if self.net.partitioned(from, to) || (self.chaos && self.chance(self.opts.vote_drop)) {
                return;
            }
            let copies = if self.chaos && self.chance(self.opts.vote_dup) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let at = self.now + 1 + self.rng.below(self.opts.max_delay);
                self.schedule(
                    at,
                    Event::Deliver {
                        from,
                        to,
                        msg: msg.clone(),
                        generation: None,
                    },
                );
            }
            return;
        }
        if let Some((generation, at)) = self.net.reserve(from, to, self.now + delay) {
            self.schedule(
                at,
                Event::Deliver {
                    from,
                    to,
                    msg,
                    generation: Some(generation),
                },
            );
        }
    }

    fn node_index(&self, id: ServerId) -> usize {
        (id - 1) as usize
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>) -> Result<(), String> {
        let id = self.nodes[i].id;
        for action in actions {
            self.log(|| format!("n{id} {}", short_action(&action)));
            match action {
                Action::Send { to, msg } => self.send(id, to, msg),
                Action::PersistEpochs {
                    accepted_epoch,
                    current_epoch,
                } => {
                    let d = &mut self.nodes[i].disk;
                    d.accepted_epoch = accepted_epoch;
                    d.current_epoch = current_epoch;
                }
                Action::PersistLeaseMark { set } => self.nodes[i].disk.lease_mark = set,
                Action::Append(txns) => {
                    self.next_batch += 1;
                    let batch = self.next_batch;
                    let at = (self.now + 1 + self.rng.below(self.opts.max_disk_delay))
                        .max(self.nodes[i].last_disk_time);
                    let n = &mut self.nodes[i];
                    n.last_disk_time = at;
                    n.pending.push((batch, txns));
                    let incarnation = n.incarnation;
                    self.schedule(
                        at,
                        Event::Durable {
                            node: i,
                            incarnation,
                            batch,
                        },
                    );
                }
                Action::Truncate { after } => {
                    self.stats.truncs += 1;
                    let n = &mut self.nodes[i];
                    n.disk.log.retain(|t| t.zxid <= after);
                    for (_, b) in n.pending.iter_mut() {
                        b.retain(|t| t.zxid <= after);
                    }
                }
                Action::Deliver(txns) => {
                    check_primary_order(id, &self.nodes[i].applied, &txns)?;
                    self.stats.delivered += txns.len() as u64;
                    self.nodes[i].applied.extend(txns);
                    self.prefix.check(id, &self.nodes[i].applied)?;
                }
                Action::SendSnapshot { to, zxid } => {
                    let applied = &self.nodes[i].applied;
                    let last = applied.last().map_or(Zxid::ZERO, |t| t.zxid);
                    if last != zxid {
                        return Err(format!(
                            "n{id}: SendSnapshot at {zxid} but applied up to {last}"
                        ));
                    }
                    let data = encode_applied(applied);
                    self.send(id, to, Message::Snapshot { zxid, data });
                }
                Action::InstallSnapshot { zxid, data } => {
                    let txns = decode_applied(data)?;
                    self.stats.snapshots += 1;
                    if txns.last().map_or(Zxid::ZERO, |t| t.zxid) != zxid {
                        return Err(format!("n{id}: snapshot does not end at {zxid}"));
                    }
                    let old = std::mem::take(&mut self.nodes[i].applied);
                    if old.len() > txns.len() || txns[..old.len()] != old[..] {
                        return Err(format!(
                            "n{id}: snapshot {zxid} does not extend what was applied"
                        ));
                    }
                    let n = &mut self.nodes[i];
                    n.applied = txns.clone();
                    n.disk.snapshot = txns;
                    n.disk.log.clear();
                    n.pending.clear();
                    self.prefix.check(id, &self.nodes[i].applied)?;
                }
                Action::RoleChanged { .. } => self.fresh_reads.abandon(i),
                Action::ReadReady { id, zxid } => {
                    let inc = self.nodes[i].incarnation;
                    if self.fresh_reads.ready(id, i, inc, zxid)? {
                        self.stats.reads += 1;
                    }
                }
                Action::ReadFailed { id } => {
                    if self.fresh_reads.failed(id) {
                        self.stats.reads_failed += 1;
                    }
                }
                Action::Established => {
                    let zab = self.nodes[i].zab.as_ref().ok_or("dead node acted")?;
                    if zab.is_established_leader() {
                        let epoch = zab.current_epoch();
                        self.one_leader.on_established(epoch, id)?;
                        self.stats.leaders += 1;
                        self.never_lost.on_leader_established(
                            id,
                            self.prefix.reference(),
                            &self.nodes[i].applied,
                        )?;
                    }
                }
            }
        }
        if let Some(zab) = &self.nodes[i].zab {
            check_node_state(id, zab, &self.nodes[i].applied)?;
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) -> Result<(), String> {
        match ev {
            Event::Chaos => self.chaos_step()?,
            Event::Tick { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation {
                    return Ok(());
                }
                if let Some(zab) = &mut self.nodes[node].zab {
                    let actions = zab.tick();
                    self.schedule(self.now + TICK, Event::Tick { node, incarnation });
                    self.execute(node, actions)?;
                }
            }
            Event::Deliver {
                from,
                to,
                msg,
                generation,
            } => {
                if let Some(g) = generation {
                    if self.net.generation(from, to) != g {
                        return Ok(());
                    }
                }
                let i = self.node_index(to);
                if let Some(zab) = &mut self.nodes[i].zab {
                    let m = short(&msg);
                    let actions = zab.step(from, msg);
                    self.log(|| format!("n{to} <- n{from} {m}"));
                    self.execute(i, actions)?;
                }
            }
            Event::Durable {
                node,
                incarnation,
                batch,
            } => {
                let n = &mut self.nodes[node];
                if n.incarnation != incarnation || n.zab.is_none() {
                    return Ok(());
                }
                let mut last = None;
                while n.pending.first().is_some_and(|(b, _)| *b <= batch) {
                    let (_, txns) = n.pending.remove(0);
                    if let Some(t) = txns.last() {
                        last = Some(t.zxid);
                    }
                    n.disk.log.extend(txns);
                }
                if let Some(z) = last {
                    let actions = n
                        .zab
                        .as_mut()
                        .map(|zab| zab.log_durable(z))
                        .unwrap_or_default();
                    let id = n.id;
                    self.log(|| format!("n{id} durable {z}"));
                    self.execute(node, actions)?;
                }
            }
            Event::Notify { node, peer } => {
                let id = self.nodes[node].id;
                self.net.notified(id, peer);
                if let Some(zab) = &mut self.nodes[node].zab {
                    let actions = zab.peer_disconnected(peer);
                    self.log(|| format!("n{id} lost link to n{peer}"));
                    self.execute(node, actions)?;
                }
            }
        }
        Ok(())
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i]
                    .zab
                    .as_ref()
                    .is_some_and(|z| z.is_established_leader())
            })
            .collect()
    }

    fn propose(&mut self) -> Result<Option<Zxid>, String> {
        let leaders = self.leaders();
        if leaders.is_empty() {
            return Ok(None);
        }
        let i = leaders[self.rng.below(leaders.len() as u64) as usize];
        self.next_client += 1;
        let data = Bytes::from(format!("c{}", self.next_client));
        let zab = self.nodes[i].zab.as_mut().ok_or("no leader")?;
        let (zxid, actions) = zab.propose(data).map_err(|e| e.to_string())?;
        let id = self.nodes[i].id;
        self.log(|| format!("client proposes {zxid} to n{id}"));
        self.execute(i, actions)?;
        Ok(Some(zxid))
    }

    /// Begins a linearizable read on a random live server.
    fn read(&mut self) -> Result<(), String> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].zab.is_some())
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let i = live[self.rng.below(live.len() as u64) as usize];
        self.next_read += 1;
        let id = self.next_read;
        let floor = self
            .prefix
            .reference()
            .last()
            .map_or(Zxid::ZERO, |t| t.zxid);
        let inc = self.nodes[i].incarnation;
        self.fresh_reads.begin(id, i, inc, floor);
        let node_id = self.nodes[i].id;
        self.log(|| format!("client reads {id} on n{node_id} (committed {floor})"));
        let zab = self.nodes[i].zab.as_mut().ok_or("no node")?;
        let actions = zab.read_index(id);
        self.execute(i, actions)
    }

    fn chaos_step(&mut self) -> Result<(), String> {
        self.schedule(self.now + TICK, Event::Chaos);
        if self.chance(self.opts.read) {
            self.read()?;
        }
        if self.chance(self.opts.propose) {
            for _ in 0..1 + self.rng.below(3) {
                self.propose()?;
            }
        }
        if !self.chaos {
            return Ok(());
        }
        let n = self.nodes.len();
        if self.chance(self.opts.crash) {
            let i = self.rng.below(n as u64) as usize;
            self.crash(i);
        }
        if self.chance(self.opts.crash_all) {
            self.log(|| "every server crashes".into());
            self.stats.crash_alls += 1;
            for i in 0..n {
                self.crash(i);
            }
        }
        if self.chance(self.opts.restart) {
            let dead: Vec<usize> = (0..n).filter(|&i| self.nodes[i].zab.is_none()).collect();
            if !dead.is_empty() {
                let i = dead[self.rng.below(dead.len() as u64) as usize];
                self.start_node(i)?;
            }
        }
        if self.net.group.is_empty() && self.chance(self.opts.partition) {
            let mut groups = BTreeMap::new();
            for i in 0..n {
                groups.insert(self.nodes[i].id, self.rng.below(2) as u8);
            }
            self.silent = self.chance(500);
            let silent = self.silent;
            self.log(|| format!("partition {groups:?} (silent: {silent})"));
            self.net.group = groups;
            if !silent {
                self.break_partitioned_links();
            }
        } else if !self.net.group.is_empty() && self.chance(self.opts.heal) {
            self.log(|| "partition heals".into());
            self.heal();
        }
        if self.chance(self.opts.break_link) {
            let i = self.rng.below(n as u64) as usize;
            let j = self.rng.below(n as u64) as usize;
            if i != j {
                self.break_link(i, j);
            }
        }
        Ok(())
    }

    fn break_partitioned_links(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            for j in i + 1..n {
                if self.net.partitioned(self.nodes[i].id, self.nodes[j].id) {
                    self.break_link(i, j);
                }
            }
        }
    }

    /// Ends the partition. A silent one lost messages on links that stayed up:
    /// those links break now, so that no conversation resumes after a gap.
    fn heal(&mut self) {
        if self.silent {
            self.break_partitioned_links();
            self.silent = false;
        }
        self.net.group.clear();
    }

    fn run_until(&mut self, end: u64, mut stop: impl FnMut(&Sim) -> bool) -> Result<bool, String> {
        while let Some(entry) = self.events.first_entry() {
            let (at, _) = *entry.key();
            if at > end {
                break;
            }
            let ev = entry.remove();
            self.now = at;
            self.handle(ev)?;
            if stop(self) {
                return Ok(true);
            }
        }
        self.now = end;
        Ok(false)
    }

    /// Runs the chaos phase, then checks liveness.
    pub fn run(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.start_node(i)?;
        }
        self.schedule(self.now + TICK, Event::Chaos);
        self.run_until(self.opts.chaos_ticks * TICK, |_| false)?;

        // Calm: heal, restart everyone, no more faults.
        self.chaos = false;
        self.heal();
        self.log(|| "chaos ends: heal and restart everyone".into());
        for i in 0..self.nodes.len() {
            if self.nodes[i].zab.is_none() {
                self.start_node(i)?;
            }
        }
        let deadline = self.now + self.opts.settle_ticks * TICK;
        let settled = |s: &Sim| {
            s.leaders().len() == 1
                && s.nodes.iter().all(|n| {
                    n.zab
                        .as_ref()
                        .is_some_and(|z| z.phase() == Phase::Broadcast)
                })
        };
        if !self.run_until(deadline, settled)? {
            return Err(format!(
                "liveness: no stable leader within {} ticks after healing",
                self.opts.settle_ticks
            ));
        }
        // A fresh proposal must reach everyone.
        let marker = loop {
            if let Some(z) = self.propose()? {
                break z;
            }
            if !self.run_until(self.now + TICK, |_| false)? && self.now > deadline {
                return Err("liveness: leader lost while settling".into());
            }
        };
        let applied_everywhere = |s: &Sim| {
            s.nodes
                .iter()
                .all(|n| n.applied.last().is_some_and(|t| t.zxid >= marker))
        };
        if !self.run_until(deadline + 100 * TICK, applied_everywhere)? {
            let state: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    let z = n.zab.as_ref();
                    format!(
                        "n{}: role {:?} phase {:?} applied {:?}",
                        n.id,
                        z.map(|z| z.role()),
                        z.map(|z| z.phase()),
                        n.applied.last().map(|t| t.zxid)
                    )
                })
                .collect();
            return Err(format!(
                "liveness: proposal {marker} not applied everywhere: {state:?}"
            ));
        }
        Ok(())
    }

    /// Roles of all servers (None when crashed).
    pub fn roles(&self) -> Vec<Option<Role>> {
        self.nodes
            .iter()
            .map(|n| n.zab.as_ref().map(|z| z.role()))
            .collect()
    }
}
