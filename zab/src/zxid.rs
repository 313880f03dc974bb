//! Transaction ids.
//!
//! A zxid packs the epoch of the leader that created a transaction into its
//! high 32 bits and a per-epoch counter into its low 32 bits, so ordering
//! zxids as integers orders transactions first by epoch, then by proposal
//! order within the epoch. The first proposal of a new epoch has counter 1;
//! `(epoch, 0)` names "nothing of this epoch yet".

use std::fmt;

/// A ZooKeeper transaction id: `(epoch << 32) | counter`.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid before every transaction (an empty history).
    pub const ZERO: Zxid = Zxid(0);

    /// Builds a zxid from its epoch and counter.
    pub const fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid(((epoch as u64) << 32) | counter as u64)
    }

    /// The epoch of the leader that created the transaction.
    pub const fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The position of the transaction within its epoch.
    pub const fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_epoch_and_counter() {
        let z = Zxid::new(3, 7);
        assert_eq!(z.0, (3 << 32) | 7);
        assert_eq!(z.epoch(), 3);
        assert_eq!(z.counter(), 7);
        assert_eq!(z.to_string(), "0x300000007");
        assert!(Zxid::new(2, u32::MAX) < Zxid::new(3, 0));
        assert!(Zxid::new(3, 1) < Zxid::new(3, 2));
    }
}
