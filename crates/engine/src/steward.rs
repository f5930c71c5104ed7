//! The steward's duties: announcing the group, taking in key packages, committing.

use std::collections::{BTreeMap, HashSet};

use demls_consensus::wire;
use demls_identity::{Address, EthSignature, recover_personal};
use mls_rs::CipherSuiteProvider;
use mls_rs::crypto::{HpkeCiphertext, HpkePublicKey, HpkeSecretKey};
use mls_rs::extension::MlsExtension;
use mls_rs::group::ReceivedMessage;
use prost::Message;

use crate::change::{Change, key_package_of};
use crate::context::Ctx;
use crate::mls::{CIPHER_SUITE, TreeKeyExt, suite};
use crate::session::{GroupSession, suite_random};
use crate::snapshot::{IntakeSnapshot, StewardSnapshot};
use crate::wire::{
    CommitManifest, GroupAnnouncement, JoinRequest, WelcomeBundle, envelope, signing_bytes,
};
use crate::{EngineError, Event, GroupId, Timestamp, TopicKind};

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

/// A key package waiting for its vote and commit.
struct Intake {
    reference: Vec<u8>,
}

/// What a steward keeps besides its membership.
pub(crate) struct StewardDuty {
    hpke_secret: HpkeSecretKey,
    hpke_public: HpkePublicKey,
    next_announce: Timestamp,
    commit_due: Option<Timestamp>,
    intake: BTreeMap<Address, Intake>,
    seen_key_packages: HashSet<Vec<u8>>,
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
                Address::from_slice(&i.joiner)
                    .map(|joiner| {
                        (
                            joiner,
                            Intake {
                                reference: i.reference,
                            },
                        )
                    })
                    .ok_or_else(|| EngineError::Malformed("snapshot: intake address".into()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            hpke_secret: HpkeSecretKey::from(snapshot.hpke_secret),
            hpke_public: HpkePublicKey::from(snapshot.hpke_public),
            next_announce: now,
            commit_due: None,
            intake,
            seen_key_packages: snapshot.seen_key_packages.into_iter().collect(),
        })
    }

    /// A new steward's state, with a fresh HPKE key for join requests.
    pub(crate) fn new(now: Timestamp) -> Result<Self, EngineError> {
        let (hpke_secret, hpke_public) = suite()
            .kem_generate()
            .map_err(|e| EngineError::Crypto(format!("kem generate: {e:?}")))?;
        Ok(Self {
            hpke_secret,
            hpke_public,
            next_announce: now,
            commit_due: None,
            intake: BTreeMap::new(),
            seen_key_packages: HashSet::new(),
        })
    }
}

impl GroupSession {
    /// Publishes a signed announcement of the group on its welcome topic.
    fn announce(&mut self, ctx: &mut Ctx<'_>) {
        let Some(duty) = self.steward.as_mut() else {
            return;
        };
        let mut announcement = GroupAnnouncement {
            cipher_suite: u32::from(*CIPHER_SUITE),
            steward: ctx.wallet.address().as_bytes().to_vec(),
            steward_hpke_key: duty.hpke_public.to_vec(),
            epoch: self.mls.current_epoch(),
            issued_at_ms: ctx.now.0,
            member_count: u32::try_from(self.mls.roster().members_iter().count())
                .unwrap_or(u32::MAX),
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
        let Some(duty) = self.steward.as_ref() else {
            return Err(EngineError::NotForUs);
        };
        if request.steward.as_slice() != me.as_bytes() {
            return Err(EngineError::NotForUs);
        }
        let joiner = Address::from_slice(&request.joiner)
            .ok_or_else(|| EngineError::Malformed("joiner is not an address".into()))?;
        let signature = EthSignature::from_slice(&request.signature)?;
        let signer = recover_personal(
            &signing_bytes(&request, |r| r.signature.clear()),
            &signature,
        )?;
        if signer != joiner {
            return Err(EngineError::SenderMismatch {
                sender: signer,
                claimed: joiner,
            });
        }
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
        let change = Change::add_from_bytes(&plaintext)?;
        let Change::Add {
            address,
            key_package,
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
        if duty.seen_key_packages.contains(&reference) {
            return if duty
                .intake
                .get(&joiner)
                .is_some_and(|i| i.reference == reference)
            {
                Err(EngineError::Duplicate)
            } else {
                Err(EngineError::ReplayedKeyPackage(joiner))
            };
        }
        if self.members().contains(&joiner) {
            return Err(EngineError::AlreadyMember(joiner));
        }
        if self
            .steward
            .as_ref()
            .is_some_and(|d| d.intake.contains_key(&joiner))
        {
            // One pending key package per joiner: a second one would be a second vote on the same person.
            return Err(EngineError::Duplicate);
        }
        match self
            .mls
            .process_incoming_message_with_time((**key_package).clone(), ctx.now.mls_time())?
        {
            ReceivedMessage::KeyPackage(_) => {}
            _ => return Err(EngineError::Malformed("not a key package".into())),
        }
        if let Some(duty) = self.steward.as_mut() {
            duty.seen_key_packages.insert(reference.clone());
            duty.intake.insert(joiner, Intake { reference });
        }
        ctx.emit(Event::JoinRequestAccepted {
            group: self.id.clone(),
            joiner,
        });
        self.request_change(change, ctx)
    }

    /// Drops a joiner whose add was voted down.
    pub(crate) fn steward_forget_rejected(&mut self, proposal: demls_consensus::ProposalId) {
        let Some(open) = self.open.get(&proposal) else {
            return;
        };
        if let Change::Add { address, .. } = open.change
            && let Some(duty) = self.steward.as_mut()
        {
            duty.intake.remove(&address);
        }
    }

    /// Commits now if approved changes are waiting and no vote is still open;
    /// otherwise makes sure a commit is scheduled.
    pub(crate) fn steward_maybe_commit(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self.steward.is_none() || self.approved.is_empty() {
            return Ok(());
        }
        if !self.has_undecided() {
            return self.commit(ctx);
        }
        if let Some(duty) = self.steward.as_mut() {
            duty.commit_due
                .get_or_insert(ctx.now.plus_ms(ctx.config.commit_delay_ms));
        }
        Ok(())
    }

    /// Turns the approved proposals into one commit and a Welcome, sends both, and applies the commit.
    fn commit(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        let members = self.members();
        let mut changes = Vec::new();
        let mut evidence = Vec::new();
        for id in &self.approved {
            let (Some(open), Some(proposal)) = (self.open.get(id), self.consensus.proposal(*id))
            else {
                continue;
            };
            // A steward never commits its own removal, nor the removal of a non-member.
            if let Change::Remove { target } = open.change
                && (target == me || !members.contains(&target))
            {
                continue;
            }
            changes.push(open.change.clone());
            evidence.push(proposal.clone());
        }
        self.commit_changes(changes, evidence, ctx)
    }

    /// Commits `changes` with `evidence` (their voted proposals) as the
    /// manifest, sends the commit and Welcome, and applies the commit.
    pub(crate) fn commit_changes(
        &mut self,
        changes: Vec<Change>,
        evidence: Vec<wire::Proposal>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let me = ctx.wallet.address();
        let manifest = CommitManifest {
            epoch: self.mls.current_epoch(),
            approved: evidence,
        };
        let mut candidate = self.mls.clone();
        let tree_key = suite_random(suite().aead_key_size())?;
        let tree_key_ext = MlsExtension::into_extension(TreeKeyExt {
            key: tree_key.clone(),
        })
        .map_err(|e| EngineError::Mls(e.to_string()))?;
        let mut builder = candidate.commit_builder();
        for change in changes {
            builder = match &change {
                Change::Add { key_package, .. } => builder.add_member((**key_package).clone())?,
                Change::Remove { target } => builder
                    .remove_member(self.mls.member_with_identity(target.as_bytes())?.index)?,
            };
        }
        let output = builder
            .set_group_info_ext(vec![tree_key_ext].into())
            .authenticated_data(manifest.encode_to_vec())
            .commit_time(ctx.now.mls_time())
            .build()?;
        let description = candidate.apply_pending_commit()?;
        ctx.send(
            &self.id,
            TopicKind::Application,
            envelope::Body::MlsMessage(output.commit_message().to_bytes()?),
        );
        if !output.welcome_messages().is_empty() {
            let tree = output
                .ratchet_tree()
                .ok_or_else(|| EngineError::Mls("commit produced no ratchet tree".into()))?
                .to_bytes()?;
            let encrypted_tree = suite()
                .aead_seal(&tree_key, &tree, None, &TREE_NONCE)
                .map_err(|e| EngineError::Crypto(format!("tree seal: {e:?}")))?;
            for welcome in output.welcome_messages() {
                let bundle = WelcomeBundle {
                    welcome: welcome.to_bytes()?,
                    encrypted_tree: encrypted_tree.clone(),
                    epoch: candidate.current_epoch(),
                };
                ctx.send(
                    &self.id,
                    TopicKind::Welcome,
                    envelope::Body::Welcome(bundle),
                );
            }
        }
        self.adopt_commit(candidate, me, &description, ctx)
    }

    /// Steward bookkeeping at the start of an epoch.
    pub(crate) fn steward_start_epoch(&mut self) {
        let members = self.members();
        if let Some(duty) = self.steward.as_mut() {
            duty.intake.retain(|joiner, _| !members.contains(joiner));
            duty.commit_due = None;
        }
    }

    /// Periodic steward work: announcements and overdue commits.
    pub(crate) fn steward_on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let Some(duty) = self.steward.as_mut() else {
            return Ok(());
        };
        let announce = duty.next_announce <= ctx.now;
        let commit = duty.commit_due.is_some_and(|due| due <= ctx.now);
        if commit {
            duty.commit_due = None;
        }
        if announce {
            self.announce(ctx);
        }
        if commit && !self.approved.is_empty() {
            self.commit(ctx)?;
        }
        Ok(())
    }

    /// When the steward next needs the clock.
    pub(crate) fn steward_poll_timeout(&self) -> Option<Timestamp> {
        let duty = self.steward.as_ref()?;
        Some(
            duty.commit_due
                .map_or(duty.next_announce, |due| due.min(duty.next_announce)),
        )
    }
}
