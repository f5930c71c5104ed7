//! Why the engine refused an input.

use demls_identity::{Address, IdentityError};

use crate::{Epoch, GroupId, InvalidGroupId};

/// Every way an input can be refused. A refused input changes no state.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Larger than the configured maximum.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes that are not a valid demls message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A wire format version this engine does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u32),
    /// An exact copy of a message already handled.
    #[error("duplicate message")]
    Duplicate,
    /// A group name that breaks the naming rule.
    #[error(transparent)]
    InvalidGroupId(#[from] InvalidGroupId),
    /// A message or command for a group this node is not in.
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    /// A group that already exists here.
    #[error("group {0} already exists")]
    GroupExists(GroupId),
    /// Only a steward may do this.
    #[error("not a steward of {0}")]
    NotSteward(GroupId),
    /// Not addressed to this node (a join request for another steward, a welcome for others).
    #[error("not addressed to this node")]
    NotForUs,
    /// A message from an epoch this member cannot read (too old, or before it joined).
    #[error("message for epoch {got}, current epoch is {current}")]
    WrongEpoch {
        /// The message's epoch.
        got: Epoch,
        /// This member's epoch.
        current: Epoch,
    },
    /// A signature, wallet binding or key that does not verify.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// The sender is not who the message claims.
    #[error("sender {sender} is not the claimed author {claimed}")]
    SenderMismatch {
        /// The authenticated sender.
        sender: Address,
        /// The claimed author.
        claimed: Address,
    },
    /// A key package already seen or already used.
    #[error("replayed key package from {0}")]
    ReplayedKeyPackage(Address),
    /// A key package for another ciphersuite.
    #[error("unsupported ciphersuite {0}")]
    UnsupportedCipherSuite(u16),
    /// The member is over its per-epoch proposal limit.
    #[error("{0} exceeded its proposal limit for this epoch")]
    RateLimited(Address),
    /// An election or membership change proposed while an emergency is open (the RFC's
    /// partial freeze); its owner sends it again.
    #[error("an emergency is open: elections and membership changes wait")]
    Frozen,
    /// The member is not in the group.
    #[error("{0} is not a member")]
    NotMember(Address),
    /// The address is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(Address),
    /// A proposal that cannot be applied as given.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// A commit that does not match what was voted, or comes from someone not allowed to commit.
    #[error("commit rejected: {0}")]
    InvalidCommit(String),
    /// A vote that cannot be cast (unknown or closed proposal, already voted).
    #[error("vote refused: {0}")]
    Vote(String),
    /// A consensus message that does not verify.
    #[error("consensus: {0}")]
    Consensus(#[from] demls_consensus::ConsensusError),
    /// An error inside MLS processing (decryption, signature, tree validation).
    #[error("mls: {0}")]
    Mls(String),
    /// A cryptographic operation failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// An admission policy that is not well formed.
    #[error("admission policy: {0}")]
    InvalidPolicy(#[from] demls_policy::PolicyError),
    /// A bounded queue is full; the input is dropped.
    #[error("the queue of {0} is full")]
    QueueFull(&'static str),
    /// An invitation that cannot be used.
    #[error("invitation: {0}")]
    Invitation(#[from] crate::InvitationError),
    /// The buffer for future-epoch messages is full.
    #[error("buffer for future-epoch messages is full")]
    BufferFull,
    /// A display name that is too long or holds control characters.
    #[error("display name: {0}")]
    InvalidDisplayName(String),
}

impl EngineError {
    /// A short, stable label for metrics and logs ("dropped by reason").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Oversize { .. } => "oversize",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::Duplicate => "duplicate",
            Self::InvalidGroupId(_) => "invalid_group_id",
            Self::UnknownGroup(_) => "unknown_group",
            Self::GroupExists(_) => "group_exists",
            Self::NotSteward(_) => "not_steward",
            Self::NotForUs => "not_for_us",
            Self::WrongEpoch { .. } => "wrong_epoch",
            Self::Identity(_) => "bad_identity",
            Self::SenderMismatch { .. } => "sender_mismatch",
            Self::ReplayedKeyPackage(_) => "replayed_key_package",
            Self::UnsupportedCipherSuite(_) => "unsupported_ciphersuite",
            Self::RateLimited(_) => "rate_limited",
            Self::Frozen => "frozen",
            Self::NotMember(_) => "not_member",
            Self::AlreadyMember(_) => "already_member",
            Self::InvalidProposal(_) => "invalid_proposal",
            Self::InvalidCommit(_) => "invalid_commit",
            Self::Vote(_) => "vote_refused",
            Self::Consensus(_) => "bad_consensus",
            Self::Mls(_) => "mls",
            Self::Crypto(_) => "crypto",
            Self::InvalidPolicy(_) => "invalid_policy",
            Self::QueueFull(_) => "queue_full",
            Self::Invitation(_) => "invalid_invitation",
            Self::BufferFull => "buffer_full",
            Self::InvalidDisplayName(_) => "invalid_display_name",
        }
    }
}

impl From<mls_rs::error::MlsError> for EngineError {
    fn from(e: mls_rs::error::MlsError) -> Self {
        Self::Mls(e.to_string())
    }
}

impl From<prost::DecodeError> for EngineError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Malformed(e.to_string())
    }
}
