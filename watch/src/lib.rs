//! Watch manager.
