//! Engine events as sentences a person can follow.

use std::collections::HashMap;

use demls_engine::{ChangeKind, Event, Removal};
use demls_identity::Address;

/// Names people by a short label ("alice (0x1234…abcd)").
pub struct Names(HashMap<Address, String>);

impl Names {
    /// Labels for `addresses`, in order, from a fixed list of first names.
    pub fn new(addresses: &[Address]) -> Self {
        const FIRST: [&str; 16] = [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
            "mallory", "niaj", "olivia", "peggy", "rupert", "sybil",
        ];
        let names = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let first = FIRST
                    .get(i)
                    .map_or_else(|| format!("member{i}"), |s| (*s).to_owned());
                (*a, format!("{first} ({})", a.short()))
            })
            .collect();
        Self(names)
    }

    /// The label of `address`.
    pub fn of(&self, address: &Address) -> String {
        self.0
            .get(address)
            .cloned()
            .unwrap_or_else(|| address.short())
    }

    fn change(&self, change: &ChangeKind) -> String {
        match change {
            ChangeKind::Add(a) => format!("add {}", self.of(a)),
            ChangeKind::Remove(a) => format!("remove {}", self.of(a)),
            ChangeKind::Leave(a) => format!("{} leaves", self.of(a)),
            ChangeKind::Readd(a) => format!("re-add {} (it lost its state)", self.of(a)),
            ChangeKind::Update(a) => format!("{} replaces its keys", self.of(a)),
            ChangeKind::Election {
                retry_round,
                stewards,
            } => {
                let names: Vec<String> = stewards.iter().map(|s| self.of(s)).collect();
                format!(
                    "elect stewards [{}] (round {retry_round})",
                    names.join(", ")
                )
            }
            ChangeKind::Emergency {
                offender: Some(o),
                violation,
            } => {
                format!("emergency: remove {} for {violation:?}", self.of(o))
            }
            ChangeKind::Emergency {
                offender: None,
                violation,
            } => format!("emergency: {violation:?}"),
        }
    }

    /// One line about `event` seen by `who`, or nothing for events not worth telling.
    pub fn tell(&self, who: &Address, event: &Event) -> Option<String> {
        let me = self.of(who);
        Some(match event {
            Event::GroupCreated { group } => {
                format!("🏠 {me} creates group '{group}' and becomes its steward")
            }
            Event::JoinRequestSent { group, steward } => {
                format!(
                    "🔑 {me} seals a key package to steward {} to join '{group}'",
                    self.of(steward)
                )
            }
            Event::JoinRequestAccepted { joiner, .. } => {
                format!(
                    "📥 steward {me} verifies {}'s key package and opens a vote",
                    self.of(joiner)
                )
            }
            Event::ProposalOpened {
                owner,
                change,
                proposal,
                ..
            } if owner == who => {
                format!(
                    "🗳  {me} proposes: {} (proposal {:08x})",
                    self.change(change),
                    proposal.0
                )
            }
            Event::VoteRecorded {
                voter,
                yes,
                proposal,
                ..
            } if voter == who => {
                format!(
                    "   {me} votes {} on {:08x}",
                    if *yes { "YES" } else { "NO" },
                    proposal.0
                )
            }
            Event::ProposalDecided {
                change, approved, ..
            } => {
                format!(
                    "   {me} sees the vote end: {} → {}",
                    self.change(change),
                    if *approved { "YES" } else { "NO" }
                )
            }
            Event::EpochChanged {
                epoch,
                committer,
                members,
                added,
                removed,
                ..
            } if committer == who => {
                let mut what = Vec::new();
                what.extend(added.iter().map(|a| format!("+{}", self.of(a))));
                what.extend(removed.iter().map(|a| format!("-{}", self.of(a))));
                format!(
                    "✅ steward {me} commits epoch {epoch} ({}), {} members",
                    what.join(", "),
                    members.len()
                )
            }
            Event::Joined { epoch, .. } => format!("🎉 {me} joins at epoch {epoch}"),
            Event::Message { sender, text, .. } if sender == who => format!("💬 {me}: {text}"),
            Event::Removed { epoch, reason, .. } => {
                let why = match reason {
                    Removal::Left => "it left".to_owned(),
                    Removal::Voted { yes, voters, .. } => {
                        format!("voted out, YES {yes} of {voters}")
                    }
                    Removal::Emergency { violation, .. } => {
                        format!("removed by an emergency ({violation:?})")
                    }
                    Removal::Replaced => "replaced by a new key package".to_owned(),
                };
                format!("🚪 {me} is out of the group from epoch {epoch} ({why})")
            }
            Event::Invited {
                inviter, invitee, ..
            } if inviter == who => {
                format!("✉️  {me} invites {} (a YES signed ahead)", self.of(invitee))
            }
            Event::CommitRejected { reason, .. } => format!("⛔ {me} rejects a commit: {reason}"),
            _ => return None,
        })
    }
}
