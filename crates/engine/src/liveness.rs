//! Keeping the group live: due elections, and what happens when stewards go silent.
//!
//! Three layers, as the newer spec has them: each committer in order gets a
//! steward timeout (backups take over; see [`GroupSession::commit_due`]);
//! when the whole list has been silent, a re-election with the next retry
//! round; when the re-elections are used up, a deadlock emergency, after
//! which any member may commit and the filtering rule picks among commits.

use crate::context::Ctx;
use crate::motion::{Emergency, Evidence, Motion};
use crate::session::GroupSession;
use crate::{EngineError, Timestamp};

impl GroupSession {
    /// Whether this member has, or sees open or approved, a motion like `wanted`.
    fn pursued(&self, wanted: &Motion) -> bool {
        self.own.iter().any(|o| o.motion.same_as(wanted))
            || self
                .reports
                .iter()
                .any(|r| Motion::Emergency(r.emergency.clone()).same_as(wanted))
            || self
                .state
                .open
                .values()
                .any(|o| o.motion.same_as(wanted) && o.decided.is_none_or(|(yes, _)| yes))
    }

    /// The next liveness step due, with when.
    fn next_liveness_step(&self, config: &crate::EngineConfig) -> Option<(Timestamp, Motion)> {
        // A single-steward group has no one to hand over to: no re-election, no deadlock
        // emergency (its report would be dropped, and the step stay due for ever).
        let stalled = self
            .stalled_since(config)
            .filter(|_| self.state.mode != crate::StewardMode::Single);
        if let Some(since) = stalled {
            let next = self.state.reelections().saturating_add(1);
            let motion = if next <= self.state.rules.timers.max_reelections(config) {
                let stewards = self.state.expected_list(next, self.id.as_bytes());
                Motion::Election(crate::motion::Election {
                    retry_round: next,
                    stewards,
                })
            } else {
                Motion::Emergency(Emergency {
                    offender: None,
                    violation_epoch: self.state.epoch(),
                    evidence: Evidence::Deadlock,
                })
            };
            if !self.pursued(&motion) {
                return Some((since, motion));
            }
        }
        if self.state.election_due() {
            let stewards = self.state.expected_list(0, self.id.as_bytes());
            let motion = Motion::Election(crate::motion::Election {
                retry_round: 0,
                stewards,
            });
            if !self.pursued(&motion) {
                // The epoch steward proposes it at once; anyone after a steward timeout.
                return Some((
                    self.state
                        .started_at
                        .plus_ms(self.state.rules.timers.commit_ms(config)),
                    motion,
                ));
            }
        }
        None
    }

    /// Takes the liveness step that is due, if any.
    pub(crate) fn liveness_on_timeout(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        match self.next_liveness_step(ctx.config) {
            Some((due, Motion::Emergency(emergency))) if due <= ctx.now => {
                self.report(emergency, ctx);
                Ok(())
            }
            Some((due, motion)) if due <= ctx.now => self.request(motion, ctx),
            _ => Ok(()),
        }
    }

    /// When the next liveness step is due.
    pub(crate) fn liveness_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        self.next_liveness_step(config).map(|(due, _)| due)
    }
}
