//! The de-MLS flow end to end on a simulated network with reordering and duplication.

mod common;

use common::*;
use demls_engine::{ChangeKind, Event, TopicKind, VotePolicy};
use demls_sim::{NetConfig, NodeId, Sim};

/// A new node joins the group of `nodes`; returns it and every node, once all agree.
fn join_late(sim: &mut Sim, nodes: &[NodeId]) -> (NodeId, Vec<NodeId>) {
    let late = sim.add(engine(VotePolicy::Automatic));
    sim.act(late, |e, now| e.request_join(group(), None, now))
        .unwrap();
    let mut all = nodes.to_vec();
    all.push(late);
    assert!(
        sim.run_until(120_000, |s| converged(s, &all, all.len())),
        "{}",
        describe(sim, &all)
    );
    (late, all)
}

#[test]
fn ten_members_join_vote_commit_and_talk() {
    let mut sim = Sim::new(noisy_net(7));
    let nodes = form_group(&mut sim, 10, VotePolicy::Automatic);
    let g = group();

    // Every member is in the same epoch with the same MLS epoch authenticator.
    let view = sim.node(nodes[0]).engine.group(&g).unwrap();
    assert_eq!(view.members.len(), 10);
    for id in &nodes {
        let v = sim.node(*id).engine.group(&g).unwrap();
        assert_eq!(
            (v.epoch, &v.authenticator),
            (view.epoch, &view.authenticator)
        );
    }

    // Everyone talks; every message reaches every member exactly once.
    for (i, id) in nodes.iter().enumerate() {
        sim.act(*id, |e, now| {
            e.send_message(&g, &format!("hello from {i}"), now)
        })
        .unwrap();
    }
    sim.run_for(5_000);
    for id in &nodes {
        let mut got = texts(&sim, *id);
        got.sort();
        let mut want: Vec<String> = (0..10).map(|i| format!("hello from {i}")).collect();
        want.sort();
        assert_eq!(got, want, "node {}", id.0);
    }
    // Drops are only the expected noise: duplicated deliveries, welcome-topic traffic
    // for others, and ciphertexts of epochs from before a node joined.
    let drops = sim.drop_counts();
    let expected = ["duplicate", "not_for_us", "unknown_group", "wrong_epoch"];
    assert!(
        drops.keys().all(|k| expected.contains(&k.as_str())),
        "{drops:?}"
    );
}

#[test]
fn joiner_cannot_read_messages_from_before_it_joined() {
    let mut sim = Sim::new(noisy_net(11));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    sim.enable_wiretap();
    sim.act(nodes[1], |e, now| {
        e.send_message(&g, "before you came", now)
    })
    .unwrap();
    let captured: Vec<Vec<u8>> = sim
        .wiretap
        .iter()
        .filter(|(_, t)| t.topic.kind == TopicKind::Application)
        .map(|(_, t)| t.payload.clone())
        .collect();
    assert_eq!(captured.len(), 1);
    sim.run_for(2_000);

    let (late, _) = join_late(&mut sim, &nodes);

    // The ciphertext of the earlier epoch is useless to the new member.
    let error = sim.inject(late, &captured[0]).unwrap_err();
    assert_eq!(error.kind(), "wrong_epoch", "{error}");
    assert!(!texts(&sim, late).contains(&"before you came".to_owned()));
}

#[test]
fn removed_member_with_its_old_state_cannot_read_what_follows() {
    let mut sim = Sim::new(noisy_net(13));
    let nodes = form_group(&mut sim, 5, VotePolicy::Automatic);
    let g = group();
    let victim = nodes[4];
    let victim_address = address(&sim, victim);
    // The victim keeps its full pre-removal state: it goes offline before the removal commit.
    sim.node_mut(victim).online = false;
    sim.enable_wiretap();
    members_decide(&mut sim, &ChangeKind::Remove(victim_address), true);
    sim.act(nodes[1], |e, now| e.propose_remove(&g, victim_address, now))
        .unwrap();
    let rest: Vec<_> = nodes[..4].to_vec();
    assert!(
        sim.run_until(120_000, |s| converged(s, &rest, 4)),
        "{}",
        describe(&sim, &rest)
    );
    sim.act(nodes[2], |e, now| {
        e.send_message(&g, "after the removal", now)
    })
    .unwrap();
    sim.run_for(2_000);
    assert!(
        rest.iter()
            .all(|id| texts(&sim, *id).contains(&"after the removal".to_owned()))
    );

    // Everything sent after the removal, fed to the victim's old state: nothing readable.
    let captured: Vec<Vec<u8>> = sim.wiretap.iter().map(|(_, t)| t.payload.clone()).collect();
    for bytes in &captured {
        let _ = sim.inject(victim, bytes);
    }
    assert!(!texts(&sim, victim).contains(&"after the removal".to_owned()));
    assert!(
        sim.node(victim)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Removed { .. }))
    );
    assert!(sim.node(victim).engine.group(&g).is_none());
    let view = sim.node(nodes[0]).engine.group(&g).unwrap();
    assert!(!view.members.contains(&victim_address));
}

#[test]
fn a_member_removed_by_a_commit_that_also_rotates_the_committers_keys_learns_it() {
    let mut sim = Sim::new(noisy_net(17));
    let nodes = form_group(&mut sim, 4, VotePolicy::Automatic);
    let g = group();
    let (steward, victim) = (nodes[0], nodes[3]);
    let victim_address = address(&sim, victim);
    // The steward asks to replace its keys while the group removes the victim: one commit
    // carries both, the steward's update as its own UpdatePath.
    members_decide(&mut sim, &ChangeKind::Remove(victim_address), true);
    sim.act(steward, |e, now| e.rotate(&g, now)).unwrap();
    sim.act(nodes[1], |e, now| e.propose_remove(&g, victim_address, now))
        .unwrap();
    assert!(
        sim.run_until(120_000, |s| {
            s.node(victim)
                .events
                .iter()
                .any(|(_, e)| matches!(e, Event::Removed { .. }))
        }),
        "the victim was not told ({} commits rejected)",
        rejected_commits(&sim, victim)
    );
    let rest: Vec<_> = nodes[..3].to_vec();
    assert!(sim.run_until(60_000, |s| converged(s, &rest, 3)));
}

#[test]
fn a_no_majority_blocks_the_change() {
    let mut sim = Sim::new(NetConfig {
        seed: 3,
        ..NetConfig::default()
    });
    let nodes = form_group(&mut sim, 4, VotePolicy::Automatic);
    let g = group();
    for id in &nodes[1..] {
        sim.node_mut(*id)
            .engine
            .set_vote_policy(VotePolicy::Manual, Default::default());
    }
    // Members now vote by hand.
    let before = sim.node(nodes[0]).engine.group(&g).unwrap();
    let target = address(&sim, nodes[3]);
    sim.act(nodes[0], |e, now| e.propose_remove(&g, target, now))
        .unwrap();
    sim.run_for(1_000);
    let (proposal, _, _) = *opened(&sim, nodes[1]).last().unwrap();
    // The target votes NO on its own removal by itself; two more NO votes make a majority.
    for id in &nodes[1..3] {
        sim.act(*id, |e, now| e.vote(&g, proposal, false, now))
            .unwrap();
    }
    sim.run_for(60_000);
    for id in &nodes {
        assert!(
            decisions(&sim, *id).contains(&(ChangeKind::Remove(target), false)),
            "node {}",
            id.0
        );
        let v = sim.node(*id).engine.group(&g).unwrap();
        assert_eq!((v.epoch, v.members.len()), (before.epoch, 4));
    }
    // A vote on a decided proposal is refused.
    let error = sim
        .act(nodes[1], |e, now| e.vote(&g, proposal, true, now))
        .unwrap_err();
    assert_eq!(error.kind(), "vote_refused");
}

#[test]
fn a_member_leaves() {
    let mut sim = Sim::new(noisy_net(17));
    let nodes = form_group(&mut sim, 4, VotePolicy::Automatic);
    let g = group();
    sim.act(nodes[2], |e, now| e.leave(&g, now)).unwrap();
    let rest = vec![nodes[0], nodes[1], nodes[3]];
    assert!(
        sim.run_until(60_000, |s| converged(s, &rest, 3)),
        "{}",
        describe(&sim, &rest)
    );
    sim.run_for(1_000); // the leaver hears the commit a moment after the others
    assert!(sim.node(nodes[2]).engine.group(&g).is_none());
    assert!(
        sim.node(nodes[2])
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Removed { .. }))
    );
    // The only steward may not leave.
    assert_eq!(
        sim.act(nodes[0], |e, now| e.leave(&g, now))
            .unwrap_err()
            .kind(),
        "invalid_proposal"
    );
}

#[test]
fn members_see_display_names_and_joiners_learn_them() {
    let mut sim = Sim::new(noisy_net(23));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    let named = address(&sim, nodes[1]);

    // A name over the limit, or with control characters, is refused before it is sent.
    let long = "x".repeat(demls_engine::MAX_DISPLAY_NAME_BYTES + 1);
    for bad in [long.as_str(), "new\nline"] {
        let refused = sim.act(nodes[1], |e, now| e.set_display_name(&g, bad, now));
        assert_eq!(refused.unwrap_err().kind(), "invalid_display_name");
    }
    let longest = "é".repeat(demls_engine::MAX_DISPLAY_NAME_BYTES / 2);
    sim.act(nodes[1], |e, now| e.set_display_name(&g, &longest, now))
        .unwrap();
    sim.act(nodes[1], |e, now| e.set_display_name(&g, "Alice", now))
        .unwrap();
    sim.run_for(2_000);

    // Every member sees it, and only under its sender's address: the message names no
    // one, the MLS sender is whose name it is.
    for id in &nodes {
        let names = view(&sim, *id).display_names;
        assert_eq!(names.len(), 1, "node {}: {names:?}", id.0);
        assert_eq!(names.get(&named).map(String::as_str), Some("Alice"));
    }

    // A member that joins later learns it: the named member sends it again after the commit.
    let (late, all) = join_late(&mut sim, &nodes);
    sim.run_for(2_000);
    let names = view(&sim, late).display_names;
    assert_eq!(names.get(&named).map(String::as_str), Some("Alice"));
    assert_eq!(names.len(), 1, "{names:?}");

    // An empty name removes it everywhere.
    sim.act(nodes[1], |e, now| e.set_display_name(&g, "", now))
        .unwrap();
    sim.run_for(2_000);
    for id in &all {
        assert!(view(&sim, *id).display_names.is_empty(), "node {}", id.0);
    }

    // Each change is told as an event, so that a member taking a name is seen doing it;
    // the name sent again for the joiner changes nothing and is not told again.
    for id in &nodes {
        let changes: Vec<Option<String>> = sim
            .node(*id)
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::NameChanged { member, name, .. } if *member == named => Some(name.clone()),
                _ => None,
            })
            .collect();
        // The first two may cross on the network, then the older is ignored.
        let alice = Some("Alice".to_owned());
        let at_most = [Some(longest.clone()), alice.clone(), None];
        assert!(
            changes.ends_with(&[alice, None]),
            "node {}: {changes:?}",
            id.0
        );
        assert!(changes.len() <= at_most.len() && changes.iter().all(|c| at_most.contains(c)));
    }
}

#[test]
fn each_proposal_ends_committed_in_the_epoch_its_commit_made_or_without_effect() {
    let mut sim = Sim::new(noisy_net(13));
    let nodes = form_group_with(
        &mut sim,
        6,
        VotePolicy::Automatic,
        multi(demls_engine::StewardMode::Big, 2, 3),
    );
    for id in &nodes {
        let ends: std::collections::BTreeMap<_, _> = picked(&sim, *id, |e| match e {
            Event::ProposalClosed {
                proposal,
                committed,
                ..
            } => Some((*proposal, *committed)),
            _ => None,
        })
        .into_iter()
        .collect();
        let added_in: std::collections::BTreeMap<_, _> = picked(&sim, *id, |e| match e {
            Event::EpochChanged { epoch, added, .. } => {
                Some(added.iter().map(|a| (*a, *epoch)).collect::<Vec<_>>())
            }
            _ => None,
        })
        .into_iter()
        .flatten()
        .collect();
        let opened = opened(&sim, *id);
        // The engine, not the node, says which proposal a commit applied: for each member
        // this node saw added, one add proposal ends committed in the epoch that added it.
        for (member, epoch) in &added_in {
            let committed: Vec<_> = opened
                .iter()
                .filter(|(_, _, change)| *change == ChangeKind::Add(*member))
                .filter(|(proposal, _, _)| ends.get(proposal) == Some(&Some(*epoch)))
                .collect();
            assert_eq!(committed.len(), 1, "node {} on {member}", id.0);
        }
        // Elections change no membership, and are told committed all the same (the creator
        // saw them all; a joiner may have come after the last).
        let election_committed = opened.iter().any(|(proposal, _, change)| {
            matches!(change, ChangeKind::Election { .. })
                && ends.get(proposal).is_some_and(Option::is_some)
        });
        assert!(election_committed || *id != nodes[0]);
    }
}

#[test]
fn a_joiners_engine_tells_how_far_its_join_has_come() {
    let mut sim = Sim::new(noisy_net(17));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    let late = sim.add(engine(VotePolicy::Automatic));
    sim.act(late, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    assert_eq!(
        sim.node(late).engine.join_stage(&g),
        Some(demls_engine::JoinStage::Looking)
    );
    assert!(sim.run_until(30_000, |s| s.node(late).engine.join_stage(&g)
        != Some(demls_engine::JoinStage::Looking)));
    // The request went out, sealed to the one steward, before any Welcome came back.
    let creator = sim.node(nodes[0]).engine.address();
    assert!(
        matches!(
            sim.node(late).engine.join_stage(&g),
            Some(demls_engine::JoinStage::Requested { stewards, .. }) if stewards == vec![creator]
        ),
        "{:?}",
        sim.node(late).engine.join_stage(&g)
    );
    let mut all = nodes.clone();
    all.push(late);
    assert!(sim.run_until(60_000, |s| converged(s, &all, 4)));
    // A member: no join stage any more, and its view says when it joined.
    assert_eq!(sim.node(late).engine.join_stage(&g), None);
    let view = sim.node(late).engine.group(&g).unwrap();
    assert_eq!(view.joined_epoch, view.epoch);
    assert_eq!(
        sim.node(nodes[0]).engine.group(&g).unwrap().joined_epoch.0,
        0
    );
}
