//! Large messages between relay nodes on 127.0.0.1: 1 MB and 3 MB payloads cross in segments
//! that an independent gossipsub peer sees to be within The Waku Network's 150 KB; a lost data
//! segment is made up for by parity; malformed, forged and never-completing segments are
//! dropped, counted and bounded while the node keeps relaying.

mod common;
mod raw;

use common::{Node, TIMEOUT, config, first_addr, metrics_reach, peers_reach};
use demls_transport::segmentation::{self, SEGMENT_META, SegmentMessage};
use demls_transport::{
    ContentTopic, DEFAULT_CLUSTER_ID, DropReason, RelayHandle, SegmentDrop, SegmentationConfig,
    TransportConfig, WakuMessage,
};
use libp2p::gossipsub;
use libp2p::swarm::SwarmEvent;
use prost::Message as _;
use raw::{RawBehaviourEvent, RawMetadata, RawNode};

/// The Waku Network's largest message (64/WAKU2-NETWORK).
const WAKU_NETWORK_LIMIT: usize = 150_000;

fn topic() -> ContentTopic {
    ContentTopic::new("demls", "1", "segments", "proto").expect("valid topic")
}

/// Bytes that look random.
fn payload(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i ^ seed).wrapping_mul(2_654_435_761).to_be_bytes()[1])
        .collect()
}

/// The sizes of the gossipsub messages `observer` receives until it has `count`.
async fn wire_sizes(observer: &mut RawNode, count: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let collect = observer.drive_until(|event| {
        if let SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(gossipsub::Event::Message {
            message,
            ..
        })) = event
        {
            sizes.push(message.data.len());
        }
        sizes.len() >= count
    });
    tokio::time::timeout(TIMEOUT, collect)
        .await
        .expect("the observer receives every segment");
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_payloads_cross_in_segments_within_150_kb() {
    let a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let mut b = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&a.handle)])).await;
    let pubsub_topic = a.handle.pubsub_topic().to_string();
    let mut observer = RawNode::dial(
        RawMetadata::Cluster(DEFAULT_CLUSTER_ID),
        &pubsub_topic,
        first_addr(&a.handle),
    );
    peers_reach(&a.handle, &[b.handle.peer_id()]).await;
    observer.wait_subscribed().await;
    for (size, seed) in [(1 << 20, 1), (3 << 20, 2)] {
        let sent = payload(size, seed);
        let published = a
            .handle
            .publish(&topic(), sent.clone(), None)
            .await
            .expect("publishes");
        assert!(published.segments > 1, "{size} bytes go in segments");
        assert!(published.largest_wire_bytes <= WAKU_NETWORK_LIMIT);
        let seen = wire_sizes(&mut observer, published.segments).await;
        assert!(
            seen.iter().all(|&s| s <= WAKU_NETWORK_LIMIT),
            "every WakuMessage on the wire is within 150 KB: {seen:?}"
        );
        let received = b.next_message().await;
        assert_eq!(received.message.payload.len(), sent.len());
        assert!(
            received.message.payload == sent,
            "the payload comes back whole"
        );
        assert_eq!(received.message, published.message);
        assert_eq!(received.hash, published.hash);
        assert_eq!(received.id, published.id);
        assert_eq!(received.pubsub_topic, pubsub_topic);
    }
    let ma = a.handle.metrics();
    assert_eq!(ma.messages_out, 2);
    // The parity segments left over after each message was rebuilt arrive too.
    metrics_reach(&b.handle, "every segment", |m| {
        m.segments_in == ma.segments_out
    })
    .await;
    let mb = b.handle.metrics();
    assert_eq!(mb.messages_in, 2);
    assert_eq!(mb.reassembly_pending_messages, 0);
    assert_eq!(mb.reassembly_pending_bytes, 0);
    assert!(
        SegmentDrop::ALL
            .iter()
            .all(|&r| mb.segments_dropped(r) == 0)
    );
}

/// Publishes `wire` (segments made by the test) one by one, as they are.
async fn publish_raw(handle: &RelayHandle, wire: &[WakuMessage]) {
    for piece in wire {
        let topic: ContentTopic = piece.content_topic.parse().expect("valid topic");
        handle
            .publish(&topic, piece.payload.clone(), piece.meta.clone())
            .await
            .expect("a segment publishes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_data_segment_is_made_up_for_by_parity() {
    let a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let mut b = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&a.handle)])).await;
    peers_reach(&a.handle, &[b.handle.peer_id()]).await;
    let original = WakuMessage {
        payload: payload(1_000_000, 3),
        content_topic: topic().to_string(),
        timestamp: Some(1),
        ..WakuMessage::default()
    };
    let mut wire = segmentation::split(&SegmentationConfig::default(), &original).expect("splits");
    let lost = wire.remove(2);
    assert!(
        !SegmentMessage::decode(&lost.payload[..])
            .expect("a segment")
            .is_parity
    );
    publish_raw(&a.handle, &wire).await;
    let received = b.next_message().await;
    assert!(received.message.payload == original.payload);
    assert_eq!(b.handle.metrics().segments_in, wire.len() as u64);
}

fn segment_message(segment: &SegmentMessage) -> WakuMessage {
    WakuMessage {
        payload: segment.encode_to_vec(),
        content_topic: topic().to_string(),
        meta: Some(SEGMENT_META.to_vec()),
        timestamp: Some(1),
        ..WakuMessage::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_segments_are_dropped_counted_and_bounded() {
    let bounds = SegmentationConfig {
        max_pending_messages: 8,
        max_pending_bytes: 200_000,
        ..SegmentationConfig::default()
    };
    let mut b = Node::start(TransportConfig {
        segmentation: bounds,
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    let pubsub_topic = b.handle.pubsub_topic().to_string();
    let mut raw = RawNode::dial(
        RawMetadata::Cluster(DEFAULT_CLUSTER_ID),
        &pubsub_topic,
        first_addr(&b.handle),
    );
    raw.wait_subscribed().await;

    // Marked as segments but not segment messages, or failing the RFC's validation.
    let mut garbage = segment_message(&SegmentMessage::default());
    garbage.payload = vec![0xff; 40];
    raw.publish(garbage.encode_to_vec());
    let too_many = SegmentMessage {
        entire_message_hash: vec![1; 32],
        data_segment_count: 250,
        parity_segment_count: 10,
        payload: vec![1; 10],
        ..SegmentMessage::default()
    };
    raw.publish(segment_message(&too_many).encode_to_vec());

    // A flood of first segments of messages that never complete.
    for n in 0..200u32 {
        let mut hash = vec![0; 32];
        hash[..4].copy_from_slice(&n.to_be_bytes());
        let segment = SegmentMessage {
            entire_message_hash: hash,
            data_segment_count: 4,
            payload: payload(10_000, n),
            ..SegmentMessage::default()
        };
        raw.publish(segment_message(&segment).encode_to_vec());
    }

    // A complete set whose hash is not that of its payload (forged).
    let forged_hash = vec![9; 32];
    for index in 0..2 {
        let segment = SegmentMessage {
            entire_message_hash: forged_hash.clone(),
            data_segment_index: index,
            data_segment_count: 2,
            payload: payload(1000, index),
            ..SegmentMessage::default()
        };
        raw.publish(segment_message(&segment).encode_to_vec());
    }

    // Then a good message: the node still delivers.
    let good = WakuMessage {
        payload: b"still here".to_vec(),
        content_topic: topic().to_string(),
        timestamp: Some(2),
        ..WakuMessage::default()
    };
    raw.publish(good.encode_to_vec());
    let received = raw.run_while(b.next_message()).await;
    assert_eq!(received.message, good);

    let handle = b.handle.clone();
    raw.run_while(metrics_reach(&handle, "the drops", |m| {
        m.dropped(DropReason::MalformedSegment) == 2
            && m.segments_dropped(SegmentDrop::Corrupt) == 1
            && m.segments_dropped(SegmentDrop::Evicted) >= 200 - 8
    }))
    .await;
    let m = handle.metrics();
    assert!(m.reassembly_pending_messages <= 8, "{m:?}");
    assert!(m.reassembly_pending_bytes <= 200_000, "{m:?}");
    assert_eq!(m.messages_in, 1, "only the good message is delivered");
}
