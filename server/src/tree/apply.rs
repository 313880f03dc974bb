//! Applying a committed txn to the tree.
//!
//! Each op either changes the tree and returns an [`Undo`] record, or fails and
//! changes nothing. A multi keeps the undo records of its ops and, when an op
//! fails, rolls the earlier ones back in reverse order, so a multi is all or
//! nothing even when a replayed txn no longer fits the tree. Once a txn has fully
//! applied its undo records are committed (releasing the ACL references they held).
//! Undo records name nodes by arena id: that is sound because the arena's free
//! list is a stack and rollback runs in exact reverse order, so re-attaching a
//! deleted node gets back the id it had.
//!
//! Watch triggers follow ZooKeeper's `DataTree` order: create fires NodeCreated on
//! the path then NodeChildrenChanged on the parent; delete fires NodeDeleted then
//! NodeChildrenChanged on the parent; setData fires NodeDataChanged; setACL fires
//! nothing. A multi's triggers are its ops' triggers in op order, and only when
//! the whole multi applied.

use std::sync::Arc;

use zabkeeper_proto::{path, ErrorCode, EventType};

use super::node::{Node, ROOT};
use super::results::Numbered;
use super::{trigger, DataTree, EphemeralKind, Stat, SPECIAL_PATHS};
use crate::request::Acl;
use crate::txn::{Txn, TxnBody};

/// A watch event to fire because a txn was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub path: String,
    pub event: EventType,
    /// The ACL of the node the event is about (the parent's for NodeChildrenChanged,
    /// the deleted node's last one for NodeDeleted): only watchers that may READ it
    /// are told (ZooKeeper 3.8.4's fix of CVE-2024-23944).
    pub acl: Arc<[Acl]>,
}

/// The outcome of applying one txn (or one op of a multi).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    /// The final path (with any sequence suffix) and the new node's Stat.
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet {
        stat: Stat,
    },
    AclSet {
        stat: Stat,
    },
    Checked,
    /// Every op of a multi applied; one result per op.
    Multi(Vec<TxnResult>),
    /// A multi that did not apply: one code per op, ZooKeeper's way (0 before the
    /// failing op, its code, RuntimeInconsistency after it).
    MultiFailed(Vec<i32>),
    SessionCreated,
    /// The session's ephemerals that were deleted.
    SessionClosed {
        deleted: Vec<String>,
    },
    /// Nothing changed.
    Error(ErrorCode),
}

/// What [`DataTree::apply`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyResult {
    pub result: TxnResult,
    pub triggers: Vec<Trigger>,
}

/// How to take back one applied op.
enum Undo {
    Created {
        id: u32,
        path_len: usize,
        parent: u32,
        parent_cversion: i32,
        parent_pzxid: i64,
    },
    /// The detached node still holds its ACL reference.
    Deleted {
        node: Node,
        parent: u32,
        path_len: usize,
        parent_pzxid: i64,
    },
    DataSet {
        id: u32,
        buf: Box<[u8]>,
        version: i32,
        mzxid: i64,
        mtime: i64,
    },
    /// The old ACL reference is still held.
    AclSet {
        id: u32,
        acl: u32,
        aversion: i32,
    },
    Nothing,
}

impl DataTree {
    /// Applies a committed txn. Txns must come in increasing zxid order; a txn whose
    /// zxid is not above [`last_applied_zxid`](Self::last_applied_zxid) changes nothing
    /// and returns `Error(RuntimeInconsistency)`. A txn that does not fit the tree
    /// (which prep never produces, but a bad replay could) returns an error result
    /// and leaves the tree as it was; its zxid still counts as applied.
    pub fn apply(&mut self, txn: &Txn) -> ApplyResult {
        if txn.zxid <= self.last_zxid {
            return ApplyResult {
                result: TxnResult::Error(ErrorCode::RuntimeInconsistency),
                triggers: Vec::new(),
            };
        }
        self.last_zxid = txn.zxid;
        if txn.request_number > 0 {
            // A second copy of a numbered write (the leader checks before proposing,
            // this holds whatever raced past it): its answer is the first copy's
            // result, and it changes nothing.
            match self.numbered(txn.session_id, txn.request_number) {
                Numbered::New => {}
                Numbered::Recorded(result) => {
                    return ApplyResult {
                        result: result.clone(),
                        triggers: Vec::new(),
                    }
                }
                Numbered::Stale => {
                    return ApplyResult {
                        result: TxnResult::Error(ErrorCode::BadArguments),
                        triggers: Vec::new(),
                    }
                }
            }
        }
        let mut triggers = Vec::new();
        let result = match &txn.body {
            TxnBody::Multi(ops) => self.apply_multi(txn, ops, &mut triggers),
            TxnBody::CreateSession { timeout_ms } => {
                self.sessions.insert(txn.session_id, *timeout_ms);
                TxnResult::SessionCreated
            }
            TxnBody::CloseSession { ephemerals } => {
                self.close_session(txn, ephemerals, &mut triggers)
            }
            TxnBody::Error { code } => {
                TxnResult::Error(ErrorCode::from_code(*code).unwrap_or(ErrorCode::SystemError))
            }
            TxnBody::MultiError { results } => TxnResult::MultiFailed(results.clone()),
            body => match self.apply_op(txn, body, &mut triggers) {
                Ok((result, undo)) => {
                    self.commit(undo);
                    result
                }
                Err(code) => TxnResult::Error(code),
            },
        };
        if matches!(txn.body, TxnBody::CloseSession { .. }) {
            self.drop_results(txn.session_id);
        } else {
            self.record_result(txn, &result);
        }
        match result {
            TxnResult::Error(_) | TxnResult::MultiFailed(_) => self.quota_rollback(0),
            _ => self.quota_settle(),
        }
        ApplyResult { result, triggers }
    }

    fn apply_multi(
        &mut self,
        txn: &Txn,
        ops: &[TxnBody],
        triggers: &mut Vec<Trigger>,
    ) -> TxnResult {
        let mut undos = Vec::with_capacity(ops.len());
        let mut results = Vec::with_capacity(ops.len());
        let mut multi_triggers = Vec::new();
        let quota_mark = self.quota_mark();
        for (i, op) in ops.iter().enumerate() {
            let outcome = match op {
                TxnBody::Create { .. }
                | TxnBody::Delete { .. }
                | TxnBody::SetData { .. }
                | TxnBody::Check { .. } => self.apply_op(txn, op, &mut multi_triggers),
                TxnBody::Error { code } => {
                    Err(ErrorCode::from_code(*code).unwrap_or(ErrorCode::SystemError))
                }
                _ => Err(ErrorCode::BadArguments),
            };
            match outcome {
                Ok((result, undo)) => {
                    results.push(result);
                    undos.push(undo);
                }
                Err(code) => {
                    for undo in undos.into_iter().rev() {
                        self.rollback(undo);
                    }
                    self.quota_rollback(quota_mark);
                    let codes = (0..ops.len())
                        .map(|j| match j.cmp(&i) {
                            std::cmp::Ordering::Less => 0,
                            std::cmp::Ordering::Equal => code.code(),
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                        })
                        .collect();
                    return TxnResult::MultiFailed(codes);
                }
            }
        }
        for undo in undos {
            self.commit(undo);
        }
        triggers.append(&mut multi_triggers);
        TxnResult::Multi(results)
    }

    fn apply_op(
        &mut self,
        txn: &Txn,
        body: &TxnBody,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(TxnResult, Undo), ErrorCode> {
        match body {
            TxnBody::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                path::validate(path, false).map_err(|_| ErrorCode::BadArguments)?;
                if path == "/" {
                    return Err(ErrorCode::NodeExists);
                }
                let parent_path = path::parent(path);
                let parent = self.arena.resolve(parent_path).ok_or(ErrorCode::NoNode)?;
                let name = path::name(path);
                if self.arena.child(parent, name.as_bytes()).is_some() {
                    return Err(ErrorCode::NodeExists);
                }
                if matches!(self.arena.get(parent).kind(), EphemeralKind::Ephemeral(_)) {
                    return Err(ErrorCode::NoChildrenForEphemerals);
                }
                let acl = self.acls.intern(acl);
                let node = Node::new(
                    name.as_bytes(),
                    data,
                    acl,
                    *ephemeral_owner,
                    txn.zxid,
                    txn.time_ms,
                );
                let p = self.arena.get_mut(parent);
                let undo_cversion = p.cversion;
                let undo_pzxid = p.pzxid;
                // ZooKeeper: -1 means "one more than now"; a cversion never goes backwards.
                let new_cversion = if *parent_cversion == -1 {
                    p.cversion.wrapping_add(1)
                } else {
                    *parent_cversion
                };
                if new_cversion > p.cversion {
                    p.cversion = new_cversion;
                    p.pzxid = txn.zxid;
                }
                let id = self.attach(parent, node, path.len());
                self.quota_created(path, data.len());
                triggers.push(trigger(path, EventType::NodeCreated, self.acls.shared(acl)));
                triggers.push(trigger(
                    parent_path,
                    EventType::NodeChildrenChanged,
                    self.acls.shared(self.arena.get(parent).acl),
                ));
                let stat = self.arena.get(id).stat();
                let undo = Undo::Created {
                    id,
                    path_len: path.len(),
                    parent,
                    parent_cversion: undo_cversion,
                    parent_pzxid: undo_pzxid,
                };
                Ok((
                    TxnResult::Created {
                        path: path.clone(),
                        stat,
                    },
                    undo,
                ))
            }
            TxnBody::Delete { path } => {
                let undo = self.delete(path, txn.zxid, triggers)?;
                Ok((TxnResult::Deleted, undo))
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                let id = self.arena.resolve(path).ok_or(ErrorCode::NoNode)?;
                let n = self.arena.get_mut(id);
                let old_len = n.data().len() as i64;
                let buf = n.replace_data(data);
                let undo = Undo::DataSet {
                    id,
                    buf,
                    version: n.version,
                    mzxid: n.mzxid,
                    mtime: n.mtime,
                };
                n.version = *version;
                n.mzxid = txn.zxid;
                n.mtime = txn.time_ms;
                let stat = n.stat();
                self.data_size += data.len() as i64 - old_len;
                self.quota_usage(path, data.len() as i64 - old_len, 0);
                let acl = self.acls.shared(self.arena.get(id).acl);
                triggers.push(trigger(path, EventType::NodeDataChanged, acl));
                Ok((TxnResult::DataSet { stat }, undo))
            }
            TxnBody::SetAcl { path, acl, version } => {
                let id = self.arena.resolve(path).ok_or(ErrorCode::NoNode)?;
                let new_acl = self.acls.intern(acl);
                let n = self.arena.get_mut(id);
                let undo = Undo::AclSet {
                    id,
                    acl: n.acl,
                    aversion: n.aversion,
                };
                n.acl = new_acl;
                n.aversion = *version;
                Ok((TxnResult::AclSet { stat: n.stat() }, undo))
            }
            TxnBody::Check { path, version } => {
                let id = self.arena.resolve(path).ok_or(ErrorCode::NoNode)?;
                if self.arena.get(id).version != *version {
                    return Err(ErrorCode::BadVersion);
                }
                Ok((TxnResult::Checked, Undo::Nothing))
            }
            _ => Err(ErrorCode::BadArguments),
        }
    }

    fn delete(
        &mut self,
        path: &str,
        zxid: i64,
        triggers: &mut Vec<Trigger>,
    ) -> Result<Undo, ErrorCode> {
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let id = self.arena.resolve(path).ok_or(ErrorCode::NoNode)?;
        if id == ROOT {
            return Err(ErrorCode::BadArguments);
        }
        if self.arena.get(id).num_children() > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let parent = self.arena.get(id).parent;
        let p = self.arena.get_mut(parent);
        let parent_pzxid = p.pzxid;
        // ZooKeeper 3.8: a delete moves the parent's pzxid (never backwards) but not its cversion.
        if zxid > p.pzxid {
            p.pzxid = zxid;
        }
        let parent_acl = self.acls.shared(self.arena.get(parent).acl);
        let node = self.detach(id, path.len());
        self.quota_deleted(path, node.data().len());
        triggers.push(trigger(
            path,
            EventType::NodeDeleted,
            self.acls.shared(node.acl),
        ));
        triggers.push(trigger(
            path::parent(path),
            EventType::NodeChildrenChanged,
            parent_acl,
        ));
        Ok(Undo::Deleted {
            node,
            parent,
            path_len: path.len(),
            parent_pzxid,
        })
    }

    fn close_session(
        &mut self,
        txn: &Txn,
        listed: &[String],
        triggers: &mut Vec<Trigger>,
    ) -> TxnResult {
        let session = txn.session_id;
        let mut deleted = Vec::new();
        let mut delete_owned = |tree: &mut DataTree, path: &str, triggers: &mut Vec<Trigger>| {
            let owned = tree
                .arena
                .resolve(path)
                .is_some_and(|id| tree.arena.get(id).kind() == EphemeralKind::Ephemeral(session));
            if owned {
                if let Ok(undo) = tree.delete(path, txn.zxid, triggers) {
                    tree.commit(undo);
                    deleted.push(path.to_string());
                }
            }
        };
        for path in listed {
            delete_owned(self, path, triggers);
        }
        // Like ZooKeeper, also remove ephemerals the txn did not list (none when prep was right).
        let rest: Vec<String> = self.get_ephemerals(session, "");
        for path in &rest {
            delete_owned(self, path, triggers);
        }
        self.sessions.remove(&session);
        TxnResult::SessionClosed { deleted }
    }

    fn commit(&mut self, undo: Undo) {
        match undo {
            Undo::Deleted { node, .. } => self.acls.release(node.acl),
            Undo::AclSet { acl, .. } => self.acls.release(acl),
            Undo::Created { .. } | Undo::DataSet { .. } | Undo::Nothing => {}
        }
    }

    fn rollback(&mut self, undo: Undo) {
        match undo {
            Undo::Created {
                id,
                path_len,
                parent,
                parent_cversion,
                parent_pzxid,
            } => {
                let node = self.detach(id, path_len);
                self.acls.release(node.acl);
                let p = self.arena.get_mut(parent);
                p.cversion = parent_cversion;
                p.pzxid = parent_pzxid;
            }
            Undo::Deleted {
                node,
                parent,
                path_len,
                parent_pzxid,
            } => {
                self.attach(parent, node, path_len);
                self.arena.get_mut(parent).pzxid = parent_pzxid;
            }
            Undo::DataSet {
                id,
                buf,
                version,
                mzxid,
                mtime,
            } => {
                let n = self.arena.get_mut(id);
                let new_len = n.data().len() as i64;
                n.restore_buf(buf);
                n.version = version;
                n.mzxid = mzxid;
                n.mtime = mtime;
                let old_len = n.data().len() as i64;
                self.data_size += old_len - new_len;
            }
            Undo::AclSet { id, acl, aversion } => {
                let n = self.arena.get_mut(id);
                let new_acl = std::mem::replace(&mut n.acl, acl);
                n.aversion = aversion;
                self.acls.release(new_acl);
            }
            Undo::Nothing => {}
        }
    }
}
