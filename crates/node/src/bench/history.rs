//! `demls bench history`: a member coming back to a busy group gets what it missed from a
//! peer's archive (Waku Store), through the whole node: two node runtimes in this process on
//! 127.0.0.1 with their own data directories, and a third member, Carol, so that Alice's
//! messages leave her node while Bob is away (rather than wait in her outbox). Bob stops;
//! Alice sends N messages; Bob starts again, and the time until his history holds all N is
//! measured, with the bytes fetched.
//! Then the Store query throughput of Alice's node: Bob pages through her archive.

use std::time::Duration;

use clap::Args;
use demls_engine::GroupParams;
use demls_storage::Durability;
use demls_transport::store::StoreQueryRequest;
use demls_transport::{Multiaddr, TransportConfig};
use serde_json::json;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::BenchResult;
use crate::runtime::admission::ChainAccess;
use crate::runtime::{self, NodeConfig, NodeHandle};
use crate::topics;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Messages sent while the member is away, comma-separated (one measurement each).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    messages: Vec<u32>,
    /// Bytes of chat text per message.
    #[arg(long, default_value_t = 100)]
    text_bytes: usize,
    /// How long the Store query throughput is measured, in seconds.
    #[arg(long, default_value_t = 5)]
    query_secs: u64,
    /// One JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
}

const GROUP: &str = "bench";
const PASSPHRASE: &str = "demls bench";
/// Longest wait for anything in the bench.
const PATIENCE: Duration = Duration::from_secs(300);

async fn start(dir: &std::path::Path, peers: Vec<Multiaddr>) -> BenchResult<NodeHandle> {
    Ok(runtime::start(NodeConfig {
        data_dir: dir.to_owned(),
        passphrase: Zeroizing::new(PASSPHRASE.to_owned()),
        key_file: None,
        transport: TransportConfig {
            peers,
            ..TransportConfig::default()
        },
        engine: demls_engine::EngineConfig::default(),
        durability: Durability::Full,
        chain: ChainAccess::none(),
        archive: demls_storage::ArchiveLimits::default(),
    })
    .await?)
}

/// Waits until `node`'s history of the group holds `count` messages.
async fn history_holds(node: &NodeHandle, count: usize) -> BenchResult<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held = node
            .call(move |rt| rt.messages(GROUP, 0, count + 1).map(|m| m.len()))
            .await??;
        if held >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the history holds {held} of {count} messages").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `member` invites `joiner`, who joins with the ticket; waits until it is a member.
async fn admit(member: &NodeHandle, joiner: &NodeHandle) -> BenchResult<()> {
    let address = joiner.address();
    let ticket = member
        .call(move |rt| rt.invite(GROUP, address, 600))
        .await??
        .ticket;
    joiner.call(move |rt| rt.join_ticket(&ticket)).await??;
    let deadline = Instant::now() + PATIENCE;
    while !joiner.call(|rt| rt.group(GROUP).is_ok()).await? {
        if Instant::now() > deadline {
            return Err("the joiner was not admitted".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One measurement: Bob away while Alice sends `n` messages.
struct Return {
    messages: u32,
    seconds: f64,
    bytes: u64,
    fetched: u64,
}

async fn away_and_back(
    dirs: &std::path::Path,
    alice: &NodeHandle,
    bob: NodeHandle,
    n: u32,
    text: &str,
    held: usize,
) -> BenchResult<(NodeHandle, Return)> {
    bob.shutdown().await?;
    for _ in 0..n {
        let text = text.to_owned();
        alice.call(move |rt| rt.send(GROUP, &text)).await??;
    }
    let started = Instant::now();
    let bob = start(&dirs.join("bob"), alice.relay().listen_addrs()).await?;
    history_holds(&bob, held + n as usize).await?;
    let seconds = started.elapsed().as_secs_f64();
    let (fetched, bytes) = bob.metrics().history();
    Ok((
        bob,
        Return {
            messages: n,
            seconds,
            bytes,
            fetched,
        },
    ))
}

async fn bench(args: &HistoryArgs) -> BenchResult<()> {
    let dirs = tempfile::Builder::new()
        .prefix("demls-bench-history-")
        .tempdir()?;
    let alice = start(&dirs.path().join("alice"), Vec::new()).await?;
    let mut bob = start(&dirs.path().join("bob"), alice.relay().listen_addrs()).await?;
    let carol = start(&dirs.path().join("carol"), alice.relay().listen_addrs()).await?;
    let group = alice
        .call(|rt| rt.create_group(GROUP, GroupParams::default()))
        .await??
        .id;
    admit(&alice, &bob).await?;
    admit(&alice, &carol).await?;
    let text = "x".repeat(args.text_bytes);
    let mut held = 0;
    if !args.json {
        println!("member back after N messages (whole node: Store fetch, MLS, SQLite)");
        println!(
            "{:>8} {:>10} {:>12} {:>14}",
            "N", "seconds", "messages/s", "bytes fetched"
        );
    }
    for &n in &args.messages {
        let (back, r) = away_and_back(dirs.path(), &alice, bob, n, &text, held).await?;
        bob = back;
        held += n as usize;
        let rate = f64::from(r.messages) / r.seconds;
        if args.json {
            println!(
                "{}",
                json!({"bench": "history_return", "messages": r.messages, "seconds": r.seconds,
                       "messages_per_sec": rate, "fetched_messages": r.fetched,
                       "fetched_bytes": r.bytes})
            );
        } else {
            println!(
                "{:>8} {:>10.2} {:>12.0} {:>14}",
                r.messages, r.seconds, rate, r.bytes
            );
        }
    }

    // Store query throughput: Bob pages through Alice's archive of the group's application
    // topic, one query at a time, for `query_secs`.
    let topic = topics::content_topic(&demls_engine::Topic {
        group: runtime::group_id(&group)?,
        kind: demls_engine::TopicKind::Application,
    })?;
    let peer = alice.relay().peer_id();
    let pubsub = bob.relay().pubsub_topic_of(&topic)?.to_string();
    let started = Instant::now();
    let (mut queries, mut messages) = (0u64, 0u64);
    let mut cursor = None;
    while started.elapsed() < Duration::from_secs(args.query_secs) {
        let mut request = StoreQueryRequest::for_topics(pubsub.clone(), [topic.to_string()], 100);
        request.pagination_cursor = cursor.take();
        let page = bob.relay().store_query(peer, request).await?;
        queries += 1;
        messages += page.messages.len() as u64;
        cursor = page.pagination_cursor;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (qps, mps) = (queries as f64 / seconds, messages as f64 / seconds);
    if args.json {
        println!(
            "{}",
            json!({"bench": "store_queries", "queries_per_sec": qps, "messages_per_sec": mps,
                   "page_size": 100})
        );
    } else {
        println!(
            "store queries of one node (pages of 100, one at a time): {qps:.0} queries/s, {mps:.0} messages/s"
        );
    }
    for node in [bob, carol, alice] {
        node.shutdown().await?;
    }
    Ok(())
}

/// Runs `demls bench history`.
pub fn run(args: &HistoryArgs) -> BenchResult<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}
