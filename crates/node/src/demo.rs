//! `demls demo`: a whole group in one process, told as a story, with a JSON summary.

use clap::Args;
use demls_engine::{
    Engine, EngineConfig, Event, GroupId, GroupParams, MlsSigner, MlsStore, Timestamp, TopicKind,
};
use demls_identity::{Address, Wallet};
use demls_sim::{NetConfig, NodeId, Sim};
use serde::Serialize;

use crate::story::Names;

/// Options of `demls demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Members in the group, the steward included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=200))]
    pub members: u16,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Seed of the simulated network's latencies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The summary line whose fields the README documents.
#[derive(Serialize)]
struct Summary {
    members: usize,
    joined: usize,
    final_epoch: u64,
    messages_sent: usize,
    messages_delivered: usize,
    removed_member_can_decrypt: bool,
    epoch_authenticators_agree: bool,
}

type DemoError = Box<dyn std::error::Error>;

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
        e.create_group(group.clone(), GroupParams::default(), now)
    })?;
    for id in &nodes[1..] {
        demo.sim
            .act(*id, |e, now| e.request_join(group.clone(), None, now))?;
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
    demo.sim.act(nodes[1], |e, now| {
        e.propose_remove(&group, victim_address, now)
    })?;
    demo.run_until_members(victim, 120_000);

    println!(
        "\n== the group talks on without {} ==",
        demo.names.of(&victim_address)
    );
    sent.extend(demo.chat_round(victim, |i| format!("after the removal, member {i} says hi"))?);

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
        .filter(|(_, e)| matches!(e, Event::Message { text, .. } if text.starts_with("after the removal")))
        .count();
    demo.narrate();
    println!(
        "🔒 holding all its pre-removal keys, {} tried {} ciphertexts sent after its removal: {} readable ({} refused outright)",
        demo.names.of(&victim_address),
        captured.len(),
        readable,
        refused
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
    let agree = views.len() == victim
        && views
            .windows(2)
            .all(|w| w[0].epoch == w[1].epoch && w[0].authenticator == w[1].authenticator);
    let summary = Summary {
        members: n,
        joined,
        final_epoch: views.first().map_or(0, |v| v.epoch.0),
        messages_sent: sent.len(),
        messages_delivered: delivered,
        removed_member_can_decrypt: readable > 0,
        epoch_authenticators_agree: agree,
    };
    println!(
        "\n== summary: {joined}/{n} joined, epoch {}, {delivered}/{} messages delivered to every member, authenticators agree: {agree} ==",
        summary.final_epoch, summary.messages_sent
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}
