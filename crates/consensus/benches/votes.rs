//! Vote verification: what every member pays per vote it receives.
//!
//! `cargo bench -p demls-consensus --bench votes -- --quick`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use demls_consensus::signing::verify_vote;
use demls_consensus::{Consensus, ConsensusConfig, ProposalSpec, Timestamp, wire};
use demls_identity::Wallet;

/// A proposal with `voters` voters, its consensus state at a member, and one
/// signed vote from each voter.
fn setup(voters: usize) -> (Consensus, Vec<wire::Vote>) {
    let wallets: Vec<Wallet> = (0..voters).map(|_| Wallet::generate()).collect();
    let now = Timestamp::from_millis(1_700_000_000_000);
    let spec = ProposalSpec {
        name: "bench".into(),
        payload: vec![7; 32],
        voters: wallets.iter().map(Wallet::address).collect::<BTreeSet<_>>(),
        expiration: now.saturating_add(Duration::from_secs(60)),
        liveness_criteria_yes: true,
    };
    let mut owner = Consensus::new(ConsensusConfig::default());
    let proposal = owner
        .create_proposal(&wallets[0], spec.clone(), now)
        .unwrap();
    let id = demls_consensus::ProposalId(proposal.proposal_id);
    let mut member = Consensus::new(ConsensusConfig::default());
    member
        .receive_proposal(proposal, spec.voters.clone(), now)
        .unwrap();
    let votes = wallets
        .iter()
        .map(|w| {
            // Each vote is cast on a copy holding the proposal alone, as its voter would.
            let mut copy = owner.clone();
            copy.cast_vote(id, w, true, now).unwrap().vote
        })
        .collect();
    (member, votes)
}

fn votes(c: &mut Criterion) {
    let (member, votes) = setup(100);
    let now = Timestamp::from_millis(1_700_000_000_000);
    c.bench_function("vote/verify_signature", |b| {
        b.iter(|| verify_vote(black_box(&votes[1])).unwrap())
    });
    c.bench_function("vote/receive_of_100_voters", |b| {
        b.iter_batched(
            || member.clone(),
            |mut state| state.receive_vote(votes[1].clone(), now).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, votes);
criterion_main!(benches);
