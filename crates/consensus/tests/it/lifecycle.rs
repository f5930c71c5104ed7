//! A proposal's life: creation, reordered and repeated delivery, the
//! deadline, pruning, closing, evidence.

use std::time::Duration;

use demls_consensus::wire;
use demls_consensus::{
    Consensus, ConsensusConfig, ConsensusError, Decision, ProposalOutcome, Timestamp, VoteOutcome,
};

use crate::common::{
    T0, at, consensus, deadline, id_of, member_with_proposal, spec, vote_by, voters, wallet,
};

/// The votes of wallets `0..choices.len()`, each cast by a member that saw
/// only the proposal (so none names another in `received_hash`).
fn independent_votes(proposal: &wire::Proposal, n: usize, choices: &[bool]) -> Vec<wire::Vote> {
    choices
        .iter()
        .enumerate()
        .map(|(voter, &yes)| vote_by(proposal, n, voter, yes))
        .collect()
}

#[test]
fn owner_and_members_reach_the_same_decision() {
    let n = 3;
    let mut owner = consensus();
    let proposal = owner
        .create_proposal(wallet(0), spec(n, false), T0)
        .unwrap();
    let id = id_of(&proposal);
    assert_eq!(proposal.expected_voters_count, 3);
    assert_eq!(proposal.round, 1);
    assert_eq!(owner.tally(id).unwrap().decision, None);

    let mut member = consensus();
    let outcome = member
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    assert_eq!(
        outcome,
        ProposalOutcome {
            id,
            is_new: true,
            votes_applied: 0,
            decided: None
        }
    );

    let first = owner.cast_vote(id, wallet(0), true, at(20)).unwrap();
    assert_eq!(first.decided, None);
    assert!(first.vote.received_hash.is_empty());
    assert_eq!(
        member.receive_vote(first.vote.clone(), at(25)),
        Ok(VoteOutcome::Applied { id, decided: None })
    );
    let second = member.cast_vote(id, wallet(1), true, at(30)).unwrap();
    // The second vote names the first, the last one its caster had seen.
    assert_eq!(second.vote.received_hash, first.vote.vote_hash);
    // Two YES of three voters: settled and the quorum (2) reached.
    assert_eq!(second.decided, Some(Decision::Yes));
    assert_eq!(
        owner.receive_vote(second.vote, at(35)),
        Ok(VoteOutcome::Applied {
            id,
            decided: Some(Decision::Yes)
        })
    );
    // The proposal with its votes is the same on both sides.
    assert_eq!(owner.proposal(id), member.proposal(id));
    assert_eq!(owner.proposal(id).unwrap().round, 3);
    // A vote after the decision is still recorded, and decides nothing new.
    let third = member.cast_vote(id, wallet(2), false, at(40)).unwrap();
    assert_eq!(third.decided, None);
    let tally = member.tally(id).unwrap();
    assert_eq!((tally.yes, tally.no, tally.expected), (2, 1, 3));
    assert_eq!(tally.decision, Some(Decision::Yes));
}

#[test]
fn votes_before_their_proposal_are_buffered() {
    let n = 4;
    let (_, proposal) = member_with_proposal(n, true);
    let id = id_of(&proposal);
    let votes = independent_votes(&proposal, n, &[true, true, true, false]);
    let mut member = consensus();
    for vote in &votes {
        assert_eq!(
            member.receive_vote(vote.clone(), at(10)),
            Ok(VoteOutcome::Buffered { id })
        );
        // A retransmission while buffered is a duplicate.
        assert_eq!(
            member.receive_vote(vote.clone(), at(10)),
            Ok(VoteOutcome::Duplicate { id })
        );
    }
    assert_eq!(member.decision(id), None);
    let outcome = member
        .receive_proposal(proposal.clone(), voters(n), at(20))
        .unwrap();
    assert_eq!(outcome.votes_applied, 4);
    assert_eq!(outcome.decided, Some(Decision::Yes));
    assert_eq!(member.tally(id).unwrap().yes, 3);
}

#[test]
fn a_vote_waits_for_the_vote_it_names() {
    let n = 3;
    let (mut member, proposal) = member_with_proposal(n, true);
    let id = id_of(&proposal);
    let mut author = consensus();
    author
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    let first = author.cast_vote(id, wallet(0), false, at(20)).unwrap().vote;
    let second = author.cast_vote(id, wallet(1), false, at(21)).unwrap().vote;
    assert_eq!(second.received_hash, first.vote_hash);

    assert_eq!(
        member.receive_vote(second.clone(), at(30)),
        Ok(VoteOutcome::Buffered { id })
    );
    assert_eq!(member.tally(id).unwrap().no, 0);
    assert_eq!(
        member.receive_vote(first, at(31)),
        Ok(VoteOutcome::Applied {
            id,
            decided: Some(Decision::No)
        })
    );
    assert_eq!(member.tally(id).unwrap().no, 2);
    assert_eq!(
        member.receive_vote(second, at(32)),
        Ok(VoteOutcome::Duplicate { id })
    );
}

#[test]
fn retransmitted_proposals_merge_their_votes() {
    let n = 5;
    let (mut member, proposal) = member_with_proposal(n, false);
    let id = id_of(&proposal);
    // Another member has seen four votes and forwards the proposal with them.
    let mut forwarder = consensus();
    forwarder
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    for voter in 0..4 {
        forwarder
            .cast_vote(id, wallet(voter), true, at(20))
            .unwrap();
    }
    let carrying = forwarder.proposal(id).unwrap().clone();
    assert_eq!(carrying.votes.len(), 4);

    let outcome = member
        .receive_proposal(carrying.clone(), voters(n), at(30))
        .unwrap();
    assert_eq!(
        outcome,
        ProposalOutcome {
            id,
            is_new: false,
            votes_applied: 4,
            decided: Some(Decision::Yes)
        }
    );
    // Again: nothing new.
    let again = member
        .receive_proposal(carrying, voters(n), at(31))
        .unwrap();
    assert_eq!(again.votes_applied, 0);
    assert_eq!(again.decided, None);
    // With another voter set: refused.
    assert_eq!(
        member.receive_proposal(proposal, voters(n + 1), at(32)),
        Err(ConsensusError::VotersChanged(id))
    );
}

#[test]
fn reference_batching_example_decides_the_same_either_way() {
    // From reference-notes.md: 5 voters, liveness YES, votes Y Y Y N N. The
    // reference decides YES one by one but stays undecided as a batch.
    let n = 5;
    let (_, proposal) = member_with_proposal(n, true);
    let id = id_of(&proposal);
    let votes = independent_votes(&proposal, n, &[true, true, true, false, false]);

    let (mut one_by_one, _) = member_with_proposal(n, true);
    let decided: Vec<Option<Decision>> = votes
        .iter()
        .map(|vote| match one_by_one.receive_vote(vote.clone(), at(30)) {
            Ok(VoteOutcome::Applied { decided, .. }) => decided,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // Y Y Y settles it (3 of 5 is a majority) but only 3 of the 4 needed voted.
    assert_eq!(decided, [None, None, None, Some(Decision::Yes), None]);

    let mut batch = proposal.clone();
    batch.votes = votes;
    let mut batched = consensus();
    let outcome = batched.receive_proposal(batch, voters(n), at(30)).unwrap();
    assert_eq!(outcome.decided, Some(Decision::Yes));
    assert_eq!(one_by_one.tally(id), batched.tally(id));
}

#[test]
fn every_member_applies_the_deadline_itself() {
    let n = 4;
    for (liveness, expected) in [(true, Decision::Yes), (false, Decision::No)] {
        let (mut member, proposal) = member_with_proposal(n, liveness);
        let id = id_of(&proposal);
        // One YES, one NO, two silent: undecided before the deadline.
        for vote in [
            vote_by(&proposal, n, 1, true),
            vote_by(&proposal, n, 2, false),
        ] {
            member.receive_vote(vote, at(30)).unwrap();
        }
        assert_eq!(member.poll_timeout(), Some(deadline()));
        let just_before = Timestamp::from_millis(deadline().as_millis() - 1);
        assert_eq!(member.handle_timeout(just_before), vec![]);
        assert_eq!(member.decision(id), None);
        assert_eq!(member.handle_timeout(deadline()), vec![(id, expected)]);
        assert_eq!(member.decision(id), Some(expected));
        // Decided once only.
        assert_eq!(member.handle_timeout(deadline()), vec![]);
        // Nothing is accepted after the deadline.
        assert!(matches!(
            member.cast_vote(id, wallet(3), true, deadline()),
            Err(ConsensusError::Expired { .. })
        ));
    }
}

#[test]
fn a_tie_at_the_deadline_is_no() {
    let n = 4;
    let (mut member, proposal) = member_with_proposal(n, true);
    let id = id_of(&proposal);
    for (voter, yes) in [(0, true), (1, true), (2, false), (3, false)] {
        member
            .receive_vote(vote_by(&proposal, n, voter, yes), at(30))
            .unwrap();
    }
    assert_eq!(member.decision(id), Some(Decision::No));
}

#[test]
fn decided_proposals_are_pruned_after_retention() {
    let n = 1;
    let retention = ConsensusConfig::default().retention;
    let (mut member, proposal) = member_with_proposal(n, false);
    let id = id_of(&proposal);
    member.cast_vote(id, wallet(0), true, at(20)).unwrap();
    assert_eq!(member.decision(id), Some(Decision::Yes));
    // Kept until the deadline plus the retention, then forgotten.
    let forget_at = deadline().saturating_add(retention);
    assert_eq!(member.poll_timeout(), Some(forget_at));
    assert_eq!(member.handle_timeout(deadline()), vec![]);
    assert!(member.proposal(id).is_some());
    member.handle_timeout(forget_at);
    assert_eq!(member.proposal(id), None);
    assert_eq!(member.poll_timeout(), None);
    // A retransmission cannot reopen it: its deadline has passed.
    assert!(matches!(
        member.receive_proposal(proposal, voters(n), forget_at),
        Err(ConsensusError::Expired { .. })
    ));
}

#[test]
fn closed_proposals_stay_closed() {
    let n = 3;
    let (mut member, proposal) = member_with_proposal(n, true);
    let id = id_of(&proposal);
    let early = vote_by(&proposal, n, 1, true);
    member.close(id).unwrap();
    assert_eq!(member.decision(id), None);
    assert_eq!(member.close(id), Err(ConsensusError::UnknownProposal(id)));
    assert_eq!(
        member.receive_proposal(proposal, voters(n), at(30)),
        Err(ConsensusError::ProposalClosed(id))
    );
    assert_eq!(
        member.receive_vote(early, at(30)),
        Err(ConsensusError::ProposalClosed(id))
    );
    assert_eq!(
        member.cast_vote(id, wallet(0), true, at(30)),
        Err(ConsensusError::UnknownProposal(id))
    );
    // The tombstone goes once the proposal could no longer be received anyway.
    let forget_at = deadline().saturating_add(ConsensusConfig::default().retention);
    assert_eq!(member.poll_timeout(), Some(forget_at));
    member.handle_timeout(forget_at);
    assert_eq!(member.poll_timeout(), None);
}

#[test]
fn the_vote_buffer_is_bounded() {
    let n = 3;
    let config = ConsensusConfig {
        max_buffered_votes: 3,
        max_buffered_votes_per_voter: 2,
        ..ConsensusConfig::default()
    };
    // Votes on three proposals the member has not seen.
    let proposals: Vec<wire::Proposal> = (0..3u8)
        .map(|k| {
            let mut s = spec(n, true);
            s.payload = vec![k];
            consensus().create_proposal(wallet(0), s, T0).unwrap()
        })
        .collect();
    let mut member = Consensus::new(config);
    member
        .receive_vote(vote_by(&proposals[0], n, 1, true), at(10))
        .unwrap();
    member
        .receive_vote(vote_by(&proposals[1], n, 1, true), at(10))
        .unwrap();
    let before = member.clone();
    assert_eq!(
        member.receive_vote(vote_by(&proposals[2], n, 1, true), at(10)),
        Err(ConsensusError::BufferFull)
    );
    assert_eq!(member, before);
    member
        .receive_vote(vote_by(&proposals[2], n, 2, true), at(10))
        .unwrap();
    assert_eq!(
        member.receive_vote(vote_by(&proposals[2], n, 0, true), at(10)),
        Err(ConsensusError::BufferFull)
    );
    // Buffered votes expire when their proposal could no longer be open.
    let expiry = member.poll_timeout().unwrap();
    assert!(expiry > deadline());
    member.handle_timeout(expiry);
    assert_eq!(member.poll_timeout(), None);
    assert!(
        member
            .receive_vote(vote_by(&proposals[2], n, 0, true), expiry)
            .is_ok()
    );
}

#[test]
fn evidence_is_checked_without_the_clock() {
    let n = 3;
    let (mut member, proposal) = member_with_proposal(n, false);
    let id = id_of(&proposal);
    member.cast_vote(id, wallet(0), true, at(20)).unwrap();
    let weak = member.proposal(id).unwrap().clone();
    member.cast_vote(id, wallet(1), true, at(21)).unwrap();
    let strong = member.proposal(id).unwrap().clone();

    // Checked long after the deadline, by a member that never saw the proposal.
    let checker = consensus();
    assert_eq!(
        checker.verify_evidence(&strong, voters(n)),
        Ok(Some(Decision::Yes))
    );
    assert_eq!(checker.verify_evidence(&weak, voters(n)), Ok(None));
    assert_eq!(checker, consensus());

    let mut tampered = strong.clone();
    tampered.votes[1].vote = false;
    assert_eq!(
        checker.verify_evidence(&tampered, voters(n)),
        Err(ConsensusError::BadVoteHash)
    );
    // Dropping the vote a later one names breaks the chain.
    let mut gap = strong;
    gap.votes.remove(0);
    assert_eq!(
        checker.verify_evidence(&gap, voters(n)),
        Err(ConsensusError::DanglingReceivedHash)
    );
}

#[test]
fn late_evidence_is_merged_and_decided_by_liveness() {
    let n = 3;
    let (mut member, proposal) = member_with_proposal(n, true);
    let id = id_of(&proposal);
    member.cast_vote(id, wallet(0), true, at(20)).unwrap();
    let evidence = member.proposal(id).unwrap().clone();

    // Live traffic after the deadline is refused; evidence is taken and decides at once:
    // one YES, two silent voters counted as YES.
    let mut late = consensus();
    assert!(matches!(
        late.receive_proposal(evidence.clone(), voters(n), deadline()),
        Err(ConsensusError::Expired { .. })
    ));
    let outcome = late
        .receive_evidence(evidence.clone(), voters(n), deadline())
        .unwrap();
    assert_eq!(outcome.decided, Some(Decision::Yes));
    assert_eq!(late.decision(id), Some(Decision::Yes));

    // Before the deadline, evidence that settles nothing leaves the proposal open.
    let mut early = consensus();
    let outcome = early
        .receive_evidence(evidence.clone(), voters(n), at(30))
        .unwrap();
    assert_eq!((outcome.is_new, outcome.decided), (true, None));

    // A member holding a NO that the evidence lacks decides on all the votes it has:
    // YES, NO and one silent voter counted as YES make YES; with the second NO it is NO.
    let mut informed = consensus();
    informed
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    informed
        .receive_vote(vote_by(&proposal, n, 1, false), at(25))
        .unwrap();
    let outcome = informed
        .receive_evidence(evidence.clone(), voters(n), deadline())
        .unwrap();
    assert_eq!(outcome.decided, Some(Decision::Yes));
    let mut better_informed = consensus();
    better_informed
        .receive_proposal(proposal.clone(), voters(n), at(10))
        .unwrap();
    better_informed
        .receive_vote(vote_by(&proposal, n, 1, false), at(25))
        .unwrap();
    better_informed
        .receive_vote(vote_by(&proposal, n, 2, false), at(26))
        .unwrap();
    assert_eq!(better_informed.decision(id), Some(Decision::No));
    better_informed
        .receive_evidence(evidence, voters(n), deadline())
        .unwrap();
    assert_eq!(better_informed.decision(id), Some(Decision::No));
}

#[test]
fn creation_is_checked() {
    let mut member = consensus();
    let mut no_voters = spec(1, true);
    no_voters.voters.clear();
    assert_eq!(
        member.create_proposal(wallet(0), no_voters, T0),
        Err(ConsensusError::NoVoters)
    );
    let mut past = spec(1, true);
    past.expiration = T0;
    assert_eq!(
        member.create_proposal(wallet(0), past, T0),
        Err(ConsensusError::EmptyLifetime)
    );
    let proposal = member
        .create_proposal(wallet(0), spec(1, true), T0)
        .unwrap();
    assert_eq!(
        member.create_proposal(wallet(0), spec(1, true), T0),
        Err(ConsensusError::ProposalExists(id_of(&proposal)))
    );
    // A deadline between seconds is rounded up on the wire.
    let mut odd = spec(1, true);
    odd.payload = b"odd".to_vec();
    odd.expiration = T0.saturating_add(Duration::from_millis(1500));
    let odd = member.create_proposal(wallet(0), odd, T0).unwrap();
    assert_eq!(odd.expiration_timestamp, T0.wire_secs() + 2);
    assert_eq!(odd.timestamp, T0.wire_secs());
}

#[test]
fn embedded_votes_are_accepted_in_any_order() {
    let n = 4;
    let (mut author, proposal) = member_with_proposal(n, false);
    let id = id_of(&proposal);
    for voter in 0..3 {
        author
            .cast_vote(id, wallet(voter), voter != 1, at(20))
            .unwrap();
    }
    // A chain: each vote names the one before; sent last to first.
    let mut reversed = author.proposal(id).unwrap().clone();
    reversed.votes.reverse();
    let mut member = consensus();
    let outcome = member
        .receive_proposal(reversed, voters(n), at(30))
        .unwrap();
    assert_eq!(outcome.votes_applied, 3);
    assert_eq!(member.tally(id), author.tally(id));
    // Listed again in acceptance order, usable as evidence.
    assert_eq!(member.proposal(id), author.proposal(id));
}
