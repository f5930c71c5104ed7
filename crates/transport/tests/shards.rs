//! Sharding on 127.0.0.1: autosharded nodes (8 shards, as on The Waku Network) exchange
//! messages on content topics of two shards; a node relays on several static shards and
//! states them all in its metadata; peers with no shard in common are disconnected; content
//! topics autosharding cannot place, and shard settings out of range, are refused.

mod common;
mod raw;

use std::num::NonZeroU16;
use std::sync::Arc;

use common::{
    Node, TIMEOUT, config, first_addr, metrics_reach, peers_reach, store_holds, store_node_with,
};
use demls_transport::store::{MemoryStore, MemoryStoreLimits, StoreQueryRequest};
use demls_transport::{
    ContentTopic, DEFAULT_CLUSTER_ID, DropReason, MAX_RELAY_SHARDS, Multiaddr, PublishError,
    PubsubTopic, RelayHandle, ShardError, TopicError, TransportConfig, TransportError, WakuRelay,
};
use futures::StreamExt;
use libp2p::StreamProtocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use prost::Message as _;
use raw::{RawMetadata, RawNode, RawStoreCodec, bare_swarm, frame, unframe};

/// The metadata message (66/WAKU2-METADATA), decoded here independently of the crate.
#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(uint32, optional, tag = "1")]
    cluster_id: Option<u32>,
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    shards_deprecated: Vec<u32>,
    #[prost(uint32, repeated, tag = "3")]
    shards: Vec<u32>,
}

/// Connects to the node at `addr` with a bare libp2p peer that states our cluster and
/// shard 3, and returns the node's metadata responses to `requests` requests, sent one after
/// the other; `between` runs after each response.
async fn metadata_of(
    addr: Multiaddr,
    requests: usize,
    mut between: impl AsyncFnMut(),
) -> Vec<Metadata> {
    let ours = frame(
        &Metadata {
            cluster_id: Some(u32::from(DEFAULT_CLUSTER_ID)),
            shards_deprecated: vec![3],
            shards: vec![3],
        }
        .encode_to_vec(),
    );
    let mut swarm = bare_swarm(request_response::Behaviour::with_codec(
        RawStoreCodec,
        [(
            StreamProtocol::new("/vac/waku/metadata/1.0.0"),
            ProtocolSupport::Full,
        )],
        request_response::Config::default(),
    ));
    swarm.dial(addr).expect("dial");
    let mut answers = Vec::new();
    let run = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm.behaviour_mut().send_request(&peer_id, ours.clone());
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    peer, message, ..
                }) => {
                    match message {
                        request_response::Message::Request { channel, .. } => {
                            // The node asks too; it keeps us only if we answer.
                            let _ = swarm.behaviour_mut().send_response(channel, ours.clone());
                        }
                        request_response::Message::Response { response, .. } => {
                            let body = unframe(&response).expect("one frame");
                            answers.push(Metadata::decode(body.as_slice()).expect("metadata"));
                            if answers.len() == requests {
                                return;
                            }
                            between().await;
                            swarm.behaviour_mut().send_request(&peer, ours.clone());
                        }
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(TIMEOUT, run)
        .await
        .expect("the node answers in time");
    answers
}

/// Maps to shard 3 of 8 (nwaku's autosharding test vectors).
const ON_SHARD_3: &str = "/toychat/2/huilong/proto";
/// Maps to shard 6 of 8.
const ON_SHARD_6: &str = "/toychat2/2/huilong/proto";

fn topic(s: &str) -> ContentTopic {
    s.parse().expect("valid content topic")
}

fn pubsub(shard: u16) -> PubsubTopic {
    PubsubTopic::new(DEFAULT_CLUSTER_ID, shard)
}

/// A node with autosharding over 8 shards, relaying on the shards of `topics`, that keeps to
/// `peers` (no peer exchange: the topology stays as built).
fn autosharded(topics: &[&str], peers: Vec<Multiaddr>) -> TransportConfig {
    TransportConfig {
        num_shards_in_network: NonZeroU16::new(8),
        content_topics: topics.iter().map(|t| topic(t)).collect(),
        peer_exchange: false,
        ..config(DEFAULT_CLUSTER_ID, peers)
    }
}

/// A node on static shards `shard` and `extra_shards`, keeping to `peers`.
fn static_shards(shard: u16, extra_shards: &[u16], peers: Vec<Multiaddr>) -> TransportConfig {
    TransportConfig {
        shard,
        extra_shards: extra_shards.to_vec(),
        peer_exchange: false,
        ..config(DEFAULT_CLUSTER_ID, peers)
    }
}

/// Waits until `x` and `y` together have turned away more peers than `before` (whichever
/// reads the other's metadata first disconnects), or fails with `what` after [`TIMEOUT`].
async fn either_rejects(x: &RelayHandle, y: &RelayHandle, before: u64, what: &str) {
    let rejected = || x.metrics().peers_rejected + y.metrics().peers_rejected;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while rejected() == before {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `from` publishes `payload` on `content_topic`; `to` receives it on the topic's shard.
async fn crosses(from: &Node, to: &mut Node, content_topic: &str, payload: &[u8], shard: u16) {
    let sent = from
        .handle
        .publish(&topic(content_topic), payload.to_vec(), None)
        .await
        .expect("publishes");
    assert_eq!(sent.pubsub_topic, pubsub(shard));
    assert_eq!(sent.hash, sent.message.hash(&pubsub(shard).to_string()));
    let got = to.next_message().await;
    assert_eq!(got.message.payload, payload);
    assert_eq!(got.pubsub_topic, pubsub(shard).to_string());
    assert_eq!(got.hash, sent.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autosharded_nodes_exchange_messages_on_two_shards() {
    let mut a = Node::start(autosharded(&[ON_SHARD_3, ON_SHARD_6], vec![])).await;
    let mut b = Node::start(autosharded(
        &[ON_SHARD_3, ON_SHARD_6],
        vec![first_addr(&a.handle)],
    ))
    .await;
    let mut c = Node::start(autosharded(&[ON_SHARD_6], vec![first_addr(&a.handle)])).await;
    assert_eq!(a.handle.pubsub_topics(), vec![pubsub(3), pubsub(6)]);
    assert_eq!(c.handle.pubsub_topics(), vec![pubsub(6)]);
    assert_eq!(a.handle.pubsub_topic_of(&topic(ON_SHARD_3)), Ok(pubsub(3)));
    let (b_id, c_id) = (b.handle.peer_id(), c.handle.peer_id());
    peers_reach(&a.handle, &[b_id, c_id]).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
    peers_reach(&c.handle, &[a.handle.peer_id()]).await;

    crosses(&a, &mut b, ON_SHARD_3, b"a to b on 3", 3).await;
    crosses(&b, &mut a, ON_SHARD_6, b"b to a on 6", 6).await;
    crosses(&c, &mut a, ON_SHARD_6, b"c to a on 6", 6).await;
    // b's message on shard 6 reached c too (through a or directly); drain it.
    assert_eq!(c.next_message().await.message.payload, b"b to a on 6");
    assert_eq!(b.next_message().await.message.payload, b"c to a on 6");

    // Shard 3 is not c's: b's next message there passes c by, and the next c gets is on 6.
    crosses(&b, &mut a, ON_SHARD_3, b"b to a on 3", 3).await;
    crosses(&a, &mut c, ON_SHARD_6, b"a to c on 6", 6).await;
    assert_eq!(b.next_message().await.message.payload, b"a to c on 6");

    // Publishing on a content topic of another shard joins it: c now relays on shard 3 and
    // its message reaches the nodes there.
    crosses(&c, &mut b, ON_SHARD_3, b"c joins 3", 3).await;
    assert_eq!(c.handle.pubsub_topics(), vec![pubsub(3), pubsub(6)]);
    assert_eq!(a.next_message().await.message.payload, b"c joins 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_to_a_content_topic_joins_its_shard() {
    let mut a = Node::start(autosharded(&[ON_SHARD_3], vec![])).await;
    let mut b = Node::start(autosharded(&[ON_SHARD_3], vec![first_addr(&a.handle)])).await;
    peers_reach(&a.handle, &[b.handle.peer_id()]).await;
    assert_eq!(b.handle.subscribe(&topic(ON_SHARD_6)).await, Ok(pubsub(6)));
    assert_eq!(a.handle.subscribe(&topic(ON_SHARD_6)).await, Ok(pubsub(6)));
    // Subscribing again changes nothing.
    assert_eq!(a.handle.subscribe(&topic(ON_SHARD_6)).await, Ok(pubsub(6)));
    assert_eq!(a.handle.pubsub_topics(), vec![pubsub(3), pubsub(6)]);
    // Each side publishes as soon as it has seen the other's subscription to shard 6.
    let six = topic(ON_SHARD_6);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while a.handle.publish(&six, b"on 6".to_vec(), None).await == Err(PublishError::NoPeers) {
        assert!(tokio::time::Instant::now() < deadline, "b never joined 6");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = b.next_message().await;
    assert_eq!(got.pubsub_topic, pubsub(6).to_string());
    crosses(&b, &mut a, ON_SHARD_6, b"back on 6", 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_joined_later_is_scored_too() {
    let b = Node::start(autosharded(&[ON_SHARD_3], vec![])).await;
    assert_eq!(b.handle.subscribe(&topic(ON_SHARD_6)).await, Ok(pubsub(6)));
    let shard_6 = pubsub(6).to_string();
    let mut raw = RawNode::dial(
        RawMetadata::Cluster(DEFAULT_CLUSTER_ID),
        &shard_6,
        first_addr(&b.handle),
    );
    raw.wait_subscribed().await;
    let raw_peer = raw.peer_id();
    raw.run_while(peers_reach(&b.handle, &[raw_peer])).await;
    // Bytes that are no WakuMessage, on shard 6 only: invalid message deliveries (P4) on that
    // shard take the peer below the graylist threshold, as on the shards b started with.
    for i in 0..12 {
        raw.publish(format!("not a waku message {i}").into_bytes());
    }
    raw.run_while(metrics_reach(&b.handle, "raw peer banned", |m| {
        m.peers_banned == 1 && m.dropped(DropReason::Undecodable) >= 10
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_node_on_two_shards_serves_each_shards_messages() {
    let store = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
    let both = autosharded(&[ON_SHARD_3, ON_SHARD_6], vec![]);
    let server = store_node_with(both, store.clone(), store.clone()).await;
    let client = Node::start(autosharded(
        &[ON_SHARD_3, ON_SHARD_6],
        vec![first_addr(&server)],
    ))
    .await;
    let client = client.handle;
    peers_reach(&server, &[client.peer_id()]).await;
    let mut sent = Vec::new();
    for (content_topic, n) in [(ON_SHARD_3, 3), (ON_SHARD_6, 2)] {
        for i in 0..n {
            let payload = format!("{content_topic} {i}").into_bytes();
            sent.push(
                client
                    .publish(&topic(content_topic), payload, None)
                    .await
                    .expect("publish"),
            );
        }
    }
    store_holds(&store, sent.len()).await;

    let peer = server.peer_id();
    let query = |shard: u16, content_topic: &str| {
        let request = StoreQueryRequest::for_topics(pubsub(shard).to_string(), [content_topic], 20);
        client.store_query(peer, request)
    };
    // Each shard's messages, stored with the pubsub topic they came on.
    let on_3 = query(3, ON_SHARD_3).await.expect("query");
    assert_eq!(on_3.messages.len(), 3);
    assert!(
        on_3.messages
            .iter()
            .all(|m| m.pubsub_topic.as_deref() == Some("/waku/2/rs/4242/3"))
    );
    let on_6 = query(6, ON_SHARD_6).await.expect("query");
    assert_eq!(on_6.messages.len(), 2);
    // A content topic asked for on a shard it is not on: nothing.
    assert!(
        query(6, ON_SHARD_3)
            .await
            .expect("query")
            .messages
            .is_empty()
    );
    // A hash lookup (no pubsub topic in the query) finds a message on either shard.
    for published in [&sent[0], &sent[4]] {
        let found = client
            .store_query(peer, StoreQueryRequest::for_hashes([published.hash]))
            .await
            .expect("lookup");
        assert_eq!(found.messages.len(), 1);
        assert_eq!(
            found.messages[0].pubsub_topic.as_deref(),
            Some(published.pubsub_topic.to_string().as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_relays_on_several_static_shards_and_states_them_all() {
    // a relays on shards 0 and 5 and publishes on 0.
    let mut a = Node::start(static_shards(0, &[5], vec![])).await;
    assert_eq!(a.handle.pubsub_topics(), vec![pubsub(0), pubsub(5)]);
    // b relays on 5 only: it keeps a because a's metadata states shard 5 (and a keeps b).
    let b = Node::start(static_shards(5, &[], vec![first_addr(&a.handle)])).await;
    peers_reach(&a.handle, &[b.handle.peer_id()]).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
    // Messages on shard 5 reach a; a publishes on its own shard 0, where no peer is.
    crosses(&b, &mut a, ON_SHARD_3, b"on 5", 5).await;
    assert_eq!(
        a.handle
            .publish(&topic(ON_SHARD_3), b"x".to_vec(), None)
            .await,
        Err(PublishError::NoPeers)
    );
    // d relays on 0 and 7: it shares shard 0 with a and gets a's messages there.
    let mut d = Node::start(static_shards(7, &[0], vec![first_addr(&a.handle)])).await;
    peers_reach(&a.handle, &[d.handle.peer_id()]).await;
    let sent = a
        .handle
        .publish(&topic(ON_SHARD_6), b"on 0".to_vec(), None)
        .await
        .expect("d is on shard 0");
    assert_eq!(sent.pubsub_topic, pubsub(0));
    assert_eq!(d.next_message().await.pubsub_topic, pubsub(0).to_string());
    // b, on shard 5 only, was not sent it.
    assert_eq!(b.handle.metrics().messages_in, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_states_every_shard_relayed_on() {
    let a = Node::start(TransportConfig {
        extra_shards: vec![0],
        ..autosharded(&[ON_SHARD_6, ON_SHARD_3], vec![])
    })
    .await;
    let handle = a.handle.clone();
    // Between the two requests, the node joins shard 7.
    let answers = metadata_of(first_addr(&a.handle), 2, async || {
        let seven = topic("/toychat/4/huilong/proto2");
        assert_eq!(handle.subscribe(&seven).await, Ok(pubsub(7)));
    })
    .await;
    let stated = |shards: &[u32]| Metadata {
        cluster_id: Some(u32::from(DEFAULT_CLUSTER_ID)),
        shards_deprecated: shards.to_vec(),
        shards: shards.to_vec(),
    };
    assert_eq!(answers, vec![stated(&[0, 3, 6]), stated(&[0, 3, 6, 7])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_no_shard_in_common_are_disconnected() {
    let a = Node::start(static_shards(0, &[5], vec![])).await;
    let c = Node::start(static_shards(7, &[], vec![first_addr(&a.handle)])).await;
    either_rejects(&a.handle, &c.handle, 0, "no side rejected").await;
    // Across a redial interval, neither side ever reports the other.
    tokio::time::sleep(demls_transport::REDIAL_INTERVAL + std::time::Duration::from_secs(1)).await;
    assert!(a.handle.connected_peers().is_empty());
    assert!(c.handle.connected_peers().is_empty());
    // Autosharded: a peer on shard 6 alone is refused too, one on shards 5 and 6 is kept.
    let before = a.handle.metrics().peers_rejected;
    let e = Node::start(autosharded(&[ON_SHARD_6], vec![first_addr(&a.handle)])).await;
    either_rejects(&a.handle, &e.handle, before, "e was not refused").await;
    let f = Node::start(TransportConfig {
        extra_shards: vec![5],
        ..autosharded(&[ON_SHARD_6], vec![first_addr(&a.handle)])
    })
    .await;
    peers_reach(&a.handle, &[f.handle.peer_id()]).await;
    // An autosharded node on no shard yet keeps a (and a keeps it: it states no shard); it
    // is reported once it relays on one of a's shards.
    let g = Node::start(TransportConfig {
        num_shards_in_network: NonZeroU16::new(1),
        ..autosharded(&[], vec![first_addr(&a.handle)])
    })
    .await;
    assert!(g.handle.pubsub_topics().is_empty());
    // The metadata exchange happens meanwhile (a missed race only makes this pass vacuously).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(g.handle.metrics().peers_rejected, 0);
    // With one shard in the network, every content topic is on shard 0, one of a's.
    assert_eq!(g.handle.subscribe(&topic(ON_SHARD_3)).await, Ok(pubsub(0)));
    peers_reach(&g.handle, &[a.handle.peer_id()]).await;
    peers_reach(&a.handle, &[g.handle.peer_id()]).await;
}

/// A peer turned away for having none of our shards is dialled again once the node joins one
/// of its shards (shards are joined at run time, on the first publish on a content topic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_refused_for_no_shard_in_common_is_redialled_after_joining_its_shard() {
    let k = Node::start(autosharded(&[ON_SHARD_6], vec![])).await;
    let m = Node::start(autosharded(&[ON_SHARD_3], vec![first_addr(&k.handle)])).await;
    either_rejects(&k.handle, &m.handle, 0, "no side rejected").await;
    assert_eq!(m.handle.subscribe(&topic(ON_SHARD_6)).await, Ok(pubsub(6)));
    // m's redial of its configured peer (every REDIAL_INTERVAL) is no longer held back.
    peers_reach(&m.handle, &[k.handle.peer_id()]).await;
    peers_reach(&k.handle, &[m.handle.peer_id()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_autosharding_cannot_place_and_bad_shard_settings_are_refused() {
    let a = Node::start(autosharded(&[ON_SHARD_3], vec![])).await;
    let later_generation = topic("/1/toychat/2/huilong/proto");
    let refused = ShardError::Topic(TopicError::UnsupportedGeneration {
        topic: later_generation.to_string(),
        generation: 1,
    });
    assert_eq!(
        a.handle
            .publish(&later_generation, b"x".to_vec(), None)
            .await,
        Err(PublishError::Shard(refused.clone()))
    );
    assert_eq!(
        a.handle.subscribe(&later_generation).await,
        Err(refused.clone())
    );
    assert_eq!(a.handle.pubsub_topic_of(&later_generation), Err(refused));
    assert_eq!(a.handle.pubsub_topics(), vec![pubsub(3)]);
    // Generation 0 written out is the short form.
    assert_eq!(
        a.handle
            .pubsub_topic_of(&topic("/0/toychat/2/huilong/proto")),
        Ok(pubsub(3))
    );
    // Without autosharding every topic goes to the static shard.
    let fixed = Node::start(static_shards(2, &[], vec![])).await;
    assert_eq!(
        fixed.handle.pubsub_topic_of(&later_generation),
        Ok(pubsub(2))
    );

    let bad_configs = [
        autosharded(&["/2/toychat/2/huilong/proto"], vec![]),
        TransportConfig {
            num_shards_in_network: NonZeroU16::new(1025),
            ..TransportConfig::default()
        },
        static_shards(1024, &[], vec![]),
        static_shards(0, &[3, 1024], vec![]),
        static_shards(
            0,
            &(1..=MAX_RELAY_SHARDS as u16).collect::<Vec<_>>(),
            vec![],
        ),
    ];
    for bad in bad_configs {
        let debug = format!("{bad:?}");
        let err = WakuRelay::start(bad).await.err();
        assert!(
            matches!(err, Some(TransportError::Config(_))),
            "{debug}: {err:?}"
        );
    }
    // Exactly the limit is fine.
    let many = (1..MAX_RELAY_SHARDS as u16).collect::<Vec<_>>();
    let full = Node::start(static_shards(0, &many, vec![])).await;
    assert_eq!(full.handle.pubsub_topics().len(), MAX_RELAY_SHARDS);
    // A node on the most shards joins no further one.
    let auto_full = Node::start(TransportConfig {
        extra_shards: many.iter().map(|s| s + 100).collect(),
        ..autosharded(&[ON_SHARD_3], vec![])
    })
    .await;
    assert_eq!(
        auto_full.handle.subscribe(&topic(ON_SHARD_6)).await,
        Err(ShardError::TooManyShards { shard: 6 })
    );
}
