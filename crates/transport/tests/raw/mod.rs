//! A raw peer for the integration tests, written independently of the crate: gossipsub on the
//! Waku protocol id without any validation, a metadata responder with hand-encoded frames,
//! and a Store endpoint that sends and answers whatever bytes it is given.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::time::Duration;

use demls_transport::{Multiaddr, PeerId};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{StreamProtocol, Swarm, noise, tcp, yamux};

use crate::common::TIMEOUT;

#[derive(NetworkBehaviour)]
pub struct RawBehaviour {
    gossipsub: gossipsub::Behaviour,
    metadata: Toggle<request_response::Behaviour<RawMetadataCodec>>,
    store: request_response::Behaviour<RawStoreCodec>,
}

/// What the raw node says in the metadata protocol.
#[derive(Clone, Copy)]
pub enum RawMetadata {
    /// Does not support the protocol.
    Unsupported,
    /// Answers `{}`: no cluster id.
    Empty,
    /// Answers `{cluster_id}`.
    Cluster(u16),
}

/// How the raw node answers Store queries.
#[derive(Clone)]
pub enum RawStore {
    /// With these bytes, as they are (the test writes the length prefix).
    Answer(Vec<u8>),
    /// Never: it keeps the query open until the node gives up.
    Silent,
}

/// Answers every metadata request with a fixed frame and ignores what it is told.
#[derive(Clone, Copy)]
pub struct RawMetadataCodec {
    cluster_id: Option<u16>,
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `body` behind its varint length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

impl RawMetadataCodec {
    fn frame(&self) -> Vec<u8> {
        let mut body = Vec::new();
        if let Some(cluster_id) = self.cluster_id {
            // field 1 (varint): tag 0x08, then the cluster id as a varint.
            body.push(0x08);
            varint(u64::from(cluster_id), &mut body);
        }
        frame(&body)
    }
}

/// The body of `bytes` if they are exactly one length-prefixed frame.
pub fn unframe(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut len = 0usize;
    for (i, b) in bytes.iter().enumerate().take(4) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let body = &bytes[i + 1..];
            return (body.len() == len).then(|| body.to_vec());
        }
    }
    None
}

/// Reads one length-prefixed frame of at most `max` bytes.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = 0usize;
    for shift in (0..28).step_by(7) {
        let mut b = [0u8];
        io.read_exact(&mut b).await?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

impl request_response::Codec for RawMetadataCodec {
    type Protocol = StreamProtocol;
    type Request = ();
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<()> {
        read_frame(io, 1024).await.map(drop)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<()> {
        read_frame(io, 1024).await.map(drop)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        _: (),
    ) -> io::Result<()> {
        io.write_all(&self.frame()).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        _: (),
    ) -> io::Result<()> {
        io.write_all(&self.frame()).await
    }
}

/// Store v3 without interpretation: requests and responses are written exactly as given;
/// a query is read as one frame, a response as everything up to the end of the stream.
#[derive(Clone, Copy)]
pub struct RawStoreCodec;

impl request_response::Codec for RawStoreCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io, 1 << 20).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        io.take(16 << 20).read_to_end(&mut all).await?;
        Ok(all)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&request).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&response).await
    }
}

/// A swarm with a new identity over TCP + noise + yamux, running `behaviour`; connections are
/// kept for 60 s without traffic.
pub fn bare_swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_| behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A raw peer that has dialled a demls node.
pub struct RawNode {
    swarm: Swarm<RawBehaviour>,
    topic: IdentTopic,
    store_answer: Option<RawStore>,
    /// Store queries kept open (never answered).
    held: Vec<ResponseChannel<Vec<u8>>>,
}

impl RawNode {
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// A raw node subscribed to `pubsub_topic` that has started dialling `peer`.
    pub fn dial(metadata: RawMetadata, pubsub_topic: &str, peer: Multiaddr) -> RawNode {
        RawNode::start(metadata, pubsub_topic, None, peer)
    }

    /// Like [`RawNode::dial`], answering Store queries, and peer exchange queries, as `store`
    /// says.
    pub fn store_server(
        cluster_id: u16,
        pubsub_topic: &str,
        store: RawStore,
        peer: Multiaddr,
    ) -> RawNode {
        RawNode::start(
            RawMetadata::Cluster(cluster_id),
            pubsub_topic,
            Some(store),
            peer,
        )
    }

    fn start(
        metadata: RawMetadata,
        pubsub_topic: &str,
        store_answer: Option<RawStore>,
        peer: Multiaddr,
    ) -> RawNode {
        let config = gossipsub::ConfigBuilder::default()
            .protocol_id(demls_transport::RELAY_PROTOCOL, gossipsub::Version::V1_1)
            .validation_mode(ValidationMode::None)
            .max_transmit_size(8 * 1024 * 1024)
            .message_id_fn(|m| {
                gossipsub::MessageId::new(&demls_transport::MessageId::of(&m.data).0)
            })
            .build()
            .expect("gossipsub config");
        let gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).expect("gossipsub");
        let codec = match metadata {
            RawMetadata::Unsupported => None,
            RawMetadata::Empty => Some(RawMetadataCodec { cluster_id: None }),
            RawMetadata::Cluster(id) => Some(RawMetadataCodec {
                cluster_id: Some(id),
            }),
        };
        let metadata = Toggle::from(codec.map(|codec| {
            request_response::Behaviour::with_codec(
                codec,
                [(
                    StreamProtocol::new("/vac/waku/metadata/1.0.0"),
                    ProtocolSupport::Inbound,
                )],
                request_response::Config::default(),
            )
        }));
        let store_support = if store_answer.is_some() {
            ProtocolSupport::Full
        } else {
            ProtocolSupport::Outbound
        };
        // A store server answers peer exchange queries the same way: with the bytes given.
        let store = request_response::Behaviour::with_codec(
            RawStoreCodec,
            [
                (
                    StreamProtocol::new(demls_transport::store::STORE_PROTOCOL),
                    store_support.clone(),
                ),
                (
                    StreamProtocol::new(demls_transport::peer_exchange::PEER_EXCHANGE_PROTOCOL),
                    store_support,
                ),
            ],
            request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
        );
        let mut swarm = bare_swarm(RawBehaviour {
            gossipsub,
            metadata,
            store,
        });
        let topic = IdentTopic::new(pubsub_topic);
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .expect("subscribe");
        swarm.dial(peer).expect("dial");
        RawNode {
            swarm,
            topic,
            store_answer,
            held: Vec::new(),
        }
    }

    /// Drives the swarm until the peer has subscribed, so that publishing reaches it.
    pub async fn wait_subscribed(&mut self) {
        let subscribed = self.drive_until(|event| {
            matches!(
                event,
                SwarmEvent::Behaviour(RawBehaviourEvent::Gossipsub(
                    gossipsub::Event::Subscribed { .. }
                ))
            )
        });
        tokio::time::timeout(TIMEOUT, subscribed)
            .await
            .expect("raw node sees the peer subscribe");
    }

    /// Polls the swarm (answering metadata and Store requests) until `done` accepts an
    /// event.
    pub async fn drive_until(
        &mut self,
        mut done: impl FnMut(&SwarmEvent<RawBehaviourEvent>) -> bool,
    ) {
        loop {
            let event = self.swarm.select_next_some().await;
            match event {
                SwarmEvent::Behaviour(RawBehaviourEvent::Metadata(
                    request_response::Event::Message {
                        message: request_response::Message::Request { channel, .. },
                        ..
                    },
                )) => {
                    if let Some(metadata) = self.swarm.behaviour_mut().metadata.as_mut() {
                        // The requester may be gone; nothing to do then.
                        let _ = metadata.send_response(channel, ());
                    }
                }
                SwarmEvent::Behaviour(RawBehaviourEvent::Store(
                    request_response::Event::Message {
                        message: request_response::Message::Request { channel, .. },
                        ..
                    },
                )) => match self.store_answer.clone() {
                    Some(RawStore::Answer(bytes)) => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .store
                            .send_response(channel, bytes);
                    }
                    Some(RawStore::Silent) | None => self.held.push(channel),
                },
                event if done(&event) => return,
                _ => {}
            }
        }
    }

    /// Dials `peer` again.
    pub fn redial(&mut self, peer: Multiaddr) {
        self.swarm.dial(peer).expect("dial");
    }

    /// Drives the swarm until a connection is established and then closed again.
    pub async fn wait_connection_refused(&mut self) {
        let mut established = false;
        let refused = self.drive_until(|event| match event {
            SwarmEvent::ConnectionEstablished { .. } => {
                established = true;
                false
            }
            SwarmEvent::ConnectionClosed { .. } => established,
            _ => false,
        });
        tokio::time::timeout(TIMEOUT, refused)
            .await
            .expect("the peer closes the new connection");
    }

    /// Publishes `data` as is (sent while the swarm is driven).
    pub fn publish(&mut self, data: Vec<u8>) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
            .expect("raw publish");
    }

    /// Sends `bytes`, exactly, as a Store query to `peer`, and returns the raw response: the
    /// bytes up to the end of the stream, or the failure.
    pub async fn store_request(&mut self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        let id: OutboundRequestId = self.swarm.behaviour_mut().store.send_request(&peer, bytes);
        let mut outcome = None;
        let wait = self.drive_until(|event| match event {
            SwarmEvent::Behaviour(RawBehaviourEvent::Store(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            })) if *request_id == id => {
                outcome = Some(Ok(response.clone()));
                true
            }
            SwarmEvent::Behaviour(RawBehaviourEvent::Store(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) if *request_id == id => {
                outcome = Some(Err(error.to_string()));
                true
            }
            _ => false,
        });
        tokio::time::timeout(TIMEOUT, wait)
            .await
            .expect("the store query ends in time");
        outcome.expect("set before the wait ends")
    }

    /// Drives the swarm until `until` completes.
    pub async fn run_while<T>(&mut self, until: impl Future<Output = T>) -> T {
        tokio::select! {
            output = until => output,
            () = self.drive_until(|_| false) => unreachable!("drive_until(false) never returns"),
        }
    }
}
