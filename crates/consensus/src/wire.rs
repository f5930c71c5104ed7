//! The `consensus.v1` protobuf messages, field for field as in
//! `proto/consensus.v1.proto` and the public reference.
//!
//! Written by hand with `prost` derives (no build script). Decoding is
//! [`prost::Message::decode`]; it never panics on malformed bytes. Nothing in
//! a decoded message is trusted until [`crate::Consensus`] has validated it.

/// A question put to a set of voters (`consensus.v1.Proposal`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Proposal {
    /// Short name.
    #[prost(string, tag = "10")]
    pub name: String,
    /// What is voted on, opaque to this crate.
    #[prost(bytes = "vec", tag = "11")]
    pub payload: Vec<u8>,
    /// Identifier, derived from the content (see [`crate::signing::proposal_id`]).
    #[prost(uint32, tag = "12")]
    pub proposal_id: u32,
    /// 20-byte address of the creator.
    #[prost(bytes = "vec", tag = "13")]
    pub proposal_owner: Vec<u8>,
    /// Accepted votes, each after the vote its `received_hash` names.
    #[prost(message, repeated, tag = "14")]
    pub votes: Vec<Vote>,
    /// Size of the voter set; receivers compare it with their own.
    #[prost(uint32, tag = "15")]
    pub expected_voters_count: u32,
    /// 1 + the number of votes. Informative only: never read on receipt.
    #[prost(uint32, tag = "16")]
    pub round: u32,
    /// Creation time, whole seconds since the Unix epoch.
    #[prost(uint64, tag = "17")]
    pub timestamp: u64,
    /// Deadline, whole seconds since the Unix epoch.
    #[prost(uint64, tag = "18")]
    pub expiration_timestamp: u64,
    /// Voters still silent at the deadline count as YES if `true`, as NO if `false`.
    #[prost(bool, tag = "19")]
    pub liveness_criteria_yes: bool,
}

/// One voter's signed answer (`consensus.v1.Vote`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Vote {
    /// Identifier, derived from the proposal id and the owner.
    #[prost(uint32, tag = "20")]
    pub vote_id: u32,
    /// 20-byte address of the voter.
    #[prost(bytes = "vec", tag = "21")]
    pub vote_owner: Vec<u8>,
    /// The proposal voted on.
    #[prost(uint32, tag = "22")]
    pub proposal_id: u32,
    /// When the vote was cast, whole seconds since the Unix epoch.
    #[prost(uint64, tag = "23")]
    pub timestamp: u64,
    /// `true` = YES.
    #[prost(bool, tag = "24")]
    pub vote: bool,
    /// `vote_hash` of the owner's previous vote in this proposal; always empty
    /// in a valid vote, since a voter votes once.
    #[prost(bytes = "vec", tag = "25")]
    pub parent_hash: Vec<u8>,
    /// `vote_hash` of the last vote the voter had accepted in this proposal, or empty.
    #[prost(bytes = "vec", tag = "26")]
    pub received_hash: Vec<u8>,
    /// SHA-256 over the fields above (see [`crate::signing::vote_hash`]).
    #[prost(bytes = "vec", tag = "27")]
    pub vote_hash: Vec<u8>,
    /// 65-byte EIP-191 signature over this message encoded with `signature` empty.
    #[prost(bytes = "vec", tag = "28")]
    pub signature: Vec<u8>,
}
