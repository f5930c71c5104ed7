//! Misbehaviour on demand, for tests of how honest members defend themselves.
//! Compiled only with the `byzantine` feature, which the product never enables.

use demls_consensus::{Consensus, ConsensusConfig, ProposalId, ProposalSpec, wire};
use demls_identity::Address;
use mls_rs::MlsMessage;

use crate::change::Change;
use crate::commit::ValidCommit;
use crate::join::send_join_request;
use crate::motion::{Election, Emergency, Evidence, Motion};
use crate::wire::app_message;
use crate::{Engine, EngineError, GroupId, Timestamp};

impl Engine {
    /// Sends any application payload as this member, bypassing every check.
    pub fn byzantine_send_app(
        &mut self,
        group: &GroupId,
        body: app_message::Body,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.send_app(body, &mut ctx).map(drop)
    }

    /// Commits these adds and removes with an empty manifest, as if they had been voted.
    pub fn byzantine_commit(
        &mut self,
        group: &GroupId,
        adds: Vec<Vec<u8>>,
        removes: Vec<Address>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let mut changes = Vec::new();
        for key_package in adds {
            changes.push(Change::add_from_bytes(&key_package)?);
        }
        changes.extend(removes.into_iter().map(|target| Change::Remove { target }));
        session.commit_changes(changes, None, Vec::new(), &mut ctx)
    }

    /// Seals arbitrary key package bytes to the group's announced steward.
    pub fn byzantine_join_request(
        &mut self,
        group: &GroupId,
        key_package: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        self.byzantine_seal(group, key_package, None, now)
    }

    /// Asks to join presenting any invitation, unchecked.
    pub fn byzantine_join_invited(
        &mut self,
        group: &GroupId,
        invitation: crate::wire::Invitation,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let key_package = self.key_package(now)?;
        self.byzantine_seal(group, key_package, Some(invitation), now)
    }

    fn byzantine_seal(
        &mut self,
        group: &GroupId,
        key_package: Vec<u8>,
        invitation: Option<crate::wire::Invitation>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let announcement = self
            .announcements
            .get(group)
            .cloned()
            .ok_or(EngineError::NotForUs)?;
        let message = MlsMessage::from_bytes(&key_package)?;
        let (mut ctx, _, _, _) = self.split(now);
        send_join_request(group, &message, invitation, &announcement, &mut ctx)
    }

    /// Proposes a steward election with any list, bypassing the checks.
    pub fn byzantine_propose_election(
        &mut self,
        group: &GroupId,
        retry_round: u32,
        stewards: Vec<Address>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.request(
            Motion::Election(Election {
                retry_round,
                stewards,
            }),
            &mut ctx,
        )
    }

    /// Charges `offender` with inactivity in the current epoch, whether or not it was
    /// inactive: an emergency proposal the honest members vote down.
    pub fn byzantine_charge_inactivity(
        &mut self,
        group: &GroupId,
        offender: Address,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let emergency = Emergency {
            offender: Some(offender),
            violation_epoch: session.state.epoch(),
            evidence: Evidence::Inactivity,
        };
        session.request(Motion::Emergency(emergency), &mut ctx)
    }

    /// Sends, as this member, a proposal that `victim` leaves with `victim` as its owner:
    /// a false self-leave claim (it carries no vote, which only `victim` could sign).
    pub fn byzantine_claim_leave_of(
        &mut self,
        group: &GroupId,
        victim: Address,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let motion = Motion::Change(Change::Remove { target: victim });
        let voters = session.state.voters(&motion, victim);
        let mut proposal = wire::Proposal {
            name: motion.name().to_owned(),
            payload: motion.encode(session.epoch())?,
            proposal_id: 0,
            proposal_owner: victim.as_bytes().to_vec(),
            votes: Vec::new(),
            expected_voters_count: u32::try_from(voters.len()).unwrap_or(u32::MAX),
            round: 1,
            timestamp: demls_consensus::Timestamp::from(now).wire_secs(),
            expiration_timestamp: demls_consensus::Timestamp::from(now.plus_ms(60_000)).wire_secs(),
            liveness_criteria_yes: false,
        };
        proposal.proposal_id = demls_consensus::signing::proposal_id(&proposal).0;
        session
            .send_app(app_message::Body::Proposal(proposal), &mut ctx)
            .map(drop)
    }

    /// Proposes adding the owner of `key_package` without any admission check.
    pub fn byzantine_propose_add(
        &mut self,
        group: &GroupId,
        key_package: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.request(
            Motion::Change(Change::add_from_bytes(&key_package)?),
            &mut ctx,
        )?;
        session.settle(&mut ctx)
    }

    /// Stops (or resumes) committing, as a steward that goes silent.
    pub fn byzantine_set_silent(
        &mut self,
        group: &GroupId,
        silent: bool,
    ) -> Result<(), EngineError> {
        self.misbehaviour(group)?.silent = silent;
        Ok(())
    }

    /// Stops (or resumes) taking join requests up, as a steward that censors joiners while
    /// it keeps announcing the group.
    pub fn byzantine_set_ignoring_joiners(
        &mut self,
        group: &GroupId,
        ignoring: bool,
    ) -> Result<(), EngineError> {
        self.misbehaviour(group)?.ignoring_joiners = ignoring;
        Ok(())
    }

    /// The misbehaviour switches of this node's session of `group`.
    fn misbehaviour(
        &mut self,
        group: &GroupId,
    ) -> Result<&mut crate::session::Byzantine, EngineError> {
        self.groups
            .get_mut(group)
            .map(|session| &mut session.byzantine)
            .ok_or_else(|| EngineError::UnknownGroup(group.clone()))
    }

    /// Commits the approved membership changes except the ones about `left_out`
    /// (with their proposals left out of the manifest too): a steward censoring them.
    pub fn byzantine_commit_without(
        &mut self,
        group: &GroupId,
        left_out: Address,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let (changes, evidence) = session.approved_changes_except(left_out);
        session.commit_changes(changes, None, evidence, &mut ctx)
    }

    /// Commits every membership change still open and undecided here, its proposal in the
    /// manifest as if it had been approved: a steward that does not wait for the vote.
    pub fn byzantine_commit_undecided(
        &mut self,
        group: &GroupId,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let (changes, evidence) = session
            .state
            .open
            .iter()
            .filter(|(_, open)| open.decided.is_none())
            .filter_map(|(id, open)| {
                let change = open.motion.as_change()?.clone();
                Some((change, session.state.consensus.proposal(*id)?.clone()))
            })
            .unzip();
        session.commit_changes(changes, None, evidence, &mut ctx)
    }

    /// Commits twice for the same epoch with different content (each valid on its own):
    /// once the approved changes without those about `left_out`, once all of them.
    /// Both go out; this node follows the second.
    pub fn byzantine_equivocate(
        &mut self,
        group: &GroupId,
        left_out: Address,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        self.byzantine_commit_two(group, left_out, now, |_, _| false)
    }

    /// Commits the approved changes twice for the same epoch: two commits that differ only
    /// in their MLS entropy. Both go out; this node follows the one the filtering rule
    /// ranks lower (the others end on the other one).
    pub fn byzantine_commit_twice(
        &mut self,
        group: &GroupId,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        self.byzantine_commit_two(group, Address::default(), now, |first, second| {
            first.rank < second.rank
        })
    }

    /// Sends two commits for the current epoch, the first without the approved changes
    /// about `left_out` and the second with all of them, and follows the first if
    /// `follow_first` says so, else the second.
    fn byzantine_commit_two(
        &mut self,
        group: &GroupId,
        left_out: Address,
        now: Timestamp,
        follow_first: impl FnOnce(&ValidCommit, &ValidCommit) -> bool,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let (partial, partial_evidence) = session.approved_changes_except(left_out);
        let first = session.prepare_commit(partial, None, partial_evidence, &ctx)?;
        let (all, evidence) = session.approved_changes_except(Address::default());
        let second = session.prepare_commit(all, None, evidence, &ctx)?;
        session.publish(&first, &mut ctx);
        session.publish(&second, &mut ctx);
        let followed = if follow_first(&first.commit, &second.commit) {
            first
        } else {
            second
        };
        session.adopt(followed.commit, &mut ctx)
    }

    /// `count` distinct valid proposals by this member for the current epoch, not sent.
    pub fn byzantine_proposals(
        &mut self,
        group: &GroupId,
        count: u64,
        now: Timestamp,
    ) -> Result<Vec<wire::Proposal>, EngineError> {
        let (ctx, session) = self.session(group, now)?;
        let voters: std::collections::BTreeSet<Address> = session.members().into_iter().collect();
        let _ = &ctx;
        let target = *voters
            .iter()
            .find(|a| **a != ctx.wallet.address())
            .ok_or(EngineError::NotForUs)?;
        let payload = Change::Remove { target }.encode(session.epoch())?;
        let mut scratch = Consensus::new(ConsensusConfig {
            max_open_proposals_per_owner: usize::MAX,
            ..ConsensusConfig::default()
        });
        (0..count)
            .map(|i| {
                let spec = ProposalSpec {
                    name: "demls/group-change/v1".into(),
                    payload: payload.clone(),
                    voters: voters.clone(),
                    expiration: now.plus_ms(60_000).into(),
                    liveness_criteria_yes: false,
                };
                Ok(scratch.create_proposal(ctx.wallet, spec, now.plus_ms(i * 1000).into())?)
            })
            .collect()
    }

    /// The vote `voter` cast on `proposal`, as this node recorded it.
    pub fn byzantine_recorded_vote(
        &self,
        group: &GroupId,
        proposal: ProposalId,
        voter: Address,
    ) -> Option<wire::Vote> {
        let session = self.groups.get(group)?;
        session
            .state
            .consensus
            .proposal(proposal)?
            .votes
            .iter()
            .find(|v| v.vote_owner == voter.as_bytes())
            .cloned()
    }

    /// Copies of every MLS state this node holds for `group`: the current epoch's and
    /// those of the past epochs it keeps (for tests that attempt decryption with them).
    pub fn byzantine_mls_states(&self, group: &GroupId) -> Vec<crate::mls::MlsGroup> {
        let Some(session) = self.groups.get(group) else {
            return Vec::new();
        };
        std::iter::once(&session.state.mls)
            .chain(session.state.own_update.as_deref())
            .chain(session.history.iter().map(|c| &c.before.mls))
            .cloned()
            .collect()
    }

    /// Proposes a self-update of this member carrying `mls_proposal` (any bytes) as its MLS
    /// Update proposal, with its YES, bypassing every check.
    pub fn byzantine_propose_update(
        &mut self,
        group: &GroupId,
        mls_proposal: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let motion = Motion::Change(Change::Update {
            proposal: mls_proposal,
        });
        let spec = ProposalSpec {
            name: motion.name().to_owned(),
            payload: motion.encode(session.epoch())?,
            voters: session.state.voters(&motion, ctx.wallet.address()),
            expiration: now.plus_ms(60_000).into(),
            liveness_criteria_yes: false,
        };
        let proposal = session
            .state
            .consensus
            .create_proposal(ctx.wallet, spec, now.into())?;
        let id = ProposalId(proposal.proposal_id);
        session
            .state
            .consensus
            .cast_vote(id, ctx.wallet, true, now.into())?;
        let proposal = session
            .state
            .consensus
            .proposal(id)
            .cloned()
            .unwrap_or(proposal);
        session
            .send_app(app_message::Body::Proposal(proposal), &mut ctx)
            .map(drop)
    }

    /// The MLS Update proposal of `owner`'s self-update open at this node, if any.
    pub fn byzantine_update_of(&self, group: &GroupId, owner: Address) -> Option<Vec<u8>> {
        let session = self.groups.get(group)?;
        session
            .state
            .open
            .values()
            .find_map(|open| match &open.motion {
                Motion::Change(Change::Update { proposal }) if open.owner == owner => {
                    Some(proposal.clone())
                }
                _ => None,
            })
    }

    /// Commits these MLS Update proposals (by reference) with an empty manifest, as if
    /// they had been voted.
    pub fn byzantine_commit_updates(
        &mut self,
        group: &GroupId,
        updates: Vec<Vec<u8>>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let changes = updates
            .into_iter()
            .map(|proposal| Change::Update { proposal })
            .collect();
        session.commit_changes(changes, None, Vec::new(), &mut ctx)
    }

    /// Commits an UpdatePath alone whose new leaf takes `other`'s identity (a valid wallet
    /// binding of another address, to a fresh MLS key), with an empty manifest, and sends
    /// it; this node does not apply it.
    pub fn byzantine_commit_path_as(
        &mut self,
        group: &GroupId,
        other: &demls_identity::Wallet,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        use mls_rs::identity::SigningIdentity;
        use mls_rs::identity::basic::BasicCredential;

        let signer = crate::MlsSigner::generate_from(&self.suite)?;
        let binding = demls_identity::WalletBinding::create(other, signer.public_bytes());
        let credential = BasicCredential::new(binding.encode()).into_credential();
        let identity = SigningIdentity::new(credential, signer.public.clone());
        self.byzantine_commit_path(group, Some((signer, identity)), None, now)
    }

    /// Commits an UpdatePath alone whose new leaf keeps this member's identity and signature
    /// key but is signed with another key (a bad leaf signature), with an empty manifest, and
    /// sends it; this node does not apply it.
    pub fn byzantine_commit_path_missigned(
        &mut self,
        group: &GroupId,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (_, session) = self.session(group, now)?;
        let identity = session.state.mls.current_member_signing_identity()?.clone();
        self.byzantine_commit_path(
            group,
            Some((crate::MlsSigner::generate_from(&self.suite)?, identity)),
            None,
            now,
        )
    }

    /// Commits an UpdatePath alone, as valid a commit as any, but with a manifest that
    /// names `manifest_epoch` instead of the current epoch (a commit made for another
    /// epoch), and sends it; this node does not apply it.
    pub fn byzantine_commit_manifest_for(
        &mut self,
        group: &GroupId,
        manifest_epoch: u64,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        self.byzantine_commit_path(group, None, Some(manifest_epoch), now)
    }

    /// Commits an UpdatePath alone with an empty manifest for `manifest_epoch` (default:
    /// the current epoch), and sends it; this node does not apply it. With `new_leaf`, the
    /// new leaf carries that identity and is signed with that signer.
    fn byzantine_commit_path(
        &mut self,
        group: &GroupId,
        new_leaf: Option<(crate::MlsSigner, mls_rs::identity::SigningIdentity)>,
        manifest_epoch: Option<u64>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        use prost::Message;

        let (mut ctx, session) = self.session(group, now)?;
        let manifest = crate::wire::CommitManifest {
            epoch: manifest_epoch.unwrap_or(session.state.epoch()),
            approved: Vec::new(),
        };
        let mut candidate = session.state.mls.clone();
        let mut builder = candidate.commit_builder();
        if let Some((signer, identity)) = new_leaf {
            builder = builder.set_new_signing_identity(signer.secret, identity);
        }
        let output = builder
            .authenticated_data(manifest.encode_to_vec())
            .commit_time(now.mls_time())
            .build()?;
        ctx.send(
            &session.id,
            crate::TopicKind::Application,
            crate::wire::envelope::Body::MlsMessage(output.commit_message().to_bytes()?),
        );
        Ok(())
    }
}
