//! A committed txn is never lost: every txn applied anywhere (it was
//! committed by a quorum) is in the initial history of every later
//! established leader, in the same order. Checked when a leader establishes
//! itself (it has just applied its whole initial history), across crashes
//! and restarts of any number of servers.

use crate::Txn;

/// Checks new leaders against everything committed before.
#[derive(Default)]
pub struct CommittedNeverLost;

impl CommittedNeverLost {
    /// `committed`: every txn applied anywhere so far; `leader_applied`: the
    /// new leader's applied sequence right after establishment.
    pub fn on_leader_established(
        &self,
        leader: u64,
        committed: &[Txn],
        leader_applied: &[Txn],
    ) -> Result<(), String> {
        if leader_applied.len() < committed.len() || leader_applied[..committed.len()] != *committed
        {
            let missing = committed
                .iter()
                .find(|t| !leader_applied.contains(t))
                .map(|t| t.zxid);
            return Err(format!(
                "leader {leader} established without committed history ({} committed, {} applied, first missing {missing:?})",
                committed.len(),
                leader_applied.len()
            ));
        }
        Ok(())
    }
}
