//! Messages this member cannot read yet: of an epoch it has not reached, or of another
//! branch. They are tried again at each new epoch, and kept while their epoch is one this
//! member still retains.

use crate::{EngineError, Timestamp};

/// A message that cannot be read yet, with when it arrived.
pub(crate) struct Held {
    epoch: u64,
    pub(crate) bytes: Vec<u8>,
    since: Timestamp,
}

/// The messages held, at most a configured number.
#[derive(Default)]
pub(crate) struct HeldMessages(Vec<Held>);

impl HeldMessages {
    /// Holds a message of `epoch` (once); an error if `max` are held already.
    pub(crate) fn hold(
        &mut self,
        epoch: u64,
        bytes: &[u8],
        now: Timestamp,
        max: usize,
    ) -> Result<(), EngineError> {
        if self.0.iter().any(|h| h.bytes == bytes) {
            return Ok(());
        }
        if self.0.len() >= max {
            return Err(EngineError::BufferFull);
        }
        self.0.push(Held {
            epoch,
            bytes: bytes.to_vec(),
            since: now,
        });
        Ok(())
    }

    /// Since when this member has held a message of an epoch after `epoch`: it is behind.
    pub(crate) fn first_after(&self, epoch: u64) -> Option<Timestamp> {
        self.0
            .iter()
            .filter(|h| h.epoch > epoch)
            .map(|h| h.since)
            .min()
    }

    /// Takes out the messages of epoch `current`, and drops those older than `oldest`
    /// (the oldest epoch this member retains).
    pub(crate) fn take_due(&mut self, current: u64, oldest: u64) -> Vec<Held> {
        self.0.retain(|h| h.epoch >= oldest);
        let (due, later) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|h| h.epoch == current);
        self.0 = later;
        due
    }
}
