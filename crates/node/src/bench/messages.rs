//! `demls bench messages`: application messages per second, with persistence.
//!
//! A group of `--members` is formed at once; one member sends `--messages`
//! chat messages and another receives them, each on one thread (one core).
//! As in a node, every engine step is written to the node's SQLite store
//! (`demls_storage`, encrypted at rest, WAL, `synchronous=FULL` unless
//! `--durability relaxed`) before its output is released: the MLS state the
//! engine journaled, the engine snapshot if it changed, the history rows, the
//! outbox rows; a sender then marks its outbox entries published. A step here
//! is `--batch` messages: 1 is a node sending through its API (one step per
//! call) or receiving one message at a time; a node that receives faster than
//! it persists puts up to 256 waiting messages in one step. A step writes a
//! group's MLS state once, whatever the batch: its traffic (the messages that
//! moved it on), or the whole state when that traffic outweighs it. For reference
//! the same loops also run without persistence (engine only).

use std::time::Instant;

use clap::{Args, ValueEnum};
use demls_engine::bench_support::{Founder, form_group_at_once};
use demls_engine::{Engine, Event, GroupParams, MlsStore, SnapshotWrite, StorageWrite, Timestamp};
use demls_storage::{Durability, NewMessage, Step, Store};
use prost::Message;
use serde_json::json;

use super::{BenchResult, bench_config, bench_group, wall_now};

/// How hard SQLite works to keep each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// `synchronous=FULL`, as a node runs: every step is on disk before its messages leave.
    Full,
    /// `synchronous=OFF`, as the demo runs.
    Relaxed,
}

/// Options of `demls bench messages`.
#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// Members of the group (the sender and the receiver among them).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    members: u32,
    /// Messages sent and received per measurement.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    messages: u32,
    /// Messages per persisted engine step, comma-separated (1: one API send or one received
    /// message at a time; a node receiving under load persists up to 256 per step).
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    batch: Vec<usize>,
    /// Bytes of chat text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// SQLite durability.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// One JSON object per batch size instead of a table.
    #[arg(long)]
    json: bool,
}

/// One engine and, if persisting, its store.
struct Persisted {
    engine: Engine,
    store: Option<Store>,
    /// What the persisted steps wrote, for the report.
    written: Written,
}

/// What a run's persisted steps wrote.
#[derive(Default)]
struct Written {
    steps: u64,
    /// Bytes of MLS state journaled: whole group states and traffic.
    mls_bytes: u64,
    /// Whole group states among them.
    whole_states: u64,
    /// Bytes of engine snapshots.
    snapshot_bytes: u64,
}

impl Written {
    fn per_step(&self, bytes: u64) -> u64 {
        bytes / self.steps.max(1)
    }
}

impl Persisted {
    /// Writes the engine's step as a node does; returns the step's transmits.
    fn step(&mut self, now: Timestamp) -> BenchResult<Vec<Vec<u8>>> {
        let storage = self.engine.take_storage_writes()?;
        self.written.steps += 1;
        for write in &storage {
            match write {
                StorageWrite::Group { snapshot, .. } => {
                    self.written.mls_bytes += snapshot.len() as u64;
                    self.written.whole_states += 1;
                }
                StorageWrite::GroupTraffic { traffic, .. } => {
                    self.written.mls_bytes += traffic.encoded_len() as u64;
                }
                StorageWrite::GroupDeleted { .. }
                | StorageWrite::KeyPackage { .. }
                | StorageWrite::KeyPackageDeleted { .. } => {}
            }
        }
        let me = self.engine.address();
        let mut messages = Vec::new();
        while let Some(event) = self.engine.poll_event() {
            if let Event::Message {
                group,
                sender,
                text,
                id,
                sent_at,
                epoch,
                lamport,
            } = event
            {
                messages.push(NewMessage {
                    group,
                    id,
                    own: sender == me,
                    sender,
                    text,
                    sent_at,
                    epoch,
                    lamport,
                    received_at: now,
                });
            }
        }
        let transmits: Vec<_> = std::iter::from_fn(|| self.engine.poll_transmit()).collect();
        let payloads = transmits.iter().map(|t| t.payload.clone()).collect();
        let Some(store) = self.store.as_mut() else {
            return Ok(payloads);
        };
        // The rest of the step's output was drained above; what is left is how the snapshot
        // changed, as a node gets it.
        let snapshot = self.engine.take_output()?.snapshot;
        self.written.snapshot_bytes += match &snapshot {
            SnapshotWrite::Unchanged => 0,
            SnapshotWrite::Whole(whole) => whole.len(),
            SnapshotWrite::Votes(votes) => votes.iter().map(Vec::len).sum(),
        } as u64;
        let step = Step {
            now,
            storage,
            snapshot,
            messages,
            transmits,
            ..Step::default()
        };
        let receipt = store.commit_step(&step)?;
        if let Some(last) = receipt.outbox.last() {
            store.mark_published(*last, now)?;
        }
        Ok(payloads)
    }
}

/// Messages per second over `count` messages taking `seconds`.
fn rate(count: usize, seconds: f64) -> f64 {
    (count as f64 / seconds).round()
}

/// Sends `count` messages in steps of `batch`; returns the seconds taken and the ciphertexts.
fn send(
    sender: &mut Persisted,
    count: usize,
    batch: usize,
    text: &str,
) -> BenchResult<(f64, Vec<Vec<u8>>)> {
    let group = bench_group();
    let mut out = Vec::with_capacity(count);
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        let now = wall_now();
        for _ in 0..batch.min(count - sent) {
            sender.engine.send_message(&group, text, now)?;
            sent += 1;
        }
        out.extend(sender.step(now)?);
    }
    Ok((start.elapsed().as_secs_f64(), out))
}

/// Receives `payloads` in steps of `batch`; returns the seconds taken.
fn receive(receiver: &mut Persisted, payloads: &[Vec<u8>], batch: usize) -> BenchResult<f64> {
    let start = Instant::now();
    for chunk in payloads.chunks(batch) {
        let now = wall_now();
        for payload in chunk {
            receiver.engine.handle_message(payload, now)?;
        }
        receiver.step(now)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Runs `demls bench messages`.
pub fn run(args: &MessagesArgs) -> BenchResult<()> {
    if args.batch.contains(&0) {
        return Err("--batch: a step holds at least one message".into());
    }
    let config = bench_config();
    let now = wall_now();
    let founders = (0..args.members)
        .map(|_| {
            Founder::generate(&config).map(|f| Founder {
                store: MlsStore::journaled(config.epoch_retention),
                ..f
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut engines = form_group_at_once(
        &bench_group(),
        GroupParams::default(),
        founders,
        &config,
        now,
    )?;
    let sender = engines.pop().ok_or("no sender")?;
    let receiver = engines.swap_remove(0);
    drop(engines);
    let dir = tempfile::tempdir()?;
    let durability = match args.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Relaxed => Durability::Relaxed,
    };
    let persisted = |engine, name: &str| -> BenchResult<Persisted> {
        Ok(Persisted {
            engine,
            store: Some(Store::open(
                &dir.path().join(name),
                "bench passphrase",
                durability,
            )?),
            written: Written::default(),
        })
    };
    let mut sender = persisted(sender, "sender")?;
    let mut receiver = persisted(receiver, "receiver")?;
    sender.step(now)?;
    receiver.step(now)?;
    let text: String = "0123456789abcdef"
        .chars()
        .cycle()
        .take(args.text_bytes)
        .collect();
    let count = args.messages as usize;
    if !args.json {
        println!(
            "{} members, {} messages of {} text bytes, SQLite synchronous={}",
            args.members,
            count,
            args.text_bytes,
            match args.durability {
                DurabilityArg::Full => "FULL",
                DurabilityArg::Relaxed => "OFF",
            }
        );
        println!(
            "{:>6} {:>14} {:>14} {:>20} {:>20} {:>16} {:>14} {:>18}",
            "batch",
            "encrypted/s",
            "decrypted/s",
            "engine-only enc/s",
            "engine-only dec/s",
            "MLS B per step",
            "whole states",
            "snapshot B per step"
        );
    }
    for &batch in &args.batch {
        sender.written = Written::default();
        let (send_s, payloads) = send(&mut sender, count, batch, &text)?;
        let receive_s = receive(&mut receiver, &payloads, batch)?;
        let written = std::mem::take(&mut sender.written);
        let mls_per_step = written.per_step(written.mls_bytes);
        let snapshot_per_step = written.per_step(written.snapshot_bytes);
        let stores = (sender.store.take(), receiver.store.take());
        let (bare_send_s, bare_payloads) = send(&mut sender, count, batch, &text)?;
        let bare_receive_s = receive(&mut receiver, &bare_payloads, batch)?;
        (sender.store, receiver.store) = stores;
        let ciphertext = payloads.first().map_or(0, Vec::len);
        if args.json {
            let line = json!({
                "bench": "messages",
                "members": args.members,
                "messages": count,
                "batch": batch,
                "text_bytes": args.text_bytes,
                "envelope_bytes": ciphertext,
                "durability": match args.durability { DurabilityArg::Full => "full", DurabilityArg::Relaxed => "relaxed" },
                "encrypt_per_s": rate(count, send_s),
                "decrypt_per_s": rate(count, receive_s),
                "engine_only_encrypt_per_s": rate(count, bare_send_s),
                "engine_only_decrypt_per_s": rate(count, bare_receive_s),
                "sender_steps": written.steps,
                "sender_mls_bytes_per_step": mls_per_step,
                "sender_whole_states": written.whole_states,
                "sender_snapshot_bytes_per_step": snapshot_per_step,
            });
            println!("{line}");
        } else {
            println!(
                "{:>6} {:>14} {:>14} {:>20} {:>20} {:>16} {:>14} {:>18}",
                batch,
                rate(count, send_s),
                rate(count, receive_s),
                rate(count, bare_send_s),
                rate(count, bare_receive_s),
                mls_per_step,
                written.whole_states,
                snapshot_per_step
            );
        }
    }
    Ok(())
}
