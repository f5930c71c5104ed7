//! A simulation repeats bit for bit from its seeds: engines with fixed wallets and seeded
//! entropy, on a network with a fixed seed, send exactly the same bytes in the same order
//! every run; another entropy seed changes them.

mod common;

use common::{config, converged, describe, group, params, people_vote, texts};
use demls_engine::{ChangeKind, Engine, Entropy, MlsSigner, Transmit, VotePolicy};
use demls_identity::Wallet;
use demls_sim::{NetConfig, NodeId, Sim};

/// Members of the scenario: the creator and three joiners.
const MEMBERS: usize = 4;

/// Engine `index` of a run: its wallet fixed by `index` alone, its signer and entropy from
/// `seed` and `index`.
fn seeded_engine(seed: u8, index: u8) -> Engine {
    let wallet = Wallet::from_bytes(&demls_identity::keccak256(&[b'w', index]))
        .expect("a hash is a valid key");
    let mut bytes = [0; 32];
    bytes[0] = seed;
    bytes[1] = index;
    let entropy = Entropy::seeded(bytes);
    let signer = MlsSigner::generate_with(&entropy).expect("a signature key");
    Engine::builder(wallet, &signer)
        .config(config(VotePolicy::Manual))
        .entropy(entropy)
        .build()
}

/// Everything sent in one run: the creator makes the group, three members join one by one
/// (each a join request, the members' votes by hand, a commit and its Welcome), the creator
/// and the last joiner chat both ways, and the joiners replace their keys in one commit.
fn run(seed: u8) -> Vec<(NodeId, Transmit)> {
    let mut sim = Sim::new(NetConfig::default());
    sim.enable_wiretap();
    let g = group();
    let creator = sim.add(seeded_engine(seed, 0));
    sim.act(creator, |e, now| e.create_group(g.clone(), params(), now))
        .unwrap();
    let mut nodes = vec![creator];
    for index in 1..MEMBERS {
        let joiner = sim.add(seeded_engine(seed, index as u8));
        sim.act(joiner, |e, now| e.request_join(g.clone(), None, now))
            .unwrap();
        let add = ChangeKind::Add(sim.node(joiner).engine.address());
        assert!(
            people_vote(&mut sim, &nodes, &add, true),
            "a vote never opened"
        );
        nodes.push(joiner);
        let all = nodes.clone();
        let formed = sim.run_until(120_000, |sim| converged(sim, &all, all.len()));
        assert!(formed, "no convergence: {}", describe(&sim, &nodes));
    }
    let last = nodes[MEMBERS - 1];
    sim.act(creator, |e, now| {
        e.send_message(&g, "hello from the creator", now)
    })
    .unwrap();
    sim.act(last, |e, now| {
        e.send_message(&g, "hello from the last", now)
    })
    .unwrap();
    let heard = sim.run_until(30_000, |sim| {
        texts(sim, last).contains(&"hello from the creator".to_owned())
            && texts(sim, creator).contains(&"hello from the last".to_owned())
    });
    assert!(heard, "the chat did not arrive");
    // The three joiners replace their leaf keys at once: one commit takes their three
    // updates by reference (which mls-rs gathers from a `HashMap`).
    let before = common::view(&sim, creator).epoch;
    for &id in &nodes[1..] {
        sim.act(id, |e, now| e.rotate(&g, now)).unwrap();
    }
    let rotated = sim.run_until(120_000, |sim| {
        converged(sim, &nodes, MEMBERS)
            && nodes[1..].iter().all(|&id| {
                let view = common::view(sim, creator);
                let member = sim.node(id).engine.address();
                view.epoch > before
                    && view
                        .key_ages
                        .iter()
                        .any(|age| age.member == member && age.epoch == view.epoch)
            })
    });
    assert!(
        rotated,
        "the updates were not committed: {}",
        describe(&sim, &nodes)
    );
    assert_eq!(
        common::view(&sim, creator).epoch.0,
        before.0 + 1,
        "the three updates went into more than one commit"
    );
    // Some quiet time, so that periodic traffic (announcements, liveness) is compared too.
    sim.run_for(5_000);
    sim.wiretap
}

#[test]
fn the_same_seeds_send_the_same_bytes() {
    let first = run(1);
    let second = run(1);
    assert!(first.len() > 20, "too little traffic: {}", first.len());
    assert_eq!(first.len(), second.len(), "a different number of transmits");
    for (i, (a, b)) in first.iter().zip(&second).enumerate() {
        assert_eq!(a, b, "transmit {i} differs");
    }
}

#[test]
fn another_seed_sends_other_bytes() {
    let first = run(1);
    let other = run(2);
    assert_ne!(first, other);
    // Not only somewhere: the MLS traffic differs (keys, secrets, ids), while a transmit
    // without randomness in it (signed with the same wallet) may repeat.
    let payloads = |run: &[(NodeId, Transmit)]| -> Vec<Vec<u8>> {
        run.iter().map(|(_, t)| t.payload.clone()).collect()
    };
    let (a, b) = (payloads(&first), payloads(&other));
    let shared = a.iter().filter(|p| b.contains(p)).count();
    assert!(
        shared < a.len() / 2,
        "{shared} of {} transmits are the same under another seed",
        a.len()
    );
}
