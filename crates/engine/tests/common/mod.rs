//! Shared set-up for the engine's tests: engines on the simulated network.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use demls_engine::{
    ChangeKind, Engine, EngineConfig, Event, GroupId, GroupParams, GroupTraffic, JoinRule,
    MlsSigner, MlsStore, ProposalId, StewardMode, StorageWrite, Violation, VotePolicy,
};
use demls_identity::{Address, Wallet};
use demls_sim::{NetConfig, NodeId, Sim};

/// Engine settings tuned for simulated time.
pub fn config(policy: VotePolicy) -> EngineConfig {
    EngineConfig {
        announce_interval_ms: 1_000,
        join_retry_ms: 3_000,
        commit_delay_ms: 2_000,
        steward_timeout_ms: 2_000,
        rebroadcast_ms: 1_000,
        rejoin_after_ms: 30_000,
        sync_retry_ms: 2_000,
        vote_policy: policy,
        ..EngineConfig::default()
    }
}

thread_local! {
    /// How many wallets this test (thread) has made.
    static WALLETS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The next wallet of this test: derived from its position and `DEMLS_TEST_WALLETS` (default 0),
/// so that who becomes a steward — and so a test's run — repeats; set the variable to try
/// other wallets.
pub fn next_wallet() -> Wallet {
    let base: u64 = std::env::var("DEMLS_TEST_WALLETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let n = WALLETS.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let seed = [base.to_be_bytes(), n.to_be_bytes()].concat();
    Wallet::from_bytes(&demls_identity::keccak256(&seed)).expect("a hash is a valid key")
}

/// A fresh engine with the test's next wallet.
pub fn engine(policy: VotePolicy) -> Engine {
    engine_with(config(policy))
}

/// A fresh engine with the test's next wallet and settings of its own.
pub fn engine_with(config: EngineConfig) -> Engine {
    Engine::builder(next_wallet(), &MlsSigner::generate().unwrap())
        .config(config)
        .build()
}

/// Group parameters for tests: a public group (joiners need no invitation), so that the
/// tests of other rules form their groups quickly; `consent.rs` tests the default rules.
pub fn params() -> GroupParams {
    GroupParams {
        vote_timeout_secs: 20,
        membership_vote_timeout_secs: 20,
        join_rule: JoinRule::Open,
        ..GroupParams::default()
    }
}

/// A network with reordering (wide jitter) and duplication.
pub fn noisy_net(seed: u64) -> NetConfig {
    NetConfig {
        seed,
        latency_ms: 40,
        jitter_ms: 35,
        duplicate: 0.25,
        ..NetConfig::default()
    }
}

pub fn group() -> GroupId {
    GroupId::new("lab").unwrap()
}

/// A group of `n` members formed through the real flow: the steward (node 0)
/// creates it, the others request to join, everyone votes automatically.
pub fn form_group(sim: &mut Sim, n: usize, policy: VotePolicy) -> Vec<NodeId> {
    form_group_with(sim, n, policy, params())
}

/// Parameters of a multi-steward group.
pub fn multi(mode: StewardMode, sn_min: u16, sn_max: u16) -> GroupParams {
    GroupParams {
        mode,
        sn_min,
        sn_max,
        ..params()
    }
}

/// [`form_group`] with given group parameters.
pub fn form_group_with(
    sim: &mut Sim,
    n: usize,
    policy: VotePolicy,
    group_params: GroupParams,
) -> Vec<NodeId> {
    form_group_from(sim, n, group_params, || engine(policy))
}

/// [`form_group_with`] whose joiners' engines `joiner` makes (the creator's is [`engine`]'s).
pub fn form_group_from(
    sim: &mut Sim,
    n: usize,
    group_params: GroupParams,
    mut joiner: impl FnMut() -> Engine,
) -> Vec<NodeId> {
    let g = group();
    let steward = sim.add(engine(VotePolicy::Automatic));
    sim.act(steward, |e, now| {
        e.create_group(g.clone(), group_params, now)
    })
    .unwrap();
    let mut nodes = vec![steward];
    for _ in 1..n {
        let id = sim.add(joiner());
        sim.act(id, |e, now| e.request_join(g.clone(), None, now))
            .unwrap();
        nodes.push(id);
    }
    let all = nodes.clone();
    let converged = sim.run_until(600_000, |sim| converged(sim, &all, n));
    assert!(converged, "group did not form: {}", describe(sim, &all));
    nodes
}

/// Whether all `nodes` are members at the same epoch with `members` members and one authenticator.
pub fn converged(sim: &Sim, nodes: &[NodeId], members: usize) -> bool {
    let views: Vec<_> = nodes
        .iter()
        .map(|id| sim.node(*id).engine.group(&group()))
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

pub fn describe(sim: &Sim, nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(|id| match sim.node(*id).engine.group(&group()) {
            Some(v) => format!("{}: epoch {} members {}", id.0, v.epoch, v.members.len()),
            None => format!("{}: not a member", id.0),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn address(sim: &Sim, id: NodeId) -> Address {
    sim.node(id).engine.address()
}

/// Chat texts a node received or sent.
pub fn texts(sim: &Sim, id: NodeId) -> Vec<String> {
    picked(sim, id, |e| match e {
        Event::Message { text, .. } => Some(text.clone()),
        _ => None,
    })
}

/// What `pick` takes from each event a node had, in order.
pub fn picked<T>(sim: &Sim, id: NodeId, pick: impl FnMut(&Event) -> Option<T>) -> Vec<T> {
    sim.node(id)
        .events
        .iter()
        .map(|(_, e)| e)
        .filter_map(pick)
        .collect()
}

/// The proposals a node saw opened, with their owner and change.
pub fn opened(sim: &Sim, id: NodeId) -> Vec<(ProposalId, Address, ChangeKind)> {
    picked(sim, id, |e| match e {
        Event::ProposalOpened {
            proposal,
            owner,
            change,
            ..
        } => Some((*proposal, *owner, change.clone())),
        _ => None,
    })
}

/// Decisions a node reached.
pub fn decisions(sim: &Sim, id: NodeId) -> Vec<(ChangeKind, bool)> {
    picked(sim, id, |e| match e {
        Event::ProposalDecided {
            change, approved, ..
        } => Some((change.clone(), *approved)),
        _ => None,
    })
}

/// The violations a node detected.
pub fn violations(sim: &Sim, id: NodeId) -> Vec<(Option<Address>, Violation)> {
    picked(sim, id, |e| match e {
        Event::ViolationDetected {
            offender,
            violation,
            ..
        } => Some((*offender, *violation)),
        _ => None,
    })
}

/// The committer of each epoch change a node saw, in order.
pub fn committers_seen(sim: &Sim, id: NodeId) -> Vec<Address> {
    picked(sim, id, |e| match e {
        Event::EpochChanged { committer, .. } => Some(*committer),
        _ => None,
    })
}

/// The current view of the group at a node.
pub fn view(sim: &Sim, id: NodeId) -> demls_engine::GroupView {
    sim.node(id).engine.group(&group()).expect("member")
}

pub fn rejected_commits(sim: &Sim, id: NodeId) -> usize {
    sim.node(id)
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::CommitRejected { .. }))
        .count()
}

/// The undecided proposal for `change` open at a node, if any.
pub fn open_proposal_for(sim: &Sim, id: NodeId, change: &ChangeKind) -> Option<ProposalId> {
    let view = sim.node(id).engine.group(&group())?;
    let opened = opened(sim, id);
    view.open_proposals
        .iter()
        .filter(|t| t.decided.is_none())
        .map(|t| t.id)
        .find(|p| opened.iter().any(|(q, _, c)| q == p && c == change))
}

/// People at `voters` vote `yes` on the proposal for `change` as soon as their node has it
/// (removing someone is never voted YES automatically). False if some never saw it.
pub fn people_vote(sim: &mut Sim, voters: &[NodeId], change: &ChangeKind, yes: bool) -> bool {
    let mut left = voters.to_vec();
    let give_up = sim.now().plus_ms(120_000);
    while !left.is_empty() && sim.now() < give_up {
        sim.run_until(120_000, |s| {
            left.iter()
                .any(|id| open_proposal_for(s, *id, change).is_some())
        });
        let mut still = Vec::new();
        for id in left {
            match open_proposal_for(sim, id, change) {
                // A vote refused here (already cast) is as good as done.
                Some(p) => drop(sim.act(id, |e, now| e.vote(&group(), p, yes, now))),
                None => still.push(id),
            }
        }
        left = still;
    }
    left.is_empty()
}

/// The people at `nodes` decide `yes` on `change` ahead of its vote (removing someone is
/// never voted YES automatically).
pub fn decide_everywhere(sim: &mut Sim, nodes: &[NodeId], change: &ChangeKind, yes: bool) {
    for id in nodes {
        sim.act(*id, |e, now| e.decide(&group(), change.clone(), yes, now))
            .unwrap();
    }
}

/// Every member's person decides `yes` on `change` ahead of its vote.
pub fn members_decide(sim: &mut Sim, change: &ChangeKind, yes: bool) {
    let members: Vec<NodeId> = sim
        .ids()
        .filter(|id| sim.node(*id).engine.group(&group()).is_some())
        .collect();
    decide_everywhere(sim, &members, change, yes);
}

/// The reasons a node was given for refusing its join requests.
pub fn refusals(sim: &Sim, id: NodeId) -> Vec<String> {
    picked(sim, id, |e| match e {
        Event::JoinRefused { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// A group's current snapshot, its retained past epochs, and its traffic since the snapshot.
pub type GroupRecord = (Vec<u8>, BTreeMap<u64, Vec<u8>>, Vec<GroupTraffic>);

/// What a shell's database would hold: the journal's writes applied in order.
#[derive(Default)]
pub struct Disk {
    groups: HashMap<Vec<u8>, GroupRecord>,
    key_packages: HashMap<Vec<u8>, Vec<u8>>,
}

impl Disk {
    pub fn apply(&mut self, writes: Vec<StorageWrite>) {
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
                    for (id, data) in epochs {
                        entry.1.insert(id, data.to_vec());
                    }
                    if let Some(oldest) = oldest_retained_epoch {
                        entry.1.retain(|id, _| *id >= oldest);
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

    pub fn load(&self) -> MlsStore {
        let store = MlsStore::journaled(4);
        for (id, (snapshot, epochs, traffic)) in &self.groups {
            store.restore_group(
                id.clone(),
                snapshot.clone(),
                epochs.iter().map(|(e, d)| (*e, d.clone())).collect(),
            );
            for step in traffic {
                store.restore_traffic(id, step.clone());
            }
        }
        for (id, data) in &self.key_packages {
            store.restore_key_package(id.clone(), data).unwrap();
        }
        store
    }
}

/// A node with its keys, whose state a test persists.
pub struct Persisted {
    pub id: NodeId,
    pub wallet: Wallet,
    pub signer: MlsSigner,
}

impl Persisted {
    pub fn add(sim: &mut Sim, policy: VotePolicy) -> Self {
        let wallet = Wallet::generate();
        let signer = MlsSigner::generate().unwrap();
        let id = sim.add(Engine::new(
            wallet.clone(),
            &signer,
            config(policy),
            MlsStore::journaled(4),
        ));
        Self { id, wallet, signer }
    }

    /// Crashes the node and starts it again from what it persisted: `disk` and its snapshot.
    pub fn restart(&self, sim: &mut Sim, disk: &mut Disk, policy: VotePolicy) {
        let snapshot = sim.node(self.id).engine.snapshot().unwrap();
        self.restart_from(sim, disk, policy, &snapshot);
    }

    /// [`Self::restart`] from the protocol snapshot `snapshot`.
    pub fn restart_from(
        &self,
        sim: &mut Sim,
        disk: &mut Disk,
        policy: VotePolicy,
        snapshot: &[u8],
    ) {
        disk.apply(sim.node_mut(self.id).engine.take_storage_writes().unwrap());
        let now = sim.now();
        sim.node_mut(self.id).engine = Engine::restore(
            self.wallet.clone(),
            &self.signer,
            config(policy),
            disk.load(),
            snapshot,
            now,
        )
        .unwrap();
        // The shell's history holds what the node delivered before: it tells the engine.
        let delivered: Vec<_> = sim
            .node(self.id)
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message { id, epoch, .. } => Some((id.clone(), *epoch)),
                _ => None,
            })
            .collect();
        sim.node_mut(self.id)
            .engine
            .remember_chat(&group(), delivered);
    }
}

/// Runs until every node in `nodes` agrees on the epoch, authenticator and member count.
pub fn settle(sim: &mut Sim, nodes: &[NodeId], members: usize, limit_ms: u64) {
    let ok = sim.run_until(limit_ms, |s| converged(s, nodes, members));
    assert!(ok, "no convergence: {}", describe(sim, nodes));
}

/// A big-consensus group of `n` automatic voters with 3 to `sn_max` stewards, formed on
/// a noisy network from `seed`.
pub fn big_group(seed: u64, n: usize, sn_max: u16) -> (Sim, Vec<NodeId>) {
    let mut sim = Sim::new(noisy_net(seed));
    let nodes = form_group_with(
        &mut sim,
        n,
        VotePolicy::Automatic,
        multi(StewardMode::Big, 3, sn_max),
    );
    (sim, nodes)
}

/// `id` commits every change approved at it now, whether or not it is its turn.
pub fn commit_approved(sim: &mut Sim, id: NodeId) {
    sim.act(id, |e, now| {
        e.byzantine_commit_without(&group(), Address::default(), now)
    })
    .unwrap();
}

/// Silences (they no longer commit) the nodes of `nodes` that are stewards of the list.
pub fn silence_stewards(sim: &mut Sim, nodes: &[NodeId]) {
    for steward in view(sim, nodes[0]).stewards {
        let id = node_of(sim, nodes, steward);
        sim.node_mut(id)
            .engine
            .byzantine_set_silent(&group(), true)
            .unwrap();
    }
}

/// A 10-member big-consensus group, its epoch steward (the one to misbehave) and the honest rest.
pub fn group_with_bad_steward(seed: u64) -> (Sim, Vec<NodeId>, NodeId, Vec<NodeId>) {
    let (sim, nodes) = big_group(seed, 10, 5);
    let bad = node_of(&sim, &nodes, view(&sim, nodes[0]).committers[0]);
    let honest = nodes.iter().copied().filter(|id| *id != bad).collect();
    (sim, nodes, bad, honest)
}

/// Two members of `honest` that are not stewards, and two others to propose their removal.
pub fn two_plain_members(sim: &Sim, honest: &[NodeId]) -> (NodeId, NodeId, NodeId, NodeId) {
    let stewards = view(sim, honest[0]).stewards;
    let plain: Vec<_> = honest
        .iter()
        .copied()
        .filter(|id| !stewards.contains(&address(sim, *id)))
        .collect();
    let (a, b) = (plain[plain.len() - 1], plain[plain.len() - 2]);
    let others: Vec<_> = honest
        .iter()
        .copied()
        .filter(|id| *id != a && *id != b)
        .collect();
    (a, b, others[0], others[1])
}

/// Removals `id` saw approved.
pub fn approved_removals(sim: &Sim, id: NodeId) -> usize {
    decisions(sim, id)
        .iter()
        .filter(|(k, yes)| *yes && matches!(k, ChangeKind::Remove(_)))
        .count()
}

/// The score `scorer` gives `steward`.
pub fn score(sim: &Sim, scorer: NodeId, steward: Address) -> Option<i32> {
    view(sim, scorer)
        .steward_scores
        .into_iter()
        .find(|(s, _)| *s == steward)
        .map(|(_, score)| score)
}

/// Whether `id` saw an emergency proposal opened against `offender`.
pub fn charged(sim: &Sim, id: NodeId, offender: Address) -> bool {
    sim.node(id).events.iter().any(|(_, e)| {
        matches!(e, Event::ProposalOpened { change: ChangeKind::Emergency { offender: Some(o), .. }, .. } if *o == offender)
    })
}

/// Members of `honest` take turns replacing their keys, so that every epoch has a change
/// to commit (and a silent steward misses each of its turns), until `done`.
pub fn keep_rotating_until(sim: &mut Sim, honest: &[NodeId], done: impl Fn(&Sim) -> bool) {
    let g = group();
    for round in 0..60 {
        if done(sim) {
            return;
        }
        let who = honest[round % honest.len()];
        // Refused while its last update waits: fine, the next member's goes in.
        let _ = sim.act(who, |e, now| e.rotate(&g, now));
        sim.run_until(15_000, &done);
    }
}

/// Members of `among` that are not stewards.
pub fn plain(sim: &Sim, among: &[NodeId]) -> Vec<NodeId> {
    let stewards = view(sim, among[0]).stewards;
    among
        .iter()
        .copied()
        .filter(|id| !stewards.contains(&address(sim, *id)))
        .collect()
}

/// Whether `id` has an emergency proposal open and undecided.
pub fn emergency_open(sim: &Sim, id: NodeId) -> bool {
    let mut open = 0i32;
    for (_, e) in &sim.node(id).events {
        match e {
            Event::ProposalOpened {
                change: ChangeKind::Emergency { .. },
                ..
            } => open += 1,
            Event::ProposalDecided {
                change: ChangeKind::Emergency { .. },
                ..
            } => open -= 1,
            _ => {}
        }
    }
    open > 0
}

/// The node among `nodes` whose address is `member`.
pub fn node_of(sim: &Sim, nodes: &[NodeId], member: Address) -> NodeId {
    *nodes
        .iter()
        .find(|id| address(sim, **id) == member)
        .expect("a node of the group")
}

/// `proposer` proposes removing `target`, every member votes YES; runs until `waiting`
/// have all seen it approved (nobody has committed it yet if the stewards wait).
pub fn approve_removal(sim: &mut Sim, proposer: NodeId, target: NodeId, waiting: &[NodeId]) {
    let g = group();
    let target_address = address(sim, target);
    let before: Vec<usize> = waiting
        .iter()
        .map(|id| approved_removals(sim, *id))
        .collect();
    members_decide(sim, &ChangeKind::Remove(target_address), true);
    sim.act(proposer, |e, now| e.propose_remove(&g, target_address, now))
        .unwrap();
    let approved = sim.run_until(60_000, |s| {
        waiting
            .iter()
            .zip(&before)
            .all(|(id, before)| approved_removals(s, *id) > *before)
    });
    assert!(approved, "removal not approved: {}", describe(sim, waiting));
}
