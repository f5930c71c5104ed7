//! Interop with an independent implementation: a js-waku relay node and a js-waku Store client
//! (interop/js-waku) on 127.0.0.1. Needs Node.js 20+ and `npm ci --prefix interop/js-waku`;
//! fails (never skips) without them.

mod common;
mod js;

use std::num::NonZeroU16;
use std::sync::Arc;

use common::{Node, TIMEOUT, config, first_addr, peers_reach, store_holds, store_node};
use demls_transport::store::{MemoryStore, MemoryStoreLimits};
use demls_transport::{ContentTopic, DEFAULT_CLUSTER_ID, Published, TransportConfig};
use js::{CONTENT_TOPIC, JsPeer, field, hex};
use serde_json::{Value, json};

/// Waits until `demls` sees `js` pass the cluster check and subscribe to a shard of its, and
/// `js` sees `demls` subscribe to its shard.
async fn meet(demls: &mut Node, js: &mut JsPeer) {
    demls.connected_to(js.peer_id).await;
    let demls_peer = demls.handle.peer_id().to_string();
    loop {
        let subscribed = js.next("subscribed").await;
        if field(&subscribed, "peerId") == demls_peer {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_both_ways_with_js_waku() {
    let mut js = JsPeer::relay(DEFAULT_CLUSTER_ID).await;
    let mut demls = Node::start(config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])).await;
    let demls_peer = demls.handle.peer_id().to_string();
    meet(&mut demls, &mut js).await;

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
async fn an_autosharded_demls_node_meets_js_waku_on_its_topics_shard() {
    // With 8 shards, CONTENT_TOPIC (`/demls/1/…`) maps to shard 1: js-waku relays there.
    let mut js = JsPeer::relay_on(DEFAULT_CLUSTER_ID, 1).await;
    let topic: ContentTopic = CONTENT_TOPIC.parse().expect("topic");
    let mut demls = Node::start(TransportConfig {
        num_shards_in_network: NonZeroU16::new(8),
        content_topics: vec![topic.clone()],
        ..config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])
    })
    .await;
    meet(&mut demls, &mut js).await;
    let sent = demls
        .handle
        .publish(&topic, b"autosharded".to_vec(), None)
        .await
        .expect("demls publishes");
    assert_eq!(sent.pubsub_topic.to_string(), "/waku/2/rs/4242/1");
    let got = js.next("message").await;
    assert_eq!(field(&got, "payload"), hex(b"autosharded"));
    // js-waku hashes on its own pubsub topic: the same hash means the same topic.
    assert_eq!(field(&got, "hash"), sent.hash.to_string());

    js.send(json!({"cmd": "publish", "payload": hex(b"from shard 1")}))
        .await;
    let published = js.next("published").await;
    let got = demls.next_message().await;
    assert_eq!(got.pubsub_topic, "/waku/2/rs/4242/1");
    assert_eq!(got.message.payload, b"from shard 1");
    assert_eq!(got.hash.to_string(), field(&published, "hash"));
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

/// The messages of a `pages` event, page by page, as (hash, payload hex) pairs.
fn pages(event: &Value) -> Vec<Vec<(String, String)>> {
    event["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|page| {
            page.as_array()
                .expect("a page")
                .iter()
                .map(|m| (field(m, "hash").to_owned(), field(m, "payload").to_owned()))
                .collect()
        })
        .collect()
}

fn expected(sent: &[Published]) -> Vec<(String, String)> {
    sent.iter()
        .map(|p| (p.hash.to_string(), hex(&p.message.payload)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_store_client_reads_demls_history() {
    // A demls store node keeps what it relays; another demls node publishes 25 messages.
    let store = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
    let server = store_node(store.clone(), store.clone()).await;
    let publisher = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&server)])).await;
    peers_reach(&publisher.handle, &[server.peer_id()]).await;
    let topic: ContentTopic = CONTENT_TOPIC.parse().expect("topic");
    let mut sent = Vec::new();
    for i in 0..25 {
        let published = publisher
            .handle
            .publish(&topic, format!("history {i}").into_bytes(), None)
            .await
            .expect("publish");
        sent.push(published);
    }
    store_holds(&store, sent.len()).await;

    let server_addr = first_addr(&server).to_string();
    let (mut js, _) = JsPeer::start(
        "store-client.mjs",
        &[
            "--cluster",
            &DEFAULT_CLUSTER_ID.to_string(),
            "--shard",
            "0",
            "--content-topic",
            CONTENT_TOPIC,
            "--peer",
            &server_addr,
        ],
    )
    .await;

    // Forward, pages of 10: js-waku pages with the hash of the last message as cursor.
    js.send(json!({"cmd": "query", "pageSize": 10, "forward": true, "cursor": null}))
        .await;
    let got = js.next("pages").await;
    let all = expected(&sent);
    assert_eq!(
        pages(&got),
        [all[..10].to_vec(), all[10..20].to_vec(), all[20..].to_vec()]
    );
    for m in got["pages"][0].as_array().expect("page") {
        assert_eq!(field(m, "pubsubTopic"), "/waku/2/rs/4242/0");
        assert_eq!(field(m, "contentTopic"), CONTENT_TOPIC);
    }

    // Backward: the newest page first, each page oldest first.
    js.send(json!({"cmd": "query", "pageSize": 10, "forward": false, "cursor": null}))
        .await;
    let got = js.next("pages").await;
    assert_eq!(
        pages(&got),
        [all[15..].to_vec(), all[5..15].to_vec(), all[..5].to_vec()]
    );

    // From a cursor (the hash of message 9), pages of 5.
    js.send(json!({"cmd": "query", "pageSize": 5, "forward": true, "cursor": all[9].0}))
        .await;
    let got = js.next("pages").await;
    assert_eq!(
        pages(&got),
        [
            all[10..15].to_vec(),
            all[15..20].to_vec(),
            all[20..].to_vec()
        ]
    );

    // The sdk's createCursor hashes the timestamp rounded to milliseconds (the decoded
    // message's `timestamp` is a Date), so it is the message hash only for timestamps in
    // whole milliseconds; demls timestamps carry nanoseconds.
    for (m, published) in got["pages"][0]
        .as_array()
        .expect("page")
        .iter()
        .zip(&sent[10..])
    {
        let whole_ms = published
            .message
            .timestamp
            .is_some_and(|t| t % 1_000_000 == 0);
        assert_eq!(field(m, "sdkCursor") == field(m, "hash"), whole_ms);
    }
    js.send(json!({"cmd": "stop"})).await;
}
