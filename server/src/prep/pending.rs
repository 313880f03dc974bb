//! In-flight changes: the state each proposed-but-not-applied txn leaves behind.
//!
//! This is ZooKeeper's `outstandingChanges` / `outstandingChangesForPath`. The
//! leader validates a write against the tree *as it will be* once every txn it
//! already proposed is applied, so pipelined writes validate against each other
//! (a create then a setData of the same node, two sequential creates under one
//! parent getting distinct suffixes). For each path touched by an in-flight txn
//! the overlay keeps the latest state (`None` = deleted) and the zxid that set it;
//! likewise for sessions, and for ACLs set by in-flight creates and setACLs (kept
//! apart from the Stat so a later in-flight setData does not hide them). When the txn with zxid Z has been applied to the tree,
//! [`Pending::applied`] drops every entry set by a zxid <= Z unless a later txn
//! overwrote it. On a leadership change everything in flight is void:
//! [`Pending::clear`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::request::Acl;
use crate::tree::{DataTree, Stat};

/// A node's state as validation sees it. `stat.num_children` is the child count
/// after the in-flight txns; `stat.data_length` the data length.
pub(crate) type NodeState = Stat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionState {
    Open(i32),
    /// Closed, or closing: a CloseSession is in flight.
    Closed,
}

#[derive(Debug, Clone)]
struct Change<T> {
    zxid: i64,
    state: T,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Node(String),
    Acl(String),
    Session(i64),
}

/// The overlay of in-flight changes (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Pending {
    nodes: HashMap<String, Change<Option<NodeState>>>,
    acls: HashMap<String, Change<Arc<[Acl]>>>,
    sessions: HashMap<i64, Change<SessionState>>,
    /// Every change in zxid order, to drop them as txns are applied.
    log: VecDeque<(i64, Key)>,
}

impl Pending {
    pub fn new() -> Pending {
        Pending::default()
    }

    /// The txn with this zxid (and every earlier one) has been applied to the tree.
    pub fn applied(&mut self, zxid: i64) {
        while let Some((z, _)) = self.log.front() {
            if *z > zxid {
                break;
            }
            let (z, key) = self.log.pop_front().expect("front exists");
            match key {
                Key::Node(path) => {
                    if self.nodes.get(&path).is_some_and(|c| c.zxid == z) {
                        self.nodes.remove(&path);
                    }
                }
                Key::Acl(path) => {
                    if self.acls.get(&path).is_some_and(|c| c.zxid == z) {
                        self.acls.remove(&path);
                    }
                }
                Key::Session(id) => {
                    if self.sessions.get(&id).is_some_and(|c| c.zxid == z) {
                        self.sessions.remove(&id);
                    }
                }
            }
        }
    }

    /// Forgets every in-flight change (leadership lost or changed).
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.acls.clear();
        self.sessions.clear();
        self.log.clear();
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// Number of paths and sessions with an in-flight change.
    pub fn len(&self) -> usize {
        self.nodes.len() + self.acls.len() + self.sessions.len()
    }

    pub(crate) fn node(&self, path: &str) -> Option<&Option<NodeState>> {
        self.nodes.get(path).map(|c| &c.state)
    }

    pub(crate) fn acl(&self, path: &str) -> Option<&Arc<[Acl]>> {
        self.acls.get(path).map(|c| &c.state)
    }

    pub(crate) fn session(&self, id: i64) -> Option<SessionState> {
        self.sessions.get(&id).map(|c| c.state)
    }

    /// Latest in-flight state of every path touched, for CloseSession's ephemeral list.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (&str, &Option<NodeState>)> {
        self.nodes.iter().map(|(p, c)| (p.as_str(), &c.state))
    }

    /// In-flight ACLs (for tests comparing prediction and outcome).
    #[cfg(test)]
    pub(crate) fn acls_in_flight(&self) -> Vec<(String, Vec<Acl>)> {
        self.acls
            .iter()
            .map(|(p, c)| (p.clone(), c.state.to_vec()))
            .collect()
    }

    /// In-flight session states (for tests comparing prediction and outcome).
    #[cfg(test)]
    pub(crate) fn sessions_in_flight(&self) -> Vec<(i64, SessionState)> {
        self.sessions.iter().map(|(id, c)| (*id, c.state)).collect()
    }

    pub(crate) fn put_node(&mut self, zxid: i64, path: String, state: Option<NodeState>) {
        self.log.push_back((zxid, Key::Node(path.clone())));
        self.nodes.insert(path, Change { zxid, state });
    }

    pub(crate) fn put_acl(&mut self, zxid: i64, path: String, acl: Arc<[Acl]>) {
        self.log.push_back((zxid, Key::Acl(path.clone())));
        self.acls.insert(path, Change { zxid, state: acl });
    }

    pub(crate) fn put_session(&mut self, zxid: i64, id: i64, state: SessionState) {
        self.log.push_back((zxid, Key::Session(id)));
        self.sessions.insert(id, Change { zxid, state });
    }
}

/// One request's changes, kept apart until the whole request validated, so a
/// failed multi leaves no trace in [`Pending`]. Lookups go scratch, then pending,
/// then the tree.
pub(crate) struct View<'a> {
    pub tree: &'a DataTree,
    pub pending: &'a Pending,
    nodes: HashMap<String, Option<NodeState>>,
    /// Paths in first-write order, so commit is deterministic.
    order: Vec<String>,
    acls: Vec<(String, Arc<[Acl]>)>,
    sessions: Vec<(i64, SessionState)>,
}

impl<'a> View<'a> {
    pub(crate) fn new(tree: &'a DataTree, pending: &'a Pending) -> Self {
        View {
            tree,
            pending,
            nodes: HashMap::new(),
            order: Vec::new(),
            acls: Vec::new(),
            sessions: Vec::new(),
        }
    }

    pub(crate) fn node(&self, path: &str) -> Option<NodeState> {
        if let Some(s) = self.nodes.get(path) {
            return *s;
        }
        if let Some(s) = self.pending.node(path) {
            return *s;
        }
        self.tree.exists(path)
    }

    /// The ACL of a node that exists in this view.
    pub(crate) fn acl(&self, path: &str) -> Arc<[Acl]> {
        if let Some((_, a)) = self.acls.iter().rev().find(|(p, _)| p == path) {
            return a.clone();
        }
        if let Some(a) = self.pending.acl(path) {
            return a.clone();
        }
        self.tree
            .get_acl(path)
            .map(|(a, _)| a.into())
            .unwrap_or_else(|_| Arc::from(Vec::new()))
    }

    pub(crate) fn set_acl(&mut self, path: &str, acl: Arc<[Acl]>) {
        self.acls.push((path.to_string(), acl));
    }

    pub(crate) fn session(&self, id: i64) -> SessionState {
        if let Some((_, s)) = self.sessions.iter().rev().find(|(i, _)| *i == id) {
            return *s;
        }
        if let Some(s) = self.pending.session(id) {
            return s;
        }
        match self.tree.session_timeout(id) {
            Some(t) => SessionState::Open(t),
            None => SessionState::Closed,
        }
    }

    pub(crate) fn set_node(&mut self, path: &str, state: Option<NodeState>) {
        if self.nodes.insert(path.to_string(), state).is_none() {
            self.order.push(path.to_string());
        }
    }

    pub(crate) fn set_session(&mut self, id: i64, state: SessionState) {
        self.sessions.push((id, state));
    }

    /// Paths this request changed, with their final state.
    pub(crate) fn scratch_nodes(&self) -> impl Iterator<Item = (&str, &Option<NodeState>)> {
        self.nodes.iter().map(|(p, s)| (p.as_str(), s))
    }

    /// Moves this request's changes into the overlay under `zxid`.
    pub(crate) fn into_changes(self) -> Changes {
        let View {
            mut nodes,
            order,
            acls,
            sessions,
            ..
        } = self;
        let nodes = order.into_iter().map(|p| {
            let s = nodes.remove(&p).expect("ordered path has a state");
            (p, s)
        });
        Changes {
            nodes: nodes.collect(),
            acls,
            sessions,
        }
    }
}

/// A validated request's changes, ready for [`Pending`].
pub(crate) struct Changes {
    nodes: Vec<(String, Option<NodeState>)>,
    acls: Vec<(String, Arc<[Acl]>)>,
    sessions: Vec<(i64, SessionState)>,
}

impl Changes {
    pub(crate) fn commit(self, pending: &mut Pending, zxid: i64) {
        for (path, state) in self.nodes {
            pending.put_node(zxid, path, state);
        }
        for (path, acl) in self.acls {
            pending.put_acl(zxid, path, acl);
        }
        for (id, state) in self.sessions {
            pending.put_session(zxid, id, state);
        }
    }
}
