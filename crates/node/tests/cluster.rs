//! Three `demls node` processes on loopback form a group through the CLI (by invitation),
//! chat, survive a SIGKILL and restart of a member, vote a member out (the removed member
//! sees why and keeps its history), and survive a SIGKILL and restart of the steward.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn three_nodes_form_a_group_chat_survive_a_kill_and_remove_a_member() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = NodeProc::start(&tmp.path().join("alice"), "/ip4/127.0.0.1/tcp/0", &[]);
    let bob = NodeProc::start(
        &tmp.path().join("bob"),
        "/ip4/127.0.0.1/tcp/0",
        &[&alice.listen],
    );
    let mut carol = NodeProc::start(
        &tmp.path().join("carol"),
        "/ip4/127.0.0.1/tcp/0",
        &[&alice.listen],
    );

    // Alice creates the group and invites Bob and Carol, who join with their tickets; the
    // members' nodes vote YES on invited joiners by themselves.
    let created = alice.cli_json(&["create", "lab"]);
    assert_eq!(created["members"][0]["roles"][0], "steward");
    assert_eq!(created["join_rule"], "invite");
    alice.invite("lab", &bob);
    alice.invite("lab", &carol);
    wait_until("three members on every node", LIMIT, || {
        let views: Vec<_> = [&alice, &bob, &carol]
            .iter()
            .filter_map(|n| n.group("lab"))
            .map(|g| epoch_and_size(&g))
            .collect();
        views.len() == 3 && views.iter().all(|v| *v == views[0] && v.1 == 3)
    });
    let listed = carol.cli_json(&["groups"]);
    assert_eq!(listed[0]["name"], "lab");
    // An invite-only group's identifier on the wire is random, not its name.
    let id = listed[0]["id"].as_str().unwrap();
    assert!(
        id.starts_with('g') && id.len() == 25 && !id.contains("lab"),
        "{id}"
    );
    assert_eq!(listed[0]["state"], "member");

    // They chat.
    let sent = alice.cli_json(&["send", "lab", "hello", "from", "alice"]);
    assert_eq!(sent["text"], "hello from alice");
    assert_eq!(sent["direction"], "own");
    bob.cli_json(&["send", "lab", "hi from bob"]);
    wait_until("carol reads both", LIMIT, || {
        let texts = carol.texts("lab");
        texts.contains(&"hello from alice".into()) && texts.contains(&"hi from bob".into())
    });

    // Carol's node is killed and misses a message; restarted on the same data dir and port,
    // it rejoins, catches up, and keeps its history and membership. It sent in this epoch
    // before the kill, so what it sends after must not use those keys again.
    carol.cli_json(&["send", "lab", "carol before the kill"]);
    wait_until("alice reads carol before the kill", LIMIT, || {
        alice.texts("lab").contains(&"carol before the kill".into())
    });
    let carol_port = carol.listen_socket();
    let carol_dir = carol.dir.clone();
    carol.kill();
    let (ok, _, err) = carol.cli(&["groups"]);
    assert!(!ok && err.contains("not running"), "{err}");
    alice.cli_json(&["send", "lab", "while carol was away"]);
    drop(carol);
    let carol = NodeProc::start(&carol_dir, &carol_port, &[&alice.listen]);
    wait_until("carol catches up", LIMIT, || {
        carol.texts("lab").contains(&"while carol was away".into())
    });
    let epoch_before = epoch_and_size(&alice.group("lab").unwrap()).0;
    assert_eq!(
        epoch_and_size(&carol.group("lab").unwrap()),
        (epoch_before, 3)
    );
    carol.cli_json(&["send", "lab", "carol after the kill"]);
    wait_until("alice and bob read carol after the kill", LIMIT, || {
        [&alice, &bob]
            .iter()
            .all(|n| n.texts("lab").contains(&"carol after the kill".into()))
    });

    // Alice proposes removing Bob; Carol agrees (Bob's node votes NO on its own removal);
    // the steward commits.
    alice.cli_json(&["remove", "lab", &bob.address]);
    carol.vote_on("lab", "remove", &bob.address, true);
    wait_until("bob removed everywhere", LIMIT, || {
        let views: Vec<_> = [&alice, &carol]
            .iter()
            .filter_map(|n| n.group("lab"))
            .map(|g| epoch_and_size(&g))
            .collect();
        views.len() == 2 && views.iter().all(|v| *v == (epoch_before + 1, 2))
    });
    wait_until("bob learns it is out", LIMIT, || bob.group("lab").is_none());
    let (ok, _, err) = bob.cli(&["show", "lab"]);
    assert!(
        !ok && err.contains("no longer a member") && err.contains("voted it out"),
        "{err}"
    );
    let listed = bob.cli_json(&["groups"]);
    assert_eq!(listed[0]["state"], "removed");
    assert_eq!(listed[0]["removal"]["reason"]["kind"], "voted");
    // Bob keeps his history, read-only.
    assert!(bob.texts("lab").contains(&"hello from alice".into()));

    // The restarted member talks on, with its whole history.
    carol.cli_json(&["send", "lab", "after the removal"]);
    wait_until("alice reads carol", LIMIT, || {
        alice.texts("lab").contains(&"after the removal".into())
    });
    let history = carol.texts("lab");
    for text in [
        "hello from alice",
        "hi from bob",
        "while carol was away",
        "after the removal",
    ] {
        assert!(
            history.contains(&text.into()),
            "{text:?} missing: {history:?}"
        );
    }
    assert_eq!(
        alice.group("lab").unwrap()["authenticator"],
        carol.group("lab").unwrap()["authenticator"]
    );

    // The removal is on record, and its vote is closed.
    let proposals = alice.cli_json(&["proposals", "lab"]);
    let removal = proposals
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["change"]["kind"] == "remove")
        .expect("the removal proposal");
    assert_eq!(removal["state"], "approved");
    assert_eq!(removal["committed_epoch"], epoch_before + 1);
    let id = removal["id"].as_str().unwrap();
    let (ok, _, err) = carol.cli(&["vote", "lab", id, "no"]);
    assert!(!ok && err.contains("closed"), "{err}");

    let metrics = alice.metrics();
    let lab = alice.group("lab").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        metric(&metrics, &format!("demls_group_epoch{{group=\"{lab}\"}}")),
        Some((epoch_before + 1) as f64)
    );
    assert!(
        metric(
            &metrics,
            "demls_proposals_decided_total{outcome=\"approved\"}"
        )
        .unwrap()
            >= 3.0
    );
    assert!(metric(&metrics, "demls_commit_latency_seconds_count").unwrap() >= 3.0);

    // The steward's node is killed too, and comes back on its port; Carol's node redials it.
    let mut alice = alice;
    let (alice_dir, alice_port) = (alice.dir.clone(), alice.listen_socket());
    alice.kill();
    drop(alice);
    let alice = NodeProc::start(&alice_dir, &alice_port, &[]);
    assert_eq!(
        epoch_and_size(&alice.group("lab").unwrap()),
        (epoch_before + 1, 2)
    );
    alice.cli_json(&["send", "lab", "the steward is back"]);
    wait_until("carol reads the restarted steward", LIMIT, || {
        carol.texts("lab").contains(&"the steward is back".into())
    });
    carol.cli_json(&["send", "lab", "welcome back"]);
    wait_until("the restarted steward reads carol", LIMIT, || {
        alice.texts("lab").contains(&"welcome back".into())
    });
    assert!(alice.texts("lab").contains(&"hi from bob".into()));
}
