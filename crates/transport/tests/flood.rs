//! Never deaf: an independent js-waku peer floods the pubsub topic (1000 messages in 3 s) into
//! nine demls relay nodes, one of which has more peers than its mesh keeps, so it gossips
//! (IHAVE) about the flood. Afterwards every demls node still hears every other one, and every
//! node got every flood message. Needs Node.js 20+ and `npm ci --prefix interop/js-waku`.

mod common;
mod js;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Node, TIMEOUT, config, first_addr, no_exchange, peers_reach};
use demls_transport::{
    ContentTopic, DEFAULT_CLUSTER_ID, PeerId, RelayHandle, TransportEvent, TransportMetrics,
};
use js::{CONTENT_TOPIC, JsPeer};
use serde_json::json;

const LEAVES: usize = 8;
const FLOOD_COUNT: usize = 1000;
const FLOOD_MILLIS: u64 = 3000;
const FLOOD_PAYLOAD: usize = 200;

/// How long to wait for a node to catch up with the flood; the flood is re-offered by gossip
/// for a few seconds only, so anything missing after this stays missing.
const CATCH_UP: Duration = Duration::from_secs(60);

/// What a node received: message hashes by content topic.
type Inbox = Arc<Mutex<HashMap<String, HashSet<String>>>>;

/// Reads a node's events for the whole test (so that it never stops reading the network) and
/// records the messages it receives.
fn collect(node: Node) -> (RelayHandle, Inbox) {
    let Node { handle, mut events } = node;
    let inbox = Inbox::default();
    let sink = inbox.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let TransportEvent::Message { message, hash, .. } = event {
                sink.lock()
                    .expect("inbox lock")
                    .entry(message.content_topic)
                    .or_default()
                    .insert(hash.to_string());
            }
        }
    });
    (handle, inbox)
}

fn received(inbox: &Inbox, topic: &str) -> HashSet<String> {
    inbox
        .lock()
        .expect("inbox lock")
        .get(topic)
        .cloned()
        .unwrap_or_default()
}

/// Waits until every inbox holds every hash of `expected` under `topic`, or until `patience`
/// passes without progress; returns how many of them each inbox holds.
async fn wait_for_all(
    inboxes: &[Inbox],
    topic: &str,
    expected: &HashSet<String>,
    patience: Duration,
) -> Vec<usize> {
    let counts = || -> Vec<usize> {
        inboxes
            .iter()
            .map(|inbox| received(inbox, topic).intersection(expected).count())
            .collect()
    };
    let mut last = counts();
    let mut last_progress = tokio::time::Instant::now();
    while last.iter().any(|&n| n < expected.len()) && last_progress.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counts();
        if now != last {
            last = now;
            last_progress = tokio::time::Instant::now();
        }
    }
    last
}

fn describe(names: &[String], metrics: &[TransportMetrics]) -> String {
    names
        .iter()
        .zip(metrics)
        .map(|(name, m)| format!("{name}: {m:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_flood_leaves_no_node_deaf() {
    let mut js = JsPeer::relay(DEFAULT_CLUSTER_ID).await;

    // A star: the hub peers with js-waku and all eight leaves (nine peers, more than the mesh
    // keeps: D_high is 8, so it prunes to 6 and gossips IHAVEs to the rest).
    let hub = Node::start(config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])).await;
    let hub_addr = first_addr(&hub.handle);
    let mut nodes = vec![hub];
    for _ in 0..LEAVES {
        // The leaves know only the hub and do not seek each other, so that the hub has more
        // peers than its mesh keeps.
        nodes.push(Node::start(no_exchange(vec![hub_addr.clone()])).await);
    }
    let names: Vec<String> = (0..nodes.len())
        .map(|i| match i {
            0 => "hub".to_owned(),
            i => format!("leaf {i}"),
        })
        .collect();
    let (handles, inboxes): (Vec<RelayHandle>, Vec<Inbox>) = nodes.into_iter().map(collect).unzip();
    let leaves: Vec<PeerId> = handles[1..].iter().map(RelayHandle::peer_id).collect();
    let mut hub_peers = leaves.clone();
    hub_peers.push(js.peer_id);
    peers_reach(&handles[0], &hub_peers).await;
    for leaf in &handles[1..] {
        peers_reach(leaf, &[handles[0].peer_id()]).await;
    }

    js.send(json!({
        "cmd": "flood",
        "count": FLOOD_COUNT,
        "durationMs": FLOOD_MILLIS,
        "size": FLOOD_PAYLOAD,
    }))
    .await;
    let flooded = js
        .next_within("flooded", TIMEOUT + Duration::from_millis(FLOOD_MILLIS))
        .await;
    let sent: HashSet<String> = flooded["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| h.as_str().expect("hex hash").to_owned())
        .collect();
    eprintln!(
        "js-waku published {} messages in {} ms ({} failed)",
        sent.len(),
        flooded["elapsedMs"],
        flooded["failed"]
    );
    assert_eq!(sent.len(), FLOOD_COUNT, "js-waku published the whole flood");

    let counts = wait_for_all(&inboxes, CONTENT_TOPIC, &sent, CATCH_UP).await;
    for (name, count) in names.iter().zip(&counts) {
        eprintln!("{name} received {count} of {FLOOD_COUNT} flood messages");
    }

    // Not deaf: every node publishes once, and every other node receives it.
    let alive = ContentTopic::new("demls", "1", "alive", "proto").expect("topic");
    for (i, handle) in handles.iter().enumerate() {
        handle
            .publish(&alive, format!("alive from {i}").into_bytes(), None)
            .await
            .unwrap_or_else(|e| panic!("{} publishes: {e}", names[i]));
    }
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let heard = |i: usize| received(&inboxes[i], alive.as_str());
    while (0..handles.len()).any(|i| heard(i).len() < handles.len() - 1)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics: Vec<TransportMetrics> = handles.iter().map(RelayHandle::metrics).collect();
    eprintln!("{}", describe(&names, &metrics));
    let deaf: Vec<&String> = (0..handles.len())
        .filter(|&i| heard(i).len() < handles.len() - 1)
        .map(|i| &names[i])
        .collect();
    assert!(
        deaf.is_empty(),
        "nodes that no longer hear every other node: {deaf:?}\n{}",
        describe(&names, &metrics)
    );
    assert!(
        counts.iter().all(|&n| n == FLOOD_COUNT),
        "flood messages received per node: {counts:?}\n{}",
        describe(&names, &metrics)
    );
    // Peer scoring banned no one: the flood is valid traffic.
    assert!(
        metrics.iter().all(|m| m.peers_banned == 0),
        "a node banned an honest peer\n{}",
        describe(&names, &metrics)
    );
    js.send(json!({"cmd": "stop"})).await;
}
