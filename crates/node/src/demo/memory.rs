//! `demls demo --transport memory`: the group on the simulated network (deterministic for a seed).

use demls_engine::{ChangeKind, Engine, Event, GroupId, MlsSigner, MlsStore, Timestamp, TopicKind};
use demls_identity::{Address, Wallet};
use demls_sim::{NetConfig, NodeId, Sim};

use super::{
    AFTER_REMOVAL, DemoArgs, DemoError, INVITATION_MS, Outcome, Summary, after_removal,
    approved_update, engine_config, feed, mark, rotating, tell_key_updates, tell_lockout,
    tell_rotation, tell_theft, updates_committed,
};
use crate::story::Names;

/// A scenario on the simulated network, narrating as it goes.
struct Demo {
    sim: Sim,
    nodes: Vec<NodeId>,
    /// Each node's keys and MLS store (a thief's loot).
    secrets: Vec<(Wallet, MlsSigner, MlsStore)>,
    names: Names,
    cursors: Vec<usize>,
    group: GroupId,
}

impl Demo {
    fn new(members: usize, seed: u64) -> Result<Self, DemoError> {
        let mut sim = Sim::new(NetConfig {
            seed,
            latency_ms: 40,
            jitter_ms: 30,
            ..NetConfig::default()
        });
        let mut nodes = Vec::new();
        let mut secrets = Vec::new();
        for _ in 0..members {
            let (wallet, signer, store) = (
                Wallet::generate(),
                MlsSigner::generate()?,
                MlsStore::in_memory(4),
            );
            let engine = Engine::new(wallet.clone(), &signer, engine_config(), store.clone());
            nodes.push(sim.add(engine));
            secrets.push((wallet, signer, store));
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
            secrets,
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

    /// A copy of node `i`'s whole state, everything a restart restores it from (its keys,
    /// its MLS state with the past epochs it keeps, its protocol state), restored as the
    /// thief's engine.
    fn steal(&mut self, i: usize) -> Result<Engine, DemoError> {
        let now = self.sim.now();
        let engine = &mut self.sim.node_mut(self.nodes[i]).engine;
        // Writes the node's current MLS state into its store (its journal is off).
        engine.take_storage_writes()?;
        let snapshot = engine.snapshot()?;
        let (wallet, signer, store) = &self.secrets[i];
        let config = engine_config();
        Ok(Engine::restore(
            wallet.clone(),
            signer,
            config,
            store.copy_all(),
            &snapshot,
            now,
        )?)
    }

    /// The payloads on the application topic from wiretap position `from`.
    fn captured(&self, from: usize) -> Vec<Vec<u8>> {
        self.sim.wiretap[from..]
            .iter()
            .filter(|(_, t)| t.topic.kind == TopicKind::Application)
            .map(|(_, t)| t.payload.clone())
            .collect()
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
    // Listening from the start, the eavesdropper hears every commit the thief must follow.
    demo.sim.enable_wiretap();

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

    let mark = mark(n);
    let mark_name = demo.names.of(&demo.address(mark));
    println!("\n== a thief copies {mark_name}'s whole state and listens to the group ==");
    let mut thief = demo.steal(mark)?;

    // The updates, approved at once, wait for the next commit: the removal's takes them
    // along (or, if that is more than `UPDATE_BATCH_MS` away, a commit of their own).
    let rotating: Vec<usize> = rotating(n).collect();
    let updaters: Vec<Address> = rotating.iter().map(|i| demo.address(*i)).collect();
    tell_rotation(&demo.names, &updaters);
    let asked = demo
        .sim
        .node(nodes[0])
        .engine
        .group(&group)
        .map(|v| v.epoch)
        .unwrap_or_default();
    let victim = n - 1;
    let others = nodes[..victim].to_vec();
    let seen_before: Vec<usize> = others
        .iter()
        .map(|id| demo.sim.node(*id).events.len())
        .collect();
    for i in &rotating {
        demo.sim.act(nodes[*i], |e, now| e.rotate(&group, now))?;
    }

    println!("\n== everyone talks ==");
    let mut sent = demo.chat_round(n, |i| format!("hello from member {i}"))?;

    let victim_address = demo.address(victim);
    // The removed member keeps every key it had before its removal: it is cut off from
    // the network now and stays in its old epoch.
    demo.sim.node_mut(nodes[victim]).online = false;
    let removal_from = demo.sim.wiretap.len();
    // The removal is proposed once every member knows the updates approved, so that
    // whoever commits it can take them along.
    demo.run_until(10_000, |sim| {
        others.iter().zip(&seen_before).all(|(id, from)| {
            let node = sim.node(*id);
            updaters.iter().all(|u| {
                *u == node.engine.address()
                    || node.events[*from..]
                        .iter()
                        .any(|(_, e)| approved_update(e) == Some(*u))
            })
        })
    });

    println!(
        "\n== {} proposes removing {} ==",
        demo.names.of(&demo.address(1)),
        demo.names.of(&victim_address)
    );
    // Removing someone takes a majority of people: the others agree ahead of the vote.
    for id in nodes[..victim].iter().filter(|id| **id != nodes[1]) {
        demo.sim.act(*id, |e, now| {
            e.decide(&group, ChangeKind::Remove(victim_address), true, now)
        })?;
    }
    demo.sim.act(nodes[1], |e, now| {
        e.propose_remove(&group, victim_address, now)
    })?;
    demo.run_until(120_000, |sim| {
        let views: Vec<_> = others
            .iter()
            .filter_map(|id| sim.node(*id).engine.group(&group))
            .collect();
        views.len() == victim
            && views.iter().all(|v| v.members.len() == victim)
            && updates_committed(&views, &updaters, asked)
    });
    tell_key_updates(
        &demo.names,
        demo.sim.node(nodes[0]).engine.group(&group).as_ref(),
        asked,
    );

    println!(
        "\n== the group talks on without {}, with new keys ==",
        demo.names.of(&victim_address)
    );
    sent.extend(demo.chat_round(victim, |i| format!("{AFTER_REMOVAL}, member {i} says hi"))?);

    println!("\n== can the removed member read what follows? ==");
    let captured = demo.captured(removal_from);
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

    println!("\n== can the thief read what follows? ==");
    // All the topic carried: what the member had already processed when its state was
    // copied is refused as a repeat, what was still on its way is read.
    let ciphertexts = demo.captured(0);
    let (events, _) = feed(&mut thief, &ciphertexts, demo.sim.now());
    let readable_by_thief = tell_theft(&mark_name, ciphertexts.len(), &events);

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
        readable_by_thief,
        rotation_asked: asked,
        views: &views,
    })
    .print(args.json)
}
