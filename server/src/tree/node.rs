//! The node arena: znodes in one `Vec`, addressed by `u32` ids.
//!
//! A node is 96 bytes: its persisted Stat fields, the ids of its parent and ACL
//! list, one heap block holding its name followed by its data, and (only when it
//! has children) a boxed hash table of child ids. `numChildren` and `dataLength`
//! are derived, never stored. Child tables store 4-byte ids and hash the child's
//! name, read from the arena, so a name is stored once. Freed slots are reused.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{EphemeralKind, Stat};

/// The root's id. The root is its own parent.
pub(crate) const ROOT: u32 = 0;
/// `parent` of a free slot.
pub(crate) const FREE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub ephemeral_owner: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub acl: u32,
    pub parent: u32,
    name_len: u32,
    /// Name bytes then data bytes.
    buf: Box<[u8]>,
    pub children: Option<Box<HashTable<u32>>>,
}

impl Node {
    /// A fresh node with ZooKeeper's initial stat for a create at `zxid`/`time`.
    pub(crate) fn new(
        name: &[u8],
        data: &[u8],
        acl: u32,
        ephemeral_owner: i64,
        zxid: i64,
        time: i64,
    ) -> Node {
        Node {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            ephemeral_owner,
            version: 0,
            cversion: 0,
            aversion: 0,
            acl,
            parent: FREE,
            name_len: name.len() as u32,
            buf: concat(name, data),
            children: None,
        }
    }

    pub(crate) fn free_slot() -> Node {
        let mut n = Node::new(b"", b"", 0, 0, 0, 0);
        n.parent = FREE;
        n
    }

    pub(crate) fn name(&self) -> &[u8] {
        &self.buf[..self.name_len as usize]
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.name_len as usize..]
    }

    /// Replaces the data, returning the old name+data block.
    pub(crate) fn replace_data(&mut self, data: &[u8]) -> Box<[u8]> {
        let new = concat(self.name(), data);
        std::mem::replace(&mut self.buf, new)
    }

    /// Restores a block returned by `replace_data`.
    pub(crate) fn restore_buf(&mut self, buf: Box<[u8]>) {
        self.buf = buf;
    }

    pub(crate) fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |c| c.len())
    }

    pub(crate) fn kind(&self) -> EphemeralKind {
        EphemeralKind::of(self.ephemeral_owner)
    }

    pub(crate) fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length: self.data().len() as i32,
            num_children: self.num_children() as i32,
            pzxid: self.pzxid,
        }
    }

    /// Heap bytes this node owns besides its arena slot (approximate: no allocator overhead).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf.len()
            + self.children.as_ref().map_or(0, |c| {
                std::mem::size_of::<HashTable<u32>>() + c.capacity() * 5
            })
    }
}

fn concat(name: &[u8], data: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(name.len() + data.len());
    v.extend_from_slice(name);
    v.extend_from_slice(data);
    v.into_boxed_slice()
}

/// The arena and child-table operations. Index maintenance (ephemerals,
/// containers, ACL references) is the caller's (`DataTree`'s) business.
#[derive(Debug, Clone)]
pub(crate) struct Arena {
    nodes: Vec<Node>,
    free: Vec<u32>,
    hasher: std::hash::RandomState,
}

impl Arena {
    pub(crate) fn with_root(root: Node) -> Arena {
        let mut root = root;
        root.parent = ROOT;
        Arena {
            nodes: vec![root],
            free: Vec::new(),
            hasher: std::hash::RandomState::new(),
        }
    }

    pub(crate) fn get(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    /// Number of live nodes (the root included).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    pub(crate) fn slots(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.nodes.reserve(n);
    }

    pub(crate) fn child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let table = self.get(parent).children.as_ref()?;
        let h = self.hasher.hash_one(name);
        table.find(h, |&c| self.get(c).name() == name).copied()
    }

    /// The ids of a node's children, in no particular order.
    pub(crate) fn children(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.get(id).children.iter().flat_map(|t| t.iter().copied())
    }

    /// Resolves an absolute path; `None` if any component is missing or the path is malformed.
    pub(crate) fn resolve(&self, path: &str) -> Option<u32> {
        if path == "/" {
            return Some(ROOT);
        }
        let rest = path.strip_prefix('/')?;
        let mut cur = ROOT;
        for comp in rest.split('/') {
            cur = self.child(cur, comp.as_bytes())?;
        }
        Some(cur)
    }

    /// The absolute path of a live node.
    pub(crate) fn path_of(&self, mut id: u32) -> String {
        if id == ROOT {
            return "/".to_string();
        }
        let mut names = Vec::new();
        while id != ROOT {
            let n = self.get(id);
            names.push(n.name());
            id = n.parent;
        }
        let mut path = String::new();
        for name in names.iter().rev() {
            path.push('/');
            path.push_str(&String::from_utf8_lossy(name));
        }
        path
    }

    /// Sizes an empty child table for `n` children (snapshot loading).
    pub(crate) fn reserve_children(&mut self, id: u32, n: usize) {
        let node = &mut self.nodes[id as usize];
        if node.children.is_none() && n > 0 {
            node.children = Some(Box::new(HashTable::with_capacity(n)));
        }
    }

    /// Stores `node` as a new child of `parent` (no duplicate check) and returns its id.
    pub(crate) fn attach(&mut self, parent: u32, mut node: Node) -> u32 {
        node.parent = parent;
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let mut table = self.nodes[parent as usize]
            .children
            .take()
            .unwrap_or_default();
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        let h = hasher.hash_one(nodes[id as usize].name());
        table.insert_unique(h, id, |&c| hasher.hash_one(nodes[c as usize].name()));
        self.nodes[parent as usize].children = Some(table);
        id
    }

    /// Removes a leaf from its parent and the arena, returning it.
    pub(crate) fn detach(&mut self, id: u32) -> Node {
        debug_assert!(id != ROOT && self.get(id).num_children() == 0);
        let parent = self.get(id).parent;
        if let Some(mut table) = self.nodes[parent as usize].children.take() {
            let h = self.hasher.hash_one(self.nodes[id as usize].name());
            if let Ok(entry) = table.find_entry(h, |&c| c == id) {
                entry.remove();
            }
            if !table.is_empty() {
                if table.capacity() > 64 && table.len() * 4 < table.capacity() {
                    let (nodes, hasher) = (&self.nodes, &self.hasher);
                    table.shrink_to(table.len() * 2, |&c| {
                        hasher.hash_one(nodes[c as usize].name())
                    });
                }
                self.nodes[parent as usize].children = Some(table);
            }
        }
        let node = std::mem::replace(&mut self.nodes[id as usize], Node::free_slot());
        self.free.push(id);
        node
    }
}
