//! [`ChainChecker`]: answers admission [`CheckRequest`]s from a JSON-RPC endpoint.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::network::TransactionBuilder;
use alloy::primitives;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::ClientBuilder;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use alloy::transports::{RpcError, TransportErrorKind};
use demls_identity::Address;
use demls_policy::{
    BlockRef, ChainFacts, CheckRequest, FactValue, Gate, Requirement, U256, Unavailable, Verdict,
    evaluate,
};
use rustls_platform_verifier::BuilderVerifierExt;
use tracing::{debug, warn};

use crate::RetryPolicy;

alloy::sol! {
    /// ERC-20 `balanceOf`, and ERC-721 `balanceOf` (the number of tokens held).
    function balanceOf(address owner) external view returns (uint256);
    /// ERC-721 `ownerOf`; reverts for a token that does not exist.
    function ownerOf(uint256 tokenId) external view returns (address);
}

/// Why a [`ChainChecker`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC URL does not parse, or is not `http` or `https`.
    #[error("invalid RPC URL: {0}")]
    Url(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A retry policy with zero attempts would never read the chain.
    #[error("a retry policy needs at least one attempt")]
    NoAttempts,
    /// [`ChainChecker::connect`] could not learn which chain the endpoint serves.
    #[error("cannot read the RPC endpoint's chain id: {0}")]
    ChainId(Unavailable),
}

/// Reads admission facts from one Ethereum JSON-RPC endpoint (HTTP or HTTPS) and decides
/// [`CheckRequest`]s with [`demls_policy::evaluate`].
///
/// It fails closed: a failed read, a timeout, an endpoint on another chain than configured or
/// a policy for another chain never admits anyone; they answer [`Verdict::Unavailable`] (after
/// [`RetryPolicy::attempts`] reads for failures that may pass), and the caller may ask again
/// later. The RPC URL, which may hold an API key, never appears in an answer.
#[derive(Clone)]
pub struct ChainChecker {
    provider: RootProvider,
    chain_id: u64,
    retry: RetryPolicy,
    /// The URL as given and as parsed, to keep out of answers.
    urls: Arc<[String; 2]>,
}

impl fmt::Debug for ChainChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainChecker")
            .field("chain_id", &self.chain_id)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Why one read of the chain failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The endpoint failed or answered with an error; may pass on a later attempt.
    #[error("{0}")]
    Rpc(#[from] RpcError<TransportErrorKind>),
    /// The read took longer than the attempt timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A contract call answered with something that is not the ABI encoding expected.
    #[error(
        "{call} returned {len} bytes that are not its ABI result (is the token address a contract?)"
    )]
    Abi {
        /// The call.
        call: &'static str,
        /// How long the answer was.
        len: usize,
    },
    /// A contract call reverted.
    #[error("{call} reverted: {message}")]
    Reverted {
        /// The call.
        call: &'static str,
        /// The node's message.
        message: String,
    },
    /// Reading again will not help: answer at once.
    #[error("{0}")]
    Final(Unavailable),
}

impl ChainChecker {
    /// A checker for the endpoint at `rpc_url` (`http://` or `https://`), which must serve the
    /// chain `expected_chain_id`. Nothing is read until the first check.
    pub fn new(
        rpc_url: &str,
        expected_chain_id: u64,
        retry: RetryPolicy,
    ) -> Result<Self, ChainError> {
        if retry.attempts == 0 {
            return Err(ChainError::NoAttempts);
        }
        let url: reqwest::Url = rpc_url
            .parse()
            .map_err(|e| ChainError::Url(format!("{e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ChainError::Url(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ChainError::Client(e.to_string()))?;
        let tls = if url.scheme() == "https" {
            builder
                .with_platform_verifier()
                .map_err(|e| ChainError::Client(e.to_string()))?
                .with_no_client_auth()
        } else {
            // Plain HTTP checks no certificate: do not load the system's roots for it.
            builder
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(retry.attempt_timeout)
            .timeout(retry.attempt_timeout)
            .build()
            .map_err(|e| ChainError::Client(e.without_url().to_string()))?;
        let urls = Arc::new([url.as_str().to_owned(), rpc_url.to_owned()]);
        let client = ClientBuilder::default().http_with_client(http, url);
        Ok(ChainChecker {
            provider: RootProvider::new(client),
            chain_id: expected_chain_id,
            retry,
            urls,
        })
    }

    /// A checker for the endpoint at `rpc_url` and the chain it serves now: reads
    /// `eth_chainId` once (with the retries of `retry`). Every check still compares the
    /// endpoint's chain id with the one read here, so an endpoint that later serves another
    /// chain admits nobody.
    pub async fn connect(rpc_url: &str, retry: RetryPolicy) -> Result<Self, ChainError> {
        let mut checker = Self::new(rpc_url, 0, retry)?;
        let chain_id = checker
            .retried(|| async { Ok(checker.provider.get_chain_id().await?) })
            .await
            .map_err(ChainError::ChainId)?;
        if chain_id == 0 {
            return Err(ChainError::ChainId(Unavailable::Rpc {
                attempts: 1,
                error: "the endpoint reports chain id 0".into(),
            }));
        }
        checker.chain_id = chain_id;
        Ok(checker)
    }

    /// The chain this checker reads.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Decides `request`: an open policy admits at once; a gate is read from the chain at its
    /// block and decided by [`demls_policy::evaluate`]. Never admits on a failure.
    pub async fn check(&self, request: &CheckRequest) -> Verdict {
        let Some(gate) = request.policy.gate() else {
            return Verdict::Admit;
        };
        if gate.chain_id != self.chain_id {
            return Verdict::Unavailable(Unavailable::OtherChain {
                policy: gate.chain_id,
                served: self.chain_id,
            });
        }
        match self.read_with_retries(gate, request.subject).await {
            Ok(facts) => {
                let verdict = Verdict::from(evaluate(&request.policy, &facts));
                debug!(subject = %request.subject, block = facts.block, %verdict, "admission check");
                verdict
            }
            Err(unavailable) => {
                warn!(subject = %request.subject, %unavailable, "admission check unavailable");
                Verdict::Unavailable(unavailable)
            }
        }
    }

    async fn read_with_retries(
        &self,
        gate: &Gate,
        subject: Address,
    ) -> Result<ChainFacts, Unavailable> {
        self.retried(|| self.read(gate, subject)).await
    }

    /// Runs `read` until it succeeds, fails for good, or has been tried
    /// [`RetryPolicy::attempts`] times, each bounded by the attempt timeout.
    async fn retried<T, F>(&self, mut read: impl FnMut() -> F) -> Result<T, Unavailable>
    where
        F: Future<Output = Result<T, ReadError>>,
    {
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout(self.retry.attempt_timeout, read()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(ReadError::Final(unavailable))) => return Err(unavailable),
                Ok(Err(error)) => error,
                Err(_) => ReadError::Timeout(self.retry.attempt_timeout),
            };
            let error = self.redact(&error.to_string());
            if attempt >= self.retry.attempts {
                return Err(Unavailable::Rpc {
                    attempts: attempt,
                    error,
                });
            }
            let wait = self.retry.backoff(attempt);
            debug!(attempt, ?wait, %error, "chain read failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One read: the chain id, the block, then the fact the requirement needs at that block.
    async fn read(&self, gate: &Gate, subject: Address) -> Result<ChainFacts, ReadError> {
        let chain_id = self.provider.get_chain_id().await?;
        if chain_id != self.chain_id {
            return Err(ReadError::Final(Unavailable::EndpointChainMismatch {
                configured: self.chain_id,
                endpoint: chain_id,
            }));
        }
        let head = self.provider.get_block_number().await?;
        let block = match gate.block {
            BlockRef::Latest => head,
            BlockRef::Number(n) if n <= head => n,
            BlockRef::Number(n) => {
                return Err(ReadError::Final(Unavailable::BlockNotMined {
                    block: n,
                    head,
                }));
            }
        };
        let at = BlockId::number(block);
        let value = match &gate.requirement {
            Requirement::MinEth { .. } => FactValue::Balance(from_alloy(
                self.provider
                    .get_balance(to_alloy(subject))
                    .block_id(at)
                    .await?,
            )),
            Requirement::MinErc20 { token, .. }
            | Requirement::Erc721 {
                token,
                token_id: None,
            } => {
                let balance = self
                    .call(
                        *token,
                        balanceOfCall {
                            owner: to_alloy(subject),
                        },
                        at,
                    )
                    .await?;
                FactValue::Balance(from_alloy(balance))
            }
            Requirement::Erc721 {
                token,
                token_id: Some(id),
            } => {
                let call = ownerOfCall {
                    tokenId: primitives::U256::from_be_bytes(id.to_be_bytes()),
                };
                match self.call(*token, call, at).await {
                    Ok(owner) => FactValue::Owner(Some(Address::new(owner.into_array()))),
                    Err(ReadError::Reverted { .. }) => FactValue::Owner(None),
                    Err(error) => return Err(error),
                }
            }
        };
        Ok(ChainFacts {
            chain_id,
            block,
            subject,
            value,
        })
    }

    /// `eth_call` of `call` on `contract` at `at`, and its decoded result.
    async fn call<C: SolCall>(
        &self,
        contract: Address,
        call: C,
        at: BlockId,
    ) -> Result<C::Return, ReadError> {
        let tx = TransactionRequest::default()
            .with_to(to_alloy(contract))
            .with_input(call.abi_encode());
        let answer = match self.provider.call(tx).block(at).await {
            Ok(answer) => answer,
            Err(RpcError::ErrorResp(payload)) if is_revert(payload.code, &payload.message) => {
                return Err(ReadError::Reverted {
                    call: C::SIGNATURE,
                    message: payload.message.into_owned(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        C::abi_decode_returns_validate(&answer).map_err(|_| ReadError::Abi {
            call: C::SIGNATURE,
            len: answer.len(),
        })
    }

    /// `text` without the RPC URL, which may carry an API key.
    fn redact(&self, text: &str) -> String {
        self.urls.iter().fold(text.to_owned(), |text, url| {
            text.replace(url.as_str(), "<rpc>")
        })
    }
}

/// Whether an `eth_call` error is the call reverting (JSON-RPC error code 3, or a message
/// that says so, as some nodes answer with -32000 "execution reverted").
fn is_revert(code: i64, message: &str) -> bool {
    code == 3 || message.contains("revert")
}

fn to_alloy(address: Address) -> primitives::Address {
    primitives::Address::from(*address.as_bytes())
}

fn from_alloy(value: primitives::U256) -> U256 {
    U256::from_be_bytes(value.to_be_bytes())
}
