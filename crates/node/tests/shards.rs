//! `demls node` with autosharding on a cluster shared with other Waku traffic (`--cluster-id
//! 1 --num-shards-in-network 8`, The Waku Network's layout): a group forms and chats on the
//! shard of demls's content topics, a member back from a kill gets what it missed from a
//! peer's Store on that shard, and shard flags out of range stop the node with an error.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Cluster 1 with 8 shards, also relaying on shard 0; no peer exchange (the nodes stay in
/// the line they were started in).
const SHARDED: &[&str] = &[
    "--cluster-id",
    "1",
    "--num-shards-in-network",
    "8",
    "--shard",
    "0",
    "--target-peers",
    "0",
];

/// `/demls/1/…` maps to shard 1 of 8.
const DEMLS_PUBSUB_TOPIC: &str = "/waku/2/rs/1/1";

#[test]
fn an_autosharded_group_chats_and_catches_up_on_its_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, mut carol) = line_of_three(tmp.path(), SHARDED, LIMIT);
    assert_eq!(
        alice.api_get("/api/node")["pubsub_topic"],
        DEMLS_PUBSUB_TOPIC
    );
    bob.cli_json(&["send", "lab", "hello on shard 1"]);
    wait_until("alice and carol have bob's message", LIMIT, || {
        [&alice, &carol]
            .iter()
            .all(|n| n.texts("lab").contains(&"hello on shard 1".to_owned()))
    });

    // Carol misses messages; back, she gets them from Alice's archive, queried on shard 1.
    let carol_socket = carol.listen_socket();
    let carol_dir = carol.dir.clone();
    carol.kill();
    drop(carol);
    let missed = 5;
    for i in 1..=missed {
        bob.cli_json(&["send", "lab", &format!("missed {i}")]);
    }
    let has_all = |node: &NodeProc| {
        let texts = node.texts("lab");
        texts.iter().filter(|t| t.starts_with("missed")).count() == missed
    };
    wait_until("alice has bob's messages", LIMIT, || has_all(&alice));
    let carol = NodeProc::start_with(&carol_dir, &carol_socket, &[&alice.listen], SHARDED);
    wait_until("carol gets what she missed", LIMIT, || has_all(&carol));
    let fetched = metric(
        &carol.metrics(),
        "demls_history_fetched_total{kind=\"new\"}",
    );
    assert!(fetched.is_some_and(|n| n >= 1.0), "{fetched:?}");
}

#[test]
fn shard_flags_out_of_range_stop_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    for (flags, says) in [
        (&["--shard", "1024"][..], "shard 1024"),
        (
            &["--num-shards-in-network", "2000"][..],
            "num_shards_in_network",
        ),
        (
            &["--num-shards-in-network", "0"][..],
            "--num-shards-in-network",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_demls"))
            .args(["node", "--data-dir"])
            .arg(tmp.path().join("n"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0"])
            .args(flags)
            .env("DEMLS_PASSPHRASE", PASSPHRASE)
            .env_remove("DEMLS_ETH_RPC")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flags:?} started");
        assert!(err.contains(says), "{flags:?}: {err}");
    }
}
