//! Voting proposals and latencies as this node sees them, from engine events.

use std::collections::BTreeMap;
use std::time::Duration;

use demls_engine::{ChangeKind, Epoch, GroupId, ProposalId, Timestamp};
use demls_identity::Address;
use demls_storage::{ProposalRecord, ProposalState};

use super::json::{self, to_text};

/// A proposal of a group's current epoch.
struct Tracked {
    record: ProposalRecord,
    /// Who it would admit, if it is an add.
    joiner: Option<Address>,
}

/// Proposals of each group's current epoch, with what is needed for latencies.
#[derive(Default)]
pub struct Tracker {
    current: BTreeMap<(GroupId, ProposalId), Tracked>,
    epochs: BTreeMap<GroupId, Epoch>,
    first_approval: BTreeMap<GroupId, Timestamp>,
    last_commit: BTreeMap<GroupId, Timestamp>,
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::from_millis(to.0.saturating_sub(from.0))
}

impl Tracker {
    /// The group is at `epoch` (known from the engine or an event).
    pub fn set_epoch(&mut self, group: &GroupId, epoch: Epoch) {
        self.epochs.insert(group.clone(), epoch);
    }

    /// The epoch last seen for `group`.
    pub fn epoch(&self, group: &GroupId) -> Option<Epoch> {
        self.epochs.get(group).copied()
    }

    /// When the group last changed epoch here.
    pub fn last_commit(&self, group: &GroupId) -> Option<Timestamp> {
        self.last_commit.get(group).copied()
    }

    /// The record of a proposal of the current epoch.
    pub fn get(&self, group: &GroupId, id: ProposalId) -> Option<&ProposalRecord> {
        self.current.get(&(group.clone(), id)).map(|t| &t.record)
    }

    /// The open votes of `group` on adding someone, oldest first, with who asks.
    pub fn open_adds(&self, group: &GroupId) -> Vec<(ProposalRecord, Address)> {
        let mut adds: Vec<_> = self
            .current
            .iter()
            .filter(|((g, _), t)| g == group && t.record.state == ProposalState::Open)
            .filter_map(|(_, t)| Some((t.record.clone(), t.joiner?)))
            .collect();
        adds.sort_by_key(|(record, _)| record.opened_at);
        adds
    }

    /// Removes and returns the proposals of `group`.
    fn take(&mut self, group: &GroupId) -> Vec<Tracked> {
        let keys: Vec<_> = self
            .current
            .keys()
            .filter(|(g, _)| g == group)
            .cloned()
            .collect();
        keys.iter()
            .filter_map(|key| self.current.remove(key))
            .collect()
    }

    /// A proposal was opened.
    pub fn opened(
        &mut self,
        group: &GroupId,
        id: ProposalId,
        owner: Address,
        change: ChangeKind,
        deadline: Timestamp,
        now: Timestamp,
    ) -> ProposalRecord {
        let record = ProposalRecord {
            group: group.clone(),
            id,
            epoch: self.epoch(group).unwrap_or_default(),
            owner,
            change: to_text(&json::change(&change)),
            opened_at: now,
            deadline,
            state: ProposalState::Open,
            decided_at: None,
            committed_epoch: None,
            votes: Vec::new(),
        };
        let joiner = match change {
            ChangeKind::Add(joiner) => Some(joiner),
            _ => None,
        };
        self.current.insert(
            (group.clone(), id),
            Tracked {
                record: record.clone(),
                joiner,
            },
        );
        record
    }

    /// After a restart, a proposal the engine kept open, as this node stored it.
    pub fn resume(&mut self, record: ProposalRecord) {
        let joiner = match serde_json::from_str(&record.change) {
            Ok(demls_api::Change::Add { member }) => member.parse().ok(),
            _ => None,
        };
        self.current.insert(
            (record.group.clone(), record.id),
            Tracked { record, joiner },
        );
    }

    /// Whether the proposal is followed here (open or decided in the current epoch).
    pub fn follows(&self, group: &GroupId, id: ProposalId) -> bool {
        self.current.contains_key(&(group.clone(), id))
    }

    /// A vote was recorded.
    pub fn voted(
        &mut self,
        group: &GroupId,
        id: ProposalId,
        voter: Address,
        yes: bool,
    ) -> Option<ProposalRecord> {
        let tracked = self.current.get_mut(&(group.clone(), id))?;
        let votes = &mut tracked.record.votes;
        if !votes.iter().any(|(v, _)| *v == voter) {
            votes.push((voter, yes));
        }
        Some(tracked.record.clone())
    }

    /// A proposal was decided; also returns how long it took since it was opened here.
    pub fn decided(
        &mut self,
        group: &GroupId,
        id: ProposalId,
        approved: bool,
        now: Timestamp,
    ) -> Option<(ProposalRecord, Duration)> {
        let tracked = self.current.get_mut(&(group.clone(), id))?;
        let record = &mut tracked.record;
        record.state = if approved {
            ProposalState::Approved
        } else {
            ProposalState::Rejected
        };
        record.decided_at = Some(now);
        if approved {
            self.first_approval.entry(group.clone()).or_insert(now);
        }
        Some((record.clone(), elapsed(record.opened_at, now)))
    }

    /// The engine says a commit ended `id`'s epoch: it applied it in `committed`, or the
    /// proposal ends without effect. Returns the record to store, if it changed.
    pub fn closed(
        &mut self,
        group: &GroupId,
        id: ProposalId,
        committed: Option<Epoch>,
    ) -> Option<ProposalRecord> {
        let Tracked { mut record, .. } = self.current.remove(&(group.clone(), id))?;
        match (committed, record.state) {
            (Some(epoch), _) => record.committed_epoch = Some(epoch),
            (None, ProposalState::Open) => record.state = ProposalState::Closed,
            // Approved but left out: it stays approved, and is proposed anew if still wanted.
            (None, _) => return None,
        }
        Some(record)
    }

    /// A commit moved `group` to `epoch` (after the engine closed the epoch's proposals, see
    /// [`Self::closed`]); returns the commit latency (from the first approval).
    pub fn epoch_changed(
        &mut self,
        group: &GroupId,
        epoch: Epoch,
        now: Timestamp,
    ) -> Option<Duration> {
        self.epochs.insert(group.clone(), epoch);
        self.last_commit.insert(group.clone(), now);
        // What is left of the epoch was voted down, and stored as such already.
        self.take(group);
        self.first_approval
            .remove(group)
            .map(|first| elapsed(first, now))
    }

    /// This node left `group`: its open proposals end.
    pub fn left(&mut self, group: &GroupId) -> Vec<ProposalRecord> {
        self.epochs.remove(group);
        self.first_approval.remove(group);
        self.take(group)
            .into_iter()
            .filter(|t| t.record.state == ProposalState::Open)
            .map(|t| ProposalRecord {
                state: ProposalState::Closed,
                ..t.record
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_are_tallied_decided_and_committed() {
        let g = GroupId::new("lab").unwrap();
        let (a, b, c) = (
            Address::new([1; 20]),
            Address::new([2; 20]),
            Address::new([3; 20]),
        );
        let mut t = Tracker::default();
        t.set_epoch(&g, Epoch(2));
        let add = t.opened(
            &g,
            ProposalId(1),
            a,
            ChangeKind::Add(c),
            Timestamp(9_000),
            Timestamp(1_000),
        );
        assert_eq!(add.epoch, Epoch(2));
        t.opened(
            &g,
            ProposalId(2),
            b,
            ChangeKind::Remove(a),
            Timestamp(9_000),
            Timestamp(1_000),
        );
        t.voted(&g, ProposalId(1), a, true);
        t.voted(&g, ProposalId(1), a, true);
        let record = t.voted(&g, ProposalId(1), b, true).unwrap();
        assert_eq!(record.votes.len(), 2);
        let (record, took) = t
            .decided(&g, ProposalId(1), true, Timestamp(1_250))
            .unwrap();
        assert_eq!(record.state, ProposalState::Approved);
        assert_eq!(took, Duration::from_millis(250));
        // The engine says what the commit did with each: the add applied, the removal not.
        let committed = t.closed(&g, ProposalId(1), Some(Epoch(3))).unwrap();
        assert_eq!(committed.committed_epoch, Some(Epoch(3)));
        assert_eq!(committed.state, ProposalState::Approved);
        let closed = t.closed(&g, ProposalId(2), None).unwrap();
        assert_eq!(closed.state, ProposalState::Closed);
        let latency = t.epoch_changed(&g, Epoch(3), Timestamp(1_300));
        assert_eq!(latency, Some(Duration::from_millis(50)));
        assert!(t.get(&g, ProposalId(1)).is_none());
        assert_eq!(t.epoch(&g), Some(Epoch(3)));
    }
}
