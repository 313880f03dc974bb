//! The zabkeeper server.
//!
//! ```text
//!  client ─ native front-end (native/) ─┐
//!                                       ├─ core.rs: tree + watches + sessions (reads served here)
//!                                       └─ pipeline.rs: prep (prep.rs) → txn log (storage/) → apply (apply.rs)
//! ```
//!
//! * `tree/`: the znode tree and session table: the replicated state machine.
//! * `txn.rs`: txns as they are logged and replicated; `prep.rs` turns a validated
//!   write into one.
//! * `storage/`: the txn log (CRC'd records, group commit), snapshots, epoch files.
//! * `session.rs`: leases, session ids and passwords.
//! * `native/`: the native prost protocol, one task per connection.
//! * `config.rs`, `error.rs`, `server.rs` (start, recovery, shutdown).

pub mod apply;
pub mod config;
pub mod core;
pub mod ensemble;
pub mod error;
pub mod native;
pub mod peer;
pub mod pipeline;
pub mod prep;
pub mod reply;
pub mod request;
pub mod server;
pub mod session;
pub mod storage;
pub mod tree;
pub mod txn;

/// Wall-clock time in milliseconds since the Unix epoch (txn times, TTL checks).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
