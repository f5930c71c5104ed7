//! Two relay nodes on one host, given no peer at all, find each other by mDNS. mDNS runs on the
//! host's non-loopback IPv4 interfaces and announces the addresses the node listens on there,
//! so the nodes listen on 0.0.0.0 (a node listening on 127.0.0.1 only has nothing to announce).

mod common;

use std::time::Duration;

use common::{Node, config, peers_reach};
use demls_transport::{DEFAULT_CLUSTER_ID, TransportConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_no_peers_find_each_other_by_mdns() {
    let lan = TransportConfig {
        mdns: true,
        listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("multiaddr")],
        ..config(DEFAULT_CLUSTER_ID, vec![])
    };
    let a = Node::start(lan.clone()).await;
    let b = Node::start(lan).await;
    let started = tokio::time::Instant::now();
    peers_reach(&a.handle, &[b.handle.peer_id()]).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(a.handle.metrics().peers_discovered + b.handle.metrics().peers_discovered >= 1);
}
