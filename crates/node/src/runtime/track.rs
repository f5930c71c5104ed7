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
    change: ChangeKind,
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

/// Whether a commit that added `added` and removed `removed` applied `change`.
fn applied(change: &ChangeKind, added: &[Address], removed: &[Address]) -> bool {
    // Kinds newer than this node (elections, emergencies) change no membership directly.
    #[allow(unreachable_patterns)]
    match change {
        ChangeKind::Add(a) => added.contains(a),
        ChangeKind::Remove(a) | ChangeKind::Leave(a) => removed.contains(a),
        _ => false,
    }
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
            .filter_map(|(_, t)| match t.change {
                ChangeKind::Add(joiner) => Some((t.record.clone(), joiner)),
                _ => None,
            })
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
        self.current.insert(
            (group.clone(), id),
            Tracked {
                record: record.clone(),
                change,
            },
        );
        record
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

    /// A commit moved `group` to `epoch`: open proposals are closed, applied ones are marked.
    /// Returns the changed records and the commit latency (from the first approval).
    pub fn epoch_changed(
        &mut self,
        group: &GroupId,
        epoch: Epoch,
        added: &[Address],
        removed: &[Address],
        now: Timestamp,
    ) -> (Vec<ProposalRecord>, Option<Duration>) {
        self.epochs.insert(group.clone(), epoch);
        self.last_commit.insert(group.clone(), now);
        let latency = self
            .first_approval
            .remove(group)
            .map(|first| elapsed(first, now));
        let mut changed = Vec::new();
        for Tracked { mut record, change } in self.take(group) {
            match record.state {
                ProposalState::Open => record.state = ProposalState::Closed,
                ProposalState::Approved if applied(&change, added, removed) => {
                    record.committed_epoch = Some(epoch);
                }
                _ => continue,
            }
            changed.push(record);
        }
        (changed, latency)
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
        let (changed, latency) = t.epoch_changed(&g, Epoch(3), &[c], &[], Timestamp(1_300));
        assert_eq!(latency, Some(Duration::from_millis(50)));
        assert_eq!(changed.len(), 2);
        assert_eq!(changed[0].committed_epoch, Some(Epoch(3)));
        assert_eq!(changed[1].state, ProposalState::Closed);
        assert!(t.get(&g, ProposalId(1)).is_none());
    }
}
