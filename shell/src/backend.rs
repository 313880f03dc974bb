//! What the shell needs from a session, as a trait.
//!
//! The commands (`exec.rs`) are written against this trait rather than the client type,
//! so they are tested against an in-memory tree in unit tests, and the client library's
//! API touches the shell in one file only (`client_backend.rs`).

use crate::acl::AclEntry;
use crate::command::Mode;
use crate::error::OpError;
use zabkeeper_proto::wire::Stat;

/// Facts about the session, for the `session` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: i64,
    pub timeout_ms: u64,
    pub server: Option<String>,
    pub last_zxid: i64,
}

// The shell drives one session from one task, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Backend {
    async fn create(
        &self,
        path: &str,
        data: Vec<u8>,
        mode: Mode,
        ttl_ms: Option<i64>,
    ) -> Result<String, OpError>;
    async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), OpError>;
    async fn set_data(
        &self,
        path: &str,
        data: Vec<u8>,
        version: Option<i32>,
    ) -> Result<Stat, OpError>;
    async fn exists(&self, path: &str) -> Result<Option<Stat>, OpError>;
    async fn get_children(&self, path: &str) -> Result<Vec<String>, OpError>;
    async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), OpError>;
    async fn sync(&self, path: &str) -> Result<(), OpError>;
    async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, OpError>;
    async fn who_am_i(&self) -> Result<Vec<(String, String)>, OpError>;
    async fn get_acl(&self, path: &str) -> Result<(Vec<AclEntry>, Stat), OpError>;
    async fn set_acl(
        &self,
        path: &str,
        acl: &[AclEntry],
        version: Option<i32>,
    ) -> Result<Stat, OpError>;
    async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), OpError>;
    fn session(&self) -> SessionInfo;
}
