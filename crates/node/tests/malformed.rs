//! Malformed traffic on the wire is dropped, counted in `/metrics`, and the node keeps serving.

mod common;
#[path = "common/raw_peer.rs"]
mod raw_peer;

use std::time::Duration;

use common::*;
use demls_engine::wire::{Envelope, envelope};
use demls_transport::{
    ContentTopic, SegmentationConfig, TransportConfig, TransportEvent, WakuRelay,
};
use prost::Message as _;

fn topic(name: &str) -> ContentTopic {
    name.parse().unwrap()
}

fn envelope(group: &str, version: u32, body: envelope::Body) -> Vec<u8> {
    Envelope {
        version,
        group_id: group.into(),
        body: Some(body),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traffic_is_dropped_counted_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&tmp.path().join("n"), "/ip4/127.0.0.1/tcp/0", &[]);
    // The group's identifier on the wire (random for an invite-only group).
    let lab = node.cli_json(&["create", "lab"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let envelope = |version, body| envelope(&lab, version, body);

    // A peer that sends whatever it is told, with a larger size limit than the node's and
    // no segmentation: its oversize message goes out whole.
    let (relay, mut events) = WakuRelay::start(TransportConfig {
        peers: vec![node.listen.parse().unwrap()],
        max_message_size: 4 * 1024 * 1024,
        segmentation: SegmentationConfig {
            wire_limit: 4 * 1024 * 1024,
            ..SegmentationConfig::default()
        },
        ..TransportConfig::default()
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !matches!(events.recv().await, Some(TransportEvent::PeerConnected(_))) {}
    })
    .await
    .expect("the node accepts the peer");

    let app = topic(&format!("/demls/1/{lab}-app/proto"));
    let welcome = topic(&format!("/demls/1/{lab}-welcome/proto"));
    let sends: Vec<(ContentTopic, Vec<u8>)> = vec![
        // Not a demls envelope at all.
        (app.clone(), b"definitely not protobuf".to_vec()),
        (welcome.clone(), vec![0xff; 64]),
        // A well-formed envelope of a wire version nobody speaks.
        (
            app.clone(),
            envelope(9, envelope::Body::MlsMessage(vec![1])),
        ),
        // A valid envelope whose MLS message is garbage (refused as malformed MLS).
        (
            app.clone(),
            envelope(1, envelope::Body::MlsMessage(vec![7; 300])),
        ),
        // Another application's topic, and a group this node is not in.
        (topic("/other/1/chat/proto"), b"hello".to_vec()),
        (topic("/demls/1/elsewhere-app/proto"), b"hello".to_vec()),
        // Larger than the node's 1 MiB limit.
        (app.clone(), vec![0; 1_500_000]),
    ];
    for (content_topic, payload) in sends {
        relay.publish(&content_topic, payload, None).await.unwrap();
    }

    let counted = [
        "demls_messages_dropped_total{layer=\"relay\",reason=\"oversize\"}",
        "demls_messages_dropped_total{layer=\"engine\",reason=\"malformed\"}",
        "demls_messages_dropped_total{layer=\"engine\",reason=\"unsupported_version\"}",
        "demls_messages_ignored_total{reason=\"foreign_topic\"}",
        "demls_messages_ignored_total{reason=\"other_group\"}",
    ];
    let node = tokio::task::spawn_blocking(move || {
        let missing = |text: &str| -> Vec<&str> {
            counted
                .iter()
                .copied()
                .filter(|series| !metric(text, series).is_some_and(|n| n >= 1.0))
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = node.metrics();
            let left = missing(&text);
            if left.is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not counted: {left:?}\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        node
    })
    .await
    .unwrap();
    let text = node.metrics();
    assert_eq!(
        metric(
            &text,
            "demls_messages_dropped_total{layer=\"engine\",reason=\"malformed\"}"
        ),
        Some(3.0),
        "{text}"
    );

    // Still serving: its group is intact and it talks.
    let sent = node.cli_json(&["send", "lab", "still here"]);
    assert_eq!(sent["text"], "still here");
    let group = node.group("lab").unwrap();
    assert_eq!(epoch_and_size(&group), (0, 1));
    assert_eq!(group["health"]["dropped"]["malformed"], 3);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_waku_messages_are_dropped_by_the_relay_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&tmp.path().join("n"), "/ip4/127.0.0.1/tcp/0", &[]);
    // An empty payload and an empty content topic, hand-encoded (field 2: content topic).
    let mut empty_payload = vec![0x12, 22];
    empty_payload.extend_from_slice(b"/demls/1/lab-app/proto");
    let payloads = vec![
        b"not a waku message".to_vec(),
        vec![0xff; 100],
        vec![0x0a, 0x05, 0x01], // a length-delimited field cut short
        empty_payload,
        vec![0x0a, 0x01, 0x07], // a payload and no content topic
    ];
    let (peer, published) =
        raw_peer::publish_raw(node.listen.parse().unwrap(), "/waku/2/rs/4242/0", payloads);
    tokio::time::timeout(Duration::from_secs(20), published)
        .await
        .expect("the node subscribes")
        .unwrap();
    let node = tokio::task::spawn_blocking(move || {
        wait_until("relay drops counted", Duration::from_secs(20), || {
            let text = node.metrics();
            let relay = |reason: &str| {
                metric(
                    &text,
                    &format!("demls_messages_dropped_total{{layer=\"relay\",reason=\"{reason}\"}}"),
                )
                .unwrap_or(0.0)
            };
            relay("undecodable") >= 3.0
                && relay("empty_payload") >= 1.0
                && relay("empty_content_topic") >= 1.0
        });
        node
    })
    .await
    .unwrap();
    peer.abort();
    // Still serving.
    node.cli_json(&["create", "lab"]);
    assert_eq!(node.cli_json(&["send", "lab", "fine"])["text"], "fine");
}
