//! Everything that belongs to one epoch of one group: its MLS state, its
//! votes, and what this member saw happen in it.
//!
//! The current epoch's state is live; the state of recent past epochs is kept
//! whole (as it was just before their commit), so that a competing commit for
//! an earlier epoch, or evidence about one, can be checked exactly as it
//! would have been then.

use std::collections::{BTreeMap, BTreeSet};

use demls_consensus::{Consensus, Decision, ProposalId, rule};
use demls_identity::{Address, WalletBinding};
use sha2::{Digest, Sha256};

use crate::change::Change;
use crate::mls::{GroupParamsExt, MlsGroup};
use crate::motion::{Evidence, Motion};
use crate::{ChangeKind, EngineError, Epoch, StewardMode, Timestamp, roles};

/// A voting proposal of the epoch.
#[derive(Clone)]
pub(crate) struct OpenProposal {
    pub(crate) owner: Address,
    pub(crate) motion: Motion,
    pub(crate) deadline: Timestamp,
    /// YES or NO once decided, and when this member decided it.
    pub(crate) decided: Option<(bool, Timestamp)>,
    pub(crate) voted: bool,
    /// When this member last sent its part (the proposal, or its vote), and how often.
    pub(crate) sent: Option<(Timestamp, u8)>,
    /// When this member first saw it.
    pub(crate) opened_at: Timestamp,
    /// When this member will vote on it (a vote that waits for evidence to show).
    pub(crate) vote_at: Option<Timestamp>,
    /// As owner: late traffic suggests someone lacks votes; send them all again.
    pub(crate) nudged: bool,
    /// The outcome its creator was scored for here, if it is an emergency (see
    /// [`GroupSession::score_emergencies`]).
    ///
    /// [`GroupSession::score_emergencies`]: crate::session::GroupSession::score_emergencies
    pub(crate) creator_scored: Option<bool>,
}

impl OpenProposal {
    /// A proposal as first seen: undecided, not voted, nothing sent.
    pub(crate) fn new(owner: Address, motion: Motion, deadline: Timestamp, now: Timestamp) -> Self {
        Self {
            owner,
            motion,
            deadline,
            decided: None,
            voted: false,
            sent: None,
            opened_at: now,
            nudged: false,
            vote_at: None,
            creator_scored: None,
        }
    }

    pub(crate) fn kind(&self) -> ChangeKind {
        self.motion.kind(self.owner)
    }
}

/// A commit for this epoch that this member could read and check.
#[derive(Clone)]
pub(crate) struct SeenCommit {
    pub(crate) committer: Address,
    pub(crate) bytes: Vec<u8>,
    /// What it changes, in a canonical order.
    pub(crate) applied: Vec<ChangeKind>,
    pub(crate) seen_at: Timestamp,
}

/// One epoch of one group.
#[derive(Clone)]
pub(crate) struct EpochState {
    pub(crate) mls: MlsGroup,
    pub(crate) params: GroupParamsExt,
    pub(crate) mode: StewardMode,
    /// Who may join.
    pub(crate) policy: demls_policy::AdmissionPolicy,
    /// Who may join without an invitation, and how long membership votes last.
    pub(crate) rules: crate::rules::Rules,
    pub(crate) consensus: Consensus,
    pub(crate) open: BTreeMap<ProposalId, OpenProposal>,
    /// Approved proposals, in the order this member decided them.
    pub(crate) approved: Vec<ProposalId>,
    /// Proposals each member opened in this epoch (the RFC's rate limit).
    proposals_by_owner: BTreeMap<Address, u16>,
    /// Members' addresses by leaf index.
    pub(crate) leaves: Vec<Option<Address>>,
    /// The same addresses as a set: `is_member` is asked for every entry of the
    /// per-member maps at each epoch, and a scan of `leaves` made that quadratic
    /// (about 150 ms a commit at 10,000 members).
    member_set: BTreeSet<Address>,
    /// When this member entered the epoch.
    pub(crate) started_at: Timestamp,
    /// Valid commits seen for this epoch (the one applied among them).
    pub(crate) commits: Vec<SeenCommit>,
    /// When this member last received an application message from each member in this epoch.
    pub(crate) heard_at: BTreeMap<Address, Timestamp>,
    /// Stewards whose score paid, in this epoch, for a proposal they sent in another
    /// member's name (counted once per epoch: see [`GroupSession::false_claim`]).
    ///
    /// [`GroupSession::false_claim`]: crate::session::GroupSession::false_claim
    pub(crate) false_claims: BTreeSet<Address>,
    /// This epoch's state holding this member's own MLS Update proposal, once it sent one:
    /// commits are processed in a copy of it (see [`crate::rotation`]).
    pub(crate) own_update: Option<Box<MlsGroup>>,
}

impl EpochState {
    /// The state of a group's current epoch, read from its MLS state.
    pub(crate) fn new(mls: MlsGroup, now: Timestamp) -> Result<Self, EngineError> {
        let params = mls
            .context()
            .extensions
            .get_as::<GroupParamsExt>()
            .map_err(|e| EngineError::Mls(e.to_string()))?
            .ok_or_else(|| EngineError::Mls("group has no demls parameters".into()))?;
        let policy = demls_policy::AdmissionPolicy::decode(&params.admission)
            .map_err(|e| EngineError::Mls(format!("admission policy: {e}")))?;
        let rules = crate::rules::Rules::read(&mls.context().extensions)?;
        let mode = StewardMode::from_byte(params.mode)
            .ok_or_else(|| EngineError::Mls(format!("unknown steward mode {}", params.mode)))?;
        let mut leaves = Vec::new();
        for member in mls.roster().members_iter() {
            let index = member.index as usize;
            if leaves.len() <= index {
                leaves.resize(index + 1, None);
            }
            // Bindings were verified when each member was added; here they are only read.
            leaves[index] = member
                .signing_identity
                .credential
                .as_basic()
                .and_then(|basic| WalletBinding::decode(basic.identifier()).ok())
                .map(|binding| binding.address());
        }
        Ok(Self {
            mls,
            params,
            mode,
            policy,
            rules,
            consensus: Consensus::new(crate::rules::consensus_config()),
            open: BTreeMap::new(),
            approved: Vec::new(),
            proposals_by_owner: BTreeMap::new(),
            member_set: leaves.iter().flatten().copied().collect(),
            leaves,
            started_at: now,
            commits: Vec::new(),
            heard_at: BTreeMap::new(),
            false_claims: BTreeSet::new(),
            own_update: None,
        })
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.mls.current_epoch()
    }

    pub(crate) fn address_at(&self, index: u32) -> Option<Address> {
        self.leaves.get(index as usize).copied().flatten()
    }

    pub(crate) fn members(&self) -> Vec<Address> {
        self.leaves.iter().flatten().copied().collect()
    }

    /// Whether `owner` may open another proposal in this epoch: the RFC's rate limit,
    /// for this member's own proposals and for those it receives alike.
    pub(crate) fn may_propose(&self, owner: Address) -> bool {
        self.proposals_by_owner.get(&owner).copied().unwrap_or(0)
            < self.params.max_proposals_per_member
    }

    /// `owner` opened a proposal in this epoch.
    pub(crate) fn count_proposal(&mut self, owner: Address) {
        *self.proposals_by_owner.entry(owner).or_default() += 1;
    }

    pub(crate) fn is_member(&self, address: &Address) -> bool {
        self.member_set.contains(address)
    }

    /// The steward list as elected (some may have left since).
    pub(crate) fn steward_list(&self) -> Vec<Address> {
        self.params
            .stewards
            .iter()
            .map(|a| Address::new(*a))
            .collect()
    }

    /// The list's stewards that are still members.
    pub(crate) fn stewards_in_office(&self) -> Vec<Address> {
        self.steward_list()
            .into_iter()
            .filter(|s| self.is_member(s))
            .collect()
    }

    /// The MLS epoch authenticator.
    pub(crate) fn authenticator(&self) -> Vec<u8> {
        self.mls
            .epoch_authenticator()
            .map(|s| s.to_vec())
            .unwrap_or_default()
    }

    /// This epoch's branch mark: equal on two members exactly when they share its secrets.
    pub(crate) fn branch(&self) -> Vec<u8> {
        branch_mark(&self.mls)
    }

    // ----- decisions of the epoch -----

    /// Whether a proposal is approved: by vote, or for a leave or a self-update by its
    /// owner's signed YES.
    pub(crate) fn approval(&self, id: ProposalId) -> Option<bool> {
        let open = self.open.get(&id)?;
        if let ChangeKind::Leave(owner) | ChangeKind::Update(owner) = open.kind() {
            let owner_yes = self.consensus.proposal(id).is_some_and(|p| {
                p.votes
                    .iter()
                    .any(|v| v.vote && v.vote_owner.as_slice() == owner.as_bytes())
            });
            return Some(owner_yes);
        }
        // An early decision is final; one taken at the deadline is re-read on
        // every vote received since (each dated within the proposal's life),
        // so that members who lost votes come round to the decision on all of them.
        let tally = self.consensus.tally(id)?;
        tally.decision?;
        let counts = rule::Counts {
            yes: tally.yes,
            no: tally.no,
            expected: tally.expected,
            liveness_criteria_yes: tally.liveness_criteria_yes,
        };
        let decision = rule::decide_early(counts).unwrap_or_else(|| rule::decide_final(counts));
        Some(decision == Decision::Yes)
    }

    /// Approved motions of the epoch, in decision order.
    pub(crate) fn approved_motions(&self) -> impl Iterator<Item = (ProposalId, &OpenProposal)> {
        self.approved
            .iter()
            .filter_map(|id| self.open.get(id).map(|o| (*id, o)))
    }

    /// Whether a proposal of the epoch is still undecided.
    pub(crate) fn has_undecided(&self) -> bool {
        self.open.values().any(|o| o.decided.is_none())
    }

    /// Whether an undecided proposal outranks `motion`.
    pub(crate) fn outranked(&self, motion: &Motion) -> bool {
        self.open
            .values()
            .any(|o| o.decided.is_none() && o.motion.priority() > motion.priority())
    }

    /// Whether an emergency is open and undecided: the partial freeze, in which elections
    /// and membership changes wait.
    pub(crate) fn frozen(&self) -> bool {
        self.open
            .values()
            .any(|o| o.decided.is_none() && matches!(o.motion, Motion::Emergency(_)))
    }

    /// When the first change of the epoch was due for a commit: when it was approved, or
    /// for a self-update [`crate::rotation::UPDATE_BATCH_MS`] later (updates wait to go
    /// several in one commit).
    pub(crate) fn first_approval(&self) -> Option<Timestamp> {
        self.approved_motions()
            .filter(|(_, o)| worth_a_commit(&o.motion))
            .filter_map(|(_, o)| {
                let (_, at) = o.decided?;
                Some(match o.motion {
                    Motion::Change(Change::Update { .. }) => {
                        at.plus_ms(crate::rotation::UPDATE_BATCH_MS)
                    }
                    _ => at,
                })
            })
            .min()
    }

    /// Whether approved changes wait for a commit.
    pub(crate) fn commit_wanted(&self) -> bool {
        self.approved_motions()
            .any(|(_, o)| worth_a_commit(&o.motion))
    }

    /// Members voted out (or leaving) in this epoch, and stewards found misbehaving.
    pub(crate) fn departing(&self) -> BTreeSet<Address> {
        self.approved_motions()
            .filter_map(|(_, o)| match o.kind() {
                ChangeKind::Remove(a) | ChangeKind::Leave(a) | ChangeKind::Readd(a) => Some(a),
                ChangeKind::Emergency { offender, .. } => offender,
                ChangeKind::Add(_) | ChangeKind::Update(_) | ChangeKind::Election { .. } => None,
            })
            .collect()
    }

    /// Whether any member may commit (an approved deadlock emergency).
    pub(crate) fn deadlocked(&self) -> bool {
        self.approved_motions().any(
            |(_, o)| matches!(&o.motion, Motion::Emergency(e) if e.evidence == Evidence::Deadlock),
        )
    }

    /// The latest approved re-election of this epoch, if any.
    pub(crate) fn approved_reelection(&self) -> Option<(u32, Vec<Address>)> {
        self.approved_motions()
            .filter_map(|(_, o)| match &o.motion {
                Motion::Election(e) if e.retry_round > 0 => {
                    Some((e.retry_round, e.stewards.clone()))
                }
                _ => None,
            })
            .max_by_key(|(round, _)| *round)
    }

    /// Re-elections approved in this epoch (the highest retry round). A round voted down
    /// is not used up: its voters did not see the list silent, and it is proposed again
    /// once they do.
    pub(crate) fn reelections(&self) -> u32 {
        self.approved_reelection().map_or(0, |(round, _)| round)
    }

    /// Who commits, in order: the epoch steward first, then its backups.
    /// After a re-election, the new list; after a deadlock, every member.
    pub(crate) fn committers(&self) -> Vec<Address> {
        let departing = self.departing();
        let gone = |a: &Address| !self.is_member(a) || departing.contains(a);
        if self.deadlocked() {
            let mut everyone: Vec<Address> =
                self.members().into_iter().filter(|a| !gone(a)).collect();
            everyone.sort();
            return everyone;
        }
        if let Some((_, list)) = self.approved_reelection() {
            return roles::commit_order(&list, 0, 0, gone);
        }
        roles::commit_order(
            &self.steward_list(),
            self.params.election_epoch,
            self.epoch(),
            gone,
        )
    }

    /// Whether `committer` may commit in this epoch: any steward in office not
    /// departing, a steward of an approved re-election, anyone after a deadlock.
    pub(crate) fn may_commit(&self, committer: &Address) -> bool {
        if self.departing().contains(committer) || !self.is_member(committer) {
            return false;
        }
        self.deadlocked()
            || self.stewards_in_office().contains(committer)
            || self
                .approved_reelection()
                .is_some_and(|(_, list)| list.contains(committer))
    }

    /// How long a vote on `motion` opened at `now` lasts, and whether silent voters count
    /// as YES at its end.
    pub(crate) fn terms(&self, motion: &Motion, now: Timestamp) -> (Timestamp, bool) {
        let protocol_deadline = now.plus_ms(u64::from(self.params.vote_timeout_secs) * 1000);
        match motion {
            // Adding or removing someone is the members' decision: they get time to
            // make it, and silence never decides it.
            Motion::Change(Change::Add { replace: false, .. } | Change::Remove { .. }) => {
                (self.rules.membership_deadline(now), false)
            }
            // Removing a steward (or unblocking a list) takes explicit support; a
            // self-update is approved by its owner's YES alone.
            Motion::Emergency(_) | Motion::Change(Change::Update { .. }) => {
                (protocol_deadline, false)
            }
            // Re-adding a member that lost its state, and electing the list every member
            // computes, keep the group live: the group's liveness default applies.
            Motion::Change(Change::Add { replace: true, .. }) | Motion::Election(_) => {
                (protocol_deadline, self.params.liveness_yes)
            }
        }
    }

    /// Checks that a received proposal counts silence as the group's rules say for its kind
    /// (its owner sets the flag; a flipped one would let silence decide).
    pub(crate) fn check_terms(
        &self,
        motion: &Motion,
        proposal: &demls_consensus::wire::Proposal,
    ) -> Result<(), EngineError> {
        let (_, liveness) = self.terms(motion, Timestamp::default());
        if proposal.liveness_criteria_yes == liveness {
            Ok(())
        } else {
            Err(EngineError::InvalidProposal(format!(
                "silence must count as {} on this proposal",
                if liveness { "YES" } else { "NO" }
            )))
        }
    }

    /// The voters of a motion by `owner`: everyone, except for membership changes in
    /// small-consensus groups (the stewards in office), where a member leaving or updating
    /// is a voter too (its own signed YES is the approval of its leave or update).
    pub(crate) fn voters(&self, motion: &Motion, owner: Address) -> BTreeSet<Address> {
        match (self.mode, motion) {
            (StewardMode::Small, Motion::Change(change)) => {
                let mut voters: BTreeSet<Address> = self.stewards_in_office().into_iter().collect();
                if matches!(change, Change::Remove { target } if *target == owner)
                    || matches!(change, Change::Update { .. })
                {
                    voters.insert(owner);
                }
                voters
            }
            _ => self.members().into_iter().collect(),
        }
    }

    /// Whether an election is due: the list is used up or too short.
    pub(crate) fn election_due(&self) -> bool {
        if self.mode == StewardMode::Single {
            return false;
        }
        let in_office = self.stewards_in_office().len();
        let wanted = usize::from(self.params.sn_min).min(self.members().len());
        roles::list_used_up(
            &self.steward_list(),
            self.params.election_epoch,
            self.epoch(),
        ) || in_office < wanted
    }

    /// The list an election in this epoch must propose for `retry_round`.
    pub(crate) fn expected_list(&self, retry_round: u32, group_id: &[u8]) -> Vec<Address> {
        let mut candidates = self.members();
        if retry_round > 0 {
            // Layer 2 re-elects among eligible members: not those whose removal is approved.
            let departing = self.departing();
            candidates.retain(|member| !departing.contains(member));
        }
        roles::elect(
            self.epoch(),
            retry_round,
            &candidates,
            group_id,
            self.params.sn_min,
            self.params.sn_max,
        )
    }

    /// Takes a proposal carried as evidence (with its votes) into this
    /// epoch's votes, even past its deadline.
    pub(crate) fn merge_evidence(
        &mut self,
        proposal: demls_consensus::wire::Proposal,
        now: Timestamp,
    ) -> Result<ProposalId, EngineError> {
        let owner = Address::from_slice(&proposal.proposal_owner)
            .ok_or_else(|| EngineError::Malformed("proposal owner is not an address".into()))?;
        let motion = Motion::decode(&proposal.name, &proposal.payload, self.typed_epoch())?;
        self.check_terms(&motion, &proposal)?;
        let deadline =
            demls_consensus::Timestamp::from_wire_secs(proposal.expiration_timestamp).into();
        let voters = self.voters(&motion, owner);
        let outcome = self
            .consensus
            .receive_evidence(proposal, voters, now.into())?;
        self.open
            .entry(outcome.id)
            .or_insert(OpenProposal::new(owner, motion, deadline, now));
        self.record_decision(outcome.id, now);
        Ok(outcome.id)
    }

    /// Records a proposal's decision the first time it is known; returns it then.
    /// Records a proposal's decision when it is first known, or when late
    /// votes turn a deadline decision round; returns it then.
    pub(crate) fn record_decision(&mut self, id: ProposalId, now: Timestamp) -> Option<bool> {
        let approved = self.approval(id)?;
        let open = self.open.get_mut(&id)?;
        if open.decided.is_some_and(|(was, _)| was == approved) {
            return None;
        }
        open.decided = Some((approved, now));
        self.approved.retain(|a| *a != id);
        if approved {
            self.approved.push(id);
        }
        Some(approved)
    }

    /// The epoch number, typed.
    pub(crate) fn typed_epoch(&self) -> Epoch {
        Epoch(self.epoch())
    }
}

/// Whether an approved motion needs a commit: membership changes and removals
/// of offenders do; an election waits for the next commit, a deadlock only
/// unblocks committing.
pub(crate) fn worth_a_commit(motion: &Motion) -> bool {
    match motion {
        Motion::Change(_) => true,
        Motion::Emergency(e) => e.offender.is_some(),
        Motion::Election(_) => false,
    }
}

/// The branch mark of `mls`'s epoch: `SHA256("demls/branch/v1" || epoch authenticator)`.
pub(crate) fn branch_mark(mls: &MlsGroup) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(b"demls/branch/v1");
    hasher.update(
        mls.epoch_authenticator()
            .map(|s| s.to_vec())
            .unwrap_or_default(),
    );
    hasher.finalize().to_vec()
}
