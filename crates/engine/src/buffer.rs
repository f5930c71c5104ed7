//! Key packages every member keeps for a few epochs (the RFC's "Buffering KeyPackages").
//!
//! A joiner's request is sealed to one steward, but its key package reaches every member
//! inside the add proposal. A proposal still open at a commit is closed without a result,
//! and before this buffer only the steward that took the request proposed it again: a
//! steward gone silent stranded its joiner until the joiner asked again. Now every member
//! keeps the key package for [`KEPT_EPOCHS`] epochs after the one it arrived in (or until
//! the joiner is a member, or the group voted it down), and in each of those epochs the
//! committers propose it again in their Layer 1 order, one steward timeout apart, if nobody
//! has. A proposal again, not a commit: the joiner enters only through a vote of the epoch
//! that commits it, as every add must ("Membership with consent" in docs/protocol.md).

use std::collections::BTreeMap;

use demls_identity::Address;

use crate::bounded::BoundedSet;
use crate::change::{Change, key_package_of};
use crate::context::Ctx;
use crate::mls::suite;
use crate::motion::Motion;
use crate::session::GroupSession;
use crate::snapshot::BufferedKeyPackage;
use crate::{EngineError, Epoch, Timestamp};

/// Epochs a key package is kept after the epoch it arrived in (the RFC's 3).
const KEPT_EPOCHS: u64 = 3;
/// Most key packages kept per group; beyond it the oldest goes first.
const MOST_KEPT: usize = 256;
/// Most key package references remembered, so that one kept and dropped is not kept again
/// when its steward proposes it once more.
const REMEMBERED: usize = 4096;

/// A joiner's key package, kept since `epoch`.
struct Kept {
    /// The add, as proposed (with the invitation it carried, for voters to check again).
    change: Change,
    /// The epoch it arrived in.
    epoch: u64,
    /// The epoch in which this member last saw to it being proposed again.
    handled_in: Option<u64>,
}

/// The key packages one member keeps for a group, by joiner.
pub(crate) struct KeyPackageBuffer {
    kept: BTreeMap<Address, Kept>,
    /// References of every key package kept so far.
    seen: BoundedSet<Vec<u8>>,
}

impl Default for KeyPackageBuffer {
    fn default() -> Self {
        Self {
            kept: BTreeMap::new(),
            seen: BoundedSet::new(REMEMBERED),
        }
    }
}

impl KeyPackageBuffer {
    /// Keeps the key package of an add first seen in `epoch`; a key package seen before
    /// keeps its first epoch (proposing it again does not make it last longer).
    pub(crate) fn keep(&mut self, change: &Change, epoch: u64) -> Result<(), EngineError> {
        let Change::Add {
            address,
            key_package,
            replace: false,
            ..
        } = change
        else {
            return Ok(());
        };
        let reference = key_package_of(key_package)?
            .to_reference(&suite())
            .map_err(EngineError::from)?
            .to_vec();
        if !self.seen.insert(reference) {
            return Ok(());
        }
        if self.kept.len() >= MOST_KEPT
            && !self.kept.contains_key(address)
            && let Some(oldest) = self
                .kept
                .iter()
                .min_by_key(|(_, k)| k.epoch)
                .map(|(joiner, _)| *joiner)
        {
            self.kept.remove(&oldest);
        }
        // A joiner's newer key package replaces its older one.
        self.kept.insert(
            *address,
            Kept {
                change: change.clone(),
                epoch,
                handled_in: None,
            },
        );
        Ok(())
    }

    /// Drops the key package of `joiner` (the group voted it down).
    pub(crate) fn forget(&mut self, joiner: &Address) {
        self.kept.remove(joiner);
    }

    /// At the start of `epoch`: drops the key packages of members (a commit added them)
    /// and those kept for [`KEPT_EPOCHS`] epochs already.
    pub(crate) fn expire(&mut self, epoch: u64, is_member: impl Fn(&Address) -> bool) {
        self.kept
            .retain(|joiner, k| !is_member(joiner) && epoch <= k.epoch.saturating_add(KEPT_EPOCHS));
    }

    /// Whether a key package of `joiner` is kept (an add of it was proposed lately).
    pub(crate) fn holds(&self, joiner: &Address) -> bool {
        self.kept.contains_key(joiner)
    }

    /// The joiners whose key packages are kept.
    pub(crate) fn joiners(&self) -> Vec<Address> {
        self.kept.keys().copied().collect()
    }

    /// Whether a kept key package from an earlier epoch waits to be seen to in `epoch`.
    fn waiting(&self, epoch: u64) -> bool {
        self.kept
            .values()
            .any(|k| k.epoch < epoch && k.handled_in != Some(epoch))
    }

    /// The adds from earlier epochs not yet seen to in `epoch`, now marked as seen to.
    fn take_waiting(&mut self, epoch: u64) -> Vec<Change> {
        self.kept
            .values_mut()
            .filter(|k| k.epoch < epoch && k.handled_in != Some(epoch))
            .map(|k| {
                k.handled_in = Some(epoch);
                k.change.clone()
            })
            .collect()
    }

    /// The state to persist.
    pub(crate) fn snapshot(&self) -> Result<Vec<BufferedKeyPackage>, EngineError> {
        self.kept
            .values()
            .map(|k| {
                Ok(BufferedKeyPackage {
                    change: k.change.encode(Epoch::default())?,
                    epoch: k.epoch,
                })
            })
            .collect()
    }

    /// The buffer of a restarted member.
    pub(crate) fn restore(records: &[BufferedKeyPackage]) -> Result<Self, EngineError> {
        let mut buffer = Self::default();
        for record in records {
            buffer.keep(&Change::decode_any_epoch(&record.change)?, record.epoch)?;
        }
        Ok(buffer)
    }
}

impl GroupSession {
    /// Keeps the key package an add proposal of this epoch carries.
    pub(crate) fn buffer_key_package(&mut self, motion: &Motion) -> Result<(), EngineError> {
        match motion.as_change() {
            Some(change) => self.key_packages.keep(change, self.state.epoch()),
            None => Ok(()),
        }
    }

    /// When this member should see to the kept key packages of earlier epochs: as a
    /// committer at position `p`, `p + 1` steward timeouts into the epoch (the steward that
    /// took the request proposes it again at once; the others step in only if it is silent).
    pub(crate) fn buffered_due(&self, config: &crate::EngineConfig) -> Option<Timestamp> {
        if !self.key_packages.waiting(self.state.epoch()) {
            return None;
        }
        let position = self.state.committers().iter().position(|c| *c == self.me)?;
        let turns = u64::try_from(position).ok()?.saturating_add(1);
        Some(
            self.state
                .started_at
                .plus_ms(turns.saturating_mul(self.state.rules.timers.commit_ms(config))),
        )
    }

    /// Proposes again, when due, each kept joiner nobody has proposed in this epoch.
    pub(crate) fn propose_buffered(&mut self, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        if self
            .buffered_due(ctx.config)
            .is_none_or(|due| due > ctx.now)
        {
            return Ok(());
        }
        for change in self.key_packages.take_waiting(self.state.epoch()) {
            let motion = Motion::Change(change);
            if !self.already_open(&motion) {
                self.request(motion, ctx)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use demls_identity::Wallet;

    use super::*;
    use crate::{Engine, EngineConfig, MlsSigner, MlsStore};

    /// The add of a new joiner, with a fresh key package.
    fn add() -> Change {
        let signer = MlsSigner::generate().expect("a signature key");
        let mut engine = Engine::new(
            Wallet::generate(),
            &signer,
            EngineConfig::default(),
            MlsStore::in_memory(4),
        );
        let bytes = engine
            .key_package(Timestamp(1_700_000_000_000))
            .expect("a key package");
        Change::add_from_bytes(&bytes).expect("an add")
    }

    fn joiner(change: &Change) -> Address {
        change.subject(Address::default())
    }

    #[test]
    fn kept_for_three_epochs_after_the_one_it_arrived_in_and_proposed_once_in_each() {
        let mut buffer = KeyPackageBuffer::default();
        let change = add();
        buffer.keep(&change, 5).expect("kept");
        // Not in its own epoch: its vote is still open there.
        assert!(!buffer.waiting(5));
        for epoch in 6..=8 {
            buffer.expire(epoch, |_| false);
            assert!(buffer.waiting(epoch), "epoch {epoch}");
            assert_eq!(buffer.take_waiting(epoch).len(), 1);
            assert!(!buffer.waiting(epoch), "epoch {epoch}");
        }
        buffer.expire(9, |_| false);
        assert!(buffer.joiners().is_empty());
        // Its steward proposing it once more does not make it last longer.
        buffer.keep(&change, 9).expect("seen before");
        assert!(buffer.joiners().is_empty());
    }

    #[test]
    fn dropped_once_the_joiner_is_a_member_or_voted_down() {
        let mut buffer = KeyPackageBuffer::default();
        let (first, second) = (add(), add());
        buffer.keep(&first, 1).expect("kept");
        buffer.keep(&second, 1).expect("kept");
        buffer.expire(2, |member| *member == joiner(&first));
        assert_eq!(buffer.joiners(), vec![joiner(&second)]);
        buffer.forget(&joiner(&second));
        assert!(buffer.joiners().is_empty());
    }

    #[test]
    fn survives_a_snapshot_and_keeps_at_most_its_bound() {
        let mut buffer = KeyPackageBuffer::default();
        let changes: Vec<Change> = (0..=MOST_KEPT).map(|_| add()).collect();
        for (epoch, change) in (1..).zip(&changes) {
            buffer.keep(change, epoch).expect("kept");
        }
        // The oldest went first.
        assert_eq!(buffer.joiners().len(), MOST_KEPT);
        assert!(!buffer.joiners().contains(&joiner(&changes[0])));
        let restored =
            KeyPackageBuffer::restore(&buffer.snapshot().expect("snapshot")).expect("restored");
        assert_eq!(restored.joiners(), buffer.joiners());
    }
}
