//! `demls node` reads its bootstrap peers and settings from a TOML config file: the data
//! directory's `config.toml`, or the file named by `--config`. A bad file stops the node
//! before it starts, with the line at fault.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

/// The peer ids `demls status` shows as connected.
fn peers(node: &NodeProc) -> Vec<String> {
    let info = node.cli_json(&["status"]);
    info["peers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The peer id at the end of a listen multiaddr.
fn peer_id(listen: &str) -> String {
    listen.rsplit("/p2p/").next().unwrap_or_default().to_owned()
}

#[test]
fn a_node_with_only_a_config_file_dials_its_bootstrap_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = NodeProc::start(&tmp.path().join("alice"), "/ip4/127.0.0.1/tcp/0", &[]);
    // Bob has no --peer: his data directory's config.toml names Alice, and turns peer
    // exchange off so that only the file can have told him about her.
    let bob_dir = tmp.path().join("bob");
    std::fs::create_dir_all(&bob_dir).unwrap();
    std::fs::write(
        bob_dir.join("config.toml"),
        format!(
            "# Bob's node\nbootstrap = [\"{}\"]\ntarget-peers = 0\n",
            alice.listen
        ),
    )
    .unwrap();
    let bob = NodeProc::start(&bob_dir, "/ip4/127.0.0.1/tcp/0", &[]);
    wait_until("Bob connected to Alice", LIMIT, || {
        peers(&bob).contains(&peer_id(&alice.listen))
    });
    assert!(peers(&alice).contains(&peer_id(&bob.listen)));

    // Carol's file is elsewhere (--config) and also sets her API address; the --listen flag
    // given on the command line wins over the file's.
    let carol_file = tmp.path().join("carol.toml");
    std::fs::write(
        &carol_file,
        format!(
            "bootstrap = [\"{}\"]\nlisten = [\"/ip4/127.0.0.2/tcp/1\"]\napi = \"127.0.0.1:0\"\n",
            bob.listen
        ),
    )
    .unwrap();
    let carol = NodeProc::start_with(
        &tmp.path().join("carol"),
        "/ip4/127.0.0.1/tcp/0",
        &[],
        &["--config", carol_file.to_str().unwrap()],
    );
    assert!(
        carol.listen.starts_with("/ip4/127.0.0.1/"),
        "{}",
        carol.listen
    );
    wait_until("Carol connected to Bob", LIMIT, || {
        peers(&carol).contains(&peer_id(&bob.listen))
    });
}

#[test]
fn a_node_given_a_discv5_enr_in_its_config_file_finds_that_node() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = NodeProc::start_with(
        &tmp.path().join("alice"),
        "/ip4/127.0.0.1/tcp/0",
        &[],
        &["--discv5-port", "0"],
    );
    assert!(alice.enr.starts_with("enr:"), "{}", alice.enr);
    // Bob has no peer address at all: only Alice's ENR, for discv5.
    let bob_dir = tmp.path().join("bob");
    std::fs::create_dir_all(&bob_dir).unwrap();
    std::fs::write(
        bob_dir.join("config.toml"),
        format!("discv5-port = 0\ndiscv5-bootstrap = [\"{}\"]\n", alice.enr),
    )
    .unwrap();
    let bob = NodeProc::start(&bob_dir, "/ip4/127.0.0.1/tcp/0", &[]);
    wait_until("Bob connected to Alice", LIMIT, || {
        peers(&bob).contains(&peer_id(&alice.listen))
    });
    wait_until("Alice counted Bob as found by discv5", LIMIT, || {
        metric(&alice.metrics(), "demls_discv5_total{event=\"found\"}").unwrap_or(0.0) >= 1.0
    });
}

#[test]
fn a_bad_config_file_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("mdns = true\ntarget-peers = \"many\"\n", "line 2"),
        (
            "bootstrap = [\"/ip4/1.2.3.4/tcp/1\",\n  \"nonsense\"]\n",
            "nonsense",
        ),
        ("bootstrap = [\"enr:-AAAA\"]\n", "ENR"),
        ("maxpeers = 3\n", "maxpeers"),
        ("discv5-bootstrap = [\"enr:-AAAA\"]\n", "not a valid ENR"),
        ("discv5-port = 70000\n", "line 1"),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.join("config.toml"), text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_demls"))
            .args(["node", "--data-dir"])
            .arg(&dir)
            .env("DEMLS_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{text:?} was accepted");
        assert!(
            stderr.contains("config.toml") && stderr.contains(expected),
            "{text:?}: {stderr}"
        );
        // Refused before anything was created in the data directory.
        assert!(!dir.join("wallet.json").exists());
    }
}
