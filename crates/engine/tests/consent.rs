//! Membership with consent: with a new group's defaults nobody gets in or is thrown out
//! without the group agreeing. Silence never admits nor removes; a member's invitation is
//! its YES, signed ahead; automatic voting never says YES on a stranger nor on removing
//! someone else; a removed member learns why and may ask again.

mod common;

use common::*;
use demls_engine::wire::Invitation;
use demls_engine::{ChangeKind, Event, GroupParams, Removal, VotePolicy};
use demls_sim::{NodeId, Sim};
use prost::Message;

/// A new group's defaults, with votes on people that close within the test's patience.
fn defaults() -> GroupParams {
    GroupParams {
        vote_timeout_secs: 20,
        membership_vote_timeout_secs: 30,
        ..GroupParams::default()
    }
}

/// A group of `n` formed by invitations: the creator invites each joiner, who presents it.
fn invited_group(sim: &mut Sim, n: usize, policy: VotePolicy) -> Vec<NodeId> {
    let g = group();
    let creator = sim.add(engine(VotePolicy::Automatic));
    sim.act(creator, |e, now| e.create_group(g.clone(), defaults(), now))
        .unwrap();
    let mut nodes = vec![creator];
    for _ in 1..n {
        let id = sim.add(engine(policy));
        // People voting by hand say YES to each newcomer the creator invites.
        let newcomer = ChangeKind::Add(address(sim, id));
        decide_everywhere(sim, &nodes, &newcomer, true);
        invite_and_join(sim, creator, id);
        nodes.push(id);
        let all = nodes.clone();
        assert!(
            sim.run_until(60_000, |s| converged(s, &all, all.len())),
            "{}",
            describe(sim, &all)
        );
    }
    nodes
}

/// `member` invites `joiner` for a day; the joiner asks to join with the invitation.
fn invite_and_join(sim: &mut Sim, member: NodeId, joiner: NodeId) {
    let g = group();
    let invitee = address(sim, joiner);
    let invitation = sim
        .act(member, |e, now| {
            e.invite(&g, invitee, now.plus_ms(86_400_000), now)
        })
        .unwrap();
    sim.act(joiner, |e, now| {
        e.request_join_invited(g.clone(), &invitation, now)
    })
    .unwrap();
}

fn is_member(sim: &Sim, id: NodeId) -> bool {
    sim.node(id).engine.group(&group()).is_some()
}

#[test]
fn a_stranger_is_not_admitted_while_nobody_acts() {
    let mut sim = Sim::new(noisy_net(301));
    let nodes = invited_group(&mut sim, 3, VotePolicy::Automatic);
    let stranger = sim.add(engine(VotePolicy::Automatic));
    sim.act(stranger, |e, now| e.request_join(group(), None, now))
        .unwrap();
    // The steward opens the vote without a YES of its own, and nobody votes YES.
    let stranger_address = address(&sim, stranger);
    assert!(sim.run_until(10_000, |s| {
        open_proposal_for(s, nodes[1], &ChangeKind::Add(stranger_address)).is_some()
    }));
    sim.run_for(45_000);
    assert!(!is_member(&sim, stranger));
    for id in &nodes {
        assert!(
            decisions(&sim, *id).contains(&(ChangeKind::Add(stranger_address), false)),
            "node {}",
            id.0
        );
        assert_eq!(view(&sim, *id).members.len(), 3);
    }
    // The stranger hears why, and stops asking.
    let reasons = refusals(&sim, stranger);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("did not agree"), "{reasons:?}");
    assert!(sim.node(stranger).engine.pending_joins().next().is_none());
}

#[test]
fn a_joiner_voted_down_asks_again_and_is_admitted_when_the_people_change_their_minds() {
    let mut sim = Sim::new(noisy_net(317));
    let nodes = invited_group(&mut sim, 3, VotePolicy::Manual);
    let joiner = sim.add(engine(VotePolicy::Automatic));
    let change = ChangeKind::Add(address(&sim, joiner));
    sim.act(joiner, |e, now| e.request_join(group(), None, now))
        .unwrap();
    assert!(people_vote(&mut sim, &nodes[1..], &change, false));
    assert!(sim.run_until(60_000, |s| !refusals(s, joiner).is_empty()));
    for id in &nodes {
        assert!(
            decisions(&sim, *id).contains(&(change.clone(), false)),
            "node {}",
            id.0
        );
    }
    // The NOs were spent on that vote: asked again, nothing is decided before the people
    // act, and their YES (all three: two of three is not yet a decision) admits the joiner.
    sim.act(joiner, |e, now| e.request_join(group(), None, now))
        .unwrap();
    assert!(sim.run_until(10_000, |s| {
        open_proposal_for(s, nodes[1], &change).is_some()
    }));
    sim.run_for(3_000);
    for id in &nodes {
        let open = open_proposal_for(&sim, *id, &change);
        assert!(open.is_some(), "node {} no longer holds the request", id.0);
    }
    assert!(people_vote(&mut sim, &nodes, &change, true));
    let mut all = nodes.clone();
    all.push(joiner);
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
}

#[test]
fn a_group_of_one_does_not_admit_a_stranger_on_its_stewards_proposal() {
    let mut sim = Sim::new(noisy_net(303));
    let g = group();
    let creator = sim.add(engine(VotePolicy::Automatic));
    sim.act(creator, |e, now| e.create_group(g.clone(), defaults(), now))
        .unwrap();
    let stranger = sim.add(engine(VotePolicy::Automatic));
    sim.act(stranger, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    sim.run_for(45_000);
    assert!(!is_member(&sim, stranger));
    assert_eq!(view(&sim, creator).members.len(), 1);
}

#[test]
fn an_invited_address_is_admitted_even_by_people_voting_by_hand() {
    let mut sim = Sim::new(noisy_net(305));
    // Everyone but the creator votes by hand: the invitation is the creator's YES, and a
    // joiner invited by a member needs the others' YES too.
    let nodes = invited_group(&mut sim, 2, VotePolicy::Manual);
    // A manual member invites: its own node votes YES for its person.
    let joiner = sim.add(engine(VotePolicy::Automatic));
    invite_and_join(&mut sim, nodes[1], joiner);
    let mut all = nodes.clone();
    all.push(joiner);
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 3)),
        "{}",
        describe(&sim, &all)
    );
    // Every member learned of the invitation when it was made.
    let joiner_address = address(&sim, joiner);
    assert!(sim.node(nodes[0]).events.iter().any(|(_, e)| matches!(
        e,
        Event::Invited { invitee, .. } if *invitee == joiner_address
    )));
    assert!(view(&sim, nodes[0]).members.contains(&joiner_address));
}

#[test]
fn an_invitation_told_to_the_group_admits_a_plain_request() {
    let mut sim = Sim::new(noisy_net(307));
    let nodes = invited_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    let joiner = sim.add(engine(VotePolicy::Automatic));
    let invitee = address(&sim, joiner);
    // Invited by a plain member; the joiner asks without presenting anything.
    sim.act(nodes[2], |e, now| {
        e.invite(&g, invitee, now.plus_ms(3_600_000), now)
    })
    .unwrap();
    sim.run_for(2_000);
    sim.act(joiner, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    let mut all = nodes.clone();
    all.push(joiner);
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
}

#[test]
fn the_members_yes_admits_a_pending_joiner() {
    let mut sim = Sim::new(noisy_net(309));
    let nodes = invited_group(&mut sim, 4, VotePolicy::Manual);
    let stranger = sim.add(engine(VotePolicy::Automatic));
    sim.act(stranger, |e, now| e.request_join(group(), None, now))
        .unwrap();
    let change = ChangeKind::Add(address(&sim, stranger));
    // Three of the four say YES by hand (the creator's node is automatic and stays silent
    // on a stranger).
    assert!(people_vote(&mut sim, &nodes[1..], &change, true));
    let mut all = nodes.clone();
    all.push(stranger);
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 5)),
        "{}",
        describe(&sim, &all)
    );
}

#[test]
fn one_member_cannot_remove_another_and_a_majority_can() {
    let mut sim = Sim::new(noisy_net(311));
    let nodes = invited_group(&mut sim, 5, VotePolicy::Automatic);
    let g = group();
    let target = address(&sim, nodes[4]);
    sim.act(nodes[1], |e, now| e.propose_remove(&g, target, now))
        .unwrap();
    // Nobody else acts: the proposer's YES and silence do not remove anyone.
    sim.run_for(45_000);
    for id in &nodes {
        assert!(view(&sim, *id).members.contains(&target), "node {}", id.0);
        assert!(
            decisions(&sim, *id).contains(&(ChangeKind::Remove(target), false)),
            "node {}",
            id.0
        );
    }
    // Asked again, with two more people agreeing: three of five is a majority.
    sim.act(nodes[1], |e, now| e.propose_remove(&g, target, now))
        .unwrap();
    assert!(people_vote(
        &mut sim,
        &[nodes[2], nodes[3]],
        &ChangeKind::Remove(target),
        true
    ));
    let rest = nodes[..4].to_vec();
    assert!(
        sim.run_until(60_000, |s| converged(s, &rest, 4)),
        "{}",
        describe(&sim, &rest)
    );
}

#[test]
fn a_removed_member_learns_why_and_is_admitted_again_when_the_group_agrees() {
    let mut sim = Sim::new(noisy_net(313));
    let nodes = invited_group(&mut sim, 4, VotePolicy::Automatic);
    let g = group();
    let removed = nodes[3];
    let removed_address = address(&sim, removed);
    let proposer = address(&sim, nodes[1]);
    decide_everywhere(
        &mut sim,
        &nodes[..3],
        &ChangeKind::Remove(removed_address),
        true,
    );
    sim.act(nodes[1], |e, now| {
        e.propose_remove(&g, removed_address, now)
    })
    .unwrap();
    let rest = nodes[..3].to_vec();
    assert!(sim.run_until(60_000, |s| converged(s, &rest, 3)));
    sim.run_for(2_000);
    let reason = sim
        .node(removed)
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Removed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .expect("the removed member was told");
    match reason {
        Removal::Voted {
            owner, yes, voters, ..
        } => {
            assert_eq!(owner, proposer);
            assert!(yes >= 3 && voters == 4, "{yes} of {voters}");
        }
        other => panic!("removed for {other:?}"),
    }
    // It asks again at once (no restart) and, invited back, is admitted.
    invite_and_join(&mut sim, nodes[0], removed);
    let all = nodes.clone();
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
}

/// A valid invitation of `invitee` to the test group by `member`, as bytes and decoded.
fn invitation_of(sim: &mut Sim, member: NodeId, invitee: NodeId, ttl_ms: u64) -> Invitation {
    let g = group();
    let invitee = address(sim, invitee);
    let bytes = sim
        .act(member, |e, now| {
            e.invite(&g, invitee, now.plus_ms(ttl_ms), now)
        })
        .unwrap();
    Invitation::decode(bytes.as_slice()).unwrap()
}

#[test]
fn forged_foreign_and_expired_invitations_admit_nobody() {
    let mut sim = Sim::new(noisy_net(315));
    let nodes = invited_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    let before = view(&sim, nodes[0]);

    // Forged: an invitation of someone else, rewritten for this joiner.
    let forger = sim.add(engine(VotePolicy::Automatic));
    let other = sim.add(engine(VotePolicy::Automatic));
    let mut forged = invitation_of(&mut sim, nodes[1], other, 3_600_000);
    forged.invitee = address(&sim, forger).as_bytes().to_vec();
    sim.node_mut(forger).subscriptions.insert(g.clone());
    sim.run_for(2_000);
    sim.act(forger, |e, now| {
        e.byzantine_join_invited(&g, forged.clone(), now)
    })
    .unwrap();
    sim.run_for(2_000);
    assert!(
        sim.drop_counts()
            .get("invalid_invitation")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    // Its own node refuses to present it at all.
    assert_eq!(
        sim.act(forger, |e, now| e.request_join_invited(
            g.clone(),
            &forged.encode_to_vec(),
            now
        ))
        .unwrap_err()
        .kind(),
        "invalid_invitation"
    );

    // Expired, or for another group: its own node refuses to present it, and a steward
    // that gets it anyway drops it (and tells a joiner that asked properly why).
    let drops = |sim: &Sim| {
        sim.drop_counts()
            .get("invalid_invitation")
            .copied()
            .unwrap_or(0)
    };
    let late = sim.add(engine(VotePolicy::Automatic));
    let expired = invitation_of(&mut sim, nodes[1], late, 1_000);
    sim.run_for(3_000);
    assert_eq!(
        sim.act(late, |e, now| e.request_join_invited(
            g.clone(),
            &expired.encode_to_vec(),
            now
        ))
        .unwrap_err()
        .kind(),
        "invalid_invitation"
    );
    sim.node_mut(late).subscriptions.insert(g.clone());
    sim.run_for(2_000);
    let before_drops = drops(&sim);
    sim.act(late, |e, now| e.byzantine_join_invited(&g, expired, now))
        .unwrap();
    sim.run_for(3_000);
    assert!(drops(&sim) > before_drops);

    let foreign_joiner = sim.add(engine(VotePolicy::Automatic));
    let mut foreign = invitation_of(&mut sim, nodes[2], foreign_joiner, 3_600_000);
    foreign.group_id = "elsewhere".into();
    sim.node_mut(foreign_joiner).subscriptions.insert(g.clone());
    sim.run_for(2_000);
    let before_drops = drops(&sim);
    sim.act(foreign_joiner, |e, now| {
        e.byzantine_join_invited(&g, foreign, now)
    })
    .unwrap();
    sim.run_for(3_000);
    assert!(drops(&sim) > before_drops);

    // Past every deadline nobody of them got in.
    sim.run_for(45_000);
    for id in [forger, late, foreign_joiner] {
        assert!(!is_member(&sim, id));
    }
    assert_eq!(view(&sim, nodes[0]).members, before.members);
}

#[test]
fn a_flood_of_join_requests_from_one_address_is_paced() {
    let mut sim = Sim::new(noisy_net(317));
    let nodes = invited_group(&mut sim, 2, VotePolicy::Automatic);
    let g = group();
    let flooder = sim.add(engine(VotePolicy::Automatic));
    sim.node_mut(flooder).subscriptions.insert(g.clone());
    sim.run_for(2_000);
    for _ in 0..50 {
        let key_package = sim.act(flooder, |e, now| e.key_package(now)).unwrap();
        sim.act(flooder, |e, now| {
            e.byzantine_join_request(&g, key_package, now)
        })
        .unwrap();
    }
    sim.run_for(2_000);
    let paced = sim.drop_counts().get("rate_limited").copied().unwrap_or(0);
    assert!(paced >= 45, "{:?}", sim.drop_counts());
    // At most one of its key packages reached the vote.
    let flooder_address = address(&sim, flooder);
    let votes_on_it = opened(&sim, nodes[1])
        .iter()
        .filter(|(_, _, c)| *c == ChangeKind::Add(flooder_address))
        .count();
    assert!(votes_on_it <= 1, "{votes_on_it}");
}

#[test]
fn an_invited_joiner_is_admitted_with_a_new_groups_real_defaults() {
    // The defaults as a node uses them: an hour for votes on people.
    let mut sim = Sim::new(noisy_net(319));
    let g = group();
    let creator = sim.add(engine(VotePolicy::Automatic));
    sim.act(creator, |e, now| {
        e.create_group(g.clone(), GroupParams::default(), now)
    })
    .unwrap();
    let joiner = sim.add(engine(VotePolicy::Automatic));
    invite_and_join(&mut sim, creator, joiner);
    assert!(
        sim.run_until(60_000, |s| converged(s, &[creator, joiner], 2)),
        "{:?}",
        sim.drop_counts()
    );
}

#[test]
fn a_joiner_whose_welcome_is_slow_is_not_re_added_when_it_asks_again() {
    // Seen in 50-member demos: a joiner's retry reached a steward after the commit that
    // added it and before its Welcome arrived; the steward took it for lost state and
    // re-added it, throwing out the state it was about to have.
    let mut sim = Sim::new(noisy_net(321));
    let nodes = invited_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    let joiner = sim.add(engine(VotePolicy::Automatic));
    let joiner_address = address(&sim, joiner);
    invite_and_join(&mut sim, nodes[0], joiner);
    // It hears nothing of the group (no Welcome) until the group has added it.
    sim.run_until(10_000, |s| {
        s.node(joiner)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::JoinRequestSent { .. }))
    });
    sim.node_mut(joiner).subscriptions.remove(&g);
    assert!(sim.run_until(60_000, |s| {
        view(s, nodes[0]).members.contains(&joiner_address)
    }));
    // Its retries (every few seconds) reach the stewards meanwhile; then it hears again.
    sim.run_for(10_000);
    sim.node_mut(joiner).subscriptions.insert(g.clone());
    let mut all = nodes.clone();
    all.push(joiner);
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
    for id in &nodes {
        assert!(
            !opened(&sim, *id)
                .iter()
                .any(|(_, _, c)| *c == ChangeKind::Readd(joiner_address)),
            "node {} saw a re-add",
            id.0
        );
    }
}

#[test]
fn a_key_package_the_group_turned_down_cannot_be_replayed() {
    let mut sim = Sim::new(noisy_net(323));
    let nodes = invited_group(&mut sim, 2, VotePolicy::Automatic);
    let g = group();
    sim.enable_wiretap();
    let stranger = sim.add(engine(VotePolicy::Automatic));
    sim.act(stranger, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    // Nobody agrees: turned down at the deadline, the stranger told.
    assert!(sim.run_until(60_000, |s| !refusals(s, stranger).is_empty()));
    let request = sim
        .wiretap
        .iter()
        .find_map(|(from, t)| {
            let env = demls_engine::wire::Envelope::decode(t.payload.as_slice()).ok()?;
            (*from == stranger
                && matches!(
                    env.body,
                    Some(demls_engine::wire::envelope::Body::JoinRequest(_))
                ))
            .then_some(env)
        })
        .unwrap();
    // Sent again in a new envelope (past the duplicate filter), after the pacing: a replay.
    sim.run_for(2_000);
    let mut bytes = request.encode_to_vec();
    bytes.extend_from_slice(&[0xa0, 0x06, 0x01]);
    assert_eq!(
        sim.inject(nodes[0], &bytes).unwrap_err().kind(),
        "replayed_key_package"
    );
}

#[test]
fn a_full_intake_drops_further_join_requests_until_room_is_made() {
    use demls_engine::EngineConfig;
    let mut sim = Sim::new(noisy_net(331));
    let g = group();
    let bounded = EngineConfig {
        max_join_intake: 2,
        ..config(VotePolicy::Automatic)
    };
    let creator = sim.add(engine_with(bounded));
    sim.act(creator, |e, now| e.create_group(g.clone(), defaults(), now))
        .unwrap();
    let strangers: Vec<NodeId> = (0..4)
        .map(|_| sim.add(engine(VotePolicy::Automatic)))
        .collect();
    for stranger in &strangers {
        sim.act(*stranger, |e, now| e.request_join(group(), None, now))
            .unwrap();
    }
    // Nobody votes YES on strangers, so two wait for the deadline and fill the intake: the
    // others' requests (and their retries) are dropped, counted, and open no vote.
    sim.run_for(15_000);
    assert_eq!(opened(&sim, creator).len(), 2);
    let full = sim.drop_counts().get("queue_full").copied().unwrap_or(0);
    assert!(full >= 2, "{:?}", sim.drop_counts());
    // Past the deadline silence refuses the first two; their room goes to the others, who
    // ask again. Nobody got in.
    sim.run_for(60_000);
    assert!(opened(&sim, creator).len() >= 3);
    for stranger in &strangers {
        assert!(!is_member(&sim, *stranger));
    }
}
