//! Waku peer exchange (34/WAKU2-PEER-EXCHANGE), `/vac/waku/peer-exchange/2.0.0-alpha1`: a
//! node asks a peer for the records (ENRs) of other peers and dials them.
//!
//! A request is one length-prefixed `PeerExchangeRPC` holding a `query` (`num_peers`); the
//! answer is one holding a `response` (a list of ENRs). demls nodes have no discv5 cache, so a
//! responder answers with its own ENR first and then the ENRs it has learned from its own
//! exchanges (never the requester's); a requester that knows one peer thus learns that peer's
//! signed record and, through it, the others. This departs from the RFC's advice to serve only
//! peers found by random sampling (see docs/transport.md).
//!
//! ENRs (EIP-778, with the Waku fields of 31/WAKU2-ENR that demls needs: `ip`, `tcp`, `waku2`)
//! are signed with the node's libp2p ed25519 key (identity scheme `ed25519`); secp256k1 (`v4`)
//! ENRs, which nwaku hands out, are read too.

use std::net::Ipv4Addr;

use enr::{CombinedKey, CombinedPublicKey, Enr, EnrPublicKey, ed25519_dalek};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use prost::Message as _;

use crate::enr_shards::{EnrShards, RS_KEY};
use crate::labels::labelled_enum;

/// The protocol id of peer exchange.
pub const PEER_EXCHANGE_PROTOCOL: &str = "/vac/waku/peer-exchange/2.0.0-alpha1";

/// The most peers put in one response, whatever the query asks.
pub const MAX_PEERS_PER_RESPONSE: usize = 32;

/// The largest ENR accepted (EIP-778).
pub const MAX_ENR_LEN: usize = 300;

/// The largest peer exchange message read: a full response with room to spare.
pub(crate) const MAX_FRAME_LEN: usize = 64 * 1024;

/// The `waku2` field of a relay node's ENR (bit 0: relay).
pub(crate) const WAKU2_RELAY: u8 = 0x01;

/// `PeerInfo` of 34/WAKU2-PEER-EXCHANGE.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerInfo {
    /// An ENR, RLP-encoded.
    #[prost(bytes = "vec", tag = "1")]
    pub enr: Vec<u8>,
}

/// `PeerExchangeQuery`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerExchangeQuery {
    /// How many peers the requester wants.
    #[prost(uint64, tag = "1")]
    pub num_peers: u64,
}

/// `PeerExchangeResponse`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerExchangeResponse {
    /// The peers.
    #[prost(message, repeated, tag = "1")]
    pub peer_infos: Vec<PeerInfo>,
}

/// `PeerExchangeRPC`: a query or a response.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PeerExchangeRpc {
    /// Set in a request.
    #[prost(message, optional, tag = "1")]
    pub query: Option<PeerExchangeQuery>,
    /// Set in a response.
    #[prost(message, optional, tag = "2")]
    pub response: Option<PeerExchangeResponse>,
}

labelled_enum! {
    /// Why a peer exchange response, or one ENR in it, was not used; counted per reason in
    /// [`crate::TransportMetrics::peer_exchange_dropped`].
    pub enum PeerExchangeDrop {
        /// The response is not a `PeerExchangeRPC` with a `response` (counts responses).
        Undecodable => "undecodable",
        /// The ENR does not decode, is longer than [`MAX_ENR_LEN`], or its signature is wrong.
        BadEnr => "bad_enr",
        /// The ENR has no usable IPv4 address and TCP port.
        NoAddress => "no_address",
        /// The ENR's shard field (`rs` or `rsv`) names another cluster, or only shards this
        /// node does not relay on: the peer cannot relay for it.
        OtherShards => "other_shards",
        /// A response with more ENRs than [`MAX_PEERS_PER_RESPONSE`]: the rest are ignored
        /// (counts responses).
        TooManyPeers => "too_many_peers",
    }
}

/// A peer learned from peer exchange: where to dial it, and its record to pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangePeer {
    /// Its peer id, from the ENR's public key.
    pub peer: PeerId,
    /// `/ip4/<ip>/tcp/<port>/p2p/<peer>`.
    pub addr: Multiaddr,
    /// The ENR as received.
    pub enr: Vec<u8>,
    /// The shards its ENR states, if it states any.
    pub shards: Option<EnrShards>,
}

/// The ENR of a node with `keypair` (ed25519, or secp256k1 as with discv5) listening on
/// `addr` and relaying on `shards`, if `addr` is a concrete IPv4 TCP address.
pub fn own_enr(keypair: &Keypair, addr: &Multiaddr, shards: &EnrShards) -> Option<Vec<u8>> {
    let (ip, port) = ip4_tcp(addr)?;
    let key = signing_key(keypair)?;
    let mut builder = Enr::<CombinedKey>::builder();
    builder
        .ip4(ip)
        .tcp4(port)
        .add_value("waku2", &[WAKU2_RELAY]);
    if let Some(rs) = shards.index_list() {
        builder.add_value(RS_KEY, &alloy_rlp::Bytes::from(rs));
    }
    let enr = builder.build(&key).ok()?;
    Some(alloy_rlp::encode(&enr))
}

/// The ENR signing key of a libp2p keypair (the same secret), for ed25519 and secp256k1
/// keypairs: an ENR signed with it gives back the keypair's peer id.
pub(crate) fn signing_key(keypair: &Keypair) -> Option<CombinedKey> {
    if let Ok(ed25519) = keypair.clone().try_into_ed25519() {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(ed25519.secret().as_ref());
        return Some(CombinedKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &bytes,
        )));
    }
    let secp256k1 = keypair.clone().try_into_secp256k1().ok()?;
    enr::k256::ecdsa::SigningKey::from_slice(&secp256k1.secret().to_bytes())
        .ok()
        .map(CombinedKey::Secp256k1)
}

/// The IPv4 address and TCP port of `addr`, if it has concrete ones.
pub(crate) fn ip4_tcp(addr: &Multiaddr) -> Option<(Ipv4Addr, u16)> {
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(ip) if !ip.is_unspecified() => ip,
        _ => return None,
    };
    match parts.next()? {
        Protocol::Tcp(port) if port != 0 => Some((ip, port)),
        _ => None,
    }
}

/// Reads one ENR: its signature checked, its peer id and dial address derived. Never panics.
pub fn parse_enr(bytes: &[u8]) -> Result<ExchangePeer, PeerExchangeDrop> {
    if bytes.len() > MAX_ENR_LEN {
        return Err(PeerExchangeDrop::BadEnr);
    }
    let enr = <Enr<CombinedKey> as alloy_rlp::Decodable>::decode(&mut &bytes[..])
        .map_err(|_| PeerExchangeDrop::BadEnr)?;
    let peer = match enr.public_key() {
        CombinedPublicKey::Ed25519(key) => {
            libp2p::identity::ed25519::PublicKey::try_from_bytes(key.as_bytes())
                .map(|key| PeerId::from_public_key(&key.into()))
                .map_err(|_| PeerExchangeDrop::BadEnr)?
        }
        CombinedPublicKey::Secp256k1(key) => secp256k1_peer_id(&key.encode())?,
    };
    let ip = enr
        .ip4()
        .filter(|ip| !ip.is_unspecified())
        .ok_or(PeerExchangeDrop::NoAddress)?;
    let port = enr
        .tcp4()
        .filter(|&p| p != 0)
        .ok_or(PeerExchangeDrop::NoAddress)?;
    let shards = EnrShards::of(&enr).map_err(|_| PeerExchangeDrop::BadEnr)?;
    let addr = Multiaddr::from(ip)
        .with(Protocol::Tcp(port))
        .with(Protocol::P2p(peer));
    Ok(ExchangePeer {
        peer,
        addr,
        enr: bytes.to_vec(),
        shards,
    })
}

/// Reads an ENR in its text form (`enr:` and URL-safe base64 of the RLP, as nwaku prints it),
/// e.g. a bootstrap peer given by hand: checked as [`parse_enr`] checks a received one.
pub fn parse_enr_text(text: &str) -> Result<ExchangePeer, PeerExchangeDrop> {
    let enr: Enr<CombinedKey> = text.trim().parse().map_err(|_| PeerExchangeDrop::BadEnr)?;
    parse_enr(&alloy_rlp::encode(&enr))
}

/// The text form (`enr:…`) of an RLP-encoded ENR, if it decodes.
pub(crate) fn enr_text(bytes: &[u8]) -> Option<String> {
    <Enr<CombinedKey> as alloy_rlp::Decodable>::decode(&mut &bytes[..])
        .ok()
        .map(|enr| enr.to_base64())
}

/// The libp2p peer id of a compressed secp256k1 public key (33 bytes): the identity multihash
/// of its protobuf `PublicKey { Type = Secp256k1 (2), Data }` (libp2p's peer id spec), built
/// here so that libp2p's secp256k1 support is not needed just to dial nwaku peers.
fn secp256k1_peer_id(compressed: &[u8]) -> Result<PeerId, PeerExchangeDrop> {
    let len = u8::try_from(compressed.len()).map_err(|_| PeerExchangeDrop::BadEnr)?;
    let mut public_key = vec![0x08, 0x02, 0x12, len];
    public_key.extend_from_slice(compressed);
    let mut multihash = vec![0x00, public_key.len() as u8];
    multihash.extend_from_slice(&public_key);
    PeerId::from_bytes(&multihash).map_err(|_| PeerExchangeDrop::BadEnr)
}

/// Reads a response body: the peers in it, and the reasons for the ENRs that were dropped.
pub fn parse_response(
    body: &[u8],
) -> Result<(Vec<ExchangePeer>, Vec<PeerExchangeDrop>), PeerExchangeDrop> {
    let response = PeerExchangeRpc::decode(body)
        .ok()
        .and_then(|rpc| rpc.response)
        .ok_or(PeerExchangeDrop::Undecodable)?;
    let mut drops = Vec::new();
    if response.peer_infos.len() > MAX_PEERS_PER_RESPONSE {
        drops.push(PeerExchangeDrop::TooManyPeers);
    }
    let mut peers = Vec::new();
    for info in response.peer_infos.iter().take(MAX_PEERS_PER_RESPONSE) {
        match parse_enr(&info.enr) {
            Ok(peer) => peers.push(peer),
            Err(reason) => drops.push(reason),
        }
    }
    Ok((peers, drops))
}

/// The body of a query for `num_peers` peers.
pub(crate) fn query(num_peers: u64) -> Vec<u8> {
    PeerExchangeRpc {
        query: Some(PeerExchangeQuery { num_peers }),
        response: None,
    }
    .encode_to_vec()
}

/// How many peers a request body asks for (at most [`MAX_PEERS_PER_RESPONSE`]); `None` if it
/// is not a query.
pub(crate) fn requested(body: &[u8]) -> Option<usize> {
    let query = PeerExchangeRpc::decode(body).ok()?.query?;
    Some(
        usize::try_from(query.num_peers)
            .map_or(MAX_PEERS_PER_RESPONSE, |n| n.min(MAX_PEERS_PER_RESPONSE)),
    )
}

/// The body of a response carrying `enrs`.
pub(crate) fn response<'a>(enrs: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    PeerExchangeRpc {
        query: None,
        response: Some(PeerExchangeResponse {
            peer_infos: enrs
                .into_iter()
                .map(|enr| PeerInfo { enr: enr.clone() })
                .collect(),
        }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    fn on_shard_0() -> EnrShards {
        EnrShards {
            cluster_id: 4242,
            shards: [0].into(),
        }
    }

    #[test]
    fn own_enr_reads_back_as_the_same_peer_and_address() {
        let keypair = Keypair::generate_ed25519();
        let enr =
            own_enr(&keypair, &addr("/ip4/10.1.2.3/tcp/60001"), &on_shard_0()).expect("an ENR");
        assert!(enr.len() <= MAX_ENR_LEN);
        let peer = parse_enr(&enr).expect("parses");
        assert_eq!(peer.peer, keypair.public().to_peer_id());
        assert_eq!(peer.shards, Some(on_shard_0()));
        assert_eq!(
            peer.addr,
            addr(&format!("/ip4/10.1.2.3/tcp/60001/p2p/{}", peer.peer))
        );
        // No ENR for addresses nobody can dial.
        assert_eq!(
            own_enr(&keypair, &addr("/ip4/0.0.0.0/tcp/60001"), &on_shard_0()),
            None
        );
        assert_eq!(
            own_enr(&keypair, &addr("/ip4/10.1.2.3/tcp/0"), &on_shard_0()),
            None
        );
    }

    #[test]
    fn enrs_in_text_form_read_as_the_same_peer() {
        let keypair = Keypair::generate_ed25519();
        let bytes =
            own_enr(&keypair, &addr("/ip4/10.1.2.3/tcp/60001"), &on_shard_0()).expect("an ENR");
        let enr =
            <Enr<CombinedKey> as alloy_rlp::Decodable>::decode(&mut &bytes[..]).expect("decodes");
        let text = enr.to_base64();
        assert!(text.starts_with("enr:"), "{text}");
        assert_eq!(parse_enr_text(&text), parse_enr(&bytes));
        assert_eq!(
            parse_enr_text("enr:not-base64!"),
            Err(PeerExchangeDrop::BadEnr)
        );
        assert_eq!(parse_enr_text(""), Err(PeerExchangeDrop::BadEnr));
    }

    #[test]
    fn secp256k1_enrs_give_libp2p_peer_ids() {
        let key = enr::k256::ecdsa::SigningKey::from_slice(&[0x11; 32]).expect("a key");
        let enr = Enr::<enr::k256::ecdsa::SigningKey>::builder()
            .ip4(Ipv4Addr::new(10, 0, 0, 1))
            .tcp4(60000)
            .build(&key)
            .expect("builds");
        let peer = parse_enr(&alloy_rlp::encode(&enr)).expect("parses");
        // A secp256k1 peer id is an identity multihash of 37 bytes starting 0x08 0x02.
        let bytes = peer.peer.to_bytes();
        assert_eq!(&bytes[..4], &[0x00, 37, 0x08, 0x02]);
        assert_eq!(&bytes[6..], &key.verifying_key().encode()[..]);
    }

    #[test]
    fn bogus_enrs_are_refused_with_a_reason() {
        let keypair = Keypair::generate_ed25519();
        let good =
            own_enr(&keypair, &addr("/ip4/10.1.2.3/tcp/60001"), &on_shard_0()).expect("an ENR");
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(parse_enr(&tampered), Err(PeerExchangeDrop::BadEnr));
        assert_eq!(parse_enr(b"\xc0"), Err(PeerExchangeDrop::BadEnr));
        assert_eq!(parse_enr(&[0xf8; 400]), Err(PeerExchangeDrop::BadEnr));
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let no_address = Enr::<ed25519_dalek::SigningKey>::builder()
            .build(&key)
            .expect("builds");
        assert_eq!(
            parse_enr(&alloy_rlp::encode(&no_address)),
            Err(PeerExchangeDrop::NoAddress)
        );
    }

    #[test]
    fn responses_are_read_with_their_drops() {
        let keypair = Keypair::generate_ed25519();
        let good =
            own_enr(&keypair, &addr("/ip4/10.1.2.3/tcp/60001"), &on_shard_0()).expect("an ENR");
        let body = response([&good, &vec![1, 2, 3]]);
        let (peers, drops) = parse_response(&body).expect("a response");
        assert_eq!(peers.len(), 1);
        assert_eq!(drops, vec![PeerExchangeDrop::BadEnr]);
        assert_eq!(
            parse_response(&query(3)),
            Err(PeerExchangeDrop::Undecodable)
        );
        let many: Vec<Vec<u8>> = vec![good; MAX_PEERS_PER_RESPONSE + 5];
        let (peers, drops) = parse_response(&response(&many)).expect("a response");
        assert_eq!(peers.len(), MAX_PEERS_PER_RESPONSE);
        assert_eq!(drops, vec![PeerExchangeDrop::TooManyPeers]);
        assert_eq!(requested(&query(5)), Some(5));
        assert_eq!(requested(&query(u64::MAX)), Some(MAX_PEERS_PER_RESPONSE));
        assert_eq!(requested(&response([])), None);
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_enr(&data);
            let _ = parse_response(&data);
            let _ = requested(&data);
            let _ = parse_enr_text(&String::from_utf8_lossy(&data));
        }
    }
}
