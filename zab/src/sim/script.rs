//! Golden scripts: scenarios written as commands, whose full message flow
//! and state changes are printed and compared with the text files in
//! `zab/tests/golden/` (toydb style). `ZAB_GOLDEN_UPDATE=1` rewrites them.
//!
//! The network here is one global FIFO queue (no randomness): `deliver`
//! hands messages over in send order until none is left.
//!
//! Commands (`> ` lines): `cluster N [window W] [lease L]`, `start [ids]`,
//! `tick N [ids]`, `deliver`, `durable [ids]`, `stabilize` (deliver and
//! make durable until quiet), `propose ID DATA`, `read ID READ_ID`
//! (a linearizable read on server ID), `crash ID`, `restart ID`,
//! `partition A B | C`, `heal`, `status`. Everything else is output.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;

use crate::{Action, Config, Message, Persisted, ServerId, Txn, Zab, Zxid};

#[derive(Default)]
struct Node {
    zab: Option<Zab>,
    accepted: u32,
    current: u32,
    lease_mark: bool,
    snapshot: Vec<Txn>,
    log: Vec<Txn>,
    pending: Vec<Txn>,
    applied: Vec<Txn>,
}

#[derive(Default)]
struct Cluster {
    nodes: BTreeMap<ServerId, Node>,
    window: usize,
    lease: u32,
    queue: VecDeque<(ServerId, ServerId, Message)>,
    groups: Vec<BTreeSet<ServerId>>,
    out: String,
}

fn msg_text(m: &Message) -> String {
    match m {
        Message::Vote { vote, round, state } => {
            format!(
                "Vote(leader {} zxid {} epoch {} round {round} {state:?})",
                vote.leader, vote.zxid, vote.epoch
            )
        }
        Message::Proposal { txn } => format!("Proposal({} {:?})", txn.zxid, txn.data),
        Message::Snapshot { zxid, data } => format!("Snapshot({zxid}, {} bytes)", data.len()),
        Message::AckEpoch {
            current_epoch,
            last_zxid,
            epoch_ends,
            counted,
        } => format!(
            "AckEpoch(current {current_epoch} last {last_zxid} ends {:?} counted {counted})",
            epoch_ends.iter().map(|z| z.to_string()).collect::<Vec<_>>()
        ),
        m => format!("{m:?}"),
    }
}

fn zxids(t: &[Txn]) -> String {
    t.iter()
        .map(|t| t.zxid.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Cluster {
    fn cut(&self, a: ServerId, b: ServerId) -> bool {
        let g = |x| {
            self.groups
                .iter()
                .position(|s: &BTreeSet<ServerId>| s.contains(&x))
        };
        !self.groups.is_empty() && g(a) != g(b)
    }

    fn exec(&mut self, id: ServerId, actions: Vec<Action>) {
        for a in actions {
            let line = match &a {
                Action::Send { to, msg } => format!("n{id} -> n{to} {}", msg_text(msg)),
                Action::Append(t) => format!("n{id} append {}", zxids(t)),
                Action::Deliver(t) => format!("n{id} deliver {}", zxids(t)),
                Action::InstallSnapshot { zxid, .. } => format!("n{id} install snapshot {zxid}"),
                Action::SendSnapshot { to, zxid } => format!("n{id} send snapshot {zxid} to n{to}"),
                Action::Truncate { after } => format!("n{id} truncate after {after}"),
                Action::PersistEpochs {
                    accepted_epoch,
                    current_epoch,
                } => {
                    format!("n{id} persist accepted {accepted_epoch} current {current_epoch}")
                }
                Action::PersistLeaseMark { set } => format!("n{id} persist lease mark {set}"),
                Action::RoleChanged { role, epoch } => {
                    format!("n{id} role {role:?} (epoch {epoch})")
                }
                Action::Established => format!("n{id} established"),
                Action::ReadReady { id: r, zxid } => format!("n{id} read {r} ready at {zxid}"),
                Action::ReadFailed { id: r } => format!("n{id} read {r} failed"),
            };
            writeln!(self.out, "{line}").ok();
            let n = self.nodes.get_mut(&id).expect("node");
            match a {
                Action::Send { to, msg } => self.queue.push_back((id, to, msg)),
                Action::PersistEpochs {
                    accepted_epoch,
                    current_epoch,
                } => {
                    n.accepted = accepted_epoch;
                    n.current = current_epoch;
                }
                Action::PersistLeaseMark { set } => n.lease_mark = set,
                Action::Append(t) => n.pending.extend(t),
                Action::Truncate { after } => {
                    n.log.retain(|t| t.zxid <= after);
                    n.pending.retain(|t| t.zxid <= after);
                }
                Action::Deliver(t) => n.applied.extend(t),
                Action::SendSnapshot { to, zxid } => {
                    let data = super::encode_applied(&n.applied);
                    self.queue
                        .push_back((id, to, Message::Snapshot { zxid, data }));
                }
                Action::InstallSnapshot { data, .. } => {
                    let t = super::decode_applied(data).expect("snapshot");
                    n.applied = t.clone();
                    n.snapshot = t;
                    n.log.clear();
                    n.pending.clear();
                }
                Action::RoleChanged { .. }
                | Action::Established
                | Action::ReadReady { .. }
                | Action::ReadFailed { .. } => {}
            }
        }
    }

    fn start(&mut self, id: ServerId) {
        let members: Vec<ServerId> = self.nodes.keys().copied().collect();
        let mut cfg = Config::new(id, members);
        cfg.diff_window = self.window;
        cfg.lease_ticks = self.lease;
        let n = self.nodes.get_mut(&id).expect("node");
        let persisted = Persisted {
            accepted_epoch: n.accepted,
            current_epoch: n.current,
            lease_mark: n.lease_mark,
            snapshot_zxid: n.snapshot.last().map_or(Zxid::ZERO, |t| t.zxid),
            log: n.log.clone(),
        };
        let mut zab = Zab::new(cfg, persisted, id);
        n.applied = n.snapshot.clone();
        let actions = zab.start();
        n.zab = Some(zab);
        self.exec(id, actions);
    }

    fn deliver(&mut self) -> bool {
        let mut any = false;
        while let Some((from, to, msg)) = self.queue.pop_front() {
            any = true;
            if self.cut(from, to) {
                continue;
            }
            let Some(zab) = self.nodes.get_mut(&to).and_then(|n| n.zab.as_mut()) else {
                continue;
            };
            let actions = zab.step(from, msg);
            self.exec(to, actions);
        }
        any
    }

    fn durable(&mut self, id: ServerId) -> bool {
        let n = self.nodes.get_mut(&id).expect("node");
        let Some(last) = n.pending.last().map(|t| t.zxid) else {
            return false;
        };
        let p = std::mem::take(&mut n.pending);
        n.log.extend(p);
        if let Some(zab) = n.zab.as_mut() {
            let actions = zab.log_durable(last);
            writeln!(self.out, "n{id} durable {last}").ok();
            self.exec(id, actions);
        }
        true
    }

    fn ids(&self, args: &[&str]) -> Vec<ServerId> {
        if args.is_empty() {
            self.nodes.keys().copied().collect()
        } else {
            args.iter().map(|a| a.parse().expect("id")).collect()
        }
    }

    fn command(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cluster", n, rest @ ..] => {
                self.window = 100;
                for kv in rest.chunks(2) {
                    match kv {
                        ["window", w] => self.window = w.parse().expect("window"),
                        ["lease", l] => self.lease = l.parse().expect("lease"),
                        _ => panic!("bad cluster option {kv:?}"),
                    }
                }
                for id in 1..=n.parse::<u64>().expect("n") {
                    self.nodes.insert(id, Node::default());
                }
            }
            ["start", ids @ ..] => {
                for id in self.ids(ids) {
                    self.start(id);
                }
            }
            ["tick", n, ids @ ..] => {
                for _ in 0..n.parse::<u32>().expect("n") {
                    for id in self.ids(ids) {
                        if let Some(zab) = self.nodes.get_mut(&id).and_then(|x| x.zab.as_mut()) {
                            let a = zab.tick();
                            self.exec(id, a);
                        }
                    }
                }
            }
            ["deliver"] => {
                self.deliver();
            }
            ["durable", ids @ ..] => {
                for id in self.ids(ids) {
                    self.durable(id);
                }
            }
            ["stabilize"] => {
                for _ in 0..1000 {
                    let mut any = self.deliver();
                    for id in self.ids(&[]) {
                        any |= self.durable(id);
                    }
                    if !any {
                        break;
                    }
                }
            }
            ["propose", id, data] => {
                let id: ServerId = id.parse().expect("id");
                let zab = self
                    .nodes
                    .get_mut(&id)
                    .and_then(|n| n.zab.as_mut())
                    .expect("live node");
                match zab.propose(Bytes::from(data.to_string())) {
                    Ok((zxid, actions)) => {
                        writeln!(self.out, "n{id} proposed {zxid}").ok();
                        self.exec(id, actions);
                    }
                    Err(e) => writeln!(self.out, "n{id} refused: {e}").unwrap_or(()),
                }
            }
            ["crash", id] => {
                let id: ServerId = id.parse().expect("id");
                let n = self.nodes.get_mut(&id).expect("node");
                n.zab = None;
                n.pending.clear();
                self.queue.retain(|(f, t, _)| *f != id && *t != id);
                for other in self.ids(&[]) {
                    if other != id {
                        self.disconnect(other, id);
                    }
                }
            }
            ["restart", id] => self.start(id.parse().expect("id")),
            ["read", id, rid] => {
                let id: ServerId = id.parse().expect("id");
                let zab = self
                    .nodes
                    .get_mut(&id)
                    .and_then(|n| n.zab.as_mut())
                    .expect("live node");
                let actions = zab.read_index(rid.parse().expect("read id"));
                self.exec(id, actions);
            }
            ["partition", rest @ ..] => {
                self.groups = rest
                    .split(|w| *w == "|")
                    .map(|g| g.iter().map(|x| x.parse().expect("id")).collect())
                    .collect();
                let ids = self.ids(&[]);
                for &a in &ids {
                    for &b in &ids {
                        if a != b && self.cut(a, b) {
                            self.disconnect(a, b);
                        }
                    }
                }
            }
            ["heal"] => self.groups.clear(),
            ["status"] => {
                for (id, n) in &self.nodes {
                    let line = match &n.zab {
                        None => format!("n{id} down"),
                        Some(z) => format!(
                            "n{id} {:?} {:?} epoch {}/{} last {} committed {} applied [{}]",
                            z.role(),
                            z.phase(),
                            z.accepted_epoch(),
                            z.current_epoch(),
                            z.last_zxid(),
                            z.last_committed(),
                            zxids(&n.applied)
                        ),
                    };
                    writeln!(self.out, "{line}").ok();
                }
            }
            _ => panic!("unknown command {line:?}"),
        }
    }

    fn disconnect(&mut self, who: ServerId, peer: ServerId) {
        if let Some(zab) = self.nodes.get_mut(&who).and_then(|n| n.zab.as_mut()) {
            let actions = zab.peer_disconnected(peer);
            self.exec(who, actions);
        }
    }
}

/// Runs a script and returns it with fresh output.
fn run_script(text: &str) -> String {
    let mut c = Cluster::default();
    let mut rendered = String::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("> ") {
            c.command(cmd);
            rendered.push_str(line);
            rendered.push('\n');
            rendered.push_str(&std::mem::take(&mut c.out));
        } else if line.starts_with('#') || line.is_empty() {
            rendered.push_str(line);
            rendered.push('\n');
        }
    }
    rendered
}

#[test]
fn golden_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let update = std::env::var("ZAB_GOLDEN_UPDATE").is_ok();
    let mut failed = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let got = run_script(&text);
        if got != text {
            if update {
                std::fs::write(&f, &got).expect("write");
            } else {
                failed.push(format!("{}:\n{got}", f.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "golden scripts differ (ZAB_GOLDEN_UPDATE=1 to accept):\n{}",
        failed.join("\n")
    );
}
