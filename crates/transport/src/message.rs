//! The WakuMessage (14/WAKU2-MESSAGE), its gossipsub message id and its deterministic hash.

use std::fmt;

use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::labels::labelled_enum;

/// The largest `meta` attribute a WakuMessage may carry (14/WAKU2-MESSAGE).
pub const MAX_META_LEN: usize = 64;

/// A Waku message, field for field the proto3 `WakuMessage` of 14/WAKU2-MESSAGE
/// (see `proto/waku_message.proto` in this crate).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct WakuMessage {
    /// The application payload; demls puts its (already encrypted) protocol messages here.
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
    /// The content topic, `/{application}/{version}/{topic-name}/{encoding}`.
    #[prost(string, tag = "2")]
    pub content_topic: String,
    /// Payload encryption scheme; absent means version 0 (no encryption at the Waku layer).
    #[prost(uint32, optional, tag = "3")]
    pub version: Option<u32>,
    /// Sender's clock in Unix nanoseconds; never trust it for ordering.
    #[prost(sint64, optional, tag = "10")]
    pub timestamp: Option<i64>,
    /// Application metadata of at most [`MAX_META_LEN`] bytes.
    #[prost(bytes = "vec", optional, tag = "11")]
    pub meta: Option<Vec<u8>>,
    /// An RLN proof (17/WAKU2-RLN-RELAY); unused in private clusters.
    #[prost(bytes = "vec", optional, tag = "21")]
    pub rate_limit_proof: Option<Vec<u8>>,
    /// Whether stores should skip this message.
    #[prost(bool, optional, tag = "31")]
    pub ephemeral: Option<bool>,
}

labelled_enum! {
    /// Why the relay validator refused a gossipsub message. Refused messages are neither
    /// delivered nor forwarded, and are counted per reason in [`crate::TransportMetrics`].
    pub enum DropReason {
        /// The encoded message is larger than the configured maximum message size.
        Oversize => "oversize",
        /// The bytes are not a protobuf `WakuMessage`.
        Undecodable => "undecodable",
        /// The `payload` is empty.
        EmptyPayload => "empty_payload",
        /// The `content_topic` is empty.
        EmptyContentTopic => "empty_content_topic",
        /// The `meta` attribute is longer than [`MAX_META_LEN`].
        MetaTooLong => "meta_too_long",
        /// It is marked as a segment ([`crate::segmentation::SEGMENT_META`]) but its payload is
        /// not a valid segment message.
        MalformedSegment => "malformed_segment",
    }
}

impl WakuMessage {
    /// Decodes and validates the data of a relay (gossipsub) message the way the relay
    /// validator does: at most `max_size` bytes, a protobuf `WakuMessage`, non-empty payload
    /// and content topic, `meta` of at most [`MAX_META_LEN`] bytes. Never panics.
    pub fn decode_relay(data: &[u8], max_size: usize) -> Result<WakuMessage, DropReason> {
        if data.len() > max_size {
            return Err(DropReason::Oversize);
        }
        let message = WakuMessage::decode(data).map_err(|_| DropReason::Undecodable)?;
        message.check()?;
        Ok(message)
    }

    /// The checks of [`WakuMessage::decode_relay`] that do not depend on the encoding.
    pub(crate) fn check(&self) -> Result<(), DropReason> {
        if self.payload.is_empty() {
            return Err(DropReason::EmptyPayload);
        }
        if self.content_topic.is_empty() {
            return Err(DropReason::EmptyContentTopic);
        }
        if self.meta.as_ref().is_some_and(|m| m.len() > MAX_META_LEN) {
            return Err(DropReason::MetaTooLong);
        }
        Ok(())
    }

    /// The deterministic message hash of 14/WAKU2-MESSAGE on `pubsub_topic`:
    /// `sha256(pubsub_topic || payload || content_topic || meta || timestamp)`, the timestamp
    /// as 8 big-endian bytes, appended even when absent (as 0), as nwaku does. (js-waku leaves
    /// the timestamp out when it is absent or 0; messages published here always carry one.)
    pub fn hash(&self, pubsub_topic: &str) -> MessageHash {
        let mut hasher = Sha256::new();
        hasher.update(pubsub_topic.as_bytes());
        hasher.update(&self.payload);
        hasher.update(self.content_topic.as_bytes());
        if let Some(meta) = &self.meta {
            hasher.update(meta);
        }
        hasher.update(self.timestamp.unwrap_or(0).to_be_bytes());
        MessageHash(hasher.finalize().into())
    }
}

/// The current time in Unix nanoseconds (saturating; 0 before 1970).
pub(crate) fn unix_nanos() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// The gossipsub message id of Waku Relay: `sha256` of the encoded WakuMessage
/// (the gossipsub `data`), 32 raw bytes. It identifies one encoding of a message on the
/// wire and is what gossipsub deduplicates on; it is not the [`MessageHash`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 32]);

impl MessageId {
    /// The id of the gossipsub message whose data is `data`.
    pub fn of(data: &[u8]) -> MessageId {
        MessageId(Sha256::digest(data).into())
    }
}

/// The deterministic message hash of 14/WAKU2-MESSAGE (store keys, deduplication across
/// protocols). See [`WakuMessage::hash`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageHash(pub [u8; 32]);

macro_rules! hex_display {
    ($name:ident) => {
        impl fmt::Display for $name {
            /// Lower-case hex, no `0x` prefix.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }
    };
}

hex_display!(MessageId);
hex_display!(MessageHash);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PUBSUB_TOPIC: &str = "/waku/2/default-waku/proto";
    const CONTENT_TOPIC: &str = "/waku/2/default-content/proto";
    const TIMESTAMP: i64 = 0x175789bfa23f8400;

    fn vector(payload: &[u8], meta: Option<Vec<u8>>) -> WakuMessage {
        WakuMessage {
            payload: payload.to_vec(),
            content_topic: CONTENT_TOPIC.into(),
            meta,
            timestamp: Some(TIMESTAMP),
            ..WakuMessage::default()
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is hex")
    }

    const PAYLOAD: &str = "010203045445535405060708";

    #[test]
    fn rfc14_vector_meta_12_bytes() {
        let m = vector(&unhex(PAYLOAD), Some(unhex("73757065722d736563726574")));
        assert_eq!(
            m.hash(PUBSUB_TOPIC).to_string(),
            "64cce733fed134e83da02b02c6f689814872b1a0ac97ea56b76095c3c72bfe05"
        );
    }

    #[test]
    fn rfc14_vector_meta_64_bytes() {
        let m = vector(&unhex(PAYLOAD), Some((0u8..64).collect()));
        assert_eq!(
            m.hash(PUBSUB_TOPIC).to_string(),
            "7158b6498753313368b9af8f6e0a0a05104f68f972981da42a43bc53fb0c1b27"
        );
    }

    #[test]
    fn rfc14_vector_meta_absent() {
        let m = vector(&unhex(PAYLOAD), None);
        assert_eq!(
            m.hash(PUBSUB_TOPIC).to_string(),
            "a2554498b31f5bcdfcbf7fa58ad1c2d45f0254f3f8110a85588ec3cf10720fd8"
        );
    }

    #[test]
    fn rfc14_vector_empty_payload() {
        let m = vector(&[], Some(unhex("73757065722d736563726574")));
        assert_eq!(
            m.hash(PUBSUB_TOPIC).to_string(),
            "483ea950cb63f9b9d6926b262bb36194d3f40a0463ce8446228350bd44e96de4"
        );
    }

    #[test]
    fn absent_timestamp_hashes_as_zero() {
        let mut m = vector(b"x", None);
        m.timestamp = None;
        let mut zero = m.clone();
        zero.timestamp = Some(0);
        assert_eq!(m.hash(PUBSUB_TOPIC), zero.hash(PUBSUB_TOPIC));
    }

    #[test]
    fn wire_format_matches_proto_field_numbers() {
        let m = WakuMessage {
            payload: vec![0xaa],
            content_topic: "/a/1/b/c".into(),
            version: Some(0),
            timestamp: Some(-1),
            meta: Some(vec![0xbb]),
            rate_limit_proof: Some(vec![0xcc]),
            ephemeral: Some(true),
        };
        let expected = [
            &[0x0a, 1, 0xaa][..],   // 1: payload
            &[0x12, 8],             // 2: content_topic
            b"/a/1/b/c",            //
            &[0x18, 0],             // 3: version (explicitly present)
            &[0x50, 1],             // 10: timestamp, zig-zag -1 = 1
            &[0x5a, 1, 0xbb],       // 11: meta
            &[0xaa, 0x01, 1, 0xcc], // 21: rate_limit_proof
            &[0xf8, 0x01, 1],       // 31: ephemeral
        ]
        .concat();
        assert_eq!(m.encode_to_vec(), expected);
        assert_eq!(WakuMessage::decode(&expected[..]).ok(), Some(m));
    }

    #[test]
    fn message_id_is_sha256_of_data() {
        assert_eq!(
            MessageId::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn relay_validation_reasons() {
        let good = vector(b"hi", None);
        let data = good.encode_to_vec();
        assert_eq!(WakuMessage::decode_relay(&data, 1024), Ok(good.clone()));
        assert_eq!(
            WakuMessage::decode_relay(&data, data.len() - 1),
            Err(DropReason::Oversize)
        );
        assert_eq!(
            WakuMessage::decode_relay(b"\xff\xff\xff", 1024),
            Err(DropReason::Undecodable)
        );
        let empty = vector(b"", None).encode_to_vec();
        assert_eq!(
            WakuMessage::decode_relay(&empty, 1024),
            Err(DropReason::EmptyPayload)
        );
        let mut no_topic = good.clone();
        no_topic.content_topic.clear();
        assert_eq!(
            WakuMessage::decode_relay(&no_topic.encode_to_vec(), 1024),
            Err(DropReason::EmptyContentTopic)
        );
        let long_meta = vector(b"hi", Some(vec![0; MAX_META_LEN + 1]));
        assert_eq!(
            WakuMessage::decode_relay(&long_meta.encode_to_vec(), 1024),
            Err(DropReason::MetaTooLong)
        );
        // Invalid UTF-8 in the content topic is a decoding error, not a panic.
        assert_eq!(
            WakuMessage::decode_relay(&[0x0a, 1, 1, 0x12, 1, 0xff], 1024),
            Err(DropReason::Undecodable)
        );
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn decode_relay_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = WakuMessage::decode_relay(&data, 256);
        }

        #[test]
        fn decode_relay_roundtrips_valid_messages(
            payload in proptest::collection::vec(any::<u8>(), 1..200),
            topic in "/[a-z]{1,8}/[0-9]{1,2}/[a-z]{1,8}/proto",
            timestamp in any::<Option<i64>>(),
            meta in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=MAX_META_LEN)),
        ) {
            let m = WakuMessage { payload, content_topic: topic, timestamp, meta, ..WakuMessage::default() };
            let data = m.encode_to_vec();
            prop_assert_eq!(WakuMessage::decode_relay(&data, usize::MAX), Ok(m));
        }

        #[test]
        fn decode_relay_survives_mutations(
            seed in proptest::collection::vec(any::<u8>(), 1..64),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let m = WakuMessage {
                payload: seed,
                content_topic: "/demls/1/x/proto".into(),
                timestamp: Some(7),
                meta: Some(vec![1, 2, 3]),
                ..WakuMessage::default()
            };
            let mut data = m.encode_to_vec();
            for (at, byte) in flips {
                let i = at.index(data.len());
                data[i] = byte;
            }
            let _ = WakuMessage::decode_relay(&data, usize::MAX);
        }
    }
}
