//! Nodes run in this test's own process through the `demls` library (no child processes):
//! each with its own data directory and its real transport on loopback, driven through the
//! `NodeHandle` that `runtime::start` returns. One creates an open group and the other asks
//! to join it by name; once it is in, each sends a message the other reads, or a vote open
//! when a node restarts is still open, with its votes, after the restart.

use std::path::Path;
use std::time::Duration;

use demls::runtime::admission::ChainAccess;
use demls::runtime::{self, NodeConfig, NodeHandle};
use demls_api::ProposalState;
use demls_engine::{EngineConfig, GroupId, GroupParams, JoinRule, ProposalId};
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

/// The first of `names` creates an open group and the others, started with it as their
/// peer, join it one after the other.
async fn group_of(dir: &Path, names: &[&str]) -> Vec<NodeHandle> {
    let first = start(&dir.join(names[0]), Vec::new()).await;
    first
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
        .expect("the first node creates the group");
    let peers = listen_addrs(&first).await;
    let mut nodes = vec![first];
    for name in &names[1..] {
        let node = start(&dir.join(name), peers.clone()).await;
        node.command(|rt| rt.join(GROUP, None))
            .await
            .expect("it asks to join");
        nodes.push(node);
        let (size, everyone) = (
            nodes.len(),
            nodes.iter().map(NodeHandle::address).collect::<Vec<_>>(),
        );
        let in_group = move |rt: &mut runtime::Runtime| {
            let group = GroupId::new(GROUP).expect("a group name");
            rt.group_view(&group).is_some_and(|v| {
                v.members.len() == size && everyone.iter().all(|a| v.members.contains(a))
            })
        };
        for node in &nodes {
            wait_for(&format!("{name} is in"), node, in_group.clone()).await;
        }
    }
    nodes
}

async fn listen_addrs(node: &NodeHandle) -> Vec<String> {
    node.call(|rt| rt.info().listen_addrs)
        .await
        .expect("the node runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process_form_a_group_and_talk() {
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let [alice, bob] = <[NodeHandle; 2]>::try_from(group_of(dirs.path(), &["alice", "bob"]).await)
        .unwrap_or_else(|_| unreachable!());
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

/// The state and the voters of proposal `id` at a node.
fn proposal(rt: &runtime::Runtime, id: &str) -> Option<(ProposalState, Vec<String>)> {
    rt.proposals(GROUP)
        .ok()?
        .into_iter()
        .find(|p| p.id == id)
        .map(|p| (p.state, p.votes.into_iter().map(|v| v.voter).collect()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_open_when_a_node_restarts_is_still_open_after_it_and_takes_its_vote() {
    let dirs = tempfile::tempdir().expect("a temporary directory");
    let nodes = group_of(dirs.path(), &["alice", "bob", "carol"]).await;
    let [alice, bob, carol] = <[NodeHandle; 3]>::try_from(nodes).unwrap_or_else(|_| unreachable!());
    let (alice_address, carol_address) = (alice.address().to_string(), carol.address());
    let carol_text = carol_address.to_string();
    for node in [&alice, &bob, &carol] {
        node.command(|rt| rt.set_vote_policy(true))
            .await
            .expect("votes by hand");
    }
    // Alice asks to remove Carol: her YES travels in the proposal; Carol's node says NO to
    // its own removal by itself; Bob has not voted.
    alice
        .command(move |rt| rt.propose_remove(GROUP, carol_address))
        .await
        .expect("alice proposes");
    let held_at_bob = move |rt: &mut runtime::Runtime| {
        rt.proposals(GROUP).unwrap_or_default().iter().any(|p| {
            p.state == ProposalState::Open && p.votes.iter().any(|v| v.voter == carol_text)
        })
    };
    wait_for("bob holds the open vote with carol's NO", &bob, held_at_bob).await;
    let id = bob
        .command(|rt| rt.proposals(GROUP))
        .await
        .expect("bob's proposals")
        .into_iter()
        .find(|p| p.state == ProposalState::Open)
        .expect("an open proposal")
        .id;

    // Bob's node stops and starts again on its data directory.
    bob.shutdown().await.expect("bob stops");
    let bob = start(&dirs.path().join("bob"), listen_addrs(&alice).await).await;
    let (state, voters) = {
        let id = id.clone();
        bob.call(move |rt| proposal(rt, &id))
            .await
            .expect("bob runs")
            .expect("the proposal is still stored")
    };
    assert_eq!(state, ProposalState::Open, "the restart closed the vote");
    assert_eq!(voters, vec![alice_address, carol_address.to_string()]);

    // Bob can still vote on it: he says NO, and Alice takes his vote in.
    let proposal_id = ProposalId(
        u32::from_str_radix(id.trim_start_matches("0x"), 16).expect("a proposal id in hex"),
    );
    bob.command(move |rt| rt.vote(GROUP, proposal_id, false))
        .await
        .expect("bob votes after his restart");
    let bob_address = bob.address().to_string();
    let bob_voted = move |rt: &mut runtime::Runtime| {
        proposal(rt, &id).is_some_and(|(_, voters)| voters.contains(&bob_address))
    };
    wait_for("alice has bob's vote", &alice, bob_voted).await;
    for node in [alice, bob, carol] {
        node.shutdown().await.expect("the node stops");
    }
}
