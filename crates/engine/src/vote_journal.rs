//! Writing the protocol snapshot as it changes: whole when anything but votes changed, and
//! otherwise only the votes taken in since, appended to a journal.
//!
//! The snapshot holds every open proposal with the votes this member holds, so that a
//! restarted member still decides them. Written whole at each vote, a proposal of a group
//! of N voters costs each member N writes of up to N votes: quadratic in the group (about
//! 170 bytes a vote, so some 85 MB a member for one proposal at 1000 voters). Votes are
//! only ever added to a proposal (the consensus appends them), so a step that only took
//! votes in appends them instead, and the next whole snapshot makes the journal void.

use std::collections::BTreeMap;

use demls_consensus::wire::Vote;
use prost::Message;

use crate::snapshot::{EngineSnapshot, JournaledVote};

/// Above this many bytes, a journal longer than the snapshot it follows is folded into a
/// whole snapshot (which, restored, it would be anyway).
const JOURNAL_FLOOR: usize = 4096;

/// What of the protocol snapshot a shell persists after a step, with the step's MLS writes.
/// Not `non_exhaustive`: a shell that ignored a new way of writing would lose state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SnapshotWrite {
    /// Nothing changed since the last write.
    #[default]
    Unchanged,
    /// The whole snapshot ([`crate::Engine::snapshot`]): it replaces the last one, and the
    /// votes journaled after that one are dropped.
    Whole(Vec<u8>),
    /// Votes taken in since the last write, each an encoded [`JournaledVote`], to append to
    /// the journal that follows the last whole snapshot. At start-up the shell hands the
    /// snapshot and its journal to [`EngineSnapshot::with_journal`].
    Votes(Vec<Vec<u8>>),
}

/// The snapshot the shell holds (the last whole one and the votes journaled since), as far
/// as needed to tell what changed.
#[derive(Default)]
pub(crate) struct VoteJournal {
    /// The held snapshot with every open proposal's votes (and round) taken out; none before
    /// the first write.
    skeleton: Option<Vec<u8>>,
    /// The hashes of the held votes of each open proposal, by group and proposal, in order.
    held: BTreeMap<(String, u32), Vec<Vec<u8>>>,
    /// The size of the last whole snapshot.
    whole_len: usize,
    /// The bytes journaled since.
    journal_len: usize,
}

/// An open proposal's votes and round, taken out of a snapshot, by group and proposal.
struct OpenVotes {
    key: (String, u32),
    votes: Vec<Vote>,
    round: u32,
}

impl VoteJournal {
    /// What the shell must write for it to hold `snapshot`; the shell is assumed to write it.
    pub(crate) fn write(&mut self, mut snapshot: EngineSnapshot) -> SnapshotWrite {
        let open = take_votes(&mut snapshot);
        let skeleton = snapshot.encode_to_vec();
        if self.skeleton.as_ref() == Some(&skeleton)
            && let Some(votes) = self.new_votes(&open)
        {
            if votes.is_empty() {
                return SnapshotWrite::Unchanged;
            }
            let len = votes.iter().map(Vec::len).sum::<usize>();
            if self.journal_len + len <= self.whole_len.max(JOURNAL_FLOOR) {
                self.journal_len += len;
                self.hold(&open);
                return SnapshotWrite::Votes(votes);
            }
        }
        self.skeleton = Some(skeleton);
        self.held.clear();
        self.hold(&open);
        let proposals = snapshot.groups.iter_mut().flat_map(|g| g.open.iter_mut());
        for (proposal, taken) in proposals.zip(open) {
            proposal.votes = taken.votes;
            proposal.round = taken.round;
        }
        let whole = snapshot.encode_to_vec();
        self.whole_len = whole.len();
        self.journal_len = 0;
        SnapshotWrite::Whole(whole)
    }

    /// The votes the shell does not hold, encoded for the journal; `None` if a held vote is
    /// not where it was (the snapshot must then be written whole).
    fn new_votes(&self, open: &[OpenVotes]) -> Option<Vec<Vec<u8>>> {
        let mut new = Vec::new();
        for proposal in open {
            let held = self.held.get(&proposal.key).map_or(&[][..], Vec::as_slice);
            let votes = &proposal.votes;
            if votes.len() < held.len()
                || votes
                    .iter()
                    .zip(held)
                    .any(|(vote, hash)| vote.vote_hash != *hash)
            {
                return None;
            }
            new.extend(votes[held.len()..].iter().map(|vote| {
                JournaledVote {
                    group_id: proposal.key.0.clone(),
                    vote: Some(vote.clone()),
                }
                .encode_to_vec()
            }));
        }
        Some(new)
    }

    /// Records these votes as held.
    fn hold(&mut self, open: &[OpenVotes]) {
        for proposal in open {
            let hashes = proposal.votes.iter().map(|v| v.vote_hash.clone()).collect();
            self.held.insert(proposal.key.clone(), hashes);
        }
    }
}

/// Takes every open proposal's votes and round (which counts them) out of `snapshot`, in
/// the snapshot's order.
fn take_votes(snapshot: &mut EngineSnapshot) -> Vec<OpenVotes> {
    snapshot
        .groups
        .iter_mut()
        .flat_map(|group| {
            let group_id = &group.group_id;
            group.open.iter_mut().map(move |proposal| OpenVotes {
                key: (group_id.clone(), proposal.proposal_id),
                votes: std::mem::take(&mut proposal.votes),
                round: std::mem::take(&mut proposal.round),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use demls_consensus::wire::Proposal;

    use super::*;
    use crate::snapshot::{GroupSnapshot, SNAPSHOT_VERSION};

    fn vote(proposal: u32, n: u8) -> Vote {
        Vote {
            proposal_id: proposal,
            vote_owner: vec![n; 20],
            vote: true,
            vote_hash: vec![n; 32],
            signature: vec![n; 65],
            ..Vote::default()
        }
    }

    /// A snapshot of one group with proposal 7 open, holding `votes` votes.
    fn snapshot(votes: u8) -> EngineSnapshot {
        let proposal = Proposal {
            proposal_id: 7,
            name: "add".into(),
            round: 1 + u32::from(votes),
            votes: (1..=votes).map(|n| vote(7, n)).collect(),
            ..Proposal::default()
        };
        EngineSnapshot {
            version: SNAPSHOT_VERSION,
            groups: vec![GroupSnapshot {
                group_id: "lab".into(),
                open: vec![proposal],
                ..GroupSnapshot::default()
            }],
            joins: Vec::new(),
        }
    }

    /// What a shell holds: the last whole snapshot and the votes journaled since.
    #[derive(Default)]
    struct Shell {
        whole: Vec<u8>,
        journal: Vec<Vec<u8>>,
    }

    impl Shell {
        fn apply(&mut self, write: SnapshotWrite) {
            match write {
                SnapshotWrite::Unchanged => {}
                SnapshotWrite::Whole(whole) => {
                    self.whole = whole;
                    self.journal.clear();
                }
                SnapshotWrite::Votes(votes) => self.journal.extend(votes),
            }
        }

        fn restored(&self) -> Vec<u8> {
            EngineSnapshot::with_journal(&self.whole, &self.journal).expect("a readable journal")
        }
    }

    #[test]
    fn a_step_that_only_takes_votes_in_journals_them_and_the_journal_restores_the_snapshot() {
        let mut journal = VoteJournal::default();
        let mut shell = Shell::default();
        let first = journal.write(snapshot(1));
        assert!(matches!(first, SnapshotWrite::Whole(_)));
        shell.apply(first);
        assert_eq!(journal.write(snapshot(1)), SnapshotWrite::Unchanged);
        for votes in 2..=5 {
            let write = journal.write(snapshot(votes));
            let SnapshotWrite::Votes(journaled) = &write else {
                panic!("a vote step wrote {write:?}");
            };
            assert_eq!(journaled.len(), 1, "only the new vote is journaled");
            shell.apply(write);
            assert_eq!(shell.restored(), snapshot(votes).encode_to_vec());
        }
    }

    #[test]
    fn anything_but_votes_changing_writes_the_snapshot_whole_and_drops_the_journal() {
        let mut journal = VoteJournal::default();
        let mut shell = Shell::default();
        shell.apply(journal.write(snapshot(1)));
        shell.apply(journal.write(snapshot(2)));
        assert_eq!(shell.journal.len(), 1);
        let mut changed = snapshot(3);
        changed.groups[0].joined_epoch = 4;
        let write = journal.write(changed.clone());
        assert_eq!(write, SnapshotWrite::Whole(changed.encode_to_vec()));
        shell.apply(write);
        assert!(shell.journal.is_empty());
        assert_eq!(shell.restored(), changed.encode_to_vec());
    }

    #[test]
    fn a_held_vote_gone_or_a_long_journal_writes_the_snapshot_whole() {
        let mut journal = VoteJournal::default();
        journal.write(snapshot(3));
        // Fewer votes than the shell holds: not an append.
        assert!(matches!(
            journal.write(snapshot(2)),
            SnapshotWrite::Whole(_)
        ));
        // A journal as long as the snapshot it follows (and past the floor) is folded in.
        let mut folded = false;
        for votes in 3..=60 {
            folded |= matches!(journal.write(snapshot(votes)), SnapshotWrite::Whole(_));
        }
        assert!(
            folded,
            "60 journaled votes never folded into a whole snapshot"
        );
    }

    #[test]
    fn a_journal_entry_for_a_proposal_the_snapshot_does_not_hold_is_left_out() {
        let whole = snapshot(1).encode_to_vec();
        let stray = JournaledVote {
            group_id: "lab".into(),
            vote: Some(vote(8, 2)),
        }
        .encode_to_vec();
        assert_eq!(
            EngineSnapshot::with_journal(&whole, &[stray]).expect("readable"),
            whole
        );
        assert!(EngineSnapshot::with_journal(&whole, &[vec![0xff]]).is_err());
    }
}
