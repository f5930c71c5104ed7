//! The proposals of one group, their votes and decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use demls_identity::{Address, Wallet};

use crate::buffer::{Awaiting, VoteBuffer};
use crate::proposal::{Admission, ProposalState, ShapeLimits};
use crate::signing::{self, VerifiedVote};
use crate::wire;
use crate::{
    CastVote, ConsensusError, Decision, ProposalId, ProposalOutcome, ProposalSpec, Tally,
    Timestamp, VoteOutcome,
};

/// Limits and periods. The defaults suit groups of up to a few thousand members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// Undecided proposals one owner may have at once (flood control).
    pub max_open_proposals_per_owner: usize,
    /// Proposals stored at once: open, decided and closed ones awaiting pruning.
    pub max_proposals: usize,
    /// The longest a proposal may live, creation to deadline.
    pub max_proposal_lifetime: Duration,
    /// How far in the future a received proposal's creation time may be.
    pub max_clock_skew: Duration,
    /// How long a proposal is kept after its deadline, to answer queries and
    /// recognise retransmissions.
    pub retention: Duration,
    /// Votes waiting for their proposal or for the vote they name, in total.
    pub max_buffered_votes: usize,
    /// Votes waiting, per voter.
    pub max_buffered_votes_per_voter: usize,
    /// Largest encoded proposal, votes excluded, in bytes.
    pub max_proposal_size: usize,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            max_open_proposals_per_owner: 8,
            max_proposals: 1024,
            max_proposal_lifetime: Duration::from_secs(60 * 60),
            max_clock_skew: Duration::from_secs(60),
            retention: Duration::from_secs(10 * 60),
            max_buffered_votes: 4096,
            max_buffered_votes_per_voter: 32,
            max_proposal_size: 256 * 1024,
        }
    }
}

/// The consensus state of one group: one per group and member, driven by the
/// caller (sans-IO). Time comes in as `now`; nothing happens in between calls.
///
/// Every method that returns an error leaves the state as it was.
#[derive(Clone, Debug, PartialEq)]
pub struct Consensus {
    config: ConsensusConfig,
    proposals: BTreeMap<ProposalId, ProposalState>,
    /// Closed proposals, kept until the instant they may be forgotten, so that
    /// a retransmission cannot reopen them.
    closed: BTreeMap<ProposalId, Timestamp>,
    buffer: VoteBuffer,
}

impl Consensus {
    /// An empty state.
    pub fn new(config: ConsensusConfig) -> Self {
        let buffer = VoteBuffer::new(
            config.max_buffered_votes,
            config.max_buffered_votes_per_voter,
        );
        Self {
            config,
            proposals: BTreeMap::new(),
            closed: BTreeMap::new(),
            buffer,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConsensusConfig {
        &self.config
    }

    /// Creates a proposal owned by `owner`, without votes, and returns it for
    /// broadcast. The owner votes with [`Self::cast_vote`] like anyone else.
    pub fn create_proposal(
        &mut self,
        owner: &Wallet,
        spec: ProposalSpec,
        now: Timestamp,
    ) -> Result<wire::Proposal, ConsensusError> {
        if spec.expiration <= now {
            return Err(ConsensusError::EmptyLifetime);
        }
        let local = spec.voters.len();
        let expected_voters_count =
            u32::try_from(local).map_err(|_| ConsensusError::ExpectedVotersMismatch {
                claimed: u32::MAX,
                local,
            })?;
        let mut proposal = wire::Proposal {
            name: spec.name,
            payload: spec.payload,
            proposal_id: 0,
            proposal_owner: owner.address().as_bytes().to_vec(),
            votes: Vec::new(),
            expected_voters_count,
            round: 1,
            timestamp: now.wire_secs(),
            expiration_timestamp: spec.expiration.wire_secs_ceil(),
            liveness_criteria_yes: spec.liveness_criteria_yes,
        };
        proposal.proposal_id = signing::proposal_id(&proposal).0;
        let state = ProposalState::from_wire(&proposal, spec.voters, self.shape_limits())?;
        if let Some(existing) = self.proposals.get(&state.id()) {
            return Err(if existing.same_proposal(&proposal) {
                ConsensusError::ProposalExists(state.id())
            } else {
                ConsensusError::ProposalConflict(state.id())
            });
        }
        self.check_room_for(&state, now)?;
        let created = state.wire().clone();
        self.proposals.insert(state.id(), state);
        Ok(created)
    }

    /// Takes in a proposal from the network. `voters` is the voter set the
    /// caller computed itself; the sender's `expected_voters_count` must match
    /// its size.
    ///
    /// The votes in `proposal.votes` are checked and accepted all or nothing
    /// (this is how a proposal carries evidence). A proposal already known is
    /// merged: its new votes are accepted. Buffered votes waiting for the
    /// proposal are applied after it.
    pub fn receive_proposal(
        &mut self,
        proposal: wire::Proposal,
        voters: BTreeSet<Address>,
        now: Timestamp,
    ) -> Result<ProposalOutcome, ConsensusError> {
        self.merge(proposal, voters, now, Lateness::Refused)
    }

    /// Takes in a proposal carried as evidence, for instance in a commit that
    /// applies it, even after its deadline: its votes (each dated within the
    /// proposal's life) are checked and merged as by
    /// [`Self::receive_proposal`], and if the deadline has passed at `now`
    /// the proposal is decided at once, silent voters counting as its
    /// liveness side. A member that missed a proposal and its votes can so
    /// reach the decision the committer reached, from the votes alone; a
    /// member that holds more votes than the evidence decides on all of them.
    pub fn receive_evidence(
        &mut self,
        proposal: wire::Proposal,
        voters: BTreeSet<Address>,
        now: Timestamp,
    ) -> Result<ProposalOutcome, ConsensusError> {
        self.merge(proposal, voters, now, Lateness::Decides)
    }

    fn merge(
        &mut self,
        proposal: wire::Proposal,
        voters: BTreeSet<Address>,
        now: Timestamp,
        lateness: Lateness,
    ) -> Result<ProposalOutcome, ConsensusError> {
        let id = ProposalId(proposal.proposal_id);
        let (mut candidate, is_new) = match self.proposals.get(&id) {
            Some(existing) if existing.same_proposal(&proposal) => {
                if existing.voters() != &voters {
                    return Err(ConsensusError::VotersChanged(id));
                }
                if lateness == Lateness::Refused {
                    check_open(existing, now)?;
                }
                (existing.clone(), false)
            }
            Some(_) => {
                // Report a forged id as such; a genuine 32-bit collision as a conflict.
                ProposalState::from_wire(&proposal, voters, self.shape_limits())?;
                return Err(ConsensusError::ProposalConflict(id));
            }
            None => {
                let state = ProposalState::from_wire(&proposal, voters, self.shape_limits())?;
                if lateness == Lateness::Refused {
                    check_open(&state, now)?;
                }
                self.check_room_for(&state, now)?;
                (state, true)
            }
        };
        // Retransmitted votes already accepted are skipped, not re-verified.
        let fresh = proposal
            .votes
            .iter()
            .filter(|vote| !candidate.has_exact(vote));
        let votes = verify_all(fresh)?;
        let was_decided = candidate.decision().is_some();
        let embedded = candidate.accept_all(votes)?;
        if now >= candidate.deadline() {
            candidate.expire();
        }
        self.proposals.insert(id, candidate);
        let released = self.release(id, now);
        Ok(ProposalOutcome {
            id,
            is_new,
            votes_applied: embedded + released,
            decided: self.newly_decided(id, was_decided),
        })
    }

    /// Casts `voter`'s vote on proposal `id`, accepts it locally and returns
    /// it for broadcast. Whether to vote YES is the caller's decision (after
    /// checking the payload).
    pub fn cast_vote(
        &mut self,
        id: ProposalId,
        voter: &Wallet,
        yes: bool,
        now: Timestamp,
    ) -> Result<CastVote, ConsensusError> {
        let state = self
            .proposals
            .get(&id)
            .ok_or(ConsensusError::UnknownProposal(id))?;
        check_open(state, now)?;
        let owner = voter.address();
        if !state.voters().contains(&owner) {
            return Err(ConsensusError::NotAVoter { voter: owner });
        }
        if state.has_voted(owner) {
            return Err(ConsensusError::DoubleVote { id, voter: owner });
        }
        let unsigned = wire::Vote {
            vote_id: signing::vote_id(id, owner),
            vote_owner: owner.as_bytes().to_vec(),
            proposal_id: id.0,
            // A clock behind the owner's must not date the vote before the proposal.
            timestamp: now.wire_secs().max(state.wire().timestamp),
            vote: yes,
            parent_hash: Vec::new(),
            received_hash: state.last_vote_hash().unwrap_or_default().to_vec(),
            vote_hash: Vec::new(),
            signature: Vec::new(),
        };
        let signed = VerifiedVote::sign(unsigned, voter);
        let vote = signed.vote.clone();
        let was_decided = state.decision().is_some();
        self.apply(signed, now)?;
        self.release(id, now);
        Ok(CastVote {
            vote,
            decided: self.newly_decided(id, was_decided),
        })
    }

    /// Takes in a vote from the network.
    ///
    /// A vote for a proposal not seen yet, or naming in `received_hash` a vote
    /// not seen yet, is checked as far as possible (hash, signature, and
    /// against the proposal if known) and buffered until that arrives.
    pub fn receive_vote(
        &mut self,
        vote: wire::Vote,
        now: Timestamp,
    ) -> Result<VoteOutcome, ConsensusError> {
        let vote = VerifiedVote::new(vote)?;
        let id = vote.proposal();
        let was_decided = self.decision(id).is_some();
        let outcome = self.apply(vote, now)?;
        if !matches!(outcome, VoteOutcome::Applied { .. }) {
            return Ok(outcome);
        }
        self.release(id, now);
        Ok(VoteOutcome::Applied {
            id,
            decided: self.newly_decided(id, was_decided),
        })
    }

    /// Checks a proposal carried as evidence (for instance in a commit),
    /// without the clock and without changing any state: its content, and
    /// every embedded vote, as [`Self::receive_proposal`] would. Returns the
    /// decision the votes settle before any deadline, or `None` if they
    /// settle none (a decision taken at the deadline cannot be proven by votes).
    pub fn verify_evidence(
        &self,
        proposal: &wire::Proposal,
        voters: BTreeSet<Address>,
    ) -> Result<Option<Decision>, ConsensusError> {
        let mut state = ProposalState::from_wire(proposal, voters, self.shape_limits())?;
        state.accept_all(verify_all(&proposal.votes)?)?;
        Ok(state.decision())
    }

    /// Applies the deadlines that passed at `now`: every undecided proposal
    /// whose deadline is at or before `now` is decided, silent voters counting
    /// as its `liveness_criteria_yes`. Also forgets what has outlived its
    /// retention. Returns the decisions taken, by proposal id.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Vec<(ProposalId, Decision)> {
        let decided = self
            .proposals
            .values_mut()
            .filter(|state| state.deadline() <= now)
            .filter_map(|state| state.expire().map(|decision| (state.id(), decision)))
            .collect();
        self.prune(now);
        decided
    }

    /// The next instant at which [`Self::handle_timeout`] has work: a
    /// deadline, the end of a retention, or a buffered vote's expiry.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let proposals = self.proposals.values().map(|state| match state.decision() {
            None => state.deadline(),
            Some(_) => self.forget_at(state),
        });
        proposals
            .chain(self.closed.values().copied())
            .chain(self.buffer.next_expiry())
            .min()
    }

    /// Closes proposal `id` (for instance at an epoch change): it is
    /// forgotten, its buffered votes dropped, and it cannot be received again.
    pub fn close(&mut self, id: ProposalId) -> Result<(), ConsensusError> {
        let state = self
            .proposals
            .remove(&id)
            .ok_or(ConsensusError::UnknownProposal(id))?;
        self.buffer.drop_proposal(id);
        self.closed.insert(id, self.forget_at(&state));
        Ok(())
    }

    /// The decision on proposal `id`, once taken.
    pub fn decision(&self, id: ProposalId) -> Option<Decision> {
        self.proposals.get(&id).and_then(ProposalState::decision)
    }

    /// Proposal `id` with every vote accepted so far (dependencies first):
    /// what to forward as evidence.
    pub fn proposal(&self, id: ProposalId) -> Option<&wire::Proposal> {
        self.proposals.get(&id).map(ProposalState::wire)
    }

    /// Where the vote on proposal `id` stands.
    pub fn tally(&self, id: ProposalId) -> Option<Tally> {
        self.proposals.get(&id).map(ProposalState::tally)
    }

    /// Checks a verified vote against its proposal and accepts or buffers
    /// it, without releasing the votes that wait for it.
    fn apply(&mut self, vote: VerifiedVote, now: Timestamp) -> Result<VoteOutcome, ConsensusError> {
        let id = vote.proposal();
        let Some(state) = self.proposals.get_mut(&id) else {
            if self.closed.contains_key(&id) {
                return Err(ConsensusError::ProposalClosed(id));
            }
            if self.buffer.contains(&vote.hash) {
                return Ok(VoteOutcome::Duplicate { id });
            }
            // The proposal, created at most `max_clock_skew` after the vote,
            // ends at most `max_proposal_lifetime` after that.
            let expires = now
                .saturating_add(self.config.max_proposal_lifetime)
                .saturating_add(self.config.max_clock_skew);
            self.buffer.insert(vote, Awaiting::Proposal, expires)?;
            return Ok(VoteOutcome::Buffered { id });
        };
        match state.admit(&vote)? {
            Admission::Duplicate => Ok(VoteOutcome::Duplicate { id }),
            Admission::Waiting(_) if self.buffer.contains(&vote.hash) => {
                Ok(VoteOutcome::Duplicate { id })
            }
            Admission::Waiting(hash) => {
                check_open(state, now)?;
                self.buffer
                    .insert(vote, Awaiting::Vote(hash), state.deadline())?;
                Ok(VoteOutcome::Buffered { id })
            }
            Admission::Ready => {
                check_open(state, now)?;
                let decided = state.accept(vote);
                Ok(VoteOutcome::Applied { id, decided })
            }
        }
    }

    /// Applies the buffered votes for `id` whose dependency is now met, until
    /// none is left. Returns how many were accepted. A buffered vote that
    /// turns out invalid (say, a double vote) is dropped.
    fn release(&mut self, id: ProposalId, now: Timestamp) -> usize {
        let mut accepted = 0;
        loop {
            let Some(state) = self.proposals.get(&id) else {
                return accepted;
            };
            let ready = self.buffer.take_ready(id, |awaiting| match awaiting {
                Awaiting::Proposal => true,
                Awaiting::Vote(hash) => state.knows(&hash),
            });
            if ready.is_empty() {
                return accepted;
            }
            for vote in ready {
                if let Ok(VoteOutcome::Applied { .. }) = self.apply(vote, now) {
                    accepted += 1;
                }
            }
        }
    }

    /// Forgets proposals and tombstones past their retention, and expired buffered votes.
    fn prune(&mut self, now: Timestamp) {
        let retention = self.config.retention;
        self.proposals
            .retain(|_, state| state.deadline().saturating_add(retention) > now);
        self.closed.retain(|_, forget_at| *forget_at > now);
        self.buffer.prune(now);
    }

    /// Checks that a new proposal may be stored: not closed before, not from
    /// the future, and within the flood limits.
    fn check_room_for(&self, state: &ProposalState, now: Timestamp) -> Result<(), ConsensusError> {
        let id = state.id();
        if self.closed.contains_key(&id) {
            return Err(ConsensusError::ProposalClosed(id));
        }
        if state.created() > now.saturating_add(self.config.max_clock_skew) {
            return Err(ConsensusError::ProposalFromFuture {
                created: state.created(),
                now,
            });
        }
        let owner = state.owner();
        let open_by_owner = self
            .proposals
            .values()
            .filter(|other| other.owner() == owner && other.decision().is_none())
            .count();
        if open_by_owner >= self.config.max_open_proposals_per_owner {
            return Err(ConsensusError::TooManyOpenProposals { owner });
        }
        if self.proposals.len() + self.closed.len() >= self.config.max_proposals {
            return Err(ConsensusError::TooManyProposals);
        }
        Ok(())
    }

    fn newly_decided(&self, id: ProposalId, was_decided: bool) -> Option<Decision> {
        if was_decided { None } else { self.decision(id) }
    }

    fn forget_at(&self, state: &ProposalState) -> Timestamp {
        state.deadline().saturating_add(self.config.retention)
    }

    fn shape_limits(&self) -> ShapeLimits {
        ShapeLimits {
            max_lifetime: self.config.max_proposal_lifetime,
            max_size: self.config.max_proposal_size,
        }
    }
}

/// Whether a proposal past its deadline may still be merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lateness {
    /// Live traffic: refused after the deadline.
    Refused,
    /// Evidence: merged, and decides the proposal if its deadline has passed.
    Decides,
}

/// Refuses anything for a proposal whose deadline has passed.
fn check_open(state: &ProposalState, now: Timestamp) -> Result<(), ConsensusError> {
    if now >= state.deadline() {
        return Err(ConsensusError::Expired {
            id: state.id(),
            deadline: state.deadline(),
        });
    }
    Ok(())
}

/// Checks the hash and signature of every vote.
fn verify_all<'a>(
    votes: impl IntoIterator<Item = &'a wire::Vote>,
) -> Result<Vec<VerifiedVote>, ConsensusError> {
    votes.into_iter().cloned().map(VerifiedVote::new).collect()
}
