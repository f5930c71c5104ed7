//! Errors of the transport.

use libp2p::Multiaddr;

use crate::message::MAX_META_LEN;
use crate::segmentation::SegmentError;
use crate::topics::{MAX_RELAY_SHARDS, TopicError};

/// An error starting or driving the relay node.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration cannot work.
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// The 32-byte node key is not a valid ed25519 secret key.
    #[error("invalid node key: {0}")]
    NodeKey(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// What went wrong.
        reason: String,
    },
    /// A dial could not be started.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address.
        addr: Multiaddr,
        /// What went wrong.
        reason: String,
    },
    /// The libp2p stack could not be built.
    #[error("cannot build the libp2p stack: {0}")]
    Setup(String),
    /// The node has stopped (shut down, or every handle was dropped).
    #[error("the transport has stopped")]
    Closed,
}

/// An error publishing a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Waku relay rejects messages with an empty payload.
    #[error("empty payload")]
    EmptyPayload,
    /// `meta` is longer than the 64 bytes 14/WAKU2-MESSAGE allows.
    #[error("meta of {0} bytes exceeds {MAX_META_LEN} bytes")]
    MetaTooLong(usize),
    /// The message is too large to send, even in segments.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The size of the payload (or of the encoded message, if gossipsub refused it).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The message cannot be sent in segments.
    #[error("cannot segment: {0}")]
    Segmentation(SegmentError),
    /// No connected peer is subscribed to the pubsub topic; nothing was sent.
    #[error("no peer subscribed to the pubsub topic")]
    NoPeers,
    /// The same encoded message was published recently (gossipsub deduplicates).
    #[error("duplicate message")]
    Duplicate,
    /// Every peer's send queue is full; nothing was sent.
    #[error("send queues of all peers are full")]
    QueuesFull,
    /// Any other gossipsub failure.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// The message's shard cannot be found or joined.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// The node has stopped.
    #[error("the transport has stopped")]
    Closed,
}

/// An error finding or joining the shard of a content topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Autosharding cannot place the content topic.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The node already relays on [`MAX_RELAY_SHARDS`] shards.
    #[error("already relaying on {MAX_RELAY_SHARDS} shards; cannot join shard {shard}")]
    TooManyShards {
        /// The shard that could not be joined.
        shard: u16,
    },
    /// Gossipsub refused the subscription.
    #[error("cannot subscribe: {0}")]
    Subscribe(String),
    /// The node has stopped.
    #[error("the transport has stopped")]
    Closed,
}

impl From<SegmentError> for PublishError {
    fn from(error: SegmentError) -> PublishError {
        match error {
            SegmentError::TooLarge { size, max } => PublishError::TooLarge { size, max },
            other => PublishError::Segmentation(other),
        }
    }
}
