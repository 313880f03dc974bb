//! Server.

pub mod storage;
