//! Late messages: a chat message that arrives a few epochs after it was written is still read,
//! up to the epochs MLS keeps (`EngineConfig::epoch_retention`, 4); one later than that is not
//! read, is dropped with a typed error, and shows as a gap that is given up.
//!
//! The delayed message is written by a member whose network is down, so that nobody gets it
//! until the test hands its captured bytes over; SDS's syncs and resends are slowed to a day,
//! so that they do not bring it earlier.

mod common;

use common::*;
use demls_engine::{Engine, EngineConfig, Epoch, Event, TopicKind, VotePolicy};
use demls_sim::{NetConfig, NodeId, Sim};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// An engine that neither syncs nor resends chat within a test.
fn quiet_engine() -> Engine {
    let config = EngineConfig {
        chat_sync_ms: DAY_MS,
        chat_sync_idle_ms: DAY_MS,
        chat_resend_ms: DAY_MS,
        ..config(VotePolicy::Automatic)
    };
    engine_with(config)
}

/// Alice (the steward), Bob and Carol, all quiet engines, as members of one group.
fn quiet_group(sim: &mut Sim) -> Vec<NodeId> {
    let alice = sim.add(quiet_engine());
    sim.act(alice, |e, now| e.create_group(group(), params(), now))
        .unwrap();
    let mut all = vec![alice];
    while all.len() < 3 {
        let joiner = sim.add(quiet_engine());
        sim.act(joiner, |e, now| e.request_join(group(), None, now))
            .unwrap();
        all.push(joiner);
    }
    assert!(sim.run_until(600_000, |s| converged(s, &all, 3)));
    all
}

/// The epoch of a node's view.
fn epoch(sim: &Sim, id: NodeId) -> Epoch {
    view(sim, id).epoch
}

/// `writer` writes `text` while its network is down: nobody gets it. Returns the bytes it
/// published, to be delivered later by hand.
fn write_offline(sim: &mut Sim, writer: NodeId, text: &str) -> Vec<u8> {
    let from = sim.wiretap.len();
    sim.node_mut(writer).online = false;
    sim.act(writer, |e, now| e.send_message(&group(), text, now))
        .unwrap();
    sim.node_mut(writer).online = true;
    let mut chat: Vec<Vec<u8>> = sim.wiretap[from..]
        .iter()
        .filter(|(id, t)| *id == writer && t.topic.kind == TopicKind::Application)
        .map(|(_, t)| t.payload.clone())
        .collect();
    assert_eq!(chat.len(), 1, "one chat message published");
    chat.remove(0)
}

/// `epochs` key rotations, each committed and agreed by all of `nodes`.
fn advance(sim: &mut Sim, nodes: &[NodeId], epochs: u64) {
    for _ in 0..epochs {
        let before = epoch(sim, nodes[0]);
        sim.act(nodes[1], |e, now| e.rotate(&group(), now)).unwrap();
        let done = sim.run_until(60_000, |s| {
            converged(s, nodes, nodes.len()) && epoch(s, nodes[0]) > before
        });
        assert!(done, "no new epoch: {}", describe(sim, nodes));
    }
}

/// Every `Syncing` count a node was told, in order.
fn syncing(sim: &Sim, id: NodeId) -> Vec<usize> {
    sim.node(id)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Syncing { missing, .. } => Some(*missing),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_late_by_up_to_the_kept_epochs_is_read_and_a_later_one_is_a_gap() {
    let mut sim = Sim::new(NetConfig::default());
    sim.enable_wiretap();
    let nodes = quiet_group(&mut sim);
    let (alice, carol) = (nodes[0], nodes[2]);
    let retention = sim.node(carol).engine.config().epoch_retention as u64;
    assert_eq!(retention, 4);

    for late_by in [1, retention] {
        let text = format!("late by {late_by}");
        let written = epoch(&sim, alice);
        let bytes = write_offline(&mut sim, alice, &text);
        advance(&mut sim, &nodes, late_by);
        assert_eq!(epoch(&sim, carol).0, written.0 + late_by);
        assert!(!texts(&sim, carol).contains(&text), "nobody had it yet");
        sim.inject(carol, &bytes)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        sim.run_for(1_000);
        assert!(texts(&sim, carol).contains(&text), "{text} is read");
    }

    let text = format!("late by {}", retention + 1);
    let bytes = write_offline(&mut sim, alice, &text);
    advance(&mut sim, &nodes, retention + 1);
    let refused = sim.inject(carol, &bytes);
    assert!(refused.is_err(), "{text} is beyond the kept epochs");
    sim.run_for(1_000);
    assert!(!texts(&sim, carol).contains(&text));

    // Alice's next message names the lost one in its causal history: Carol sees a gap, asks,
    // cannot read what she is given again, gives it up, and reads what came after.
    sim.act(alice, |e, now| {
        e.send_message(&group(), "after the gap", now)
    })
    .unwrap();
    sim.run_for(5_000);
    assert!(
        syncing(&sim, carol).iter().any(|m| *m > 0),
        "the gap shows: {:?}",
        syncing(&sim, carol)
    );
    assert!(!texts(&sim, carol).contains(&"after the gap".to_owned()));
    let gap_give_up_ms = sim.node(carol).engine.config().gap_give_up_ms;
    sim.run_for(gap_give_up_ms + 30_000);
    assert_eq!(syncing(&sim, carol).last(), Some(&0), "the gap is given up");
    let read = texts(&sim, carol);
    assert!(read.contains(&"after the gap".to_owned()), "{read:?}");
    assert!(!read.contains(&text));
    // Carol's group goes on at once: the id she gave up stays given up, so Alice's next
    // message, whose causal history still names it, does not open the gap again.
    sim.act(alice, |e, now| e.send_message(&group(), "and on", now))
        .unwrap();
    sim.run_for(2_000);
    assert!(texts(&sim, carol).contains(&"and on".to_owned()));
}
