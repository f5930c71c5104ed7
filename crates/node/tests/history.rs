//! No message is lost to an outage: `demls node` processes on loopback in a line, B–A–C (Bob
//! and Carol each peer only Alice). Carol is killed with SIGKILL while Bob sends 20 messages,
//! then Bob is gone too; restarted, Carol gets all 20, in order, from Alice's archive (Waku
//! Store). A node stopped with SIGSTOP gets what was said while it was frozen, in order, from
//! the archive; a message turns from `sent` to `delivered` once another member has it; and of a
//! steward's announcements, every 5 s, a node's archive serves only the latest.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

/// No peer exchange: the nodes stay in the line they were started in.
const LINE: &[&str] = &["--target-peers", "0"];

/// Alice, Bob and Carol in a line, all members of `lab`.
fn line(tmp: &std::path::Path) -> (NodeProc, NodeProc, NodeProc) {
    line_of_three(tmp, LINE, LIMIT)
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

    let carol = NodeProc::start_with(&carol_dir, &carol_socket, &[&alice.listen], LINE);
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

    carol.signal("-STOP");
    let sent = numbered("while frozen", 10);
    for text in &sent {
        bob.cli_json(&["send", "lab", text]);
    }
    wait_until("alice has them", LIMIT, || {
        with_prefix(&alice, "while frozen").len() == 10
    });
    // Longer than the node's wake-up threshold, so that it also notices it slept.
    std::thread::sleep(Duration::from_secs(25));
    carol.signal("-CONT");
    wait_until(
        "carol gets what was said while she was frozen",
        LIMIT,
        || with_prefix(&carol, "while frozen").len() == 10,
    );
    // Not sorted: one sender's messages are shown in the order it sent them.
    assert_eq!(
        with_prefix(&carol, "while frozen"),
        sent,
        "in the order sent"
    );
    let metrics = carol.metrics();
    let fetched = metric(&metrics, "demls_history_fetched_total{kind=\"new\"}");
    // On waking she notices she slept and asks Alice's archive (Waku Store). In runs it
    // brought 8 to 10 of the ten: the rest were still in her socket's buffer.
    assert!(
        fetched.is_some_and(|n| n >= 1.0),
        "carol's missed messages came from alice's archive: {fetched:?}"
    );
    eprintln!("carol after the freeze: history fetched new {fetched:?}");

    // Causal order across senders: Carol's answer, written after she read all ten, comes
    // after them in every history.
    carol.cli_json(&["send", "lab", "while frozen: answer"]);
    for node in [&alice, &bob, &carol] {
        wait_until("the answer arrives", LIMIT, || {
            with_prefix(node, "while frozen").len() == 11
        });
        let texts = with_prefix(node, "while frozen");
        assert_eq!(texts[..10], sent[..], "in the order sent");
        assert_eq!(texts[10], "while frozen: answer", "after what it answers");
    }
}

/// A message's delivery is `sent` while no other member has it, and `delivered` once another
/// member names it in its causal history (here Bob, frozen with SIGSTOP, then woken, answers).
#[test]
fn a_message_turns_from_sent_to_delivered_once_another_member_has_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = two_members(tmp.path(), "lab");

    bob.signal("-STOP");
    alice.cli_json(&["send", "lab", "are you there"]);
    let delivery = || -> Option<String> {
        let messages = alice.cli_json(&["messages", "lab"]);
        messages.as_array()?.iter().find_map(|m| {
            (m["text"] == "are you there").then(|| m["delivery"].as_str().unwrap_or("").to_owned())
        })
    };
    wait_until("alice's message is sent", LIMIT, || {
        delivery().as_deref() == Some("sent")
    });
    // Nobody else has it while Bob is frozen: it stays `sent`.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(delivery().as_deref(), Some("sent"));

    bob.signal("-CONT");
    wait_until("bob has it", LIMIT, || {
        bob.texts("lab").iter().any(|t| t == "are you there")
    });
    // Bob says nothing: his sync (due 10-20 s after a message arrives) names Alice's message.
    wait_until("alice's message is delivered", LIMIT, || {
        delivery().as_deref() == Some("delivered")
    });
}

/// Runs js-waku's Store client (`interop/js-waku/store-client.mjs`) against `peer` for
/// `content_topic` with pages of `page_size`, forward; returns the pages it read.
fn js_waku_store_query(peer: &str, content_topic: &str, page_size: u64) -> Vec<Vec<Value>> {
    use std::io::{BufRead, BufReader, Write};
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/js-waku/store-client.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .args(["--cluster", "4242", "--shard", "0"])
        .args(["--content-topic", content_topic, "--peer", peer])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Node.js runs (npm ci --prefix interop/js-waku first)");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = |wanted: &str| -> Value {
        for line in lines.by_ref() {
            let event: Value = serde_json::from_str(&line.expect("a line")).expect("JSON");
            assert_ne!(event["event"], "error", "{event}");
            if event["event"] == wanted {
                return event;
            }
        }
        panic!("store-client.mjs ended before {wanted}");
    };
    next("ready");
    let query =
        serde_json::json!({"cmd": "query", "pageSize": page_size, "forward": true, "cursor": null});
    writeln!(stdin, "{query}").expect("send the query");
    let pages = next("pages")["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p.as_array().expect("a page").clone())
        .collect();
    let _ = writeln!(stdin, "{}", serde_json::json!({"cmd": "stop"}));
    let _ = child.wait();
    pages
}

#[test]
fn a_js_waku_store_client_reads_a_groups_history_from_a_demls_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = two_members(tmp.path(), "lab");
    for text in numbered("for the record", 5) {
        bob.cli_json(&["send", "lab", &text]);
    }
    wait_until("alice has them", LIMIT, || {
        with_prefix(&alice, "for the record").len() == 5
    });

    // The group's identifier on the wire is random: its topic does not show "lab".
    let id = alice.group("lab").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let topic = format!("/demls/1/{id}-app/proto");
    let whole: Vec<Value> = js_waku_store_query(&alice.listen, &topic, 100)
        .into_iter()
        .flatten()
        .collect();
    // The commit that added Bob, his five messages, and what else the group said.
    assert!(whole.len() >= 6, "{} messages", whole.len());
    for m in &whole {
        assert_eq!(m["contentTopic"], topic.as_str());
        assert_eq!(m["pubsubTopic"], "/waku/2/rs/4242/0");
    }
    let hashes: std::collections::BTreeSet<String> =
        whole.iter().map(|m| m["hash"].to_string()).collect();
    assert_eq!(hashes.len(), whole.len(), "no message twice");
    // Paging with js-waku's cursors walks the same messages in the same order.
    let paged = js_waku_store_query(&alice.listen, &topic, 2);
    assert!(paged.len() >= 3, "{} pages", paged.len());
    assert_eq!(paged.into_iter().flatten().collect::<Vec<_>>(), whole);
}

#[test]
fn a_member_offline_across_five_epochs_gets_every_message_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, mut carol) = line(tmp.path());
    let (start_epoch, _) = epoch_and_size(&alice.group("lab").unwrap());
    bob.cli_json(&["send", "lab", "epoch talk 0"]);
    wait_until("carol reads the first", LIMIT, || {
        with_prefix(&carol, "epoch talk").len() == 1
    });
    let carol_socket = carol.listen_socket();
    let carol_dir = carol.dir.clone();
    carol.kill();

    // While Carol is away: three join (by invitation; Carol's silence does not block them)
    // and two of them leave again, a message in each epoch.
    let newcomers: Vec<NodeProc> = ["dave", "erin", "frank"]
        .iter()
        .map(|name| {
            NodeProc::start(
                &tmp.path().join(name),
                "/ip4/127.0.0.1/tcp/0",
                &[&alice.listen],
            )
        })
        .collect();
    let mut expected = vec!["epoch talk 0".to_owned()];
    let mut epoch = start_epoch;
    let mut says = |text: String, epoch: u64| {
        wait_until(&format!("alice at epoch {epoch}"), LIMIT, || {
            epoch_and_size(&alice.group("lab").unwrap()).0 == epoch
        });
        wait_until(&format!("bob at epoch {epoch}"), LIMIT, || {
            epoch_and_size(&bob.group("lab").unwrap()).0 == epoch
        });
        bob.cli_json(&["send", "lab", &text]);
        expected.push(text);
    };
    for newcomer in &newcomers {
        alice.invite("lab", newcomer);
        epoch += 1;
        says(format!("epoch talk {}", epoch - start_epoch), epoch);
    }
    for leaver in &newcomers[..2] {
        leaver.cli_json(&["leave", "lab"]);
        epoch += 1;
        says(format!("epoch talk {}", epoch - start_epoch), epoch);
    }
    assert_eq!(epoch, start_epoch + 5);
    wait_until("alice has every message", LIMIT, || {
        with_prefix(&alice, "epoch talk").len() == expected.len()
    });
    drop(carol);

    let carol = NodeProc::start(&carol_dir, &carol_socket, &[&alice.listen]);
    wait_until("carol gets every message of the five epochs", LIMIT, || {
        with_prefix(&carol, "epoch talk").len() == expected.len()
    });
    assert_eq!(with_prefix(&carol, "epoch talk"), expected);
    assert_eq!(
        epoch_and_size(&carol.group("lab").unwrap()),
        epoch_and_size(&alice.group("lab").unwrap())
    );
    // Frank, who joined in the third of those epochs, has nothing from before he joined.
    let frank = with_prefix(&newcomers[2], "epoch talk");
    assert_eq!(
        frank,
        expected[3..].to_vec(),
        "frank's history starts at his join"
    );
}

#[test]
fn a_stewards_announcements_leave_only_the_latest_in_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = NodeProc::start_with(&tmp.path().join("alice"), "/ip4/127.0.0.1/tcp/0", &[], LINE);
    // A peer outside the group, so that Alice's announcements are published (and archived).
    let _peer = NodeProc::start_with(
        &tmp.path().join("peer"),
        "/ip4/127.0.0.1/tcp/0",
        &[&alice.listen],
        LINE,
    );
    alice.cli_json(&["create", "lab"]);
    let id = alice.group("lab").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let welcome = format!("/demls/1/{id}-welcome/proto");
    // Alice announces the group every 5 s; nobody else speaks on its welcome topic.
    let announcements = || -> Vec<Value> {
        js_waku_store_query(&alice.listen, &welcome, 100)
            .into_iter()
            .flatten()
            .collect()
    };
    wait_until("an announcement is archived", LIMIT, || {
        !announcements().is_empty()
    });
    let first = announcements();
    assert_eq!(first.len(), 1, "{first:?}");
    std::thread::sleep(Duration::from_secs(11));
    let later = announcements();
    assert_eq!(
        later.len(),
        1,
        "two or more announced since, one kept: {later:?}"
    );
    assert_ne!(
        later[0]["hash"], first[0]["hash"],
        "the newer one replaced it"
    );
}
