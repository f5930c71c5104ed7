//! Small value types shared by the whole crate.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use demls_identity::Address;

/// The identifier of a proposal: `Proposal.proposal_id` on the wire.
///
/// Derived from the proposal's content (see [`crate::signing::proposal_id`]),
/// so a receiver can check it instead of trusting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u32);

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A point in time: milliseconds since the Unix epoch.
///
/// The API takes milliseconds; the wire carries whole seconds, as the public
/// reference does (see `docs/consensus.md`, "Timestamps").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The instant a wire timestamp (whole seconds) stands for.
    pub const fn from_wire_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Whole seconds, rounded down: the wire form of a creation or vote time.
    pub const fn wire_secs(self) -> u64 {
        self.0 / 1000
    }

    /// Whole seconds, rounded up: the wire form of a deadline, so that a
    /// proposal never ends before the instant its owner asked for.
    pub const fn wire_secs_ceil(self) -> u64 {
        self.0.div_ceil(1000)
    }

    /// `self + duration`, saturating at the end of time.
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// The SHA-256 `vote_hash` of a vote (see [`crate::signing::vote_hash`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VoteHash(pub [u8; 32]);

impl VoteHash {
    /// Reads a hash from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for VoteHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VoteHash(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…)")
    }
}

/// The outcome of a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The proposal is accepted.
    Yes,
    /// The proposal is rejected (also the outcome of a tie).
    No,
}

impl Decision {
    /// `Yes` for `true`.
    pub const fn from_bool(yes: bool) -> Self {
        if yes { Self::Yes } else { Self::No }
    }

    /// `true` for `Yes`.
    pub const fn is_yes(self) -> bool {
        matches!(self, Self::Yes)
    }
}

/// Where a proposal's vote stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Valid YES votes accepted so far.
    pub yes: u32,
    /// Valid NO votes accepted so far.
    pub no: u32,
    /// The number of expected voters (the size of the locally computed voter set).
    pub expected: u32,
    /// How voters still silent at the deadline are counted.
    pub liveness_criteria_yes: bool,
    /// The deadline (the proposal's expiration).
    pub deadline: Timestamp,
    /// The decision, once taken.
    pub decision: Option<Decision>,
}

impl Tally {
    /// Expected voters not heard from yet.
    pub fn silent(&self) -> u32 {
        self.expected
            .saturating_sub(self.yes)
            .saturating_sub(self.no)
    }
}

/// What the owner of a new proposal chooses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalSpec {
    /// A short name (`Proposal.name`).
    pub name: String,
    /// What is voted on (`Proposal.payload`), opaque to this crate.
    pub payload: Vec<u8>,
    /// Who votes. Every receiver computes this set itself.
    pub voters: BTreeSet<Address>,
    /// The deadline. Rounded up to a whole second on the wire.
    pub expiration: Timestamp,
    /// How voters still silent at the deadline are counted.
    pub liveness_criteria_yes: bool,
}

/// What [`crate::Consensus::receive_proposal`] did with a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposalOutcome {
    /// The proposal.
    pub id: ProposalId,
    /// `false` if the proposal was already known (a retransmission, or a copy
    /// carrying more votes).
    pub is_new: bool,
    /// Votes accepted by this call: embedded ones and buffered ones released.
    pub votes_applied: usize,
    /// The decision, if this call took it.
    pub decided: Option<Decision>,
}

/// What [`crate::Consensus::receive_vote`] did with a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteOutcome {
    /// The vote was accepted, with any buffered votes that waited for it.
    Applied {
        /// The proposal voted on.
        id: ProposalId,
        /// The decision, if this vote (or a vote it released) took it.
        decided: Option<Decision>,
    },
    /// The vote is valid so far but waits for its proposal, or for the vote
    /// named by its `received_hash`; it is applied when that arrives.
    Buffered {
        /// The proposal voted on.
        id: ProposalId,
    },
    /// The vote was already accepted or buffered; nothing changed.
    Duplicate {
        /// The proposal voted on.
        id: ProposalId,
    },
}

/// A vote this member cast, and what it did locally.
#[derive(Clone, Debug, PartialEq)]
pub struct CastVote {
    /// The signed vote, to broadcast.
    pub vote: crate::wire::Vote,
    /// The decision, if this vote took it.
    pub decided: Option<Decision>,
}
