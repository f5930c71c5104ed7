//! The engine's hot paths: batch commits (made, processed, joined), application
//! messages (and a message's step in a group of 1000, with and without the traffic
//! journal), key package checks.
//!
//! `cargo bench -p demls-engine --bench hot_paths -- --quick`. Larger groups:
//! `demls bench commit` (see `docs/performance.md`).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use demls_engine::bench_support::{BatchAdds, BatchCommit, Founder, form_group_at_once};
use demls_engine::{Engine, EngineConfig, GroupId, GroupParams, MlsStore, Timestamp};

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn group() -> GroupId {
    GroupId::new("bench").unwrap()
}

fn config() -> EngineConfig {
    EngineConfig {
        max_message_size: usize::MAX,
        ..EngineConfig::default()
    }
}

/// A group of `n` members formed at once.
fn formed(n: usize) -> Vec<Engine> {
    let founders = (0..n)
        .map(|_| Founder::generate(&config()).unwrap())
        .collect();
    form_group_at_once(&group(), GroupParams::default(), founders, &config(), NOW).unwrap()
}

/// `n` key packages of new identities; the first one's engine waits for its Welcome.
fn joiners(n: usize) -> (Engine, Vec<Vec<u8>>) {
    let mut packages = Vec::new();
    let mut first = None;
    for _ in 0..n {
        let f = Founder::generate(&config()).unwrap();
        let mut engine = Engine::new(f.wallet.clone(), &f.signer, config(), f.store.clone());
        packages.push(engine.key_package(NOW).unwrap());
        first.get_or_insert(f);
    }
    let f = first.unwrap();
    let joiner = Engine::awaiting_welcome(
        f.wallet,
        &f.signer,
        config(),
        f.store,
        &group(),
        &packages[0],
        NOW,
    )
    .unwrap();
    (joiner, packages)
}

/// A steward and a member, and a batch commit adding `added` members; the
/// first added member's engine waits for the Welcome.
fn batch(added: usize) -> (Engine, Engine, Engine, BatchCommit) {
    let mut pair = formed(2);
    let member = pair.pop().unwrap();
    let mut steward = pair.pop().unwrap();
    let (joiner, packages) = joiners(added);
    let commit = steward
        .batch_commit(&group(), BatchAdds::decode(&packages).unwrap(), NOW)
        .unwrap();
    (steward, member, joiner, commit)
}

fn commits(c: &mut Criterion) {
    for size in [10, 100] {
        let added = size - 2;
        let mut pair = formed(2);
        let mut steward = pair.swap_remove(0);
        let adds = BatchAdds::decode(&joiners(added).1).unwrap();
        c.bench_function(&format!("commit/create_to_{size}"), |b| {
            b.iter_batched(
                || adds.clone(),
                |adds| steward.batch_commit(&group(), adds, NOW).unwrap(),
                BatchSize::LargeInput,
            )
        });
        c.bench_function(&format!("commit/process_to_{size}"), |b| {
            b.iter_batched(
                || batch(added),
                |(_, mut member, _, commit)| {
                    member
                        .apply_batch_commit(&group(), &commit.commit.payload, NOW)
                        .unwrap();
                    member
                },
                BatchSize::PerIteration,
            )
        });
        c.bench_function(&format!("commit/join_welcome_of_{size}"), |b| {
            b.iter_batched(
                || batch(added),
                |(_, _, mut joiner, commit)| {
                    joiner
                        .handle_message(&commit.welcomes[0].payload, NOW)
                        .unwrap();
                    joiner
                },
                BatchSize::PerIteration,
            )
        });
    }
}

/// Drops what an engine queued for its shell.
fn drain(engine: &mut Engine) {
    engine.take_storage_writes().unwrap();
    while engine.poll_event().is_some() {}
    while engine.poll_transmit().is_some() {}
}

fn app_messages(c: &mut Criterion) {
    let mut engines = formed(10);
    // One sender per benchmark: the receiver must have seen every earlier
    // message of its sender (mls-rs bounds how far a sender's ratchet may jump).
    let mut writer = engines.pop().unwrap();
    let mut sender = engines.pop().unwrap();
    let mut receiver = engines.swap_remove(0);
    for engine in [&mut writer, &mut sender, &mut receiver] {
        drain(engine);
    }
    let text = "x".repeat(100);
    c.bench_function("app/encrypt_100B_in_10", |b| {
        b.iter(|| {
            writer
                .send_message(&group(), black_box(&text), NOW)
                .unwrap();
            drain(&mut writer);
        })
    });
    c.bench_function("app/decrypt_100B_in_10", |b| {
        b.iter_batched(
            || {
                sender.send_message(&group(), &text, NOW).unwrap();
                sender.take_storage_writes().unwrap();
                while sender.poll_event().is_some() {}
                sender.poll_transmit().unwrap().payload
            },
            |payload| {
                receiver.handle_message(&payload, NOW).unwrap();
                drain(&mut receiver);
            },
            BatchSize::SmallInput,
        )
    });
}

/// One message sent and its step's MLS write taken, in a group of 1000: with a store that
/// journals (as a node's does: the step writes the message's traffic, and the whole state
/// once per 4096 messages) and with one that does not (the whole state, every step).
fn send_steps(c: &mut Criterion) {
    const MEMBERS: usize = 1000;
    for (journaled, name) in [
        (false, "app/send_step_in_1000_whole_state"),
        (true, "app/send_step_in_1000_journaled"),
    ] {
        let mut founders: Vec<Founder> = (0..MEMBERS)
            .map(|_| Founder::generate(&config()).unwrap())
            .collect();
        if journaled && let Some(sender) = founders.last_mut() {
            sender.store = MlsStore::journaled(config().epoch_retention);
        }
        let mut sender =
            form_group_at_once(&group(), GroupParams::default(), founders, &config(), NOW)
                .unwrap()
                .pop()
                .unwrap();
        drain(&mut sender);
        let text = "x".repeat(100);
        c.bench_function(name, |b| {
            b.iter(|| {
                sender
                    .send_message(&group(), black_box(&text), NOW)
                    .unwrap();
                drain(&mut sender);
            })
        });
    }
}

fn key_packages(c: &mut Criterion) {
    let mut steward = formed(2).swap_remove(0);
    let package = joiners(1).1.remove(0);
    c.bench_function("key_package/check", |b| {
        b.iter(|| {
            steward
                .check_key_package(&group(), black_box(&package), NOW)
                .unwrap()
        })
    });
}

criterion_group!(benches, commits, app_messages, send_steps, key_packages);
criterion_main!(benches);
