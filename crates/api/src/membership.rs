//! Who gets in and who leaves: invitations, join requests waiting for the members, the
//! way in (tickets), and why a member is no longer one.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

use crate::proposal::Violation;

/// How a group admits people, chosen by its creator and shown to everyone.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum JoinRule {
    /// A member's invitation or the members' YES (silence never admits): the default.
    #[default]
    Invite,
    /// Anyone who asks: automatic voters say YES to every well-formed request.
    Open,
}

/// The body of `POST /api/groups/{group}/invitations`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[ts(optional_fields = nullable)]
pub struct NewInvitation {
    /// Who is invited (an Ethereum address).
    pub address: String,
    /// For how long, in seconds (default 7 days, at most 365 days).
    pub expires_in_secs: Option<u64>,
}

/// An invitation this node made: `POST /api/groups/{group}/invitations`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The ticket to hand to the invitee (`demls join <ticket>`): the group, its name and
    /// the signed invitation. It is this member's YES on admitting the invitee, signed ahead.
    pub ticket: String,
    /// Who is invited.
    pub invitee: String,
    /// When it ends.
    pub expires_at: u64,
}

/// An invitation a member of the group made (in `GroupDetail`).
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct KnownInvitation {
    /// Who is invited.
    pub invitee: String,
    /// The member that invited.
    pub inviter: String,
    /// When it ends.
    pub expires_at: u64,
}

/// The body of `POST /api/join`: join by a ticket from `invitations` (or a group's address).
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct JoinTicket {
    /// The ticket, `demls:…`.
    pub ticket: String,
}

/// Someone asking to join, waiting for the members: `GET /api/groups/{group}/requests`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// Who asks.
    pub address: String,
    /// The vote on it.
    pub proposal: String,
    /// Since when it waits (when this node first saw the vote).
    pub since: u64,
    /// When the vote closes; silence counts as NO then.
    pub deadline: u64,
    /// The member that invited it, if one did.
    pub invited_by: Option<String>,
    /// Who said YES so far.
    pub yes: Vec<String>,
    /// Who said NO so far.
    pub no: Vec<String>,
    /// Voters.
    pub voters: usize,
    /// This node's own vote, if cast.
    pub own_vote: Option<bool>,
}

/// The body of `POST /api/groups/{group}/requests/{address}`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDecision {
    /// YES (approve) or NO (deny).
    pub approve: bool,
}

/// Why this node is no longer a member of a group.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The epoch the commit that removed it started.
    pub epoch: u64,
    /// The steward that committed it.
    pub by: String,
    /// When this node learned it.
    pub at: u64,
    /// Why.
    pub reason: RemovalReason,
}

/// Why a member was removed, by `kind`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemovalReason {
    /// It left.
    Left,
    /// The members voted it out.
    Voted {
        /// The proposal.
        proposal: String,
        /// Who proposed it.
        owner: String,
        /// YES votes.
        yes: u32,
        /// NO votes.
        no: u32,
        /// Voters.
        voters: u32,
    },
    /// An emergency found it breaking the rules as a steward.
    Emergency {
        /// The proposal.
        proposal: String,
        /// What it was found doing.
        violation: Violation,
    },
    /// Its place was taken by a fresh key package of its own address (it asked to join
    /// again from another state).
    Replaced,
}
