//! Relay nodes on 127.0.0.1: messages both ways across three nodes, malformed traffic,
//! cluster checks, redialling, and publish/start errors.

mod common;
mod raw;

use std::time::Duration;

use common::{Node, TIMEOUT, config, metrics_reach, no_exchange, peers_reach};
use demls_transport::segmentation::{MIN_WIRE_LIMIT, SegmentError};
use demls_transport::{
    ContentTopic, DEFAULT_CLUSTER_ID, DEFAULT_MAX_MESSAGE_SIZE, DropReason, MIN_MAX_MESSAGE_SIZE,
    MessageId, Multiaddr, PublishError, ReconnectReason, SegmentationConfig, TransportConfig,
    TransportError, TransportEvent, WakuMessage, WakuRelay,
};
use prost::Message as _;
use raw::{RawMetadata, RawNode};

/// The node's first listen address, checked to end with `/p2p/<its peer id>`.
fn addr(node: &Node) -> Multiaddr {
    let addr = node
        .handle
        .listen_addrs()
        .into_iter()
        .next()
        .expect("node listens");
    assert_eq!(
        addr.iter().last(),
        Some(libp2p::multiaddr::Protocol::P2p(node.handle.peer_id()))
    );
    addr
}

fn topic(name: &str) -> ContentTopic {
    ContentTopic::new("demls", "1", name, "proto").expect("valid topic")
}

/// A WakuMessage, encoded, as a raw peer sends it.
fn waku(payload: &[u8], content_topic: &str, meta: Option<Vec<u8>>) -> Vec<u8> {
    WakuMessage {
        payload: payload.to_vec(),
        content_topic: content_topic.into(),
        meta,
        timestamp: Some(1),
        ..WakuMessage::default()
    }
    .encode_to_vec()
}

/// A raw peer of `node`'s cluster, connected to it and subscribed to its pubsub topic.
async fn raw_peer_of(node: &Node) -> RawNode {
    let pubsub_topic = node.handle.pubsub_topic().to_string();
    let mut raw = RawNode::dial(
        RawMetadata::Cluster(DEFAULT_CLUSTER_ID),
        &pubsub_topic,
        addr(node),
    );
    raw.wait_subscribed().await;
    let raw_peer = raw.peer_id();
    raw.run_while(peers_reach(&node.handle, &[raw_peer])).await;
    raw
}

/// `from` publishes `payload` on the `app` topic and `to` receives it.
async fn publish_reaches(from: &Node, to: &mut Node, payload: &[u8]) {
    let sent = from
        .handle
        .publish(&topic("app"), payload.to_vec(), None)
        .await
        .expect("publishes");
    assert_eq!(to.next_message().await.id, sent.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_relay_messages_both_ways() {
    // Without peer exchange, so that a and c stay apart and messages go through b.
    let mut a = Node::start(no_exchange(vec![])).await;
    let mut b = Node::start(no_exchange(vec![addr(&a)])).await;
    let mut c = Node::start(no_exchange(vec![addr(&b)])).await;
    let (pa, pb, pc) = (a.handle.peer_id(), b.handle.peer_id(), c.handle.peer_id());
    peers_reach(&a.handle, &[pb]).await;
    peers_reach(&b.handle, &[pa, pc]).await;
    peers_reach(&c.handle, &[pb]).await;
    assert!(
        !a.handle.connected_peers().contains(&pc),
        "a and c are not directly connected"
    );

    // a -> b -> c
    let app = topic("app");
    let sent = a
        .handle
        .publish(&app, b"from a".to_vec(), Some(b"m".to_vec()))
        .await
        .expect("a publishes");
    assert_eq!(sent.id, MessageId::of(&sent.message.encode_to_vec()));
    for node in [&mut b, &mut c] {
        let got = node.next_message().await;
        assert_eq!(got.pubsub_topic, "/waku/2/rs/4242/0");
        assert_eq!(got.message, sent.message);
        assert_eq!(got.message.content_topic, "/demls/1/app/proto");
        assert_eq!(got.message.meta.as_deref(), Some(&b"m"[..]));
        assert_eq!((got.id, got.hash), (sent.id, sent.hash));
    }

    // c -> b -> a, on another content topic
    let welcome = topic("welcome");
    let sent = c
        .handle
        .publish(&welcome, b"from c".to_vec(), None)
        .await
        .expect("c publishes");
    for node in [&mut b, &mut a] {
        let got = node.next_message().await;
        assert_eq!(got.message.payload, b"from c");
        assert_eq!(got.message.content_topic, welcome.as_str());
        assert_eq!((got.id, got.hash), (sent.id, sent.hash));
    }

    // Own messages are not delivered back; each message arrives once.
    let (ma, mb, mc) = (a.handle.metrics(), b.handle.metrics(), c.handle.metrics());
    assert_eq!((ma.messages_in, ma.messages_out), (1, 1));
    assert_eq!((mb.messages_in, mb.messages_out), (2, 0));
    assert_eq!((mc.messages_in, mc.messages_out), (1, 1));
    assert_eq!(mb.peers, 2);
    assert_eq!(mb.dropped_total() + mb.peers_rejected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traffic_is_dropped_counted_and_not_forwarded() {
    let mut b = Node::start(TransportConfig {
        max_message_size: MIN_MAX_MESSAGE_SIZE,
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    let mut c = Node::start(config(DEFAULT_CLUSTER_ID, vec![addr(&b)])).await;
    peers_reach(&b.handle, &[c.handle.peer_id()]).await;
    let mut raw = raw_peer_of(&b).await;
    let app = "/demls/1/app/proto";
    raw.publish(b"not a waku message".to_vec());
    raw.publish(vec![0xff; 100]);
    raw.publish(vec![0x0a, 0x05, 0x01]); // truncated length-delimited field
    raw.publish(waku(b"", app, None));
    raw.publish(waku(b"x", "", None));
    raw.publish(waku(b"x", app, Some(vec![0; 65])));
    raw.publish(waku(&vec![7; MIN_MAX_MESSAGE_SIZE], app, None));
    raw.publish(waku(b"valid after garbage", app, None));

    let got = raw.run_while(b.next_message()).await;
    assert_eq!(got.message.payload, b"valid after garbage");
    raw.run_while(metrics_reach(&b.handle, "7 drops", |m| {
        m.dropped_total() == 7
    }))
    .await;
    let m = b.handle.metrics();
    assert_eq!(m.dropped(DropReason::Undecodable), 3);
    assert_eq!(m.dropped(DropReason::EmptyPayload), 1);
    assert_eq!(m.dropped(DropReason::EmptyContentTopic), 1);
    assert_eq!(m.dropped(DropReason::MetaTooLong), 1);
    assert_eq!(m.dropped(DropReason::Oversize), 1);
    assert_eq!(m.messages_in, 1);
    // Four count against the raw peer's score (undecodable, no content topic): not enough to
    // ban it.
    assert_eq!(m.peers_banned, 0);

    // The valid message was forwarded to c; none of the invalid ones were.
    let forwarded = raw.run_while(c.next_message()).await;
    assert_eq!(forwarded.message.payload, b"valid after garbage");
    assert_eq!(c.handle.metrics().dropped_total(), 0);

    // b keeps serving.
    let sent = raw
        .run_while(
            b.handle
                .publish(&topic("app"), b"still here".to_vec(), None),
        )
        .await
        .expect("b publishes");
    let got = raw.run_while(c.next_message()).await;
    assert_eq!(got.id, sent.id);
    assert_eq!(c.handle.metrics().messages_in, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_sending_invalid_messages_is_banned() {
    let mut b = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let mut c = Node::start(config(DEFAULT_CLUSTER_ID, vec![addr(&b)])).await;
    let (pb, pc) = (b.handle.peer_id(), c.handle.peer_id());
    peers_reach(&b.handle, &[pc]).await;
    let mut raw = raw_peer_of(&b).await;
    let raw_peer = raw.peer_id();

    // Ignored refusals (a long `meta`, an empty payload, a malformed segment) cost nothing.
    let app = "/demls/1/app/proto";
    for i in 0..20u8 {
        raw.publish(waku(&[i], app, Some(vec![i; 65])));
        raw.publish(waku(b"", app, Some(vec![i])));
        raw.publish(waku(
            &[i],
            app,
            Some(demls_transport::segmentation::SEGMENT_META.to_vec()),
        ));
    }
    raw.run_while(metrics_reach(&b.handle, "60 ignored drops", |m| {
        m.dropped_total() == 60
    }))
    .await;
    assert_eq!(b.handle.metrics().peers_banned, 0);
    assert!(b.handle.connected_peers().contains(&raw_peer));

    // Bytes that are no WakuMessage at all: the tenth takes its score below the graylist
    // threshold, and b disconnects it.
    for i in 0..12 {
        raw.publish(format!("not a waku message {i}").into_bytes());
    }
    raw.run_while(metrics_reach(&b.handle, "raw peer banned", |m| {
        m.peers_banned == 1 && m.dropped(DropReason::Undecodable) >= 10
    }))
    .await;
    raw.run_while(metrics_reach(&b.handle, "raw peer gone", |m| m.peers == 1))
        .await;
    assert_eq!(b.handle.connected_peers(), vec![pc]);

    // It is kept out: a new connection is closed at once and never reported.
    raw.redial(addr(&b));
    raw.wait_connection_refused().await;
    assert_eq!(b.handle.connected_peers(), vec![pc]);
    assert_eq!(b.handle.metrics().peers_banned, 1);

    // b keeps serving its honest peer, both ways, and nobody blames c.
    publish_reaches(&b, &mut c, b"from b").await;
    publish_reaches(&c, &mut b, b"from c").await;
    let mc = c.handle.metrics();
    assert_eq!((mc.peers_banned, mc.dropped_total()), (0, 0));
    assert_eq!(c.handle.connected_peers(), vec![pb]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_stream_died_is_reconnected() {
    // a accepts and sends messages of 4 MiB without segments; b reads gossipsub frames of at
    // most 2 MiB, so a 3 MiB message from a fails b's inbound gossipsub stream from a.
    // Gossipsub never reopens it by itself: b stops hearing a (even its liveness probes) and
    // must reconnect it.
    let probe_interval = Duration::from_millis(200);
    let mut a = Node::start(TransportConfig {
        max_message_size: 4 * DEFAULT_MAX_MESSAGE_SIZE,
        segmentation: SegmentationConfig {
            wire_limit: 4 * DEFAULT_MAX_MESSAGE_SIZE,
            ..SegmentationConfig::default()
        },
        probe_interval,
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    let mut b = Node::start(TransportConfig {
        probe_interval,
        ..config(DEFAULT_CLUSTER_ID, vec![addr(&a)])
    })
    .await;
    let (pa, pb) = (a.handle.peer_id(), b.handle.peer_id());
    b.connected_to(pa).await;
    a.connected_to(pb).await;
    publish_reaches(&a, &mut b, b"before").await;
    let app = topic("app");

    a.handle
        .publish(&app, vec![7; 3 * DEFAULT_MAX_MESSAGE_SIZE], None)
        .await
        .expect("a publishes a 3 MiB message");
    metrics_reach(&b.handle, "b reconnects the silent a", |m| {
        m.reconnects(ReconnectReason::Silent) >= 1
    })
    .await;
    // Once reconnected, b hears a again (while it reconnects, a may have no peer at all).
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Ok(sent) = a.handle.publish(&app, b"after".to_vec(), None).await {
            let heard = tokio::time::timeout(
                Duration::from_secs(1),
                b.next_matching(|e| match e {
                    TransportEvent::Message { id, .. } if *id == sent.id => Some(()),
                    _ => None,
                }),
            )
            .await;
            if heard.is_ok() {
                break;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never heard a again: {:?}",
            b.handle.metrics()
        );
    }
    let m = b.handle.metrics();
    assert_eq!(m.reconnects(ReconnectReason::Stalled), 0);
    assert_eq!(
        m.dropped_total(),
        0,
        "the 3 MiB frame never reached the validator"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_cluster_is_disconnected() {
    let mut a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let b = Node::start(config(DEFAULT_CLUSTER_ID + 1, vec![addr(&a)])).await;
    // Whichever side reads the other's metadata first disconnects; the other may only see
    // the connection close.
    let rejected = || a.handle.metrics().peers_rejected + b.handle.metrics().peers_rejected;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while rejected() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no side rejected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        b.handle.publish(&topic("app"), b"x".to_vec(), None).await,
        Err(PublishError::NoPeers)
    );
    // Across a redial interval, neither side ever reports the other, and a node of the right
    // cluster still gets in.
    tokio::time::sleep(demls_transport::REDIAL_INTERVAL + Duration::from_secs(1)).await;
    assert!(a.handle.connected_peers().is_empty());
    assert!(b.handle.connected_peers().is_empty());
    let c = Node::start(config(DEFAULT_CLUSTER_ID, vec![addr(&a)])).await;
    let first = a
        .next_matching(|e| match e {
            TransportEvent::PeerConnected(p) => Some(*p),
            _ => None,
        })
        .await;
    assert_eq!(first, c.handle.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_metadata_or_cluster_id_are_disconnected() {
    let b = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let pubsub_topic = b.handle.pubsub_topic().to_string();
    for (i, metadata) in [RawMetadata::Unsupported, RawMetadata::Empty]
        .into_iter()
        .enumerate()
    {
        let mut raw = RawNode::dial(metadata, &pubsub_topic, addr(&b));
        let rejected = i as u64 + 1;
        raw.run_while(metrics_reach(&b.handle, "raw peer rejected", |m| {
            m.peers_rejected == rejected
        }))
        .await;
        assert!(b.handle.connected_peers().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_peer_is_redialled_after_restart() {
    let key = [7u8; 32];
    let a = Node::start(TransportConfig {
        node_key: Some(key),
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    let a_addr = addr(&a);
    let pa = a.handle.peer_id();
    let mut b = Node::start(config(DEFAULT_CLUSTER_ID, vec![a_addr.clone()])).await;
    b.connected_to(pa).await;

    a.handle.shutdown().await;
    assert!(a.handle.listen_addrs().is_empty());
    assert!(matches!(
        a.handle.dial(a_addr.clone()).await,
        Err(TransportError::Closed)
    ));
    b.next_matching(|e| (*e == TransportEvent::PeerDisconnected(pa)).then_some(()))
        .await;

    let mut listen = a_addr.clone();
    listen.pop(); // drop /p2p/<id>
    let mut a2 = Node::start(TransportConfig {
        node_key: Some(key),
        listen: vec![listen],
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    assert_eq!(a2.handle.peer_id(), pa, "same key, same peer id");
    b.connected_to(pa).await;
    peers_reach(&a2.handle, &[b.handle.peer_id()]).await;
    let sent = b
        .handle
        .publish(&topic("app"), b"welcome back".to_vec(), None)
        .await
        .expect("publish");
    assert_eq!(a2.next_message().await.id, sent.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_connects_at_runtime() {
    let a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let mut b = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    b.handle.dial(addr(&a)).await.expect("dial starts");
    b.connected_to(a.handle.peer_id()).await;
    let bad: Multiaddr = "/dns4/localhost/tcp/1".parse().expect("multiaddr");
    assert!(matches!(
        b.handle.dial(bad).await,
        Err(TransportError::Dial { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_errors() {
    // Small segments: a megabyte takes more of them than a message may have.
    let a = Node::start(TransportConfig {
        segmentation: SegmentationConfig {
            wire_limit: MIN_WIRE_LIMIT,
            ..SegmentationConfig::default()
        },
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    let app = topic("app");
    let h = &a.handle;
    assert_eq!(
        h.publish(&app, b"x".to_vec(), None).await,
        Err(PublishError::NoPeers)
    );
    assert_eq!(
        h.publish(&app, Vec::new(), None).await,
        Err(PublishError::EmptyPayload)
    );
    assert_eq!(
        h.publish(&app, b"x".to_vec(), Some(vec![0; 65])).await,
        Err(PublishError::MetaTooLong(65))
    );
    assert!(matches!(
        h.publish(&app, vec![0; 1024 * 1024], None).await,
        Err(PublishError::TooLarge { size: 1048576, max }) if max < 1048576
    ));
    // Segments carry their marker in meta: a message sent in segments cannot have its own.
    assert_eq!(
        h.publish(&app, vec![0; 10_000], Some(vec![1])).await,
        Err(PublishError::Segmentation(SegmentError::MetaOnSegmented))
    );
    assert_eq!(h.metrics().messages_out, 0);
    h.shutdown().await;
    assert_eq!(
        h.publish(&app, b"x".to_vec(), None).await,
        Err(PublishError::Closed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors() {
    let a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let mut taken = addr(&a);
    taken.pop();
    let err = WakuRelay::start(TransportConfig {
        listen: vec![taken],
        ..TransportConfig::default()
    })
    .await
    .err();
    assert!(
        matches!(err, Some(TransportError::Listen { .. })),
        "{err:?}"
    );

    let err = WakuRelay::start(TransportConfig {
        peers: vec!["/dns4/example/tcp/1".parse().expect("multiaddr")],
        ..TransportConfig::default()
    })
    .await
    .err();
    assert!(matches!(err, Some(TransportError::Dial { .. })), "{err:?}");

    let err = WakuRelay::start(TransportConfig {
        max_message_size: 1000,
        ..TransportConfig::default()
    })
    .await
    .err();
    assert!(matches!(err, Some(TransportError::Config(_))), "{err:?}");
}
