//! The crate's error type.

use crate::ServerId;

/// Errors returned by the ZAB core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZabError {
    /// `propose` was called on a server that is not an established leader.
    #[error("not the established leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this server follows, if it knows one.
        leader: Option<ServerId>,
    },
    /// The epoch's 32-bit counter is exhausted; a new election is needed.
    #[error("zxid counter exhausted in epoch {epoch}")]
    CounterExhausted {
        /// The exhausted epoch.
        epoch: u32,
    },
    /// The configuration is unusable.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A peer message could not be decoded.
    #[error("cannot decode peer message: {0}")]
    Decode(String),
}
