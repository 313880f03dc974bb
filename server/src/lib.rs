//! Server.

pub mod prep;
pub mod request;
pub mod tree;
pub mod txn;
