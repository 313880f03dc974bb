//! The client's one error type.
//!
//! Server answers carry ZooKeeper's numeric codes; the common ones get their own
//! variant so callers can `match` on them, the rest stay as [`Error::Other`]. Errors
//! the client makes itself (a timeout, a closed handle, a malformed frame) map to the
//! code ZooKeeper's Java client would report, so [`Error::code`] is always meaningful.

use zabkeeper_proto::ErrorCode;

use crate::types::OpResult;

/// Everything a client call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("Node does not exist")]
    NoNode,
    /// A watch opened from a zxid older than the member's change history: re-read,
    /// then open it from a fresh zxid.
    #[error("Watch history no longer reaches back to the requested zxid")]
    WatchHistoryGone,
    #[error("Node already exists")]
    NodeExists,
    #[error("Node not empty")]
    NotEmpty,
    #[error("Bad version")]
    BadVersion,
    #[error("Ephemeral nodes cannot have children")]
    NoChildrenForEphemerals,
    #[error("Invalid ACL")]
    InvalidAcl,
    #[error("Not authorized")]
    NoAuth,
    #[error("Authentication failed")]
    AuthFailed,
    #[error("Bad arguments")]
    BadArguments,
    #[error("No such watcher")]
    NoWatcher,
    #[error("Session expired")]
    SessionExpired,
    #[error("Session moved to another server")]
    SessionMoved,
    /// The connection dropped before the answer came; a write may or may not have been applied.
    #[error("Connection lost before the answer came")]
    ConnectionLoss,
    /// No answer within `ConnectOptions::request_timeout`; a write may or may not have been applied.
    #[error("Operation timed out")]
    OperationTimeout,
    #[error("Not a read-only call (server is read-only)")]
    NotReadOnly,
    #[error("Operation not implemented by the server")]
    Unimplemented,
    /// This handle was closed with [`crate::Client::close`].
    #[error("Client is closed")]
    Closed,
    /// The path breaks ZooKeeper's path rules; nothing was sent.
    #[error("{0}")]
    InvalidPath(String),
    /// The server sent something the protocol does not allow.
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// A multi failed: `index` is the op that failed with `code`; nothing was applied.
    #[error("Multi failed at op {index}: {code}")]
    Multi {
        index: usize,
        code: ErrorCode,
        results: Vec<OpResult>,
    },
    /// Any other ZooKeeper code.
    #[error("{0}")]
    Other(ErrorCode),
    /// A code ZooKeeper does not define.
    #[error("Unknown error code {0}")]
    Unknown(i32),
}

impl Error {
    /// The ZooKeeper code this error corresponds to.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NoNode => ErrorCode::NoNode,
            Error::WatchHistoryGone => ErrorCode::WatchHistoryGone,
            Error::NodeExists => ErrorCode::NodeExists,
            Error::NotEmpty => ErrorCode::NotEmpty,
            Error::BadVersion => ErrorCode::BadVersion,
            Error::NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
            Error::InvalidAcl => ErrorCode::InvalidAcl,
            Error::NoAuth => ErrorCode::NoAuth,
            Error::AuthFailed => ErrorCode::AuthFailed,
            Error::BadArguments | Error::InvalidPath(_) => ErrorCode::BadArguments,
            Error::NoWatcher => ErrorCode::NoWatcher,
            // ZooKeeper's client reports SessionExpired for calls on a closed handle.
            Error::SessionExpired | Error::Closed => ErrorCode::SessionExpired,
            Error::SessionMoved => ErrorCode::SessionMoved,
            Error::ConnectionLoss => ErrorCode::ConnectionLoss,
            Error::OperationTimeout => ErrorCode::OperationTimeout,
            Error::NotReadOnly => ErrorCode::NotReadOnly,
            Error::Unimplemented => ErrorCode::Unimplemented,
            Error::Protocol(_) => ErrorCode::MarshallingError,
            Error::Multi { code, .. } => *code,
            Error::Other(code) => *code,
            Error::Unknown(_) => ErrorCode::SystemError,
        }
    }

    /// The error for a non-zero code from the server.
    pub fn from_code(code: i32) -> Error {
        match ErrorCode::from_code(code) {
            Some(c) => Error::from(c),
            None => Error::Unknown(code),
        }
    }

    /// Whether retrying (possibly on another member) may succeed. A retried write may
    /// apply twice: the first attempt's outcome is unknown.
    pub fn is_retryable(&self) -> bool {
        self.code().is_retryable() && !matches!(self, Error::Closed)
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        match code {
            ErrorCode::NoNode => Error::NoNode,
            ErrorCode::WatchHistoryGone => Error::WatchHistoryGone,
            ErrorCode::NodeExists => Error::NodeExists,
            ErrorCode::NotEmpty => Error::NotEmpty,
            ErrorCode::BadVersion => Error::BadVersion,
            ErrorCode::NoChildrenForEphemerals => Error::NoChildrenForEphemerals,
            ErrorCode::InvalidAcl => Error::InvalidAcl,
            ErrorCode::NoAuth => Error::NoAuth,
            ErrorCode::AuthFailed => Error::AuthFailed,
            ErrorCode::BadArguments => Error::BadArguments,
            ErrorCode::NoWatcher => Error::NoWatcher,
            ErrorCode::SessionExpired => Error::SessionExpired,
            ErrorCode::SessionMoved => Error::SessionMoved,
            ErrorCode::ConnectionLoss => Error::ConnectionLoss,
            ErrorCode::OperationTimeout => Error::OperationTimeout,
            ErrorCode::NotReadOnly => Error::NotReadOnly,
            ErrorCode::Unimplemented => Error::Unimplemented,
            other => Error::Other(other),
        }
    }
}

impl From<zabkeeper_proto::path::InvalidPath> for Error {
    fn from(e: zabkeeper_proto::path::InvalidPath) -> Error {
        Error::InvalidPath(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_code_round_trips_through_error() {
        for n in -200..0 {
            if let Some(code) = ErrorCode::from_code(n) {
                assert_eq!(Error::from_code(n).code(), code, "code {n}");
            } else {
                assert_eq!(Error::from_code(n), Error::Unknown(n));
            }
        }
    }

    #[test]
    fn common_codes_have_their_own_variant() {
        assert_eq!(Error::from_code(-101), Error::NoNode);
        assert_eq!(Error::from_code(-110), Error::NodeExists);
        assert_eq!(Error::from_code(-112), Error::SessionExpired);
        assert_eq!(Error::from_code(-4), Error::ConnectionLoss);
        assert_eq!(Error::from_code(-15), Error::Other(ErrorCode::NotCaughtUp));
    }

    #[test]
    fn client_side_errors_map_to_zookeeper_codes() {
        assert_eq!(Error::Closed.code(), ErrorCode::SessionExpired);
        assert_eq!(
            Error::InvalidPath("x".into()).code(),
            ErrorCode::BadArguments
        );
        assert_eq!(
            Error::Protocol("x".into()).code(),
            ErrorCode::MarshallingError
        );
        assert!(Error::ConnectionLoss.is_retryable());
        assert!(!Error::NoNode.is_retryable());
        assert!(!Error::Closed.is_retryable());
    }

    #[test]
    fn display_is_plain_words() {
        assert_eq!(Error::NoNode.to_string(), "Node does not exist");
        let e = Error::Multi {
            index: 1,
            code: ErrorCode::BadVersion,
            results: vec![],
        };
        assert_eq!(e.to_string(), "Multi failed at op 1: Bad version");
        assert_eq!(e.code(), ErrorCode::BadVersion);
    }
}
