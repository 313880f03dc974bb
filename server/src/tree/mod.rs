//! The replicated state machine: the znode tree, the session table and their indexes.
//!
//! Every member holds one [`DataTree`] and changes it only by [`DataTree::apply`]ing
//! committed txns in zxid order; reads are served from it directly. Semantics are
//! ZooKeeper 3.8's `DataTree` (Stat bookkeeping, ephemeral/container/TTL nodes,
//! watch triggers), with two deliberate differences: a multi is applied atomically
//! (ZooKeeper applies sub-txns one by one and can leave a half-applied multi if a
//! replayed txn fails) and apply refuses what would corrupt the tree (a delete of a
//! node with children, a stale zxid) instead of trusting the txn.
//!
//! # Layout, and why
//! Memory per znode is what limits a coordination service, so the tree is *not* a
//! map from full path to node (ZooKeeper's `NodeHashMap` stores every path string
//! and a `HashSet<String>` of child names per node, about 2-3x the data for small
//! znodes):
//! * nodes live in an arena (`node::Arena`, a `Vec<Node>` addressed by `u32`),
//!   96 bytes each: Stat fields, parent id, ACL id, one heap block with name then
//!   data, and an optional boxed hash table of child ids;
//! * a child table stores only 4-byte ids and hashes names read from the arena,
//!   so each name is stored once and lookups walk the path component by component;
//! * ACL lists are interned (`acl::AclTable`), nodes hold a `u32` index;
//! * `numChildren` and `dataLength` are derived, never stored.
//!
//! Side indexes, maintained on every attach/detach: session -> ephemeral node ids,
//! the container ids and the TTL ids (for the leader's periodic check,
//! [`DataTree::containers_to_delete`]), and the approximate data size.
//!
//! Files: `node` (arena and child tables), `acl` (interning), `apply` (txn
//! application with an undo log for multi atomicity), `snapshot` (compact binary
//! snapshot), `containers` (container and TTL expiry selection), `codec` (varint
//! encoding shared with txns).

mod acl;
mod apply;
pub(crate) mod codec;
mod containers;
mod node;
pub mod quota;
pub(crate) mod results;
mod snapshot;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use zabkeeper_proto::{ErrorCode, EventType, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS};

pub use self::apply::{ApplyResult, Trigger, TxnResult};
pub use self::codec::DecodeError;
pub use self::containers::ttl_expired;
pub use self::results::Numbered;
pub use zabkeeper_proto::wire::Stat;

use self::acl::AclTable;
use self::node::{Arena, Node};
use crate::request::Acl;

/// Paths that always exist and can never be deleted (ZooKeeper's `isSpecialPath`).
pub const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// What a node's `ephemeralOwner` says it is (ZooKeeper's `EphemeralType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralKind {
    Persistent,
    /// Owned by this session.
    Ephemeral(i64),
    Container,
    /// Persistent with this TTL in ms.
    Ttl(i64),
}

impl EphemeralKind {
    pub fn of(owner: i64) -> EphemeralKind {
        if owner == 0 {
            EphemeralKind::Persistent
        } else if owner == CONTAINER_EPHEMERAL_OWNER {
            EphemeralKind::Container
        } else if owner < 0 {
            EphemeralKind::Ttl(owner & MAX_TTL_MS)
        } else {
            EphemeralKind::Ephemeral(owner)
        }
    }
}

/// The znode tree and session table of one member.
#[derive(Debug, Clone)]
pub struct DataTree {
    arena: Arena,
    acls: AclTable,
    /// Session id -> negotiated timeout (ms).
    sessions: BTreeMap<i64, i32>,
    /// Results of the sessions' recent numbered requests (see `results`).
    results: BTreeMap<i64, results::SessionResults>,
    ephemerals: HashMap<i64, BTreeSet<u32>>,
    containers: HashSet<u32>,
    ttls: HashSet<u32>,
    /// Quota roots and the usage changes of the txn being applied (see `quota`).
    quotas: quota::Quotas,
    /// Sum of path length plus data length over all nodes (ZooKeeper's `approximateDataSize`).
    data_size: i64,
    last_zxid: i64,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// A fresh tree as ZooKeeper starts: `/` (zero Stat), `/zookeeper`,
    /// `/zookeeper/quota` (open ACL) and `/zookeeper/config` (read-only ACL,
    /// aversion -1 as ZooKeeper's `addConfigNode` leaves it).
    pub fn new() -> DataTree {
        let mut acls = AclTable::default();
        let open = acls.intern(&Acl::open());
        let mut tree = DataTree {
            arena: Arena::with_root(Node::new(b"", b"", open, 0, 0, 0)),
            acls,
            sessions: BTreeMap::new(),
            results: BTreeMap::new(),
            ephemerals: HashMap::new(),
            containers: HashSet::new(),
            ttls: HashSet::new(),
            quotas: Default::default(),
            data_size: 1,
            last_zxid: 0,
        };
        let open = Acl::open();
        let read_only = vec![Acl {
            perms: zabkeeper_proto::perms::READ,
            ..open[0].clone()
        }];
        for (path, acl) in [
            ("/zookeeper", &open),
            ("/zookeeper/quota", &open),
            ("/zookeeper/config", &read_only),
        ] {
            let parent = tree
                .arena
                .resolve(zabkeeper_proto::path::parent(path))
                .expect("parent exists");
            let acl = tree.acls.intern(acl);
            let node = Node::new(
                zabkeeper_proto::path::name(path).as_bytes(),
                b"",
                acl,
                0,
                0,
                0,
            );
            tree.attach(parent, node, path.len());
        }
        let config = tree
            .arena
            .resolve("/zookeeper/config")
            .expect("just created");
        tree.arena.get_mut(config).aversion = -1;
        tree
    }

    /// Adds a node under `parent`, maintaining every index. The node's ACL reference
    /// must already be held.
    fn attach(&mut self, parent: u32, node: Node, path_len: usize) -> u32 {
        self.data_size += (path_len + node.data().len()) as i64;
        let kind = node.kind();
        let id = self.arena.attach(parent, node);
        match kind {
            EphemeralKind::Persistent => {}
            EphemeralKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(id);
            }
            EphemeralKind::Container => {
                self.containers.insert(id);
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.insert(id);
            }
        }
        id
    }

    /// Removes a leaf, maintaining every index except the ACL reference, which the
    /// returned node still holds.
    fn detach(&mut self, id: u32, path_len: usize) -> Node {
        let node = self.arena.detach(id);
        self.data_size -= (path_len + node.data().len()) as i64;
        match node.kind() {
            EphemeralKind::Persistent => {}
            EphemeralKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            EphemeralKind::Container => {
                self.containers.remove(&id);
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.remove(&id);
            }
        }
        node
    }

    // ------------------------------------------------------------------ reads

    /// The node's Stat, if it exists.
    pub fn exists(&self, path: &str) -> Option<Stat> {
        self.arena.resolve(path).map(|id| self.arena.get(id).stat())
    }

    pub fn get_data(&self, path: &str) -> Result<(Bytes, Stat), ErrorCode> {
        let n = self.node(path)?;
        Ok((Bytes::copy_from_slice(n.data()), n.stat()))
    }

    /// Child names in byte order (ZooKeeper leaves the order unspecified) and the node's Stat.
    pub fn get_children(&self, path: &str) -> Result<(Vec<String>, Stat), ErrorCode> {
        let id = self.arena.resolve(path).ok_or(ErrorCode::NoNode)?;
        let mut names: Vec<String> = self
            .arena
            .children(id)
            .map(|c| String::from_utf8_lossy(self.arena.get(c).name()).into_owned())
            .collect();
        names.sort_unstable();
        Ok((names, self.arena.get(id).stat()))
    }

    pub fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let n = self.node(path)?;
        Ok((self.acls.get(n.acl).to_vec(), n.stat()))
    }

    /// The node's ACL list (interned, not copied), if it exists.
    pub fn acl_of(&self, path: &str) -> Option<&[Acl]> {
        self.node(path).ok().map(|n| self.acls.get(n.acl))
    }

    /// Number of descendants (children, grandchildren, ...) of the node.
    pub fn get_all_children_number(&self, path: &str) -> Result<i64, ErrorCode> {
        let id = self.arena.resolve(path).ok_or(ErrorCode::NoNode)?;
        let mut stack: Vec<u32> = self.arena.children(id).collect();
        let mut count = 0i64;
        while let Some(c) = stack.pop() {
            count += 1;
            stack.extend(self.arena.children(c));
        }
        Ok(count)
    }

    /// The session's ephemeral paths under `prefix` (all of them for `""` or `/`), sorted.
    /// Like ZooKeeper, `prefix` is a plain string prefix of the path.
    pub fn get_ephemerals(&self, session_id: i64, prefix: &str) -> Vec<String> {
        let mut paths: Vec<String> = self
            .ephemerals
            .get(&session_id)
            .into_iter()
            .flatten()
            .map(|&id| self.arena.path_of(id))
            .filter(|p| prefix.is_empty() || prefix == "/" || p.starts_with(prefix))
            .collect();
        paths.sort_unstable();
        paths
    }

    /// Number of znodes, the root and `/zookeeper` nodes included (4 in a fresh tree;
    /// ZooKeeper's `znode_count` reports 5 because it counts the root twice).
    pub fn node_count(&self) -> usize {
        self.arena.len()
    }

    /// Sum over all nodes of path length plus data length.
    pub fn approximate_data_size(&self) -> i64 {
        self.data_size
    }

    /// Open sessions and their timeouts (ms).
    pub fn sessions(&self) -> &BTreeMap<i64, i32> {
        &self.sessions
    }

    pub fn session_timeout(&self, session_id: i64) -> Option<i32> {
        self.sessions.get(&session_id).copied()
    }

    /// The zxid of the last txn applied (0 for a fresh tree).
    pub fn last_applied_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Number of distinct ACL lists in use.
    pub fn acl_list_count(&self) -> usize {
        self.acls.len()
    }

    /// Approximate heap bytes held by the tree (arena capacity, node blocks, child
    /// tables, indexes; no allocator overhead).
    pub fn approximate_heap_bytes(&self) -> usize {
        let mut bytes = self.arena.slots() * std::mem::size_of::<Node>();
        for id in 0..self.arena.slots() as u32 {
            bytes += self.arena.get(id).heap_bytes();
        }
        bytes
            + self.ephemerals.values().map(|s| s.len() * 8).sum::<usize>()
            + (self.containers.len() + self.ttls.len()) * 8
    }

    fn node(&self, path: &str) -> Result<&Node, ErrorCode> {
        self.arena
            .resolve(path)
            .map(|id| self.arena.get(id))
            .ok_or(ErrorCode::NoNode)
    }

    /// Allocation hint before bulk loading.
    pub fn reserve(&mut self, nodes: usize) {
        self.arena.reserve(nodes);
    }
}

fn trigger(path: &str, event: EventType, acl: Arc<[Acl]>) -> Trigger {
    Trigger {
        path: path.to_string(),
        event,
        acl,
    }
}
