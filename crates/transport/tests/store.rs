//! Waku Store v3 between nodes on 127.0.0.1: history served and paged, lookups, bad queries
//! (huge pages, unknown cursors, years-long ranges, garbage, oversize frames), a flood of
//! queries, forged responses, timeouts and nodes without a store.

mod common;
mod raw;

use std::sync::Arc;
use std::time::Duration;

use common::{Node, TIMEOUT, config, first_addr, peers_reach, store_node};
use demls_transport::store::{
    BackendError, MAX_PAGE_SIZE, MAX_QUERIES_PER_PEER, MAX_REQUEST_SIZE, MemoryStore,
    MemoryStoreLimits, StatusCode, StoreBackend, StoreDropReason, StoreError, StoreOutcome,
    StorePage, StoreQuery, StoreQueryRequest, StoreQueryResponse, WakuMessageKeyValue,
};
use demls_transport::{
    ContentTopic, DEFAULT_CLUSTER_ID, MessageHash, Published, RelayHandle, TransportConfig,
    WakuMessage,
};
use prost::Message as _;
use raw::{RawNode, RawStore, frame};

fn topic(name: &str) -> ContentTopic {
    ContentTopic::new("demls", "1", name, "proto").expect("valid topic")
}

/// A plain node connected to `peer`, with its events drained.
async fn client(peer: &RelayHandle) -> RelayHandle {
    let Node { handle, mut events } =
        Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(peer)])).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    peers_reach(&handle, &[peer.peer_id()]).await;
    handle
}

/// Publishes `n` messages on `content_topic` from `from`, waits until `store` holds them
/// all, and returns them in publishing order (timestamps increase).
async fn publish_stored(
    from: &RelayHandle,
    content_topic: &ContentTopic,
    n: usize,
    store: &MemoryStore,
) -> Vec<Published> {
    let before = store.len();
    let mut sent = Vec::new();
    for i in 0..n {
        sent.push(
            from.publish(content_topic, format!("message {i}").into_bytes(), None)
                .await
                .expect("publish"),
        );
    }
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while store.len() < before + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "store holds {} of {}",
            store.len() - before,
            n
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sent
}

fn hashes(messages: &[WakuMessageKeyValue]) -> Vec<MessageHash> {
    messages
        .iter()
        .map(|m| m.hash().expect("32-byte hash"))
        .collect()
}

fn sent_hashes(sent: &[Published]) -> Vec<MessageHash> {
    sent.iter().map(|p| p.hash).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_served_paged_and_looked_up() {
    let store = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
    let server = store_node(store.clone(), store.clone()).await;
    let b = client(&server).await;
    peers_reach(&server, &[b.peer_id()]).await;
    let pubsub = server.pubsub_topic().to_string();
    let (g, h) = (topic("g"), topic("h"));
    let on_g = publish_stored(&b, &g, 30, &store).await;
    publish_stored(&b, &h, 5, &store).await;
    let peer = server.peer_id();

    // Forward, seven at a time: every message of g, in order, with its hash.
    let all = b
        .store_query_all(
            peer,
            StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 7),
            1000,
        )
        .await
        .expect("query");
    assert_eq!(hashes(&all.messages), sent_hashes(&on_g));
    assert_eq!(all.pagination_cursor, None);
    for (got, sent) in all.messages.iter().zip(&on_g) {
        assert_eq!(got.message.as_ref(), Some(&sent.message));
        assert_eq!(got.pubsub_topic.as_deref(), Some(pubsub.as_str()));
    }

    // One page, then the next from its cursor; backward: the newest first.
    let mut request = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 10);
    request.pagination_forward = false;
    let page = b.store_query(peer, request.clone()).await.expect("page");
    assert_eq!(hashes(&page.messages), sent_hashes(&on_g[20..]));
    assert_eq!(page.pagination_cursor, Some(on_g[20].hash.0.to_vec()));
    request.pagination_cursor = page.pagination_cursor;
    let page = b.store_query(peer, request.clone()).await.expect("page");
    assert_eq!(hashes(&page.messages), sent_hashes(&on_g[10..20]));

    // Stop early, and resume where it stopped.
    let first = b
        .store_query_all(
            peer,
            StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 4),
            8,
        )
        .await
        .expect("query");
    assert_eq!(hashes(&first.messages), sent_hashes(&on_g[..8]));
    let mut rest = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 4);
    rest.pagination_cursor = first.pagination_cursor;
    let rest = b.store_query_all(peer, rest, 1000).await.expect("query");
    assert_eq!(hashes(&rest.messages), sent_hashes(&on_g[8..]));

    // Both topics at once; a lookup; hashes only; a range of years.
    let both = b
        .store_query_all(
            peer,
            StoreQueryRequest::for_topics(&pubsub, [g.as_str(), h.as_str()], 100),
            1000,
        )
        .await
        .expect("query");
    assert_eq!(both.messages.len(), 35);
    let unknown = MessageHash([7; 32]);
    let lookup = b
        .store_query(
            peer,
            StoreQueryRequest::for_hashes([on_g[12].hash, unknown, on_g[3].hash]),
        )
        .await
        .expect("lookup");
    assert_eq!(hashes(&lookup.messages), [on_g[3].hash, on_g[12].hash]);
    let mut keys = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 5);
    keys.include_data = false;
    let keys = b.store_query(peer, keys).await.expect("keys");
    assert_eq!(hashes(&keys.messages), sent_hashes(&on_g[..5]));
    assert!(keys.messages.iter().all(|m| m.message.is_none()));
    let mut years = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 100);
    years.time_start = Some(0);
    years.time_end = Some(i64::MAX);
    let years = b.store_query(peer, years).await.expect("years");
    assert_eq!(years.messages.len(), 30);

    let m = b.metrics();
    assert_eq!(m.store_queries_failed, 0);
    assert!(
        StoreDropReason::ALL
            .iter()
            .all(|r| m.store_dropped(*r) == 0)
    );
    assert_eq!(
        server.metrics().store_answered(StoreOutcome::Served),
        m.store_queries_out
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_bounded_typed_answers() {
    let store = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
    let server = store_node(store.clone(), store.clone()).await;
    let b = client(&server).await;
    peers_reach(&server, &[b.peer_id()]).await;
    let pubsub = server.pubsub_topic().to_string();
    let g = topic("g");
    publish_stored(&b, &g, MAX_PAGE_SIZE + 20, &store).await;
    let peer = server.peer_id();

    // A huge page size is capped.
    let mut huge = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], u64::MAX);
    huge.pagination_forward = true;
    let page = b.store_query(peer, huge).await.expect("page");
    assert_eq!(page.messages.len(), MAX_PAGE_SIZE);
    assert!(page.pagination_cursor.is_some());

    // A cursor the store does not hold: 400.
    let mut unknown = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 10);
    unknown.pagination_cursor = Some(vec![9; 32]);
    assert_eq!(
        b.store_query(peer, unknown).await,
        Err(StoreError::Status {
            code: StatusCode::BAD_REQUEST,
            desc: "cursor not found".into()
        })
    );

    // Invalid queries are refused before they are sent...
    let mut half = StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 10);
    half.content_topics.clear();
    assert!(matches!(
        b.store_query(peer, half.clone()).await,
        Err(StoreError::InvalidRequest(_))
    ));
    let too_many = StoreQueryRequest::for_hashes((0..2000u32).map(|i| {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_be_bytes());
        MessageHash(h)
    }));
    assert!(too_many.encoded_len() > MAX_REQUEST_SIZE);
    assert!(matches!(
        b.store_query(peer, too_many.clone()).await,
        Err(StoreError::InvalidRequest(_))
    ));

    // ...and answered 400 when a raw peer sends them anyway.
    let mut raw = RawNode::store_server(
        DEFAULT_CLUSTER_ID,
        &pubsub,
        RawStore::Silent,
        first_addr(&server),
    );
    raw.wait_subscribed().await;
    let answer = |bytes: Vec<u8>| {
        let body = raw::unframe(&bytes).expect("one frame");
        StoreQueryResponse::decode(&body[..]).expect("a store response")
    };
    half.request_id = "half".into();
    let got = answer(
        raw.store_request(peer, frame(&half.encode_to_vec()))
            .await
            .expect("answered"),
    );
    assert_eq!(
        (got.status_code, got.request_id.as_str()),
        (Some(400), "half")
    );
    let got = answer(
        raw.store_request(peer, frame(b"\xff\xff\xff"))
            .await
            .expect("answered"),
    );
    assert_eq!(got.status_code, Some(400));
    // A frame over the request limit is not read at all: the stream is dropped.
    let oversize = raw
        .store_request(peer, frame(&too_many.encode_to_vec()))
        .await;
    assert!(
        oversize.as_ref().is_ok_and(Vec::is_empty) || oversize.is_err(),
        "{oversize:?}"
    );
    // The node still answers.
    let fine = StoreQueryRequest {
        request_id: "fine".into(),
        ..StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 3)
    };
    let got = answer(
        raw.store_request(peer, frame(&fine.encode_to_vec()))
            .await
            .expect("answered"),
    );
    assert_eq!((got.status_code, got.messages.len()), (Some(200), 3));
    let m = server.metrics();
    assert_eq!(m.store_answered(StoreOutcome::BadRequest), 3);
}

/// A backend that takes its time, as a store on a slow disk might.
struct Slow(MemoryStore, Duration);

impl StoreBackend for Slow {
    fn query(&self, query: &StoreQuery) -> Result<StorePage, BackendError> {
        std::thread::sleep(self.1);
        self.0.query(query)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_queries_is_throttled_and_relaying_goes_on() {
    let keep = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
    let slow = Arc::new(Slow(
        MemoryStore::new(MemoryStoreLimits::default()),
        Duration::from_millis(500),
    ));
    let server = store_node(slow, keep.clone()).await;
    let b = client(&server).await;
    peers_reach(&server, &[b.peer_id()]).await;
    let pubsub = server.pubsub_topic().to_string();
    let peer = server.peer_id();

    const FLOOD: usize = 20;
    let queries = (0..FLOOD).map(|_| {
        b.store_query(
            peer,
            StoreQueryRequest::for_topics(&pubsub, ["/demls/1/g/proto"], 10),
        )
    });
    let flood = futures::future::join_all(queries);
    // While the backend is busy, messages still flow through the server's relay loop.
    let g = topic("g");
    let relayed = publish_stored(&b, &g, 5, &keep);
    let (results, _) = tokio::join!(flood, relayed);

    let served = results.iter().filter(|r| r.is_ok()).count();
    let throttled = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(StoreError::Status {
                    code: StatusCode::TOO_MANY_REQUESTS,
                    ..
                })
            )
        })
        .count();
    eprintln!("{served} served, {throttled} throttled of {FLOOD}");
    assert_eq!(served + throttled, FLOOD, "{results:?}");
    assert!(served >= MAX_QUERIES_PER_PEER, "{results:?}");
    assert!(throttled > 0, "{results:?}");
    let m = server.metrics();
    assert_eq!(
        m.store_answered(StoreOutcome::TooManyRequests),
        throttled as u64
    );
    assert_eq!(m.store_answered(StoreOutcome::Served), served as u64);
}

fn entry(pubsub: &str, message: WakuMessage) -> WakuMessageKeyValue {
    WakuMessageKeyValue {
        message_hash: Some(message.hash(pubsub).0.to_vec()),
        message: Some(message),
        pubsub_topic: Some(pubsub.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_and_duplicate_messages_are_dropped() {
    let b = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let pubsub = b.handle.pubsub_topic().to_string();
    let g = topic("g");
    let message = |payload: &[u8], content_topic: &str| WakuMessage {
        payload: payload.to_vec(),
        content_topic: content_topic.into(),
        timestamp: Some(1_700_000_000_000_000_000),
        ..WakuMessage::default()
    };
    let good = entry(&pubsub, message(b"good", g.as_str()));
    let mut forged = entry(&pubsub, message(b"forged", g.as_str()));
    forged.message_hash = Some(vec![1; 32]);
    let foreign = entry("/waku/2/rs/1/0", message(b"foreign", g.as_str()));
    let other_topic = entry(&pubsub, message(b"other", "/demls/1/x/proto"));
    // The raw server does not know the request id b will use: b numbers its queries
    // "<peer id>-<n>" from 0, so the first one is predictable.
    let response = StoreQueryResponse {
        request_id: format!("{}-0", b.handle.peer_id()),
        status_code: Some(200),
        messages: vec![good.clone(), forged, foreign, other_topic, good.clone()],
        ..StoreQueryResponse::default()
    };
    let mut raw = RawNode::store_server(
        DEFAULT_CLUSTER_ID,
        &pubsub,
        RawStore::Answer(frame(&response.encode_to_vec())),
        first_addr(&b.handle),
    );
    raw.wait_subscribed().await;
    let raw_peer = raw.peer_id();
    raw.run_while(peers_reach(&b.handle, &[raw_peer])).await;
    let got = raw
        .run_while(b.handle.store_query(
            raw_peer,
            StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 10),
        ))
        .await
        .expect("verified response");
    assert_eq!(got.messages, vec![good]);
    let m = b.handle.metrics();
    assert_eq!(m.store_dropped(StoreDropReason::HashMismatch), 1);
    assert_eq!(m.store_dropped(StoreDropReason::Foreign), 2);
    assert_eq!(m.store_dropped(StoreDropReason::Duplicate), 1);

    // The next query gets the same canned response, now with the wrong request id.
    let err = raw
        .run_while(b.handle.store_query(
            raw_peer,
            StoreQueryRequest::for_topics(&pubsub, [g.as_str()], 10),
        ))
        .await;
    assert!(matches!(err, Err(StoreError::BadResponse(_))), "{err:?}");
    assert_eq!(b.handle.metrics().store_queries_failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_time_out_and_storeless_nodes_are_unsupported() {
    let b = Node::start(TransportConfig {
        store_timeout: Duration::from_secs(1),
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    let pubsub = b.handle.pubsub_topic().to_string();
    let request = StoreQueryRequest::for_topics(&pubsub, ["/demls/1/g/proto"], 10);
    let mut raw = RawNode::store_server(
        DEFAULT_CLUSTER_ID,
        &pubsub,
        RawStore::Silent,
        first_addr(&b.handle),
    );
    raw.wait_subscribed().await;
    let raw_peer = raw.peer_id();
    raw.run_while(peers_reach(&b.handle, &[raw_peer])).await;
    assert_eq!(
        raw.run_while(b.handle.store_query(raw_peer, request.clone()))
            .await,
        Err(StoreError::Timeout)
    );

    let plain = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&b.handle)])).await;
    peers_reach(&b.handle, &[plain.handle.peer_id()]).await;
    assert_eq!(
        b.handle
            .store_query(plain.handle.peer_id(), request.clone())
            .await,
        Err(StoreError::Unsupported)
    );
    let nobody = demls_transport::PeerId::random();
    assert_eq!(
        b.handle.store_query(nobody, request).await,
        Err(StoreError::Unreachable)
    );
    assert_eq!(b.handle.metrics().store_queries_failed, 3);
}
