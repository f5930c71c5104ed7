//! One group, as one member sees it: MLS state, votes, commits and chat.

use std::collections::{BTreeMap, BTreeSet};

use demls_consensus::{Consensus, ConsensusConfig, Decision, ProposalId, ProposalSpec, wire};
use demls_identity::{Address, WalletBinding};
use mls_rs::group::proposal::Proposal as MlsProposal;
use mls_rs::group::{CommitEffect, CommitMessageDescription, ContentType, ReceivedMessage};
use mls_rs::{MlsMessage, MlsMessageDescription};
use prost::Message;

use crate::change::{Change, key_package_of};
use crate::context::Ctx;
use crate::mls::{GroupParamsExt, MlsGroup, suite};
use crate::steward::StewardDuty;
use crate::wire::{AppMessage, Chat, CommitManifest, app_message, envelope};
use crate::{ChangeKind, EngineError, Epoch, Event, GroupId, Timestamp, TopicKind, VotePolicy};

/// Name of consensus proposals that change membership.
const CHANGE_PROPOSAL_NAME: &str = "demls/group-change/v1";

/// A voting proposal of the current epoch.
pub(crate) struct OpenProposal {
    pub(crate) owner: Address,
    pub(crate) change: Change,
    pub(crate) deadline: Timestamp,
    pub(crate) decided: Option<bool>,
    pub(crate) voted: bool,
}

impl OpenProposal {
    fn kind(&self) -> ChangeKind {
        self.change.kind(self.owner)
    }
}

/// A change this member asked for, re-proposed each epoch until applied or voted down.
pub(crate) struct OwnChange {
    pub(crate) change: Change,
    pub(crate) proposal: Option<ProposalId>,
}

/// A commit waiting for votes this member has not seen decided yet.
struct PendingCommit {
    message: Vec<u8>,
    give_up_at: Timestamp,
}

/// Outcome of checking a commit against the votes.
enum Verdict {
    Valid,
    Undecided(Timestamp),
    Invalid(String),
}

/// A group this node is a member of.
pub(crate) struct GroupSession {
    pub(crate) id: GroupId,
    pub(crate) mls: MlsGroup,
    pub(crate) params: GroupParamsExt,
    pub(crate) consensus: Consensus,
    pub(crate) open: BTreeMap<ProposalId, OpenProposal>,
    /// Approved proposals of this epoch, in the order they were decided.
    pub(crate) approved: Vec<ProposalId>,
    proposals_by_owner: BTreeMap<Address, u16>,
    pub(crate) own_changes: Vec<OwnChange>,
    pending_commits: Vec<PendingCommit>,
    future: BTreeMap<u64, Vec<Vec<u8>>>,
    buffered: usize,
    /// Leaf index → address, for the current and the retained past epochs.
    rosters: BTreeMap<u64, Vec<Option<Address>>>,
    pub(crate) steward: Option<StewardDuty>,
}

impl GroupSession {
    /// A session for a group this node just created or joined.
    pub(crate) fn new(
        id: GroupId,
        mls: MlsGroup,
        steward: Option<StewardDuty>,
    ) -> Result<Self, EngineError> {
        let params = mls
            .context()
            .extensions
            .get_as::<GroupParamsExt>()
            .map_err(|e| EngineError::Mls(e.to_string()))?
            .ok_or_else(|| EngineError::Mls("group has no demls parameters".into()))?;
        let mut session = Self {
            id,
            mls,
            params,
            consensus: Consensus::new(ConsensusConfig::default()),
            open: BTreeMap::new(),
            approved: Vec::new(),
            proposals_by_owner: BTreeMap::new(),
            own_changes: Vec::new(),
            pending_commits: Vec::new(),
            future: BTreeMap::new(),
            buffered: 0,
            rosters: BTreeMap::new(),
            steward,
        };
        session.record_roster();
        Ok(session)
    }

    /// The current epoch.
    pub(crate) fn epoch(&self) -> Epoch {
        Epoch(self.mls.current_epoch())
    }

    /// The members' addresses, by leaf index.
    fn leaf_addresses(&self) -> Vec<Option<Address>> {
        let mut leaves = Vec::new();
        for member in self.mls.roster().members_iter() {
            let index = member.index as usize;
            if leaves.len() <= index {
                leaves.resize(index + 1, None);
            }
            // Bindings were verified when each member was added; here we only read them.
            leaves[index] = member
                .signing_identity
                .credential
                .as_basic()
                .and_then(|basic| WalletBinding::decode(basic.identifier()).ok())
                .map(|binding| binding.address());
        }
        leaves
    }

    fn record_roster(&mut self) {
        let epoch = self.mls.current_epoch();
        self.rosters.insert(epoch, self.leaf_addresses());
        let keep_from = epoch.saturating_sub(8);
        self.rosters.retain(|e, _| *e >= keep_from);
    }

    fn address_at(&self, epoch: u64, index: u32) -> Option<Address> {
        self.rosters
            .get(&epoch)
            .and_then(|r| r.get(index as usize).copied().flatten())
    }

    /// The members' addresses.
    pub(crate) fn members(&self) -> Vec<Address> {
        self.rosters
            .get(&self.mls.current_epoch())
            .map(|r| r.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// The members, as a voter set.
    fn voters(&self) -> BTreeSet<Address> {
        self.members().into_iter().collect()
    }

    fn is_member(&self, address: Address) -> bool {
        self.members().contains(&address)
    }

    /// The addresses allowed to commit in this epoch.
    pub(crate) fn stewards(&self) -> Vec<Address> {
        self.params
            .stewards
            .iter()
            .map(|a| Address::new(*a))
            .collect()
    }

    /// The MLS epoch authenticator.
    pub(crate) fn authenticator(&self) -> Vec<u8> {
        self.mls
            .epoch_authenticator()
            .map(|s| s.to_vec())
            .unwrap_or_default()
    }

    /// Encrypts and sends an application message.
    pub(crate) fn send_app(
        &mut self,
        body: app_message::Body,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let plaintext = AppMessage { body: Some(body) }.encode_to_vec();
        let message = self
            .mls
            .encrypt_application_message(&plaintext, Vec::new())?;
        self.mls.write_to_storage()?;
        ctx.send(
            &self.id,
            TopicKind::Application,
            envelope::Body::MlsMessage(message.to_bytes()?),
        );
        Ok(())
    }

    /// Sends a chat message.
    pub(crate) fn send_chat(&mut self, text: &str, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let id = suite_random(16)?;
        let chat = Chat {
            id: id.clone(),
            text: text.to_owned(),
            sent_at_ms: ctx.now.0,
        };
        self.send_app(app_message::Body::Chat(chat), ctx)?;
        ctx.emit(Event::Message {
            group: self.id.clone(),
            sender: ctx.wallet.address(),
            text: text.to_owned(),
            id,
            sent_at: ctx.now,
            epoch: self.epoch(),
        });
        Ok(())
    }

    // ----- proposals and votes -----

    /// Asks the group for a change: proposes it now, or in a later epoch if this
    /// member is over its proposal limit.
    pub(crate) fn request_change(
        &mut self,
        change: Change,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let subject = change.subject();
        if self
            .own_changes
            .iter()
            .any(|c| c.change.subject() == subject)
        {
            return Ok(());
        }
        self.own_changes.push(OwnChange {
            change,
            proposal: None,
        });
        self.propose_own_changes(ctx)
    }

    /// Opens a proposal for each own change that has none in this epoch, within the rate limit.
    pub(crate) fn propose_own_changes(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        for i in 0..self.own_changes.len() {
            if self.own_changes[i].proposal.is_some() {
                continue;
            }
            if self.proposals_by_owner.get(&me).copied().unwrap_or(0)
                >= self.params.max_proposals_per_member
            {
                break;
            }
            let change = self.own_changes[i].change.clone();
            let id = self.open_proposal(change, ctx)?;
            self.own_changes[i].proposal = Some(id);
        }
        Ok(())
    }

    fn open_proposal(
        &mut self,
        change: Change,
        ctx: &mut Ctx<'_>,
    ) -> Result<ProposalId, EngineError> {
        let epoch = self.epoch();
        let deadline = ctx
            .now
            .plus_ms(u64::from(self.params.vote_timeout_secs) * 1000);
        let spec = ProposalSpec {
            name: CHANGE_PROPOSAL_NAME.to_owned(),
            payload: change.encode(epoch)?,
            voters: self.voters(),
            expiration: deadline.into(),
            liveness_criteria_yes: self.params.liveness_yes,
        };
        let proposal = self
            .consensus
            .create_proposal(ctx.wallet, spec, ctx.now.into())?;
        let id = ProposalId(proposal.proposal_id);
        let me = ctx.wallet.address();
        *self.proposals_by_owner.entry(me).or_default() += 1;
        self.open.insert(
            id,
            OpenProposal {
                owner: me,
                change,
                deadline,
                decided: None,
                voted: true,
            },
        );
        ctx.emit(Event::ProposalOpened {
            group: self.id.clone(),
            proposal: id,
            owner: me,
            change: self.open[&id].kind(),
            deadline,
        });
        // The owner votes YES on its own proposal, and the vote travels inside it.
        self.consensus
            .cast_vote(id, ctx.wallet, true, ctx.now.into())?;
        ctx.emit(Event::VoteRecorded {
            group: self.id.clone(),
            proposal: id,
            voter: me,
            yes: true,
        });
        let with_vote = self.consensus.proposal(id).cloned().unwrap_or(proposal);
        self.send_app(app_message::Body::Proposal(with_vote), ctx)?;
        self.check_decision(id, ctx)?;
        Ok(id)
    }

    /// A proposal received from member `sender`.
    fn receive_proposal(
        &mut self,
        sender: Address,
        proposal: wire::Proposal,
        epoch: Epoch,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let owner = Address::from_slice(&proposal.proposal_owner)
            .ok_or_else(|| EngineError::Malformed("proposal owner is not an address".into()))?;
        if owner != sender {
            return Err(EngineError::SenderMismatch {
                sender,
                claimed: owner,
            });
        }
        if epoch != self.epoch() {
            return Err(EngineError::WrongEpoch {
                got: epoch,
                current: self.epoch(),
            });
        }
        let change = Change::decode(&proposal.payload, epoch)?;
        if self.proposals_by_owner.get(&owner).copied().unwrap_or(0)
            >= self.params.max_proposals_per_member
        {
            return Err(EngineError::RateLimited(owner));
        }
        let deadline =
            demls_consensus::Timestamp::from_wire_secs(proposal.expiration_timestamp).into();
        let outcome = self
            .consensus
            .receive_proposal(proposal, self.voters(), ctx.now.into())?;
        let id = outcome.id;
        *self.proposals_by_owner.entry(owner).or_default() += 1;
        let open = OpenProposal {
            owner,
            change,
            deadline,
            decided: None,
            voted: false,
        };
        let kind = open.kind();
        self.open.insert(id, open);
        ctx.emit(Event::ProposalOpened {
            group: self.id.clone(),
            proposal: id,
            owner,
            change: kind,
            deadline,
        });
        ctx.emit(Event::VoteRecorded {
            group: self.id.clone(),
            proposal: id,
            voter: owner,
            yes: true,
        });
        if let ChangeKind::Leave(_) = kind {
            // A leave needs no vote: its owner's signed YES is the whole approval.
        } else if ctx.config.vote_policy == VotePolicy::Automatic || self.judge(id, ctx).is_err() {
            let yes = self.judge(id, ctx).is_ok();
            self.vote(id, yes, ctx)?;
        }
        self.check_decision(id, ctx)
    }

    /// Checks a proposal's content: Ok means this member would vote YES.
    fn judge(&mut self, id: ProposalId, ctx: &Ctx<'_>) -> Result<(), EngineError> {
        let Some(open) = self.open.get(&id) else {
            return Err(EngineError::Vote(format!("unknown proposal {id:?}")));
        };
        let change = open.change.clone();
        let owner = open.owner;
        match change {
            Change::Add {
                address,
                key_package,
            } => {
                if self.is_member(address) {
                    return Err(EngineError::AlreadyMember(address));
                }
                key_package_of(&key_package)?;
                match self
                    .mls
                    .process_incoming_message_with_time(*key_package, ctx.now.mls_time())?
                {
                    ReceivedMessage::KeyPackage(_) => Ok(()),
                    _ => Err(EngineError::InvalidProposal("not a key package".into())),
                }
            }
            Change::Remove { target } => {
                if !self.is_member(target) {
                    return Err(EngineError::NotMember(target));
                }
                if target == ctx.wallet.address() && owner != target {
                    return Err(EngineError::InvalidProposal(
                        "this node does not agree to its own removal".into(),
                    ));
                }
                if target != owner
                    && self.stewards().contains(&target)
                    && self.stewards().len() == 1
                {
                    return Err(EngineError::InvalidProposal(
                        "the only steward cannot be removed".into(),
                    ));
                }
                Ok(())
            }
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
            .consensus
            .cast_vote(id, ctx.wallet, yes, ctx.now.into())?
            .vote;
        open.voted = true;
        ctx.emit(Event::VoteRecorded {
            group: self.id.clone(),
            proposal: id,
            voter: ctx.wallet.address(),
            yes,
        });
        self.send_app(app_message::Body::Vote(vote), ctx)?;
        self.check_decision(id, ctx)
    }

    fn receive_vote(
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
        self.consensus.receive_vote(vote, ctx.now.into())?;
        if self.open.contains_key(&id) {
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

    /// Whether a proposal is approved: by vote, or for a leave by its owner's signed YES.
    fn approval(&self, id: ProposalId) -> Option<bool> {
        let open = self.open.get(&id)?;
        if let ChangeKind::Leave(owner) = open.kind() {
            let owner_yes = self.consensus.proposal(id).is_some_and(|p| {
                p.votes
                    .iter()
                    .any(|v| v.vote && v.vote_owner.as_slice() == owner.as_bytes())
            });
            return Some(owner_yes);
        }
        self.consensus.decision(id).map(|d| d == Decision::Yes)
    }

    /// Reacts to a proposal being decided (once).
    fn check_decision(&mut self, id: ProposalId, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let Some(approved) = self.approval(id) else {
            return Ok(());
        };
        let Some(open) = self.open.get_mut(&id) else {
            return Ok(());
        };
        if open.decided.is_some() {
            return Ok(());
        }
        open.decided = Some(approved);
        let kind = open.kind();
        ctx.emit(Event::ProposalDecided {
            group: self.id.clone(),
            proposal: id,
            change: kind,
            approved,
        });
        if approved {
            self.approved.push(id);
        } else {
            // Voted down: this member stops asking for it.
            self.own_changes.retain(|c| c.proposal != Some(id));
            self.steward_forget_rejected(id);
        }
        Ok(())
    }

    /// Finishes an input: applies commits that became valid and, as steward,
    /// commits what was approved, until nothing more follows. Runs after each
    /// input rather than inside it, so that no epoch changes under a caller
    /// that is still iterating the old epoch's state.
    pub(crate) fn settle(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        loop {
            let epoch = self.epoch();
            self.retry_pending_commits(ctx)?;
            self.steward_maybe_commit(ctx)?;
            if self.epoch() == epoch {
                return Ok(());
            }
        }
    }

    // ----- incoming MLS messages -----

    /// An MLS message from the application topic.
    pub(crate) fn receive_mls(
        &mut self,
        bytes: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let result = self.handle_mls(bytes, ctx);
        self.settle(ctx)?;
        result
    }

    fn handle_mls(&mut self, bytes: &[u8], ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let message = MlsMessage::from_bytes(bytes)
            .map_err(|e| EngineError::Malformed(format!("mls: {e}")))?;
        let (epoch, content_type) = match message.description() {
            MlsMessageDescription::PrivateProtocolMessage {
                group_id,
                epoch_id,
                content_type,
            } => {
                if group_id != self.id.as_bytes() {
                    return Err(EngineError::Malformed(
                        "MLS group id does not match the envelope".into(),
                    ));
                }
                (epoch_id, content_type)
            }
            _ => {
                return Err(EngineError::Malformed(
                    "expected an MLS PrivateMessage".into(),
                ));
            }
        };
        let current = self.mls.current_epoch();
        if epoch > current {
            return self.buffer_future(epoch, bytes, ctx);
        }
        match content_type {
            ContentType::Commit if epoch == current => self.handle_commit(bytes.to_vec(), ctx),
            ContentType::Commit => Err(EngineError::WrongEpoch {
                got: Epoch(epoch),
                current: Epoch(current),
            }),
            ContentType::Application => self.handle_application(message, epoch, ctx),
            // Proposals travel inside commits, by value; a by-reference proposal would
            // block this member's sending until someone commits it.
            ContentType::Proposal => Err(EngineError::InvalidProposal(
                "MLS proposals by reference are not used".into(),
            )),
        }
    }

    fn buffer_future(
        &mut self,
        epoch: u64,
        bytes: &[u8],
        ctx: &Ctx<'_>,
    ) -> Result<(), EngineError> {
        if self.buffered >= ctx.config.max_buffered_messages {
            return Err(EngineError::BufferFull);
        }
        self.buffered += 1;
        self.future.entry(epoch).or_default().push(bytes.to_vec());
        Ok(())
    }

    fn handle_application(
        &mut self,
        message: MlsMessage,
        epoch: u64,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let received = self
            .mls
            .process_incoming_message_with_time(message, ctx.now.mls_time())
            .map_err(|e| match e {
                mls_rs::error::MlsError::EpochNotFound => EngineError::WrongEpoch {
                    got: Epoch(epoch),
                    current: self.epoch(),
                },
                other => EngineError::from(other),
            })?;
        self.mls.write_to_storage()?;
        let ReceivedMessage::ApplicationMessage(app) = received else {
            return Err(EngineError::Malformed(
                "expected an application message".into(),
            ));
        };
        let sender = self
            .address_at(epoch, app.sender_index)
            .ok_or_else(|| EngineError::Mls(format!("no member at leaf {}", app.sender_index)))?;
        let body = AppMessage::decode(app.data())?
            .body
            .ok_or_else(|| EngineError::Malformed("empty app message".into()))?;
        match body {
            app_message::Body::Chat(chat) => {
                ctx.emit(Event::Message {
                    group: self.id.clone(),
                    sender,
                    text: chat.text,
                    id: chat.id,
                    sent_at: Timestamp(chat.sent_at_ms),
                    epoch: Epoch(epoch),
                });
                Ok(())
            }
            app_message::Body::Proposal(proposal) => {
                self.receive_proposal(sender, proposal, Epoch(epoch), ctx)
            }
            app_message::Body::Vote(vote) if epoch == self.mls.current_epoch() => {
                self.receive_vote(sender, vote, ctx)
            }
            app_message::Body::Vote(_) => Err(EngineError::WrongEpoch {
                got: Epoch(epoch),
                current: self.epoch(),
            }),
        }
    }

    // ----- commits -----

    fn handle_commit(&mut self, bytes: Vec<u8>, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let message = MlsMessage::from_bytes(&bytes)
            .map_err(|e| EngineError::Malformed(format!("mls: {e}")))?;
        let mut candidate = self.mls.clone();
        let received = candidate.process_incoming_message_with_time(message, ctx.now.mls_time())?;
        let ReceivedMessage::Commit(description) = received else {
            return Err(EngineError::Malformed("expected a commit".into()));
        };
        let committer = self
            .address_at(self.mls.current_epoch(), description.committer)
            .unwrap_or_default();
        match self.verify_commit(committer, &description, ctx)? {
            Verdict::Valid => self.adopt_commit(candidate, committer, &description, ctx),
            Verdict::Undecided(give_up_at) => {
                if !self.pending_commits.iter().any(|p| p.message == bytes) {
                    self.pending_commits.push(PendingCommit {
                        message: bytes,
                        give_up_at,
                    });
                }
                Ok(())
            }
            Verdict::Invalid(reason) => {
                ctx.emit(Event::CommitRejected {
                    group: self.id.clone(),
                    committer,
                    reason: reason.clone(),
                });
                Err(EngineError::InvalidCommit(reason))
            }
        }
    }

    /// Checks that a commit comes from a steward and applies exactly the approved proposals it names.
    fn verify_commit(
        &mut self,
        committer: Address,
        description: &CommitMessageDescription,
        ctx: &mut Ctx<'_>,
    ) -> Result<Verdict, EngineError> {
        if !self.stewards().contains(&committer) {
            return Ok(Verdict::Invalid(format!("{committer} is not a steward")));
        }
        let Ok(manifest) = CommitManifest::decode(description.authenticated_data.as_slice()) else {
            return Ok(Verdict::Invalid("its manifest does not decode".into()));
        };
        if manifest.epoch != self.mls.current_epoch() {
            return Ok(Verdict::Invalid(format!(
                "manifest for epoch {}",
                manifest.epoch
            )));
        }
        // Merge the commit's evidence, then require every named proposal to be approved here.
        let mut expected: Vec<ChangeKind> = Vec::new();
        let mut undecided_until: Option<Timestamp> = None;
        for proposal in manifest.approved {
            let id = match self.merge_evidence(proposal, ctx) {
                Ok(id) => id,
                Err(error) => return Ok(Verdict::Invalid(format!("manifest evidence: {error}"))),
            };
            let kind = self.open.get(&id).map(OpenProposal::kind);
            match (kind, self.approval(id)) {
                (Some(kind), Some(true)) => expected.push(kind),
                (Some(_), Some(false)) => {
                    return Ok(Verdict::Invalid(format!("proposal {id:?} was voted down")));
                }
                (Some(_), None) => {
                    let deadline = self.open.get(&id).map(|o| o.deadline).unwrap_or(ctx.now);
                    undecided_until = Some(undecided_until.map_or(deadline, |d| d.max(deadline)));
                }
                (None, _) => return Ok(Verdict::Invalid(format!("proposal {id:?} is unknown"))),
            }
        }
        if let Some(deadline) = undecided_until {
            return Ok(Verdict::Undecided(
                deadline.plus_ms(ctx.config.commit_delay_ms),
            ));
        }
        let (CommitEffect::NewEpoch(new_epoch) | CommitEffect::Removed { new_epoch, .. }) =
            &description.effect
        else {
            return Ok(Verdict::Invalid("reinit is not allowed".into()));
        };
        let mut applied: Vec<ChangeKind> = Vec::new();
        for info in new_epoch.applied_proposals() {
            match &info.proposal {
                MlsProposal::Add(add) => {
                    let address =
                        crate::mls::WalletIdentityProvider::address_of(add.signing_identity())
                            .map_err(|e| {
                                EngineError::InvalidCommit(format!("added credential: {e}"))
                            })?;
                    let voted = self.approved_key_package_matches(add.key_package(), address);
                    if !voted {
                        return Ok(Verdict::Invalid(format!(
                            "adds {address} with a key package nobody voted for"
                        )));
                    }
                    applied.push(ChangeKind::Add(address));
                }
                MlsProposal::Remove(remove) => {
                    let Some(target) =
                        self.address_at(self.mls.current_epoch(), remove.to_remove())
                    else {
                        return Ok(Verdict::Invalid("removes an empty leaf".into()));
                    };
                    let kind = expected
                        .iter()
                        .copied()
                        .find(|k| matches!(k, ChangeKind::Leave(a) | ChangeKind::Remove(a) if *a == target))
                        .unwrap_or(ChangeKind::Remove(target));
                    applied.push(kind);
                }
                other => {
                    return Ok(Verdict::Invalid(format!(
                        "carries a {:?} proposal",
                        other.proposal_type()
                    )));
                }
            }
        }
        let mut want = expected.clone();
        want.sort_by_key(|k| format!("{k:?}"));
        applied.sort_by_key(|k| format!("{k:?}"));
        if want != applied {
            return Ok(Verdict::Invalid(format!(
                "applies {applied:?} but the vote approved {want:?}"
            )));
        }
        Ok(Verdict::Valid)
    }

    /// Whether an approved add proposal carries exactly this key package.
    fn approved_key_package_matches(
        &self,
        key_package: &mls_rs::KeyPackage,
        address: Address,
    ) -> bool {
        let suite = suite();
        let Ok(wanted) = key_package.to_reference(&suite) else {
            return false;
        };
        self.approved
            .iter()
            .filter_map(|id| self.open.get(id))
            .any(|open| match &open.change {
                Change::Add {
                    address: a,
                    key_package: message,
                } => {
                    *a == address
                        && key_package_of(message)
                            .ok()
                            .and_then(|kp| kp.to_reference(&suite).ok())
                            .is_some_and(|r| r == wanted)
                }
                Change::Remove { .. } => false,
            })
    }

    /// Takes a proposal with votes from a commit's manifest into the local vote state.
    fn merge_evidence(
        &mut self,
        proposal: wire::Proposal,
        ctx: &mut Ctx<'_>,
    ) -> Result<ProposalId, EngineError> {
        let owner = Address::from_slice(&proposal.proposal_owner)
            .ok_or_else(|| EngineError::InvalidCommit("manifest proposal owner".into()))?;
        let change = Change::decode(&proposal.payload, self.epoch())?;
        let deadline =
            demls_consensus::Timestamp::from_wire_secs(proposal.expiration_timestamp).into();
        let outcome = self
            .consensus
            .receive_evidence(proposal, self.voters(), ctx.now.into())?;
        self.open.entry(outcome.id).or_insert(OpenProposal {
            owner,
            change,
            deadline,
            decided: None,
            voted: false,
        });
        self.check_decision(outcome.id, ctx)?;
        Ok(outcome.id)
    }

    /// Makes a verified commit's state current.
    pub(crate) fn adopt_commit(
        &mut self,
        candidate: MlsGroup,
        committer: Address,
        description: &CommitMessageDescription,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let before: BTreeSet<Address> = self.members().into_iter().collect();
        self.mls = candidate;
        let removed_me = matches!(description.effect, CommitEffect::Removed { .. });
        if !removed_me {
            self.mls.write_to_storage()?;
        }
        self.record_roster();
        let after: BTreeSet<Address> = self.members().into_iter().collect();
        let epoch = self.epoch();
        if let CommitEffect::Removed { new_epoch, .. } = &description.effect {
            ctx.emit(Event::Removed {
                group: self.id.clone(),
                epoch: Epoch(new_epoch.epoch()),
                by: committer,
            });
            return Ok(());
        }
        ctx.emit(Event::EpochChanged {
            group: self.id.clone(),
            epoch,
            committer,
            added: after.difference(&before).copied().collect(),
            removed: before.difference(&after).copied().collect(),
            members: after.iter().copied().collect(),
            authenticator: self.authenticator(),
        });
        self.start_epoch(ctx)
    }

    /// Resets per-epoch state and replays messages that were waiting for this epoch.
    fn start_epoch(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        for id in std::mem::take(&mut self.open).into_keys() {
            // Proposals created but never received are unknown to consensus; nothing to close then.
            let _ = self.consensus.close(id);
        }
        self.approved.clear();
        self.proposals_by_owner.clear();
        self.pending_commits.clear();
        let members = self.members();
        self.own_changes.retain(|own| match own.change {
            Change::Add { address, .. } => !members.contains(&address),
            Change::Remove { target } => members.contains(&target),
        });
        for own in &mut self.own_changes {
            own.proposal = None;
        }
        self.steward_start_epoch();
        self.propose_own_changes(ctx)?;
        let current = self.mls.current_epoch();
        let stale: Vec<u64> = self.future.range(..current).map(|(e, _)| *e).collect();
        for epoch in stale {
            if let Some(messages) = self.future.remove(&epoch) {
                self.buffered -= messages.len();
            }
        }
        if let Some(messages) = self.future.remove(&current) {
            self.buffered -= messages.len();
            for bytes in messages {
                if let Err(error) = self.handle_mls(&bytes, ctx) {
                    tracing::debug!(group = %self.id, %error, "buffered message dropped");
                }
                if self.mls.current_epoch() != current {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Re-checks commits that were waiting for decisions.
    fn retry_pending_commits(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let epoch = self.mls.current_epoch();
        for pending in std::mem::take(&mut self.pending_commits) {
            if self.mls.current_epoch() != epoch {
                break;
            }
            if pending.give_up_at < ctx.now {
                ctx.emit(Event::CommitRejected {
                    group: self.id.clone(),
                    committer: Address::default(),
                    reason: "its proposals were not decided in time".into(),
                });
                continue;
            }
            if let Err(error) = self.handle_commit(pending.message, ctx) {
                tracing::debug!(group = %self.id, %error, "pending commit dropped");
            }
        }
        Ok(())
    }

    // ----- time -----

    /// Applies deadlines and periodic duties.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        for (id, _) in self.consensus.handle_timeout(ctx.now.into()) {
            self.check_decision(id, ctx)?;
        }
        self.steward_on_timeout(ctx)?;
        self.settle(ctx)
    }

    /// The next instant this session needs [`Self::handle_timeout`].
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        let consensus = self.consensus.poll_timeout().map(Timestamp::from);
        let pending = self.pending_commits.iter().map(|p| p.give_up_at).min();
        [consensus, pending, self.steward_poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether a proposal of this epoch is still undecided.
    pub(crate) fn has_undecided(&self) -> bool {
        self.open
            .values()
            .any(|o| o.decided.is_none() && !matches!(o.kind(), ChangeKind::Leave(_)))
    }
}

/// Random bytes from the ciphersuite's generator.
pub(crate) fn suite_random(len: usize) -> Result<Vec<u8>, EngineError> {
    use mls_rs::CipherSuiteProvider;
    suite()
        .random_bytes_vec(len)
        .map_err(|e| EngineError::Crypto(format!("random: {e:?}")))
}
