//! Snapshot serialization: the whole tree, its sessions and its last applied zxid.
//!
//! Format (all integers varints, see `codec`):
//! ```text
//! "ZKSN" version:u8 last_zxid sessions:[id timeout]
//!   results:[session highest [number result]]   (version 2 on; see `results`)
//!   acls:[acl list]
//! node_count root-node  then every other node in pre-order, children in name order:
//!   node = name data czxid (mzxid-czxid) (pzxid-czxid) ctime (mtime-ctime)
//!          version cversion aversion ephemeral_owner acl_index child_count
//! crc32c of everything before it (4 bytes, little endian)
//! ```
//! Zxids and times are stored as deltas from czxid/ctime, which are usually tiny,
//! so a znode costs its name, its data and about 15-25 bytes (ZooKeeper's jute
//! snapshot needs ~90 bytes plus the full path). Children in name order make the
//! bytes deterministic: two members with equal trees write equal snapshots.
//!
//! Deserialization checks the checksum first, then every length, index and count,
//! and rebuilds the indexes (ephemerals, containers, TTLs, data size) by attaching
//! nodes one by one; it refuses duplicate names, invalid names and trailing bytes.

use std::collections::BTreeMap;

use super::acl::AclTable;
use super::codec::{DecodeError, Reader, Writer};
use super::node::{Arena, Node, ROOT};
use super::{DataTree, EphemeralKind};

const MAGIC: &[u8; 4] = b"ZKSN";
const VERSION: u8 = 3;
/// Snapshots before the exactly-once result table; still read (the table is empty).
const VERSION_1: u8 = 1;
/// Snapshots whose result table kept no low-water marks; still read.
const VERSION_2: u8 = 2;

impl DataTree {
    /// Appends a snapshot of the tree to `out`.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(MAGIC);
        let mut w = Writer::new(out);
        w.u8(VERSION);
        w.i64(self.last_zxid);
        w.u64(self.sessions.len() as u64);
        for (&id, &timeout) in &self.sessions {
            w.i64(id);
            w.i32(timeout);
        }
        super::results::write_results(&mut w, &self.results);
        // ACL slots are renumbered densely.
        let mut remap = BTreeMap::new();
        let live: Vec<_> = self.acls.live().collect();
        w.u64(live.len() as u64);
        for (new, (slot, acl)) in live.into_iter().enumerate() {
            remap.insert(slot, new as u64);
            w.acl(acl);
        }
        w.u64(self.arena.len() as u64);
        let mut stack = vec![ROOT];
        while let Some(id) = stack.pop() {
            let n = self.arena.get(id);
            w.bytes(n.name());
            w.bytes(n.data());
            w.i64(n.czxid);
            w.i64(n.mzxid.wrapping_sub(n.czxid));
            w.i64(n.pzxid.wrapping_sub(n.czxid));
            w.i64(n.ctime);
            w.i64(n.mtime.wrapping_sub(n.ctime));
            w.i32(n.version);
            w.i32(n.cversion);
            w.i32(n.aversion);
            w.i64(n.ephemeral_owner);
            w.u64(remap[&n.acl]);
            let mut children: Vec<u32> = self.arena.children(id).collect();
            w.u64(children.len() as u64);
            // Pushed in reverse so they pop in name order.
            children
                .sort_unstable_by(|a, b| self.arena.get(*b).name().cmp(self.arena.get(*a).name()));
            stack.extend(children);
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Rebuilds a tree from [`serialize`](Self::serialize)'s bytes.
    pub fn deserialize(buf: &[u8]) -> Result<DataTree, DecodeError> {
        if buf.len() < MAGIC.len() + 1 + 4 {
            return Err(DecodeError::Truncated);
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if &body[..4] != MAGIC {
            return Err(DecodeError::Invalid("not a zabkeeper snapshot"));
        }
        if crc32c::crc32c(body).to_le_bytes() != crc {
            return Err(DecodeError::Checksum);
        }
        let mut r = Reader::new(&body[4..]);
        let version = r.u8()?;
        if ![VERSION, VERSION_1, VERSION_2].contains(&version) {
            return Err(DecodeError::Invalid("unknown snapshot version"));
        }
        let last_zxid = r.i64()?;
        let mut sessions = BTreeMap::new();
        for _ in 0..r.count(2)? {
            let id = r.i64()?;
            let timeout = r.i32()?;
            sessions.insert(id, timeout);
        }
        let results = if version == VERSION_1 {
            BTreeMap::new()
        } else {
            super::results::read_results(&mut r, version != VERSION_2)?
        };
        let mut acls = AclTable::default();
        let mut slots = Vec::new();
        for _ in 0..r.count(1)? {
            let list = r.acl()?;
            let slot = acls.intern(&list);
            if slots.contains(&slot) {
                return Err(DecodeError::Invalid("duplicate ACL list"));
            }
            slots.push(slot);
        }
        // A node takes at least 13 bytes.
        let count = r.count(13)?;
        if count == 0 {
            return Err(DecodeError::Invalid("snapshot without a root"));
        }
        let (root, root_children) = read_node(&mut r, &slots)?;
        if !root.name().is_empty() {
            return Err(DecodeError::Invalid("root has a name"));
        }
        acls.add_ref(root.acl);
        let root_size = 1 + root.data().len() as i64;
        let mut tree = DataTree {
            arena: Arena::with_root(root),
            acls,
            sessions,
            results,
            ephemerals: Default::default(),
            containers: Default::default(),
            ttls: Default::default(),
            quotas: Default::default(),
            data_size: root_size,
            last_zxid,
        };
        tree.arena.reserve(count - 1);
        tree.arena
            .reserve_children(ROOT, root_children.min(count as u64) as usize);
        // (node id, its path length, children still to read)
        let mut stack: Vec<(u32, usize, u64)> = vec![(ROOT, 0, root_children)];
        let mut read = 1usize;
        while let Some(top) = stack.last_mut() {
            if top.2 == 0 {
                stack.pop();
                continue;
            }
            top.2 -= 1;
            let (parent, parent_len) = (top.0, top.1);
            if read == count {
                return Err(DecodeError::Invalid("more nodes than the count says"));
            }
            let (node, children) = read_node(&mut r, &slots)?;
            read += 1;
            let name = node.name();
            if name.is_empty() || name.contains(&b'/') || std::str::from_utf8(name).is_err() {
                return Err(DecodeError::Invalid("invalid node name"));
            }
            if tree.arena.child(parent, name).is_some() {
                return Err(DecodeError::Invalid("duplicate child name"));
            }
            if matches!(tree.arena.get(parent).kind(), EphemeralKind::Ephemeral(_)) {
                return Err(DecodeError::Invalid("ephemeral node with children"));
            }
            tree.acls.add_ref(node.acl);
            let path_len = parent_len + 1 + name.len();
            let id = tree.attach(parent, node, path_len);
            tree.arena
                .reserve_children(id, children.min((count - read) as u64) as usize);
            stack.push((id, path_len, children));
        }
        if read != count {
            return Err(DecodeError::Invalid("fewer nodes than the count says"));
        }
        r.finish()?;
        // Drop the references taken while reading the table; unused lists go away.
        for slot in slots {
            tree.acls.release(slot);
        }
        tree.rebuild_quotas();
        Ok(tree)
    }
}

fn read_node(r: &mut Reader<'_>, slots: &[u32]) -> Result<(Node, u64), DecodeError> {
    let name = r.bytes()?;
    let data = r.bytes()?;
    let czxid = r.i64()?;
    let mzxid = czxid.wrapping_add(r.i64()?);
    let pzxid = czxid.wrapping_add(r.i64()?);
    let ctime = r.i64()?;
    let mtime = ctime.wrapping_add(r.i64()?);
    let version = r.i32()?;
    let cversion = r.i32()?;
    let aversion = r.i32()?;
    let owner = r.i64()?;
    let acl = *slots
        .get(r.u64()? as usize)
        .ok_or(DecodeError::Invalid("ACL index out of range"))?;
    let children = r.u64()?;
    if children > r.remaining() as u64 {
        return Err(DecodeError::Truncated);
    }
    let mut node = Node::new(name, data, acl, owner, czxid, ctime);
    node.mzxid = mzxid;
    node.pzxid = pzxid;
    node.mtime = mtime;
    node.version = version;
    node.cversion = cversion;
    node.aversion = aversion;
    Ok((node, children))
}
