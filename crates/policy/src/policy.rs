//! The admission policy a group is created with.

use std::fmt;

use demls_identity::Address;

use crate::U256;

/// The most bytes a token symbol may have.
pub const MAX_SYMBOL_LEN: usize = 32;

/// Who may be admitted to a group.
///
/// Chosen by the group's creator, it travels in the group announcement and the MLS group
/// context (encoded with [`AdmissionPolicy::encode`]), so that every member checks joiners
/// against the same rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdmissionPolicy {
    /// Anyone may be admitted; no chain is read.
    #[default]
    Open,
    /// Only addresses that satisfy the gate on chain.
    Gated(Gate),
}

/// A requirement read from one chain at one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The EIP-155 chain id whose state is read (1 for Ethereum mainnet); never 0.
    pub chain_id: u64,
    /// The block whose state is read.
    pub block: BlockRef,
    /// What the joiner's address must hold there.
    pub requirement: Requirement,
}

/// Which block's state a gate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockRef {
    /// The endpoint's latest block at the time of the check (each check may read a newer one).
    #[default]
    Latest,
    /// A fixed block: every check reads the same state, so every member reaches the same
    /// decision. Old blocks need an archive node.
    Number(u64),
}

/// What the joiner's address must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// An ETH balance (`eth_getBalance`) of at least `min_wei`.
    MinEth {
        /// The least balance admitted, in wei.
        min_wei: U256,
    },
    /// An ERC-20 balance (`balanceOf(address)`) of at least `min_amount` of `token`.
    MinErc20 {
        /// The token contract.
        token: Address,
        /// The least balance admitted, in the token's smallest unit.
        min_amount: U256,
        /// The token's `decimals()`, for showing amounts to people only.
        decimals: u8,
        /// The token's symbol, for showing amounts to people only (at most
        /// [`MAX_SYMBOL_LEN`] bytes, no control characters; may be empty).
        symbol: String,
    },
    /// Holding an ERC-721 token of the collection `token`.
    Erc721 {
        /// The token (collection) contract.
        token: Address,
        /// `None`: any token of the collection (`balanceOf(address) ≥ 1`). `Some(id)`: that
        /// very token (`ownerOf(id)` is the joiner; a token that does not exist refuses).
        token_id: Option<U256>,
    },
}

/// Why a policy is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The encoding is not a policy message.
    #[error("malformed admission policy: {0}")]
    Malformed(String),
    /// A policy of a version this code does not know.
    #[error("admission policy version {0} is not supported (this node knows version 1)")]
    UnsupportedVersion(u32),
    /// A policy of a kind this code does not know (from a newer version); it must not be
    /// treated as open.
    #[error("admission policy of an unknown kind (from a newer demls?)")]
    UnknownKind,
    /// A gate on chain id 0.
    #[error("admission policy on chain id 0")]
    ZeroChainId,
    /// An open policy that names a chain or a block.
    #[error("an open admission policy names a chain or a block")]
    OpenWithChain,
    /// An address field that is not 20 bytes.
    #[error("{field} is {len} bytes, not a 20-byte address")]
    BadAddress {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// An amount field of more than 32 bytes.
    #[error("{field} is {len} bytes, more than a uint256")]
    BadAmount {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// ERC-20 decimals above 255.
    #[error("ERC-20 decimals {0} do not fit in a uint8")]
    BadDecimals(u32),
    /// A token symbol that is too long or has control characters.
    #[error("token symbol {0:?} is longer than 32 bytes or has control characters")]
    BadSymbol(String),
}

impl AdmissionPolicy {
    /// Checks what [`AdmissionPolicy::decode`] checks, for a policy built in code: a gate has
    /// a non-zero chain id and a token symbol is short and printable.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let AdmissionPolicy::Gated(gate) = self else {
            return Ok(());
        };
        if gate.chain_id == 0 {
            return Err(PolicyError::ZeroChainId);
        }
        if let Requirement::MinErc20 { symbol, .. } = &gate.requirement
            && (symbol.len() > MAX_SYMBOL_LEN || symbol.chars().any(char::is_control))
        {
            return Err(PolicyError::BadSymbol(symbol.clone()));
        }
        Ok(())
    }

    /// The gate, unless the policy is open.
    pub fn gate(&self) -> Option<&Gate> {
        match self {
            AdmissionPolicy::Open => None,
            AdmissionPolicy::Gated(gate) => Some(gate),
        }
    }
}

impl Requirement {
    /// `symbol`, or `tokens` when it is empty.
    pub(crate) fn display_symbol(symbol: &str) -> &str {
        if symbol.is_empty() { "tokens" } else { symbol }
    }
}

impl fmt::Display for BlockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockRef::Latest => f.write_str("the latest block"),
            BlockRef::Number(n) => write!(f, "block {n}"),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::MinEth { min_wei } => {
                write!(f, "at least {} ETH", min_wei.format_units(18))
            }
            Requirement::MinErc20 {
                token,
                min_amount,
                decimals,
                symbol,
            } => write!(
                f,
                "at least {} {} (ERC-20 {token})",
                min_amount.format_units(*decimals),
                Requirement::display_symbol(symbol)
            ),
            Requirement::Erc721 {
                token,
                token_id: None,
            } => write!(f, "a token of the ERC-721 collection {token}"),
            Requirement::Erc721 {
                token,
                token_id: Some(id),
            } => write!(f, "token #{id} of the ERC-721 collection {token}"),
        }
    }
}

/// For people: "open to anyone" or "at least 0.1 ETH on chain 1 at the latest block".
impl fmt::Display for AdmissionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdmissionPolicy::Open => f.write_str("open to anyone"),
            AdmissionPolicy::Gated(gate) => {
                write!(
                    f,
                    "{} on chain {} at {}",
                    gate.requirement, gate.chain_id, gate.block
                )
            }
        }
    }
}
