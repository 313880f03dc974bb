//! `zabkeeper-check`: the history checker of issue 4, shared by the server's
//! fault tests on loopback (`server/tests/linearizability.rs`) and the container
//! workload (`zabkeeper-workload check`, run by `docker/faults.sh`). It is a crate of
//! its own so both take the same code without the server's tests depending on the
//! workload binary, and it stays pure: a history goes in, a verdict comes out; no
//! I/O, no clock, no client.
//!
//! Two checks, because the service makes two kinds of promise:
//!
//! - **Linearizability** of every write, compare-and-set and linearizable read
//!   ([`register`]): each key is a register, and a Wing & Gong / Knossos style
//!   search looks for an order of its operations that respects real time and the
//!   register's specification. Linearizability is local (a history is linearizable
//!   iff each object's sub-history is), so keys are checked one at a time, which is
//!   what keeps the search small. Operations whose outcome is unknown (the answer was
//!   lost) may or may not have taken effect; a compare-and-set refused with
//!   BadVersion is an operation too (it takes effect where the version differed).
//! - **Session guarantees** of plain reads ([`session`]): they are allowed to be
//!   stale, but never older than what their session had already seen.
//!
//! A failure reports the longest linearizable prefix the search found and the
//! operation that cannot follow it ([`NotLinearizable`]), or the stale read and the
//! write it missed.
//!
//! Caveats: real time is the recorder's clock, so invocation and completion times
//! must come from one clock (one process, or hosts whose clocks agree closely);
//! the register model assumes every write bumps the version by one (ZooKeeper's
//! setData), and a history must start from a known state.

mod error;
mod history;
pub mod register;
pub mod session;

pub use error::{Error, NotLinearizable, Result};
pub use history::{Counts, History};
pub use register::{check_register, Op, OpKind, State};
pub use session::{check_sessions, SessionRead};
