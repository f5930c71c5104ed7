//! discv5 (the `discv5` crate), for nodes that run a UDP listener: random sampling of the
//! discovery DHT for the ENRs of Waku relay nodes.
//!
//! A node with [`crate::TransportConfig::discv5`] set binds a UDP socket, signs an ENR with its
//! libp2p ed25519 key (so the peer id read from the ENR is the node's), holding `ip`, `tcp`
//! (its libp2p listener), `udp` (this socket) and `waku2` = relay, and seeds its routing table
//! with the bootstrap ENRs. It then looks up a random node id at start and every
//! [`QUERY_INTERVAL`]; every ENR the lookups, and the peers that contact it, bring is checked
//! ([`check`]) and handed to the relay node, which keeps it with the peers learned through
//! peer exchange (to dial while below its target, and to serve to peer exchange queries).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use discv5::{ConfigBuilder, Discv5, Event, ListenConfig};
use enr::{CombinedKey, Enr, NodeId};
use libp2p::identity::Keypair;
use tokio::sync::mpsc;

use crate::enr_shards::{EnrShards, RS_KEY};
use crate::error::TransportError;
use crate::labels::labelled_enum;
use crate::peer_exchange::{self, ExchangePeer, PeerExchangeDrop, WAKU2_RELAY};

/// An ENR as discv5 hands it out.
pub(crate) type DhtEnr = Enr<CombinedKey>;

/// How often a node looks up a random node id (after the first, at start).
pub const QUERY_INTERVAL: Duration = Duration::from_secs(10);

/// ENRs found and not yet taken by the relay node; beyond this, new ones are dropped (the next
/// lookup brings them again).
const FOUND_CAPACITY: usize = 256;

/// How discv5 is run: on which UDP port, from which ENRs.
#[derive(Debug, Clone, Default)]
pub struct Discv5Config {
    /// The UDP port to listen on (on the IP of the first IPv4 TCP listen address, or all
    /// interfaces); 0 picks a free one.
    pub port: u16,
    /// The ENRs to start the routing table with (they need an IPv4 address and UDP port).
    pub bootstrap: Vec<BootstrapEnr>,
}

/// An ENR to bootstrap discv5 from, read from its text form (`enr:…`): signature checked,
/// with an IPv4 address and UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapEnr(Enr<CombinedKey>);

/// Why a bootstrap ENR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapEnrError {
    /// Not an ENR in text form, or its signature does not verify.
    #[error("not a valid ENR: {0}")]
    Invalid(String),
    /// The ENR has no IPv4 address and UDP port to reach its discv5 listener at.
    #[error("the ENR has no IPv4 address and UDP port")]
    NoUdp,
}

impl FromStr for BootstrapEnr {
    type Err = BootstrapEnrError;

    fn from_str(text: &str) -> Result<BootstrapEnr, BootstrapEnrError> {
        let enr: Enr<CombinedKey> = text.trim().parse().map_err(BootstrapEnrError::Invalid)?;
        if enr.udp4_socket().is_none() {
            return Err(BootstrapEnrError::NoUdp);
        }
        Ok(BootstrapEnr(enr))
    }
}

impl std::fmt::Display for BootstrapEnr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_base64())
    }
}

labelled_enum! {
    /// Why an ENR found through discv5 was not used; counted per reason in
    /// [`crate::TransportMetrics::discv5_dropped`].
    pub enum Discv5Drop {
        /// The ENR is longer than [`peer_exchange::MAX_ENR_LEN`], or its key gives no libp2p
        /// peer id.
        BadEnr => "bad_enr",
        /// No usable IPv4 address and TCP port.
        NoAddress => "no_address",
        /// No `waku2` field with the relay bit (a discv5 node of another network), or a
        /// malformed one.
        NotRelay => "not_relay",
        /// Its shard field (`rs` or `rsv`) names another cluster, or only shards this node
        /// does not relay on: it cannot relay for this node.
        OtherShards => "other_shards",
    }
}

/// Reads a found ENR as a peer to dial, if it is a Waku relay node with a TCP address.
pub fn check(enr: &Enr<CombinedKey>) -> Result<ExchangePeer, Discv5Drop> {
    let relay = match enr.get_decodable::<alloy_rlp::Bytes>("waku2") {
        Some(Ok(flags)) => flags.len() == 1 && flags[0] & WAKU2_RELAY != 0,
        _ => false,
    };
    if !relay {
        return Err(Discv5Drop::NotRelay);
    }
    peer_exchange::parse_enr(&alloy_rlp::encode(enr)).map_err(|reason| match reason {
        PeerExchangeDrop::NoAddress => Discv5Drop::NoAddress,
        _ => Discv5Drop::BadEnr,
    })
}

/// A running discv5 service. Dropping it stops the service and its lookups.
pub(crate) struct Dht {
    discv5: Arc<Discv5>,
    /// The ENRs found, for the relay node.
    pub(crate) found: mpsc::Receiver<Enr<CombinedKey>>,
}

impl Dht {
    /// Starts discv5 on `bind_ip` for the node with `keypair`, whose ENR gets `ip` (where
    /// others reach it), `tcp_port` (its libp2p listener's) and `shards`.
    pub(crate) async fn start(
        config: &Discv5Config,
        keypair: &Keypair,
        bind_ip: Ipv4Addr,
        ip: Option<Ipv4Addr>,
        tcp_port: Option<u16>,
        shards: &EnrShards,
    ) -> Result<Dht, TransportError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| {
            TransportError::Setup(format!("discv5 on UDP port {}: {what}: {e}", config.port))
        };
        // Bound here, not by discv5, so that port 0 gives a port to write in the ENR.
        let socket = UdpSocket::bind(SocketAddr::from((bind_ip, config.port)))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| setup("bind", &e))?;
        let port = socket.local_addr().map_err(|e| setup("bind", &e))?.port();
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(|e| setup("bind", &e))?;
        let key = peer_exchange::signing_key(keypair)
            .filter(|key| matches!(key, CombinedKey::Secp256k1(_)))
            .ok_or_else(|| setup("key", &"discv5 needs a secp256k1 node key"))?;
        let mut builder = Enr::<CombinedKey>::builder();
        // Without an address, discv5 fills in `ip` from what its peers see (PONGs).
        if let Some(ip) = ip {
            builder.ip4(ip);
        }
        if let Some(port) = tcp_port {
            builder.tcp4(port);
        }
        if let Some(rs) = shards.index_list() {
            builder.add_value(RS_KEY, &alloy_rlp::Bytes::from(rs));
        }
        let enr = builder
            .udp4(port)
            .add_value("waku2", &[WAKU2_RELAY])
            .build(&key)
            .map_err(|e| setup("ENR", &e))?;
        let listen = ListenConfig::FromSockets {
            ipv4: Some(Arc::new(socket)),
            ipv6: None,
        };
        let mut discv5 = Discv5::new(enr, key, ConfigBuilder::new(listen).build())
            .map_err(|e| setup("start", &e))?;
        for BootstrapEnr(enr) in &config.bootstrap {
            if let Err(e) = discv5.add_enr(enr.clone()) {
                tracing::warn!(enr = %enr.to_base64(), error = e, "discv5 bootstrap ENR not added");
            }
        }
        discv5.start().await.map_err(|e| setup("start", &e))?;
        let events = discv5
            .event_stream()
            .await
            .map_err(|e| setup("events", &e))?;
        let discv5 = Arc::new(discv5);
        let (tx, found) = mpsc::channel(FOUND_CAPACITY);
        tokio::spawn(forward_events(events, tx.clone()));
        tokio::spawn(look_up(Arc::downgrade(&discv5), tx));
        tracing::info!(port, enr = %discv5.local_enr().to_base64(), "discv5 started");
        Ok(Dht { discv5, found })
    }

    /// States `shards` in this node's ENR from now on (a shard joined while running).
    pub(crate) fn announce_shards(&self, shards: &EnrShards) {
        let Some(rs) = shards.index_list() else {
            return;
        };
        if let Err(e) = self.discv5.enr_insert(RS_KEY, &alloy_rlp::Bytes::from(rs)) {
            tracing::warn!(error = ?e, "discv5 ENR not updated with the joined shard");
        }
    }

    /// This node's ENR as it is now (discv5 may update its address), RLP-encoded.
    pub(crate) fn local_enr(&self) -> Vec<u8> {
        alloy_rlp::encode(self.discv5.local_enr())
    }

    /// This node's ENR in text form.
    pub(crate) fn local_enr_text(&self) -> String {
        self.discv5.local_enr().to_base64()
    }
}

/// Passes on the ENRs discv5 reports (found in lookups, or of peers that contacted us) until
/// the relay node is gone.
async fn forward_events(mut events: mpsc::Receiver<Event>, found: mpsc::Sender<Enr<CombinedKey>>) {
    while let Some(event) = events.recv().await {
        let enr = match event {
            Event::Discovered(enr) | Event::SessionEstablished(enr, _) => enr,
            _ => continue,
        };
        match found.try_send(enr) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// Looks up a random node id now and every [`QUERY_INTERVAL`], passing on what each finds,
/// until the service is dropped.
async fn look_up(discv5: Weak<Discv5>, found: mpsc::Sender<Enr<CombinedKey>>) {
    let mut every = tokio::time::interval(QUERY_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // The lookup holds no reference to the service: dropping the Dht ends this task.
        let Some(lookup) = discv5.upgrade().map(|d| d.find_node(NodeId::random())) else {
            return;
        };
        match lookup.await {
            Ok(enrs) => {
                tracing::debug!(found = enrs.len(), "discv5 lookup");
                for enr in enrs {
                    if found.try_send(enr).is_err() {
                        break;
                    }
                }
            }
            Err(error) => tracing::debug!(?error, "discv5 lookup failed"),
        }
        if found.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enr::ed25519_dalek;

    fn signed(build: impl FnOnce(&mut enr::Builder<CombinedKey>)) -> Enr<CombinedKey> {
        let key = CombinedKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
        let mut builder = Enr::builder();
        build(&mut builder);
        builder.build(&key).expect("builds")
    }

    #[test]
    fn found_enrs_are_used_only_as_relay_nodes_with_a_tcp_address() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let good = signed(|b| {
            b.ip4(ip)
                .tcp4(60001)
                .udp4(9000)
                .add_value("waku2", &[WAKU2_RELAY]);
        });
        let peer = check(&good).expect("a relay node");
        assert!(
            peer.addr
                .to_string()
                .starts_with("/ip4/10.0.0.7/tcp/60001/p2p/")
        );
        let no_waku = signed(|b| {
            b.ip4(ip).tcp4(60001).udp4(9000);
        });
        assert_eq!(check(&no_waku), Err(Discv5Drop::NotRelay));
        let store_only = signed(|b| {
            b.ip4(ip).tcp4(60001).add_value("waku2", &[0x02]);
        });
        assert_eq!(check(&store_only), Err(Discv5Drop::NotRelay));
        let long_flags = signed(|b| {
            b.ip4(ip).tcp4(60001).add_value("waku2", &[1, 1, 1]);
        });
        assert_eq!(check(&long_flags), Err(Discv5Drop::NotRelay));
        let list_flags = signed(|b| {
            b.ip4(ip).tcp4(60001).add_value("waku2", &vec![vec![1u8]]);
        });
        assert_eq!(check(&list_flags), Err(Discv5Drop::NotRelay));
        let no_tcp = signed(|b| {
            b.ip4(ip).udp4(9000).add_value("waku2", &[WAKU2_RELAY]);
        });
        assert_eq!(check(&no_tcp), Err(Discv5Drop::NoAddress));
        let unspecified = signed(|b| {
            b.ip4(Ipv4Addr::UNSPECIFIED)
                .tcp4(60001)
                .add_value("waku2", &[WAKU2_RELAY]);
        });
        assert_eq!(check(&unspecified), Err(Discv5Drop::NoAddress));
    }

    #[test]
    fn bootstrap_enrs_need_a_udp_port() {
        let ip = Ipv4Addr::new(10, 0, 0, 7);
        let good = signed(|b| {
            b.ip4(ip).udp4(9000);
        });
        let read: BootstrapEnr = good.to_base64().parse().expect("a bootstrap ENR");
        assert_eq!(read.to_string(), good.to_base64());
        let no_udp = signed(|b| {
            b.ip4(ip).tcp4(60001);
        });
        assert_eq!(
            no_udp.to_base64().parse::<BootstrapEnr>(),
            Err(BootstrapEnrError::NoUdp)
        );
        assert!(matches!(
            "enr:garbage".parse::<BootstrapEnr>(),
            Err(BootstrapEnrError::Invalid(_))
        ));
    }
}
