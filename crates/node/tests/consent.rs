//! Membership with consent through `demls node` processes on loopback, with a short
//! `--membership-timeout`: silence admits nobody and removes nobody; members approve and deny
//! waiting joiners with the CLI; stale decisions and forged tickets are refused with typed
//! errors; an open group admits whoever asks, and a departed inviter's ticket nobody; `follow`
//! survives a restart of its node; a vote a member took in survives its node's `kill -9`.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use prost::Message as _;
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

/// Seconds a vote on adding or removing someone stays open in these tests.
const MEMBERSHIP_TIMEOUT: &str = "8";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Alice creates `lab` (invite-only, the default) with `timeout`, and invites Bob and Carol;
/// returns once all three see three members. Every node votes by itself (the default), which
/// is never YES on a stranger nor on removing someone else.
fn trio(dir: &Path, timeout: &str) -> (NodeProc, NodeProc, NodeProc) {
    let alice = NodeProc::start(&dir.join("alice"), "/ip4/127.0.0.1/tcp/0", &[]);
    let bob = NodeProc::start(&dir.join("bob"), "/ip4/127.0.0.1/tcp/0", &[&alice.listen]);
    let carol = NodeProc::start(&dir.join("carol"), "/ip4/127.0.0.1/tcp/0", &[&alice.listen]);
    alice.cli_json(&["create", "lab", "--membership-timeout", timeout]);
    alice.invite("lab", &bob);
    alice.invite("lab", &carol);
    wait_until("three members on every node", LIMIT, || {
        all_have(&[&alice, &bob, &carol], 3)
    });
    (alice, bob, carol)
}

/// A node that knows none of the group, peering Alice's.
fn stranger(dir: &Path, name: &str, alice: &NodeProc) -> NodeProc {
    NodeProc::start(&dir.join(name), "/ip4/127.0.0.1/tcp/0", &[&alice.listen])
}

fn members(node: &NodeProc) -> Vec<String> {
    members_in(node, "lab")
}

/// The members of `group` as `node` sees them (none if it is not a member).
fn members_in(node: &NodeProc, group: &str) -> Vec<String> {
    node.group(group).map_or_else(Vec::new, |g| {
        g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["address"].as_str().unwrap().to_owned())
            .collect()
    })
}

fn all_have(nodes: &[&NodeProc], count: usize) -> bool {
    nodes.iter().all(|n| members(n).len() == count)
}

/// The group's identifier, which a stranger can ask to join by.
fn lab_id(node: &NodeProc) -> String {
    node.group("lab").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The waiting request of `joiner` on `node`, once it shows.
fn request_of(node: &NodeProc, joiner: &NodeProc) -> Value {
    let mut found = Value::Null;
    wait_until("the join request", LIMIT, || {
        let list = node.cli_json(&["requests", "lab"]);
        if let Some(r) = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["address"] == joiner.address.as_str())
        {
            found = r.clone();
        }
        !found.is_null()
    });
    found
}

/// The proposals of `lab` on `node` of `kind` about `member`.
fn proposals_of(node: &NodeProc, kind: &str, member: &str) -> Vec<Value> {
    node.cli_json(&["proposals", "lab"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["change"]["kind"] == kind && p["change"]["member"] == member)
        .collect()
}

#[test]
fn silence_admits_no_stranger_and_removes_no_member() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = trio(tmp.path(), MEMBERSHIP_TIMEOUT);
    let id = lab_id(&alice);

    // A stranger asks; the steward opens the vote, and nobody acts.
    let dave = stranger(tmp.path(), "dave", &alice);
    assert_eq!(dave.cli_json(&["join", &id])["state"], "joining");
    let request = request_of(&carol, &dave);
    let deadline = request["deadline"].as_u64().unwrap();
    assert_eq!(request["yes"], json!([]));
    // The plain listing says who asks and since when.
    let (ok, listed, _) = carol.cli(&["requests", "lab"]);
    assert!(ok && listed.contains(&dave.address), "{listed}");
    assert!(listed.contains("asks to join since"), "{listed}");
    assert!(listed.contains("approved by: nobody"), "{listed}");

    // Past the deadline, silence was NO: Dave is not admitted, and is told so.
    wait_until("dave is refused", LIMIT, || refusal(&dave, &id).is_some());
    assert!(now_ms() >= deadline, "refused before the vote closed");
    let reason = refusal(&dave, &id).unwrap();
    assert!(reason.contains("did not agree"), "{reason}");
    assert!(dave.group("lab").is_none() && dave.group(&id).is_none());
    for node in [&alice, &bob, &carol] {
        assert!(!members(node).contains(&dave.address));
        let adds = proposals_of(node, "add", &dave.address);
        assert!(
            !adds.is_empty()
                && adds.iter().all(|p| p["state"] == "rejected"
                    && p["decided_at"].as_u64() >= p["deadline"].as_u64()),
            "{adds:?}"
        );
    }

    // Alice proposes removing Bob; nobody else acts. Past the deadline, nobody is removed.
    alice.cli_json(&["remove", "lab", &bob.address]);
    wait_until("the removal is decided", LIMIT, || {
        proposals_of(&alice, "remove", &bob.address)
            .iter()
            .any(|p| p["state"] != "open")
    });
    let removal = proposals_of(&alice, "remove", &bob.address);
    assert_eq!(removal[0]["state"], "rejected", "{removal:?}");
    assert!(
        removal[0]["decided_at"].as_u64() >= removal[0]["deadline"].as_u64(),
        "decided before its deadline: {removal:?}"
    );
    for node in [&alice, &bob, &carol] {
        assert_eq!(members(node).len(), 3);
        assert!(members(node).contains(&bob.address));
    }
}

#[test]
fn members_approve_and_deny_waiting_joiners_with_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    // A long deadline: the members' votes decide, not the clock.
    let (alice, bob, carol) = trio(tmp.path(), "60");
    let id = lab_id(&alice);

    // Dave asks; Bob and Carol deny: a majority says NO and Dave is refused.
    let dave = stranger(tmp.path(), "dave", &alice);
    dave.cli_json(&["join", &id]);
    request_of(&bob, &dave);
    let denied = bob.cli_json(&["deny", "lab", &dave.address]);
    assert_eq!(denied["change"]["member"], dave.address.as_str());
    request_of(&carol, &dave);
    // Carol sees who denied before she does.
    wait_until("carol sees bob's NO", LIMIT, || {
        let (_, listed, _) = carol.cli(&["requests", "lab"]);
        listed.contains(&format!("denied by:   {}", bob.address))
    });
    let (ok, out, err) = carol.cli(&["deny", "lab", &dave.address]);
    assert!(ok, "{err}");
    assert!(out.contains(&dave.address), "{out}");
    wait_until("dave is refused", LIMIT, || refusal(&dave, &id).is_some());
    assert!(!members(&alice).contains(&dave.address));

    // The request is gone: approving it now is a typed 404, through the API and the CLI.
    wait_until("the request is gone", LIMIT, || {
        alice.cli_json(&["requests", "lab"]) == json!([])
    });
    let (status, error) = alice.api_post(
        &format!("/api/groups/lab/requests/{}", dave.address),
        json!({"approve": true}),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("no_such_request"))
    );
    let (ok, _, err) = alice.cli(&["approve", "lab", &dave.address]);
    assert!(!ok && err.contains("no request of"), "{err}");

    // Erin asks; Bob and Carol approve: she is admitted.
    let erin = stranger(tmp.path(), "erin", &alice);
    erin.cli_json(&["join", &id]);
    for person in [&bob, &carol] {
        request_of(person, &erin);
        person.cli_json(&["approve", "lab", &erin.address]);
    }
    // Erin asked by the identifier: her node names the group by it.
    wait_until("erin is a member everywhere", LIMIT, || {
        all_have(&[&alice, &bob, &carol], 4) && members_in(&erin, &id).len() == 4
    });
    assert!(members(&alice).contains(&erin.address));
}

/// The bytes of engine snapshot `node` has written as journaled votes.
fn journaled_vote_bytes(node: &NodeProc) -> u64 {
    node.metrics()
        .lines()
        .find_map(|l| l.strip_prefix("demls_snapshot_bytes_written_total{as=\"votes\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_vote_a_member_took_in_survives_its_nodes_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, mut carol) = trio(tmp.path(), "120");
    let id = lab_id(&alice);
    let dave = stranger(tmp.path(), "dave", &alice);
    dave.cli_json(&["join", &id]);
    request_of(&bob, &dave);
    request_of(&carol, &dave);

    // Bob says YES; Carol's node takes his vote in and writes it as a journaled vote, not as
    // a whole snapshot.
    let before = journaled_vote_bytes(&carol);
    bob.cli_json(&["approve", "lab", &dave.address]);
    wait_until("carol journals bob's vote", LIMIT, || {
        journaled_vote_bytes(&carol) > before
    });

    // Alice and Bob freeze, so nobody can send Bob's vote again; Carol's node is killed and
    // starts again from its data directory.
    alice.signal("-STOP");
    bob.signal("-STOP");
    let (dir, port) = (carol.dir.clone(), carol.listen_socket());
    carol.kill();
    drop(carol);
    let carol = NodeProc::start(&dir, &port, &[&alice.listen]);

    // Her YES with Bob's, restored from the journal, is two of three: her node decides alone.
    request_of(&carol, &dave);
    carol.cli_json(&["approve", "lab", &dave.address]);
    wait_until("carol's node approves dave on its own", LIMIT, || {
        proposals_of(&carol, "add", &dave.address)
            .iter()
            .any(|p| p["state"] == "approved")
    });
    alice.signal("-CONT");
    bob.signal("-CONT");
}

/// A ticket's fields (as `crates/node/src/ticket.rs` encodes them), to tamper with one.
#[derive(Clone, PartialEq, prost::Message)]
struct RawTicket {
    #[prost(string, tag = "1")]
    group_id: String,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(bytes = "vec", tag = "3")]
    invitation: Vec<u8>,
}

fn ticket(text: &str) -> RawTicket {
    let body = text.trim().strip_prefix("demls:").unwrap();
    RawTicket::decode(URL_SAFE_NO_PAD.decode(body).unwrap().as_slice()).unwrap()
}

fn ticket_text(ticket: &RawTicket) -> String {
    format!("demls:{}", URL_SAFE_NO_PAD.encode(ticket.encode_to_vec()))
}

#[test]
fn a_forged_or_foreign_ticket_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = two_members(tmp.path(), "lab");
    let dave = stranger(tmp.path(), "dave", &alice);
    let erin = stranger(tmp.path(), "erin", &alice);
    let invitation = alice.cli_json(&["invite", "lab", &dave.address]);
    let genuine = invitation["ticket"].as_str().unwrap().to_owned();
    let before = epoch_and_size(&alice.group("lab").unwrap());

    // A byte of the signed invitation changed: its signature no longer holds.
    let mut forged = ticket(&genuine);
    let last = forged.invitation.len() - 1;
    forged.invitation[last] ^= 0x01;
    // The invitation of another group under this one's identifier.
    let mut elsewhere = ticket(&genuine);
    elsewhere.group_id = "gffffffffffffffffffffffff".into();
    for bad in [ticket_text(&forged), ticket_text(&elsewhere)] {
        let (status, error) = dave.api_post("/api/join", json!({"ticket": bad}));
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (422, Some("invalid_invitation")),
            "{error}"
        );
        let (ok, _, err) = dave.cli(&["join", &bad]);
        assert!(!ok && err.contains("invitation"), "{err}");
    }
    // Dave's ticket in Erin's hands: it invites Dave, not her.
    let (ok, _, err) = erin.cli(&["join", &genuine]);
    assert!(!ok && err.contains("not this address"), "{err}");

    // Nothing changed: no group, no name taken, no request at the group.
    for node in [&dave, &erin] {
        assert_eq!(node.cli_json(&["groups"]), json!([]));
        assert_eq!(node.cli_json(&["create", "lab"])["name"], "lab");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alice.cli_json(&["requests", "lab"]), json!([]));
    assert_eq!(epoch_and_size(&alice.group("lab").unwrap()), before);
    assert_eq!(epoch_and_size(&bob.group("lab").unwrap()), before);
}

#[test]
fn follow_goes_on_after_its_node_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProc::start(&tmp.path().join("n"), "/ip4/127.0.0.1/tcp/0", &[]);
    node.cli_json(&["create", "lab"]);
    node.cli_json(&["send", "lab", "before"]);

    let follow = Follow::start(&node, "lab");
    follow.until("(you): before");

    // The node is killed and comes back on its data directory and port (its API on another
    // port): `follow` says so, reconnects, and prints what arrives, once.
    let (dir, port) = (node.dir.clone(), node.listen_socket());
    node.kill();
    follow.until("lost the node");
    drop(node);
    let node = NodeProc::start(&dir, &port, &[]);
    follow.until("reconnected");
    node.cli_json(&["send", "lab", "after"]);
    follow.until("(you): after");
    node.cli_json(&["send", "lab", "again"]);
    let next = follow.until("(you):");
    assert!(next.contains("again"), "printed twice: {next}");
}

#[test]
fn an_open_group_admits_who_asks_and_a_departed_inviters_ticket_admits_nobody() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = two_members(tmp.path(), "lab");

    // A public group: a stranger asking by its name is admitted by the automatic voters.
    let created = alice.cli_json(&["create", "square", "--open"]);
    assert_eq!(created["join_rule"], "open");
    let dave = stranger(tmp.path(), "dave", &alice);
    dave.cli_json(&["join", "square"]);
    wait_until("dave is in the square", LIMIT, || {
        dave.group("square")
            .is_some_and(|g| epoch_and_size(&g).1 == 2)
    });

    // Bob invites Dave to `lab`, then leaves: his invitation no longer counts, and the
    // steward tells Dave why.
    let ticket = bob.cli_json(&["invite", "lab", &dave.address]);
    let ticket = ticket["ticket"].as_str().unwrap().to_owned();
    bob.cli_json(&["leave", "lab"]);
    wait_until("bob is gone", LIMIT, || members(&alice).len() == 1);
    assert_eq!(dave.cli_json(&["join", &ticket])["state"], "joining");
    let id = lab_id(&alice);
    wait_until("dave is refused", LIMIT, || refusal(&dave, &id).is_some());
    let reason = refusal(&dave, &id).unwrap();
    assert!(reason.contains("not a member"), "{reason}");
    assert_eq!(members(&alice).len(), 1);
}
