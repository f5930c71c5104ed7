//! The demls.policy.v1 wire format (documented in `proto/demls.policy.v1.proto`).
//!
//! [`crate::AdmissionPolicy::encode`] and [`crate::AdmissionPolicy::decode`] are the way in
//! and out; the message types are public so that another message can embed a policy. prost
//! rejects malformed input with an error, never a panic, and the conversion checks every field.

use demls_identity::Address;
use prost::Message;

use crate::{BlockRef, Gate, PolicyError, Requirement, U256};

/// The wire format version this crate writes and reads.
pub const POLICY_VERSION: u32 = 1;

/// The most bytes [`crate::AdmissionPolicy::decode`] reads; a valid policy is far smaller.
pub const MAX_ENCODED_LEN: usize = 512;

/// An admission policy on the wire.
#[derive(Clone, PartialEq, Message)]
pub struct AdmissionPolicy {
    /// [`POLICY_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// EIP-155 chain id; 0 only for an open policy.
    #[prost(uint64, tag = "2")]
    pub chain_id: u64,
    /// A fixed block; absent: the latest block.
    #[prost(uint64, optional, tag = "3")]
    pub block_number: Option<u64>,
    /// What is required.
    #[prost(oneof = "admission_policy::Kind", tags = "10, 11, 12, 13")]
    pub kind: Option<admission_policy::Kind>,
}

/// [`AdmissionPolicy`]'s kind.
pub mod admission_policy {
    /// The kinds of policy.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Anyone is admitted.
        #[prost(message, tag = "10")]
        Open(super::Open),
        /// A minimum ETH balance.
        #[prost(message, tag = "11")]
        MinEth(super::MinEth),
        /// A minimum ERC-20 balance.
        #[prost(message, tag = "12")]
        MinErc20(super::MinErc20),
        /// Holding an ERC-721 token.
        #[prost(message, tag = "13")]
        Erc721(super::Erc721),
    }
}

/// Anyone is admitted.
#[derive(Clone, Copy, PartialEq, Message)]
pub struct Open {}

/// `eth_getBalance(joiner) >= min_wei`.
#[derive(Clone, PartialEq, Message)]
pub struct MinEth {
    /// uint256, big-endian.
    #[prost(bytes = "vec", tag = "1")]
    pub min_wei: Vec<u8>,
}

/// `token.balanceOf(joiner) >= min_amount`.
#[derive(Clone, PartialEq, Message)]
pub struct MinErc20 {
    /// The ERC-20 contract (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub token: Vec<u8>,
    /// uint256, big-endian, in the token's smallest unit.
    #[prost(bytes = "vec", tag = "2")]
    pub min_amount: Vec<u8>,
    /// The token's decimals (display only), at most 255.
    #[prost(uint32, tag = "3")]
    pub decimals: u32,
    /// The token's symbol (display only).
    #[prost(string, tag = "4")]
    pub symbol: String,
}

/// Holding an ERC-721 token: any (`balanceOf ≥ 1`) or one (`ownerOf(token_id)`).
#[derive(Clone, PartialEq, Message)]
pub struct Erc721 {
    /// The ERC-721 contract (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub token: Vec<u8>,
    /// uint256, big-endian; absent: any token of the collection.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub token_id: Option<Vec<u8>>,
}

impl From<&crate::AdmissionPolicy> for AdmissionPolicy {
    fn from(policy: &crate::AdmissionPolicy) -> Self {
        use admission_policy::Kind;
        let crate::AdmissionPolicy::Gated(gate) = policy else {
            return AdmissionPolicy {
                version: POLICY_VERSION,
                chain_id: 0,
                block_number: None,
                kind: Some(Kind::Open(Open {})),
            };
        };
        let kind = match &gate.requirement {
            Requirement::MinEth { min_wei } => Kind::MinEth(MinEth {
                min_wei: min_wei.to_minimal_be(),
            }),
            Requirement::MinErc20 {
                token,
                min_amount,
                decimals,
                symbol,
            } => Kind::MinErc20(MinErc20 {
                token: token.as_bytes().to_vec(),
                min_amount: min_amount.to_minimal_be(),
                decimals: u32::from(*decimals),
                symbol: symbol.clone(),
            }),
            Requirement::Erc721 { token, token_id } => Kind::Erc721(Erc721 {
                token: token.as_bytes().to_vec(),
                token_id: token_id.map(|id| id.to_minimal_be()),
            }),
        };
        AdmissionPolicy {
            version: POLICY_VERSION,
            chain_id: gate.chain_id,
            block_number: match gate.block {
                BlockRef::Latest => None,
                BlockRef::Number(n) => Some(n),
            },
            kind: Some(kind),
        }
    }
}

impl TryFrom<AdmissionPolicy> for crate::AdmissionPolicy {
    type Error = PolicyError;

    fn try_from(wire: AdmissionPolicy) -> Result<Self, PolicyError> {
        use admission_policy::Kind;
        if wire.version != POLICY_VERSION {
            return Err(PolicyError::UnsupportedVersion(wire.version));
        }
        let requirement = match wire.kind.ok_or(PolicyError::UnknownKind)? {
            Kind::Open(Open {}) => {
                if wire.chain_id != 0 || wire.block_number.is_some() {
                    return Err(PolicyError::OpenWithChain);
                }
                return Ok(crate::AdmissionPolicy::Open);
            }
            Kind::MinEth(m) => Requirement::MinEth {
                min_wei: amount("min_wei", &m.min_wei)?,
            },
            Kind::MinErc20(m) => Requirement::MinErc20 {
                token: address("token", &m.token)?,
                min_amount: amount("min_amount", &m.min_amount)?,
                decimals: u8::try_from(m.decimals)
                    .map_err(|_| PolicyError::BadDecimals(m.decimals))?,
                symbol: m.symbol,
            },
            Kind::Erc721(m) => Requirement::Erc721 {
                token: address("token", &m.token)?,
                token_id: m
                    .token_id
                    .as_deref()
                    .map(|id| amount("token_id", id))
                    .transpose()?,
            },
        };
        let policy = crate::AdmissionPolicy::Gated(Gate {
            chain_id: wire.chain_id,
            block: wire.block_number.map_or(BlockRef::Latest, BlockRef::Number),
            requirement,
        });
        policy.validate()?;
        Ok(policy)
    }
}

impl crate::AdmissionPolicy {
    /// The demls.policy.v1 encoding.
    pub fn encode(&self) -> Vec<u8> {
        AdmissionPolicy::from(self).encode_to_vec()
    }

    /// Reads the demls.policy.v1 encoding, checking every field. Input longer than
    /// [`MAX_ENCODED_LEN`], an unknown version and an unknown kind are errors.
    pub fn decode(bytes: &[u8]) -> Result<Self, PolicyError> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(PolicyError::Malformed(format!(
                "{} bytes, more than {MAX_ENCODED_LEN}",
                bytes.len()
            )));
        }
        let wire =
            AdmissionPolicy::decode(bytes).map_err(|e| PolicyError::Malformed(e.to_string()))?;
        Self::try_from(wire)
    }
}

fn address(field: &'static str, bytes: &[u8]) -> Result<Address, PolicyError> {
    Address::from_slice(bytes).ok_or(PolicyError::BadAddress {
        field,
        len: bytes.len(),
    })
}

fn amount(field: &'static str, bytes: &[u8]) -> Result<U256, PolicyError> {
    U256::from_be_slice(bytes).ok_or(PolicyError::BadAmount {
        field,
        len: bytes.len(),
    })
}
