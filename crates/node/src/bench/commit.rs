//! `demls bench commit`: one commit adding a batch of members.
//!
//! For each group size N, a steward and one member form a group; the steward
//! commits adding N-2 members at once (its commit code: mls-rs with demls's
//! rules, encrypted handshake, the ratchet tree sealed once beside the
//! Welcome); the member processes and applies the commit; one of the added
//! members joins from the Welcome (decrypting the tree). The key packages are
//! made once and reused by every repeat, each in a freshly formed group.
//! Before the commit the steward checks every key package as it does when it
//! takes a join request in (not timed): its engine remembers the wallet
//! bindings it verified then. The member and the joiner start cold. The vote
//! is left out: see `demls_engine::bench_support`.
//!
//! Then the update case: in the tree the batch just filled, the steward commits
//! nothing but an UpdatePath (its leaf rotated; what a self-update commit costs
//! its committer, the path being the larger part), and the member processes it.
//!
//! The reference column: in each run, after demls's, the same batch with
//! plain mls-rs ([`super::raw`]: basic credentials, no wallet checks, the
//! same MLS rules): a steward and a member form a group, the steward commits
//! adding N − 2 members (key packages made once, and a fresh joiner's), the
//! member processes the commit and the joiner joins from the Welcome and the
//! ratchet tree sent beside it. The `*_ratio` fields are demls's median over
//! raw's.
//!
//! `largest_wire_message_bytes` is the largest WakuMessage the commit and the
//! Welcome (with its sealed tree) go out as, after the transport's
//! segmentation with its defaults (each at most 150,000 bytes).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use demls_engine::bench_support::{BatchAdds, Founder, form_group_at_once};
use demls_engine::wire::{Envelope, envelope};
use demls_engine::{
    Engine, EngineConfig, GroupParams, MlsStore, StorageWrite, Timestamp, Transmit,
};
use demls_transport::WakuMessage;
use demls_transport::segmentation::{self, SegmentationConfig};
use mls_rs::MlsMessage;
use prost::Message;
use serde_json::json;

use super::raw::{self, RawJoiner};
use super::{
    BenchResult, bench_config, bench_group, median, ms, on_every_core, ratio, rayon_threads,
    wall_now,
};
use crate::topics::content_topic;

/// Options of `demls bench commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Group sizes reached by the commit (each at least 3), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    sizes: Vec<usize>,
    /// Runs per size; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// One JSON object per size instead of a table.
    #[arg(long)]
    json: bool,
}

/// A member-to-be that joins from a Welcome (in `commit`, the joiner whose
/// Welcome processing is timed): its keys, and its key package's private part
/// as its store wrote it.
pub(super) struct Joiner {
    founder_wallet: demls_identity::Wallet,
    signer: demls_engine::MlsSigner,
    /// The key package it sent with its join request.
    pub(super) key_package: Vec<u8>,
    private: (Vec<u8>, Vec<u8>),
}

impl Joiner {
    /// A new identity and its key package.
    pub(super) fn new(config: &EngineConfig, now: Timestamp) -> BenchResult<Self> {
        let founder = Founder::generate(config)?;
        let store = MlsStore::journaled(config.epoch_retention);
        let mut engine = Engine::new(
            founder.wallet.clone(),
            &founder.signer,
            config.clone(),
            store,
        );
        let key_package = engine.key_package(now)?;
        let private = engine
            .take_storage_writes()?
            .into_iter()
            .find_map(|write| match write {
                StorageWrite::KeyPackage { id, data } => Some((id, data.to_vec())),
                _ => None,
            })
            .ok_or("the key package's private part was not written")?;
        Ok(Self {
            founder_wallet: founder.wallet,
            signer: founder.signer,
            key_package,
            private,
        })
    }

    /// A fresh engine of this joiner, waiting for its Welcome.
    pub(super) fn engine(&self, config: &EngineConfig, now: Timestamp) -> BenchResult<Engine> {
        let store = MlsStore::in_memory(config.epoch_retention);
        store.restore_key_package(self.private.0.clone(), &self.private.1)?;
        Ok(Engine::awaiting_welcome(
            self.founder_wallet.clone(),
            &self.signer,
            config.clone(),
            store,
            &bench_group(),
            &self.key_package,
            now,
        )?)
    }
}

/// `count` key packages of new identities, made on every core.
pub(super) fn key_packages(
    count: usize,
    config: &EngineConfig,
    now: Timestamp,
) -> Result<Vec<Vec<u8>>, String> {
    on_every_core(count, |_| {
        let mut engine = Founder::generate_engine(config).map_err(|e| e.to_string())?;
        engine.key_package(now).map_err(|e| e.to_string())
    })
}

/// Timings of one run, in milliseconds, and the sizes of what was sent.
struct Run {
    commit_welcome: f64,
    steward_apply: f64,
    member_process: f64,
    joiner: f64,
    commit_bytes: usize,
    welcome_bytes: usize,
    tree_bytes: usize,
    update_commit: f64,
    update_process: f64,
    update_bytes: usize,
    largest_wire_bytes: usize,
    /// Plain mls-rs: commit + Welcome, member processes, joiner joins.
    raw: [f64; 3],
}

/// The size of the largest WakuMessage that `transmits` go out as, after the
/// transport's segmentation with its defaults.
fn largest_wire_message(transmits: &[&Transmit]) -> BenchResult<usize> {
    let config = SegmentationConfig::default();
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let mut largest = 0;
    for transmit in transmits {
        let message = WakuMessage {
            payload: transmit.payload.clone(),
            content_topic: content_topic(&transmit.topic)?.to_string(),
            timestamp: Some(now_ns),
            ..WakuMessage::default()
        };
        for piece in segmentation::split(&config, &message)? {
            largest = largest.max(piece.encoded_len());
        }
    }
    Ok(largest)
}

fn one_run(
    size: usize,
    packages: &[Vec<u8>],
    adds: &BatchAdds,
    raw_packages: &[MlsMessage],
    joiner: &Joiner,
    config: &EngineConfig,
    now: Timestamp,
) -> BenchResult<Run> {
    let group = bench_group();
    let founders = vec![Founder::generate(config)?, Founder::generate(config)?];
    let mut engines = form_group_at_once(&group, GroupParams::default(), founders, config, now)?;
    let mut member = engines.pop().ok_or("no member")?;
    let mut steward = engines.pop().ok_or("no steward")?;
    let mut joiner = joiner.engine(config, now)?;
    // The steward took each key package in (and checked it) with its join request.
    for package in packages {
        steward.check_key_package(&group, package, now)?;
    }
    let adds = adds.clone();

    let start = Instant::now();
    let batch = steward.batch_commit(&group, adds, now)?;
    let commit_welcome = ms(start.elapsed());

    let welcome_transmit = batch.welcomes.first().ok_or("the commit has no Welcome")?;
    let largest_wire_bytes = largest_wire_message(&[&batch.commit, welcome_transmit])?;
    let commit = batch.commit.payload.clone();
    let welcome = welcome_transmit.payload.clone();

    let start = Instant::now();
    member.apply_batch_commit(&group, &commit, now)?;
    let member_process = ms(start.elapsed());

    let start = Instant::now();
    joiner.handle_message(&welcome, now)?;
    let joiner_time = ms(start.elapsed());

    let start = Instant::now();
    steward.adopt_batch(&group, batch, now)?;
    let steward_apply = ms(start.elapsed());

    let views = [&steward, &member, &joiner].map(|e| e.group(&group));
    let [Some(s), Some(m), Some(j)] = views else {
        return Err("an engine is not in the group after the commit".into());
    };
    if s.members.len() != size
        || m.members.len() != size
        || j.members.len() != size
        || s.authenticator != m.authenticator
        || s.authenticator != j.authenticator
    {
        return Err(format!(
            "the group did not converge: {} / {} / {} members",
            s.members.len(),
            m.members.len(),
            j.members.len()
        )
        .into());
    }
    let update = update_case(&mut steward, &mut member, now)?;
    let (welcome_bytes, tree_bytes) = match Envelope::decode(welcome.as_slice())?.body {
        Some(envelope::Body::Welcome(bundle)) => {
            (bundle.welcome.len(), bundle.encrypted_tree.len())
        }
        _ => return Err("the Welcome envelope holds no Welcome".into()),
    };
    Ok(Run {
        commit_welcome,
        steward_apply,
        member_process,
        joiner: joiner_time,
        commit_bytes: commit.len(),
        welcome_bytes,
        tree_bytes,
        update_commit: update.0,
        update_process: update.1,
        update_bytes: update.2,
        largest_wire_bytes,
        raw: raw_run(raw_packages)?,
    })
}

/// The same batch with plain mls-rs: a steward and a member form a group, the
/// steward commits adding a joiner and the owners of `packages`, the member
/// processes the commit, the joiner joins. Their times, in milliseconds.
fn raw_run(packages: &[MlsMessage]) -> BenchResult<[f64; 3]> {
    let mut steward = raw::create_group(b"steward")?;
    let member = RawJoiner::new(b"member")?;
    let sent = raw::commit(&mut steward, vec![member.key_package.clone()], None)?;
    let (welcome, tree) = sent.welcome.ok_or("no Welcome for the member")?;
    let mut member = member.join(&welcome, &tree)?;
    let joiner = RawJoiner::new(b"joiner")?;
    let mut batch = vec![joiner.key_package.clone()];
    batch.extend_from_slice(packages);

    let start = Instant::now();
    let sent = raw::commit(&mut steward, batch, None)?;
    let commit_welcome = ms(start.elapsed());
    let (welcome, tree) = sent.welcome.ok_or("the batch commit has no Welcome")?;

    let start = Instant::now();
    raw::process(&mut member, &sent.commit)?;
    let member_process = ms(start.elapsed());

    let start = Instant::now();
    let joined = joiner.join(&welcome, &tree)?;
    let joiner_time = ms(start.elapsed());

    if !raw::agree(&[&steward, &member, &joined])? {
        return Err("the plain mls-rs group did not converge".into());
    }
    Ok([commit_welcome, member_process, joiner_time])
}

/// The steward commits an UpdatePath alone (an empty commit, which MLS makes carry one)
/// and the member processes it: the time of each, in milliseconds, and the commit's size.
fn update_case(
    steward: &mut Engine,
    member: &mut Engine,
    now: Timestamp,
) -> BenchResult<(f64, f64, usize)> {
    let group = bench_group();
    let start = Instant::now();
    let batch = steward.batch_commit(&group, BatchAdds::decode(&[])?, now)?;
    let commit_ms = ms(start.elapsed());
    let commit = batch.commit.payload.clone();
    let start = Instant::now();
    member.apply_batch_commit(&group, &commit, now)?;
    let process_ms = ms(start.elapsed());
    steward.adopt_batch(&group, batch, now)?;
    let [Some(s), Some(m)] = [&*steward, &*member].map(|e| e.group(&group)) else {
        return Err("an engine left the group in the update case".into());
    };
    if s.authenticator != m.authenticator {
        return Err("the update commit did not converge".into());
    }
    Ok((commit_ms, process_ms, commit.len()))
}

/// Runs `demls bench commit`.
pub fn run(args: &CommitArgs) -> BenchResult<()> {
    if let Some(size) = args.sizes.iter().find(|s| **s < 3) {
        return Err(
            format!("size {size}: a steward, a member and at least one joiner make 3").into(),
        );
    }
    let config = bench_config();
    let now = wall_now();
    let largest = args.sizes.iter().copied().max().unwrap_or(3);
    let joiner = Joiner::new(&config, now)?;
    let mut packages = vec![joiner.key_package.clone()];
    packages.extend(key_packages(largest - 3, &config, now)?);
    let raw_packages = raw::key_packages(largest - 3, "raw")?;
    if !args.json {
        println!(
            "{:>7} {:>7} {:>15} {:>15} {:>17} {:>13} {:>10} {:>10} {:>10} {:>14} {:>16} {:>10} {:>12} {:>15} {:>12} {:>12}",
            "members",
            "added",
            "commit+Welcome",
            "steward apply",
            "member processes",
            "joiner joins",
            "commit",
            "Welcome",
            "tree",
            "update commit",
            "member processes",
            "update",
            "largest wire",
            "raw commit+W.",
            "raw member",
            "raw joiner"
        );
    }
    for &size in &args.sizes {
        let batch = &packages[..size - 2];
        let adds = BatchAdds::decode(batch)?;
        let runs = (0..args.repeats)
            .map(|_| {
                let raw_batch = &raw_packages[..size - 3];
                one_run(size, batch, &adds, raw_batch, &joiner, &config, now)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let samples = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<_>>();
        let commit_welcome = samples(|r| r.commit_welcome);
        let steward_apply = samples(|r| r.steward_apply);
        let member_process = samples(|r| r.member_process);
        let joiner_ms = samples(|r| r.joiner);
        let update_commit = samples(|r| r.update_commit);
        let update_process = samples(|r| r.update_process);
        let raw_commit_welcome = samples(|r| r.raw[0]);
        let raw_member_process = samples(|r| r.raw[1]);
        let raw_joiner = samples(|r| r.raw[2]);
        let last = runs.last().ok_or("no run")?;
        if args.json {
            let line = json!({
                "bench": "commit",
                "members": size,
                "added": size - 2,
                "repeats": args.repeats,
                "rayon_threads": rayon_threads(),
                "commit_welcome_ms": median(&commit_welcome),
                "steward_apply_ms": median(&steward_apply),
                "member_process_ms": median(&member_process),
                "joiner_ms": median(&joiner_ms),
                "commit_bytes": last.commit_bytes,
                "welcome_bytes": last.welcome_bytes,
                "tree_bytes": last.tree_bytes,
                "update_commit_ms": median(&update_commit),
                "update_process_ms": median(&update_process),
                "update_bytes": last.update_bytes,
                "largest_wire_message_bytes": last.largest_wire_bytes,
                "raw_commit_welcome_ms": median(&raw_commit_welcome),
                "raw_member_process_ms": median(&raw_member_process),
                "raw_welcome_ms": median(&raw_joiner),
                "commit_welcome_ratio": ratio(median(&commit_welcome), median(&raw_commit_welcome)),
                "member_process_ratio": ratio(median(&member_process), median(&raw_member_process)),
                "welcome_ratio": ratio(median(&joiner_ms), median(&raw_joiner)),
                "samples": {
                    "commit_welcome_ms": commit_welcome,
                    "steward_apply_ms": steward_apply,
                    "member_process_ms": member_process,
                    "joiner_ms": joiner_ms,
                    "update_commit_ms": update_commit,
                    "update_process_ms": update_process,
                    "raw_commit_welcome_ms": raw_commit_welcome,
                    "raw_member_process_ms": raw_member_process,
                    "raw_welcome_ms": raw_joiner,
                },
            });
            println!("{line}");
        } else {
            println!(
                "{:>7} {:>7} {:>12.1} ms {:>12.1} ms {:>14.1} ms {:>10.1} ms {:>7} KiB {:>6} KiB {:>6} KiB {:>11.1} ms {:>13.1} ms {:>6} KiB {:>10} B {:>12.1} ms {:>9.1} ms {:>9.1} ms",
                size,
                size - 2,
                median(&commit_welcome),
                median(&steward_apply),
                median(&member_process),
                median(&joiner_ms),
                last.commit_bytes / 1024,
                last.welcome_bytes / 1024,
                last.tree_bytes / 1024,
                median(&update_commit),
                median(&update_process),
                last.update_bytes / 1024,
                last.largest_wire_bytes,
                median(&raw_commit_welcome),
                median(&raw_member_process),
                median(&raw_joiner)
            );
        }
    }
    Ok(())
}
