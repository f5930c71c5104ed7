//! This member's commit desk: others' commits it holds until their proposals are decided,
//! when it may commit its own (after a failed try, after a stall of its process), and the
//! commits it made, sent again to members still speaking in the epoch they ended.

use std::collections::BTreeMap;

use crate::Timestamp;

/// A commit waiting for votes this member has not seen decided yet.
pub(crate) struct PendingCommit {
    pub(crate) message: Vec<u8>,
    pub(crate) give_up_at: Timestamp,
}

/// Commits held, and when this member may commit.
#[derive(Default)]
pub(crate) struct CommitDesk {
    pending: Vec<PendingCommit>,
    /// After a failed commit, when to try again.
    retry_at: Option<Timestamp>,
    /// When this member last sent again its commit ending each epoch.
    reminded: BTreeMap<u64, Timestamp>,
    /// After this process stalled: the epoch, and until when this member only hears the
    /// group. What it missed (a backup's commit) must reach it before it commits or blames
    /// anyone.
    hearing: Option<(u64, Timestamp)>,
}

impl CommitDesk {
    /// Holds a commit until its proposals are decided or `give_up_at` passes.
    pub(crate) fn hold(&mut self, message: Vec<u8>, give_up_at: Timestamp) {
        if !self.pending.iter().any(|p| p.message == message) {
            self.pending.push(PendingCommit {
                message,
                give_up_at,
            });
        }
    }

    /// Takes the held commits out, to check again.
    pub(crate) fn take_pending(&mut self) -> Vec<PendingCommit> {
        std::mem::take(&mut self.pending)
    }

    /// Drops the held commits (they were of an epoch this member left).
    pub(crate) fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// When the first held commit is given up.
    pub(crate) fn next_give_up(&self) -> Option<Timestamp> {
        self.pending.iter().map(|p| p.give_up_at).min()
    }

    /// A new epoch began: commits held for the last one are dropped, and so are reminders of
    /// epochs before `oldest`, the oldest one this member retains (a laggard is reminded
    /// only of a commit it still holds).
    pub(crate) fn new_epoch(&mut self, oldest: u64) {
        self.pending.clear();
        self.retry_at = None;
        self.reminded.retain(|epoch, _| *epoch >= oldest);
    }

    /// This member's commit failed: it tries again at `retry_at`, not at every step.
    pub(crate) fn failed(&mut self, retry_at: Timestamp) {
        self.retry_at = Some(retry_at);
    }

    /// When this member may commit, for a turn due at `due`.
    pub(crate) fn commit_at(&self, due: Timestamp) -> Timestamp {
        self.after_hearing(self.retry_at.map_or(due, |retry| due.max(retry)))
    }

    /// `due`, or the end of the hearing after a stall if that is later.
    pub(crate) fn after_hearing(&self, due: Timestamp) -> Timestamp {
        self.hearing.map_or(due, |(_, until)| due.max(until))
    }

    /// Whether this member already heard the group after a stall in `epoch`.
    pub(crate) fn heard_in(&self, epoch: u64) -> bool {
        self.hearing.is_some_and(|(heard, _)| heard == epoch)
    }

    /// This process stalled in `epoch`: it only hears the group until `until`.
    pub(crate) fn hear(&mut self, epoch: u64, until: Timestamp) {
        self.hearing = Some((epoch, until));
    }

    /// Whether to send again the commit that ended `epoch` (not within `interval_ms` of
    /// the last time); if so, it counts as sent now.
    pub(crate) fn remind(&mut self, epoch: u64, now: Timestamp, interval_ms: u64) -> bool {
        if self
            .reminded
            .get(&epoch)
            .is_some_and(|t| t.plus_ms(interval_ms) > now)
        {
            return false;
        }
        self.reminded.insert(epoch, now);
        true
    }
}
