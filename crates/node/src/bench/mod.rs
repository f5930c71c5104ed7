//! `demls bench`: the performance measurements of `docs/performance.md`.
//!
//! - [`commit`]: one commit adding a batch of members — making it and its
//!   Welcome, a member processing it, a joiner joining from the Welcome.
//! - [`everyday`]: a large group's everyday commits (adding one member,
//!   removing one, a self-update), made and processed.
//! - [`messages`]: application messages encrypted and decrypted per second,
//!   with every engine step written to the node's SQLite store.
//! - [`history`]: a member back after N messages gets them from a peer's archive (Waku
//!   Store) through the whole node; and the Store query throughput of one node.
//! - [`network`]: a member admitted into a group on the simulated network:
//!   latency in one-way delays, and what every member sends.
//! - [`day`]: a day in the life of a group on the simulated network: joins,
//!   leaves, self-updates, chat, a steward failure and a partition.
//!
//! `commit` and `everyday` measure the same operations with plain mls-rs
//! ([`raw`]) in the same run, beside demls's figures.
//!
//! Each prints a table, or with `--json` one JSON object per line.

mod commit;
mod day;
mod envelope_kind;
mod everyday;
mod history;
mod messages;
mod network;
mod raw;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use demls_engine::{EngineConfig, GroupId, Timestamp};

/// Options of `demls bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Commit + Welcome adding a batch of members, its processing by a member and by a joiner.
    Commit(commit::CommitArgs),
    /// A large group's everyday commits (add one, remove one, self-update), beside plain mls-rs.
    Everyday(everyday::EverydayArgs),
    /// Application messages encrypted and decrypted per second, persisted to SQLite.
    Messages(messages::MessagesArgs),
    /// A member back after N messages fetches them from a peer's archive; Store throughput.
    History(history::HistoryArgs),
    /// One member admitted into a group on the simulated network: delays, messages, bytes.
    Network(network::NetworkArgs),
    /// A day of a group on the simulated network: changes, chat, a steward failure, a partition.
    Day(day::DayArgs),
}

/// Runs `demls bench`.
pub fn run(args: &BenchArgs) -> BenchResult<()> {
    match &args.command {
        BenchCommand::Commit(args) => commit::run(args),
        BenchCommand::Everyday(args) => everyday::run(args),
        BenchCommand::Messages(args) => messages::run(args),
        BenchCommand::History(args) => history::run(args),
        BenchCommand::Network(args) => network::run(args),
        BenchCommand::Day(args) => day::run(args),
    }
}

/// What a benchmark returns: its errors are reported and end the command.
type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The group every benchmark uses.
fn bench_group() -> GroupId {
    GroupId::new("bench").expect("a valid group name")
}

/// Engine settings for benchmarks: the defaults, without the message size
/// limit (a batch of thousands makes commits and Welcomes of megabytes).
fn bench_config() -> EngineConfig {
    EngineConfig {
        max_message_size: usize::MAX,
        ..EngineConfig::default()
    }
}

/// The wall clock as an engine timestamp.
fn wall_now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds, with microsecond resolution.
fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// demls's time over plain mls-rs's, to two decimals.
fn ratio(demls: f64, raw: f64) -> f64 {
    (demls / raw * 100.0).round() / 100.0
}

/// The median of some samples (the mean of the middle two for an even count).
fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `make(i)` for every `i` below `count`, in order, computed on every core.
fn on_every_core<T: Send>(
    count: usize,
    make: impl Fn(usize) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = count.div_ceil(threads).max(1);
    let make = &make;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per_thread).min(count)..((t + 1) * per_thread).min(count);
                scope.spawn(move || range.map(make).collect::<Result<Vec<_>, String>>())
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for worker in workers {
            all.extend(worker.join().map_err(|_| "a worker thread panicked")??);
        }
        Ok(all)
    })
}

/// The `q`-quantile of some samples (nearest rank).
fn quantile(samples: &[u64], q: f64) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// A line of `/proc/self/status` in bytes (`VmRSS`: resident now, `VmHWM`: the peak);
/// `None` where there is no such file (not Linux).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Threads mls-rs's parallel parts run on (rayon's global pool).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
