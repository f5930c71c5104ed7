//! No message is lost to an outage: `demls node` processes on loopback in a line, B–A–C (Bob
//! and Carol each peer only Alice). Carol is killed with SIGKILL while Bob sends 20 messages,
//! then Bob is gone too; restarted, Carol gets all 20, in order, from Alice's archive (Waku
//! Store). And a node stopped with SIGSTOP gets what was said while it was frozen.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Alice, Bob and Carol in a line, all members of `lab`.
fn line(tmp: &std::path::Path) -> (NodeProc, NodeProc, NodeProc) {
    let alice = NodeProc::start(&tmp.join("alice"), "/ip4/127.0.0.1/tcp/0", &[]);
    let bob = NodeProc::start(&tmp.join("bob"), "/ip4/127.0.0.1/tcp/0", &[&alice.listen]);
    let carol = NodeProc::start(&tmp.join("carol"), "/ip4/127.0.0.1/tcp/0", &[&alice.listen]);
    alice.cli_json(&["create", "lab"]);
    alice.invite("lab", &bob);
    alice.invite("lab", &carol);
    wait_until("three members on every node", LIMIT, || {
        [&alice, &bob, &carol]
            .iter()
            .all(|n| n.group("lab").is_some_and(|g| epoch_and_size(&g).1 == 3))
    });
    (alice, bob, carol)
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix} {i:02}")).collect()
}

/// The texts of `node`'s history that start with `prefix`, in the history's order.
fn with_prefix(node: &NodeProc, prefix: &str) -> Vec<String> {
    node.texts("lab")
        .into_iter()
        .filter(|t| t.starts_with(prefix))
        .collect()
}

#[test]
fn a_member_killed_while_others_talk_gets_everything_from_a_peers_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, mut bob, mut carol) = line(tmp.path());

    let carol_socket = carol.listen_socket();
    let carol_dir = carol.dir.clone();
    carol.kill();
    let sent = numbered("from bob", 20);
    for text in &sent {
        bob.cli_json(&["send", "lab", text]);
    }
    wait_until("alice has bob's 20 messages", LIMIT, || {
        with_prefix(&alice, "from bob").len() == 20
    });
    // The sender is gone: only Alice's archive holds the messages now.
    bob.kill();
    drop(carol);

    let carol = NodeProc::start(&carol_dir, &carol_socket, &[&alice.listen]);
    wait_until("carol gets bob's 20 messages", LIMIT, || {
        with_prefix(&carol, "from bob").len() == 20
    });
    assert_eq!(with_prefix(&carol, "from bob"), sent, "in the order sent");
    let fetched = metric(
        &carol.metrics(),
        "demls_history_fetched_total{kind=\"new\"}",
    );
    assert!(
        fetched.is_some_and(|n| n >= 20.0),
        "carol's messages came from alice's archive: {fetched:?}"
    );
    let served = metric(
        &alice.metrics(),
        "demls_store_queries_answered_total{outcome=\"served\"}",
    );
    assert!(served.is_some_and(|n| n >= 1.0), "{served:?}");
    let archived = metric(&alice.metrics(), "demls_archive_messages");
    assert!(archived.is_some(), "the archive's size is a metric");
}

#[test]
fn a_member_frozen_with_sigstop_gets_what_was_said_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = line(tmp.path());
    let pid = carol.child.id().to_string();
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    };

    signal("-STOP");
    let sent = numbered("while frozen", 10);
    for text in &sent {
        bob.cli_json(&["send", "lab", text]);
    }
    wait_until("alice has them", LIMIT, || {
        with_prefix(&alice, "while frozen").len() == 10
    });
    // Longer than the node's wake-up threshold, so that it also notices it slept.
    std::thread::sleep(Duration::from_secs(25));
    signal("-CONT");
    wait_until(
        "carol gets what was said while she was frozen",
        LIMIT,
        || with_prefix(&carol, "while frozen").len() == 10,
    );
    let mut got = with_prefix(&carol, "while frozen");
    got.sort();
    assert_eq!(got, sent);
}
