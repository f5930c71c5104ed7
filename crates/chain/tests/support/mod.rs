//! The real chain of `demls-testchain`, and checkers for it that give up quickly.

use std::time::Duration;

use demls_chain::{ChainChecker, RetryPolicy};
pub use demls_testchain::{ANVIL_CHAIN_ID, Anvil, Chain, demls, eth};

/// Short retries, so that the failure tests take a second, not a minute.
pub const FAST_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    attempt_timeout: Duration::from_secs(2),
    initial_backoff: Duration::from_millis(50),
    max_backoff: Duration::from_millis(200),
};

/// A checker for an anvil with [`FAST_RETRY`].
pub trait FastChecker {
    /// A checker for this chain with [`FAST_RETRY`].
    fn checker(&self) -> ChainChecker;
}

impl FastChecker for Anvil {
    fn checker(&self) -> ChainChecker {
        ChainChecker::new(&self.url(), ANVIL_CHAIN_ID, FAST_RETRY).expect("checker")
    }
}
