//! The protobuf messages of 13/WAKU2-STORE v3 (`waku.store.v3`), field for field.

use crate::message::{MessageHash, WakuMessage};

/// A stored message as a key-value pair: the key (`message_hash`) and, when data was asked
/// for, the value (`message` and `pubsub_topic`, both set or both unset).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WakuMessageKeyValue {
    /// The deterministic message hash (32 bytes).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub message_hash: Option<Vec<u8>>,
    /// The message.
    #[prost(message, optional, tag = "2")]
    pub message: Option<WakuMessage>,
    /// The pubsub topic the message was relayed on.
    #[prost(string, optional, tag = "3")]
    pub pubsub_topic: Option<String>,
}

impl WakuMessageKeyValue {
    /// The message hash, if it is 32 bytes long (always so in a verified response).
    pub fn hash(&self) -> Option<MessageHash> {
        let bytes = self.message_hash.as_deref()?;
        <[u8; 32]>::try_from(bytes).ok().map(MessageHash)
    }
}

/// A Store query (`/vac/waku/store-query/3.0.0`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StoreQueryRequest {
    /// A unique id; [`crate::RelayHandle::store_query`] fills it in when it is empty.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// Whether the response carries the messages, or only their hashes.
    #[prost(bool, tag = "2")]
    pub include_data: bool,
    /// Content filter: the pubsub topic (set together with `content_topics`).
    #[prost(string, optional, tag = "10")]
    pub pubsub_topic: Option<String>,
    /// Content filter: the content topics (set together with `pubsub_topic`).
    #[prost(string, repeated, tag = "11")]
    pub content_topics: Vec<String>,
    /// Content filter: the earliest timestamp (Unix ns, inclusive).
    #[prost(sint64, optional, tag = "12")]
    pub time_start: Option<i64>,
    /// Content filter: the timestamp to stop before (Unix ns, exclusive).
    #[prost(sint64, optional, tag = "13")]
    pub time_end: Option<i64>,
    /// Lookup: the hashes of the messages wanted (never with a content filter).
    #[prost(bytes = "vec", repeated, tag = "20")]
    pub message_hashes: Vec<Vec<u8>>,
    /// The hash of the message to continue after (exclusive), from the previous page.
    #[prost(bytes = "vec", optional, tag = "51")]
    pub pagination_cursor: Option<Vec<u8>>,
    /// Oldest first when true; newest first (the default) when false.
    #[prost(bool, tag = "52")]
    pub pagination_forward: bool,
    /// The most messages wanted in the response.
    #[prost(uint64, optional, tag = "53")]
    pub pagination_limit: Option<u64>,
}

impl StoreQueryRequest {
    /// A forward query for the messages (with data) of `content_topics` on `pubsub_topic`,
    /// pages of up to `limit` messages.
    pub fn for_topics(
        pubsub_topic: impl Into<String>,
        content_topics: impl IntoIterator<Item = impl Into<String>>,
        limit: u64,
    ) -> StoreQueryRequest {
        StoreQueryRequest {
            include_data: true,
            pubsub_topic: Some(pubsub_topic.into()),
            content_topics: content_topics.into_iter().map(Into::into).collect(),
            pagination_forward: true,
            pagination_limit: Some(limit),
            ..StoreQueryRequest::default()
        }
    }

    /// A lookup of the messages (with data) with these hashes.
    pub fn for_hashes(hashes: impl IntoIterator<Item = MessageHash>) -> StoreQueryRequest {
        StoreQueryRequest {
            include_data: true,
            message_hashes: hashes.into_iter().map(|h| h.0.to_vec()).collect(),
            pagination_forward: true,
            ..StoreQueryRequest::default()
        }
    }
}

/// The answer to a [`StoreQueryRequest`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct StoreQueryResponse {
    /// The `request_id` of the request.
    #[prost(string, tag = "1")]
    pub request_id: String,
    /// The outcome; see [`crate::store::StatusCode`].
    #[prost(uint32, optional, tag = "10")]
    pub status_code: Option<u32>,
    /// A human-readable description of the outcome.
    #[prost(string, optional, tag = "11")]
    pub status_desc: Option<String>,
    /// The matching messages, oldest first, whatever the direction of the query.
    #[prost(message, repeated, tag = "20")]
    pub messages: Vec<WakuMessageKeyValue>,
    /// Set when more messages match: the cursor of the next page.
    #[prost(bytes = "vec", optional, tag = "51")]
    pub pagination_cursor: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn request_wire_format_matches_the_spec_field_numbers() {
        let request = StoreQueryRequest {
            request_id: "r".into(),
            include_data: true,
            pubsub_topic: Some("p".into()),
            content_topics: vec!["c".into()],
            time_start: Some(-1),
            time_end: Some(1),
            message_hashes: vec![vec![0xaa]],
            pagination_cursor: Some(vec![0xbb]),
            pagination_forward: true,
            pagination_limit: Some(5),
        };
        let expected = [
            &[0x0a, 1, b'r'][..],   // 1: request_id
            &[0x10, 1],             // 2: include_data
            &[0x52, 1, b'p'],       // 10: pubsub_topic
            &[0x5a, 1, b'c'],       // 11: content_topics
            &[0x60, 1],             // 12: time_start, zig-zag -1 = 1
            &[0x68, 2],             // 13: time_end, zig-zag 1 = 2
            &[0xa2, 0x01, 1, 0xaa], // 20: message_hashes
            &[0x9a, 0x03, 1, 0xbb], // 51: pagination_cursor
            &[0xa0, 0x03, 1],       // 52: pagination_forward
            &[0xa8, 0x03, 5],       // 53: pagination_limit
        ]
        .concat();
        assert_eq!(request.encode_to_vec(), expected);
        assert_eq!(StoreQueryRequest::decode(&expected[..]).ok(), Some(request));
    }

    #[test]
    fn response_wire_format_matches_the_spec_field_numbers() {
        let response = StoreQueryResponse {
            request_id: "r".into(),
            status_code: Some(200),
            status_desc: Some("OK".into()),
            messages: vec![WakuMessageKeyValue {
                message_hash: Some(vec![0xaa]),
                message: Some(WakuMessage {
                    payload: vec![1],
                    ..WakuMessage::default()
                }),
                pubsub_topic: Some("p".into()),
            }],
            pagination_cursor: Some(vec![0xbb]),
        };
        let expected = [
            &[0x0a, 1, b'r'][..],   // 1: request_id
            &[0x50, 0xc8, 0x01],    // 10: status_code 200
            &[0x5a, 2, b'O', b'K'], // 11: status_desc
            &[0xa2, 0x01, 11],      // 20: messages, 11 bytes:
            &[0x0a, 1, 0xaa],       //   1: message_hash
            &[0x12, 3, 0x0a, 1, 1], //   2: message { payload }
            &[0x1a, 1, b'p'],       //   3: pubsub_topic
            &[0x9a, 0x03, 1, 0xbb], // 51: pagination_cursor
        ]
        .concat();
        assert_eq!(response.encode_to_vec(), expected);
        assert_eq!(
            StoreQueryResponse::decode(&expected[..]).ok(),
            Some(response)
        );
    }

    #[test]
    fn hash_needs_32_bytes() {
        let mut kv = WakuMessageKeyValue {
            message_hash: Some(vec![7; 32]),
            ..WakuMessageKeyValue::default()
        };
        assert_eq!(kv.hash(), Some(MessageHash([7; 32])));
        kv.message_hash = Some(vec![7; 31]);
        assert_eq!(kv.hash(), None);
        kv.message_hash = None;
        assert_eq!(kv.hash(), None);
    }
}
