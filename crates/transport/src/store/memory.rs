//! A bounded in-memory [`StoreBackend`]: for tests, and for nodes that keep no history on disk.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::message::{MessageHash, WakuMessage, unix_nanos};
use crate::store::{
    BackendError, Direction, StoreBackend, StoreFilter, StorePage, StoreQuery, StoredMessage,
    entry_len,
};

/// How much a [`MemoryStore`] keeps. When a bound is exceeded the oldest messages (by
/// timestamp) go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStoreLimits {
    /// The most messages kept.
    pub max_messages: usize,
    /// The most bytes kept (messages as encoded in a response).
    pub max_bytes: usize,
    /// Messages whose timestamp is older than this are dropped.
    pub max_age: Duration,
}

impl Default for MemoryStoreLimits {
    /// 10,000 messages, 64 MiB, 30 days.
    fn default() -> MemoryStoreLimits {
        MemoryStoreLimits {
            max_messages: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Why [`MemoryStore::insert`] did not keep a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStored {
    /// The message is marked ephemeral (13/WAKU2-STORE: never stored).
    #[error("ephemeral message")]
    Ephemeral,
    /// The message has no timestamp (13/WAKU2-STORE: required to be stored).
    #[error("message without timestamp")]
    NoTimestamp,
    /// The message is older than the store's maximum age.
    #[error("message older than the retention")]
    Expired,
    /// The message alone is larger than the store's byte limit.
    #[error("message larger than the store")]
    TooLarge,
    /// The store already holds it.
    #[error("message already stored")]
    Duplicate,
}

/// Sort key of the store: timestamp, then hash (13/WAKU2-STORE).
type Key = (i64, MessageHash);

#[derive(Debug)]
struct Entry {
    pubsub_topic: String,
    message: WakuMessage,
    size: usize,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: BTreeMap<Key, Entry>,
    by_hash: HashMap<MessageHash, i64>,
    bytes: usize,
}

/// A [`StoreBackend`] in memory, bounded by message count, bytes and age
/// ([`MemoryStoreLimits`]). Queries walk at most every stored message, so their work is
/// bounded by `max_messages`.
#[derive(Debug)]
pub struct MemoryStore {
    limits: MemoryStoreLimits,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(limits: MemoryStoreLimits) -> MemoryStore {
        MemoryStore {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Stores `message`, relayed on `pubsub_topic`, and returns its hash; then drops the
    /// oldest messages beyond the limits.
    pub fn insert(
        &self,
        pubsub_topic: &str,
        message: WakuMessage,
    ) -> Result<MessageHash, NotStored> {
        self.insert_at(unix_nanos(), pubsub_topic, message)
    }

    /// How many messages the store holds.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether the store holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the stored messages take (as encoded in a response).
    pub fn size_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The hashes stored, for tests that pick real cursors.
    #[cfg(test)]
    pub(crate) fn lock_hashes(&self) -> Vec<MessageHash> {
        self.lock().by_hash.keys().copied().collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update keeps the maps consistent before it can panic, so a poisoned lock is
        // still a valid store.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Timestamps before this are too old at `now`.
    fn cutoff(&self, now: i64) -> i64 {
        let age = i64::try_from(self.limits.max_age.as_nanos()).unwrap_or(i64::MAX);
        now.saturating_sub(age)
    }

    fn insert_at(
        &self,
        now: i64,
        pubsub_topic: &str,
        message: WakuMessage,
    ) -> Result<MessageHash, NotStored> {
        if message.ephemeral == Some(true) {
            return Err(NotStored::Ephemeral);
        }
        let timestamp = message.timestamp.ok_or(NotStored::NoTimestamp)?;
        let cutoff = self.cutoff(now);
        if timestamp < cutoff {
            return Err(NotStored::Expired);
        }
        let size = entry_len(pubsub_topic, &message);
        if size > self.limits.max_bytes {
            return Err(NotStored::TooLarge);
        }
        let hash = message.hash(pubsub_topic);
        let mut inner = self.lock();
        if inner.by_hash.contains_key(&hash) {
            return Err(NotStored::Duplicate);
        }
        inner.by_hash.insert(hash, timestamp);
        inner.bytes += size;
        inner.by_key.insert(
            (timestamp, hash),
            Entry {
                pubsub_topic: pubsub_topic.to_owned(),
                message,
                size,
            },
        );
        inner.evict(cutoff, &self.limits);
        Ok(hash)
    }
}

impl Inner {
    /// Drops messages older than `cutoff`, then the oldest ones beyond the limits.
    fn evict(&mut self, cutoff: i64, limits: &MemoryStoreLimits) {
        loop {
            let within = self.by_key.len() <= limits.max_messages && self.bytes <= limits.max_bytes;
            let Some(entry) = self.by_key.first_entry() else {
                return;
            };
            if within && entry.key().0 >= cutoff {
                return;
            }
            let ((_, hash), removed) = entry.remove_entry();
            self.by_hash.remove(&hash);
            self.bytes -= removed.size;
        }
    }

    fn page(&self, query: &StoreQuery) -> Result<StorePage, BackendError> {
        let cursor = query
            .cursor
            .map(|hash| {
                self.by_hash
                    .get(&hash)
                    .map(|&timestamp| (timestamp, hash))
                    .ok_or(BackendError::CursorNotFound)
            })
            .transpose()?;
        let forward = query.direction == Direction::Forward;
        let walk: Box<dyn Iterator<Item = (&Key, &Entry)>> = match &query.filter {
            StoreFilter::Hashes(hashes) => {
                let mut keys: Vec<Key> = hashes
                    .iter()
                    .filter_map(|h| self.by_hash.get(h).map(|&t| (t, *h)))
                    .filter(|key| match cursor {
                        None => true,
                        Some(c) if forward => *key > c,
                        Some(c) => *key < c,
                    })
                    .collect();
                keys.sort_unstable();
                if !forward {
                    keys.reverse();
                }
                Box::new(
                    keys.into_iter()
                        .filter_map(|key| self.by_key.get_key_value(&key)),
                )
            }
            StoreFilter::Content { start, end, .. } => {
                let (start, end) = (*start, *end);
                let lowest = |t: i64| (t, MessageHash([0; 32]));
                if forward {
                    let from = lowest(start.unwrap_or(i64::MIN));
                    let lower = match cursor {
                        Some(c) if c >= from => Bound::Excluded(c),
                        _ => Bound::Included(from),
                    };
                    Box::new(
                        self.by_key
                            .range((lower, Bound::Unbounded))
                            .take_while(move |(k, _)| end.is_none_or(|end| k.0 < end)),
                    )
                } else {
                    let upper = match (cursor, end.map(lowest)) {
                        (Some(c), Some(e)) => Bound::Excluded(c.min(e)),
                        (Some(bound), None) | (None, Some(bound)) => Bound::Excluded(bound),
                        (None, None) => Bound::Unbounded,
                    };
                    Box::new(
                        self.by_key
                            .range((Bound::Unbounded, upper))
                            .rev()
                            .take_while(move |(k, _)| start.is_none_or(|start| k.0 >= start)),
                    )
                }
            }
        };
        let mut messages = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for (&(_, hash), entry) in walk {
            if !query.matches(&hash, &entry.pubsub_topic, &entry.message) {
                continue;
            }
            let full = messages.len() == query.limit
                || (!messages.is_empty() && bytes + entry.size > query.max_bytes);
            if full {
                more = true;
                break;
            }
            bytes += entry.size;
            messages.push(StoredMessage {
                hash,
                pubsub_topic: entry.pubsub_topic.clone(),
                message: entry.message.clone(),
            });
        }
        let cursor = if more {
            messages.last().map(|m| m.hash)
        } else {
            None
        };
        if !forward {
            messages.reverse();
        }
        Ok(StorePage { messages, cursor })
    }
}

impl StoreBackend for MemoryStore {
    fn query(&self, query: &StoreQuery) -> Result<StorePage, BackendError> {
        let mut inner = self.lock();
        inner.evict(self.cutoff(unix_nanos()), &self.limits);
        inner.page(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MAX_PAGE_SIZE, StoreQueryRequest, TopicFilter};
    use proptest::prelude::*;

    const PUBSUB: &str = "/waku/2/rs/4242/0";
    const TOPIC: &str = "/demls/1/g/proto";
    const SECOND: i64 = 1_000_000_000;

    fn message(timestamp: i64, payload: &[u8], topic: &str) -> WakuMessage {
        WakuMessage {
            payload: payload.to_vec(),
            content_topic: topic.into(),
            timestamp: Some(timestamp),
            ..WakuMessage::default()
        }
    }

    fn store() -> MemoryStore {
        MemoryStore::new(MemoryStoreLimits::default())
    }

    /// A store with `n` messages on TOPIC, one second apart from `now - n` seconds, and their
    /// hashes in timestamp order.
    fn filled(n: usize) -> (MemoryStore, Vec<MessageHash>) {
        let s = store();
        let now = unix_nanos();
        let hashes = (0..n)
            .map(|i| {
                let t = now - (n - i) as i64 * SECOND;
                s.insert(PUBSUB, message(t, &i.to_be_bytes(), TOPIC))
                    .expect("stored")
            })
            .collect();
        (s, hashes)
    }

    fn topics_query(forward: bool, limit: u64) -> StoreQuery {
        let mut request = StoreQueryRequest::for_topics(PUBSUB, [TOPIC], limit);
        request.pagination_forward = forward;
        StoreQuery::from_request(&request).expect("valid")
    }

    fn hashes(page: &StorePage) -> Vec<MessageHash> {
        page.messages.iter().map(|m| m.hash).collect()
    }

    /// Every page of `query` from the start, concatenated in walk order.
    fn walk_all(s: &MemoryStore, mut query: StoreQuery) -> Vec<MessageHash> {
        let mut all = Vec::new();
        loop {
            let page = s.query(&query).expect("page");
            let mut got = hashes(&page);
            if query.direction == Direction::Backward {
                got.reverse();
            }
            all.extend(got);
            match page.cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => return all,
            }
        }
    }

    #[test]
    fn refuses_what_the_spec_does_not_store() {
        let s = store();
        let mut ephemeral = message(unix_nanos(), b"x", TOPIC);
        ephemeral.ephemeral = Some(true);
        assert_eq!(s.insert(PUBSUB, ephemeral), Err(NotStored::Ephemeral));
        let mut untimed = message(0, b"x", TOPIC);
        untimed.timestamp = None;
        assert_eq!(s.insert(PUBSUB, untimed), Err(NotStored::NoTimestamp));
        let ok = message(unix_nanos(), b"x", TOPIC);
        assert!(s.insert(PUBSUB, ok.clone()).is_ok());
        assert_eq!(s.insert(PUBSUB, ok), Err(NotStored::Duplicate));
        let tiny = MemoryStore::new(MemoryStoreLimits {
            max_bytes: 100,
            ..MemoryStoreLimits::default()
        });
        assert_eq!(
            tiny.insert(PUBSUB, message(unix_nanos(), &[0; 200], TOPIC)),
            Err(NotStored::TooLarge)
        );
    }

    #[test]
    fn evicts_the_oldest_by_count_bytes_and_age() {
        let limits = MemoryStoreLimits {
            max_messages: 3,
            max_bytes: usize::MAX,
            max_age: Duration::from_secs(60),
        };
        let s = MemoryStore::new(limits);
        let now = 1_000 * SECOND;
        for i in 0..5 {
            s.insert_at(now, PUBSUB, message(now - (10 - i) * SECOND, b"x", TOPIC))
                .expect("stored");
        }
        assert_eq!(s.len(), 3);
        let oldest = s.lock().by_key.keys().next().map(|k| k.0);
        assert_eq!(oldest, Some(now - 8 * SECOND));
        assert_eq!(
            s.insert_at(now, PUBSUB, message(now - 61 * SECOND, b"old", TOPIC)),
            Err(NotStored::Expired)
        );
        // Time passes: everything older than 60 s goes at the next insert.
        let later = now + 55 * SECOND;
        s.insert_at(later, PUBSUB, message(later, b"new", TOPIC))
            .expect("stored");
        assert_eq!(s.len(), 1);
        let size = s.size_bytes();

        let by_bytes = MemoryStore::new(MemoryStoreLimits {
            max_bytes: 2 * size,
            ..limits
        });
        for i in 0..4 {
            by_bytes
                .insert_at(now, PUBSUB, message(now + i, b"new", TOPIC))
                .expect("stored");
        }
        assert_eq!(by_bytes.len(), 2);
        assert_eq!(by_bytes.size_bytes(), 2 * size);
    }

    #[test]
    fn pages_forward_and_backward_like_the_spec() {
        let (s, all) = filled(25);
        let page = s.query(&topics_query(true, 10)).expect("page");
        assert_eq!(hashes(&page), all[..10]);
        assert_eq!(page.cursor, Some(all[9]), "forward: the newest included");
        let page = s.query(&topics_query(false, 10)).expect("page");
        assert_eq!(
            hashes(&page),
            all[15..],
            "oldest first, whatever the direction"
        );
        assert_eq!(page.cursor, Some(all[15]), "backward: the oldest included");
        let mut next = topics_query(false, 10);
        next.cursor = page.cursor;
        let page = s.query(&next).expect("page");
        assert_eq!(hashes(&page), all[5..15]);

        assert_eq!(walk_all(&s, topics_query(true, 7)), all);
        let mut backward = walk_all(&s, topics_query(false, 7));
        backward.reverse();
        assert_eq!(backward, all);
        // The last page has no cursor; an exact fit too.
        let page = s.query(&topics_query(true, 25)).expect("page");
        assert_eq!((page.messages.len(), page.cursor), (25, None));
    }

    #[test]
    fn filters_topics_time_ranges_and_hashes() {
        let (s, all) = filled(10);
        let now = unix_nanos();
        s.insert(PUBSUB, message(now, b"other topic", "/demls/1/h/proto"))
            .expect("stored");
        s.insert("/waku/2/rs/4242/1", message(now, b"other shard", TOPIC))
            .expect("stored");
        assert_eq!(walk_all(&s, topics_query(true, 3)), all);

        let page = s
            .query(&StoreQuery::from_request(&StoreQueryRequest::default()).expect("valid"))
            .expect("page");
        assert_eq!(page.messages.len(), 12, "no topic filter: everything");

        // [t3, t7): four messages, either way.
        let times: Vec<i64> = {
            let inner = s.lock();
            all.iter().map(|h| inner.by_hash[h]).collect()
        };
        for forward in [true, false] {
            let mut q = topics_query(forward, 100);
            q.filter = StoreFilter::Content {
                topics: Some(TopicFilter {
                    pubsub_topic: PUBSUB.into(),
                    content_topics: vec![TOPIC.into()],
                }),
                start: Some(times[3]),
                end: Some(times[7]),
            };
            let mut got = walk_all(&s, q);
            if !forward {
                got.reverse();
            }
            assert_eq!(got, all[3..7]);
        }

        let wanted = vec![all[8], all[2], all[5], MessageHash([9; 32])];
        let mut q = topics_query(true, 2);
        q.filter = StoreFilter::Hashes(wanted);
        assert_eq!(walk_all(&s, q.clone()), [all[2], all[5], all[8]]);
        q.direction = Direction::Backward;
        assert_eq!(walk_all(&s, q), [all[8], all[5], all[2]]);
    }

    #[test]
    fn unknown_cursor_is_an_error_and_years_are_fine() {
        let (s, _) = filled(5);
        let mut q = topics_query(true, 10);
        q.cursor = Some(MessageHash([1; 32]));
        assert_eq!(s.query(&q), Err(BackendError::CursorNotFound));
        let mut q = topics_query(true, 10);
        q.filter = StoreFilter::Content {
            topics: None,
            start: Some(i64::MIN),
            end: Some(i64::MAX),
        };
        assert_eq!(s.query(&q).map(|p| p.messages.len()), Ok(5));
        // An empty (start after end) range is no panic.
        q.filter = StoreFilter::Content {
            topics: None,
            start: Some(i64::MAX),
            end: Some(i64::MIN),
        };
        assert_eq!(s.query(&q).map(|p| p.messages.len()), Ok(0));
        q.direction = Direction::Backward;
        assert_eq!(s.query(&q).map(|p| p.messages.len()), Ok(0));
    }

    #[test]
    fn pages_stop_at_the_byte_budget_but_hold_one_message() {
        let s = store();
        let now = unix_nanos();
        let big: Vec<MessageHash> = (0..3)
            .map(|i| {
                s.insert(PUBSUB, message(now - 10 + i, &[i as u8; 1000], TOPIC))
                    .expect("stored")
            })
            .collect();
        let mut q = topics_query(true, MAX_PAGE_SIZE as u64);
        q.max_bytes = 2500;
        let page = s.query(&q).expect("page");
        assert_eq!(hashes(&page), big[..2]);
        assert_eq!(page.cursor, Some(big[1]));
        q.max_bytes = 1;
        let page = s.query(&q).expect("page");
        assert_eq!(hashes(&page), big[..1]);
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        /// Walking every page, either way, with any page size, yields every matching message
        /// exactly once, in order.
        #[test]
        fn paging_visits_each_message_once(
            times in proptest::collection::vec(0i64..50, 0..40),
            limit in 1u64..12,
            forward in any::<bool>(),
        ) {
            let s = store();
            let base = unix_nanos() - 100 * SECOND;
            let mut stored: Vec<(i64, MessageHash)> = times
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    let m = message(base + t * SECOND, &i.to_be_bytes(), TOPIC);
                    s.insert(PUBSUB, m).ok().map(|h| (base + t * SECOND, h))
                })
                .collect();
            stored.sort();
            let expected: Vec<MessageHash> = stored.into_iter().map(|(_, h)| h).collect();
            let mut got = walk_all(&s, topics_query(forward, limit));
            if !forward {
                got.reverse();
            }
            prop_assert_eq!(got, expected);
        }
    }
}
