//! A group's membership rules, fixed at creation and agreed by every member
//! because they are part of the MLS group context (extension `demls_group_rules`).

use mls_rs::ExtensionList;
use mls_rs::extension::MlsExtension;
use prost::Message;

use crate::mls::GroupRulesExt;
use crate::wire::GroupRules;
use crate::{EngineError, GroupParams, JoinRule, RotationRule, Timestamp};

/// Seconds a vote on adding or removing someone stays open in a group created
/// before the rules existed (the extension is absent there).
const DEFAULT_MEMBERSHIP_VOTE_SECS: u32 = 3600;

/// The longest a vote may stay open: a day (longer settings are cut to it). Votes on
/// people wait for people; every open vote is bounded by the proposal rate limit.
pub(crate) const MAX_VOTE_SECS: u32 = 24 * 3600;

/// The consensus settings of a group's votes: proposals may live as long as a vote may stay
/// open, with a minute for clock rounding.
pub(crate) fn consensus_config() -> demls_consensus::ConsensusConfig {
    demls_consensus::ConsensusConfig {
        max_proposal_lifetime: std::time::Duration::from_secs(u64::from(MAX_VOTE_SECS) + 60),
        ..demls_consensus::ConsensusConfig::default()
    }
}

/// Who may join, and how long people have to decide on membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) join_rule: JoinRule,
    pub(crate) membership_vote_timeout_secs: u32,
    pub(crate) rotation: RotationRule,
}

impl Rules {
    /// The rules of a new group.
    pub(crate) fn of(params: &GroupParams) -> Self {
        Self {
            join_rule: params.join_rule,
            membership_vote_timeout_secs: params
                .membership_vote_timeout_secs
                .clamp(1, MAX_VOTE_SECS),
            rotation: RotationRule {
                after_secs: params.rotation.after_secs.max(1),
                after_messages: params.rotation.after_messages.max(1),
            },
        }
    }

    /// The rules in a group context; a group made before rules existed gets the defaults.
    pub(crate) fn read(context: &ExtensionList) -> Result<Self, EngineError> {
        let Some(ext) = context
            .get_as::<GroupRulesExt>()
            .map_err(|e| EngineError::Mls(format!("group rules: {e}")))?
        else {
            return Ok(Self {
                join_rule: JoinRule::Invite,
                membership_vote_timeout_secs: DEFAULT_MEMBERSHIP_VOTE_SECS,
                rotation: RotationRule::default(),
            });
        };
        let rules = GroupRules::decode(ext.rules.as_slice())?;
        let join_rule = JoinRule::from_wire(rules.join_rule)
            .ok_or_else(|| EngineError::Mls(format!("unknown join rule {}", rules.join_rule)))?;
        Ok(Self {
            join_rule,
            membership_vote_timeout_secs: match rules.membership_vote_timeout_secs {
                0 => DEFAULT_MEMBERSHIP_VOTE_SECS,
                secs => secs.min(MAX_VOTE_SECS),
            },
            // A group made before rotation rules existed (0 on the wire) rotates by default.
            rotation: RotationRule {
                after_secs: match rules.rotate_after_secs {
                    0 => RotationRule::default().after_secs,
                    secs => secs,
                },
                after_messages: match rules.rotate_after_messages {
                    0 => RotationRule::default().after_messages,
                    messages => messages,
                },
            },
        })
    }

    /// The group context extension that carries these rules.
    pub(crate) fn to_extension(self) -> Result<mls_rs::Extension, EngineError> {
        GroupRulesExt {
            rules: GroupRules {
                join_rule: self.join_rule.to_wire(),
                membership_vote_timeout_secs: self.membership_vote_timeout_secs,
                rotate_after_secs: self.rotation.after_secs,
                rotate_after_messages: self.rotation.after_messages,
            }
            .encode_to_vec(),
        }
        .into_extension()
        .map_err(|e| EngineError::Mls(e.to_string()))
    }

    /// When a leaf that entered the group at `since` is due for replacement.
    pub(crate) fn rotation_due(self, since: Timestamp) -> Timestamp {
        since.plus_ms(u64::from(self.rotation.after_secs) * 1000)
    }

    /// When a vote on adding or removing someone, opened at `now`, closes.
    pub(crate) fn membership_deadline(self, now: Timestamp) -> Timestamp {
        now.plus_ms(u64::from(self.membership_vote_timeout_secs) * 1000)
    }
}
