//! Commits: checking them against the vote, choosing among competing ones,
//! and moving to the next epoch (or back to an earlier one).
//!
//! Every member applies the first valid commit of its epoch at once (no
//! waiting on the happy path) and keeps the state it left behind. If a
//! better commit for that epoch arrives later — a backup's commit racing the
//! epoch steward's, or the other side of a healed network split — the member
//! returns to the earlier epoch and follows the better one. "Better" is the
//! filtering rule every member applies alike: most approved proposals, then
//! the epoch steward's, then the smallest committer id, then the smallest
//! SHA256 of the commit.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use demls_consensus::ProposalId;
use demls_identity::Address;
use mls_rs::MlsMessage;
use mls_rs::group::proposal::Proposal as MlsProposal;
use mls_rs::group::{CommitEffect, CommitMessageDescription, ReceivedMessage, Sender};
use mls_rs::mls_rules::ProposalSource;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::change::{Change, key_package_of};
use crate::context::Ctx;
use crate::epoch::{EpochState, SeenCommit};
use crate::mls::{GroupParamsExt, MlsGroup, WalletIdentityProvider, suite};
use crate::motion::{Emergency, Evidence, Motion};
use crate::session::GroupSession;
use crate::wire::CommitManifest;
use crate::{ChangeKind, EngineError, Epoch, Event, Removal, Timestamp};

/// A commit's place in the filtering rule; the greatest wins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Rank {
    approved: usize,
    by_epoch_steward: bool,
    committer: Reverse<Address>,
    hash: Reverse<[u8; 32]>,
}

impl Rank {
    pub(crate) fn new(
        approved: usize,
        by_epoch_steward: bool,
        committer: Address,
        bytes: &[u8],
    ) -> Self {
        Self {
            approved,
            by_epoch_steward,
            committer: Reverse(committer),
            hash: Reverse(Sha256::digest(bytes).into()),
        }
    }

    /// The rank of another commit by the same committer with as many approved changes.
    pub(crate) fn with_bytes(&self, bytes: &[u8]) -> Self {
        Self {
            hash: Reverse(Sha256::digest(bytes).into()),
            ..self.clone()
        }
    }
}

/// A past epoch, as it was just before the commit that ended it.
pub(crate) struct Checkpoint {
    pub(crate) before: EpochState,
    /// The commit applied to leave it.
    pub(crate) applied: SeenCommit,
    pub(crate) rank: Rank,
}

/// A commit that checked out, ready to apply.
pub(crate) struct ValidCommit {
    pub(crate) candidate: MlsGroup,
    pub(crate) description: CommitMessageDescription,
    pub(crate) seen: SeenCommit,
    pub(crate) rank: Rank,
    /// The approved proposals its manifest names: the ones it commits.
    pub(crate) committed: Vec<ProposalId>,
}

/// The outcome of checking a commit.
pub(crate) enum Verdict {
    Valid(Box<ValidCommit>),
    /// Names proposals not decided here yet; check again until then.
    Undecided(Timestamp),
    /// From a steward, but not what was voted: a violation.
    Broken {
        committer: Address,
        reason: String,
    },
    /// Not acceptable for another reason (not a steward, malformed manifest).
    Refused {
        committer: Option<Address>,
        reason: String,
    },
    /// Cannot be read with this epoch's secrets (another branch, or garbage).
    Unreadable(EngineError),
    /// Read and authenticated, but it commits a proposal (an update) this member does not
    /// hold.
    MissingProposal(EngineError),
    /// Sent by this member (mls-rs does not process a member's own commit).
    Own,
}

/// The changes a manifest's approved proposals call for, in canonical form.
struct Expected {
    changes: Vec<ChangeKind>,
    params: Option<GroupParamsExt>,
}

/// Checks `bytes` as a commit for `state`'s epoch, merging its evidence into `state`.
pub(crate) fn check_commit(
    state: &mut EpochState,
    bytes: &[u8],
    now: Timestamp,
    config: &crate::EngineConfig,
) -> Verdict {
    let message = match MlsMessage::from_bytes(bytes) {
        Ok(message) => message,
        Err(e) => return Verdict::Unreadable(EngineError::Malformed(format!("mls: {e}"))),
    };
    // A member that sent an update processes commits in the copy holding its proposal.
    let mut candidate = state.own_update.as_deref().unwrap_or(&state.mls).clone();
    crate::rotation::feed_updates(&mut candidate, state, bytes, now);
    let description = match candidate.process_incoming_message_with_time(message, now.mls_time()) {
        Ok(ReceivedMessage::Commit(description)) => description,
        Ok(_) => return Verdict::Unreadable(EngineError::Malformed("expected a commit".into())),
        Err(mls_rs::error::MlsError::CantProcessMessageFromSelf) => return Verdict::Own,
        // Reported only once the commit decrypted and its signature verified: its
        // (authenticated) manifest may be trusted to say whose proposal is missing.
        Err(e @ mls_rs::error::MlsError::ProposalNotFound) => {
            return Verdict::MissingProposal(e.into());
        }
        Err(e) => return Verdict::Unreadable(e.into()),
    };
    let Some(committer) = state.address_at(description.committer) else {
        return Verdict::Refused {
            committer: None,
            reason: "committer is not a member".into(),
        };
    };
    // Whether the committer may commit is judged after the manifest's evidence is merged:
    // the commit may carry a re-election this member missed (the other side of a split)
    // that made its committer a steward. Without that right, its faults are not a steward's.
    let refused = || Verdict::Refused {
        committer: Some(committer),
        reason: format!("{committer} may not commit in this epoch"),
    };
    let broken = |state: &EpochState, reason: String| {
        if state.may_commit(&committer) {
            Verdict::Broken { committer, reason }
        } else {
            refused()
        }
    };
    let Ok(manifest) = CommitManifest::decode(description.authenticated_data.as_slice()) else {
        return broken(state, "its manifest does not decode".into());
    };
    if manifest.epoch != state.epoch() {
        return broken(
            state,
            format!("its manifest is for epoch {}", manifest.epoch),
        );
    }
    let approved_count = manifest.approved.len();
    let mut undecided_until: Option<Timestamp> = None;
    let mut named = Vec::new();
    for proposal in manifest.approved {
        let id = match state.merge_evidence(proposal, now) {
            Ok(id) => id,
            Err(error) => return broken(state, format!("manifest evidence: {error}")),
        };
        match state.approval(id) {
            Some(true) => named.push(id),
            Some(false) => return broken(state, format!("proposal {:08x} was voted down", id.0)),
            None => {
                let deadline = state.open.get(&id).map_or(now, |o| o.deadline);
                undecided_until = Some(undecided_until.map_or(deadline, |d| d.max(deadline)));
            }
        }
    }
    if !state.may_commit(&committer) {
        return refused();
    }
    if let Some(deadline) = undecided_until {
        return Verdict::Undecided(deadline.plus_ms(config.commit_delay_ms));
    }
    let applied = match effects(state, &description, &candidate) {
        Ok(applied) => applied,
        Err(reason) => return broken(state, reason),
    };
    // An UpdatePath rotates its committer's leaf, asked for or not.
    let expected = expected_changes(state, &named, applied.path.then_some(committer));
    if let Some((address, _)) = applied
        .added
        .iter()
        .find(|(a, kp)| !approved_key_package(state, kp, *a))
    {
        return broken(
            state,
            format!("adds {address} with a key package nobody voted for"),
        );
    }
    if applied.changes != expected.changes {
        return broken(
            state,
            format!(
                "applies {:?} but the vote approved {:?}",
                applied.changes, expected.changes
            ),
        );
    }
    if applied.params != expected.params {
        return broken(state, "its steward list is not the elected one".into());
    }
    let acting = state.committers().first().copied();
    let rank = Rank::new(approved_count, acting == Some(committer), committer, bytes);
    let seen = SeenCommit {
        committer,
        bytes: bytes.to_vec(),
        applied: applied.changes,
        seen_at: now,
    };
    Verdict::Valid(Box::new(ValidCommit {
        candidate,
        description,
        seen,
        rank,
        committed: named,
    }))
}

/// What the approved proposals `named` by a manifest call for, in a commit whose
/// UpdatePath replaces the leaf of `path_by` (if it has one).
fn expected_changes(
    state: &EpochState,
    named: &[demls_consensus::ProposalId],
    path_by: Option<Address>,
) -> Expected {
    let mut changes: BTreeSet<ChangeKind> = path_by.map(ChangeKind::Update).into_iter().collect();
    let mut election: Option<(u32, Vec<Address>)> = None;
    for open in named.iter().filter_map(|id| state.open.get(id)) {
        match &open.motion {
            Motion::Change(Change::Add {
                address, replace, ..
            }) => {
                changes.insert(ChangeKind::Add(*address));
                if *replace {
                    changes.insert(ChangeKind::Remove(*address));
                }
            }
            Motion::Change(Change::Remove { target }) => {
                changes.insert(ChangeKind::Remove(*target));
            }
            Motion::Change(Change::Update { .. }) => {
                changes.insert(ChangeKind::Update(open.owner));
            }
            Motion::Emergency(Emergency {
                offender: Some(offender),
                ..
            }) if state.is_member(offender) => {
                changes.insert(ChangeKind::Remove(*offender));
            }
            Motion::Emergency(_) => {}
            Motion::Election(e) => {
                if election
                    .as_ref()
                    .is_none_or(|(round, _)| e.retry_round > *round)
                {
                    election = Some((e.retry_round, e.stewards.clone()));
                }
            }
        }
    }
    let params = election.map(|(retry_round, stewards)| {
        elected_params(&state.params, state.epoch(), retry_round, &stewards)
    });
    Expected {
        changes: changes.into_iter().collect(),
        params,
    }
}

/// The group parameters after an election held in `epoch`.
pub(crate) fn elected_params(
    params: &GroupParamsExt,
    epoch: u64,
    retry_round: u32,
    stewards: &[Address],
) -> GroupParamsExt {
    GroupParamsExt {
        stewards: stewards.iter().map(|a| *a.as_bytes()).collect(),
        election_epoch: epoch.saturating_add(1),
        retry_round,
        ..params.clone()
    }
}

/// What a commit does.
pub(crate) struct Effects {
    /// Membership changes, in canonical order (a leave shows as a removal).
    pub(crate) changes: Vec<ChangeKind>,
    /// New group parameters (an election applied).
    pub(crate) params: Option<GroupParamsExt>,
    /// The key packages it adds, with their owners.
    added: Vec<(Address, mls_rs::KeyPackage)>,
    /// Whether it carries an UpdatePath (its committer's leaf replaced).
    pub(crate) path: bool,
}

/// Reads what a processed commit does, against the state it was processed in (`after`:
/// the state it led to). Updates show as [`ChangeKind::Update`] of their sender, and so
/// does an UpdatePath of its committer.
pub(crate) fn effects(
    state: &EpochState,
    description: &CommitMessageDescription,
    after: &MlsGroup,
) -> Result<Effects, String> {
    let (CommitEffect::NewEpoch(new_epoch) | CommitEffect::Removed { new_epoch, .. }) =
        &description.effect
    else {
        return Err("reinit is not allowed".into());
    };
    let mut changes = BTreeSet::new();
    let mut params = None;
    let mut added = Vec::new();
    for info in new_epoch.applied_proposals() {
        // Updates can only be sent by their own leaf, so they travel by reference; every
        // other change is the committer's, by value.
        let by_reference = matches!(info.source, ProposalSource::ByReference(_));
        if by_reference != matches!(info.proposal, MlsProposal::Update(_)) {
            return Err(format!(
                "carries a {:?} proposal {}",
                info.proposal.proposal_type(),
                if by_reference {
                    "by reference"
                } else {
                    "by value"
                }
            ));
        }
        match &info.proposal {
            MlsProposal::Update(_) => {
                let Sender::Member(index) = info.sender else {
                    return Err("carries an update from outside the group".into());
                };
                let owner = state.address_at(index).ok_or("updates an empty leaf")?;
                changes.insert(ChangeKind::Update(owner));
            }
            MlsProposal::Add(add) => {
                // mls-rs validated every added leaf through the identity
                // provider (the wallet binding verified) before it described
                // the commit: the claim is the verified address.
                let address = WalletIdentityProvider::claimed_address(add.signing_identity())
                    .map_err(|e| format!("added credential: {e}"))?;
                changes.insert(ChangeKind::Add(address));
                added.push((address, add.key_package().clone()));
            }
            MlsProposal::Remove(remove) => {
                let target = state
                    .address_at(remove.to_remove())
                    .ok_or("removes an empty leaf")?;
                changes.insert(ChangeKind::Remove(target));
            }
            MlsProposal::GroupContextExtensions(extensions) => {
                let new = extensions
                    .get_as::<GroupParamsExt>()
                    .map_err(|e| format!("parameters: {e}"))?
                    .ok_or("changes the context without parameters")?;
                // Only the parameters may change (an election): the rules and anything
                // else in the context stay as the group was created.
                let mut kept = extensions.clone();
                kept.remove(GroupParamsExt::TYPE);
                let mut before = state.mls.context().extensions.clone();
                before.remove(GroupParamsExt::TYPE);
                if kept != before {
                    return Err("changes the group context beyond its parameters".into());
                }
                params = Some(new);
            }
            other => return Err(format!("carries a {:?} proposal", other.proposal_type())),
        }
    }
    // A member the commit removes cannot follow its UpdatePath (the path secrets are not
    // encrypted to it), so its own view of the tree does not show the committer's new leaf.
    // A commit that removes someone always carries a path (RFC 9420, 12.4), and mls-rs
    // refuses one without: that is what this member knows of it.
    let removes_me = matches!(description.effect, CommitEffect::Removed { .. });
    let path =
        removes_me || crate::rotation::leaf_replaced(&state.mls, after, description.committer);
    if path {
        let committer = state
            .address_at(description.committer)
            .ok_or("committed from an empty leaf")?;
        changes.insert(ChangeKind::Update(committer));
    }
    Ok(Effects {
        changes: changes.into_iter().collect(),
        params,
        added,
        path,
    })
}

/// Whether an approved add proposal carries exactly this key package.
fn approved_key_package(
    state: &EpochState,
    key_package: &mls_rs::KeyPackage,
    address: Address,
) -> bool {
    let suite = suite();
    let Ok(wanted) = key_package.to_reference(&suite) else {
        return false;
    };
    state
        .approved_motions()
        .any(|(_, open)| match open.motion.as_change() {
            Some(Change::Add {
                address: a,
                key_package: message,
                ..
            }) => {
                *a == address
                    && key_package_of(message)
                        .ok()
                        .and_then(|kp| kp.to_reference(&suite).ok())
                        .is_some_and(|r| r == wanted)
            }
            _ => false,
        })
}

impl GroupSession {
    /// A commit for epoch `epoch` (current or past).
    pub(crate) fn handle_commit(
        &mut self,
        epoch: u64,
        bytes: Vec<u8>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        // After its removal a member still hears its old epoch's commits: one that
        // keeps it counts only if it beats the commit that removed it.
        let removed_at = self
            .departed
            .and(self.history.back())
            .map(|c| c.before.epoch());
        if epoch < self.state.epoch() || removed_at == Some(epoch) {
            return self.consider_competitor(epoch, bytes, ctx);
        }
        match check_commit(&mut self.state, &bytes, ctx.now, ctx.config) {
            Verdict::Valid(valid) => self.adopt(*valid, ctx),
            Verdict::Undecided(give_up_at) => {
                self.desk.hold(bytes, give_up_at);
                Ok(())
            }
            Verdict::Broken { committer, reason } => {
                ctx.emit(Event::CommitRejected {
                    group: self.id.clone(),
                    committer,
                    reason: reason.clone(),
                });
                let violation_epoch = self.state.epoch();
                self.report(
                    Emergency {
                        offender: Some(committer),
                        violation_epoch,
                        evidence: Evidence::BrokenCommit(bytes),
                    },
                    ctx,
                );
                Err(EngineError::InvalidCommit(reason))
            }
            Verdict::Refused { committer, reason } => {
                ctx.emit(Event::CommitRejected {
                    group: self.id.clone(),
                    committer: committer.unwrap_or_default(),
                    reason: reason.clone(),
                });
                Err(EngineError::InvalidCommit(reason))
            }
            // Sent again by someone: nothing to weigh.
            Verdict::Own => Err(EngineError::InvalidCommit("own commit".into())),
            Verdict::MissingProposal(error) if self.names_lost_update(&bytes) => {
                tracing::warn!(group = %self.id, "a commit names an update this member lost: asking to be added again");
                self.sync.cannot_follow(ctx.now);
                self.hold(epoch, &bytes, ctx)?;
                Err(error)
            }
            Verdict::Unreadable(error) | Verdict::MissingProposal(error) => {
                self.hold(epoch, &bytes, ctx)?;
                self.sync.suspect(ctx.now);
                Err(error)
            }
        }
    }

    /// A commit for an epoch this member already left: a competitor of the one it applied.
    fn consider_competitor(
        &mut self,
        epoch: u64,
        bytes: Vec<u8>,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let Some(index) = self.history.iter().position(|c| c.before.epoch() == epoch) else {
            return Err(EngineError::WrongEpoch {
                got: Epoch(epoch),
                current: self.epoch(),
            });
        };
        if self.history[index]
            .before
            .commits
            .iter()
            .any(|c| c.bytes == bytes)
        {
            return Err(EngineError::Duplicate);
        }
        let mut trial = self.history[index].before.clone();
        let verdict = check_commit(&mut trial, &bytes, ctx.now, ctx.config);
        match verdict {
            Verdict::Valid(valid) => {
                self.note_equivocation(index, &valid.seen, ctx);
                self.history[index].before.commits.push(valid.seen.clone());
                if valid.rank <= self.history[index].rank {
                    return Ok(());
                }
                // The better commit wins: back to that epoch, and on from there. The
                // epoch's record keeps the commit left behind: it competed.
                let left_behind = self.history[index].applied.clone();
                if !trial.commits.iter().any(|c| c.bytes == left_behind.bytes) {
                    trial.commits.push(left_behind);
                }
                ctx.emit(Event::BranchSwitched {
                    group: self.id.clone(),
                    fork_epoch: Epoch(epoch),
                    committer: valid.seen.committer,
                });
                self.history.truncate(index);
                self.state = trial;
                self.desk.drop_pending();
                self.adopt(*valid, ctx)
            }
            Verdict::Broken { committer, reason } => {
                self.report(
                    Emergency {
                        offender: Some(committer),
                        violation_epoch: epoch,
                        evidence: Evidence::BrokenCommit(bytes),
                    },
                    ctx,
                );
                Err(EngineError::InvalidCommit(reason))
            }
            Verdict::Refused { reason, .. } => Err(EngineError::InvalidCommit(reason)),
            Verdict::Own => {
                // Another commit this member sent for that epoch. If the filtering rule prefers
                // it, the group ends on it, and this member cannot follow: mls-rs does not
                // process its own commits, and the state that commit led to was not kept. It
                // is then on a dead branch, and asks to be added again.
                let checkpoint = &self.history[index];
                if checkpoint.applied.bytes != bytes
                    && checkpoint.rank.with_bytes(&bytes) > checkpoint.rank
                {
                    tracing::warn!(group = %self.id, epoch, "the group prefers another commit of this member's: asking to be added again");
                    self.sync.cannot_follow(ctx.now);
                }
                Err(EngineError::InvalidCommit("own commit".into()))
            }
            Verdict::Undecided(_) => Err(EngineError::InvalidCommit(
                "a past epoch's commit names undecided proposals".into(),
            )),
            Verdict::Unreadable(error) | Verdict::MissingProposal(error) => {
                // Not readable at that epoch either: it belongs to a branch that parted earlier.
                self.hold(epoch, &bytes, ctx)?;
                Err(error)
            }
        }
    }

    /// Two valid commits for one epoch by one steward that change different things.
    fn note_equivocation(&mut self, index: usize, new: &SeenCommit, ctx: &mut Ctx<'_>) {
        let checkpoint = &self.history[index];
        let epoch = checkpoint.before.epoch();
        let earlier = std::iter::once(&checkpoint.applied)
            .chain(&checkpoint.before.commits)
            .find(|c| c.committer == new.committer && c.applied != new.applied)
            .map(|c| c.bytes.clone());
        if let Some(first) = earlier {
            let evidence = Evidence::Equivocation {
                first,
                second: new.bytes.clone(),
            };
            self.report(
                Emergency {
                    offender: Some(new.committer),
                    violation_epoch: epoch,
                    evidence,
                },
                ctx,
            );
        }
    }

    /// Makes a checked commit's state current, keeping the left epoch in history.
    pub(crate) fn adopt(
        &mut self,
        valid: ValidCommit,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let ValidCommit {
            candidate,
            description,
            seen,
            rank,
            committed,
        } = valid;
        let committer = seen.committer;
        // The commit may have carried the votes that decided an emergency here.
        self.score_emergencies(&ctx.config.scoring);
        let new_state = EpochState::new(candidate, ctx.now)?;
        let old = std::mem::replace(&mut self.state, new_state);
        // What became of each proposal of the epoch left (one voted down was told already).
        let new_epoch = Epoch(self.state.epoch());
        let closed: Vec<(ProposalId, Option<Epoch>)> = old
            .open
            .iter()
            .filter(|(_, open)| !matches!(open.decided, Some((false, _))))
            .map(|(id, _)| (*id, committed.contains(id).then_some(new_epoch)))
            .collect();
        let before: BTreeSet<Address> = old.members().into_iter().collect();
        let left_epoch = old.epoch();
        let committers = old.committers();
        let was_acting = committers.first().copied();
        let acting_committed = old.commits.iter().any(|c| Some(c.committer) == was_acting);
        // The backup's turn began at the first approval as the backup saw it, which reaches
        // each member a network delay apart: a quarter of a turn covers that.
        let turn_ms = old.rules.timers.commit_ms(ctx.config);
        let waited_past_turn = !acting_committed
            && old
                .first_approval()
                .is_some_and(|t| t.plus_ms(turn_ms - turn_ms / 4) <= ctx.now);
        let omissions = censored(&old, &seen, ctx.config);
        // Honest work by a steward of the epoch's list (Layer 3 recovery lets anyone commit).
        let honest_steward = omissions.is_empty() && committers.contains(&committer);
        let removal = removal_of(&old, self.me);
        self.note_added(&description);
        let applied = seen.applied.clone();
        self.history.push_back(Checkpoint {
            before: old,
            applied: seen,
            rank,
        });
        while self.history.len() > ctx.config.history_epochs {
            self.history.pop_front();
        }
        if let CommitEffect::Removed { new_epoch, .. } = &description.effect {
            ctx.emit(Event::Removed {
                group: self.id.clone(),
                epoch: Epoch(new_epoch.epoch()),
                by: committer,
                reason: removal,
            });
            self.departed = Some(ctx.now);
            return Ok(());
        }
        if self.departed.take().is_some() {
            // A better commit undid this member's removal: it is back.
            ctx.emit(Event::Joined {
                group: self.id.clone(),
                epoch: self.epoch(),
                members: self.members(),
            });
        }
        self.note_key_ages(&applied, ctx.now);
        if honest_steward {
            let scoring = &ctx.config.scoring;
            self.scores
                .adjust(committer, scoring.commit_reward, scoring);
        }
        self.save_mls()?;
        let after: BTreeSet<Address> = self.members().into_iter().collect();
        self.names_after_commit(after.difference(&before).next().is_some(), ctx);
        for (proposal, committed) in closed {
            ctx.emit(Event::ProposalClosed {
                group: self.id.clone(),
                proposal,
                committed,
            });
        }
        ctx.emit(Event::EpochChanged {
            group: self.id.clone(),
            epoch: self.epoch(),
            committer,
            added: after.difference(&before).copied().collect(),
            removed: before.difference(&after).copied().collect(),
            members: after.iter().copied().collect(),
            authenticator: self.authenticator(),
        });
        // A backup had to commit: the epoch steward let approved changes wait past its turn.
        if was_acting.is_some_and(|acting| acting != committer) && waited_past_turn {
            let evidence = Evidence::Inactivity;
            self.report(
                Emergency {
                    offender: was_acting,
                    violation_epoch: left_epoch,
                    evidence,
                },
                ctx,
            );
        }
        for omitted in omissions {
            let evidence = Evidence::Censorship {
                commit: self
                    .history
                    .back()
                    .map(|c| c.applied.bytes.clone())
                    .unwrap_or_default(),
                omitted: Box::new(omitted),
            };
            self.report(
                Emergency {
                    offender: Some(committer),
                    violation_epoch: left_epoch,
                    evidence,
                },
                ctx,
            );
        }
        self.start_epoch(ctx)
    }

    /// Resets per-epoch duties and replays messages that were waiting for this epoch.
    pub(crate) fn start_epoch(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let oldest = self
            .history
            .front()
            .map_or(self.state.epoch(), |c| c.before.epoch());
        self.desk.new_epoch(oldest);
        self.carry_own_motions();
        let state = &self.state;
        self.invitations.forget_members(|a| state.is_member(a));
        self.arrivals.keep_members(|member| state.is_member(member));
        self.scores.retain(|member| state.is_member(member));
        self.key_packages
            .expire(state.epoch(), |member| state.is_member(member));
        // A person's vote stands while its change is still to be made.
        self.ballot.keep_standing(|a| state.is_member(a));
        self.watch.keep_offenders(|o| state.is_member(o));
        self.steward_start_epoch(ctx)?;
        self.sync.epoch_advanced();
        self.drop_second_welcome();
        self.replay_held(ctx);
        Ok(())
    }

    /// Re-checks commits that were waiting for decisions.
    pub(crate) fn retry_pending_commits(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let epoch = self.state.epoch();
        for pending in self.desk.take_pending() {
            if self.state.epoch() != epoch {
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
            if let Err(error) = self.handle_commit(epoch, pending.message, ctx) {
                tracing::debug!(group = %self.id, %error, "pending commit dropped");
            }
        }
        Ok(())
    }
}

impl GroupSession {
    /// Remembers the key package each member was last added with (a joiner whose Welcome
    /// is still on its way may ask again with the same one: that is no lost state).
    fn note_added(&mut self, description: &CommitMessageDescription) {
        let (CommitEffect::NewEpoch(new_epoch) | CommitEffect::Removed { new_epoch, .. }) =
            &description.effect
        else {
            return;
        };
        let suite = suite();
        for info in new_epoch.applied_proposals() {
            if let MlsProposal::Add(add) = &info.proposal
                && let Ok(address) = WalletIdentityProvider::claimed_address(add.signing_identity())
                && let Ok(reference) = add.key_package().to_reference(&suite)
            {
                self.arrivals.added(address, reference.to_vec());
            }
        }
    }
}

/// Why the commit leaving `state` removes `me`, from the approved proposal that asked for it.
fn removal_of(state: &EpochState, me: Address) -> Removal {
    let approved = state
        .approved_motions()
        .find_map(|(id, open)| match open.kind() {
            ChangeKind::Leave(a) if a == me => Some(Removal::Left),
            ChangeKind::Readd(a) if a == me => Some(Removal::Replaced),
            ChangeKind::Remove(a) if a == me => {
                let tally = state.consensus.tally(id);
                Some(Removal::Voted {
                    proposal: id,
                    owner: open.owner,
                    yes: tally.as_ref().map_or(0, |t| t.yes),
                    no: tally.as_ref().map_or(0, |t| t.no),
                    voters: tally.as_ref().map_or(0, |t| t.expected),
                })
            }
            ChangeKind::Emergency {
                offender: Some(a),
                violation,
            } if a == me => Some(Removal::Emergency {
                proposal: id,
                violation,
            }),
            _ => None,
        });
    // A commit removes a member only for an approved reason (it was checked so); a
    // member that took part in no vote was replaced by a fresh key package of its own.
    approved.unwrap_or(Removal::Replaced)
}

/// Approved proposals that a commit left out although they were approved well
/// before it arrived (a steward censoring them).
fn censored(
    state: &EpochState,
    commit: &SeenCommit,
    config: &crate::EngineConfig,
) -> Vec<demls_consensus::wire::Proposal> {
    let grace = censorship_grace(state.rules.timers, config);
    state
        .approved_motions()
        .filter(|(_, open)| crate::epoch::worth_a_commit(&open.motion))
        .filter(|(_, open)| {
            open.decided
                .is_some_and(|(_, at)| at.plus_ms(grace) <= commit.seen_at)
        })
        .filter(|(_, open)| !commit.applied.contains(&applied_form(&open.kind())))
        // The update of a member the commit removes is moot, not censored.
        .filter(|(_, open)| {
            !matches!(open.kind(), ChangeKind::Update(a) if commit.applied.contains(&ChangeKind::Remove(a)))
        })
        .filter_map(|(id, _)| state.consensus.proposal(id).cloned())
        .collect()
}

/// How long before a commit an approved proposal must have been decided for
/// its omission to count as censorship: two commit turns, so that a
/// committer still missing votes on a lossy network is not taken for a censor.
pub(crate) fn censorship_grace(timers: crate::rules::Timers, config: &crate::EngineConfig) -> u64 {
    2 * timers.commit_ms(config)
}

/// How an approved change shows in a commit (a leave is a removal; an emergency removes its offender).
pub(crate) fn applied_form(kind: &ChangeKind) -> ChangeKind {
    match kind {
        ChangeKind::Leave(a) => ChangeKind::Remove(*a),
        ChangeKind::Readd(a) => ChangeKind::Add(*a),
        ChangeKind::Emergency {
            offender: Some(o), ..
        } => ChangeKind::Remove(*o),
        other => other.clone(),
    }
}
