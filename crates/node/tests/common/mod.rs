//! `demls node` processes on loopback for the tests, and the CLI that drives them.

#![allow(dead_code)] // Each test binary uses its own part of these helpers.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PASSPHRASE: &str = "test passphrase";

/// A running `demls node`.
pub struct NodeProc {
    pub child: Child,
    pub dir: PathBuf,
    pub address: String,
    /// Its listen multiaddr, ending in `/p2p/<peer id>`.
    pub listen: String,
    pub api: String,
    pub signin_code: String,
    /// Its ENR (`enr:…`), if it printed one.
    pub enr: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        // It may have been killed already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.strip_prefix(key).map(str::trim)
}

impl NodeProc {
    /// Starts `demls node` on `dir`, listening on `listen` (a TCP multiaddr), dialling `peers`.
    pub fn start(dir: &Path, listen: &str, peers: &[&str]) -> NodeProc {
        Self::start_with(dir, listen, peers, &[])
    }

    /// [`NodeProc::start`] with more `demls node` options.
    pub fn start_with(dir: &Path, listen: &str, peers: &[&str], options: &[&str]) -> NodeProc {
        let log = File::create(dir.with_extension("log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_demls"));
        command
            .args(["node", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen, "--api", "127.0.0.1:0", "--log", "info"])
            .env("DEMLS_PASSPHRASE", PASSPHRASE)
            // Only `options` give a node a chain endpoint.
            .env_remove("DEMLS_ETH_RPC")
            .stdout(Stdio::piped())
            .stderr(log);
        for peer in peers {
            command.args(["--peer", peer]);
        }
        command.args(options);
        let mut child = command.spawn().expect("demls node starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut address, mut listen_addr, mut api, mut code, mut enr) = Default::default();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(v) = field(&line, "address:") {
                address = v.to_owned();
            } else if let Some(v) = field(&line, "listening:") {
                listen_addr = v.to_owned();
            } else if let Some(v) = field(&line, "enr:") {
                enr = v.to_owned();
            } else if let Some(v) = field(&line, "api:") {
                api = v.to_owned();
            } else if let Some(v) = field(&line, "sign in:") {
                code = v.rsplit('=').next().unwrap_or_default().to_owned();
            } else if line.starts_with("data dir:") {
                break;
            }
        }
        assert!(
            !api.is_empty(),
            "node did not start; its log:\n{}",
            std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default()
        );
        // Keep reading stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        NodeProc {
            child,
            dir: dir.to_owned(),
            address,
            listen: listen_addr,
            api,
            signin_code: code,
            enr,
        }
    }

    /// The listen address without the `/p2p/` part (to restart on the same port).
    pub fn listen_socket(&self) -> String {
        self.listen
            .split("/p2p/")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The API token from the data directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("api-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Kills the node with SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends the node a signal with `kill`, e.g. `-STOP` to freeze it (as a closed laptop lid
    /// would) and `-CONT` to wake it. A stopped node is still killed on drop.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {name} {pid}");
    }

    /// Runs `demls <args> --data-dir <dir>`: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_demls"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs a CLI command that must succeed and prints JSON.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (ok, out, err) = self.cli(&all);
        assert!(ok, "demls {args:?} failed: {err}");
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// The group as `show --json` gives it, or `None` if the node is not a member.
    pub fn group(&self, group: &str) -> Option<Value> {
        let (ok, out, _) = self.cli(&["show", group, "--json"]);
        ok.then(|| serde_json::from_str(out.trim()).unwrap())
    }

    /// Texts of the group's history.
    pub fn texts(&self, group: &str) -> Vec<String> {
        self.cli_json(&["messages", group])
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `GET <api><path>` with the node's token: the JSON answer, whatever its status.
    pub fn api_get(&self, path: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .get(format!("{}{path}", self.api))
            .header("Authorization", format!("Bearer {}", self.token()))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    /// `POST <api><path>` of `body` with the node's token: the status and JSON answer.
    pub fn api_post(&self, path: &str, body: Value) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(format!("{}{path}", self.api))
            .header("Authorization", format!("Bearer {}", self.token()))
            .send_json(body)
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    /// The node's logged events.
    pub fn events(&self) -> Vec<Value> {
        self.api_get("/api/events/log?limit=5000")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        ureq::get(format!("{}/metrics", self.api))
            .header("Authorization", format!("Bearer {}", self.token()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    }
}

/// A running `demls follow`, whose stdout and stderr lines arrive in one channel. Killed on
/// drop, even if the test fails: `follow` reconnects for ever, and an orphan would keep the
/// test's output pipe open.
pub struct Follow {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Follow {
    /// Runs `demls follow <group>` against `node`.
    pub fn start(node: &NodeProc, group: &str) -> Follow {
        let mut child = Command::new(env!("CARGO_BIN_EXE_demls"))
            .args(["follow", group, "--data-dir"])
            .arg(&node.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines_tx = lines_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Follow { child, lines }
    }

    /// The next line printed; panics if none comes within 20 seconds.
    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("follow printed nothing for 20 s")
    }

    /// The first line printed that contains `what` (the ones before it are skipped).
    pub fn until(&self, what: &str) -> String {
        loop {
            let line = self.next();
            if line.contains(what) {
                return line;
            }
        }
    }
}

/// Waits until `done` holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of a metric line `name{labels} value`, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The refusal `node` was given for `group`, as `groups` lists it.
pub fn refusal(node: &NodeProc, group: &str) -> Option<String> {
    node.cli_json(&["groups"])
        .as_array()?
        .iter()
        .find(|g| g["id"] == group && g["state"] == "refused")
        .and_then(|g| g["refusal"].as_str().map(str::to_owned))
}

/// Epoch and member count of a `show --json` answer.
pub fn epoch_and_size(group: &Value) -> (u64, usize) {
    (
        group["epoch"].as_u64().unwrap(),
        group["members"].as_array().unwrap().len(),
    )
}

/// Alice, Bob and Carol started with `options`, Bob and Carol peering Alice, all members of
/// `lab` (Alice creates it and invites them) within `limit`.
pub fn line_of_three(
    tmp: &Path,
    options: &[&str],
    limit: Duration,
) -> (NodeProc, NodeProc, NodeProc) {
    let any_port = "/ip4/127.0.0.1/tcp/0";
    let alice = NodeProc::start_with(&tmp.join("alice"), any_port, &[], options);
    let bob = NodeProc::start_with(&tmp.join("bob"), any_port, &[&alice.listen], options);
    let carol = NodeProc::start_with(&tmp.join("carol"), any_port, &[&alice.listen], options);
    alice.cli_json(&["create", "lab"]);
    alice.invite("lab", &bob);
    alice.invite("lab", &carol);
    wait_until("three members on every node", limit, || {
        [&alice, &bob, &carol]
            .iter()
            .all(|n| n.group("lab").is_some_and(|g| epoch_and_size(&g).1 == 3))
    });
    (alice, bob, carol)
}

/// Alice creates `group` and invites Bob, whose node peers hers; returns once Bob is a member.
pub fn two_members(dir: &Path, group: &str) -> (NodeProc, NodeProc) {
    let alice = NodeProc::start(&dir.join("alice"), "/ip4/127.0.0.1/tcp/0", &[]);
    let bob = NodeProc::start(&dir.join("bob"), "/ip4/127.0.0.1/tcp/0", &[&alice.listen]);
    alice.cli_json(&["create", group]);
    alice.invite(group, &bob);
    wait_until("bob is a member", Duration::from_secs(60), || {
        bob.group(group).is_some()
    });
    (alice, bob)
}

impl NodeProc {
    /// This node invites `joiner` to `group`, and `joiner` joins with the ticket.
    pub fn invite(&self, group: &str, joiner: &NodeProc) {
        let invitation = self.cli_json(&["invite", group, &joiner.address]);
        let ticket = invitation["ticket"].as_str().expect("a ticket");
        assert_eq!(joiner.cli_json(&["join", ticket])["state"], "joining");
    }

    /// Waits until this node sees an open proposal of `kind` about `member`, and votes on it.
    pub fn vote_on(&self, group: &str, kind: &str, member: &str, yes: bool) {
        let mut id = String::new();
        wait_until(
            &format!("the {kind} proposal of {member}"),
            Duration::from_secs(60),
            || {
                let proposals = self.cli_json(&["proposals", group]);
                let open = proposals.as_array().into_iter().flatten().find(|p| {
                    p["state"] == "open"
                        && p["change"]["kind"] == kind
                        && p["change"]["member"] == member
                });
                if let Some(p) = open {
                    id = p["id"].as_str().unwrap_or_default().to_owned();
                }
                !id.is_empty()
            },
        );
        self.cli_json(&["vote", group, &id, if yes { "yes" } else { "no" }]);
    }
}
