//! Agreement and total order: every server's applied sequence (snapshot plus
//! delivered txns, from the first txn ever) is a prefix of one common
//! sequence. The reference is the longest sequence applied anywhere so far.

use crate::Txn;

/// The common sequence observed so far.
#[derive(Default)]
pub struct PrefixAgreement {
    reference: Vec<Txn>,
}

impl PrefixAgreement {
    /// Checks `applied` against the reference, extending the reference.
    pub fn check(&mut self, node: u64, applied: &[Txn]) -> Result<(), String> {
        let n = applied.len().min(self.reference.len());
        if let Some(i) = (0..n).find(|&i| applied[i] != self.reference[i]) {
            return Err(format!(
                "server {node} applied {:?} at position {i}, others applied {:?}",
                applied[i].zxid, self.reference[i].zxid
            ));
        }
        if applied.len() > self.reference.len() {
            self.reference
                .extend_from_slice(&applied[self.reference.len()..]);
        }
        Ok(())
    }

    /// Everything applied anywhere (hence committed) so far.
    pub fn reference(&self) -> &[Txn] {
        &self.reference
    }
}
