//! How often and how patiently a check reads the chain before it gives up.

use std::time::Duration;

/// Bounds on one check: how many times the chain is read, how long one read may take, and
/// how long to wait between reads (doubling from `initial_backoff` up to `max_backoff`).
///
/// The worst case for one check is about
/// `attempts × attempt_timeout + (attempts − 1) × max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times the whole read (chain id, block, fact) is tried; at least 1.
    pub attempts: u32,
    /// How long one whole read may take before it counts as failed.
    pub attempt_timeout: Duration,
    /// The wait before the second read.
    pub initial_backoff: Duration,
    /// The longest wait between two reads.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts of at most 10 s each, waiting 0.5 s, 1 s, then 2 s between them.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            attempt_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `failed` (1-based): `initial_backoff ×
    /// 2^(failed−1)`, at most `max_backoff`.
    pub fn backoff(&self, failed: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let retry = RetryPolicy::default();
        let waits: Vec<_> = (1..=5).map(|n| retry.backoff(n).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 2000, 2000]);
        assert_eq!(retry.backoff(0), Duration::from_millis(500));
        assert_eq!(retry.backoff(u32::MAX), Duration::from_secs(2));
        let uncapped = RetryPolicy {
            max_backoff: Duration::MAX,
            ..retry
        };
        assert_eq!(
            uncapped.backoff(40),
            Duration::from_millis(500).saturating_mul(u32::MAX)
        );
    }
}
