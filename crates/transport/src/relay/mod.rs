//! The relay node: a libp2p swarm (TCP + noise + yamux; gossipsub as Waku Relay, the
//! metadata protocol, Store v3, identify, ping) driven by a tokio task, and the handle to talk
//! to it.

mod node;
mod swarm;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use libp2p::identity::{Keypair, ed25519, secp256k1};
use libp2p::{Multiaddr, PeerId};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::config::TransportConfig;
use crate::dht::Discv5Drop;
use crate::error::{PublishError, ShardError, TransportError};
use crate::liveness::ReconnectReason;
use crate::message::{DropReason, MAX_META_LEN, MessageHash, MessageId, WakuMessage, unix_nanos};
use crate::peer_exchange::PeerExchangeDrop;
use crate::segmentation::{self, SegmentDrop, SegmentationConfig};
use crate::store::{
    self, MAX_REQUEST_SIZE, StoreDropReason, StoreError, StoreOutcome, StoreQuery,
    StoreQueryRequest, StoreQueryResponse,
};
use crate::topics::{ContentTopic, PubsubTopic, Sharding};
use node::Node;
use swarm::{build_swarm, check_config, check_dialable};

/// The gossipsub protocol id of Waku Relay (11/WAKU2-RELAY).
pub const RELAY_PROTOCOL: &str = "/vac/waku/relay/2.0.0";

/// How often peers from [`TransportConfig::peers`] that are not connected are redialled.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(5);

/// How long a peer whose gossipsub score fell below the graylist threshold (mostly: it kept
/// sending invalid messages) is kept out: not dialled, and disconnected at once if it
/// connects. As long as its score is remembered after it leaves (nwaku's `retainScore`).
pub const BAN_DURATION: Duration = Duration::from_secs(600);

/// How much longer than `store_timeout` a handle waits for a Store query, so that libp2p's own
/// timeout (a more precise error) usually comes first.
const STORE_TIMEOUT_SLACK: Duration = Duration::from_secs(1);

/// Something that happened on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A valid message arrived from another node. A node's own publishes are never
    /// delivered back to it (gossipsub does not echo them).
    Message {
        /// The pubsub topic it arrived on, e.g. `/waku/2/rs/4242/0`.
        pubsub_topic: String,
        /// The message; its `content_topic` says which demls stream it belongs to. A message
        /// that came in segments is delivered once, whole.
        message: WakuMessage,
        /// Its gossipsub message id (for a message that came in segments, the id of its
        /// unsegmented encoding).
        id: MessageId,
        /// Its deterministic hash on `pubsub_topic`.
        hash: MessageHash,
    },
    /// A peer passed the cluster check and subscribed to one of the shards we relay on.
    PeerConnected(PeerId),
    /// The last connection to a peer reported by [`TransportEvent::PeerConnected`] closed.
    PeerDisconnected(PeerId),
    /// The node listens on this address (it ends with `/p2p/<peer id>`).
    Listening(Multiaddr),
}

/// What [`RelayHandle::publish`] sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The message as sent, with its timestamp (whole, even if it went in segments).
    pub message: WakuMessage,
    /// Its gossipsub message id (for a message sent in segments, the id its unsegmented
    /// encoding would have had, which is also what its receivers report).
    pub id: MessageId,
    /// How many WakuMessages went on the wire: 1, or the number of its segments.
    pub segments: usize,
    /// The size of the largest of them, encoded.
    pub largest_wire_bytes: usize,
    /// Its deterministic hash on `pubsub_topic`.
    pub hash: MessageHash,
    /// The pubsub topic it went to: its content topic's shard with autosharding.
    pub pubsub_topic: PubsubTopic,
}

/// A snapshot of the node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportMetrics {
    /// Valid messages received from peers (a message that came in segments counts once, when
    /// it is complete).
    pub messages_in: u64,
    /// Messages this node published (a message sent in segments counts once).
    pub messages_out: u64,
    /// Segments of large messages this node published (data and parity).
    pub segments_out: u64,
    /// Valid segments received from peers.
    pub segments_in: u64,
    /// Incomplete messages currently held for reassembly.
    pub reassembly_pending_messages: u64,
    /// Segment bytes currently held for reassembly.
    pub reassembly_pending_bytes: u64,
    /// Peers currently connected (as in [`RelayHandle::connected_peers`]).
    pub peers: usize,
    /// Peers disconnected for another cluster id, for no shard in common, or for a failed
    /// metadata exchange.
    pub peers_rejected: u64,
    /// Gossipsub messages to peers that were dropped because the peer's send queue was full
    /// or they waited in it too long (gossipsub's slow-peer reports).
    pub send_failures: u64,
    /// Peers learned through peer exchange (each counted once) or found by mDNS (counted per
    /// dial).
    pub peers_discovered: u64,
    /// Peer exchange queries of peers this node answered.
    pub peer_exchange_served: u64,
    /// Peers found through discv5 (each counted once; also counted in `peers_discovered`).
    pub discv5_found: u64,
    /// Peers disconnected because more than [`TransportConfig::max_peers`] were connected.
    pub peers_pruned: u64,
    /// Peers disconnected and banned for [`BAN_DURATION`] because their gossipsub score fell
    /// below the graylist threshold (ten invalid messages in quick succession reach it).
    pub peers_banned: u64,
    /// Store queries this node sent (one per page).
    pub store_queries_out: u64,
    /// Store queries this node sent that failed (error status, bad response, no answer).
    pub store_queries_failed: u64,
    dropped: [u64; DropReason::ALL.len()],
    reconnects: [u64; ReconnectReason::ALL.len()],
    store_answered: [u64; StoreOutcome::ALL.len()],
    store_dropped: [u64; StoreDropReason::ALL.len()],
    segments_dropped: [u64; SegmentDrop::ALL.len()],
    peer_exchange_dropped: [u64; PeerExchangeDrop::ALL.len()],
    discv5_dropped: [u64; Discv5Drop::ALL.len()],
}

impl TransportMetrics {
    /// ENRs found through discv5 and not used, for `reason`.
    pub fn discv5_dropped(&self, reason: Discv5Drop) -> u64 {
        self.discv5_dropped[reason.index()]
    }

    /// Peer exchange responses, or ENRs in them, not used for `reason`.
    pub fn peer_exchange_dropped(&self, reason: PeerExchangeDrop) -> u64 {
        self.peer_exchange_dropped[reason.index()]
    }

    /// Segments, or messages being reassembled, dropped for `reason`.
    pub fn segments_dropped(&self, reason: SegmentDrop) -> u64 {
        self.segments_dropped[reason.index()]
    }

    /// Messages refused by the relay validator for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Messages refused by the relay validator, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Connected peers disconnected and redialled because gossipsub stopped flowing, for
    /// `reason`.
    pub fn reconnects(&self, reason: ReconnectReason) -> u64 {
        self.reconnects[reason.index()]
    }

    /// Connected peers disconnected and redialled because gossipsub stopped flowing, all
    /// reasons.
    pub fn reconnects_total(&self) -> u64 {
        self.reconnects.iter().sum()
    }

    /// Store queries of peers this node answered with `outcome`.
    pub fn store_answered(&self, outcome: StoreOutcome) -> u64 {
        self.store_answered[outcome.index()]
    }

    /// Messages dropped from peers' Store responses for `reason`.
    pub fn store_dropped(&self, reason: StoreDropReason) -> u64 {
        self.store_dropped[reason.index()]
    }
}

/// Starts relay nodes; see [`WakuRelay::start`].
#[derive(Debug)]
pub struct WakuRelay;

impl WakuRelay {
    /// Builds the libp2p stack, binds the listeners (returning once each has an address), and
    /// spawns the node on the current tokio runtime. Peers in `config.peers` are dialled at once
    /// and redialled every [`REDIAL_INTERVAL`] while disconnected.
    ///
    /// The node runs until [`RelayHandle::shutdown`] or until every handle is dropped. Read the
    /// returned receiver promptly: while it is full the node stops reading from the network.
    pub async fn start(
        config: TransportConfig,
    ) -> Result<(RelayHandle, mpsc::Receiver<TransportEvent>), TransportError> {
        let topics = check_config(&config)?;
        let keypair = node_keypair(config.node_key, config.discv5.is_some())?;
        let swarm = build_swarm(keypair.clone(), &config, &topics)?;
        let (event_tx, event_rx) = mpsc::channel(config.event_capacity);
        let shared = Arc::new(Shared::default());
        let mut node = Node::new(&config, topics, keypair, swarm, shared.clone(), event_tx)?;
        node.listen(&config.listen).await?;
        node.load_peers();
        if let Some(discv5) = &config.discv5 {
            node.start_dht(discv5, &config.listen).await?;
        }
        node.publish_own_enr();

        let local_peer_id = node.local_peer_id();
        let (command_tx, command_rx) = mpsc::channel(64);
        tokio::spawn(node.run(command_rx));
        let handle = RelayHandle {
            commands: command_tx,
            shared,
            local_peer_id,
            sharding: config.sharding(),
            segmentation: config.segmentation.clone(),
            store_timeout: config.store_timeout,
            store_queries_sent: Arc::new(AtomicU64::new(0)),
        };
        Ok((handle, event_rx))
    }
}

/// The node's libp2p keypair from its 32-byte secret (random without one): ed25519, or
/// secp256k1 for a node that runs discv5, whose handshake knows only secp256k1 ENRs (the
/// peer id must be the one its ENR's key gives, as nwaku's are).
fn node_keypair(secret: Option<[u8; 32]>, discv5: bool) -> Result<Keypair, TransportError> {
    let invalid = |e: libp2p::identity::DecodingError| TransportError::NodeKey(e.to_string());
    Ok(match (secret, discv5) {
        (Some(mut secret), false) => ed25519::SecretKey::try_from_bytes(&mut secret)
            .map(|secret| Keypair::from(ed25519::Keypair::from(secret)))
            .map_err(invalid)?,
        (Some(mut secret), true) => secp256k1::SecretKey::try_from_bytes(&mut secret)
            .map(|secret| Keypair::from(secp256k1::Keypair::from(secret)))
            .map_err(invalid)?,
        (None, false) => Keypair::generate_ed25519(),
        (None, true) => Keypair::generate_secp256k1(),
    })
}

/// A cheap, cloneable handle to a running relay node.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    local_peer_id: PeerId,
    sharding: Sharding,
    segmentation: SegmentationConfig,
    store_timeout: Duration,
    /// Numbers the request ids of this handle's Store queries.
    store_queries_sent: Arc<AtomicU64>,
}

impl RelayHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The pubsub topic of [`TransportConfig::shard`]: without autosharding, where every
    /// message is published.
    pub fn pubsub_topic(&self) -> PubsubTopic {
        PubsubTopic::new(self.sharding.cluster_id, self.sharding.shard)
    }

    /// The pubsub topic a message on `content_topic` is published on: its shard with
    /// autosharding, [`RelayHandle::pubsub_topic`] without.
    pub fn pubsub_topic_of(&self, content_topic: &ContentTopic) -> Result<PubsubTopic, ShardError> {
        Ok(self.sharding.pubsub_topic_of(content_topic)?)
    }

    /// The pubsub topics the node relays on now, in order (those it started with, and the
    /// shards it joined since).
    pub fn pubsub_topics(&self) -> Vec<PubsubTopic> {
        self.shared.state().topics.iter().copied().collect()
    }

    /// Relays on the shard of `content_topic` from now on (nothing changes without
    /// autosharding, or if the node relays on it already), and returns its pubsub topic.
    pub async fn subscribe(&self, content_topic: &ContentTopic) -> Result<PubsubTopic, ShardError> {
        let topic = self.pubsub_topic_of(content_topic)?;
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Join { topic, reply })
            .await
            .map_err(|_| ShardError::Closed)?;
        response.await.map_err(|_| ShardError::Closed)??;
        Ok(topic)
    }

    /// Publishes `payload` on `content_topic` with the current time as timestamp, on the
    /// pubsub topic [`RelayHandle::pubsub_topic_of`] names (joining that shard first if the
    /// node does not relay on it yet). Returns once the message is queued to the connected
    /// subscribers (flood publishing); it is not delivered back to this node. A message whose
    /// encoding exceeds [`SegmentationConfig::wire_limit`] is sent in segments (it then may
    /// not carry `meta`).
    pub async fn publish(
        &self,
        content_topic: &ContentTopic,
        payload: Vec<u8>,
        meta: Option<Vec<u8>>,
    ) -> Result<Published, PublishError> {
        if payload.is_empty() {
            return Err(PublishError::EmptyPayload);
        }
        if let Some(len) = meta.as_ref().map(Vec::len).filter(|&l| l > MAX_META_LEN) {
            return Err(PublishError::MetaTooLong(len));
        }
        let message = WakuMessage {
            payload,
            content_topic: content_topic.to_string(),
            timestamp: Some(unix_nanos()),
            meta,
            ..WakuMessage::default()
        };
        let pubsub_topic = self.pubsub_topic_of(content_topic)?;
        let wire = segmentation::split(&self.segmentation, &message)?;
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Publish {
                pubsub_topic,
                message,
                wire,
                reply,
            })
            .await
            .map_err(|_| PublishError::Closed)?;
        response.await.map_err(|_| PublishError::Closed)?
    }

    /// Starts dialling `addr` (TCP, optionally ending in `/p2p/<peer id>`). Returns once the
    /// dial has started; [`TransportEvent::PeerConnected`] follows if it succeeds. Unlike
    /// [`TransportConfig::peers`], the address is not redialled.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), TransportError> {
        check_dialable(&addr)?;
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Dial { addr, reply })
            .await
            .map_err(|_| TransportError::Closed)?;
        response.await.map_err(|_| TransportError::Closed)?
    }

    /// The addresses the node listens on, each ending with `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.state().listen_addrs.clone()
    }

    /// This node's ENR in text form (`enr:…`), as it was at start: with discv5, the one its
    /// discv5 service announces (with `udp`); else the one it gives in peer exchange. `None`
    /// if it listens on no concrete IPv4 address.
    pub fn enr(&self) -> Option<String> {
        self.shared.state().enr.clone()
    }

    /// Peers that passed the cluster check and are subscribed to one of our shards.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.shared.state().connected.iter().copied().collect()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> TransportMetrics {
        let c = &self.shared.counters;
        TransportMetrics {
            messages_in: c.messages_in.load(Ordering::Relaxed),
            messages_out: c.messages_out.load(Ordering::Relaxed),
            segments_out: c.segments_out.load(Ordering::Relaxed),
            segments_in: c.segments_in.load(Ordering::Relaxed),
            reassembly_pending_messages: c.reassembly_pending_messages.load(Ordering::Relaxed),
            reassembly_pending_bytes: c.reassembly_pending_bytes.load(Ordering::Relaxed),
            peers: self.shared.state().connected.len(),
            peers_rejected: c.peers_rejected.load(Ordering::Relaxed),
            send_failures: c.send_failures.load(Ordering::Relaxed),
            store_queries_out: c.store_queries_out.load(Ordering::Relaxed),
            store_queries_failed: c.store_queries_failed.load(Ordering::Relaxed),
            dropped: load_all(&c.dropped),
            reconnects: load_all(&c.reconnects),
            store_answered: load_all(&c.store_answered),
            store_dropped: load_all(&c.store_dropped),
            segments_dropped: load_all(&c.segments_dropped),
            peers_discovered: c.peers_discovered.load(Ordering::Relaxed),
            peer_exchange_served: c.peer_exchange_served.load(Ordering::Relaxed),
            peers_pruned: c.peers_pruned.load(Ordering::Relaxed),
            peers_banned: c.peers_banned.load(Ordering::Relaxed),
            peer_exchange_dropped: load_all(&c.peer_exchange_dropped),
            discv5_found: c.discv5_found.load(Ordering::Relaxed),
            discv5_dropped: load_all(&c.discv5_dropped),
        }
    }

    /// Sends the Store query `request` to `peer` (dialling it if needed and its address is
    /// known) and returns its verified answer: a `2xx` status, the request's id, and only the
    /// messages whose hash is that of the message, that match the query, and that do not
    /// repeat; the others are dropped and counted ([`TransportMetrics::store_dropped`]).
    /// An empty `request_id` is filled in. Fails after [`TransportConfig::store_timeout`].
    pub async fn store_query(
        &self,
        peer: PeerId,
        request: StoreQueryRequest,
    ) -> Result<StoreQueryResponse, StoreError> {
        self.store_page(peer, request, &mut HashSet::new()).await
    }

    /// Pages through every message matching `request`, starting at its cursor, and returns
    /// them in one response (in the order the pages came). Stops once `max_messages` are
    /// collected: the response's `pagination_cursor` is then where to continue; it is `None`
    /// when every page was fetched. A message repeated across pages is dropped and counted.
    pub async fn store_query_all(
        &self,
        peer: PeerId,
        mut request: StoreQueryRequest,
        max_messages: usize,
    ) -> Result<StoreQueryResponse, StoreError> {
        let mut seen = HashSet::new();
        let mut all: Option<StoreQueryResponse> = None;
        let mut cursors = HashSet::new();
        loop {
            request.request_id.clear();
            let page = self.store_page(peer, request.clone(), &mut seen).await?;
            let cursor = page.pagination_cursor.clone();
            let done = match &cursor {
                None => true,
                Some(c) if !cursors.insert(c.clone()) => {
                    self.count_store_failure();
                    return Err(StoreError::BadResponse("the cursor repeats".into()));
                }
                // A page without messages would let a peer page forever.
                Some(_) => page.messages.is_empty(),
            };
            let all = all.get_or_insert_with(|| StoreQueryResponse {
                request_id: page.request_id.clone(),
                status_code: page.status_code,
                status_desc: page.status_desc.clone(),
                ..StoreQueryResponse::default()
            });
            all.messages.extend(page.messages);
            all.pagination_cursor = if done { None } else { cursor.clone() };
            if done || all.messages.len() >= max_messages {
                return Ok(std::mem::take(all));
            }
            request.pagination_cursor = cursor;
        }
    }

    async fn store_page(
        &self,
        peer: PeerId,
        mut request: StoreQueryRequest,
        seen: &mut HashSet<MessageHash>,
    ) -> Result<StoreQueryResponse, StoreError> {
        let query = StoreQuery::from_request(&request)?;
        if request.request_id.is_empty() {
            let n = self.store_queries_sent.fetch_add(1, Ordering::Relaxed);
            request.request_id = format!("{}-{n}", self.local_peer_id);
        }
        let raw = request.encode_to_vec();
        if raw.len() > MAX_REQUEST_SIZE {
            return Err(StoreError::InvalidRequest(store::InvalidQuery::TooLarge(
                raw.len(),
            )));
        }
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::StoreQuery {
                peer,
                request: raw,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        let counters = &self.shared.counters;
        counters.store_queries_out.fetch_add(1, Ordering::Relaxed);
        // libp2p's request timeout does not cover dialling; this one covers everything.
        let verified = tokio::time::timeout(self.store_timeout + STORE_TIMEOUT_SLACK, response)
            .await
            .map_err(|_| StoreError::Timeout)
            .and_then(|reply| reply.map_err(|_| StoreError::Closed))
            .and_then(|raw| raw)
            .and_then(|raw| {
                let own: Vec<String> = self
                    .pubsub_topics()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                store::verify_response(&raw, &request.request_id, &query, &own, seen)
            });
        match verified {
            Ok(verified) => {
                for (counter, n) in counters.store_dropped.iter().zip(verified.dropped) {
                    counter.fetch_add(n, Ordering::Relaxed);
                }
                Ok(verified.response)
            }
            Err(e) => {
                self.count_store_failure();
                Err(e)
            }
        }
    }

    fn count_store_failure(&self) {
        self.shared
            .counters
            .store_queries_failed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the node: closes its listeners and connections, then returns. Every handle then
    /// reports [`TransportError::Closed`]; stopping a stopped node does nothing.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown(reply)).await.is_ok() {
            // An error means the node stopped on its own, which is as good.
            let _ = done.await;
        }
    }
}

pub(super) enum Command {
    Publish {
        /// Where it goes.
        pubsub_topic: PubsubTopic,
        /// The message as the node above sees it.
        message: WakuMessage,
        /// What goes on the wire: `message` itself, or its segments.
        wire: Vec<WakuMessage>,
        reply: oneshot::Sender<Result<Published, PublishError>>,
    },
    /// Relay on this shard from now on.
    Join {
        topic: PubsubTopic,
        reply: oneshot::Sender<Result<(), ShardError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), TransportError>>,
    },
    StoreQuery {
        peer: PeerId,
        request: Vec<u8>,
        reply: StoreReply,
    },
    Shutdown(oneshot::Sender<()>),
}

/// State shared between the node task and its handles.
#[derive(Debug, Default)]
pub(super) struct Shared {
    counters: Counters,
    state: Mutex<SharedState>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, SharedState> {
        // The state stays consistent even if a holder panicked: every update is one statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Default)]
struct SharedState {
    listen_addrs: Vec<Multiaddr>,
    connected: BTreeSet<PeerId>,
    /// The pubsub topics relayed on.
    topics: BTreeSet<PubsubTopic>,
    /// This node's ENR in text form, set at start.
    enr: Option<String>,
}

/// Where the raw response to a Store query of ours goes.
pub(super) type StoreReply = oneshot::Sender<Result<Vec<u8>, StoreError>>;

#[derive(Debug, Default)]
struct Counters {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    segments_out: AtomicU64,
    segments_in: AtomicU64,
    reassembly_pending_messages: AtomicU64,
    reassembly_pending_bytes: AtomicU64,
    peers_rejected: AtomicU64,
    send_failures: AtomicU64,
    store_queries_out: AtomicU64,
    store_queries_failed: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    reconnects: [AtomicU64; ReconnectReason::ALL.len()],
    store_answered: [AtomicU64; StoreOutcome::ALL.len()],
    store_dropped: [AtomicU64; StoreDropReason::ALL.len()],
    segments_dropped: [AtomicU64; SegmentDrop::ALL.len()],
    peers_discovered: AtomicU64,
    peer_exchange_served: AtomicU64,
    peers_pruned: AtomicU64,
    peers_banned: AtomicU64,
    peer_exchange_dropped: [AtomicU64; PeerExchangeDrop::ALL.len()],
    discv5_found: AtomicU64,
    discv5_dropped: [AtomicU64; Discv5Drop::ALL.len()],
}

fn load_all<const N: usize>(counters: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| counters[i].load(Ordering::Relaxed))
}
