//! The shell's one error type, and how each kind maps to an exit status.
//!
//! Exit statuses: 0 success, 1 a command failed (the server said no, or a local file
//! could not be read), 2 usage error (bad command line or script syntax), 3 the server
//! could not be reached or the session was lost.

use zabkeeper_proto::ErrorCode;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CONNECTION: i32 = 3;

/// An error from the server (or the client library) for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub code: ErrorCode,
    /// Extra words from the client library, shown when the code alone says little.
    pub detail: String,
}

impl OpError {
    pub fn new(code: ErrorCode) -> OpError {
        OpError {
            code,
            detail: String::new(),
        }
    }

    /// The session or connection is gone: retrying the script will not help by itself.
    pub fn is_connection(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::ConnectionLoss
                | ErrorCode::SessionExpired
                | ErrorCode::OperationTimeout
                | ErrorCode::RequestTimeout
                | ErrorCode::NotCaughtUp
                | ErrorCode::NoLeader
                | ErrorCode::SessionMoved
                | ErrorCode::UnknownSession
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// Bad command line or script syntax.
    #[error("{0}")]
    Usage(String),
    /// The server refused an operation on `path`; the message is in ZooKeeper's words.
    #[error("{}", op_message(.err, .path))]
    Op { path: String, err: OpError },
    /// Could not connect, or the connection was lost for good.
    #[error("Connection failed: {0}")]
    Connect(String),
    /// A local file (for `@file` data) could not be read.
    #[error("{0}")]
    Io(String),
}

impl ShellError {
    pub fn op(path: &str, err: OpError) -> ShellError {
        ShellError::Op {
            path: path.to_string(),
            err,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            ShellError::Usage(_) => EXIT_USAGE,
            ShellError::Op { err, .. } if err.is_connection() => EXIT_CONNECTION,
            ShellError::Op { .. } | ShellError::Io(_) => EXIT_FAILED,
            ShellError::Connect(_) => EXIT_CONNECTION,
        }
    }

    /// The ZooKeeper error code, when the server gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ShellError::Op { err, .. } => Some(err.code),
            _ => None,
        }
    }
}

/// zkCli's wording where it has one (`KeeperException.getMessage` without the prefix).
fn op_message(err: &OpError, path: &str) -> String {
    let base = match err.code {
        ErrorCode::NoNode => format!("Node does not exist: {path}"),
        ErrorCode::NodeExists => format!("Node already exists: {path}"),
        ErrorCode::NotEmpty => format!("Node not empty: {path}"),
        ErrorCode::BadVersion => format!("version No is not valid : {path}"),
        ErrorCode::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        ErrorCode::NoAuth => format!("Insufficient permission : {path}"),
        ErrorCode::InvalidAcl => format!("Acl is not valid : {path}"),
        ErrorCode::QuotaExceeded => format!("Quota has exceeded : {path}"),
        other => format!("{other}: {path}"),
    };
    if err.detail.is_empty() {
        base
    } else {
        format!("{base} ({})", err.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_zookeeper_words() {
        let e = ShellError::op("/a", OpError::new(ErrorCode::NoNode));
        assert_eq!(e.to_string(), "Node does not exist: /a");
        let e = ShellError::op("/a", OpError::new(ErrorCode::BadVersion));
        assert_eq!(e.to_string(), "version No is not valid : /a");
        let e = ShellError::op(
            "/a",
            OpError {
                code: ErrorCode::SystemError,
                detail: "boom".into(),
            },
        );
        assert_eq!(e.to_string(), "System error: /a (boom)");
    }

    #[test]
    fn exit_codes_by_kind() {
        assert_eq!(ShellError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(
            ShellError::op("/a", OpError::new(ErrorCode::NodeExists)).exit_code(),
            EXIT_FAILED
        );
        assert_eq!(
            ShellError::op("/a", OpError::new(ErrorCode::ConnectionLoss)).exit_code(),
            EXIT_CONNECTION
        );
        assert_eq!(
            ShellError::Connect("refused".into()).exit_code(),
            EXIT_CONNECTION
        );
        assert_eq!(ShellError::Io("no file".into()).exit_code(), EXIT_FAILED);
    }
}
