//! The harness of each fuzz target: `run(data)` never panics on any input unless it found a bug.

pub mod consensus;
pub mod engine;
pub mod key_package;
pub mod policy;
pub mod restore;
pub mod storage;
pub mod waku;
