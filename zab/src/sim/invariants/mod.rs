//! Safety and liveness properties, one per file, checked by the harness
//! after every executed action. Each returns `Err(description)` on violation.

mod committed_never_lost;
mod node_state;
mod one_leader_per_epoch;
mod prefix_agreement;
mod primary_order;
mod read_index_fresh;

pub use committed_never_lost::CommittedNeverLost;
pub use node_state::check_node_state;
pub use one_leader_per_epoch::OneLeaderPerEpoch;
pub use prefix_agreement::PrefixAgreement;
pub use primary_order::check_primary_order;
pub use read_index_fresh::ReadIndexFresh;
