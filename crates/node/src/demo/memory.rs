//! `demls demo --transport memory`: the group on the simulated network (deterministic for a seed).

use demls_engine::{
    ChangeKind, Engine, EngineConfig, Event, GroupId, MlsSigner, MlsStore, Timestamp, TopicKind,
};
use demls_identity::{Address, Wallet};
use demls_sim::{NetConfig, NodeId, Sim};

use super::{
    AFTER_REMOVAL, DemoArgs, DemoError, INVITATION_MS, Outcome, Summary, after_removal,
    tell_lockout,
};
use crate::story::Names;

/// A scenario on the simulated network, narrating as it goes.
struct Demo {
    sim: Sim,
    nodes: Vec<NodeId>,
    names: Names,
    cursors: Vec<usize>,
    group: GroupId,
}

impl Demo {
    fn new(members: usize, seed: u64) -> Result<Self, DemoError> {
        let config = EngineConfig {
            announce_interval_ms: 1_000,
            join_retry_ms: 3_000,
            ..EngineConfig::default()
        };
        let mut sim = Sim::new(NetConfig {
            seed,
            latency_ms: 40,
            jitter_ms: 30,
            ..NetConfig::default()
        });
        let mut nodes = Vec::new();
        for _ in 0..members {
            let engine = Engine::new(
                Wallet::generate(),
                &MlsSigner::generate()?,
                config.clone(),
                MlsStore::new(4, false),
            );
            nodes.push(sim.add(engine));
        }
        let addresses: Vec<Address> = nodes
            .iter()
            .map(|id| sim.node(*id).engine.address())
            .collect();
        Ok(Self {
            names: Names::new(&addresses),
            cursors: vec![0; nodes.len()],
            sim,
            nodes,
            group: GroupId::new("demo")?,
        })
    }

    fn address(&self, i: usize) -> Address {
        self.sim.node(self.nodes[i]).engine.address()
    }

    /// Prints the events that happened since the last call, in time order.
    fn narrate(&mut self) {
        let steward = self.address(0);
        let mut lines: Vec<(Timestamp, usize, String)> = Vec::new();
        for (i, id) in self.nodes.iter().enumerate() {
            let node = self.sim.node(*id);
            let who = node.engine.address();
            for (at, event) in &node.events[self.cursors[i]..] {
                let decided_elsewhere =
                    matches!(event, Event::ProposalDecided { .. }) && who != steward;
                if let Some(line) = self.names.tell(&who, event).filter(|_| !decided_elsewhere) {
                    lines.push((*at, i, line));
                }
            }
            self.cursors[i] = node.events.len();
        }
        // Stable: same-instant lines keep node order and each node's event order.
        lines.sort_by_key(|(at, _, _)| *at);
        let start = self
            .sim
            .node(self.nodes[0])
            .events
            .first()
            .map_or(0, |(t, _)| t.0);
        for (at, _, line) in lines {
            println!(
                "[{:>7.3}s] {line}",
                at.0.saturating_sub(start) as f64 / 1000.0
            );
        }
    }

    fn in_group(&self, i: usize) -> bool {
        self.sim
            .node(self.nodes[i])
            .engine
            .group(&self.group)
            .is_some()
    }

    /// Runs until the first `count` nodes are members of a group of `count`.
    fn run_until_members(&mut self, count: usize, limit_ms: u64) -> bool {
        let nodes = self.nodes[..count].to_vec();
        let group = self.group.clone();
        self.run_until(limit_ms, |sim| {
            nodes.iter().all(|id| {
                sim.node(*id)
                    .engine
                    .group(&group)
                    .is_some_and(|v| v.members.len() == count)
            })
        })
    }

    /// Each of the first `count` nodes says something; returns the texts with their recipients.
    fn chat_round(
        &mut self,
        count: usize,
        text: impl Fn(usize) -> String,
    ) -> Result<Vec<(String, Vec<usize>)>, DemoError> {
        let mut sent = Vec::new();
        for i in 0..count {
            let line = text(i);
            let group = self.group.clone();
            self.sim
                .act(self.nodes[i], |e, now| e.send_message(&group, &line, now))?;
            sent.push((line, (0..count).filter(|j| *j != i).collect()));
        }
        self.run_until(10_000, |_| false);
        Ok(sent)
    }

    fn run_until(&mut self, limit_ms: u64, done: impl FnMut(&Sim) -> bool) -> bool {
        let ok = self.sim.run_until(limit_ms, done);
        self.narrate();
        ok
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let n = usize::from(args.members);
    let mut demo = Demo::new(n, args.seed)?;
    let group = demo.group.clone();
    let nodes = demo.nodes.clone();
    println!("== {n} nodes on a simulated network (latency 10-70 ms, messages reorder) ==");

    demo.sim.act(nodes[0], |e, now| {
        e.create_group(group.clone(), args.group_params(), now)
    })?;
    // The creator invites each member-to-be (its YES, signed ahead); each joins with it.
    for id in &nodes[1..] {
        let invitee = demo.sim.node(*id).engine.address();
        let invitation = demo.sim.act(nodes[0], |e, now| {
            e.invite(&group, invitee, now.plus_ms(INVITATION_MS), now)
        })?;
        demo.sim.act(*id, |e, now| {
            e.request_join_invited(group.clone(), &invitation, now)
        })?;
    }
    demo.run_until_members(n, 600_000);
    let joined = (0..n).filter(|i| demo.in_group(*i)).count();

    println!("\n== everyone talks ==");
    let mut sent = demo.chat_round(n, |i| format!("hello from member {i}"))?;

    let victim = n - 1;
    let victim_address = demo.address(victim);
    println!(
        "\n== {} proposes removing {} ==",
        demo.names.of(&demo.address(1)),
        demo.names.of(&victim_address)
    );
    // The removed member keeps every key it had before its removal: it is cut off from
    // the network just before the commit and stays in its old epoch.
    demo.sim.node_mut(nodes[victim]).online = false;
    demo.sim.enable_wiretap();
    // Removing someone takes a majority of people: the others agree ahead of the vote.
    for id in nodes[..victim].iter().filter(|id| **id != nodes[1]) {
        demo.sim.act(*id, |e, now| {
            e.decide(&group, ChangeKind::Remove(victim_address), true, now)
        })?;
    }
    demo.sim.act(nodes[1], |e, now| {
        e.propose_remove(&group, victim_address, now)
    })?;
    demo.run_until_members(victim, 120_000);

    println!(
        "\n== the group talks on without {} ==",
        demo.names.of(&victim_address)
    );
    sent.extend(demo.chat_round(victim, |i| format!("{AFTER_REMOVAL}, member {i} says hi"))?);

    println!("\n== can the removed member read what follows? ==");
    let captured: Vec<Vec<u8>> = demo
        .sim
        .wiretap
        .iter()
        .filter(|(_, t)| t.topic.kind == TopicKind::Application)
        .map(|(_, t)| t.payload.clone())
        .collect();
    let before = demo.sim.node(nodes[victim]).events.len();
    let mut refused = 0;
    for bytes in &captured {
        if demo.sim.inject(nodes[victim], bytes).is_err() {
            refused += 1;
        }
    }
    let readable = demo.sim.node(nodes[victim]).events[before..]
        .iter()
        .filter(|(_, e)| after_removal(e))
        .count();
    demo.narrate();
    tell_lockout(
        &demo.names.of(&victim_address),
        captured.len(),
        readable,
        refused,
    );

    let delivered = sent
        .iter()
        .filter(|(text, recipients)| {
            recipients.iter().all(|j| {
                demo.sim
                    .node(nodes[*j])
                    .events
                    .iter()
                    .any(|(_, e)| matches!(e, Event::Message { text: t, .. } if t == text))
            })
        })
        .count();
    let views: Vec<_> = nodes[..victim]
        .iter()
        .filter_map(|id| demo.sim.node(*id).engine.group(&group))
        .collect();
    Summary::of(&Outcome {
        members: n,
        joined,
        sent: sent.len(),
        delivered,
        readable_after_removal: readable,
        views: &views,
    })
    .print(args.json)
}
