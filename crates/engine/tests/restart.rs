//! A member restarts from what a shell would have persisted: the MLS storage
//! journal and the engine snapshot. It carries on in its group.

mod common;

use common::*;
use demls_engine::{
    Engine, EngineSnapshot, GroupTraffic, SnapshotWrite, StorageWrite, TopicKind, VotePolicy,
};
use demls_sim::{NodeId, Sim};
use prost::Message;

/// Runs until every node of `all` is in the group with `all.len()` members; fails if not.
fn assert_converges(sim: &mut Sim, all: &[NodeId]) {
    assert!(
        sim.run_until(60_000, |s| converged(s, all, all.len())),
        "{}",
        describe(sim, all)
    );
}

/// A group of three on a noisy network, and a fourth member whose state is persisted,
/// admitted.
struct Setup {
    sim: Sim,
    /// Every node, the fourth last.
    all: Vec<NodeId>,
    fourth: Persisted,
    /// What the fourth has persisted so far.
    disk: Disk,
}

impl Setup {
    fn new(seed: u64) -> Self {
        let mut sim = Sim::new(noisy_net(seed));
        let mut all = form_group(&mut sim, 3, VotePolicy::Automatic);
        let fourth = Persisted::add(&mut sim, VotePolicy::Automatic);
        sim.act(fourth.id, |e, now| e.request_join(group(), None, now))
            .unwrap();
        all.push(fourth.id);
        assert_converges(&mut sim, &all);
        let mut disk = Disk::default();
        disk.apply(
            sim.node_mut(fourth.id)
                .engine
                .take_storage_writes()
                .unwrap(),
        );
        Self {
            sim,
            all,
            fourth,
            disk,
        }
    }
}

#[test]
fn a_member_restarts_from_its_journal_and_snapshot_and_carries_on() {
    let Setup {
        mut sim,
        mut all,
        fourth: persisted,
        mut disk,
    } = Setup::new(41);
    let g = group();
    let nodes = all[..3].to_vec();
    let fourth = persisted.id;
    for text in ["before the crash", "one more", "and another"] {
        sim.act(fourth, |e, now| e.send_message(&g, text, now))
            .unwrap();
    }
    sim.act(nodes[1], |e, now| e.send_message(&g, "seen before", now))
        .unwrap();
    sim.run_for(1_000);
    assert!(texts(&sim, fourth).contains(&"seen before".to_owned()));

    // Crash: all that survives is what was persisted. Four messages moved the group's
    // key schedule on; the step writes it once (its whole state, or its traffic).
    let writes = sim.node_mut(fourth).engine.take_storage_writes().unwrap();
    let group_writes = writes
        .iter()
        .filter(|w| {
            matches!(
                w,
                StorageWrite::Group { .. } | StorageWrite::GroupTraffic { .. }
            )
        })
        .count();
    assert_eq!(group_writes, 1, "one write of the group state per step");
    disk.apply(writes);
    persisted.restart(&mut sim, &mut disk, VotePolicy::Automatic);

    // It reads and writes in its group, and follows the next commit.
    sim.act(fourth, |e, now| {
        e.send_message(&g, "after the restart", now)
    })
    .unwrap();
    sim.act(nodes[1], |e, now| e.send_message(&g, "welcome back", now))
        .unwrap();
    sim.run_for(2_000);
    assert!(texts(&sim, nodes[0]).contains(&"after the restart".to_owned()));
    assert!(texts(&sim, fourth).contains(&"welcome back".to_owned()));

    let fifth = sim.add(engine(VotePolicy::Automatic));
    sim.act(fifth, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    all.push(fifth);
    assert_converges(&mut sim, &all);
}

/// The application transmits `id` made while `act` ran.
fn application_transmits(sim: &mut Sim, id: NodeId, act: impl FnOnce(&mut Sim)) -> Vec<Vec<u8>> {
    let before = sim.wiretap.len();
    act(sim);
    sim.wiretap[before..]
        .iter()
        .filter(|(from, t)| *from == id && t.topic.kind == TopicKind::Application)
        .map(|(_, t)| t.payload.clone())
        .collect()
}

#[test]
fn a_member_restarted_from_journaled_traffic_neither_reuses_its_keys_nor_keeps_used_ones() {
    let Setup {
        mut sim,
        all,
        fourth: persisted,
        mut disk,
    } = Setup::new(47);
    let g = group();
    let fourth = persisted.id;
    let other = all[1];
    sim.enable_wiretap();
    let heard = application_transmits(&mut sim, other, |sim| {
        sim.act(other, |e, now| e.send_message(&g, "heard before", now))
            .unwrap();
    });
    assert!(!heard.is_empty());
    for text in ["sent before", "and again"] {
        sim.act(fourth, |e, now| e.send_message(&g, text, now))
            .unwrap();
    }
    sim.run_for(1_000);
    assert!(texts(&sim, fourth).contains(&"heard before".to_owned()));
    assert!(texts(&sim, all[0]).contains(&"and again".to_owned()));

    // Only application messages moved the state on since it was written: the step journals
    // their traffic, not the whole state.
    let writes = sim.node_mut(fourth).engine.take_storage_writes().unwrap();
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, StorageWrite::GroupTraffic { traffic, .. } if traffic.sent == 2))
    );
    assert!(
        !writes
            .iter()
            .any(|w| matches!(w, StorageWrite::Group { .. }))
    );
    disk.apply(writes);
    persisted.restart(&mut sim, &mut disk, VotePolicy::Automatic);

    // The keys of what it read before the crash stay used: the same ciphertext does not open.
    for bytes in &heard {
        assert!(sim.inject(fourth, bytes).is_err(), "a used key came back");
    }
    // Its next message takes a generation nobody has seen: the others read it.
    sim.act(fourth, |e, now| {
        e.send_message(&g, "after the restart", now)
    })
    .unwrap();
    sim.run_for(2_000);
    for &member in &all[..3] {
        assert!(texts(&sim, member).contains(&"after the restart".to_owned()));
    }
    // The first step after the restart writes the replayed state whole.
    let writes = sim.node_mut(fourth).engine.take_storage_writes().unwrap();
    assert!(
        writes
            .iter()
            .any(|w| matches!(w, StorageWrite::Group { .. }))
    );
}

#[test]
fn journaled_traffic_beyond_what_a_journal_holds_is_refused_at_restore() {
    let Setup {
        sim,
        fourth: persisted,
        mut disk,
        ..
    } = Setup::new(59);
    disk.apply(vec![StorageWrite::GroupTraffic {
        group_id: group().as_bytes().to_vec(),
        traffic: GroupTraffic {
            sent: 5000,
            received: Vec::new(),
        },
    }]);
    let snapshot = sim.node(persisted.id).engine.snapshot().unwrap();
    let restored = Engine::restore(
        persisted.wallet.clone(),
        &persisted.signer,
        config(VotePolicy::Automatic),
        disk.load(),
        &snapshot,
        sim.now(),
    );
    assert!(restored.is_err(), "a corrupt journal must not be replayed");
}

#[test]
fn a_steward_restarts_with_a_joiner_waiting_and_still_admits_it() {
    let mut sim = Sim::new(noisy_net(43));
    let g = group();
    let persisted = Persisted::add(&mut sim, VotePolicy::Automatic);
    let steward = persisted.id;
    sim.act(steward, |e, now| e.create_group(g.clone(), params(), now))
        .unwrap();
    let member = sim.add(engine(VotePolicy::Manual));
    sim.act(member, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    assert!(sim.run_until(60_000, |s| converged(s, &[steward, member], 2)));

    // A joiner's request arrives; the vote is open (the member votes by hand) when the steward crashes.
    let joiner = sim.add(engine(VotePolicy::Automatic));
    sim.act(joiner, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    assert!(sim.run_until(10_000, |s| !opened(s, member).is_empty()));
    persisted.restart(&mut sim, &mut Disk::default(), VotePolicy::Automatic);
    // The steward proposes the waiting joiner again; the member approves.
    sim.act(member, |e, now| {
        e.set_vote_policy(VotePolicy::Automatic, now);
        Ok(())
    })
    .unwrap();
    assert!(
        sim.run_until(120_000, |s| converged(s, &[steward, member, joiner], 3)),
        "{}",
        describe(&sim, &[steward, member, joiner])
    );
}

/// The people at `voters` vote by hand from now on; a new node asks to join (returned).
fn hand_voters_and_a_joiner(sim: &mut Sim, voters: &[NodeId]) -> NodeId {
    for &member in voters {
        sim.node_mut(member)
            .engine
            .set_vote_policy(VotePolicy::Manual, Default::default());
    }
    let joiner = sim.add(engine(VotePolicy::Automatic));
    sim.act(joiner, |e, now| e.request_join(group(), None, now))
        .unwrap();
    joiner
}

#[test]
fn a_member_restarted_mid_vote_keeps_the_open_proposal_and_its_own_vote() {
    let Setup {
        mut sim,
        mut all,
        fourth: persisted,
        mut disk,
    } = Setup::new(47);
    let g = group();
    let nodes = &all[..3];
    let fourth = persisted.id;
    let fourth_address = address(&sim, fourth);

    // Two members vote by hand and wait: the next join stays open with the steward's and the
    // fourth member's YES (two of four).
    let fifth = hand_voters_and_a_joiner(&mut sim, &nodes[1..]);
    let own_votes = |s: &Sim| {
        s.node(fourth)
            .events
            .iter()
            .filter(|(_, e)| {
                matches!(e, demls_engine::Event::VoteRecorded { voter, .. }
                    if *voter == fourth_address)
            })
            .count()
    };
    assert!(sim.run_until(10_000, |s| own_votes(s) > 0));
    let (proposal, _, _) = opened(&sim, fourth).last().cloned().unwrap();

    // It restarts: the proposal is still open there, with its vote (the snapshot keeps the
    // epoch's open proposals), and neither the owner's resend nor its own timers make it
    // vote again or refuse its own vote.
    let votes_before = own_votes(&sim);
    persisted.restart(&mut sim, &mut disk, VotePolicy::Automatic);
    let open = |s: &Sim| {
        view(s, fourth)
            .open_proposals
            .iter()
            .any(|t| t.id == proposal && t.decided.is_none())
    };
    assert!(open(&sim), "the restarted member forgot the open proposal");
    let drops_before = sim.node(fourth).drops.len();
    sim.run_for(10_000);
    assert!(open(&sim));
    assert_eq!(own_votes(&sim), votes_before, "it voted again");
    let drops: Vec<_> = sim.node(fourth).drops[drops_before..]
        .iter()
        .map(|(_, reason)| reason.clone())
        .collect();
    assert!(
        !drops.iter().any(|r| r == "bad_consensus"),
        "the restarted member refused its own vote: {drops:?}"
    );

    // The others vote; everyone, the restarted member included, takes the fifth in.
    for &member in &nodes[1..] {
        sim.act(member, |e, now| e.vote(&g, proposal, true, now))
            .unwrap();
    }
    all.push(fifth);
    assert_converges(&mut sim, &all);
}

/// What a shell holds of a node's protocol snapshot: the last one written whole and the
/// votes journaled since.
#[derive(Default)]
struct SnapshotOnDisk {
    whole: Vec<u8>,
    journal: Vec<Vec<u8>>,
    /// How many steps wrote only votes.
    vote_steps: usize,
}

impl SnapshotOnDisk {
    /// Drains the node's output as a shell does, writing its MLS writes to `disk`.
    fn persist(&mut self, sim: &mut Sim, id: NodeId, disk: &mut Disk) {
        let output = sim.node_mut(id).engine.take_output().unwrap();
        disk.apply(output.writes);
        match output.snapshot {
            SnapshotWrite::Unchanged => {}
            SnapshotWrite::Whole(whole) => {
                self.whole = whole;
                self.journal.clear();
            }
            SnapshotWrite::Votes(votes) => {
                self.vote_steps += 1;
                self.journal.extend(votes);
            }
        }
    }

    fn restored(&self) -> Vec<u8> {
        EngineSnapshot::with_journal(&self.whole, &self.journal).unwrap()
    }
}

#[test]
fn votes_taken_in_after_the_snapshot_was_written_are_journaled_and_restored() {
    let Setup {
        mut sim,
        mut all,
        fourth: persisted,
        mut disk,
    } = Setup::new(53);
    let g = group();
    let fourth = persisted.id;
    // Everyone but the steward votes by hand: the join stays open with one YES of four.
    let voters = [all[1], all[2], fourth];
    let fifth = hand_voters_and_a_joiner(&mut sim, &voters);
    let yes_held = |s: &Sim, id, proposal| {
        view(s, id)
            .open_proposals
            .iter()
            .find(|t| t.id == proposal)
            .map(|t| t.yes)
    };
    assert!(
        sim.run_until(10_000, |s| opened(s, fourth).last().is_some_and(
            |(p, _, _)| voters.iter().all(|v| yes_held(s, *v, *p) >= Some(1))
        ))
    );
    let (proposal, _, _) = opened(&sim, fourth).last().cloned().unwrap();
    let mut on_disk = SnapshotOnDisk::default();
    on_disk.persist(&mut sim, fourth, &mut disk);

    // A second YES reaches the fourth member: its step writes that vote, not the snapshot.
    sim.act(all[1], |e, now| e.vote(&g, proposal, true, now))
        .unwrap();
    for _ in 0..100 {
        sim.run_for(100);
        on_disk.persist(&mut sim, fourth, &mut disk);
        if yes_held(&sim, fourth, proposal) == Some(2) {
            break;
        }
    }
    assert_eq!(yes_held(&sim, fourth, proposal), Some(2));
    assert!(on_disk.vote_steps > 0, "no step journaled only votes");
    assert_eq!(
        on_disk.restored(),
        sim.node(fourth).engine.snapshot().unwrap(),
        "the snapshot and its journal are not the snapshot"
    );

    // Restarted from the snapshot and its journal, it still holds both YES votes; its own
    // makes the third, and everyone takes the fifth in.
    persisted.restart_from(&mut sim, &mut disk, VotePolicy::Manual, &on_disk.restored());
    assert_eq!(yes_held(&sim, fourth, proposal), Some(2));
    sim.act(fourth, |e, now| e.vote(&g, proposal, true, now))
        .unwrap();
    all.push(fifth);
    assert_converges(&mut sim, &all);
}

#[test]
fn a_member_restarted_keeps_the_key_packages_it_buffered_and_old_snapshots_still_load() {
    let Setup {
        mut sim,
        all,
        fourth: persisted,
        mut disk,
    } = Setup::new(53);
    let g = group();
    let fourth = persisted.id;
    // Everyone votes by hand and waits: the next joiner's add stays open.
    let fifth = hand_voters_and_a_joiner(&mut sim, &all);
    let fifth_address = address(&sim, fifth);
    let buffered = |s: &Sim| view(s, fourth).buffered_joiners == vec![fifth_address];
    assert!(sim.run_until(10_000, buffered));

    // A snapshot written before key packages were buffered (no tag 11, nor the open
    // proposals of tag 13, which came later) still loads.
    disk.apply(sim.node_mut(fourth).engine.take_storage_writes().unwrap());
    let bytes = sim.node(fourth).engine.snapshot().unwrap();
    let mut old = EngineSnapshot::decode_checked(&bytes).unwrap();
    for group in &mut old.groups {
        group.key_packages.clear();
        group.open.clear();
    }
    let restored = Engine::restore(
        persisted.wallet.clone(),
        &persisted.signer,
        config(VotePolicy::Manual),
        disk.load(),
        &old.encode_to_vec(),
        sim.now(),
    )
    .unwrap();
    assert!(restored.group(&g).unwrap().buffered_joiners.is_empty());

    // Restarted from its real snapshot, it still keeps the joiner's key package.
    persisted.restart(&mut sim, &mut disk, VotePolicy::Manual);
    assert!(buffered(&sim));
}

#[test]
fn display_names_survive_a_restart() {
    let Setup {
        mut sim,
        all,
        fourth: persisted,
        mut disk,
    } = Setup::new(43);
    let g = group();
    sim.act(all[0], |e, now| e.set_display_name(&g, "Alice", now))
        .unwrap();
    sim.act(persisted.id, |e, now| e.set_display_name(&g, "Dora", now))
        .unwrap();
    sim.run_for(2_000);
    let before = view(&sim, persisted.id).display_names;
    assert_eq!(before.len(), 2, "{before:?}");
    persisted.restart(&mut sim, &mut disk, VotePolicy::Automatic);
    assert_eq!(view(&sim, persisted.id).display_names, before);
}
