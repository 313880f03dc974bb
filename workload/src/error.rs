//! The workload's one error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("bad history: {0}")]
    BadHistory(String),
    #[error("{0}")]
    Client(#[from] zabkeeper_client::Error),
    #[error("{0}")]
    Unreachable(String),
    #[error("setup: {0}")]
    Setup(String),
}

pub type Result<T> = std::result::Result<T, Error>;
