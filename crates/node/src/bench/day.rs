//! `demls bench day`: a day in the life of a group on the simulated network.
//!
//! A group of N members (small consensus) is formed at once and put on the
//! deterministic simulator as for `demls bench network`. Then a script runs
//! over one virtual day: members join (invited, through the real protocol),
//! leave and replace their keys (self-updates), evenly spread over the day;
//! chat messages are sent evenly over the day by members in turn; one steward
//! goes offline for a while (or for good) and comes back; a share of the plain
//! members is cut off by a network partition that heals. After the day the
//! network runs until every member is on the same epoch and branch with every
//! chat message delivered, or a settling time passes.
//!
//! Reported: engine compute (the simulator's per-node wall-clock time inside
//! engine calls), messages and bytes sent and received, per member; for each
//! change, when members applied it (virtual milliseconds from the request), and
//! the slowest change at its 99th percentile of members; whether the members
//! ended on one epoch and branch; how many chat deliveries are missing; what
//! every node published, by kind of envelope (announcements, commits, MLS
//! application messages, ...).
//!
//! Each simulated member is a whole engine that really decrypts every message:
//! the cost of a run grows with members times messages (see `docs/performance.md`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use clap::Args;
use demls_engine::bench_support::Founder;
use demls_engine::{
    ChangeKind, EngineConfig, Event, GroupParams, ProposalId, RotationRule, StewardMode, Timestamp,
};
use demls_identity::Address;
use demls_sim::{NodeId, Sim};
use serde_json::{Value, json};

use super::envelope_kind::KindCounts;
use super::network::{Formed, NetArgs};
use super::{BenchResult, bench_group, proc_status_bytes, quantile};

/// Options of `demls bench day`.
#[derive(Args, Debug)]
pub struct DayArgs {
    /// Members of the group at the start of the day.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(3..))]
    members: u32,
    /// Stewards in the list (small consensus: they vote on membership changes).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u16).range(1..))]
    stewards: u16,
    /// Length of the day, in seconds of virtual time.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..))]
    day_secs: u64,
    /// Chat messages sent over the day.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Members that join over the day (invited by the creator).
    #[arg(long, default_value_t = 10)]
    joins: u32,
    /// Plain members that leave over the day.
    #[arg(long, default_value_t = 10)]
    leaves: u32,
    /// Self-updates (members replacing their leaf keys) over the day.
    #[arg(long, default_value_t = 10)]
    updates: u32,
    /// How long the failed steward stays offline, in virtual seconds (the day's length or
    /// more: for good).
    #[arg(long, default_value_t = 3_600)]
    steward_down_secs: u64,
    /// How long the partition lasts, in virtual seconds (0: none).
    #[arg(long, default_value_t = 600)]
    partition_secs: u64,
    /// Share of the members cut off by the partition (plain members only).
    #[arg(long, default_value_t = 0.1)]
    partition_share: f64,
    /// After the day, how long the network may run for every member to agree and every
    /// chat message to arrive, in virtual seconds.
    #[arg(long, default_value_t = 600)]
    settle_secs: u64,
    /// Stop the script when this much wall-clock time has passed since the start, setup
    /// included (0: never), and report how far the day got.
    #[arg(long, default_value_t = 0)]
    wall_limit_secs: u64,
    #[command(flatten)]
    net: NetArgs,
    /// One JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// What the script does at some point of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// A new node asks to join, invited by the creator.
    Join,
    /// This member leaves.
    Leave(NodeId),
    /// This member replaces its leaf keys.
    Update(NodeId),
    /// The next member in turn sends chat message number `.0`.
    Chat(u64),
    /// This steward goes offline.
    StewardDown(NodeId),
    /// It comes back.
    StewardUp(NodeId),
    /// The script's partitioned members are cut off from the others.
    PartitionStart,
    /// The partition heals.
    PartitionHeal,
}

/// A membership or key change and who applied it when.
struct Change {
    kind: &'static str,
    /// Virtual ms from the start of the day.
    requested_at: u64,
    requested: Timestamp,
    /// Members that must apply it: the members when it was requested, its subject left out.
    audience: usize,
    /// Per member that applied it: virtual ms from the request.
    applied: BTreeMap<NodeId, u64>,
    /// The subject's own completion (joined; removed), in virtual ms from the request.
    subject_ms: Option<u64>,
}

impl Change {
    fn record(&mut self, node: NodeId, at: Timestamp) {
        self.applied
            .entry(node)
            .or_insert_with(|| at.0.saturating_sub(self.requested.0));
    }

    /// Virtual ms by which a share `q` of the audience applied it, if that many did.
    fn by_share(&self, q: f64) -> Option<u64> {
        let needed = (q * self.audience as f64).ceil() as usize;
        let latencies: Vec<u64> = self.applied.values().copied().collect();
        (latencies.len() >= needed.max(1)).then(|| {
            let mut sorted = latencies;
            sorted.sort_unstable();
            sorted[needed.max(1) - 1]
        })
    }

    fn report(&self) -> Value {
        json!({
            "kind": self.kind,
            "requested_at_s": self.requested_at as f64 / 1000.0,
            "audience": self.audience,
            "applied_by": self.applied.len(),
            "subject_ms": self.subject_ms,
            "median_ms": self.by_share(0.5),
            "p99_ms": self.by_share(0.99),
            "all_ms": self.by_share(1.0),
        })
    }
}

/// A set of node indices.
#[derive(Clone, Default)]
struct Nodes(Vec<u64>);

impl Nodes {
    fn insert(&mut self, id: NodeId) -> bool {
        let (word, bit) = (id.0 / 64, 1u64 << (id.0 % 64));
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let new = self.0[word] & bit == 0;
        self.0[word] |= bit;
        new
    }

    fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// How many of `self` are not in `other`.
    fn missing_from(&self, other: &Nodes) -> usize {
        self.0
            .iter()
            .enumerate()
            .map(|(i, w)| (w & !other.0.get(i).copied().unwrap_or(0)).count_ones() as usize)
            .sum()
    }
}

/// One chat message: who must get it and who did.
struct Said {
    sender: NodeId,
    recipients: Nodes,
    got: Nodes,
    sent: Timestamp,
    /// Virtual ms from sending to its last recipient so far.
    last_ms: u64,
}

struct Day {
    sim: Sim,
    config: EngineConfig,
    start: Timestamp,
    creator: NodeId,
    /// Members as the script knows them (joiners once joined, leavers gone from their request).
    active: Vec<NodeId>,
    /// Members that leave during the day: never chat senders nor counted as recipients.
    leavers: BTreeSet<NodeId>,
    /// Joiners not yet in.
    joining: BTreeSet<NodeId>,
    offline: BTreeSet<NodeId>,
    partitioned: Vec<NodeId>,
    address_of: HashMap<Address, NodeId>,
    changes: Vec<Change>,
    /// Open changes by what they change (kind and subject).
    open: HashMap<(&'static str, Address), usize>,
    /// Per node: its update proposals, for the change they carry.
    update_proposals: HashMap<(NodeId, ProposalId), Address>,
    /// Chat messages by number (`None`: the send failed).
    said: Vec<Option<Said>>,
    send_failures: u64,
    duplicates: u64,
    next_sender: usize,
    /// What every node published over the day, by kind (the wiretap, drained as it goes).
    published: KindCounts,
}

impl Day {
    fn ms_into_day(&self) -> u64 {
        self.sim.now().0.saturating_sub(self.start.0)
    }

    /// Registers a change requested now.
    fn requested(&mut self, kind: &'static str, subject: Address) {
        let audience = self
            .active
            .iter()
            .filter(|id| self.sim.node(**id).engine.address() != subject)
            .count();
        self.open.insert((kind, subject), self.changes.len());
        self.changes.push(Change {
            kind,
            requested_at: self.ms_into_day(),
            requested: self.sim.now(),
            audience,
            applied: BTreeMap::new(),
            subject_ms: None,
        });
    }

    fn change(&mut self, kind: &'static str, subject: Address) -> Option<&mut Change> {
        let index = *self.open.get(&(kind, subject))?;
        self.changes.get_mut(index)
    }

    fn act(&mut self, action: Action) -> BenchResult<()> {
        let group = bench_group();
        match action {
            Action::Join => {
                let engine = Founder::generate_engine(&self.config)?;
                let joiner = self.sim.add(engine);
                let address = self.sim.node(joiner).engine.address();
                self.address_of.insert(address, joiner);
                let invitation = self.sim.act(self.creator, |e, now| {
                    e.invite(&group, address, now.plus_ms(24 * 3_600_000), now)
                })?;
                self.requested("join", address);
                self.joining.insert(joiner);
                self.sim.act(joiner, |e, now| {
                    e.request_join_invited(group.clone(), &invitation, now)
                })?;
            }
            Action::Leave(id) => {
                let address = self.sim.node(id).engine.address();
                self.active.retain(|a| *a != id);
                self.requested("leave", address);
                self.sim.act(id, |e, now| e.leave(&group, now))?;
            }
            Action::Update(id) => {
                let address = self.sim.node(id).engine.address();
                self.requested("update", address);
                self.sim.act(id, |e, now| e.rotate(&group, now))?;
            }
            Action::Chat(index) => self.chat(index),
            Action::StewardDown(id) => {
                self.sim.node_mut(id).online = false;
                self.offline.insert(id);
            }
            Action::StewardUp(id) => {
                self.sim.node_mut(id).online = true;
                self.offline.remove(&id);
            }
            Action::PartitionStart => {
                for id in self.partitioned.clone() {
                    self.sim.node_mut(id).partition = 1;
                }
            }
            Action::PartitionHeal => {
                for id in self.partitioned.clone() {
                    self.sim.node_mut(id).partition = 0;
                }
            }
        }
        Ok(())
    }

    /// The next member in turn that is online and stays the day says message `index`.
    fn chat(&mut self, index: u64) {
        let group = bench_group();
        let talkers = self.active.len();
        debug_assert_eq!(self.said.len() as u64, index);
        let Some(sender) = (0..talkers)
            .map(|i| self.active[(self.next_sender + i) % talkers])
            .find(|id| !self.leavers.contains(id) && !self.offline.contains(id))
        else {
            self.send_failures += 1;
            self.said.push(None);
            return;
        };
        self.next_sender += 1;
        let Some(view) = self.sim.node(sender).engine.group(&group) else {
            self.send_failures += 1;
            self.said.push(None);
            return;
        };
        let mut recipients = Nodes::default();
        for member in &view.members {
            if let Some(id) = self.address_of.get(member)
                && *id != sender
                && !self.leavers.contains(id)
            {
                recipients.insert(*id);
            }
        }
        let text = format!("c{index}");
        match self
            .sim
            .act(sender, |e, now| e.send_message(&group, &text, now))
        {
            Ok(()) => self.said.push(Some(Said {
                sender,
                recipients,
                got: Nodes::default(),
                sent: self.sim.now(),
                last_ms: 0,
            })),
            Err(_) => {
                self.send_failures += 1;
                self.said.push(None);
            }
        }
    }

    /// Takes in every node's events since the last call.
    fn observe(&mut self) {
        for (_, transmit) in std::mem::take(&mut self.sim.wiretap) {
            self.published.add(&transmit.payload);
        }
        for id in self.sim.ids() {
            let events = self.sim.take_events(id);
            for (at, event) in events {
                self.observe_one(id, at, event);
            }
        }
    }

    fn observe_one(&mut self, id: NodeId, at: Timestamp, event: Event) {
        match event {
            Event::Message { text, .. } => {
                let Some(index) = text.strip_prefix('c').and_then(|n| n.parse::<usize>().ok())
                else {
                    return;
                };
                let Some(Some(said)) = self.said.get_mut(index) else {
                    return;
                };
                if said.sender == id {
                    return;
                }
                if said.got.insert(id) {
                    said.last_ms = said.last_ms.max(at.0.saturating_sub(said.sent.0));
                } else {
                    self.duplicates += 1;
                }
            }
            Event::Joined { .. } if self.joining.remove(&id) => {
                self.active.push(id);
                let address = self.sim.node(id).engine.address();
                if let Some(change) = self.change("join", address) {
                    change.subject_ms = Some(at.0.saturating_sub(change.requested.0));
                }
            }
            Event::Removed { .. } => {
                let address = self.sim.node(id).engine.address();
                if let Some(change) = self.change("leave", address) {
                    change.subject_ms = Some(at.0.saturating_sub(change.requested.0));
                }
            }
            Event::EpochChanged { added, removed, .. } => {
                for (kind, subjects) in [("join", added), ("leave", removed)] {
                    for subject in subjects {
                        if let Some(change) = self.change(kind, subject) {
                            change.record(id, at);
                        }
                    }
                }
            }
            Event::ProposalOpened {
                proposal,
                change: ChangeKind::Update(owner),
                ..
            } => {
                self.update_proposals.insert((id, proposal), owner);
            }
            Event::ProposalClosed {
                proposal,
                committed,
                ..
            } => {
                let Some(owner) = self.update_proposals.remove(&(id, proposal)) else {
                    return;
                };
                let own = self.address_of.get(&owner) == Some(&id);
                if committed.is_some()
                    && let Some(change) = self.change("update", owner)
                {
                    if own {
                        change.subject_ms = Some(at.0.saturating_sub(change.requested.0));
                    } else {
                        change.record(id, at);
                    }
                }
            }
            _ => {}
        }
    }

    /// Chat deliveries still missing: recipients that did not get a message.
    fn missing(&self) -> usize {
        self.said
            .iter()
            .flatten()
            .map(|s| s.recipients.missing_from(&s.got))
            .sum()
    }

    /// The distinct (epoch, authenticator) pairs among the active members, and how many
    /// active members are not in the group at all.
    fn branches(&self) -> (BTreeSet<(u64, Vec<u8>, usize)>, usize) {
        let group = bench_group();
        let mut branches = BTreeSet::new();
        let mut outside = 0;
        for id in &self.active {
            match self.sim.node(*id).engine.group(&group) {
                Some(view) => {
                    branches.insert((view.epoch.0, view.authenticator, view.members.len()));
                }
                None => outside += 1,
            }
        }
        (branches, outside)
    }

    fn settled(&self) -> bool {
        let (branches, outside) = self.branches();
        outside == 0
            && self.joining.is_empty()
            && branches.len() == 1
            && branches
                .first()
                .is_some_and(|(_, _, members)| *members == self.active.len())
            && self.missing() == 0
    }
}

/// Who does what over the day: the script, in order of time (virtual ms from the start).
struct Script {
    actions: Vec<(u64, Action)>,
    leavers: BTreeSet<NodeId>,
    partitioned: Vec<NodeId>,
    failed_steward: Option<NodeId>,
}

impl Script {
    fn new(args: &DayArgs, members: &[NodeId], stewards: &BTreeSet<NodeId>) -> Self {
        let day = args.day_secs * 1000;
        let creator = members[0];
        let plain: Vec<NodeId> = members[1..]
            .iter()
            .copied()
            .filter(|id| !stewards.contains(id))
            .collect();
        // Leavers from the end of the plain members, the partition before them, updaters
        // from the start (the creator, who invites, stays in and connected).
        let leaving = (args.leaves as usize).min(plain.len());
        let leavers: Vec<NodeId> = plain[plain.len() - leaving..].to_vec();
        let rest = &plain[..plain.len() - leaving];
        let cut = if args.partition_secs == 0 {
            0
        } else {
            ((args.partition_share * members.len() as f64).round() as usize)
                .max(1)
                .min(rest.len().saturating_sub(1))
        };
        let partitioned = rest[rest.len() - cut..].to_vec();
        let updaters: Vec<NodeId> = match &rest[..rest.len() - cut] {
            [] => vec![creator],
            some => some.to_vec(),
        };
        let mut changes = Vec::new();
        let most = args.joins.max(args.leaves).max(args.updates) as usize;
        for i in 0..most {
            if i < args.joins as usize {
                changes.push(Action::Join);
            }
            if let Some(id) = leavers.get(i) {
                changes.push(Action::Leave(*id));
            }
            if i < args.updates as usize {
                changes.push(Action::Update(updaters[i % updaters.len()]));
            }
        }
        let spread = |k: usize, of: usize| day * (k as u64 + 1) / (of as u64 + 1);
        let mut actions: Vec<(u64, Action)> = changes
            .iter()
            .enumerate()
            .map(|(k, action)| (spread(k, changes.len()), *action))
            .collect();
        let failed_steward = stewards.iter().copied().rfind(|id| *id != creator);
        if let Some(id) = failed_steward {
            let down = day / 4;
            actions.push((down, Action::StewardDown(id)));
            let up = down + args.steward_down_secs * 1000;
            if up < day {
                actions.push((up, Action::StewardUp(id)));
            }
        }
        if !partitioned.is_empty() {
            let start = day * 3 / 5;
            actions.push((start, Action::PartitionStart));
            actions.push((start + args.partition_secs * 1000, Action::PartitionHeal));
        }
        for i in 0..args.messages {
            actions.push(((2 * i + 1) * day / (2 * args.messages), Action::Chat(i)));
        }
        actions.sort_by_key(|(at, _)| *at);
        Self {
            actions,
            leavers: leavers.into_iter().collect(),
            partitioned,
            failed_steward,
        }
    }

    /// When the first action of some kind happens, in virtual seconds.
    fn first(&self, pick: impl Fn(&Action) -> bool) -> Option<f64> {
        self.actions
            .iter()
            .find(|(_, a)| pick(a))
            .map(|(at, _)| *at as f64 / 1000.0)
    }
}

/// Runs `demls bench day`.
pub fn run(args: &DayArgs) -> BenchResult<()> {
    let wall = Instant::now();
    let config = EngineConfig::default();
    let day_ms = args.day_secs * 1000;
    // Every founder's keys are made at the same instant: with the default rotation by age
    // (24 h) all of them would replace their keys at once at the end of the day. The
    // scripted updates stand for rotations instead.
    let no_rotation_by_age =
        u32::try_from(2 * (args.day_secs + args.settle_secs)).unwrap_or(u32::MAX);
    let params = GroupParams {
        mode: StewardMode::Small,
        sn_min: args.stewards,
        sn_max: args.stewards,
        rotation: RotationRule {
            after_secs: no_rotation_by_age,
            ..RotationRule::default()
        },
        ..GroupParams::default()
    };
    let formed = Formed::new(args.members, params, &config, &args.net)?;
    let setup_wall = wall.elapsed();
    let address_of: HashMap<Address, NodeId> = formed
        .members
        .iter()
        .map(|id| (formed.sim.node(*id).engine.address(), *id))
        .collect();
    let stewards: BTreeSet<NodeId> = formed
        .view
        .stewards
        .iter()
        .filter_map(|a| address_of.get(a).copied())
        .collect();
    let script = Script::new(args, &formed.members, &stewards);
    let start = formed.sim.now();
    let mut sim = formed.sim;
    sim.enable_wiretap();
    let mut day = Day {
        sim,
        config,
        start,
        creator: formed.members[0],
        active: formed.members.clone(),
        leavers: script.leavers.clone(),
        joining: BTreeSet::new(),
        offline: BTreeSet::new(),
        partitioned: script.partitioned.clone(),
        address_of,
        changes: Vec::new(),
        open: HashMap::new(),
        update_proposals: HashMap::new(),
        said: Vec::new(),
        send_failures: 0,
        duplicates: 0,
        next_sender: 0,
        published: KindCounts::default(),
    };
    let limit =
        (args.wall_limit_secs > 0).then(|| std::time::Duration::from_secs(args.wall_limit_secs));
    let mut refused = Vec::new();
    let mut completed = true;
    let mut hour = 0;
    let day_start = Instant::now();
    for (at, action) in &script.actions {
        if limit.is_some_and(|limit| wall.elapsed() > limit) {
            completed = false;
            break;
        }
        day.sim.run_for(at.saturating_sub(day.ms_into_day()));
        day.observe();
        if let Err(error) = day.act(*action) {
            refused.push(format!("{action:?} at {} s: {error}", at / 1000));
        }
        if at / 3_600_000 > hour {
            hour = at / 3_600_000;
            eprintln!(
                "day: {hour} h of virtual time after {:.0} s of wall-clock time",
                day_start.elapsed().as_secs_f64()
            );
        }
    }
    if completed {
        day.sim.run_for(day_ms.saturating_sub(day.ms_into_day()));
        day.observe();
    }
    let reached_ms = day.ms_into_day();
    let day_wall = day_start.elapsed();
    // After the day: until every member agrees and every message arrived, or time is up.
    let settle_start = day.sim.now();
    let mut settled = day.settled();
    while completed && !settled && day.sim.now().0 < settle_start.0 + args.settle_secs * 1000 {
        day.sim.run_for(10_000);
        day.observe();
        settled = day.settled();
    }
    let settle_ms = day.sim.now().0 - settle_start.0;
    let line = report(
        args,
        &day,
        &script,
        Outcome {
            completed,
            reached_ms,
            settled,
            settle_ms,
            refused,
            setup: formed.setup.report(args.members),
            setup_wall_s: setup_wall.as_secs_f64(),
            day_wall_s: day_wall.as_secs_f64(),
            wall_s: wall.elapsed().as_secs_f64(),
        },
    );
    if args.json {
        println!("{line}");
    } else {
        print_summary(&line);
    }
    Ok(())
}

/// How the run went, for the report.
struct Outcome {
    completed: bool,
    reached_ms: u64,
    settled: bool,
    settle_ms: u64,
    refused: Vec<String>,
    setup: Value,
    setup_wall_s: f64,
    day_wall_s: f64,
    wall_s: f64,
}

fn report(args: &DayArgs, day: &Day, script: &Script, outcome: Outcome) -> Value {
    let nodes: Vec<NodeId> = day.sim.ids().collect();
    let n = nodes.len() as f64;
    let mut compute = Vec::new();
    let (mut sent, mut bytes_sent, mut received, mut bytes_received) = (0, 0, 0, 0);
    for id in &nodes {
        let traffic = day.sim.node(*id).traffic;
        compute.push(traffic.compute.as_micros() as u64);
        sent += traffic.messages_sent;
        bytes_sent += traffic.bytes_sent;
        received += traffic.messages_received;
        bytes_received += traffic.bytes_received;
    }
    let per = |total: u64| (total as f64 / n * 100.0).round() / 100.0;
    let total_compute: u64 = compute.iter().sum();
    let changes: Vec<Value> = day.changes.iter().map(Change::report).collect();
    let slowest = day
        .changes
        .iter()
        .filter_map(|c| c.by_share(0.99).map(|p99| (p99, c)))
        .max_by_key(|(p99, _)| *p99)
        .map(|(p99, c)| json!({ "kind": c.kind, "requested_at_s": c.requested_at as f64 / 1000.0, "p99_ms": p99 }));
    let short_of_99 = day
        .changes
        .iter()
        .filter(|c| c.by_share(0.99).is_none())
        .count();
    let said: Vec<&Said> = day.said.iter().flatten().collect();
    let expected: usize = said.iter().map(|s| s.recipients.len()).sum();
    let slowest_delivery = said.iter().map(|s| s.last_ms).max();
    let (branches, outside) = day.branches();
    let mut drops: Vec<(String, usize)> = day.sim.drop_counts().into_iter().collect();
    drops.sort_by_key(|d| std::cmp::Reverse(d.1));
    drops.truncate(8);
    let settings = json!({
        "bench": "day",
        "consensus": "small",
        "members": args.members,
        "stewards": args.stewards,
        "day_secs": args.day_secs,
        "messages_planned": args.messages,
        "joins": args.joins,
        "leaves": args.leaves,
        "updates": args.updates,
        "latency_ms": args.net.latency_ms,
        "jitter_ms": args.net.jitter_ms,
        "loss": args.net.loss,
        "seed": args.net.seed,
    });
    let status = json!({
        "completed": outcome.completed,
        "virtual_s_reached": outcome.reached_ms as f64 / 1000.0,
        "settled": outcome.settled,
        "settle_s": outcome.settle_ms as f64 / 1000.0,
        "members_end": day.active.len(),
        "branches": branches.len(),
        "members_outside": outside,
        "chat": {
            "sent": said.len(),
            "send_failures": day.send_failures,
            "deliveries_expected": expected,
            "deliveries_missing": day.missing(),
            "duplicates": day.duplicates,
            "slowest_delivery_ms": slowest_delivery,
        },
    });
    let costs = json!({
        "changes": changes,
        "slowest_change": slowest,
        "changes_short_of_99pct": short_of_99,
        "refused": outcome.refused,
        "per_member": {
            "compute_ms": per(total_compute) / 1000.0,
            "messages_sent": per(sent),
            "bytes_sent": per(bytes_sent),
            "messages_received": per(received),
            "bytes_received": per(bytes_received),
        },
        "published_by_kind": day.published.report(),
        "compute_ms_median_node": quantile(&compute, 0.5) as f64 / 1000.0,
        "compute_ms_max_node": compute.iter().max().copied().unwrap_or_default() as f64 / 1000.0,
        "nodes": nodes.len(),
        "steward_failure": {
            "down_at_s": script.first(|a| matches!(a, Action::StewardDown(_))),
            "up_at_s": script.first(|a| matches!(a, Action::StewardUp(_))),
            "steward": script.failed_steward.map(|id| id.0),
        },
        "partition": {
            "nodes": script.partitioned.len(),
            "at_s": script.first(|a| matches!(a, Action::PartitionStart)),
            "healed_at_s": script.first(|a| matches!(a, Action::PartitionHeal)),
        },
        "drops": drops
            .into_iter()
            .map(|(reason, count)| (reason, json!(count)))
            .collect::<serde_json::Map<String, Value>>(),
        "rss_end_bytes": proc_status_bytes("VmRSS"),
        "setup": outcome.setup,
        "setup_wall_s": outcome.setup_wall_s,
        "day_wall_s": outcome.day_wall_s,
        "wall_s": outcome.wall_s,
    });
    let mut line = settings;
    if let (Some(line), Some(status), Some(costs)) =
        (line.as_object_mut(), status.as_object(), costs.as_object())
    {
        line.extend(status.clone());
        line.extend(costs.clone());
    }
    line
}

/// The report in a few lines.
fn print_summary(line: &Value) {
    let chat = &line["chat"];
    println!(
        "{} members, {} s of virtual time (completed: {}), wall {:.0} s (setup {:.0} s)",
        line["members"],
        line["virtual_s_reached"],
        line["completed"],
        line["wall_s"].as_f64().unwrap_or_default(),
        line["setup_wall_s"].as_f64().unwrap_or_default()
    );
    println!(
        "settled: {} after {} s; branches: {}; members outside: {}",
        line["settled"], line["settle_s"], line["branches"], line["members_outside"]
    );
    println!(
        "chat: {} sent, {} failed, {} of {} deliveries missing, {} duplicates",
        chat["sent"],
        chat["send_failures"],
        chat["deliveries_missing"],
        chat["deliveries_expected"],
        chat["duplicates"]
    );
    println!(
        "slowest change (99 % of members): {}; changes short of 99 %: {}",
        line["slowest_change"], line["changes_short_of_99pct"]
    );
    println!("per member: {}", line["per_member"]);
}
