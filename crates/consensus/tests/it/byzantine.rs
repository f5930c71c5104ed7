//! Byzantine inputs: each is refused with its own error and changes nothing.

use demls_consensus::signing::proposal_id;
use demls_consensus::wire;
use demls_consensus::{Consensus, ConsensusConfig, ConsensusError, ProposalId, VoteOutcome};

use crate::common::{
    T0, at, consensus, deadline, id_of, member_with_proposal, resign, spec, vote_by, voters, wallet,
};

const N: usize = 5;

/// Delivers `vote` to a copy of `member`, checks that it is refused and that
/// the copy is unchanged, and returns the error.
fn refuse_vote(member: &Consensus, vote: wire::Vote) -> ConsensusError {
    let mut copy = member.clone();
    let error = copy.receive_vote(vote, at(30)).unwrap_err();
    assert_eq!(&copy, member, "a refused vote changed the state");
    error
}

fn assert_vote_refused(member: &Consensus, vote: wire::Vote, expected: ConsensusError) {
    assert_eq!(refuse_vote(member, vote), expected);
}

/// As [`refuse_vote`], for a proposal received with `n` local voters.
fn refuse_proposal(member: &Consensus, proposal: wire::Proposal, n: usize) -> ConsensusError {
    let mut copy = member.clone();
    let error = copy
        .receive_proposal(proposal, voters(n), at(30))
        .unwrap_err();
    assert_eq!(&copy, member, "a refused proposal changed the state");
    error
}

fn assert_proposal_refused(
    member: &Consensus,
    proposal: wire::Proposal,
    n: usize,
    expected: ConsensusError,
) {
    assert_eq!(refuse_proposal(member, proposal, n), expected);
}

/// `s -> n - s` and the recovery bit flipped: the same signature, malleated.
fn malleate(signature: &[u8]) -> Vec<u8> {
    const ORDER: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFE, 0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36,
        0x41, 0x41,
    ];
    let mut out = signature.to_vec();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(ORDER[i]) - i16::from(signature[32 + i]) - borrow;
        out[32 + i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out[64] ^= 1;
    out
}

#[test]
fn forged_signature() {
    let (member, proposal) = member_with_proposal(N, true);
    let vote = vote_by(&proposal, N, 1, true);

    // Signed by voter 2 but claiming voter 1.
    let mut forged = vote.clone();
    forged.signature = resign(vote.clone(), wallet(2)).signature;
    assert_vote_refused(
        &member,
        forged,
        ConsensusError::SignerMismatch {
            claimed: wallet(1).address(),
            recovered: wallet(2).address(),
        },
    );

    // Garbage: r = 0 is no signature at all; a short one neither.
    let mut garbage = vote.clone();
    garbage.signature = vec![0; 65];
    assert_vote_refused(&member, garbage, ConsensusError::InvalidSignature);
    let mut short = vote;
    short.signature.truncate(64);
    assert_vote_refused(&member, short, ConsensusError::InvalidSignature);
}

#[test]
fn vote_under_another_members_address() {
    let (member, proposal) = member_with_proposal(N, true);
    // Voter 3 writes voter 1's address, hashes correctly and signs with its own key.
    let mut vote = vote_by(&proposal, N, 3, false);
    vote.vote_owner = wallet(1).address().as_bytes().to_vec();
    assert_vote_refused(
        &member,
        resign(vote, wallet(3)),
        ConsensusError::SignerMismatch {
            claimed: wallet(1).address(),
            recovered: wallet(3).address(),
        },
    );
}

#[test]
fn double_vote() {
    let (mut member, proposal) = member_with_proposal(N, true);
    let id = id_of(&proposal);
    let yes = vote_by(&proposal, N, 1, true);
    let no = vote_by(&proposal, N, 1, false);
    assert!(matches!(
        member.receive_vote(yes.clone(), at(30)),
        Ok(VoteOutcome::Applied { .. })
    ));
    let double = ConsensusError::DoubleVote {
        id,
        voter: wallet(1).address(),
    };
    assert_vote_refused(&member, no.clone(), double.clone());

    // Chained to the first vote through parent_hash: still a second vote.
    let mut chained = no;
    chained.parent_hash = yes.vote_hash.clone();
    assert_vote_refused(&member, resign(chained, wallet(1)), double);

    // A parent_hash on a first vote names nothing.
    let mut orphan = vote_by(&proposal, N, 2, true);
    orphan.parent_hash = yes.vote_hash;
    assert_vote_refused(
        &member,
        resign(orphan, wallet(2)),
        ConsensusError::ParentHashMismatch,
    );

    // Casting twice locally is refused the same way.
    let mut copy = member.clone();
    assert!(copy.cast_vote(id, wallet(1), false, at(40)).is_err());
    assert_eq!(copy, member);
}

#[test]
fn vote_for_an_expired_proposal() {
    let (member, proposal) = member_with_proposal(N, true);
    let id = id_of(&proposal);
    let vote = vote_by(&proposal, N, 1, true);

    // Delivered after the deadline.
    let mut late = member.clone();
    assert_eq!(
        late.receive_vote(vote.clone(), deadline()),
        Err(ConsensusError::Expired {
            id,
            deadline: deadline()
        })
    );
    assert_eq!(late, member);

    // Dated after the expiration, or before the creation.
    let mut after = vote.clone();
    after.timestamp = proposal.expiration_timestamp + 1;
    assert_vote_refused(
        &member,
        resign(after, wallet(1)),
        ConsensusError::VoteAfterExpiration {
            vote_secs: proposal.expiration_timestamp + 1,
            expiration_secs: proposal.expiration_timestamp,
        },
    );
    let mut before = vote;
    before.timestamp = proposal.timestamp - 1;
    assert_vote_refused(
        &member,
        resign(before, wallet(1)),
        ConsensusError::VoteBeforeProposal {
            vote_secs: proposal.timestamp - 1,
            created_secs: proposal.timestamp,
        },
    );
}

#[test]
fn vote_from_a_non_member() {
    let (member, proposal) = member_with_proposal(N, true);
    // Wallet N is not among the N voters; it cannot even cast.
    let mut outsider = vote_by(&proposal, N, 1, true);
    outsider.vote_owner = wallet(N).address().as_bytes().to_vec();
    assert_vote_refused(
        &member,
        resign(outsider, wallet(N)),
        ConsensusError::NotAVoter {
            voter: wallet(N).address(),
        },
    );
    let mut copy = member.clone();
    assert_eq!(
        copy.cast_vote(id_of(&proposal), wallet(N), true, at(40)),
        Err(ConsensusError::NotAVoter {
            voter: wallet(N).address()
        })
    );
}

#[test]
fn tampered_received_hash() {
    let (mut member, proposal) = member_with_proposal(N, true);
    let first = vote_by(&proposal, N, 1, true);
    member.receive_vote(first.clone(), at(30)).unwrap();
    let vote = vote_by(&proposal, N, 2, true);

    // Changed in transit: the hash no longer matches.
    let mut tampered = vote.clone();
    tampered.received_hash = first.vote_hash.clone();
    assert_vote_refused(&member, tampered.clone(), ConsensusError::BadVoteHash);

    // Changed and re-hashed in transit: the signature no longer matches.
    tampered.vote_hash = demls_consensus::signing::vote_hash(&tampered).0.to_vec();
    assert!(matches!(
        refuse_vote(&member, tampered),
        ConsensusError::SignerMismatch { .. }
    ));

    // Signed by its owner with a received_hash that is not a hash at all.
    let mut malformed = vote.clone();
    malformed.received_hash = vec![1, 2, 3];
    assert_vote_refused(
        &member,
        resign(malformed, wallet(2)),
        ConsensusError::DanglingReceivedHash,
    );

    // Signed by its owner, naming a vote nobody cast: it waits and never counts.
    let mut dangling = vote;
    dangling.received_hash = vec![7; 32];
    let before = member.tally(id_of(&proposal)).unwrap();
    assert_eq!(
        member.receive_vote(resign(dangling, wallet(2)), at(30)),
        Ok(VoteOutcome::Buffered {
            id: id_of(&proposal)
        })
    );
    assert_eq!(member.tally(id_of(&proposal)).unwrap(), before);
}

#[test]
fn tampered_vote_hash() {
    let (member, proposal) = member_with_proposal(N, true);
    let mut vote = vote_by(&proposal, N, 1, true);
    vote.vote_hash[0] ^= 1;
    assert_vote_refused(&member, vote.clone(), ConsensusError::BadVoteHash);
    vote.vote_hash.clear();
    assert_vote_refused(&member, vote, ConsensusError::BadVoteHash);
}

#[test]
fn tampered_vote_value() {
    let (member, proposal) = member_with_proposal(N, true);
    let mut vote = vote_by(&proposal, N, 1, true);
    vote.vote = false;
    assert_vote_refused(&member, vote, ConsensusError::BadVoteHash);
}

#[test]
fn high_s_signature() {
    let (member, proposal) = member_with_proposal(N, true);
    let mut vote = vote_by(&proposal, N, 1, true);
    vote.signature = malleate(&vote.signature);
    assert_vote_refused(&member, vote, ConsensusError::HighS);
}

#[test]
fn malformed_owner() {
    let (member, proposal) = member_with_proposal(N, true);
    let mut vote = vote_by(&proposal, N, 1, true);
    vote.vote_owner.pop();
    assert_vote_refused(
        &member,
        vote,
        ConsensusError::MalformedAddress {
            field: "vote_owner",
            len: 19,
        },
    );
}

#[test]
fn sender_count_is_not_trusted() {
    let mut owner = consensus();
    let proposal = owner.create_proposal(wallet(0), spec(N, true), T0).unwrap();
    let member = consensus();
    // The sender says N voters; this member computes N + 1.
    assert_proposal_refused(
        &member,
        proposal.clone(),
        N + 1,
        ConsensusError::ExpectedVotersMismatch {
            claimed: N as u32,
            local: N + 1,
        },
    );
    // Lying about the count changes the content, hence the id.
    let mut lying = proposal;
    lying.expected_voters_count = 3;
    let derived = proposal_id(&lying);
    assert_proposal_refused(
        &member,
        lying.clone(),
        3,
        ConsensusError::ProposalIdMismatch {
            claimed: id_of(&lying),
            derived,
        },
    );
}

#[test]
fn proposal_ids_are_checked() {
    let mut owner = consensus();
    let proposal = owner.create_proposal(wallet(0), spec(N, true), T0).unwrap();
    let member = consensus();
    for tamper in [
        |p: &mut wire::Proposal| p.payload.push(0),
        |p: &mut wire::Proposal| p.proposal_id ^= 1,
        |p: &mut wire::Proposal| p.liveness_criteria_yes = !p.liveness_criteria_yes,
        |p: &mut wire::Proposal| p.expiration_timestamp += 1,
    ] {
        let mut tampered = proposal.clone();
        tamper(&mut tampered);
        assert!(matches!(
            refuse_proposal(&member, tampered, N),
            ConsensusError::ProposalIdMismatch { .. }
        ));
    }
}

#[test]
fn proposal_with_a_forged_embedded_vote_is_refused_whole() {
    let (_, proposal) = member_with_proposal(N, true);
    let good = vote_by(&proposal, N, 1, true);
    let mut forged = vote_by(&proposal, N, 2, true);
    forged.signature = resign(forged.clone(), wallet(3)).signature;
    let mut carrying = proposal.clone();
    carrying.votes = vec![good, forged];
    let member = consensus();
    assert_proposal_refused(
        &member,
        carrying,
        N,
        ConsensusError::SignerMismatch {
            claimed: wallet(2).address(),
            recovered: wallet(3).address(),
        },
    );
}

#[test]
fn embedded_vote_for_another_proposal() {
    let (_, proposal) = member_with_proposal(N, true);
    let mut other_spec = spec(N, true);
    other_spec.payload = b"something else".to_vec();
    let other = consensus()
        .create_proposal(wallet(0), other_spec, T0)
        .unwrap();
    let mut carrying = proposal.clone();
    carrying.votes = vec![vote_by(&other, N, 1, true)];
    assert_proposal_refused(
        &consensus(),
        carrying,
        N,
        ConsensusError::WrongProposal {
            vote: id_of(&other),
            proposal: id_of(&proposal),
        },
    );
}

#[test]
fn proposal_from_the_future_or_living_too_long() {
    let config = ConsensusConfig::default();
    // Created by a clock ten minutes ahead.
    let ahead = T0.saturating_add(std::time::Duration::from_secs(600));
    let mut future_spec = spec(N, true);
    future_spec.expiration = ahead.saturating_add(std::time::Duration::from_secs(60));
    let future = consensus()
        .create_proposal(wallet(0), future_spec, ahead)
        .unwrap();
    assert_proposal_refused(
        &consensus(),
        future,
        N,
        ConsensusError::ProposalFromFuture {
            created: ahead,
            now: at(30),
        },
    );

    let mut long = spec(N, true);
    long.expiration = T0.saturating_add(config.max_proposal_lifetime * 2);
    assert_eq!(
        consensus().create_proposal(wallet(0), long, T0),
        Err(ConsensusError::LifetimeTooLong {
            lifetime: config.max_proposal_lifetime * 2,
            max: config.max_proposal_lifetime,
        })
    );
}

#[test]
fn flood_of_proposals_is_capped() {
    let config = ConsensusConfig {
        max_open_proposals_per_owner: 2,
        max_proposals: 3,
        ..ConsensusConfig::default()
    };
    let proposal = |owner: usize, k: u8| {
        let mut s = spec(N, true);
        s.payload = vec![k];
        consensus().create_proposal(wallet(owner), s, T0).unwrap()
    };
    let mut member = Consensus::new(config);
    member
        .receive_proposal(proposal(1, 0), voters(N), at(30))
        .unwrap();
    member
        .receive_proposal(proposal(1, 1), voters(N), at(30))
        .unwrap();
    assert_proposal_refused(
        &member,
        proposal(1, 2),
        N,
        ConsensusError::TooManyOpenProposals {
            owner: wallet(1).address(),
        },
    );
    member
        .receive_proposal(proposal(2, 0), voters(N), at(30))
        .unwrap();
    assert_proposal_refused(&member, proposal(3, 0), N, ConsensusError::TooManyProposals);

    // A decided proposal no longer counts as open for its owner.
    let first = ProposalId(proposal(1, 0).proposal_id);
    for voter in 0..N {
        member
            .cast_vote(first, wallet(voter), true, at(40))
            .unwrap();
    }
    assert!(member.decision(first).is_some());
    let mut roomy = member.clone();
    roomy.close(ProposalId(proposal(2, 0).proposal_id)).unwrap();
    // Closed proposals still take room until their retention ends.
    assert_eq!(
        roomy.receive_proposal(proposal(1, 2), voters(N), at(50)),
        Err(ConsensusError::TooManyProposals)
    );
}

#[test]
fn tampered_copy_of_an_accepted_vote_in_a_retransmission() {
    let (mut member, proposal) = member_with_proposal(N, true);
    let id = id_of(&proposal);
    member
        .receive_vote(vote_by(&proposal, N, 1, true), at(30))
        .unwrap();
    // Same vote_hash field as the accepted vote, other content.
    let mut carrying = member.proposal(id).unwrap().clone();
    carrying.votes[0].vote = false;
    assert_proposal_refused(&member, carrying, N, ConsensusError::BadVoteHash);
}
