//! Engine events and node records as JSON, for the API, the WebSocket stream and the event log.

use demls_engine::{ChangeKind, Event, GroupId, Violation};
use demls_storage::{ProposalRecord, StoredMessage};
use serde::Serialize;
use serde_json::{Value, json};

/// What a proposal changes.
pub fn change_json(change: &ChangeKind) -> Value {
    match change {
        ChangeKind::Add(a) => json!({"kind": "add", "member": a}),
        ChangeKind::Remove(a) => json!({"kind": "remove", "member": a}),
        ChangeKind::Leave(a) => json!({"kind": "leave", "member": a}),
        ChangeKind::Readd(a) => json!({"kind": "readd", "member": a}),
        ChangeKind::Election {
            retry_round,
            stewards,
        } => json!({"kind": "election", "retry_round": retry_round, "stewards": stewards}),
        ChangeKind::Emergency {
            offender,
            violation,
        } => json!({"kind": "emergency", "offender": offender,
                    "violation": violation_label(*violation)}),
    }
}

/// The evidence kind of an emergency, as the API names it.
fn violation_label(violation: Violation) -> &'static str {
    match violation {
        Violation::BrokenCommit => "broken_commit",
        Violation::Equivocation => "equivocation",
        Violation::Inactivity => "inactivity",
        Violation::Censorship => "censorship",
        Violation::Deadlock => "deadlock",
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

/// An engine event as `{"type": ..., ...}` with the group it concerns. `Subscribe`,
/// `Unsubscribe` and chat messages are handled by the runtime and never reach here; variants
/// newer than this node are described by their debug form.
pub fn event_json(event: &Event) -> (Option<GroupId>, Value) {
    match event {
        Event::GroupCreated { group } => (
            Some(group.clone()),
            json!({"type": "group_created", "group": group.as_str()}),
        ),
        Event::AnnouncementSeen {
            group,
            steward,
            epoch,
        } => (
            Some(group.clone()),
            json!({"type": "announcement_seen", "group": group.as_str(), "steward": steward, "epoch": epoch.0}),
        ),
        Event::JoinRequestSent { group, steward } => (
            Some(group.clone()),
            json!({"type": "join_request_sent", "group": group.as_str(), "steward": steward}),
        ),
        Event::JoinRequestAccepted { group, joiner } => (
            Some(group.clone()),
            json!({"type": "join_request_accepted", "group": group.as_str(), "joiner": joiner}),
        ),
        Event::Joined {
            group,
            epoch,
            members,
        } => (
            Some(group.clone()),
            json!({"type": "joined", "group": group.as_str(), "epoch": epoch.0, "members": members}),
        ),
        Event::ProposalOpened {
            group,
            proposal,
            owner,
            change,
            deadline,
        } => (
            Some(group.clone()),
            json!({"type": "proposal_opened", "group": group.as_str(), "proposal": proposal.to_string(),
                   "owner": owner, "change": change_json(change), "deadline": deadline.0}),
        ),
        Event::VoteRecorded {
            group,
            proposal,
            voter,
            yes,
        } => (
            Some(group.clone()),
            json!({"type": "vote_recorded", "group": group.as_str(), "proposal": proposal.to_string(),
                   "voter": voter, "yes": yes}),
        ),
        Event::ProposalDecided {
            group,
            proposal,
            change,
            approved,
        } => (
            Some(group.clone()),
            json!({"type": "proposal_decided", "group": group.as_str(), "proposal": proposal.to_string(),
                   "change": change_json(change), "approved": approved}),
        ),
        Event::EpochChanged {
            group,
            epoch,
            committer,
            added,
            removed,
            members,
            authenticator,
        } => (
            Some(group.clone()),
            json!({"type": "epoch_changed", "group": group.as_str(), "epoch": epoch.0,
                   "committer": committer, "added": added, "removed": removed, "members": members,
                   "authenticator": hex::encode(authenticator)}),
        ),
        Event::CommitRejected {
            group,
            committer,
            reason,
        } => (
            Some(group.clone()),
            json!({"type": "commit_rejected", "group": group.as_str(), "committer": committer, "reason": reason}),
        ),
        Event::AdmissionCheck {
            group,
            subject,
            policy,
        } => (
            Some(group.clone()),
            json!({"type": "admission_check", "group": group.as_str(), "subject": subject,
                   "policy": policy.to_string()}),
        ),
        Event::JoinRefused {
            group,
            steward,
            reason,
        } => (
            Some(group.clone()),
            json!({"type": "join_refused", "group": group.as_str(), "steward": steward,
                   "reason": printable_reason(reason)}),
        ),
        Event::Removed {
            group, epoch, by, ..
        } => (
            Some(group.clone()),
            json!({"type": "removed", "group": group.as_str(), "epoch": epoch.0, "by": by}),
        ),
        other => (
            None,
            json!({"type": "engine", "detail": format!("{other:?}")}),
        ),
    }
}

/// A chat message as the API shows it.
#[derive(Serialize, Debug, Clone)]
pub struct MessageView {
    /// Position in this node's history.
    pub seq: u64,
    /// The group.
    pub group: String,
    /// The message id (hex).
    pub id: String,
    /// The author.
    pub sender: String,
    /// The text.
    pub text: String,
    /// The author's clock when sending (Unix ms).
    pub sent_at: u64,
    /// The epoch it was encrypted in.
    pub epoch: u64,
    /// When this node stored it (Unix ms).
    pub received_at: u64,
    /// `own` or `incoming`.
    pub direction: &'static str,
    /// `queued`, `sent` or `received`.
    pub delivery: &'static str,
}

impl From<&StoredMessage> for MessageView {
    fn from(m: &StoredMessage) -> Self {
        Self {
            seq: m.seq,
            group: m.message.group.to_string(),
            id: hex::encode(&m.message.id),
            sender: m.message.sender.to_string(),
            text: m.message.text.clone(),
            sent_at: m.message.sent_at.0,
            epoch: m.message.epoch.0,
            received_at: m.message.received_at.0,
            direction: if m.message.own { "own" } else { "incoming" },
            delivery: m.delivery.as_str(),
        }
    }
}

/// A proposal with its tally, as the API shows it.
#[derive(Serialize, Debug, Clone)]
pub struct ProposalView {
    /// The proposal id (`0x` and 8 hex digits).
    pub id: String,
    /// The group.
    pub group: String,
    /// The epoch it was opened in.
    pub epoch: u64,
    /// Who opened it.
    pub owner: String,
    /// What it changes.
    pub change: Value,
    /// When this node saw it opened (Unix ms).
    pub opened_at: u64,
    /// When silent voters are counted (Unix ms).
    pub deadline: u64,
    /// `open`, `approved`, `rejected` or `closed`.
    pub state: &'static str,
    /// When it was decided here (Unix ms).
    pub decided_at: Option<u64>,
    /// The epoch whose commit applied it.
    pub committed_epoch: Option<u64>,
    /// Votes received.
    pub votes: Vec<VoteView>,
    /// Counts.
    pub tally: Tally,
}

/// One vote.
#[derive(Serialize, Debug, Clone)]
pub struct VoteView {
    /// The voter.
    pub voter: String,
    /// YES or NO.
    pub yes: bool,
}

/// A proposal's counts.
#[derive(Serialize, Debug, Clone)]
pub struct Tally {
    /// YES votes received.
    pub yes: usize,
    /// NO votes received.
    pub no: usize,
    /// Members expected to vote (known while the proposal's epoch is current).
    pub voters: Option<usize>,
}

impl ProposalView {
    /// The view of `record`; `voters` is the member count if its epoch is current.
    pub fn new(record: &ProposalRecord, voters: Option<usize>) -> Self {
        let yes = record.votes.iter().filter(|(_, y)| *y).count();
        Self {
            id: record.id.to_string(),
            group: record.group.to_string(),
            epoch: record.epoch.0,
            owner: record.owner.to_string(),
            change: serde_json::from_str(&record.change).unwrap_or(Value::Null),
            opened_at: record.opened_at.0,
            deadline: record.deadline.0,
            state: record.state.as_str(),
            decided_at: record.decided_at.map(|t| t.0),
            committed_epoch: record.committed_epoch.map(|e| e.0),
            votes: record
                .votes
                .iter()
                .map(|(voter, yes)| VoteView {
                    voter: voter.to_string(),
                    yes: *yes,
                })
                .collect(),
            tally: Tally {
                yes,
                no: record.votes.len() - yes,
                voters,
            },
        }
    }
}

/// The node, as the API shows it.
#[derive(Serialize, Debug, Clone)]
pub struct NodeInfo {
    /// This node's Ethereum address.
    pub address: String,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Where it listens (multiaddrs ending in `/p2p/<peer id>`).
    pub listen_addrs: Vec<String>,
    /// The Waku pubsub topic it relays on.
    pub pubsub_topic: String,
    /// Connected peers.
    pub peers: Vec<String>,
    /// `automatic` or `manual`.
    pub vote_policy: &'static str,
    /// The demls version.
    pub version: &'static str,
}

/// One group in the list.
#[derive(Serialize, Debug, Clone)]
pub struct GroupSummary {
    /// The group's name.
    pub id: String,
    /// `member`, `joining`, or `refused` (a steward refused this node's join request).
    pub state: &'static str,
    /// Current epoch (members only).
    pub epoch: Option<u64>,
    /// Member count (members only).
    pub members: Option<usize>,
    /// Whether this node is a steward.
    pub is_steward: bool,
    /// Who may join, in words (members only).
    pub admission: Option<String>,
    /// Who refused this node's join request and why (`refused` only).
    pub refusal: Option<String>,
}

impl GroupSummary {
    /// A group this node asked to join.
    pub fn joining(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: "joining",
            epoch: None,
            members: None,
            is_steward: false,
            admission: None,
            refusal: None,
        }
    }
}

/// A member and its roles.
#[derive(Serialize, Debug, Clone)]
pub struct MemberView {
    /// The member's address.
    pub address: String,
    /// `steward` and/or `member`.
    pub roles: Vec<&'static str>,
    /// Whether this is the node itself.
    pub is_self: bool,
}

/// How a group is doing.
#[derive(Serialize, Debug, Clone)]
pub struct HealthView {
    /// Current epoch.
    pub epoch: u64,
    /// Stewards, in rotation order.
    pub stewards: Vec<String>,
    /// Connected relay peers (all groups share the relay).
    pub peers: usize,
    /// Messages of this group the engine dropped, by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Open proposals.
    pub open_proposals: usize,
    /// When this node last saw the epoch change (Unix ms).
    pub last_commit_at: Option<u64>,
    /// Outgoing messages waiting for a peer.
    pub queued: usize,
}

/// One group in detail.
#[derive(Serialize, Debug, Clone)]
pub struct GroupDetail {
    /// The group's name.
    pub id: String,
    /// Current epoch.
    pub epoch: u64,
    /// Members with their roles.
    pub members: Vec<MemberView>,
    /// Stewards, in rotation order.
    pub stewards: Vec<String>,
    /// Whether this node is a steward.
    pub is_steward: bool,
    /// Who may join, in words: "open to anyone", "at least 1.5 ETH on chain 1 at the latest
    /// block", …
    pub admission: String,
    /// Whether joiners are checked against a chain.
    pub gated: bool,
    /// The MLS epoch authenticator (hex): equal on every member in the same epoch.
    pub authenticator: String,
    /// Health.
    pub health: HealthView,
}

#[cfg(test)]
mod tests {
    use demls_identity::Address;

    use super::*;

    #[test]
    fn refusal_reasons_are_printable_and_bounded() {
        assert_eq!(
            printable_reason("too poor\u{1b}[2J\n"),
            "too poor\u{fffd}[2J\u{fffd}"
        );
        assert_eq!(printable_reason(&"é".repeat(2000)).chars().count(), 512);
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
            violation: Violation::Censorship,
        });
        assert_eq!(
            emergency,
            json!({"kind": "emergency", "offender": steward, "violation": "censorship"})
        );
        let deadlock = change_json(&ChangeKind::Emergency {
            offender: None,
            violation: Violation::Deadlock,
        });
        assert_eq!(deadlock["offender"], Value::Null);
    }
}
