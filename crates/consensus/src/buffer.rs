//! Votes that arrived before what they depend on: their proposal, or the vote
//! their `received_hash` names. The network reorders; these wait, bounded in
//! number and in time, and are applied when the dependency arrives.

use std::collections::BTreeMap;

use demls_identity::Address;

use crate::signing::VerifiedVote;
use crate::{ConsensusError, ProposalId, Timestamp, VoteHash};

/// What a buffered vote waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Awaiting {
    /// Its proposal.
    Proposal,
    /// The vote, in its (known) proposal, that its `received_hash` names.
    Vote(VoteHash),
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    vote: VerifiedVote,
    awaiting: Awaiting,
    expires: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct VoteBuffer {
    /// Keyed by the vote's own hash, which makes retransmissions idempotent.
    entries: BTreeMap<VoteHash, Entry>,
    per_voter: BTreeMap<Address, usize>,
    max_total: usize,
    max_per_voter: usize,
}

impl VoteBuffer {
    pub(crate) fn new(max_total: usize, max_per_voter: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            per_voter: BTreeMap::new(),
            max_total,
            max_per_voter,
        }
    }

    pub(crate) fn contains(&self, hash: &VoteHash) -> bool {
        self.entries.contains_key(hash)
    }

    /// Buffers a vote until `expires`.
    pub(crate) fn insert(
        &mut self,
        vote: VerifiedVote,
        awaiting: Awaiting,
        expires: Timestamp,
    ) -> Result<(), ConsensusError> {
        let mine = self.per_voter.get(&vote.owner).copied().unwrap_or(0);
        if self.entries.len() >= self.max_total || mine >= self.max_per_voter {
            return Err(ConsensusError::BufferFull);
        }
        self.per_voter.insert(vote.owner, mine + 1);
        self.entries.insert(
            vote.hash,
            Entry {
                vote,
                awaiting,
                expires,
            },
        );
        Ok(())
    }

    /// Removes and returns the votes for `id` whose dependency `is_met`.
    pub(crate) fn take_ready(
        &mut self,
        id: ProposalId,
        is_met: impl Fn(Awaiting) -> bool,
    ) -> Vec<VerifiedVote> {
        self.take(|entry| entry.vote.proposal() == id && is_met(entry.awaiting))
    }

    /// Drops every vote for `id`.
    pub(crate) fn drop_proposal(&mut self, id: ProposalId) {
        self.take(|entry| entry.vote.proposal() == id);
    }

    /// Drops the votes that expired at `now`.
    pub(crate) fn prune(&mut self, now: Timestamp) {
        self.take(|entry| entry.expires <= now);
    }

    /// When the next buffered vote expires.
    pub(crate) fn next_expiry(&self) -> Option<Timestamp> {
        self.entries.values().map(|entry| entry.expires).min()
    }

    fn take(&mut self, mut select: impl FnMut(&Entry) -> bool) -> Vec<VerifiedVote> {
        let taken: Vec<VerifiedVote> = self
            .entries
            .extract_if(.., |_, entry| select(entry))
            .map(|(_, entry)| entry.vote)
            .collect();
        for vote in &taken {
            if let Some(count) = self.per_voter.get_mut(&vote.owner) {
                *count -= 1;
                if *count == 0 {
                    self.per_voter.remove(&vote.owner);
                }
            }
        }
        taken
    }
}
