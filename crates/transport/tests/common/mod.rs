//! Helpers shared by the integration tests: starting nodes on loopback and waiting for events.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use demls_transport::store::{MemoryStore, StoreBackend};
use demls_transport::{
    DEFAULT_CLUSTER_ID, MessageHash, MessageId, Multiaddr, PeerId, RelayHandle, TransportConfig,
    TransportEvent, TransportMetrics, WakuMessage, WakuRelay,
};
use tokio::sync::mpsc;

/// Generous bound for anything a test waits for on loopback.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The fields of a [`TransportEvent::Message`].
pub struct Received {
    pub pubsub_topic: String,
    pub message: WakuMessage,
    pub id: MessageId,
    pub hash: MessageHash,
}

pub struct Node {
    pub handle: RelayHandle,
    pub events: mpsc::Receiver<TransportEvent>,
}

impl Node {
    pub async fn start(config: TransportConfig) -> Node {
        let (handle, events) = WakuRelay::start(config).await.expect("node starts");
        Node { handle, events }
    }

    /// Waits for the first event `pick` maps to `Some`, skipping others.
    pub async fn next_matching<T>(
        &mut self,
        mut pick: impl FnMut(&TransportEvent) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("event stream open");
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        };
        tokio::time::timeout(TIMEOUT, wait)
            .await
            .expect("expected event did not arrive in time")
    }

    pub async fn connected_to(&mut self, peer: PeerId) {
        self.next_matching(|e| (*e == TransportEvent::PeerConnected(peer)).then_some(()))
            .await;
    }

    /// Waits for the next message.
    pub async fn next_message(&mut self) -> Received {
        self.next_matching(|e| match e {
            TransportEvent::Message {
                pubsub_topic,
                message,
                id,
                hash,
            } => Some(Received {
                pubsub_topic: pubsub_topic.clone(),
                message: message.clone(),
                id: *id,
                hash: *hash,
            }),
            _ => None,
        })
        .await
    }
}

/// A config on 127.0.0.1 with a random port.
pub fn config(cluster_id: u16, peers: Vec<Multiaddr>) -> TransportConfig {
    TransportConfig {
        cluster_id,
        peers,
        ..TransportConfig::default()
    }
}

/// Like [`config`], for a node that does not seek peers through peer exchange: it keeps to
/// `peers` (and those that dial it), so that a test's topology stays as built.
pub fn no_exchange(peers: Vec<Multiaddr>) -> TransportConfig {
    TransportConfig {
        peer_exchange: false,
        ..config(DEFAULT_CLUSTER_ID, peers)
    }
}

/// Waits until `handle` lists every peer in `peers` as connected.
pub async fn peers_reach(handle: &RelayHandle, peers: &[PeerId]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let connected = handle.connected_peers();
        if peers.iter().all(|p| connected.contains(p)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peers {peers:?} not connected; have {connected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `pred` holds for the node's metrics, or fails after [`TIMEOUT`].
pub async fn metrics_reach(
    handle: &RelayHandle,
    what: &str,
    pred: impl Fn(&TransportMetrics) -> bool,
) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !pred(&handle.metrics()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            handle.metrics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node's first listen address.
pub fn first_addr(handle: &RelayHandle) -> Multiaddr {
    handle
        .listen_addrs()
        .into_iter()
        .next()
        .expect("node listens")
}

/// Waits until `store` holds `n` messages, or fails after [`TIMEOUT`].
pub async fn store_holds(store: &MemoryStore, n: usize) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while store.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store holds {} of {n}",
            store.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node serving `store`, which keeps every message the node receives.
pub async fn store_node(store: Arc<dyn StoreBackend>, keep: Arc<MemoryStore>) -> RelayHandle {
    store_node_with(config(DEFAULT_CLUSTER_ID, vec![]), store, keep).await
}

/// [`store_node`] started with `config` (its `store` replaced).
pub async fn store_node_with(
    config: TransportConfig,
    store: Arc<dyn StoreBackend>,
    keep: Arc<MemoryStore>,
) -> RelayHandle {
    let Node { handle, mut events } = Node::start(TransportConfig {
        store: Some(store),
        ..config
    })
    .await;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let TransportEvent::Message {
                pubsub_topic,
                message,
                ..
            } = event
            {
                // Duplicates cannot happen here; anything else is a test failure below.
                let _ = keep.insert(&pubsub_topic, message);
            }
        }
    });
    handle
}
