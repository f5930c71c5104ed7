//! The task that drives a relay node: the swarm, its peers, liveness, Store queries both
//! ways, and the commands of its handles.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use prost::Message as _;
use tokio::sync::mpsc;

use crate::config::{DEFAULT_MAX_MESSAGE_SIZE, TransportConfig};
use crate::dht::{self, Dht, Discv5Config};
use crate::enr_shards::{EnrShards, shards_meet};
use crate::error::{PublishError, ShardError, TransportError};
use crate::liveness::{Liveness, PROBE_TOPIC, ReconnectReason};
use crate::message::{DropReason, MessageId, WakuMessage};
use crate::metadata::Metadata;
use crate::peer_exchange::{self, ExchangePeer};
use crate::segmentation::{Reassembler, Reassembly, SegmentDrop, SegmentMessage, is_segment};
use crate::store::{self, StoreError, StoreServer};
use crate::topics::{MAX_RELAY_SHARDS, PubsubTopic};

use super::swarm::{
    Behaviour, BehaviourEvent, GRAYLIST_THRESHOLD, check_dialable, ensure_port_free, peer_id_of,
    relay_topic, topic_score_params,
};
use super::{
    BAN_DURATION, Command, Published, REDIAL_INTERVAL, RELAY_PROTOCOL, Shared, StoreReply,
    TransportEvent,
};

/// How long [`super::WakuRelay::start`] waits for its listeners to come up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer's listen addresses (from identify) kept for redialling it.
const MAX_PEER_ADDRS: usize = 8;

/// Peers learned through peer exchange that are kept (to dial, and to pass on).
const MAX_EXCHANGE_PEERS: usize = 64;

/// Banned peers remembered at once; beyond this, the ban closest to its end is lifted early.
const MAX_BANNED: usize = 1024;

/// Most peers remembered as turned away by the metadata check. One forgotten is only dialled,
/// and turned away, again; the bound keeps a stream of foreign nodes (a shared discovery DHT,
/// or made-up records) from growing the set for ever.
const MAX_REJECTED: usize = 1024;

/// Why the metadata check turned a peer away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Another cluster, or none stated: for good.
    Cluster,
    /// Our cluster, but no shard in common: until this node relays on another shard.
    NoSharedShard,
}

/// A configured peer, with its peer id once known.
struct Bootstrap {
    addr: Multiaddr,
    peer: Option<PeerId>,
}

#[derive(Debug, Default)]
struct PeerState {
    cluster_ok: bool,
    /// Whether it subscribed to one of the shards we relay on.
    subscribed: bool,
    reported: bool,
    rejected: bool,
    /// When its first connection was established.
    connected_at: Option<Instant>,
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

pub(super) struct Node {
    swarm: Swarm<Behaviour>,
    /// The shards relayed on, by their gossipsub topic.
    topics: BTreeMap<TopicHash, PubsubTopic>,
    cluster_id: u16,
    probe_topic: IdentTopic,
    probes_sent: u64,
    probe_interval: Duration,
    last_probe: Instant,
    liveness: Liveness,
    /// Peers being reconnected, with the addresses to redial once their connections closed.
    redial_on_close: HashMap<PeerId, Vec<Multiaddr>>,
    store_server: StoreServer,
    /// Large messages arriving in segments.
    reassembler: Reassembler,
    /// This node's key, to sign its ENR.
    keypair: Keypair,
    /// This node's ENR, once it listens on an address others can dial.
    own_enr: Option<Vec<u8>>,
    /// Peers learned through peer exchange, oldest first.
    exchange: VecDeque<ExchangePeer>,
    /// Whether to seek peers through peer exchange.
    peer_exchange: bool,
    target_peers: usize,
    max_peers: usize,
    /// Which connected peer the next periodic exchange query goes to.
    exchange_turn: usize,
    /// Where learned peers are kept across restarts.
    peers_file: Option<std::path::PathBuf>,
    /// The discv5 service, if the node runs one.
    dht: Option<Dht>,
    /// The peers in `exchange` that discv5 found: with discv5 on, only these (and this node)
    /// are served to peer exchange queries, as the RFC asks.
    sampled: HashSet<PeerId>,
    /// Our Store queries waiting for their answer.
    store_queries: HashMap<request_response::OutboundRequestId, StoreReply>,
    max_message_size: usize,
    peers: HashMap<PeerId, PeerState>,
    bootstrap: Vec<Bootstrap>,
    /// Peers turned away by the metadata check, and why: not redialled (those with no shard
    /// in common, until this node joins another shard). At most [`MAX_REJECTED`].
    rejected: HashMap<PeerId, Refusal>,
    /// Peers whose score fell below the graylist threshold, with the end of their ban.
    banned: HashMap<PeerId, Instant>,
    /// Events waiting for room in the channel.
    backlog: VecDeque<TransportEvent>,
    backlog_limit: usize,
    events: mpsc::Sender<TransportEvent>,
    shared: Arc<Shared>,
}

impl Node {
    /// A node for `config` driving `swarm`, subscribed to `topics` and the probe topic,
    /// sending its events to `events`.
    pub(super) fn new(
        config: &TransportConfig,
        topics: BTreeSet<PubsubTopic>,
        keypair: Keypair,
        mut swarm: Swarm<Behaviour>,
        shared: Arc<Shared>,
        events: mpsc::Sender<TransportEvent>,
    ) -> Result<Node, TransportError> {
        let probe_topic = IdentTopic::new(PROBE_TOPIC);
        let relay_topics: Vec<IdentTopic> = topics.iter().map(relay_topic).collect();
        for t in relay_topics.iter().chain([&probe_topic]) {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(t)
                .map_err(|e| TransportError::Setup(e.to_string()))?;
        }
        shared.state().topics = topics.clone();
        Ok(Node {
            swarm,
            topics: relay_topics
                .iter()
                .map(IdentTopic::hash)
                .zip(topics)
                .collect(),
            cluster_id: config.cluster_id,
            probe_topic,
            probes_sent: 0,
            probe_interval: config.probe_interval,
            last_probe: Instant::now(),
            liveness: Liveness::new(config.probe_interval),
            redial_on_close: HashMap::new(),
            store_server: StoreServer::new(config.store.clone()),
            reassembler: Reassembler::new(config.segmentation.clone()),
            keypair,
            own_enr: None,
            exchange: VecDeque::new(),
            peer_exchange: config.peer_exchange,
            target_peers: config.target_peers,
            max_peers: config.max_peers,
            exchange_turn: 0,
            peers_file: config.peers_file.clone(),
            dht: None,
            sampled: HashSet::new(),
            store_queries: HashMap::new(),
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
            rejected: HashMap::new(),
            banned: HashMap::new(),
            backlog: VecDeque::new(),
            backlog_limit: config.event_capacity,
            events,
            shared,
        })
    }

    pub(super) fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Binds every listen address and waits until each has reported an address.
    pub(super) async fn listen(&mut self, addrs: &[Multiaddr]) -> Result<(), TransportError> {
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

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = tokio::time::interval(self.probe_interval);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let events = self.events.clone();
        let done = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Publish { pubsub_topic, message, wire, reply }) => {
                        // The caller may have given up waiting; the message went out either way.
                        let _ = reply.send(self.publish(pubsub_topic, message, wire));
                    }
                    Some(Command::Join { topic, reply }) => {
                        let _ = reply.send(self.join(topic));
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
                _ = redial.tick() => {
                    let now = Instant::now();
                    self.banned.retain(|_, until| *until > now);
                    self.redial();
                    self.seek_peers();
                    self.prune();
                }
                _ = probe.tick() => self.probe(),
                found = next_found(&mut self.dht) => match found {
                    Some(enr) => self.on_discv5_found(&enr),
                    None => {
                        tracing::warn!("discv5 stopped");
                        self.dht = None;
                    }
                },
            }
        };
        {
            let mut state = self.shared.state();
            state.listen_addrs.clear();
            state.connected.clear();
            state.topics.clear();
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
            .dial(dial_unknown(addr.clone()))
            .map_err(|e| TransportError::Dial {
                addr,
                reason: e.to_string(),
            })
    }

    /// Relays on `topic` from now on, with the same score parameters as the other shards; then
    /// peers already subscribed to it count as connected.
    fn join(&mut self, topic: PubsubTopic) -> Result<(), ShardError> {
        let ident = relay_topic(&topic);
        let hash = ident.hash();
        if self.topics.contains_key(&hash) {
            return Ok(());
        }
        if self.topics.len() >= MAX_RELAY_SHARDS {
            return Err(ShardError::TooManyShards { shard: topic.shard });
        }
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        // Scored from the first message on; params for a topic never joined do no harm.
        gossipsub
            .set_topic_params(ident.clone(), topic_score_params())
            .map_err(|e| ShardError::Subscribe(e.to_owned()))?;
        gossipsub
            .subscribe(&ident)
            .map_err(|e| ShardError::Subscribe(e.to_string()))?;
        tracing::info!(%topic, "relaying on another shard");
        // A peer turned away for having none of our shards may have this one.
        self.rejected
            .retain(|_, refusal| *refusal != Refusal::NoSharedShard);
        self.topics.insert(hash.clone(), topic);
        self.shared.state().topics.insert(topic);
        // Our ENRs state our shards: the peer exchange one is rebuilt when next asked for.
        self.own_enr = None;
        if let Some(dht) = &self.dht {
            dht.announce_shards(&self.own_shards());
        }
        self.publish_own_enr();
        let subscribers: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in subscribers {
            if let Some(state) = self.peers.get_mut(&peer) {
                state.subscribed = true;
            }
            self.report_if_ready(peer);
        }
        Ok(())
    }

    /// Publishes `wire` (`message` itself or its segments) in order on `pubsub_topic`, joining
    /// it first; stops at the first failure.
    fn publish(
        &mut self,
        pubsub_topic: PubsubTopic,
        message: WakuMessage,
        wire: Vec<WakuMessage>,
    ) -> Result<Published, PublishError> {
        self.join(pubsub_topic)?;
        let topic = relay_topic(&pubsub_topic);
        let segments = wire.len();
        let mut largest_wire_bytes = 0;
        for piece in wire {
            let data = piece.encode_to_vec();
            let size = data.len();
            largest_wire_bytes = largest_wire_bytes.max(size);
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), data)
            {
                Ok(_) => {}
                Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                    return Err(PublishError::NoPeers);
                }
                Err(gossipsub::PublishError::Duplicate) => return Err(PublishError::Duplicate),
                Err(gossipsub::PublishError::AllQueuesFull(_)) => {
                    return Err(PublishError::QueuesFull);
                }
                Err(gossipsub::PublishError::MessageTooLarge) => {
                    return Err(PublishError::TooLarge {
                        size,
                        max: self.max_message_size,
                    });
                }
                Err(e) => return Err(PublishError::Gossipsub(e.to_string())),
            }
        }
        let counters = &self.shared.counters;
        counters.messages_out.fetch_add(1, Ordering::Relaxed);
        if segments > 1 {
            counters
                .segments_out
                .fetch_add(segments as u64, Ordering::Relaxed);
        }
        let id = MessageId::of(&message.encode_to_vec());
        let hash = message.hash(&pubsub_topic.to_string());
        Ok(Published {
            message,
            id,
            hash,
            pubsub_topic,
            segments,
            largest_wire_bytes,
        })
    }

    fn redial(&mut self) {
        for target in &self.bootstrap {
            let opts = match target.peer {
                Some(peer) if !self.may_dial(&peer) => continue,
                Some(peer) => dial_known(peer, vec![target.addr.clone()]),
                None => dial_unknown(target.addr.clone()),
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
        self.reassembler.expire(now);
        self.publish_reassembly_counters();
        for peer in self.liveness.silent(now) {
            self.reconnect(peer, ReconnectReason::Silent);
        }
    }

    /// Whether `peer` is worth dialling: not connected, not turned away, not banned.
    fn may_dial(&self, peer: &PeerId) -> bool {
        !(self.swarm.is_connected(peer) || self.rejected.contains_key(peer) || self.is_banned(peer))
    }

    fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned
            .get(peer)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Disconnects and bans `peer`, which just sent an invalid message, if its score is below
    /// the graylist threshold: gossipsub ignores everything it sends from there on, so the
    /// connection only costs. Only invalid messages lead here: a score that fell for broken
    /// gossip promises alone belongs as often to an honest peer that is only slow (a loaded
    /// CPU, a congested link), and banning it would cut the network where it is weakest.
    fn ban_if_graylisted(&mut self, peer: PeerId) {
        let Some(score) = self.swarm.behaviour().gossipsub.peer_score(&peer) else {
            return;
        };
        if score >= GRAYLIST_THRESHOLD || self.is_banned(&peer) {
            return;
        }
        tracing::warn!(%peer, score, ban = ?BAN_DURATION, "peer score below the graylist threshold; banning peer");
        if self.banned.len() >= MAX_BANNED
            && let Some(soonest) = self
                .banned
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(peer, _)| *peer)
        {
            self.banned.remove(&soonest);
        }
        self.banned.insert(peer, Instant::now() + BAN_DURATION);
        self.redial_on_close.remove(&peer);
        self.shared
            .counters
            .peers_banned
            .fetch_add(1, Ordering::Relaxed);
        // An error means the peer is already gone.
        let _ = self.swarm.disconnect_peer_id(peer);
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
                if self.is_banned(&peer_id) {
                    tracing::debug!(%peer_id, "banned peer connected; disconnecting");
                    // An error means the peer is already gone.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 {
                    tracing::debug!(%peer_id, "connected; requesting metadata");
                    self.liveness.connected(peer_id, Instant::now());
                    self.peers.insert(
                        peer_id,
                        PeerState {
                            connected_at: Some(Instant::now()),
                            ..PeerState::default()
                        },
                    );
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
            SwarmEvent::Behaviour(BehaviourEvent::PeerExchange(event)) => {
                self.on_peer_exchange(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                self.on_mdns_discovered(found);
            }
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

    /// Hands a valid message to the node above.
    fn deliver(&mut self, pubsub_topic: String, message: WakuMessage, id: MessageId) {
        self.shared
            .counters
            .messages_in
            .fetch_add(1, Ordering::Relaxed);
        let hash = message.hash(&pubsub_topic);
        self.emit(TransportEvent::Message {
            pubsub_topic,
            message,
            id,
            hash,
        });
    }

    /// Copies the reassembler's drop counts and gauges into the shared counters.
    fn publish_reassembly_counters(&self) {
        let counters = &self.shared.counters;
        for reason in SegmentDrop::ALL {
            counters.segments_dropped[reason.index()]
                .store(self.reassembler.dropped(reason), Ordering::Relaxed);
        }
        counters.reassembly_pending_messages.store(
            self.reassembler.pending_messages() as u64,
            Ordering::Relaxed,
        );
        counters
            .reassembly_pending_bytes
            .store(self.reassembler.pending_bytes() as u64, Ordering::Relaxed);
    }

    fn on_disconnected(&mut self, peer_id: PeerId) {
        self.liveness.disconnected(&peer_id);
        if self.peers.remove(&peer_id).is_some_and(|p| p.reported) {
            self.shared.state().connected.remove(&peer_id);
            self.emit(TransportEvent::PeerDisconnected(peer_id));
        }
        if let Some(addrs) = self.redial_on_close.remove(&peer_id) {
            let opts = dial_known(peer_id, addrs);
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
                let verdict = WakuMessage::decode_relay(&message.data, self.max_message_size)
                    .and_then(|waku| {
                        // Segments are checked before they are forwarded; whether they complete
                        // a message is for each receiver to find out.
                        if is_segment(&waku) && SegmentMessage::decode_valid(&waku.payload).is_err()
                        {
                            Err(DropReason::MalformedSegment)
                        } else {
                            Ok(waku)
                        }
                    });
                let acceptance = match &verdict {
                    Ok(_) => MessageAcceptance::Accept,
                    Err(reason) => acceptance_of_refused(*reason, message.data.len()),
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                let counters = &self.shared.counters;
                match verdict {
                    Ok(waku) if is_segment(&waku) => {
                        counters.segments_in.fetch_add(1, Ordering::Relaxed);
                        let reassembly = self.reassembler.insert(waku, Instant::now());
                        self.publish_reassembly_counters();
                        if let Reassembly::Complete(whole) = reassembly {
                            let id = MessageId::of(&whole.encode_to_vec());
                            self.deliver(message.topic.into_string(), whole, id);
                        }
                    }
                    Ok(waku) => {
                        self.deliver(
                            message.topic.into_string(),
                            waku,
                            MessageId::of(&message.data),
                        );
                    }
                    Err(reason) => {
                        counters.dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%propagation_source, %reason, "dropped relay message");
                        if acceptance == MessageAcceptance::Reject {
                            self.ban_if_graylisted(propagation_source);
                        }
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let now = Instant::now();
                self.liveness.heard(&peer_id, now);
                if topic == self.probe_topic.hash() {
                    self.liveness.probing(&peer_id, now);
                } else if self.topics.contains_key(&topic) {
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

    /// Our cluster and shards, as our ENRs state them.
    fn own_shards(&self) -> EnrShards {
        EnrShards {
            cluster_id: self.cluster_id,
            shards: self.topics.values().map(|t| t.shard).collect(),
        }
    }

    /// Whether a peer learned from its ENR can relay for us: its ENR states no shards, or our
    /// cluster and, when both sides relay on shards, one of ours. Others (a shared discv5 DHT
    /// holds nodes of every Waku network) are not dialled.
    fn relays_for_us(&self, learned: &ExchangePeer) -> bool {
        let ours = self.own_shards();
        learned
            .shards
            .as_ref()
            .is_none_or(|theirs| theirs.fit(ours.cluster_id, &ours.shards))
    }

    /// Our cluster and every shard we relay on (in order).
    fn own_metadata(&self) -> Metadata {
        let own = self.own_shards();
        Metadata {
            cluster_id: Some(u32::from(own.cluster_id)),
            shards: own.shards.into_iter().map(u32::from).collect(),
        }
    }

    /// Keeps `peer` if its metadata states our cluster and, when both sides relay on shards,
    /// one of ours ([`shards_meet`]). A peer that fails is disconnected and not dialled again.
    fn check_cluster(&mut self, peer: PeerId, remote: &Metadata) {
        let ours = u32::from(self.cluster_id);
        let shared_shard = shards_meet(
            &remote.shards.iter().copied().collect(),
            &self.own_metadata().shards.into_iter().collect(),
        );
        let reason = match remote.cluster_id {
            Some(id) if id == ours && shared_shard => None,
            Some(id) if id == ours => Some((
                Refusal::NoSharedShard,
                format!(
                    "no shard in common: theirs {:?}, ours {:?}",
                    remote.shards,
                    self.own_metadata().shards
                ),
            )),
            Some(id) => Some((Refusal::Cluster, format!("cluster id {id}, ours is {ours}"))),
            None => Some((Refusal::Cluster, "no cluster id".to_owned())),
        };
        match reason {
            None => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.cluster_ok = true;
                }
                self.report_if_ready(peer);
            }
            Some((refusal, reason)) => {
                if self.rejected.len() >= MAX_REJECTED && !self.rejected.contains_key(&peer) {
                    let forgotten = self.rejected.keys().next().copied();
                    if let Some(forgotten) = forgotten {
                        self.rejected.remove(&forgotten);
                    }
                }
                self.rejected.insert(peer, refusal);
                self.reject(peer, &reason);
            }
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
            if self.peer_exchange {
                self.ask_for_peers(peer);
            }
        }
    }
}

/// Peer exchange: answering peers' queries, asking peers, and dialling what they tell.
impl Node {
    fn ask_for_peers(&mut self, peer: PeerId) {
        let query = peer_exchange::query(peer_exchange::MAX_PEERS_PER_RESPONSE as u64);
        self.swarm
            .behaviour_mut()
            .peer_exchange
            .send_request(&peer, query);
    }

    /// While below the target number of peers: dials learned peers, and asks one connected
    /// peer (in turn) for more.
    fn seek_peers(&mut self) {
        if !self.peer_exchange && self.dht.is_none() {
            return;
        }
        let connected: Vec<PeerId> = self.shared.state().connected.iter().copied().collect();
        if connected.len() >= self.target_peers {
            return;
        }
        self.dial_learned();
        if self.peer_exchange && !connected.is_empty() {
            self.exchange_turn = self.exchange_turn.wrapping_add(1);
            let peer = connected[self.exchange_turn % connected.len()];
            self.ask_for_peers(peer);
        }
    }

    /// Above `max_peers` connected peers, disconnects those that connected last, other than
    /// the configured ones.
    fn prune(&mut self) {
        let connected: Vec<PeerId> = self.shared.state().connected.iter().copied().collect();
        let Some(excess) = connected
            .len()
            .checked_sub(self.max_peers)
            .filter(|&n| n > 0)
        else {
            return;
        };
        let configured: HashSet<PeerId> = self.bootstrap.iter().filter_map(|b| b.peer).collect();
        let mut newest: Vec<(Instant, PeerId)> = connected
            .into_iter()
            .filter(|peer| !configured.contains(peer))
            .filter_map(|peer| Some((self.peers.get(&peer)?.connected_at?, peer)))
            .collect();
        newest.sort_by_key(|(connected_at, _)| std::cmp::Reverse(*connected_at));
        for (_, peer) in newest.into_iter().take(excess) {
            tracing::info!(%peer, max = self.max_peers, "too many peers; disconnecting");
            self.shared
                .counters
                .peers_pruned
                .fetch_add(1, Ordering::Relaxed);
            // An error means the peer is already gone.
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Dials learned peers that are not connected, as many as are missing to the target.
    fn dial_learned(&mut self) {
        let connected = self.shared.state().connected.len();
        let mut wanted = self.target_peers.saturating_sub(connected);
        let local = self.local_peer_id();
        for learned in &self.exchange {
            if wanted == 0 {
                break;
            }
            let peer = learned.peer;
            if peer == local || !self.may_dial(&peer) {
                continue;
            }
            let opts = dial_known(peer, vec![learned.addr.clone()]);
            match self.swarm.dial(opts) {
                Ok(()) => wanted -= 1,
                Err(e) => tracing::debug!(%peer, error = %e, "learned peer not dialled"),
            }
        }
    }

    /// This node's ENR: discv5's (with `udp`, and as discv5 keeps it up to date), else one
    /// made once the node listens on an address others can dial.
    fn own_enr(&mut self) -> Option<Vec<u8>> {
        if let Some(dht) = &self.dht {
            return Some(dht.local_enr());
        }
        if self.own_enr.is_none() {
            let addrs = self.shared.state().listen_addrs.clone();
            let shards = self.own_shards();
            self.own_enr = addrs
                .iter()
                .find_map(|addr| peer_exchange::own_enr(&self.keypair, addr, &shards));
        }
        self.own_enr.clone()
    }

    /// Keeps `learned`; true if it is a peer not known before.
    fn learn(&mut self, learned: ExchangePeer) -> bool {
        if learned.peer == self.local_peer_id() {
            return false;
        }
        if let Some(known) = self.exchange.iter_mut().find(|p| p.peer == learned.peer) {
            *known = learned;
            return false;
        }
        if self.exchange.len() >= MAX_EXCHANGE_PEERS {
            self.exchange.pop_front();
        }
        self.exchange.push_back(learned);
        true
    }

    /// Learns the peers kept in the peers file by an earlier run (not counted as discovered).
    pub(super) fn load_peers(&mut self) {
        let Some(path) = &self.peers_file else {
            return;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "peers file not read");
                return;
            }
        };
        let kept: Vec<ExchangePeer> = text
            .lines()
            .filter_map(|line| hex::decode(line.trim()).ok())
            .filter_map(|enr| peer_exchange::parse_enr(&enr).ok())
            .collect();
        tracing::info!(peers = kept.len(), "peers from the last run");
        for peer in kept {
            self.learn(peer);
        }
    }

    /// Rewrites the peers file with the learned peers (write, then rename).
    fn save_peers(&self) {
        let Some(path) = &self.peers_file else {
            return;
        };
        let text: String = self
            .exchange
            .iter()
            .map(|p| hex::encode(&p.enr) + "\n")
            .collect();
        let temporary = path.with_extension("tmp");
        let written =
            std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "peers file not written");
        }
    }

    /// Dials the peers mDNS found on the LAN (TCP addresses only), once each while they are
    /// not connected.
    fn on_mdns_discovered(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        for (peer, addr) in found {
            if peer == self.local_peer_id()
                || !self.may_dial(&peer)
                || check_dialable(&addr).is_err()
            {
                continue;
            }
            tracing::info!(%peer, %addr, "found on the LAN by mDNS; dialling");
            self.shared
                .counters
                .peers_discovered
                .fetch_add(1, Ordering::Relaxed);
            let opts = dial_known(peer, vec![addr]);
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "mDNS peer not dialled");
            }
        }
    }

    /// Starts discv5 on the IP of the first configured IPv4 listen address (or all
    /// interfaces). Its ENR gets the TCP port this node listens on, and that IP, or for a node
    /// listening on all interfaces the first non-loopback one it listens on (if any is known
    /// yet: else discv5 fills it in from what peers see).
    pub(super) async fn start_dht(
        &mut self,
        config: &Discv5Config,
        listen: &[Multiaddr],
    ) -> Result<(), TransportError> {
        let bind_ip = listen
            .iter()
            .find_map(|addr| match addr.iter().next() {
                Some(libp2p::multiaddr::Protocol::Ip4(ip)) => Some(ip),
                _ => None,
            })
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        let bound: Vec<(std::net::Ipv4Addr, u16)> = self
            .shared
            .state()
            .listen_addrs
            .iter()
            .filter_map(peer_exchange::ip4_tcp)
            .collect();
        let ip = if bind_ip.is_unspecified() {
            bound.iter().map(|(ip, _)| *ip).find(|ip| !ip.is_loopback())
        } else {
            Some(bind_ip)
        };
        let tcp_port = bound.first().map(|(_, port)| *port);
        let shards = self.own_shards();
        self.dht = Some(Dht::start(config, &self.keypair, bind_ip, ip, tcp_port, &shards).await?);
        Ok(())
    }

    /// Puts this node's ENR, in text form, where [`super::RelayHandle::enr`] reads it.
    pub(super) fn publish_own_enr(&mut self) {
        let text = match &self.dht {
            Some(dht) => Some(dht.local_enr_text()),
            None => self.own_enr().and_then(|enr| peer_exchange::enr_text(&enr)),
        };
        self.shared.state().enr = text;
    }

    /// Keeps a peer discv5 found (a Waku relay node with a TCP address; others are counted
    /// and skipped) and dials learned peers while below the target.
    fn on_discv5_found(&mut self, enr: &dht::DhtEnr) {
        let found = match dht::check(enr) {
            Ok(found) => found,
            Err(reason) => {
                tracing::debug!(%reason, "discv5 ENR not used");
                self.shared.counters.discv5_dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if !self.relays_for_us(&found) {
            let reason = dht::Discv5Drop::OtherShards;
            tracing::debug!(%reason, "discv5 ENR not used");
            self.shared.counters.discv5_dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let peer = found.peer;
        if peer == self.local_peer_id() {
            return;
        }
        if self.learn(found) {
            tracing::info!(%peer, "found by discv5");
            self.shared
                .counters
                .peers_discovered
                .fetch_add(1, Ordering::Relaxed);
            self.save_peers();
        }
        if self.sampled.insert(peer) {
            self.shared
                .counters
                .discv5_found
                .fetch_add(1, Ordering::Relaxed);
            // Only peers still kept can be served.
            let kept: HashSet<PeerId> = self.exchange.iter().map(|p| p.peer).collect();
            self.sampled.retain(|p| kept.contains(p));
        }
        self.dial_learned();
    }

    fn count_exchange_drop(&self, reason: peer_exchange::PeerExchangeDrop) {
        self.shared.counters.peer_exchange_dropped[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn on_peer_exchange(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let Some(wanted) = peer_exchange::requested(&request) else {
                        tracing::debug!(%peer, "peer exchange request is not a query");
                        return;
                    };
                    let own = self.own_enr();
                    // With discv5, only peers it found by random sampling are served (the
                    // RFC's advice): not the peers learned from exchanges, which include
                    // this node's neighbours.
                    let sampling = self.dht.is_some();
                    let enrs: Vec<&Vec<u8>> = own
                        .iter()
                        .chain(
                            self.exchange
                                .iter()
                                .filter(|p| p.peer != peer)
                                // Nor peers this node turned away (another cluster, or no
                                // shard in common): the asker would be turned away too.
                                .filter(|p| !self.rejected.contains_key(&p.peer))
                                .filter(|p| !sampling || self.sampled.contains(&p.peer))
                                .map(|p| &p.enr),
                        )
                        .take(wanted)
                        .collect();
                    let response = peer_exchange::response(enrs);
                    self.shared
                        .counters
                        .peer_exchange_served
                        .fetch_add(1, Ordering::Relaxed);
                    if self
                        .swarm
                        .behaviour_mut()
                        .peer_exchange
                        .send_response(channel, response)
                        .is_err()
                    {
                        tracing::debug!(%peer, "peer exchange response not sent: stream gone");
                    }
                }
                request_response::Message::Response { response, .. } => {
                    match peer_exchange::parse_response(&response) {
                        Ok((peers, drops)) => {
                            for reason in drops {
                                self.count_exchange_drop(reason);
                            }
                            tracing::debug!(%peer, learned = peers.len(), "peer exchange response");
                            let mut new = 0;
                            for learned in peers {
                                if self.relays_for_us(&learned) {
                                    new += u64::from(self.learn(learned));
                                } else {
                                    self.count_exchange_drop(
                                        peer_exchange::PeerExchangeDrop::OtherShards,
                                    );
                                }
                            }
                            if new > 0 {
                                self.shared
                                    .counters
                                    .peers_discovered
                                    .fetch_add(new, Ordering::Relaxed);
                                self.save_peers();
                            }
                            if self.peer_exchange {
                                self.dial_learned();
                            }
                        }
                        Err(reason) => self.count_exchange_drop(reason),
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "peer exchange query failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound peer exchange query failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

/// How a message the validator refused counts against the peer that sent it. `Reject` makes
/// it an invalid message delivery in the peer's score (P4); `Ignore` only drops it. Only what
/// every Waku implementation refuses too is rejected: an honest js-waku or nwaku peer relays
/// what only demls checks, and must not be scored down for a third party's message.
fn acceptance_of_refused(reason: DropReason, size: usize) -> MessageAcceptance {
    match reason {
        // Not a WakuMessage, or no content topic: js-waku, nwaku and go-waku refuse these.
        DropReason::Undecodable | DropReason::EmptyContentTopic => MessageAcceptance::Reject,
        // Larger than any Waku implementation relays (js-waku's and nwaku's largest limit).
        DropReason::Oversize if size > DEFAULT_MAX_MESSAGE_SIZE => MessageAcceptance::Reject,
        // Within a peer's own larger limit; an empty payload (nwaku relays it); a long `meta`
        // (js-waku relays it); a malformed segment (only demls reads segments).
        DropReason::Oversize
        | DropReason::EmptyPayload
        | DropReason::MetaTooLong
        | DropReason::MalformedSegment => MessageAcceptance::Ignore,
    }
}

/// Dial options for `peer` at `addrs`, unless it is connected or being dialled already.
///
/// Every dial takes a fresh local port rather than libp2p's default of reusing the listening
/// port: two nodes that dial each other at the same instant from their listening ports (as two
/// nodes that find each other by mDNS do) make one TCP connection by simultaneous open, on
/// which both sides act as the initiator, and the handshake fails on both.
fn dial_known(peer: PeerId, addrs: Vec<Multiaddr>) -> DialOpts {
    DialOpts::peer_id(peer)
        .addresses(addrs)
        .condition(PeerCondition::DisconnectedAndNotDialing)
        .allocate_new_port()
        .build()
}

/// The next ENR the discv5 service found; never, without one. `None` once the service
/// stopped.
async fn next_found(dht: &mut Option<Dht>) -> Option<dht::DhtEnr> {
    match dht {
        Some(dht) => dht.found.recv().await,
        None => std::future::pending().await,
    }
}

/// Dial options for an address whose peer is not known yet (see [`dial_known`] on ports).
fn dial_unknown(addr: Multiaddr) -> DialOpts {
    DialOpts::unknown_peer_id()
        .address(addr)
        .allocate_new_port()
        .build()
}
