//! The control API: who may use it, what it answers, and the CLI's errors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(node: &NodeProc, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = agent().get(format!("{}{path}", node.api));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

fn post(node: &NodeProc, path: &str, token: &str, body: Value) -> (u16, Value) {
    let mut response = agent()
        .post(format!("{}{path}", node.api))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(body)
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_json().unwrap_or(Value::Null),
    )
}

#[test]
fn the_api_needs_the_token_and_answers_in_json() {
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProc::start(&tmp.path().join("n"), "/ip4/127.0.0.1/tcp/0", &[]);
    let token = node.token();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(node.dir.join("api-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // Only the health check is open.
    assert_eq!(get(&node, "/api/health", None).0, 200);
    for path in [
        "/api/node",
        "/api/groups",
        "/metrics",
        "/api/openapi.yaml",
        "/api/events/log",
    ] {
        let (status, body) = get(&node, path, None);
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("no_token"), "{body}");
        let (status, body) = get(&node, path, Some("not-the-token"));
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("bad_token"), "{body}");
        assert_eq!(get(&node, path, Some(&token)).0, 200, "{path}");
    }
    let (_, spec) = get(&node, "/api/openapi.yaml", Some(&token));
    assert!(spec.starts_with("openapi: 3"));

    // The one-time sign-in code gives the token once.
    let signin = |code: &str| {
        let mut r = agent()
            .post(format!("{}/api/signin", node.api))
            .send_json(json!({"code": code}))
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_json::<Value>().unwrap(),
        )
    };
    let (status, body) = signin(&node.signin_code);
    assert_eq!(status, 200);
    assert_eq!(body["token"], token.as_str());
    assert_eq!(signin(&node.signin_code).0, 401);

    // The event stream refuses strangers and streams JSON events to the owner.
    let ws = node.api.replacen("http://", "ws://", 1);
    match tungstenite::connect(format!("{ws}/api/events")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let request = format!("{ws}/api/events?access_token={token}")
        .into_client_request()
        .unwrap();
    let (mut socket, _) = tungstenite::connect(request).unwrap();

    // Commands answer in JSON with clear errors.
    let (status, group) = post(&node, "/api/groups", &token, json!({"name": "lab"}));
    assert_eq!(status, 201);
    assert_eq!(group["epoch"], 0);
    assert_eq!(group["members"][0]["is_self"], true);
    let (status, error) = post(&node, "/api/groups", &token, json!({"name": "lab"}));
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("group_exists"))
    );
    let (status, error) = post(&node, "/api/groups", &token, json!({"name": "Not Valid"}));
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid"))
    );
    let (status, body) = get(&node, "/api/groups/nope", Some(&token));
    assert_eq!(status, 404);
    assert!(body.contains("unknown_group"));
    let (status, error) = post(
        &node,
        "/api/groups/lab/proposals/0x01020304/votes",
        &token,
        json!({"yes": true}),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("unknown_proposal"))
    );
    let (status, message) = post(
        &node,
        "/api/groups/lab/messages",
        &token,
        json!({"text": "hi"}),
    );
    assert_eq!(status, 201);
    assert_eq!(message["text"], "hi");

    let mut types = Vec::new();
    while !types.contains(&"message".to_owned()) {
        let tungstenite::Message::Text(text) = socket.read().unwrap() else {
            continue;
        };
        let event: Value = serde_json::from_str(text.as_str()).unwrap();
        if event["type"] == "message" {
            assert_eq!(event["seq"], message["seq"], "{event}");
            assert_eq!(event["text"], "hi");
        }
        types.push(event["type"].as_str().unwrap().to_owned());
    }
    assert!(types.contains(&"group_created".to_owned()), "{types:?}");
    let (_, log) = get(&node, "/api/events/log", Some(&token));
    assert!(log.contains("group_created"));

    // `follow` prints the history, then what arrives.
    let follow = Follow::start(&node, "lab");
    assert!(follow.next().contains("(you): hi"));
    post(
        &node,
        "/api/groups/lab/messages",
        &token,
        json!({"text": "live"}),
    );
    assert!(follow.next().contains("(you): live"));
    drop(follow);

    // The CLI says what is wrong.
    let (ok, _, err) = node.cli(&["show", "nope"]);
    assert!(!ok && err.contains("group 'nope' does not exist"), "{err}");
    let (ok, _, err) = node.cli(&["groups", "--token", "wrong"]);
    assert!(!ok && err.contains("refused the API token"), "{err}");
    let (ok, out, _) = node.cli(&["show", "lab"]);
    assert!(ok && out.contains("steward, member (this node)"), "{out}");
}

#[test]
fn a_data_dir_serves_one_node_and_only_with_its_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    let mut node = NodeProc::start(&dir, "/ip4/127.0.0.1/tcp/0", &[]);
    let start = |passphrase: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_demls"))
            .args(["node", "--data-dir"])
            .arg(&dir)
            .env("DEMLS_PASSPHRASE", passphrase)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let err = start(PASSPHRASE);
    assert!(err.contains("another node runs on"), "{err}");
    node.kill();
    let err = start("not the passphrase");
    assert!(err.contains("wrong passphrase"), "{err}");
}

#[test]
fn the_cli_says_when_no_node_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    let mut node = NodeProc::start(&dir, "/ip4/127.0.0.1/tcp/0", &[]);
    node.kill();
    wait_until("the API to go away", Duration::from_secs(10), || {
        !node.cli(&["status"]).0
    });
    let (_, _, err) = node.cli(&["status"]);
    assert!(err.contains("the node is not running"), "{err}");
    let fresh = tmp.path().join("never-started");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_demls"))
        .args(["groups", "--data-dir"])
        .arg(&fresh)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("no node has run on this data directory"),
        "{err}"
    );
}

#[test]
fn a_wallet_key_given_on_first_start_is_the_nodes_identity_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key.hex");
    let wallet = demls_identity::Wallet::generate();
    std::fs::write(&key, wallet.to_hex().as_bytes()).unwrap();
    let dir = tmp.path().join("n");
    let start = |key: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_demls"))
            .args(["node", "--data-dir"])
            .arg(&dir)
            .arg("--key")
            .arg(key)
            .env("DEMLS_PASSPHRASE", PASSPHRASE)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = start(&key);
    let stdout = first.stdout.take().unwrap();
    let banner: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .take_while(|line| !line.starts_with("data dir:"))
        .collect();
    first.kill().unwrap();
    first.wait().unwrap();
    let expected = format!("address:   {}", wallet.address());
    assert!(banner.contains(&expected), "{banner:?}");

    let other = tmp.path().join("other.hex");
    std::fs::write(
        &other,
        demls_identity::Wallet::generate().to_hex().as_bytes(),
    )
    .unwrap();
    let output = start(&other).wait_with_output().unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("not to the --key address"), "{err}");
}

#[test]
fn a_member_replaces_its_keys_on_demand_and_the_group_shows_their_age() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = two_members(tmp.path(), "lab");
    let before = epoch_and_size(&bob.group("lab").unwrap()).0;
    let key_epoch = |node: &NodeProc, who: &str| -> u64 {
        let group = node.group("lab").unwrap();
        let member = group["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == who)
            .cloned()
            .unwrap();
        member["key_epoch"].as_u64().unwrap()
    };
    assert!(key_epoch(&alice, &bob.address) <= before);

    // Bob asks; the steward's next commit carries his update (no vote needed).
    bob.cli_json(&["rotate", "lab"]);
    wait_until("bob's update is committed", Duration::from_secs(90), || {
        key_epoch(&alice, &bob.address) > before
    });
    let (epoch, members) = epoch_and_size(&alice.group("lab").unwrap());
    assert_eq!(members, 2);
    assert_eq!(key_epoch(&alice, &bob.address), epoch);
    assert_eq!(
        key_epoch(&bob, &bob.address),
        epoch,
        "both see the same age"
    );
    let (ok, out, _) = alice.cli(&["show", "lab"]);
    assert!(ok && out.contains("keys"), "{out}");
}

#[test]
fn a_display_name_set_with_the_cli_shows_on_the_other_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = two_members(tmp.path(), "lab");
    let name_of = |node: &NodeProc, who: &str| -> Value {
        let group = node.group("lab").unwrap();
        group["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["address"] == who)
            .map(|m| m["display_name"].clone())
            .unwrap()
    };

    // Over the limit: refused, nothing sent.
    let (ok, _, err) = bob.cli(&["name", "lab", &"x".repeat(65)]);
    assert!(!ok && err.contains("at most 64"), "{err}");

    bob.cli_json(&["name", "lab", "Bob"]);
    wait_until("alice sees bob's name", Duration::from_secs(60), || {
        name_of(&alice, &bob.address) == "Bob"
    });
    assert_eq!(name_of(&bob, &bob.address), "Bob");
    assert_eq!(name_of(&alice, &alice.address), Value::Null);

    // Messages carry the author's name; `show` prints it.
    bob.cli_json(&["send", "lab", "hi"]);
    wait_until("alice has bob's message", Duration::from_secs(60), || {
        let (_, out, _) = alice.cli(&["messages", "lab"]);
        out.contains("\"Bob\": hi")
    });
    let (ok, out, _) = alice.cli(&["show", "lab"]);
    assert!(ok && out.contains("\"Bob\""), "{out}");
}
