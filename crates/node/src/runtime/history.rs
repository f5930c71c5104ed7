//! Group history over Waku Store: the node keeps the network messages of its groups in an
//! [`Archive`], serves them to peers' Store queries, and asks peers for what it missed: when a
//! peer connects, when it joins a group, when the engine reports missing chat messages, and
//! when it wakes from a sleep.
//!
//! A message goes into the archive only after the engine step that handled it is on disk, so
//! a message the archive holds was never lost to a crash: fetching skips it. Of a steward's
//! announcements of a group (one every few seconds while it is in office) the archive keeps
//! only the latest, so that they never push the group's chat out of its bounds, while a joiner
//! still finds the latest announcement through Store.
//!
//! A fetch takes at most [`FETCH_LIMIT`] messages from a peer; when the peer holds more, the
//! node goes on asking that peer from the newest message it got, until it has everything.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use demls_engine::wire::{Envelope, envelope};
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
/// The most messages one fetch takes from one peer (a day of a busy group); a peer that holds
/// more is asked again from where its answer stopped.
const FETCH_LIMIT: usize = 20_000;
/// Messages per page of a fetch.
const PAGE: u64 = 100;
/// A group's missing messages are asked for again at most this often.
const GAP_INTERVAL: Duration = Duration::from_secs(15);
/// Peers asked at once for a group's history (when joining, after a gap, after a sleep): each
/// answers with the same messages, so asking every connected peer (about 16 in a 50-member
/// demo) made four times as many fetches (docs/performance.md section 5). Different peers are
/// asked each time, so one that withholds messages is not asked alone again.
const FETCH_PEERS: usize = 3;
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
    /// Where the next choice of peers to ask starts ([`History::sources`]).
    next_source: usize,
    /// The most messages one fetch takes from one peer ([`FETCH_LIMIT`]; smaller in tests).
    fetch_limit: usize,
    results: mpsc::UnboundedSender<Fetched>,
}

impl History {
    /// Opens the archive of the data directory `dir` (encrypted with the passphrase's key),
    /// bounded by `limits`.
    pub(super) fn open(
        dir: &std::path::Path,
        passphrase: &str,
        limits: ArchiveLimits,
        results: mpsc::UnboundedSender<Fetched>,
    ) -> Result<History, StorageError> {
        Ok(History {
            archive: Arc::new(Archive::open(dir, passphrase, limits)?),
            heard: Vec::new(),
            synced_until: BTreeMap::new(),
            gap_asked: BTreeMap::new(),
            in_flight: BTreeSet::new(),
            next_source: 0,
            fetch_limit: FETCH_LIMIT,
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
            keep_latest: keep_latest(message),
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

    /// The peers of `connected` to ask for a group's history: [`FETCH_PEERS`] of them, the
    /// next ones after those asked last time.
    pub(super) fn sources(&mut self, mut connected: Vec<PeerId>) -> Vec<PeerId> {
        if connected.len() <= FETCH_PEERS {
            return connected;
        }
        connected.sort_unstable();
        let start = self.next_source % connected.len();
        connected.rotate_left(start);
        connected.truncate(FETCH_PEERS);
        self.next_source = self.next_source.wrapping_add(FETCH_PEERS);
        connected
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
        // Both of a group's content topics are on one shard (see `topics::routing_topic`).
        let pubsub_topic = topics::pubsub_topic(relay).to_string();
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
            let mut request =
                StoreQueryRequest::for_topics(pubsub_topic.clone(), content_topics.clone(), PAGE);
            request.time_start = Some(since);
            let relay = relay.clone();
            let results = self.results.clone();
            let group = group.clone();
            let limit = self.fetch_limit;
            tokio::spawn(async move {
                let fetched = match relay.store_query_all(peer, request, limit).await {
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

    /// A fetch ended: the group is synced up to what the peer gave ([`synced_after`]).
    /// Returns whether the peer stopped at the fetch limit and should be asked again, from
    /// where it stopped.
    pub(super) fn fetched(&mut self, fetched: &Fetched) -> bool {
        self.in_flight
            .remove(&(fetched.group.clone(), fetched.peer));
        let newest = fetched
            .messages
            .iter()
            .filter_map(|m| m.message.timestamp)
            .max();
        let Some(until) = synced_after(fetched.started, fetched.complete, newest) else {
            return false;
        };
        let entry = self
            .synced_until
            .entry(fetched.group.clone())
            .or_insert(i64::MIN);
        let advanced = until > *entry;
        *entry = (*entry).max(until);
        !fetched.complete && advanced
    }
}

/// Up to when a group's history is synced after a fetch from one peer that started at
/// `started` (Unix ns) and brought messages up to `newest`: everything but the last
/// [`SLACK_NS`] when the peer gave all it had; up to the newest message it gave when it stopped
/// at [`FETCH_LIMIT`], so that the next fetch asks for what follows rather than for the same
/// messages again; nothing when it gave nothing.
fn synced_after(started: i64, complete: bool, newest: Option<i64>) -> Option<i64> {
    let all = started.saturating_sub(SLACK_NS);
    if complete {
        Some(all)
    } else {
        newest.map(|newest| newest.min(all))
    }
}

/// The key under which the archive keeps only the newest of a group's messages: the steward's
/// address for an announcement (on the group's welcome topic), which replaces that steward's
/// earlier ones. The engine checked its signature before it got here.
fn keep_latest(message: &WakuMessage) -> Option<Vec<u8>> {
    let topic = topics::engine_topic(&message.content_topic)?;
    if topic.kind != TopicKind::Welcome {
        return None;
    }
    match Envelope::decode(message.payload.as_slice()).ok()?.body? {
        envelope::Body::Announcement(announcement) => Some(announcement.steward),
        _ => None,
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

#[cfg(test)]
mod tests {
    use demls_engine::wire::{GroupAnnouncement, JoinRequest, WIRE_VERSION};
    use demls_transport::store::{MemoryStore, MemoryStoreLimits};
    use demls_transport::{TransportConfig, WakuRelay};

    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn on_topic(kind: TopicKind, body: envelope::Body) -> WakuMessage {
        let group = GroupId::new("lab").expect("a group id");
        WakuMessage {
            payload: Envelope {
                version: WIRE_VERSION,
                group_id: group.to_string(),
                body: Some(body),
            }
            .encode_to_vec(),
            content_topic: topics::content_topic(&Topic { group, kind })
                .expect("a content topic")
                .to_string(),
            timestamp: Some(SECOND),
            ..WakuMessage::default()
        }
    }

    fn announcement(steward: u8) -> envelope::Body {
        envelope::Body::Announcement(GroupAnnouncement {
            steward: vec![steward; 20],
            ..GroupAnnouncement::default()
        })
    }

    #[test]
    fn only_announcements_are_kept_latest_per_steward() {
        assert_eq!(
            keep_latest(&on_topic(TopicKind::Welcome, announcement(7))),
            Some(vec![7; 20])
        );
        let request = envelope::Body::JoinRequest(JoinRequest::default());
        assert_eq!(keep_latest(&on_topic(TopicKind::Welcome, request)), None);
        assert_eq!(
            keep_latest(&on_topic(TopicKind::Application, announcement(7))),
            None,
            "only the welcome topic carries announcements"
        );
        let mut garbage = on_topic(TopicKind::Welcome, announcement(7));
        garbage.payload = vec![0xff; 9];
        assert_eq!(keep_latest(&garbage), None);
    }

    #[test]
    fn a_fetch_cut_at_the_limit_resumes_from_its_newest_message() {
        let start = 1_000 * SECOND;
        assert_eq!(
            synced_after(start, true, Some(start - SECOND)),
            Some(start - SLACK_NS),
            "complete: all but the slack"
        );
        assert_eq!(synced_after(start, true, None), Some(start - SLACK_NS));
        assert_eq!(
            synced_after(start, false, Some(100 * SECOND)),
            Some(100 * SECOND),
            "cut: up to its newest message"
        );
        assert_eq!(
            synced_after(start, false, Some(start)),
            Some(start - SLACK_NS),
            "never past the slack"
        );
        assert_eq!(synced_after(start, false, None), None, "failed: nothing");
    }

    fn fetched(peer: PeerId, started: i64, complete: bool, timestamps: &[i64]) -> Fetched {
        let group = GroupId::new("lab").expect("a group id");
        Fetched {
            group,
            peer,
            started,
            messages: timestamps
                .iter()
                .map(|&t| StoredMessage {
                    hash: MessageHash([0; 32]),
                    pubsub_topic: String::new(),
                    message: WakuMessage {
                        timestamp: Some(t),
                        ..WakuMessage::default()
                    },
                })
                .collect(),
            complete,
        }
    }

    /// A history on an archive in a temporary directory, its fetch results dropped.
    fn scratch_history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (results, _) = mpsc::unbounded_channel();
        let history = History::open(dir.path(), "pass", ArchiveLimits::default(), results)
            .expect("the archive opens");
        (dir, history)
    }

    #[test]
    fn a_few_peers_are_asked_and_each_time_others() {
        let (_dir, mut history) = scratch_history();
        let few: Vec<PeerId> = (0..2).map(|_| PeerId::random()).collect();
        assert_eq!(history.sources(few.clone()), few, "all of a few");
        let connected: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
        let mut asked = BTreeSet::new();
        for _ in 0..3 {
            let sources = history.sources(connected.clone());
            assert_eq!(sources.len(), FETCH_PEERS);
            asked.extend(sources);
        }
        assert_eq!(asked.len(), connected.len(), "every peer in turn");
    }

    #[test]
    fn a_peer_is_asked_again_while_each_cut_fetch_gets_further() {
        let (_dir, mut history) = scratch_history();
        let group = GroupId::new("lab").expect("a group id");
        let peer = PeerId::random();
        let start = 100_000 * SECOND;
        history.synced_until.insert(group.clone(), 0);
        assert!(history.fetched(&fetched(peer, start, false, &[10, 20, 30])));
        assert_eq!(history.synced_until[&group], 30);
        assert!(
            !history.fetched(&fetched(peer, start, false, &[30])),
            "no further: not asked again"
        );
        assert!(
            !history.fetched(&fetched(peer, start, false, &[])),
            "failed"
        );
        assert_eq!(history.synced_until[&group], 30);
        assert!(history.fetched(&fetched(peer, start, false, &[30, 40])));
        assert!(!history.fetched(&fetched(peer, start, true, &[50])), "done");
        assert_eq!(history.synced_until[&group], start - SLACK_NS);
    }

    /// Over loopback: a peer's store holds 700 of the group's messages and a fetch takes at
    /// most 250; asking again while [`History::fetched`] says so gets every one of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_holding_more_than_a_fetch_takes_gives_everything_in_rounds() {
        let store = Arc::new(MemoryStore::new(MemoryStoreLimits::default()));
        let (server, _server_events) = WakuRelay::start(TransportConfig {
            store: Some(store.clone()),
            peer_exchange: false,
            ..TransportConfig::default()
        })
        .await
        .expect("the serving node starts");
        let pubsub = server.pubsub_topic().to_string();
        let group = GroupId::new("lab").expect("a group id");
        let [welcome, app] = [0, 1].map(|i| group_topics(&group)[i].clone());
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_nanos(),
        )
        .expect("before 2262");
        let mut held = BTreeSet::new();
        for i in 0..700 {
            let message = WakuMessage {
                payload: format!("message {i}").into_bytes(),
                content_topic: if i % 7 == 0 { &welcome } else { &app }.clone(),
                // Within the first look of a group the fetching node holds nothing of.
                timestamp: Some(now - 600 * SECOND + i * 1_000_000),
                ..WakuMessage::default()
            };
            held.insert(store.insert(&pubsub, message).expect("stored"));
        }
        let (client, _client_events) = WakuRelay::start(TransportConfig {
            peers: server.listen_addrs(),
            peer_exchange: false,
            ..TransportConfig::default()
        })
        .await
        .expect("the fetching node starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client.connected_peers().contains(&server.peer_id()) {
            assert!(Instant::now() < deadline, "the nodes do not connect");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (results, mut answers) = mpsc::unbounded_channel();
        let mut history = History::open(dir.path(), "pass", ArchiveLimits::default(), results)
            .expect("the archive opens");
        history.fetch_limit = 250;
        let mut got = BTreeSet::new();
        let mut rounds = 0;
        loop {
            history.fetch(&client, &group, &[server.peer_id()], now);
            let answer = tokio::time::timeout(Duration::from_secs(30), answers.recv())
                .await
                .expect("a fetch ends in time")
                .expect("the results channel is open");
            assert!(!answer.messages.is_empty(), "round {rounds} failed");
            got.extend(answer.messages.iter().map(|m| m.hash));
            rounds += 1;
            if !history.fetched(&answer) {
                assert!(answer.complete, "stopped before the end");
                break;
            }
        }
        assert_eq!(got, held, "every message, in {rounds} rounds");
        assert_eq!(rounds, 3, "300 (three pages of 100), 300, then the rest");
        client.shutdown().await;
        server.shutdown().await;
    }
}
