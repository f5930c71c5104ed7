//! Membership with consent, as the node offers it: invitations and their tickets, join
//! requests waiting for the members (approve, deny), and where this node stands in groups it
//! is no longer, or not yet, a member of (refused, removed), kept across restarts.

use std::collections::BTreeMap;

use demls_api::{GroupState, GroupSummary, Invitation, PendingRequest, Proposal, Removal};
use demls_engine::{ChangeKind, GroupId};
use demls_identity::Address;
use demls_storage::{StorageError, Store};
use serde::{Deserialize, Serialize};

use super::core::Runtime;
use super::json::{self, printable_reason};
use super::{CommandError, group_id, now};
use crate::ticket::Ticket;

/// The setting that holds the groups this node stands outside of, as JSON.
const OUTSIDE: &str = "outside";
/// How long an invitation lasts unless told otherwise: a week.
pub const DEFAULT_INVITATION_SECS: u64 = 7 * 24 * 3600;
/// The longest invitation: a year.
pub const MAX_INVITATION_SECS: u64 = 365 * 24 * 3600;

/// Where this node stands in a group it is not a member of.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outside {
    /// A steward refused its request to join.
    Refused {
        /// The steward.
        steward: String,
        /// Why, printable.
        reason: String,
        /// When (Unix ms; 0 in records kept before it was).
        #[serde(default)]
        at: u64,
    },
    /// It was a member, and was removed (or left).
    Removed(Removal),
}

/// The groups this node stands outside of, as last saved.
pub fn load_outside(store: &Store) -> Result<BTreeMap<GroupId, Outside>, StorageError> {
    let Some(text) = store.setting(OUTSIDE)? else {
        return Ok(BTreeMap::new());
    };
    // A damaged record only loses what the views say of groups this node left.
    let saved: BTreeMap<String, Outside> = serde_json::from_str(&text)
        .inspect_err(|error| tracing::warn!(%error, "unreadable record of groups left"))
        .unwrap_or_default();
    Ok(saved
        .into_iter()
        .filter_map(|(group, outside)| Some((GroupId::new(&group).ok()?, outside)))
        .collect())
}

impl Outside {
    /// The group's summary for a node standing outside it.
    pub fn summary(&self, group: &GroupId) -> GroupSummary {
        match self {
            Self::Refused {
                steward, reason, ..
            } => GroupSummary {
                state: GroupState::Refused,
                refusal: Some(format!("refused by its steward {steward}: {reason}")),
                ..json::joining(group.as_str())
            },
            Self::Removed(removal) => GroupSummary {
                state: GroupState::Removed,
                removal: Some(removal.clone()),
                ..json::joining(group.as_str())
            },
        }
    }

    /// Why a command about the group cannot be run.
    pub fn error(&self, group: &GroupId) -> CommandError {
        match self {
            Self::Refused {
                steward, reason, ..
            } => CommandError::JoinRefused {
                group: group.to_string(),
                steward: steward.clone(),
                reason: reason.clone(),
            },
            Self::Removed(removal) => CommandError::Removed {
                group: group.to_string(),
                removal: Box::new(removal.clone()),
            },
        }
    }
}

impl Runtime {
    /// Records (and keeps across restarts) where this node stands outside `group`; `None`
    /// when it asks to join again or joins.
    pub(super) fn stand_outside(&mut self, group: &GroupId, outside: Option<Outside>) {
        let changed = match outside {
            Some(outside) => self.outside.insert(group.clone(), outside.clone()) != Some(outside),
            None => self.outside.remove(group).is_some(),
        };
        if !changed {
            return;
        }
        let saved: BTreeMap<String, &Outside> = self
            .outside
            .iter()
            .map(|(g, o)| (g.to_string(), o))
            .collect();
        if let Err(error) = self.store.put_setting(OUTSIDE, &json::to_text(&saved)) {
            tracing::error!(%error, "cannot keep where this node stands in its groups");
        }
    }

    /// A steward refused this node.
    pub(super) fn note_refused(&mut self, group: &GroupId, steward: Address, reason: &str) {
        let outside = Outside::Refused {
            steward: steward.to_string(),
            reason: printable_reason(reason),
            at: now().0,
        };
        self.stand_outside(group, Some(outside));
    }

    /// This node's person decides on adding or removing someone, ahead of the vote or
    /// during it (kept for the change's later votes).
    pub fn decide_change(
        &mut self,
        name: &str,
        change: ChangeKind,
        yes: bool,
    ) -> Result<(), CommandError> {
        let view = self.member_view(name)?;
        self.engine.decide(&view.id, change, yes, now())?;
        Ok(())
    }

    /// Invites `invitee` to a group for `ttl_secs`: the ticket to hand over.
    pub fn invite(
        &mut self,
        name: &str,
        invitee: Address,
        ttl_secs: u64,
    ) -> Result<Invitation, CommandError> {
        if ttl_secs == 0 || ttl_secs > MAX_INVITATION_SECS {
            return Err(CommandError::Invalid(format!(
                "an invitation lasts 1 second to {MAX_INVITATION_SECS} seconds"
            )));
        }
        let view = self.member_view(name)?;
        let now = now();
        let expires_at = now.plus_ms(ttl_secs.saturating_mul(1000));
        let invitation = self.engine.invite(&view.id, invitee, expires_at, now)?;
        let ticket = Ticket {
            group_id: view.id.to_string(),
            name: self.names.name_of(&view.id),
            invitation,
        };
        Ok(Invitation {
            ticket: ticket.to_text(),
            invitee: invitee.to_string(),
            expires_at: expires_at.0,
        })
    }

    /// Asks to join the group a ticket names, presenting its invitation.
    pub fn join_ticket(&mut self, text: &str) -> Result<GroupSummary, CommandError> {
        let ticket = Ticket::parse(text).map_err(|e| CommandError::Invalid(e.to_string()))?;
        let group = group_id(&ticket.group_id)?;
        self.ensure_not_joining(&group)?;
        if ticket.invitation.is_empty() {
            self.engine.request_join(group.clone(), None, now())?;
        } else {
            self.engine
                .request_join_invited(group.clone(), &ticket.invitation, now())?;
        }
        // Named only once the engine took the ticket: a refused (forged, foreign, expired)
        // one must leave nothing behind, not even a name that `create` would then find taken.
        self.names.name(&mut self.store, &group, &ticket.name)?;
        self.stand_outside(&group, None);
        Ok(self.joining(&group))
    }

    /// Refuses a second join of a group this node is already joining.
    pub(super) fn ensure_not_joining(&self, group: &GroupId) -> Result<(), CommandError> {
        if self.engine.pending_joins().any(|g| g == group) {
            return Err(CommandError::Joining(group.to_string()));
        }
        Ok(())
    }

    /// The join requests of a group waiting for the members, oldest first.
    pub fn requests(&self, name: &str) -> Result<Vec<PendingRequest>, CommandError> {
        let view = self.member_view(name)?;
        let voters = view.members.len();
        let invited_by = |joiner: &Address| {
            view.invitations
                .iter()
                .find(|(invitee, _, _)| invitee == joiner)
                .map(|(_, inviter, _)| inviter.to_string())
        };
        let me = self.address;
        Ok(self
            .tracker
            .open_adds(&view.id)
            .into_iter()
            .map(|(record, joiner)| {
                let votes = |yes: bool| {
                    record
                        .votes
                        .iter()
                        .filter(|(_, v)| *v == yes)
                        .map(|(a, _)| a.to_string())
                        .collect()
                };
                PendingRequest {
                    address: joiner.to_string(),
                    proposal: record.id.to_string(),
                    since: record.opened_at.0,
                    deadline: record.deadline.0,
                    invited_by: invited_by(&joiner),
                    yes: votes(true),
                    no: votes(false),
                    voters,
                    own_vote: record.votes.iter().find(|(a, _)| *a == me).map(|(_, v)| *v),
                }
            })
            .collect())
    }

    /// This node's person approves (or denies) the waiting request of `joiner`: a YES (NO)
    /// cast now and kept for the request's later votes. Returns its proposal as it stands.
    pub fn decide_request(
        &mut self,
        name: &str,
        joiner: Address,
        approve: bool,
    ) -> Result<Proposal, CommandError> {
        let view = self.member_view(name)?;
        let Some((record, _)) = self
            .tracker
            .open_adds(&view.id)
            .into_iter()
            .find(|(_, j)| *j == joiner)
        else {
            return Err(CommandError::NoSuchRequest {
                group: name.to_owned(),
                joiner: joiner.to_string(),
            });
        };
        self.engine
            .decide(&view.id, ChangeKind::Add(joiner), approve, now())?;
        self.persist()?;
        let voters = self.engine.group(&view.id).map(|v| v.members.len());
        self.tracker
            .get(&view.id, record.id)
            .and_then(|p| json::proposal(p, voters))
            .ok_or_else(|| CommandError::UnknownProposal(record.id.to_string()))
    }
}
