//! Waku Relay for demls, over rust-libp2p.
//!
//! A demls node is a peer on a Waku network: it relays [`WakuMessage`]s with gossipsub under
//! the protocol id `/vac/waku/relay/2.0.0` (StrictNoSign, message id `sha256(data)`), on one
//! or more pubsub topics `/waku/2/rs/<cluster>/<shard>` (static shards, or autosharding by
//! content topic: [`TransportConfig::num_shards_in_network`]), speaks the metadata protocol
//! `/vac/waku/metadata/1.0.0` (disconnecting peers of other clusters), Store v3
//! `/vac/waku/store-query/3.0.0`, identify and ping, over TCP + noise + yamux. It interoperates
//! with nwaku and js-waku nodes.
//!
//! The transport is generic over content topics: it relays every valid message on its shards
//! and hands each to the node above with its content topic; the node maps groups to
//! [`ContentTopic`]s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use demls_transport::{ContentTopic, TransportConfig, TransportEvent, WakuRelay};
//!
//! let (relay, mut events) = WakuRelay::start(TransportConfig::default()).await?;
//! println!("listening on {:?}", relay.listen_addrs());
//! let topic: ContentTopic = "/demls/1/welcome/proto".parse()?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         TransportEvent::PeerConnected(_) => {
//!             relay.publish(&topic, b"hello".to_vec(), None).await?;
//!         }
//!         TransportEvent::Message { message, .. } => println!("{:?}", message.payload),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A node never receives its own publishes: gossipsub does not deliver them back. Use the
//! [`Published`] value returned by [`RelayHandle::publish`] to record what was sent.
//!
//! Payloads whose WakuMessage would exceed [`SegmentationConfig::wire_limit`] (150,000 bytes by
//! default, The Waku Network's limit) are sent in segments with Reed-Solomon parity and
//! delivered to the receiver's node whole, as one [`TransportEvent::Message`]
//! ([`segmentation`]).
//!
//! Nodes find each other with Waku peer exchange ([`peer_exchange`]) from one known peer, and
//! optionally with discv5 ([`dht`], [`TransportConfig::discv5`]) and mDNS on a LAN
//! ([`TransportConfig::mdns`]).
//!
//! A node also speaks Waku Store v3 ([`store`]): it answers peers' queries from the
//! [`store::StoreBackend`] in [`TransportConfig::store`], and queries peers with
//! [`RelayHandle::store_query`] and [`RelayHandle::store_query_all`].

#![warn(missing_docs)]

mod config;
pub mod dht;
mod enr_shards;
mod error;
mod framing;
mod labels;
mod liveness;
mod message;
mod metadata;
pub mod peer_exchange;
mod relay;
pub mod segmentation;
pub mod store;
mod topics;

pub use config::{
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_PEERS, DEFAULT_PROBE_INTERVAL, DEFAULT_STORE_TIMEOUT,
    DEFAULT_TARGET_PEERS, MIN_MAX_MESSAGE_SIZE, TransportConfig,
};
pub use dht::{BootstrapEnr, Discv5Config, Discv5Drop};
pub use enr_shards::EnrShards;
pub use error::{PublishError, ShardError, TransportError};
pub use libp2p::{Multiaddr, PeerId};
pub use liveness::ReconnectReason;
pub use message::{DropReason, MAX_META_LEN, MessageHash, MessageId, WakuMessage};
pub use peer_exchange::PeerExchangeDrop;
pub use relay::{
    BAN_DURATION, Published, REDIAL_INTERVAL, RELAY_PROTOCOL, RelayHandle, TransportEvent,
    TransportMetrics, WakuRelay,
};
pub use segmentation::{SegmentDrop, SegmentationConfig};
pub use topics::{
    ContentTopic, DEFAULT_CLUSTER_ID, DEFAULT_SHARD, MAX_RELAY_SHARDS, MAX_SHARDS_IN_CLUSTER,
    PubsubTopic, TopicError,
};

/// Settings for the property tests that feed arbitrary bytes to the decoders.
#[cfg(test)]
mod fuzz {
    /// 4096 cases per property, or `PROPTEST_CASES` when set (for longer runs).
    pub(crate) fn config() -> proptest::prelude::ProptestConfig {
        let config = proptest::prelude::ProptestConfig::default();
        if std::env::var_os("PROPTEST_CASES").is_some() {
            config
        } else {
            proptest::prelude::ProptestConfig {
                cases: 4096,
                ..config
            }
        }
    }
}
