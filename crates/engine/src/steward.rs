//! The steward's duties: announcing the group, taking in key packages, committing.

use std::collections::BTreeMap;

use demls_consensus::wire;
use demls_identity::Address;
use mls_rs::CipherSuiteProvider;
use mls_rs::crypto::{HpkeCiphertext, HpkePublicKey, HpkeSecretKey};
use mls_rs::extension::MlsExtension;
use mls_rs::group::ReceivedMessage;
use prost::Message;

use crate::bounded::BoundedSet;
use crate::change::{Change, key_package_of};
use crate::commit::{Rank, ValidCommit, effects, elected_params};
use crate::context::Ctx;
use crate::epoch::SeenCommit;
use crate::invitation::{InvitationError, Invited};
use crate::mls::rules::with_committer_rotation;
use crate::mls::{CIPHER_SUITE, GroupParamsExt, TreeKeyExt, VerifyingSuite, suite};
use crate::motion::Motion;
use crate::rotation::self_update_of;
use crate::session::GroupSession;
use crate::snapshot::{IntakeSnapshot, StewardSnapshot};
use crate::wire::{
    CommitManifest, GroupAnnouncement, JoinRequest, SealedJoin, WelcomeBundle, check_signed_by,
    envelope, signing_bytes,
};
use crate::{EngineError, Event, GroupId, StewardMode, Timestamp, TopicKind};

/// HPKE `info` for join requests of `group`.
pub(crate) fn join_info(group: &GroupId) -> Vec<u8> {
    [b"demls/join/v1".as_slice(), group.as_bytes()].concat()
}

/// HPKE associated data binding a join request to its joiner and steward.
pub(crate) fn join_aad(joiner: Address, steward: Address) -> Vec<u8> {
    [joiner.as_bytes().as_slice(), steward.as_bytes()].concat()
}

/// The AEAD nonce of an encrypted ratchet tree: zero, because each key seals one tree.
pub(crate) const TREE_NONCE: [u8; 12] = [0; 12];

/// Most key package references a steward remembers, to refuse replays.
const SEEN_KEY_PACKAGES: usize = 65_536;
/// A joiner's requests are taken in at most once per this many milliseconds; honest joiners
/// retry every few seconds, a flood from one address costs one HPKE open per interval.
const JOIN_REQUEST_SPACING_MS: u64 = 1_000;
/// Most joiners whose last request time is remembered for pacing.
const PACED: usize = 4096;

/// A key package waiting for its vote and commit.
struct Intake {
    reference: Vec<u8>,
    /// A request this steward holds back because another steward's turn comes first.
    deferred: Option<Deferred>,
}

/// A join request a steward takes up only if nobody has proposed its joiner by `due`.
///
/// Every steward in office gets the request (the joiner seals one to each); the first of the
/// joiner's take-up order takes it up at once and the others one steward timeout apart, so
/// that a silent or censoring steward does not strand the joiner and one vote is opened.
struct Deferred {
    due: Timestamp,
    sealed: SealedJoin,
    rejoin: bool,
}

/// A commit built but not yet sent or applied.
pub(crate) struct PreparedCommit {
    pub(crate) commit: ValidCommit,
    welcomes: Vec<WelcomeBundle>,
}

/// What a steward keeps besides its membership: the key joiners seal their
/// key packages to, and the key packages it took in.
pub(crate) struct StewardDuty {
    hpke_secret: HpkeSecretKey,
    hpke_public: HpkePublicKey,
    next_announce: Timestamp,
    intake: BTreeMap<Address, Intake>,
    seen_key_packages: BoundedSet<Vec<u8>>,
    /// Joiners waiting for their admission check (gated groups).
    pub(crate) waiting: BTreeMap<Address, Change>,
    /// When each joiner's last request was taken in.
    last_request: BTreeMap<Address, Timestamp>,
}

impl StewardDuty {
    /// The state to persist.
    pub(crate) fn snapshot(&self) -> StewardSnapshot {
        StewardSnapshot {
            hpke_secret: self.hpke_secret.to_vec(),
            hpke_public: self.hpke_public.to_vec(),
            seen_key_packages: self.seen_key_packages.iter().cloned().collect(),
            intake: self
                .intake
                .iter()
                .map(|(joiner, intake)| IntakeSnapshot {
                    joiner: joiner.as_bytes().to_vec(),
                    reference: intake.reference.clone(),
                    deferred: intake.deferred.as_ref().map(|d| d.sealed.encode_to_vec()),
                    deferred_until_ms: intake.deferred.as_ref().map_or(0, |d| d.due.0),
                    rejoin: intake.deferred.as_ref().is_some_and(|d| d.rejoin),
                })
                .collect(),
        }
    }

    /// A steward resuming from persisted state.
    pub(crate) fn restore(snapshot: StewardSnapshot, now: Timestamp) -> Result<Self, EngineError> {
        let intake = snapshot
            .intake
            .into_iter()
            .map(|i| {
                let joiner = Address::from_slice(&i.joiner)
                    .ok_or_else(|| EngineError::Malformed("snapshot: intake address".into()))?;
                let deferred = match i.deferred {
                    Some(sealed) => Some(Deferred {
                        due: Timestamp(i.deferred_until_ms),
                        sealed: SealedJoin::decode(sealed.as_slice())?,
                        rejoin: i.rejoin,
                    }),
                    None => None,
                };
                Ok((
                    joiner,
                    Intake {
                        reference: i.reference,
                        deferred,
                    },
                ))
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(Self {
            hpke_secret: HpkeSecretKey::from(snapshot.hpke_secret),
            hpke_public: HpkePublicKey::from(snapshot.hpke_public),
            next_announce: now,
            intake,
            seen_key_packages: seen_set(snapshot.seen_key_packages),
            waiting: BTreeMap::new(),
            last_request: BTreeMap::new(),
        })
    }

    /// A new steward's state, with a fresh HPKE key for join requests.
    pub(crate) fn new(suite: &VerifyingSuite, now: Timestamp) -> Result<Self, EngineError> {
        let (hpke_secret, hpke_public) = suite
            .kem_generate()
            .map_err(|e| EngineError::Crypto(format!("kem generate: {e:?}")))?;
        Ok(Self {
            hpke_secret,
            hpke_public,
            next_announce: now,
            intake: BTreeMap::new(),
            seen_key_packages: seen_set(Vec::new()),
            waiting: BTreeMap::new(),
            last_request: BTreeMap::new(),
        })
    }
}

impl StewardDuty {
    /// Takes a request of `joiner` in only if its last one is old enough.
    fn pace(&mut self, joiner: Address, now: Timestamp) -> Result<(), EngineError> {
        if self
            .last_request
            .get(&joiner)
            .is_some_and(|last| last.plus_ms(JOIN_REQUEST_SPACING_MS) > now)
        {
            return Err(EngineError::RateLimited(joiner));
        }
        if self.last_request.len() >= PACED {
            self.last_request
                .retain(|_, last| last.plus_ms(JOIN_REQUEST_SPACING_MS) > now);
        }
        if self.last_request.len() < PACED {
            self.last_request.insert(joiner, now);
        }
        Ok(())
    }
}

/// The replay set, from the references a snapshot kept (oldest first).
fn seen_set(references: Vec<Vec<u8>>) -> BoundedSet<Vec<u8>> {
    let mut set = BoundedSet::new(SEEN_KEY_PACKAGES);
    for reference in references {
        set.insert(reference);
    }
    set
}

impl GroupSession {
    /// Whether this member is a steward in office (and so announces and takes in join requests).
    fn in_office(&self, me: Address) -> bool {
        self.state.stewards_in_office().contains(&me)
    }

    /// Publishes a signed announcement of the group on its welcome topic.
    fn announce(&mut self, ctx: &mut Ctx<'_>) {
        let member_count = u32::try_from(self.state.members().len()).unwrap_or(u32::MAX);
        let (epoch, branch) = (self.state.epoch(), self.state.branch());
        let policy = self.state.policy.encode();
        let Some(duty) = self.steward.as_mut() else {
            return;
        };
        let mut announcement = GroupAnnouncement {
            cipher_suite: u32::from(*CIPHER_SUITE),
            steward: ctx.wallet.address().as_bytes().to_vec(),
            steward_hpke_key: duty.hpke_public.to_vec(),
            epoch,
            issued_at_ms: ctx.now.0,
            member_count,
            branch,
            admission_policy: policy,
            signature: Vec::new(),
        };
        let signed = signing_bytes(&announcement, |a| a.signature.clear());
        announcement.signature = ctx.wallet.sign_personal(&signed).as_bytes().to_vec();
        duty.next_announce = ctx.now.plus_ms(ctx.config.announce_interval_ms);
        ctx.send(
            &self.id,
            TopicKind::Welcome,
            envelope::Body::Announcement(announcement),
        );
    }

    /// A sealed key package on the welcome topic: verified, then put to the vote.
    pub(crate) fn handle_join_request(
        &mut self,
        request: JoinRequest,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        // Every member hears the welcome topic; requests are for stewards only.
        if self.steward.is_none() || request.steward.as_slice() != me.as_bytes() {
            return Err(EngineError::NotForUs);
        }
        #[cfg(feature = "byzantine")]
        if self.byzantine.ignoring_joiners {
            return Err(EngineError::NotForUs);
        }
        let joiner = Address::from_slice(&request.joiner)
            .ok_or_else(|| EngineError::Malformed("joiner is not an address".into()))?;
        check_signed_by(
            &request,
            &request.signature,
            |r| r.signature.clear(),
            joiner,
        )?;
        let Some(duty) = self.steward.as_mut() else {
            return Err(EngineError::NotForUs);
        };
        duty.pace(joiner, ctx.now)?;
        let sealed = HpkeCiphertext {
            kem_output: request.kem_output,
            ciphertext: request.ciphertext,
        };
        let plaintext = suite()
            .hpke_open(
                &sealed,
                &duty.hpke_secret,
                &duty.hpke_public,
                &join_info(&self.id),
                Some(&join_aad(joiner, me)),
            )
            .map_err(|e| EngineError::Crypto(format!("join request does not open: {e:?}")))?;
        let sealed = SealedJoin::decode(plaintext.as_slice())?;
        let change = Change::add_from_bytes(&sealed.key_package)?;
        let Change::Add {
            address,
            key_package,
            ..
        } = &change
        else {
            return Err(EngineError::Malformed(
                "join request without a key package".into(),
            ));
        };
        if *address != joiner {
            return Err(EngineError::SenderMismatch {
                sender: joiner,
                claimed: *address,
            });
        }
        let reference = key_package_of(key_package)?
            .to_reference(&suite())
            .map_err(EngineError::from)?
            .to_vec();
        // A member asking again: admitted but its Welcome was lost (send it again), or
        // it lost its state or sits on a dead branch (re-add it, by vote).
        let rejoin = self.state.is_member(&joiner);
        if rejoin && self.resend_welcome(&reference, ctx) {
            return Ok(());
        }
        if rejoin && self.arrivals.added_with(&joiner, &reference) {
            // Added with this very key package: its Welcome is on its way (slower than its
            // retry), not lost state. Re-adding it would throw out the state it is about to have.
            return Err(EngineError::Duplicate);
        }
        self.check_intake(joiner, &reference, ctx.config.max_join_intake)?;
        match self
            .state
            .mls
            .process_incoming_message_with_time((**key_package).clone(), ctx.now.mls_time())?
        {
            ReceivedMessage::KeyPackage(_) => {}
            _ => return Err(EngineError::Malformed("not a key package".into())),
        }
        let turn = self.take_up_turn(joiner, me);
        let deferred = match turn {
            Some(0) => None,
            // Another steward's turn comes first: it got the same request, and proposes it.
            Some(position) => Some(Deferred {
                due: self.take_up_due(position, ctx.now, ctx.config),
                sealed: sealed.clone(),
                rejoin,
            }),
            // Not a committer of this epoch (on its way out): it keeps the request from
            // being taken in twice, and leaves it to the committers.
            None => {
                tracing::debug!(group = %self.id, %joiner, "join request left to the committers");
                None
            }
        };
        let take_up_now = turn == Some(0);
        if let Some(duty) = self.steward.as_mut() {
            duty.seen_key_packages.insert(reference.clone());
            duty.intake.insert(
                joiner,
                Intake {
                    reference,
                    deferred,
                },
            );
        }
        if !take_up_now {
            return Ok(());
        }
        self.take_up(joiner, sealed, rejoin, ctx)
    }

    /// The order in which the committers of this epoch take up a join request of `joiner`:
    /// their Layer 1 order, rotated by the joiner's address. Every steward computes the same
    /// order, so one of them proposes the joiner; and joiners spread over the stewards, each
    /// of which opens at most `max_proposals_per_member` proposals an epoch (with the epoch
    /// steward first for every joiner, a crowd of joiners waited epochs for it).
    pub(crate) fn take_up_order(&self, joiner: Address) -> Vec<Address> {
        let mut order = self.state.committers();
        if !order.is_empty() {
            let tail: [u8; 4] = joiner.as_bytes()[16..20].try_into().unwrap_or_default();
            let offset = usize::try_from(u32::from_be_bytes(tail)).unwrap_or(0) % order.len();
            order.rotate_left(offset);
        }
        order
    }

    /// This steward's place in [`Self::take_up_order`].
    fn take_up_turn(&self, joiner: Address, me: Address) -> Option<usize> {
        self.take_up_order(joiner).iter().position(|c| *c == me)
    }

    /// When a steward at `position` of a joiner's take-up order takes it up, counting from
    /// `from`: one steward timeout per steward before it.
    fn take_up_due(
        &self,
        position: usize,
        from: Timestamp,
        config: &crate::EngineConfig,
    ) -> Timestamp {
        from.plus_ms(
            u64::try_from(position)
                .unwrap_or(u64::MAX)
                .saturating_mul(self.state.rules.timers.commit_ms(config)),
        )
    }

    /// Puts a joiner whose request this steward took in to the vote (or to the group's
    /// admission check first), after checking the invitation it presented.
    fn take_up(
        &mut self,
        joiner: Address,
        sealed: SealedJoin,
        rejoin: bool,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        if let Some(invitation) = sealed.invitation
            && let Err(error) = self.take_presented_invitation(joiner, invitation, ctx)
        {
            self.steward_forget(joiner);
            return Err(error);
        }
        ctx.emit(Event::JoinRequestAccepted {
            group: self.id.clone(),
            joiner,
        });
        if rejoin {
            // A member is re-added without a new admission check: it was admitted before.
            return self.request(
                Motion::Change(Change::key_package_change(&sealed.key_package, true)?),
                ctx,
            );
        }
        let invitation = self
            .invitations
            .of(&joiner, ctx.now)
            .map(|invited| invited.wire.clone());
        let change = Change::add_from_bytes(&sealed.key_package)?.with_invitation(invitation);
        if self.gated() {
            return self.hold_for_admission(joiner, change, ctx);
        }
        self.request(Motion::Change(change), ctx)
    }

    /// Takes up each held-back request whose turn has come and whose joiner nobody has
    /// proposed meanwhile (its add is kept in the key package buffer once proposed).
    fn take_up_deferred(&mut self, ctx: &mut Ctx<'_>) {
        let Some(duty) = self.steward.as_mut() else {
            return;
        };
        let due: Vec<(Address, Deferred)> = duty
            .intake
            .iter_mut()
            .filter(|(_, intake)| intake.deferred.as_ref().is_some_and(|d| d.due <= ctx.now))
            .filter_map(|(joiner, intake)| Some((*joiner, intake.deferred.take()?)))
            .collect();
        for (joiner, deferred) in due {
            // A member asking to be added again is a member; anyone else is proposed once
            // added, or once an add of it was seen (buffered, or open in this epoch).
            let proposed = (!deferred.rejoin && self.state.is_member(&joiner))
                || self.key_packages.holds(&joiner)
                || self.state.open.values().any(|o| {
                    matches!(o.motion.as_change(), Some(c @ Change::Add { .. }) if c.subject(o.owner) == joiner)
                });
            if proposed {
                continue;
            }
            if let Err(error) = self.take_up(joiner, deferred.sealed, deferred.rejoin, ctx) {
                tracing::info!(group = %self.id, %joiner, %error, "held-back join request dropped");
            }
        }
    }

    /// When the next held-back join request is due.
    fn deferred_due(&self) -> Option<Timestamp> {
        self.steward
            .as_ref()?
            .intake
            .values()
            .filter_map(|i| i.deferred.as_ref().map(|d| d.due))
            .min()
    }

    /// Whether a key package (by `reference`) of `joiner` may enter the intake: never seen
    /// (key packages are single-use), the joiner not already waiting, and room left.
    fn check_intake(
        &self,
        joiner: Address,
        reference: &Vec<u8>,
        max_intake: usize,
    ) -> Result<(), EngineError> {
        let Some(duty) = self.steward.as_ref() else {
            return Err(EngineError::NotForUs);
        };
        if duty.seen_key_packages.contains(reference) {
            return if duty
                .intake
                .get(&joiner)
                .is_some_and(|i| i.reference == *reference)
            {
                Err(EngineError::Duplicate)
            } else {
                Err(EngineError::ReplayedKeyPackage(joiner))
            };
        }
        if duty.intake.contains_key(&joiner) {
            // One pending key package per joiner: a second one would be a second vote on the same person.
            return Err(EngineError::Duplicate);
        }
        if duty.intake.len() + duty.waiting.len() >= max_intake {
            return Err(EngineError::QueueFull("join requests"));
        }
        Ok(())
    }

    /// The invitation a joiner sealed into its request: kept if it holds; a joiner whose
    /// invitation is for another group, expired, or from a non-member hears why; a forged
    /// one is dropped without an answer.
    fn take_presented_invitation(
        &mut self,
        joiner: Address,
        invitation: crate::wire::Invitation,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let refusal = match Invited::check(invitation, &self.id, ctx.now) {
            Ok(invited) if invited.invitee != joiner => {
                return Err(InvitationError::OtherInvitee(invited.invitee).into());
            }
            Ok(invited) if !self.state.is_member(&invited.inviter) => {
                InvitationError::InviterNotMember(invited.inviter)
            }
            Ok(invited) => {
                self.invitations.keep(invited, ctx.now);
                return Ok(());
            }
            Err(EngineError::Invitation(
                error @ (InvitationError::OtherGroup | InvitationError::Expired),
            )) => error,
            Err(error) => return Err(error),
        };
        self.refuse_joiner(joiner, &format!("its invitation: {refusal}"), ctx);
        Err(refusal.into())
    }

    /// A steward in office refused a joiner (it failed the admission check, its invitation
    /// did not hold, or the members said no): a request for it held back here is dropped, so
    /// that a joiner told no is not put to a vote at this steward's turn behind its back.
    pub(crate) fn on_join_refused(
        &mut self,
        refusal: &crate::wire::JoinRefused,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let steward = Address::from_slice(&refusal.steward)
            .ok_or_else(|| EngineError::Malformed("steward is not an address".into()))?;
        let joiner = Address::from_slice(&refusal.joiner)
            .ok_or_else(|| EngineError::Malformed("joiner is not an address".into()))?;
        let held_back = self
            .steward
            .as_ref()
            .and_then(|duty| duty.intake.get(&joiner))
            .is_some_and(|intake| intake.deferred.is_some());
        // Only another steward in office speaks for the group here.
        let in_office = self.state.stewards_in_office().contains(&steward);
        if !held_back || steward == ctx.wallet.address() || !in_office {
            return Err(EngineError::NotForUs);
        }
        check_signed_by(
            refusal,
            &refusal.signature,
            |r| r.signature.clear(),
            steward,
        )?;
        self.steward_forget(joiner);
        Ok(())
    }

    /// Whether this steward holds a join request of `joiner`.
    pub(crate) fn steward_holds(&self, joiner: Address) -> bool {
        self.steward
            .as_ref()
            .is_some_and(|d| d.intake.contains_key(&joiner))
    }

    /// Publishes again the kept Welcome for key package `reference`; false if none is kept.
    fn resend_welcome(&self, reference: &[u8], ctx: &mut Ctx<'_>) -> bool {
        let kept = self.arrivals.welcome_for(reference);
        if let Some(bundle) = kept {
            ctx.send(
                &self.id,
                TopicKind::Welcome,
                envelope::Body::Welcome(bundle.clone()),
            );
        }
        kept.is_some()
    }

    /// Drops a joiner whose add was voted down.
    pub(crate) fn steward_forget(&mut self, joiner: Address) {
        if let Some(duty) = self.steward.as_mut() {
            duty.intake.remove(&joiner);
        }
    }

    /// When this member should commit the waiting changes: at once if it is the
    /// epoch steward and no vote of the epoch is open (or after the commit delay
    /// otherwise), and a steward timeout later for each backup before it.
    pub(crate) fn commit_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        if !self.state.commit_wanted() {
            return None;
        }
        #[cfg(feature = "byzantine")]
        if self.byzantine.silent {
            return None;
        }
        let position = self.state.committers().iter().position(|c| *c == self.me)?;
        let due = match position {
            0 if self.state.has_undecided() => self.turns_start()?.plus_ms(config.commit_delay_ms),
            position => self.turn_due(position, config)?,
        };
        Some(self.desk.commit_at(due))
    }

    /// Commits the waiting changes if it is this member's turn.
    pub(crate) fn maybe_commit(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        match self.commit_due(ctx.config) {
            Some(due) if due <= ctx.now => {
                if let Err(error) = self.commit(ctx) {
                    // Not the input's fault: try again later rather than at every step.
                    tracing::warn!(group = %self.id, %error, "commit failed");
                    self.desk.failed(
                        ctx.now
                            .plus_ms(self.state.rules.timers.commit_ms(ctx.config)),
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Turns the approved proposals into one commit and a Welcome, sends both, and applies the commit.
    fn commit(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        let mut changes = Vec::new();
        let mut evidence = Vec::new();
        let mut election: Option<(u32, Vec<Address>)> = None;
        let mut subjects = std::collections::BTreeSet::new();
        let departing = self.state.departing();
        for (id, open) in self.state.approved_motions() {
            let Some(proposal) = self.state.consensus.proposal(id) else {
                continue;
            };
            let change = match &open.motion {
                Motion::Change(Change::Add {
                    address,
                    replace: false,
                    ..
                }) if self.state.is_member(address) => {
                    continue;
                }
                Motion::Change(change) => Some(change.clone()),
                Motion::Emergency(e) => e.offender.map(|target| Change::Remove { target }),
                Motion::Election(e) => {
                    if election
                        .as_ref()
                        .is_none_or(|(round, _)| e.retry_round > *round)
                    {
                        election = Some((e.retry_round, e.stewards.clone()));
                    }
                    None
                }
            };
            if let Some(change) = change {
                // A steward never commits its own removal, nor a non-member's; and one change per person.
                let own_or_absent = matches!(change, Change::Remove { target } if target == me || !self.state.is_member(&target));
                // The update of a member on its way out would only hold its removal back.
                let moot =
                    matches!(change, Change::Update { .. }) && departing.contains(&open.owner);
                if own_or_absent || moot || !subjects.insert(change.subject(open.owner)) {
                    continue;
                }
                // The committer's own update is the commit's UpdatePath, not a proposal.
                if !(matches!(change, Change::Update { .. }) && open.owner == me) {
                    changes.push(change);
                }
            }
            evidence.push(proposal.clone());
        }
        let params = election.map(|(round, list)| {
            elected_params(&self.state.params, self.state.epoch(), round, &list)
        });
        self.commit_changes(changes, params, evidence, ctx)
    }

    /// The approved membership changes and their proposals, leaving out those about `left_out`.
    #[cfg(feature = "byzantine")]
    pub(crate) fn approved_changes_except(
        &self,
        left_out: Address,
    ) -> (Vec<Change>, Vec<wire::Proposal>) {
        self.state
            .approved_motions()
            .filter_map(|(id, open)| match open.motion.as_change() {
                Some(change) if change.subject(open.owner) != left_out => {
                    Some((change.clone(), self.state.consensus.proposal(id)?.clone()))
                }
                _ => None,
            })
            .unzip()
    }

    /// Commits `changes` (and new `params`) with `evidence` (their voted
    /// proposals) as the manifest, sends the commit and Welcome, and applies it.
    pub(crate) fn commit_changes(
        &mut self,
        changes: Vec<Change>,
        params: Option<GroupParamsExt>,
        evidence: Vec<wire::Proposal>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let prepared = self.prepare_commit(changes, params, evidence, ctx)?;
        self.publish(&prepared, ctx);
        // The committer keeps its Welcomes too, to send again to a joiner that lost its.
        for bundle in &prepared.welcomes {
            self.arrivals.keep_welcome(bundle.clone());
        }
        self.adopt(prepared.commit, ctx)
    }

    /// Builds a commit on a copy of the current state, without sending or applying it.
    pub(crate) fn prepare_commit(
        &self,
        changes: Vec<Change>,
        params: Option<GroupParamsExt>,
        evidence: Vec<wire::Proposal>,
        ctx: &Ctx<'_>,
    ) -> Result<PreparedCommit, EngineError> {
        let me = ctx.wallet.address();
        let approved = evidence.len();
        let committed = evidence
            .iter()
            .map(|p| demls_consensus::ProposalId(p.proposal_id))
            .collect();
        let manifest = CommitManifest {
            epoch: self.state.epoch(),
            approved: evidence,
        };
        let rotates_self = manifest
            .approved
            .iter()
            .any(|p| p.proposal_owner == me.as_bytes() && self_update_of(p).is_some());
        let mut candidate = self.state.mls.clone();
        let tree_key = ctx.random(ctx.suite.aead_key_size())?;
        let tree_key_ext = MlsExtension::into_extension(TreeKeyExt {
            key: tree_key.clone(),
        })
        .map_err(|e| EngineError::Mls(e.to_string()))?;
        // mls-rs commits, by reference, every proposal its state holds.
        for change in &changes {
            if let Change::Update { proposal } = change {
                let message = mls_rs::MlsMessage::from_bytes(proposal)
                    .map_err(|e| EngineError::Malformed(format!("update proposal: {e}")))?;
                let received =
                    candidate.process_incoming_message_with_time(message, ctx.now.mls_time())?;
                if !matches!(received, ReceivedMessage::Proposal(_)) {
                    return Err(EngineError::InvalidProposal(
                        "a self-update carries no MLS proposal".into(),
                    ));
                }
            }
        }
        let mut builder = candidate.commit_builder();
        for change in changes {
            builder = match &change {
                Change::Add {
                    key_package,
                    replace: false,
                    ..
                } => builder.add_member((**key_package).clone())?,
                Change::Add {
                    address,
                    key_package,
                    replace: true,
                    ..
                } => builder
                    .remove_member(
                        self.state
                            .mls
                            .member_with_identity(address.as_bytes())?
                            .index,
                    )?
                    .add_member((**key_package).clone())?,
                Change::Remove { target } => builder.remove_member(
                    self.state
                        .mls
                        .member_with_identity(target.as_bytes())?
                        .index,
                )?,
                // Fed to the state above: committed by reference.
                Change::Update { .. } => builder,
            };
        }
        if let Some(params) = params {
            let ext = MlsExtension::into_extension(params)
                .map_err(|e| EngineError::Mls(e.to_string()))?;
            let mut context = self.state.mls.context().extensions.clone();
            context.set(ext);
            builder = builder.set_group_context_ext(context)?;
        }
        let builder = builder
            .set_group_info_ext(vec![tree_key_ext].into())
            .authenticated_data(manifest.encode_to_vec())
            .commit_time(ctx.now.mls_time());
        let output = with_committer_rotation(rotates_self, || builder.build())?;
        let description = candidate.apply_pending_commit()?;
        let bytes = output.commit_message().to_bytes()?;
        let mut welcomes = Vec::new();
        if !output.welcome_messages().is_empty() {
            let tree = output
                .ratchet_tree()
                .ok_or_else(|| EngineError::Mls("commit produced no ratchet tree".into()))?
                .to_bytes()?;
            let encrypted_tree = suite()
                .aead_seal(&tree_key, &tree, None, &TREE_NONCE)
                .map_err(|e| EngineError::Crypto(format!("tree seal: {e:?}")))?;
            for welcome in output.welcome_messages() {
                welcomes.push(WelcomeBundle {
                    welcome: welcome.to_bytes()?,
                    encrypted_tree: encrypted_tree.clone(),
                    epoch: candidate.current_epoch(),
                });
            }
        }
        let applied = effects(&self.state, &description, &candidate)
            .map(|e| e.changes)
            .map_err(EngineError::InvalidCommit)?;
        let rank = Rank::new(
            approved,
            self.state.committers().first() == Some(&me),
            me,
            &bytes,
        );
        let seen = SeenCommit {
            committer: me,
            bytes,
            applied,
            seen_at: ctx.now,
        };
        Ok(PreparedCommit {
            commit: ValidCommit {
                candidate,
                description,
                seen,
                rank,
                committed,
            },
            welcomes,
        })
    }

    /// Sends a prepared commit and its Welcomes.
    pub(crate) fn publish(&self, prepared: &PreparedCommit, ctx: &mut Ctx<'_>) {
        let bytes = prepared.commit.seen.bytes.clone();
        ctx.send(
            &self.id,
            TopicKind::Application,
            envelope::Body::MlsMessage(bytes),
        );
        for bundle in &prepared.welcomes {
            ctx.send(
                &self.id,
                TopicKind::Welcome,
                envelope::Body::Welcome(bundle.clone()),
            );
        }
    }

    /// Steward bookkeeping at the start of an epoch: stewards in office take in
    /// join requests and announce; a due election is proposed by the epoch steward.
    pub(crate) fn steward_start_epoch(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        if self.in_office(me) && self.steward.is_none() {
            self.steward = Some(StewardDuty::new(ctx.suite, ctx.now)?);
        }
        // A new epoch has a new take-up order: each held-back request waits for this
        // steward's turn in it, counted from now (first in it: taken up at once).
        let turns: Vec<(Address, Option<Timestamp>)> = self
            .steward
            .iter()
            .flat_map(|duty| duty.intake.iter())
            .filter(|(_, intake)| intake.deferred.is_some())
            .map(|(joiner, _)| {
                let due = self
                    .take_up_turn(*joiner, me)
                    .map(|position| self.take_up_due(position, ctx.now, ctx.config));
                (*joiner, due)
            })
            .collect();
        let state = &self.state;
        if let Some(duty) = self.steward.as_mut() {
            duty.intake.retain(|joiner, _| !state.is_member(joiner));
            duty.next_announce = ctx.now;
            for (joiner, due) in turns {
                if let (Some(due), Some(deferred)) = (
                    due,
                    duty.intake
                        .get_mut(&joiner)
                        .and_then(|i| i.deferred.as_mut()),
                ) {
                    deferred.due = due;
                }
            }
        }
        if self.state.election_due() && self.state.committers().first() == Some(&me) {
            self.propose_election(0, ctx)?;
        }
        Ok(())
    }

    /// Proposes the election every member computes for `retry_round`.
    pub(crate) fn propose_election(
        &mut self,
        retry_round: u32,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let stewards = self.state.expected_list(retry_round, self.id.as_bytes());
        self.request(
            Motion::Election(crate::motion::Election {
                retry_round,
                stewards,
            }),
            ctx,
        )
    }

    /// Periodic steward work: announcements, held-back join requests.
    pub(crate) fn steward_on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let me = ctx.wallet.address();
        let due = self
            .steward
            .as_ref()
            .is_some_and(|d| d.next_announce <= ctx.now);
        let serving = self.in_office(me) || self.state.mode == StewardMode::Single;
        if due && serving {
            self.announce(ctx);
        }
        if serving {
            self.take_up_deferred(ctx);
        }
    }

    /// When the steward next needs the clock.
    pub(crate) fn steward_poll_timeout(&self) -> Option<Timestamp> {
        if !(self.in_office(self.me) || self.state.mode == StewardMode::Single) {
            return None;
        }
        let announce = self.steward.as_ref().map(|d| d.next_announce);
        announce.into_iter().chain(self.deferred_due()).min()
    }
}
