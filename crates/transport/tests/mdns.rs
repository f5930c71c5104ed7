//! Two relay nodes on one host, given no peer at all, find each other by mDNS. mDNS runs on the
//! host's non-loopback IPv4 interfaces and announces the addresses the node listens on there,
//! so the nodes listen on 0.0.0.0 (a node listening on 127.0.0.1 only has nothing to announce).
//!
//! Run as root (as CI runs it), the test first gives itself a network of its own: a network
//! namespace with a veth link and a route for multicast. libp2p's mDNS sends its queries by
//! the routing table, so a host with no route to 224.0.0.251 (no default route, as on a CI
//! machine where this test failed) never finds anyone; and a test should not announce itself
//! on a real LAN.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Node, config, peers_reach};
use demls_transport::{DEFAULT_CLUSTER_ID, TransportConfig};

/// Moves this thread, and so the runtime threads it starts afterwards, into a new network
/// namespace with loopback and one multicast-capable link up. Returns false, changing nothing,
/// where the process may not make one (not root): the test then uses the host's interfaces.
fn enter_private_lan() -> bool {
    // SAFETY: unshare(2) takes no pointers; it only changes this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return false;
    }
    let setup = "ip link set lo up \
        && ip link add demls-a type veth peer name demls-b \
        && ip link set demls-a up && ip link set demls-b up \
        && ip addr add 10.77.0.1/24 dev demls-a \
        && ip route add 224.0.0.0/4 dev demls-a";
    let status = Command::new("sh").args(["-c", setup]).status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "setting up the test's network namespace (iproute2's `ip`): {status:?}"
    );
    true
}

#[test]
fn two_nodes_with_no_peers_find_each_other_by_mdns() {
    let private = enter_private_lan();
    eprintln!("mdns test on a private veth link: {private}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
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
    });
}
