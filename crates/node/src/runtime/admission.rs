//! Admission checks against a chain, answered off the engine's task.
//!
//! The engine asks ([`demls_engine::Event::AdmissionCheck`]) when a gated group needs to know
//! whether a joiner qualifies: the steward before proposing it, every member before voting YES.
//! The runtime hands each question to [`ChainAccess::check`] on a task of its own and feeds
//! the verdict back to the engine as an input of the node's task, like a received message.
//! Without an endpoint (`--eth-rpc`) every check is [`Unavailable::NoEndpoint`]: the engine
//! fails closed, so such a node never admits anyone to a gated group. Open groups never ask.

use std::sync::Arc;

use demls_chain::{ChainChecker, ChainError, RetryPolicy};
use demls_engine::GroupId;
use demls_identity::Address;
use demls_policy::{CheckRequest, Unavailable, Verdict};
use tokio::sync::{OnceCell, Semaphore};

/// At most this many checks read the chain at once; the others wait their turn.
const CONCURRENT_CHECKS: usize = 8;

/// This node's way to the chain: none, or one JSON-RPC endpoint. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ChainAccess {
    endpoint: Option<Arc<Endpoint>>,
}

#[derive(Debug)]
struct Endpoint {
    url: String,
    retry: RetryPolicy,
    /// Made on first use: connecting reads the endpoint's chain id, so an endpoint that is
    /// down when the node starts is tried again at the next check.
    checker: OnceCell<ChainChecker>,
    permits: Semaphore,
}

/// A verdict on one joiner of one group, for the engine.
#[derive(Debug)]
pub struct Answer {
    /// The group that asked.
    pub group: GroupId,
    /// The joiner.
    pub subject: Address,
    /// What the chain says.
    pub verdict: Verdict,
}

impl ChainAccess {
    /// No endpoint: gated groups cannot be checked (nor created) on this node.
    pub fn none() -> Self {
        Self::default()
    }

    /// The endpoint at `url` (`http://` or `https://`), with `retry` for every read. Nothing
    /// is read yet; a malformed URL is an error now.
    pub fn endpoint(url: &str, retry: RetryPolicy) -> Result<Self, ChainError> {
        // Checks the URL and the retry policy without reading anything.
        ChainChecker::new(url, 1, retry)?;
        Ok(Self {
            endpoint: Some(Arc::new(Endpoint {
                url: url.to_owned(),
                retry,
                checker: OnceCell::new(),
                permits: Semaphore::new(CONCURRENT_CHECKS),
            })),
        })
    }

    /// Whether an endpoint is configured.
    pub fn configured(&self) -> bool {
        self.endpoint.is_some()
    }

    /// The checker for the endpoint, connecting (reading its chain id) on first use.
    pub async fn checker(&self) -> Result<&ChainChecker, Unavailable> {
        let endpoint = self.endpoint.as_ref().ok_or(Unavailable::NoEndpoint)?;
        endpoint
            .checker
            .get_or_try_init(|| async {
                let checker = ChainChecker::connect(&endpoint.url, endpoint.retry).await;
                match checker {
                    Ok(checker) => {
                        tracing::info!(
                            chain_id = checker.chain_id(),
                            "Ethereum RPC endpoint connected"
                        );
                        Ok(checker)
                    }
                    Err(ChainError::ChainId(unavailable)) => Err(unavailable),
                    Err(other) => Err(Unavailable::Rpc {
                        attempts: 1,
                        error: other.to_string(),
                    }),
                }
            })
            .await
    }

    /// Decides `request`; never admits on a failure.
    pub async fn check(&self, request: &CheckRequest) -> Verdict {
        let Some(endpoint) = &self.endpoint else {
            return Verdict::Unavailable(Unavailable::NoEndpoint);
        };
        // Held until the check is done (the semaphore is never closed).
        let _permit = endpoint.permits.acquire().await;
        match self.checker().await {
            Ok(checker) => checker.check(request).await,
            Err(unavailable) => Verdict::Unavailable(unavailable),
        }
    }
}
