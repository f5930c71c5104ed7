//! A steward that naps is passed over, not removed (issue 15, peer scoring): six `demls node`
//! processes on loopback form a big-consensus group in which every member is a steward. Its
//! epoch steward is frozen with SIGSTOP, and then a seventh node asks to join, invited by the
//! backup: its request, sealed to every steward it hears, is taken up by one awake steward (at
//! once, or at its turn if the napper comes first in the joiner's take-up order), the members
//! approve it, and the backup commits it in the napper's place. Woken 25 s after the freeze, the napped
//! steward catches up, and most of a minute on it is still a member on every node, its own
//! included; every other node scores it below the default but not below the threshold, and no
//! node charged it in an emergency.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);
const GROUP: &str = "nap";
const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
/// The node that asks to join while the epoch steward naps.
const JOINER: &str = "grace";
/// How long the epoch steward stays frozen: longer than the node's wake-up threshold, so that
/// it also fetches what it missed from its peers' archives.
const NAP: Duration = Duration::from_secs(25);
/// How long after waking the napped steward must still be a member.
const AFTER: Duration = Duration::from_secs(50);

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether `address` is among the members of a `show --json` answer.
fn has_member(group: &Value, address: &str) -> bool {
    group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["address"].as_str().is_some_and(|a| same(a, address)))
}

/// Whether `node` saw an emergency proposal charging `offender`, in its proposals or its
/// event log.
fn charged(node: &NodeProc, offender: &str) -> bool {
    let names = |change: &Value| {
        change["kind"] == "emergency"
            && change["offender"]
                .as_str()
                .is_some_and(|o| same(o, offender))
    };
    let proposals = node.api_get(&format!("/api/groups/{GROUP}/proposals"));
    let in_proposals = proposals
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| names(&p["change"]));
    let in_events = node
        .events()
        .iter()
        .any(|e| e["type"] == "proposal_opened" && names(&e["change"]));
    in_proposals || in_events
}

#[test]
fn an_epoch_steward_frozen_while_a_joiner_is_approved_is_passed_over_and_stays() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    // Each node dials every node started before it, so that no single node (the one about to
    // be frozen, say) holds the network together.
    let mut nodes: Vec<NodeProc> = Vec::new();
    for name in NAMES {
        let peers: Vec<String> = nodes.iter().map(|n| n.listen.clone()).collect();
        let peers: Vec<&str> = peers.iter().map(String::as_str).collect();
        nodes.push(NodeProc::start(
            &tmp.path().join(name),
            "/ip4/127.0.0.1/tcp/0",
            &peers,
        ));
    }

    // With `--sn-max` as large as the group, every member stays on the steward list whatever
    // the elections pick, so every node keeps showing a score for the napped steward.
    nodes[0].cli_json(&[
        "create", GROUP, "--mode", "big", "--sn-min", "3", "--sn-max", "6",
    ]);
    for joiner in &nodes[1..] {
        nodes[0].invite(GROUP, joiner);
    }
    // Settled: six members at one epoch everywhere, no election or change still open, and the
    // election that gives the group its three stewards made (the group can look settled for a
    // moment before it is proposed).
    let roster_path = format!("/api/groups/{GROUP}/roster");
    wait_until(
        "six members and three committers, settled, on every node",
        LIMIT * 2,
        || {
            let views: Vec<Value> = nodes.iter().filter_map(|n| n.group(GROUP)).collect();
            views.len() == NAMES.len()
                && views.iter().all(|g| {
                    epoch_and_size(g) == (epoch_and_size(&views[0]).0, NAMES.len())
                        && g["health"]["open_proposals"] == 0
                })
                && nodes[0].api_get(&roster_path)["committers"]
                    .as_array()
                    .is_some_and(|c| c.len() >= 3)
        },
    );
    let formed = started.elapsed();
    let roster = nodes[0].api_get(&roster_path);
    let committers: Vec<&str> = roster["committers"]
        .as_array()
        .expect("committers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(committers.len() >= 3, "{roster}");
    let (napper_address, backup_address) = (committers[0], committers[1]);
    let find = |address: &str| {
        nodes
            .iter()
            .position(|n| same(&n.address, address))
            .unwrap_or_else(|| panic!("{address} is one of the nodes"))
    };
    let napper = find(napper_address);
    let backup = find(backup_address);
    // The nodes that stay awake.
    let awake: Vec<usize> = (0..nodes.len()).filter(|i| *i != napper).collect();
    let (epoch, _) = epoch_and_size(&nodes[backup].group(GROUP).unwrap());
    let awake_peers: Vec<String> = awake.iter().map(|i| nodes[*i].listen.clone()).collect();
    let awake_peers: Vec<&str> = awake_peers.iter().map(String::as_str).collect();
    let joiner = NodeProc::start(
        &tmp.path().join(JOINER),
        "/ip4/127.0.0.1/tcp/0",
        &awake_peers,
    );

    // The epoch steward's lid closes; the backup invites a newcomer, who asks to join.
    nodes[napper].signal("-STOP");
    let frozen_at = Instant::now();
    nodes[backup].invite(GROUP, &joiner);
    // An awake steward takes the request up, and the backup commits the joiner in the napped
    // steward's place (Layer 1).
    wait_until("the backup commits the joiner", LIMIT, || {
        awake.iter().all(|i| {
            nodes[*i].group(GROUP).is_some_and(|g| {
                epoch_and_size(&g) == (epoch + 1, NAMES.len() + 1)
                    && has_member(&g, &joiner.address)
            })
        }) && joiner.group(GROUP).is_some()
    });
    let committed = frozen_at.elapsed();
    let committer = nodes[awake[0]]
        .events()
        .into_iter()
        .find(|e| e["type"] == "epoch_changed" && e["epoch"] == epoch + 1)
        .expect("the joiner's commit");
    assert!(
        same(committer["committer"].as_str().unwrap(), backup_address),
        "the backup committed: {committer}"
    );
    let proposers: Vec<String> = nodes[awake[0]]
        .events()
        .into_iter()
        .filter(|e| {
            e["type"] == "proposal_opened"
                && e["change"]["kind"] == "add"
                && e["change"]["member"]
                    .as_str()
                    .is_some_and(|m| same(m, &joiner.address))
        })
        .filter_map(|e| e["owner"].as_str().map(str::to_owned))
        .collect();
    // Whichever awake steward's turn came first in the joiner's take-up order opened it.
    assert!(
        proposers.len() == 1 && !same(&proposers[0], napper_address),
        "one vote on the joiner, opened by an awake steward: {proposers:?}"
    );

    std::thread::sleep(NAP.saturating_sub(frozen_at.elapsed()));
    nodes[napper].signal("-CONT");
    let woke_at = Instant::now();
    // Woken, its timers are overdue: it hears the group for a steward turn before it commits
    // or blames anyone, so it reads the backup's commit rather than committing its missed turn
    // (which the filtering rule would prefer, stranding the joiner the backup welcomed).
    wait_until("the napped steward catches up", LIMIT, || {
        let (Some(own), Some(theirs)) = (nodes[napper].group(GROUP), nodes[backup].group(GROUP))
        else {
            return false;
        };
        epoch_and_size(&own).0 > epoch
            && has_member(&own, &joiner.address)
            && own["authenticator"] == theirs["authenticator"]
    });
    let caught_up = woke_at.elapsed();
    let napper_log = std::fs::read_to_string(tmp.path().join(NAMES[napper]).with_extension("log"))
        .unwrap_or_default();
    assert!(
        napper_log.contains("stalled; hearing the group before acting"),
        "the napped steward did not notice its stall"
    );
    // Most of a minute on: nobody removed it in the meantime.
    std::thread::sleep(AFTER.saturating_sub(woke_at.elapsed()));

    let reference = nodes[backup].group(GROUP).unwrap();
    let everyone = nodes.iter().zip(NAMES).chain([(&joiner, JOINER)]);
    for (node, name) in everyone {
        let group = node
            .group(GROUP)
            .unwrap_or_else(|| panic!("{name} is still a member"));
        assert!(
            has_member(&group, napper_address),
            "{name} still counts the napped steward in: {group}"
        );
        assert_eq!(
            (epoch_and_size(&group), &group["authenticator"]),
            (epoch_and_size(&reference), &reference["authenticator"]),
            "{name} is on the others' epoch"
        );
        assert!(!charged(node, napper_address), "{name} charged it");
    }
    for i in &awake {
        let name = NAMES[*i];
        let health = &nodes[*i].group(GROUP).unwrap()["health"];
        let score = health["steward_scores"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| {
                s["address"]
                    .as_str()
                    .is_some_and(|a| same(a, napper_address))
            })
            .and_then(|s| s["score"].as_i64())
            .unwrap_or_else(|| panic!("{name} scores the napped steward: {health}"));
        let default = health["score_default"].as_i64().unwrap();
        let threshold = health["score_threshold"].as_i64().unwrap();
        assert!(
            threshold <= score && score < default,
            "{name} scores the napped steward {score} (default {default}, threshold {threshold})"
        );
    }
    eprintln!(
        "group formed in {formed:?}; the backup committed {committed:?} after the freeze; \
         the napped steward caught up {caught_up:?} after waking; total {:?}",
        started.elapsed()
    );
}
