//! Write validation on the leader ("prep"): a [`WriteOp`] becomes a [`Txn`] or an error.
//!
//! [`prepare`] checks the op against the tree *plus every txn already proposed
//! but not yet applied* (the [`Pending`] overlay), resolves everything apply
//! needs (the sequence suffix, the ephemeral owner, the parent's new cversion, the
//! new data/ACL version, the ephemerals a closing session owns) and records the
//! state the txn leaves behind in the overlay. The caller proposes the txn with
//! the zxid it passed in; when that txn is applied it calls [`Pending::applied`],
//! on a leadership change [`Pending::clear`]. A refused request changes nothing
//! and its zxid may be reused.
//!
//! The checks and their order are ZooKeeper 3.8's `PrepRequestProcessor`:
//! * create: TTL (BadArguments: TTL mode needs a TTL in (0, MAX_TTL_MS], other
//!   modes must not carry one; a zero or negative `ttl_ms` counts as none), session
//!   of an ephemeral (SessionExpired when closed or closing), path (BadArguments),
//!   ACL (InvalidACL), parent (NoNode), the sequential suffix `%010d` of the
//!   parent's cversion, NodeExists, ephemeral parent (NoChildrenForEphemerals);
//! * delete: `/` and `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config` are
//!   BadArguments, parent and node (NoNode), version (BadVersion), children (NotEmpty);
//! * setData / setACL / check: path, node (NoNode), version or aversion (BadVersion);
//!   a version check passes for -1 or the current version, and the next version
//!   skips -1 (ZOOKEEPER-4743);
//! * multi: ops in order against the overlay plus the effects of the earlier ops;
//!   on the first failure the whole multi fails and leaves no overlay change, with
//!   ZooKeeper's per-op results: 0 (Ok) for the ops before, the error for the
//!   failing op, RuntimeInconsistency (-2) for the ops after (verified in
//!   `PrepRequestProcessor` and `DataTree.processTxn` of 3.8).
//!
//! Quotas: a create or setData that would take a subtree past a hard quota limit is
//! QuotaExceeded (after the ACL checks, as ZooKeeper; see `tree::quota`).
//!
//! ACL permissions are checked by [`prepare_with_auth`] (given the session's
//! authenticated ids): CREATE/DELETE on the parent after it is found, WRITE,
//! ADMIN or READ on the node after it is found; [`prepare`] checks none.
//!
//! As in ZooKeeper 3.8 a parent's cversion counts creates only: a delete moves
//! the parent's pzxid, not its cversion, so sequence numbers are never reused.
//!
//! Deliberate differences from ZooKeeper: a refused request (a failed multi
//! included) is not turned into an error txn and consumes no zxid (ZooKeeper
//! logs one); a CloseSession decrements the parents' child counts in the overlay
//! (ZooKeeper only moves their pzxid there, which can make a pipelined delete of
//! the parent fail with NotEmpty); DeleteContainer refuses a persistent node and
//! a TTL node that has not expired at the txn's time (ZooKeeper trusts its
//! ContainerManager); TTL nodes are always enabled (ZooKeeper needs
//! `zookeeper.extendedTypesEnabled`).

pub(crate) mod acl;
mod pending;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use zabkeeper_proto::{
    path, perms, wire::CreateMode, ErrorCode, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS,
    TTL_EPHEMERAL_OWNER_PREFIX,
};

pub use self::acl::{permits, AuthId};
pub use self::pending::Pending;
pub(crate) use self::pending::SessionState;
use self::pending::{NodeState, View};
use crate::request::{Acl, WriteOp};
use crate::tree::quota::StatsTrack;
use crate::tree::{DataTree, EphemeralKind, Stat, SPECIAL_PATHS};
use crate::txn::{Txn, TxnBody};

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepError {
    #[error("{0}")]
    Op(ErrorCode),
    /// A multi failed: `code` is the failing op's error, `results` one code per op
    /// (0 before the failing op, `code` at it, RuntimeInconsistency after it).
    #[error("multi failed: {code}")]
    Multi { code: ErrorCode, results: Vec<i32> },
}

impl PrepError {
    /// The code to answer the request with.
    pub fn code(&self) -> ErrorCode {
        match self {
            PrepError::Op(c) | PrepError::Multi { code: c, .. } => *c,
        }
    }
}

/// Validates `op` from `session_id` against the tree plus `pending`, and on success
/// returns the txn to propose with `zxid`, having recorded its effects in `pending`.
/// No ACL permission is checked: see [`prepare_with_auth`].
pub fn prepare(
    tree: &DataTree,
    pending: &mut Pending,
    session_id: i64,
    cxid: i32,
    zxid: i64,
    time_ms: i64,
    op: &WriteOp,
) -> Result<Txn, PrepError> {
    prepare_with_auth(tree, pending, session_id, cxid, zxid, time_ms, op, None)
}

/// [`prepare`], plus ZooKeeper's ACL checks when `auth` is given: the ids the
/// session authenticated as (none for an anonymous session). Create needs CREATE
/// and delete DELETE on the parent, setData WRITE, setACL ADMIN and check READ on
/// the node (NoAuth otherwise; a `super` id passes everything); an `auth` ACL entry
/// is expanded to the session's digest ids (InvalidACL if it has none). Session
/// close and container removal are never checked.
#[allow(clippy::too_many_arguments)]
pub fn prepare_with_auth(
    tree: &DataTree,
    pending: &mut Pending,
    session_id: i64,
    cxid: i32,
    zxid: i64,
    time_ms: i64,
    op: &WriteOp,
    auth: Option<&[AuthId]>,
) -> Result<Txn, PrepError> {
    let mut prep = Prep {
        view: View::new(tree, pending),
        session_id,
        zxid,
        time_ms,
        auth,
    };
    let body = match op {
        WriteOp::Multi(ops) => prep.multi(ops)?,
        op => prep.op(op).map_err(PrepError::Op)?,
    };
    prep.view.into_changes().commit(pending, zxid);
    Ok(Txn {
        session_id,
        cxid,
        zxid,
        time_ms,
        request_number: 0,
        acked_below: 0,
        body,
    })
}

/// The txn that records the refusal of an exactly-once write, so a retry of it gets
/// the same answer (see `tree::results`). It changes nothing else and leaves no
/// overlay change.
pub fn refusal_txn(session_id: i64, cxid: i32, zxid: i64, time_ms: i64, e: &PrepError) -> Txn {
    let body = match e {
        PrepError::Op(code) => TxnBody::Error { code: code.code() },
        PrepError::Multi { results, .. } => TxnBody::MultiError {
            results: results.clone(),
        },
    };
    Txn {
        session_id,
        cxid,
        zxid,
        time_ms,
        request_number: 0,
        acked_below: 0,
        body,
    }
}

struct Prep<'a> {
    view: View<'a>,
    session_id: i64,
    zxid: i64,
    time_ms: i64,
    auth: Option<&'a [AuthId]>,
}

impl Prep<'_> {
    /// NoAuth unless the session may do `perm` on the (existing) node at `path`.
    fn check_perm(&self, path: &str, perm: i32) -> Result<(), ErrorCode> {
        match self.auth {
            Some(auth) if !acl::permits(&self.view.acl(path), perm, auth) => Err(ErrorCode::NoAuth),
            _ => Ok(()),
        }
    }

    /// ZooKeeper's `checkQuota`: QuotaExceeded when the change would take the subtree
    /// of the deepest quota above `path` past a hard limit, measured against the applied
    /// usage (not the writes in flight, as in ZooKeeper). A soft limit is only logged.
    fn check_quota(&self, path: &str, bytes_diff: i64, count_diff: i64) -> Result<(), ErrorCode> {
        let Some((root, limits, stats)) = self.view.tree.quota_of(path) else {
            return Ok(());
        };
        for (diff, soft, hard, used) in [
            (
                count_diff,
                StatsTrack::COUNT,
                StatsTrack::COUNT_HARD,
                StatsTrack::COUNT,
            ),
            (
                bytes_diff,
                StatsTrack::BYTES,
                StatsTrack::BYTES_HARD,
                StatsTrack::BYTES,
            ),
        ] {
            let (soft, hard) = (limits.get(soft), limits.get(hard));
            if diff == 0 || (soft < 0 && hard < 0) {
                continue;
            }
            let new = stats.get(used) + diff;
            let limit = if hard > -1 { hard } else { soft };
            if new > limit {
                if hard > -1 {
                    return Err(ErrorCode::QuotaExceeded);
                }
                tracing::debug!(%root, %used, new, limit, "soft quota exceeded");
            }
        }
        Ok(())
    }

    fn fixup(&self, list: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        acl::fixup(list, self.auth.unwrap_or(&[]))
    }

    fn multi(&mut self, ops: &[WriteOp]) -> Result<TxnBody, PrepError> {
        let mut bodies = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let result = match op {
                WriteOp::Create { .. }
                | WriteOp::Delete { .. }
                | WriteOp::SetData { .. }
                | WriteOp::Check { .. } => self.op(op),
                _ => Err(ErrorCode::BadArguments),
            };
            match result {
                Ok(body) => bodies.push(body),
                Err(code) => {
                    let results = (0..ops.len())
                        .map(|j| match j.cmp(&i) {
                            std::cmp::Ordering::Less => 0,
                            std::cmp::Ordering::Equal => code.code(),
                            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency.code(),
                        })
                        .collect();
                    return Err(PrepError::Multi { code, results });
                }
            }
        }
        Ok(TxnBody::Multi(bodies))
    }

    fn op(&mut self, op: &WriteOp) -> Result<TxnBody, ErrorCode> {
        match op {
            WriteOp::Create {
                path,
                data,
                acl,
                mode,
                ttl_ms,
            } => {
                let (path, owner, parent_cversion, acl) =
                    self.create(path, data.len(), acl, *mode, *ttl_ms)?;
                Ok(TxnBody::Create {
                    path,
                    data: data.clone(),
                    acl,
                    ephemeral_owner: owner,
                    parent_cversion,
                })
            }
            WriteOp::Delete { path, version } => {
                valid_path(path)?;
                self.delete(path, Some(*version), true)?;
                Ok(TxnBody::Delete { path: path.clone() })
            }
            WriteOp::SetData {
                path,
                data,
                version,
            } => {
                valid_path(path)?;
                let mut node = self.view.node(path).ok_or(ErrorCode::NoNode)?;
                self.check_perm(path, perms::WRITE)?;
                self.check_quota(path, data.len() as i64 - node.data_length as i64, 0)?;
                node.version = next_version(node.version, *version)?;
                node.mtime = self.time_ms;
                node.mzxid = self.zxid;
                node.data_length = data.len() as i32;
                self.view.set_node(path, Some(node));
                Ok(TxnBody::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: node.version,
                })
            }
            WriteOp::SetAcl {
                path,
                acl,
                aversion,
            } => {
                valid_path(path)?;
                let acl = self.fixup(acl)?;
                let mut node = self.view.node(path).ok_or(ErrorCode::NoNode)?;
                self.check_perm(path, perms::ADMIN)?;
                node.aversion = next_version(node.aversion, *aversion)?;
                self.view.set_node(path, Some(node));
                self.view.set_acl(path, acl.clone().into());
                Ok(TxnBody::SetAcl {
                    path: path.clone(),
                    acl,
                    version: node.aversion,
                })
            }
            WriteOp::Check { path, version } => {
                valid_path(path)?;
                let node = self.view.node(path).ok_or(ErrorCode::NoNode)?;
                self.check_perm(path, perms::READ)?;
                next_version(node.version, *version)?;
                Ok(TxnBody::Check {
                    path: path.clone(),
                    version: node.version,
                })
            }
            WriteOp::CreateSession { timeout_ms } => {
                self.view
                    .set_session(self.session_id, SessionState::Open(*timeout_ms));
                Ok(TxnBody::CreateSession {
                    timeout_ms: *timeout_ms,
                })
            }
            WriteOp::CloseSession => {
                let ephemerals = self.session_ephemerals();
                for p in &ephemerals {
                    self.delete(p, None, false)?;
                }
                self.view.set_session(self.session_id, SessionState::Closed);
                Ok(TxnBody::CloseSession {
                    ephemerals: ephemerals.into_iter().collect(),
                })
            }
            WriteOp::DeleteContainer { path } => {
                valid_path(path)?;
                if SPECIAL_PATHS.contains(&path.as_str()) {
                    return Err(ErrorCode::BadArguments);
                }
                let node = self.view.node(path).ok_or(ErrorCode::NoNode)?;
                if node.num_children > 0 {
                    return Err(ErrorCode::NotEmpty);
                }
                let removable = match EphemeralKind::of(node.ephemeral_owner) {
                    EphemeralKind::Container => true,
                    kind @ EphemeralKind::Ttl(_) => {
                        crate::tree::ttl_expired(kind, node.mtime, self.time_ms)
                    }
                    _ => false,
                };
                if !removable {
                    return Err(ErrorCode::BadVersion);
                }
                self.delete(path, None, false)?;
                Ok(TxnBody::Delete { path: path.clone() })
            }
            WriteOp::Multi(_) => Err(ErrorCode::BadArguments),
        }
    }

    /// Returns the final path, the ephemeral owner, the parent's new cversion and the ACL.
    fn create(
        &mut self,
        path: &str,
        data_len: usize,
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
    ) -> Result<(String, i64, i32, Vec<Acl>), ErrorCode> {
        if mode.is_ttl() {
            if ttl_ms <= 0 || ttl_ms > MAX_TTL_MS {
                return Err(ErrorCode::BadArguments);
            }
        } else if ttl_ms > 0 {
            return Err(ErrorCode::BadArguments);
        }
        if mode.is_ephemeral()
            && !matches!(self.view.session(self.session_id), SessionState::Open(_))
        {
            return Err(ErrorCode::SessionExpired);
        }
        path::validate(path, mode.is_sequential()).map_err(|_| ErrorCode::BadArguments)?;
        let acl = self.fixup(acl)?;
        let parent_path = path::parent(path);
        let mut parent = self.view.node(parent_path).ok_or(ErrorCode::NoNode)?;
        self.check_perm(parent_path, perms::CREATE)?;
        let path = if mode.is_sequential() {
            format!("{path}{:010}", parent.cversion)
        } else {
            path.to_string()
        };
        path::validate(&path, false).map_err(|_| ErrorCode::BadArguments)?;
        if path == "/" || self.view.node(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            EphemeralKind::of(parent.ephemeral_owner),
            EphemeralKind::Ephemeral(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        self.check_quota(&path, data_len as i64, 1)?;
        let owner = if mode.is_container() {
            CONTAINER_EPHEMERAL_OWNER
        } else if mode.is_ttl() {
            TTL_EPHEMERAL_OWNER_PREFIX | ttl_ms
        } else if mode.is_ephemeral() {
            self.session_id
        } else {
            0
        };
        let new_cversion = parent.cversion.wrapping_add(1);
        parent.cversion = new_cversion;
        parent.pzxid = self.zxid;
        parent.num_children += 1;
        self.view.set_node(parent_path, Some(parent));
        let node = Stat {
            czxid: self.zxid,
            mzxid: self.zxid,
            ctime: self.time_ms,
            mtime: self.time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            data_length: data_len as i32,
            num_children: 0,
            pzxid: self.zxid,
        };
        self.view.set_node(&path, Some(node));
        self.view.set_acl(&path, acl.clone().into());
        Ok((path, owner, new_cversion, acl))
    }

    /// Records a delete; `version` is checked unless `None`, the parent's DELETE
    /// permission if `check_acl` (not for session close and container removal).
    fn delete(
        &mut self,
        path: &str,
        version: Option<i32>,
        check_acl: bool,
    ) -> Result<(), ErrorCode> {
        if SPECIAL_PATHS.contains(&path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent_path = path::parent(path);
        let mut parent = self.view.node(parent_path).ok_or(ErrorCode::NoNode)?;
        if check_acl {
            self.check_perm(parent_path, perms::DELETE)?;
        }
        let node = self.view.node(path).ok_or(ErrorCode::NoNode)?;
        if let Some(v) = version {
            next_version(node.version, v)?;
        }
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        parent.num_children -= 1;
        parent.pzxid = self.zxid;
        self.view.set_node(parent_path, Some(parent));
        self.view.set_node(path, None);
        Ok(())
    }

    /// The session's ephemerals once every in-flight txn is applied, sorted.
    fn session_ephemerals(&self) -> BTreeSet<String> {
        let owner = |s: &Option<NodeState>| s.as_ref().map(|s| s.ephemeral_owner);
        let mut set: BTreeSet<String> = self
            .view
            .tree
            .get_ephemerals(self.session_id, "")
            .into_iter()
            .collect();
        for (p, s) in self.view.pending.nodes().chain(self.view.scratch_nodes()) {
            if owner(s) == Some(self.session_id) {
                set.insert(p.to_string());
            } else {
                set.remove(p);
            }
        }
        set
    }
}

fn valid_path(path: &str) -> Result<(), ErrorCode> {
    path::validate(path, false).map_err(|_| ErrorCode::BadArguments)
}

/// ZooKeeper's `checkAndIncVersion`: BadVersion unless `expected` is -1 or `current`;
/// the next version skips -1.
fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(match current.wrapping_add(1) {
        -1 => 0,
        v => v,
    })
}
