//! Small value types that name things: groups, epochs, instants.

use std::fmt;
use std::str::FromStr;

/// Unix time in milliseconds: the engine's only notion of time, always given by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This instant plus `ms` milliseconds (saturating).
    pub fn plus_ms(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Whole seconds, as MLS measures key package lifetimes.
    pub(crate) fn mls_time(self) -> mls_rs::time::MlsTime {
        mls_rs::time::MlsTime::from_duration_since_epoch(std::time::Duration::from_millis(self.0))
    }
}

impl From<Timestamp> for demls_consensus::Timestamp {
    fn from(t: Timestamp) -> Self {
        Self::from_millis(t.0)
    }
}

impl From<demls_consensus::Timestamp> for Timestamp {
    fn from(t: demls_consensus::Timestamp) -> Self {
        Self(t.as_millis())
    }
}

/// An MLS epoch number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A group's name, which is also its MLS group id and part of its topic names.
///
/// 1 to 64 characters from `[a-z0-9._-]`, so that it can appear in a Waku
/// content topic unchanged.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(String);

impl GroupId {
    /// Longest accepted name.
    pub const MAX_LEN: usize = 64;

    /// Validates a group name.
    pub fn new(name: &str) -> Result<Self, InvalidGroupId> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        if name.is_empty() || name.len() > Self::MAX_LEN || !name.chars().all(ok_char) {
            return Err(InvalidGroupId(name.chars().take(80).collect()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MLS group id bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for GroupId {
    type Err = InvalidGroupId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A group name that breaks the naming rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid group name {0:?}: use 1 to 64 characters from a-z, 0-9, '.', '_', '-'")]
pub struct InvalidGroupId(pub String);

/// Which of a group's two topics a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TopicKind {
    /// The permissionless waiting room: announcements, join requests, welcomes.
    Welcome,
    /// Members' MLS traffic: commits and encrypted application messages.
    Application,
}

/// A topic: a group and a kind. The transport shell maps it to a network topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic {
    /// The group.
    pub group: GroupId,
    /// Which of the group's topics.
    pub kind: TopicKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(GroupId::new("lab-2026.ops_x").is_ok());
        for bad in ["", "Lab", "a b", "x/y", &"a".repeat(65)] {
            assert!(GroupId::new(bad).is_err(), "{bad:?}");
        }
    }
}
