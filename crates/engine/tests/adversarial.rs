//! Bad input and misbehaving members: typed errors or logged drops, never a panic,
//! and never a change of group state.

mod common;

use common::*;
use demls_engine::wire::{Envelope, app_message, envelope};
use demls_engine::{GroupView, VotePolicy};
use demls_identity::Wallet;
use demls_sim::{NodeId, Sim};
use prost::Message;

fn views(sim: &Sim, nodes: &[NodeId]) -> Vec<Option<GroupView>> {
    nodes
        .iter()
        .map(|id| sim.node(*id).engine.group(&group()))
        .collect()
}

fn envelope_bytes(group: &str, body: envelope::Body) -> Vec<u8> {
    Envelope {
        version: 1,
        group_id: group.into(),
        body: Some(body),
    }
    .encode_to_vec()
}

#[test]
fn malformed_oversize_and_unknown_inputs_are_refused_without_change() {
    let mut sim = Sim::new(noisy_net(21));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let before = views(&sim, &nodes);
    let target = nodes[1];
    let max = sim.node(target).engine.config().max_message_size;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", vec![0xff; 64]),
        ("malformed", b"hello world".to_vec()),
        ("oversize", vec![0; max + 1]),
        (
            "unknown_group",
            envelope_bytes("nope", envelope::Body::MlsMessage(vec![1, 2, 3])),
        ),
        (
            "invalid_group_id",
            envelope_bytes("NOT/valid", envelope::Body::MlsMessage(vec![1])),
        ),
        (
            "malformed",
            envelope_bytes("lab", envelope::Body::MlsMessage(vec![0, 1, 0, 2, 9, 9])),
        ),
        (
            "unsupported_version",
            Envelope {
                version: 9,
                group_id: "lab".into(),
                body: None,
            }
            .encode_to_vec(),
        ),
        (
            "malformed",
            Envelope {
                version: 1,
                group_id: "lab".into(),
                body: None,
            }
            .encode_to_vec(),
        ),
    ];
    for (kind, bytes) in cases {
        let error = sim.inject(target, &bytes).unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
    }
    assert_eq!(views(&sim, &nodes), before);
}

#[test]
fn random_bytes_never_panic() {
    use proptest::prelude::*;
    let mut sim = Sim::new(noisy_net(22));
    let nodes = form_group(&mut sim, 2, VotePolicy::Automatic);
    let before = views(&sim, &nodes);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(300));
    let sim_cell = std::cell::RefCell::new(&mut sim);
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..2048), |bytes| {
            let mut sim = sim_cell.borrow_mut();
            let _ = sim.inject(nodes[1], &bytes);
            // Also wrapped as an MLS message of the right group.
            let _ = sim.inject(
                nodes[1],
                &envelope_bytes("lab", envelope::Body::MlsMessage(bytes)),
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(views(&sim, &nodes), before);
}

#[test]
fn forged_and_misattributed_votes_are_refused() {
    let mut sim = Sim::new(noisy_net(23));
    let nodes = form_group(&mut sim, 4, VotePolicy::Automatic);
    let g = group();
    for id in &nodes {
        sim.node_mut(*id)
            .engine
            .set_vote_policy(VotePolicy::Manual, Default::default());
    }
    let target = address(&sim, nodes[3]);
    sim.act(nodes[0], |e, now| e.propose_remove(&g, target, now))
        .unwrap();
    sim.run_for(1_000);
    let (proposal, _, _) = *opened(&sim, nodes[1]).last().unwrap();

    // Member 1 casts a real vote; the test then forges variants of it.
    sim.enable_wiretap();
    sim.act(nodes[1], |e, now| e.vote(&g, proposal, true, now))
        .unwrap();
    let voter = address(&sim, nodes[1]);
    let honest = sim
        .node(nodes[1])
        .engine
        .byzantine_recorded_vote(&g, proposal, voter)
        .unwrap();
    sim.run_for(1_000);
    let before = views(&sim, &nodes);

    // A tampered signature.
    let mut forged = honest.clone();
    forged.signature[10] ^= 0x55;
    forged.vote_id ^= 1;
    // A vote signed by someone outside the group, relayed by member 2.
    let outsider = Wallet::generate();
    let mut stranger = honest.clone();
    stranger.vote_owner = outsider.address().as_bytes().to_vec();
    // Member 2 relaying member 1's vote as its own message.
    let relayed = honest.clone();

    for (vote, sender) in [
        (forged, nodes[1]),
        (stranger, nodes[2]),
        (relayed, nodes[2]),
    ] {
        sim.act(sender, |e, now| {
            e.byzantine_send_app(&g, app_message::Body::Vote(vote), now)
        })
        .unwrap();
    }
    sim.run_for(2_000);
    let drops = sim.drop_counts();
    assert!(
        drops.get("bad_consensus").copied().unwrap_or(0) >= 2,
        "{drops:?}"
    );
    assert!(
        drops.get("sender_mismatch").copied().unwrap_or(0) >= 4,
        "{drops:?}"
    );
    assert_eq!(views(&sim, &nodes), before);
}

#[test]
fn a_commit_adding_someone_nobody_voted_for_is_rejected_by_every_member() {
    let mut sim = Sim::new(noisy_net(29));
    let nodes = form_group(&mut sim, 5, VotePolicy::Automatic);
    let g = group();
    let before = views(&sim, &nodes[1..]);
    let intruder = sim.add(engine(VotePolicy::Automatic));
    let key_package = sim.act(intruder, |e, now| e.key_package(now)).unwrap();
    sim.act(nodes[0], |e, now| {
        e.byzantine_commit(&g, vec![key_package], Vec::new(), now)
    })
    .unwrap();
    sim.run_for(5_000);
    let steward = address(&sim, nodes[0]);
    let mut after = views(&sim, &nodes[1..]);
    for (id, view) in nodes[1..].iter().zip(&mut after) {
        assert_eq!(rejected_commits(&sim, *id), 1, "node {}", id.0);
        // The one thing that changed: the steward's score paid for a provable act.
        let view = view.as_mut().expect("a member");
        let scoring = demls_engine::PeerScoring::default();
        assert_eq!(
            view.steward_scores,
            vec![(steward, scoring.default_score - scoring.proven_penalty)]
        );
        view.steward_scores = vec![(steward, scoring.default_score)];
    }
    assert_eq!(after, before);
}

#[test]
fn replayed_and_foreign_key_packages_are_dropped() {
    let mut sim = Sim::new(noisy_net(31));
    let g = group();
    let steward = sim.add(engine(VotePolicy::Automatic));
    sim.act(steward, |e, now| e.create_group(g.clone(), params(), now))
        .unwrap();
    sim.enable_wiretap();
    let joiner = sim.add(engine(VotePolicy::Automatic));
    sim.act(joiner, |e, now| e.request_join(g.clone(), None, now))
        .unwrap();
    assert!(sim.run_until(60_000, |s| converged(s, &[steward, joiner], 2)));
    let request = sim
        .wiretap
        .iter()
        .find_map(|(from, t)| {
            let env = Envelope::decode(t.payload.as_slice()).ok()?;
            matches!(env.body, Some(envelope::Body::JoinRequest(_))).then_some((*from, env))
        })
        .map(|(_, env)| env)
        .unwrap();
    let before = views(&sim, &[steward, joiner]);

    // The same bytes again: a duplicate. The same request in a re-encoded envelope (past
    // the duplicate filter) from a member: the key package it was added with, so its
    // Welcome is sent again (it may have lost it), and nothing else changes.
    let bytes = request.encode_to_vec();
    assert_eq!(sim.inject(steward, &bytes).unwrap_err().kind(), "duplicate");
    let mut reencoded = bytes.clone();
    reencoded.extend_from_slice(&[0xa0, 0x06, 0x01]); // unknown field 100 = 1
    sim.run_for(2_000); // past the pacing of one joiner's requests
    sim.inject(steward, &reencoded).unwrap();
    sim.run_for(2_000);

    // A key package for another ciphersuite (P-256), sealed properly by a would-be joiner.
    let other = sim.add(engine(VotePolicy::Automatic));
    sim.node_mut(other).subscriptions.insert(g.clone());
    sim.run_for(2_000); // until it has seen an announcement
    let foreign = foreign_key_package(&Wallet::generate());
    sim.act(other, |e, now| e.byzantine_join_request(&g, foreign, now))
        .unwrap();
    sim.run_for(2_000);
    assert!(
        sim.drop_counts().contains_key("unsupported_ciphersuite"),
        "{:?}",
        sim.drop_counts()
    );
    assert_eq!(views(&sim, &[steward, joiner]), before);
}

/// A key package with a valid wallet binding but for ciphersuite 0x0002.
fn foreign_key_package(wallet: &Wallet) -> Vec<u8> {
    use mls_rs::identity::SigningIdentity;
    use mls_rs::identity::basic::BasicCredential;
    use mls_rs::{CipherSuite, CipherSuiteProvider, Client, CryptoProvider, ExtensionList};
    use mls_rs_crypto_rustcrypto::RustCryptoProvider;
    let suite = CipherSuite::P256_AES128;
    let provider = RustCryptoProvider::new();
    let (secret, public) = provider
        .cipher_suite_provider(suite)
        .unwrap()
        .signature_key_generate()
        .unwrap();
    let binding = demls_identity::WalletBinding::create(wallet, public.as_bytes());
    let identity = SigningIdentity::new(
        BasicCredential::new(binding.encode()).into_credential(),
        public,
    );
    let client = Client::builder()
        .crypto_provider(provider)
        .identity_provider(mls_rs::identity::basic::BasicIdentityProvider)
        .signing_identity(identity, secret, suite)
        .build();
    client
        .generate_key_package_message(ExtensionList::new(), ExtensionList::new(), None)
        .unwrap()
        .to_bytes()
        .unwrap()
}

#[test]
fn proposals_over_the_rate_limit_are_dropped_by_members_and_queued_by_honest_owners() {
    let mut sim = Sim::new(noisy_net(37));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let g = group();
    for id in &nodes {
        sim.node_mut(*id)
            .engine
            .set_vote_policy(VotePolicy::Manual, Default::default());
    }
    // A flood: the same member sends many proposals in one epoch.
    let spam = sim
        .act(nodes[1], |e, now| e.byzantine_proposals(&g, 20, now))
        .unwrap();
    for proposal in spam {
        sim.act(nodes[1], |e, now| {
            e.byzantine_send_app(&g, app_message::Body::Proposal(proposal), now)
        })
        .unwrap();
    }
    sim.run_for(1_000);
    let limit = usize::from(params().max_proposals_per_member);
    let spammer = address(&sim, nodes[1]);
    for id in [nodes[0], nodes[2]] {
        let from_spammer = opened(&sim, id)
            .iter()
            .filter(|(_, owner, _)| *owner == spammer)
            .count();
        assert!(
            from_spammer <= limit,
            "node {} accepted {from_spammer}",
            id.0
        );
    }
    assert!(sim.drop_counts().get("rate_limited").copied().unwrap_or(0) >= 2 * (20 - limit));
}

#[test]
fn a_message_turned_away_for_want_of_room_is_taken_when_it_comes_again() {
    let mut joiner = engine_with(demls_engine::EngineConfig {
        max_buffered_messages: 1,
        ..config(VotePolicy::Automatic)
    });
    let now = demls_engine::Timestamp(1_700_000_000_000);
    joiner.request_join(group(), None, now).unwrap();
    // Application-topic messages before the Welcome are kept, one at most here.
    let early =
        |byte: u8| envelope_bytes(group().as_str(), envelope::Body::MlsMessage(vec![byte; 64]));
    joiner.handle_message(&early(1), now).unwrap();
    let second = early(2);
    let full = |r: Result<(), demls_engine::EngineError>| {
        matches!(r, Err(demls_engine::EngineError::BufferFull))
    };
    assert!(full(joiner.handle_message(&second, now)));
    // The same bytes again (a repair, a store answer): turned away for room again, not
    // dropped as a repeat of what was never taken in.
    assert!(full(joiner.handle_message(&second, now)));
    // What was taken in is a repeat.
    assert!(matches!(
        joiner.handle_message(&early(1), now),
        Err(demls_engine::EngineError::Duplicate)
    ));
}
