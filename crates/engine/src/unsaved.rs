//! What moved a group's MLS state on since it was last written, and how to write it.
//!
//! A group's MLS state is its whole ratchet tree, so a step in which only application
//! messages moved it on journals their [`GroupTraffic`] instead (a write that grows with
//! the messages, not with the group), and the whole state is written again once the
//! traffic journaled since outweighs it, or would take too long to replay at restore.

use prost::Message;

use crate::GroupTraffic;

/// Most messages journaled as traffic before the whole state is written again: a restart
/// replays at most this many (each an encryption or a decryption, tens of microseconds).
pub(crate) const MAX_REPLAY: usize = 4096;

/// How a step should write a group's MLS state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Save {
    /// Nothing moved it on.
    Nothing,
    /// Write the whole state.
    Whole,
    /// Journal this traffic.
    Traffic(GroupTraffic),
}

/// A group's MLS state's movements since it was last written.
#[derive(Debug)]
pub(crate) struct Unsaved {
    /// Something besides application messages moved it on (or the state has not been written
    /// by this session yet): the whole state is due.
    whole: bool,
    /// This step's application messages.
    traffic: GroupTraffic,
    /// Bytes and messages journaled as traffic since the whole state was last written.
    logged_bytes: usize,
    logged_messages: usize,
}

impl Unsaved {
    /// A session's start: its first step writes the whole state, so that the journal never
    /// holds traffic of another session's state (a branch switched to, a restore replayed).
    pub(crate) fn new() -> Self {
        Self {
            whole: true,
            traffic: GroupTraffic::default(),
            logged_bytes: 0,
            logged_messages: 0,
        }
    }

    /// The state moved on in a way only a whole write keeps.
    pub(crate) fn moved(&mut self) {
        self.whole = true;
    }

    /// This member encrypted an application message.
    pub(crate) fn sent(&mut self) {
        self.traffic.sent = self.traffic.sent.saturating_add(1);
    }

    /// This member decrypted `bytes`, an application message.
    pub(crate) fn received(&mut self, bytes: &[u8]) {
        self.traffic.received.push(bytes.to_vec());
    }

    /// The whole state was written.
    pub(crate) fn written(&mut self) {
        self.whole = false;
        self.traffic = GroupTraffic::default();
        self.logged_bytes = 0;
        self.logged_messages = 0;
    }

    /// What to write at the end of a step, given the size of the last whole state; traffic
    /// handed out counts as journaled.
    pub(crate) fn take(&mut self, state_len: usize) -> Save {
        if self.whole {
            return Save::Whole;
        }
        if self.traffic.is_empty() {
            return Save::Nothing;
        }
        let bytes = self.logged_bytes + self.traffic.encoded_len();
        let messages = self.logged_messages + self.traffic.messages();
        if bytes > state_len || messages > MAX_REPLAY {
            return Save::Whole;
        }
        self.logged_bytes = bytes;
        self.logged_messages = messages;
        Save::Traffic(std::mem::take(&mut self.traffic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after_first_write() -> Unsaved {
        let mut unsaved = Unsaved::new();
        assert_eq!(unsaved.take(1000), Save::Whole);
        unsaved.written();
        unsaved
    }

    #[test]
    fn a_new_session_writes_its_whole_state_first() {
        let mut unsaved = Unsaved::new();
        unsaved.sent();
        assert_eq!(unsaved.take(1_000_000), Save::Whole);
    }

    #[test]
    fn messages_are_journaled_as_traffic_until_it_outweighs_the_state() {
        let mut unsaved = after_first_write();
        assert_eq!(unsaved.take(1000), Save::Nothing);
        unsaved.sent();
        unsaved.received(&[7; 300]);
        let Save::Traffic(traffic) = unsaved.take(1000) else {
            panic!("expected traffic");
        };
        assert_eq!(traffic.sent, 1);
        assert_eq!(traffic.received, vec![vec![7; 300]]);
        unsaved.received(&[8; 300]);
        assert!(matches!(unsaved.take(1000), Save::Traffic(_)));
        // A third message takes the traffic past the state's 1000 bytes.
        unsaved.received(&[9; 300]);
        unsaved.received(&[9; 300]);
        assert_eq!(unsaved.take(1000), Save::Whole);
        unsaved.written();
        assert_eq!(unsaved.take(1000), Save::Nothing);
    }

    #[test]
    fn a_move_besides_messages_writes_the_whole_state() {
        let mut unsaved = after_first_write();
        unsaved.received(&[1; 10]);
        unsaved.moved();
        assert_eq!(unsaved.take(1_000_000), Save::Whole);
    }

    #[test]
    fn replay_stays_bounded_however_small_the_messages() {
        let mut unsaved = after_first_write();
        for _ in 0..MAX_REPLAY {
            unsaved.sent();
        }
        assert!(matches!(unsaved.take(usize::MAX), Save::Traffic(_)));
        unsaved.sent();
        assert_eq!(unsaved.take(usize::MAX), Save::Whole);
    }
}
