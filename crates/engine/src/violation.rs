//! Steward violations: reporting them as emergency proposals, and judging
//! the evidence of others' reports.
//!
//! Every member that sees a violation says so ([`Event::ViolationDetected`]);
//! one of them — the first steward in commit order other than the offender —
//! raises the emergency at once, the others only if none is raised within a
//! steward timeout. Voters check the evidence against their own record of the
//! epoch it names, and vote YES only if it holds.

use std::collections::BTreeSet;

use demls_identity::Address;

use crate::commit::{Verdict, check_commit};
use crate::context::Ctx;
use crate::motion::{Emergency, Evidence, Motion};
use crate::scoring::violation_key;
use crate::session::GroupSession;
use crate::voting::Judgement;
use crate::{Epoch, Event, Timestamp};

/// An emergency this member will raise if nobody has by `due`.
struct ScheduledReport {
    due: Timestamp,
    emergency: Emergency,
}

/// What this member saw of stewards' violations, and the reports it will raise.
#[derive(Default)]
pub(crate) struct Watch {
    reports: Vec<ScheduledReport>,
    /// Violations this member has seen: (offender, what, epoch).
    detected: BTreeSet<(Option<Address>, crate::Violation, u64)>,
}

impl Watch {
    /// Whether a report like `emergency` is already scheduled.
    fn scheduled(&self, emergency: &Emergency) -> bool {
        self.reports
            .iter()
            .any(|r| same_report(&r.emergency, emergency))
    }

    /// Whether a scheduled report's emergency is like `wanted`.
    pub(crate) fn pursues(&self, wanted: &Motion) -> bool {
        self.reports
            .iter()
            .any(|r| Motion::Emergency(r.emergency.clone()).same_as(wanted))
    }

    /// Records that this member saw the violation `emergency` names; `false` if it had.
    fn first_sight(&mut self, emergency: &Emergency) -> bool {
        self.detected.insert(violation_key(emergency))
    }

    /// Whether this member has seen the violation `emergency` names.
    pub(crate) fn has_seen(&self, emergency: &Emergency) -> bool {
        self.detected.contains(&violation_key(emergency))
    }

    /// Takes the reports due by `now` out.
    fn take_due(&mut self, now: Timestamp) -> Vec<ScheduledReport> {
        let (due, later) = std::mem::take(&mut self.reports)
            .into_iter()
            .partition(|r| r.due <= now);
        self.reports = later;
        due
    }

    /// Schedules `emergency`, to raise at `due`.
    fn schedule(&mut self, due: Timestamp, emergency: Emergency) {
        self.reports.push(ScheduledReport { due, emergency });
    }

    /// The earliest report due.
    pub(crate) fn next_due(&self) -> Option<Timestamp> {
        self.reports.iter().map(|r| r.due).min()
    }

    /// A new epoch: reports against members that left are dropped.
    pub(crate) fn keep_offenders(&mut self, is_member: impl Fn(&Address) -> bool) {
        self.reports
            .retain(|r| r.emergency.offender.is_some_and(|o| is_member(&o)));
    }
}

impl GroupSession {
    /// A violation this member saw.
    pub(crate) fn report(&mut self, emergency: Emergency, ctx: &mut Ctx<'_>) {
        if self.excused(&emergency) {
            return;
        }
        self.detected(&emergency, ctx);
        if self.watch.scheduled(&emergency) || self.raised(&emergency) {
            return;
        }
        if !self.chargeable(&emergency, &ctx.config.scoring) {
            // A fault, not yet misbehaviour: the score fell, and Layer 1 passes the steward over.
            return;
        }
        if self.state.mode == crate::StewardMode::Single {
            // Nobody else may commit in a single-steward group: say so, but there is no one to hand over to.
            return;
        }
        let me = ctx.wallet.address();
        let reporter = self
            .state
            .committers()
            .into_iter()
            .find(|c| Some(*c) != emergency.offender);
        let due = if reporter == Some(me) {
            ctx.now
        } else {
            ctx.now
                .plus_ms(self.state.rules.timers.commit_ms(ctx.config))
        };
        self.watch.schedule(due, emergency);
    }

    /// Says once that this member has seen the violation `emergency` names: by itself, or
    /// by checking another member's evidence against its own record (whoever saw it first);
    /// the offender's score pays for it then.
    pub(crate) fn detected(&mut self, emergency: &Emergency, ctx: &mut Ctx<'_>) {
        if self.watch.first_sight(emergency) {
            if let Some(offender) = emergency.offender {
                let scoring = &ctx.config.scoring;
                let penalty = scoring.penalty(emergency.evidence.violation());
                self.scores.adjust(offender, -penalty, scoring);
            }
            ctx.emit(Event::ViolationDetected {
                group: self.id.clone(),
                offender: emergency.offender,
                violation: emergency.evidence.violation(),
                epoch: Epoch(emergency.violation_epoch),
            });
        }
    }

    /// Whether an emergency like this one is already open or approved (here or in own motions).
    fn raised(&self, emergency: &Emergency) -> bool {
        let motion = Motion::Emergency(emergency.clone());
        self.ballot.wants(&motion)
            || self.state.open.values().any(|o| {
                o.motion.same_as(&motion) && o.decided.is_none_or(|(approved, _)| approved)
            })
    }

    /// Raises the reports whose time has come, unless someone already did.
    pub(crate) fn raise_due_reports(
        &mut self,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), crate::EngineError> {
        for report in self.watch.take_due(ctx.now) {
            if !self.raised(&report.emergency)
                && !self.excused(&report.emergency)
                && self.chargeable(&report.emergency, &ctx.config.scoring)
            {
                self.request(Motion::Emergency(report.emergency), ctx)?;
            }
        }
        Ok(())
    }

    /// Checks an emergency's evidence against this member's own record.
    pub(crate) fn judge_emergency(&self, emergency: &Emergency, ctx: &Ctx<'_>) -> Judgement {
        if let Some(offender) = emergency.offender {
            if !self.state.is_member(&offender) {
                return Judgement::No("the offender is not a member".into());
            }
            if offender == ctx.wallet.address() {
                return Judgement::No("this node does not accuse itself".into());
            }
        }
        if self.excused(emergency) {
            return Judgement::No(
                "the epoch had competing commits: a partition, not a violation".into(),
            );
        }
        let Some(record) = self.state_of(emergency.violation_epoch) else {
            return Judgement::Abstain;
        };
        let holds = match &emergency.evidence {
            Evidence::BrokenCommit(commit) => {
                matches!(check_commit(&mut record.clone(), commit, ctx.now, ctx.config),
                    Verdict::Broken { committer, .. } if Some(committer) == emergency.offender)
            }
            Evidence::Equivocation { first, second } => {
                let a = commit_by(record, first, ctx);
                let b = commit_by(record, second, ctx);
                match (a, b) {
                    (Some((ca, aa)), Some((cb, ab))) => {
                        Some(ca) == emergency.offender && ca == cb && aa != ab
                    }
                    _ => false,
                }
            }
            Evidence::Inactivity => {
                self.inactive(emergency.violation_epoch, emergency.offender, ctx)
                    && self.silent_since_charged(emergency)
            }
            Evidence::Censorship { commit, omitted } => {
                let id = demls_consensus::ProposalId(omitted.proposal_id);
                let seen = record
                    .commits
                    .iter()
                    .chain(self.applied_in(emergency.violation_epoch))
                    .find(|c| c.bytes == *commit);
                let approved_at = record
                    .open
                    .get(&id)
                    .and_then(|o| o.decided.filter(|(yes, _)| *yes).map(|d| d.1));
                match (seen, approved_at) {
                    (Some(seen), Some(at)) => {
                        Some(seen.committer) == emergency.offender
                            && at.plus_ms(crate::commit::censorship_grace(
                                record.rules.timers,
                                ctx.config,
                            )) <= seen.seen_at
                            && record.open.get(&id).is_some_and(|o| {
                                !seen
                                    .applied
                                    .contains(&crate::commit::applied_form(&o.kind()))
                            })
                    }
                    _ => return Judgement::Abstain,
                }
            }
            Evidence::Deadlock => {
                emergency.violation_epoch == self.state.epoch()
                    && self.state.reelections()
                        >= self.state.rules.timers.max_reelections(ctx.config)
                    && self
                        .stalled_since(ctx.config)
                        .is_some_and(|since| since <= ctx.now)
            }
        };
        if !holds {
            Judgement::No("the evidence does not hold".into())
        } else if !self.chargeable(emergency, &ctx.config.scoring) {
            Judgement::No(
                "the steward's score is above the threshold: a fault, not misbehaviour".into(),
            )
        } else {
            Judgement::Yes
        }
    }

    /// Whether the accused has sent nothing since the inactivity charge was opened here.
    fn silent_since_charged(&self, emergency: &Emergency) -> bool {
        let motion = Motion::Emergency(emergency.clone());
        let opened = self
            .state
            .open
            .values()
            .filter(|o| o.motion.same_as(&motion))
            .map(|o| o.opened_at)
            .min();
        match (emergency.offender, opened) {
            (Some(offender), Some(opened)) => self
                .state
                .heard_at
                .get(&offender)
                .is_none_or(|t| *t < opened),
            _ => false,
        }
    }

    /// Whether a charge of silence (inactivity, censorship) falls because its epoch had
    /// valid commits by different stewards: the network was split (or slow), each side
    /// committed what it saw, and the commit filter already chose between them. A charge
    /// of breaking the rules (broken commit, equivocation) is never excused.
    pub(crate) fn excused(&self, emergency: &Emergency) -> bool {
        if !matches!(
            emergency.evidence,
            Evidence::Inactivity | Evidence::Censorship { .. }
        ) {
            return false;
        }
        let epoch = emergency.violation_epoch;
        let committers: std::collections::BTreeSet<Address> = self
            .state_of(epoch)
            .into_iter()
            .flat_map(|record| &record.commits)
            .chain(self.applied_in(epoch))
            .map(|c| c.committer)
            .collect();
        committers.len() > 1
    }

    /// The commit applied to leave `epoch`, if it is in history.
    fn applied_in(&self, epoch: u64) -> Option<&crate::epoch::SeenCommit> {
        self.history
            .iter()
            .find(|c| c.before.epoch() == epoch)
            .map(|c| &c.applied)
    }

    /// Whether `offender` was the epoch steward of `epoch` and let approved changes
    /// wait past its turn without committing.
    fn inactive(&self, epoch: u64, offender: Option<Address>, ctx: &Ctx<'_>) -> bool {
        let Some(record) = self.state_of(epoch) else {
            return false;
        };
        if offender.is_none() || record.committers().first().copied() != offender {
            return false;
        }
        let never_committed = !record
            .commits
            .iter()
            .chain(self.applied_in(epoch))
            .any(|c| Some(c.committer) == offender);
        let ended_by_another = self
            .applied_in(epoch)
            .is_some_and(|c| Some(c.committer) != offender);
        let waited = record.first_approval().is_some_and(|t| {
            t.plus_ms(self.state.rules.timers.commit_ms(ctx.config) / 2)
                <= self.applied_in(epoch).map_or(ctx.now, |c| c.seen_at)
        });
        never_committed && waited && (ended_by_another || epoch == self.state.epoch())
    }
}

/// The committer and changes of a commit valid at `record`'s epoch. (A broken
/// commit is reported as such, not as half of an equivocation.)
fn commit_by(
    record: &crate::epoch::EpochState,
    bytes: &[u8],
    ctx: &Ctx<'_>,
) -> Option<(Address, Vec<crate::ChangeKind>)> {
    match check_commit(&mut record.clone(), bytes, ctx.now, ctx.config) {
        Verdict::Valid(valid) => Some((valid.seen.committer, valid.seen.applied)),
        Verdict::Broken { .. }
        | Verdict::Undecided(_)
        | Verdict::Refused { .. }
        | Verdict::Unreadable(_)
        | Verdict::MissingProposal(_)
        | Verdict::Own => None,
    }
}

/// Whether two reports are about the same thing.
fn same_report(a: &Emergency, b: &Emergency) -> bool {
    a.offender == b.offender && a.evidence.violation() == b.evidence.violation()
}
