//! Never deaf, with real nodes: nine `demls node` processes in a public group, each connected
//! to an independent js-waku peer that publishes 1000 WakuMessages in 3 s into the group's
//! message topic (so that the js-waku peer, with more peers than its mesh keeps, also
//! advertises the flood by gossip, as in issue 11's report). Afterwards every member still
//! hears the others: a chat message and a key update's commit reach all nine, and each node
//! counted the flood (relayed in, dropped by its engine) rather than going deaf.
//! Needs Node.js 20+ and `npm ci --prefix interop/js-waku`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);
const MEMBERS: usize = 9;
const FLOOD_COUNT: u64 = 1000;

/// interop/js-waku/relay-peer.mjs, driven over JSON lines; its events are read on a thread
/// so that it never blocks on a full pipe.
struct JsRelay {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
}

impl Drop for JsRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl JsRelay {
    fn start(content_topic: &str) -> JsRelay {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/js-waku");
        let mut child = Command::new("node")
            .arg("relay-peer.mjs")
            .args(["--cluster", "4242", "--shard", "0"])
            .args(["--content-topic", content_topic])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("Node.js runs (npm ci --prefix interop/js-waku first)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && tx.send(event).is_err()
                {
                    break;
                }
            }
        });
        JsRelay {
            child,
            stdin,
            events,
        }
    }

    /// The next event named `wanted` (others skipped).
    fn next(&self, wanted: &str, limit: Duration) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("relay-peer.mjs sent no {wanted}"));
            if event["event"] == wanted {
                return event;
            }
        }
    }
}

fn counter(node: &NodeProc, series: &str) -> f64 {
    metric(&node.metrics(), series).unwrap_or(0.0)
}

#[test]
fn nine_members_flooded_by_a_js_waku_peer_keep_hearing_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let mut js = JsRelay::start("/demls/1/lab-app/proto");
    let js_addr = js.next("ready", LIMIT)["addrs"][0]
        .as_str()
        .expect("a listen address")
        .to_owned();

    // Alice opens a public group (its identifier is its name); the others ask by name. Each
    // dials Alice, its predecessor and the js-waku peer.
    let mut nodes = vec![NodeProc::start(
        &tmp.path().join("node0"),
        "/ip4/127.0.0.1/tcp/0",
        &[&js_addr],
    )];
    nodes[0].cli_json(&["create", "lab", "--open"]);
    for i in 1..MEMBERS {
        let peers = [nodes[0].listen.as_str(), &nodes[i - 1].listen, &js_addr];
        let node = NodeProc::start(
            &tmp.path().join(format!("node{i}")),
            "/ip4/127.0.0.1/tcp/0",
            &peers,
        );
        node.cli_json(&["join", "lab"]);
        nodes.push(node);
    }
    wait_until("nine members on every node", LIMIT, || {
        nodes.iter().all(|n| {
            n.group("lab")
                .is_some_and(|g| epoch_and_size(&g).1 == MEMBERS)
        })
    });
    let heard_before: Vec<f64> = nodes
        .iter()
        .map(|n| counter(n, "demls_relay_messages_total{direction=\"in\"}"))
        .collect();

    let flood = json!({"cmd": "flood", "count": FLOOD_COUNT, "durationMs": 3000, "size": 200});
    writeln!(js.stdin, "{flood}").expect("send the flood command");
    let flooded = js.next("flooded", LIMIT);
    assert_eq!(flooded["sent"], FLOOD_COUNT, "{flooded}");

    // Each node took the flood in and its engine dropped it: counted, not silent.
    wait_until("every node heard the flood", LIMIT, || {
        nodes.iter().zip(&heard_before).all(|(n, before)| {
            counter(n, "demls_relay_messages_total{direction=\"in\"}") - before
                >= FLOOD_COUNT as f64
        })
    });
    for node in &nodes {
        let dropped: f64 = node
            .metrics()
            .lines()
            .filter(|l| l.starts_with("demls_messages_dropped_total{layer=\"engine\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(
            dropped >= FLOOD_COUNT as f64,
            "{} dropped {dropped}",
            node.address
        );
    }

    // Nobody went deaf: a chat message from the last member reaches everyone, and a key
    // update's commit lands on all nine.
    let last = &nodes[MEMBERS - 1];
    last.cli_json(&["send", "lab", "still here after the flood"]);
    wait_until(
        "everyone reads the message sent after the flood",
        LIMIT,
        || {
            nodes.iter().all(|n| {
                n.texts("lab")
                    .iter()
                    .any(|t| t == "still here after the flood")
            })
        },
    );
    let epoch = epoch_and_size(&nodes[0].group("lab").expect("alice's group")).0;
    nodes[4].cli_json(&["rotate", "lab"]);
    wait_until("the key update is committed on every node", LIMIT, || {
        nodes
            .iter()
            .all(|n| n.group("lab").is_some_and(|g| epoch_and_size(&g).0 > epoch))
    });
}
