//! Per-server state invariants: what the core believes it delivered matches
//! what the runtime applied, and `committed <= last zxid`, `accepted epoch >=
//! current epoch`.

use crate::{Txn, Zab, Zxid};

/// Checks one live server.
pub fn check_node_state(node: u64, zab: &Zab, applied: &[Txn]) -> Result<(), String> {
    let applied_last = applied.last().map_or(Zxid::ZERO, |t| t.zxid);
    if zab.last_committed() != applied_last {
        return Err(format!(
            "server {node}: core committed {} but applied {}",
            zab.last_committed(),
            applied_last
        ));
    }
    if zab.last_committed() > zab.last_zxid() {
        return Err(format!(
            "server {node}: committed {} beyond last {}",
            zab.last_committed(),
            zab.last_zxid()
        ));
    }
    if zab.accepted_epoch() < zab.current_epoch() {
        return Err(format!("server {node}: accepted epoch below current epoch"));
    }
    Ok(())
}
