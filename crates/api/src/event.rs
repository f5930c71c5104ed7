//! The node's events: the WebSocket stream `GET /api/events` and the log `GET /api/events/log`.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::{IntoParams, ToSchema};

use crate::membership::RemovalReason;
use crate::message::{ChatMessage, Delivery};
use crate::proposal::Change;

/// Something that happened on the node: one JSON object with `type`, `seq`, `at` and the
/// fields of its type.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// The event log position; for `message` and `delivery`, the message's position in the
    /// history; null for events that are not logged (`peer_connected`, `peer_disconnected`,
    /// `lagged`).
    pub seq: Option<u64>,
    /// When it happened.
    pub at: u64,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What happened, by `type`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// This node created a group and is its steward.
    GroupCreated {
        /// The group.
        group: String,
    },
    /// A steward announced a group that this node wants to join.
    AnnouncementSeen {
        /// The group.
        group: String,
        /// The announcing steward.
        steward: String,
        /// The group's epoch.
        epoch: u64,
    },
    /// This node sent (or sent again) its key package to a steward.
    JoinRequestSent {
        /// The group.
        group: String,
        /// The steward it was sealed to.
        steward: String,
    },
    /// As steward, this node accepted a join request and opened a vote on it.
    JoinRequestAccepted {
        /// The group.
        group: String,
        /// The joiner.
        joiner: String,
    },
    /// This node joined a group from a Welcome.
    Joined {
        /// The group.
        group: String,
        /// The epoch it joined in.
        epoch: u64,
        /// The members, this node included.
        members: Vec<String>,
    },
    /// A voting proposal was opened.
    ProposalOpened {
        /// The group.
        group: String,
        /// The proposal id.
        proposal: String,
        /// Who opened it.
        owner: String,
        /// What it changes.
        change: Change,
        /// When silent voters are counted.
        deadline: u64,
    },
    /// A vote was cast or received.
    VoteRecorded {
        /// The group.
        group: String,
        /// The proposal id.
        proposal: String,
        /// The voter.
        voter: String,
        /// YES or NO.
        yes: bool,
    },
    /// A proposal was decided.
    ProposalDecided {
        /// The group.
        group: String,
        /// The proposal id.
        proposal: String,
        /// What it changes.
        change: Change,
        /// YES or NO.
        approved: bool,
    },
    /// A commit ended the epoch of a proposal not voted down: it applied it
    /// (`committed_epoch`), or the proposal ends without effect (`null`: undecided, or
    /// approved but left out; it may be proposed again in the new epoch).
    ProposalClosed {
        /// The group.
        group: String,
        /// The proposal id.
        proposal: String,
        /// The epoch whose commit applied it, if one did.
        committed_epoch: Option<u64>,
    },
    /// A commit was applied: the group is in a new epoch.
    EpochChanged {
        /// The group.
        group: String,
        /// The new epoch.
        epoch: u64,
        /// Who committed.
        committer: String,
        /// Members added by the commit.
        added: Vec<String>,
        /// Members removed by the commit.
        removed: Vec<String>,
        /// The members now.
        members: Vec<String>,
        /// The MLS epoch authenticator (hex): equal on every member in the same epoch.
        authenticator: String,
    },
    /// A commit was refused.
    CommitRejected {
        /// The group.
        group: String,
        /// Who sent it.
        committer: String,
        /// Why.
        reason: String,
    },
    /// A gated group asks this node to check a joiner against the chain.
    AdmissionCheck {
        /// The group.
        group: String,
        /// The joiner to check.
        subject: String,
        /// The group's policy, in words.
        policy: String,
    },
    /// The answer of an admission check.
    AdmissionVerdict {
        /// The group.
        group: String,
        /// The joiner checked.
        subject: String,
        /// Whether it may join.
        admitted: bool,
        /// The verdict in words, e.g. "refused: balance 0 ETH at block 12 is below the
        /// required 1.5 ETH" or "check unavailable: …".
        verdict: String,
    },
    /// A steward refused this node's join request.
    JoinRefused {
        /// The group.
        group: String,
        /// The refusing steward.
        steward: String,
        /// Why (without control characters, at most 512 characters).
        reason: String,
    },
    /// This node is no longer a member (removed, or its leave was committed).
    Removed {
        /// The group.
        group: String,
        /// The epoch of the commit that removed it.
        epoch: u64,
        /// Who committed the removal.
        by: String,
        /// Why.
        reason: RemovalReason,
    },
    /// How many messages of the group this node knows it misses (0: none). Messages after
    /// a gap wait for it (the group is asked to send it again); after two minutes a gap is
    /// given up and what waited is shown after it.
    Syncing {
        /// The group.
        group: String,
        /// Messages missing.
        missing: usize,
    },
    /// Messages of the group this node gave up waiting for: nobody gave them back within
    /// two minutes. What waited for them was shown after them; the history has a hole here.
    HistoryGap {
        /// The group.
        group: String,
        /// Messages given up.
        lost: usize,
    },
    /// A member's display name changed (set, changed or taken away).
    NameChanged {
        /// The group.
        group: String,
        /// The member's address.
        member: String,
        /// Its name now; `null`: it has none.
        name: Option<String>,
    },
    /// A member invited an address: its YES on admitting it, signed ahead.
    Invited {
        /// The group.
        group: String,
        /// Who is invited.
        invitee: String,
        /// The member that invited.
        inviter: String,
        /// When the invitation ends.
        expires_at: u64,
    },
    /// A chat message arrived or was sent (its `seq` is its place in the history).
    Message(ChatMessage),
    /// A message of this node changed its delivery (its `seq` is its place in the history).
    Delivery {
        /// The group.
        group: String,
        /// The message id (hex).
        id: String,
        /// How far it got.
        delivery: Delivery,
    },
    /// A relay peer connected.
    PeerConnected {
        /// Its peer id.
        peer: String,
    },
    /// A relay peer disconnected.
    PeerDisconnected {
        /// Its peer id.
        peer: String,
    },
    /// This client read too slowly: it missed events (reload what it shows).
    Lagged {
        /// How many.
        missed: u64,
    },
    /// An engine event this node does not name yet.
    Engine {
        /// Its debug form.
        detail: String,
    },
}

impl EventBody {
    /// The group the event concerns, if any.
    pub fn group(&self) -> Option<&str> {
        match self {
            Self::GroupCreated { group }
            | Self::AnnouncementSeen { group, .. }
            | Self::JoinRequestSent { group, .. }
            | Self::JoinRequestAccepted { group, .. }
            | Self::Joined { group, .. }
            | Self::ProposalOpened { group, .. }
            | Self::VoteRecorded { group, .. }
            | Self::ProposalDecided { group, .. }
            | Self::ProposalClosed { group, .. }
            | Self::EpochChanged { group, .. }
            | Self::CommitRejected { group, .. }
            | Self::AdmissionCheck { group, .. }
            | Self::AdmissionVerdict { group, .. }
            | Self::JoinRefused { group, .. }
            | Self::Removed { group, .. }
            | Self::Invited { group, .. }
            | Self::Syncing { group, .. }
            | Self::HistoryGap { group, .. }
            | Self::NameChanged { group, .. }
            | Self::Message(ChatMessage { group, .. })
            | Self::Delivery { group, .. } => Some(group),
            Self::PeerConnected { .. }
            | Self::PeerDisconnected { .. }
            | Self::Lagged { .. }
            | Self::Engine { .. } => None,
        }
    }
}

/// The query of `GET /api/events`.
#[derive(Serialize, Deserialize, IntoParams, Debug, Clone, Default, PartialEq, Eq)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only events of this group.
    pub group: Option<String>,
}
