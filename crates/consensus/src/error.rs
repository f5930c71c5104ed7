use std::time::Duration;

use demls_identity::Address;
use thiserror::Error;

use crate::{ProposalId, Timestamp};

/// Why a proposal, a vote or a request was refused.
///
/// Every error leaves the [`crate::Consensus`] state exactly as it was.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConsensusError {
    // ---- A vote on its own (checked before any state is looked at) ----
    /// An address field (`vote_owner`, `proposal_owner`) is not 20 bytes.
    #[error("{field} is {len} bytes, not a 20-byte address")]
    MalformedAddress {
        /// The wire field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// `vote_hash` is not the hash of the vote's fields.
    #[error("vote_hash does not match the vote's fields")]
    BadVoteHash,
    /// The signature is not 65 bytes, has a bad recovery byte, or no signer can be recovered.
    #[error("malformed or unrecoverable signature")]
    InvalidSignature,
    /// The signature's `s` is in the upper half of the curve order (a malleated copy).
    #[error("signature is not in low-s form")]
    HighS,
    /// The signature was made by someone else than `vote_owner`.
    #[error("vote claims {claimed} but was signed by {recovered}")]
    SignerMismatch {
        /// `vote_owner`.
        claimed: Address,
        /// The address recovered from the signature.
        recovered: Address,
    },

    // ---- A vote against its proposal ----
    /// The voter is not in the proposal's voter set.
    #[error("{voter} is not an expected voter")]
    NotAVoter {
        /// The voter.
        voter: Address,
    },
    /// The voter already has another vote in this proposal.
    #[error("{voter} already voted on proposal {id}")]
    DoubleVote {
        /// The proposal.
        id: ProposalId,
        /// The voter.
        voter: Address,
    },
    /// The vote is dated before the proposal's creation.
    #[error("vote at {vote_secs}s is before the proposal's creation at {created_secs}s")]
    VoteBeforeProposal {
        /// The vote's `timestamp`.
        vote_secs: u64,
        /// The proposal's `timestamp`.
        created_secs: u64,
    },
    /// The vote is dated after the proposal's expiration.
    #[error("vote at {vote_secs}s is after the proposal's expiration at {expiration_secs}s")]
    VoteAfterExpiration {
        /// The vote's `timestamp`.
        vote_secs: u64,
        /// The proposal's `expiration_timestamp`.
        expiration_secs: u64,
    },
    /// `parent_hash` is not empty: a voter votes once, so it names no valid vote.
    #[error("parent_hash names no earlier vote of this owner")]
    ParentHashMismatch,
    /// A vote embedded in a proposal names, in `received_hash`, a vote that is
    /// neither embedded nor known.
    #[error("received_hash names a vote that is not in the proposal")]
    DanglingReceivedHash,
    /// A vote embedded in a proposal is for another proposal.
    #[error("embedded vote is for proposal {vote}, not {proposal}")]
    WrongProposal {
        /// The vote's `proposal_id`.
        vote: ProposalId,
        /// The proposal carrying it.
        proposal: ProposalId,
    },
    /// The proposal's deadline has passed: nothing more is accepted for it.
    #[error("proposal {id} expired at {deadline:?}")]
    Expired {
        /// The proposal.
        id: ProposalId,
        /// Its deadline.
        deadline: Timestamp,
    },
    /// No such proposal.
    #[error("unknown proposal {0}")]
    UnknownProposal(ProposalId),
    /// The proposal was closed; it cannot be reopened.
    #[error("proposal {0} was closed")]
    ProposalClosed(ProposalId),
    /// The buffer of early votes is full, overall or for this voter.
    #[error("vote buffer full")]
    BufferFull,

    // ---- A proposal ----
    /// `proposal_id` is not the one derived from the proposal's content.
    #[error("proposal_id {claimed} is not the content-derived {derived}")]
    ProposalIdMismatch {
        /// `proposal_id` on the wire.
        claimed: ProposalId,
        /// The id derived from the content.
        derived: ProposalId,
    },
    /// `expected_voters_count` differs from the size of the locally computed voter set.
    #[error("expected_voters_count {claimed} differs from the {local} local voters")]
    ExpectedVotersMismatch {
        /// `expected_voters_count` on the wire.
        claimed: u32,
        /// The size of the caller's voter set.
        local: usize,
    },
    /// The voter set is empty.
    #[error("a proposal needs at least one voter")]
    NoVoters,
    /// A different proposal with the same id is already known (a 32-bit collision).
    #[error("another proposal with id {0} is known")]
    ProposalConflict(ProposalId),
    /// The same proposal was received again with a different local voter set.
    #[error("proposal {0} was received with another voter set")]
    VotersChanged(ProposalId),
    /// This member already created this very proposal.
    #[error("proposal {0} already exists")]
    ProposalExists(ProposalId),
    /// The proposal is dated further in the future than the allowed clock skew.
    #[error("proposal created at {created:?} is in the future (now {now:?})")]
    ProposalFromFuture {
        /// The proposal's creation time.
        created: Timestamp,
        /// The local time.
        now: Timestamp,
    },
    /// The proposal expires no later than it is created.
    #[error("proposal expires at or before its creation")]
    EmptyLifetime,
    /// The proposal lives longer than the configured maximum.
    #[error("proposal lifetime {lifetime:?} exceeds the maximum {max:?}")]
    LifetimeTooLong {
        /// The proposal's lifetime.
        lifetime: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// The proposal (without its votes) is larger than the configured maximum.
    #[error("proposal of {size} bytes exceeds the maximum {max}")]
    ProposalTooLarge {
        /// Encoded size without votes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The owner already has the maximum number of undecided proposals.
    #[error("{owner} has too many open proposals")]
    TooManyOpenProposals {
        /// The owner.
        owner: Address,
    },
    /// The maximum number of stored proposals is reached.
    #[error("too many proposals")]
    TooManyProposals,
}
