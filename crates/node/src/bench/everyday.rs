//! `demls bench everyday`: a large group's everyday commits, beside plain mls-rs.
//!
//! For each group size N, a group is formed as `demls bench commit` forms
//! it: a steward (leaf 0) and a member (leaf 1), then one batch commit adding
//! N − 2 members. The same group is formed with plain mls-rs ([`super::raw`],
//! basic credentials, no wallet checks) in the same layout. Then, in rounds,
//! the steward of each side commits, and the member processes:
//!
//! - `add`: one member added, without an UpdatePath (above 1000 members
//!   demls's rules leave it out of add-only commits);
//! - `remove`: the member at leaf 2 removed (with the UpdatePath MLS requires);
//! - `update`: nothing but an UpdatePath (an empty commit: the steward's
//!   self-update).
//!
//! A round is add, remove, update. The first add lands at the end of the
//! tree; the first remove takes the batch's first member (leaf 2), and each
//! later add fills leaf 2 again with the member the next remove takes, so that
//! removals blank only the small subtree of leaves 2–3 and the steward's own
//! path.
//!
//! Each side's rounds run twice: in the **fresh** tree, just built by the
//! batch add (every parent node blank, so an UpdatePath encrypts to almost
//! every leaf), and in a **populated** tree: between the two, `--populate`
//! members at leaves spread evenly over the tree each commit an UpdatePath of
//! their own, filling the parent nodes on their paths. (In demls only
//! stewards commit, so this is the tree after a number of members have held
//! the steward's office; a member's own key update is an MLS Update proposal,
//! which blanks its path.) Those members follow every commit.
//!
//! Times: `create` is the committer's, from building the commit to being in
//! the next epoch with what it sends serialized (demls: `batch_commit` or
//! `removal_commit`, then `adopt_batch`, the vote left out as in
//! `demls bench commit`; before an add the steward checks the key package as
//! it does when it takes a join request in, not timed); `process` is the
//! member's (demls: `apply_batch_commit`). Demls and raw commits alternate,
//! each change of a round done by both before the next. Beside them, what two
//! things demls's member does beyond mls-rs's processing cost raw mls-rs on
//! the same group: a copy of the member's group (demls processes a commit on
//! a copy, kept if the commit is refused) and writing its state
//! (`write_to_storage`, into mls-rs's in-memory storage).

use std::time::Instant;

use clap::Args;
use demls_engine::bench_support::{BatchAdds, Founder, form_group_at_once};
use demls_engine::{Engine, EngineConfig, GroupParams, Timestamp};
use demls_identity::Address;
use mls_rs::MlsMessage;
use serde_json::{Value, json};

use super::commit::{Joiner, key_packages};
use super::raw::{self, RawGroup, RawJoiner};
use super::{BenchResult, bench_config, bench_group, median, ms, ratio, rayon_threads, wall_now};

/// Options of `demls bench everyday`.
#[derive(Args, Debug)]
pub struct EverydayArgs {
    /// Group sizes (each at least 4 × (populate + 1)), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sizes: Vec<usize>,
    /// Rounds (an add, a remove and an update) in each tree; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Members, at leaves spread evenly over the tree, that each commit an
    /// UpdatePath of their own between the fresh and the populated rounds.
    #[arg(long, default_value_t = 16)]
    populate: usize,
    /// One JSON object per size instead of a table.
    #[arg(long)]
    json: bool,
}

/// What a measured commit does.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// Adds one member, from a key package.
    Add,
    /// Removes the member at leaf 2.
    Remove,
    /// Changes nothing: an UpdatePath alone.
    Update,
}

impl Change {
    /// A round, in order.
    const ROUND: [Self; 3] = [Self::Add, Self::Remove, Self::Update];

    fn name(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Update => "update",
        }
    }
}

/// What one commit cost.
struct Cost {
    /// The committer's time, in milliseconds.
    create: f64,
    /// The member's time to process it, in milliseconds.
    process: f64,
    /// Its size as sent (demls: its envelope).
    bytes: usize,
    /// Raw only, after the member processed the commit: copying its group
    /// and writing its state (mls-rs's `write_to_storage`, in memory), in
    /// milliseconds: two things demls's member does beyond processing.
    member_copy_write: [f64; 2],
}

/// One side of the comparison: the members it holds are the steward (0),
/// the member (1) and the populating members (2 and on).
trait Side {
    /// Commits `change` as held member `by`; every other held member processes it.
    fn commit(&mut self, by: usize, change: Change) -> BenchResult<Cost>;
    /// Whether every held member has the same epoch authenticator.
    fn converged(&self) -> BenchResult<bool>;
}

/// Every member but `by` processes a commit with `process`: member 1's time, in milliseconds.
fn follow<M>(
    members: &mut [M],
    by: usize,
    mut process: impl FnMut(&mut M) -> BenchResult<()>,
) -> BenchResult<f64> {
    let mut member_ms = f64::NAN;
    for (i, member) in members.iter_mut().enumerate().filter(|(i, _)| *i != by) {
        let start = Instant::now();
        process(member)?;
        if i == 1 {
            member_ms = ms(start.elapsed());
        }
    }
    Ok(member_ms)
}

/// The leaves of `populate` members spread evenly over a tree of `size` leaves.
fn populator_leaves(size: usize, populate: usize) -> Vec<usize> {
    (1..=populate).map(|j| j * size / (populate + 1)).collect()
}

/// demls's side: engines.
struct Demls {
    engines: Vec<Engine>,
    /// The members the add commits admit, in turn: their key packages, decoded and not.
    pool: std::vec::IntoIter<(BatchAdds, Vec<u8>)>,
    /// The member at leaf 2, if any: the next to be removed.
    leaf_2: Option<Address>,
    now: Timestamp,
}

impl Demls {
    /// Forms a group of `size`: the batch adds `packages` (their first `size` − 2),
    /// the populators' at `leaves`; the add commits will admit the owners of `pool`.
    fn form(
        size: usize,
        packages: &[Vec<u8>],
        leaves: &[usize],
        pool: Vec<Vec<u8>>,
        config: &EngineConfig,
        now: Timestamp,
    ) -> BenchResult<Self> {
        let group = bench_group();
        let founders = vec![Founder::generate(config)?, Founder::generate(config)?];
        let mut engines =
            form_group_at_once(&group, GroupParams::default(), founders, config, now)?;
        let populators = leaves
            .iter()
            .map(|_| Joiner::new(config, now))
            .collect::<BenchResult<Vec<_>>>()?;
        let mut batch = packages[..size - 2].to_vec();
        for (leaf, populator) in leaves.iter().zip(&populators) {
            batch[leaf - 2] = populator.key_package.clone();
        }
        let adds = BatchAdds::decode(&batch)?;
        let leaf_2 = adds.addresses().first().copied();
        let commit = engines[0].batch_commit(&group, adds, now)?;
        let welcome = commit
            .welcomes
            .first()
            .ok_or("the batch commit has no Welcome")?
            .payload
            .clone();
        engines[1].apply_batch_commit(&group, &commit.commit.payload, now)?;
        engines[0].adopt_batch(&group, commit, now)?;
        for populator in &populators {
            let mut engine = populator.engine(config, now)?;
            engine.handle_message(&welcome, now)?;
            engines.push(engine);
        }
        let pool = pool
            .into_iter()
            .map(|package| Ok((BatchAdds::decode(std::slice::from_ref(&package))?, package)))
            .collect::<BenchResult<Vec<_>>>()?;
        Ok(Self {
            engines,
            pool: pool.into_iter(),
            leaf_2,
            now,
        })
    }
}

impl Side for Demls {
    fn commit(&mut self, by: usize, change: Change) -> BenchResult<Cost> {
        let group = bench_group();
        let now = self.now;
        let committer = &mut self.engines[by];
        let (adds, target) = match change {
            Change::Add => {
                let (adds, package) = self.pool.next().ok_or("no key package left to add")?;
                // The steward took the key package in (and checked it) with the join request.
                committer.check_key_package(&group, &package, now)?;
                if self.leaf_2.is_none() {
                    self.leaf_2 = adds.addresses().first().copied();
                }
                (adds, None)
            }
            Change::Remove => (
                BatchAdds::decode(&[])?,
                Some(self.leaf_2.take().ok_or("nobody at leaf 2 to remove")?),
            ),
            Change::Update => (BatchAdds::decode(&[])?, None),
        };
        let start = Instant::now();
        let batch = match target {
            Some(target) => committer.removal_commit(&group, target, now)?,
            None => committer.batch_commit(&group, adds, now)?,
        };
        let commit = batch.commit.payload.clone();
        committer.adopt_batch(&group, batch, now)?;
        let create = ms(start.elapsed());
        let process = follow(&mut self.engines, by, |engine| {
            Ok(engine.apply_batch_commit(&group, &commit, now)?)
        })?;
        Ok(Cost {
            create,
            process,
            bytes: commit.len(),
            member_copy_write: [f64::NAN; 2],
        })
    }

    fn converged(&self) -> BenchResult<bool> {
        let group = bench_group();
        let authenticators = self
            .engines
            .iter()
            .map(|engine| engine.group(&group).map(|view| view.authenticator))
            .collect::<Option<Vec<_>>>()
            .ok_or("an engine left the group")?;
        Ok(authenticators.windows(2).all(|pair| pair[0] == pair[1]))
    }
}

/// Plain mls-rs's side: groups.
struct Raw {
    groups: Vec<RawGroup>,
    /// The members the add commits admit, in turn: their key packages and names.
    pool: std::vec::IntoIter<(MlsMessage, Vec<u8>)>,
    /// The name of the member at leaf 2, if any: the next to be removed.
    leaf_2: Option<Vec<u8>>,
}

impl Raw {
    /// Forms a group of `size` like [`Demls::form`], from raw key packages
    /// (`packages` named "raw" and their index, `pool` "add" and theirs).
    fn form(
        size: usize,
        packages: &[MlsMessage],
        leaves: &[usize],
        pool: Vec<MlsMessage>,
    ) -> BenchResult<Self> {
        let mut steward = raw::create_group(b"steward")?;
        let member = RawJoiner::new(b"member")?;
        let populators = (0..leaves.len())
            .map(|j| RawJoiner::new(format!("populator{j}").as_bytes()))
            .collect::<BenchResult<Vec<_>>>()?;
        // The member first, at leaf 1: the batch's i-th key package lands at leaf i + 1.
        let mut batch = vec![member.key_package.clone()];
        batch.extend_from_slice(&packages[..size - 2]);
        for (leaf, populator) in leaves.iter().zip(&populators) {
            batch[leaf - 1] = populator.key_package.clone();
        }
        let sent = raw::commit(&mut steward, batch, None)?;
        let (welcome, tree) = sent.welcome.ok_or("the batch commit has no Welcome")?;
        let mut groups = vec![steward, member.join(&welcome, &tree)?];
        for populator in &populators {
            groups.push(populator.join(&welcome, &tree)?);
        }
        let pool: Vec<_> = pool
            .into_iter()
            .enumerate()
            .map(|(i, package)| (package, format!("add{i}").into_bytes()))
            .collect();
        Ok(Self {
            groups,
            pool: pool.into_iter(),
            leaf_2: Some(b"raw0".to_vec()),
        })
    }
}

impl Side for Raw {
    fn commit(&mut self, by: usize, change: Change) -> BenchResult<Cost> {
        let (adds, target) = match change {
            Change::Add => {
                let (package, name) = self.pool.next().ok_or("no key package left to add")?;
                if self.leaf_2.is_none() {
                    self.leaf_2 = Some(name);
                }
                (vec![package], None)
            }
            Change::Remove => (
                Vec::new(),
                Some(self.leaf_2.take().ok_or("nobody at leaf 2 to remove")?),
            ),
            Change::Update => (Vec::new(), None),
        };
        let start = Instant::now();
        let sent = raw::commit(&mut self.groups[by], adds, target.as_deref())?;
        let create = ms(start.elapsed());
        let process = follow(&mut self.groups, by, |group| {
            raw::process(group, &sent.commit)
        })?;
        let member = &mut self.groups[1];
        let start = Instant::now();
        let copy = member.clone();
        let copy_ms = ms(start.elapsed());
        drop(copy);
        let start = Instant::now();
        member.write_to_storage()?;
        let write_ms = ms(start.elapsed());
        Ok(Cost {
            create,
            process,
            bytes: sent.commit.len(),
            member_copy_write: [copy_ms, write_ms],
        })
    }

    fn converged(&self) -> BenchResult<bool> {
        raw::agree(&self.groups.iter().collect::<Vec<_>>())
    }
}

/// The costs of one change in one tree: demls's and raw's, a sample per round.
type Costs = [Vec<Cost>; 2];

/// `repeats` rounds in the tree as it is, each change made by both sides in
/// turn: the costs of each change, in [`Change::ROUND`] order.
fn rounds(sides: &mut [&mut dyn Side; 2], repeats: u32) -> BenchResult<Vec<Costs>> {
    let mut costs: Vec<Costs> = Change::ROUND.map(|_| [Vec::new(), Vec::new()]).into();
    for _ in 0..repeats {
        for (change, costs) in Change::ROUND.into_iter().zip(&mut costs) {
            for (side, costs) in sides.iter_mut().zip(costs.iter_mut()) {
                costs.push(side.commit(0, change)?);
            }
        }
    }
    for side in sides.iter() {
        if !side.converged()? {
            return Err("the group did not converge".into());
        }
    }
    Ok(costs)
}

/// Medians of one change's costs: demls's, raw's and their ratio, as JSON.
fn summary(costs: &Costs) -> Value {
    let samples = |side: usize, f: fn(&Cost) -> f64| costs[side].iter().map(f).collect::<Vec<_>>();
    let [demls_create, raw_create] = [0, 1].map(|side| samples(side, |c| c.create));
    let [demls_process, raw_process] = [0, 1].map(|side| samples(side, |c| c.process));
    let bytes = |side: usize| costs[side].last().map_or(0, |c| c.bytes);
    let raw_copy = samples(1, |c| c.member_copy_write[0]);
    let raw_write = samples(1, |c| c.member_copy_write[1]);
    json!({
        "demls_create_ms": median(&demls_create),
        "raw_create_ms": median(&raw_create),
        "create_ratio": ratio(median(&demls_create), median(&raw_create)),
        "demls_process_ms": median(&demls_process),
        "raw_process_ms": median(&raw_process),
        "process_ratio": ratio(median(&demls_process), median(&raw_process)),
        "demls_commit_bytes": bytes(0),
        "raw_commit_bytes": bytes(1),
        "raw_member_copy_ms": median(&raw_copy),
        "raw_member_write_ms": median(&raw_write),
        "samples": {
            "demls_create_ms": demls_create,
            "raw_create_ms": raw_create,
            "demls_process_ms": demls_process,
            "raw_process_ms": raw_process,
        },
    })
}

/// Runs `demls bench everyday`.
pub fn run(args: &EverydayArgs) -> BenchResult<()> {
    let smallest = 4 * (args.populate + 1);
    if let Some(size) = args.sizes.iter().find(|s| **s < smallest) {
        return Err(format!(
            "size {size}: --populate {} needs at least {smallest} members",
            args.populate
        )
        .into());
    }
    let config = bench_config();
    let now = wall_now();
    let largest = args.sizes.iter().copied().max().unwrap_or(smallest);
    let adds = 2 * usize::try_from(args.repeats)?;
    let packages = key_packages(largest - 2, &config, now)?;
    let raw_packages = raw::key_packages(largest - 2, "raw")?;
    if !args.json {
        println!(
            "{:>7} {:>9} {:>6} {:>13} {:>11} {:>6} {:>14} {:>11} {:>6} {:>12} {:>10}",
            "members",
            "tree",
            "change",
            "demls create",
            "raw create",
            "ratio",
            "demls process",
            "raw process",
            "ratio",
            "demls commit",
            "raw commit"
        );
    }
    for &size in &args.sizes {
        let leaves = populator_leaves(size, args.populate);
        let pool = key_packages(adds, &config, now)?;
        let mut demls = Demls::form(size, &packages, &leaves, pool, &config, now)?;
        let mut raw = Raw::form(
            size,
            &raw_packages,
            &leaves,
            raw::key_packages(adds, "add")?,
        )?;
        let mut sides: [&mut dyn Side; 2] = [&mut demls, &mut raw];
        let fresh = rounds(&mut sides, args.repeats)?;
        for by in 2..2 + leaves.len() {
            for side in sides.iter_mut() {
                side.commit(by, Change::Update)?;
            }
        }
        let populated = rounds(&mut sides, args.repeats)?;
        let trees = [("fresh", fresh), ("populated", populated)].map(|(tree, costs)| {
            let changes: serde_json::Map<_, _> = Change::ROUND
                .into_iter()
                .zip(&costs)
                .map(|(change, costs)| (change.name().to_owned(), summary(costs)))
                .collect();
            (tree, changes)
        });
        if args.json {
            let mut line = json!({
                "bench": "everyday",
                "members": size,
                "repeats": args.repeats,
                "populate": args.populate,
                "populator_leaves": leaves,
                "rayon_threads": rayon_threads(),
            });
            for (tree, changes) in trees {
                line[tree] = Value::Object(changes);
            }
            println!("{line}");
        } else {
            for (tree, changes) in &trees {
                for (change, s) in changes {
                    println!(
                        "{:>7} {:>9} {:>6} {:>10.1} ms {:>8.1} ms {:>6.2} {:>11.1} ms {:>8.1} ms {:>6.2} {:>8} KiB {:>6} KiB",
                        size,
                        tree,
                        change,
                        s["demls_create_ms"].as_f64().unwrap_or(f64::NAN),
                        s["raw_create_ms"].as_f64().unwrap_or(f64::NAN),
                        s["create_ratio"].as_f64().unwrap_or(f64::NAN),
                        s["demls_process_ms"].as_f64().unwrap_or(f64::NAN),
                        s["raw_process_ms"].as_f64().unwrap_or(f64::NAN),
                        s["process_ratio"].as_f64().unwrap_or(f64::NAN),
                        s["demls_commit_bytes"].as_u64().unwrap_or(0) / 1024,
                        s["raw_commit_bytes"].as_u64().unwrap_or(0) / 1024,
                    );
                }
            }
        }
    }
    Ok(())
}
