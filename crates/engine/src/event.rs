//! What the engine tells its shell: messages to send and things that happened.

use demls_consensus::ProposalId;
use demls_identity::Address;

use crate::{Epoch, GroupId, Timestamp, Topic};

/// Bytes to publish on a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to publish.
    pub topic: Topic,
    /// The encoded envelope.
    pub payload: Vec<u8>,
}

/// A membership change, as voters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Admit this address.
    Add(Address),
    /// Remove this member.
    Remove(Address),
    /// This member leaves.
    Leave(Address),
}

/// Something that happened, for the shell and the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start listening to this group's topics.
    Subscribe(GroupId),
    /// Stop listening to this group's topics.
    Unsubscribe(GroupId),
    /// This node created a group and is its steward.
    GroupCreated {
        /// The group.
        group: GroupId,
    },
    /// A steward announced a group that this node wants to join.
    AnnouncementSeen {
        /// The group.
        group: GroupId,
        /// The announcing steward.
        steward: Address,
        /// The group's epoch.
        epoch: Epoch,
    },
    /// This node sent (or re-sent) its key package to a steward.
    JoinRequestSent {
        /// The group.
        group: GroupId,
        /// The steward it was sealed to.
        steward: Address,
    },
    /// As steward, this node accepted a join request and opened a vote on it.
    JoinRequestAccepted {
        /// The group.
        group: GroupId,
        /// The joiner.
        joiner: Address,
    },
    /// This node joined a group from a Welcome.
    Joined {
        /// The group.
        group: GroupId,
        /// The epoch it joined in.
        epoch: Epoch,
        /// The members, this node included.
        members: Vec<Address>,
    },
    /// A voting proposal was opened.
    ProposalOpened {
        /// The group.
        group: GroupId,
        /// The proposal.
        proposal: ProposalId,
        /// Who opened it.
        owner: Address,
        /// What it changes.
        change: ChangeKind,
        /// When silent voters are counted.
        deadline: Timestamp,
    },
    /// A vote was cast or received.
    VoteRecorded {
        /// The group.
        group: GroupId,
        /// The proposal.
        proposal: ProposalId,
        /// The voter.
        voter: Address,
        /// YES or NO.
        yes: bool,
    },
    /// A proposal was decided.
    ProposalDecided {
        /// The group.
        group: GroupId,
        /// The proposal.
        proposal: ProposalId,
        /// What it changes.
        change: ChangeKind,
        /// YES or NO.
        approved: bool,
    },
    /// A commit was applied: the group is in a new epoch.
    EpochChanged {
        /// The group.
        group: GroupId,
        /// The new epoch.
        epoch: Epoch,
        /// Who committed.
        committer: Address,
        /// Members added by the commit.
        added: Vec<Address>,
        /// Members removed by the commit.
        removed: Vec<Address>,
        /// The members now.
        members: Vec<Address>,
        /// The MLS epoch authenticator: equal on every member in the same epoch.
        authenticator: Vec<u8>,
    },
    /// A commit was refused.
    CommitRejected {
        /// The group.
        group: GroupId,
        /// Who sent it.
        committer: Address,
        /// Why.
        reason: String,
    },
    /// A chat message arrived (or was sent by this node).
    Message {
        /// The group.
        group: GroupId,
        /// The author.
        sender: Address,
        /// The text.
        text: String,
        /// The message id (16 bytes).
        id: Vec<u8>,
        /// The author's clock when sending.
        sent_at: Timestamp,
        /// The epoch it was encrypted in.
        epoch: Epoch,
    },
    /// This node is no longer a member (removed, or its leave was committed).
    Removed {
        /// The group.
        group: GroupId,
        /// The epoch of the commit that removed it.
        epoch: Epoch,
        /// Who committed the removal.
        by: Address,
    },
}
