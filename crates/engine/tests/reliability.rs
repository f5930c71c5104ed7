//! No message is lost: chat survives loss, reordering and a network split. Messages carry
//! their causal history; members deliver in causal order, notice what they miss, and the
//! group sends it again.

mod common;

use common::*;
use demls_engine::{Event, VotePolicy};
use demls_sim::{NetConfig, NodeId, Sim};

/// The texts a node delivered, in delivery order.
fn delivered(sim: &Sim, id: NodeId) -> Vec<String> {
    texts(sim, id)
}

/// Whether each sender's messages (`"<sender>:<n>"`) reached `id` in the order sent.
fn in_sender_order(sim: &Sim, id: NodeId) -> bool {
    let mut last: std::collections::BTreeMap<String, u32> = Default::default();
    delivered(sim, id).iter().all(|text| {
        let Some((sender, n)) = text.split_once(':') else {
            return true;
        };
        let n: u32 = n.parse().unwrap_or(0);
        let before = last.insert(sender.to_owned(), n);
        before.is_none_or(|b| b < n)
    })
}

#[test]
fn fifty_members_under_loss_and_a_split_all_get_every_message_in_causal_order() {
    let mut sim = Sim::new(NetConfig {
        seed: 401,
        latency_ms: 50,
        jitter_ms: 20,
        ..NetConfig::default()
    });
    let nodes = form_group(&mut sim, 50, VotePolicy::Automatic);
    let g = group();
    // 10 % of every message is lost from now on, and the group splits 30/20.
    sim.set_faults(0.10, 0.0);
    let (side_a, side_b) = nodes.split_at(30);
    for id in side_b {
        sim.node_mut(*id).partition = 1;
    }
    let mut sent = Vec::new();
    for round in 0..3 {
        for (i, id) in nodes.iter().enumerate() {
            let text = format!("m{i}:{round}");
            sim.act(*id, |e, now| e.send_message(&g, &text, now))
                .unwrap();
            sent.push(text);
        }
        sim.run_for(2_000);
    }
    // Both sides talked on their own; then the network heals (the loss stays).
    sim.run_for(20_000);
    for id in side_b {
        sim.node_mut(*id).partition = 0;
    }
    let everything = |s: &Sim| {
        nodes.iter().all(|id| {
            let got = delivered(s, *id);
            sent.iter().all(|t| got.contains(t))
        })
    };
    let healed = sim.run_until(900_000, everything);
    let counts: Vec<usize> = nodes
        .iter()
        .map(|id| {
            sent.iter()
                .filter(|t| delivered(&sim, *id).contains(t))
                .count()
        })
        .collect();
    let lacking: Vec<&String> = sent
        .iter()
        .filter(|t| !delivered(&sim, nodes[0]).contains(t))
        .collect();
    assert!(
        healed,
        "messages delivered per member (of {}): {counts:?}; node 0 lacks {lacking:?}",
        sent.len()
    );
    for id in &nodes {
        assert!(in_sender_order(&sim, *id), "node {} out of order", id.0);
        let unique: std::collections::BTreeSet<_> = delivered(&sim, *id).into_iter().collect();
        assert_eq!(
            unique.len(),
            delivered(&sim, *id).len(),
            "node {} got duplicates",
            id.0
        );
    }
    // Senders learnt that others have their messages.
    assert!(side_a.iter().chain(side_b).all(|id| {
        sim.node(*id)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Acknowledged { .. }))
    }));
}
