//! Keys that rotate, and what that buys: post-compromise security, removed members and
//! joiners locked out. Every test here attempts the decryption with real MLS (mls-rs)
//! on the ciphertexts that travelled, with every state the attacker holds.

mod common;

use common::*;
use demls_engine::mls::MlsGroup;
use demls_engine::wire::{AppMessage, Envelope, app_message, envelope};
use demls_engine::{
    ChangeKind, Engine, EngineError, Epoch, GroupParams, RotationRule, Timestamp, TopicKind,
    VotePolicy,
};
use demls_identity::Address;
use demls_sim::{NodeId, Sim};
use mls_rs::MlsMessage;
use mls_rs::error::MlsError;
use mls_rs::group::ReceivedMessage;
use prost::Message;

/// An MLS message seen on the application topic, with its envelope.
struct Wire {
    mls: Vec<u8>,
    envelope: Vec<u8>,
}

/// The MLS messages that travelled on the application topic from wiretap position `from`.
fn application_traffic(sim: &Sim, from: usize) -> Vec<Wire> {
    sim.wiretap[from..]
        .iter()
        .filter(|(_, t)| t.topic.kind == TopicKind::Application)
        .filter_map(|(_, t)| {
            let Some(envelope::Body::MlsMessage(mls)) = Envelope::decode(t.payload.as_slice())
                .ok()
                .and_then(|e| e.body)
            else {
                return None;
            };
            Some(Wire {
                mls,
                envelope: t.payload.clone(),
            })
        })
        .collect()
}

/// Every transmit (both topics) from wiretap position `from`, as envelopes.
fn all_traffic(sim: &Sim, from: usize) -> Vec<Vec<u8>> {
    sim.wiretap[from..]
        .iter()
        .map(|(_, t)| t.payload.clone())
        .collect()
}

/// What MLS makes of `ciphertext` with a copy of each of `states`: the chat text of the
/// first that decrypts it, or every failure.
fn decrypt(states: &[MlsGroup], ciphertext: &[u8]) -> Result<Option<String>, Vec<MlsError>> {
    let mut failures = Vec::new();
    for state in states {
        let message = MlsMessage::from_bytes(ciphertext).expect("an MLS message");
        match state.clone().process_incoming_message(message) {
            Ok(ReceivedMessage::ApplicationMessage(description)) => {
                let app = AppMessage::decode(description.data()).expect("an app message");
                return Ok(match app.body {
                    Some(app_message::Body::Chat(chat)) => Some(chat.text),
                    _ => None,
                });
            }
            Ok(_) => return Ok(None),
            Err(error) => failures.push(error),
        }
    }
    Err(failures)
}

/// `ciphertext` with its (clear) epoch field set to `epoch`: it then reaches the AEAD
/// decryption under that epoch's keys instead of failing on the epoch number.
fn relabeled(ciphertext: &[u8], epoch: u64) -> Vec<u8> {
    // MLSMessage: version (2 bytes), wire format (2), then the PrivateMessage: group id
    // (a variable-length vector), epoch (8 bytes).
    let reader = &mut &ciphertext[4..];
    let _group_id: Vec<u8> = mls_rs_codec::byte_vec::mls_decode(reader).expect("a group id");
    let at = ciphertext.len() - reader.len();
    let mut bytes = ciphertext.to_vec();
    bytes[at..at + 8].copy_from_slice(&epoch.to_be_bytes());
    bytes
}

/// Asserts that no state in `states` decrypts the chat `ciphertext`, neither as sent nor
/// relabeled to the state's own epoch, where the failure must be cryptographic (not
/// an unknown epoch).
fn assert_undecryptable(states: &[MlsGroup], ciphertext: &[u8], what: &str) {
    assert!(!states.is_empty(), "{what}: the attacker holds no state");
    assert!(
        decrypt(states, ciphertext).is_err(),
        "{what}: decrypted as sent"
    );
    for state in states {
        let forced = relabeled(ciphertext, state.current_epoch());
        match decrypt(std::slice::from_ref(state), &forced) {
            Ok(text) => panic!(
                "{what}: decrypted under epoch {}: {text:?}",
                state.current_epoch()
            ),
            Err(failures) => assert!(
                failures
                    .iter()
                    .all(|f| !matches!(f, MlsError::EpochNotFound)),
                "{what}: {failures:?}"
            ),
        }
    }
}

/// The chat ciphertexts on the wire from wiretap position `from` that `reader` (copies of
/// an honest member's states, taken before they were sent) decrypts, with their text;
/// one per text (resends of a chat message carry the same ciphertext).
fn chat_ciphertexts(sim: &Sim, from: usize, reader: &[MlsGroup]) -> Vec<(Vec<u8>, String)> {
    let mut chats: Vec<(Vec<u8>, String)> = Vec::new();
    for wire in application_traffic(sim, from) {
        if let Ok(Some(text)) = decrypt(reader, &wire.mls)
            && !chats.iter().any(|(_, t)| *t == text)
        {
            chats.push((wire.mls, text));
        }
    }
    chats
}

/// A snapshot of every MLS state a node holds, taken now (a reader for telling
/// ciphertexts apart later; it is never fed anything).
fn states_of(sim: &Sim, id: NodeId) -> Vec<MlsGroup> {
    sim.node(id).engine.byzantine_mls_states(&group())
}

/// The epoch of a node's view.
fn epoch(sim: &Sim, id: NodeId) -> Epoch {
    view(sim, id).epoch
}

/// The key age a node knows for `member`.
fn key_epoch(sim: &Sim, id: NodeId, member: Address) -> Option<Epoch> {
    view(sim, id)
        .key_ages
        .iter()
        .find(|age| age.member == member)
        .map(|age| age.epoch)
}

/// Node `id` asks to replace its keys; runs until every node of `nodes` agrees on a later
/// epoch in which its leaf is new.
fn rotate(sim: &mut Sim, nodes: &[NodeId], id: NodeId) {
    let member = address(sim, id);
    let before = epoch(sim, nodes[0]);
    sim.act(id, |e, now| e.rotate(&group(), now)).unwrap();
    let done = sim.run_until(60_000, |s| {
        converged(s, nodes, nodes.len())
            && nodes.iter().all(|id| {
                let now = epoch(s, *id);
                now > before && key_epoch(s, *id, member) == Some(now)
            })
    });
    assert!(
        done,
        "{} did not rotate: {}; key ages {:?}",
        member,
        describe(sim, nodes),
        nodes
            .iter()
            .map(|id| key_epoch(sim, *id, member))
            .collect::<Vec<_>>()
    );
}

/// Sends `text` from `id` and lets it travel.
fn say(sim: &mut Sim, id: NodeId, text: &str) {
    sim.act(id, |e, now| e.send_message(&group(), text, now))
        .unwrap();
    sim.run_for(2_000);
}

/// A group of two, and a third member whose state the test persists, admitted: every
/// node (the third last) and the third.
fn group_with_persisted(sim: &mut Sim) -> (Vec<NodeId>, Persisted) {
    let mut all = form_group(sim, 2, VotePolicy::Automatic);
    let persisted = Persisted::add(sim, VotePolicy::Automatic);
    sim.act(persisted.id, |e, now| e.request_join(group(), None, now))
        .unwrap();
    all.push(persisted.id);
    assert!(sim.run_until(60_000, |s| converged(s, &all, 3)));
    (all, persisted)
}

#[test]
fn a_thief_with_a_members_whole_state_reads_nothing_after_its_update() {
    let mut sim = Sim::new(noisy_net(141));
    let (mut all, victim) = group_with_persisted(&mut sim);
    let (steward, other) = (all[0], all[1]);

    // The theft: everything the victim would have on disk (MLS state, protocol snapshot).
    let mut disk = Disk::default();
    disk.apply(
        sim.node_mut(victim.id)
            .engine
            .take_storage_writes()
            .unwrap(),
    );
    let snapshot = sim.node(victim.id).engine.snapshot().unwrap();
    // The thief listens; it never votes (its votes would compete with the victim's).
    let mut thief = Engine::restore(
        victim.wallet.clone(),
        &victim.signer,
        config(VotePolicy::Manual),
        disk.load(),
        &snapshot,
        sim.now(),
    )
    .unwrap();
    let stolen_at = epoch(&sim, victim.id);
    sim.enable_wiretap();

    // A commit the thief can follow (a joiner's add, with the steward's UpdatePath), and
    // a message in the new epoch.
    let joiner = sim.add(engine(VotePolicy::Automatic));
    sim.act(joiner, |e, now| e.request_join(group(), None, now))
        .unwrap();
    all.push(joiner);
    assert!(sim.run_until(60_000, |s| converged(s, &all, 4)));
    assert!(epoch(&sim, other) > stolen_at);
    say(&mut sim, other, "before the update");

    // The victim replaces its leaf; the steward commits the update.
    rotate(&mut sim, &all, victim.id);
    let mut reader = states_of(&sim, other);
    reader.extend(states_of(&sim, steward));
    say(&mut sim, other, "after the update");
    say(&mut sim, steward, "after, from the steward");
    say(&mut sim, victim.id, "after, from the victim");
    say(&mut sim, joiner, "after, from the joiner");
    for id in &all {
        assert!(texts(&sim, *id).contains(&"after, from the joiner".to_owned()));
    }

    // The thief hears everything, in order, commits included, and tries every chat
    // ciphertext with all it holds just before it arrives.
    let mut read = Vec::new();
    let mut unread = Vec::new();
    let application: Vec<Wire> = application_traffic(&sim, 0);
    let mut sent = all_traffic(&sim, 0).into_iter();
    for wire in application {
        for envelope in sent.by_ref() {
            let done = envelope == wire.envelope;
            if !done {
                drop(thief.handle_message(&envelope, sim.now()));
            }
            if done {
                break;
            }
        }
        let states = thief.byzantine_mls_states(&group());
        let known = decrypt(&reader, &wire.mls).ok().flatten();
        match decrypt(&states, &wire.mls) {
            Ok(Some(text)) => read.push(text),
            Ok(None) => {}
            Err(_) => {
                if let Some(text) = known.clone() {
                    assert_undecryptable(&states, &wire.mls, &text);
                    unread.push(text);
                }
            }
        }
        drop(thief.handle_message(&wire.envelope, sim.now()));
        while thief.poll_transmit().is_some() {}
    }
    assert!(
        read.contains(&"before the update".to_owned()),
        "the stolen state read the group before the update: {read:?}"
    );
    for text in [
        "after the update",
        "after, from the steward",
        "after, from the victim",
        "after, from the joiner",
    ] {
        assert!(!read.contains(&text.to_owned()), "the thief read {text:?}");
        assert!(
            unread.contains(&text.to_owned()),
            "{text:?} not tried: {unread:?}"
        );
    }
}

#[test]
fn a_removed_member_holding_its_state_decrypts_nothing_after_its_removal() {
    let mut sim = Sim::new(noisy_net(142));
    let nodes = form_group(&mut sim, 4, VotePolicy::Automatic);
    let removed = nodes[3];
    let removed_address = address(&sim, removed);
    sim.enable_wiretap();
    // The removed member stays online: it hears its removal commit and all that follows.
    members_decide(&mut sim, &ChangeKind::Remove(removed_address), true);
    sim.act(nodes[1], |e, now| {
        e.propose_remove(&group(), removed_address, now)
    })
    .unwrap();
    let rest = nodes[..3].to_vec();
    assert!(sim.run_until(120_000, |s| converged(s, &rest, 3)));
    assert!(sim.node(removed).engine.group(&group()).is_none());
    let reader = states_of(&sim, nodes[0]);
    say(&mut sim, nodes[1], "after the removal");
    say(&mut sim, nodes[2], "after the removal, again");
    let messages = chat_ciphertexts(&sim, 0, &reader);
    assert_eq!(messages.len(), 2, "both messages seen on the wire");

    let states = sim.node(removed).engine.byzantine_mls_states(&group());
    for (ciphertext, text) in &messages {
        assert_undecryptable(&states, ciphertext, text);
    }
}

#[test]
fn a_joiner_decrypts_nothing_from_before_its_welcome() {
    let mut sim = Sim::new(noisy_net(143));
    let mut nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    sim.enable_wiretap();
    let reader = states_of(&sim, nodes[0]);
    say(&mut sim, nodes[1], "before you came");
    let messages = chat_ciphertexts(&sim, 0, &reader);
    assert_eq!(messages.len(), 1);

    let late = sim.add(engine(VotePolicy::Automatic));
    sim.act(late, |e, now| e.request_join(group(), None, now))
        .unwrap();
    nodes.push(late);
    assert!(sim.run_until(120_000, |s| converged(s, &nodes, 4)));
    say(&mut sim, nodes[1], "after you came");
    assert!(texts(&sim, late).contains(&"after you came".to_owned()));

    let states = states_of(&sim, late);
    assert_undecryptable(&states, &messages[0].0, "before you came");
}

/// A group of `n` whose steward (node 0) has gone silent, and member 1's update open at
/// every member, not committed.
fn update_waiting(seed: u64, n: usize) -> (Sim, Vec<NodeId>, Vec<u8>) {
    let mut sim = Sim::new(noisy_net(seed));
    let nodes = form_group(&mut sim, n, VotePolicy::Automatic);
    sim.act(nodes[0], |e, _| e.byzantine_set_silent(&group(), true))
        .unwrap();
    let updater = address(&sim, nodes[1]);
    sim.act(nodes[1], |e, now| e.rotate(&group(), now)).unwrap();
    assert!(sim.run_until(20_000, |s| nodes.iter().all(|id| {
        s.node(*id)
            .engine
            .byzantine_update_of(&group(), updater)
            .is_some()
    })));
    let update = sim
        .node(nodes[0])
        .engine
        .byzantine_update_of(&group(), updater)
        .unwrap();
    (sim, nodes, update)
}

/// The error kinds a node dropped messages for.
fn drop_kinds(sim: &Sim, id: NodeId) -> Vec<String> {
    sim.node(id).drops.iter().map(|(_, k)| k.clone()).collect()
}

#[test]
fn forged_updates_and_commits_are_refused_by_every_member_without_change() {
    let (mut sim, nodes, update) = update_waiting(144, 4);
    let g = group();
    let before: Vec<_> = nodes.iter().map(|id| view(&sim, *id)).collect();

    // Member 2 presents member 1's Update as its own: an update of another member's leaf.
    let drops_before: Vec<usize> = nodes.iter().map(|id| drop_kinds(&sim, *id).len()).collect();
    sim.act(nodes[2], |e, now| {
        e.byzantine_propose_update(&g, update.clone(), now)
    })
    .unwrap();
    // And member 3 one whose bytes were tampered with.
    let mut tampered = update.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x55;
    sim.act(nodes[3], |e, now| {
        e.byzantine_propose_update(&g, tampered.clone(), now)
    })
    .unwrap();
    sim.run_for(3_000);
    let refusals = ["invalid_proposal", "mls", "malformed", "crypto"];
    for (i, id) in nodes.iter().enumerate() {
        let new: Vec<String> = drop_kinds(&sim, *id)[drops_before[i]..].to_vec();
        let refused = new
            .iter()
            .filter(|k| refusals.contains(&k.as_str()))
            .count();
        let forgers_heard = [2, 3].iter().filter(|f| **f != i).count();
        assert_eq!(refused, forgers_heard, "{i}: {new:?}");
        if i != 2 {
            assert!(new.contains(&"invalid_proposal".to_owned()), "{i}: {new:?}");
        }
        let opened_updates = opened(&sim, *id)
            .into_iter()
            .filter(|(_, owner, c)| {
                matches!(c, ChangeKind::Update(_)) && *owner != address(&sim, nodes[1])
            })
            .count();
        assert_eq!(opened_updates, 0, "{i} opened a forged update");
    }

    // The steward commits member 1's Update while naming no vote for it: unvoted.
    let epochs: Vec<Epoch> = nodes.iter().map(|id| epoch(&sim, *id)).collect();
    sim.act(nodes[0], |e, now| {
        e.byzantine_commit_updates(&g, vec![update.clone()], now)
    })
    .unwrap();
    sim.run_for(3_000);
    for (i, id) in nodes.iter().enumerate().skip(1) {
        assert_eq!(epoch(&sim, *id), epochs[i], "{i} applied an unvoted update");
        assert!(rejected_commits(&sim, *id) > 0, "{i} did not reject it");
        assert_eq!(view(&sim, *id).authenticator, before[i].authenticator);
    }
}

#[test]
fn update_floods_are_rate_limited_to_one_per_member_and_epoch() {
    let (mut sim, nodes, update) = update_waiting(145, 3);
    let g = group();
    let updater = address(&sim, nodes[1]);
    // Asking again changes nothing: one update is wanted.
    sim.act(nodes[1], |e, now| e.rotate(&g, now)).unwrap();
    // Sending a second one anyway is refused by every member.
    let drops_before = drop_kinds(&sim, nodes[2]).len();
    for _ in 0..5 {
        sim.act(nodes[1], |e, now| {
            e.byzantine_propose_update(&g, update.clone(), now)
        })
        .unwrap();
        // Proposals made in the same second would be one and the same.
        sim.run_for(1_000);
    }
    sim.run_for(3_000);
    let new = drop_kinds(&sim, nodes[2])[drops_before..].to_vec();
    assert_eq!(
        new.iter().filter(|k| *k == "rate_limited").count(),
        5,
        "{new:?}"
    );
    for id in &nodes {
        let updates = opened(&sim, *id)
            .into_iter()
            .filter(|(_, _, c)| *c == ChangeKind::Update(updater))
            .count();
        assert_eq!(updates, 1, "one update open at {}", id.0);
    }
}

/// Parameters whose members rotate after `secs` or after `messages` chat messages.
fn rotating(secs: u32, messages: u32) -> GroupParams {
    GroupParams {
        rotation: RotationRule {
            after_secs: secs,
            after_messages: messages,
        },
        ..params()
    }
}

#[test]
fn members_rotate_after_their_share_of_messages_and_after_a_while() {
    let mut sim = Sim::new(noisy_net(146));
    let nodes = form_group_with(&mut sim, 3, VotePolicy::Automatic, rotating(600, 3));
    let chatty = address(&sim, nodes[1]);
    let start = epoch(&sim, nodes[0]);
    for text in ["one", "two", "three"] {
        say(&mut sim, nodes[1], text);
    }
    // The third message asked for an update; it is committed.
    assert!(sim.run_until(60_000, |s| {
        converged(s, &nodes, 3)
            && nodes
                .iter()
                .all(|id| key_epoch(s, *id, chatty).is_some_and(|e| e > start))
    }));

    // Ten minutes on, every member has replaced its leaf since.
    let waited_from = sim.now();
    sim.run_for(700_000);
    for id in &nodes {
        for age in view(&sim, *id).key_ages {
            assert!(age.at.is_some_and(|at| at >= waited_from), "{age:?}");
        }
    }
    for member in nodes.iter().map(|id| address(&sim, *id)) {
        let seen: Vec<Option<Epoch>> = nodes
            .iter()
            .map(|id| key_epoch(&sim, *id, member))
            .collect();
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    }
}

#[test]
fn a_member_waking_from_a_long_sleep_rotates_at_once() {
    let mut sim = Sim::new(noisy_net(147));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let sleeper = nodes[2];
    let me = address(&sim, sleeper);
    // Its clock jumps two days (the group's rule: a day).
    let woke = sim
        .act(sleeper, |e, now| {
            let later = now.plus_ms(2 * 24 * 3600 * 1000);
            e.handle_timeout(later);
            Ok::<Timestamp, EngineError>(later)
        })
        .unwrap();
    assert!(woke > sim.now());
    assert!(
        opened(&sim, sleeper)
            .iter()
            .any(|(_, owner, c)| *owner == me && *c == ChangeKind::Update(me)),
        "no update asked for on waking"
    );
}

#[test]
fn key_ages_show_who_replaced_its_leaf_and_when() {
    let mut sim = Sim::new(noisy_net(148));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let member = address(&sim, nodes[2]);
    let before = key_epoch(&sim, nodes[0], member).unwrap();
    rotate(&mut sim, &nodes, nodes[2]);
    for id in &nodes {
        let view = view(&sim, *id);
        assert_eq!(view.key_ages.len(), 3);
        let age = view.key_ages.iter().find(|a| a.member == member).unwrap();
        assert!(age.epoch > before);
        assert!(age.at.is_some());
    }
}

#[test]
fn a_member_cannot_decrypt_again_what_it_read_epochs_ago() {
    let mut sim = Sim::new(noisy_net(149));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    let (reader, sender) = (nodes[0], nodes[1]);
    sim.enable_wiretap();
    let snapshot = states_of(&sim, nodes[2]);
    let sent_in = epoch(&sim, reader);
    say(&mut sim, sender, "read once");
    assert!(texts(&sim, reader).contains(&"read once".to_owned()));
    let messages = chat_ciphertexts(&sim, 0, &snapshot);
    assert_eq!(messages.len(), 1);
    // Two epochs on (two updates committed), the reader still keeps that epoch's state
    // (its history, for competing commits) but not the message key it used.
    for id in [nodes[1], nodes[2]] {
        rotate(&mut sim, &nodes, id);
    }
    assert!(epoch(&sim, reader).0 >= sent_in.0 + 2);
    let states = states_of(&sim, reader);
    assert!(
        states.iter().any(|s| s.current_epoch() == sent_in.0),
        "the reader keeps no state of the message's epoch"
    );
    let failures = decrypt(&states, &messages[0].0).expect_err("decrypted again");
    assert!(
        failures.iter().any(|f| !matches!(
            f,
            MlsError::EpochNotFound | MlsError::CantProcessMessageFromSelf
        )),
        "only epoch-number failures: {failures:?}"
    );
}

/// The steward of a group of four sends the commit `forge` makes (an UpdatePath alone,
/// unvoted): every other member refuses it without change, and offered again directly,
/// the refusal is MLS's and says `refusal`.
fn assert_forged_path_refused(
    seed: u64,
    forge: impl FnOnce(&mut Engine, Timestamp) -> Result<(), EngineError>,
    refusal: &str,
) {
    let mut sim = Sim::new(noisy_net(seed));
    let nodes = form_group(&mut sim, 4, VotePolicy::Automatic);
    let before: Vec<_> = nodes.iter().map(|id| view(&sim, *id)).collect();
    let drops_before: Vec<usize> = nodes.iter().map(|id| drop_kinds(&sim, *id).len()).collect();
    sim.enable_wiretap();
    sim.act(nodes[0], forge).unwrap();
    let forged = sim.wiretap[0].1.payload.clone();
    sim.run_for(3_000);
    // Offered again, directly (an unknown protobuf field appended, so that it is no
    // duplicate): the refusal is the path's.
    let mut again = forged;
    again.extend([0x98, 0x06, 0x01]);
    let error = sim.inject(nodes[1], &again).unwrap_err();
    assert!(error.to_string().contains(refusal), "{error}");
    for (i, id) in nodes.iter().enumerate().skip(1) {
        let after = view(&sim, *id);
        assert_eq!(after.epoch, before[i].epoch, "{i} applied the forged path");
        assert_eq!(after.authenticator, before[i].authenticator);
        assert_eq!(after.members, before[i].members);
        let new = drop_kinds(&sim, *id)[drops_before[i]..].to_vec();
        assert!(new.iter().any(|k| k == "mls"), "{i}: {new:?}");
    }
}

#[test]
fn an_update_path_taking_another_identity_is_refused_by_every_member() {
    let outsider = demls_identity::Wallet::generate();
    assert_forged_path_refused(
        150,
        |e, now| e.byzantine_commit_path_as(&group(), &outsider, now),
        "not a valid successor",
    );
}

#[test]
fn an_update_path_with_a_bad_signature_is_refused_by_every_member() {
    // The new leaf names the committer's own identity and key, signed with another key.
    assert_forged_path_refused(
        155,
        |e, now| e.byzantine_commit_path_missigned(&group(), now),
        "invalid signature",
    );
}

#[test]
fn a_stewards_own_update_is_its_commits_update_path() {
    let mut sim = Sim::new(noisy_net(151));
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    rotate(&mut sim, &nodes, nodes[0]);
    for id in &nodes {
        assert_eq!(rejected_commits(&sim, *id), 0);
        assert!(violations(&sim, *id).is_empty());
    }
}

#[test]
fn in_a_small_consensus_group_a_members_update_needs_no_stewards_vote() {
    let mut sim = Sim::new(noisy_net(152));
    let nodes = form_group_with(
        &mut sim,
        5,
        VotePolicy::Automatic,
        multi(demls_engine::StewardMode::Small, 3, 3),
    );
    let stewards = view(&sim, nodes[0]).stewards;
    let member = nodes
        .iter()
        .copied()
        .find(|id| !stewards.contains(&address(&sim, *id)))
        .expect("a member that is no steward");
    rotate(&mut sim, &nodes, member);
    for id in &nodes {
        assert!(violations(&sim, *id).is_empty());
    }
}

#[test]
fn key_ages_survive_a_restart_and_an_update_lost_in_one_ends_in_a_re_add() {
    let mut sim = Sim::new(noisy_net(153));
    let (nodes, member) = group_with_persisted(&mut sim);
    rotate(&mut sim, &nodes, member.id);
    let ages = view(&sim, member.id).key_ages;
    let mut disk = Disk::default();
    member.restart(&mut sim, &mut disk, VotePolicy::Automatic);
    assert_eq!(view(&sim, member.id).key_ages, ages);

    // Its next update is approved while the steward is silent; the member restarts, and
    // the steward, back, commits that update.
    sim.act(nodes[0], |e, _| e.byzantine_set_silent(&group(), true))
        .unwrap();
    sim.act(member.id, |e, now| e.rotate(&group(), now))
        .unwrap();
    sim.run_for(2_000);
    sim.act(nodes[0], |e, _| e.byzantine_set_silent(&group(), false))
        .unwrap();
    member.restart(&mut sim, &mut disk, VotePolicy::Automatic);
    let me = address(&sim, member.id);
    let before = epoch(&sim, nodes[0]);
    assert!(
        sim.run_until(300_000, |s| converged(s, &nodes, 3)
            && nodes
                .iter()
                .all(|id| key_epoch(s, *id, me).is_some_and(|e| e > before))),
        "{}",
        describe(&sim, &nodes)
    );
    // It could not follow the commit of the update it sent before the restart (the
    // proposal was in the copy of the state it lost): it was added again, with a new leaf.
    let rejoined = sim
        .node(member.id)
        .events
        .iter()
        .filter(|(_, e)| matches!(e, demls_engine::Event::Rejoining { .. }))
        .count();
    assert_eq!(rejoined, 1);
}

#[test]
fn eight_members_rotating_every_minute_on_a_lossy_network_stay_together_and_lose_no_message() {
    let mut sim = Sim::new(noisy_net(154));
    let nodes = form_group_with(&mut sim, 8, VotePolicy::Automatic, rotating(60, 1000));
    sim.set_faults(0.1, 0.1);
    let start = sim.now();
    for round in 0..20 {
        let id = nodes[round % nodes.len()];
        sim.act(id, |e, now| {
            e.send_message(&group(), &format!("round {round}"), now)
        })
        .unwrap();
        sim.run_for(15_000);
    }
    sim.set_faults(0.0, 0.0);
    assert!(
        sim.run_until(120_000, |s| converged(s, &nodes, 8)),
        "{}",
        describe(&sim, &nodes)
    );
    // Time for the chat's repair (rotations go on meanwhile).
    sim.run_for(120_000);
    for id in &nodes {
        let view = view(&sim, *id);
        assert_eq!(view.key_ages.len(), 8);
        for age in &view.key_ages {
            assert!(age.at.is_some_and(|at| at > start), "{age:?} at {}", id.0);
        }
        let got = texts(&sim, *id);
        let missing: Vec<String> = (0..20)
            .map(|round| format!("round {round}"))
            .filter(|text| !got.contains(text))
            .collect();
        assert!(missing.is_empty(), "{} lacks {missing:?}", id.0);
    }
}
