//! A joiner welcomed on both sides of a fork.
//!
//! Two stewards may commit the same epoch (a backup that did not hear the epoch steward in
//! time) and both add the same joiner: the joiner sealed one key package to every steward, so
//! it can open either Welcome. It joins by the first it reads. The filtering rule may prefer
//! the other commit, and the members switch to it; the joiner cannot follow them by processing
//! that commit, because it holds no state from the epoch before. Left alone, it would wait
//! `rejoin_after_ms` on a branch nobody uses, ask to be added again, and miss all that is
//! said meanwhile.
//!
//! So while it is at the epoch it joined at, a joiner keeps its key package (in memory only:
//! it is not written again) and opens any other Welcome for it into a second group state,
//! also in memory. Once stewards have announced only that other branch for
//! [`SWITCH_AFTER_ANNOUNCEMENTS`] announcement intervals, it switches to it: its session is
//! rebuilt from the other group state, the messages it held as unreadable (the other branch's
//! traffic) are read, and the Welcome it leaves stays kept, so that it can switch back the
//! same way. The key package is dropped at the joiner's first commit, or with its session.

use demls_identity::Address;
use mls_rs::KeyPackageStorage;
use mls_rs::storage_provider::KeyPackageData;

use crate::context::Ctx;
use crate::epoch::branch_mark;
use crate::join::open_welcome;
use crate::mls::{MlsClient, MlsGroup};
use crate::session::GroupSession;
use crate::wire::WelcomeBundle;
use crate::{EngineError, Epoch, Event, Timestamp};

/// Announcement intervals during which stewards announce only the other branch before a
/// joiner holding it switches: long enough for an announcement of its own branch to come
/// through if that branch lives, much shorter than giving the branch up (`rejoin_after_ms`).
pub(crate) const SWITCH_AFTER_ANNOUNCEMENTS: u64 = 3;

/// The key package this member joined with, and the other branch it opened, if any.
pub(crate) struct SecondWelcome {
    reference: Vec<u8>,
    key_package: KeyPackageData,
    other: Option<OtherBranch>,
}

/// The group state another Welcome for the same key package leads to.
struct OtherBranch {
    mls: MlsGroup,
    /// Its branch mark at the epoch this member joined at.
    mark: Vec<u8>,
    /// The leaf of the member that made its Welcome.
    committer_leaf: u32,
    /// Whether a steward has announced it.
    announced: bool,
}

impl SecondWelcome {
    /// Keeps `key_package` (reference `reference`), with no other branch yet.
    pub(crate) fn new(reference: Vec<u8>, key_package: KeyPackageData) -> Self {
        Self {
            reference,
            key_package,
            other: None,
        }
    }
}

impl GroupSession {
    /// A Welcome of this group heard while a member: if it admits this member's key package
    /// at the epoch it joined at and leads to another branch, that branch is kept.
    pub(crate) fn open_second_welcome(
        &mut self,
        bundle: &WelcomeBundle,
        client: &MlsClient,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let Some(second) = self.second_welcome.as_mut() else {
            return Ok(());
        };
        if bundle.epoch != self.state.epoch() {
            return Ok(());
        }
        let store_error =
            |e: mls_rs_codec::Error| EngineError::Mls(format!("key package store: {e}"));
        let mut store = client.key_package_store();
        store
            .insert(second.reference.clone(), second.key_package.clone())
            .map_err(store_error)?;
        let opened = open_welcome(bundle, &second.reference, client, now);
        // Back out at once: only the state it leads to is kept, and only in memory.
        store.delete(&second.reference).map_err(store_error)?;
        let (mls, committer_leaf) = opened?;
        let mark = branch_mark(&mls);
        if mark != self.state.branch() {
            second.other = Some(OtherBranch {
                mls,
                mark,
                committer_leaf,
                announced: false,
            });
        }
        Ok(())
    }

    /// A steward announced branch `mark` at this member's epoch, not this member's branch.
    pub(crate) fn note_other_mark(&mut self, mark: &[u8]) {
        if let Some(other) = self
            .second_welcome
            .as_mut()
            .and_then(|s| s.other.as_mut())
            .filter(|o| o.mark == mark)
        {
            other.announced = true;
        }
    }

    /// The first commit this member applies settles its branch: the key package goes.
    pub(crate) fn drop_second_welcome(&mut self) {
        self.second_welcome = None;
    }

    /// When this member switches to the other branch it holds: once stewards have announced
    /// it, and only it, for a while.
    pub(crate) fn other_branch_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        self.second_welcome
            .as_ref()?
            .other
            .as_ref()
            .filter(|o| o.announced)?;
        let since = self.sync.foreign_since()?;
        Some(
            since.plus_ms(
                config
                    .announce_interval_ms
                    .saturating_mul(SWITCH_AFTER_ANNOUNCEMENTS),
            ),
        )
    }

    /// This member's session on the other branch it holds, with the messages this one held
    /// and the Welcomes it kept (among them the one this session came from). `None` if it
    /// holds none; on an error, this session stays as it was, without the other branch.
    pub(crate) fn switch_to_other_branch(
        &mut self,
        client: &MlsClient,
        ctx: &mut Ctx<'_>,
    ) -> Result<Option<GroupSession>, EngineError> {
        let Some(second) = self.second_welcome.as_mut() else {
            return Ok(None);
        };
        let Some(mut other) = second.other.take() else {
            return Ok(None);
        };
        other.mls.write_to_storage()?;
        let mut session = GroupSession::new(self.id.clone(), self.me, other.mls, None, ctx.now)?;
        session.second_welcome = self.second_welcome.take();
        session.arrivals = self.arrivals.take_welcomes();
        let committer = session
            .state
            .leaves
            .get(other.committer_leaf as usize)
            .copied()
            .flatten()
            .unwrap_or(Address::default());
        tracing::warn!(group = %self.id, epoch = session.state.epoch(), %committer, "the group lives on the other branch this member was welcomed into: switching to it");
        ctx.emit(Event::BranchSwitched {
            group: self.id.clone(),
            fork_epoch: Epoch(session.state.epoch().saturating_sub(1)),
            committer,
        });
        ctx.emit(Event::Joined {
            group: self.id.clone(),
            epoch: session.epoch(),
            members: session.members(),
        });
        // The Welcome this session came from becomes the other branch in turn.
        let kept: Vec<WelcomeBundle> = session.arrivals.welcomes().cloned().collect();
        for bundle in &kept {
            if let Err(error) = session.open_second_welcome(bundle, client, ctx.now) {
                tracing::debug!(group = %self.id, %error, "kept Welcome not opened");
            }
        }
        // What this branch could not read is likely the other's traffic.
        session.held = std::mem::take(&mut self.held);
        session.replay_held(ctx);
        session.settle(ctx)?;
        Ok(Some(session))
    }
}
