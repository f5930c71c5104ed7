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
use demls_identity::Address;
use sha2::{Digest, Sha256};

use crate::{EngineError, Timestamp};

impl GroupSession {
    /// Whether this member has, or sees open or approved, a motion like `wanted`.
    fn pursued(&self, wanted: &Motion) -> bool {
        self.ballot.wants(wanted)
            || self.watch.pursues(wanted)
            || self
                .state
                .open
                .values()
                .any(|o| o.motion.same_as(wanted) && o.decided.is_none_or(|(yes, _)| yes))
    }

    /// The next liveness step due, with when: never before this member has heard the group
    /// after a stall of its own, which would look like everyone else's silence.
    fn next_liveness_step(&self, config: &crate::EngineConfig) -> Option<(Timestamp, Motion)> {
        self.liveness_step(config)
            .map(|(due, motion)| (self.desk.after_hearing(due), motion))
    }

    fn liveness_step(&self, config: &crate::EngineConfig) -> Option<(Timestamp, Motion)> {
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
                // Everyone sees the list stall at once: each member acts at its own point of
                // one more timeout, so that the first proposal or report stops the others.
                let timeout = self.state.rules.timers.commit_ms(config);
                let own = spread(self.me, self.state.epoch(), timeout);
                return Some((since.plus_ms(own), motion));
            }
        }
        if self.state.election_due() {
            let stewards = self.state.expected_list(0, self.id.as_bytes());
            let motion = Motion::Election(crate::motion::Election {
                retry_round: 0,
                stewards,
            });
            if !self.pursued(&motion) {
                return Some((self.election_turn(config), motion));
            }
        }
        None
    }

    /// When this member proposes a due election that nobody has proposed yet: the epoch
    /// steward at once, each later committer one steward timeout after the one before it,
    /// and any other member once every committer has had its turn, at a point of one more
    /// timeout that is its own. Everyone votes on every proposal, so members that all
    /// proposed at the same deadline would load a big group with one election per member
    /// (seen at 50 members: 16 copies of one election while the group was chatting).
    fn election_turn(&self, config: &crate::EngineConfig) -> Timestamp {
        let timeout = self.state.rules.timers.commit_ms(config);
        let committers = self.state.committers();
        let wait = match committers.iter().position(|c| *c == self.me) {
            Some(position) => timeout.saturating_mul(position as u64),
            None => {
                let turns = timeout.saturating_mul(committers.len() as u64 + 1);
                turns.saturating_add(spread(self.me, self.state.epoch(), timeout))
            }
        };
        self.state.started_at.plus_ms(wait)
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

/// A point in `0..span` ms that is `member`'s own in `epoch`: members that would otherwise act
/// at one deadline act at different moments, and the first one's action stops the rest.
fn spread(member: Address, epoch: u64, span: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(member.as_bytes())
        .chain_update(epoch.to_be_bytes())
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head) % span.max(1)
}
