//! The server crate's error type.
//!
//! Two kinds of failure are kept apart: errors answered to a client are
//! `zabkeeper_proto::ErrorCode`s carried in replies and never stop the server; the
//! `Error` here is for the server itself (bad configuration, storage failure,
//! corrupt data on disk) and is fatal where it occurs in the write path: a server
//! that cannot make its log durable must stop rather than acknowledge writes.

/// A server-side failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error("{0}")]
    Task(String),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// A data tool (`zabkeeper verify`, `export`, ...) could not do its job.
    #[error("{0}")]
    Tool(String),
    #[error("server is shutting down")]
    Shutdown,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
