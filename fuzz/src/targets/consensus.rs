//! Consensus: `receive_proposal`, `receive_evidence`, `receive_vote` and `verify_evidence` of
//! `demls-consensus`, on wire structs decoded from arbitrary bytes and on structured inputs:
//! a program of operations over three members' states, where votes and proposals carry
//! arbitrary fields but (when the program says so) valid hashes and signatures by real keys,
//! so that the checks behind the signature are reached.
//!
//! Checked: every call that fails leaves the state exactly as it was (the crate's promise),
//! and a decision once taken never changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use demls_consensus::wire::{Proposal, Vote};
use demls_consensus::{
    Consensus, ConsensusConfig, Decision, ProposalId, ProposalSpec, Timestamp, signing,
};
use demls_identity::{Address, Wallet};
use prost::Message;

use crate::fixture;
use crate::sign;

const NODES: usize = 3;
const START_MS: u64 = 1_700_000_000_000;

#[derive(Arbitrary, Debug)]
enum Op {
    /// Node `owner % 3` creates a proposal for the voters in `voters` (a mask over 5 keys).
    Create {
        owner: u8,
        voters: u8,
        payload: Vec<u8>,
        lifetime_s: u16,
        liveness: bool,
    },
    /// A node votes on a proposal it knows.
    Cast { node: u8, proposal: u8, yes: bool },
    /// A node forwards its copy of a proposal (with the votes it holds) to another.
    Forward {
        from: u8,
        to: u8,
        proposal: u8,
        evidence: bool,
        voters: Option<u8>,
    },
    /// A vote with arbitrary fields.
    Vote { to: u8, vote: VoteSpec },
    /// A proposal with arbitrary fields.
    Proposal {
        to: u8,
        spec: WireProposal,
        evidence: bool,
        voters: u8,
    },
    /// A vote or a proposal decoded from bytes.
    Bytes {
        to: u8,
        proposal: bool,
        voters: u8,
        data: Vec<u8>,
    },
    /// `verify_evidence` of a node's copy, or of a mutated one.
    Verify {
        node: u8,
        proposal: u8,
        voters: Option<u8>,
        drop_vote: Option<u8>,
    },
    /// Time passes; every node handles its deadlines.
    Advance { ms: u32 },
    /// A node closes a proposal (an epoch change).
    Close { node: u8, proposal: u8 },
}

#[derive(Arbitrary, Debug)]
struct VoteSpec {
    /// A known proposal, or (past the known ones) `raw_proposal`.
    proposal: u8,
    raw_proposal: u32,
    /// A fixture key (0..5), or (past them) `raw_owner`.
    owner: u8,
    raw_owner: Vec<u8>,
    vote_id: Option<u32>,
    /// Seconds relative to now.
    time: i16,
    yes: bool,
    /// A known vote hash, or (past them) `raw_received`.
    received: Option<u8>,
    raw_received: Vec<u8>,
    parent: Option<u8>,
    /// Fill in `vote_hash` and the signature with the owner's key (if it is a fixture key).
    sign: bool,
    /// Then flip one byte of the encoding.
    flip: Option<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
struct WireProposal {
    name: String,
    payload: Vec<u8>,
    /// A fixture key, or (past them) `raw_owner`.
    owner: u8,
    raw_owner: Vec<u8>,
    /// Derive the id from the content, else `raw_id`.
    derive_id: bool,
    raw_id: u32,
    expected_voters: u32,
    round: u32,
    /// Seconds relative to now.
    created: i32,
    lifetime: i32,
    liveness: bool,
    votes: Vec<VoteSpec>,
}

struct State {
    wallets: Vec<Wallet>,
    nodes: Vec<Consensus>,
    now: u64,
    /// Every proposal created or seen, with its voters as its creator computed them.
    known: Vec<(ProposalId, BTreeSet<Address>)>,
    hashes: Vec<Vec<u8>>,
    decided: BTreeMap<(usize, ProposalId), Decision>,
}

fn pick<T>(items: &[T], index: u8) -> Option<&T> {
    (!items.is_empty()).then(|| &items[usize::from(index) % items.len()])
}

impl State {
    fn voters(&self, mask: u8) -> BTreeSet<Address> {
        let mask = if mask & 0x1f == 0 { 0b111 } else { mask };
        self.wallets
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, w)| w.address())
            .collect()
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn secs(&self, offset: i64) -> u64 {
        (self.now / 1000).saturating_add_signed(offset)
    }

    /// Runs `f` on node `i` and checks that an error left it unchanged.
    fn call<T, E: std::fmt::Debug>(
        &mut self,
        i: usize,
        what: &str,
        f: impl FnOnce(&mut Consensus) -> Result<T, E>,
    ) -> Option<T> {
        let before = self.nodes[i].clone();
        let result = f(&mut self.nodes[i]);
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                assert!(
                    self.nodes[i] == before,
                    "{what} failed ({error:?}) but changed the state"
                );
                None
            }
        }
    }

    /// Decisions are final.
    fn check_decisions(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            for (id, _) in &self.known {
                if let Some(decision) = node.decision(*id) {
                    let first = *self.decided.entry((i, *id)).or_insert(decision);
                    assert_eq!(first, decision, "node {i} changed its decision on {id:?}");
                }
            }
        }
    }

    fn vote(&self, spec: &VoteSpec) -> Vote {
        let proposal = pick(&self.known, spec.proposal)
            .filter(|_| usize::from(spec.proposal) < self.known.len())
            .map_or(spec.raw_proposal, |(id, _)| id.0);
        let owner = self.wallets.get(usize::from(spec.owner));
        let received = match spec.received {
            Some(i) if usize::from(i) < self.hashes.len() => self.hashes[usize::from(i)].clone(),
            Some(_) => spec.raw_received.clone(),
            None => Vec::new(),
        };
        let mut vote = Vote {
            vote_id: spec.vote_id.unwrap_or_else(|| {
                signing::vote_id(
                    ProposalId(proposal),
                    owner.map(Wallet::address).unwrap_or_default(),
                )
            }),
            vote_owner: owner.map_or(spec.raw_owner.clone(), |w| w.address().as_bytes().to_vec()),
            proposal_id: proposal,
            timestamp: self.secs(i64::from(spec.time)),
            vote: spec.yes,
            parent_hash: spec
                .parent
                .and_then(|i| pick(&self.hashes, i).cloned())
                .unwrap_or_default(),
            received_hash: received,
            vote_hash: Vec::new(),
            signature: Vec::new(),
        };
        match owner {
            Some(wallet) if spec.sign => sign::vote(&mut vote, wallet),
            _ => {
                vote.vote_hash = signing::vote_hash(&vote).0.to_vec();
            }
        }
        flip(vote, spec.flip)
    }

    fn proposal(&self, spec: &WireProposal) -> Proposal {
        let owner = self.wallets.get(usize::from(spec.owner));
        let created = self.secs(i64::from(spec.created));
        let mut p = Proposal {
            name: spec.name.clone(),
            payload: spec.payload.clone(),
            proposal_id: spec.raw_id,
            proposal_owner: owner
                .map_or(spec.raw_owner.clone(), |w| w.address().as_bytes().to_vec()),
            votes: Vec::new(),
            expected_voters_count: spec.expected_voters,
            round: spec.round,
            timestamp: created,
            expiration_timestamp: created.saturating_add_signed(i64::from(spec.lifetime)),
            liveness_criteria_yes: spec.liveness,
        };
        if spec.derive_id {
            p.proposal_id = signing::proposal_id(&p).0;
        }
        // Votes about this very proposal when they name no known one.
        let mut state = Self {
            wallets: self.wallets.clone(),
            nodes: Vec::new(),
            now: self.now,
            known: vec![(ProposalId(p.proposal_id), BTreeSet::new())],
            hashes: self.hashes.clone(),
            decided: BTreeMap::new(),
        };
        for spec in spec.votes.iter().take(8) {
            let v = state.vote(&VoteSpec {
                proposal: 0,
                ..spec.clone_spec()
            });
            state.hashes.push(v.vote_hash.clone());
            p.votes.push(v);
        }
        p
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Create {
                owner,
                voters,
                payload,
                lifetime_s,
                liveness,
            } => {
                let node = usize::from(owner) % NODES;
                let voters = self.voters(voters);
                let spec = ProposalSpec {
                    name: "fuzz".into(),
                    payload,
                    voters: voters.clone(),
                    expiration: self
                        .now()
                        .saturating_add(Duration::from_secs(u64::from(lifetime_s))),
                    liveness_criteria_yes: liveness,
                };
                let now = self.now();
                let wallet = self.wallets[node].clone();
                if let Some(p) = self.call(node, "create_proposal", |c| {
                    c.create_proposal(&wallet, spec, now)
                }) {
                    self.known.push((ProposalId(p.proposal_id), voters));
                }
            }
            Op::Cast {
                node,
                proposal,
                yes,
            } => {
                let node = usize::from(node) % NODES;
                let Some((id, _)) = pick(&self.known, proposal).cloned() else {
                    return;
                };
                let now = self.now();
                let wallet = self.wallets[node].clone();
                if let Some(cast) =
                    self.call(node, "cast_vote", |c| c.cast_vote(id, &wallet, yes, now))
                {
                    self.hashes.push(cast.vote.vote_hash.clone());
                    // Everyone else hears the vote.
                    for other in (0..NODES).filter(|o| *o != node) {
                        let vote = cast.vote.clone();
                        self.call(other, "receive_vote", |c| c.receive_vote(vote, now));
                    }
                }
            }
            Op::Forward {
                from,
                to,
                proposal,
                evidence,
                voters,
            } => {
                let (from, to) = (usize::from(from) % NODES, usize::from(to) % NODES);
                let Some((id, known_voters)) = pick(&self.known, proposal).cloned() else {
                    return;
                };
                let Some(p) = self.nodes[from].proposal(id).cloned() else {
                    return;
                };
                let voters = voters.map_or(known_voters, |m| self.voters(m));
                self.receive(to, p, voters, evidence);
            }
            Op::Vote { to, vote } => {
                let vote = self.vote(&vote);
                self.hashes.push(vote.vote_hash.clone());
                let now = self.now();
                self.call(usize::from(to) % NODES, "receive_vote", |c| {
                    c.receive_vote(vote, now)
                });
            }
            Op::Proposal {
                to,
                spec,
                evidence,
                voters,
            } => {
                let p = self.proposal(&spec);
                let voters = self.voters(voters);
                self.known.push((ProposalId(p.proposal_id), voters.clone()));
                self.receive(usize::from(to) % NODES, p, voters, evidence);
            }
            Op::Bytes {
                to,
                proposal,
                voters,
                data,
            } => {
                let to = usize::from(to) % NODES;
                let now = self.now();
                if proposal {
                    if let Ok(p) = Proposal::decode(data.as_slice()) {
                        let voters = self.voters(voters);
                        let _ = signing::proposal_id(&p);
                        self.receive(to, p, voters, false);
                    }
                } else if let Ok(v) = Vote::decode(data.as_slice()) {
                    let _ = signing::verify_vote(&v);
                    self.call(to, "receive_vote", |c| c.receive_vote(v, now));
                }
            }
            Op::Verify {
                node,
                proposal,
                voters,
                drop_vote,
            } => {
                let node = usize::from(node) % NODES;
                let Some((id, known_voters)) = pick(&self.known, proposal).cloned() else {
                    return;
                };
                let Some(mut p) = self.nodes[node].proposal(id).cloned() else {
                    return;
                };
                if let Some(i) = drop_vote
                    && !p.votes.is_empty()
                {
                    p.votes.remove(usize::from(i) % p.votes.len());
                }
                let voters = voters.map_or(known_voters, |m| self.voters(m));
                let before = self.nodes[node].clone();
                let _ = self.nodes[node].verify_evidence(&p, voters);
                assert!(
                    self.nodes[node] == before,
                    "verify_evidence changed the state"
                );
            }
            Op::Advance { ms } => {
                self.now = self.now.saturating_add(u64::from(ms));
                let now = self.now();
                for node in &mut self.nodes {
                    node.handle_timeout(now);
                    let _ = node.poll_timeout();
                }
            }
            Op::Close { node, proposal } => {
                let node = usize::from(node) % NODES;
                let Some((id, _)) = pick(&self.known, proposal).cloned() else {
                    return;
                };
                self.call(node, "close", |c| c.close(id));
                self.decided.remove(&(node, id));
            }
        }
        self.check_decisions();
    }

    fn receive(&mut self, to: usize, p: Proposal, voters: BTreeSet<Address>, evidence: bool) {
        let now = self.now();
        for v in &p.votes {
            self.hashes.push(v.vote_hash.clone());
        }
        if evidence {
            self.call(to, "receive_evidence", |c| {
                c.receive_evidence(p, voters, now)
            });
        } else {
            self.call(to, "receive_proposal", |c| {
                c.receive_proposal(p, voters, now)
            });
        }
    }
}

impl VoteSpec {
    fn clone_spec(&self) -> VoteSpec {
        VoteSpec {
            proposal: self.proposal,
            raw_proposal: self.raw_proposal,
            owner: self.owner,
            raw_owner: self.raw_owner.clone(),
            vote_id: self.vote_id,
            time: self.time,
            yes: self.yes,
            received: self.received,
            raw_received: self.raw_received.clone(),
            parent: self.parent,
            sign: self.sign,
            flip: self.flip,
        }
    }
}

fn flip(vote: Vote, at: Option<(u16, u8)>) -> Vote {
    let Some((at, mask)) = at else { return vote };
    let mut bytes = vote.encode_to_vec();
    if bytes.is_empty() {
        return vote;
    }
    let i = usize::from(at) % bytes.len();
    bytes[i] ^= mask;
    Vote::decode(bytes.as_slice()).unwrap_or(vote)
}

/// Runs the program in `data`.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut state = State {
        wallets: fixture::wallets(),
        nodes: (0..NODES)
            .map(|_| Consensus::new(ConsensusConfig::default()))
            .collect(),
        now: START_MS,
        known: Vec::new(),
        hashes: Vec::new(),
        decided: BTreeMap::new(),
    };
    for _ in 0..48 {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        state.apply(op);
        if u.is_empty() {
            break;
        }
    }
}
