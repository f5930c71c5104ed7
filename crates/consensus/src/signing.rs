//! Hashes, identifiers and signatures of the `consensus.v1` messages.
//!
//! `vote_hash` and the signature follow the public reference
//! (hashgraph-like-consensus `compute_vote_hash` / `build_vote` /
//! `validate_vote`) byte for byte. The two identifiers are demls rules: the
//! reference draws them at random.

use demls_identity::{Address, EthSignature, IdentityError, Wallet, recover_personal};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::wire::{Proposal, Vote};
use crate::{ConsensusError, ProposalId, VoteHash};

/// Domain separator of [`proposal_id`].
const PROPOSAL_ID_DOMAIN: &[u8] = b"demls/consensus.v1/proposal-id";
/// Domain separator of [`vote_id`].
const VOTE_ID_DOMAIN: &[u8] = b"demls/consensus.v1/vote-id";

/// `SHA256(vote_id LE || vote_owner || proposal_id LE || timestamp LE || vote as u8 || parent_hash || received_hash)`.
pub fn vote_hash(vote: &Vote) -> VoteHash {
    let mut hasher = Sha256::new();
    hasher.update(vote.vote_id.to_le_bytes());
    hasher.update(&vote.vote_owner);
    hasher.update(vote.proposal_id.to_le_bytes());
    hasher.update(vote.timestamp.to_le_bytes());
    hasher.update([u8::from(vote.vote)]);
    hasher.update(&vote.parent_hash);
    hasher.update(&vote.received_hash);
    VoteHash(hasher.finalize().into())
}

/// The bytes a voter signs: the protobuf encoding of the vote with `signature`
/// empty (so `vote_hash` is signed too). The reference signs these, not
/// `vote_hash` as the RFC text says.
pub fn signing_payload(vote: &Vote) -> Vec<u8> {
    Vote {
        signature: Vec::new(),
        ..vote.clone()
    }
    .encode_to_vec()
}

/// The content-derived proposal id: the first four bytes, big-endian, of
/// `SHA256("demls/consensus.v1/proposal-id" || encoding of the proposal with
/// proposal_id = 0, round = 0 and no votes)`.
///
/// Everything a receiver acts on is covered (name, payload, owner, expected
/// voter count, times, liveness), so one id names one question.
pub fn proposal_id(proposal: &Proposal) -> ProposalId {
    let header = Proposal {
        proposal_id: 0,
        ..content(proposal)
    };
    let mut hasher = Sha256::new();
    hasher.update(PROPOSAL_ID_DOMAIN);
    hasher.update(header.encode_to_vec());
    ProposalId(first_u32(&hasher.finalize()))
}

/// The vote id this crate writes: the first four bytes, big-endian, of
/// `SHA256("demls/consensus.v1/vote-id" || proposal_id BE || owner)`.
///
/// Deterministic so that casting needs no randomness; receivers do not check
/// it (the reference draws it at random), it only feeds `vote_hash`.
pub fn vote_id(proposal: ProposalId, owner: Address) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(VOTE_ID_DOMAIN);
    hasher.update(proposal.0.to_be_bytes());
    hasher.update(owner.as_bytes());
    first_u32(&hasher.finalize())
}

/// Checks a vote on its own: owner format, `vote_hash`, and that the owner
/// signed it (low-s). Returns the signer.
pub fn verify_vote(vote: &Vote) -> Result<Address, ConsensusError> {
    VerifiedVote::new(vote.clone()).map(|verified| verified.owner)
}

/// What a proposal asks: a copy without its votes and with `round` 0.
pub(crate) fn content(proposal: &Proposal) -> Proposal {
    Proposal {
        name: proposal.name.clone(),
        payload: proposal.payload.clone(),
        proposal_id: proposal.proposal_id,
        proposal_owner: proposal.proposal_owner.clone(),
        votes: Vec::new(),
        expected_voters_count: proposal.expected_voters_count,
        round: 0,
        timestamp: proposal.timestamp,
        expiration_timestamp: proposal.expiration_timestamp,
        liveness_criteria_yes: proposal.liveness_criteria_yes,
    }
}

/// Reads a 20-byte address field.
pub(crate) fn address_field(bytes: &[u8], field: &'static str) -> Result<Address, ConsensusError> {
    Address::from_slice(bytes).ok_or(ConsensusError::MalformedAddress {
        field,
        len: bytes.len(),
    })
}

fn first_u32(digest: &[u8]) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&digest[..4]);
    u32::from_be_bytes(out)
}

/// A vote whose hash and signature have been checked; the only kind of vote
/// the state machine accepts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct VerifiedVote {
    /// The wire vote, unchanged.
    pub(crate) vote: Vote,
    /// Its owner, who signed it.
    pub(crate) owner: Address,
    /// Its `vote_hash`.
    pub(crate) hash: VoteHash,
}

impl VerifiedVote {
    /// Checks owner format, hash and signature.
    pub(crate) fn new(vote: Vote) -> Result<Self, ConsensusError> {
        let owner = address_field(&vote.vote_owner, "vote_owner")?;
        let hash = vote_hash(&vote);
        if vote.vote_hash != hash.0 {
            return Err(ConsensusError::BadVoteHash);
        }
        let signature = EthSignature::from_slice(&vote.signature)
            .map_err(|_| ConsensusError::InvalidSignature)?;
        let recovered =
            recover_personal(&signing_payload(&vote), &signature).map_err(|e| match e {
                IdentityError::HighS => ConsensusError::HighS,
                _ => ConsensusError::InvalidSignature,
            })?;
        if recovered != owner {
            return Err(ConsensusError::SignerMismatch {
                claimed: owner,
                recovered,
            });
        }
        Ok(Self { vote, owner, hash })
    }

    /// Fills in `vote_hash` and `signature` of an unsigned vote owned by `wallet`.
    pub(crate) fn sign(mut vote: Vote, wallet: &Wallet) -> Self {
        let hash = vote_hash(&vote);
        vote.vote_hash = hash.0.to_vec();
        vote.signature = wallet
            .sign_personal(&signing_payload(&vote))
            .as_bytes()
            .to_vec();
        Self {
            vote,
            owner: wallet.address(),
            hash,
        }
    }

    /// The proposal voted on.
    pub(crate) fn proposal(&self) -> ProposalId {
        ProposalId(self.vote.proposal_id)
    }
}
