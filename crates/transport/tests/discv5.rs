//! discv5 between relay nodes on 127.0.0.1: nodes that know only one node's ENR find each
//! other through the DHT (peer exchange off), what they found is served to peer exchange
//! queries, and ENRs of nodes that are no Waku relay nodes, or relay for another cluster, are
//! counted and skipped.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{Node, config, first_addr, metrics_reach, no_exchange, peers_reach};
use demls_transport::{
    BootstrapEnr, DEFAULT_CLUSTER_ID, Discv5Config, Discv5Drop, TransportConfig,
};

/// A node that runs discv5 on a free UDP port, bootstrapped from `bootstrap` (ENRs in text
/// form), with peer exchange off, so that only discv5 can make it find peers.
fn discv5_only(bootstrap: &[String]) -> TransportConfig {
    TransportConfig {
        discv5: Some(Discv5Config {
            port: 0,
            bootstrap: bootstrap
                .iter()
                .map(|enr| enr.parse().expect("a bootstrap ENR"))
                .collect(),
        }),
        ..no_exchange(vec![])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_given_one_enr_find_each_other_through_discv5() {
    let a = Node::start(discv5_only(&[])).await;
    let a_enr = a.handle.enr().expect("A has an ENR");
    let read: BootstrapEnr = a_enr.parse().expect("with a UDP port");
    assert_eq!(read.to_string(), a_enr);
    let started = tokio::time::Instant::now();
    let b = Node::start(discv5_only(std::slice::from_ref(&a_enr))).await;
    let c = Node::start(discv5_only(&[a_enr])).await;
    let (a_id, b_id, c_id) = (a.handle.peer_id(), b.handle.peer_id(), c.handle.peer_id());
    // Nobody was given a TCP address: every connection comes from an ENR discv5 found.
    peers_reach(&b.handle, &[a_id, c_id]).await;
    peers_reach(&c.handle, &[a_id, b_id]).await;
    peers_reach(&a.handle, &[b_id, c_id]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    for node in [&a, &b, &c] {
        let m = node.handle.metrics();
        assert!(m.discv5_found >= 2, "{m:?}");
        assert_eq!(m.peer_exchange_served, 0, "{m:?}");
        assert!(
            Discv5Drop::ALL.iter().all(|&r| m.discv5_dropped(r) == 0),
            "{m:?}"
        );
    }
    // A node without discv5 that knows only B learns A and C from B's peer exchange answer,
    // which serves the peers B's discv5 found (their secp256k1 ENRs give the right peer ids).
    let d = Node::start(config(DEFAULT_CLUSTER_ID, vec![first_addr(&b.handle)])).await;
    peers_reach(&d.handle, &[a_id, b_id, c_id]).await;
    assert!(b.handle.metrics().peer_exchange_served >= 1);
}

/// A bare discv5 node (no Waku at all) on 127.0.0.1 whose ENR has the given fields.
async fn bare_discv5_node(
    build: impl FnOnce(&mut enr::Builder<enr::CombinedKey>),
) -> discv5::Discv5 {
    let key = enr::CombinedKey::generate_secp256k1();
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a UDP port");
    let port = socket.local_addr().expect("bound").port();
    socket.set_nonblocking(true).expect("non-blocking");
    let mut builder = enr::Enr::builder();
    builder.ip4(Ipv4Addr::LOCALHOST).udp4(port);
    build(&mut builder);
    let enr = builder.build(&key).expect("an ENR");
    let listen = discv5::ListenConfig::FromSockets {
        ipv4: Some(std::sync::Arc::new(
            tokio::net::UdpSocket::from_std(socket).expect("tokio socket"),
        )),
        ipv6: None,
    };
    let mut node = discv5::Discv5::new(enr, key, discv5::ConfigBuilder::new(listen).build())
        .expect("a discv5 node");
    node.start().await.expect("starts");
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrs_of_nodes_that_are_not_waku_relays_are_counted_and_skipped() {
    // One node of another network (no `waku2`), one relay without a TCP port, and one relay
    // of The Waku Network (cluster 1, shard 0 in its `rs` field).
    let foreign = bare_discv5_node(|_| {}).await;
    let no_tcp = bare_discv5_node(|b| {
        b.add_value("waku2", &[1u8]);
    })
    .await;
    let other_cluster = bare_discv5_node(|b| {
        b.add_value("waku2", &[1u8])
            .tcp4(60001)
            .add_value("rs", &alloy_rlp::Bytes::from(vec![0u8, 1, 1, 0, 0]));
    })
    .await;
    let a = Node::start(discv5_only(&[
        foreign.local_enr().to_base64(),
        no_tcp.local_enr().to_base64(),
        other_cluster.local_enr().to_base64(),
    ]))
    .await;
    metrics_reach(&a.handle, "the three bogus ENRs counted", |m| {
        m.discv5_dropped(Discv5Drop::NotRelay) >= 1
            && m.discv5_dropped(Discv5Drop::NoAddress) >= 1
            && m.discv5_dropped(Discv5Drop::OtherShards) >= 1
    })
    .await;
    assert_eq!(a.handle.metrics().discv5_found, 0);
    assert!(a.handle.connected_peers().is_empty());
    // Still a working node: a relay node that knows only its ENR finds it.
    let b = Node::start(discv5_only(&[a.handle.enr().expect("an ENR")])).await;
    peers_reach(&b.handle, &[a.handle.peer_id()]).await;
}
