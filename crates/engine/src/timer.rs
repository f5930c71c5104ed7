//! The timer table of a group session (after quinn-proto's): every deadline a member keeps
//! for a group, the rule that sets it, the part that owns it, and what runs when it falls.
//!
//! A deadline is worked out from the state it belongs to each time it is asked for, never
//! stored apart from it, so that none outlives what it was for (a vote decided, a commit
//! applied). The engine asks [`GroupSession::poll_timeout`] for the earliest deadline of
//! all its groups, and at it runs [`GroupSession::handle_timeout`], which gives every duty
//! its turn: each acts only on what is due.

use crate::context::Ctx;
use crate::session::GroupSession;
use crate::{EngineConfig, EngineError, Timestamp};

/// A deadline a member keeps for a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A removed member's grace ends: its state is dropped (`departed_grace_ms`; the
    /// engine's `tidy_groups`). While it runs, no other timer does.
    Departed,
    /// An open proposal's voting deadline (the consensus, in `EpochState`): decided by
    /// the votes in hand ([`GroupSession::check_decision`]).
    VoteDeadline,
    /// A held commit whose proposals this member has not seen decided is given up
    /// ([`crate::desk::CommitDesk`]; run in [`GroupSession::settle`]).
    HeldCommit,
    /// A violation report this member scheduled is raised as an emergency unless someone
    /// else raised it ([`crate::violation::Watch`]; run in [`GroupSession::settle`]).
    ViolationReport,
    /// A steward's announcement and its held-back join requests
    /// ([`crate::steward::StewardDuty`]).
    Steward,
    /// This member's turn to commit the approved changes (the steward rotation: the epoch
    /// steward first, each backup a turn later; [`crate::desk::CommitDesk`] delays it after
    /// a failed commit or a stall; run in [`GroupSession::settle`]).
    CommitTurn,
    /// A liveness step: a re-election when committers are silent, a deadlock emergency
    /// (`liveness.rs`).
    Liveness,
    /// Asking peers for commits this member missed ([`crate::sync::SyncState`]).
    Sync,
    /// This member's branch is dead (only other branches are announced): it asks to be
    /// added again ([`crate::sync::SyncState`]; the engine's `tidy_groups`).
    DeadBranch,
    /// A joiner welcomed on two branches switches to the other one, the only one announced
    /// ([`crate::second_welcome::SecondWelcome`]; the engine's `tidy_groups`).
    OtherBranch,
    /// Chat repair: asking for missing messages, answering, giving up, re-sending
    /// unacknowledged own messages ([`crate::causal::ChatLog`]).
    Chat,
    /// Re-sending this member's proposals and votes while undecided (`voting.rs`).
    Rebroadcast,
    /// A vote this member holds back until its time (`voting.rs`).
    ScheduledVote,
    /// An admission check of a joiner times out, never admitting it
    /// ([`crate::admission::Checks`]).
    Admission,
    /// This member's leaf keys are due for replacement by the group's rotation rule
    /// ([`crate::rotation::KeyRotation`]).
    Rotation,
    /// A kept key package of a joiner is proposed again
    /// ([`crate::buffer::KeyPackageBuffer`]).
    KeyPackages,
}

impl Timer {
    /// Every timer.
    pub(crate) const ALL: [Self; 16] = [
        Self::Departed,
        Self::VoteDeadline,
        Self::HeldCommit,
        Self::ViolationReport,
        Self::Steward,
        Self::CommitTurn,
        Self::Liveness,
        Self::Sync,
        Self::DeadBranch,
        Self::OtherBranch,
        Self::Chat,
        Self::Rebroadcast,
        Self::ScheduledVote,
        Self::Admission,
        Self::Rotation,
        Self::KeyPackages,
    ];
}

impl GroupSession {
    /// When `timer` next falls, if it is set.
    pub(crate) fn deadline(&self, timer: Timer, config: &EngineConfig) -> Option<Timestamp> {
        match timer {
            Timer::Departed => self
                .departed
                .map(|departed| departed.plus_ms(config.departed_grace_ms)),
            Timer::VoteDeadline => self.state.consensus.poll_timeout().map(Timestamp::from),
            Timer::HeldCommit => self.desk.next_give_up(),
            Timer::ViolationReport => self.watch.next_due(),
            Timer::Steward => self.steward_poll_timeout(),
            Timer::CommitTurn => self.commit_due(config),
            Timer::Liveness => self.liveness_due(config),
            Timer::Sync => self.sync_due(config),
            Timer::DeadBranch => self.dead_branch_due(config),
            Timer::OtherBranch => self.other_branch_due(config),
            Timer::Chat => self
                .chat
                .poll_timeout(config, self.state.members().len() <= 1),
            Timer::Rebroadcast => self.rebroadcast_due(config),
            Timer::ScheduledVote => self.scheduled_votes_due(),
            Timer::Admission => self.admission_due(config),
            Timer::Rotation => self.rotation_due(),
            Timer::KeyPackages => self.buffered_due(config),
        }
    }

    /// Whether `timer` has fallen by `now`.
    pub(crate) fn fallen(&self, timer: Timer, config: &EngineConfig, now: Timestamp) -> bool {
        self.deadline(timer, config).is_some_and(|due| due <= now)
    }

    /// The next instant this session needs [`Self::handle_timeout`].
    pub(crate) fn poll_timeout(&self, config: &EngineConfig) -> Option<Timestamp> {
        if self.departed.is_some() {
            return self.deadline(Timer::Departed, config);
        }
        Timer::ALL
            .into_iter()
            .filter_map(|timer| self.deadline(timer, config))
            .min()
    }

    /// Runs every duty whose timer may have fallen, each acting only on what is due; the
    /// engine then acts on [`Timer::Departed`], [`Timer::DeadBranch`] and
    /// [`Timer::OtherBranch`], which replace or drop the session itself.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self.departed.is_some() {
            return Ok(());
        }
        for (id, _) in self.state.consensus.handle_timeout(ctx.now.into()) {
            self.check_decision(id, ctx)?;
        }
        self.steward_on_timeout(ctx);
        self.rebroadcast(ctx)?;
        self.cast_scheduled_votes(ctx)?;
        self.admission_on_timeout(ctx);
        self.sync_on_timeout(ctx)?;
        self.liveness_on_timeout(ctx)?;
        self.chat_on_timeout(ctx)?;
        self.rotate_if_due(ctx)?;
        self.propose_buffered(ctx)?;
        // Held commits, violation reports and the commit turn.
        self.settle(ctx)?;
        self.report_missing(ctx);
        Ok(())
    }
}
