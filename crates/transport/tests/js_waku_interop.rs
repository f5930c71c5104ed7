//! Interop with an independent implementation: a js-waku relay node (interop/js-waku) on
//! 127.0.0.1. Needs Node.js 20+ and `npm ci --prefix interop/js-waku`; fails (never skips)
//! without them.

mod common;
mod js;

use common::{Node, TIMEOUT, config};
use demls_transport::{ContentTopic, DEFAULT_CLUSTER_ID};
use js::{CONTENT_TOPIC, JsPeer, field, hex};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_both_ways_with_js_waku() {
    let mut js = JsPeer::relay(DEFAULT_CLUSTER_ID).await;
    let mut demls = Node::start(config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])).await;
    let demls_peer = demls.handle.peer_id().to_string();

    // demls sees js-waku pass the cluster check and subscribe; js-waku sees demls subscribe.
    demls.connected_to(js.peer_id).await;
    loop {
        let subscribed = js.next("subscribed").await;
        if field(&subscribed, "peerId") == demls_peer {
            break;
        }
    }

    // demls -> js-waku
    let topic: ContentTopic = CONTENT_TOPIC.parse().expect("topic");
    let sent = demls
        .handle
        .publish(
            &topic,
            b"hello from demls".to_vec(),
            Some(b"demls-meta".to_vec()),
        )
        .await
        .expect("demls publishes");
    let got = js.next("message").await;
    assert_eq!(field(&got, "from"), demls_peer);
    assert_eq!(field(&got, "contentTopic"), CONTENT_TOPIC);
    assert_eq!(field(&got, "payload"), hex(b"hello from demls"));
    assert_eq!(field(&got, "meta"), hex(b"demls-meta"));
    let timestamp = sent.message.timestamp.expect("publish sets a timestamp");
    assert_eq!(field(&got, "timestamp"), timestamp.to_string());
    assert_eq!(field(&got, "msgId"), sent.id.to_string(), "same message id");
    assert_eq!(
        field(&got, "hash"),
        sent.hash.to_string(),
        "same message hash"
    );
    let decoded = js.next("decoded").await;
    assert_eq!(field(&decoded, "payload"), hex(b"hello from demls"));

    // js-waku -> demls
    js.send(
        json!({"cmd": "publish", "payload": hex(b"hello from js-waku"), "meta": hex(b"js-meta")}),
    )
    .await;
    let published = js.next("published").await;
    assert_eq!(published["recipients"], 1);
    let got = demls.next_message().await;
    assert_eq!(got.pubsub_topic, "/waku/2/rs/4242/0");
    assert_eq!(got.message.content_topic, CONTENT_TOPIC);
    assert_eq!(got.message.payload, b"hello from js-waku");
    assert_eq!(got.message.meta.as_deref(), Some(&b"js-meta"[..]));
    assert_eq!(got.message.version, Some(0));
    assert_eq!(got.message.ephemeral, Some(false));
    assert_eq!(
        got.message.timestamp.map(|t| t.to_string()).as_deref(),
        Some(field(&published, "timestamp"))
    );
    assert_eq!(
        got.id.to_string(),
        field(&published, "msgId"),
        "same message id"
    );
    assert_eq!(
        got.hash.to_string(),
        field(&published, "hash"),
        "same message hash"
    );

    let metrics = demls.handle.metrics();
    assert_eq!((metrics.messages_in, metrics.messages_out), (1, 1));
    assert_eq!(metrics.dropped_total() + metrics.peers_rejected, 0);
    js.send(json!({"cmd": "stop"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_of_another_cluster_is_disconnected() {
    let js = JsPeer::relay(DEFAULT_CLUSTER_ID + 1).await;
    let demls = Node::start(config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while demls.handle.metrics().peers_rejected == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "js-waku's cluster id was not checked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(demls.handle.connected_peers().is_empty());
}
