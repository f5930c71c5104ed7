//! What the engine tells its shell: messages to send, what the shell must do (some of it
//! answered), and things that happened.

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

/// Everything the engine produced since it was last drained ([`crate::Engine::take_output`]),
/// in the order a shell applies it: persist `writes` and `snapshot` together (one
/// transaction), then carry out `requests`, then publish `transmits`, then act on
/// `events`. The engine takes the shell to have persisted each output it drained: the next
/// `snapshot` says only what changed since. A transmit must never go out
/// before the state it came from is on disk: after a crash in between, the restarted node
/// would use again the keys of a ciphertext already published.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Output {
    /// MLS state written (see [`crate::Engine::take_storage_writes`]).
    pub writes: Vec<crate::StorageWrite>,
    /// How the protocol state kept beside the MLS state changed ([`crate::Engine::snapshot`]).
    pub snapshot: crate::SnapshotWrite,
    /// What the shell must do, in order (a group's topics are listened to before its
    /// messages are published).
    pub requests: Vec<Request>,
    /// Messages to publish, in order.
    pub transmits: Vec<Transmit>,
    /// What happened, in order.
    pub events: Vec<Event>,
}

/// Something the engine needs its shell to do: some only carry out (listen to a topic), some
/// need an answer through an [`crate::Engine`] method (an admission check).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Start listening to this group's topics.
    Subscribe(GroupId),
    /// Stop listening to this group's topics.
    Unsubscribe(GroupId),
    /// The group admits only addresses that meet its policy: the shell must
    /// check `subject` against the chain and answer with
    /// [`crate::Engine::admission_verdict`]. Until then nobody votes YES on it,
    /// and an unanswered or unavailable check never admits anyone.
    AdmissionCheck {
        /// The group.
        group: GroupId,
        /// The joiner to check.
        subject: Address,
        /// The group's policy.
        policy: demls_policy::AdmissionPolicy,
    },
}

/// What a proposal changes, as voters see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Admit this address.
    Add(Address),
    /// Replace the leaf of this member, which lost its state.
    Readd(Address),
    /// Remove this member.
    Remove(Address),
    /// This member leaves.
    Leave(Address),
    /// This member replaces its leaf keys (a self-update, for post-compromise security).
    Update(Address),
    /// Elect this steward list.
    Election {
        /// Retry round (above the group's current one after a silent list).
        retry_round: u32,
        /// The list, in rotation order.
        stewards: Vec<Address>,
    },
    /// An emergency: remove a steward that broke the rules, or unblock a silent list.
    Emergency {
        /// The steward to remove (none for a deadlock).
        offender: Option<Address>,
        /// What it did.
        violation: Violation,
    },
}

/// Steward misbehaviour that members detect and vote on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// Why a member is no longer in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removal {
    /// It asked to leave.
    Left,
    /// The members voted it out.
    Voted {
        /// The proposal that removed it.
        proposal: ProposalId,
        /// Who proposed it.
        owner: Address,
        /// YES votes.
        yes: u32,
        /// NO votes.
        no: u32,
        /// Voters.
        voters: u32,
    },
    /// An emergency found it breaking the rules as a steward.
    Emergency {
        /// The proposal that removed it.
        proposal: ProposalId,
        /// What it was found doing.
        violation: Violation,
    },
    /// Its leaf was replaced by a fresh key package of its own address (it asked to join
    /// again from another state); this state is no longer a member.
    Replaced,
}

/// Something that happened, for the shell and the user: a notification, which needs no
/// answer (see [`Request`] for what does).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
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
    /// A commit ended the epoch of a proposal that was not voted down: `committed` is the
    /// epoch the commit moved to if it applied the proposal, `None` if the proposal ends
    /// without effect (still undecided, or approved but left out of the commit; its owner, or
    /// a committer from the key package buffer, may propose it again in the new epoch). Sent
    /// just before the [`Event::EpochChanged`] of that commit.
    ProposalClosed {
        /// The group.
        group: GroupId,
        /// The proposal.
        proposal: ProposalId,
        /// The epoch whose commit applied it, if one did.
        committed: Option<Epoch>,
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
    /// This member saw a steward break the rules and is reporting it.
    ViolationDetected {
        /// The group.
        group: GroupId,
        /// The steward.
        offender: Option<Address>,
        /// What it did.
        violation: Violation,
        /// The epoch it happened in.
        epoch: Epoch,
    },
    /// A better commit for an earlier epoch arrived (a competing commit, or
    /// the other side of a healed network split): this member went back to
    /// that epoch and follows the commit the filtering rule prefers.
    BranchSwitched {
        /// The group.
        group: GroupId,
        /// The epoch where the branches part.
        fork_epoch: Epoch,
        /// The steward of the commit now followed.
        committer: Address,
    },
    /// This member's branch of the group died out (the group lives on another
    /// branch it holds no state for): it asks to join again.
    Rejoining {
        /// The group.
        group: GroupId,
    },
    /// A steward refused this node's join request.
    JoinRefused {
        /// The group.
        group: GroupId,
        /// The refusing steward.
        steward: Address,
        /// Why.
        reason: String,
    },
    /// This member asked the group for commits it is missing.
    SyncRequested {
        /// The group.
        group: GroupId,
        /// Its epoch when asking.
        epoch: Epoch,
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
        /// The sender's Lamport clock: messages are delivered in causal order.
        lamport: u64,
    },
    /// Another member has this node's chat message `id` (it was in its causal history).
    Acknowledged {
        /// The group.
        group: GroupId,
        /// The message id.
        id: Vec<u8>,
        /// The member that has it.
        by: Address,
    },
    /// How many chat messages this member knows it misses (0: none). While some are missing,
    /// the messages that follow them wait, and the member asks the group for them.
    Syncing {
        /// The group.
        group: GroupId,
        /// Messages missing.
        missing: usize,
    },
    /// Chat messages this member gave up waiting for: nobody gave them back within
    /// [`crate::EngineConfig::gap_give_up_ms`]. What waited for them was delivered after
    /// them, so the history has a hole here that the member should be shown.
    HistoryGap {
        /// The group.
        group: GroupId,
        /// Messages given up.
        lost: usize,
    },
    /// A member's display name changed (set, changed or taken away). Shown to everyone, so
    /// that a member who takes another's name cannot do it unseen.
    NameChanged {
        /// The group.
        group: GroupId,
        /// The member.
        member: Address,
        /// Its name now; `None`: it has none.
        name: Option<String>,
    },
    /// This node is no longer a member (removed, or its leave was committed).
    Removed {
        /// The group.
        group: GroupId,
        /// The epoch of the commit that removed it.
        epoch: Epoch,
        /// Who committed the removal.
        by: Address,
        /// Why.
        reason: Removal,
    },
    /// A member invited an address: its YES on admitting it, signed ahead.
    Invited {
        /// The group.
        group: GroupId,
        /// Who is invited.
        invitee: Address,
        /// The inviting member.
        inviter: Address,
        /// When the invitation ends.
        expires_at: Timestamp,
    },
}
