//! A raw Waku Relay peer: gossipsub under the Waku protocol id that publishes any bytes,
//! answering the metadata protocol so that the node keeps it connected.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, futures::StreamExt, noise, tcp, yamux};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The metadata this peer states: cluster 4242, shard 0 (`{cluster_id: 4242, shards: [0]}`,
/// varint-length-prefixed protobuf).
const METADATA: [u8; 7] = [6, 0x08, 0x92, 0x21, 0x1a, 0x01, 0x00];

/// Answers metadata requests; never asks.
#[derive(Clone, Default)]
struct MetadataAnswer;

impl request_response::Codec for MetadataAnswer {
    type Protocol = StreamProtocol;
    type Request = ();
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<()> {
        // One varint length, then that many bytes, which this peer does not need to read.
        let mut len = 0usize;
        for shift in (0..35).step_by(7) {
            let mut byte = [0u8];
            io.read_exact(&mut byte).await?;
            len |= usize::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut frame = vec![0; len.min(1024)];
        io.read_exact(&mut frame).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> std::io::Result<()> {
        Err(std::io::Error::other("this peer never asks"))
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        (): (),
    ) -> std::io::Result<()> {
        Err(std::io::Error::other("this peer never asks"))
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        (): (),
    ) -> std::io::Result<()> {
        io.write_all(&METADATA).await
    }
}

#[derive(NetworkBehaviour)]
struct Raw {
    gossipsub: gossipsub::Behaviour,
    metadata: request_response::Behaviour<MetadataAnswer>,
}

/// Dials `node`, waits until it subscribes to `pubsub_topic`, publishes every payload as is,
/// then keeps the connection open until the returned task is aborted. `published` fires once
/// everything went out.
pub fn publish_raw(
    node: Multiaddr,
    pubsub_topic: &str,
    payloads: Vec<Vec<u8>>,
) -> (JoinHandle<()>, oneshot::Receiver<()>) {
    let topic = IdentTopic::new(pubsub_topic);
    let (done, published) = oneshot::channel();
    let task = tokio::spawn(async move {
        let config = gossipsub::ConfigBuilder::default()
            .protocol_id(demls_transport::RELAY_PROTOCOL, gossipsub::Version::V1_1)
            .validation_mode(ValidationMode::Anonymous)
            // Anonymous messages have no sequence numbers: tell them apart by their bytes.
            .message_id_fn(|message| gossipsub::MessageId::from(message.data.clone()))
            .build()
            .unwrap();
        let behaviour = Raw {
            gossipsub: gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).unwrap(),
            metadata: request_response::Behaviour::with_codec(
                MetadataAnswer,
                [(
                    StreamProtocol::new("/vac/waku/metadata/1.0.0"),
                    ProtocolSupport::Inbound,
                )],
                request_response::Config::default(),
            ),
        };
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .build();
        swarm.behaviour_mut().gossipsub.subscribe(&topic).unwrap();
        swarm.dial(node).unwrap();
        let mut done = Some(done);
        let mut payloads = Some(payloads);
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(RawEvent::Metadata(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) => {
                    // The node may hang up first; then there is nobody to answer.
                    let _ = swarm.behaviour_mut().metadata.send_response(channel, ());
                }
                SwarmEvent::Behaviour(RawEvent::Gossipsub(gossipsub::Event::Subscribed {
                    topic: subscribed,
                    ..
                })) if subscribed == topic.hash() => {
                    for payload in payloads.take().into_iter().flatten() {
                        swarm
                            .behaviour_mut()
                            .gossipsub
                            .publish(topic.clone(), payload)
                            .unwrap();
                    }
                    if let Some(done) = done.take() {
                        let _ = done.send(());
                    }
                }
                _ => {}
            }
        }
    });
    (task, published)
}
