//! Honest members converge: whatever the order, batching, duplication and
//! loss of messages, each member's decision is the rule applied to the votes
//! it accepted, and members that accepted the same votes decide the same.

use std::collections::{BTreeMap, BTreeSet};

use demls_consensus::rule::{self, Counts};
use demls_consensus::{Consensus, Decision, ProposalId, Timestamp, VoteOutcome, wire};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::common::{Rng, T0, at, consensus, deadline, spec, voters, wallet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Yes,
    No,
    Silent,
}

/// How one member receives the traffic.
#[derive(Clone, Debug)]
struct Reception {
    seed: u64,
    drop_pct: u32,
    duplicate_pct: u32,
    /// Share (percent) of the messages delivered before this member's
    /// deadline passes; `None`: all of them.
    before_deadline_pct: Option<usize>,
}

#[derive(Clone, Debug)]
struct Scenario {
    n: usize,
    liveness: bool,
    choices: Vec<Choice>,
    /// Voters cast through `branches` members, each chaining its own votes.
    branch_of: Vec<usize>,
    branches: usize,
    /// The proposal is announced carrying branch 0's votes.
    announce_with_votes: bool,
    receptions: Vec<Reception>,
}

fn reception() -> impl Strategy<Value = Reception> {
    (
        any::<u64>(),
        prop_oneof![Just(0u32), 1u32..25],
        0u32..30,
        proptest::option::of(0usize..=100),
    )
        .prop_map(
            |(seed, drop_pct, duplicate_pct, before_deadline_pct)| Reception {
                seed,
                drop_pct,
                duplicate_pct,
                before_deadline_pct,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        1usize..=200,
        any::<bool>(),
        1usize..=4,
        any::<bool>(),
        0usize..=100,
        0usize..=40,
        any::<u64>(),
        vec(reception(), 3),
    )
        .prop_map(
            |(
                n,
                liveness,
                branches,
                announce_with_votes,
                yes_pct,
                silent_pct,
                seed,
                receptions,
            )| {
                let mut rng = Rng::new(seed);
                let choices = (0..n)
                    .map(|_| {
                        if rng.below(100) < silent_pct {
                            Choice::Silent
                        } else if rng.below(100) < yes_pct {
                            Choice::Yes
                        } else {
                            Choice::No
                        }
                    })
                    .collect();
                let branch_of = (0..n).map(|_| rng.below(branches)).collect();
                Scenario {
                    n,
                    liveness,
                    choices,
                    branch_of,
                    branches,
                    announce_with_votes,
                    receptions,
                }
            },
        )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Message {
    Proposal,
    /// Vote `index` of branch `branch`.
    Vote {
        branch: usize,
        index: usize,
    },
}

/// The cast traffic of a scenario.
struct Traffic {
    id: ProposalId,
    announced: wire::Proposal,
    chains: Vec<Vec<wire::Vote>>,
}

fn cast(scenario: &Scenario) -> Traffic {
    let voter_set = voters(scenario.n);
    let proposal = consensus()
        .create_proposal(wallet(0), spec(scenario.n, scenario.liveness), T0)
        .unwrap();
    let id = ProposalId(proposal.proposal_id);
    let mut authors: Vec<Consensus> = (0..scenario.branches)
        .map(|_| {
            let mut author = consensus();
            author
                .receive_proposal(proposal.clone(), voter_set.clone(), at(10))
                .unwrap();
            author
        })
        .collect();
    let mut chains = vec![Vec::new(); scenario.branches];
    for (voter, choice) in scenario.choices.iter().enumerate() {
        if *choice == Choice::Silent {
            continue;
        }
        let branch = scenario.branch_of[voter];
        let vote = authors[branch]
            .cast_vote(id, wallet(voter), *choice == Choice::Yes, at(20))
            .unwrap()
            .vote;
        chains[branch].push(vote);
    }
    let announced = if scenario.announce_with_votes {
        authors[0].proposal(id).unwrap().clone()
    } else {
        proposal
    };
    Traffic {
        id,
        announced,
        chains,
    }
}

/// The counts of the votes a member must have accepted, given what reached
/// it before its deadline: in each branch, the longest run of votes from the
/// first whose every vote arrived (a vote needs the one it names), and all of
/// branch 0 if the proposal carried it. Nothing without the proposal.
fn expected_counts(
    scenario: &Scenario,
    traffic: &Traffic,
    delivered: &BTreeSet<Message>,
) -> Option<Counts> {
    if !delivered.contains(&Message::Proposal) {
        return None;
    }
    let (mut yes, mut no) = (0, 0);
    for (branch, chain) in traffic.chains.iter().enumerate() {
        let embedded = branch == 0 && scenario.announce_with_votes;
        let accepted = chain
            .iter()
            .enumerate()
            .take_while(|(index, _)| {
                embedded
                    || delivered.contains(&Message::Vote {
                        branch,
                        index: *index,
                    })
            })
            .map(|(_, vote)| vote);
        for vote in accepted {
            if vote.vote {
                yes += 1;
            } else {
                no += 1;
            }
        }
    }
    Some(Counts {
        yes,
        no,
        expected: scenario.n as u32,
        liveness_criteria_yes: scenario.liveness,
    })
}

/// Delivers `message` to `member` at `now`, returning whether it was refused.
fn deliver(
    member: &mut Consensus,
    scenario: &Scenario,
    traffic: &Traffic,
    message: Message,
    now: Timestamp,
) -> bool {
    match message {
        Message::Proposal => member
            .receive_proposal(traffic.announced.clone(), voters(scenario.n), now)
            .is_err(),
        Message::Vote { branch, index } => {
            let vote = traffic.chains[branch][index].clone();
            match member.receive_vote(vote, now) {
                Ok(VoteOutcome::Applied { .. } | VoteOutcome::Buffered { .. }) => false,
                Ok(VoteOutcome::Duplicate { .. }) => false,
                Err(_) => true,
            }
        }
    }
}

/// The hashes of the votes a member accepted; `None` if it has no proposal.
type Accepted = Option<BTreeSet<Vec<u8>>>;

/// Runs one member's reception; returns the votes it accepted and its decision.
fn receive(
    scenario: &Scenario,
    traffic: &Traffic,
    reception: &Reception,
) -> Result<(Accepted, Option<Decision>), TestCaseError> {
    let mut rng = Rng::new(reception.seed);
    let mut messages = vec![Message::Proposal];
    for (branch, chain) in traffic.chains.iter().enumerate() {
        messages.extend((0..chain.len()).map(|index| Message::Vote { branch, index }));
    }
    let copies: Vec<Message> = messages
        .iter()
        .copied()
        .filter(|_| rng.percent(reception.duplicate_pct))
        .collect();
    messages.extend(copies);
    messages.retain(|_| !rng.percent(reception.drop_pct));
    rng.shuffle(&mut messages);
    let cut = reception
        .before_deadline_pct
        .map_or(messages.len(), |pct| messages.len() * pct / 100);
    let (before, after) = messages.split_at(cut);

    let mut member = consensus();
    for &message in before {
        prop_assert!(
            !deliver(&mut member, scenario, traffic, message, at(1_000)),
            "honest {message:?} refused before the deadline"
        );
    }
    let delivered: BTreeSet<Message> = before.iter().copied().collect();
    let expected = expected_counts(scenario, traffic, &delivered);
    let id = traffic.id;
    let tally = member.tally(id);
    prop_assert_eq!(
        tally.map(|t| (t.yes, t.no)),
        expected.map(|c| (c.yes, c.no))
    );
    // Before the deadline: the early rule on the accepted votes.
    prop_assert_eq!(
        member.decision(id),
        expected.and_then(|c| rule::decide(c, false))
    );

    // At the deadline, every member decides by itself.
    let timed_out = member.handle_timeout(deadline());
    let expected_final = expected.and_then(|c| rule::decide(c, true));
    prop_assert_eq!(member.decision(id), expected_final);
    let decided_early = tally.and_then(|t| t.decision).is_some();
    let expected_timeouts: Vec<(ProposalId, Decision)> = match expected_final {
        Some(decision) if !decided_early => vec![(id, decision)],
        _ => Vec::new(),
    };
    prop_assert_eq!(timed_out, expected_timeouts);

    // Late traffic changes nothing.
    let late = Timestamp::from_millis(deadline().as_millis() + 1);
    let settled = member.tally(id);
    for &message in after {
        deliver(&mut member, scenario, traffic, message, late);
    }
    prop_assert_eq!(member.tally(id), settled);

    let accepted = member
        .proposal(id)
        .map(|p| p.votes.iter().map(|v| v.vote_hash.clone()).collect());
    Ok((accepted, member.decision(id)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn honest_members_converge(scenario in scenario()) {
        let traffic = cast(&scenario);
        let mut decisions: BTreeMap<Accepted, Option<Decision>> = BTreeMap::new();
        for reception in &scenario.receptions {
            let (accepted, decision) = receive(&scenario, &traffic, reception)?;
            // Same votes accepted, same decision.
            let previous = decisions.entry(accepted).or_insert(decision);
            prop_assert_eq!(*previous, decision);
        }

        // A member that got everything decides by the rule on the full set.
        let full = Reception { seed: 0, drop_pct: 0, duplicate_pct: 0, before_deadline_pct: None };
        let (accepted, decision) = receive(&scenario, &traffic, &full)?;
        let cast_votes = traffic.chains.iter().map(Vec::len).sum::<usize>();
        prop_assert_eq!(accepted.map(|a| a.len()), Some(cast_votes));
        let yes = scenario.choices.iter().filter(|c| **c == Choice::Yes).count() as u32;
        let no = scenario.choices.iter().filter(|c| **c == Choice::No).count() as u32;
        let counts = Counts { yes, no, expected: scenario.n as u32, liveness_criteria_yes: scenario.liveness };
        prop_assert_eq!(decision, Some(rule::decide_final(counts)));
    }
}
