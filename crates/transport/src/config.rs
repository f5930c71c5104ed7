//! Configuration of a relay node.

use std::sync::Arc;
use std::time::Duration;

use libp2p::Multiaddr;

use crate::segmentation::SegmentationConfig;
use crate::store::StoreBackend;
use crate::topics::{ContentTopic, DEFAULT_CLUSTER_ID, DEFAULT_SHARD, PubsubTopic, Sharding};

/// The default maximum size of an encoded WakuMessage: 1 MiB, js-waku's limit
/// (nwaku's default is 150 KiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// The smallest maximum message size accepted: nwaku's 150 KiB default.
pub const MIN_MAX_MESSAGE_SIZE: usize = 150 * 1024;

/// How many connected peers a node seeks through peer exchange, by default (gossipsub's mesh
/// degree plus room for gossip).
pub const DEFAULT_TARGET_PEERS: usize = 8;

/// The most connected peers a node keeps, by default (nwaku's default `maxConnections`).
pub const DEFAULT_MAX_PEERS: usize = 50;

/// How often a node sends its liveness probe to its demls peers, by default; see
/// [`TransportConfig::probe_interval`].
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How long a Store query may take, by default; see [`TransportConfig::store_timeout`].
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a relay node is set up. `Default` gives cluster [`DEFAULT_CLUSTER_ID`], static shard
/// [`DEFAULT_SHARD`] (no autosharding), a listener on `127.0.0.1` with a random port, no peers, 1 MiB messages,
/// a fresh random identity, [`SegmentationConfig::default`] (segments above 150,000 bytes), liveness probes every [`DEFAULT_PROBE_INTERVAL`] and no store
/// (Store queries of peers are answered `503`; querying peers works).
#[derive(Clone)]
pub struct TransportConfig {
    /// The cluster to join; peers whose metadata states another cluster are disconnected.
    pub cluster_id: u16,
    /// Without autosharding (`num_shards_in_network` is `None`), the shard to relay and
    /// publish on: the node subscribes to `/waku/2/rs/<cluster_id>/<shard>`. Not used with
    /// autosharding.
    pub shard: u16,
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/60000` (TCP only).
    pub listen: Vec<Multiaddr>,
    /// Peers to connect to at start and to redial while they are not connected, e.g.
    /// `/ip4/127.0.0.1/tcp/60000/p2p/<peer id>` (the `/p2p/` part is optional).
    pub peers: Vec<Multiaddr>,
    /// The largest encoded WakuMessage sent or accepted, at least [`MIN_MAX_MESSAGE_SIZE`].
    pub max_message_size: usize,
    /// The node's ed25519 secret key (32 bytes; a secp256k1 one with `discv5`), for a peer
    /// id that survives restarts; `None` draws a random one.
    pub node_key: Option<[u8; 32]>,
    /// Capacity of the event channel returned by [`crate::WakuRelay::start`]. While it is
    /// full the node stops reading from the network (commands are still served).
    pub event_capacity: usize,
    /// How often the node sends a liveness probe to its directly connected demls peers. A
    /// demls peer from which nothing arrives for six intervals is disconnected and redialled
    /// ([`crate::ReconnectReason::Silent`]). Must not be zero.
    pub probe_interval: Duration,
    /// Where the messages served to peers' Store queries come from; `None` answers every
    /// query `503` and does not advertise the Store protocol.
    pub store: Option<Arc<dyn StoreBackend>>,
    /// How long a Store query may take, both ways: a query of ours without an answer by then
    /// fails with [`crate::store::StoreError::Timeout`], and a peer's query not answered by then is
    /// dropped. Must not be zero.
    pub store_timeout: Duration,
    /// How payloads too large for one WakuMessage are sent in segments, and the bounds on
    /// reassembling them; its `wire_limit` must not exceed `max_message_size`.
    pub segmentation: SegmentationConfig,
    /// Whether the node asks its peers for more peers with Waku peer exchange and dials them
    /// while it has fewer than `target_peers` (it answers peers' exchange queries either way).
    pub peer_exchange: bool,
    /// How many connected peers the node seeks through peer exchange.
    pub target_peers: usize,
    /// The most connected peers kept: above it, the peers that connected last (other than
    /// those in `peers`) are disconnected, every 5 s. At least `target_peers`.
    pub max_peers: usize,
    /// Whether the node finds peers on its LAN with mDNS (libp2p's `/ipfs/mdns`, IPv4) and
    /// dials those it finds.
    pub mdns: bool,
    /// Where the peers learned through peer exchange are kept across restarts (their ENRs, one
    /// per line, in hex): read at start, so that a restarted node dials them while below
    /// `target_peers` and passes them on, and rewritten whenever a new peer is learned.
    /// `None` keeps them in memory only.
    pub peers_file: Option<std::path::PathBuf>,
    /// Further shards of the cluster to relay on (static sharding), below 1024; messages
    /// arriving on them are delivered too.
    pub extra_shards: Vec<u16>,
    /// Autosharding (51/WAKU2-RELAY-SHARDING): the network's shard count (8 on The Waku
    /// Network, at most 1024). A message is published on the shard its content topic maps
    /// to, and the node relays on the shards of `content_topics` and of every content topic
    /// it publishes on or subscribes to. `None` (the default) is static sharding: every
    /// message is published on `shard`.
    pub num_shards_in_network: Option<std::num::NonZeroU16>,
    /// With autosharding, content topics whose shards the node relays on from its start.
    pub content_topics: Vec<ContentTopic>,
    /// Whether the node runs discv5 ([`crate::dht`]) on a UDP port: peers it finds join those
    /// learned through peer exchange (dialled while below `target_peers`, served to exchange
    /// queries). `None` (the default) runs none.
    pub discv5: Option<crate::dht::Discv5Config>,
}

impl TransportConfig {
    /// The pubsub topic of `shard`: without autosharding, where every message is published.
    pub fn pubsub_topic(&self) -> PubsubTopic {
        PubsubTopic::new(self.cluster_id, self.shard)
    }

    /// How this configuration places messages on shards.
    pub(crate) fn sharding(&self) -> Sharding {
        Sharding {
            cluster_id: self.cluster_id,
            shard: self.shard,
            num_shards_in_network: self.num_shards_in_network,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            cluster_id: DEFAULT_CLUSTER_ID,
            shard: DEFAULT_SHARD,
            listen: vec![
                Multiaddr::from(std::net::Ipv4Addr::LOCALHOST)
                    .with(libp2p::multiaddr::Protocol::Tcp(0)),
            ],
            peers: Vec::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            node_key: None,
            event_capacity: 1024,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            store: None,
            store_timeout: DEFAULT_STORE_TIMEOUT,
            segmentation: SegmentationConfig::default(),
            peer_exchange: true,
            target_peers: DEFAULT_TARGET_PEERS,
            max_peers: DEFAULT_MAX_PEERS,
            mdns: false,
            peers_file: None,
            extra_shards: Vec::new(),
            num_shards_in_network: None,
            content_topics: Vec::new(),
            discv5: None,
        }
    }
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConfig")
            .field("cluster_id", &self.cluster_id)
            .field("shard", &self.shard)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .field("max_message_size", &self.max_message_size)
            .field("node_key", &self.node_key.map(|_| "<secret>"))
            .field("event_capacity", &self.event_capacity)
            .field("probe_interval", &self.probe_interval)
            .field("store", &self.store.as_ref().map(|_| "<backend>"))
            .field("store_timeout", &self.store_timeout)
            .field("segmentation", &self.segmentation)
            .field("peer_exchange", &self.peer_exchange)
            .field("target_peers", &self.target_peers)
            .field("max_peers", &self.max_peers)
            .field("mdns", &self.mdns)
            .field("peers_file", &self.peers_file)
            .field("extra_shards", &self.extra_shards)
            .field("num_shards_in_network", &self.num_shards_in_network)
            .field("content_topics", &self.content_topics)
            .field("discv5", &self.discv5)
            .finish()
    }
}
