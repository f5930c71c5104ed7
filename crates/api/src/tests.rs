//! The wire form of the types, and the generated TypeScript file.

use serde_json::json;

use super::*;

#[test]
fn the_generated_typescript_is_current() {
    if let Err(stale) = check_generated("web/src/api-types.ts", &typescript()) {
        panic!("{stale}");
    }
}

fn chat() -> ChatMessage {
    ChatMessage {
        group: "lab".into(),
        id: "00ff".into(),
        sender: "0xAb".into(),
        sender_name: None,
        text: "hi".into(),
        sent_at: 1,
        epoch: 2,
        lamport: 4,
        received_at: 3,
        direction: Direction::Own,
        delivery: Delivery::Queued,
    }
}

#[test]
fn events_are_one_flat_object_tagged_by_type() {
    let message = NodeEvent {
        seq: Some(7),
        at: 9,
        body: EventBody::Message(chat()),
    };
    let value = serde_json::to_value(&message).unwrap();
    assert_eq!(
        value,
        json!({"type": "message", "seq": 7, "at": 9, "group": "lab", "id": "00ff",
               "sender": "0xAb", "sender_name": null, "text": "hi", "sent_at": 1, "epoch": 2, "lamport": 4, "received_at": 3,
               "direction": "own", "delivery": "queued"})
    );
    assert_eq!(serde_json::from_value::<NodeEvent>(value).unwrap(), message);
    // The message event is a Message of the history.
    let in_history = serde_json::to_value(Message {
        seq: 7,
        message: chat(),
    })
    .unwrap();
    assert_eq!(
        serde_json::from_value::<Message>(serde_json::to_value(&message).unwrap())
            .unwrap()
            .message,
        chat()
    );
    assert_eq!(in_history["seq"], 7);

    let peer = NodeEvent {
        seq: None,
        at: 9,
        body: EventBody::PeerConnected {
            peer: "12D3".into(),
        },
    };
    assert_eq!(
        serde_json::to_value(&peer).unwrap(),
        json!({"type": "peer_connected", "peer": "12D3", "seq": null, "at": 9})
    );
    assert_eq!(peer.body.group(), None);
    assert_eq!(message.body.group(), Some("lab"));
}

#[test]
fn changes_and_rules_are_tagged_by_kind() {
    let change = Change::Emergency {
        offender: None,
        violation: Violation::Deadlock,
    };
    assert_eq!(
        serde_json::to_value(&change).unwrap(),
        json!({"kind": "emergency", "offender": null, "violation": "deadlock"})
    );
    let admission: Admission =
        serde_json::from_value(json!({"kind": "min_eth", "amount": "1.5", "block": 12})).unwrap();
    assert_eq!(
        admission,
        Admission {
            rule: AdmissionRule::MinEth {
                amount: "1.5".into()
            },
            block: Some(12),
            chain_id: None,
        }
    );
    let group: NewGroup = serde_json::from_value(json!({"name": "lab"})).unwrap();
    assert_eq!(group.mode, None);
    assert!(serde_json::from_value::<NewGroup>(json!({"name": "x", "mode": "huge"})).is_err());
}
