//! Proposals and votes: opening them, judging them, and reacting to decisions.

use demls_consensus::{ProposalId, ProposalSpec, wire};
use demls_identity::Address;
use mls_rs::group::ReceivedMessage;

use crate::change::{Change, key_package_of};
use crate::context::Ctx;
use crate::epoch::OpenProposal;
use crate::motion::{Election, Motion};
use crate::session::GroupSession;
use crate::wire::app_message;
use crate::{ChangeKind, EngineError, Event, JoinRule, StewardMode, Timestamp, VotePolicy};

/// What this member thinks of a proposal.
pub(crate) enum Judgement {
    Yes,
    No(String),
    /// This member cannot check it (it was not there to see): it stays silent.
    Abstain,
}

impl GroupSession {
    /// Asks the group for `motion`: proposed now, or later if this member is
    /// over its rate limit or a higher-priority vote is open.
    pub(crate) fn request(&mut self, motion: Motion, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if !self.ballot.ask(motion) {
            return Ok(());
        }
        self.propose_own(ctx)
    }

    /// Opens a proposal for each own motion that has none in this epoch, highest
    /// priority first, holding back what a higher-priority open vote outranks.
    pub(crate) fn propose_own(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        for (index, motion) in self.ballot.unproposed() {
            if self.state.outranked(&motion) || self.already_open(&motion) {
                continue;
            }
            if !self.state.may_propose(me) {
                break;
            }
            let id = self.open_proposal(motion, ctx)?;
            self.ballot.proposed(index, id);
        }
        Ok(())
    }

    /// Whether someone already has an undecided or approved proposal for the same thing
    /// (for a self-update: this member).
    pub(crate) fn already_open(&self, motion: &Motion) -> bool {
        let own_only = matches!(motion, Motion::Change(Change::Update { .. }));
        self.state.open.values().any(|o| {
            o.motion.same_as(motion)
                && (!own_only || o.owner == self.me)
                && o.decided.is_none_or(|(approved, _)| approved)
        })
    }

    fn open_proposal(
        &mut self,
        motion: Motion,
        ctx: &mut Ctx<'_>,
    ) -> Result<ProposalId, EngineError> {
        let motion = self.with_fresh_update(motion)?;
        let (deadline, liveness_criteria_yes) = self.state.terms(&motion, ctx.now);
        let spec = ProposalSpec {
            name: motion.name().to_owned(),
            payload: motion.encode(self.epoch())?,
            voters: self.state.voters(&motion, ctx.wallet.address()),
            expiration: deadline.into(),
            liveness_criteria_yes,
        };
        let proposal =
            self.state
                .consensus
                .create_proposal(ctx.wallet, spec.clone(), ctx.now.into())?;
        let id = ProposalId(proposal.proposal_id);
        let me = ctx.wallet.address();
        self.state.count_proposal(me);
        self.buffer_key_package(&motion)?;
        let mut open = OpenProposal::new(me, motion, deadline, ctx.now);
        open.sent = Some((ctx.now, 0));
        let kind = open.kind();
        self.state.open.insert(id, open);
        ctx.emit(Event::ProposalOpened {
            group: self.id.clone(),
            proposal: id,
            owner: me,
            change: kind,
            deadline,
        });
        // The owner votes YES on what it asks for if it is a voter, and the vote travels
        // inside the proposal. Opening a join request is not a YES: the owner (the steward
        // that took the request in) consents as any member would.
        let owner_yes = match self.state.open.get(&id).map(|o| &o.motion) {
            Some(Motion::Change(Change::Add { replace: false, .. })) => {
                matches!(self.consent(id, ctx), Judgement::Yes)
            }
            _ => true,
        };
        if spec.voters.contains(&me) && owner_yes {
            self.state
                .consensus
                .cast_vote(id, ctx.wallet, true, ctx.now.into())?;
            if let Some(open) = self.state.open.get_mut(&id) {
                open.voted = true;
            }
            ctx.emit(Event::VoteRecorded {
                group: self.id.clone(),
                proposal: id,
                voter: me,
                yes: true,
            });
        }
        let with_vote = self
            .state
            .consensus
            .proposal(id)
            .cloned()
            .unwrap_or(proposal);
        self.send_app(app_message::Body::Proposal(with_vote), ctx)?;
        self.check_decision(id, ctx)?;
        Ok(id)
    }

    /// A proposal received from member `sender`.
    pub(crate) fn receive_proposal(
        &mut self,
        sender: Address,
        proposal: wire::Proposal,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let owner = Address::from_slice(&proposal.proposal_owner)
            .ok_or_else(|| EngineError::Malformed("proposal owner is not an address".into()))?;
        if owner != sender {
            self.false_claim(sender, &ctx.config.scoring);
            return Err(EngineError::SenderMismatch {
                sender,
                claimed: owner,
            });
        }
        let motion = Motion::decode(&proposal.name, &proposal.payload, self.epoch())?;
        self.state.check_terms(&motion, &proposal)?;
        let id = ProposalId(proposal.proposal_id);
        if self.state.open.contains_key(&id) {
            // Sent again (the owner re-broadcasts): take in the votes it carries,
            // even past the deadline, as long as each was cast within the proposal's life.
            // If the owner lacks this member's vote, it is sent again: an owner still
            // undecided after the others decided would otherwise wait for its deadline.
            let me = ctx.wallet.address();
            let owner_lacks_mine = !proposal.votes.iter().any(|v| v.vote_owner == me.as_bytes())
                && self.has_voted(id, me);
            if owner_lacks_mine && let Some(open) = self.state.open.get_mut(&id) {
                open.nudged = true;
            }
            let voters = self.state.voters(&motion, owner);
            self.state
                .consensus
                .receive_evidence(proposal, voters, ctx.now.into())?;
            return self.check_decision(id, ctx);
        }
        if self.state.frozen()
            && !matches!(motion, Motion::Emergency(_))
            && !motion.vote_free(owner)
        {
            // Partial freeze: no election or membership change is taken in while an emergency
            // is open, whoever sent it; its owner sends it again until it is decided.
            return Err(EngineError::Frozen);
        }
        if let Motion::Change(Change::Update { proposal }) = &motion {
            // One update per member and epoch: more would only cost every member work.
            if self.state.has_open_update(owner) {
                return Err(EngineError::RateLimited(owner));
            }
            self.state.check_update(owner, proposal, ctx.now)?;
        }
        if !self.state.may_propose(owner) {
            return Err(EngineError::RateLimited(owner));
        }
        let deadline =
            demls_consensus::Timestamp::from_wire_secs(proposal.expiration_timestamp).into();
        let voters = self.state.voters(&motion, owner);
        let owner_votes = proposal
            .votes
            .iter()
            .any(|v| v.vote_owner == owner.as_bytes());
        let outcome = self
            .state
            .consensus
            .receive_proposal(proposal, voters, ctx.now.into())?;
        let id = outcome.id;
        self.state.count_proposal(owner);
        // A key package that does not check out is voted NO below; it is simply not kept.
        if let Err(error) = self.buffer_key_package(&motion) {
            tracing::debug!(group = %self.id, %error, "key package not buffered");
        }
        let mut open = OpenProposal::new(owner, motion, deadline, ctx.now);
        if open.motion.waits_for_silence(ctx.wallet.address()) {
            // An inactivity charge is judged after a steward timeout: an alive steward shows itself meanwhile.
            // The window lets the accused's NO vote through a lossy network (it re-sends it).
            open.vote_at = Some(ctx.now.plus_ms(
                self.state.rules.timers.commit_ms(ctx.config) + 2 * ctx.config.rebroadcast_ms,
            ));
        }
        let kind = open.kind();
        self.state.open.insert(id, open);
        ctx.emit(Event::ProposalOpened {
            group: self.id.clone(),
            proposal: id,
            owner,
            change: kind.clone(),
            deadline,
        });
        if owner_votes {
            ctx.emit(Event::VoteRecorded {
                group: self.id.clone(),
                proposal: id,
                voter: owner,
                yes: true,
            });
        }
        if self
            .state
            .open
            .get(&id)
            .is_some_and(|o| o.vote_at.is_none())
        {
            self.vote_as_judged(id, ctx)?;
        }
        self.check_decision(id, ctx)
    }

    /// The current epoch's proposals open here, each with its tally.
    pub(crate) fn tallies(&self) -> Vec<crate::ProposalTally> {
        self.state
            .open
            .iter()
            .map(|(id, open)| {
                let votes = self
                    .state
                    .consensus
                    .proposal(*id)
                    .map_or(&[][..], |p| &p.votes[..]);
                let yes = votes.iter().filter(|v| v.vote).count();
                crate::ProposalTally {
                    id: *id,
                    decided: open.decided.map(|(yes, _)| yes),
                    yes,
                    no: votes.len() - yes,
                    voters: self.state.voters(&open.motion, open.owner).len(),
                }
            })
            .collect()
    }

    /// The current epoch's proposals open here, each with the votes this member holds, for
    /// the snapshot.
    pub(crate) fn open_proposals_with_votes(&self) -> Vec<wire::Proposal> {
        self.state
            .open
            .keys()
            .filter_map(|id| self.state.consensus.proposal(*id).cloned())
            .collect()
    }

    /// After a restart, the proposals of the epoch this member held when it stopped, taken
    /// in as their owners would send them again: its own votes are not cast again, an own
    /// change is linked to its proposal rather than proposed anew, and what it sent goes on
    /// being sent again on the usual schedule.
    pub(crate) fn take_in_again(&mut self, proposals: Vec<wire::Proposal>, ctx: &mut Ctx<'_>) {
        let me = ctx.wallet.address();
        for proposal in proposals {
            let id = ProposalId(proposal.proposal_id);
            let Some(owner) = Address::from_slice(&proposal.proposal_owner) else {
                continue;
            };
            if let Err(error) = self.receive_proposal(owner, proposal, ctx) {
                tracing::warn!(group = %self.id, proposal = id.0, %error, "open proposal not restored");
                continue;
            }
            let voted = self.has_voted(id, me);
            let Some(open) = self.state.open.get_mut(&id) else {
                continue;
            };
            open.voted |= voted;
            if open.voted || owner == me {
                open.sent.get_or_insert((ctx.now, 0));
            }
            if owner == me {
                self.ballot.reopened(&open.motion, id);
            }
        }
    }

    /// Whether the vote of `voter` on proposal `id` has been taken in.
    fn has_voted(&self, id: ProposalId, voter: Address) -> bool {
        self.state
            .consensus
            .proposal(id)
            .is_some_and(|p| p.votes.iter().any(|v| v.vote_owner == voter.as_bytes()))
    }

    /// Votes on a proposal as this member judges it, if it is a voter: NO at once on
    /// content that does not check out, YES where this member consents
    /// ([`Self::consent`]), nothing where the decision is left to the person.
    pub(crate) fn vote_as_judged(
        &mut self,
        id: ProposalId,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let Some(open) = self.state.open.get(&id) else {
            return Ok(());
        };
        let me = ctx.wallet.address();
        // A proposal can arrive carrying this member's vote already: re-sent by its owner
        // after this member restarted from a snapshot that did not hold it yet.
        if open.decided.is_some()
            || open.voted
            || !self.state.voters(&open.motion, open.owner).contains(&me)
            || open.motion.vote_free(open.owner)
            || self.has_voted(id, me)
        {
            return Ok(());
        }
        let judgement = match self.judge(id, ctx) {
            Judgement::Yes => self.consent(id, ctx),
            other => other,
        };
        if let (Judgement::Yes, Some(Motion::Emergency(emergency))) =
            (&judgement, self.state.open.get(&id).map(|o| &o.motion))
        {
            let emergency = emergency.clone();
            self.detected(&emergency, ctx);
        }
        match judgement {
            Judgement::Yes => self.vote(id, true, ctx),
            Judgement::No(reason) => {
                tracing::info!(group = %self.id, proposal = id.0, %reason, "voting NO");
                self.vote(id, false, ctx)
            }
            Judgement::Abstain => Ok(()),
        }
    }

    /// Whether this member says YES, ahead of its person, to a proposal whose content
    /// checks out. Protocol decisions (elections, emergencies) are checked by rule and
    /// always are. A joiner is, when a member invited it (the inviter's own node even on
    /// manual voting: the invitation is that person's YES), in a public group, or in a
    /// gated group when it meets the policy; automatic voting never says YES on removing
    /// someone else. A person's own earlier vote on the same change stands.
    pub(crate) fn consent(&mut self, id: ProposalId, ctx: &mut Ctx<'_>) -> Judgement {
        let Some(open) = self.state.open.get(&id) else {
            return Judgement::Abstain;
        };
        let automatic = ctx.config.vote_policy == VotePolicy::Automatic;
        let standing = self.ballot.standing(&open.kind()).map(|yes| {
            if yes {
                Judgement::Yes
            } else {
                Judgement::No("this member voted NO on it earlier".into())
            }
        });
        match open.motion.clone() {
            Motion::Election(_) | Motion::Emergency(_) | Motion::Change(Change::Update { .. }) => {
                Judgement::Yes
            }
            Motion::Change(Change::Add { replace: true, .. }) if automatic => Judgement::Yes,
            Motion::Change(Change::Add { replace: true, .. } | Change::Remove { .. }) => {
                standing.unwrap_or(Judgement::Abstain)
            }
            Motion::Change(Change::Add {
                address,
                invitation,
                ..
            }) => {
                if self.gated() {
                    match self.admission(address, ctx) {
                        Some(false) => {
                            return Judgement::No(format!(
                                "{address} does not meet the admission policy"
                            ));
                        }
                        None => return Judgement::Abstain,
                        Some(true) if automatic => return Judgement::Yes,
                        Some(true) => {}
                    }
                }
                if let Some(standing) = standing {
                    return standing;
                }
                match self.invited_by(address, invitation.as_deref(), ctx.now) {
                    Some(inviter) if inviter == ctx.wallet.address() => Judgement::Yes,
                    Some(_) if automatic => Judgement::Yes,
                    _ if automatic && self.state.rules.join_rule == JoinRule::Open => {
                        Judgement::Yes
                    }
                    _ => Judgement::Abstain,
                }
            }
        }
    }

    /// Votes, as judged, on every open proposal this member has not voted on.
    pub(crate) fn vote_on_unvoted(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let unvoted: Vec<ProposalId> = self
            .state
            .open
            .iter()
            .filter(|(_, o)| o.decided.is_none() && !o.voted && o.vote_at.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in unvoted {
            self.vote_as_judged(id, ctx)?;
        }
        Ok(())
    }

    /// Votes, as judged, on the open proposals for `change` that this member has not
    /// voted on (something changed: an invitation arrived, a check was answered, the
    /// person decided).
    pub(crate) fn reconsider(
        &mut self,
        change: &ChangeKind,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let waiting: Vec<ProposalId> = self
            .state
            .open
            .iter()
            .filter(|(_, o)| o.decided.is_none() && !o.voted)
            .filter(|(_, o)| o.kind() == *change)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.vote_as_judged(id, ctx)?;
        }
        Ok(())
    }

    /// Casts the votes that waited for their time.
    pub(crate) fn cast_scheduled_votes(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let due: Vec<ProposalId> = self
            .state
            .open
            .iter()
            .filter(|(_, o)| {
                o.decided.is_none() && !o.voted && o.vote_at.is_some_and(|t| t <= ctx.now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(open) = self.state.open.get_mut(&id) {
                open.vote_at = None;
            }
            self.vote_as_judged(id, ctx)?;
            self.check_decision(id, ctx)?;
        }
        Ok(())
    }

    /// When the next waiting vote is due.
    pub(crate) fn scheduled_votes_due(&self) -> Option<Timestamp> {
        self.state
            .open
            .values()
            .filter(|o| o.decided.is_none() && !o.voted)
            .filter_map(|o| o.vote_at)
            .min()
    }

    /// Checks a proposal's content.
    fn judge(&mut self, id: ProposalId, ctx: &Ctx<'_>) -> Judgement {
        let Some(open) = self.state.open.get(&id) else {
            return Judgement::Abstain;
        };
        let owner = open.owner;
        match open.motion.clone() {
            Motion::Change(change) => match self.judge_change(change, owner, ctx) {
                Ok(()) => Judgement::Yes,
                Err(error) => Judgement::No(error.to_string()),
            },
            Motion::Election(election) => self.judge_election(&election, ctx),
            Motion::Emergency(emergency) => self.judge_emergency(&emergency, ctx),
        }
    }

    fn judge_change(
        &mut self,
        change: Change,
        owner: Address,
        ctx: &Ctx<'_>,
    ) -> Result<(), EngineError> {
        match change {
            Change::Add {
                address,
                key_package,
                replace,
                invitation,
            } => {
                if let Some(invitation) = invitation {
                    self.check_carried_invitation(address, *invitation, ctx.now)?;
                }
                if replace && !self.state.is_member(&address) {
                    return Err(EngineError::NotMember(address));
                }
                if !replace && self.state.is_member(&address) {
                    return Err(EngineError::AlreadyMember(address));
                }
                if replace && address == ctx.wallet.address() {
                    return Err(EngineError::InvalidProposal(
                        "this node has its state".into(),
                    ));
                }
                key_package_of(&key_package)?;
                match self
                    .state
                    .mls
                    .process_incoming_message_with_time(*key_package, ctx.now.mls_time())?
                {
                    ReceivedMessage::KeyPackage(_) => Ok(()),
                    _ => Err(EngineError::InvalidProposal("not a key package".into())),
                }
            }
            // Checked when it arrived (see `receive_proposal`); its owner's YES approves it.
            Change::Update { .. } => Ok(()),
            Change::Remove { target } => {
                if !self.state.is_member(&target) {
                    return Err(EngineError::NotMember(target));
                }
                if target == ctx.wallet.address() && owner != target {
                    return Err(EngineError::InvalidProposal(
                        "this node does not agree to its own removal".into(),
                    ));
                }
                if self.state.mode == StewardMode::Single && self.stewards().contains(&target) {
                    return Err(EngineError::InvalidProposal(
                        "the only steward cannot be removed".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// An election is right if it proposes exactly the list every member
    /// computes, when one is due (retry 0) or when the list has been silent.
    fn judge_election(&self, election: &Election, ctx: &Ctx<'_>) -> Judgement {
        if self.state.mode == StewardMode::Single {
            return Judgement::No("single-steward groups hold no elections".into());
        }
        let expected = self
            .state
            .expected_list(election.retry_round, self.id.as_bytes());
        if election.stewards != expected {
            return Judgement::No(format!(
                "the list does not follow the SHA256 ordering (expected {expected:?})"
            ));
        }
        if election.retry_round == 0 {
            return if self.state.election_due() {
                Judgement::Yes
            } else {
                Judgement::No("no election is due".into())
            };
        }
        if election.retry_round != self.state.reelections().saturating_add(1)
            || election.retry_round > self.state.rules.timers.max_reelections(ctx.config)
        {
            return Judgement::No(format!(
                "retry round {} is not the next one",
                election.retry_round
            ));
        }
        if self
            .stalled_since(ctx.config)
            .is_some_and(|since| since <= ctx.now)
        {
            Judgement::Yes
        } else {
            Judgement::No("the stewards are not silent".into())
        }
    }

    /// Casts this member's vote.
    pub(crate) fn vote(
        &mut self,
        id: ProposalId,
        yes: bool,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let open = self
            .state
            .open
            .get_mut(&id)
            .ok_or_else(|| EngineError::Vote(format!("no open proposal {id:?}")))?;
        if open.decided.is_some() {
            return Err(EngineError::Vote(format!(
                "proposal {id:?} is already decided"
            )));
        }
        if open.voted {
            return Err(EngineError::Vote(format!("already voted on {id:?}")));
        }
        let vote = self
            .state
            .consensus
            .cast_vote(id, ctx.wallet, yes, ctx.now.into())?
            .vote;
        if let Some(open) = self.state.open.get_mut(&id) {
            open.voted = true;
            open.sent = Some((ctx.now, 0));
        }
        ctx.emit(Event::VoteRecorded {
            group: self.id.clone(),
            proposal: id,
            voter: ctx.wallet.address(),
            yes,
        });
        self.send_app(app_message::Body::Vote(vote), ctx)?;
        self.check_decision(id, ctx)
    }

    pub(crate) fn receive_vote(
        &mut self,
        sender: Address,
        vote: wire::Vote,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let voter = Address::from_slice(&vote.vote_owner)
            .ok_or_else(|| EngineError::Malformed("vote owner is not an address".into()))?;
        if voter != sender {
            return Err(EngineError::SenderMismatch {
                sender,
                claimed: voter,
            });
        }
        let id = ProposalId(vote.proposal_id);
        let yes = vote.vote;
        let me = ctx.wallet.address();
        if let Some(open) = self.state.open.get_mut(&id)
            && open.owner == me
            && open.decided.is_some()
        {
            // Someone still votes on a proposal decided here: it may be missing
            // votes; the owner sends the whole vote set again.
            open.nudged = true;
        }
        self.state.consensus.receive_vote(vote, ctx.now.into())?;
        if self.state.open.contains_key(&id) {
            ctx.emit(Event::VoteRecorded {
                group: self.id.clone(),
                proposal: id,
                voter,
                yes,
            });
            self.check_decision(id, ctx)?;
        }
        Ok(())
    }

    /// Reacts to a proposal being decided (once).
    pub(crate) fn check_decision(
        &mut self,
        id: ProposalId,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let Some(approved) = self.state.record_decision(id, ctx.now) else {
            return Ok(());
        };
        let Some(open) = self.state.open.get(&id) else {
            return Ok(());
        };
        ctx.emit(Event::ProposalDecided {
            group: self.id.clone(),
            proposal: id,
            change: open.kind(),
            approved,
        });
        self.score_emergencies(&ctx.config.scoring);
        let Some(open) = self.state.open.get(&id) else {
            return Ok(());
        };
        if !approved {
            // Voted down, the change is dropped: its people's decisions on it are spent, so
            // that when it is asked for again they decide anew (a NO kept would refuse a
            // joiner asking again at once, however the people now feel).
            self.ballot.unstand(&open.kind());
            // This member stops asking for it, and a joiner it asked for hears why (it may
            // ask again).
            if let Some(Change::Add {
                address,
                replace: false,
                ..
            }) = open.motion.as_change()
            {
                let address = *address;
                if open.owner == ctx.wallet.address() && self.steward_holds(address) {
                    let tally = self.state.consensus.tally(id);
                    let reason = format!(
                        "the members did not agree to admit it (YES {}, NO {} of {} voters)",
                        tally.as_ref().map_or(0, |t| t.yes),
                        tally.as_ref().map_or(0, |t| t.no),
                        tally.as_ref().map_or(0, |t| t.expected),
                    );
                    self.refuse_joiner(address, &reason, ctx);
                }
                self.steward_forget(address);
                self.key_packages.forget(&address);
            }
            self.ballot.voted_down(id);
        }
        Ok(())
    }

    /// Sends again, while undecided, what this member contributed to each
    /// proposal (as owner: the proposal with every vote it holds; as voter:
    /// its vote), so that lost messages do not leave members undecided; and,
    /// as owner, an approved change until a commit ends the epoch (see
    /// [`resending`]).
    pub(crate) fn rebroadcast(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        let due: Vec<ProposalId> = self
            .state
            .open
            .iter()
            .filter(|(_, o)| {
                resending(o, me) && resend_due(o, ctx.config).is_some_and(|t| t <= ctx.now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(proposal) = self.state.consensus.proposal(id).cloned() else {
                continue;
            };
            let owner = self.state.open.get(&id).is_some_and(|o| o.owner == me);
            let body = if owner {
                app_message::Body::Proposal(proposal)
            } else {
                match proposal
                    .votes
                    .into_iter()
                    .find(|v| v.vote_owner == me.as_bytes())
                {
                    Some(vote) => app_message::Body::Vote(vote),
                    None => continue,
                }
            };
            self.send_app(body, ctx)?;
            if let Some(open) = self.state.open.get_mut(&id) {
                open.nudged = false;
                open.sent = open
                    .sent
                    .map(|(_, times)| (ctx.now, times.saturating_add(1)));
            }
        }
        Ok(())
    }

    /// The next re-broadcast due.
    pub(crate) fn rebroadcast_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        self.state
            .open
            .values()
            .filter(|o| resending(o, self.me))
            .filter_map(|o| resend_due(o, config))
            .min()
    }

    /// Own motions still wanted in the new epoch, each to be proposed again.
    pub(crate) fn carry_own_motions(&mut self) {
        let mut ballot = std::mem::take(&mut self.ballot);
        let rotated = self.rotated_this_epoch();
        let state = &self.state;
        ballot.carry(|motion| match motion {
            // Asked again by the steward holding the joiner's request; a joiner proposed
            // from the key package buffer is proposed again from there (while kept).
            Motion::Change(Change::Add {
                address,
                replace: false,
                ..
            }) => !state.is_member(address) && self.steward_holds(*address),
            // A re-add is asked for again by its joiner if it did not land.
            Motion::Change(Change::Add { replace: true, .. }) => false,
            Motion::Change(Change::Remove { target }) => state.is_member(target),
            // Asked again until this member's leaf has been replaced.
            Motion::Change(Change::Update { .. }) => !rotated,
            Motion::Emergency(e) => {
                e.offender.is_some_and(|o| state.is_member(&o)) && !self.excused(e)
            }
            // An election is for the epoch it was held in.
            Motion::Election(_) => false,
        });
        self.ballot = ballot;
    }

    /// Since when the group has been stalled: changes approved, no commit, and
    /// every committer in order past its turn. `None` while not stalled.
    pub(crate) fn stalled_since(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        self.turn_due(self.state.committers().len().max(1), config)
    }

    /// When the committer at `position` in commit order takes its turn: each
    /// one before it gets a steward timeout, three if it has been heard from
    /// since the turns began (alive, only slower: on a lossy network it may
    /// still be missing votes, and a competing commit would split the group).
    pub(crate) fn turn_due(
        &self,
        position: usize,
        config: &crate::EngineConfig,
    ) -> Option<Timestamp> {
        let start = self.turns_start()?;
        let waits: u64 = self
            .state
            .committers()
            .iter()
            .take(position)
            .map(|c| {
                if self.state.heard_at.get(c).is_some_and(|t| *t >= start) {
                    3
                } else {
                    1
                }
            })
            .sum();
        // Recovery (Layers 2 and 3): the group has already waited through a list's turns.
        let timers = self.state.rules.timers;
        let turn = if self.state.reelections() > 0 || self.state.deadlocked() {
            timers.recovery_ms(config)
        } else {
            timers.commit_ms(config)
        };
        Some(start.plus_ms(waits * turn))
    }

    /// When the current committers' turns began: the first approval, or the
    /// latest re-election.
    pub(crate) fn turns_start(&self) -> Option<Timestamp> {
        let first = self.state.first_approval()?;
        let reelected = self
            .state
            .approved_motions()
            .filter(|(_, o)| matches!(&o.motion, Motion::Election(e) if e.retry_round > 0))
            .filter_map(|(_, o)| o.decided.map(|d| d.1))
            .max();
        Some(reelected.map_or(first, |t| t.max(first)))
    }
}

/// Whether this member still sends its part of `open` again: while it is undecided here, when
/// late traffic shows someone lacking votes, and, as its owner, while it is an approved change
/// no commit has made yet. The last because a committer that lost every copy of a proposal
/// decided at once (a leave, a self-update: no votes follow that would bring it again) or
/// decided before the committer heard of it would never commit it: nobody else sends a
/// decided proposal again, and a single steward has no backup to take its turn.
fn resending(open: &OpenProposal, me: Address) -> bool {
    let awaits_commit = open.owner == me
        && open.decided.is_some_and(|(approved, _)| approved)
        && crate::epoch::worth_a_commit(&open.motion);
    open.decided.is_none() || open.nudged || awaits_commit
}

/// Most times this member sends its part of one proposal again.
const MAX_RESENDS: u8 = 5;

/// When this member should next send its part of `open` again, if at all: `rebroadcast_ms`
/// after its first sending, then twice as long after each resend. A loaded group (every
/// member handles every vote) whose proposals stay undecided longer than one interval
/// would otherwise fill its members' queues with resends and stay undecided the longer.
fn resend_due(open: &OpenProposal, config: &crate::EngineConfig) -> Option<Timestamp> {
    let (last, times) = open.sent?;
    (times < MAX_RESENDS).then(|| last.plus_ms(config.rebroadcast_ms.saturating_mul(1 << times)))
}
