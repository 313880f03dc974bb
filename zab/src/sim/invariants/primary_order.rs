//! Primary order: a server applies txns in strictly increasing zxid order,
//! and within an epoch in exactly the leader's proposal order with no gap
//! (counters 1, 2, 3, ...), so txns of an epoch come after all delivered
//! txns of earlier epochs.

use crate::Txn;

/// Checks that `delivered` may follow `applied`.
pub fn check_primary_order(node: u64, applied: &[Txn], delivered: &[Txn]) -> Result<(), String> {
    let mut prev = applied.last().map(|t| t.zxid);
    for t in delivered {
        let ok = match prev {
            None => t.zxid.counter() == 1,
            Some(p) if p.epoch() == t.zxid.epoch() => t.zxid.counter() == p.counter() + 1,
            Some(p) => t.zxid.epoch() > p.epoch() && t.zxid.counter() == 1,
        };
        if !ok {
            return Err(format!(
                "server {node} delivered {} after {:?}",
                t.zxid, prev
            ));
        }
        prev = Some(t.zxid);
    }
    Ok(())
}
