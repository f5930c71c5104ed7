//! Multi-steward groups: elections, rotation, both consensus modes, and a group
//! that survives a bad steward.

mod common;

use common::*;
use demls_engine::{
    ChangeKind, Engine, EngineConfig, Event, MlsSigner, MlsStore, StewardMode, Violation,
    VotePolicy,
};
use demls_identity::{Address, Wallet};
use demls_sim::{NodeId, Sim};

#[test]
fn elections_follow_the_hash_order_and_stewards_rotate() {
    let mut sim = Sim::new(noisy_net(101));
    let nodes = form_group_with(
        &mut sim,
        10,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 5),
    );
    let v = view(&sim, nodes[0]);
    assert!((3..=5).contains(&v.stewards.len()), "{:?}", v.stewards);
    for id in &nodes {
        assert_eq!(view(&sim, *id).stewards, v.stewards);
        assert_eq!(view(&sim, *id).committers, v.committers);
    }
    // Every election that passed proposed the list every member computed.
    let elections: Vec<_> = decisions(&sim, nodes[3])
        .into_iter()
        .filter(|(k, _)| matches!(k, ChangeKind::Election { .. }))
        .collect();
    assert!(!elections.is_empty());
    assert!(elections.iter().all(|(_, approved)| *approved));

    // Three removals in a row: each epoch is committed by the next steward in rotation.
    let g = group();
    let mut remaining = nodes.clone();
    for _ in 0..3 {
        let epoch_steward = view(&sim, remaining[0]).committers[0];
        let target = *remaining
            .iter()
            .rev()
            .find(|id| !view(&sim, **id).stewards.contains(&address(&sim, **id)))
            .unwrap();
        let target_address = address(&sim, target);
        let proposer = *remaining.iter().find(|id| **id != target).unwrap();
        members_decide(&mut sim, &ChangeKind::Remove(target_address), true);
        sim.act(proposer, |e, now| e.propose_remove(&g, target_address, now))
            .unwrap();
        remaining.retain(|id| *id != target);
        settle(&mut sim, &remaining, remaining.len(), 120_000);
        assert_eq!(
            committers_seen(&sim, remaining[0]).last(),
            Some(&epoch_steward)
        );
    }
}

#[test]
fn a_forged_election_list_is_rejected_by_everyone() {
    let mut sim = Sim::new(noisy_net(103));
    let nodes = form_group_with(
        &mut sim,
        8,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 4),
    );
    let g = group();
    let before = view(&sim, nodes[0]);
    // A member proposes itself and two friends as the stewards.
    let forged = vec![
        address(&sim, nodes[7]),
        address(&sim, nodes[6]),
        address(&sim, nodes[5]),
    ];
    assert_ne!(forged, before.stewards);
    sim.act(nodes[7], |e, now| {
        e.byzantine_propose_election(&g, 0, forged.clone(), now)
    })
    .unwrap();
    sim.run_for(60_000);
    let forged_kind = ChangeKind::Election {
        retry_round: 0,
        stewards: forged.clone(),
    };
    for id in &nodes {
        assert!(
            decisions(&sim, *id).contains(&(forged_kind.clone(), false)),
            "node {}",
            id.0
        );
        assert_ne!(view(&sim, *id).stewards, forged);
    }
}

#[test]
fn in_small_consensus_only_stewards_vote_on_membership() {
    let mut sim = Sim::new(noisy_net(107));
    let nodes = form_group_with(
        &mut sim,
        9,
        VotePolicy::Automatic,
        multi(StewardMode::Small, 3, 3),
    );
    let g = group();
    let v = view(&sim, nodes[0]);
    assert_eq!(v.stewards.len(), 3);
    let outsider = *nodes
        .iter()
        .find(|id| !v.stewards.contains(&address(&sim, **id)))
        .unwrap();
    let target = *nodes
        .iter()
        .rev()
        .find(|id| **id != outsider && !v.stewards.contains(&address(&sim, **id)))
        .unwrap();
    let target_address = address(&sim, target);
    sim.enable_wiretap();
    members_decide(&mut sim, &ChangeKind::Remove(target_address), true);
    sim.act(outsider, |e, now| e.propose_remove(&g, target_address, now))
        .unwrap();
    let rest: Vec<_> = nodes.iter().copied().filter(|id| *id != target).collect();
    settle(&mut sim, &rest, 8, 120_000);
    // Votes on the removal came only from stewards: only they are its voters.
    let removal_votes: Vec<_> = sim
        .node(nodes[0])
        .events
        .iter()
        .skip_while(|(_, e)| !matches!(e, Event::ProposalOpened { change: ChangeKind::Remove(a), .. } if *a == target_address))
        .take_while(|(_, e)| !matches!(e, Event::EpochChanged { .. }))
        .filter_map(|(_, e)| match e {
            Event::VoteRecorded { voter, .. } => Some(*voter),
            _ => None,
        })
        .collect();
    assert!(!removal_votes.is_empty());
    assert!(
        removal_votes.iter().all(|voter| v.stewards.contains(voter)),
        "{removal_votes:?} vs {:?}",
        v.stewards
    );
}

#[test]
fn a_steward_that_commits_an_unvoted_add_is_removed_and_the_backup_carries_on() {
    let mut sim = Sim::new(noisy_net(109));
    let nodes = form_group_with(
        &mut sim,
        10,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 5),
    );
    let g = group();
    let v = view(&sim, nodes[0]);
    let bad_address = v.committers[0];
    let bad = *nodes
        .iter()
        .find(|id| address(&sim, **id) == bad_address)
        .unwrap();
    let intruder = sim.add(engine(VotePolicy::Automatic));
    let key_package = sim.act(intruder, |e, now| e.key_package(now)).unwrap();
    sim.act(bad, |e, now| {
        e.byzantine_commit(&g, vec![key_package], Vec::new(), now)
    })
    .unwrap();
    let honest: Vec<_> = nodes.iter().copied().filter(|id| *id != bad).collect();
    settle(&mut sim, &honest, 9, 180_000);
    for id in &honest {
        assert!(
            violations(&sim, *id).contains(&(Some(bad_address), Violation::BrokenCommit)),
            "node {}",
            id.0
        );
        let view = view(&sim, *id);
        assert!(!view.members.contains(&bad_address));
        assert!(!view.members.contains(&address(&sim, intruder)));
    }
    // The commit that removed the bad steward came from its backup.
    assert_eq!(
        committers_seen(&sim, honest[0]).last(),
        Some(&v.committers[1])
    );
}

/// Asserts every honest node detected `violation` by `bad`, removed it, and agrees on the group.
fn assert_removed(
    sim: &mut Sim,
    bad: NodeId,
    honest: &[NodeId],
    violation: Violation,
    members: usize,
) {
    let bad_address = address(sim, bad);
    let ok = sim.run_until(300_000, |s| {
        converged(s, honest, members)
            && honest
                .iter()
                .all(|id| !view(s, *id).members.contains(&bad_address))
    });
    assert!(ok, "not removed: {}", describe(sim, honest));
    for id in honest {
        let seen = violations(sim, *id);
        assert!(
            seen.contains(&(Some(bad_address), violation)),
            "node {} saw {seen:?}",
            id.0
        );
    }
    assert_roles_truthful(sim, honest);
}

/// Every view of `nodes` shows the same stewards and commit order, all of them members, and
/// scores only for the stewards shown: what `show`, `/roster` and the web's Health tab print.
fn assert_roles_truthful(sim: &Sim, nodes: &[NodeId]) {
    let first = view(sim, nodes[0]);
    for id in nodes {
        let v = view(sim, *id);
        assert_eq!(v.stewards, first.stewards, "node {}", id.0);
        assert_eq!(v.committers, first.committers, "node {}", id.0);
        assert!(
            v.stewards
                .iter()
                .chain(&v.committers)
                .all(|s| v.members.contains(s)),
            "node {}: {:?} / {:?} not all members",
            id.0,
            v.stewards,
            v.committers
        );
        let scored: Vec<Address> = v.steward_scores.iter().map(|(a, _)| *a).collect();
        assert_eq!(scored, v.stewards, "node {}", id.0);
    }
}

/// The epoch steward `bad` (silent) commits one of two approved removals of members of
/// `honest` and leaves the other out. Returns the members of `honest` still in the group.
fn censor_once(sim: &mut Sim, bad: NodeId, honest: &[NodeId]) -> Vec<NodeId> {
    let g = group();
    let (a, b, p, q) = two_plain_members(sim, honest);
    let (a_address, b_address) = (address(sim, a), address(sim, b));
    let approved_before = approved_removals(sim, bad);
    members_decide(sim, &ChangeKind::Remove(a_address), true);
    sim.act(p, |e, now| e.propose_remove(&g, a_address, now))
        .unwrap();
    members_decide(sim, &ChangeKind::Remove(b_address), true);
    sim.act(q, |e, now| e.propose_remove(&g, b_address, now))
        .unwrap();
    assert!(sim.run_until(60_000, |s| approved_removals(s, bad) == approved_before + 2));
    // It is heard from after the approvals, so its backup waits three steward timeouts.
    sim.act(bad, |e, now| e.send_message(&g, "still here", now))
        .unwrap();
    sim.run_for(4_500); // past the censorship grace, before the backup's turn
    sim.act(bad, |e, now| e.byzantine_commit_without(&g, b_address, now))
        .unwrap();
    honest
        .iter()
        .copied()
        .filter(|id| *id != a && *id != b)
        .collect()
}

#[test]
fn a_steward_that_drops_approved_proposals_twice_is_removed() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(113);
    let g = group();
    let bad_address = address(&sim, bad);
    sim.node_mut(bad)
        .engine
        .byzantine_set_silent(&g, true)
        .unwrap();
    let rest = censor_once(&mut sim, bad, &honest);
    // Once costs it score; the next steward commits what it left out, and it stays.
    let mut group_now = rest.clone();
    group_now.push(bad);
    settle(&mut sim, &group_now, 8, 120_000);
    let scoring = demls_engine::PeerScoring::default();
    for id in &rest {
        assert!(view(&sim, *id).members.contains(&bad_address));
        assert!(violations(&sim, *id).contains(&(Some(bad_address), Violation::Censorship)));
        assert_eq!(
            score(&sim, *id, bad_address),
            Some(scoring.default_score - scoring.censorship_penalty),
            "node {}",
            id.0
        );
        assert!(!charged(&sim, *id, bad_address), "node {}", id.0);
    }
    // Members replace their keys until its turn comes again; then it does it again.
    for round in 0..40 {
        if view(&sim, rest[0]).committers.first() == Some(&bad_address) {
            break;
        }
        let epoch = view(&sim, rest[0]).epoch.0;
        let who = rest[round % rest.len()];
        sim.act(who, |e, now| e.rotate(&g, now)).unwrap();
        assert!(sim.run_until(120_000, |s| {
            rest.iter().all(|id| view(s, *id).epoch.0 > epoch)
        }));
        settle(&mut sim, &rest, 8, 60_000);
    }
    assert_eq!(view(&sim, rest[0]).committers.first(), Some(&bad_address));
    let rest = censor_once(&mut sim, bad, &rest);
    assert_removed(&mut sim, bad, &rest, Violation::Censorship, rest.len());
}

#[test]
fn a_steward_that_misses_a_turn_is_passed_over_and_stays_with_a_lower_score() {
    let (mut sim, nodes, bad, honest) = group_with_bad_steward(127);
    let g = group();
    let backup = view(&sim, nodes[0]).committers[1];
    let bad_address = address(&sim, bad);
    // Its lid closes while a removal is voted.
    sim.node_mut(bad).online = false;
    let (a, _, p, _) = two_plain_members(&sim, &honest);
    let a_address = address(&sim, a);
    members_decide(&mut sim, &ChangeKind::Remove(a_address), true);
    sim.act(p, |e, now| e.propose_remove(&g, a_address, now))
        .unwrap();
    let rest: Vec<_> = honest.iter().copied().filter(|id| *id != a).collect();
    // The backup commits the removal in the napping steward's place (Layer 1).
    assert!(sim.run_until(120_000, |s| {
        rest.iter()
            .all(|id| !view(s, *id).members.contains(&a_address))
    }));
    assert_eq!(committers_seen(&sim, rest[0]).last(), Some(&backup));
    // It wakes: a minute later it is still a member everywhere, with a lower score.
    sim.node_mut(bad).online = true;
    sim.run_for(60_000);
    let mut everyone = rest.clone();
    everyone.push(bad);
    settle(&mut sim, &everyone, 9, 120_000);
    let scoring = demls_engine::PeerScoring::default();
    for id in &rest {
        assert!(view(&sim, *id).members.contains(&bad_address));
        assert!(
            violations(&sim, *id).contains(&(Some(bad_address), Violation::Inactivity)),
            "node {} saw {:?}",
            id.0,
            violations(&sim, *id)
        );
        assert_eq!(
            score(&sim, *id, bad_address),
            Some(scoring.default_score - scoring.inactivity_penalty),
            "node {}",
            id.0
        );
        assert!(!charged(&sim, *id, bad_address), "node {}", id.0);
    }
    // Its next honest commit earns some of the score back.
    let commits_by = |s: &Sim| {
        committers_seen(s, rest[0])
            .iter()
            .filter(|c| **c == bad_address)
            .count()
    };
    let before = commits_by(&sim);
    keep_rotating_until(&mut sim, &rest, |s| commits_by(s) > before);
    settle(&mut sim, &everyone, 9, 120_000);
    for id in &rest {
        assert_eq!(
            score(&sim, *id, bad_address),
            Some(scoring.default_score - scoring.inactivity_penalty + scoring.commit_reward),
            "node {}",
            id.0
        );
    }
}

#[test]
fn a_steward_silent_across_its_turns_is_removed_through_an_emergency() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(139);
    let bad_address = address(&sim, bad);
    sim.node_mut(bad).online = false;
    keep_rotating_until(&mut sim, &honest, |s| {
        honest
            .iter()
            .all(|id| !view(s, *id).members.contains(&bad_address))
    });
    assert_removed(&mut sim, bad, &honest, Violation::Inactivity, 9);
    for id in &honest {
        let missed = violations(&sim, *id)
            .iter()
            .filter(|v| **v == (Some(bad_address), Violation::Inactivity))
            .count();
        assert!(missed >= 3, "node {} saw {missed} missed turns", id.0);
    }
}

#[test]
fn a_steward_that_sends_two_different_commits_is_removed() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(131);
    let g = group();
    let (a, b, p, q) = two_plain_members(&sim, &honest);
    let (a_address, b_address) = (address(&sim, a), address(&sim, b));
    sim.node_mut(bad)
        .engine
        .byzantine_set_silent(&g, true)
        .unwrap();
    members_decide(&mut sim, &ChangeKind::Remove(a_address), true);
    sim.act(p, |e, now| e.propose_remove(&g, a_address, now))
        .unwrap();
    members_decide(&mut sim, &ChangeKind::Remove(b_address), true);
    sim.act(q, |e, now| e.propose_remove(&g, b_address, now))
        .unwrap();
    assert!(sim.run_until(60_000, |s| {
        decisions(s, bad)
            .iter()
            .filter(|(k, yes)| *yes && matches!(k, ChangeKind::Remove(_)))
            .count()
            == 2
    }));
    sim.act(bad, |e, now| e.byzantine_equivocate(&g, b_address, now))
        .unwrap();
    let rest: Vec<_> = honest
        .iter()
        .copied()
        .filter(|id| *id != a && *id != b)
        .collect();
    assert_removed(&mut sim, bad, &rest, Violation::Equivocation, 7);
}

/// `proposer` proposes removing `target`; runs until every node of `rest` has applied it.
fn remove_and_settle(
    sim: &mut Sim,
    proposer: NodeId,
    target: NodeId,
    rest: &[NodeId],
    limit_ms: u64,
) {
    let g = group();
    let target_address = address(sim, target);
    members_decide(sim, &ChangeKind::Remove(target_address), true);
    sim.act(proposer, |e, now| e.propose_remove(&g, target_address, now))
        .unwrap();
    let ok = sim.run_until(limit_ms, |s| {
        rest.iter().all(|id| {
            s.node(*id)
                .engine
                .group(&g)
                .is_some_and(|v| !v.members.contains(&target_address))
        })
    });
    assert!(ok, "removal did not land: {}", describe(sim, rest));
}

/// `leaver` leaves; runs until every node of `rest` has applied it.
fn leave_and_settle(sim: &mut Sim, leaver: NodeId, rest: &[NodeId], limit_ms: u64) {
    let g = group();
    let leaver_address = address(sim, leaver);
    sim.act(leaver, |e, now| e.leave(&g, now)).unwrap();
    let ok = sim.run_until(limit_ms, |s| {
        rest.iter().all(|id| {
            s.node(*id)
                .engine
                .group(&g)
                .is_some_and(|v| !v.members.contains(&leaver_address))
        })
    });
    assert!(ok, "leave did not land: {}", describe(sim, rest));
}

#[test]
fn a_member_offline_for_five_epochs_catches_up() {
    let mut sim = Sim::new(noisy_net(137));
    let nodes = form_group_with(
        &mut sim,
        12,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 5),
    );
    let mut plain_members = plain(&sim, &nodes);
    let sleeper = plain_members.remove(0);
    let before = view(&sim, sleeper).epoch;
    sim.node_mut(sleeper).online = false;
    let mut rest: Vec<NodeId> = nodes.iter().copied().filter(|id| *id != sleeper).collect();
    for _ in 0..5 {
        let target = plain_members.pop().unwrap();
        rest.retain(|id| *id != target);
        remove_and_settle(&mut sim, rest[0], target, &rest, 120_000);
    }
    assert!(view(&sim, rest[0]).epoch.0 >= before.0 + 5);
    sim.node_mut(sleeper).online = true;
    let mut all = rest.clone();
    all.push(sleeper);
    settle(&mut sim, &all, 7, 300_000);
    assert!(
        sim.node(sleeper)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::SyncRequested { .. }))
    );
    // And it takes part again: a message from it reaches the others.
    let g = group();
    sim.act(sleeper, |e, now| e.send_message(&g, "back", now))
        .unwrap();
    sim.run_for(2_000);
    assert!(texts(&sim, rest[0]).contains(&"back".to_owned()));
}

#[test]
fn a_split_that_commits_on_both_sides_heals_to_one_group() {
    let mut sim = Sim::new(noisy_net(139));
    // Small consensus: all 50 vote on elections, the stewards on membership.
    let nodes = form_group_with(
        &mut sim,
        50,
        VotePolicy::Automatic,
        multi(StewardMode::Small, 3, 5),
    );
    let (side_a, side_b) = nodes.split_at(30);
    for id in side_b {
        sim.node_mut(*id).partition = 1;
    }
    // Each side removes one of its plain members, and commits it.
    let a_target = *plain(&sim, side_a).last().unwrap();
    let b_target = *plain(&sim, side_b).last().unwrap();
    let a_rest: Vec<_> = side_a
        .iter()
        .copied()
        .filter(|id| *id != a_target)
        .collect();
    let b_rest: Vec<_> = side_b
        .iter()
        .copied()
        .filter(|id| *id != b_target)
        .collect();
    // A side without a majority of the voters can remove nobody (silence is NO), but a
    // member may always leave: each side commits a leave.
    leave_and_settle(&mut sim, a_target, &a_rest, 600_000);
    leave_and_settle(&mut sim, b_target, &b_rest, 600_000);
    assert_ne!(
        view(&sim, a_rest[0]).authenticator,
        view(&sim, b_rest[0]).authenticator
    );

    // The network heals.
    for id in side_b {
        sim.node_mut(*id).partition = 0;
    }
    let g = group();
    let healed = sim.run_until(600_000, |s| {
        let members: Vec<_> = nodes
            .iter()
            .filter_map(|id| s.node(*id).engine.group(&g))
            .collect();
        members.len() == 49
            && members
                .windows(2)
                .all(|w| w[0].epoch == w[1].epoch && w[0].authenticator == w[1].authenticator)
            && members[0].members.len() == 49
    });
    assert!(healed, "not healed: {}", describe(&sim, &nodes));
    // Every node is in the one group, except the member the surviving branch removed.
    let survivors: Vec<_> = nodes
        .iter()
        .copied()
        .filter(|id| sim.node(*id).engine.group(&g).is_some())
        .collect();
    let removed: Vec<_> = nodes
        .iter()
        .copied()
        .filter(|id| !survivors.contains(id))
        .collect();
    assert_eq!(removed.len(), 1);
    assert!(removed[0] == a_target || removed[0] == b_target);
    assert!(nodes.iter().any(|id| {
        sim.node(*id)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::BranchSwitched { .. }))
    }));
}

#[test]
fn twenty_changes_in_a_row_land_under_loss_and_reordering() {
    let mut sim = Sim::new(noisy_net(149));
    let mut nodes = form_group_with(
        &mut sim,
        12,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 5),
    );
    sim.set_faults(0.10, 0.05);
    let g = group();
    for round in 0..10 {
        // A join...
        let joiner = sim.add(engine(VotePolicy::Automatic));
        sim.act(joiner, |e, now| e.request_join(g.clone(), None, now))
            .unwrap();
        nodes.push(joiner);
        let n = nodes.len();
        assert!(
            sim.run_until(600_000, |s| converged(s, &nodes, n)),
            "join {round}: {}",
            describe(&sim, &nodes)
        );
        // ...and a removal.
        let target = *plain(&sim, &nodes).first().unwrap();
        nodes.retain(|id| *id != target);
        let target_address = address(&sim, target);
        members_decide(&mut sim, &ChangeKind::Remove(target_address), true);
        sim.act(nodes[0], |e, now| e.propose_remove(&g, target_address, now))
            .unwrap();
        let n = nodes.len();
        assert!(
            sim.run_until(600_000, |s| converged(s, &nodes, n)),
            "removal {round}: {}",
            describe(&sim, &nodes)
        );
    }
    assert_eq!(view(&sim, nodes[0]).members.len(), 12);
}

#[test]
fn when_every_steward_is_silent_re_elections_then_a_deadlock_emergency_let_any_member_commit() {
    let mut sim = Sim::new(noisy_net(149));
    let nodes = form_group_with(
        &mut sim,
        8,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 4),
    );
    let g = group();
    // Nobody commits: the list, and every list a re-election could bring, stays silent.
    for id in &nodes {
        sim.node_mut(*id)
            .engine
            .byzantine_set_silent(&g, true)
            .unwrap();
    }
    let (target, proposer) = (nodes[7], nodes[6]);
    let target_address = address(&sim, target);
    members_decide(&mut sim, &ChangeKind::Remove(target_address), true);
    sim.act(proposer, |e, now| e.propose_remove(&g, target_address, now))
        .unwrap();
    let deadlock = |s: &Sim, id: NodeId| {
        decisions(s, id).iter().any(|(k, yes)| {
            *yes && matches!(
                k,
                ChangeKind::Emergency {
                    offender: None,
                    violation: Violation::Deadlock
                }
            )
        })
    };
    let rest: Vec<_> = nodes.iter().copied().filter(|id| *id != target).collect();
    assert!(
        sim.run_until(600_000, |s| rest.iter().all(|id| deadlock(s, *id))),
        "no deadlock emergency: {}",
        describe(&sim, &rest)
    );
    let max_rounds = demls_engine::EngineConfig::default().max_retry_rounds;
    for id in &rest {
        // Several members may propose the same re-election at once: each round counts once.
        let rounds: std::collections::BTreeSet<u32> = decisions(&sim, *id)
            .into_iter()
            .filter_map(|(k, yes)| match k {
                ChangeKind::Election {
                    retry_round,
                    stewards,
                } if yes && retry_round > 0 => {
                    // Re-elections pass over members whose removal is approved.
                    assert!(!stewards.contains(&target_address), "node {}", id.0);
                    Some(retry_round)
                }
                _ => None,
            })
            .collect();
        assert_eq!(rounds, (1..=max_rounds).collect(), "node {}", id.0);
    }
    // Recovery mode: any member may commit. One wakes; its commit ends the stall.
    let waking = rest[rest.len() - 1];
    sim.node_mut(waking)
        .engine
        .byzantine_set_silent(&g, false)
        .unwrap();
    settle(&mut sim, &rest, 7, 300_000);
    for id in &rest {
        assert!(!view(&sim, *id).members.contains(&target_address));
        assert_eq!(
            committers_seen(&sim, *id).last(),
            Some(&address(&sim, waking))
        );
    }
    // After re-elections, a deadlock and recovery, every view agrees on who steers.
    assert_roles_truthful(&sim, &rest);
}

#[test]
fn while_an_emergency_is_open_membership_proposals_are_dropped_by_every_member() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(151);
    let g = group();
    // A silent steward is charged after its third missed turn; the charge stays open while
    // voters give it a steward timeout to show itself.
    sim.node_mut(bad).online = false;
    let sender = honest[honest.len() - 1];
    let others: Vec<_> = honest.iter().copied().filter(|id| *id != sender).collect();
    keep_rotating_until(&mut sim, &honest, |s| {
        others.iter().all(|id| emergency_open(s, *id))
    });
    assert!(others.iter().all(|id| emergency_open(&sim, *id)));
    // A member sends a removal proposal anyway (its own node would hold it back).
    let proposal = sim
        .act(sender, |e, now| e.byzantine_proposals(&g, 1, now))
        .unwrap()
        .remove(0);
    let frozen = |s: &Sim, id: NodeId| {
        s.node(id)
            .drops
            .iter()
            .filter(|(_, reason)| reason == "frozen")
            .count()
    };
    let before: Vec<usize> = others.iter().map(|id| frozen(&sim, *id)).collect();
    sim.act(sender, |e, now| {
        e.byzantine_send_app(
            &g,
            demls_engine::wire::app_message::Body::Proposal(proposal),
            now,
        )
    })
    .unwrap();
    sim.run_for(1_000);
    let sender_address = address(&sim, sender);
    for (id, before) in others.iter().zip(before) {
        // Dropped (a lossy network may deliver it twice), and not opened.
        assert!(frozen(&sim, *id) > before, "node {}", id.0);
        let opened_removal = sim.node(*id).events.iter().any(|(_, e)| {
            matches!(e, Event::ProposalOpened { owner, change: ChangeKind::Remove(_), .. } if *owner == sender_address)
        });
        assert!(!opened_removal, "node {}", id.0);
    }
    // The emergency goes on: the bad steward is removed and the group carries on.
    settle(&mut sim, &honest, 9, 180_000);
    for id in &honest {
        assert!(!view(&sim, *id).members.contains(&address(&sim, bad)));
    }
}

#[test]
fn an_epoch_steward_that_leaves_is_committed_out_by_the_next_steward_and_charged_with_nothing() {
    let (mut sim, nodes, leaver, rest) = group_with_bad_steward(157);
    let g = group();
    let v = view(&sim, nodes[0]);
    let leaver_address = address(&sim, leaver);
    assert_eq!(v.committers[0], leaver_address);
    sim.act(leaver, |e, now| e.leave(&g, now)).unwrap();
    settle(&mut sim, &rest, 9, 120_000);
    for id in &rest {
        assert!(!view(&sim, *id).members.contains(&leaver_address));
        // A steward never commits its own removal: the next one did, and nobody blames it.
        assert_eq!(committers_seen(&sim, *id).last(), Some(&v.committers[1]));
        assert!(
            violations(&sim, *id)
                .iter()
                .all(|(offender, _)| *offender != Some(leaver_address)),
            "node {}",
            id.0
        );
        assert!(!charged(&sim, *id, leaver_address), "node {}", id.0);
    }
    assert!(
        sim.node(leaver)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Removed { .. }))
    );
}

#[test]
fn a_commit_that_does_not_wait_for_the_vote_is_held_then_judged_broken_when_the_vote_fails() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(163);
    let g = group();
    let (a, _, p, _) = two_plain_members(&sim, &honest);
    let a_address = address(&sim, a);
    // Nobody votes on the removal: it stays undecided until its deadline (silence is NO).
    sim.act(p, |e, now| e.propose_remove(&g, a_address, now))
        .unwrap();
    sim.run_for(2_000);
    sim.act(bad, |e, now| e.byzantine_commit_undecided(&g, now))
        .unwrap();
    sim.run_for(2_000);
    // Held, not applied: the members may only lack votes the committer has.
    for id in &honest {
        assert!(
            view(&sim, *id).members.contains(&a_address),
            "node {}",
            id.0
        );
    }
    assert_removed(&mut sim, bad, &honest, Violation::BrokenCommit, 9);
    for id in &honest {
        assert!(
            view(&sim, *id).members.contains(&a_address),
            "node {}",
            id.0
        );
    }
}

/// A 7-member big-consensus group whose people vote by hand (and take an hour to), and a
/// joiner that asked the epoch steward (and, patient, does not ask again for an hour).
/// Returns once every member has the joiner's add open: the sim, the members, that
/// steward, the joiner and its add.
fn joiner_at_the_epoch_steward(seed: u64) -> (Sim, Vec<NodeId>, NodeId, NodeId, ChangeKind) {
    let mut sim = Sim::new(noisy_net(seed));
    let nodes = form_group_with(
        &mut sim,
        7,
        VotePolicy::Automatic,
        demls_engine::GroupParams {
            membership_vote_timeout_secs: 3_600,
            ..multi(StewardMode::Big, 3, 5)
        },
    );
    for id in &nodes {
        let now = sim.now();
        sim.node_mut(*id)
            .engine
            .set_vote_policy(VotePolicy::Manual, now);
    }
    let steward_address = view(&sim, nodes[0]).committers[0];
    let steward = *nodes
        .iter()
        .find(|id| address(&sim, **id) == steward_address)
        .unwrap();
    let patient = EngineConfig {
        join_retry_ms: 3_600_000,
        ..config(VotePolicy::Automatic)
    };
    let joiner = sim.add(engine_with(patient));
    sim.act(joiner, |e, now| {
        e.request_join(group(), Some(steward_address), now)
    })
    .unwrap();
    let add = add_open_everywhere(&mut sim, &nodes, joiner);
    (sim, nodes, steward, joiner, add)
}

/// Runs until every one of `nodes` has the vote on adding `joiner` open; the change.
fn add_open_everywhere(sim: &mut Sim, nodes: &[NodeId], joiner: NodeId) -> ChangeKind {
    let add = ChangeKind::Add(address(sim, joiner));
    assert!(sim.run_until(60_000, |s| {
        nodes
            .iter()
            .all(|id| open_proposal_for(s, *id, &add).is_some())
    }));
    add
}

/// The stewards a node sealed its join requests to, in order.
fn asked_stewards(sim: &Sim, id: NodeId) -> Vec<Address> {
    picked(sim, id, |e| match e {
        Event::JoinRequestSent { steward, .. } => Some(*steward),
        _ => None,
    })
}

/// Ten members with three stewards in office, nobody voting on membership by itself, and a
/// joiner that has not pinned a steward; `censor` makes the steward first in the joiner's
/// take-up order ignore joiners. Returns the sim, the members, that order, the joiner and its
/// add.
fn joiner_and_three_stewards(
    seed: u64,
    censor: bool,
) -> (Sim, Vec<NodeId>, Vec<Address>, NodeId, ChangeKind) {
    let mut sim = Sim::new(noisy_net(seed));
    let nodes = form_group_with(
        &mut sim,
        10,
        VotePolicy::Automatic,
        demls_engine::GroupParams {
            membership_vote_timeout_secs: 3_600,
            ..multi(StewardMode::Big, 3, 5)
        },
    );
    for id in &nodes {
        let now = sim.now();
        sim.node_mut(*id)
            .engine
            .set_vote_policy(VotePolicy::Manual, now);
    }
    assert!(sim.run_until(60_000, |s| {
        nodes.iter().all(|id| view(s, *id).stewards.len() >= 3)
    }));
    let joiner = sim.add(engine(VotePolicy::Automatic));
    let joiner_address = address(&sim, joiner);
    let order = sim
        .node(nodes[0])
        .engine
        .join_turns(&group(), joiner_address);
    assert!(order.len() >= 3, "{order:?}");
    if censor {
        let first = node_of(&sim, &nodes, order[0]);
        sim.node_mut(first)
            .engine
            .byzantine_set_ignoring_joiners(&group(), true)
            .unwrap();
    }
    sim.act(joiner, |e, now| e.request_join(group(), None, now))
        .unwrap();
    (sim, nodes, order, joiner, ChangeKind::Add(joiner_address))
}

#[test]
fn a_join_request_is_sealed_to_every_steward_and_only_the_first_in_its_order_opens_a_vote() {
    let (mut sim, nodes, order, joiner, add) = joiner_and_three_stewards(175, false);
    sim.run_for(30_000);
    // Every steward in office announces, and the joiner seals its request to each.
    let asked: std::collections::BTreeSet<Address> =
        asked_stewards(&sim, joiner).into_iter().collect();
    for steward in &view(&sim, nodes[0]).stewards {
        assert!(asked.contains(steward), "{steward} not asked: {asked:?}");
    }
    // The first steward of the joiner's take-up order proposes it; the others, holding the
    // same request, see its vote before their turns and open none of their own.
    for id in &nodes {
        assert_eq!(owners_of(&sim, *id, &add), vec![order[0]], "node {}", id.0);
    }
}

#[test]
fn a_joiner_the_first_steward_of_its_order_ignores_is_proposed_by_the_next_alone() {
    let (mut sim, nodes, order, _, add) = joiner_and_three_stewards(176, true);
    // The first steward keeps announcing but never takes the joiner up: the next does at its
    // turn, and the one after sees that vote before its own turn.
    assert!(sim.run_until(60_000, |s| {
        nodes
            .iter()
            .all(|id| open_proposal_for(s, *id, &add).is_some())
    }));
    sim.run_for(30_000);
    for id in &nodes {
        assert_eq!(owners_of(&sim, *id, &add), vec![order[1]], "node {}", id.0);
    }
}

#[test]
fn joiners_spread_over_the_stewards_take_up_orders() {
    let mut sim = Sim::new(noisy_net(177));
    let nodes = form_group_with(
        &mut sim,
        6,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 5),
    );
    let stewards = view(&sim, nodes[0]).committers;
    // Enough addresses that each steward comes first for some of them.
    let firsts: std::collections::BTreeSet<Address> = (0..40)
        .map(|_| Wallet::generate().address())
        .filter_map(|a| {
            sim.node(nodes[0])
                .engine
                .join_turns(&group(), a)
                .first()
                .copied()
        })
        .collect();
    assert_eq!(firsts.len(), stewards.len(), "{firsts:?} of {stewards:?}");
    // Every member computes the same order.
    let someone = Wallet::generate().address();
    let order = sim.node(nodes[0]).engine.join_turns(&group(), someone);
    for id in &nodes {
        assert_eq!(sim.node(*id).engine.join_turns(&group(), someone), order);
    }
}

/// How many join requests a node sent.
fn requests_sent(sim: &Sim, id: NodeId) -> usize {
    sim.node(id)
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::JoinRequestSent { .. }))
        .count()
}

/// The owners of the proposals for `change` a node saw opened.
fn owners_of(sim: &Sim, id: NodeId, change: &ChangeKind) -> Vec<Address> {
    opened(sim, id)
        .into_iter()
        .filter(|(_, _, c)| c == change)
        .map(|(_, owner, _)| owner)
        .collect()
}

#[test]
fn an_approved_joiner_whose_steward_goes_silent_is_committed_by_the_backup() {
    let (mut sim, nodes, steward, joiner, add) = joiner_at_the_epoch_steward(171);
    let steward_address = address(&sim, steward);
    let rest: Vec<_> = nodes.iter().copied().filter(|id| *id != steward).collect();
    // Its lid closes before it commits; the others approve the joiner.
    sim.node_mut(steward).online = false;
    assert!(people_vote(&mut sim, &rest, &add, true));
    let mut with_joiner = rest.clone();
    with_joiner.push(joiner);
    settle(&mut sim, &with_joiner, 8, 120_000);
    assert_ne!(
        committers_seen(&sim, rest[0]).last(),
        Some(&steward_address)
    );
    assert_eq!(requests_sent(&sim, joiner), 1);
    sim.node_mut(steward).online = true;
    let mut everyone = with_joiner;
    everyone.push(steward);
    settle(&mut sim, &everyone, 8, 120_000);
}

#[test]
fn a_tally_counts_as_voters_only_those_entitled_to_vote() {
    for mode in [StewardMode::Small, StewardMode::Big] {
        let mut sim = Sim::new(noisy_net(191));
        let nodes = form_group_with(
            &mut sim,
            6,
            VotePolicy::Automatic,
            demls_engine::GroupParams {
                membership_vote_timeout_secs: 3_600,
                ..multi(mode, 3, 3)
            },
        );
        for id in &nodes {
            let now = sim.now();
            sim.node_mut(*id)
                .engine
                .set_vote_policy(VotePolicy::Manual, now);
        }
        let joiner = sim.add(engine(VotePolicy::Automatic));
        sim.act(joiner, |e, now| e.request_join(group(), None, now))
            .unwrap();
        let add = add_open_everywhere(&mut sim, &nodes, joiner);
        // The people have not voted yet (by hand): the tally waits on the stewards in office
        // in a small-consensus group, on every member in a big one.
        for id in &nodes {
            let proposal = open_proposal_for(&sim, *id, &add).unwrap();
            let v = view(&sim, *id);
            let in_office = v.stewards.iter().filter(|s| v.members.contains(s)).count();
            let voters = match mode {
                StewardMode::Small => in_office,
                _ => v.members.len(),
            };
            assert!(in_office < v.members.len());
            let tally = v
                .open_proposals
                .into_iter()
                .find(|t| t.id == proposal)
                .unwrap();
            assert_eq!((tally.voters, tally.decided), (voters, None), "{mode:?}");
            assert!(tally.yes + tally.no < voters, "{mode:?}: {tally:?}");
        }
    }
}

#[test]
fn an_epoch_steward_woken_from_a_nap_hears_the_backups_commit_before_committing_its_joiner() {
    let (mut sim, nodes, steward, joiner, add) = joiner_at_the_epoch_steward(181);
    let steward_address = address(&sim, steward);
    let rest: Vec<_> = nodes.iter().copied().filter(|id| *id != steward).collect();
    let seen_before: Vec<usize> = nodes
        .iter()
        .map(|id| committers_seen(&sim, *id).len())
        .collect();
    // Its process stops with the vote open (SIGSTOP, a closed lid); the others approve the
    // joiner, and the backup commits it in its place.
    sim.freeze(steward);
    assert!(people_vote(&mut sim, &rest, &add, true));
    let mut with_joiner = rest.clone();
    with_joiner.push(joiner);
    settle(&mut sim, &with_joiner, 8, 120_000);
    sim.run_for(20_000);
    // It wakes with its timers overdue and the votes and the backup's commit in its
    // sockets: the votes approve the joiner before the commit is read.
    sim.thaw(steward);
    let mut everyone = with_joiner;
    everyone.push(steward);
    settle(&mut sim, &everyone, 8, 120_000);
    // The backup's commit stands: the napper never committed the joiner on a branch of its
    // own, and the joiner, welcomed once, never had to ask again.
    for (id, before) in nodes.iter().zip(seen_before) {
        assert!(
            !committers_seen(&sim, *id)[before..].contains(&steward_address),
            "node {} saw the napper commit",
            id.0
        );
    }
    assert!(!committers_seen(&sim, joiner).contains(&steward_address));
    assert_eq!(requests_sent(&sim, joiner), 1);
}

#[test]
fn a_joiner_welcomed_on_both_sides_of_a_fork_follows_the_side_that_lasts_without_asking_again() {
    let (mut sim, nodes, steward, joiner, add) = joiner_at_the_epoch_steward(193);
    let g = group();
    let steward_address = address(&sim, steward);
    let backup = node_of(&sim, &nodes, view(&sim, nodes[0]).committers[1]);
    let rest: Vec<_> = nodes.iter().copied().filter(|id| *id != steward).collect();
    // The epoch steward holds its commit back while everyone approves the joiner.
    sim.node_mut(steward)
        .engine
        .byzantine_set_silent(&g, true)
        .unwrap();
    let proposal = open_proposal_for(&sim, steward, &add).unwrap();
    assert!(people_vote(&mut sim, &nodes, &add, true));
    assert!(sim.run_until(30_000, |s| {
        view(s, steward)
            .open_proposals
            .iter()
            .any(|t| t.id == proposal && t.decided == Some(true))
    }));
    // It drops off the network; the backup commits the joiner, who joins from its Welcome.
    sim.node_mut(steward).online = false;
    commit_approved(&mut sim, backup);
    let mut with_joiner = rest.clone();
    with_joiner.push(joiner);
    settle(&mut sim, &with_joiner, 8, 30_000);
    // Back, the epoch steward commits the same add for the same epoch. The filtering rule
    // prefers its commit: the members go back and follow it, and the joiner, which holds
    // nothing from before the fork, follows by the other Welcome its key package opens, well
    // before it would give its branch up (`rejoin_after_ms`, 30 s here) and ask again.
    sim.node_mut(steward).online = true;
    commit_approved(&mut sim, steward);
    let mut everyone = with_joiner;
    everyone.push(steward);
    settle(&mut sim, &everyone, 8, 20_000);
    assert_eq!(
        committers_seen(&sim, rest[0]).last(),
        Some(&steward_address)
    );
    assert!(sim.node(joiner).events.iter().any(|(_, e)| matches!(
        e,
        Event::BranchSwitched { committer, .. } if *committer == steward_address
    )));
    assert!(
        !sim.node(joiner)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Rejoining { .. }))
    );
    assert_eq!(requests_sent(&sim, joiner), 1);
}

#[test]
fn a_joiner_whose_vote_a_commit_cut_short_is_proposed_again_from_the_buffer() {
    let (mut sim, nodes, steward, joiner, add) = joiner_at_the_epoch_steward(173);
    let g = group();
    let steward_address = address(&sim, steward);
    let joiner_address = address(&sim, joiner);
    let rest: Vec<_> = nodes.iter().copied().filter(|id| *id != steward).collect();
    let epoch = view(&sim, rest[0]).epoch.0;
    // The steward that took the request goes silent; before anyone voted on the joiner, a
    // key rotation is committed by the backup, which closes the vote without a result.
    sim.node_mut(steward).online = false;
    let rotating = plain(&sim, &rest)[0];
    sim.act(rotating, |e, now| e.rotate(&g, now)).unwrap();
    assert!(sim.run_until(60_000, |s| {
        rest.iter().all(|id| view(s, *id).epoch.0 > epoch)
    }));
    for id in &rest {
        let v = view(&sim, *id);
        assert!(!v.members.contains(&joiner_address), "node {}", id.0);
        assert!(
            v.buffered_joiners.contains(&joiner_address),
            "node {}",
            id.0
        );
    }
    // The people now say YES: another steward proposes the joiner again from its buffer,
    // the group votes, and it is committed, without the joiner asking again.
    decide_everywhere(&mut sim, &rest, &add, true);
    let mut with_joiner = rest.clone();
    with_joiner.push(joiner);
    settle(&mut sim, &with_joiner, 8, 120_000);
    assert_eq!(requests_sent(&sim, joiner), 1);
    for id in &rest {
        let owners = owners_of(&sim, *id, &add);
        assert!(
            owners.len() >= 2 && owners[1..].iter().all(|o| *o != steward_address),
            "node {} saw the add proposed by {owners:?}",
            id.0
        );
        assert!(view(&sim, *id).buffered_joiners.is_empty(), "node {}", id.0);
    }
    sim.node_mut(steward).online = true;
    let mut everyone = with_joiner;
    everyone.push(steward);
    settle(&mut sim, &everyone, 8, 120_000);
}

/// Epochs a key package stays buffered after the one it arrived in (the RFC's 3).
const KEPT_EPOCHS: u64 = 3;

#[test]
fn a_buffered_key_package_is_dropped_after_three_epochs() {
    let (mut sim, nodes, steward, joiner, add) = joiner_at_the_epoch_steward(179);
    let steward_address = address(&sim, steward);
    let joiner_address = address(&sim, joiner);
    let epoch = view(&sim, nodes[0]).epoch.0;
    let reached = |target: u64| {
        let nodes = nodes.clone();
        move |s: &Sim| nodes.iter().all(|id| view(s, *id).epoch.0 >= target)
    };
    // Nobody votes on the joiner; key rotations move the group on, epoch after epoch.
    for later in 1..=KEPT_EPOCHS {
        keep_rotating_until(&mut sim, &nodes, reached(epoch + later));
        for id in &nodes {
            assert!(
                view(&sim, *id).buffered_joiners.contains(&joiner_address),
                "node {} at {} epochs later",
                id.0,
                later
            );
        }
    }
    keep_rotating_until(&mut sim, &nodes, reached(epoch + KEPT_EPOCHS + 1));
    for id in &nodes {
        let v = view(&sim, *id);
        assert!(!v.members.contains(&joiner_address));
        assert!(v.buffered_joiners.is_empty(), "node {}", id.0);
        // Its steward was there all along and asked again each epoch: nobody else did.
        assert!(
            owners_of(&sim, *id, &add)
                .iter()
                .all(|o| *o == steward_address),
            "node {}",
            id.0
        );
    }
}

/// Why `id` rejected the commits it got from `committer`.
fn rejections_of(sim: &Sim, id: NodeId, committer: Address) -> Vec<String> {
    sim.node(id)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CommitRejected {
                committer: c,
                reason,
                ..
            } if *c == committer => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_commit_by_a_member_that_is_not_a_steward_is_refused_outside_recovery() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(167);
    let g = group();
    // The epoch steward is silent, so the plain member's commit is the first of the epoch.
    sim.node_mut(bad)
        .engine
        .byzantine_set_silent(&g, true)
        .unwrap();
    let (a, intruder, p, _) = two_plain_members(&sim, &honest);
    let (a_address, intruder_address) = (address(&sim, a), address(&sim, intruder));
    approve_removal(&mut sim, p, a, &[intruder]);
    // It commits exactly the approved removal, with its votes: the content is right, the
    // committer is not a steward.
    sim.act(intruder, |e, now| {
        e.byzantine_commit_without(&g, Address::default(), now)
    })
    .unwrap();
    let rest: Vec<_> = honest
        .iter()
        .copied()
        .filter(|id| *id != a && *id != intruder)
        .collect();
    // The backup commits the removal in the silent steward's place (Layer 1).
    let ok = sim.run_until(120_000, |s| {
        converged(s, &rest, 9) && !view(s, rest[0]).members.contains(&a_address)
    });
    assert!(ok, "removal did not land: {}", describe(&sim, &rest));
    for id in &rest {
        assert!(
            rejections_of(&sim, *id, intruder_address)
                .iter()
                .any(|r| r.contains("may not commit")),
            "node {}",
            id.0
        );
        let committers = committers_seen(&sim, *id);
        assert!(!committers.contains(&intruder_address), "node {}", id.0);
        assert!(
            view(&sim, *id)
                .stewards
                .contains(committers.last().unwrap())
        );
        // Refused, not charged: a member that is not a steward has no steward role to lose.
        assert!(
            violations(&sim, *id)
                .iter()
                .all(|(offender, _)| *offender != Some(intruder_address)),
            "node {}",
            id.0
        );
    }
}

#[test]
fn two_commits_with_the_same_changes_end_on_the_epoch_stewards_and_nobody_is_penalised() {
    let (mut sim, nodes, epoch_steward, honest) = group_with_bad_steward(173);
    let g = group();
    let v = view(&sim, nodes[0]);
    let steward_address = address(&sim, epoch_steward);
    let backup = node_of(&sim, &nodes, v.committers[1]);
    // The epoch steward waits (silent), so that its backup commits first.
    sim.node_mut(epoch_steward)
        .engine
        .byzantine_set_silent(&g, true)
        .unwrap();
    let (a, _, p, _) = two_plain_members(&sim, &honest);
    let all: Vec<_> = nodes.iter().copied().filter(|id| *id != a).collect();
    let violations_before: Vec<usize> = all.iter().map(|id| violations(&sim, *id).len()).collect();
    approve_removal(&mut sim, p, a, &[epoch_steward, backup]);
    // The epoch steward is off the network for a moment; the backup commits at once.
    sim.node_mut(epoch_steward).online = false;
    sim.act(backup, |e, now| {
        e.byzantine_commit_without(&g, Address::default(), now)
    })
    .unwrap();
    let rest: Vec<_> = all
        .iter()
        .copied()
        .filter(|id| *id != epoch_steward)
        .collect();
    assert!(sim.run_until(30_000, |s| converged(s, &rest, 9)));
    // Back, the epoch steward sends its own commit of the same removal for that epoch.
    sim.node_mut(epoch_steward).online = true;
    sim.act(epoch_steward, |e, now| {
        e.byzantine_commit_without(&g, Address::default(), now)
    })
    .unwrap();
    settle(&mut sim, &all, 9, 120_000);
    let scoring = demls_engine::PeerScoring::default();
    for (id, before) in all.iter().zip(violations_before) {
        assert_eq!(
            committers_seen(&sim, *id).last(),
            Some(&steward_address),
            "node {}",
            id.0
        );
        // Competing commits with the same changes are no misbehaviour: nobody is blamed.
        assert_eq!(violations(&sim, *id).len(), before, "node {}", id.0);
        for (steward, score) in view(&sim, *id).steward_scores {
            assert_eq!(score, scoring.default_score, "node {} of {steward}", id.0);
        }
    }
    // Those that had applied the backup's commit first switched to the epoch steward's.
    for id in &rest {
        assert!(
            sim.node(*id).events.iter().any(|(_, e)| matches!(
                e,
                Event::BranchSwitched { committer, .. } if *committer == steward_address
            )),
            "node {}",
            id.0
        );
    }
}

#[test]
fn a_commit_whose_manifest_names_another_epoch_is_broken_and_charged() {
    let (mut sim, _nodes, bad, honest) = group_with_bad_steward(179);
    let g = group();
    let bad_address = address(&sim, bad);
    let epoch = view(&sim, bad).epoch.0;
    // A commit valid in itself (a key update), whose manifest names the epoch before.
    sim.act(bad, |e, now| {
        e.byzantine_commit_manifest_for(&g, epoch - 1, now)
    })
    .unwrap();
    assert_removed(&mut sim, bad, &honest, Violation::BrokenCommit, 9);
    let reason = format!("its manifest is for epoch {}", epoch - 1);
    for id in &honest {
        assert!(
            rejections_of(&sim, *id, bad_address).contains(&reason),
            "node {}",
            id.0
        );
        assert!(charged(&sim, *id, bad_address), "node {}", id.0);
    }
}

#[test]
fn an_emergency_creator_loses_score_when_its_charge_fails_and_earns_some_back_when_one_passes() {
    let (mut sim, nodes, bad, honest) = group_with_bad_steward(181);
    let g = group();
    let bad_address = address(&sim, bad);
    let accuser_address = view(&sim, nodes[0]).committers[1];
    let accuser = node_of(&sim, &nodes, accuser_address);
    // The backup charges the epoch steward with an inactivity it never showed.
    sim.act(accuser, |e, now| {
        e.byzantine_charge_inactivity(&g, bad_address, now)
    })
    .unwrap();
    let false_charge = ChangeKind::Emergency {
        offender: Some(bad_address),
        violation: Violation::Inactivity,
    };
    let voted_down = sim.run_until(60_000, |s| {
        nodes
            .iter()
            .all(|id| decisions(s, *id).contains(&(false_charge.clone(), false)))
    });
    assert!(voted_down, "{}", describe(&sim, &nodes));
    let scoring = demls_engine::PeerScoring::default();
    let after_failure = scoring.default_score - scoring.emergency_penalty;
    for id in &nodes {
        assert_eq!(
            score(&sim, *id, accuser_address),
            Some(after_failure),
            "node {}",
            id.0
        );
        assert_eq!(
            score(&sim, *id, bad_address),
            Some(scoring.default_score),
            "node {}",
            id.0
        );
    }
    // Then the epoch steward commits an unvoted add: the backup charges it, rightly.
    let intruder = sim.add(engine(VotePolicy::Automatic));
    let key_package = sim.act(intruder, |e, now| e.key_package(now)).unwrap();
    sim.act(bad, |e, now| {
        e.byzantine_commit(&g, vec![key_package], Vec::new(), now)
    })
    .unwrap();
    assert_removed(&mut sim, bad, &honest, Violation::BrokenCommit, 9);
    for id in &honest {
        let raised = opened(&sim, *id).into_iter().any(|(_, owner, change)| {
            owner == accuser_address
                && change
                    == ChangeKind::Emergency {
                        offender: Some(bad_address),
                        violation: Violation::BrokenCommit,
                    }
        });
        assert!(raised, "node {}", id.0);
        // It committed the removal too, an honest commit.
        assert_eq!(committers_seen(&sim, *id).last(), Some(&accuser_address));
        assert_eq!(
            score(&sim, *id, accuser_address),
            Some(after_failure + scoring.emergency_reward + scoring.commit_reward),
            "node {}",
            id.0
        );
    }
}

#[test]
fn a_false_self_leave_claim_is_rejected_by_every_member_and_costs_a_steward_sender_score() {
    let (mut sim, nodes, _epoch_steward, _) = group_with_bad_steward(191);
    let g = group();
    // A steward that is not the epoch steward, and a member that is not a steward, each
    // send a proposal that a third member leaves, in that member's name.
    let forger_address = view(&sim, nodes[0]).committers[1];
    let forger = node_of(&sim, &nodes, forger_address);
    let plain_members = plain(&sim, &nodes);
    let (victim, plain_forger) = (plain_members[0], plain_members[1]);
    let (victim_address, plain_forger_address) =
        (address(&sim, victim), address(&sim, plain_forger));
    let mismatches = |s: &Sim, id: NodeId| {
        s.node(id)
            .drops
            .iter()
            .filter(|(_, reason)| reason == "sender_mismatch")
            .count()
    };
    let before: Vec<usize> = nodes.iter().map(|id| mismatches(&sim, *id)).collect();
    for _ in 0..2 {
        sim.act(forger, |e, now| {
            e.byzantine_claim_leave_of(&g, victim_address, now)
        })
        .unwrap();
        sim.run_for(500);
    }
    sim.act(plain_forger, |e, now| {
        e.byzantine_claim_leave_of(&g, victim_address, now)
    })
    .unwrap();
    sim.run_for(30_000);
    let scoring = demls_engine::PeerScoring::default();
    for (id, before) in nodes.iter().zip(before) {
        assert!(view(&sim, *id).members.contains(&victim_address));
        assert!(
            !opened(&sim, *id)
                .iter()
                .any(|(_, _, change)| *change == ChangeKind::Leave(victim_address)),
            "node {}",
            id.0
        );
        if *id != forger && *id != plain_forger {
            assert!(mismatches(&sim, *id) >= before + 3, "node {}", id.0);
            // Once per epoch, however often it tries.
            assert_eq!(
                score(&sim, *id, forger_address),
                Some(scoring.default_score - scoring.false_claim_penalty),
                "node {}",
                id.0
            );
        }
        // The member that is not a steward is only dropped (and the view lists only
        // stewards' scores).
        assert_eq!(score(&sim, *id, plain_forger_address), None);
    }
}

#[test]
fn commit_turns_follow_the_groups_timers_not_a_members_own_setting() {
    let mut sim = Sim::new(noisy_net(131));
    // Every member but the creator has its node set to give a committer ten minutes; the
    // group's rules hold what the creator's node said (two seconds), and they count.
    let slow = EngineConfig {
        steward_timeout_ms: 600_000,
        ..config(VotePolicy::Automatic)
    };
    let nodes = form_group_from(&mut sim, 10, multi(StewardMode::Big, 3, 5), || {
        Engine::new(
            next_wallet(),
            &MlsSigner::generate().unwrap(),
            slow.clone(),
            MlsStore::in_memory(4),
        )
    });
    let committers = view(&sim, nodes[0]).committers;
    let (epoch_steward, backup) = (committers[0], committers[1]);
    assert_ne!(
        backup,
        address(&sim, nodes[0]),
        "the backup must be a slow node"
    );
    let sleeper = node_of(&sim, &nodes, epoch_steward);
    sim.node_mut(sleeper).online = false;
    let awake: Vec<NodeId> = nodes.iter().copied().filter(|id| *id != sleeper).collect();
    let (a, _, p, _) = two_plain_members(&sim, &awake);
    let a_address = address(&sim, a);
    members_decide(&mut sim, &ChangeKind::Remove(a_address), true);
    sim.act(p, |e, now| e.propose_remove(&group(), a_address, now))
        .unwrap();
    // The backup takes its turn within a minute, not after its own ten.
    let rest: Vec<NodeId> = awake.iter().copied().filter(|id| *id != a).collect();
    assert!(
        sim.run_until(60_000, |s| {
            rest.iter()
                .all(|id| !view(s, *id).members.contains(&a_address))
        }),
        "{}",
        describe(&sim, &rest)
    );
    assert_eq!(committers_seen(&sim, rest[0]).last(), Some(&backup));
}

#[test]
fn a_due_election_whose_epoch_steward_is_away_is_proposed_by_the_next_committer_alone() {
    let mut sim = Sim::new(noisy_net(113));
    let mut nodes = form_group_with(
        &mut sim,
        12,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, 5),
    );
    // Members leave until the next epoch is the last one the steward list covers: its epoch
    // steward, the list's last, is the one to propose the election due then.
    for _ in 0..5 {
        let v = view(&sim, nodes[0]);
        if v.committers.first() == v.stewards.iter().rev().nth(1) {
            break;
        }
        let leaver = *plain(&sim, &nodes).last().expect("a plain member");
        nodes.retain(|id| *id != leaver);
        leave_and_settle(&mut sim, leaver, &nodes, 120_000);
    }
    let v = view(&sim, nodes[0]);
    assert_eq!(v.committers.first(), v.stewards.iter().rev().nth(1));
    let (away, next) = (v.committers[1], v.committers[2]);
    let away_node = node_of(&sim, &nodes, away);
    sim.node_mut(away_node).online = false;
    nodes.retain(|id| *id != away_node);
    let seen_before = opened(&sim, nodes[0]).len();
    let elections = |s: &Sim, id: NodeId| {
        decisions(s, id)
            .iter()
            .filter(|(c, yes)| *yes && matches!(c, ChangeKind::Election { .. }))
            .count()
    };

    let leaver = *plain(&sim, &nodes).last().expect("a plain member");
    nodes.retain(|id| *id != leaver);
    let before: Vec<usize> = nodes.iter().map(|id| elections(&sim, *id)).collect();
    leave_and_settle(&mut sim, leaver, &nodes, 120_000);
    assert_eq!(view(&sim, nodes[0]).committers.first(), Some(&away));
    // The next committer proposes after one steward timeout and the group approves; the
    // others, whose turn would come only after every committer's, never propose it.
    let elected = sim.run_until(120_000, |s| {
        nodes
            .iter()
            .zip(&before)
            .all(|(id, before)| elections(s, *id) > *before)
    });
    assert!(elected, "no election: {}", describe(&sim, &nodes));
    sim.run_for(30_000);
    let owners: std::collections::BTreeSet<Address> = opened(&sim, nodes[0])[seen_before..]
        .iter()
        .filter(|(_, _, change)| matches!(change, ChangeKind::Election { .. }))
        .map(|(_, owner, _)| *owner)
        .collect();
    assert_eq!(owners, [next].into(), "one election, by the next committer");
}
