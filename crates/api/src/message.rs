//! Chat messages.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::{IntoParams, ToSchema};

/// A chat message in this node's history: `GET /api/groups/{group}/messages`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Position in this node's history.
    pub seq: u64,
    /// The message.
    #[serde(flatten)]
    pub message: ChatMessage,
}

/// A chat message, without its place in the history (which a `message` event carries as
/// its `seq`).
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// The group.
    pub group: String,
    /// The message id (hex).
    pub id: String,
    /// The author.
    pub sender: String,
    /// The author's display name in the group now, if it gave one and this node is still
    /// a member.
    pub sender_name: Option<String>,
    /// The text.
    pub text: String,
    /// The author's clock when sending.
    pub sent_at: u64,
    /// The epoch it was encrypted in.
    pub epoch: u64,
    /// The author's Lamport clock. The history is in causal order: a message comes after
    /// every message its author had seen when writing it.
    pub lamport: u64,
    /// When this node stored it.
    pub received_at: u64,
    /// Whether this node wrote it.
    pub direction: Direction,
    /// How far it got.
    pub delivery: Delivery,
}

/// Who wrote a message.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This node.
    Own,
    /// Another member.
    Incoming,
}

/// How far a message got.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Written, waiting for a peer to send it to.
    Queued,
    /// Sent to the network.
    Sent,
    /// Received from another member.
    Received,
    /// Sent, and another member has it (it named it in its causal history).
    Delivered,
}

/// The body of `PUT /api/groups/{group}/name`: this node's display name in the group.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct DisplayName {
    /// The name: at most 64 bytes of UTF-8, no control characters; empty removes it.
    pub name: String,
}

/// The body of `POST /api/groups/{group}/messages`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The text.
    pub text: String,
}

/// A page of a list ordered by `seq`.
#[derive(Serialize, Deserialize, IntoParams, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only entries with a larger `seq` (default 0).
    pub after: Option<u64>,
    /// At most this many entries (default 500, at most 5000).
    pub limit: Option<usize>,
}
