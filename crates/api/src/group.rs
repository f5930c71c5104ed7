//! Groups: the list, one group in detail, its roster, joining, and creating one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

use crate::membership::{JoinRule, KnownInvitation, Removal};

/// One group in the list of `GET /api/groups`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group's identifier, as the network sees it (random for an invite-only group; the
    /// name for an open one).
    pub id: String,
    /// What people call the group on this node (its identifier if it has no name here).
    pub name: String,
    /// Where this node stands.
    pub state: GroupState,
    /// Current epoch (`member` only).
    pub epoch: Option<u64>,
    /// Member count (`member` only).
    pub members: Option<usize>,
    /// Whether this node is a steward.
    pub is_steward: bool,
    /// Who may join, in words (`member` only).
    pub admission: Option<String>,
    /// Who refused this node's join request and why (`refused` only), e.g. "refused by its
    /// steward 0x9aF3…: balance 0 ETH at block 12 is below the required 1.5 ETH".
    pub refusal: Option<String>,
    /// Why this node is no longer a member (`removed` only).
    pub removal: Option<Removal>,
}

/// Where this node stands in a group.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// A member.
    Member,
    /// Asked to join and waits to be admitted.
    Joining,
    /// A steward refused this node's join request (until it asks again).
    Refused,
    /// This node was a member and is no more (`removal` says why); its history stays
    /// readable, and it may ask to join again.
    Removed,
}

/// One group in detail: `GET /api/groups/{group}`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct GroupDetail {
    /// The group's identifier, as the network sees it (random for an invite-only group; the
    /// name for an open one).
    pub id: String,
    /// What people call the group on this node.
    pub name: String,
    /// Current epoch.
    pub epoch: u64,
    /// Members with their roles.
    pub members: Vec<Member>,
    /// Stewards, in rotation order.
    pub stewards: Vec<String>,
    /// Whether this node is a steward.
    pub is_steward: bool,
    /// Who may join, in words, e.g. "at least 1.5 ETH on chain 1 at the latest block".
    pub admission: String,
    /// Whether joiners are checked against a chain.
    pub gated: bool,
    /// Who may join without an invitation.
    pub join_rule: JoinRule,
    /// How long a vote on adding or removing someone stays open, in seconds (silence counts
    /// as NO at its end).
    pub membership_vote_timeout_secs: u32,
    /// When members replace their leaf keys: after this many seconds…
    pub rotate_after_secs: u32,
    /// …or after sending this many chat messages, whichever comes first.
    pub rotate_after_messages: u32,
    /// Live invitations this node knows of.
    pub invitations: Vec<KnownInvitation>,
    /// The MLS epoch authenticator (hex): equal on every member in the same epoch.
    pub authenticator: String,
    /// How the group is doing.
    pub health: Health,
}

/// A member and its roles.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's address.
    pub address: String,
    /// The display name the member gave itself in this group, if any (the MLS sender of
    /// the name is the member: no one else can set it).
    pub display_name: Option<String>,
    /// `steward` (if it is one), then `member`.
    pub roles: Vec<Role>,
    /// Whether this is the node itself.
    pub is_self: bool,
    /// The epoch the member's current leaf keys entered the group (for keys older than
    /// this node's membership: the epoch this node joined in).
    pub key_epoch: u64,
    /// When this node saw the member's leaf keys replaced (Unix milliseconds); null if
    /// that was before this node joined.
    pub key_replaced_at: Option<u64>,
}

/// A role of a member.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Commits in this epoch.
    EpochSteward,
    /// Commits in this epoch if the epoch steward does not.
    Backup,
    /// On the steward list.
    Steward,
    /// Every member.
    Member,
}

/// How a group is doing: `GET /api/groups/{group}/health`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Current epoch.
    pub epoch: u64,
    /// Stewards, in rotation order.
    pub stewards: Vec<String>,
    /// Connected relay peers (all groups share the relay).
    pub peers: usize,
    /// This group's messages the engine dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Open proposals.
    pub open_proposals: usize,
    /// When this node last saw the epoch change.
    pub last_commit_at: Option<u64>,
    /// Outgoing messages waiting for a peer.
    pub queued: usize,
    /// Chat messages this node knows it misses, being fetched (0: its history has no gap).
    pub missing_messages: usize,
    /// This node's score of each steward, in rotation order (peer scoring): lowered by each
    /// violation this node saw, raised by honest commits.
    pub steward_scores: Vec<StewardScore>,
    /// The score every member starts from, and the most honest work brings it back to.
    pub score_default: i32,
    /// Below this score this node charges a steward in an emergency proposal (and votes
    /// YES on charging it); above it, a missed turn only costs score.
    pub score_threshold: i32,
}

/// This node's score of a steward.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct StewardScore {
    /// The steward's address.
    pub address: String,
    /// Its score.
    pub score: i32,
}

/// Who commits and who votes.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The creator is the only steward and commits; every member votes.
    Single,
    /// An elected, rotating steward list; every member votes on every change.
    Big,
    /// An elected, rotating steward list; only stewards vote on membership changes, every
    /// member on elections and emergencies.
    Small,
}

/// A group's members with their roles this epoch: `GET /api/groups/{group}/roster`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The group.
    pub group: String,
    /// Current epoch.
    pub epoch: u64,
    /// Who commits and who votes.
    pub mode: Mode,
    /// Stewards, in rotation order.
    pub stewards: Vec<String>,
    /// Who commits this epoch, in order: the epoch steward, then its backups.
    pub committers: Vec<String>,
    /// The members.
    pub members: Vec<RosterMember>,
}

/// One member in the roster.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    /// The member's address.
    pub address: String,
    /// Any of `epoch_steward`, `backup`, `steward`, then `member`.
    pub roles: Vec<Role>,
    /// Whether this is the node itself.
    pub is_self: bool,
    /// The epoch of the commit that added the member, if this node saw it (its own: from its
    /// event log).
    pub joined_epoch: Option<u64>,
}

/// How far this node's request to join a group has come: `GET /api/groups/{group}/join`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct JoinProgress {
    /// The group.
    pub group: String,
    /// The stage reached.
    pub stage: JoinStage,
    /// The steward the request went to (or that refused it).
    pub steward: Option<String>,
    /// Why the steward refused (`refused` only), e.g. the admission policy is not met.
    pub reason: Option<String>,
    /// When the stage was reached, if known.
    pub since: Option<u64>,
    /// The epoch this node joined at (`member` only, if known).
    pub epoch: Option<u64>,
}

/// The stage of a join.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JoinStage {
    /// No steward announcement seen yet.
    Looking,
    /// The key package went, sealed, to the steward, who opens a vote on it (a joiner cannot
    /// see that vote; in a gated group the steward first checks the joiner against the
    /// chain, and waits while the chain cannot be read).
    Requested,
    /// Admitted.
    Member,
    /// The steward refused the request (`reason`); asking again is checked anew.
    Refused,
}

/// The body of `POST /api/groups/{group}/join` (optional).
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Default, PartialEq, Eq)]
#[ts(optional_fields = nullable)]
pub struct JoinRequest {
    /// Only trust this steward's announcements.
    pub steward: Option<String>,
}

/// The body of `POST /api/groups`: a new group with this node as its steward. Absent
/// settings take the defaults shown.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[ts(optional_fields = nullable)]
pub struct NewGroup {
    /// The group's name: 1 to 64 characters from `a-z 0-9 . _ -`.
    #[schema(pattern = "^[a-z0-9._-]{1,64}$")]
    pub name: String,
    /// Who commits and who votes (default `single`).
    pub mode: Option<Mode>,
    /// Smallest steward list, when the group has that many members (default 1).
    pub sn_min: Option<u16>,
    /// Largest steward list, not below `sn_min` (default 1).
    pub sn_max: Option<u16>,
    /// How long a vote on an election or emergency stays open, in seconds (default 30).
    pub vote_timeout_secs: Option<u32>,
    /// How long a vote on adding or removing someone stays open, in seconds (default 3600);
    /// silence counts as NO at its end.
    pub membership_vote_timeout_secs: Option<u32>,
    /// Whether silent voters count as YES at the deadline of an election (default true).
    /// Silence never admits, removes or condemns anyone.
    pub liveness_yes: Option<bool>,
    /// Who may join without an invitation (default `invite`: nobody).
    pub join_rule: Option<JoinRule>,
    /// Open proposals per member at most (default 8).
    pub max_proposals_per_member: Option<u16>,
    /// Members replace their keys after this many seconds (default 86400, a day)…
    pub rotate_after_secs: Option<u32>,
    /// …or after sending this many chat messages, whichever comes first (default 1000).
    pub rotate_after_messages: Option<u32>,
    /// Who may join (default: anyone).
    pub admission: Option<Admission>,
}

/// Who may join a new group. A gate is checked against the chain of this node's
/// `--eth-rpc`: by the steward before it proposes a joiner, and by every member before it
/// votes YES. The policy travels in the group's announcement and MLS group context.
/// Examples: `{"kind": "min_eth", "amount": "1.5"}`, `{"kind": "min_erc20", "token":
/// "0x6B17…1d0F", "amount": "100", "decimals": 18, "symbol": "DAI", "block": 19000000}`,
/// `{"kind": "erc721", "token": "0xBC4C…f13D", "token_id": "7"}`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[ts(optional_fields = nullable)]
pub struct Admission {
    /// The rule.
    #[serde(flatten)]
    pub rule: AdmissionRule,
    /// Read the state at this block (every member reads the same state; old blocks need an
    /// archive node). Absent: the latest block at each check.
    pub block: Option<u64>,
    /// The chain to read; the node's endpoint must serve it. Absent: the endpoint's chain.
    pub chain_id: Option<u64>,
}

/// Who may join, by what they hold.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(optional_fields = nullable)]
pub enum AdmissionRule {
    /// Anyone.
    Open,
    /// At least this much ETH.
    MinEth {
        /// In ETH, e.g. "1.5" (more decimal places than the unit has is an error).
        amount: String,
    },
    /// At least this much of an ERC-20 token.
    MinErc20 {
        /// The token contract's address.
        token: String,
        /// In whole tokens, scaled by `decimals`, e.g. "100".
        amount: String,
        /// The token's decimals (default 18).
        decimals: Option<u8>,
        /// The token's symbol, to show amounts (at most 32 bytes).
        symbol: Option<String>,
    },
    /// A token of an ERC-721 collection.
    Erc721 {
        /// The collection's contract address.
        token: String,
        /// A decimal token id: only that token admits. Absent: any token of the collection.
        token_id: Option<String>,
    },
}
