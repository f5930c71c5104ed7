//! Restoring an engine from persisted state (`Engine::restore`, `EngineSnapshot::decode_checked`,
//! `MlsStore::restore_key_package`) when one piece of it is corrupt: the protocol snapshot,
//! the MLS group state, a retained epoch, a key package's private parts, the group id, or the
//! group's journaled traffic (replayed on its state), or a vote journaled after the snapshot
//! (`EngineSnapshot::with_journal`).
//!
//! The fixture's real states are the seeds; a restored engine must then work or fail with an
//! error (views, snapshot, timers, sending, receiving a real message), never panic.
//!
//! A corrupt MLS group state or epoch record is only restored, not used: mls-rs's tree-index
//! arithmetic (generic, so compiled with demls's overflow checks) overflows on a secret tree
//! it never wrote, which panics in a debug-asserted build. A node cannot meet such a state:
//! its store seals every MLS blob with AEAD, and the `storage` target fuzzes corrupt blobs.

use demls_engine::{Engine, EngineSnapshot, GroupTraffic};
use prost::Message;

use crate::fixture::{self, NodeState};

/// What the second byte replaces.
pub const PARTS: [&str; 7] = [
    "snapshot",
    "group",
    "epoch",
    "key_package",
    "group_id",
    "traffic",
    "vote_journal",
];

/// The state of node `index` (S, A, B, J, then the pending joiner).
pub fn node(index: u8) -> NodeState {
    let fx = fixture::get();
    match usize::from(index) % 5 {
        4 => fx.pending_joiner.clone().expect("fixture joiner"),
        i => fx.members[i].clone(),
    }
}

/// `[node, part, blob...]`.
pub fn run(data: &[u8]) {
    let [node_index, part, blob @ ..] = data else {
        return;
    };
    let _ = EngineSnapshot::decode_checked(blob);
    let mut state = node(*node_index);
    let part = usize::from(*part) % PARTS.len();
    match part {
        0 => state.snapshot = blob.to_vec(),
        1 => match state.groups.first_mut() {
            Some(g) => g.snapshot = blob.to_vec(),
            None => return,
        },
        2 => match state.groups.first_mut().and_then(|g| g.epochs.last_mut()) {
            Some(e) => e.data = blob.to_vec(),
            None => return,
        },
        3 => match state.key_packages.first_mut() {
            Some(k) => k.data = blob.to_vec(),
            None => return,
        },
        4 => match state.groups.first_mut() {
            Some(g) => g.group_id = blob.to_vec(),
            None => return,
        },
        6 => match EngineSnapshot::with_journal(&state.snapshot, &[blob]) {
            Ok(merged) => state.snapshot = merged,
            Err(_) => return,
        },
        _ => match state.groups.first_mut() {
            Some(g) => g.traffic.push(GroupTraffic::decode(blob).unwrap_or(GroupTraffic {
                sent: 0,
                received: vec![blob.to_vec()],
            })),
            None => return,
        },
    }
    let Some(store) = state.store() else {
        return;
    };
    let fx = fixture::get();
    let now = fx.now();
    let Ok(mut engine) = Engine::restore(
        fixture::wallet(state.wallet as usize),
        &state.signer(),
        fixture::config(),
        store,
        &state.snapshot,
        now,
    ) else {
        return;
    };
    if !matches!(PARTS[part], "group" | "epoch") {
        exercise(&mut engine, fx);
    }
}

/// Uses a restored engine a little, as a node would right after a restart.
fn exercise(engine: &mut Engine, fx: &fixture::Fixture) {
    let group = fixture::group();
    let now = fx.now();
    let _ = engine.group(&group);
    let _ = engine.groups().count();
    let _ = engine.pending_joins().count();
    let _ = engine.snapshot();
    let _ = engine.poll_timeout();
    engine.handle_timeout(now.plus_ms(1_500));
    fixture::drain(engine);
    let _ = engine.send_message(&group, "after restart", now.plus_ms(1_600));
    fixture::drain(engine);
    // The last few messages of the group, and the Welcome if this is the pending joiner.
    let tail = fx.messages.len().saturating_sub(6);
    for message in &fx.messages[tail..] {
        let _ = engine.handle_message(&message.payload, now.plus_ms(1_700));
        fixture::drain(engine);
    }
    for (captured, envelope) in fx.envelopes() {
        if matches!(
            envelope.body,
            Some(demls_engine::wire::envelope::Body::Welcome(_))
        ) {
            let _ = engine.handle_message(&captured.payload, now.plus_ms(1_800));
            fixture::drain(engine);
        }
    }
    let _ = engine.take_storage_writes();
}
