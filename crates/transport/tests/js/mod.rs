//! The js-waku peer of interop/js-waku, driven over JSON lines on its stdin and stdout.
//! Needs Node.js 20+ and `npm ci --prefix interop/js-waku`; fails (never skips) without them.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use demls_transport::{Multiaddr, PeerId};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The content topic the js-waku peer publishes on and decodes.
pub const CONTENT_TOPIC: &str = "/demls/1/interop/proto";

pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/js-waku")
}

/// A running js-waku script.
pub struct JsPeer {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pub peer_id: PeerId,
    pub addr: Multiaddr,
}

impl JsPeer {
    /// Starts `script` (in interop/js-waku) with `args` and waits for its `ready` event.
    pub async fn start(script: &str, args: &[&str]) -> (JsPeer, Value) {
        let dir = js_dir();
        assert!(
            dir.join("node_modules").is_dir(),
            "{} is missing: run `npm ci --prefix interop/js-waku` (from the repository root) \
             before the interop tests",
            dir.join("node_modules").display()
        );
        let mut child = Command::new("node")
            .arg(script)
            .args(args)
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
        if let Some(addr) = ready["addrs"][0].as_str() {
            peer.addr = addr.parse().expect("ready carries a valid listen address");
        }
        (peer, ready)
    }

    /// Starts relay-peer.mjs on `cluster_id`, shard 0, publishing on [`CONTENT_TOPIC`].
    pub async fn relay(cluster_id: u16) -> JsPeer {
        JsPeer::relay_on(cluster_id, 0).await
    }

    /// Starts relay-peer.mjs on static shard `shard` of `cluster_id`, publishing on
    /// [`CONTENT_TOPIC`].
    pub async fn relay_on(cluster_id: u16, shard: u16) -> JsPeer {
        let (cluster, shard) = (cluster_id.to_string(), shard.to_string());
        let (peer, ready) = JsPeer::start(
            "relay-peer.mjs",
            &[
                "--cluster",
                &cluster,
                "--shard",
                &shard,
                "--content-topic",
                CONTENT_TOPIC,
            ],
        )
        .await;
        assert_eq!(
            ready["pubsubTopic"],
            format!("/waku/2/rs/{cluster}/{shard}").as_str()
        );
        peer
    }

    /// The next event named `event` within `timeout`, skipping other events; fails on an
    /// `error` event.
    pub async fn next_within(&mut self, event: &str, timeout: Duration) -> Value {
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
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| panic!("js-waku sent no {event:?} event in time"))
    }

    /// The next event named `event`, waiting up to [`crate::common::TIMEOUT`].
    pub async fn next(&mut self, event: &str) -> Value {
        self.next_within(event, crate::common::TIMEOUT).await
    }

    pub async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to js-waku");
    }
}

pub fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {value}"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
