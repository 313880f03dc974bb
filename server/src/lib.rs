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
//! * `history.rs`: recent changes and watches opened from a zxid.
//! * `session.rs`: leases, session ids and passwords.
//! * `native/`: the native prost protocol, one task per connection.
//! * `zk/`: ZooKeeper's jute protocol on `zk_port`, mapped onto the same requests.
//! * `limits.rs`, `outbox.rs`: what protects the server from its clients (connection
//!   counts, flooding sessions, slow readers).
//! * `config.rs`, `error.rs`, `server.rs` (start, recovery, shutdown).

pub mod accept;
pub mod admin;
pub mod apply;
pub mod auth;
pub mod config;
pub mod core;
pub mod ensemble;
pub mod error;
pub mod history;
pub mod limits;
pub mod memory_trim;
pub mod metrics;
pub mod native;
pub mod outbox;
pub mod peer;
pub mod pipeline;
pub mod prep;
pub mod reply;
pub mod request;
pub mod server;
pub mod session;
pub mod storage;
pub mod tls;
pub mod tools;
pub mod tree;
pub mod txn;
pub mod zk;

/// Wall-clock time in milliseconds since the Unix epoch (txn times, TTL checks).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
