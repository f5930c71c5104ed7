//! The relay node: a libp2p swarm (TCP + noise + yamux; gossipsub as Waku Relay, the
//! metadata protocol, identify, ping) driven by a tokio task, and the handle to talk to it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::identity::{Keypair, ed25519};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, noise, ping, tcp, yamux};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::config::{DEFAULT_MAX_MESSAGE_SIZE, MIN_MAX_MESSAGE_SIZE, TransportConfig};
use crate::error::{PublishError, TransportError};
use crate::liveness::{Liveness, PROBE_TOPIC, ReconnectReason};
use crate::message::{DropReason, MAX_META_LEN, MessageHash, MessageId, WakuMessage, unix_nanos};
use crate::metadata::{self, Metadata};
use crate::store::{
    self, MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE, STORE_PROTOCOL, StoreDropReason, StoreError,
    StoreOutcome, StoreQuery, StoreQueryRequest, StoreQueryResponse, StoreServer,
};
use crate::topics::{ContentTopic, PubsubTopic};

/// The gossipsub protocol id of Waku Relay (11/WAKU2-RELAY).
pub const RELAY_PROTOCOL: &str = "/vac/waku/relay/2.0.0";

/// How often peers from [`TransportConfig::peers`] that are not connected are redialled.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(5);

/// How long [`WakuRelay::start`] waits for its listeners to come up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a metadata request may take before the peer is disconnected.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections no protocol keeps alive are closed after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Gossipsub RPC frames up to this size are always read, whatever `max_message_size`: a
/// message up to js-waku's 1 MiB limit then reaches the validator (and is counted) instead of
/// failing the stream, and so does an RPC carrying full IHAVE, IWANT and IDONTWANT lists
/// ([`MAX_GOSSIP_IDS`] ids of 34 bytes each, about 510 KB).
const MIN_FRAME_LIMIT: usize = 2 * DEFAULT_MAX_MESSAGE_SIZE;

/// The most message ids in one IHAVE or IWANT, sent or asked for per heartbeat: js-waku's
/// and nwaku's `maxIHaveLength`.
const MAX_GOSSIP_IDS: usize = 5000;

/// The most IHAVE messages handled from one peer per heartbeat (js-waku and nwaku).
const MAX_IHAVE_MESSAGES: usize = 10;

/// Store streams a connection may have open at once; a peer's queries beyond
/// [`store::MAX_QUERIES_PER_PEER`] are still answered (`429`) up to this many.
const STORE_STREAMS_PER_CONNECTION: usize = 32;

/// A peer's listen addresses (from identify) kept for redialling it.
const MAX_PEER_ADDRS: usize = 8;

/// Something that happened on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// A valid message arrived from another node. A node's own publishes are never
    /// delivered back to it (gossipsub does not echo them).
    Message {
        /// The pubsub topic it arrived on, e.g. `/waku/2/rs/4242/0`.
        pubsub_topic: String,
        /// The message; its `content_topic` says which demls stream it belongs to.
        message: WakuMessage,
        /// Its gossipsub message id.
        id: MessageId,
        /// Its deterministic hash on `pubsub_topic`.
        hash: MessageHash,
    },
    /// A peer passed the cluster check and subscribed to our pubsub topic.
    PeerConnected(PeerId),
    /// The last connection to a peer reported by [`TransportEvent::PeerConnected`] closed.
    PeerDisconnected(PeerId),
    /// The node listens on this address (it ends with `/p2p/<peer id>`).
    Listening(Multiaddr),
}

/// What [`RelayHandle::publish`] sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The message as sent, with its timestamp.
    pub message: WakuMessage,
    /// Its gossipsub message id.
    pub id: MessageId,
    /// Its deterministic hash on the node's pubsub topic.
    pub hash: MessageHash,
}

/// A snapshot of the node's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportMetrics {
    /// Valid messages received from peers.
    pub messages_in: u64,
    /// Messages this node published.
    pub messages_out: u64,
    /// Peers currently connected (as in [`RelayHandle::connected_peers`]).
    pub peers: usize,
    /// Peers disconnected for another cluster id or a failed metadata exchange.
    pub peers_rejected: u64,
    /// Gossipsub messages to peers that were dropped because the peer's send queue was full
    /// or they waited in it too long (gossipsub's slow-peer reports).
    pub send_failures: u64,
    /// Store queries this node sent (one per page).
    pub store_queries_out: u64,
    /// Store queries this node sent that failed (error status, bad response, no answer).
    pub store_queries_failed: u64,
    dropped: [u64; DropReason::ALL.len()],
    reconnects: [u64; ReconnectReason::ALL.len()],
    store_answered: [u64; StoreOutcome::ALL.len()],
    store_dropped: [u64; StoreDropReason::ALL.len()],
}

impl TransportMetrics {
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
        check_config(&config)?;
        let keypair = match config.node_key {
            Some(mut secret) => ed25519::SecretKey::try_from_bytes(&mut secret)
                .map(|secret| Keypair::from(ed25519::Keypair::from(secret)))
                .map_err(|e| TransportError::NodeKey(e.to_string()))?,
            None => Keypair::generate_ed25519(),
        };
        let pubsub_topic = config.pubsub_topic();
        let mut swarm = build_swarm(keypair, &config)?;
        let topic = IdentTopic::new(pubsub_topic.to_string());
        let probe_topic = IdentTopic::new(PROBE_TOPIC);
        for t in [&topic, &probe_topic] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(t)
                .map_err(|e| TransportError::Setup(e.to_string()))?;
        }

        let (event_tx, event_rx) = mpsc::channel(config.event_capacity);
        let shared = Arc::new(Shared::default());
        let mut node = Node {
            swarm,
            topic,
            probe_topic,
            probes_sent: 0,
            probe_interval: config.probe_interval,
            last_probe: Instant::now(),
            liveness: Liveness::new(config.probe_interval),
            redial_on_close: HashMap::new(),
            store_server: StoreServer::new(config.store.clone()),
            store_queries: HashMap::new(),
            pubsub_topic,
            max_message_size: config.max_message_size,
            peers: HashMap::new(),
            bootstrap: config
                .peers
                .iter()
                .map(|addr| Bootstrap {
                    addr: addr.clone(),
                    peer: peer_id_of(addr),
                })
                .collect(),
            rejected: HashSet::new(),
            backlog: VecDeque::new(),
            backlog_limit: config.event_capacity,
            events: event_tx,
            shared: shared.clone(),
        };
        node.listen(&config.listen).await?;

        let local_peer_id = *node.swarm.local_peer_id();
        let (command_tx, command_rx) = mpsc::channel(64);
        tokio::spawn(node.run(command_rx));
        let handle = RelayHandle {
            commands: command_tx,
            shared,
            local_peer_id,
            pubsub_topic,
            max_message_size: config.max_message_size,
            store_queries_sent: Arc::new(AtomicU64::new(0)),
        };
        Ok((handle, event_rx))
    }
}

/// A cheap, cloneable handle to a running relay node.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    local_peer_id: PeerId,
    pubsub_topic: PubsubTopic,
    max_message_size: usize,
    /// Numbers the request ids of this handle's Store queries.
    store_queries_sent: Arc<AtomicU64>,
}

impl RelayHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The pubsub topic this node relays on.
    pub fn pubsub_topic(&self) -> PubsubTopic {
        self.pubsub_topic
    }

    /// Publishes `payload` on `content_topic` with the current time as timestamp. Returns once
    /// the message is queued to the connected subscribers (flood publishing); it is not
    /// delivered back to this node.
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
        let size = message.encoded_len();
        if size > self.max_message_size {
            return Err(PublishError::TooLarge {
                size,
                max: self.max_message_size,
            });
        }
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Publish { message, reply })
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

    /// Peers that passed the cluster check and are subscribed to our pubsub topic.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        self.shared.state().connected.iter().copied().collect()
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> TransportMetrics {
        let c = &self.shared.counters;
        TransportMetrics {
            messages_in: c.messages_in.load(Ordering::Relaxed),
            messages_out: c.messages_out.load(Ordering::Relaxed),
            peers: self.shared.state().connected.len(),
            peers_rejected: c.peers_rejected.load(Ordering::Relaxed),
            send_failures: c.send_failures.load(Ordering::Relaxed),
            store_queries_out: c.store_queries_out.load(Ordering::Relaxed),
            store_queries_failed: c.store_queries_failed.load(Ordering::Relaxed),
            dropped: load_all(&c.dropped),
            reconnects: load_all(&c.reconnects),
            store_answered: load_all(&c.store_answered),
            store_dropped: load_all(&c.store_dropped),
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
        let verified = response
            .await
            .map_err(|_| StoreError::Closed)
            .and_then(|raw| raw)
            .and_then(|raw| {
                let own = self.pubsub_topic.to_string();
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

enum Command {
    Publish {
        message: WakuMessage,
        reply: oneshot::Sender<Result<Published, PublishError>>,
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
struct Shared {
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
}

/// Where the raw response to a Store query of ours goes.
type StoreReply = oneshot::Sender<Result<Vec<u8>, StoreError>>;

#[derive(Debug, Default)]
struct Counters {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    peers_rejected: AtomicU64,
    send_failures: AtomicU64,
    store_queries_out: AtomicU64,
    store_queries_failed: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    reconnects: [AtomicU64; ReconnectReason::ALL.len()],
    store_answered: [AtomicU64; StoreOutcome::ALL.len()],
    store_dropped: [AtomicU64; StoreDropReason::ALL.len()],
}

fn load_all<const N: usize>(counters: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| counters[i].load(Ordering::Relaxed))
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    metadata: request_response::Behaviour<metadata::Codec>,
    store: request_response::Behaviour<store::Codec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

fn build_swarm(
    keypair: Keypair,
    config: &TransportConfig,
) -> Result<Swarm<Behaviour>, TransportError> {
    let setup = |e: &dyn std::fmt::Display| TransportError::Setup(e.to_string());
    let max_message_size = config.max_message_size;
    // Frames up to twice the message limit are read, so that oversize messages reach the
    // validator and are counted; larger frames are refused by the gossipsub codec. Control
    // messages may fill a whole frame: the codec's 16 KiB default fails the inbound stream on
    // the first IHAVE of ~500 ids, and Waku peers send up to 5000.
    let frame_limit = max_message_size.saturating_mul(2).max(MIN_FRAME_LIMIT);
    let gossipsub_config = gossipsub::ConfigBuilder::default()
        .protocol_id(RELAY_PROTOCOL, gossipsub::Version::V1_1)
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|message| gossipsub::MessageId::new(&MessageId::of(&message.data).0))
        .max_transmit_size(frame_limit)
        .max_control_message_size(frame_limit)
        .max_control_messages_sent(MAX_GOSSIP_IDS)
        .max_ihave_messages_heartbeat(MAX_IHAVE_MESSAGES)
        // nwaku's mesh parameters.
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(8)
        .history_length(6)
        .history_gossip(3)
        .heartbeat_initial_delay(Duration::from_millis(500))
        .duplicate_cache_time(Duration::from_secs(120))
        .build()
        .map_err(|e| setup(&e))?;
    let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossipsub_config)
        .map_err(|e| setup(&e))?;
    let metadata = request_response::Behaviour::with_codec(
        metadata::Codec,
        [(metadata::PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(METADATA_TIMEOUT),
    );
    // Only a node with a store advertises the protocol; any node can query.
    let store_support = if config.store.is_some() {
        ProtocolSupport::Full
    } else {
        ProtocolSupport::Outbound
    };
    let store = request_response::Behaviour::with_codec(
        store::Codec {
            // A page always holds one message, however large.
            max_response: MAX_RESPONSE_SIZE.max(max_message_size.saturating_mul(2)),
        },
        [(StreamProtocol::new(STORE_PROTOCOL), store_support)],
        request_response::Config::default()
            .with_request_timeout(config.store_timeout)
            .with_max_concurrent_streams(STORE_STREAMS_PER_CONNECTION),
    );
    let identify = identify::Behaviour::new(
        identify::Config::new("/ipfs/0.1.0".to_owned(), keypair.public())
            .with_agent_version(format!("demls-transport/{}", env!("CARGO_PKG_VERSION"))),
    );
    let behaviour = Behaviour {
        gossipsub,
        metadata,
        store,
        identify,
        ping: ping::Behaviour::default(),
    };
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_behaviour(|_| behaviour)
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build())
}

fn check_config(config: &TransportConfig) -> Result<(), TransportError> {
    if config.max_message_size < MIN_MAX_MESSAGE_SIZE {
        return Err(TransportError::Config(format!(
            "max_message_size {} is below {MIN_MAX_MESSAGE_SIZE}",
            config.max_message_size
        )));
    }
    if config.event_capacity == 0 {
        return Err(TransportError::Config("event_capacity is 0".into()));
    }
    if config.probe_interval.is_zero() {
        return Err(TransportError::Config("probe_interval is 0".into()));
    }
    if config.store_timeout.is_zero() {
        return Err(TransportError::Config("store_timeout is 0".into()));
    }
    config.peers.iter().try_for_each(check_dialable)
}

/// Accepts `/ip4|ip6/<host>/tcp/<port>` optionally followed by `/p2p/<peer id>`.
fn check_dialable(addr: &Multiaddr) -> Result<(), TransportError> {
    let mut parts = addr.iter();
    let ip = matches!(parts.next(), Some(Protocol::Ip4(_) | Protocol::Ip6(_)));
    let tcp = matches!(parts.next(), Some(Protocol::Tcp(_)));
    let rest_ok = match parts.next() {
        None => true,
        Some(Protocol::P2p(_)) => parts.next().is_none(),
        Some(_) => false,
    };
    if ip && tcp && rest_ok {
        Ok(())
    } else {
        Err(TransportError::Dial {
            addr: addr.clone(),
            reason: "expected /ip4|ip6/<address>/tcp/<port>[/p2p/<peer id>]".into(),
        })
    }
}

/// libp2p binds listeners with `SO_REUSEPORT`, so a second node on a taken port would
/// silently share it; a plain bind first turns that into an error.
fn ensure_port_free(addr: &Multiaddr) -> Result<(), TransportError> {
    let mut parts = addr.iter();
    let ip: std::net::IpAddr = match parts.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Ok(()),
    };
    match parts.next() {
        Some(Protocol::Tcp(port)) if port != 0 => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| TransportError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            }),
        _ => Ok(()),
    }
}

fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// A configured peer, with its peer id once known.
struct Bootstrap {
    addr: Multiaddr,
    peer: Option<PeerId>,
}

#[derive(Debug, Default)]
struct PeerState {
    cluster_ok: bool,
    subscribed: bool,
    reported: bool,
    rejected: bool,
    /// Where the peer can be redialled: the address we dialled, or those it listens on.
    addrs: Vec<Multiaddr>,
}

impl PeerState {
    fn add_addr(&mut self, addr: Multiaddr) {
        if self.addrs.len() < MAX_PEER_ADDRS && !self.addrs.contains(&addr) {
            self.addrs.push(addr);
        }
    }
}

struct Node {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    probe_topic: IdentTopic,
    probes_sent: u64,
    probe_interval: Duration,
    last_probe: Instant,
    liveness: Liveness,
    /// Peers being reconnected, with the addresses to redial once their connections closed.
    redial_on_close: HashMap<PeerId, Vec<Multiaddr>>,
    store_server: StoreServer,
    /// Our Store queries waiting for their answer.
    store_queries: HashMap<request_response::OutboundRequestId, StoreReply>,
    pubsub_topic: PubsubTopic,
    max_message_size: usize,
    peers: HashMap<PeerId, PeerState>,
    bootstrap: Vec<Bootstrap>,
    /// Peers that stated another cluster: never redialled.
    rejected: HashSet<PeerId>,
    /// Events waiting for room in the channel.
    backlog: VecDeque<TransportEvent>,
    backlog_limit: usize,
    events: mpsc::Sender<TransportEvent>,
    shared: Arc<Shared>,
}

impl Node {
    /// Binds every listen address and waits until each has reported an address.
    async fn listen(&mut self, addrs: &[Multiaddr]) -> Result<(), TransportError> {
        let mut pending = HashMap::new();
        for addr in addrs {
            ensure_port_free(addr)?;
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| TransportError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
            pending.insert(id, addr.clone());
        }
        let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
        while !pending.is_empty() {
            let event = tokio::time::timeout_at(deadline, self.swarm.select_next_some())
                .await
                .map_err(|_| TransportError::Listen {
                    addr: pending
                        .values()
                        .next()
                        .cloned()
                        .unwrap_or_else(Multiaddr::empty),
                    reason: "timed out waiting for the listener".into(),
                })?;
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    pending.remove(listener_id);
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = pending.remove(listener_id) {
                        return Err(TransportError::Listen {
                            addr,
                            reason: error.to_string(),
                        });
                    }
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } => {
                    if let Some(addr) = pending.remove(listener_id) {
                        return Err(TransportError::Listen {
                            addr,
                            reason: format!("listener closed: {reason:?}"),
                        });
                    }
                }
                _ => {}
            }
            self.on_swarm_event(event);
        }
        Ok(())
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = tokio::time::interval(self.probe_interval);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let events = self.events.clone();
        let done = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Publish { message, reply }) => {
                        // The caller may have given up waiting; the message went out either way.
                        let _ = reply.send(self.publish(message));
                    }
                    Some(Command::Dial { addr, reply }) => {
                        let _ = reply.send(self.dial(addr));
                    }
                    Some(Command::StoreQuery { peer, request, reply }) => {
                        let id = self.swarm.behaviour_mut().store.send_request(&peer, request);
                        self.store_queries.insert(id, reply);
                    }
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    None => break None,
                },
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        let was_full = self.backlog.len() >= self.backlog_limit;
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                        if was_full {
                            // We did not read the network meanwhile: that silence was ours.
                            self.liveness.excuse(Instant::now());
                        }
                    }
                    Err(_) => self.backlog.clear(),
                },
                event = self.swarm.select_next_some(), if self.backlog.len() < self.backlog_limit => {
                    self.on_swarm_event(event);
                }
                answer = self.store_server.next_answer(), if self.store_server.is_busy() => {
                    self.send_store_answer(answer);
                }
                _ = redial.tick() => self.redial(),
                _ = probe.tick() => self.probe(),
            }
        };
        {
            let mut state = self.shared.state();
            state.listen_addrs.clear();
            state.connected.clear();
        }
        drop(self);
        if let Some(reply) = done {
            // The caller may have stopped waiting; nothing to do then.
            let _ = reply.send(());
        }
    }

    fn emit(&mut self, event: TransportEvent) {
        if !self.events.is_closed() {
            self.backlog.push_back(event);
        }
    }

    fn dial(&mut self, addr: Multiaddr) -> Result<(), TransportError> {
        self.swarm
            .dial(addr.clone())
            .map_err(|e| TransportError::Dial {
                addr,
                reason: e.to_string(),
            })
    }

    fn publish(&mut self, message: WakuMessage) -> Result<Published, PublishError> {
        let data = message.encode_to_vec();
        let id = MessageId::of(&data);
        let hash = message.hash(&self.pubsub_topic.to_string());
        let size = data.len();
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
        {
            Ok(_) => {
                self.shared
                    .counters
                    .messages_out
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Published { message, id, hash })
            }
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Err(PublishError::NoPeers),
            Err(gossipsub::PublishError::Duplicate) => Err(PublishError::Duplicate),
            Err(gossipsub::PublishError::AllQueuesFull(_)) => Err(PublishError::QueuesFull),
            Err(gossipsub::PublishError::MessageTooLarge) => Err(PublishError::TooLarge {
                size,
                max: self.max_message_size,
            }),
            Err(e) => Err(PublishError::Gossipsub(e.to_string())),
        }
    }

    fn redial(&mut self) {
        for target in &self.bootstrap {
            let opts = match target.peer {
                Some(peer) if self.swarm.is_connected(&peer) || self.rejected.contains(&peer) => {
                    continue;
                }
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![target.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id()
                    .address(target.addr.clone())
                    .build(),
            };
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(addr = %target.addr, error = %e, "redial not started");
            }
        }
    }

    /// Sends this node's liveness probe and reconnects the probing peers it no longer hears.
    fn probe(&mut self) {
        let now = Instant::now();
        // A tick far behind schedule means this process did not run (stopped, starved): peers
        // were not silent, we were not listening.
        let late = now.saturating_duration_since(self.last_probe) > 2 * self.probe_interval;
        let reading = self.backlog.len() < self.backlog_limit;
        self.last_probe = now;
        if late || !reading {
            self.liveness.excuse(now);
        }
        self.probes_sent += 1;
        let mut data = self.probes_sent.to_be_bytes().to_vec();
        data.extend_from_slice(&self.swarm.local_peer_id().to_bytes());
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.probe_topic.clone(), data)
        {
            // No demls peer is connected, or every queue is full: nothing to probe.
            tracing::trace!(error = %e, "liveness probe not sent");
        }
        for peer in self.liveness.silent(now) {
            self.reconnect(peer, ReconnectReason::Silent);
        }
    }

    /// Disconnects `peer` and redials it once its connections have closed.
    fn reconnect(&mut self, peer: PeerId, reason: ReconnectReason) {
        let addrs = self
            .peers
            .get(&peer)
            .map(|p| p.addrs.clone())
            .unwrap_or_default();
        tracing::warn!(%peer, %reason, ?addrs, "gossipsub stopped flowing; reconnecting peer");
        self.shared.counters.reconnects[reason.index()].fetch_add(1, Ordering::Relaxed);
        self.redial_on_close.insert(peer, addrs);
        // An error means the peer is already gone; the redial follows its close either way.
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let address = address
                    .with_p2p(*self.swarm.local_peer_id())
                    .unwrap_or_else(|a| a);
                tracing::info!(%address, "listening");
                self.shared.state().listen_addrs.push(address.clone());
                self.emit(TransportEvent::Listening(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let address = address
                    .with_p2p(*self.swarm.local_peer_id())
                    .unwrap_or_else(|a| a);
                self.shared.state().listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if let ConnectedPoint::Dialer { address, .. } = &endpoint {
                    for target in &mut self.bootstrap {
                        if target.peer.is_none() && target.addr == *address {
                            target.peer = Some(peer_id);
                        }
                    }
                }
                if num_established.get() == 1 {
                    tracing::debug!(%peer_id, "connected; requesting metadata");
                    self.liveness.connected(peer_id, Instant::now());
                    self.peers.insert(peer_id, PeerState::default());
                    let request = self.own_metadata();
                    self.swarm
                        .behaviour_mut()
                        .metadata
                        .send_request(&peer_id, request);
                }
                if let (ConnectedPoint::Dialer { address, .. }, Some(state)) =
                    (&endpoint, self.peers.get_mut(&peer_id))
                {
                    state.add_addr(address.clone());
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.on_disconnected(peer_id),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossipsub(event),
            SwarmEvent::Behaviour(BehaviourEvent::Metadata(event)) => self.on_metadata(event),
            SwarmEvent::Behaviour(BehaviourEvent::Store(event)) => self.on_store(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    for addr in info.listen_addrs {
                        if check_dialable(&addr).is_ok() {
                            state.add_addr(addr);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_disconnected(&mut self, peer_id: PeerId) {
        self.liveness.disconnected(&peer_id);
        if self.peers.remove(&peer_id).is_some_and(|p| p.reported) {
            self.shared.state().connected.remove(&peer_id);
            self.emit(TransportEvent::PeerDisconnected(peer_id));
        }
        if let Some(addrs) = self.redial_on_close.remove(&peer_id) {
            let opts = DialOpts::peer_id(peer_id)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer_id, error = %e, "redial after reconnect not started");
            }
        }
    }

    fn on_gossipsub(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                self.liveness.heard(&propagation_source, Instant::now());
                if message.topic == self.probe_topic.hash() {
                    // Probes are for the direct peer only: never delivered nor forwarded.
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    return;
                }
                let verdict = WakuMessage::decode_relay(&message.data, self.max_message_size);
                let acceptance = match &verdict {
                    Ok(_) => MessageAcceptance::Accept,
                    Err(_) => MessageAcceptance::Reject,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                let counters = &self.shared.counters;
                match verdict {
                    Ok(waku) => {
                        counters.messages_in.fetch_add(1, Ordering::Relaxed);
                        let pubsub_topic = message.topic.into_string();
                        let hash = waku.hash(&pubsub_topic);
                        self.emit(TransportEvent::Message {
                            pubsub_topic,
                            message: waku,
                            id: MessageId::of(&message.data),
                            hash,
                        });
                    }
                    Err(reason) => {
                        counters.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%propagation_source, %reason, "dropped relay message");
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let now = Instant::now();
                self.liveness.heard(&peer_id, now);
                if topic == self.probe_topic.hash() {
                    self.liveness.probing(&peer_id, now);
                } else if topic == self.topic.hash() {
                    if let Some(state) = self.peers.get_mut(&peer_id) {
                        state.subscribed = true;
                    }
                    self.report_if_ready(peer_id);
                }
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                let failed = failed_messages.priority + failed_messages.non_priority;
                self.shared
                    .counters
                    .send_failures
                    .fetch_add(failed as u64, Ordering::Relaxed);
                tracing::debug!(%peer_id, failed, "gossipsub could not send to a slow peer");
                if let Some(reason) = self.liveness.slow(&peer_id, Instant::now()) {
                    self.reconnect(peer_id, reason);
                }
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::debug!(%peer_id, "peer does not speak {RELAY_PROTOCOL}");
            }
            _ => {}
        }
    }

    fn on_metadata(&mut self, event: request_response::Event<Metadata, Metadata>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let response = self.own_metadata();
                    if self
                        .swarm
                        .behaviour_mut()
                        .metadata
                        .send_response(channel, response)
                        .is_err()
                    {
                        tracing::debug!(%peer, "metadata response not sent: stream gone");
                    }
                    self.check_cluster(peer, &request);
                }
                request_response::Message::Response { response, .. } => {
                    self.check_cluster(peer, &response);
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                let closed = matches!(
                    error,
                    request_response::OutboundFailure::ConnectionClosed
                        | request_response::OutboundFailure::DialFailure
                );
                let unconfirmed = self.peers.get(&peer).is_some_and(|p| !p.cluster_ok);
                if !closed && unconfirmed {
                    self.reject(peer, &format!("metadata exchange failed: {error}"));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound metadata request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_store(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if let Some(answer) = self.store_server.on_request(peer, &request, channel) {
                        self.send_store_answer(answer);
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.store_queries.remove(&request_id) {
                        // The caller may have given up waiting.
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %error, "store query failed");
                let error = match error {
                    request_response::OutboundFailure::DialFailure => StoreError::Unreachable,
                    request_response::OutboundFailure::Timeout => StoreError::Timeout,
                    request_response::OutboundFailure::UnsupportedProtocols => {
                        StoreError::Unsupported
                    }
                    request_response::OutboundFailure::ConnectionClosed => {
                        StoreError::Connection("connection closed".into())
                    }
                    request_response::OutboundFailure::Io(e) => {
                        StoreError::Connection(e.to_string())
                    }
                };
                if let Some(reply) = self.store_queries.remove(&request_id) {
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                // An oversize or truncated query, a timeout, or the peer left: no answer.
                tracing::debug!(%peer, %error, "inbound store query failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn send_store_answer(&mut self, answer: store::Answer) {
        self.shared.counters.store_answered[answer.outcome.index()].fetch_add(1, Ordering::Relaxed);
        if self
            .swarm
            .behaviour_mut()
            .store
            .send_response(answer.channel, answer.response)
            .is_err()
        {
            tracing::debug!("store answer not sent: the query timed out or the peer left");
        }
    }

    fn own_metadata(&self) -> Metadata {
        Metadata {
            cluster_id: Some(u32::from(self.pubsub_topic.cluster_id)),
            shards: vec![u32::from(self.pubsub_topic.shard)],
        }
    }

    fn check_cluster(&mut self, peer: PeerId, remote: &Metadata) {
        if remote.cluster_id == Some(u32::from(self.pubsub_topic.cluster_id)) {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.cluster_ok = true;
            }
            self.report_if_ready(peer);
        } else {
            self.rejected.insert(peer);
            let reason = match remote.cluster_id {
                Some(id) => format!("cluster id {id}, ours is {}", self.pubsub_topic.cluster_id),
                None => "no cluster id".to_owned(),
            };
            self.reject(peer, &reason);
        }
    }

    /// Disconnects `peer` (once per connection) and counts it.
    fn reject(&mut self, peer: PeerId, reason: &str) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.rejected {
            return;
        }
        state.rejected = true;
        tracing::warn!(%peer, reason, "disconnecting peer");
        self.shared
            .counters
            .peers_rejected
            .fetch_add(1, Ordering::Relaxed);
        // An error means the peer is already gone.
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn report_if_ready(&mut self, peer: PeerId) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.cluster_ok && state.subscribed && !state.reported && !state.rejected {
            state.reported = true;
            tracing::info!(%peer, "peer connected");
            self.shared.state().connected.insert(peer);
            self.emit(TransportEvent::PeerConnected(peer));
        }
    }
}
