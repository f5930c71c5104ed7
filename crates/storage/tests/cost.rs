//! What the store costs, printed rather than asserted: opening a store (with 5,000 messages)
//! and an archive, and engine steps per second with a small (5 KiB, a group of 10) and a large
//! (420 KiB, a group of 1000) MLS state written per step. A measurement, so ignored by default:
//!
//! ```sh
//! cargo test -p demls-storage --test cost -- --ignored --nocapture
//! ```
//!
//! `docs/performance.md` ("Encryption at rest") has the numbers.

use std::path::Path;
use std::time::Instant;

use demls_engine::{Epoch, GroupId, StorageWrite, Timestamp};
use demls_identity::Address;
use demls_storage::{Archive, ArchiveLimits, Durability, NewMessage, Step, Store};
use zeroize::Zeroizing;

const PASS: &str = "correct horse battery staple";

fn group() -> GroupId {
    GroupId::new("lab").unwrap()
}

/// A received message, with `state` bytes of MLS group state when `state` is not 0.
fn step(n: u64, state: usize) -> Step {
    let storage = if state == 0 {
        Vec::new()
    } else {
        vec![StorageWrite::Group {
            group_id: group().as_bytes().to_vec(),
            snapshot: Zeroizing::new(vec![n.to_le_bytes()[0]; state]),
            epochs: Vec::new(),
            oldest_retained_epoch: None,
        }]
    };
    Step {
        storage,
        messages: vec![NewMessage {
            group: group(),
            id: n.to_be_bytes().to_vec(),
            sender: Address::new([1; 20]),
            text: "x".repeat(100),
            sent_at: Timestamp(n),
            epoch: Epoch(1),
            lamport: n,
            received_at: Timestamp(n),
            own: false,
        }],
        ..Step::default()
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Milliseconds `f` takes, the median of 7 runs.
fn millis(mut f: impl FnMut()) -> f64 {
    median(
        (0..7)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// Steps per second, `steps` steps of `state` bytes of MLS state, the median of 3 stores.
fn steps_per_s(durability: Durability, steps: u64, state: usize) -> f64 {
    median(
        (0..3)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let mut store = Store::open(dir.path(), PASS, durability).unwrap();
                let started = Instant::now();
                for n in 0..steps {
                    store.commit_step(&step(n, state)).unwrap();
                }
                steps as f64 / started.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn open_store(dir: &Path) {
    let store = Store::open(dir, PASS, Durability::Full).unwrap();
    assert_eq!(store.messages(&group(), 0, 100).unwrap().len(), 100);
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn store_costs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), PASS, Durability::Relaxed).unwrap();
    for n in 0..5000 {
        store.commit_step(&step(n, 0)).unwrap();
    }
    drop(store);
    println!("| what | value |");
    println!("|---|---|");
    println!(
        "| Store::open, 5,000 messages, first page read | {:.0} ms |",
        millis(|| open_store(dir.path()))
    );
    println!(
        "| Archive::open | {:.0} ms |",
        millis(|| drop(Archive::open(dir.path(), PASS, ArchiveLimits::default()).unwrap()))
    );
    for (label, steps, state) in [("5 KiB", 2000, 5 * 1024), ("420 KiB", 200, 420 * 1024)] {
        for (durability, name) in [(Durability::Relaxed, "OFF"), (Durability::Full, "FULL")] {
            println!(
                "| steps/s, {label} state, synchronous={name} | {:.0} |",
                steps_per_s(durability, steps, state)
            );
        }
    }
}
