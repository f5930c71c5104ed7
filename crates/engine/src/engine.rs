//! The engine: every group of one node, driven by bytes and time.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::Duration;

use demls_consensus::ProposalId;
use demls_identity::{Address, Wallet};
use mls_rs::ExtensionList;
use mls_rs::extension::MlsExtension;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::bounded::BoundedSet;
use crate::change::Change;
use crate::context::{Ctx, Outbox};
use crate::invitation::{InvitationError, Invited};
use crate::join::{Announcement, JoinAttempt};
use crate::mls::{
    Entropy, GroupParamsExt, MlsClient, MlsSigner, VerifyingCrypto, VerifyingSuite, build_client,
    crypto_suite, store::MlsStore,
};
use crate::motion::Motion;
use crate::session::GroupSession;
use crate::snapshot::{EngineSnapshot, SNAPSHOT_VERSION};
use crate::steward::StewardDuty;
use crate::timer::Timer;
use crate::vote_journal::VoteJournal;
use crate::wire::{Envelope, WIRE_VERSION, envelope};
use crate::{
    ChangeKind, EngineConfig, EngineError, Epoch, Event, GroupId, GroupParams, Request, Timestamp,
    Transmit,
};

/// How many message hashes are remembered to drop exact duplicates.
const RECENT_CAPACITY: usize = 16_384;

/// A read-only view of one group, for shells and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// The group.
    pub id: GroupId,
    /// Current epoch.
    pub epoch: Epoch,
    /// Members.
    pub members: Vec<Address>,
    /// Stewards in office (members of the elected list), in rotation order.
    pub stewards: Vec<Address>,
    /// Whether this node is a steward.
    pub is_steward: bool,
    /// How stewards are chosen and who votes.
    pub mode: crate::StewardMode,
    /// Who commits in this epoch, in order: the epoch steward, then its backups.
    pub committers: Vec<Address>,
    /// MLS epoch authenticator.
    pub authenticator: Vec<u8>,
    /// The current epoch's proposals open here, each with its tally.
    pub open_proposals: Vec<ProposalTally>,
    /// Who may join: the group's admission policy.
    pub admission: demls_policy::AdmissionPolicy,
    /// Who may join without an invitation.
    pub join_rule: crate::JoinRule,
    /// How long a vote on adding or removing someone stays open, in seconds.
    pub membership_vote_timeout_secs: u32,
    /// Invitations this member knows that are still valid: invitee, inviter, expiry.
    pub invitations: Vec<(Address, Address, Timestamp)>,
    /// When members replace their leaf keys.
    pub rotation: crate::RotationRule,
    /// When each member's leaf keys were last replaced, by member.
    pub key_ages: Vec<crate::KeyAge>,
    /// This node's score of each steward in office, in rotation order (peer scoring).
    pub steward_scores: Vec<(Address, i32)>,
    /// Joiners whose key packages this node keeps to propose again (for a few epochs).
    pub buffered_joiners: Vec<Address>,
    /// Members' display names, this node's included (members without one are absent).
    pub display_names: BTreeMap<Address, String>,
    /// The epoch this node joined the group in (0 if it created it).
    pub joined_epoch: Epoch,
}

/// A proposal of the current epoch as this member counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalTally {
    /// The proposal.
    pub id: ProposalId,
    /// YES or NO once decided here.
    pub decided: Option<bool>,
    /// YES votes this member holds.
    pub yes: usize,
    /// NO votes this member holds.
    pub no: usize,
    /// Members entitled to vote on it: every member, or in a small-consensus group only the
    /// stewards in office on a membership change.
    pub voters: usize,
}

/// The de-MLS protocol engine of one node.
///
/// Sans-IO: feed it received bytes ([`Engine::handle_message`]), the clock
/// ([`Engine::handle_timeout`] when [`Engine::poll_timeout`] says so) and
/// user commands; take out what the shell must do ([`Engine::poll_request`]), bytes to
/// publish ([`Engine::poll_transmit`]) and events ([`Engine::poll_event`]), or all of it at
/// once with [`Engine::take_output`]. A shell that persists state must write
/// [`Engine::take_storage_writes`] durably before it publishes the transmits
/// produced by the same calls.
pub struct Engine {
    wallet: Wallet,
    config: EngineConfig,
    client: MlsClient,
    /// The client's ciphersuite provider, for the engine's own random choices (from the
    /// same [`Entropy`] as the client's).
    pub(crate) suite: VerifyingSuite,
    store: MlsStore,
    pub(crate) groups: BTreeMap<GroupId, GroupSession>,
    joins: BTreeMap<GroupId, JoinAttempt>,
    pub(crate) announcements: BTreeMap<GroupId, Announcement>,
    /// Hashes of recently handled messages, to drop exact duplicates.
    recent: BoundedSet<[u8; 32]>,
    out: Outbox,
    /// The deadline [`Engine::poll_timeout`] last gave, until the next input: an input
    /// much later than it shows that the driver could not serve the timer (a stopped or
    /// starved process).
    deadline: Cell<Option<Timestamp>>,
    /// What the shell holds of the protocol snapshot, to hand it only what changed.
    journal: VoteJournal,
}

impl Engine {
    /// An engine for `wallet`, signing MLS messages with `signer`, keeping MLS state in `store`.
    pub fn new(wallet: Wallet, signer: &MlsSigner, config: EngineConfig, store: MlsStore) -> Self {
        Self::with_entropy(wallet, signer, config, store, Entropy::os())
    }

    /// [`Engine::new`] drawing its random choices from `entropy`.
    pub(crate) fn with_entropy(
        wallet: Wallet,
        signer: &MlsSigner,
        config: EngineConfig,
        store: MlsStore,
        entropy: Entropy,
    ) -> Self {
        let (groups, key_packages) = store.providers();
        let lifetime = Duration::from_secs(config.key_package_lifetime_secs);
        let crypto = VerifyingCrypto::new(entropy);
        let suite = crypto_suite(&crypto);
        let client = build_client(&wallet, signer, groups, key_packages, lifetime, crypto);
        Self {
            wallet,
            config,
            client,
            suite,
            store,
            groups: BTreeMap::new(),
            joins: BTreeMap::new(),
            announcements: BTreeMap::new(),
            recent: BoundedSet::new(RECENT_CAPACITY),
            out: Outbox::default(),
            deadline: Cell::new(None),
            journal: VoteJournal::default(),
        }
    }

    /// The protocol state to persist beside the MLS journal (see [`EngineSnapshot`]).
    pub fn snapshot(&self) -> Result<Vec<u8>, EngineError> {
        Ok(self.snapshot_parts()?.encode_to_vec())
    }

    fn snapshot_parts(&self) -> Result<EngineSnapshot, EngineError> {
        let groups = self
            .groups
            .values()
            .filter(|session| session.departed.is_none())
            .map(GroupSession::save)
            .collect::<Result<_, EngineError>>()?;
        let joins = self
            .joins
            .values()
            .map(JoinAttempt::snapshot)
            .collect::<Result<_, _>>()?;
        Ok(EngineSnapshot {
            version: SNAPSHOT_VERSION,
            groups,
            joins,
        })
    }

    /// An engine resuming from persisted state: `store` already holds the MLS
    /// state (restored from the journal's writes), `snapshot` is the last
    /// [`Engine::snapshot`]. Changes still wanted are proposed again.
    pub fn restore(
        wallet: Wallet,
        signer: &MlsSigner,
        config: EngineConfig,
        store: MlsStore,
        snapshot: &[u8],
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        Self::resume(Self::new(wallet, signer, config, store), snapshot, now)
    }

    /// [`Engine::restore`] for a fresh `engine` whose store holds the MLS state.
    pub(crate) fn resume(
        mut engine: Self,
        snapshot: &[u8],
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let snapshot = EngineSnapshot::decode_checked(snapshot)?;
        let mut open = BTreeMap::new();
        for mut group in snapshot.groups {
            let id = GroupId::new(&group.group_id)?;
            let mls = engine.client.load_group(id.as_bytes())?;
            let traffic = engine.store.take_traffic(id.as_bytes());
            let steward = group
                .steward
                .take()
                .map(|s| StewardDuty::restore(s, now))
                .transpose()?;
            let mut session =
                GroupSession::new(id.clone(), engine.wallet.address(), mls, steward, now)?;
            session.replay_traffic(traffic)?;
            let proposals = session.restore_parts(group, now)?;
            open.insert(id.clone(), proposals);
            engine.groups.insert(id.clone(), session);
            engine.out.requests.push_back(Request::Subscribe(id));
        }
        for join in snapshot.joins {
            let attempt = JoinAttempt::restore(join)?;
            engine
                .out
                .requests
                .push_back(Request::Subscribe(attempt.group().clone()));
            engine.joins.insert(attempt.group().clone(), attempt);
        }
        let (mut ctx, groups, _, _) = engine.split(now);
        for (id, session) in groups.iter_mut() {
            session.take_in_again(open.remove(id).unwrap_or_default(), &mut ctx);
        }
        // Taking the proposals in again told the shell nothing it did not record before it
        // stopped; what it does next (its votes to send again) is in the transmits.
        ctx.out.events.clear();
        for session in groups.values_mut() {
            session.settle(&mut ctx)?;
        }
        Ok(engine)
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.wallet.address()
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Changes how this node votes from now on. Turned automatic, it votes at once on the
    /// open proposals it has not voted on, as it would have when they arrived.
    pub fn set_vote_policy(&mut self, policy: crate::VotePolicy, now: Timestamp) {
        self.config.vote_policy = policy;
        if policy != crate::VotePolicy::Automatic {
            return;
        }
        let (mut ctx, groups, _, _) = self.split(now);
        for (id, session) in groups.iter_mut().filter(|(_, s)| s.departed.is_none()) {
            if let Err(error) = session
                .vote_on_unvoted(&mut ctx)
                .and_then(|()| session.settle(&mut ctx))
            {
                tracing::warn!(group = %id, %error, "votes after turning automatic failed");
            }
        }
    }

    /// A fresh key package of this node (an MLS KeyPackage message), e.g. to hand
    /// to a steward out of band. Its private keys stay in this engine's store.
    pub fn key_package(&mut self, now: Timestamp) -> Result<Vec<u8>, EngineError> {
        let message = self.client.generate_key_package_message(
            ExtensionList::new(),
            ExtensionList::new(),
            Some(now.mls_time()),
        )?;
        Ok(message.to_bytes()?)
    }

    /// Every input goes through here (its `now` first of all).
    pub(crate) fn split(
        &mut self,
        now: Timestamp,
    ) -> (
        Ctx<'_>,
        &mut BTreeMap<GroupId, GroupSession>,
        &mut BTreeMap<GroupId, JoinAttempt>,
        &MlsClient,
    ) {
        self.notice_stall(now);
        (
            Ctx {
                wallet: &self.wallet,
                config: &self.config,
                suite: &self.suite,
                now,
                out: &mut self.out,
            },
            &mut self.groups,
            &mut self.joins,
            &self.client,
        )
    }

    /// Whether the input at `now` comes long after a deadline the driver was given: the
    /// process was stopped or starved, and what the group did meanwhile may still be on its
    /// way (in socket buffers, in the store). A steward woken from a nap that committed its
    /// missed turn at once would fork the group from the backup that committed in its
    /// place, and strand the joiners that backup welcomed.
    fn notice_stall(&mut self, now: Timestamp) {
        let Some(due) = self.deadline.take() else {
            return;
        };
        let late_ms = now.0.saturating_sub(due.0);
        if late_ms == 0 {
            return;
        }
        for session in self.groups.values_mut() {
            session.stalled(now, late_ms, &self.config);
        }
    }

    pub(crate) fn session(
        &mut self,
        group: &GroupId,
        now: Timestamp,
    ) -> Result<(Ctx<'_>, &mut GroupSession), EngineError> {
        let (ctx, groups, _, _) = self.split(now);
        let session = groups
            .get_mut(group)
            .filter(|s| s.departed.is_none())
            .ok_or_else(|| EngineError::UnknownGroup(group.clone()))?;
        Ok((ctx, session))
    }

    // ----- commands -----

    /// Creates a group with this node as its steward.
    pub fn create_group(
        &mut self,
        group: GroupId,
        params: GroupParams,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        if self.groups.contains_key(&group) {
            return Err(EngineError::GroupExists(group));
        }
        params.admission.validate()?;
        let ext = GroupParamsExt {
            version: 1,
            mode: params.mode.to_byte(),
            sn_min: params.sn_min.max(1),
            sn_max: params.sn_max.max(params.sn_min).max(1),
            stewards: vec![*self.wallet.address().as_bytes()],
            election_epoch: 0,
            retry_round: 0,
            vote_timeout_secs: params.vote_timeout_secs.min(crate::rules::MAX_VOTE_SECS),
            liveness_yes: params.liveness_yes,
            max_proposals_per_member: params.max_proposals_per_member,
            admission: params.admission.encode(),
        };
        let extensions: ExtensionList = vec![
            ext.into_extension()
                .map_err(|e| EngineError::Mls(e.to_string()))?,
            crate::rules::Rules::of(&params, &self.config).to_extension()?,
        ]
        .into();
        let mut mls = self.client.create_group_with_id(
            group.as_bytes().to_vec(),
            extensions,
            ExtensionList::new(),
            Some(now.mls_time()),
        )?;
        mls.write_to_storage()?;
        let session = GroupSession::new(
            group.clone(),
            self.wallet.address(),
            mls,
            Some(StewardDuty::new(&self.suite, now)?),
            now,
        )?;
        self.groups.insert(group.clone(), session);
        self.out
            .requests
            .push_back(Request::Subscribe(group.clone()));
        self.out.events.push_back(Event::GroupCreated { group });
        self.handle_timeout(now);
        Ok(())
    }

    /// Asks to join `group`: this node's key package goes, sealed, to the group's
    /// steward once an announcement is seen (optionally only from `steward`).
    pub fn request_join(
        &mut self,
        group: GroupId,
        steward: Option<Address>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        self.start_join(JoinAttempt::new(group, steward), now)
    }

    /// Asks to join the group an invitation (as made by [`Engine::invite`]) is for,
    /// presenting it to the steward: the inviter's YES, signed ahead.
    pub fn request_join_invited(
        &mut self,
        group: GroupId,
        invitation: &[u8],
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let invited = Invited::decode(invitation, &group, now)?;
        if invited.invitee != self.address() {
            return Err(InvitationError::OtherInvitee(invited.invitee).into());
        }
        let attempt = JoinAttempt::new(group, None).with_invitation(Some(invited.wire));
        self.start_join(attempt, now)
    }

    fn start_join(&mut self, mut attempt: JoinAttempt, now: Timestamp) -> Result<(), EngineError> {
        let group = attempt.group().clone();
        if self.active(&group).is_some() {
            return Err(EngineError::GroupExists(group));
        }
        // A member that was removed asks again: its old state goes (its history stays
        // with the shell).
        if self.groups.remove(&group).is_some() {
            self.store.delete_group(group.as_bytes());
        }
        self.out
            .requests
            .push_back(Request::Subscribe(group.clone()));
        if let Some(announcement) = self.announcements.get(&group).cloned() {
            let (mut ctx, _, _, client) = self.split(now);
            // An announcement from a steward the user did not ask for is simply not used.
            if let Err(error) = attempt.on_announcement(announcement, client, &mut ctx) {
                tracing::debug!(%group, %error, "known announcement not used");
            }
        }
        self.joins.insert(group, attempt);
        Ok(())
    }

    /// Proposes removing `member` from `group`.
    pub fn propose_remove(
        &mut self,
        group: &GroupId,
        member: Address,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        if !session.members().contains(&member) {
            return Err(EngineError::NotMember(member));
        }
        if member == ctx.wallet.address() {
            return Err(EngineError::InvalidProposal(
                "use leave to remove yourself".into(),
            ));
        }
        session.request(Motion::Change(Change::Remove { target: member }), &mut ctx)?;
        session.settle(&mut ctx)
    }

    /// Chat messages of `group` this node delivered before a restart (the shell's history,
    /// newest last): they count as delivered, so histories that name them show no gap.
    pub fn remember_chat(
        &mut self,
        group: &GroupId,
        delivered: impl IntoIterator<Item = (Vec<u8>, Epoch)>,
    ) {
        if let Some(session) = self.groups.get_mut(group) {
            for (id, epoch) in delivered {
                session.chat.remember(id, epoch);
            }
        }
    }

    /// Invites `invitee` to `group` until `expires_at`: this member's YES on admitting it,
    /// signed ahead and told to the group. Returns the invitation, for the invitee to
    /// present with [`Engine::request_join_invited`].
    pub fn invite(
        &mut self,
        group: &GroupId,
        invitee: Address,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<u8>, EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let invited = session.invite(invitee, expires_at, &mut ctx)?;
        session.settle(&mut ctx)?;
        Ok(invited.to_bytes())
    }

    /// Replaces this node's leaf keys in `group` now (for post-compromise security): sends
    /// an MLS Update proposal, which needs no vote; the epoch's committer commits it with
    /// an UpdatePath. Asking again before it is committed changes nothing.
    pub fn rotate(&mut self, group: &GroupId, now: Timestamp) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.request_update(&mut ctx)?;
        session.settle(&mut ctx)
    }

    /// Leaves `group`: proposes this node's own removal, which needs no vote.
    pub fn leave(&mut self, group: &GroupId, now: Timestamp) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let me = ctx.wallet.address();
        if session.state.mode == crate::StewardMode::Single && session.stewards() == [me] {
            return Err(EngineError::InvalidProposal(
                "the only steward cannot leave its group".into(),
            ));
        }
        session.request(Motion::Change(Change::Remove { target: me }), &mut ctx)?;
        session.settle(&mut ctx)
    }

    /// The answer to an [`Request::AdmissionCheck`]: whether `subject` meets the
    /// group's admission policy, as read from the chain.
    pub fn admission_verdict(
        &mut self,
        group: &GroupId,
        subject: Address,
        verdict: demls_policy::Verdict,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.admission_verdict(subject, verdict, &mut ctx)?;
        session.settle(&mut ctx)
    }

    /// Votes on an open proposal.
    pub fn vote(
        &mut self,
        group: &GroupId,
        proposal: ProposalId,
        yes: bool,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.vote(proposal, yes, &mut ctx)?;
        // A person's vote on adding or removing someone stands until the change is made
        // or voted down, also when the change is proposed again in a later epoch.
        if let Some(open) = session.state.open.get(&proposal) {
            session.ballot.stand(open.kind(), yes);
        }
        session.settle(&mut ctx)
    }

    /// Records this member's person's decision on adding or removing someone, ahead of
    /// its vote or during it: cast on the open proposal for it now, and on every later
    /// proposal for it until the change is made. Only [`ChangeKind::Add`] and
    /// [`ChangeKind::Remove`] are decided so.
    pub fn decide(
        &mut self,
        group: &GroupId,
        change: ChangeKind,
        yes: bool,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        if !matches!(change, ChangeKind::Add(_) | ChangeKind::Remove(_)) {
            return Err(EngineError::InvalidProposal(
                "a person decides only on adding or removing someone".into(),
            ));
        }
        let (mut ctx, session) = self.session(group, now)?;
        session.ballot.stand(change.clone(), yes);
        session.reconsider(&change, &mut ctx)?;
        session.settle(&mut ctx)
    }

    /// Sends a chat message to `group`.
    pub fn send_message(
        &mut self,
        group: &GroupId,
        text: &str,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.send_chat(text, &mut ctx)
    }

    /// Sets this node's display name in `group` (empty: none) and tells the members; it is
    /// sent again after each commit that adds members. At most
    /// [`crate::MAX_DISPLAY_NAME_BYTES`] bytes, no control characters.
    pub fn set_display_name(
        &mut self,
        group: &GroupId,
        name: &str,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.set_display_name(name, &mut ctx)
    }

    // ----- input -----

    /// Handles bytes received on one of this node's topics.
    ///
    /// An error means the message was dropped and nothing changed; its
    /// [`EngineError::kind`] names the reason.
    pub fn handle_message(&mut self, bytes: &[u8], now: Timestamp) -> Result<(), EngineError> {
        self.notice_stall(now);
        if bytes.len() > self.config.max_message_size {
            return Err(EngineError::Oversize {
                len: bytes.len(),
                max: self.config.max_message_size,
            });
        }
        let envelope = Envelope::decode(bytes)?;
        if envelope.version != WIRE_VERSION {
            return Err(EngineError::UnsupportedVersion(envelope.version));
        }
        let group = GroupId::new(&envelope.group_id)?;
        let body = envelope
            .body
            .ok_or_else(|| EngineError::Malformed("empty envelope".into()))?;
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if !self.recent.insert(hash) {
            // A chat message sent again in answer to a repair request: others need not answer.
            if let (envelope::Body::MlsMessage(mls), Some(session)) =
                (&body, self.groups.get_mut(&group))
            {
                session.chat.heard_again(mls);
            }
            return Err(EngineError::Duplicate);
        }
        let handled = self.handle_body(group, body, now);
        if let Err(EngineError::BufferFull) = handled {
            // Not taken in for want of room, not for what it is: a copy that comes again (a
            // repair, a store answer) must not be dropped as a repeat.
            self.recent.forget(&hash);
        }
        handled
    }

    /// Handles an envelope's body for `group` (its repeats already dropped).
    fn handle_body(
        &mut self,
        group: GroupId,
        body: envelope::Body,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        match body {
            envelope::Body::Announcement(announcement) => {
                self.handle_announcement(group, &announcement, now)
            }
            envelope::Body::JoinRequest(request) => {
                let (mut ctx, session) = self.session(&group, now)?;
                session.handle_join_request(request, &mut ctx)?;
                session.settle(&mut ctx)
            }
            envelope::Body::Welcome(bundle) => self.handle_welcome(group, bundle, now),
            envelope::Body::JoinRefused(refusal) if self.groups.contains_key(&group) => {
                let (mut ctx, session) = self.session(&group, now)?;
                session.on_join_refused(&refusal, &mut ctx)
            }
            envelope::Body::JoinRefused(refusal) => {
                let (mut ctx, _, joins, _) = self.split(now);
                let attempt = joins.get_mut(&group).ok_or(EngineError::NotForUs)?;
                attempt.refused(refusal, &mut ctx)?;
                joins.remove(&group);
                self.out.requests.push_back(Request::Unsubscribe(group));
                Ok(())
            }
            envelope::Body::SyncRequest(request) => {
                let (mut ctx, session) = self.session(&group, now)?;
                session.handle_sync_request(request, &mut ctx)?;
                session.settle(&mut ctx)
            }
            envelope::Body::MlsMessage(message) if !self.groups.contains_key(&group) => {
                let (ctx, _, joins, _) = self.split(now);
                let attempt = joins
                    .get_mut(&group)
                    .ok_or(EngineError::UnknownGroup(group))?;
                attempt.keep_early(message, &ctx)
            }
            envelope::Body::MlsMessage(message) => {
                // A departed member still weighs commits: its removal may lose to a better one.
                let (mut ctx, groups, _, _) = self.split(now);
                let session = groups
                    .get_mut(&group)
                    .ok_or(EngineError::UnknownGroup(group))?;
                session.receive_mls(&message, &mut ctx)
            }
        }
    }

    fn handle_announcement(
        &mut self,
        group: GroupId,
        announcement: &crate::wire::GroupAnnouncement,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let verified = Announcement::verify(announcement)?;
        self.announcements.insert(group.clone(), verified.clone());
        if let Some(session) = self.groups.get_mut(&group) {
            session.on_peer_mark(announcement.epoch, &announcement.branch, now);
            return Ok(());
        }
        let (mut ctx, _, joins, client) = self.split(now);
        match joins.get_mut(&group) {
            Some(attempt) => attempt.on_announcement(verified, client, &mut ctx),
            None => Ok(()),
        }
    }

    fn handle_welcome(
        &mut self,
        group: GroupId,
        bundle: crate::wire::WelcomeBundle,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, groups, joins, client) = self.split(now);
        if let Some(session) = groups.get_mut(&group) {
            // A joiner welcomed on both sides of a fork keeps the other side (a Welcome sent
            // again is not opened again: joining is the costliest step at scale).
            if !session.arrivals.keeps_welcome(&bundle)
                && let Err(error) = session.open_second_welcome(&bundle, client, now)
            {
                tracing::debug!(%group, %error, "Welcome not opened as another branch");
            }
            // Members keep Welcomes, to send again to a joiner that lost its.
            session.arrivals.keep_welcome(bundle);
            return Ok(());
        }
        let attempt = joins.get_mut(&group).ok_or(EngineError::NotForUs)?;
        let session = attempt.handle_welcome(bundle, client, &mut ctx)?;
        joins.remove(&group);
        groups.insert(group, session);
        Ok(())
    }

    /// Forgets groups this node left long enough ago, moves joiners to the other branch
    /// they were welcomed into when the group lives there, and turns sessions on a dead
    /// branch back into join attempts.
    fn tidy_groups(&mut self, now: Timestamp) {
        let gone: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, s)| s.fallen(Timer::Departed, &self.config, now))
            .map(|(id, _)| id.clone())
            .collect();
        for group in gone {
            self.groups.remove(&group);
            self.store.delete_group(group.as_bytes());
            self.out.requests.push_back(Request::Unsubscribe(group));
        }
        let switching: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, s)| s.fallen(Timer::OtherBranch, &self.config, now))
            .map(|(id, _)| id.clone())
            .collect();
        for group in switching {
            let (mut ctx, groups, _, client) = self.split(now);
            let Some(session) = groups.get_mut(&group) else {
                continue;
            };
            match session.switch_to_other_branch(client, &mut ctx) {
                Ok(Some(other)) => {
                    groups.insert(group, other);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%group, %error, "cannot switch to the other branch");
                }
            }
        }
        let dead: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, s)| s.fallen(Timer::DeadBranch, &self.config, now))
            .map(|(id, _)| id.clone())
            .collect();
        for group in dead {
            tracing::warn!(%group, "the group lives on another branch: asking to join it again");
            self.groups.remove(&group);
            self.store.delete_group(group.as_bytes());
            self.out.events.push_back(Event::Rejoining {
                group: group.clone(),
            });
            let mut attempt = JoinAttempt::new(group.clone(), None);
            if let Some(announcement) = self.announcements.get(&group).cloned() {
                let (mut ctx, _, _, client) = self.split(now);
                if let Err(error) = attempt.on_announcement(announcement, client, &mut ctx) {
                    tracing::warn!(%group, %error, "rejoin request failed");
                }
            }
            self.joins.insert(group, attempt);
        }
    }

    /// The session of a group this node is an active member of.
    fn active(&self, group: &GroupId) -> Option<&GroupSession> {
        self.groups.get(group).filter(|s| s.departed.is_none())
    }

    /// Applies everything due at `now`: vote deadlines, retries, announcements, overdue commits.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let (mut ctx, groups, joins, client) = self.split(now);
        for (id, session) in groups.iter_mut() {
            if let Err(error) = session.handle_timeout(&mut ctx) {
                tracing::warn!(group = %id, %error, "timer work failed");
            }
        }
        for (id, attempt) in joins.iter_mut() {
            if let Err(error) = attempt.handle_timeout(client, &mut ctx) {
                tracing::warn!(group = %id, %error, "join retry failed");
            }
        }
        self.tidy_groups(now);
    }

    // ----- output -----

    /// When [`Engine::handle_timeout`] should next be called.
    ///
    /// The engine remembers the answer until the next input: an input a whole steward turn
    /// after it means the driver could not serve the timer (the process was stopped), and the
    /// engine then hears that group for a turn before it commits or judges anyone silent.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let groups = self
            .groups
            .values()
            .filter_map(|s| s.poll_timeout(&self.config));
        let joins = self.joins.values().filter_map(JoinAttempt::poll_timeout);
        let deadline = groups.chain(joins).min();
        self.deadline.set(deadline);
        deadline
    }

    /// The next message to publish.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next thing the shell must do, before it publishes the transmits made with it.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.out.requests.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Drains everything produced since the last call, to apply as [`crate::Output`] says.
    /// An error means some state could not be encoded: the transmits made since the last
    /// successful call must then not be published.
    pub fn take_output(&mut self) -> Result<crate::Output, EngineError> {
        let writes = self.take_storage_writes()?;
        let snapshot = self.snapshot_parts()?;
        let snapshot = self.journal.write(snapshot);
        Ok(crate::Output {
            writes,
            snapshot,
            requests: self.out.requests.drain(..).collect(),
            transmits: self.out.transmits.drain(..).collect(),
            events: self.out.events.drain(..).collect(),
        })
    }

    /// MLS state written since the last call, to persist before publishing.
    ///
    /// Application messages move a group's key schedule on without writing it each time;
    /// this call writes every such group once: as its [`crate::StorageWrite::GroupTraffic`]
    /// (what moved it, replayed at restore) while that is lighter than the whole state, else
    /// whole. Where the store keeps no journal, the state is written whole in memory. An
    /// error means a group's state could not be encoded:
    /// the transmits made since the last successful call must then not be published.
    pub fn take_storage_writes(
        &mut self,
    ) -> Result<Vec<crate::mls::store::StorageWrite>, EngineError> {
        for session in self.groups.values_mut() {
            session.save_mls_if_moved(&self.store)?;
        }
        Ok(self.store.take_writes())
    }

    // ----- views -----

    /// The groups this node is a member of.
    pub fn groups(&self) -> impl Iterator<Item = &GroupId> {
        self.groups
            .iter()
            .filter(|(_, s)| s.departed.is_none())
            .map(|(id, _)| id)
    }

    /// The groups this node asked to join and has not joined yet.
    pub fn pending_joins(&self) -> impl Iterator<Item = &GroupId> {
        self.joins.keys()
    }

    /// The stewards of `group` in the order they take up a join request of `joiner` in this
    /// epoch: the first proposes it at once, each other only if nobody has by its turn (empty
    /// if this node is not a member).
    pub fn join_turns(&self, group: &GroupId, joiner: Address) -> Vec<Address> {
        self.active(group)
            .map(|session| session.take_up_order(joiner))
            .unwrap_or_default()
    }

    /// How far this node's join of `group` has come, if it is asking to join it.
    pub fn join_stage(&self, group: &GroupId) -> Option<crate::JoinStage> {
        self.joins.get(group).map(JoinAttempt::stage)
    }

    /// Members' display names in `group` (empty if this node is not a member): the part
    /// of [`GroupView::display_names`] a shell needs per chat message, without the rest.
    pub fn display_names(&self, group: &GroupId) -> BTreeMap<Address, String> {
        self.active(group)
            .map(|session| session.names.view())
            .unwrap_or_default()
    }

    /// A view of one group.
    pub fn group(&self, group: &GroupId) -> Option<GroupView> {
        let session = self.active(group)?;
        Some(GroupView {
            id: group.clone(),
            epoch: session.epoch(),
            members: session.members(),
            stewards: session.state.stewards_in_office(),
            is_steward: session
                .state
                .stewards_in_office()
                .contains(&self.wallet.address()),
            mode: session.state.mode,
            committers: session.state.committers(),
            authenticator: session.authenticator(),
            open_proposals: session.tallies(),
            admission: session.state.policy.clone(),
            join_rule: session.state.rules.join_rule,
            membership_vote_timeout_secs: session.state.rules.membership_vote_timeout_secs,
            invitations: session
                .invitations
                .all()
                .map(|i| (i.invitee, i.inviter, i.expires_at))
                .collect(),
            rotation: session.state.rules.rotation,
            key_ages: session.key_age_list(),
            steward_scores: session.steward_scores(&self.config.scoring),
            buffered_joiners: session.key_packages.joiners(),
            display_names: session.names.view(),
            joined_epoch: Epoch(session.chat.joined_epoch()),
        })
    }
}
