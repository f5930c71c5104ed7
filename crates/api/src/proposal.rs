//! Proposals: what they change, their tally, and voting.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A proposal with its tally: `GET /api/groups/{group}/proposals`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The proposal id (`0x` and 8 hex digits).
    pub id: String,
    /// The group.
    pub group: String,
    /// The epoch it was opened in.
    pub epoch: u64,
    /// Who opened it.
    pub owner: String,
    /// What it changes.
    pub change: Change,
    /// When this node saw it opened.
    pub opened_at: u64,
    /// When silent voters are counted.
    pub deadline: u64,
    /// Where it stands.
    pub state: ProposalState,
    /// When it was decided here.
    pub decided_at: Option<u64>,
    /// The epoch whose commit applied it.
    pub committed_epoch: Option<u64>,
    /// Votes received.
    pub votes: Vec<Vote>,
    /// Counts.
    pub tally: Tally,
}

/// What a proposal changes.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Admit this address.
    Add {
        /// The joiner.
        member: String,
    },
    /// Remove this member.
    Remove {
        /// The member.
        member: String,
    },
    /// This member leaves.
    Leave {
        /// The member.
        member: String,
    },
    /// Replace the leaf of this member, which lost its state.
    Readd {
        /// The member.
        member: String,
    },
    /// This member replaces its own leaf keys (post-compromise security); needs no vote.
    Update {
        /// The member.
        member: String,
    },
    /// Elect this steward list.
    Election {
        /// The retry round (above the group's current one after a silent list).
        retry_round: u32,
        /// The steward list, in rotation order.
        stewards: Vec<String>,
    },
    /// An emergency: remove a steward that broke the rules, or unblock a silent list.
    Emergency {
        /// The steward to remove (null for a deadlock).
        offender: Option<String>,
        /// The evidence kind.
        violation: Violation,
    },
}

/// Steward misbehaviour that members detect and vote on.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// A commit whose changes differ from what was voted.
    BrokenCommit,
    /// Two commits for one epoch with different changes.
    Equivocation,
    /// Approved changes left waiting until a backup committed them.
    Inactivity,
    /// An approved proposal left out of a later commit.
    Censorship,
    /// Every steward and re-election stayed silent.
    Deadlock,
}

/// Where a proposal stands.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    /// Votes are open.
    Open,
    /// Decided YES.
    Approved,
    /// Decided NO.
    Rejected,
    /// Closed undecided: its epoch ended (while this node ran, or while it was down).
    Closed,
}

/// One vote.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    /// The voter.
    pub voter: String,
    /// YES or NO.
    pub yes: bool,
}

/// A proposal's counts.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// YES votes received.
    pub yes: usize,
    /// NO votes received.
    pub no: usize,
    /// Members entitled to vote, while this node holds the proposal open (in a
    /// small-consensus group, only the stewards in office vote on a membership change).
    pub voters: Option<usize>,
}

/// The body of `POST /api/groups/{group}/proposals`: only removals are proposed by hand
/// (joiners ask to join and stewards propose them).
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NewProposal {
    /// Remove a member.
    Remove {
        /// The member's address.
        member: String,
    },
}

/// The body of `POST /api/groups/{group}/proposals/{proposal}/votes`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ballot {
    /// YES or NO.
    pub yes: bool,
}
