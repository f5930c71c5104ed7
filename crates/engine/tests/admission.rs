//! Gated groups: joiners are checked against an admission policy by the
//! steward and again by every member; the check fails closed.
//!
//! The chain is played by the test (the shell's role): it answers each
//! `Request::AdmissionCheck` with a verdict. Real chain reads are tested in
//! `crates/chain` and through the node in `crates/node/tests/gated.rs`.

mod common;

use std::collections::BTreeMap;

use common::*;
use demls_engine::{ChangeKind, GroupParams, Request, StewardMode, VotePolicy};
use demls_identity::Address;
use demls_policy::{
    AdmissionPolicy, BlockRef, Gate, Refusal, Requirement, U256, Unavailable, Verdict,
};
use demls_sim::{NodeId, Sim};

fn min_eth_policy() -> AdmissionPolicy {
    AdmissionPolicy::Gated(Gate {
        chain_id: 31337,
        block: BlockRef::Latest,
        requirement: Requirement::MinEth {
            min_wei: U256::parse_units("1", 18).unwrap(),
        },
    })
}

/// What the chain says of each address; `None` plays an unreachable RPC endpoint.
struct Chain {
    balances: Option<BTreeMap<Address, U256>>,
    cursors: BTreeMap<NodeId, usize>,
}

impl Chain {
    fn new() -> Self {
        Self {
            balances: Some(BTreeMap::new()),
            cursors: BTreeMap::new(),
        }
    }

    fn verdict(&self, subject: Address) -> Verdict {
        let Some(balances) = &self.balances else {
            return Verdict::Unavailable(Unavailable::Rpc {
                attempts: 3,
                error: "connection refused".into(),
            });
        };
        let balance = balances.get(&subject).copied().unwrap_or(U256::ZERO);
        let required = U256::parse_units("1", 18).unwrap();
        if balance >= required {
            Verdict::Admit
        } else {
            Verdict::Refuse(Refusal::InsufficientEth {
                balance,
                required,
                block: 7,
            })
        }
    }

    /// Answers every new admission check, as a node's shell would.
    fn answer(&mut self, sim: &mut Sim) {
        for id in sim.ids().collect::<Vec<_>>() {
            let cursor = self.cursors.entry(id).or_default();
            let asks: Vec<_> = sim.node(id).requests[*cursor..]
                .iter()
                .filter_map(|(_, r)| match r {
                    Request::AdmissionCheck { group, subject, .. } => {
                        Some((group.clone(), *subject))
                    }
                    _ => None,
                })
                .collect();
            *cursor = sim.node(id).requests.len();
            for (group, subject) in asks {
                let verdict = self.verdict(subject);
                sim.act(id, |e, now| {
                    e.admission_verdict(&group, subject, verdict, now)
                })
                .unwrap();
            }
        }
    }

    /// Runs the network, answering checks, until `done` or `limit_ms`.
    fn run(&mut self, sim: &mut Sim, limit_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = sim.now().plus_ms(limit_ms);
        loop {
            self.answer(sim);
            if done(sim) {
                return true;
            }
            if !sim.step(until) {
                return done(sim);
            }
        }
    }
}

fn gated_group(sim: &mut Sim, chain: &mut Chain, members: usize) -> Vec<NodeId> {
    let g = group();
    let steward = sim.add(engine(VotePolicy::Automatic));
    let params = GroupParams {
        admission: min_eth_policy(),
        mode: StewardMode::Big,
        sn_min: 2,
        sn_max: 3,
        ..params()
    };
    sim.act(steward, |e, now| e.create_group(g.clone(), params, now))
        .unwrap();
    let mut nodes = vec![steward];
    for _ in 1..members {
        let id = sim.add(engine(VotePolicy::Automatic));
        chain
            .balances
            .as_mut()
            .unwrap()
            .insert(address(sim, id), U256::parse_units("5", 18).unwrap());
        sim.act(id, |e, now| e.request_join(g.clone(), None, now))
            .unwrap();
        nodes.push(id);
    }
    let all = nodes.clone();
    assert!(
        chain.run(sim, 300_000, |s| converged(s, &all, members)),
        "{}",
        describe(sim, &all)
    );
    nodes
}

#[test]
fn a_rich_account_joins_and_a_poor_one_is_refused_with_its_reason() {
    let mut sim = Sim::new(noisy_net(201));
    let mut chain = Chain::new();
    let nodes = gated_group(&mut sim, &mut chain, 4);
    // The steward checked every joiner before proposing it (members checking too is the next test).
    let checked = sim
        .node(nodes[0])
        .requests
        .iter()
        .filter(|(_, r)| matches!(r, Request::AdmissionCheck { .. }))
        .count();
    assert_eq!(checked, 3);
    // Joiners see the policy in the announcement.
    let g = group();
    let poor = sim.add(engine(VotePolicy::Automatic));
    sim.act(poor, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    assert!(chain.run(&mut sim, 60_000, |s| !refusals(s, poor).is_empty()));
    assert!(
        refusals(&sim, poor)[0].contains("below the required 1 ETH"),
        "{:?}",
        refusals(&sim, poor)
    );
    assert!(sim.node(poor).engine.group(&g).is_none());
    assert!(view(&sim, nodes[0]).members.len() == 4);
    // Its request reached every steward; the epoch steward checked and refused it, and the
    // backups, seeing the refusal, dropped the request they held back: past all their turns,
    // nobody else checked it (let alone put it to a vote behind the refused joiner's back).
    chain.run(&mut sim, 30_000, |_| false);
    let poor_address = address(&sim, poor);
    let checks = nodes
        .iter()
        .map(|id| {
            sim.node(*id)
                .requests
                .iter()
                .filter(|(_, r)| {
                    matches!(r, Request::AdmissionCheck { subject, .. } if *subject == poor_address)
                })
                .count()
        })
        .sum::<usize>();
    assert_eq!(checks, 1);
    assert_eq!(refusals(&sim, poor).len(), 1);
}

#[test]
fn honest_members_vote_no_when_a_steward_proposes_a_poor_account() {
    let mut sim = Sim::new(noisy_net(203));
    let mut chain = Chain::new();
    let nodes = gated_group(&mut sim, &mut chain, 5);
    let g = group();
    let poor = sim.add(engine(VotePolicy::Automatic));
    let key_package = sim.act(poor, |e, now| e.key_package(now)).unwrap();
    let poor_address = address(&sim, poor);
    let steward = *nodes
        .iter()
        .find(|id| view(&sim, **id).committers.first() == Some(&address(&sim, **id)))
        .unwrap();
    sim.act(steward, |e, now| {
        e.byzantine_propose_add(&g, key_package, now)
    })
    .unwrap();
    chain.run(&mut sim, 60_000, |_| false);
    for id in nodes.iter().filter(|id| **id != steward) {
        assert!(
            decisions(&sim, *id).contains(&(ChangeKind::Add(poor_address), false)),
            "node {}",
            id.0
        );
        assert!(!view(&sim, *id).members.contains(&poor_address));
    }
}

#[test]
fn with_the_chain_unreachable_nobody_is_admitted_and_the_group_keeps_working() {
    let mut sim = Sim::new(noisy_net(205));
    let mut chain = Chain::new();
    let nodes = gated_group(&mut sim, &mut chain, 4);
    let g = group();
    let rich = sim.add(engine(VotePolicy::Automatic));
    let rich_address = address(&sim, rich);
    chain
        .balances
        .as_mut()
        .unwrap()
        .insert(rich_address, U256::parse_units("9", 18).unwrap());
    let balances = chain.balances.take();
    sim.act(rich, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    chain.run(&mut sim, 90_000, |_| false);
    assert!(
        sim.node(rich).engine.group(&g).is_none(),
        "admitted without a check"
    );
    // The group carries on meanwhile: a message and a removal.
    sim.act(nodes[1], |e, now| e.send_message(&g, "still here", now))
        .unwrap();
    let target = address(&sim, nodes[3]);
    sim.act(nodes[1], |e, now| e.propose_remove(&g, target, now))
        .unwrap();
    assert!(people_vote(
        &mut sim,
        &[nodes[0], nodes[2]],
        &ChangeKind::Remove(target),
        true
    ));
    let rest = nodes[..3].to_vec();
    assert!(chain.run(&mut sim, 120_000, |s| converged(s, &rest, 3)));
    assert!(texts(&sim, nodes[2]).contains(&"still here".to_owned()));
    // The endpoint comes back: the waiting joiner is admitted at the next check.
    chain.balances = balances;
    let mut all = rest.clone();
    all.push(rich);
    assert!(
        chain.run(&mut sim, 120_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
}

#[test]
fn a_refused_joiner_that_qualifies_later_is_admitted_when_it_asks_again() {
    let mut sim = Sim::new(noisy_net(207));
    let mut chain = Chain::new();
    let nodes = gated_group(&mut sim, &mut chain, 3);
    let g = group();
    let late = sim.add(engine(VotePolicy::Automatic));
    sim.act(late, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    assert!(chain.run(&mut sim, 60_000, |s| !refusals(s, late).is_empty()));
    // It buys in, and asks again: the steward and the members check it anew.
    let late_address = address(&sim, late);
    chain
        .balances
        .as_mut()
        .unwrap()
        .insert(late_address, U256::parse_units("2", 18).unwrap());
    sim.act(late, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    let mut all = nodes.clone();
    all.push(late);
    assert!(
        chain.run(&mut sim, 120_000, |s| converged(s, &all, 4)),
        "{}",
        describe(&sim, &all)
    );
    assert_eq!(refusals(&sim, late).len(), 1);
}
