//! One group, as one member sees it: the current epoch, recent history, and
//! the messages waiting for an epoch to come.

use std::collections::VecDeque;

use demls_identity::Address;
use mls_rs::group::{ContentType, ReceivedMessage};
use mls_rs::{MlsMessage, MlsMessageDescription};
use prost::Message;

use crate::commit::Checkpoint;
use crate::context::Ctx;
use crate::epoch::EpochState;
use crate::mls::MlsGroup;
use crate::snapshot::GroupSnapshot;
use crate::steward::StewardDuty;
use crate::sync::SyncState;
use crate::wire::{AppMessage, Chat, app_message, envelope};
use crate::{EngineError, Epoch, Event, GroupId, Timestamp, TopicKind};

/// Misbehaviour switched on by tests.
#[cfg(feature = "byzantine")]
#[derive(Default)]
pub(crate) struct Byzantine {
    /// Never commit.
    pub(crate) silent: bool,
    /// Never take a join request up.
    pub(crate) ignoring_joiners: bool,
}

/// A group this node is a member of.
pub(crate) struct GroupSession {
    pub(crate) id: GroupId,
    /// This node's address.
    pub(crate) me: Address,
    pub(crate) state: EpochState,
    /// Recent epochs, oldest first, each as it was just before its commit.
    pub(crate) history: VecDeque<Checkpoint>,
    /// The motions this member asks for and its person's standing votes.
    pub(crate) ballot: crate::ballot::Ballot,
    /// Others' commits held, and when this member may commit.
    pub(crate) desk: crate::desk::CommitDesk,
    /// Messages of epochs this member has not reached, or could not read
    /// (another branch): tried again at each new epoch.
    pub(crate) held: crate::held::HeldMessages,
    pub(crate) steward: Option<StewardDuty>,
    /// This member's admission checks of joiners (gated groups).
    pub(crate) checks: crate::admission::Checks,
    /// Recent Welcomes, and the key package each member was last added with.
    pub(crate) arrivals: crate::arrivals::Arrivals,
    /// Stewards' violations this member saw, and the reports it will raise.
    pub(crate) watch: crate::violation::Watch,
    pub(crate) sync: SyncState,
    /// Invitations this member knows (its own and those told to the group), by invitee.
    pub(crate) invitations: crate::invitation::Invitations,
    /// Chat in causal order, with repair and acknowledgements.
    pub(crate) chat: crate::causal::ChatLog,
    /// When this member was removed; it keeps its state for a while, in case
    /// the removal loses to a better commit.
    pub(crate) departed: Option<Timestamp>,
    /// How the MLS state moved on since it was last written to the store. Written once per
    /// [`crate::Engine::take_storage_writes`], not per message, and as the step's traffic
    /// when only application messages moved it: a group's state is its whole ratchet tree,
    /// hundreds of KiB in a large group.
    unsaved: crate::unsaved::Unsaved,
    /// How old members' leaf keys are (the rotation rule).
    pub(crate) keys: crate::rotation::KeyRotation,
    /// This member's scores of stewards.
    pub(crate) scores: crate::scoring::Scores,
    /// Joiners' key packages kept for a few epochs, to propose again.
    pub(crate) key_packages: crate::buffer::KeyPackageBuffer,
    /// Members' display names.
    pub(crate) names: crate::names::Names,
    /// While at the epoch it joined at: the key package it joined with, and another branch
    /// it was welcomed into.
    pub(crate) second_welcome: Option<crate::second_welcome::SecondWelcome>,
    #[cfg(feature = "byzantine")]
    pub(crate) byzantine: Byzantine,
}

impl GroupSession {
    /// A session for a group this node just created or joined.
    pub(crate) fn new(
        id: GroupId,
        me: Address,
        mls: MlsGroup,
        steward: Option<StewardDuty>,
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let state = EpochState::new(mls, now)?;
        let mut session = Self {
            chat: crate::causal::ChatLog::new(me, state.epoch(), 0),
            id,
            me,
            state,
            history: VecDeque::new(),
            ballot: crate::ballot::Ballot::default(),
            desk: crate::desk::CommitDesk::default(),
            held: crate::held::HeldMessages::default(),
            steward,
            checks: crate::admission::Checks::new(),
            arrivals: crate::arrivals::Arrivals::default(),
            watch: crate::violation::Watch::default(),
            sync: SyncState::default(),
            invitations: crate::invitation::Invitations::default(),
            departed: None,
            unsaved: crate::unsaved::Unsaved::new(),
            keys: crate::rotation::KeyRotation::default(),
            scores: crate::scoring::Scores::default(),
            key_packages: crate::buffer::KeyPackageBuffer::default(),
            names: crate::names::Names::default(),
            second_welcome: None,
            #[cfg(feature = "byzantine")]
            byzantine: Byzantine::default(),
        };
        session.fresh_key_ages(now);
        Ok(session)
    }

    /// The protocol state to keep beside the MLS state: each part writes its own.
    pub(crate) fn save(&self) -> Result<GroupSnapshot, EngineError> {
        let mut snapshot = GroupSnapshot {
            group_id: self.id.as_str().to_owned(),
            steward: self.steward.as_ref().map(StewardDuty::snapshot),
            invitations: self.invitations.all().map(|i| i.wire.clone()).collect(),
            joined_epoch: self.chat.joined_epoch(),
            lamport: crate::snapshot::counter_ahead(self.chat.lamport()),
            scores: self.scores.save(),
            key_packages: self.key_packages.snapshot()?,
            names: self.names.save(),
            open: self.open_proposals_with_votes(),
            ..GroupSnapshot::default()
        };
        self.ballot.save(&mut snapshot)?;
        self.keys.save(&mut snapshot);
        Ok(snapshot)
    }

    /// Takes back what [`Self::save`] wrote into `snapshot` (but the steward's duty, given
    /// to [`Self::new`]), once the MLS state is restored; returns the proposals that were
    /// open, to take in again.
    pub(crate) fn restore_parts(
        &mut self,
        snapshot: GroupSnapshot,
        now: Timestamp,
    ) -> Result<Vec<demls_consensus::wire::Proposal>, EngineError> {
        self.chat = crate::causal::ChatLog::new(self.me, snapshot.joined_epoch, snapshot.lamport);
        let state = &self.state;
        self.keys
            .restore(&snapshot, |member| state.is_member(member));
        self.key_packages = crate::buffer::KeyPackageBuffer::restore(&snapshot.key_packages)?;
        self.names =
            crate::names::Names::restore(&snapshot.names, |member| state.is_member(member));
        self.scores = crate::scoring::Scores::restore(&snapshot.scores);
        self.ballot = crate::ballot::Ballot::restore(&snapshot)?;
        // Invitations that expired while the node was down are simply not kept.
        for invitation in snapshot.invitations {
            if let Ok(invited) = crate::invitation::Invited::check(invitation, &self.id, now) {
                self.invitations.keep(invited, now);
            }
        }
        Ok(snapshot.open)
    }

    /// Notes that the MLS state moved on, other than by application messages, without being
    /// written (see [`Self::save_mls_if_moved`]).
    pub(crate) fn mark_moved(&mut self) {
        self.unsaved.moved();
    }

    /// Writes the MLS state to the store (and so to the journal a shell persists).
    pub(crate) fn save_mls(&mut self) -> Result<(), EngineError> {
        self.state.mls.write_to_storage()?;
        self.unsaved.written();
        Ok(())
    }

    /// Writes what moved the MLS state on since the last write: the step's traffic, or the
    /// whole state when that is due. Traffic is kept only where a shell persists the store.
    pub(crate) fn save_mls_if_moved(&mut self, store: &crate::MlsStore) -> Result<(), EngineError> {
        let id = self.id.as_bytes();
        let state_len = if store.is_journaled() {
            store.state_len(id)
        } else {
            0
        };
        match self.unsaved.take(state_len) {
            crate::unsaved::Save::Nothing => Ok(()),
            crate::unsaved::Save::Whole => self.save_mls(),
            crate::unsaved::Save::Traffic(traffic) => {
                store.log_traffic(id, traffic);
                Ok(())
            }
        }
    }

    /// Replays traffic journaled since the state was last written (at restore): this
    /// member's own messages again use up their generations, received ones their keys.
    pub(crate) fn replay_traffic(
        &mut self,
        traffic: Vec<crate::GroupTraffic>,
    ) -> Result<(), EngineError> {
        let messages: usize = traffic.iter().map(crate::GroupTraffic::messages).sum();
        if messages > crate::unsaved::MAX_REPLAY {
            return Err(EngineError::Malformed(format!(
                "{messages} journaled messages to replay; a journal holds at most {}",
                crate::unsaved::MAX_REPLAY
            )));
        }
        for step in traffic {
            for _ in 0..step.sent {
                self.state
                    .mls
                    .encrypt_application_message(&[], Vec::new())?;
            }
            for bytes in step.received {
                // Only application messages are journaled; anything else (a commit would
                // move the epoch) is refused.
                let replayed = MlsMessage::from_bytes(&bytes)
                    .map_err(EngineError::from)
                    .and_then(|message| match message.description() {
                        MlsMessageDescription::PrivateProtocolMessage {
                            content_type: ContentType::Application,
                            ..
                        } => Ok(self.state.mls.process_incoming_message(message)?),
                        _ => Err(EngineError::Malformed(
                            "journaled traffic holds a message that is not an application message"
                                .into(),
                        )),
                    });
                if let Err(error) = replayed {
                    tracing::warn!(group = %self.id, %error, "a journaled message did not replay");
                }
            }
        }
        self.mark_moved();
        Ok(())
    }

    /// The current epoch.
    pub(crate) fn epoch(&self) -> Epoch {
        self.state.typed_epoch()
    }

    /// The members' addresses.
    pub(crate) fn members(&self) -> Vec<Address> {
        self.state.members()
    }

    /// The steward list, in rotation order.
    pub(crate) fn stewards(&self) -> Vec<Address> {
        self.state.steward_list()
    }

    /// The MLS epoch authenticator.
    pub(crate) fn authenticator(&self) -> Vec<u8> {
        self.state.authenticator()
    }

    /// The state of epoch `epoch`: current, or kept in history.
    pub(crate) fn state_of(&self, epoch: u64) -> Option<&EpochState> {
        if epoch == self.state.epoch() {
            return Some(&self.state);
        }
        self.history
            .iter()
            .find(|c| c.before.epoch() == epoch)
            .map(|c| &c.before)
    }

    /// Encrypts and sends an application message.
    pub(crate) fn send_app(
        &mut self,
        body: app_message::Body,
        ctx: &mut Ctx<'_>,
    ) -> Result<Vec<u8>, EngineError> {
        let plaintext = AppMessage { body: Some(body) }.encode_to_vec();
        let message = self
            .state
            .mls
            .encrypt_application_message(&plaintext, Vec::new())?;
        self.unsaved.sent();
        let bytes = message.to_bytes()?;
        ctx.send(
            &self.id,
            TopicKind::Application,
            envelope::Body::MlsMessage(bytes.clone()),
        );
        Ok(bytes)
    }

    /// Sends a chat message, with this member's clock and causal history.
    pub(crate) fn send_chat(&mut self, text: &str, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let id = ctx.random(16)?;
        let (lamport, history) = self.chat.stamp();
        let chat = Chat {
            id: id.clone(),
            text: text.to_owned(),
            sent_at_ms: ctx.now.0,
            lamport,
            history,
        };
        let bytes = self.send_app(app_message::Body::Chat(chat), ctx)?;
        self.chat
            .sent(id.clone(), self.epoch(), bytes, ctx.config, ctx.now);
        self.keys.sent();
        ctx.emit(Event::Message {
            group: self.id.clone(),
            sender: ctx.wallet.address(),
            text: text.to_owned(),
            id,
            sent_at: ctx.now,
            epoch: self.epoch(),
            lamport,
        });
        // The message went out: a failed update request is not the message's failure.
        if let Err(error) = self.rotate_if_due(ctx) {
            tracing::warn!(group = %self.id, %error, "update request failed");
        }
        Ok(())
    }

    /// Tells the shell the chat messages now delivered, and the acknowledgements received.
    fn tell_chat(&self, received: crate::causal::Received, by: Address, ctx: &mut Ctx<'_>) {
        for delivery in received.delivered {
            self.tell_delivery(delivery, ctx);
        }
        for id in received.acknowledged {
            ctx.emit(Event::Acknowledged {
                group: self.id.clone(),
                id,
                by,
            });
        }
    }

    fn tell_delivery(&self, d: crate::causal::Delivery, ctx: &mut Ctx<'_>) {
        ctx.emit(Event::Message {
            group: self.id.clone(),
            sender: d.sender,
            text: d.text,
            id: d.id,
            sent_at: d.sent_at,
            epoch: d.epoch,
            lamport: d.lamport,
        });
    }

    /// Chat timers: repair answers, requests, syncs, resends, gaps given up.
    pub(crate) fn chat_on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let alone = self.state.members().len() <= 1;
        let due = self.chat.on_timeout(ctx.config, alone, ctx.now);
        for bytes in due.resend {
            ctx.send(
                &self.id,
                TopicKind::Application,
                envelope::Body::MlsMessage(bytes),
            );
        }
        if !due.ask.is_empty() {
            self.send_app(
                app_message::Body::Repair(crate::wire::RepairRequest { ids: due.ask }),
                ctx,
            )?;
        }
        if due.sync && !alone {
            self.send_app(app_message::Body::Sync(self.chat.sync()), ctx)?;
            self.chat.synced(ctx.config, ctx.now);
        }
        if due.given_up > 0 {
            ctx.emit(Event::HistoryGap {
                group: self.id.clone(),
                lost: due.given_up,
            });
        }
        for delivery in due.delivered {
            self.tell_delivery(delivery, ctx);
        }
        Ok(())
    }

    /// Tells the shell when the number of missing chat messages changed.
    pub(crate) fn report_missing(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(missing) = self.chat.missing_changed() {
            ctx.emit(Event::Syncing {
                group: self.id.clone(),
                missing,
            });
        }
    }

    // ----- incoming MLS messages -----

    /// An MLS message from the application topic, then whatever follows from it.
    pub(crate) fn receive_mls(
        &mut self,
        bytes: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let result = self.handle_mls(bytes, ctx);
        self.settle(ctx)?;
        self.report_missing(ctx);
        result
    }

    pub(crate) fn handle_mls(
        &mut self,
        bytes: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
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
        let current = self.state.epoch();
        if epoch > current {
            return self.hold(epoch, bytes, ctx);
        }
        if epoch < current {
            self.remind_laggard(epoch, ctx);
        }
        match content_type {
            ContentType::Commit => self.handle_commit(epoch, bytes.to_vec(), ctx),
            ContentType::Application if self.departed.is_some() => {
                Err(EngineError::NotMember(self.me))
            }
            ContentType::Application => self.handle_application(message, epoch, bytes, ctx),
            // Proposals travel inside commits, by value; a by-reference proposal would
            // block this member's sending until someone commits it.
            ContentType::Proposal => Err(EngineError::InvalidProposal(
                "MLS proposals by reference are not used".into(),
            )),
        }
    }

    /// Someone still sends in an epoch this member left: if this member made
    /// the commit that ended it, the sender likely lost that commit; send it again.
    fn remind_laggard(&mut self, epoch: u64, ctx: &mut Ctx<'_>) {
        let Some(checkpoint) = self.history.iter().find(|c| c.before.epoch() == epoch) else {
            return;
        };
        if checkpoint.applied.committer != self.me {
            return;
        }
        if self.desk.remind(epoch, ctx.now, ctx.config.sync_retry_ms) {
            let bytes = checkpoint.applied.bytes.clone();
            ctx.send(
                &self.id,
                TopicKind::Application,
                envelope::Body::MlsMessage(bytes),
            );
        }
    }

    /// Keeps a message for a later (or another branch's) epoch.
    pub(crate) fn hold(
        &mut self,
        epoch: u64,
        bytes: &[u8],
        ctx: &Ctx<'_>,
    ) -> Result<(), EngineError> {
        self.held
            .hold(epoch, bytes, ctx.now, ctx.config.max_buffered_messages)
    }

    fn handle_application(
        &mut self,
        message: MlsMessage,
        epoch: u64,
        bytes: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let received = match self
            .state
            .mls
            .process_incoming_message_with_time(message, ctx.now.mls_time())
        {
            Ok(received) => received,
            Err(mls_rs::error::MlsError::EpochNotFound) => {
                return Err(EngineError::WrongEpoch {
                    got: Epoch(epoch),
                    current: self.epoch(),
                });
            }
            // This member's own message, published again by a member answering a repair
            // request (or returned by an archive): a copy, not a sign of another branch.
            Err(mls_rs::error::MlsError::CantProcessMessageFromSelf) => {
                return Err(EngineError::Duplicate);
            }
            Err(error) if epoch == self.state.epoch() => {
                // Unreadable in our own epoch: another branch's traffic, readable if we switch.
                self.hold(epoch, bytes, ctx)?;
                self.sync.suspect(ctx.now);
                return Err(EngineError::from(error));
            }
            Err(error) => return Err(EngineError::from(error)),
        };
        self.unsaved.received(bytes);
        let ReceivedMessage::ApplicationMessage(app) = received else {
            return Err(EngineError::Malformed(
                "expected an application message".into(),
            ));
        };
        let sender = self
            .state_of(epoch)
            .and_then(|state| state.address_at(app.sender_index))
            .ok_or_else(|| {
                EngineError::Mls(format!(
                    "no member at leaf {} in epoch {epoch}",
                    app.sender_index
                ))
            })?;
        if epoch == self.state.epoch() {
            self.state.heard_at.insert(sender, ctx.now);
        }
        let body = AppMessage::decode(app.data())?
            .body
            .ok_or_else(|| EngineError::Malformed("empty app message".into()))?;
        match body {
            app_message::Body::Chat(chat) => {
                let delivery = crate::causal::Delivery {
                    sender,
                    text: chat.text,
                    id: chat.id,
                    sent_at: Timestamp(chat.sent_at_ms),
                    epoch: Epoch(epoch),
                    lamport: chat.lamport,
                };
                let received =
                    self.chat
                        .on_chat(delivery, &chat.history, bytes.to_vec(), ctx.config, ctx.now);
                self.tell_chat(received, sender, ctx);
                Ok(())
            }
            app_message::Body::Sync(sync) => {
                let received = self.chat.on_sync(&sync, ctx.now);
                self.tell_chat(received, sender, ctx);
                Ok(())
            }
            app_message::Body::Repair(request) => {
                self.chat.on_repair(&request.ids, ctx.now);
                Ok(())
            }
            app_message::Body::Proposal(proposal) if epoch == self.state.epoch() => {
                self.receive_proposal(sender, proposal, ctx)
            }
            app_message::Body::Vote(vote) if epoch == self.state.epoch() => {
                self.receive_vote(sender, vote, ctx)
            }
            app_message::Body::Invitation(invitation) => {
                self.receive_invitation(sender, invitation, ctx)
            }
            app_message::Body::Name(name) => self.receive_name(sender, name, ctx),
            app_message::Body::Proposal(_) | app_message::Body::Vote(_) => {
                Err(EngineError::WrongEpoch {
                    got: Epoch(epoch),
                    current: self.epoch(),
                })
            }
        }
    }

    /// Tries again the held messages of the current epoch (after an epoch change).
    ///
    /// All of them, also after one of them (a commit) moves the epoch on: the rest are still
    /// read in their epoch (past epochs are retained), while stopping there would drop them
    /// for good, since the engine takes every copy sent again later, a repair answer too, for
    /// a duplicate of the one it already handled.
    pub(crate) fn replay_held(&mut self, ctx: &mut Ctx<'_>) {
        let current = self.state.epoch();
        let oldest = self.history.front().map_or(current, |c| c.before.epoch());
        for held in self.held.take_due(current, oldest) {
            if let Err(error) = self.handle_mls(&held.bytes, ctx) {
                tracing::debug!(group = %self.id, %error, "held message dropped");
            }
        }
    }

    /// Finishes an input: applies commits that became valid, raises due
    /// reports and elections, and commits what this member should commit,
    /// until nothing more follows. Runs after each input rather than inside
    /// it, so that no epoch changes under a caller still using the old one.
    pub(crate) fn settle(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self.departed.is_some() {
            return Ok(());
        }
        loop {
            let epoch = self.state.epoch();
            self.retry_pending_commits(ctx)?;
            self.raise_due_reports(ctx)?;
            self.propose_own(ctx)?;
            self.maybe_commit(ctx)?;
            if self.state.epoch() == epoch {
                return Ok(());
            }
        }
    }

    // ----- time -----

    /// This process stalled for `late_ms` until `now`. If that is as long as a steward turn
    /// and this member is one of the epoch's committers, a backup may have committed in its
    /// place meanwhile: it hears the group for one turn before it commits or judges anyone
    /// silent, once per epoch. Anything less would only slow the group down: a starved but
    /// running process stalls again and again, a member that is not a committer has no turn
    /// to take, and a single-steward group has no backup to hear.
    pub(crate) fn stalled(&mut self, now: Timestamp, late_ms: u64, config: &crate::EngineConfig) {
        let turn = self.state.rules.timers.commit_ms(config);
        let epoch = self.state.epoch();
        if self.state.mode == crate::StewardMode::Single
            || late_ms < turn
            || self.desk.heard_in(epoch)
            || !self.state.committers().contains(&self.me)
        {
            return;
        }
        tracing::info!(group = %self.id, late_ms, "stalled; hearing the group before acting");
        self.desk.hear(epoch, now.plus_ms(turn));
    }
}
