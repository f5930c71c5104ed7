//! The state of one proposal: its header, its voters, the votes accepted so
//! far and the decision.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use demls_identity::Address;
use prost::Message;

use crate::rule::{self, Counts};
use crate::signing::{self, VerifiedVote};
use crate::wire;
use crate::{ConsensusError, Decision, ProposalId, Tally, Timestamp, VoteHash};

/// Limits on a proposal's shape, from [`crate::ConsensusConfig`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShapeLimits {
    pub(crate) max_lifetime: Duration,
    pub(crate) max_size: usize,
}

/// Where a checked vote can go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Already accepted.
    Duplicate,
    /// Can be accepted now.
    Ready,
    /// Valid so far, but names in `received_hash` a vote not accepted yet.
    Waiting(VoteHash),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProposalState {
    /// The proposal as it goes on the wire; `votes` holds the accepted votes,
    /// each after the vote its `received_hash` names.
    wire: wire::Proposal,
    id: ProposalId,
    owner: Address,
    voters: BTreeSet<Address>,
    created: Timestamp,
    deadline: Timestamp,
    /// The vote of each voter heard from.
    ballots: BTreeMap<Address, VoteHash>,
    /// The accepted votes: hash to position in `wire.votes`.
    index: BTreeMap<VoteHash, usize>,
    yes: u32,
    no: u32,
    decision: Option<Decision>,
}

impl ProposalState {
    /// Checks everything about `proposal` that does not depend on the clock
    /// (owner, id, voter count, lifetime, size) and builds a state without votes.
    pub(crate) fn from_wire(
        proposal: &wire::Proposal,
        voters: BTreeSet<Address>,
        limits: ShapeLimits,
    ) -> Result<Self, ConsensusError> {
        let mut header = signing::content(proposal);
        header.round = 1;
        let size = header.encoded_len();
        if size > limits.max_size {
            return Err(ConsensusError::ProposalTooLarge {
                size,
                max: limits.max_size,
            });
        }
        let owner = signing::address_field(&header.proposal_owner, "proposal_owner")?;
        if voters.is_empty() {
            return Err(ConsensusError::NoVoters);
        }
        if usize::try_from(header.expected_voters_count).ok() != Some(voters.len()) {
            return Err(ConsensusError::ExpectedVotersMismatch {
                claimed: header.expected_voters_count,
                local: voters.len(),
            });
        }
        let id = ProposalId(header.proposal_id);
        let derived = signing::proposal_id(&header);
        if id != derived {
            return Err(ConsensusError::ProposalIdMismatch {
                claimed: id,
                derived,
            });
        }
        let created = Timestamp::from_wire_secs(header.timestamp);
        let deadline = Timestamp::from_wire_secs(header.expiration_timestamp);
        if deadline <= created {
            return Err(ConsensusError::EmptyLifetime);
        }
        let lifetime = deadline.saturating_since(created);
        if lifetime > limits.max_lifetime {
            return Err(ConsensusError::LifetimeTooLong {
                lifetime,
                max: limits.max_lifetime,
            });
        }
        Ok(Self {
            wire: header,
            id,
            owner,
            voters,
            created,
            deadline,
            ballots: BTreeMap::new(),
            index: BTreeMap::new(),
            yes: 0,
            no: 0,
            decision: None,
        })
    }

    /// Checks a verified vote against this proposal, without the clock.
    pub(crate) fn admit(&self, vote: &VerifiedVote) -> Result<Admission, ConsensusError> {
        if self.knows(&vote.hash) {
            return Ok(Admission::Duplicate);
        }
        if vote.proposal() != self.id {
            return Err(ConsensusError::WrongProposal {
                vote: vote.proposal(),
                proposal: self.id,
            });
        }
        if !self.voters.contains(&vote.owner) {
            return Err(ConsensusError::NotAVoter { voter: vote.owner });
        }
        if vote.vote.timestamp < self.wire.timestamp {
            return Err(ConsensusError::VoteBeforeProposal {
                vote_secs: vote.vote.timestamp,
                created_secs: self.wire.timestamp,
            });
        }
        if vote.vote.timestamp > self.wire.expiration_timestamp {
            return Err(ConsensusError::VoteAfterExpiration {
                vote_secs: vote.vote.timestamp,
                expiration_secs: self.wire.expiration_timestamp,
            });
        }
        if self.ballots.contains_key(&vote.owner) {
            return Err(ConsensusError::DoubleVote {
                id: self.id,
                voter: vote.owner,
            });
        }
        // The owner has no vote here, so a parent_hash names nothing valid
        // (and a voter who votes once never sets one).
        if !vote.vote.parent_hash.is_empty() {
            return Err(ConsensusError::ParentHashMismatch);
        }
        if vote.vote.received_hash.is_empty() {
            return Ok(Admission::Ready);
        }
        match VoteHash::from_slice(&vote.vote.received_hash) {
            Some(hash) if self.knows(&hash) => Ok(Admission::Ready),
            Some(hash) => Ok(Admission::Waiting(hash)),
            None => Err(ConsensusError::DanglingReceivedHash),
        }
    }

    /// Accepts a vote that [`Self::admit`] found `Ready`. Returns the decision
    /// if this vote took it.
    pub(crate) fn accept(&mut self, vote: VerifiedVote) -> Option<Decision> {
        self.ballots.insert(vote.owner, vote.hash);
        self.index.insert(vote.hash, self.wire.votes.len());
        if vote.vote.vote {
            self.yes += 1;
        } else {
            self.no += 1;
        }
        self.wire.votes.push(vote.vote);
        self.wire.round = self.wire.round.saturating_add(1);
        if self.decision.is_some() {
            return None;
        }
        self.decision = rule::decide_early(self.counts());
        self.decision
    }

    /// Accepts a set of votes all or nothing, in whatever order their
    /// `received_hash` links allow. Returns how many were new.
    pub(crate) fn accept_all(&mut self, votes: Vec<VerifiedVote>) -> Result<usize, ConsensusError> {
        let mut waiting = votes;
        let mut accepted = 0;
        loop {
            let before = waiting.len();
            let mut still_waiting = Vec::new();
            for vote in waiting {
                match self.admit(&vote)? {
                    Admission::Duplicate => {}
                    Admission::Ready => {
                        self.accept(vote);
                        accepted += 1;
                    }
                    Admission::Waiting(_) => still_waiting.push(vote),
                }
            }
            waiting = still_waiting;
            if waiting.is_empty() {
                return Ok(accepted);
            }
            if waiting.len() == before {
                return Err(ConsensusError::DanglingReceivedHash);
            }
        }
    }

    /// Takes the decision at the deadline, if not taken yet. Returns it if taken now.
    pub(crate) fn expire(&mut self) -> Option<Decision> {
        if self.decision.is_some() {
            return None;
        }
        let decision = rule::decide_final(self.counts());
        self.decision = Some(decision);
        Some(decision)
    }

    /// Whether `other` is this proposal (same content; votes and round aside).
    pub(crate) fn same_proposal(&self, other: &wire::Proposal) -> bool {
        signing::content(other) == signing::content(&self.wire)
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            yes: self.yes,
            no: self.no,
            expected: self.wire.expected_voters_count,
            liveness_criteria_yes: self.wire.liveness_criteria_yes,
        }
    }

    pub(crate) fn tally(&self) -> Tally {
        Tally {
            yes: self.yes,
            no: self.no,
            expected: self.wire.expected_voters_count,
            liveness_criteria_yes: self.wire.liveness_criteria_yes,
            deadline: self.deadline,
            decision: self.decision,
        }
    }

    pub(crate) fn wire(&self) -> &wire::Proposal {
        &self.wire
    }

    pub(crate) fn id(&self) -> ProposalId {
        self.id
    }

    pub(crate) fn owner(&self) -> Address {
        self.owner
    }

    pub(crate) fn voters(&self) -> &BTreeSet<Address> {
        &self.voters
    }

    pub(crate) fn created(&self) -> Timestamp {
        self.created
    }

    pub(crate) fn deadline(&self) -> Timestamp {
        self.deadline
    }

    pub(crate) fn decision(&self) -> Option<Decision> {
        self.decision
    }

    /// Whether the vote with this hash was accepted.
    pub(crate) fn knows(&self, hash: &VoteHash) -> bool {
        self.index.contains_key(hash)
    }

    /// Whether `vote` is, byte for byte, a vote already accepted (so checking
    /// its signature again would be wasted work).
    pub(crate) fn has_exact(&self, vote: &wire::Vote) -> bool {
        VoteHash::from_slice(&vote.vote_hash)
            .and_then(|hash| self.index.get(&hash))
            .is_some_and(|&position| self.wire.votes.get(position) == Some(vote))
    }

    pub(crate) fn has_voted(&self, voter: Address) -> bool {
        self.ballots.contains_key(&voter)
    }

    /// The hash of the last vote accepted: the `received_hash` of our next vote.
    pub(crate) fn last_vote_hash(&self) -> Option<&[u8]> {
        self.wire.votes.last().map(|vote| vote.vote_hash.as_slice())
    }
}
