//! The node itself, signing in, and plain status answers.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// The node: `GET /api/node`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// This node's Ethereum address.
    pub address: String,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Where it listens: multiaddrs ending in `/p2p/<peer id>`, what others pass as `--peer`.
    pub listen_addrs: Vec<String>,
    /// The Waku pubsub topic it relays on, e.g. `/waku/2/rs/4242/0`.
    pub pubsub_topic: String,
    /// Connected peers.
    pub peers: Vec<String>,
    /// How it votes.
    pub vote_policy: VotePolicy,
    /// The demls version.
    pub version: String,
}

/// How a node votes.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VotePolicy {
    /// YES on every proposal that checks out, NO otherwise.
    Automatic,
    /// Only when told (`POST …/proposals/{id}/votes`).
    Manual,
}

/// The body of `PUT /api/node/vote-policy`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
pub struct VotePolicyChange {
    /// The new policy (kept across restarts).
    pub policy: VotePolicy,
}

/// The body of `POST /api/signin`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The one-time code of the sign-in link the node printed (`…/#signin=CODE`).
    pub code: String,
}

/// The answer of `POST /api/signin`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The bearer token (the code is used up).
    pub token: String,
}

/// An answer that only says what happened.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusBody {
    /// What happened.
    pub status: Status,
}

/// What a command did.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The API answers (`GET /api/health`).
    Ok,
    /// The leave is proposed; `removed` follows on the event stream after the commit.
    Leaving,
    /// The proposal is open; `proposal_opened` follows on the event stream.
    Proposed,
    /// The key update is proposed; an `epoch_changed` follows on the event stream after the
    /// commit that replaces this node's leaf keys (within about 30 s: updates wait to share
    /// a commit).
    Rotating,
}
