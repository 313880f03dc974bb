//! ZAB atomic broadcast (doc below is expanded at the end of the file list).

mod config;
mod election;
mod error;
mod follower;
mod history;
mod leader;
mod message;
mod node;
mod rng;
mod types;
mod zxid;

#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(test)]
mod tests;

pub use config::Config;
pub use error::ZabError;
pub use message::{Message, PeerState, Vote};
pub use node::Zab;
pub use types::{Action, Persisted, Phase, Role, ServerId, Txn};
pub use zxid::Zxid;
