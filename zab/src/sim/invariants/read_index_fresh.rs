//! Linearizable reads are fresh: a read-index answer (`ReadReady { zxid }`)
//! never names a zxid below any txn committed (applied anywhere) before the
//! read began, whether the leader answered from a heartbeat round or from its
//! lease. Reads are begun on random members during the chaos; those still
//! outstanding when their member changes role or crashes are abandoned, as
//! the runtime does.

use std::collections::BTreeMap;

use crate::Zxid;

/// The reads in flight and the floor each must reach.
#[derive(Default)]
pub struct ReadIndexFresh {
    /// id -> (node index, incarnation, last zxid committed anywhere at begin).
    open: BTreeMap<u64, (usize, u64, Zxid)>,
}

impl ReadIndexFresh {
    /// A read begins on `node`; `committed` is the last txn applied anywhere.
    pub fn begin(&mut self, id: u64, node: usize, incarnation: u64, committed: Zxid) {
        self.open.insert(id, (node, incarnation, committed));
    }

    /// The runtime drops the reads of a member whose role changed or that crashed.
    pub fn abandon(&mut self, node: usize) {
        self.open.retain(|_, (n, _, _)| *n != node);
    }

    /// A read was answered; true if it was still open (not abandoned).
    pub fn ready(
        &mut self,
        id: u64,
        node: usize,
        incarnation: u64,
        zxid: Zxid,
    ) -> Result<bool, String> {
        let Some((n, inc, floor)) = self.open.remove(&id) else {
            return Ok(false);
        };
        if (n, inc) != (node, incarnation) {
            return Err(format!(
                "read {id} begun on node index {n} answered on {node}"
            ));
        }
        if zxid < floor {
            return Err(format!(
                "read {id} on node index {node}: read index {zxid} below {floor}, committed before the read began"
            ));
        }
        Ok(true)
    }

    /// A read failed (no leader); true if it was open.
    pub fn failed(&mut self, id: u64) -> bool {
        self.open.remove(&id).is_some()
    }
}
