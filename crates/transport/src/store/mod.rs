//! Waku Store v3 (13/WAKU2-STORE, `/vac/waku/store-query/3.0.0`): answering queries from a
//! [`StoreBackend`] the embedding node supplies, and querying peers.
//!
//! On the wire each direction carries one varint-length-prefixed protobuf
//! ([`StoreQueryRequest`], then [`StoreQueryResponse`]) on a fresh stream, as nwaku and
//! js-waku do. Serving is bounded: pages of at most [`MAX_PAGE_SIZE`] messages and
//! [`MAX_RESPONSE_SIZE`] bytes, requests of at most [`MAX_REQUEST_SIZE`] bytes, at most
//! [`MAX_QUERIES_PER_PEER`] queries of one peer and [`MAX_QUERIES`] in all at a time (more are
//! answered `429`), and the backend runs on tokio's blocking pool, never in the relay loop.

mod memory;
mod proto;
mod server;
mod verify;

use std::fmt;

pub use memory::{MemoryStore, MemoryStoreLimits, NotStored};
pub use proto::{StoreQueryRequest, StoreQueryResponse, WakuMessageKeyValue};
pub(crate) use server::{Answer, StoreServer};
pub(crate) use verify::verify_response;

use crate::labels::labelled_enum;
use crate::message::{MessageHash, WakuMessage};

/// The protocol id of Waku Store v3.
pub const STORE_PROTOCOL: &str = "/vac/waku/store-query/3.0.0";

/// The page size when a query sets none (nwaku's and js-waku's default).
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// The largest page served, whatever the query asks (nwaku's maximum).
pub const MAX_PAGE_SIZE: usize = 100;

/// The most content topics in one query (nwaku's limit).
pub const MAX_CONTENT_TOPICS: usize = 10;

/// The largest encoded query accepted (room for about 1900 message hashes).
pub const MAX_REQUEST_SIZE: usize = 64 * 1024;

/// The largest encoded response: js-waku reads frames of at most 4 MiB. A page stops before
/// it would exceed this, but always holds at least one message.
pub const MAX_RESPONSE_SIZE: usize = 4 * 1024 * 1024;

/// The most queries of one peer answered at a time; more are answered `429`.
pub const MAX_QUERIES_PER_PEER: usize = 4;

/// The most queries answered at a time, all peers together; more are answered `429`.
pub const MAX_QUERIES: usize = 32;

/// A Store status code (`status_code` of a [`StoreQueryResponse`]), as nwaku uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u32);

impl StatusCode {
    /// The query succeeded.
    pub const OK: StatusCode = StatusCode(200);
    /// The service node could not produce a valid response.
    pub const BAD_RESPONSE: StatusCode = StatusCode(300);
    /// The query is invalid (mixed filters, bad hash or cursor, unknown cursor, ...).
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// The peer has too many queries in progress.
    pub const TOO_MANY_REQUESTS: StatusCode = StatusCode(429);
    /// The store failed to answer.
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);

    /// Whether the code is a success (`2xx`).
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which way a query walks the store (sorted by timestamp, then hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// A content-topic filter: both fields are set together, as the spec requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    /// The pubsub topic the messages were relayed on.
    pub pubsub_topic: String,
    /// The content topics wanted (at most [`MAX_CONTENT_TOPICS`]).
    pub content_topics: Vec<String>,
}

/// What a query selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFilter {
    /// Messages on `topics` (all topics when `None`) with `start <= timestamp < end`
    /// (each bound open when `None`).
    Content {
        /// The topic filter.
        topics: Option<TopicFilter>,
        /// The earliest timestamp (Unix ns, inclusive).
        start: Option<i64>,
        /// The timestamp to stop before (Unix ns, exclusive).
        end: Option<i64>,
    },
    /// The messages with these hashes (a lookup; no duplicates).
    Hashes(Vec<MessageHash>),
}

/// A validated Store query, as a [`StoreBackend`] gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreQuery {
    /// What to select.
    pub filter: StoreFilter,
    /// Whether the messages are wanted, or only their hashes.
    pub include_data: bool,
    /// Continue after (exclusive) the message with this hash.
    pub cursor: Option<MessageHash>,
    /// Which way to walk.
    pub direction: Direction,
    /// The most messages in the page: 1 to [`MAX_PAGE_SIZE`].
    pub limit: usize,
    /// The page should stop before its messages' encoded size exceeds this (it always holds
    /// at least one message).
    pub max_bytes: usize,
}

/// Why a [`StoreQueryRequest`] is not a valid query (answered `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidQuery {
    /// Message hashes together with a content filter.
    #[error("a query has either message hashes or a content filter, not both")]
    HashesAndContentFilter,
    /// Only one of `pubsub_topic` and `content_topics` is set.
    #[error("pubsub_topic and content_topics must be set together")]
    HalfTopicFilter,
    /// More than [`MAX_CONTENT_TOPICS`] content topics.
    #[error("{0} content topics exceed the limit of {MAX_CONTENT_TOPICS}")]
    TooManyContentTopics(usize),
    /// A message hash that is not 32 bytes long.
    #[error("message hash of {0} bytes, expected 32")]
    BadHash(usize),
    /// A cursor that is not 32 bytes long.
    #[error("invalid cursor: {0} bytes, expected 32")]
    BadCursor(usize),
    /// The encoded query is larger than [`MAX_REQUEST_SIZE`] (too many hashes).
    #[error("query of {0} bytes exceeds the {MAX_REQUEST_SIZE}-byte limit")]
    TooLarge(usize),
}

impl StoreQuery {
    /// Validates `request` as the spec and nwaku do, capping its page size at
    /// [`MAX_PAGE_SIZE`] ([`DEFAULT_PAGE_SIZE`] when unset or 0).
    pub fn from_request(request: &StoreQueryRequest) -> Result<StoreQuery, InvalidQuery> {
        let has_content_filter = request.pubsub_topic.is_some()
            || !request.content_topics.is_empty()
            || request.time_start.is_some()
            || request.time_end.is_some();
        let filter = if request.message_hashes.is_empty() {
            let topics = match (&request.pubsub_topic, request.content_topics.len()) {
                (None, 0) => None,
                (Some(_), 0) | (None, _) => return Err(InvalidQuery::HalfTopicFilter),
                (Some(_), n) if n > MAX_CONTENT_TOPICS => {
                    return Err(InvalidQuery::TooManyContentTopics(n));
                }
                (Some(pubsub_topic), _) => Some(TopicFilter {
                    pubsub_topic: pubsub_topic.clone(),
                    content_topics: request.content_topics.clone(),
                }),
            };
            StoreFilter::Content {
                topics,
                start: request.time_start,
                end: request.time_end,
            }
        } else if has_content_filter {
            return Err(InvalidQuery::HashesAndContentFilter);
        } else {
            let mut hashes = Vec::with_capacity(request.message_hashes.len());
            for bytes in &request.message_hashes {
                let hash = to_hash(bytes).ok_or(InvalidQuery::BadHash(bytes.len()))?;
                if !hashes.contains(&hash) {
                    hashes.push(hash);
                }
            }
            StoreFilter::Hashes(hashes)
        };
        let cursor = request
            .pagination_cursor
            .as_deref()
            .map(|bytes| to_hash(bytes).ok_or(InvalidQuery::BadCursor(bytes.len())))
            .transpose()?;
        let limit = match request.pagination_limit {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) => usize::try_from(n).map_or(MAX_PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE)),
        };
        Ok(StoreQuery {
            filter,
            include_data: request.include_data,
            cursor,
            direction: if request.pagination_forward {
                Direction::Forward
            } else {
                Direction::Backward
            },
            limit,
            max_bytes: MAX_RESPONSE_SIZE - RESPONSE_OVERHEAD,
        })
    }

    /// Whether the message with `hash`, relayed on `pubsub_topic`, matches the filter
    /// (the cursor and page size aside).
    pub fn matches(&self, hash: &MessageHash, pubsub_topic: &str, message: &WakuMessage) -> bool {
        match &self.filter {
            StoreFilter::Hashes(hashes) => hashes.contains(hash),
            StoreFilter::Content { topics, start, end } => {
                let on_topic = topics.as_ref().is_none_or(|t| {
                    t.pubsub_topic == pubsub_topic
                        && t.content_topics.contains(&message.content_topic)
                });
                let timestamp = message.timestamp.unwrap_or(0);
                on_topic
                    && start.is_none_or(|start| timestamp >= start)
                    && end.is_none_or(|end| timestamp < end)
            }
        }
    }
}

/// Room left in a response for everything but its messages (request id, status, cursor).
const RESPONSE_OVERHEAD: usize = 1024;

/// The bytes a message, with its hash and pubsub topic, takes in a response's `messages`.
pub(crate) fn entry_len(pubsub_topic: &str, message: &WakuMessage) -> usize {
    use prost::encoding::{encoded_len_varint, key_len};
    let hash = key_len(1) + 1 + 32;
    let topic = key_len(3) + encoded_len_varint(pubsub_topic.len() as u64) + pubsub_topic.len();
    let inner = hash + prost::encoding::message::encoded_len(2, message) + topic;
    key_len(20) + encoded_len_varint(inner as u64) + inner
}

fn to_hash(bytes: &[u8]) -> Option<MessageHash> {
    <[u8; 32]>::try_from(bytes).ok().map(MessageHash)
}

/// A message held by a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its deterministic hash on `pubsub_topic`.
    pub hash: MessageHash,
    /// The pubsub topic it was relayed on.
    pub pubsub_topic: String,
    /// The message.
    pub message: WakuMessage,
}

/// One page of a query's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorePage {
    /// The matching messages, oldest first (whatever the direction of the query).
    pub messages: Vec<StoredMessage>,
    /// Set when more messages match: the hash of the last message included in the walk
    /// (the newest of the page going forward, the oldest going backward).
    pub cursor: Option<MessageHash>,
}

/// Why a [`StoreBackend`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The query's cursor is not a message of the store (answered `400`).
    #[error("cursor not found")]
    CursorNotFound,
    /// The store failed (answered `503`).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Where a node keeps the messages it serves to Store queries; the embedding node
/// implements it (over SQLite, say), [`MemoryStore`] is a bounded in-memory one.
///
/// Messages are sorted by timestamp, then by hash. [`StoreBackend::query`] runs on tokio's
/// blocking pool, so it may block, but it must do bounded work whatever the query (a time
/// range of years included): at most `query.limit` messages, stopping before their encoded
/// size exceeds `query.max_bytes` (but with at least one message).
pub trait StoreBackend: Send + Sync + 'static {
    /// One page of the messages matching `query`, from just after `query.cursor` in
    /// `query.direction`. A cursor the store does not hold is [`BackendError::CursorNotFound`].
    fn query(&self, query: &StoreQuery) -> Result<StorePage, BackendError>;
}

/// A failed [`crate::RelayHandle::store_query`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The request is not a valid query; nothing was sent.
    #[error("invalid store query: {0}")]
    InvalidRequest(#[from] InvalidQuery),
    /// The peer answered with an error status.
    #[error("store peer answered {code}: {desc}")]
    Status {
        /// The status code.
        code: StatusCode,
        /// The peer's description of it.
        desc: String,
    },
    /// The response is not a valid answer to the request.
    #[error("malformed store response: {0}")]
    BadResponse(String),
    /// The peer is not connected and could not be dialled.
    #[error("cannot reach the store peer")]
    Unreachable,
    /// The peer does not speak Store v3.
    #[error("the peer does not serve {STORE_PROTOCOL}")]
    Unsupported,
    /// No response in time.
    #[error("the store query timed out")]
    Timeout,
    /// The connection or stream failed.
    #[error("store query failed: {0}")]
    Connection(String),
    /// The node has stopped.
    #[error("the transport has stopped")]
    Closed,
}

labelled_enum! {
    /// Why a message of a peer's Store response was dropped before the response was returned
    /// (counted in [`crate::TransportMetrics::store_dropped`]).
    pub enum StoreDropReason {
        /// Its hash is not the hash of the message it came with.
        HashMismatch => "hash_mismatch",
        /// It does not match the query (another pubsub topic, content topic or time range,
        /// or a hash that was not asked for).
        Foreign => "foreign",
        /// A hash that is not 32 bytes, a message without its pubsub topic (or the reverse), or
        /// a message that is not a valid WakuMessage.
        Malformed => "malformed",
        /// The same hash came earlier in the response (or an earlier page).
        Duplicate => "duplicate",
    }
}

labelled_enum! {
    /// How this node answered a Store query of a peer (counted in
    /// [`crate::TransportMetrics::store_answered`]).
    pub enum StoreOutcome {
        /// `200`: a page.
        Served => "served",
        /// `400`: an invalid query, or an unknown cursor.
        BadRequest => "bad_request",
        /// `429`: the peer, or all peers together, had too many queries in progress.
        TooManyRequests => "too_many_requests",
        /// `503`: the node has no store, or the backend failed.
        Unavailable => "unavailable",
    }
}

impl StoreOutcome {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            StoreOutcome::Served => StatusCode::OK,
            StoreOutcome::BadRequest => StatusCode::BAD_REQUEST,
            StoreOutcome::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            StoreOutcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pubsub: Option<&str>, topics: &[&str]) -> StoreQueryRequest {
        StoreQueryRequest {
            pubsub_topic: pubsub.map(str::to_owned),
            content_topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            ..StoreQueryRequest::default()
        }
    }

    #[test]
    fn validates_filters_like_the_spec() {
        let ok = StoreQuery::from_request(&content(Some("/waku/2/rs/1/0"), &["/a/1/b/c"]))
            .expect("valid");
        assert_eq!(ok.direction, Direction::Backward, "backward by default");
        assert_eq!(ok.limit, DEFAULT_PAGE_SIZE);
        assert!(!ok.include_data);
        assert_eq!(
            StoreQuery::from_request(&content(Some("p"), &[])),
            Err(InvalidQuery::HalfTopicFilter)
        );
        assert_eq!(
            StoreQuery::from_request(&content(None, &["c"])),
            Err(InvalidQuery::HalfTopicFilter)
        );
        let many: Vec<String> = (0..=MAX_CONTENT_TOPICS)
            .map(|i| format!("/a/1/{i}/c"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            StoreQuery::from_request(&content(Some("p"), &many)),
            Err(InvalidQuery::TooManyContentTopics(MAX_CONTENT_TOPICS + 1))
        );
        let mixed = StoreQueryRequest {
            message_hashes: vec![vec![0; 32]],
            time_start: Some(1),
            ..StoreQueryRequest::default()
        };
        assert_eq!(
            StoreQuery::from_request(&mixed),
            Err(InvalidQuery::HashesAndContentFilter)
        );
        let short = StoreQueryRequest {
            message_hashes: vec![vec![0; 31]],
            ..StoreQueryRequest::default()
        };
        assert_eq!(
            StoreQuery::from_request(&short),
            Err(InvalidQuery::BadHash(31))
        );
        let cursor = StoreQueryRequest {
            pagination_cursor: Some(vec![1; 33]),
            ..StoreQueryRequest::default()
        };
        assert_eq!(
            StoreQuery::from_request(&cursor),
            Err(InvalidQuery::BadCursor(33))
        );
    }

    #[test]
    fn caps_the_page_size_and_dedups_hashes() {
        let huge = StoreQueryRequest {
            pagination_limit: Some(u64::MAX),
            message_hashes: vec![vec![1; 32], vec![2; 32], vec![1; 32]],
            pagination_forward: true,
            ..StoreQueryRequest::default()
        };
        let q = StoreQuery::from_request(&huge).expect("valid");
        assert_eq!(q.limit, MAX_PAGE_SIZE);
        assert_eq!(q.direction, Direction::Forward);
        assert_eq!(
            q.filter,
            StoreFilter::Hashes(vec![MessageHash([1; 32]), MessageHash([2; 32])])
        );
        let zero = StoreQueryRequest {
            pagination_limit: Some(0),
            ..StoreQueryRequest::default()
        };
        assert_eq!(
            StoreQuery::from_request(&zero).map(|q| q.limit),
            Ok(DEFAULT_PAGE_SIZE)
        );
    }

    #[test]
    fn matches_topics_and_half_open_time_ranges() {
        let mut request = content(Some("/waku/2/rs/1/0"), &["/a/1/b/c"]);
        request.time_start = Some(10);
        request.time_end = Some(20);
        let q = StoreQuery::from_request(&request).expect("valid");
        let at = |t: i64, topic: &str| WakuMessage {
            payload: vec![1],
            content_topic: topic.into(),
            timestamp: Some(t),
            ..WakuMessage::default()
        };
        let h = MessageHash([0; 32]);
        assert!(q.matches(&h, "/waku/2/rs/1/0", &at(10, "/a/1/b/c")));
        assert!(q.matches(&h, "/waku/2/rs/1/0", &at(19, "/a/1/b/c")));
        assert!(!q.matches(&h, "/waku/2/rs/1/0", &at(20, "/a/1/b/c")));
        assert!(!q.matches(&h, "/waku/2/rs/1/0", &at(9, "/a/1/b/c")));
        assert!(!q.matches(&h, "/waku/2/rs/1/1", &at(15, "/a/1/b/c")));
        assert!(!q.matches(&h, "/waku/2/rs/1/0", &at(15, "/a/1/x/c")));
    }

    #[test]
    fn entry_len_is_the_encoded_size() {
        use prost::Message as _;
        let message = WakuMessage {
            payload: vec![1; 300],
            content_topic: "/a/1/b/c".into(),
            timestamp: Some(-5),
            meta: Some(vec![2; 64]),
            ..WakuMessage::default()
        };
        let response = StoreQueryResponse {
            messages: vec![WakuMessageKeyValue {
                message_hash: Some(vec![0; 32]),
                message: Some(message.clone()),
                pubsub_topic: Some("/waku/2/rs/4242/0".into()),
            }],
            ..StoreQueryResponse::default()
        };
        assert_eq!(
            entry_len("/waku/2/rs/4242/0", &message),
            response.encoded_len()
        );
    }

    #[test]
    fn status_codes() {
        assert!(StatusCode::OK.is_success());
        assert!(StatusCode(299).is_success());
        assert!(!StatusCode::BAD_RESPONSE.is_success());
        assert!(!StatusCode(0).is_success());
        for outcome in StoreOutcome::ALL {
            assert_eq!(
                outcome.status().is_success(),
                outcome == StoreOutcome::Served
            );
        }
    }
}
