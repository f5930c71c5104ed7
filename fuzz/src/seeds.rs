//! Seed corpora, from the real messages of the fixture group.

use std::path::Path;

use demls_engine::wire::{
    AppMessage, Chat, ChatSync, CommitPair, Emergency, Envelope, EpochMark, GroupChange,
    HistoryEntry, JoinRequest, RepairRequest, StewardElection, SyncRequest, WIRE_VERSION,
    app_message, emergency, envelope, group_change,
};
use demls_engine::{EngineSnapshot, Topic, TopicKind};
use demls_policy::{AdmissionPolicy, BlockRef, Gate, Requirement, U256};
use demls_transport::WakuMessage;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::fixture::{self, A, B, Fixture, GROUP, J, S};
use crate::node_topics;
use crate::targets::engine::{
    FIX_EPOCH, FIX_FRAME, FIX_IDENTITY, FIX_OWNER_VOTE, FIX_SEAL, FIX_SIGN, FIX_TIMES, cast,
    set_epoch,
};
use crate::targets::key_package::add_proposal;

/// Every target's seeds, by target name.
pub fn all(fx: &Fixture) -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("waku_message", waku_message(fx)),
        ("waku_metadata", waku_metadata()),
        (
            "engine_bytes",
            fx.messages.iter().map(|m| m.payload.clone()).collect(),
        ),
        ("engine_envelope", engine_envelope(fx)),
        ("engine_app", engine_app(fx)),
        ("key_package", key_packages(fx)),
        ("consensus", vec![vec![0; 64], (0..=255).collect()]),
        ("engine_restore", engine_restore(fx)),
        ("storage", vec![vec![0; 64], (0..=255).rev().collect()]),
        ("policy", policies()),
    ]
}

/// Writes every target's seeds as `<dir>/<target>/seed-NNN`.
pub fn write(fx: &Fixture, dir: &Path) -> std::io::Result<usize> {
    let mut count = 0;
    for (target, seeds) in all(fx) {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(target_dir.join(format!("seed-{i:03}")), seed)?;
            count += 1;
        }
    }
    Ok(count)
}

fn waku_message(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = fx
        .messages
        .iter()
        .take(12)
        .map(|m| {
            let kind = if m.welcome_topic {
                TopicKind::Welcome
            } else {
                TopicKind::Application
            };
            let topic = node_topics::content_topic(&Topic {
                group: fixture::group(),
                kind,
            })
            .expect("content topic");
            WakuMessage {
                payload: m.payload.clone(),
                content_topic: topic.as_str().to_owned(),
                version: Some(0),
                timestamp: Some(1_700_000_000_000_000_000),
                meta: Some(vec![1, 2, 3]),
                rate_limit_proof: None,
                ephemeral: Some(false),
            }
            .encode_to_vec()
        })
        .collect();
    seeds.push(b"/waku/2/rs/1/0".to_vec());
    seeds.push(b"/demls/1/fuzz-app/proto".to_vec());
    seeds
}

fn waku_metadata() -> Vec<Vec<u8>> {
    vec![
        crate::write_metadata(Some(4242), vec![0, 5]),
        crate::write_metadata(None, vec![]),
        crate::write_metadata(Some(1), (0..64).collect()),
        vec![6, 0x08, 0x01, 0x12, 0x02, 0x00, 0x02],
    ]
}

fn envelope_of(body: envelope::Body) -> Vec<u8> {
    Envelope {
        version: WIRE_VERSION,
        group_id: GROUP.into(),
        body: Some(body),
    }
    .encode_to_vec()
}

fn with_control(control: u8, bytes: &[u8]) -> Vec<u8> {
    let mut seed = vec![control];
    seed.extend_from_slice(bytes);
    seed
}

/// The key package in the pending joiner's snapshot.
fn joiner_key_package(fx: &Fixture) -> Vec<u8> {
    fx.pending_joiner
        .as_ref()
        .and_then(|j| EngineSnapshot::decode(j.snapshot.as_slice()).ok())
        .and_then(|s| s.joins.first().map(|j| j.key_package.clone()))
        .unwrap_or_default()
}

fn engine_envelope(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (captured, envelope) in fx.envelopes() {
        let to = match envelope.body {
            Some(envelope::Body::Welcome(_)) => 2,
            Some(envelope::Body::JoinRequest(_)) => 0,
            _ => 3,
        };
        seeds.push(with_control(to | FIX_FRAME | FIX_SIGN, &captured.payload));
    }
    let now = fx.now;
    // A join request carrying the spare key package in clear, to be sealed by the harness.
    let request = JoinRequest {
        joiner: fixture::wallet(fixture::K).address().as_bytes().to_vec(),
        ciphertext: fx.spare_key_package.clone(),
        sent_at_ms: now,
        ..JoinRequest::default()
    };
    seeds.push(with_control(
        FIX_FRAME | FIX_SIGN | FIX_SEAL,
        &envelope_of(envelope::Body::JoinRequest(request)),
    ));
    // A sync request from A naming its real epoch and branch.
    let a = fx.member(A);
    let view = a.group(&fixture::group()).expect("A is a member");
    let branch = Sha256::new()
        .chain_update(b"demls/branch/v1")
        .chain_update(&view.authenticator)
        .finalize()
        .to_vec();
    for epoch in [view.epoch.0, view.epoch.0.saturating_sub(1)] {
        let request = SyncRequest {
            requester: fixture::wallet(A).address().as_bytes().to_vec(),
            have: vec![EpochMark {
                epoch,
                branch: branch.clone(),
            }],
            sent_at_ms: now,
            signature: Vec::new(),
        };
        seeds.push(with_control(
            FIX_FRAME | FIX_SIGN,
            &envelope_of(envelope::Body::SyncRequest(request)),
        ));
    }
    seeds
}

/// The MLS messages the steward sent on the application topic (its commits), newest last.
fn commits(fx: &Fixture) -> Vec<Vec<u8>> {
    fx.envelopes()
        .filter(|(c, _)| c.from == S as u32 && !c.welcome_topic)
        .filter_map(|(_, e)| match e.body {
            Some(envelope::Body::MlsMessage(m)) => Some(m),
            _ => None,
        })
        .collect()
}

fn engine_app(fx: &Fixture) -> Vec<Vec<u8>> {
    let now_secs = fx.now / 1000;
    let epoch = fx
        .member(S)
        .group(&fixture::group())
        .map_or(0, |v| v.epoch.0);
    let app = |body| AppMessage { body: Some(body) }.encode_to_vec();
    let all_fixes = FIX_IDENTITY | FIX_TIMES | FIX_EPOCH | FIX_OWNER_VOTE;
    let mut seeds = Vec::new();
    seeds.push(with_control(
        0,
        &app(app_message::Body::Chat(Chat {
            id: vec![7; 16],
            text: "hello".into(),
            sent_at_ms: fx.now,
            lamport: 3,
            history: vec![HistoryEntry {
                id: vec![6; 16],
                epoch,
            }],
        })),
    ));
    // A sync (with a Bloom filter) and a repair request.
    seeds.push(with_control(
        0,
        &app(app_message::Body::Sync(ChatSync {
            lamport: 4,
            history: vec![HistoryEntry {
                id: vec![7; 16],
                epoch,
            }],
            bloom: vec![0xa5; 1024],
            joined_epoch: 0,
        })),
    ));
    seeds.push(with_control(
        0,
        &app(app_message::Body::Repair(RepairRequest {
            ids: vec![vec![7; 16], vec![6; 16]],
        })),
    ));
    // An add of K: A's proposal with its YES, then B's vote on it.
    let add = add_proposal(&fx.spare_key_package, epoch, now_secs);
    seeds.push(with_control(
        all_fixes,
        &app(app_message::Body::Proposal(add.clone())),
    ));
    let vote = cast(&add, B, true, add.votes[0].vote_hash.clone());
    seeds.push(with_control(
        1 | FIX_IDENTITY,
        &app(app_message::Body::Vote(vote)),
    ));
    // Removing B, A leaving, an election, and emergencies with real commits as evidence.
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        (
            "demls/group-change/v1",
            GroupChange {
                epoch,
                change: Some(group_change::Change::RemoveMember(
                    fixture::wallet(B).address().as_bytes().to_vec(),
                )),
                invitation: None,
            }
            .encode_to_vec(),
        ),
        (
            "demls/group-change/v1",
            GroupChange {
                epoch,
                change: Some(group_change::Change::RemoveMember(
                    fixture::wallet(A).address().as_bytes().to_vec(),
                )),
                invitation: None,
            }
            .encode_to_vec(),
        ),
        (
            "demls/steward-election/v1",
            StewardElection {
                epoch,
                retry_round: 0,
                stewards: [S, A]
                    .iter()
                    .map(|i| fixture::wallet(*i).address().as_bytes().to_vec())
                    .collect(),
            }
            .encode_to_vec(),
        ),
    ];
    let mut payloads = payloads;
    let commits = commits(fx);
    let offender = fixture::wallet(S).address().as_bytes().to_vec();
    let emergency = |evidence| {
        Emergency {
            epoch,
            offender: offender.clone(),
            violation_epoch: epoch.saturating_sub(1),
            evidence: Some(evidence),
        }
        .encode_to_vec()
    };
    if let Some(last) = commits.last() {
        payloads.push((
            "demls/emergency/v1",
            emergency(emergency::Evidence::BrokenCommit(last.clone())),
        ));
    }
    if commits.len() >= 2 {
        let n = commits.len();
        payloads.push((
            "demls/emergency/v1",
            emergency(emergency::Evidence::Equivocation(CommitPair {
                first: commits[n - 2].clone(),
                second: commits[n - 1].clone(),
            })),
        ));
    }
    payloads.push((
        "demls/emergency/v1",
        emergency(emergency::Evidence::Inactivity(true)),
    ));
    payloads.push((
        "demls/emergency/v1",
        emergency(emergency::Evidence::Deadlock(true)),
    ));
    for (name, payload) in payloads {
        let mut p = add.clone();
        p.name = name.into();
        p.payload = payload;
        // As members require: silence counts as YES only on elections (the fixture's default).
        p.liveness_criteria_yes = name == "demls/steward-election/v1";
        set_epoch(&mut p, epoch);
        p.proposal_id = demls_consensus::signing::proposal_id(&p).0;
        p.votes = vec![crate::sign::owner_vote(&p, &fixture::wallet(A))];
        seeds.push(with_control(
            all_fixes,
            &app(app_message::Body::Proposal(p)),
        ));
    }
    // J proposes too (sender bits 3 = J).
    let mut from_j = add;
    from_j.proposal_owner = fixture::wallet(J).address().as_bytes().to_vec();
    seeds.push(with_control(
        3 | all_fixes,
        &app(app_message::Body::Proposal(from_j)),
    ));
    seeds
}

fn key_packages(fx: &Fixture) -> Vec<Vec<u8>> {
    vec![fx.spare_key_package.clone(), joiner_key_package(fx)]
}

fn engine_restore(fx: &Fixture) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for node in 0..5u8 {
        let state = crate::targets::restore::node(node);
        let group = state.groups.first();
        // Traffic to replay: one message sent, and the application messages everyone published
        // (commits among them, which a replay must refuse without harm).
        let traffic = demls_engine::GroupTraffic {
            sent: 1,
            received: fx
                .envelopes()
                .filter_map(|(_, e)| match e.body {
                    Some(envelope::Body::MlsMessage(m)) => Some(m),
                    _ => None,
                })
                .collect(),
        };
        let parts: [Option<Vec<u8>>; 6] = [
            Some(state.snapshot.clone()),
            group.map(|g| g.snapshot.clone()),
            group.and_then(|g| g.epochs.last().map(|e| e.data.clone())),
            state.key_packages.first().map(|k| k.data.clone()),
            group.map(|g| g.group_id.clone()),
            group.map(|_| traffic.encode_to_vec()),
        ];
        for (part, blob) in parts.into_iter().enumerate() {
            if let Some(blob) = blob {
                let mut seed = vec![node, part as u8];
                seed.extend_from_slice(&blob);
                seeds.push(seed);
            }
        }
    }
    seeds
}

fn policies() -> Vec<Vec<u8>> {
    let token = demls_identity::Address::new([9; 20]);
    [
        AdmissionPolicy::Open,
        AdmissionPolicy::Gated(Gate {
            chain_id: 1,
            block: BlockRef::Latest,
            requirement: Requirement::MinEth {
                min_wei: U256::parse_units("0.1", 18).expect("amount"),
            },
        }),
        AdmissionPolicy::Gated(Gate {
            chain_id: 10,
            block: BlockRef::Number(123),
            requirement: Requirement::MinErc20 {
                token,
                min_amount: U256::from_u128(5_000_000),
                decimals: 6,
                symbol: "USDC".into(),
            },
        }),
        AdmissionPolicy::Gated(Gate {
            chain_id: 1,
            block: BlockRef::Latest,
            requirement: Requirement::Erc721 {
                token,
                token_id: Some(U256::from_u128(42)),
            },
        }),
        AdmissionPolicy::Gated(Gate {
            chain_id: 1,
            block: BlockRef::Latest,
            requirement: Requirement::Erc721 {
                token,
                token_id: None,
            },
        }),
    ]
    .iter()
    .map(AdmissionPolicy::encode)
    .collect()
}
