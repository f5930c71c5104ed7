//! Interop with an independent implementation: a js-waku relay node (interop/js-waku) on
//! 127.0.0.1. Needs Node.js 20+ and `npm ci --prefix interop/js-waku`; fails (never skips)
//! without them.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::{Node, TIMEOUT, config};
use demls_transport::{ContentTopic, DEFAULT_CLUSTER_ID, Multiaddr, PeerId};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const CONTENT_TOPIC: &str = "/demls/1/interop/proto";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/js-waku")
}

/// The js-waku node, driven over JSON lines on its stdin and stdout.
struct JsPeer {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    peer_id: PeerId,
    addr: Multiaddr,
}

impl JsPeer {
    async fn start(cluster_id: u16) -> JsPeer {
        let dir = js_dir();
        assert!(
            dir.join("node_modules").is_dir(),
            "{} is missing: run `npm ci --prefix interop/js-waku` (from the repository root) \
             before the interop test",
            dir.join("node_modules").display()
        );
        let mut child = Command::new("node")
            .arg("relay-peer.mjs")
            .args(["--cluster", &cluster_id.to_string()])
            .args(["--shard", "0"])
            .args(["--content-topic", CONTENT_TOPIC])
            .current_dir(&dir)
            .env("NODE_ENV", "test")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("`node` runs (Node.js 20+ must be installed)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut peer = JsPeer {
            _child: child,
            stdin,
            stdout,
            peer_id: PeerId::random(),
            addr: Multiaddr::empty(),
        };
        let ready = peer.next("ready").await;
        peer.peer_id = ready["peerId"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("ready carries a peer id");
        peer.addr = ready["addrs"][0]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("ready carries a listen address");
        assert_eq!(
            ready["pubsubTopic"],
            format!("/waku/2/rs/{cluster_id}/0").as_str()
        );
        peer
    }

    /// The next event named `event`, skipping other events; fails on an `error` event.
    async fn next(&mut self, event: &str) -> Value {
        let wait = async {
            loop {
                let line = self
                    .stdout
                    .next_line()
                    .await
                    .expect("read js-waku stdout")
                    .expect("js-waku node exited");
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("js-waku (not JSON): {line}");
                    continue;
                };
                assert_ne!(value["event"], "error", "js-waku reported {value}");
                if value["event"] == event {
                    return value;
                }
            }
        };
        tokio::time::timeout(TIMEOUT, wait)
            .await
            .unwrap_or_else(|_| panic!("js-waku sent no {event:?} event in time"))
    }

    async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to js-waku");
    }
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_both_ways_with_js_waku() {
    let mut js = JsPeer::start(DEFAULT_CLUSTER_ID).await;
    let mut demls = Node::start(config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])).await;
    let demls_peer = demls.handle.peer_id().to_string();

    // demls sees js-waku pass the cluster check and subscribe; js-waku sees demls subscribe.
    demls.connected_to(js.peer_id).await;
    loop {
        let subscribed = js.next("subscribed").await;
        if field(&subscribed, "peerId") == demls_peer {
            break;
        }
    }

    // demls -> js-waku
    let topic: ContentTopic = CONTENT_TOPIC.parse().expect("topic");
    let sent = demls
        .handle
        .publish(
            &topic,
            b"hello from demls".to_vec(),
            Some(b"demls-meta".to_vec()),
        )
        .await
        .expect("demls publishes");
    let got = js.next("message").await;
    assert_eq!(field(&got, "from"), demls_peer);
    assert_eq!(field(&got, "contentTopic"), CONTENT_TOPIC);
    assert_eq!(field(&got, "payload"), hex(b"hello from demls"));
    assert_eq!(field(&got, "meta"), hex(b"demls-meta"));
    let timestamp = sent.message.timestamp.expect("publish sets a timestamp");
    assert_eq!(field(&got, "timestamp"), timestamp.to_string());
    assert_eq!(field(&got, "msgId"), sent.id.to_string(), "same message id");
    assert_eq!(
        field(&got, "hash"),
        sent.hash.to_string(),
        "same message hash"
    );
    let decoded = js.next("decoded").await;
    assert_eq!(field(&decoded, "payload"), hex(b"hello from demls"));

    // js-waku -> demls
    js.send(
        json!({"cmd": "publish", "payload": hex(b"hello from js-waku"), "meta": hex(b"js-meta")}),
    )
    .await;
    let published = js.next("published").await;
    assert_eq!(published["recipients"], 1);
    let got = demls.next_message().await;
    assert_eq!(got.pubsub_topic, "/waku/2/rs/4242/0");
    assert_eq!(got.message.content_topic, CONTENT_TOPIC);
    assert_eq!(got.message.payload, b"hello from js-waku");
    assert_eq!(got.message.meta.as_deref(), Some(&b"js-meta"[..]));
    assert_eq!(got.message.version, Some(0));
    assert_eq!(got.message.ephemeral, Some(false));
    assert_eq!(
        got.message.timestamp.map(|t| t.to_string()).as_deref(),
        Some(field(&published, "timestamp"))
    );
    assert_eq!(
        got.id.to_string(),
        field(&published, "msgId"),
        "same message id"
    );
    assert_eq!(
        got.hash.to_string(),
        field(&published, "hash"),
        "same message hash"
    );

    let metrics = demls.handle.metrics();
    assert_eq!((metrics.messages_in, metrics.messages_out), (1, 1));
    assert_eq!(metrics.dropped_total() + metrics.peers_rejected, 0);
    js.send(json!({"cmd": "stop"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_waku_of_another_cluster_is_disconnected() {
    let js = JsPeer::start(DEFAULT_CLUSTER_ID + 1).await;
    let demls = Node::start(config(DEFAULT_CLUSTER_ID, vec![js.addr.clone()])).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while demls.handle.metrics().peers_rejected == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "js-waku's cluster id was not checked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(demls.handle.connected_peers().is_empty());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
