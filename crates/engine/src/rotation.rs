//! Post-compromise security: members replace their leaf keys.
//!
//! A member asks for its own update as it asks to leave: a voting proposal that needs
//! no vote (its owner's signed YES approves it), whose payload is the member's MLS
//! Update proposal, a PrivateMessage signed with its current leaf. Members check that
//! the Update is the owner's own, of its own leaf, and take at most one per member and
//! epoch. The epoch's committer feeds the approved Updates into its commit by reference
//! (a commit with Updates carries an UpdatePath); every member feeds the same Updates,
//! read from the commit's manifest, into its copy of the state before processing the
//! commit, and accepts it only if its Updates are exactly the ones the manifest names.
//! A committer's own update is its UpdatePath.

use std::collections::BTreeMap;

use demls_identity::Address;
use mls_rs::MlsMessage;
use mls_rs::group::proposal::Proposal as MlsProposal;
use mls_rs::group::{LeafIndex, ProposalSender, ReceivedMessage};
use mls_rs_codec::MlsDecode;
use prost::Message;

use crate::change::Change;
use crate::context::Ctx;
use crate::epoch::EpochState;
use crate::mls::MlsGroup;
use crate::motion::{CHANGE_NAME, Motion};
use crate::session::GroupSession;
use crate::snapshot::{GroupSnapshot, KeyAgeRecord, counter_ahead};
use crate::wire::{CommitManifest, GroupChange, group_change};
use crate::{ChangeKind, EngineError, Epoch, Timestamp};

/// How long an approved self-update waits for a commit, so that updates that come close
/// together go in one commit: each commit starts an epoch, and a member reads late
/// messages only of the few epochs it retains. Another change due sooner takes the
/// waiting updates along. Every member counts the committers' turns from it alike.
pub(crate) const UPDATE_BATCH_MS: u64 = 30_000;

/// When a member's leaf keys were last replaced, as this member knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAge {
    /// The member.
    pub member: Address,
    /// The epoch its current leaf entered the group; for a leaf older than this node's
    /// membership, the epoch this node joined in.
    pub epoch: Epoch,
    /// When this node saw the leaf replaced; `None` if that was before it joined.
    pub at: Option<Timestamp>,
}

/// How old members' leaf keys are, and how much this member sent since its own were
/// replaced: what the group's rotation rule is judged by.
#[derive(Default)]
pub(crate) struct KeyRotation {
    ages: BTreeMap<Address, KeyAge>,
    /// Chat messages this member sent since its leaf was last replaced.
    sent_since: u32,
}

impl KeyRotation {
    /// This member sent a chat message.
    pub(crate) fn sent(&mut self) {
        self.sent_since = self.sent_since.saturating_add(1);
    }

    /// Writes the key ages and the count of messages sent into `snapshot`; the count
    /// rounded up ([`crate::snapshot::counter_ahead`]), so that a crash never lets more
    /// messages go out on one leaf than the rule allows.
    pub(crate) fn save(&self, snapshot: &mut GroupSnapshot) {
        snapshot.key_ages = self
            .ages
            .values()
            .map(|age| KeyAgeRecord {
                member: age.member.as_bytes().to_vec(),
                epoch: age.epoch.0,
                at_ms: age.at.map_or(0, |t| t.0),
            })
            .collect();
        snapshot.sent_since_rotation =
            u32::try_from(counter_ahead(u64::from(self.sent_since))).unwrap_or(u32::MAX);
    }

    /// Takes back what [`Self::save`] wrote, over the fresh ages of members `is_member`
    /// says are.
    pub(crate) fn restore(
        &mut self,
        snapshot: &GroupSnapshot,
        is_member: impl Fn(&Address) -> bool,
    ) {
        let restored = snapshot.key_ages.iter().filter_map(|record| {
            let member = Address::from_slice(&record.member).filter(|m| is_member(m))?;
            let age = KeyAge {
                member,
                epoch: Epoch(record.epoch),
                at: (record.at_ms > 0).then_some(Timestamp(record.at_ms)),
            };
            Some((member, age))
        });
        self.ages.extend(restored);
        self.sent_since = snapshot.sent_since_rotation;
    }
}

/// The wire format value of an MLS PrivateMessage (RFC 9420, section 6).
const PRIVATE_MESSAGE: u16 = 2;

impl EpochState {
    /// Checks a member's MLS Update proposal: readable in this epoch, an Update, and sent
    /// from the leaf of `owner` (the voting proposal's owner).
    pub(crate) fn check_update(
        &self,
        owner: Address,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let message = MlsMessage::from_bytes(bytes)
            .map_err(|e| EngineError::Malformed(format!("update proposal: {e}")))?;
        // mls-rs keeps a processed proposal for the next commit: checked on a copy.
        let mut scratch = self.mls.clone();
        let description = match scratch.process_incoming_message_with_time(message, now.mls_time())
        {
            Ok(ReceivedMessage::Proposal(description)) => description,
            Ok(_) => {
                return Err(EngineError::InvalidProposal(
                    "a self-update carries no MLS proposal".into(),
                ));
            }
            // This member's own Update, presented by someone else.
            Err(mls_rs::error::MlsError::CantProcessMessageFromSelf) => {
                return Err(EngineError::InvalidProposal(format!(
                    "{owner} proposes an update of this member's leaf"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let ProposalSender::Member(index) = description.sender else {
            return Err(EngineError::InvalidProposal(
                "an update from outside the group".into(),
            ));
        };
        if !matches!(description.proposal, MlsProposal::Update(_)) {
            return Err(EngineError::InvalidProposal(
                "a self-update carries another kind of MLS proposal".into(),
            ));
        }
        match self.address_at(index) {
            Some(sender) if sender == owner => Ok(()),
            _ => Err(EngineError::InvalidProposal(format!(
                "{owner} proposes an update of another member's leaf"
            ))),
        }
    }

    /// Whether `owner` already has a self-update open in this epoch.
    pub(crate) fn has_open_update(&self, owner: Address) -> bool {
        self.open
            .values()
            .any(|o| o.kind() == ChangeKind::Update(owner))
    }
}

/// Feeds into `candidate`, the copy a commit is processed in, the MLS Update proposals
/// open in `state` and those named by the commit's manifest, so that the commit's
/// references to them resolve. The manifest is read from the commit's authenticated data,
/// which travels in clear; what the commit then does is checked against the decrypted,
/// authenticated manifest. Updates open here are fed too, so that a commit carrying one
/// its manifest does not name reads as the broken commit it is.
pub(crate) fn feed_updates(
    candidate: &mut MlsGroup,
    state: &EpochState,
    commit: &[u8],
    now: Timestamp,
) {
    let open = state.open.values().filter_map(|o| match &o.motion {
        Motion::Change(Change::Update { proposal }) => Some(proposal.clone()),
        _ => None,
    });
    let named = manifest_in_clear(commit)
        .map(|m| m.approved)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| self_update_of(&p));
    let mut fed = std::collections::BTreeSet::new();
    for bytes in open.chain(named) {
        if !fed.insert(bytes.clone()) {
            continue;
        }
        let Ok(message) = MlsMessage::from_bytes(&bytes) else {
            continue;
        };
        // An unreadable one (or this member's own, already in its copy) is left out: a
        // commit that needs it then fails to process, or is caught by the effects check.
        if let Err(error) = candidate.process_incoming_message_with_time(message, now.mls_time()) {
            tracing::debug!(%error, "update not fed");
        }
    }
}

/// The MLS Update proposals of `owner` named by a commit's manifest (read in clear).
fn named_updates_of(commit: &[u8], owner: Address) -> Vec<Vec<u8>> {
    manifest_in_clear(commit)
        .map(|m| m.approved)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.proposal_owner == owner.as_bytes())
        .filter_map(|p| self_update_of(&p))
        .collect()
}

/// The MLS Update proposal a voting proposal carries, if it is a self-update.
pub(crate) fn self_update_of(proposal: &demls_consensus::wire::Proposal) -> Option<Vec<u8>> {
    if proposal.name != CHANGE_NAME {
        return None;
    }
    match GroupChange::decode(proposal.payload.as_slice()) {
        Ok(GroupChange {
            change: Some(group_change::Change::SelfUpdate(bytes)),
            ..
        }) => Some(bytes),
        _ => None,
    }
}

/// The manifest in the authenticated data of a commit's PrivateMessage, read without
/// decrypting it (the authenticated data is sent in clear).
fn manifest_in_clear(bytes: &[u8]) -> Option<CommitManifest> {
    let reader = &mut &bytes[..];
    let _version = u16::mls_decode(reader).ok()?;
    if u16::mls_decode(reader).ok()? != PRIVATE_MESSAGE {
        return None;
    }
    let _group_id: Vec<u8> = mls_rs_codec::byte_vec::mls_decode(reader).ok()?;
    let _epoch = u64::mls_decode(reader).ok()?;
    let _content_type = u8::mls_decode(reader).ok()?;
    let authenticated_data: Vec<u8> = mls_rs_codec::byte_vec::mls_decode(reader).ok()?;
    CommitManifest::decode(authenticated_data.as_slice()).ok()
}

/// Whether the leaf at `index` holds other keys in `after` than in `before`.
pub(crate) fn leaf_replaced(before: &MlsGroup, after: &MlsGroup, index: u32) -> bool {
    let Ok(index) = LeafIndex::try_from(index) else {
        return false;
    };
    let key = |group: &MlsGroup| {
        group
            .export_tree()
            .get_leaf(index)
            .ok()
            .flatten()
            .map(|leaf| leaf.public_key.clone())
    };
    key(before) != key(after)
}

impl GroupSession {
    /// Key ages as a member that has just joined (or created) the group knows them: its
    /// own leaf is new, the others' date from before it.
    pub(crate) fn fresh_key_ages(&mut self, now: Timestamp) {
        let epoch = self.epoch();
        self.keys.ages = self
            .members()
            .into_iter()
            .map(|member| {
                let at = (member == self.me).then_some(now);
                (member, KeyAge { member, epoch, at })
            })
            .collect();
    }

    /// Records the leaves a commit just applied replaced (`applied`: its changes) and
    /// forgets members that left.
    pub(crate) fn note_key_ages(&mut self, applied: &[ChangeKind], now: Timestamp) {
        let epoch = self.epoch();
        for change in applied {
            if let ChangeKind::Add(member) | ChangeKind::Update(member) = change {
                let age = KeyAge {
                    member: *member,
                    epoch,
                    at: Some(now),
                };
                self.keys.ages.insert(*member, age);
                if *member == self.me {
                    self.keys.sent_since = 0;
                }
            }
        }
        let state = &self.state;
        self.keys.ages.retain(|member, _| state.is_member(member));
    }

    /// Whether this member's leaf was replaced by the commit that began the current epoch.
    pub(crate) fn rotated_this_epoch(&self) -> bool {
        self.keys
            .ages
            .get(&self.me)
            .is_some_and(|age| age.epoch == self.epoch() && age.at.is_some())
    }

    /// Every member's key age, for views.
    pub(crate) fn key_age_list(&self) -> Vec<KeyAge> {
        self.keys.ages.values().copied().collect()
    }

    /// Whether `commit` names an update of this member other than the one whose proposal
    /// this member holds: one it sent before a restart, whose proposal is gone with the
    /// copy of the state that held it (mls-rs processes no member's own message), so that
    /// it can never process the commit.
    pub(crate) fn names_lost_update(&self, commit: &[u8]) -> bool {
        let held = self.state.own_update.as_ref().and_then(|_| {
            self.state.open.values().find_map(|o| match &o.motion {
                Motion::Change(Change::Update { proposal }) if o.owner == self.me => Some(proposal),
                _ => None,
            })
        });
        named_updates_of(commit, self.me)
            .iter()
            .any(|named| Some(named) != held)
    }

    /// Asks the group to commit an update of this member's leaf keys (once: asking
    /// again while one is wanted changes nothing).
    pub(crate) fn request_update(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        self.request(
            Motion::Change(Change::Update {
                proposal: Vec::new(),
            }),
            ctx,
        )
    }

    /// When this member's leaf is due for replacement by the group's rotation rule; none
    /// while an update is already wanted.
    pub(crate) fn rotation_due(&self) -> Option<Timestamp> {
        if self.ballot.update_wanted() || self.departed.is_some() {
            return None;
        }
        let since = self
            .keys
            .ages
            .get(&self.me)
            .and_then(|age| age.at)
            .unwrap_or(self.state.started_at);
        Some(self.state.rules.rotation_due(since))
    }

    /// Asks for an update if the rotation rule says so: the leaf is old (also when the
    /// clock jumped past its time, after a sleep), or it sent its share of messages.
    pub(crate) fn rotate_if_due(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let sent_enough = self.keys.sent_since >= self.state.rules.rotation.after_messages;
        let old = self.rotation_due().is_some_and(|due| due <= ctx.now);
        if (sent_enough || old) && !self.ballot.update_wanted() {
            self.request_update(ctx)?;
        }
        Ok(())
    }

    /// The motion to open for `motion`: for a self-update, with a fresh MLS Update
    /// proposal of this epoch. mls-rs would refuse to send application messages while a
    /// proposal waits in the state, so the proposal waits in a copy of the state (used
    /// to process this epoch's commit); the state keeps the new leaf's secret.
    pub(crate) fn with_fresh_update(&mut self, motion: Motion) -> Result<Motion, EngineError> {
        let Motion::Change(Change::Update { .. }) = motion else {
            return Ok(motion);
        };
        let message = self.state.mls.propose_update(Vec::new())?;
        self.state.own_update = Some(Box::new(self.state.mls.clone()));
        self.state.mls.clear_proposal_cache();
        self.mark_moved();
        Ok(Motion::Change(Change::Update {
            proposal: message.to_bytes()?,
        }))
    }
}
