//! The engine's protocol state beyond MLS, as bytes for the shell to persist.
//!
//! MLS state reaches the shell through the storage journal
//! ([`crate::MlsStore::take_writes`]); everything else a restarted node needs
//! to carry on — which groups it is in, its steward keys and key-package
//! intake, the changes it still asks for, its pending joins — is in an
//! [`EngineSnapshot`], with the current epoch's open proposals and the votes this member
//! holds on them. Votes taken in after the last snapshot was written whole reach the shell
//! as a journal to append ([`crate::SnapshotWrite`]), merged back at start-up
//! ([`EngineSnapshot::with_journal`]).

use prost::Message;

/// Version of the snapshot format.
pub(crate) const SNAPSHOT_VERSION: u32 = 1;

/// A snapshot holds the counters that move with every chat message (the Lamport clock,
/// messages sent since the last key update) rounded up to a multiple of this, so that it
/// changes once per that many messages and not with each: it holds every member's key age,
/// tens of KiB in a group of 1000, rewritten whole whenever it changes. Restored counters are
/// ahead of the truth, which is safe: a Lamport clock may jump forward, and a leaf is
/// replaced sooner.
const COUNTER_STEP: u64 = 256;

/// `value` rounded up to a multiple of [`COUNTER_STEP`], as a snapshot keeps it.
pub(crate) fn counter_ahead(value: u64) -> u64 {
    value.div_ceil(COUNTER_STEP).saturating_mul(COUNTER_STEP)
}

/// Everything a node needs besides MLS state to resume.
#[derive(Clone, PartialEq, Message)]
pub struct EngineSnapshot {
    /// [`SNAPSHOT_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// Groups this node is a member of.
    #[prost(message, repeated, tag = "2")]
    pub groups: Vec<GroupSnapshot>,
    /// Groups this node asked to join.
    #[prost(message, repeated, tag = "3")]
    pub joins: Vec<JoinSnapshot>,
}

/// One group's protocol state.
#[derive(Clone, PartialEq, Message)]
pub struct GroupSnapshot {
    /// The group's name (and MLS group id).
    #[prost(string, tag = "1")]
    pub group_id: String,
    /// Present if this node is a steward.
    #[prost(message, optional, tag = "2")]
    pub steward: Option<StewardSnapshot>,
    /// Changes this member still asks for (`GroupChange` encodings, epoch ignored).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub own_changes: Vec<Vec<u8>>,
    /// Invitations this member knows.
    #[prost(message, repeated, tag = "4")]
    pub invitations: Vec<crate::wire::Invitation>,
    /// This member's person's votes that stand for changes still to be made.
    #[prost(message, repeated, tag = "5")]
    pub standing: Vec<StandingVote>,
    /// The epoch this node joined the group in (chat history before it is not waited for).
    #[prost(uint64, tag = "6")]
    pub joined_epoch: u64,
    /// The chat Lamport clock, rounded up ([`counter_ahead`]).
    #[prost(uint64, tag = "7")]
    pub lamport: u64,
    /// When each member's leaf was last replaced.
    #[prost(message, repeated, tag = "8")]
    pub key_ages: Vec<KeyAgeRecord>,
    /// Chat messages this member sent since its leaf was last replaced, rounded up
    /// ([`counter_ahead`]).
    #[prost(uint32, tag = "9")]
    pub sent_since_rotation: u32,
    /// This member's scores of stewards that differ from the default.
    #[prost(message, repeated, tag = "10")]
    pub scores: Vec<ScoreRecord>,
    /// Joiners' key packages this member keeps to propose again.
    #[prost(message, repeated, tag = "11")]
    pub key_packages: Vec<BufferedKeyPackage>,
    /// Members' display names (absent in snapshots of older versions: none known).
    #[prost(message, repeated, tag = "12")]
    pub names: Vec<NameRecord>,
    /// The current epoch's proposals still open here, each with the votes this member holds
    /// (absent in snapshots of older versions: none), taken in again on restore as if their
    /// owners had sent them again.
    #[prost(message, repeated, tag = "13")]
    pub open: Vec<demls_consensus::wire::Proposal>,
}

/// A member's display name.
#[derive(Clone, PartialEq, Message)]
pub struct NameRecord {
    /// The member (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub member: Vec<u8>,
    /// Its name (empty: removed).
    #[prost(string, tag = "2")]
    pub name: String,
    /// The name's version.
    #[prost(uint64, tag = "3")]
    pub version: u64,
}

/// A joiner's key package a member keeps for a few epochs.
#[derive(Clone, PartialEq, Message)]
pub struct BufferedKeyPackage {
    /// The add (`GroupChange` encoding, epoch ignored).
    #[prost(bytes = "vec", tag = "1")]
    pub change: Vec<u8>,
    /// The epoch it arrived in.
    #[prost(uint64, tag = "2")]
    pub epoch: u64,
}

/// This member's score of another.
#[derive(Clone, PartialEq, Message)]
pub struct ScoreRecord {
    /// The member scored (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub member: Vec<u8>,
    /// Its score.
    #[prost(sint32, tag = "2")]
    pub score: i32,
}

/// When a member's leaf was last replaced.
#[derive(Clone, PartialEq, Message)]
pub struct KeyAgeRecord {
    /// The member (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub member: Vec<u8>,
    /// The epoch its leaf entered the group.
    #[prost(uint64, tag = "2")]
    pub epoch: u64,
    /// When (milliseconds); 0 if before this node joined.
    #[prost(uint64, tag = "3")]
    pub at_ms: u64,
}

/// A person's vote on adding or removing someone, cast again when the change is
/// proposed again.
#[derive(Clone, PartialEq, Message)]
pub struct StandingVote {
    /// True: on adding `member`; false: on removing it.
    #[prost(bool, tag = "1")]
    pub add: bool,
    /// The member (20 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub member: Vec<u8>,
    /// YES or NO.
    #[prost(bool, tag = "3")]
    pub yes: bool,
}

/// A steward's keys and intake.
#[derive(Clone, PartialEq, Message)]
pub struct StewardSnapshot {
    /// HPKE secret key for join requests.
    #[prost(bytes = "vec", tag = "1")]
    pub hpke_secret: Vec<u8>,
    /// HPKE public key for join requests.
    #[prost(bytes = "vec", tag = "2")]
    pub hpke_public: Vec<u8>,
    /// References of every key package received.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub seen_key_packages: Vec<Vec<u8>>,
    /// Joiners waiting for their vote and commit, with their key package reference.
    #[prost(message, repeated, tag = "4")]
    pub intake: Vec<IntakeSnapshot>,
}

/// A joiner waiting at a steward.
#[derive(Clone, PartialEq, Message)]
pub struct IntakeSnapshot {
    /// The joiner's address.
    #[prost(bytes = "vec", tag = "1")]
    pub joiner: Vec<u8>,
    /// Its key package reference.
    #[prost(bytes = "vec", tag = "2")]
    pub reference: Vec<u8>,
    /// The request (a `SealedJoin`, opened) a backup steward holds back for its turn.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub deferred: Option<Vec<u8>>,
    /// When the held-back request is taken up, unless its joiner was proposed by then (Unix ms).
    #[prost(uint64, tag = "4")]
    pub deferred_until_ms: u64,
    /// Whether the held-back request is a member's asking to be added again.
    #[prost(bool, tag = "5")]
    pub rejoin: bool,
}

/// A pending join.
#[derive(Clone, PartialEq, Message)]
pub struct JoinSnapshot {
    /// The group's name.
    #[prost(string, tag = "1")]
    pub group_id: String,
    /// The only steward to trust, if the user named one (20 bytes, or empty).
    #[prost(bytes = "vec", tag = "2")]
    pub steward_filter: Vec<u8>,
    /// The key package sent, if any (its private keys are in MLS storage).
    #[prost(bytes = "vec", tag = "3")]
    pub key_package: Vec<u8>,
    /// The invitation presented, if any.
    #[prost(message, optional, tag = "4")]
    pub invitation: Option<crate::wire::Invitation>,
}

/// A vote taken in after the last whole snapshot, journaled.
#[derive(Clone, PartialEq, Message)]
pub struct JournaledVote {
    /// The group of the proposal voted on.
    #[prost(string, tag = "1")]
    pub group_id: String,
    /// The vote (it names its proposal).
    #[prost(message, optional, tag = "2")]
    pub vote: Option<demls_consensus::wire::Vote>,
}

impl EngineSnapshot {
    /// Decodes a snapshot, refusing unknown versions.
    pub fn decode_checked(bytes: &[u8]) -> Result<Self, crate::EngineError> {
        let snapshot = Self::decode(bytes)?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(crate::EngineError::UnsupportedVersion(snapshot.version));
        }
        Ok(snapshot)
    }

    /// The snapshot `snapshot` with the votes journaled after it
    /// ([`crate::SnapshotWrite::Votes`]) added to their proposals, for
    /// [`crate::Engine::restore`]. A journaled vote whose proposal the snapshot does not hold
    /// is left out (the engine journals votes only while the set of open proposals stays
    /// as the snapshot has it); an unreadable entry is an error.
    pub fn with_journal(
        snapshot: &[u8],
        journal: &[impl AsRef<[u8]>],
    ) -> Result<Vec<u8>, crate::EngineError> {
        if journal.is_empty() {
            return Ok(snapshot.to_vec());
        }
        let mut merged = Self::decode_checked(snapshot)?;
        for entry in journal {
            let entry = JournaledVote::decode(entry.as_ref())?;
            let Some(vote) = entry.vote else {
                continue;
            };
            let proposal = merged
                .groups
                .iter_mut()
                .filter(|g| g.group_id == entry.group_id)
                .flat_map(|g| g.open.iter_mut())
                .find(|p| p.proposal_id == vote.proposal_id);
            if let Some(proposal) = proposal {
                // As the consensus does when it takes a vote in.
                proposal.round = proposal.round.saturating_add(1);
                proposal.votes.push(vote);
            }
        }
        Ok(merged.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_kept_ahead_and_change_once_per_step() {
        assert_eq!(counter_ahead(0), 0);
        assert_eq!(counter_ahead(1), COUNTER_STEP);
        assert_eq!(counter_ahead(COUNTER_STEP), COUNTER_STEP);
        assert_eq!(counter_ahead(COUNTER_STEP + 1), 2 * COUNTER_STEP);
        assert_eq!(counter_ahead(u64::MAX), u64::MAX);
    }
}
