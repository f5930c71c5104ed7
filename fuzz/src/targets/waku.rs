//! Waku: the relay validator's decoder, topic parsing, and the metadata protocol's frames.

use demls_transport::{
    ContentTopic, DEFAULT_MAX_MESSAGE_SIZE, MessageId, PubsubTopic, WakuMessage,
};
use prost::Message;

use crate::node_topics;

/// `WakuMessage::decode_relay` at several size limits, then everything the node does with
/// an accepted message's topic; arbitrary text as content and pubsub topics.
pub fn message(data: &[u8]) {
    let _ = MessageId::of(data);
    for max in [DEFAULT_MAX_MESSAGE_SIZE, data.len().saturating_sub(1), 64] {
        let Ok(message) = WakuMessage::decode_relay(data, max) else {
            continue;
        };
        assert!(data.len() <= max, "a message over the limit was accepted");
        assert!(!message.payload.is_empty() && !message.content_topic.is_empty());
        assert!(
            message
                .meta
                .as_ref()
                .is_none_or(|m| m.len() <= demls_transport::MAX_META_LEN)
        );
        // What was accepted is accepted again after re-encoding, unchanged.
        let again = WakuMessage::decode_relay(&message.encode_to_vec(), usize::MAX)
            .expect("a re-encoded valid message is valid");
        assert_eq!(again, message);
        let _ = message.hash("/waku/2/rs/0/0");
        topic(&message.content_topic);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        topic(text);
        if let Ok(pubsub) = text.parse::<PubsubTopic>() {
            assert_eq!(pubsub.to_string().parse::<PubsubTopic>().ok(), Some(pubsub));
        }
    }
}

fn topic(text: &str) {
    if let Ok(content) = text.parse::<ContentTopic>() {
        assert_eq!(content.as_str(), text);
        let _ = (
            content.application(),
            content.version(),
            content.name(),
            content.encoding(),
        );
        for shards in [1u16, 8, 1024] {
            // A topic of a later generation has no shard: a typed error, never a panic.
            if let Ok(shard) = content.autoshard(shards.try_into().expect("non-zero")) {
                assert!(shard < shards);
            }
        }
    }
    if let Some(topic) = node_topics::engine_topic(text) {
        let back = node_topics::content_topic(&topic).expect("an engine topic has a content topic");
        assert_eq!(
            back.as_str(),
            text,
            "content topic → engine topic → content topic"
        );
    }
}

/// The metadata protocol's frame reader; an accepted frame's contents survive a round trip
/// when they fit a frame.
pub fn metadata(data: &[u8]) {
    if let Some(Ok((cluster, shards))) = crate::read_metadata(data) {
        let frame = crate::write_metadata(cluster, shards.clone());
        if frame.len() <= 1024 {
            match crate::read_metadata(&frame) {
                Some(Ok(read)) => assert_eq!(read, (cluster, shards)),
                other => panic!("own frame not read back: {other:?}"),
            }
        }
    }
}
