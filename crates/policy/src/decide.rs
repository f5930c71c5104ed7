//! The admission decision: a policy and the facts read from a chain in, admit or refuse out.

use std::fmt;

use demls_identity::Address;

use crate::{AdmissionPolicy, BlockRef, Requirement, U256};

/// What was read from a chain about one address, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFacts {
    /// The chain id the endpoint reported.
    pub chain_id: u64,
    /// The block whose state was read.
    pub block: u64,
    /// The address the facts are about (the joiner).
    pub subject: Address,
    /// What was read.
    pub value: FactValue,
}

/// The value read for a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactValue {
    /// A balance: wei for [`Requirement::MinEth`], the token's smallest unit for
    /// [`Requirement::MinErc20`], a number of tokens for [`Requirement::Erc721`] without an id.
    Balance(U256),
    /// `ownerOf(id)` for [`Requirement::Erc721`] with an id; `None` when the call reverted
    /// (the token does not exist).
    Owner(Option<Address>),
}

/// Why an address is not admitted: shown to the joiner and to members.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The facts come from another chain than the policy's.
    #[error(
        "wrong chain: the facts come from chain {got}, the policy requires chain {expected} ({got} ≠ {expected})"
    )]
    WrongChain {
        /// The policy's chain id.
        expected: u64,
        /// The chain id the facts come from.
        got: u64,
    },
    /// The facts were read at another block than the policy's fixed block.
    #[error("wrong block: the facts were read at block {got}, the policy fixes block {expected}")]
    WrongBlock {
        /// The policy's block.
        expected: u64,
        /// The block the facts were read at.
        got: u64,
    },
    /// The facts are of another kind than the policy asks for.
    #[error("the facts read ({got}) do not answer this policy ({expected})")]
    IrrelevantFacts {
        /// What the policy needs.
        expected: &'static str,
        /// What was read.
        got: &'static str,
    },
    /// The ETH balance is below the minimum.
    #[error(
        "balance {} ETH at block {block} is below the required {} ETH",
        balance.format_units(18),
        required.format_units(18)
    )]
    InsufficientEth {
        /// The balance read, in wei.
        balance: U256,
        /// The minimum, in wei.
        required: U256,
        /// The block it was read at.
        block: u64,
    },
    /// The ERC-20 balance is below the minimum.
    #[error(
        "balance {} {sym} of token {token} at block {block} is below the required {} {sym}",
        balance.format_units(*decimals),
        required.format_units(*decimals),
        sym = Requirement::display_symbol(symbol)
    )]
    InsufficientToken {
        /// The token contract.
        token: Address,
        /// The token's symbol (display only).
        symbol: String,
        /// The token's decimals (display only).
        decimals: u8,
        /// The balance read.
        balance: U256,
        /// The minimum.
        required: U256,
        /// The block it was read at.
        block: u64,
    },
    /// The address holds no token of the collection.
    #[error("{subject} holds no token of the ERC-721 collection {token} at block {block}")]
    NoToken {
        /// The address checked.
        subject: Address,
        /// The collection.
        token: Address,
        /// The block it was read at.
        block: u64,
    },
    /// The required token is owned by someone else, or does not exist.
    #[error(
        "token #{token_id} of the ERC-721 collection {token} {} at block {block}, not by {subject}",
        OwnedBy(owner)
    )]
    NotOwner {
        /// The address checked.
        subject: Address,
        /// The collection.
        token: Address,
        /// The required token.
        token_id: U256,
        /// Its owner; `None` if it does not exist.
        owner: Option<Address>,
        /// The block it was read at.
        block: u64,
    },
}

/// "is owned by 0x…" or "does not exist (so is not owned)".
struct OwnedBy<'a>(&'a Option<Address>);

impl fmt::Display for OwnedBy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(owner) => write!(f, "is owned by {owner}"),
            None => f.write_str("does not exist (ownerOf reverted), so it is not owned"),
        }
    }
}

/// Decides whether the address the `facts` are about satisfies `policy`.
///
/// An open policy admits whatever the facts. Otherwise the facts must come from the policy's
/// chain, from its fixed block if it has one, and be of the kind its requirement reads; then
/// the value is compared (`≥` the minimum, `≥ 1` token, or the owner is the subject).
pub fn evaluate(policy: &AdmissionPolicy, facts: &ChainFacts) -> Result<(), Refusal> {
    let AdmissionPolicy::Gated(gate) = policy else {
        return Ok(());
    };
    if facts.chain_id != gate.chain_id {
        return Err(Refusal::WrongChain {
            expected: gate.chain_id,
            got: facts.chain_id,
        });
    }
    if let BlockRef::Number(expected) = gate.block
        && facts.block != expected
    {
        return Err(Refusal::WrongBlock {
            expected,
            got: facts.block,
        });
    }
    let block = facts.block;
    match (&gate.requirement, facts.value) {
        (Requirement::MinEth { min_wei }, FactValue::Balance(balance)) => {
            if balance >= *min_wei {
                Ok(())
            } else {
                Err(Refusal::InsufficientEth {
                    balance,
                    required: *min_wei,
                    block,
                })
            }
        }
        (
            Requirement::MinErc20 {
                token,
                min_amount,
                decimals,
                symbol,
            },
            FactValue::Balance(balance),
        ) => {
            if balance >= *min_amount {
                Ok(())
            } else {
                Err(Refusal::InsufficientToken {
                    token: *token,
                    symbol: symbol.clone(),
                    decimals: *decimals,
                    balance,
                    required: *min_amount,
                    block,
                })
            }
        }
        (
            Requirement::Erc721 {
                token,
                token_id: None,
            },
            FactValue::Balance(count),
        ) => {
            if count.is_zero() {
                Err(Refusal::NoToken {
                    subject: facts.subject,
                    token: *token,
                    block,
                })
            } else {
                Ok(())
            }
        }
        (
            Requirement::Erc721 {
                token,
                token_id: Some(token_id),
            },
            FactValue::Owner(owner),
        ) => {
            if owner == Some(facts.subject) {
                Ok(())
            } else {
                Err(Refusal::NotOwner {
                    subject: facts.subject,
                    token: *token,
                    token_id: *token_id,
                    owner,
                    block,
                })
            }
        }
        (requirement, value) => Err(Refusal::IrrelevantFacts {
            expected: needs(requirement),
            got: kind_of(&value),
        }),
    }
}

/// The kind of fact a requirement reads.
fn needs(requirement: &Requirement) -> &'static str {
    match requirement {
        Requirement::Erc721 {
            token_id: Some(_), ..
        } => "an owner",
        _ => "a balance",
    }
}

fn kind_of(value: &FactValue) -> &'static str {
    match value {
        FactValue::Balance(_) => "a balance",
        FactValue::Owner(_) => "an owner",
    }
}
