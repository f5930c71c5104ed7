//! Pubsub topics (`/waku/2/rs/<cluster>/<shard>`), content topics
//! (`/{application}/{version}/{topic-name}/{encoding}`) and autosharding
//! (23/WAKU2-TOPICS, 51/WAKU2-RELAY-SHARDING).

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU16;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The cluster demls uses unless told otherwise. Clusters 0–15 are reserved (1 is The Waku
/// Network, which requires RLN), so a private deployment picks its own; demls picked 4242.
pub const DEFAULT_CLUSTER_ID: u16 = 4242;

/// The shard demls relays on unless told otherwise.
pub const DEFAULT_SHARD: u16 = 0;

/// A static-sharding pubsub topic, `/waku/2/rs/<cluster_id>/<shard>`: the gossipsub topic
/// string (an `IdentTopic`, not hashed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PubsubTopic {
    /// The cluster id.
    pub cluster_id: u16,
    /// The shard index within the cluster.
    pub shard: u16,
}

impl PubsubTopic {
    /// The pubsub topic of `shard` in `cluster_id`.
    pub fn new(cluster_id: u16, shard: u16) -> PubsubTopic {
        PubsubTopic { cluster_id, shard }
    }
}

impl fmt::Display for PubsubTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/waku/2/rs/{}/{}", self.cluster_id, self.shard)
    }
}

impl FromStr for PubsubTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<PubsubTopic, TopicError> {
        let invalid = || TopicError::InvalidPubsubTopic(s.to_owned());
        let rest = s.strip_prefix("/waku/2/rs/").ok_or_else(invalid)?;
        let (cluster, shard) = rest.split_once('/').ok_or_else(invalid)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u16>().map_err(|_| invalid())
        };
        Ok(PubsubTopic {
            cluster_id: number(cluster)?,
            shard: number(shard)?,
        })
    }
}

/// The most shards a cluster has (51/WAKU2-RELAY-SHARDING: static shards are managed in
/// clusters of 1024).
pub const MAX_SHARDS_IN_CLUSTER: u16 = 1024;

/// The most shards one node relays on: the spec's limit for an ENR's shard index list, and
/// what fits in a metadata message (1024 bytes; 64 shards take at most 330).
pub const MAX_RELAY_SHARDS: usize = 64;

/// A validated content topic, `/{application}/{version}/{topic-name}/{encoding}`: four
/// non-empty parts without whitespace or further slashes, optionally preceded by a
/// generation, `/{generation}/{application}/…` (decimal; 51/WAKU2-RELAY-SHARDING's full-length
/// form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentTopic(String);

impl ContentTopic {
    /// Builds `/{application}/{version}/{name}/{encoding}`, checking each part.
    pub fn new(
        application: &str,
        version: &str,
        name: &str,
        encoding: &str,
    ) -> Result<ContentTopic, TopicError> {
        format!("/{application}/{version}/{name}/{encoding}").parse()
    }

    /// The topic string, as carried in `WakuMessage::content_topic`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parts after the leading `/`, without the generation.
    fn parts(&self) -> impl Iterator<Item = &str> {
        let parts = self.0.split('/').skip(1);
        let with_generation = self.0.split('/').count() == 6;
        parts.skip(usize::from(with_generation))
    }

    fn part(&self, index: usize) -> &str {
        self.parts().nth(index).unwrap_or_default()
    }

    /// The `{generation}` of the full-length form, `None` in the short form (which means
    /// generation 0).
    pub fn generation(&self) -> Option<u32> {
        if self.0.split('/').count() != 6 {
            return None;
        }
        // Checked when the topic was parsed.
        self.0.split('/').nth(1)?.parse().ok()
    }

    /// The `{application}` part.
    pub fn application(&self) -> &str {
        self.part(0)
    }

    /// The `{version}` part.
    pub fn version(&self) -> &str {
        self.part(1)
    }

    /// The `{topic-name}` part.
    pub fn name(&self) -> &str {
        self.part(2)
    }

    /// The `{encoding}` part.
    pub fn encoding(&self) -> &str {
        self.part(3)
    }

    /// The shard this content topic maps to under autosharding with `shard_count` shards
    /// (51/WAKU2-RELAY-SHARDING, generation 0): the last 8 bytes of
    /// `sha256(application || version)`, big-endian, modulo `shard_count`. Topics of a later
    /// generation are refused, as nwaku does: no network defines one yet.
    pub fn autoshard(&self, shard_count: NonZeroU16) -> Result<u16, TopicError> {
        if let Some(generation) = self.generation().filter(|&g| g != 0) {
            return Err(TopicError::UnsupportedGeneration {
                topic: self.0.clone(),
                generation,
            });
        }
        let digest: [u8; 32] = Sha256::new()
            .chain_update(self.application().as_bytes())
            .chain_update(self.version().as_bytes())
            .finalize()
            .into();
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&digest[24..]);
        let shard = u64::from_be_bytes(tail) % u64::from(shard_count.get());
        // The remainder is below a u16, so this never saturates.
        Ok(u16::try_from(shard).unwrap_or(u16::MAX))
    }
}

impl fmt::Display for ContentTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ContentTopic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<ContentTopic, TopicError> {
        let invalid = || TopicError::InvalidContentTopic(s.to_owned());
        let rest = s.strip_prefix('/').ok_or_else(invalid)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let generation_ok = match parts.len() {
            4 => true,
            5 => parts[0].bytes().all(|b| b.is_ascii_digit()) && parts[0].parse::<u32>().is_ok(),
            _ => false,
        };
        let well_formed = generation_ok
            && parts
                .iter()
                .all(|p| !p.is_empty() && !p.chars().any(char::is_whitespace));
        if !well_formed {
            return Err(invalid());
        }
        Ok(ContentTopic(s.to_owned()))
    }
}

impl TryFrom<String> for ContentTopic {
    type Error = TopicError;

    fn try_from(s: String) -> Result<ContentTopic, TopicError> {
        s.parse()
    }
}

impl AsRef<str> for ContentTopic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A topic string that does not have the required form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not `/{application}/{version}/{topic-name}/{encoding}`.
    #[error(
        "invalid content topic {0:?}: expected /{{application}}/{{version}}/{{name}}/{{encoding}}"
    )]
    InvalidContentTopic(String),
    /// Not `/waku/2/rs/<cluster_id>/<shard>` with 16-bit numbers.
    #[error("invalid pubsub topic {0:?}: expected /waku/2/rs/<cluster_id>/<shard>")]
    InvalidPubsubTopic(String),
    /// A content topic of a generation other than 0, which autosharding cannot place.
    #[error(
        "content topic {topic:?} is of generation {generation}; autosharding knows only generation 0"
    )]
    UnsupportedGeneration {
        /// The content topic.
        topic: String,
        /// Its generation.
        generation: u32,
    },
}

/// How a node places messages on shards: by content topic with autosharding, or all on one
/// static shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sharding {
    /// The cluster of every shard.
    pub(crate) cluster_id: u16,
    /// The shard every message goes to without autosharding.
    pub(crate) shard: u16,
    /// The network's shard count with autosharding, `None` for static sharding.
    pub(crate) num_shards_in_network: Option<NonZeroU16>,
}

impl Sharding {
    /// The pubsub topic a message on `content_topic` is published on.
    pub(crate) fn pubsub_topic_of(
        &self,
        content_topic: &ContentTopic,
    ) -> Result<PubsubTopic, TopicError> {
        let shard = match self.num_shards_in_network {
            Some(count) => content_topic.autoshard(count)?,
            None => self.shard,
        };
        Ok(PubsubTopic::new(self.cluster_id, shard))
    }

    /// The pubsub topics a node relays on from its start: `shard` without autosharding, the
    /// shards of `content_topics` with it, and `extra_shards` either way.
    pub(crate) fn initial_topics(
        &self,
        extra_shards: &[u16],
        content_topics: &[ContentTopic],
    ) -> Result<BTreeSet<PubsubTopic>, TopicError> {
        let mut shards: BTreeSet<u16> = extra_shards.iter().copied().collect();
        match self.num_shards_in_network {
            Some(count) => {
                for topic in content_topics {
                    shards.insert(topic.autoshard(count)?);
                }
            }
            None => {
                shards.insert(self.shard);
            }
        }
        Ok(shards
            .into_iter()
            .map(|shard| PubsubTopic::new(self.cluster_id, shard))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(s: &str) -> ContentTopic {
        s.parse().expect("valid content topic")
    }

    #[test]
    fn pubsub_topic_format_and_parse() {
        let t = PubsubTopic::new(DEFAULT_CLUSTER_ID, 0);
        assert_eq!(t.to_string(), "/waku/2/rs/4242/0");
        assert_eq!("/waku/2/rs/4242/0".parse(), Ok(t));
        assert_eq!("/waku/2/rs/1/7".parse(), Ok(PubsubTopic::new(1, 7)));
        for bad in [
            "",
            "/waku/2/rs/1",
            "/waku/2/rs/1/",
            "/waku/2/rs//1",
            "/waku/2/rs/1/2/3",
            "/waku/2/rs/70000/0",
            "/waku/2/rs/+1/0",
            "/waku/2/default-waku/proto",
        ] {
            assert!(bad.parse::<PubsubTopic>().is_err(), "{bad}");
        }
    }

    #[test]
    fn content_topic_parts() {
        let t = ct("/demls/1/group-abc/proto");
        assert_eq!(t.application(), "demls");
        assert_eq!(t.version(), "1");
        assert_eq!(t.name(), "group-abc");
        assert_eq!(t.encoding(), "proto");
        assert_eq!(ContentTopic::new("demls", "1", "group-abc", "proto"), Ok(t));
    }

    #[test]
    fn content_topic_rejects_malformed() {
        for bad in [
            "",
            "demls/1/x/proto",
            "/demls/1/x",
            "/demls/1/x/proto/",
            "/demls//x/proto",
            "/demls/1/x y/proto",
            "/x/demls/1/x/proto",
            "/-1/demls/1/x/proto",
            "/99999999999/demls/1/x/proto",
            "/0/demls/1/x/proto/",
        ] {
            assert!(bad.parse::<ContentTopic>().is_err(), "{bad}");
        }
        assert!(ContentTopic::new("a/b", "1", "x", "proto").is_err());
    }

    #[test]
    fn autosharding_matches_nwaku() {
        // Expected shards from nwaku's autosharding tests (8 shards in generation 0).
        let eight = NonZeroU16::new(8).expect("non-zero");
        assert_eq!(ct("/toychat/2/huilong/proto").autoshard(eight), Ok(3));
        assert_eq!(ct("/toychat2/2/huilong/proto").autoshard(eight), Ok(6));
        assert_eq!(ct("/toychat/2/huilong/proto2").autoshard(eight), Ok(3));
        assert_eq!(ct("/toychat/4/huilong/proto2").autoshard(eight), Ok(7));
        let one = NonZeroU16::new(1).expect("non-zero");
        assert_eq!(ct("/toychat/2/huilong/proto").autoshard(one), Ok(0));
    }

    #[test]
    fn generation_zero_is_the_short_form_and_later_ones_are_refused() {
        let eight = NonZeroU16::new(8).expect("non-zero");
        let full = ct("/0/toychat/2/huilong/proto");
        assert_eq!(full.generation(), Some(0));
        assert_eq!(full.application(), "toychat");
        assert_eq!(full.encoding(), "proto");
        assert_eq!(full.autoshard(eight), Ok(3));
        assert_eq!(ct("/toychat/2/huilong/proto").generation(), None);
        assert_eq!(
            ct("/1/toychat/2/huilong/proto").autoshard(eight),
            Err(TopicError::UnsupportedGeneration {
                topic: "/1/toychat/2/huilong/proto".into(),
                generation: 1
            })
        );
    }

    #[test]
    fn sharding_places_topics() {
        let topic = ct("/toychat2/2/huilong/proto");
        let fixed = Sharding {
            cluster_id: 7,
            shard: 2,
            num_shards_in_network: None,
        };
        assert_eq!(fixed.pubsub_topic_of(&topic), Ok(PubsubTopic::new(7, 2)));
        assert_eq!(
            fixed.initial_topics(&[5, 2], std::slice::from_ref(&topic)),
            Ok([PubsubTopic::new(7, 2), PubsubTopic::new(7, 5)].into())
        );
        let auto = Sharding {
            num_shards_in_network: NonZeroU16::new(8),
            ..fixed
        };
        assert_eq!(auto.pubsub_topic_of(&topic), Ok(PubsubTopic::new(7, 6)));
        assert_eq!(
            auto.initial_topics(&[0], &[topic, ct("/toychat/2/x/proto")]),
            Ok([0, 3, 6].map(|s| PubsubTopic::new(7, s)).into())
        );
        assert!(auto.initial_topics(&[], &[ct("/2/a/1/b/c")]).is_err());
    }
}
