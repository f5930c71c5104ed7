//! Peer discovery between relay nodes on 127.0.0.1: Waku peer exchange
//! (`/vac/waku/peer-exchange/2.0.0-alpha1`) lets a node that knows one peer find the others.

mod common;
mod raw;

use std::time::Duration;

use common::{Node, config, first_addr, metrics_reach, no_exchange, peers_reach};
use demls_transport::peer_exchange::own_enr;
use demls_transport::{
    DEFAULT_CLUSTER_ID, DEFAULT_SHARD, EnrShards, PeerExchangeDrop, TransportConfig,
    TransportMetrics,
};
use raw::{RawNode, RawStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_knows_one_peer_finds_the_others_by_peer_exchange() {
    // C knows only B, B knows only A.
    let a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let b = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&a.handle)])).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
    let c = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&b.handle)])).await;
    let started = tokio::time::Instant::now();
    // C learns A's record from B and dials it; A sees C connect.
    peers_reach(&c.handle, &[b.handle.peer_id(), a.handle.peer_id()]).await;
    peers_reach(&a.handle, &[b.handle.peer_id(), c.handle.peer_id()]).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    metrics_reach(&c.handle, "C learned A and B", |m| m.peers_discovered >= 2).await;
    assert!(b.handle.metrics().peer_exchange_served >= 1);
    let m = c.handle.metrics();
    assert!(
        PeerExchangeDrop::ALL
            .iter()
            .all(|&r| m.peer_exchange_dropped(r) == 0),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_peers_are_remembered_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("demls-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let peers_file = dir.join("peers");
    let a = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let b = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&a.handle)])).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
    let remembering = |peers| TransportConfig {
        peers_file: Some(peers_file.clone()),
        ..config(DEFAULT_CLUSTER_ID, peers)
    };
    let c = Node::start(remembering(vec![first_addr(&b.handle)])).await;
    peers_reach(&c.handle, &[a.handle.peer_id(), b.handle.peer_id()]).await;
    let key = c.handle.peer_id();
    c.handle.shutdown().await;
    let kept = std::fs::read_to_string(&peers_file).expect("the peers file is written");
    assert!(kept.lines().count() >= 2, "{kept}");
    // Restarted with no configured peer at all (and a new key), C dials the peers it learned.
    let again = Node::start(remembering(vec![])).await;
    assert_ne!(again.handle.peer_id(), key);
    peers_reach(&again.handle, &[a.handle.peer_id(), b.handle.peer_id()]).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_peer_exchange_nodes_keep_to_their_configured_peers() {
    let a = Node::start(no_exchange(vec![])).await;
    let b = Node::start(no_exchange(vec![first_addr(&a.handle)])).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
    let c = Node::start(no_exchange(vec![first_addr(&b.handle)])).await;
    peers_reach(&c.handle, &[b.handle.peer_id()]).await;
    // Longer than a redial round, in which seeking nodes would have asked and dialled.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(c.handle.connected_peers(), vec![b.handle.peer_id()]);
    assert_eq!(a.handle.connected_peers(), vec![b.handle.peer_id()]);
    assert_eq!(c.handle.metrics().peers_discovered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_max_peers_the_newest_peers_are_disconnected() {
    let hub = Node::start(TransportConfig {
        target_peers: 1,
        max_peers: 2,
        ..config(DEFAULT_CLUSTER_ID, vec![])
    })
    .await;
    // Four leaves dial the hub once each (they do not redial it, nor seek other peers).
    let mut leaves = Vec::new();
    for _ in 0..4 {
        let leaf = Node::start(no_exchange(vec![])).await;
        leaf.handle
            .dial(first_addr(&hub.handle))
            .await
            .expect("dial starts");
        // One at a time, so that the order they connected in is known.
        peers_reach(&leaf.handle, &[hub.handle.peer_id()]).await;
        leaves.push(leaf);
    }
    metrics_reach(&hub.handle, "the hub prunes to two peers", |m| {
        m.peers_pruned == 2 && m.peers == 2
    })
    .await;
    // The two kept are the first to connect.
    let kept = hub.handle.connected_peers();
    let oldest: Vec<_> = leaves[..2].iter().map(|l| l.handle.peer_id()).collect();
    assert!(oldest.iter().all(|p| kept.contains(p)), "{kept:?}");
}

/// A peer exchange response carrying `enrs`.
fn exchange_response(enrs: Vec<Vec<u8>>) -> Vec<u8> {
    use demls_transport::peer_exchange::{PeerExchangeResponse, PeerExchangeRpc, PeerInfo};
    use prost::Message as _;
    PeerExchangeRpc {
        query: None,
        response: Some(PeerExchangeResponse {
            peer_infos: enrs.into_iter().map(|enr| PeerInfo { enr }).collect(),
        }),
    }
    .encode_to_vec()
}

/// Connects a raw peer that answers `c`'s peer exchange query with `body`, and waits until
/// `c` has counted what it should.
async fn answer_with(
    c: &Node,
    body: Vec<u8>,
    what: &str,
    counted: impl Fn(&TransportMetrics) -> bool,
) {
    let mut raw = RawNode::store_server(
        DEFAULT_CLUSTER_ID,
        &c.handle.pubsub_topic().to_string(),
        RawStore::Answer(raw::frame(&body)),
        first_addr(&c.handle),
    );
    raw.wait_subscribed().await;
    raw.run_while(metrics_reach(&c.handle, what, counted)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peer_exchange_answers_are_counted_and_the_node_keeps_serving() {
    let c = Node::start(config(DEFAULT_CLUSTER_ID, vec![])).await;
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let on_shard = |cluster_id| EnrShards {
        cluster_id,
        shards: [DEFAULT_SHARD].into(),
    };
    let good = own_enr(
        &keypair,
        &"/ip4/127.0.0.1/tcp/9".parse().expect("multiaddr"),
        &on_shard(DEFAULT_CLUSTER_ID),
    )
    .expect("an ENR");
    let foreign = own_enr(
        &libp2p::identity::Keypair::generate_ed25519(),
        &"/ip4/127.0.0.1/tcp/10".parse().expect("multiaddr"),
        &on_shard(DEFAULT_CLUSTER_ID + 1),
    )
    .expect("an ENR");
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let key = enr::ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let no_address = alloy_rlp::encode(
        enr::Enr::<enr::ed25519_dalek::SigningKey>::builder()
            .build(&key)
            .expect("an ENR"),
    );
    let body = exchange_response(vec![vec![0xde, 0xad], tampered, no_address, foreign, good]);
    answer_with(&c, body, "the bad ENRs counted", |m| {
        m.peer_exchange_dropped(PeerExchangeDrop::BadEnr) == 2
            && m.peer_exchange_dropped(PeerExchangeDrop::NoAddress) == 1
            && m.peer_exchange_dropped(PeerExchangeDrop::OtherShards) == 1
            && m.peers_discovered == 1
    })
    .await;
    answer_with(&c, vec![0xff; 20], "the undecodable answer counted", |m| {
        m.peer_exchange_dropped(PeerExchangeDrop::Undecodable) == 1
    })
    .await;
    // Still a working node: another peer connects and is asked as usual.
    let d = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&c.handle)])).await;
    peers_reach(&d.handle, &[c.handle.peer_id()]).await;
}
