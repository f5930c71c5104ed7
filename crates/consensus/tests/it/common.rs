//! Helpers shared by the integration tests.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use demls_consensus::signing::{signing_payload, vote_hash};
use demls_consensus::wire;
use demls_consensus::{Consensus, ConsensusConfig, ProposalId, ProposalSpec, Timestamp};
use demls_identity::{Address, Wallet};

/// A fixed "now": 2025-06-15T14:13:20Z.
pub const T0: Timestamp = Timestamp::from_millis(1_750_000_000_000);
/// Lifetime of the test proposals.
pub const LIFETIME_MS: u64 = 60_000;

pub fn at(offset_ms: u64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + offset_ms)
}

pub fn deadline() -> Timestamp {
    at(LIFETIME_MS)
}

/// Deterministic wallet number `i` (private key `i + 1`), cached.
pub fn wallet(i: usize) -> &'static Wallet {
    static WALLETS: OnceLock<Vec<Wallet>> = OnceLock::new();
    let wallets = WALLETS.get_or_init(|| {
        (0..256u64)
            .map(|i| {
                let mut key = [0u8; 32];
                key[24..].copy_from_slice(&(i + 1).to_be_bytes());
                Wallet::from_bytes(&key).unwrap()
            })
            .collect()
    });
    &wallets[i]
}

/// The addresses of wallets `0..n`.
pub fn voters(n: usize) -> BTreeSet<Address> {
    (0..n).map(|i| wallet(i).address()).collect()
}

pub fn spec(n: usize, liveness_criteria_yes: bool) -> ProposalSpec {
    ProposalSpec {
        name: "add member".into(),
        payload: b"add 0x1234".to_vec(),
        voters: voters(n),
        expiration: deadline(),
        liveness_criteria_yes,
    }
}

pub fn consensus() -> Consensus {
    Consensus::new(ConsensusConfig::default())
}

/// A member holding a fresh proposal by wallet 0 over `n` voters, and the proposal.
pub fn member_with_proposal(n: usize, liveness: bool) -> (Consensus, wire::Proposal) {
    let mut owner = consensus();
    let proposal = owner
        .create_proposal(wallet(0), spec(n, liveness), T0)
        .unwrap();
    let mut member = consensus();
    member
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    (member, proposal)
}

pub fn id_of(proposal: &wire::Proposal) -> ProposalId {
    ProposalId(proposal.proposal_id)
}

/// A vote cast by wallet `voter` through a fresh member that knows only the proposal.
pub fn vote_by(proposal: &wire::Proposal, n: usize, voter: usize, yes: bool) -> wire::Vote {
    let mut author = consensus();
    author
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    author
        .cast_vote(id_of(proposal), wallet(voter), yes, at(20))
        .unwrap()
        .vote
}

/// Re-hashes `vote` and signs it with `signer`, whatever it claims.
pub fn resign(mut vote: wire::Vote, signer: &Wallet) -> wire::Vote {
    vote.vote_hash = vote_hash(&vote).0.to_vec();
    vote.signature = signer
        .sign_personal(&signing_payload(&vote))
        .as_bytes()
        .to_vec();
    vote
}

/// A small deterministic generator (SplitMix64) for shuffles and coin flips.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    pub fn percent(&mut self, pct: u32) -> bool {
        self.below(100) < pct as usize
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
