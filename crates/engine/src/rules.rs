//! A group's membership rules, fixed at creation and agreed by every member
//! because they are part of the MLS group context (extension `demls_group_rules`).

use mls_rs::ExtensionList;
use mls_rs::extension::MlsExtension;
use prost::Message;

use crate::mls::GroupRulesExt;
use crate::wire::GroupRules;
use crate::{EngineConfig, EngineError, GroupParams, JoinRule, RotationRule, Timestamp};

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

/// Who may join, how long people have to decide on membership, and how long each committer
/// has for its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) join_rule: JoinRule,
    pub(crate) membership_vote_timeout_secs: u32,
    pub(crate) rotation: RotationRule,
    pub(crate) timers: Timers,
}

/// The steward timers of a group (the RFC's commit and recovery inactivity timers, and its
/// `max_reelection_attempts`). Group rules, so that members whose nodes are set differently
/// still agree on whose commit turn it is. A zero, as in a group made before timers were
/// rules, stands for the member's own setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timers {
    commit_ms: u32,
    recovery_ms: u32,
    max_reelections: u32,
}

impl Timers {
    /// A new group's timers: its creator's settings, a recovery turn half a commit turn.
    fn of(config: &EngineConfig) -> Self {
        let commit_ms = u32::try_from(config.steward_timeout_ms).unwrap_or(u32::MAX);
        Self {
            commit_ms,
            recovery_ms: (commit_ms / 2).max(1),
            max_reelections: config.max_retry_rounds,
        }
    }

    /// How long a committer has for its turn.
    pub(crate) fn commit_ms(self, config: &EngineConfig) -> u64 {
        match self.commit_ms {
            0 => config.steward_timeout_ms,
            ms => u64::from(ms),
        }
    }

    /// How long a committer has for its turn during recovery (Layers 2 and 3: after a
    /// re-election or a deadlock), when the group has already waited through its turns.
    pub(crate) fn recovery_ms(self, config: &EngineConfig) -> u64 {
        match self.recovery_ms {
            0 => self.commit_ms(config) / 2,
            ms => u64::from(ms),
        }
    }

    /// Re-election rounds before the deadlock emergency.
    pub(crate) fn max_reelections(self, config: &EngineConfig) -> u32 {
        match self.max_reelections {
            0 => config.max_retry_rounds,
            rounds => rounds,
        }
    }
}

impl Rules {
    /// The rules of a new group, its timers from its creator's `config`.
    pub(crate) fn of(params: &GroupParams, config: &EngineConfig) -> Self {
        Self {
            join_rule: params.join_rule,
            membership_vote_timeout_secs: params
                .membership_vote_timeout_secs
                .clamp(1, MAX_VOTE_SECS),
            rotation: RotationRule {
                after_secs: params.rotation.after_secs.max(1),
                after_messages: params.rotation.after_messages.max(1),
            },
            timers: Timers::of(config),
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
                timers: Timers::default(),
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
            timers: Timers {
                commit_ms: rules.commit_timeout_ms,
                recovery_ms: rules.recovery_timeout_ms,
                max_reelections: rules.max_reelections,
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
                commit_timeout_ms: self.timers.commit_ms,
                recovery_timeout_ms: self.timers.recovery_ms,
                max_reelections: self.timers.max_reelections,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_groups_timers_are_its_creators_settings_and_travel_in_the_rules() {
        let creator = EngineConfig {
            steward_timeout_ms: 4_000,
            max_retry_rounds: 2,
            ..EngineConfig::default()
        };
        let rules = Rules::of(&GroupParams::default(), &creator);
        let context: ExtensionList = vec![rules.to_extension().unwrap()].into();
        let read = Rules::read(&context).unwrap();
        assert_eq!(read, rules);
        // Another member's own settings do not change them.
        let other = EngineConfig::default();
        assert_eq!(read.timers.commit_ms(&other), 4_000);
        assert_eq!(read.timers.recovery_ms(&other), 2_000);
        assert_eq!(read.timers.max_reelections(&other), 2);
    }

    #[test]
    fn a_group_made_before_timers_were_rules_uses_each_members_settings() {
        let timers = Timers::default();
        let mine = EngineConfig {
            steward_timeout_ms: 6_000,
            max_retry_rounds: 5,
            ..EngineConfig::default()
        };
        assert_eq!(timers.commit_ms(&mine), 6_000);
        assert_eq!(timers.recovery_ms(&mine), 3_000);
        assert_eq!(timers.max_reelections(&mine), 5);
    }
}
