//! The demls.v1 wire format (documented in `proto/demls.v1.proto`).
//!
//! Every payload on a demls topic is an [`Envelope`]; every MLS application
//! message carries an [`AppMessage`]. Decoding is bounded by the caller's
//! size limit before it gets here, and prost rejects malformed input with an
//! error, never a panic.

use demls_consensus::wire::Proposal;
use prost::Message;

/// The wire format version this engine speaks.
pub const WIRE_VERSION: u32 = 1;

/// Everything on a demls content topic.
#[derive(Clone, PartialEq, Message)]
pub struct Envelope {
    /// [`WIRE_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The group this message belongs to.
    #[prost(string, tag = "2")]
    pub group_id: String,
    /// The message.
    #[prost(oneof = "envelope::Body", tags = "10, 11, 12, 13, 14, 15")]
    pub body: Option<envelope::Body>,
}

/// [`Envelope`]'s body.
pub mod envelope {
    /// The kinds of envelope.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Body {
        /// A steward's periodic announcement (welcome topic).
        #[prost(message, tag = "10")]
        Announcement(super::GroupAnnouncement),
        /// A sealed key package for a steward (welcome topic).
        #[prost(message, tag = "11")]
        JoinRequest(super::JoinRequest),
        /// A Welcome and its ratchet tree (welcome topic).
        #[prost(message, tag = "12")]
        Welcome(super::WelcomeBundle),
        /// An MLS PrivateMessage: a commit or an application message (application topic).
        #[prost(bytes, tag = "13")]
        MlsMessage(Vec<u8>),
        /// A member asking for the commits it is missing (application topic).
        #[prost(message, tag = "14")]
        SyncRequest(super::SyncRequest),
        /// A steward refusing a joiner, with the reason (welcome topic).
        #[prost(message, tag = "15")]
        JoinRefused(super::JoinRefused),
    }
}

/// A steward's periodic announcement of a group.
#[derive(Clone, PartialEq, Message)]
pub struct GroupAnnouncement {
    /// MLS ciphersuite id.
    #[prost(uint32, tag = "1")]
    pub cipher_suite: u32,
    /// The steward's address (20 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub steward: Vec<u8>,
    /// The X25519 key that join requests are sealed to.
    #[prost(bytes = "vec", tag = "3")]
    pub steward_hpke_key: Vec<u8>,
    /// The group's current epoch.
    #[prost(uint64, tag = "4")]
    pub epoch: u64,
    /// When the steward issued it (Unix ms).
    #[prost(uint64, tag = "5")]
    pub issued_at_ms: u64,
    /// Number of members.
    #[prost(uint32, tag = "6")]
    pub member_count: u32,
    /// The steward's branch at `epoch` (see [`EpochMark`]).
    #[prost(bytes = "vec", tag = "7")]
    pub branch: Vec<u8>,
    /// The group's admission policy (`demls.policy.v1` encoding), for joiners to see.
    #[prost(bytes = "vec", tag = "8")]
    pub admission_policy: Vec<u8>,
    /// EIP-191 signature by the steward over this message with `signature` empty.
    #[prost(bytes = "vec", tag = "15")]
    pub signature: Vec<u8>,
}

/// A joiner's key package, sealed to one steward.
#[derive(Clone, PartialEq, Message)]
pub struct JoinRequest {
    /// The steward it is sealed to (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub steward: Vec<u8>,
    /// The joiner's address (20 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub joiner: Vec<u8>,
    /// HPKE encapsulated key.
    #[prost(bytes = "vec", tag = "3")]
    pub kem_output: Vec<u8>,
    /// HPKE ciphertext of a [`SealedJoin`].
    #[prost(bytes = "vec", tag = "4")]
    pub ciphertext: Vec<u8>,
    /// When the joiner sent it (Unix ms).
    #[prost(uint64, tag = "5")]
    pub sent_at_ms: u64,
    /// EIP-191 signature by the joiner over this message with `signature` empty.
    #[prost(bytes = "vec", tag = "15")]
    pub signature: Vec<u8>,
}

/// What a join request seals to the steward.
#[derive(Clone, PartialEq, Message)]
pub struct SealedJoin {
    /// The joiner's MLS KeyPackage message.
    #[prost(bytes = "vec", tag = "1")]
    pub key_package: Vec<u8>,
    /// The invitation the joiner was given, if any.
    #[prost(message, optional, tag = "2")]
    pub invitation: Option<Invitation>,
}

/// A member's invitation of an address: that member's YES on admitting it, signed ahead.
#[derive(Clone, PartialEq, Message)]
pub struct Invitation {
    /// The group (its id).
    #[prost(string, tag = "1")]
    pub group_id: String,
    /// Who is invited (20 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub invitee: Vec<u8>,
    /// The inviting member (20 bytes).
    #[prost(bytes = "vec", tag = "3")]
    pub inviter: Vec<u8>,
    /// When it was issued (Unix ms).
    #[prost(uint64, tag = "4")]
    pub issued_at_ms: u64,
    /// When it stops being valid (Unix ms).
    #[prost(uint64, tag = "5")]
    pub expires_at_ms: u64,
    /// EIP-191 signature by `inviter` over this message with `signature` empty.
    #[prost(bytes = "vec", tag = "15")]
    pub signature: Vec<u8>,
}

/// The group's membership rules (group context extension `demls_group_rules`).
#[derive(Clone, PartialEq, Message)]
pub struct GroupRules {
    /// Who may join: 0 by invitation or vote, 1 anyone (a public group).
    #[prost(uint32, tag = "1")]
    pub join_rule: u32,
    /// Seconds a vote on adding or removing someone stays open.
    #[prost(uint32, tag = "2")]
    pub membership_vote_timeout_secs: u32,
    /// Seconds after which a member replaces its leaf keys (0: the default, a day).
    #[prost(uint32, tag = "3")]
    pub rotate_after_secs: u32,
    /// Chat messages a member sends before it replaces its leaf keys (0: the default).
    #[prost(uint32, tag = "4")]
    pub rotate_after_messages: u32,
    /// Milliseconds of a committer's turn (0: each member's own setting, as in groups made
    /// before timers were rules).
    #[prost(uint32, tag = "5")]
    pub commit_timeout_ms: u32,
    /// Milliseconds of a committer's turn after a re-election or a deadlock (0: half a turn).
    #[prost(uint32, tag = "6")]
    pub recovery_timeout_ms: u32,
    /// Re-election rounds before the deadlock emergency (0: each member's own setting).
    #[prost(uint32, tag = "7")]
    pub max_reelections: u32,
}

/// A steward's refusal of a joiner that does not meet the group's admission policy.
#[derive(Clone, PartialEq, Message)]
pub struct JoinRefused {
    /// The refusing steward (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub steward: Vec<u8>,
    /// The refused joiner (20 bytes).
    #[prost(bytes = "vec", tag = "2")]
    pub joiner: Vec<u8>,
    /// Why, in words.
    #[prost(string, tag = "3")]
    pub reason: String,
    /// When (Unix ms).
    #[prost(uint64, tag = "4")]
    pub sent_at_ms: u64,
    /// EIP-191 signature by the steward over this message with `signature` empty.
    #[prost(bytes = "vec", tag = "15")]
    pub signature: Vec<u8>,
}

/// A commit's Welcome, with the ratchet tree sent once beside it.
#[derive(Clone, PartialEq, Message)]
pub struct WelcomeBundle {
    /// MLS Welcome message.
    #[prost(bytes = "vec", tag = "1")]
    pub welcome: Vec<u8>,
    /// The exported ratchet tree, sealed with the key in the GroupInfo's tree-key extension.
    #[prost(bytes = "vec", tag = "2")]
    pub encrypted_tree: Vec<u8>,
    /// The epoch the Welcome starts.
    #[prost(uint64, tag = "3")]
    pub epoch: u64,
}

/// The plaintext of an MLS application message.
#[derive(Clone, PartialEq, Message)]
pub struct AppMessage {
    /// The message.
    #[prost(oneof = "app_message::Body", tags = "1, 2, 3, 4, 6, 7, 8")]
    pub body: Option<app_message::Body>,
}

/// [`AppMessage`]'s body.
pub mod app_message {
    /// The kinds of application message.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Body {
        /// A chat message.
        #[prost(message, tag = "1")]
        Chat(super::Chat),
        /// A voting proposal (with its owner's vote).
        #[prost(message, tag = "2")]
        Proposal(demls_consensus::wire::Proposal),
        /// A vote.
        #[prost(message, tag = "3")]
        Vote(demls_consensus::wire::Vote),
        /// A member's invitation, told to the group so that every member knows it.
        #[prost(message, tag = "4")]
        Invitation(super::Invitation),
        /// What a member has delivered (its Lamport clock and causal history): others learn
        /// what they miss, and senders that their messages arrived.
        #[prost(message, tag = "6")]
        Sync(super::ChatSync),
        /// A member asking the group to send again chat messages it misses.
        #[prost(message, tag = "7")]
        Repair(super::RepairRequest),
        /// The sender's display name in this group (the MLS sender is whose name it is).
        #[prost(message, tag = "8")]
        Name(super::DisplayName),
    }
}

/// A chat message.
#[derive(Clone, PartialEq, Message)]
pub struct Chat {
    /// 16 random bytes naming this message.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The text.
    #[prost(string, tag = "2")]
    pub text: String,
    /// When the sender sent it (Unix ms).
    #[prost(uint64, tag = "3")]
    pub sent_at_ms: u64,
    /// The sender's Lamport clock when sending.
    #[prost(uint64, tag = "4")]
    pub lamport: u64,
    /// The sender's causal history: the messages it delivered last, oldest first.
    #[prost(message, repeated, tag = "5")]
    pub history: Vec<HistoryEntry>,
}

/// A member's display name: it names no member, because the MLS sender is the one named.
#[derive(Clone, PartialEq, Message)]
pub struct DisplayName {
    /// The name (empty: none), at most [`crate::MAX_DISPLAY_NAME_BYTES`] bytes of UTF-8
    /// without control characters.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The sender's version of its name, higher for each new name: the latest wins
    /// whatever order messages arrive in.
    #[prost(uint64, tag = "2")]
    pub version: u64,
}

/// A message in a causal history.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryEntry {
    /// The chat message's id.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The epoch it was sent in (members that joined later do not wait for it).
    #[prost(uint64, tag = "2")]
    pub epoch: u64,
}

/// A member's delivered state, sent now and then while the group talks.
#[derive(Clone, PartialEq, Message)]
pub struct ChatSync {
    /// Its Lamport clock.
    #[prost(uint64, tag = "1")]
    pub lamport: u64,
    /// Its causal history.
    #[prost(message, repeated, tag = "2")]
    pub history: Vec<HistoryEntry>,
    /// A Bloom filter of the messages it delivered lately (8192 bits, 4 SHA-256 probes):
    /// others send again what it lacks.
    #[prost(bytes = "vec", tag = "3")]
    pub bloom: Vec<u8>,
    /// The epoch it joined in (it lacks, and cannot read, what came before).
    #[prost(uint64, tag = "4")]
    pub joined_epoch: u64,
}

/// Chat messages a member misses, by id.
#[derive(Clone, PartialEq, Message)]
pub struct RepairRequest {
    /// The ids (16 bytes each).
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub ids: Vec<Vec<u8>>,
}

/// The payload of a membership voting proposal.
#[derive(Clone, PartialEq, Message)]
pub struct GroupChange {
    /// The epoch in which the change is voted.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// The change.
    #[prost(oneof = "group_change::Change", tags = "2, 3, 4, 6")]
    pub change: Option<group_change::Change>,
    /// For an add: a member's invitation of the joiner, if one is known.
    #[prost(message, optional, tag = "5")]
    pub invitation: Option<Invitation>,
}

/// [`GroupChange`]'s change.
pub mod group_change {
    /// The kinds of membership change.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Change {
        /// Add the owner of this MLS KeyPackage message.
        #[prost(bytes, tag = "2")]
        AddKeyPackage(Vec<u8>),
        /// Remove this member (20-byte address); a leave when it is the proposal's owner.
        #[prost(bytes, tag = "3")]
        RemoveMember(Vec<u8>),
        /// Replace the leaf of this key package's owner, a member that lost its state.
        #[prost(bytes, tag = "4")]
        ReaddKeyPackage(Vec<u8>),
        /// The proposal's owner replaces its own leaf keys: its MLS Update proposal
        /// (a PrivateMessage), committed by reference.
        #[prost(bytes, tag = "6")]
        SelfUpdate(Vec<u8>),
    }
}

/// The payload of a steward election proposal.
#[derive(Clone, PartialEq, Message)]
pub struct StewardElection {
    /// The epoch in which the election is held (an input of the list).
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// Retry round (an input of the list): 0, or higher after a silent list.
    #[prost(uint32, tag = "2")]
    pub retry_round: u32,
    /// The proposed steward list, in rotation order (20-byte addresses).
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub stewards: Vec<Vec<u8>>,
}

/// The payload of an emergency criteria proposal: who misbehaved, and the evidence.
#[derive(Clone, PartialEq, Message)]
pub struct Emergency {
    /// The epoch in which the emergency is voted.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// The steward to remove (20 bytes); empty for a deadlock.
    #[prost(bytes = "vec", tag = "2")]
    pub offender: Vec<u8>,
    /// The epoch in which the violation happened.
    #[prost(uint64, tag = "3")]
    pub violation_epoch: u64,
    /// The evidence.
    #[prost(oneof = "emergency::Evidence", tags = "10, 11, 12, 13, 14")]
    pub evidence: Option<emergency::Evidence>,
}

/// [`Emergency`]'s evidence.
pub mod emergency {
    /// The kinds of violation and what proves each.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Evidence {
        /// A commit whose changes differ from the vote (the commit, readable by members of its epoch).
        #[prost(bytes, tag = "10")]
        BrokenCommit(Vec<u8>),
        /// Two commits for one epoch by one steward, with different changes.
        #[prost(message, tag = "11")]
        Equivocation(super::CommitPair),
        /// The epoch steward let approved changes wait until its backup committed them.
        #[prost(bool, tag = "12")]
        Inactivity(bool),
        /// A commit that left out a proposal approved well before it.
        #[prost(message, tag = "13")]
        Censorship(super::Omission),
        /// Every steward, and every re-election, stayed silent: any member may commit.
        #[prost(bool, tag = "14")]
        Deadlock(bool),
    }
}

/// Two conflicting commits.
#[derive(Clone, PartialEq, Message)]
pub struct CommitPair {
    /// One commit.
    #[prost(bytes = "vec", tag = "1")]
    pub first: Vec<u8>,
    /// The other.
    #[prost(bytes = "vec", tag = "2")]
    pub second: Vec<u8>,
}

/// An approved proposal a commit left out.
#[derive(Clone, PartialEq, Message)]
pub struct Omission {
    /// The commit.
    #[prost(bytes = "vec", tag = "1")]
    pub commit: Vec<u8>,
    /// The proposal it left out, with its votes.
    #[prost(message, optional, tag = "2")]
    pub omitted: Option<Proposal>,
}

/// A member asking for commits it missed; stewards answer by publishing them again.
#[derive(Clone, PartialEq, Message)]
pub struct SyncRequest {
    /// The asking member (20 bytes).
    #[prost(bytes = "vec", tag = "1")]
    pub requester: Vec<u8>,
    /// Its recent epochs and their branches, newest first.
    #[prost(message, repeated, tag = "2")]
    pub have: Vec<EpochMark>,
    /// When it asked (Unix ms).
    #[prost(uint64, tag = "3")]
    pub sent_at_ms: u64,
    /// EIP-191 signature by `requester` over this message with `signature` empty.
    #[prost(bytes = "vec", tag = "15")]
    pub signature: Vec<u8>,
}

/// An epoch and the branch a member is on in it.
///
/// `branch = SHA256("demls/branch/v1" || epoch authenticator)`: equal for two
/// members exactly when they share the epoch's secrets, and revealing nothing
/// about them.
#[derive(Clone, PartialEq, Message)]
pub struct EpochMark {
    /// The epoch.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// The branch.
    #[prost(bytes = "vec", tag = "2")]
    pub branch: Vec<u8>,
}

/// The authenticated data of a commit: the voted proposals it applies, with their votes.
#[derive(Clone, PartialEq, Message)]
pub struct CommitManifest {
    /// The epoch the commit ends.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// The approved proposals, each with the votes that approved it.
    #[prost(message, repeated, tag = "2")]
    pub approved: Vec<Proposal>,
}

/// Encodes `message` with its `signature` field cleared, the bytes a signature covers.
pub(crate) fn signing_bytes<M: Message + Clone>(
    message: &M,
    clear: impl FnOnce(&mut M),
) -> Vec<u8> {
    let mut unsigned = message.clone();
    clear(&mut unsigned);
    unsigned.encode_to_vec()
}

/// Checks that `signature` is `claimed`'s EIP-191 signature over `message` with its
/// signature field cleared by `clear`.
pub(crate) fn check_signed_by<M: Message + Clone>(
    message: &M,
    signature: &[u8],
    clear: impl FnOnce(&mut M),
    claimed: demls_identity::Address,
) -> Result<(), crate::EngineError> {
    let signature = demls_identity::EthSignature::from_slice(signature)?;
    let signer = demls_identity::recover_personal(&signing_bytes(message, clear), &signature)?;
    if signer != claimed {
        return Err(crate::EngineError::SenderMismatch {
            sender: signer,
            claimed,
        });
    }
    Ok(())
}
