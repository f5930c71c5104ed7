//! Protocol messages: `Engine::handle_message` on engines that are members of the fixture
//! group (the steward and a plain member) and on a pending joiner.
//!
//! Every delivery goes through [`World::deliver`], which checks the engine's promise that a
//! refused input changes neither its group view nor its pending joins.

use demls_consensus::signing;
use demls_consensus::wire::{Proposal, Vote};
use demls_engine::wire::{
    AppMessage, Emergency, Envelope, GroupChange, StewardElection, WIRE_VERSION, app_message,
    envelope,
};
use prost::Message;

use crate::fixture::{self, A, B, GROUP, J, K, S};
use crate::sign;
use crate::world::{Node, World};

/// The three kinds of receiver.
const RECEIVERS: [Node; 3] = [Node::Member(S), Node::Member(B), Node::Joiner];

/// `bytes` as the body of an MLS-message envelope of the fixture group.
pub fn wrap_mls(bytes: &[u8]) -> Vec<u8> {
    Envelope {
        version: WIRE_VERSION,
        group_id: GROUP.into(),
        body: Some(envelope::Body::MlsMessage(bytes.to_vec())),
    }
    .encode_to_vec()
}

/// Arbitrary bytes, as they come and as the body of an MLS-message envelope of the group.
pub fn bytes(data: &[u8]) {
    World::with(|w| {
        let wrapped = wrap_mls(data);
        for node in RECEIVERS {
            let _ = w.deliver(node, data);
            let _ = w.deliver(node, &wrapped);
        }
    });
}

/// Control byte of [`envelope`]: which receivers (bits 0–1: S, B, the joiner, or all three).
const TO_MASK: u8 = 0b11;
/// Sets version 1 and the fixture's group id.
pub const FIX_FRAME: u8 = 1 << 2;
/// Signs announcements, join requests and sync requests with the fixture key of the address
/// they name (or S / K / A when they name none of them).
pub const FIX_SIGN: u8 = 1 << 3;
/// Join requests: seals the `ciphertext` field, taken as the plaintext key package, to the
/// steward's HPKE key; announcements: ciphersuite 1 and the steward's real HPKE key.
pub const FIX_SEAL: u8 = 1 << 4;

/// A control byte, then an `Envelope`; the envelope's framing, signatures and sealing are
/// repaired as the control byte says, so that mutated bodies reach the checks behind them.
/// Bytes that are no envelope are delivered as they are.
pub fn envelope(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    World::with(|w| {
        let bytes = match Envelope::decode(rest) {
            Ok(mut envelope) => {
                if control & FIX_FRAME != 0 {
                    envelope.version = WIRE_VERSION;
                    envelope.group_id = GROUP.into();
                }
                if let Some(body) = envelope.body.as_mut() {
                    repair(body, control, w);
                }
                envelope.encode_to_vec()
            }
            Err(_) => rest.to_vec(),
        };
        let receivers: &[Node] = match control & TO_MASK {
            0 => &RECEIVERS[..1],
            1 => &RECEIVERS[1..2],
            2 => &RECEIVERS[2..],
            _ => &RECEIVERS,
        };
        for node in receivers {
            let _ = w.deliver(*node, &bytes);
        }
    });
}

fn repair(body: &mut envelope::Body, control: u8, w: &World) {
    let fx = w.fx;
    match body {
        envelope::Body::Announcement(a) => {
            if control & FIX_SEAL != 0 {
                a.cipher_suite = 1;
                a.steward_hpke_key = fx.steward_hpke_key();
            }
            if control & FIX_SIGN != 0 {
                let wallet = sign::wallet_of(&a.steward).unwrap_or_else(|| fixture::wallet(S));
                sign::announcement(a, &wallet);
            }
        }
        envelope::Body::JoinRequest(r) => {
            let joiner = sign::wallet_of(&r.joiner).unwrap_or_else(|| fixture::wallet(K));
            if control & FIX_SEAL != 0 {
                let plaintext = std::mem::take(&mut r.ciphertext);
                sign::seal_join(
                    r,
                    &fx.steward_hpke_key(),
                    fixture::wallet(S).address(),
                    joiner.address(),
                    &plaintext,
                );
            }
            if control & FIX_SIGN != 0 {
                sign::join_request(r, &joiner);
            }
        }
        envelope::Body::SyncRequest(q) => {
            if control & FIX_SIGN != 0 {
                let wallet = sign::wallet_of(&q.requester).unwrap_or_else(|| fixture::wallet(A));
                sign::sync_request(q, &wallet);
            }
        }
        // Welcomes and MLS messages carry no signature of ours; bodies added later are fuzzed
        // as they come.
        _ => {}
    }
}

/// Control byte of [`app`]: the sender (bits 0–1: A, B, S, J).
const SENDERS: [usize; 4] = [A, B, S, J];
/// Proposals: owner = sender, the group's voter count, a content-derived id, and every
/// embedded vote re-signed by the fixture key of its owner (votes: re-signed likewise).
pub const FIX_IDENTITY: u8 = 1 << 2;
/// Proposals: created now, deadline in 20 s.
pub const FIX_TIMES: u8 = 1 << 3;
/// Proposals: the payload's epoch is the group's.
pub const FIX_EPOCH: u8 = 1 << 4;
/// Proposals: the votes are replaced by the owner's own YES, as the engine sends them.
pub const FIX_OWNER_VOTE: u8 = 1 << 5;

/// A control byte, then an `AppMessage` that a member sends (encrypted and framed by its
/// own engine, bypassing its checks) to every other member: chat, proposals (membership
/// changes with arbitrary key packages, elections, emergencies with arbitrary evidence) and
/// votes, repaired as the control byte says.
pub fn app(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Ok(AppMessage {
        body: Some(mut body),
    }) = AppMessage::decode(rest)
    else {
        return;
    };
    World::with(|w| {
        let sender = SENDERS[usize::from(control & 0b11)];
        repair_app(&mut body, control, sender, w);
        let now = w.now();
        let engine = w.engine(Node::Member(sender));
        let sent = engine.byzantine_send_app(&fixture::group(), body, now);
        let transmits = fixture::drain(engine);
        if sent.is_err() {
            return;
        }
        for transmit in transmits {
            for receiver in [S, A, B, J] {
                if receiver != sender {
                    let _ = w.deliver(Node::Member(receiver), &transmit.payload);
                }
            }
        }
    });
}

fn repair_app(body: &mut app_message::Body, control: u8, sender: usize, w: &World) {
    #[allow(unreachable_patterns)] // bodies added later are fuzzed as they come
    match body {
        app_message::Body::Chat(_) => {}
        app_message::Body::Vote(v) => {
            if control & FIX_IDENTITY != 0 {
                let wallet =
                    sign::wallet_of(&v.vote_owner).unwrap_or_else(|| fixture::wallet(sender));
                sign::vote(v, &wallet);
            }
        }
        app_message::Body::Proposal(p) => repair_proposal(p, control, sender, w),
        _ => {}
    }
}

/// Repairs a proposal as [`app`]'s control byte says.
pub fn repair_proposal(p: &mut Proposal, control: u8, sender: usize, w: &World) {
    if control & FIX_TIMES != 0 {
        let now = w.now().0 / 1000;
        p.timestamp = now;
        p.expiration_timestamp = now + 20;
    }
    if control & FIX_EPOCH != 0 {
        set_epoch(p, w.epoch());
    }
    if control & FIX_IDENTITY != 0 {
        let owner = fixture::wallet(sender);
        p.proposal_owner = owner.address().as_bytes().to_vec();
        p.expected_voters_count = 4;
        p.proposal_id = signing::proposal_id(p).0;
        for v in &mut p.votes {
            v.proposal_id = p.proposal_id;
            if let Some(wallet) = sign::wallet_of(&v.vote_owner) {
                sign::vote(v, &wallet);
            }
        }
    }
    if control & FIX_OWNER_VOTE != 0 {
        let owner = fixture::wallet(sender);
        p.votes = vec![sign::owner_vote(p, &owner)];
    }
}

/// Sets the epoch of a proposal's payload, whatever kind it is.
pub fn set_epoch(p: &mut Proposal, epoch: u64) {
    p.payload = match p.name.as_str() {
        "demls/group-change/v1" => match GroupChange::decode(p.payload.as_slice()) {
            Ok(mut c) => {
                c.epoch = epoch;
                c.encode_to_vec()
            }
            Err(_) => return,
        },
        "demls/steward-election/v1" => match StewardElection::decode(p.payload.as_slice()) {
            Ok(mut c) => {
                c.epoch = epoch;
                c.encode_to_vec()
            }
            Err(_) => return,
        },
        "demls/emergency/v1" => match Emergency::decode(p.payload.as_slice()) {
            Ok(mut c) => {
                c.epoch = epoch;
                c.encode_to_vec()
            }
            Err(_) => return,
        },
        _ => return,
    };
}

/// Fills a vote in as `voter` would cast it on `p` (used for seeds).
pub fn cast(p: &Proposal, voter: usize, yes: bool, received_hash: Vec<u8>) -> Vote {
    let wallet = fixture::wallet(voter);
    let mut v = Vote {
        vote_id: signing::vote_id(demls_consensus::ProposalId(p.proposal_id), wallet.address()),
        vote_owner: Vec::new(),
        proposal_id: p.proposal_id,
        timestamp: p.timestamp,
        vote: yes,
        parent_hash: Vec::new(),
        received_hash,
        vote_hash: Vec::new(),
        signature: Vec::new(),
    };
    sign::vote(&mut v, &wallet);
    v
}
