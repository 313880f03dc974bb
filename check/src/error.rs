//! The checker's one error type: what a history violates.

use crate::register::{Op, State};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No order of a key's operations respects both real time and the register's
    /// specification.
    #[error("{0}")]
    NotLinearizable(Box<NotLinearizable>),
    /// The search gave up: the history has too many overlapping operations.
    #[error("{key}: search too large (over {steps} steps)")]
    SearchTooLarge { key: String, steps: u64 },
    /// A plain read missed a write its session had already seen.
    #[error(
        "stale plain read of {key}: it returned mzxid {mzxid:#x}, but its session had seen \
         {seen:#x}, and write {missed:#x} to that key came before"
    )]
    StaleRead {
        key: String,
        seen: i64,
        mzxid: i64,
        missed: i64,
    },
}

/// The failure report of the register search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLinearizable {
    pub key: String,
    /// Operations in the key's history, and how many of them have a known outcome.
    pub ops: usize,
    pub known: usize,
    /// The longest linearizable prefix the search found: its length, its last
    /// operations (in linearization order) and the state it reaches.
    pub prefix_len: usize,
    pub prefix_tail: Vec<Op>,
    pub state: State,
    /// The operation with a known outcome that no extension of that prefix can
    /// take next (the earliest-completing one left).
    pub stuck: Option<Op>,
}

impl fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: no linearization of {} ops ({} with known outcome); the longest linearizable \
             prefix has {} ops and reaches {}; its last ones:",
            self.key,
            self.ops,
            self.known,
            self.prefix_len,
            crate::register::show_state(&self.state)
        )?;
        for op in &self.prefix_tail {
            writeln!(f, "    {op}")?;
        }
        match &self.stuck {
            Some(op) => write!(f, "  and this one cannot follow it: {op}"),
            None => write!(f, "  and no operation with a known outcome is left"),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
