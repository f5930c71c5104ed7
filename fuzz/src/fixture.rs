//! The group the engine targets fuzz against, formed once through the real flow.
//!
//! Four nodes on the simulated network (`demls-sim`): a steward S creates group
//! [`GROUP`], members A, B and J join through announcements, sealed key packages, votes,
//! commits and Welcomes, and A and B chat. Every node's MLS state (its storage journal,
//! folded) and protocol snapshot are kept, so that an engine can be restored from them as
//! often as a target needs a fresh one ([`NodeState::restore`]). J's state is also kept from
//! the moment it had sent its join request and not yet received its Welcome: a pending joiner.
//!
//! The fixture is written to a file by the `seeds` program and read by every target, so that
//! the seed corpora (real ciphertexts, Welcomes, announcements of this very group) match the
//! group the targets hold. A target that finds no fixture file forms the group itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use demls_engine::wire::{Envelope, envelope};
use demls_engine::{
    Engine, EngineConfig, EngineError, Event, GroupId, GroupParams, GroupTraffic, JoinRule,
    MlsSigner, MlsStore, StorageWrite, Timestamp, TopicKind, VotePolicy,
};
use demls_identity::Wallet;
use demls_sim::{NetConfig, NodeId, Sim};
use prost::Message;

/// The group's name.
pub const GROUP: &str = "fuzz";

/// Fixed private keys: S, A, B, J, and K (a key package owner that never asked to join).
pub const WALLET_SECRETS: [[u8; 32]; 5] =
    [[0x11; 32], [0x22; 32], [0x33; 32], [0x44; 32], [0x55; 32]];

/// The group id.
pub fn group() -> GroupId {
    GroupId::new(GROUP).expect("valid group name")
}

/// The engine settings of every fixture node (those of the engine's own tests).
pub fn config() -> EngineConfig {
    EngineConfig {
        announce_interval_ms: 1_000,
        join_retry_ms: 3_000,
        commit_delay_ms: 2_000,
        steward_timeout_ms: 2_000,
        rebroadcast_ms: 1_000,
        sync_retry_ms: 2_000,
        vote_policy: VotePolicy::Automatic,
        ..EngineConfig::default()
    }
}

/// One retained past epoch of a group.
#[derive(Clone, PartialEq, Message)]
pub struct EpochBlob {
    /// The epoch id.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// mls-rs epoch record.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// A group's MLS state as the storage journal last wrote it.
#[derive(Clone, PartialEq, Message)]
pub struct GroupState {
    /// MLS group id.
    #[prost(bytes = "vec", tag = "1")]
    pub group_id: Vec<u8>,
    /// mls-rs snapshot of the current epoch.
    #[prost(bytes = "vec", tag = "2")]
    pub snapshot: Vec<u8>,
    /// Retained past epochs.
    #[prost(message, repeated, tag = "3")]
    pub epochs: Vec<EpochBlob>,
    /// Application messages journaled since the snapshot, replayed on it at restore.
    #[prost(message, repeated, tag = "4")]
    pub traffic: Vec<GroupTraffic>,
}

/// A key package's private parts as the storage journal wrote them.
#[derive(Clone, PartialEq, Message)]
pub struct KeyPackageBlob {
    /// Key package reference.
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// mls-encoded `KeyPackageData`.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// Everything needed to restore one node's engine.
#[derive(Clone, PartialEq, Message)]
pub struct NodeState {
    /// Index into [`WALLET_SECRETS`].
    #[prost(uint32, tag = "1")]
    pub wallet: u32,
    /// MLS signature key, secret half.
    #[prost(bytes = "vec", tag = "2")]
    pub signer_secret: Vec<u8>,
    /// MLS signature key, public half.
    #[prost(bytes = "vec", tag = "3")]
    pub signer_public: Vec<u8>,
    /// MLS group state.
    #[prost(message, repeated, tag = "4")]
    pub groups: Vec<GroupState>,
    /// Key packages' private parts.
    #[prost(message, repeated, tag = "5")]
    pub key_packages: Vec<KeyPackageBlob>,
    /// [`Engine::snapshot`].
    #[prost(bytes = "vec", tag = "6")]
    pub snapshot: Vec<u8>,
}

/// A message one node published while the group formed.
#[derive(Clone, PartialEq, Message)]
pub struct Captured {
    /// Index into [`WALLET_SECRETS`] of the sender.
    #[prost(uint32, tag = "1")]
    pub from: u32,
    /// Welcome topic (else application topic).
    #[prost(bool, tag = "2")]
    pub welcome_topic: bool,
    /// The envelope as published.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
}

/// The whole fixture.
#[derive(Clone, PartialEq, Message)]
pub struct Fixture {
    /// Virtual time when the states were taken (Unix ms).
    #[prost(uint64, tag = "1")]
    pub now: u64,
    /// S, A, B, J, all members.
    #[prost(message, repeated, tag = "2")]
    pub members: Vec<NodeState>,
    /// J before its Welcome.
    #[prost(message, optional, tag = "3")]
    pub pending_joiner: Option<NodeState>,
    /// A key package of K (wallet 4), never sent anywhere.
    #[prost(bytes = "vec", tag = "4")]
    pub spare_key_package: Vec<u8>,
    /// Every message published, in order.
    #[prost(message, repeated, tag = "5")]
    pub messages: Vec<Captured>,
}

/// Indices into [`Fixture::members`] and [`WALLET_SECRETS`].
pub const S: usize = 0;
/// Member A.
pub const A: usize = 1;
/// Member B.
pub const B: usize = 2;
/// Member J.
pub const J: usize = 3;
/// K, who owns the spare key package.
pub const K: usize = 4;

/// The wallet with index `i`.
pub fn wallet(i: usize) -> Wallet {
    Wallet::from_bytes(&WALLET_SECRETS[i]).expect("valid secp256k1 key")
}

/// Every fixture wallet, by index.
pub fn wallets() -> Vec<Wallet> {
    (0..WALLET_SECRETS.len()).map(wallet).collect()
}

impl NodeState {
    /// A fresh MLS store holding this node's MLS state; `None` if a key package's private
    /// parts do not decode (the storage layer refuses such a row as corrupt).
    pub fn store(&self) -> Option<MlsStore> {
        let store = MlsStore::in_memory(config().epoch_retention);
        for group in &self.groups {
            store.restore_group(
                group.group_id.clone(),
                group.snapshot.clone(),
                group
                    .epochs
                    .iter()
                    .map(|e| (e.epoch, e.data.clone()))
                    .collect(),
            );
            for traffic in &group.traffic {
                store.restore_traffic(&group.group_id, traffic.clone());
            }
        }
        for kp in &self.key_packages {
            store.restore_key_package(kp.id.clone(), &kp.data).ok()?;
        }
        Some(store)
    }

    /// The node's MLS signer.
    pub fn signer(&self) -> MlsSigner {
        MlsSigner::from_bytes(&self.signer_secret, &self.signer_public)
    }

    /// An engine restored from this state at `now`.
    pub fn restore(&self, now: Timestamp) -> Result<Engine, EngineError> {
        let mut engine = Engine::restore(
            wallet(self.wallet as usize),
            &self.signer(),
            config(),
            self.store()
                .ok_or_else(|| EngineError::Malformed("key package data".into()))?,
            &self.snapshot,
            now,
        )?;
        drain(&mut engine);
        Ok(engine)
    }
}

impl Fixture {
    /// When the states were taken.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now)
    }

    /// The captured envelopes, decoded.
    pub fn envelopes(&self) -> impl Iterator<Item = (&Captured, Envelope)> {
        self.messages
            .iter()
            .filter_map(|c| Envelope::decode(c.payload.as_slice()).ok().map(|e| (c, e)))
    }

    /// The steward's HPKE key for join requests, from its last announcement.
    pub fn steward_hpke_key(&self) -> Vec<u8> {
        self.envelopes()
            .filter_map(|(_, e)| match e.body {
                Some(envelope::Body::Announcement(a)) => Some(a.steward_hpke_key),
                _ => None,
            })
            .last()
            .expect("the steward announced its group")
    }

    /// A member's engine, restored.
    pub fn member(&self, i: usize) -> Engine {
        self.members[i]
            .restore(self.now())
            .expect("fixture member restores")
    }

    /// The pending joiner's engine, restored.
    pub fn joiner(&self) -> Engine {
        self.pending_joiner
            .as_ref()
            .expect("fixture has a pending joiner")
            .restore(self.now())
            .expect("fixture joiner restores")
    }
}

/// Takes and drops everything an engine has to say.
pub fn drain(engine: &mut Engine) -> Vec<demls_engine::Transmit> {
    while engine.poll_event().is_some() {}
    let mut out = Vec::new();
    while let Some(t) = engine.poll_transmit() {
        out.push(t);
    }
    out
}

/// A group's snapshot, its retained epochs, and its traffic since the snapshot.
type GroupRecord = (Vec<u8>, BTreeMap<u64, Vec<u8>>, Vec<GroupTraffic>);

/// Folds a storage journal into the state it leaves.
#[derive(Default)]
struct Journal {
    groups: BTreeMap<Vec<u8>, GroupRecord>,
    key_packages: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Journal {
    fn apply(&mut self, writes: Vec<StorageWrite>) {
        for write in writes {
            match write {
                StorageWrite::Group {
                    group_id,
                    snapshot,
                    epochs,
                    oldest_retained_epoch,
                } => {
                    let entry = self.groups.entry(group_id).or_default();
                    entry.0 = snapshot.to_vec();
                    for (epoch, data) in epochs {
                        entry.1.insert(epoch, data.to_vec());
                    }
                    if let Some(oldest) = oldest_retained_epoch {
                        entry.1.retain(|e, _| *e >= oldest);
                    }
                    entry.2.clear();
                }
                StorageWrite::GroupTraffic { group_id, traffic } => {
                    if let Some(entry) = self.groups.get_mut(&group_id) {
                        entry.2.push(traffic);
                    }
                }
                StorageWrite::GroupDeleted { group_id } => {
                    self.groups.remove(&group_id);
                }
                StorageWrite::KeyPackage { id, data } => {
                    self.key_packages.insert(id, data.to_vec());
                }
                StorageWrite::KeyPackageDeleted { id } => {
                    self.key_packages.remove(&id);
                }
            }
        }
    }
}

struct Live {
    id: NodeId,
    wallet: u32,
    signer: MlsSigner,
    store: MlsStore,
    journal: Journal,
}

impl Live {
    fn state(&mut self, sim: &Sim) -> NodeState {
        self.journal.apply(self.store.take_writes());
        NodeState {
            wallet: self.wallet,
            signer_secret: self.signer.secret_bytes().to_vec(),
            signer_public: self.signer.public_bytes().to_vec(),
            groups: self
                .journal
                .groups
                .iter()
                .map(|(id, (snapshot, epochs, traffic))| GroupState {
                    group_id: id.clone(),
                    snapshot: snapshot.clone(),
                    epochs: epochs
                        .iter()
                        .map(|(epoch, data)| EpochBlob {
                            epoch: *epoch,
                            data: data.clone(),
                        })
                        .collect(),
                    traffic: traffic.clone(),
                })
                .collect(),
            key_packages: self
                .journal
                .key_packages
                .iter()
                .map(|(id, data)| KeyPackageBlob {
                    id: id.clone(),
                    data: data.clone(),
                })
                .collect(),
            snapshot: sim.node(self.id).engine.snapshot().expect("snapshot"),
        }
    }
}

fn add(sim: &mut Sim, wallet_index: usize) -> Live {
    let signer = MlsSigner::generate().expect("signer");
    let store = MlsStore::journaled(config().epoch_retention);
    let engine = Engine::new(wallet(wallet_index), &signer, config(), store.clone());
    Live {
        id: sim.add(engine),
        wallet: wallet_index as u32,
        signer,
        store,
        journal: Journal::default(),
    }
}

fn converged(sim: &Sim, nodes: &[&Live], members: usize) -> bool {
    let views: Vec<_> = nodes
        .iter()
        .map(|n| sim.node(n.id).engine.group(&group()))
        .collect();
    let Some(Some(first)) = views.first() else {
        return false;
    };
    views.iter().all(|v| {
        v.as_ref().is_some_and(|v| {
            v.epoch == first.epoch
                && v.authenticator == first.authenticator
                && v.members.len() == members
        })
    })
}

/// Forms the group through the real flow and takes every node's state.
pub fn build() -> Fixture {
    let mut sim = Sim::new(NetConfig {
        seed: 5,
        latency_ms: 30,
        jitter_ms: 10,
        ..NetConfig::default()
    });
    sim.enable_wiretap();
    let g = group();
    // A public group: the fixture's joiners ask without invitations.
    let params = GroupParams {
        vote_timeout_secs: 20,
        membership_vote_timeout_secs: 20,
        join_rule: JoinRule::Open,
        ..GroupParams::default()
    };
    let mut s = add(&mut sim, S);
    sim.act(s.id, |e, now| e.create_group(g.clone(), params, now))
        .expect("create group");
    let mut a = add(&mut sim, A);
    let mut b = add(&mut sim, B);
    for n in [&a, &b] {
        sim.act(n.id, |e, now| e.request_join(g.clone(), None, now))
            .expect("request join");
    }
    assert!(
        sim.run_until(600_000, |sim| converged(sim, &[&s, &a, &b], 3)),
        "the fixture group did not form"
    );

    // J asks to join; its state is taken once its request is out, before its Welcome.
    let mut j = add(&mut sim, J);
    sim.act(j.id, |e, now| e.request_join(g.clone(), None, now))
        .expect("request join");
    let j_id = j.id;
    assert!(
        sim.run_until(60_000, |sim| sim
            .node(j_id)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::JoinRequestSent { .. }))),
        "J sent no join request"
    );
    let pending_joiner = j.state(&sim);
    assert!(
        sim.run_until(600_000, |sim| converged(sim, &[&s, &a, &b, &j], 4)),
        "J did not join"
    );

    // Some chat, so that the wire carries application messages too.
    for (n, text) in [(&a, "hello from A"), (&b, "hello from B"), (&j, "J here")] {
        sim.act(n.id, |e, now| e.send_message(&g, text, now))
            .expect("send");
        sim.run_for(500);
    }
    sim.run_for(2_000);
    assert!(
        converged(&sim, &[&s, &a, &b, &j], 4),
        "the group fell apart"
    );

    let now = sim.now();
    let mut k_engine = Engine::new(
        wallet(K),
        &MlsSigner::generate().expect("signer"),
        config(),
        MlsStore::in_memory(4),
    );
    let spare_key_package = k_engine.key_package(now).expect("key package");

    let ids = [s.id, a.id, b.id, j.id];
    let messages = sim
        .wiretap
        .iter()
        .map(|(from, t)| Captured {
            from: ids.iter().position(|id| id == from).unwrap_or(0) as u32,
            welcome_topic: t.topic.kind == TopicKind::Welcome,
            payload: t.payload.clone(),
        })
        .collect();
    Fixture {
        now: now.0,
        members: vec![s.state(&sim), a.state(&sim), b.state(&sim), j.state(&sim)],
        pending_joiner: Some(pending_joiner),
        spare_key_package,
        messages,
    }
}

/// Where the `seeds` program writes the fixture and the targets read it.
pub fn path() -> PathBuf {
    std::env::var_os("DEMLS_FUZZ_FIXTURE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/fixture.pb")))
}

/// Reads a fixture file, if it is there and every engine in it restores.
pub fn load() -> Option<Fixture> {
    let bytes = std::fs::read(path()).ok()?;
    let fixture = Fixture::decode(bytes.as_slice()).ok()?;
    let usable = fixture.members.len() == 4
        && fixture.pending_joiner.is_some()
        && fixture
            .members
            .iter()
            .chain(&fixture.pending_joiner)
            .all(|n| n.restore(fixture.now()).is_ok());
    usable.then_some(fixture)
}

/// The fixture of this process: the file's, or a group formed now.
pub fn get() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| load().unwrap_or_else(build))
}
