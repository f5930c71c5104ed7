//! The bytes on the wire: pinned, cross-checked against an independent
//! encoding of the reference's algorithm, and robust to garbage.

use std::collections::BTreeSet;
use std::time::Duration;

use demls_consensus::signing::{proposal_id, vote_hash};
use demls_consensus::wire;
use demls_consensus::{ProposalId, ProposalSpec, Timestamp};
use demls_identity::{EthSignature, Wallet, recover_personal};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::common::{T0, at, consensus, member_with_proposal, vote_by, voters};

/// Anvil / Hardhat default accounts 0 and 1.
const ANVIL_0: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ANVIL_1: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

const FIXED_PROPOSAL: &str = concat!(
    "520a616464206d656d6265725a2a307837303939373937304335313831326463334130313043376430316235306530643137646337394338608fd08dbe016a14f39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    "729601a001a1f8c4c904aa0114f39fd6e51aad88f6f4ce6ab8827279cfffb92266b0018fd08dbe01b80185c3bbc206c00101da0120df36e124d25635e445f3203ac91bea7704ed7f0d8b41cb128f3beeb54bb14583e201418f94ef38c3c91e2e2fbd602dc9a1b4e1e7ea170749b21deb589f764ee81949ad2882a21ded6a30e66dbb51b937ba9c132f47673479ac9a77b0165515c053f6721b",
    "72b601a001f5ccd5a401aa011470997970c51812dc3a010c7d01b50e0d17dc79c8b0018fd08dbe01b80185c3bbc206d20120df36e124d25635e445f3203ac91bea7704ed7f0d8b41cb128f3beeb54bb14583da01206ba490cf0add9a3adba00d0e95676243d7f4e8edb4c26d78c4b4904ec20061c4e201416907936642b143bc133989253603d81520035e936b70dddd7cc4ce70d2135a0f70c711d1c38202e56e45ded24bc9ed41cca598df1e0ede7f6aa056572586080d1b",
    "7802800103880180c3bbc2069001bcc3bbc206980101",
);
const FIXED_VOTE_0: &str = "a001a1f8c4c904aa0114f39fd6e51aad88f6f4ce6ab8827279cfffb92266b0018fd08dbe01b80185c3bbc206c00101da0120df36e124d25635e445f3203ac91bea7704ed7f0d8b41cb128f3beeb54bb14583e201418f94ef38c3c91e2e2fbd602dc9a1b4e1e7ea170749b21deb589f764ee81949ad2882a21ded6a30e66dbb51b937ba9c132f47673479ac9a77b0165515c053f6721b";
const FIXED_VOTE_1: &str = "a001f5ccd5a401aa011470997970c51812dc3a010c7d01b50e0d17dc79c8b0018fd08dbe01b80185c3bbc206d20120df36e124d25635e445f3203ac91bea7704ed7f0d8b41cb128f3beeb54bb14583da01206ba490cf0add9a3adba00d0e95676243d7f4e8edb4c26d78c4b4904ec20061c4e201416907936642b143bc133989253603d81520035e936b70dddd7cc4ce70d2135a0f70c711d1c38202e56e45ded24bc9ed41cca598df1e0ede7f6aa056572586080d1b";

/// A minimal protobuf writer, independent of prost: proto3 omits defaults.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn uint(&mut self, field: u64, value: u64) {
        if value != 0 {
            self.varint(field << 3);
            self.varint(value);
        }
    }

    fn bytes(&mut self, field: u64, value: &[u8]) {
        if !value.is_empty() {
            self.varint((field << 3) | 2);
            self.varint(value.len() as u64);
            self.0.extend_from_slice(value);
        }
    }
}

/// The reference's `compute_vote_hash`, written out.
fn reference_vote_hash(vote: &wire::Vote) -> Vec<u8> {
    let mut input = Vec::new();
    input.extend_from_slice(&vote.vote_id.to_le_bytes());
    input.extend_from_slice(&vote.vote_owner);
    input.extend_from_slice(&vote.proposal_id.to_le_bytes());
    input.extend_from_slice(&vote.timestamp.to_le_bytes());
    input.push(u8::from(vote.vote));
    input.extend_from_slice(&vote.parent_hash);
    input.extend_from_slice(&vote.received_hash);
    Sha256::digest(&input).to_vec()
}

/// The reference's `build_vote` from the vote's fields: hash, encode without
/// the signature, EIP-191 sign those bytes, append the signature.
fn reference_vote_bytes(vote: &wire::Vote, signer: &Wallet) -> Vec<u8> {
    let hash = reference_vote_hash(vote);
    let mut w = Writer::default();
    w.uint(20, u64::from(vote.vote_id));
    w.bytes(21, &vote.vote_owner);
    w.uint(22, u64::from(vote.proposal_id));
    w.uint(23, vote.timestamp);
    w.uint(24, u64::from(vote.vote));
    w.bytes(25, &vote.parent_hash);
    w.bytes(26, &vote.received_hash);
    w.bytes(27, &hash);
    let signature = signer.sign_personal(&w.0);
    assert_eq!(
        recover_personal(&w.0, &signature).unwrap(),
        signer.address()
    );
    w.bytes(28, signature.as_bytes());
    w.0
}

/// The demls proposal id rule, written out.
fn reference_proposal_id(p: &wire::Proposal) -> u32 {
    let mut w = Writer::default();
    w.bytes(10, p.name.as_bytes());
    w.bytes(11, &p.payload);
    w.bytes(13, &p.proposal_owner);
    w.uint(15, u64::from(p.expected_voters_count));
    w.uint(17, p.timestamp);
    w.uint(18, p.expiration_timestamp);
    w.uint(19, u64::from(p.liveness_criteria_yes));
    let mut input = b"demls/consensus.v1/proposal-id".to_vec();
    input.extend_from_slice(&w.0);
    let digest = Sha256::digest(&input);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[test]
fn fixed_votes_have_fixed_bytes() {
    let alice = Wallet::from_hex(ANVIL_0).unwrap();
    let bob = Wallet::from_hex(ANVIL_1).unwrap();
    let mut member = consensus();
    let spec = ProposalSpec {
        name: "add member".into(),
        payload: b"0x70997970C51812dc3A010C7d01b50e0d17dc79C8".to_vec(),
        voters: BTreeSet::from([alice.address(), bob.address()]),
        expiration: T0.saturating_add(Duration::from_secs(60)),
        liveness_criteria_yes: true,
    };
    let created = member.create_proposal(&alice, spec, T0).unwrap();
    let id = ProposalId(created.proposal_id);
    assert_eq!(created.proposal_id, reference_proposal_id(&created));
    assert_eq!(proposal_id(&created), id);

    let now = Timestamp::from_millis(T0.as_millis() + 5_250);
    let first = member.cast_vote(id, &alice, true, now).unwrap().vote;
    let second = member.cast_vote(id, &bob, false, now).unwrap().vote;
    assert_eq!(first.timestamp, T0.wire_secs() + 5);
    assert_eq!(second.received_hash, first.vote_hash);

    for (vote, signer, fixed) in [
        (&first, &alice, FIXED_VOTE_0),
        (&second, &bob, FIXED_VOTE_1),
    ] {
        let bytes = vote.encode_to_vec();
        assert_eq!(bytes, reference_vote_bytes(vote, signer));
        assert_eq!(vote.vote_hash, reference_vote_hash(vote));
        assert_eq!(vote_hash(vote).0.to_vec(), vote.vote_hash);
        assert_eq!(vote.signature.len(), EthSignature::LEN);
        assert!(matches!(vote.signature[64], 27 | 28));
        assert_eq!(hex::encode(&bytes), fixed);
    }
    let proposal = member.proposal(id).unwrap();
    assert_eq!(proposal.round, 3);
    assert_eq!(hex::encode(proposal.encode_to_vec()), FIXED_PROPOSAL);
}

#[test]
fn decoding_round_trips() {
    let (member, proposal) = member_with_proposal(3, true);
    let vote = vote_by(&proposal, 3, 1, true);
    assert_eq!(wire::Vote::decode(&vote.encode_to_vec()[..]).unwrap(), vote);
    assert_eq!(
        wire::Proposal::decode(&proposal.encode_to_vec()[..]).unwrap(),
        proposal
    );
    assert!(member.proposal(ProposalId(proposal.proposal_id)).is_some());
}

fn arbitrary_vote() -> impl Strategy<Value = wire::Vote> {
    (
        any::<u32>(),
        vec(any::<u8>(), 0..24),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
        vec(any::<u8>(), 0..40),
        vec(any::<u8>(), 0..40),
        vec(any::<u8>(), 0..40),
        vec(any::<u8>(), 60..70),
    )
        .prop_map(
            |(vote_id, vote_owner, proposal_id, timestamp, vote, parent, received, hash, sig)| {
                wire::Vote {
                    vote_id,
                    vote_owner,
                    proposal_id,
                    timestamp,
                    vote,
                    parent_hash: parent,
                    received_hash: received,
                    vote_hash: hash,
                    signature: sig,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Arbitrary bytes neither panic the decoder nor, once decoded, the state machine.
    #[test]
    fn garbage_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        let (mut member, _) = member_with_proposal(3, true);
        if let Ok(vote) = wire::Vote::decode(&bytes[..]) {
            let _ = member.receive_vote(vote, at(30));
        }
        if let Ok(proposal) = wire::Proposal::decode(&bytes[..]) {
            let _ = member.verify_evidence(&proposal, voters(3));
            let _ = member.receive_proposal(proposal, voters(3), at(30));
        }
    }

    /// Well-formed messages with nonsense fields are refused.
    #[test]
    fn nonsense_votes_are_refused(vote in arbitrary_vote()) {
        let (mut member, proposal) = member_with_proposal(3, true);
        prop_assert!(member.receive_vote(vote.clone(), at(30)).is_err());
        let mut carrying = proposal;
        carrying.votes.push(vote);
        prop_assert!(member.receive_proposal(carrying, voters(3), at(30)).is_err());
    }

    /// Any bit flipped in a valid vote either breaks decoding or is caught.
    #[test]
    fn flipped_bits_are_caught(bit in 0usize..(8 * 400)) {
        let (member, proposal) = member_with_proposal(3, true);
        let vote = vote_by(&proposal, 3, 1, true);
        let mut bytes = vote.encode_to_vec();
        let bit = bit % (8 * bytes.len());
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Ok(decoded) = wire::Vote::decode(&bytes[..])
            && decoded != vote
        {
            prop_assert!(member.clone().receive_vote(decoded, at(30)).is_err());
        }
    }
}
