//! This member's side of the vote: the motions it asks the group for, and its person's
//! decisions on adding or removing someone, both kept across epochs (RFC: a proposal is of
//! one epoch; what a member wants, and what its person decided, are not).

use std::collections::BTreeMap;

use demls_consensus::ProposalId;

use demls_identity::Address;

use crate::change::Change;
use crate::motion::Motion;
use crate::snapshot::{GroupSnapshot, StandingVote};
use crate::{ChangeKind, EngineError, Epoch};

/// A motion this member asked for, re-proposed each epoch until applied or voted down.
struct OwnMotion {
    motion: Motion,
    /// Its proposal in the current epoch, once opened.
    proposal: Option<ProposalId>,
}

/// The motions this member asks for and its person's standing votes.
#[derive(Default)]
pub(crate) struct Ballot {
    own: Vec<OwnMotion>,
    /// This member's person's votes on membership changes, cast again on the same change
    /// when it is proposed again in a later epoch (votes are per epoch, decisions are not).
    standing: BTreeMap<ChangeKind, bool>,
}

impl Ballot {
    /// Whether this member already asks for a motion like `motion`.
    pub(crate) fn wants(&self, motion: &Motion) -> bool {
        self.own.iter().any(|own| own.motion.same_as(motion))
    }

    /// Asks for `motion`, not yet proposed; `false` if a like motion is already asked for.
    pub(crate) fn ask(&mut self, motion: Motion) -> bool {
        if self.wants(&motion) {
            return false;
        }
        self.own.push(OwnMotion {
            motion,
            proposal: None,
        });
        true
    }

    /// The motions without a proposal in this epoch, highest priority first, each with the
    /// index to name it by in [`Self::proposed`].
    pub(crate) fn unproposed(&self) -> Vec<(usize, Motion)> {
        let mut order: Vec<usize> = (0..self.own.len())
            .filter(|i| self.own[*i].proposal.is_none())
            .collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.own[*i].motion.priority()));
        order
            .into_iter()
            .map(|i| (i, self.own[i].motion.clone()))
            .collect()
    }

    /// The motion at `index` (from [`Self::unproposed`]) is proposed as `proposal`.
    pub(crate) fn proposed(&mut self, index: usize, proposal: ProposalId) {
        if let Some(own) = self.own.get_mut(index) {
            own.proposal = Some(proposal);
        }
    }

    /// An open proposal of this member's, restored, is the one of its like motion that
    /// has none yet.
    pub(crate) fn reopened(&mut self, motion: &Motion, proposal: ProposalId) {
        if let Some(own) = self
            .own
            .iter_mut()
            .find(|own| own.proposal.is_none() && own.motion.same_as(motion))
        {
            own.proposal = Some(proposal);
        }
    }

    /// The proposal was voted down: this member stops asking for it.
    pub(crate) fn voted_down(&mut self, proposal: ProposalId) {
        self.own.retain(|own| own.proposal != Some(proposal));
    }

    /// A new epoch: keeps the motions `still_wanted` says are, each to be proposed again.
    pub(crate) fn carry(&mut self, mut still_wanted: impl FnMut(&Motion) -> bool) {
        self.own.retain(|own| still_wanted(&own.motion));
        for own in &mut self.own {
            own.proposal = None;
        }
    }

    /// Whether this member has asked for its own update and it is not committed yet.
    pub(crate) fn update_wanted(&self) -> bool {
        self.own
            .iter()
            .any(|own| matches!(own.motion, Motion::Change(Change::Update { .. })))
    }

    /// This member's person's decision on `change`, if it made one that still stands.
    pub(crate) fn standing(&self, change: &ChangeKind) -> Option<bool> {
        self.standing.get(change).copied()
    }

    /// Records this member's person's decision on adding or removing someone; other
    /// changes are not decided by people and are not kept.
    pub(crate) fn stand(&mut self, change: ChangeKind, yes: bool) {
        if matches!(change, ChangeKind::Add(_) | ChangeKind::Remove(_)) {
            self.standing.insert(change, yes);
        }
    }

    /// A decision is spent (its change was voted down).
    pub(crate) fn unstand(&mut self, change: &ChangeKind) {
        self.standing.remove(change);
    }

    /// A new epoch: a decision stands while its change is still to be made.
    pub(crate) fn keep_standing(&mut self, is_member: impl Fn(&Address) -> bool) {
        self.standing.retain(|kind, _| match kind {
            ChangeKind::Add(a) => !is_member(a),
            ChangeKind::Remove(a) => is_member(a),
            _ => false,
        });
    }

    /// Writes what survives a restart into `snapshot`: the membership changes asked for
    /// (not yet proposed again) and the standing decisions.
    pub(crate) fn save(&self, snapshot: &mut GroupSnapshot) -> Result<(), EngineError> {
        snapshot.own_changes = self
            .own
            .iter()
            .filter_map(|own| own.motion.as_change())
            .map(|change| change.encode(Epoch::default()))
            .collect::<Result<_, _>>()?;
        snapshot.standing = self
            .standing
            .iter()
            .filter_map(|(kind, yes)| {
                let (add, member) = match kind {
                    ChangeKind::Add(a) => (true, a),
                    ChangeKind::Remove(a) => (false, a),
                    _ => return None,
                };
                Some(StandingVote {
                    add,
                    member: member.as_bytes().to_vec(),
                    yes: *yes,
                })
            })
            .collect();
        Ok(())
    }

    /// The ballot [`Self::save`] wrote into `snapshot`.
    pub(crate) fn restore(snapshot: &GroupSnapshot) -> Result<Self, EngineError> {
        let mut ballot = Self::default();
        for change in &snapshot.own_changes {
            ballot.ask(Motion::Change(Change::decode_any_epoch(change)?));
        }
        for vote in &snapshot.standing {
            let member = Address::from_slice(&vote.member)
                .ok_or_else(|| EngineError::Malformed("snapshot: standing vote".into()))?;
            let kind = if vote.add {
                ChangeKind::Add(member)
            } else {
                ChangeKind::Remove(member)
            };
            ballot.stand(kind, vote.yes);
        }
        Ok(ballot)
    }
}
