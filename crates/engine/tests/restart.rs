//! A member restarts from what a shell would have persisted: the MLS storage
//! journal and the engine snapshot. It carries on in its group.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use demls_engine::{Engine, MlsSigner, MlsStore, StorageWrite, VotePolicy};
use demls_identity::Wallet;
use demls_sim::Sim;

/// A group's current snapshot and its retained past epochs.
type GroupRecord = (Vec<u8>, BTreeMap<u64, Vec<u8>>);

/// What a shell's database would hold: the journal's writes applied in order.
#[derive(Default)]
struct Disk {
    groups: HashMap<Vec<u8>, GroupRecord>,
    key_packages: HashMap<Vec<u8>, Vec<u8>>,
}

impl Disk {
    fn apply(&mut self, writes: Vec<StorageWrite>) {
        for write in writes {
            match write {
                StorageWrite::Group {
                    group_id,
                    snapshot,
                    epochs,
                    oldest_retained_epoch,
                } => {
                    let entry = self.groups.entry(group_id).or_default();
                    entry.0 = snapshot.to_vec();
                    for (id, data) in epochs {
                        entry.1.insert(id, data.to_vec());
                    }
                    if let Some(oldest) = oldest_retained_epoch {
                        entry.1.retain(|id, _| *id >= oldest);
                    }
                }
                StorageWrite::GroupDeleted { group_id } => {
                    self.groups.remove(&group_id);
                }
                StorageWrite::KeyPackage { id, data } => {
                    self.key_packages.insert(id, data.to_vec());
                }
                StorageWrite::KeyPackageDeleted { id } => {
                    self.key_packages.remove(&id);
                }
            }
        }
    }

    fn load(&self) -> MlsStore {
        let store = MlsStore::new(4, true);
        for (id, (snapshot, epochs)) in &self.groups {
            store.restore_group(
                id.clone(),
                snapshot.clone(),
                epochs.iter().map(|(e, d)| (*e, d.clone())).collect(),
            );
        }
        for (id, data) in &self.key_packages {
            store.restore_key_package(id.clone(), data).unwrap();
        }
        store
    }
}

#[test]
fn a_member_restarts_from_its_journal_and_snapshot_and_carries_on() {
    let mut sim = Sim::new(noisy_net(41));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();

    // A fourth member whose state is persisted.
    let wallet = Wallet::generate();
    let signer = MlsSigner::generate().unwrap();
    let fourth = sim.add(Engine::new(
        wallet.clone(),
        &signer,
        config(VotePolicy::Automatic),
        MlsStore::new(4, true),
    ));
    sim.act(fourth, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    let mut all = nodes.clone();
    all.push(fourth);
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
    let mut disk = Disk::default();
    disk.apply(sim.node_mut(fourth).engine.take_storage_writes().unwrap());
    for text in ["before the crash", "one more", "and another"] {
        sim.act(fourth, |e, now| e.send_message(&g, text, now))
            .unwrap();
    }
    sim.act(nodes[1], |e, now| e.send_message(&g, "seen before", now))
        .unwrap();
    sim.run_for(1_000);
    assert!(texts(&sim, fourth).contains(&"seen before".to_owned()));

    // Crash: all that survives is what was persisted. Four messages moved the group's
    // key schedule on; its state is written once.
    let writes = sim.node_mut(fourth).engine.take_storage_writes().unwrap();
    let group_writes = writes
        .iter()
        .filter(|w| matches!(w, StorageWrite::Group { .. }))
        .count();
    assert_eq!(group_writes, 1, "one write of the group state per step");
    disk.apply(writes);
    let snapshot = sim.node(fourth).engine.snapshot().unwrap();
    let now = sim.now();
    let restored = Engine::restore(
        wallet,
        &signer,
        config(VotePolicy::Automatic),
        disk.load(),
        &snapshot,
        now,
    )
    .unwrap();
    sim.node_mut(fourth).engine = restored;

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
    assert!(
        sim.run_until(60_000, |s| converged(s, &all, 5)),
        "{}",
        describe(&sim, &all)
    );
}

#[test]
fn a_steward_restarts_with_a_joiner_waiting_and_still_admits_it() {
    let mut sim = Sim::new(noisy_net(43));
    let g = group();
    let wallet = Wallet::generate();
    let signer = MlsSigner::generate().unwrap();
    let steward = sim.add(Engine::new(
        wallet.clone(),
        &signer,
        config(VotePolicy::Automatic),
        MlsStore::new(4, true),
    ));
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
    let mut disk = Disk::default();
    disk.apply(sim.node_mut(steward).engine.take_storage_writes().unwrap());
    let snapshot = sim.node(steward).engine.snapshot().unwrap();
    let now = sim.now();
    sim.node_mut(steward).engine = Engine::restore(
        wallet,
        &signer,
        config(VotePolicy::Automatic),
        disk.load(),
        &snapshot,
        now,
    )
    .unwrap();
    // The steward proposes the waiting joiner again; the member approves.
    sim.node_mut(member)
        .engine
        .set_vote_policy(VotePolicy::Automatic);
    assert!(
        sim.run_until(120_000, |s| converged(s, &[steward, member, joiner], 3)),
        "{}",
        describe(&sim, &[steward, member, joiner])
    );
}
