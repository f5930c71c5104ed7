//! The rows a node reads and writes, as typed values.

use demls_engine::{Epoch, GroupId, ProposalId, SnapshotWrite, StorageWrite, Timestamp, Transmit};
use demls_identity::Address;

/// Where a chat message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Written by this node; its ciphertext waits in the outbox (no peer yet, or not sent yet).
    Queued,
    /// Written by this node and handed to the network.
    Sent,
    /// Written by another member and received here.
    Received,
    /// Written by this node, and another member has it (it named it in its causal history).
    Delivered,
}

impl Delivery {
    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Received => "received",
            Self::Delivered => "delivered",
        }
    }

    pub(crate) fn parse(label: &str) -> Option<Self> {
        [Self::Queued, Self::Sent, Self::Received, Self::Delivered]
            .into_iter()
            .find(|d| d.as_str() == label)
    }
}

/// A chat message to add to the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The group.
    pub group: GroupId,
    /// The engine's message id (16 bytes).
    pub id: Vec<u8>,
    /// The author.
    pub sender: Address,
    /// The text.
    pub text: String,
    /// The author's clock when sending.
    pub sent_at: Timestamp,
    /// The epoch it was encrypted in.
    pub epoch: Epoch,
    /// The author's Lamport clock (history is shown in causal order).
    pub lamport: u64,
    /// When this node stored it.
    pub received_at: Timestamp,
    /// Whether this node wrote it.
    pub own: bool,
}

/// A chat message from the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in this node's history (increasing, across groups).
    pub seq: u64,
    /// The message.
    pub message: NewMessage,
    /// Where it stands.
    pub delivery: Delivery,
}

/// An encoded message for the network, kept until published and a while after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Position in the outbox; messages are published in this order.
    pub seq: u64,
    /// What to publish where.
    pub transmit: Transmit,
    /// When the engine produced it.
    pub created_at: Timestamp,
    /// When it was first handed to the network.
    pub published_at: Option<Timestamp>,
}

/// The life of a voting proposal, as this node saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposalState {
    /// Votes are still being collected.
    Open,
    /// Decided YES.
    Approved,
    /// Decided NO.
    Rejected,
    /// Ended undecided: the epoch changed, or this node restarted while it was open.
    Closed,
}

impl ProposalState {
    /// The stored label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Closed => "closed",
        }
    }

    pub(crate) fn parse(label: &str) -> Option<Self> {
        [Self::Open, Self::Approved, Self::Rejected, Self::Closed]
            .into_iter()
            .find(|s| s.as_str() == label)
    }
}

/// A voting proposal with its tally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalRecord {
    /// The group.
    pub group: GroupId,
    /// The proposal.
    pub id: ProposalId,
    /// The epoch it was opened in.
    pub epoch: Epoch,
    /// Who opened it.
    pub owner: Address,
    /// What it changes, as the node describes it (JSON).
    pub change: String,
    /// When this node saw it opened.
    pub opened_at: Timestamp,
    /// When silent voters are counted.
    pub deadline: Timestamp,
    /// Where it stands.
    pub state: ProposalState,
    /// When it was decided here.
    pub decided_at: Option<Timestamp>,
    /// The epoch whose commit applied it.
    pub committed_epoch: Option<Epoch>,
    /// Votes received, in arrival order.
    pub votes: Vec<(Address, bool)>,
}

/// An entry for the node's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// The group it concerns, if any.
    pub group: Option<GroupId>,
    /// The event, encoded by the node (JSON).
    pub body: String,
}

/// An entry of the node's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Position in the log.
    pub seq: u64,
    /// The entry.
    pub event: NewEvent,
}

/// Everything one engine step changes, written in one transaction.
#[derive(Debug, Default)]
pub struct Step {
    /// When the step ran.
    pub now: Timestamp,
    /// The engine's MLS storage journal.
    pub storage: Vec<StorageWrite>,
    /// How the engine's protocol snapshot changed: written whole (the votes journaled
    /// after the last one are then dropped), or votes to append to that journal.
    pub snapshot: SnapshotWrite,
    /// New chat messages.
    pub messages: Vec<NewMessage>,
    /// Messages for the network, published only after the step is committed.
    pub transmits: Vec<Transmit>,
    /// Proposals created or changed.
    pub proposals: Vec<ProposalRecord>,
    /// Event log entries.
    pub events: Vec<NewEvent>,
    /// Own messages another member now has: (group, message id).
    pub acknowledged: Vec<(GroupId, Vec<u8>)>,
}

impl Step {
    /// Whether the step changes nothing.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
            && self.snapshot == SnapshotWrite::Unchanged
            && self.messages.is_empty()
            && self.transmits.is_empty()
            && self.proposals.is_empty()
            && self.events.is_empty()
            && self.acknowledged.is_empty()
    }
}

/// What a committed step added.
#[derive(Debug, Default)]
pub struct StepReceipt {
    /// Outbox positions of the step's transmits, in order.
    pub outbox: Vec<u64>,
    /// Messages added to the history (duplicates of stored ones are left out).
    pub messages: Vec<StoredMessage>,
    /// Event log entries added.
    pub events: Vec<EventRecord>,
    /// Own messages that became [`Delivery::Delivered`] in this step.
    pub delivered: Vec<StoredMessage>,
}
