//! Engine events and node records as the API's types (`demls-api`), for the API, the
//! WebSocket stream and the event log.

use demls_api::{
    Change, ChatMessage, Delivery, Direction, EventBody, GroupState, GroupSummary, JoinRule,
    Message, Proposal, ProposalState, RemovalReason, Tally, Violation, Vote, VotePolicy,
};
use std::collections::BTreeMap;

use demls_engine::{ChangeKind, Event, GroupId, Request};
use demls_identity::Address;
use demls_storage::{ProposalRecord, StoredMessage};
use serde::Serialize;

/// What a proposal changes.
pub fn change(change: &ChangeKind) -> Change {
    let member = |a: &demls_identity::Address| a.to_string();
    match change {
        ChangeKind::Add(a) => Change::Add { member: member(a) },
        ChangeKind::Remove(a) => Change::Remove { member: member(a) },
        ChangeKind::Leave(a) => Change::Leave { member: member(a) },
        ChangeKind::Readd(a) => Change::Readd { member: member(a) },
        ChangeKind::Update(a) => Change::Update { member: member(a) },
        ChangeKind::Election {
            retry_round,
            stewards,
        } => Change::Election {
            retry_round: *retry_round,
            stewards: addresses(stewards),
        },
        ChangeKind::Emergency {
            offender,
            violation,
        } => Change::Emergency {
            offender: offender.as_ref().map(member),
            violation: violation_kind(*violation),
        },
    }
}

/// The evidence kind of an emergency.
fn violation_kind(violation: demls_engine::Violation) -> Violation {
    use demls_engine::Violation as V;
    match violation {
        V::BrokenCommit => Violation::BrokenCommit,
        V::Equivocation => Violation::Equivocation,
        V::Inactivity => Violation::Inactivity,
        V::Censorship => Violation::Censorship,
        V::Deadlock => Violation::Deadlock,
    }
}

fn addresses(list: &[demls_identity::Address]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// A vote policy as the API names it.
pub fn vote_policy(policy: demls_engine::VotePolicy) -> VotePolicy {
    match policy {
        demls_engine::VotePolicy::Automatic => VotePolicy::Automatic,
        demls_engine::VotePolicy::Manual => VotePolicy::Manual,
    }
}

/// JSON text of an API value, for the store. Serializing these types cannot fail (they hold
/// only strings, numbers and string-keyed maps).
pub fn to_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A group this node asked to join.
pub fn joining(id: &str) -> GroupSummary {
    GroupSummary {
        id: id.to_owned(),
        name: id.to_owned(),
        state: GroupState::Joining,
        epoch: None,
        members: None,
        is_steward: false,
        admission: None,
        refusal: None,
        removal: None,
    }
}

/// Why a member was removed, as the API names it.
pub fn removal_reason(reason: &demls_engine::Removal) -> RemovalReason {
    use demls_engine::Removal as R;
    match reason {
        R::Left => RemovalReason::Left,
        R::Voted {
            proposal,
            owner,
            yes,
            no,
            voters,
        } => RemovalReason::Voted {
            proposal: proposal.to_string(),
            owner: owner.to_string(),
            yes: *yes,
            no: *no,
            voters: *voters,
        },
        R::Emergency {
            proposal,
            violation,
        } => RemovalReason::Emergency {
            proposal: proposal.to_string(),
            violation: violation_kind(*violation),
        },
        R::Replaced => RemovalReason::Replaced,
    }
}

/// How a group admits people, as the API names it.
pub fn join_rule(rule: demls_engine::JoinRule) -> JoinRule {
    match rule {
        demls_engine::JoinRule::Invite => JoinRule::Invite,
        demls_engine::JoinRule::Open => JoinRule::Open,
    }
}

/// The most characters of a refusal reason shown.
const MAX_REASON_CHARS: usize = 512;

/// A refusal reason from a steward (another node) as it may be shown in a terminal: without
/// control characters (no escape sequences), at most [`MAX_REASON_CHARS`] characters.
pub fn printable_reason(reason: &str) -> String {
    reason
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// An engine event as the API shows it. `Subscribe`, `Unsubscribe` and chat messages are
/// handled by the runtime and never reach here; events the API does not name are described by
/// their debug form.
pub fn event_body(event: &Event) -> EventBody {
    match event {
        Event::GroupCreated { group } => EventBody::GroupCreated {
            group: group.to_string(),
        },
        Event::AnnouncementSeen {
            group,
            steward,
            epoch,
        } => EventBody::AnnouncementSeen {
            group: group.to_string(),
            steward: steward.to_string(),
            epoch: epoch.0,
        },
        Event::JoinRequestSent { group, steward } => EventBody::JoinRequestSent {
            group: group.to_string(),
            steward: steward.to_string(),
        },
        Event::JoinRequestAccepted { group, joiner } => EventBody::JoinRequestAccepted {
            group: group.to_string(),
            joiner: joiner.to_string(),
        },
        Event::Joined {
            group,
            epoch,
            members,
        } => EventBody::Joined {
            group: group.to_string(),
            epoch: epoch.0,
            members: addresses(members),
        },
        Event::ProposalOpened {
            group,
            proposal,
            owner,
            change: kind,
            deadline,
        } => EventBody::ProposalOpened {
            group: group.to_string(),
            proposal: proposal.to_string(),
            owner: owner.to_string(),
            change: change(kind),
            deadline: deadline.0,
        },
        Event::VoteRecorded {
            group,
            proposal,
            voter,
            yes,
        } => EventBody::VoteRecorded {
            group: group.to_string(),
            proposal: proposal.to_string(),
            voter: voter.to_string(),
            yes: *yes,
        },
        Event::ProposalDecided {
            group,
            proposal,
            change: kind,
            approved,
        } => EventBody::ProposalDecided {
            group: group.to_string(),
            proposal: proposal.to_string(),
            change: change(kind),
            approved: *approved,
        },
        Event::ProposalClosed {
            group,
            proposal,
            committed,
        } => EventBody::ProposalClosed {
            group: group.to_string(),
            proposal: proposal.to_string(),
            committed_epoch: committed.map(|e| e.0),
        },
        Event::EpochChanged {
            group,
            epoch,
            committer,
            added,
            removed,
            members,
            authenticator,
        } => EventBody::EpochChanged {
            group: group.to_string(),
            epoch: epoch.0,
            committer: committer.to_string(),
            added: addresses(added),
            removed: addresses(removed),
            members: addresses(members),
            authenticator: hex::encode(authenticator),
        },
        Event::CommitRejected {
            group,
            committer,
            reason,
        } => EventBody::CommitRejected {
            group: group.to_string(),
            committer: committer.to_string(),
            reason: reason.clone(),
        },
        Event::JoinRefused {
            group,
            steward,
            reason,
        } => EventBody::JoinRefused {
            group: group.to_string(),
            steward: steward.to_string(),
            reason: printable_reason(reason),
        },
        Event::Removed {
            group,
            epoch,
            by,
            reason,
        } => EventBody::Removed {
            group: group.to_string(),
            epoch: epoch.0,
            by: by.to_string(),
            reason: removal_reason(reason),
        },
        Event::Syncing { group, missing } => EventBody::Syncing {
            group: group.to_string(),
            missing: *missing,
        },
        Event::HistoryGap { group, lost } => EventBody::HistoryGap {
            group: group.to_string(),
            lost: *lost,
        },
        Event::NameChanged {
            group,
            member,
            name,
        } => EventBody::NameChanged {
            group: group.to_string(),
            member: member.to_string(),
            name: name.clone(),
        },
        Event::Invited {
            group,
            invitee,
            inviter,
            expires_at,
        } => EventBody::Invited {
            group: group.to_string(),
            invitee: invitee.to_string(),
            inviter: inviter.to_string(),
            expires_at: expires_at.0,
        },
        other => EventBody::Engine {
            detail: format!("{other:?}"),
        },
    }
}

/// A request from the engine as the event log shows it, if it shows it (listening to a
/// topic is not shown).
pub fn request_body(request: &Request) -> Option<EventBody> {
    match request {
        Request::AdmissionCheck {
            group,
            subject,
            policy,
        } => Some(EventBody::AdmissionCheck {
            group: group.to_string(),
            subject: subject.to_string(),
            policy: policy.to_string(),
        }),
        _ => None,
    }
}

/// The group an event concerns, for the event log.
pub fn event_group(body: &EventBody) -> Option<GroupId> {
    body.group().and_then(|name| GroupId::new(name).ok())
}

/// A stored chat message, without its place in the history; `names`: the group's
/// display names.
pub fn chat_message(m: &StoredMessage, names: &BTreeMap<Address, String>) -> ChatMessage {
    ChatMessage {
        group: m.message.group.to_string(),
        id: hex::encode(&m.message.id),
        sender: m.message.sender.to_string(),
        sender_name: names.get(&m.message.sender).cloned(),
        text: m.message.text.clone(),
        sent_at: m.message.sent_at.0,
        epoch: m.message.epoch.0,
        lamport: m.message.lamport,
        received_at: m.message.received_at.0,
        direction: if m.message.own {
            Direction::Own
        } else {
            Direction::Incoming
        },
        delivery: delivery(m.delivery),
    }
}

/// A stored chat message as the API shows it; `names`: the group's display names.
pub fn message(m: &StoredMessage, names: &BTreeMap<Address, String>) -> Message {
    Message {
        seq: m.seq,
        message: chat_message(m, names),
    }
}

/// How far a message got.
pub fn delivery(delivery: demls_storage::Delivery) -> Delivery {
    match delivery {
        demls_storage::Delivery::Queued => Delivery::Queued,
        demls_storage::Delivery::Sent => Delivery::Sent,
        demls_storage::Delivery::Received => Delivery::Received,
        demls_storage::Delivery::Delivered => Delivery::Delivered,
    }
}

fn proposal_state(state: demls_storage::ProposalState) -> ProposalState {
    match state {
        demls_storage::ProposalState::Open => ProposalState::Open,
        demls_storage::ProposalState::Approved => ProposalState::Approved,
        demls_storage::ProposalState::Rejected => ProposalState::Rejected,
        demls_storage::ProposalState::Closed => ProposalState::Closed,
    }
}

/// A proposal with its tally; `voters` is the member count if its epoch is current. `None`
/// if the stored change cannot be read (the store is damaged).
pub fn proposal(record: &ProposalRecord, voters: Option<usize>) -> Option<Proposal> {
    let change = serde_json::from_str(&record.change)
        .inspect_err(|error| {
            tracing::warn!(group = %record.group, id = %record.id, %error, "unreadable proposal change");
        })
        .ok()?;
    let yes = record.votes.iter().filter(|(_, y)| *y).count();
    Some(Proposal {
        id: record.id.to_string(),
        group: record.group.to_string(),
        epoch: record.epoch.0,
        owner: record.owner.to_string(),
        change,
        opened_at: record.opened_at.0,
        deadline: record.deadline.0,
        state: proposal_state(record.state),
        decided_at: record.decided_at.map(|t| t.0),
        committed_epoch: record.committed_epoch.map(|e| e.0),
        votes: record
            .votes
            .iter()
            .map(|(voter, yes)| Vote {
                voter: voter.to_string(),
                yes: *yes,
            })
            .collect(),
        tally: Tally {
            yes,
            no: record.votes.len() - yes,
            voters,
        },
    })
}

#[cfg(test)]
mod tests {
    use demls_identity::Address;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn refusal_reasons_are_printable_and_bounded() {
        assert_eq!(
            printable_reason("too poor\u{1b}[2J\n"),
            "too poor\u{fffd}[2J\u{fffd}"
        );
        assert_eq!(printable_reason(&"é".repeat(2000)).chars().count(), 512);
    }

    fn change_json(kind: &ChangeKind) -> Value {
        serde_json::to_value(change(kind)).unwrap()
    }

    #[test]
    fn elections_and_emergencies_are_named() {
        let steward = Address::from_slice(&[7; 20]).expect("20 bytes");
        let election = change_json(&ChangeKind::Election {
            retry_round: 1,
            stewards: vec![steward],
        });
        assert_eq!(
            election,
            json!({"kind": "election", "retry_round": 1, "stewards": [steward]})
        );
        let emergency = change_json(&ChangeKind::Emergency {
            offender: Some(steward),
            violation: demls_engine::Violation::Censorship,
        });
        assert_eq!(
            emergency,
            json!({"kind": "emergency", "offender": steward, "violation": "censorship"})
        );
        let deadlock = change_json(&ChangeKind::Emergency {
            offender: None,
            violation: demls_engine::Violation::Deadlock,
        });
        assert_eq!(deadlock["offender"], Value::Null);
        assert_eq!(
            change_json(&ChangeKind::Readd(steward)),
            json!({"kind": "readd", "member": steward})
        );
    }
}
