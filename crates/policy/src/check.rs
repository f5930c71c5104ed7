//! The sans-IO request and answer between the protocol engine and a chain reader.

use std::fmt;

use demls_identity::Address;

use crate::{AdmissionPolicy, Refusal};

/// A question for a chain reader: may `subject` be admitted under `policy`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    /// The group's policy.
    pub policy: AdmissionPolicy,
    /// The joiner's address.
    pub subject: Address,
}

/// A chain reader's answer to a [`CheckRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The subject satisfies the policy.
    Admit,
    /// The subject does not satisfy the policy; the reason is for the joiner and the members.
    Refuse(Refusal),
    /// The check could not be made. Callers fail closed (nobody is admitted on it) and may
    /// ask again later.
    Unavailable(Unavailable),
}

/// Why a check could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// Reading the chain failed every time it was tried (connection, timeout, RPC error, or
    /// an answer that could not be decoded).
    #[error("the chain could not be read ({attempts} attempts): {error}")]
    Rpc {
        /// How many times the whole read was tried.
        attempts: u32,
        /// The last failure.
        error: String,
    },
    /// The endpoint serves another chain than the one it was configured for.
    #[error("the RPC endpoint serves chain {endpoint}, not the configured chain {configured}")]
    EndpointChainMismatch {
        /// The chain id the reader was configured with.
        configured: u64,
        /// The chain id the endpoint reported.
        endpoint: u64,
    },
    /// The policy reads a chain that this reader does not serve.
    #[error("the policy reads chain {policy}, this node's RPC endpoint serves chain {served}")]
    OtherChain {
        /// The policy's chain id.
        policy: u64,
        /// The chain this reader serves.
        served: u64,
    },
    /// The policy's fixed block is not mined yet.
    #[error("the policy's block {block} is not mined yet (the chain is at block {head})")]
    BlockNotMined {
        /// The policy's block.
        block: u64,
        /// The endpoint's latest block.
        head: u64,
    },
    /// The checking node has no chain reader at all (no RPC endpoint configured).
    #[error("this node has no Ethereum RPC endpoint configured")]
    NoEndpoint,
}

impl Verdict {
    /// Whether this verdict admits the subject (only [`Verdict::Admit`] does).
    pub fn admits(&self) -> bool {
        matches!(self, Verdict::Admit)
    }
}

impl From<Result<(), Refusal>> for Verdict {
    fn from(decision: Result<(), Refusal>) -> Self {
        match decision {
            Ok(()) => Verdict::Admit,
            Err(refusal) => Verdict::Refuse(refusal),
        }
    }
}

/// "admitted", "refused: …" or "check unavailable: …".
impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Admit => f.write_str("admitted"),
            Verdict::Refuse(refusal) => write!(f, "refused: {refusal}"),
            Verdict::Unavailable(why) => write!(f, "check unavailable: {why}"),
        }
    }
}
