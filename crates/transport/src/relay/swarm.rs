//! The libp2p stack of a relay node: its behaviours, their limits, and the checks of its
//! configuration.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{
    self, MessageAuthenticity, PeerScoreParams, PeerScoreThresholds, TopicScoreParams,
    ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, mdns, noise, ping, tcp, yamux};

use crate::config::{DEFAULT_MAX_MESSAGE_SIZE, MIN_MAX_MESSAGE_SIZE, TransportConfig};
use crate::error::TransportError;
use crate::framing::FrameCodec;
use crate::message::MessageId;
use crate::metadata;
use crate::peer_exchange::{self, PEER_EXCHANGE_PROTOCOL};
use crate::store::{self, MAX_RESPONSE_SIZE, STORE_PROTOCOL};
use crate::topics::{MAX_RELAY_SHARDS, MAX_SHARDS_IN_CLUSTER, PubsubTopic};

use super::RELAY_PROTOCOL;

/// How often mDNS asks the LAN for peers (libp2p's default is 5 minutes; a new node's
/// announcement reaches the others at once either way, but when that first query is lost,
/// e.g. sent while a link is still coming up, the next one is what finds the peers).
const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(10);

/// How long a metadata request may take before the peer is disconnected.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections no protocol keeps alive are closed after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Gossipsub RPC frames up to this size are always read, whatever `max_message_size`: a
/// message up to js-waku's 1 MiB limit then reaches the validator (and is counted) instead of
/// failing the stream, and so does an RPC carrying full IHAVE, IWANT and IDONTWANT lists
/// ([`MAX_GOSSIP_IDS`] ids of 34 bytes each, about 510 KB).
const MIN_FRAME_LIMIT: usize = 2 * DEFAULT_MAX_MESSAGE_SIZE;

/// The most message ids Waku peers put in one IHAVE or IWANT (js-waku's and nwaku's
/// `maxIHaveLength`); what we accept is sized for it.
const MAX_GOSSIP_IDS: usize = 5000;

/// The bytes one message id takes in an IHAVE, IWANT or IDONTWANT (32 bytes, tag and length).
const GOSSIP_ID_BYTES: usize = 34;

// A frame holds full IHAVE, IWANT and IDONTWANT lists of Waku peers together.
const _: () = assert!(3 * MAX_GOSSIP_IDS * GOSSIP_ID_BYTES < MIN_FRAME_LIMIT);

// What we send fits nwaku's default frame limit (150 KiB).
const _: () = assert!(MAX_GOSSIP_IDS_SENT * GOSSIP_ID_BYTES + 1024 < MIN_MAX_MESSAGE_SIZE);

/// The most message ids this node puts in one IHAVE, or asks for per heartbeat: fewer than
/// [`MAX_GOSSIP_IDS`], so that one such RPC (34 bytes per id, about 136 KB) stays under
/// nwaku's default 150 KiB frame limit.
const MAX_GOSSIP_IDS_SENT: usize = 4000;

/// The most IHAVE messages handled from one peer per heartbeat (js-waku and nwaku).
const MAX_IHAVE_MESSAGES: usize = 10;

/// Store streams a connection may have open at once; a peer's queries beyond
/// [`store::MAX_QUERIES_PER_PEER`] are still answered (`429`) up to this many.
const STORE_STREAMS_PER_CONNECTION: usize = 32;

/// Below this score gossipsub ignores everything a peer sends (graylisting) and the node
/// disconnects and bans it (nwaku's `graylistThreshold`; nim-libp2p disconnects there too).
/// Ten invalid messages within one decay interval reach it (P4: `-100 × 10²`), eleven if the
/// peer's bonuses (P1 and P2, at most 10.1) offset the tenth.
pub(super) const GRAYLIST_THRESHOLD: f64 = -10_000.0;

/// Peer scoring as nwaku configures it (`waku_relay/protocol.nim`), with the changes
/// docs/transport.md ("Peer scoring") explains: loopback addresses are exempt from the
/// IP colocation penalty, broken gossip promises are tolerated up to a threshold (rust-libp2p
/// counts one per message id, nim-libp2p one per IWANT), and rust-libp2p's slow-peer
/// penalty, which nwaku does not have, is off. Every shard in `topics` gets the same
/// [`topic_score_params`].
fn score_params(topics: &BTreeSet<PubsubTopic>) -> PeerScoreParams {
    PeerScoreParams {
        topics: topics
            .iter()
            .map(|topic| (relay_topic(topic).hash(), topic_score_params()))
            .collect(),
        topic_score_cap: 0.0,
        // P5: no application score.
        app_specific_weight: 0.0,
        // P6: more than 5 peers from one address are suspect (Sybil), except on loopback:
        // those are the operator's own processes (and every local test network).
        ip_colocation_factor_weight: -50.0,
        ip_colocation_factor_threshold: 5.0,
        ip_colocation_factor_whitelist: [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .collect(),
        // P7: GRAFTs during a backoff and broken IWANT promises. nwaku's weight and slow
        // decay, with a threshold: a flood can leave some IWANTs unanswered within 3 s
        // without any ill intent.
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: BEHAVIOUR_PENALTY_THRESHOLD,
        behaviour_penalty_decay: 0.986,
        decay_interval: Duration::from_secs(12),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(600),
        slow_peer_weight: 0.0,
        slow_peer_threshold: 0.0,
        slow_peer_decay: 0.2,
    }
}

/// The gossipsub topic of a shard.
pub(super) fn relay_topic(topic: &PubsubTopic) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(topic.to_string())
}

/// The score parameters of one shard (nwaku's); a shard joined later gets them too.
pub(super) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: time in mesh, a small bonus that favours peers already in the mesh.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        // P2: first deliveries, a bonus for fast peers.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.5,
        first_message_deliveries_cap: 10.0,
        // P3, P3b: mesh delivery deficits, off (demls traffic is bursty: a quiet group is no
        // fault of its peers).
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 1.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(5),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        // P4: invalid messages (our validator's rejects), quadratic, heavily weighted.
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
    }
}

/// Broken gossip promises (and GRAFTs in backoff) a peer may have to its name, decaying,
/// before they count against it.
const BEHAVIOUR_PENALTY_THRESHOLD: f64 = 100.0;

/// nwaku's thresholds: no gossip to or from peers below -100, no own publishes to peers
/// below -1000, everything ignored below [`GRAYLIST_THRESHOLD`].
fn score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -100.0,
        publish_threshold: -1000.0,
        graylist_threshold: GRAYLIST_THRESHOLD,
        // Peers offered in PRUNEs are not dialled by rust-libp2p (Waku has its own peer
        // exchange), so this changes nothing.
        accept_px_threshold: 0.0,
        opportunistic_graft_threshold: 0.0,
    }
}

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) metadata: request_response::Behaviour<metadata::Codec>,
    pub(super) store: request_response::Behaviour<FrameCodec>,
    pub(super) peer_exchange: request_response::Behaviour<FrameCodec>,
    pub(super) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
}

/// The swarm of a node relaying on `topics` at its start.
pub(super) fn build_swarm(
    keypair: Keypair,
    config: &TransportConfig,
    topics: &BTreeSet<PubsubTopic>,
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
        .max_control_messages_sent(MAX_GOSSIP_IDS_SENT)
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
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossipsub_config)
        .map_err(|e| setup(&e))?;
    gossipsub
        .with_peer_score(score_params(topics), score_thresholds())
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
        FrameCodec {
            max_request: store::MAX_REQUEST_SIZE,
            // A page always holds one message, however large.
            max_response: MAX_RESPONSE_SIZE.max(max_message_size.saturating_mul(2)),
        },
        [(StreamProtocol::new(STORE_PROTOCOL), store_support)],
        request_response::Config::default()
            .with_request_timeout(config.store_timeout)
            .with_max_concurrent_streams(STORE_STREAMS_PER_CONNECTION),
    );
    let peer_exchange = request_response::Behaviour::with_codec(
        FrameCodec {
            max_request: peer_exchange::MAX_FRAME_LEN,
            max_response: peer_exchange::MAX_FRAME_LEN,
        },
        [(
            StreamProtocol::new(PEER_EXCHANGE_PROTOCOL),
            ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(METADATA_TIMEOUT),
    );
    let mdns = if config.mdns {
        let mdns_config = mdns::Config {
            query_interval: MDNS_QUERY_INTERVAL,
            ..mdns::Config::default()
        };
        Some(
            mdns::tokio::Behaviour::new(mdns_config, keypair.public().to_peer_id())
                .map_err(|e| setup(&e))?,
        )
    } else {
        None
    };
    let identify = identify::Behaviour::new(
        identify::Config::new("/ipfs/0.1.0".to_owned(), keypair.public())
            .with_agent_version(format!("demls-transport/{}", env!("CARGO_PKG_VERSION"))),
    );
    let behaviour = Behaviour {
        gossipsub,
        metadata,
        store,
        peer_exchange,
        mdns: Toggle::from(mdns),
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

/// Checks `config` and returns the pubsub topics the node relays on from its start.
pub(super) fn check_config(
    config: &TransportConfig,
) -> Result<BTreeSet<PubsubTopic>, TransportError> {
    if let Some(count) = config
        .num_shards_in_network
        .filter(|count| count.get() > MAX_SHARDS_IN_CLUSTER)
    {
        return Err(TransportError::Config(format!(
            "num_shards_in_network {count} exceeds {MAX_SHARDS_IN_CLUSTER}"
        )));
    }
    if let Some(shard) = std::iter::once(&config.shard)
        .chain(&config.extra_shards)
        .find(|&&shard| shard >= MAX_SHARDS_IN_CLUSTER)
    {
        return Err(TransportError::Config(format!(
            "shard {shard} is not below {MAX_SHARDS_IN_CLUSTER}"
        )));
    }
    let topics = config
        .sharding()
        .initial_topics(&config.extra_shards, &config.content_topics)
        .map_err(|e| TransportError::Config(e.to_string()))?;
    if topics.len() > MAX_RELAY_SHARDS {
        return Err(TransportError::Config(format!(
            "{} shards to relay on; at most {MAX_RELAY_SHARDS}",
            topics.len()
        )));
    }
    if config.max_message_size < MIN_MAX_MESSAGE_SIZE {
        return Err(TransportError::Config(format!(
            "max_message_size {} is below {MIN_MAX_MESSAGE_SIZE}",
            config.max_message_size
        )));
    }
    config
        .segmentation
        .check()
        .map_err(TransportError::Config)?;
    if config.segmentation.wire_limit > config.max_message_size {
        return Err(TransportError::Config(format!(
            "segmentation wire_limit {} exceeds max_message_size {}",
            config.segmentation.wire_limit, config.max_message_size
        )));
    }
    if config.max_peers < config.target_peers {
        return Err(TransportError::Config(format!(
            "max_peers {} is below target_peers {}",
            config.max_peers, config.target_peers
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
    config.peers.iter().try_for_each(check_dialable)?;
    Ok(topics)
}

/// Accepts `/ip4|ip6/<host>/tcp/<port>` optionally followed by `/p2p/<peer id>`.
pub(super) fn check_dialable(addr: &Multiaddr) -> Result<(), TransportError> {
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
pub(super) fn ensure_port_free(addr: &Multiaddr) -> Result<(), TransportError> {
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

pub(super) fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}
