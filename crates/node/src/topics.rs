//! Engine topics as Waku content topics.
//!
//! Group `<g>` has two content topics (23/WAKU2-TOPICS form `/app/version/name/encoding`):
//! `/demls/1/<g>-welcome/proto` (announcements, join requests, welcomes) and
//! `/demls/1/<g>-app/proto` (MLS commits and application messages). Group names are
//! `[a-z0-9._-]{1,64}`, so they fit a content topic unchanged, and the suffix after the
//! last `-` tells the two apart.

use demls_engine::{GroupId, Topic, TopicKind};
use demls_transport::{ContentTopic, PubsubTopic, RelayHandle, TopicError};

const PREFIX: &str = "/demls/1/";
const ENCODING: &str = "/proto";
const WELCOME: &str = "-welcome";
const APPLICATION: &str = "-app";

/// A content topic on the shard of every demls content topic: autosharding hashes only
/// `/{application}/{version}/`, which all of them share (`/demls/1/`).
pub fn routing_topic() -> Result<ContentTopic, TopicError> {
    format!("{PREFIX}any{ENCODING}").parse()
}

/// The pubsub topic `relay` publishes every demls message on.
pub fn pubsub_topic(relay: &RelayHandle) -> PubsubTopic {
    routing_topic()
        .ok()
        .and_then(|topic| relay.pubsub_topic_of(&topic).ok())
        // Unreachable: the routing topic is well formed and of generation 0.
        .unwrap_or_else(|| relay.pubsub_topic())
}

/// The content topic of an engine topic.
pub fn content_topic(topic: &Topic) -> Result<ContentTopic, TopicError> {
    let suffix = match topic.kind {
        TopicKind::Welcome => WELCOME,
        TopicKind::Application => APPLICATION,
    };
    format!("{PREFIX}{}{suffix}{ENCODING}", topic.group).parse()
}

/// The engine topic of a content topic, if it is a demls one.
pub fn engine_topic(content_topic: &str) -> Option<Topic> {
    let name = content_topic.strip_prefix(PREFIX)?.strip_suffix(ENCODING)?;
    let (group, kind) = if let Some(group) = name.strip_suffix(WELCOME) {
        (group, TopicKind::Welcome)
    } else {
        (name.strip_suffix(APPLICATION)?, TopicKind::Application)
    };
    Some(Topic {
        group: GroupId::new(group).ok()?,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        for name in ["lab", "x-app", "a-welcome", "g.1_2"] {
            for kind in [TopicKind::Welcome, TopicKind::Application] {
                let topic = Topic {
                    group: GroupId::new(name).unwrap(),
                    kind,
                };
                let content = content_topic(&topic).unwrap();
                assert_eq!(engine_topic(content.as_str()), Some(topic));
            }
        }
        assert_eq!(
            content_topic(&Topic {
                group: GroupId::new("lab").unwrap(),
                kind: TopicKind::Application
            })
            .unwrap()
            .as_str(),
            "/demls/1/lab-app/proto"
        );
    }

    #[test]
    fn every_group_shares_the_routing_topics_shard() {
        let eight = std::num::NonZeroU16::new(8).unwrap();
        let shard = routing_topic().unwrap().autoshard(eight).unwrap();
        for name in ["lab", "x-app", "g.1_2"] {
            let topic = Topic {
                group: GroupId::new(name).unwrap(),
                kind: TopicKind::Application,
            };
            assert_eq!(content_topic(&topic).unwrap().autoshard(eight), Ok(shard));
        }
    }

    #[test]
    fn foreign_topics_are_not_demls() {
        for other in [
            "/waku/1/lab-app/proto",
            "/demls/1/lab/proto",
            "/demls/1/Lab-app/proto",
            "/demls/1/-app/proto",
            "/demls/1/lab-app/json",
            "",
        ] {
            assert_eq!(engine_topic(other), None, "{other}");
        }
    }
}
