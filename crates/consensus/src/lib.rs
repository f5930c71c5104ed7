//! Hashgraph-like consensus for demls: every honest member reaches the same
//! decision by itself.
//!
//! A member creates a [`wire::Proposal`]; the expected voters (computed by
//! every receiver itself) answer with signed [`wire::Vote`]s; each member
//! checks every vote and decides by a rule that depends only on the set of
//! valid votes seen and on whether the deadline has passed ([`rule`]), never
//! on the order or batching in which votes arrive.
//!
//! The crate is sans-IO: time comes in as a [`Timestamp`] argument, and the
//! caller asks [`Consensus::poll_timeout`] when to call
//! [`Consensus::handle_timeout`]. Messages use the `consensus.v1` protobuf
//! format of the public reference (`proto/consensus.v1.proto`); votes are
//! signed with the voter's Ethereum wallet (EIP-191). `docs/consensus.md`
//! states the rules, the wire format, and where both differ from the RFC text
//! and from the reference.
//!
//! The caller (the protocol engine) must check what this crate cannot see:
//! that a proposal's `proposal_owner` and a vote's `vote_owner` are the
//! authenticated sender of the message carrying them, and what the payload says.

mod buffer;
mod consensus;
mod error;
mod proposal;
pub mod rule;
pub mod signing;
mod types;
pub mod wire;

pub use consensus::{Consensus, ConsensusConfig};
pub use error::ConsensusError;
pub use types::{
    CastVote, Decision, ProposalId, ProposalOutcome, ProposalSpec, Tally, Timestamp, VoteHash,
    VoteOutcome,
};
