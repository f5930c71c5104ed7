//! Group history over Waku Store: the node keeps the network messages of its groups in an
//! [`Archive`], serves them to peers' Store queries, and asks peers for what it missed: when a
//! peer connects, when it joins a group, when the engine reports missing chat messages, and
//! when it wakes from a sleep.
//!
//! A message goes into the archive only after the engine step that handled it is on disk, so
//! a message the archive holds was never lost to a crash: fetching skips it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use demls_engine::{GroupId, Topic, TopicKind};
use demls_storage::{
    Archive, ArchiveLimits, ArchivePage, ArchiveQuery, ArchivedMessage, Selection, StorageError,
    Walk,
};
use demls_transport::store::{
    BackendError, Direction, StoreBackend, StoreFilter, StorePage, StoreQuery, StoreQueryRequest,
    StoredMessage,
};
use demls_transport::{MessageHash, PeerId, RelayHandle, WakuMessage};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::topics;

/// How far before the newest message it holds a node asks again: clocks of peers differ, and a
/// message may reach a peer's store a while after its timestamp.
const SLACK_NS: i64 = 5 * 60 * 1_000_000_000;
/// How far back a node asks for a group it holds nothing of (a group just joined or asked to
/// join): enough for the latest announcements and what was said while its join was decided.
const FIRST_LOOK_NS: i64 = 15 * 60 * 1_000_000_000;
/// The most messages one fetch takes from one peer (a day of a busy group).
const FETCH_LIMIT: usize = 20_000;
/// Messages per page of a fetch.
const PAGE: u64 = 100;
/// A group's missing messages are asked for again at most this often.
const GAP_INTERVAL: Duration = Duration::from_secs(15);
/// A clock that jumps this much between two ticks means the node slept (or was stopped).
pub(super) const WAKE_JUMP_NS: i64 = 20 * 1_000_000_000;

/// Serves the archive to peers' Store queries.
pub(super) struct ArchiveBackend(pub(super) Arc<Archive>);

impl StoreBackend for ArchiveBackend {
    fn query(&self, query: &StoreQuery) -> Result<StorePage, BackendError> {
        let selection = match &query.filter {
            StoreFilter::Content { topics, start, end } => Selection::Range {
                pubsub_topic: topics.as_ref().map(|t| t.pubsub_topic.clone()),
                content_topics: topics
                    .as_ref()
                    .map(|t| t.content_topics.clone())
                    .unwrap_or_default(),
                start: *start,
                end: *end,
            },
            StoreFilter::Hashes(hashes) => Selection::Hashes(hashes.iter().map(|h| h.0).collect()),
        };
        let page = self
            .0
            .query(&ArchiveQuery {
                selection,
                after: query.cursor.map(|c| c.0),
                walk: match query.direction {
                    Direction::Forward => Walk::Forward,
                    Direction::Backward => Walk::Backward,
                },
                limit: query.limit,
                max_bytes: query.max_bytes,
            })
            .map_err(|error| match error {
                StorageError::UnknownCursor => BackendError::CursorNotFound,
                other => BackendError::Unavailable(other.to_string()),
            })?;
        to_store_page(page)
    }
}

fn to_store_page(page: ArchivePage) -> Result<StorePage, BackendError> {
    let mut messages = Vec::with_capacity(page.messages.len());
    for archived in page.messages {
        let message = WakuMessage::decode(archived.encoded.as_slice())
            .map_err(|e| BackendError::Unavailable(format!("archived message: {e}")))?;
        messages.push(StoredMessage {
            hash: MessageHash(archived.hash),
            pubsub_topic: archived.pubsub_topic,
            message,
        });
    }
    Ok(StorePage {
        messages,
        cursor: page.next.map(MessageHash),
    })
}

/// What a fetch from one peer brought back.
pub(super) struct Fetched {
    pub(super) group: GroupId,
    pub(super) peer: PeerId,
    /// When the fetch started (Unix ns).
    pub(super) started: i64,
    /// The messages, oldest first; empty when the fetch failed.
    pub(super) messages: Vec<StoredMessage>,
    /// Whether the peer gave everything it holds since the fetch's start.
    pub(super) complete: bool,
}

/// The archive and the fetches in flight.
pub(super) struct History {
    archive: Arc<Archive>,
    /// Messages handled in the current engine step, archived once it is on disk.
    heard: Vec<ArchivedMessage>,
    /// Per group: everything before this (Unix ns) was fetched from some peer.
    synced_until: BTreeMap<GroupId, i64>,
    /// Per group: when missing messages were last asked for.
    gap_asked: BTreeMap<GroupId, Instant>,
    /// (group, peer) fetches in flight.
    in_flight: BTreeSet<(GroupId, PeerId)>,
    results: mpsc::UnboundedSender<Fetched>,
}

impl History {
    /// Opens the archive of the data directory `dir` (encrypted with the passphrase's key).
    pub(super) fn open(
        dir: &std::path::Path,
        passphrase: &str,
        results: mpsc::UnboundedSender<Fetched>,
    ) -> Result<History, StorageError> {
        Ok(History {
            archive: Arc::new(Archive::open(dir, passphrase, ArchiveLimits::default())?),
            heard: Vec::new(),
            synced_until: BTreeMap::new(),
            gap_asked: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            results,
        })
    }

    /// The archive, to serve peers' queries.
    pub(super) fn backend(&self) -> ArchiveBackend {
        ArchiveBackend(self.archive.clone())
    }

    /// Whether the archive holds the message with `hash` (an unreadable archive holds nothing).
    pub(super) fn holds(&self, hash: &MessageHash) -> bool {
        self.archive.contains(&hash.0).unwrap_or(false)
    }

    /// Keeps a handled message for the archive, once the step that handled it is on disk.
    pub(super) fn heard(&mut self, pubsub_topic: &str, hash: MessageHash, message: &WakuMessage) {
        // A message without a timestamp is never stored (13/WAKU2-STORE).
        let Some(timestamp) = message.timestamp else {
            return;
        };
        self.heard.push(ArchivedMessage {
            hash: hash.0,
            pubsub_topic: pubsub_topic.to_owned(),
            content_topic: message.content_topic.clone(),
            timestamp,
            encoded: message.encode_to_vec(),
        });
    }

    /// Archives what the last persisted step handled. A failure loses only what peers can give
    /// back, so it is logged, not fatal.
    pub(super) fn flush(&mut self) {
        if let Err(error) = self.archive.insert(&self.heard) {
            tracing::warn!(%error, "cannot archive messages");
        }
        self.heard.clear();
    }

    /// Drops what is beyond the retention at `now` (Unix ns).
    pub(super) fn prune(&self, now: i64) {
        match self.archive.prune(now) {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(dropped, "archive pruned"),
            Err(error) => tracing::warn!(%error, "cannot prune the archive"),
        }
    }

    /// The archive's size: messages and bytes.
    pub(super) fn size(&self) -> (u64, u64) {
        self.archive.stats().unwrap_or_default()
    }

    /// Whether the group's missing messages may be asked for again now.
    pub(super) fn gap_due(&mut self, group: &GroupId) -> bool {
        let due = self
            .gap_asked
            .get(group)
            .is_none_or(|at| at.elapsed() >= GAP_INTERVAL);
        if due {
            self.gap_asked.insert(group.clone(), Instant::now());
        }
        due
    }

    /// Asks each of `peers` for the group's messages since what this node holds (less some
    /// slack); the answers come back through the results channel.
    pub(super) fn fetch(
        &mut self,
        relay: &RelayHandle,
        group: &GroupId,
        peers: &[PeerId],
        now: i64,
    ) {
        let content_topics = group_topics(group);
        let since = match self.synced_until.get(group) {
            Some(&until) => until,
            None => {
                let since = match self.archive.latest(&content_topics) {
                    Ok(Some(latest)) => latest.saturating_sub(SLACK_NS),
                    Ok(None) | Err(_) => now.saturating_sub(FIRST_LOOK_NS),
                };
                self.synced_until.insert(group.clone(), since);
                since
            }
        };
        for &peer in peers {
            if !self.in_flight.insert((group.clone(), peer)) {
                continue;
            }
            let mut request = StoreQueryRequest::for_topics(
                relay.pubsub_topic().to_string(),
                content_topics.clone(),
                PAGE,
            );
            request.time_start = Some(since);
            let relay = relay.clone();
            let results = self.results.clone();
            let group = group.clone();
            tokio::spawn(async move {
                let fetched = match relay.store_query_all(peer, request, FETCH_LIMIT).await {
                    Ok(response) => {
                        let complete = response.pagination_cursor.is_none();
                        let messages = response
                            .messages
                            .into_iter()
                            .filter_map(|kv| {
                                Some(StoredMessage {
                                    hash: MessageHash(kv.message_hash?.try_into().ok()?),
                                    pubsub_topic: kv.pubsub_topic?,
                                    message: kv.message?,
                                })
                            })
                            .collect();
                        Fetched {
                            group,
                            peer,
                            started: now,
                            messages,
                            complete,
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%peer, %group, %error, "history fetch failed");
                        Fetched {
                            group,
                            peer,
                            started: now,
                            messages: Vec::new(),
                            complete: false,
                        }
                    }
                };
                // The node may have stopped meanwhile.
                let _ = results.send(fetched);
            });
        }
    }

    /// A fetch ended: once a peer gave all it had, the group is synced up to the fetch's start.
    pub(super) fn fetched(&mut self, fetched: &Fetched) {
        self.in_flight
            .remove(&(fetched.group.clone(), fetched.peer));
        if fetched.complete {
            let until = fetched.started.saturating_sub(SLACK_NS);
            let entry = self
                .synced_until
                .entry(fetched.group.clone())
                .or_insert(until);
            *entry = (*entry).max(until);
        }
    }
}

/// The content topics of a group.
fn group_topics(group: &GroupId) -> Vec<String> {
    [TopicKind::Welcome, TopicKind::Application]
        .into_iter()
        .filter_map(|kind| {
            topics::content_topic(&Topic {
                group: group.clone(),
                kind,
            })
            .ok()
        })
        .map(|t| t.to_string())
        .collect()
}
