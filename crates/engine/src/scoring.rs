//! Peer scoring (the RFC's "Peer Scoring"): each member keeps its own score of every steward,
//! lowered by the violations it sees and raised by honest work, and charges a steward in an
//! emergency proposal only once its score has fallen below the threshold. A steward that
//! missed a turn (a closed laptop lid, a lost connection) is passed over by its backup
//! (Layer 1) and loses some score; only sustained or provable misbehaviour removes it.

use crate::snapshot::ScoreRecord;
use std::collections::BTreeMap;

use demls_identity::Address;

use crate::Violation;
use crate::motion::{Emergency, Motion};
use crate::session::GroupSession;

/// How a member scores stewards. Local to each node, like the scores themselves (the RFC
/// leaves the exact rules open); the defaults let a steward miss two turns, or censor once,
/// and stay, while a third miss, a second censorship or one provable act charges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerScoring {
    /// Every member's score to begin with (the RFC's `default_peer_score`), and the most
    /// that honest work brings it back to.
    pub default_score: i32,
    /// A steward whose score is below this is charged in an emergency proposal (the RFC's
    /// `threshold_peer_score`); a member votes YES on a charge only then.
    pub threshold: i32,
    /// An epoch steward let approved changes wait past its turn.
    pub inactivity_penalty: i32,
    /// A commit left out an approved change past the grace.
    pub censorship_penalty: i32,
    /// A provable act: a broken commit, two different commits for one epoch.
    pub proven_penalty: i32,
    /// An honest commit by a steward of the epoch's list.
    pub commit_reward: i32,
    /// The creator of an emergency proposal the members approved.
    pub emergency_reward: i32,
    /// The creator of an emergency proposal the members voted down.
    pub emergency_penalty: i32,
    /// A steward sent a proposal in another member's name (a false self-leave claim). It is
    /// rejected whatever the score; the penalty only brings a later charge closer, since
    /// the MLS sender it rests on is not evidence other members can check.
    pub false_claim_penalty: i32,
}

impl Default for PeerScoring {
    fn default() -> Self {
        Self {
            default_score: 100,
            threshold: 40,
            inactivity_penalty: 25,
            censorship_penalty: 35,
            proven_penalty: 100,
            commit_reward: 5,
            emergency_reward: 10,
            emergency_penalty: 20,
            false_claim_penalty: 35,
        }
    }
}

impl PeerScoring {
    /// What a violation costs its offender.
    pub fn penalty(&self, violation: Violation) -> i32 {
        match violation {
            Violation::Inactivity => self.inactivity_penalty,
            Violation::Censorship => self.censorship_penalty,
            Violation::BrokenCommit | Violation::Equivocation => self.proven_penalty,
            Violation::Deadlock => 0,
        }
    }
}

/// A member's scores of others; members not in it have the default score.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scores(BTreeMap<Address, i32>);

impl Scores {
    /// The score of `member`.
    pub(crate) fn of(&self, member: &Address, scoring: &PeerScoring) -> i32 {
        self.0.get(member).copied().unwrap_or(scoring.default_score)
    }

    /// Moves `member`'s score by `delta`, never above the default.
    pub(crate) fn adjust(&mut self, member: Address, delta: i32, scoring: &PeerScoring) {
        let score = self
            .of(&member, scoring)
            .saturating_add(delta)
            .min(scoring.default_score);
        if score == scoring.default_score {
            self.0.remove(&member);
        } else {
            self.0.insert(member, score);
        }
    }

    /// The scores [`Self::save`] wrote.
    pub(crate) fn restore(records: &[ScoreRecord]) -> Self {
        Self(
            records
                .iter()
                .filter_map(|record| Some((Address::from_slice(&record.member)?, record.score)))
                .collect(),
        )
    }

    /// The scores that differ from the default, to keep across a restart.
    pub(crate) fn save(&self) -> Vec<ScoreRecord> {
        self.0
            .iter()
            .map(|(member, score)| ScoreRecord {
                member: member.as_bytes().to_vec(),
                score: *score,
            })
            .collect()
    }

    /// Forgets the scores of those who are no longer members.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Address) -> bool) {
        self.0.retain(|member, _| keep(member));
    }
}

impl GroupSession {
    /// The score `offender` would have once `emergency`'s violation is counted (it is
    /// counted once, when this member first sees it: [`GroupSession::detected`]).
    pub(crate) fn score_counting(&self, emergency: &Emergency, scoring: &PeerScoring) -> i32 {
        let Some(offender) = emergency.offender else {
            return scoring.default_score;
        };
        let score = self.scores.of(&offender, scoring);
        if self.watch.has_seen(emergency) {
            score
        } else {
            score.saturating_sub(scoring.penalty(emergency.evidence.violation()))
        }
    }

    /// Whether `emergency` may charge its offender: a deadlock always, a steward only
    /// once its score, this violation counted, is below the threshold.
    pub(crate) fn chargeable(&self, emergency: &Emergency, scoring: &PeerScoring) -> bool {
        emergency.offender.is_none() || self.score_counting(emergency, scoring) < scoring.threshold
    }

    /// Rewards or penalises the creator of each decided emergency proposal of the epoch,
    /// once per outcome: a member learns a decision from the votes, or from the commit that
    /// carries them (a member still missing the last votes when the commit lands), and both
    /// must count. A deadline decision that late votes turn round is scored again, the
    /// earlier outcome undone.
    pub(crate) fn score_emergencies(&mut self, scoring: &PeerScoring) {
        let delta = |approved: bool| {
            if approved {
                scoring.emergency_reward
            } else {
                -scoring.emergency_penalty
            }
        };
        for open in self.state.open.values_mut() {
            let (Motion::Emergency(_), Some((approved, _))) = (&open.motion, open.decided) else {
                continue;
            };
            let change = match open.creator_scored {
                None => delta(approved),
                Some(scored) if scored != approved => delta(approved) - delta(scored),
                Some(_) => continue,
            };
            open.creator_scored = Some(approved);
            self.scores.adjust(open.owner, change, scoring);
        }
    }

    /// `sender` sent a proposal whose owner is another member (the RFC's false self-leave
    /// claim, which it MAY penalise). Only stewards in office are scored (the RFC scores
    /// stewards active in the epoch), once per epoch however often the claim comes; anyone
    /// else's claim is only dropped.
    pub(crate) fn false_claim(&mut self, sender: Address, scoring: &PeerScoring) {
        if self.state.stewards_in_office().contains(&sender)
            && self.state.false_claims.insert(sender)
        {
            self.scores
                .adjust(sender, -scoring.false_claim_penalty, scoring);
        }
    }

    /// The score of each steward in office, in rotation order.
    pub(crate) fn steward_scores(&self, scoring: &PeerScoring) -> Vec<(Address, i32)> {
        self.state
            .stewards_in_office()
            .into_iter()
            .map(|steward| (steward, self.scores.of(&steward, scoring)))
            .collect()
    }
}

/// What makes a violation the same one seen twice: offender, kind, epoch.
pub(crate) fn violation_key(emergency: &Emergency) -> (Option<Address>, Violation, u64) {
    (
        emergency.offender,
        emergency.evidence.violation(),
        emergency.violation_epoch,
    )
}
