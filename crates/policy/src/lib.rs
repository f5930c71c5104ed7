//! Admission policies for demls groups, and the pure admission decision.
//!
//! A group is created with an [`AdmissionPolicy`]: open, or a [`Gate`] on one chain at one
//! block (the latest, or a fixed one) requiring a minimum ETH balance, a minimum ERC-20
//! balance, or an ERC-721 token. The policy travels in the group's announcement and MLS group
//! context in the demls.policy.v1 encoding ([`AdmissionPolicy::encode`],
//! [`AdmissionPolicy::decode`]; see `proto/demls.policy.v1.proto`), so every member checks
//! joiners against the same rule.
//!
//! This crate does no IO. A chain reader (the `demls-chain` crate) answers a [`CheckRequest`]
//! by reading [`ChainFacts`] and calling [`evaluate`]; its [`Verdict`] admits, refuses with a
//! [`Refusal`] a person can read, or says the check was [`Unavailable`], on which callers
//! fail closed.
//!
//! ```
//! use demls_identity::Address;
//! use demls_policy::{AdmissionPolicy, BlockRef, ChainFacts, FactValue, Gate, Requirement, U256, evaluate};
//!
//! let policy = AdmissionPolicy::Gated(Gate {
//!     chain_id: 1,
//!     block: BlockRef::Latest,
//!     requirement: Requirement::MinEth { min_wei: U256::parse_units("0.1", 18)? },
//! });
//! assert_eq!(AdmissionPolicy::decode(&policy.encode())?, policy);
//!
//! let facts = ChainFacts {
//!     chain_id: 1,
//!     block: 123,
//!     subject: Address::new([7; 20]),
//!     value: FactValue::Balance(U256::parse_units("0.05", 18)?),
//! };
//! let refusal = evaluate(&policy, &facts).unwrap_err();
//! assert_eq!(refusal.to_string(), "balance 0.05 ETH at block 123 is below the required 0.1 ETH");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod amount;
mod check;
mod decide;
mod policy;
pub mod wire;

pub use amount::{AmountError, U256};
pub use check::{CheckRequest, Unavailable, Verdict};
pub use decide::{ChainFacts, FactValue, Refusal, evaluate};
pub use policy::{AdmissionPolicy, BlockRef, Gate, MAX_SYMBOL_LEN, PolicyError, Requirement};
