//! Catching up and healing forks.
//!
//! A member that is behind (messages of later epochs wait for commits it never
//! got) or on another branch (traffic of its own epoch it cannot read, or a
//! steward announcing another branch) asks the group with a signed
//! [`SyncRequest`] listing its recent epochs and their branch marks. The epoch
//! steward and its backup answer by publishing again the commits they kept
//! from the newest epoch they share with the asker. A commit of an epoch the
//! asker is in lets it move on; a commit for an epoch it already left competes
//! with the one it applied, and the filtering rule decides which branch both
//! sides follow. A responder that finds the asker on another branch asks in
//! turn, so that each side sees the other's commits.

use std::collections::BTreeMap;

use demls_identity::Address;

use crate::context::Ctx;
use crate::session::GroupSession;
use crate::wire::{EpochMark, SyncRequest, check_signed_by, envelope, signing_bytes};
use crate::{EngineError, Event, StewardMode, Timestamp, TopicKind};

/// How this member stands with respect to the rest of the group.
#[derive(Default)]
pub(crate) struct SyncState {
    /// Since when this member has suspected it is on another branch or behind.
    suspected_since: Option<Timestamp>,
    last_request: Option<Timestamp>,
    /// Requests sent since the epoch last moved (each waits twice as long).
    attempts: u32,
    answered: BTreeMap<Address, Timestamp>,
    /// Since when stewards have announced the group only on another branch (none has
    /// announced this member's branch since).
    foreign_since: Option<Timestamp>,
}

impl SyncState {
    /// Something suggests this member is behind or on another branch.
    pub(crate) fn suspect(&mut self, now: Timestamp) {
        self.suspected_since.get_or_insert(now);
    }

    /// This member cannot follow the group from its state (a commit it cannot process
    /// for good): it counts as on a dead branch from now, and asks to be added again
    /// after `rejoin_after_ms`.
    pub(crate) fn cannot_follow(&mut self, now: Timestamp) {
        self.suspect(now);
        self.foreign_since = Some(now);
    }

    /// Since when stewards have announced only another branch.
    pub(crate) fn foreign_since(&self) -> Option<Timestamp> {
        self.foreign_since
    }

    /// A steward announced an epoch this member knows: on another branch (`forked`) or on
    /// this member's. One announcing this member's branch starts the wait over: a late
    /// announcement from before a steward switched must not leave the member waiting for good
    /// on a branch nobody announces any more.
    fn on_known_mark(&mut self, forked: bool, now: Timestamp) {
        if forked {
            self.foreign_since.get_or_insert(now);
        } else {
            self.foreign_since = None;
        }
    }

    /// The group moved on here: old suspicions are void.
    pub(crate) fn epoch_advanced(&mut self) {
        self.suspected_since = None;
        self.attempts = 0;
        self.foreign_since = None;
    }

    fn retry_interval(&self, config: &crate::EngineConfig) -> u64 {
        config.sync_retry_ms << self.attempts.min(5)
    }
}

impl GroupSession {
    /// This member's recent epochs and branches, newest first.
    fn marks(&self) -> Vec<EpochMark> {
        std::iter::once(&self.state)
            .chain(self.history.iter().rev().map(|c| &c.before))
            .map(|s| EpochMark {
                epoch: s.epoch(),
                branch: s.branch(),
            })
            .collect()
    }

    fn branch_at(&self, epoch: u64) -> Option<Vec<u8>> {
        self.state_of(epoch).map(|s| s.branch())
    }

    /// Since when this member has been waiting: suspected, or holding messages of later epochs.
    fn waiting_since(&self) -> Option<Timestamp> {
        let behind = self.held.first_after(self.state.epoch());
        [self.sync.suspected_since, behind]
            .into_iter()
            .flatten()
            .min()
    }

    /// When this member should ask for what it is missing.
    pub(crate) fn sync_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        let waiting = self.waiting_since()?.plus_ms(config.sync_retry_ms);
        let interval = self.sync.retry_interval(config);
        Some(
            self.sync
                .last_request
                .map_or(waiting, |last| waiting.max(last.plus_ms(interval))),
        )
    }

    /// When this member's branch counts as dead: stewards have announced the group only
    /// on another branch for a while, and it could not switch (it has no state from where
    /// the branches part).
    pub(crate) fn dead_branch_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        let since = self.sync.foreign_since?;
        self.departed
            .is_none()
            .then(|| since.plus_ms(config.rejoin_after_ms))
    }

    /// Asks when it is time.
    pub(crate) fn sync_on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self.sync_due(ctx.config).is_some_and(|due| due <= ctx.now) {
            self.send_sync_request(ctx);
        }
        Ok(())
    }

    fn send_sync_request(&mut self, ctx: &mut Ctx<'_>) {
        let mut request = SyncRequest {
            requester: ctx.wallet.address().as_bytes().to_vec(),
            have: self.marks(),
            sent_at_ms: ctx.now.0,
            signature: Vec::new(),
        };
        let signed = signing_bytes(&request, |r| r.signature.clear());
        request.signature = ctx.wallet.sign_personal(&signed).as_bytes().to_vec();
        ctx.send(
            &self.id,
            TopicKind::Application,
            envelope::Body::SyncRequest(request),
        );
        ctx.emit(Event::SyncRequested {
            group: self.id.clone(),
            epoch: self.epoch(),
        });
        self.sync.last_request = Some(ctx.now);
        self.sync.attempts += 1;
    }

    /// Another member asks for commits.
    pub(crate) fn handle_sync_request(
        &mut self,
        request: SyncRequest,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let requester = Address::from_slice(&request.requester)
            .ok_or_else(|| EngineError::Malformed("requester is not an address".into()))?;
        check_signed_by(
            &request,
            &request.signature,
            |r| r.signature.clear(),
            requester,
        )?;
        let known = self.state.is_member(&requester)
            || self.history.iter().any(|c| c.before.is_member(&requester));
        if !known {
            return Err(EngineError::NotMember(requester));
        }
        let me = ctx.wallet.address();
        if request
            .have
            .first()
            .is_some_and(|m| m.epoch == self.state.epoch() && m.branch == self.state.branch())
        {
            // Someone where this member is already asked: no need to ask too.
            self.sync.last_request = Some(ctx.now);
            return Ok(());
        }
        let responders: Vec<Address> = match self.state.mode {
            StewardMode::Single => self.stewards(),
            StewardMode::Big | StewardMode::Small => {
                self.state.committers().into_iter().take(2).collect()
            }
        };
        if !responders.contains(&me) {
            return Ok(());
        }
        if self
            .sync
            .answered
            .get(&requester)
            .is_some_and(|t| t.plus_ms(ctx.config.sync_retry_ms) > ctx.now)
        {
            return Ok(());
        }
        self.sync.answered.insert(requester, ctx.now);
        let common = request
            .have
            .iter()
            .find(|m| self.branch_at(m.epoch).is_some_and(|b| b == m.branch))
            .map(|m| m.epoch);
        let forked = request
            .have
            .iter()
            .any(|m| self.branch_at(m.epoch).is_some_and(|b| b != m.branch));
        for checkpoint in &self.history {
            if common.is_none_or(|c| checkpoint.before.epoch() >= c) {
                ctx.send(
                    &self.id,
                    TopicKind::Application,
                    envelope::Body::MlsMessage(checkpoint.applied.bytes.clone()),
                );
            }
        }
        if forked
            && self
                .sync
                .last_request
                .is_none_or(|t| t.plus_ms(ctx.config.sync_retry_ms) <= ctx.now)
        {
            self.send_sync_request(ctx);
        }
        Ok(())
    }

    /// A steward's announcement told of an epoch and branch of this group.
    pub(crate) fn on_peer_mark(&mut self, epoch: u64, branch: &[u8], now: Timestamp) {
        let mine = self.branch_at(epoch);
        let behind = epoch > self.state.epoch();
        let forked = mine.as_deref().is_some_and(|b| b != branch);
        if behind || forked {
            self.sync.suspect(now);
        }
        if mine.is_some() {
            self.sync.on_known_mark(forked, now);
        }
        if forked && epoch == self.state.epoch() {
            self.note_other_mark(branch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_is_dead_once_only_another_is_announced_even_after_a_late_announcement_of_its_own() {
        let mut sync = SyncState::default();
        sync.on_known_mark(true, Timestamp(1_000));
        assert_eq!(sync.foreign_since, Some(Timestamp(1_000)));
        // A steward's announcement from before it switched arrives late.
        sync.on_known_mark(false, Timestamp(2_000));
        assert_eq!(sync.foreign_since, None);
        sync.on_known_mark(true, Timestamp(3_000));
        sync.on_known_mark(true, Timestamp(4_000));
        assert_eq!(sync.foreign_since, Some(Timestamp(3_000)));
    }
}
