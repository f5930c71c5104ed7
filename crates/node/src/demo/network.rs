//! `demls demo` over the real transport: node runtimes in this process on 127.0.0.1, each with
//! its own data directory, talking Waku Relay over TCP.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use demls_engine::{ChangeKind, Epoch, Event, GroupId, GroupView, Timestamp};
use demls_identity::Address;
use demls_storage::Durability;
use demls_transport::{TransportConfig, TransportEvent, WakuRelay};
use futures::future::try_join_all;
use tokio::sync::mpsc;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::{
    AFTER_REMOVAL, DemoArgs, DemoError, INVITATION_MS, Outcome, Summary, after_removal,
    approved_update, engine_config, feed, mark, rotating, tell_key_updates, tell_lockout,
    tell_rotation, tell_theft, updates_committed,
};
use crate::runtime::admission::ChainAccess;
use crate::runtime::{self, NodeConfig, NodeEvent, NodeHandle, now, setup};
use crate::story::Names;
use crate::topics;

/// The demo's data directories are throw-away; their secrets still get a passphrase.
const PASSPHRASE: &str = "demls demo";

/// How long a chat round waits for every message to reach every member. Delivery, not
/// latency, is what the demo shows; 50 nodes in one process keep two cores at a load average
/// of about 12, and the round after the removal (every member processing the commit that
/// removes one and replaces three leaves, while messages of the new epoch wait for it) ended
/// 6 to 20 s after its last message was sent in passing runs (the removed member's replay
/// included), while one CI run (2026-12-07) missed 5 of 99 messages after a 30 s wait.
/// Messages of the first round that come late are still counted, since the demo takes events
/// in until its end; the last round gets only this wait.
const CHAT_WAIT: Duration = Duration::from_secs(60);

/// How long the demo waits for all its members to join. 49 joiners at once keep 50 nodes in
/// one process (two cores) busy with key packages sealed to every steward, votes (each add
/// needs two thirds of the members' votes before it can be decided) and commits. In runs of
/// 2026-12-07 the last joiners' votes took 50 to 64 s, and one run had 45 of 50 members after
/// 152 s, a commit about every 50 s adding a few each: joining is slow at this size and load
/// (a performance problem, not hidden by this wait: the demo shows that everyone gets in).
const JOIN_WAIT: Duration = Duration::from_secs(300);

/// What one node has seen.
#[derive(Default)]
struct Seen {
    members: Vec<Address>,
    texts: BTreeSet<String>,
    /// Members whose update it saw approved.
    updates: BTreeSet<Address>,
}

struct Demo {
    nodes: Vec<NodeHandle>,
    addresses: Vec<Address>,
    dirs: tempfile::TempDir,
    names: Names,
    seen: Vec<Seen>,
    events: mpsc::UnboundedReceiver<(usize, NodeEvent)>,
    start: Timestamp,
    group: GroupId,
}

impl Demo {
    async fn start(args: &DemoArgs) -> Result<Self, DemoError> {
        let n = usize::from(args.members);
        let dirs = tempfile::Builder::new().prefix("demls-demo-").tempdir()?;
        let (tx, events) = mpsc::unbounded_channel();
        // Started all at once, each on its own task: opening a data directory stretches its
        // passphrase, which would otherwise take one core for each node in turn. The nodes
        // link up afterwards ([`Demo::wait_for_mesh`]).
        let mut starting = tokio::task::JoinSet::new();
        for i in 0..n {
            let config = NodeConfig {
                data_dir: dirs.path().join(format!("node{i}")),
                passphrase: Zeroizing::new(PASSPHRASE.to_owned()),
                key_file: None,
                transport: TransportConfig {
                    cluster_id: args.cluster_id,
                    peers: args.peer.clone(),
                    ..TransportConfig::default()
                },
                engine: engine_config(),
                durability: Durability::Relaxed,
                chain: ChainAccess::none(),
                archive: demls_storage::ArchiveLimits::default(),
            };
            starting.spawn(async move { (i, runtime::start(config).await) });
        }
        let mut started: Vec<Option<NodeHandle>> = (0..n).map(|_| None).collect();
        while let Some(done) = starting.join_next().await {
            let (i, node) = done?;
            started[i] = Some(node?);
        }
        let nodes: Vec<NodeHandle> = started.into_iter().flatten().collect();
        for (i, node) in nodes.iter().enumerate() {
            let mut rx = node.subscribe();
            let tx = tx.clone();
            tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => {
                            if tx.send((i, event)).is_err() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
        }
        let addresses: Vec<Address> = nodes.iter().map(NodeHandle::address).collect();
        Ok(Self {
            names: Names::new(&addresses),
            seen: (0..n).map(|_| Seen::default()).collect(),
            addresses,
            nodes,
            dirs,
            events,
            start: now(),
            group: GroupId::new("demo")?,
        })
    }

    /// Links every node to the neighbours it dials, dialling again those it is not connected
    /// to every second; whether all links are up within 30 s.
    async fn wait_for_mesh(&self) -> Result<bool, DemoError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ids: Vec<_> = self.nodes.iter().map(|n| n.relay().peer_id()).collect();
        let addrs: Vec<_> = self
            .nodes
            .iter()
            .map(|n| n.relay().listen_addrs())
            .collect();
        while Instant::now() < deadline {
            let mut linked = true;
            for (i, node) in self.nodes.iter().enumerate() {
                let peers = node.relay().connected_peers();
                for j in neighbours(i)
                    .into_iter()
                    .filter(|j| !peers.contains(&ids[*j]))
                {
                    linked = false;
                    for addr in &addrs[j] {
                        node.relay().dial(addr.clone()).await?;
                    }
                }
            }
            if linked {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(false)
    }

    /// Takes in one event: updates what the node has seen and tells it.
    fn absorb(&mut self, i: usize, event: &NodeEvent) {
        let Some(engine) = &event.engine else {
            return;
        };
        let who = self.addresses[i];
        let seen = &mut self.seen[i];
        match engine {
            Event::GroupCreated { .. } => seen.members = vec![who],
            Event::Joined { members, .. } | Event::EpochChanged { members, .. } => {
                seen.members.clone_from(members);
            }
            Event::Removed { .. } => seen.members.clear(),
            Event::Message { text, sender, .. } if *sender != who => {
                seen.texts.insert(text.clone());
            }
            _ => seen.updates.extend(approved_update(engine)),
        }
        let decided_elsewhere = matches!(engine, Event::ProposalDecided { .. }) && i != 0;
        if let Some(line) = self.names.tell(&who, engine).filter(|_| !decided_elsewhere) {
            let at = event.api.at.saturating_sub(self.start.0) as f64 / 1000.0;
            println!("[{at:>7.3}s] {line}");
        }
    }

    /// Tells events as they come until `done` holds or `limit` passes.
    async fn run_until(&mut self, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(first)) => {
                    // Nodes report through separate tasks: tell what has arrived in time order.
                    let mut batch = vec![first];
                    while let Ok(next) = self.events.try_recv() {
                        batch.push(next);
                    }
                    batch.sort_by_key(|(_, event)| event.api.at);
                    for (i, event) in batch {
                        self.absorb(i, &event);
                    }
                }
                Ok(None) | Err(_) => return done(self),
            }
        }
    }

    /// Node `i`'s data directory.
    fn dir(&self, i: usize) -> PathBuf {
        self.dirs.path().join(format!("node{i}"))
    }

    /// The group as each of the first `count` nodes sees it.
    async fn views(&self, count: usize) -> Result<Vec<GroupView>, DemoError> {
        // Asked of every node at once: each answers when its queue reaches the call.
        let views = try_join_all(self.nodes[..count].iter().map(|node| {
            let group = self.group.clone();
            node.call(move |rt| rt.group_view(&group))
        }))
        .await?;
        Ok(views.into_iter().flatten().collect())
    }

    /// Each of the first `count` nodes says something; returns the texts with their recipients.
    async fn chat_round(
        &mut self,
        count: usize,
        text: impl Fn(usize) -> String,
    ) -> Result<Vec<(String, Vec<usize>)>, DemoError> {
        // Everyone talks at once, as people do.
        let sent: Vec<(String, Vec<usize>)> = (0..count)
            .map(|i| (text(i), (0..count).filter(|j| *j != i).collect()))
            .collect();
        try_join_all(sent.iter().zip(&self.nodes).map(|((line, _), node)| {
            let (group, body) = (self.group.to_string(), line.clone());
            node.command(move |rt| rt.send(&group, &body))
        }))
        .await?;
        let expected = sent.clone();
        self.run_until(CHAT_WAIT, move |demo| {
            expected
                .iter()
                .all(|(text, to)| to.iter().all(|j| demo.seen[*j].texts.contains(text)))
        })
        .await;
        Ok(sent)
    }
}

/// The earlier nodes node `i` dials: its two predecessors and the nodes at half and a quarter
/// of its index. A sparse, connected graph (every node reaches node 0 in a few hops) like a
/// real network's, rather than everyone connected to everyone: gossipsub then keeps its mesh
/// degree, and a 50-node demo does not spend its CPU on 1225 connections in one process.
fn neighbours(i: usize) -> Vec<usize> {
    let mut list: Vec<usize> = [i.checked_sub(1), i.checked_sub(2), Some(i / 2), Some(i / 4)]
        .into_iter()
        .flatten()
        .filter(|j| *j < i)
        .collect();
    list.sort_unstable();
    list.dedup();
    list
}

/// Whether the first `count` nodes are in a group of `count`.
fn group_of(count: usize) -> impl Fn(&Demo) -> bool {
    move |demo: &Demo| demo.seen[..count].iter().all(|s| s.members.len() == count)
}

/// Copies the files of node `i`'s data directory to `to` (as a thief with the disk would),
/// on the node's task: between two of its steps, so that the copy is whole. SQLite's
/// shared-memory index is left out; the copy's first opening rebuilds it from the log.
async fn steal(demo: &Demo, i: usize, to: PathBuf) -> Result<(), DemoError> {
    let from = demo.dir(i);
    let copy = move |_: &mut runtime::Runtime| -> std::io::Result<()> {
        fs::create_dir(&to)?;
        for entry in fs::read_dir(&from)? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_file() && !name.to_string_lossy().ends_with("-shm") {
                fs::copy(entry.path(), to.join(name))?;
            }
        }
        Ok(())
    };
    Ok(demo.nodes[i].call(copy).await??)
}

/// Opens the node state in `dir` (with the passphrase, as its owner or a thief would) and
/// feeds it `ciphertexts`: what it made of them, and how many it refused outright.
fn replay(dir: &Path, ciphertexts: &[Vec<u8>]) -> Result<(Vec<Event>, usize), DemoError> {
    let config = engine_config();
    let mut engine = setup::load(dir, None, PASSPHRASE, Durability::Relaxed, config, now())?.engine;
    Ok(feed(&mut engine, ciphertexts, now()))
}

/// An eavesdropper on the group's application topic: a bare relay node next to node 0.
async fn wiretap(
    node: &NodeHandle,
    cluster_id: u16,
    group: &GroupId,
) -> Result<Arc<Mutex<Vec<Vec<u8>>>>, DemoError> {
    let (relay, mut events) = WakuRelay::start(TransportConfig {
        cluster_id,
        peers: node.relay().listen_addrs(),
        ..TransportConfig::default()
    })
    .await?;
    let topic = topics::content_topic(&demls_engine::Topic {
        group: group.clone(),
        kind: demls_engine::TopicKind::Application,
    })?;
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected_tx = Some(connected_tx);
        // The relay handle lives as long as this task.
        let _relay = relay;
        while let Some(event) = events.recv().await {
            match event {
                TransportEvent::PeerConnected(_) => {
                    if let Some(tx) = connected_tx.take() {
                        let _ = tx.send(());
                    }
                }
                TransportEvent::Message { message, .. }
                    if message.content_topic == topic.as_str() =>
                {
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(message.payload);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(20), connected).await??;
    Ok(captured)
}

/// Runs the demo on real node runtimes.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(usize::from(args.members)))
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

/// Worker threads for `n` nodes in one process: one per four nodes, at least the default
/// (one per core). Each node's engine steps (signature checks, MLS, its database) run on a
/// worker thread and hold it while they last; with one worker per core, a few long steps stop
/// every other node's networking, which its peers then take for a dead link. More threads
/// than cores let the operating system share the cores between nodes, as it would between
/// separate processes.
fn worker_threads(n: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    cores.max(n.div_ceil(4))
}

async fn run_async(args: &DemoArgs) -> Result<(), DemoError> {
    let n = usize::from(args.members);
    let mut demo = Demo::start(args).await?;
    println!(
        "== {n} nodes on 127.0.0.1, Waku Relay over TCP (cluster {}) ==",
        args.cluster_id
    );
    for (i, node) in demo.nodes.iter().enumerate() {
        let addrs = node.relay().listen_addrs();
        let first = addrs.first().map(ToString::to_string).unwrap_or_default();
        println!(
            "   {} listens on {first}",
            demo.names.of(&demo.addresses[i])
        );
    }
    if !demo.wait_for_mesh().await? {
        return Err("the demo's nodes did not connect to each other".into());
    }
    let params = args.group_params();
    let name = demo.group.to_string();
    let created = demo.nodes[0]
        .command(move |rt| rt.create_group(&name, params))
        .await?;
    // An invite-only group's identifier on the wire is random; the name stays with people.
    demo.group = GroupId::new(&created.id)?;
    let group = demo.group.clone();
    // Listening from the start, the eavesdropper hears every commit the thief must follow.
    let captured = wiretap(&demo.nodes[0], args.cluster_id, &group).await?;
    // The creator invites each member-to-be (its YES, signed ahead); each joins with the ticket.
    // Each joiner asks as soon as its own invitation is made, not after the others'.
    try_join_all(
        demo.nodes
            .iter()
            .zip(&demo.addresses)
            .skip(1)
            .map(|(node, invitee)| {
                let (name, invitee, creator) = (group.to_string(), *invitee, &demo.nodes[0]);
                async move {
                    let invitation = creator
                        .command(move |rt| rt.invite(&name, invitee, INVITATION_MS / 1000))
                        .await?;
                    node.command(move |rt| rt.join_ticket(&invitation.ticket))
                        .await
                }
            }),
    )
    .await?;
    let everyone = group_of(n);
    demo.run_until(JOIN_WAIT, everyone).await;
    let joined = demo.seen.iter().filter(|s| !s.members.is_empty()).count();
    let tapped = || captured.lock().unwrap_or_else(|e| e.into_inner()).clone();

    let mark = mark(n);
    let mark_name = demo.names.of(&demo.addresses[mark]);
    println!("\n== a thief copies {mark_name}'s data directory and listens to the group ==");
    let loot = demo.dirs.path().join("stolen");
    steal(&demo, mark, loot.clone()).await?;

    // The updates, approved at once, wait for the next commit: the removal's takes them
    // along (or, if that is more than `UPDATE_BATCH_MS` away, a commit of their own).
    let rotating: Vec<usize> = rotating(n).collect();
    let updaters: Vec<Address> = rotating.iter().map(|i| demo.addresses[*i]).collect();
    tell_rotation(&demo.names, &updaters);
    let asked = demo
        .views(1)
        .await?
        .first()
        .map_or(Epoch::default(), |v| v.epoch);
    let mut asks = tokio::task::JoinSet::new();
    for i in &rotating {
        let (node, name) = (demo.nodes[*i].clone(), group.to_string());
        asks.spawn(async move { node.command(move |rt| rt.rotate(&name)).await });
    }
    while let Some(done) = asks.join_next().await {
        done??;
    }

    println!("\n== everyone talks ==");
    let mut sent = demo
        .chat_round(n, |i| format!("hello from member {i}"))
        .await?;

    let victim = n - 1;
    let victim_address = demo.addresses[victim];
    // The removed member keeps every key it had before its removal: its node stops now,
    // before the vote, and its state stays on disk.
    demo.nodes[victim].shutdown().await?;
    let removal_from = tapped().len();
    // The removal is proposed once every member knows the updates approved, so that
    // whoever commits it can take them along.
    let wanted = updaters.clone();
    demo.run_until(Duration::from_secs(10), move |demo| {
        demo.seen[..victim].iter().enumerate().all(|(j, seen)| {
            wanted
                .iter()
                .all(|u| *u == demo.addresses[j] || seen.updates.contains(u))
        })
    })
    .await;

    println!(
        "\n== {} proposes removing {} ==",
        demo.names.of(&demo.addresses[1]),
        demo.names.of(&victim_address)
    );
    // Removing someone takes a majority of people: the others agree ahead of the vote.
    try_join_all(
        demo.nodes[..victim]
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, node)| {
                let name = group.to_string();
                node.command(move |rt| {
                    rt.decide_change(&name, ChangeKind::Remove(victim_address), true)
                })
            }),
    )
    .await?;
    let name = group.to_string();
    demo.nodes[1]
        .command(move |rt| rt.propose_remove(&name, victim_address))
        .await?;
    let rest = group_of(victim);
    demo.run_until(Duration::from_secs(60), rest).await;
    // The chat that follows is sent after the updates are committed.
    let deadline = Instant::now() + Duration::from_secs(45);
    let views = loop {
        let views = demo.views(victim).await?;
        if updates_committed(&views, &updaters, asked) || Instant::now() >= deadline {
            break views;
        }
        demo.run_until(Duration::from_millis(200), |_| false).await;
    };
    tell_key_updates(&demo.names, views.first(), asked);

    println!(
        "\n== the group talks on without {}, with new keys ==",
        demo.names.of(&victim_address)
    );
    sent.extend(
        demo.chat_round(victim, |i| format!("{AFTER_REMOVAL}, member {i} says hi"))
            .await?,
    );

    println!("\n== can the removed member read what follows? ==");
    let ciphertexts = tapped();
    let after_removal_sent = &ciphertexts[removal_from..];
    let (seen, refused) = replay(&demo.dir(victim), after_removal_sent)?;
    let at = now().0.saturating_sub(demo.start.0) as f64 / 1000.0;
    for line in seen
        .iter()
        .filter_map(|e| demo.names.tell(&victim_address, e))
    {
        println!("[{at:>7.3}s] {line}");
    }
    let readable = seen.iter().filter(|e| after_removal(e)).count();
    tell_lockout(
        &demo.names.of(&victim_address),
        after_removal_sent.len(),
        readable,
        refused,
    );

    println!("\n== can the thief read what follows? ==");
    // All the topic carried: what the member had already processed when its state was
    // copied is refused as a repeat, what was still on its way is read.
    let (stolen_seen, _) = replay(&loot, &ciphertexts)?;
    let readable_by_thief = tell_theft(&mark_name, ciphertexts.len(), &stolen_seen);

    let delivered = sent
        .iter()
        .filter(|(text, to)| to.iter().all(|j| demo.seen[*j].texts.contains(text)))
        .count();
    for (text, to) in &sent {
        let missing: Vec<String> = to
            .iter()
            .filter(|j| !demo.seen[**j].texts.contains(text))
            .map(|j| demo.names.of(&demo.addresses[*j]))
            .collect();
        if !missing.is_empty() {
            println!("✗ '{text}' did not reach {}", missing.join(", "));
        }
    }
    let views = demo.views(victim).await?;
    try_join_all(demo.nodes[..victim].iter().map(NodeHandle::shutdown)).await?;
    Summary::of(&Outcome {
        members: n,
        joined,
        sent: sent.len(),
        delivered,
        readable_after_removal: readable,
        readable_by_thief,
        rotation_asked: asked,
        views: &views,
    })
    .print(args.json)
}
