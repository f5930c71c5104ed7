//! `demls bench network`: members admitted into a group on the simulated network.
//!
//! A group of N members is formed at once (`form_group_at_once`: one batch
//! commit installing the steward list the election rule gives, every member
//! joining from its Welcome), put on the deterministic simulator
//! (`demls_sim`) with per-delivery latency and loss, and left to run its
//! timers for a moment. Then, one after the other, new nodes ask to join
//! through the real protocol: join request sealed to a steward, the vote,
//! the commit and its Welcome, applied by everyone. Each admission reports
//! its latency from the join request, in milliseconds of virtual time and in
//! one-way network delays (the configured mean latency), and what every
//! node published meanwhile, by kind. Virtual time costs nothing; the
//! computation is reported separately, as wall-clock time.
//!
//! Also reported: messages and bytes sent and received per member for the
//! change (announcements included), and the memory the formed group takes
//! per member (resident set size of this process before the founders were
//! made and after the group settled on the network, divided by N).

use std::collections::BTreeMap;
use std::time::Instant;

use clap::{Args, ValueEnum};
use demls_engine::bench_support::{Founder, form_group_at_once};
use demls_engine::{EngineConfig, Epoch, Event, GroupParams, GroupView, StewardMode, Timestamp};
use demls_identity::Address;
use demls_sim::{NetConfig, NodeId, Sim};
use serde_json::{Value, json};

use super::envelope_kind::{Kind, KindCounts};
use super::{BenchResult, bench_group, median, ms, proc_status_bytes, quantile, wall_now};

/// Who votes on membership changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consensus {
    /// Every member votes on every change.
    Big,
    /// Only the stewards vote on membership changes.
    Small,
}

/// Options of `demls bench network`.
#[derive(Args, Debug)]
pub struct NetworkArgs {
    /// Members of the group before the admissions.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..))]
    members: u32,
    /// Who votes on membership changes.
    #[arg(long, value_enum, default_value_t = Consensus::Small)]
    consensus: Consensus,
    /// Stewards in the list (the smallest and largest list size).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    stewards: u16,
    /// Members admitted one after the other (each a membership change).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    joins: u32,
    #[command(flatten)]
    net: NetArgs,
    /// One JSON object per admission instead of a table.
    #[arg(long)]
    json: bool,
}

/// How the simulated network behaves (shared with `demls bench day`).
#[derive(Args, Debug)]
pub(super) struct NetArgs {
    /// Mean one-way latency of a delivery, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub(super) latency_ms: u64,
    /// Latency varies uniformly by up to this much either way.
    #[arg(long, default_value_t = 20)]
    pub(super) jitter_ms: u64,
    /// Probability that a delivery is lost.
    #[arg(long, default_value_t = 0.01)]
    pub(super) loss: f64,
    /// Seed of the network's randomness.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
}

impl NetArgs {
    /// The simulator's settings, starting at `start`.
    fn config(&self, start: Timestamp) -> NetConfig {
        NetConfig {
            seed: self.seed,
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            loss: self.loss,
            duplicate: 0.0,
            start,
        }
    }
}

/// The roles the traffic is broken down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Joiner,
    Steward,
    Member,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Joiner => "joiner",
            Self::Steward => "stewards",
            Self::Member => "members",
        }
    }
}

/// The result of one admission.
struct Admission {
    members_before: usize,
    /// Virtual milliseconds from the join request to the joiner's first epoch.
    joiner_ms: u64,
    /// Virtual milliseconds from the join request to each earlier member applying the commit.
    member_ms: Vec<u64>,
    wall_ms: f64,
    /// Per role: nodes, messages and bytes published (announcements left out), compute in
    /// ms (sums over the role's nodes).
    roles: BTreeMap<Role, (usize, u64, u64, f64)>,
    /// Per kind: messages and bytes published.
    kinds: KindCounts,
    /// Largest compute of one node, in ms.
    max_compute_ms: f64,
    /// Summed over every node (the joiner included): messages and bytes sent and received.
    traffic: Traffic,
}

/// Summed traffic of some nodes.
#[derive(Clone, Copy, Debug, Default)]
struct Traffic {
    messages_sent: u64,
    bytes_sent: u64,
    messages_received: u64,
    bytes_received: u64,
}

/// How long forming the group took, and what it takes in memory.
pub(super) struct Setup {
    /// Wall-clock ms: the founders' keys, [`form_group_at_once`], the 2 s settling on the network.
    founders_ms: f64,
    form_ms: f64,
    settle_ms: f64,
    /// Resident set size before the founders were made, after the settling, and the peak.
    rss_before: Option<u64>,
    rss_formed: Option<u64>,
    rss_peak: Option<u64>,
}

impl Setup {
    /// Wall-clock ms of the whole setup.
    pub(super) fn wall_ms(&self) -> f64 {
        self.founders_ms + self.form_ms + self.settle_ms
    }

    /// The setup as JSON, memory per member over `members`.
    pub(super) fn report(&self, members: u32) -> Value {
        let per_member = self
            .rss_before
            .zip(self.rss_formed)
            .map(|(before, after)| after.saturating_sub(before) / u64::from(members));
        json!({
            "founders_ms": self.founders_ms,
            "form_ms": self.form_ms,
            "settle_ms": self.settle_ms,
            "rss_before_bytes": self.rss_before,
            "rss_formed_bytes": self.rss_formed,
            "rss_peak_bytes": self.rss_peak,
            "memory_per_member_bytes": per_member,
        })
    }
}

/// A group of `members` formed at once ([`form_group_at_once`]) and put on the simulated
/// network, where it settled for 2 s of virtual time.
pub(super) struct Formed {
    /// The network.
    pub(super) sim: Sim,
    /// The members' nodes, the group's creator first.
    pub(super) members: Vec<NodeId>,
    /// The creator's view of the group.
    pub(super) view: GroupView,
    /// What forming took.
    pub(super) setup: Setup,
}

impl Formed {
    /// Forms the group with `params` on a network of `net`.
    pub(super) fn new(
        members: u32,
        params: GroupParams,
        config: &EngineConfig,
        net: &NetArgs,
    ) -> BenchResult<Self> {
        let rss_before = proc_status_bytes("VmRSS");
        let start = Instant::now();
        let now = wall_now();
        let founders = (0..members)
            .map(|_| Founder::generate(config))
            .collect::<Result<Vec<_>, _>>()?;
        let founders_ms = ms(start.elapsed());
        let start = Instant::now();
        let engines = form_group_at_once(&bench_group(), params, founders, config, now)?;
        let form_ms = ms(start.elapsed());
        let start = Instant::now();
        let mut sim = Sim::new(net.config(now));
        let members: Vec<NodeId> = engines.into_iter().map(|e| sim.add(e)).collect();
        for id in &members {
            sim.act(*id, |_, _| Ok(()))?;
        }
        let view = sim
            .node(members[0])
            .engine
            .group(&bench_group())
            .ok_or("the creator is not in the group")?;
        // Let the stewards announce the group and every timer of the new epoch settle.
        sim.run_for(2_000);
        let setup = Setup {
            founders_ms,
            form_ms,
            settle_ms: ms(start.elapsed()),
            rss_before,
            rss_formed: proc_status_bytes("VmRSS"),
            rss_peak: proc_status_bytes("VmHWM"),
        };
        Ok(Self {
            sim,
            members,
            view,
            setup,
        })
    }
}

struct Bench {
    sim: Sim,
    members: Vec<NodeId>,
    stewards: Vec<Address>,
    config: EngineConfig,
    epoch: Epoch,
    tap_seen: usize,
}

impl Bench {
    fn setup(args: &NetworkArgs) -> BenchResult<(Self, Setup)> {
        let config = EngineConfig::default();
        let params = GroupParams {
            mode: match args.consensus {
                Consensus::Big => StewardMode::Big,
                Consensus::Small => StewardMode::Small,
            },
            sn_min: args.stewards,
            sn_max: args.stewards,
            ..GroupParams::default()
        };
        let Formed {
            mut sim,
            members,
            view,
            setup,
        } = Formed::new(args.members, params, &config, &args.net)?;
        sim.enable_wiretap();
        Ok((
            Self {
                sim,
                members,
                stewards: view.stewards,
                config,
                epoch: view.epoch,
                tap_seen: 0,
            },
            setup,
        ))
    }

    /// Whether `id` reached `epoch`, and when (its first event there).
    fn reached(&self, id: NodeId, epoch: Epoch, joiner: bool) -> Option<Timestamp> {
        self.sim
            .node(id)
            .events
            .iter()
            .rev()
            .find_map(|(at, event)| match event {
                Event::EpochChanged { epoch: e, .. } if *e == epoch && !joiner => Some(*at),
                Event::Joined { epoch: e, .. } if *e == epoch && joiner => Some(*at),
                _ => None,
            })
    }

    fn admit(&mut self) -> BenchResult<Admission> {
        let group = bench_group();
        let target = Epoch(self.epoch.0 + 1);
        let before: Vec<_> = self.sim.ids().map(|id| self.sim.node(id).traffic).collect();
        self.tap_seen = self.sim.wiretap.len();
        let engine = Founder::generate_engine(&self.config)?;
        let joiner = self.sim.add(engine);
        // A member invites the joiner (with a new group's defaults nobody else gets in);
        // the invitation travels inside the join request and the proposal.
        let invitee = self.sim.node(joiner).engine.address();
        let invitation = self.sim.act(self.members[0], |e, now| {
            e.invite(&group, invitee, now.plus_ms(3_600_000), now)
        })?;
        let wall = Instant::now();
        self.sim.act(joiner, |e, now| {
            e.request_join_invited(group.clone(), &invitation, now)
        })?;
        // Virtual time runs in slices; events carry their own instants, so the
        // slices only decide when the run stops, not what is measured.
        let limit = self.sim.now().plus_ms(300_000);
        loop {
            self.sim.run_for(100);
            let joined = self.reached(joiner, target, true).is_some();
            if joined
                && self
                    .members
                    .iter()
                    .all(|id| self.reached(*id, target, false).is_some())
            {
                break;
            }
            if self.sim.now() > limit {
                return Err(format!(
                    "no admission within 300 s of virtual time (joined: {joined}); drops: {:?}",
                    self.sim.drop_counts()
                )
                .into());
            }
        }
        let wall_ms = ms(wall.elapsed());
        let requested = self
            .sim
            .node(joiner)
            .events
            .iter()
            .filter_map(|(at, e)| matches!(e, Event::JoinRequestSent { .. }).then_some(*at))
            .next()
            .ok_or("the joiner sent no join request")?;
        let since = |t: Timestamp| t.0.saturating_sub(requested.0);
        let joiner_ms = since(self.reached(joiner, target, true).ok_or("not joined")?);
        let member_ms = self
            .members
            .iter()
            .map(|id| self.reached(*id, target, false).map(since))
            .collect::<Option<Vec<_>>>()
            .ok_or("a member did not apply the commit")?;
        let role_of = |id: NodeId| {
            if id == joiner {
                Role::Joiner
            } else if self.stewards.contains(&self.sim.node(id).engine.address()) {
                Role::Steward
            } else {
                Role::Member
            }
        };
        let mut roles: BTreeMap<Role, (usize, u64, u64, f64)> = BTreeMap::new();
        let mut max_compute_ms: f64 = 0.0;
        let mut traffic = Traffic::default();
        for id in self.sim.ids() {
            let now = self.sim.node(id).traffic;
            let was = before.get(id.0).copied().unwrap_or_default();
            traffic.messages_sent += now.messages_sent - was.messages_sent;
            traffic.bytes_sent += now.bytes_sent - was.bytes_sent;
            traffic.messages_received += now.messages_received - was.messages_received;
            traffic.bytes_received += now.bytes_received - was.bytes_received;
            let compute = ms(now.compute.saturating_sub(was.compute));
            max_compute_ms = max_compute_ms.max(compute);
            let entry = roles.entry(role_of(id)).or_default();
            entry.0 += 1;
            entry.3 += compute;
        }
        let mut kinds = KindCounts::default();
        for (from, transmit) in &self.sim.wiretap[self.tap_seen..] {
            let bytes = transmit.payload.len() as u64;
            if kinds.add(&transmit.payload) != Kind::Announcement {
                let entry = roles.entry(role_of(*from)).or_default();
                entry.1 += 1;
                entry.2 += bytes;
            }
        }
        self.tap_seen = self.sim.wiretap.len();
        let members_before = self.members.len();
        self.members.push(joiner);
        self.epoch = target;
        Ok(Admission {
            members_before,
            joiner_ms,
            member_ms,
            wall_ms,
            roles,
            kinds,
            max_compute_ms,
            traffic,
        })
    }
}

fn report(args: &NetworkArgs, index: u32, setup: &Setup, a: &Admission) -> Value {
    let delays = |t: u64| (t as f64 / args.net.latency_ms as f64 * 100.0).round() / 100.0;
    let all_applied = a
        .member_ms
        .iter()
        .copied()
        .max()
        .unwrap_or_default()
        .max(a.joiner_ms);
    let member_median = quantile(&a.member_ms, 0.5);
    let member_p99 = quantile(&a.member_ms, 0.99);
    let late = a
        .member_ms
        .iter()
        .filter(|t| **t > 5 * (args.net.latency_ms + args.net.jitter_ms))
        .count();
    let roles: serde_json::Map<String, Value> = a
        .roles
        .iter()
        .map(|(role, (nodes, messages, bytes, compute))| {
            let n = *nodes as f64;
            (
                role.name().to_owned(),
                json!({
                    "nodes": nodes,
                    "messages_per_node": (*messages as f64 / n * 100.0).round() / 100.0,
                    "bytes_per_node": (*bytes as f64 / n).round(),
                    "compute_ms_per_node": (compute / n * 1000.0).round() / 1000.0,
                }),
            )
        })
        .collect();
    let kinds = a.kinds.report();
    let nodes = (a.members_before + 1) as f64;
    let per_member = |total: u64| (total as f64 / nodes * 100.0).round() / 100.0;
    json!({
        "bench": "network",
        "consensus": match args.consensus { Consensus::Big => "big", Consensus::Small => "small" },
        "members": a.members_before,
        "stewards": args.stewards,
        "admission": index,
        "latency_ms": args.net.latency_ms,
        "jitter_ms": args.net.jitter_ms,
        "loss": args.net.loss,
        "seed": args.net.seed,
        "joiner_joined_ms": a.joiner_ms,
        "joiner_joined_delays": delays(a.joiner_ms),
        "members_applied_median_ms": member_median,
        "members_applied_median_delays": delays(member_median),
        "members_applied_p99_ms": member_p99,
        "members_applied_p99_delays": delays(member_p99),
        "all_applied_ms": all_applied,
        "all_applied_delays": delays(all_applied),
        "members_late": late,
        "roles": roles,
        "kinds": kinds,
        "max_compute_ms_per_node": a.max_compute_ms,
        "per_member": {
            "messages_sent": per_member(a.traffic.messages_sent),
            "bytes_sent": per_member(a.traffic.bytes_sent),
            "messages_received": per_member(a.traffic.messages_received),
            "bytes_received": per_member(a.traffic.bytes_received),
        },
        "wall_ms": a.wall_ms,
        "setup_wall_ms": setup.wall_ms(),
        "setup": setup.report(args.members),
    })
}

/// Runs `demls bench network`.
pub fn run(args: &NetworkArgs) -> BenchResult<()> {
    let (mut bench, setup) = Bench::setup(args)?;
    if !args.json {
        println!(
            "{} consensus, {} stewards, latency {} ± {} ms, loss {}; group of {} formed in {:.1} s (wall)",
            match args.consensus {
                Consensus::Big => "big",
                Consensus::Small => "small",
            },
            args.stewards,
            args.net.latency_ms,
            args.net.jitter_ms,
            args.net.loss,
            args.members,
            setup.wall_ms() / 1000.0
        );
        println!(
            "{:>8} {:>14} {:>18} {:>16} {:>13} {:>22} {:>22} {:>10}",
            "members",
            "joiner joined",
            "members (median)",
            "all applied",
            "late members",
            "msgs/bytes per steward",
            "msgs/bytes per member",
            "wall"
        );
    }
    let mut joined = Vec::new();
    for index in 0..args.joins {
        let admission = bench.admit()?;
        let line = report(args, index, &setup, &admission);
        if args.json {
            println!("{line}");
        } else {
            let role = |name: &str| {
                line["roles"].get(name).map_or("-".to_owned(), |r| {
                    format!("{} / {} B", r["messages_per_node"], r["bytes_per_node"])
                })
            };
            println!(
                "{:>8} {:>8} ms {:>4.1}d {:>10} ms {:>4.1}d {:>8} ms {:>4.1}d {:>13} {:>22} {:>22} {:>8.1} s",
                admission.members_before,
                admission.joiner_ms,
                line["joiner_joined_delays"].as_f64().unwrap_or_default(),
                line["members_applied_median_ms"],
                line["members_applied_median_delays"]
                    .as_f64()
                    .unwrap_or_default(),
                line["all_applied_ms"],
                line["all_applied_delays"].as_f64().unwrap_or_default(),
                line["members_late"],
                role("stewards"),
                role("members"),
                admission.wall_ms / 1000.0
            );
        }
        joined.push(admission.joiner_ms as f64);
    }
    if !args.json {
        println!(
            "median join request → joined: {:.0} ms ({:.2} one-way delays)",
            median(&joined),
            median(&joined) / args.net.latency_ms as f64
        );
    }
    Ok(())
}
