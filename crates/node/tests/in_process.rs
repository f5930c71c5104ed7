//! Two nodes run in this test's own process through the `demls` library (no child
//! processes): each with its own data directory and its real transport on loopback, driven
//! through the `NodeHandle` that `runtime::start` returns. One creates an open group, the
//! other asks to join it by name, and once it is in, each sends a message the other reads.

use std::path::Path;
use std::time::Duration;

use demls::runtime::admission::ChainAccess;
use demls::runtime::{self, NodeConfig, NodeHandle};
use demls_engine::{EngineConfig, GroupId, GroupParams, JoinRule};
use demls_storage::{ArchiveLimits, Durability};
use demls_transport::TransportConfig;
use zeroize::Zeroizing;

const GROUP: &str = "lab";
const LIMIT: Duration = Duration::from_secs(60);

async fn start(dir: &Path, peers: Vec<String>) -> NodeHandle {
    runtime::start(NodeConfig {
        data_dir: dir.to_owned(),
        passphrase: Zeroizing::new("in-process test".into()),
        key_file: None,
        transport: TransportConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr")],
            peers: peers
                .iter()
                .map(|p| p.parse().expect("a listen address"))
                .collect(),
            ..TransportConfig::default()
        },
        engine: EngineConfig {
            announce_interval_ms: 1_000,
            commit_delay_ms: 1_000,
            ..EngineConfig::default()
        },
        durability: Durability::Relaxed,
        chain: ChainAccess::none(),
        archive: ArchiveLimits::default(),
    })
    .await
    .expect("the node starts")
}

/// Polls `check` on `node` until it holds, for at most [`LIMIT`].
async fn wait_for(
    what: &str,
    node: &NodeHandle,
    check: impl Fn(&mut runtime::Runtime) -> bool + Send + Clone + 'static,
) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline {
        if node.call(check.clone()).await.expect("the node runs") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within {LIMIT:?}");
}

fn texts(rt: &runtime::Runtime) -> Vec<String> {
    rt.messages(GROUP, 0, 100)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.message.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_form_a_group_and_talk() {
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let alice = start(&dirs.path().join("alice"), Vec::new()).await;
    let listen = alice.call(|rt| rt.info().listen_addrs).await.expect("runs");
    let bob = start(&dirs.path().join("bob"), listen).await;
    let bob_address = bob.address();

    alice
        .command(|rt| {
            rt.create_group(
                GROUP,
                GroupParams {
                    join_rule: JoinRule::Open,
                    ..GroupParams::default()
                },
            )
        })
        .await
        .expect("alice creates the group");
    let group = GroupId::new(GROUP).expect("a group name");
    bob.command(|rt| rt.join(GROUP, None))
        .await
        .expect("bob asks to join");
    let in_group = move |rt: &mut runtime::Runtime| {
        rt.group_view(&group)
            .is_some_and(|v| v.members.len() == 2 && v.members.contains(&bob_address))
    };
    wait_for("bob is in alice's view", &alice, in_group.clone()).await;
    wait_for("bob is in his own view", &bob, in_group).await;

    alice
        .command(|rt| rt.send(GROUP, "hello from alice"))
        .await
        .expect("alice sends");
    bob.command(|rt| rt.send(GROUP, "hello from bob"))
        .await
        .expect("bob sends");
    let both = |rt: &mut runtime::Runtime| {
        let seen = texts(rt);
        ["hello from alice", "hello from bob"]
            .iter()
            .all(|t| seen.iter().any(|s| s == t))
    };
    wait_for("bob reads alice", &bob, both).await;
    wait_for("alice reads bob", &alice, both).await;
    for node in [alice, bob] {
        node.shutdown().await.expect("the node stops");
    }
}
