//! At most one server becomes an established leader in any epoch.

use std::collections::BTreeMap;

use crate::ServerId;

/// Remembers which server established itself in each epoch.
#[derive(Default)]
pub struct OneLeaderPerEpoch {
    leaders: BTreeMap<u32, ServerId>,
}

impl OneLeaderPerEpoch {
    /// Called when `id` reports `Established` as leader of `epoch`.
    pub fn on_established(&mut self, epoch: u32, id: ServerId) -> Result<(), String> {
        match self.leaders.insert(epoch, id) {
            Some(other) if other != id => {
                Err(format!("two leaders in epoch {epoch}: {other} and {id}"))
            }
            _ => Ok(()),
        }
    }
}
