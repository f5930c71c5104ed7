//! Admission policies: groups that admit only holders of a minimum ETH or
//! token balance, or of an NFT, read from a chain.
//!
//! The engine does no IO: it asks its shell to read the chain
//! ([`Request::AdmissionCheck`]) and takes the answer
//! ([`crate::Engine::admission_verdict`]). The steward checks a joiner before
//! proposing it; every member checks again before voting YES. An unanswered
//! or unavailable check never admits anyone (fail closed): nobody votes YES
//! on it, and in a gated group silence never counts as YES for an add. The
//! check is asked again while it matters, so the group admits once the chain
//! can be read, and keeps working meanwhile.

use std::collections::BTreeMap;

use demls_identity::Address;
use demls_policy::Verdict;

use crate::change::Change;
use crate::context::Ctx;
use crate::motion::Motion;
use crate::session::GroupSession;
use crate::wire::{JoinRefused, envelope, signing_bytes};
use crate::{EngineError, Request, Timestamp, TopicKind};

/// Where this member's check of one joiner stands.
#[derive(Clone, Debug)]
pub(crate) struct Check {
    asked_at: Timestamp,
    /// Some(true): admitted; Some(false): refused; None: not answered, or unavailable.
    admitted: Option<bool>,
}

/// This member's checks of joiners, by address.
pub(crate) type Checks = BTreeMap<Address, Check>;

impl GroupSession {
    /// Whether the group has an admission policy to check.
    pub(crate) fn gated(&self) -> bool {
        self.state.policy.gate().is_some()
    }

    /// What this member's check says of `subject`, asking for it if not asked yet, or if
    /// its answer is older than [`crate::EngineConfig::admission_retry_ms`] (balances at the
    /// latest block change: a joiner refused once may qualify later).
    pub(crate) fn admission(&mut self, subject: Address, ctx: &mut Ctx<'_>) -> Option<bool> {
        if let Some(check) = self.checks.get(&subject) {
            let stale = check.admitted.is_some()
                && check.asked_at.plus_ms(ctx.config.admission_retry_ms) <= ctx.now;
            if !stale {
                return check.admitted;
            }
        }
        self.ask_admission(subject, ctx);
        None
    }

    fn ask_admission(&mut self, subject: Address, ctx: &mut Ctx<'_>) {
        self.checks.insert(
            subject,
            Check {
                asked_at: ctx.now,
                admitted: None,
            },
        );
        ctx.request(Request::AdmissionCheck {
            group: self.id.clone(),
            subject,
            policy: self.state.policy.clone(),
        });
    }

    /// A joiner that asked this steward waits for its check before being proposed.
    pub(crate) fn hold_for_admission(
        &mut self,
        joiner: Address,
        change: Change,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        // Every request is checked anew and answered: a joiner refused before may qualify now.
        self.checks.remove(&joiner);
        match self.admission(joiner, ctx) {
            Some(true) => self.request(Motion::Change(change), ctx),
            Some(false) => Ok(()),
            None => {
                if let Some(duty) = self.steward.as_mut() {
                    duty.waiting.insert(joiner, change);
                }
                Ok(())
            }
        }
    }

    /// The shell's answer to an [`Request::AdmissionCheck`].
    pub(crate) fn admission_verdict(
        &mut self,
        subject: Address,
        verdict: Verdict,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let admitted = match &verdict {
            Verdict::Admit => Some(true),
            Verdict::Refuse(_) => Some(false),
            Verdict::Unavailable(reason) => {
                tracing::warn!(group = %self.id, %subject, %reason, "admission check unavailable: not admitting, will ask again");
                None
            }
        };
        let asked_at = self.checks.get(&subject).map_or(ctx.now, |c| c.asked_at);
        self.checks.insert(subject, Check { asked_at, admitted });
        // A joiner waiting at this steward.
        let waiting = self
            .steward
            .as_mut()
            .and_then(|duty| duty.waiting.remove(&subject));
        if let Some(change) = waiting {
            match &verdict {
                Verdict::Admit => self.request(Motion::Change(change), ctx)?,
                Verdict::Refuse(refusal) => {
                    self.refuse_joiner(subject, &refusal.to_string(), ctx);
                    self.steward_forget(subject);
                }
                Verdict::Unavailable(_) => {
                    if let Some(duty) = self.steward.as_mut() {
                        duty.waiting.insert(subject, change);
                    }
                }
            }
        }
        // Votes waiting on this joiner.
        self.reconsider(&crate::ChangeKind::Add(subject), ctx)
    }

    /// Tells a refused joiner why, signed, on the welcome topic.
    pub(crate) fn refuse_joiner(&self, joiner: Address, reason: &str, ctx: &mut Ctx<'_>) {
        let mut refusal = JoinRefused {
            steward: ctx.wallet.address().as_bytes().to_vec(),
            joiner: joiner.as_bytes().to_vec(),
            reason: reason.to_owned(),
            sent_at_ms: ctx.now.0,
            signature: Vec::new(),
        };
        let signed = signing_bytes(&refusal, |r| r.signature.clear());
        refusal.signature = ctx.wallet.sign_personal(&signed).as_bytes().to_vec();
        ctx.send(
            &self.id,
            TopicKind::Welcome,
            envelope::Body::JoinRefused(refusal),
        );
    }

    /// Joiners whose check is unanswered or unavailable and still matters.
    fn unresolved(&self) -> impl Iterator<Item = (&Address, &Check)> {
        self.checks.iter().filter(|(subject, check)| {
            check.admitted.is_none()
                && (self.steward.as_ref().is_some_and(|d| d.waiting.contains_key(*subject))
                    || self.state.open.values().any(|o| {
                        o.decided.is_none()
                            && matches!(o.motion.as_change(), Some(Change::Add { address, .. }) if address == *subject)
                    }))
        })
    }

    /// Asks again the checks that could not be made.
    pub(crate) fn admission_on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let due: Vec<Address> = self
            .unresolved()
            .filter(|(_, c)| c.asked_at.plus_ms(ctx.config.admission_retry_ms) <= ctx.now)
            .map(|(subject, _)| *subject)
            .collect();
        for subject in due {
            self.ask_admission(subject, ctx);
        }
    }

    /// When a check should next be asked again.
    pub(crate) fn admission_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        self.unresolved()
            .map(|(_, c)| c.asked_at.plus_ms(config.admission_retry_ms))
            .min()
    }
}
