//! The archive of network messages a node keeps for its groups and serves to peers' history
//! queries (Waku Store): each message as it came off the wire, by its hash, topics and
//! timestamp.
//!
//! It lives in its own database file beside the [`crate::Store`], so that peers' queries (on
//! other threads) never wait on an engine step's transaction. Its payloads are what the
//! network already carried (MLS ciphertexts and signed protocol messages), but which groups a
//! node is in and when they spoke is not for a seized disk to tell: the file is encrypted
//! whole, like the store ([`crate::at_rest`]). It is bounded by age, count and size
//! ([`ArchiveLimits`]); the oldest messages go first. A message that a newer one replaces (a
//! steward's periodic announcement) is kept only until that newer one comes
//! ([`ArchivedMessage::keep_latest`]), so that a stream of them never pushes chat out of the
//! count and size bounds. A lost tail (a crash before SQLite synced) costs nothing that peers cannot give back,
//! so it is written with `synchronous=NORMAL`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::StorageError;
use crate::at_rest::{self, Content, DataKeys, encrypt_plaintext};
use crate::store::{create_private, open_private_wal};

/// The archive's database file in a data directory.
pub const ARCHIVE_FILE: &str = "archive.sqlite";

/// What an encoded message costs in a page beyond its own bytes (its hash, its pubsub topic's
/// framing, and the fields' tags and lengths): an upper bound, so that a page measured with it
/// never exceeds its byte budget.
const ENTRY_OVERHEAD: usize = 64;

/// How much an [`Archive`] keeps; beyond any bound the oldest messages go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// The most messages kept.
    pub max_messages: u64,
    /// The most bytes of encoded messages kept.
    pub max_bytes: u64,
    /// Messages whose timestamp is older than this are dropped.
    pub max_age: Duration,
}

/// How long an archive keeps messages unless told otherwise: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for ArchiveLimits {
    /// 200,000 messages, 512 MiB, [`DEFAULT_RETENTION`].
    fn default() -> ArchiveLimits {
        ArchiveLimits {
            max_messages: 200_000,
            max_bytes: 512 * 1024 * 1024,
            max_age: DEFAULT_RETENTION,
        }
    }
}

/// A message as archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// Its deterministic hash on its pubsub topic.
    pub hash: [u8; 32],
    /// The pubsub topic it was relayed on.
    pub pubsub_topic: String,
    /// Its content topic.
    pub content_topic: String,
    /// Its timestamp (Unix nanoseconds).
    pub timestamp: i64,
    /// The message, encoded as on the wire.
    pub encoded: Vec<u8>,
    /// Set when only the newest message with this key on the same content topic matters (a
    /// steward's announcement of a group replaces its earlier ones): the archive keeps that
    /// newest one and drops, or does not take, the others.
    pub keep_latest: Option<Vec<u8>>,
}

impl ArchivedMessage {
    /// Its size in a page of an answer, at most.
    pub fn page_size(&self) -> usize {
        self.encoded.len() + self.pubsub_topic.len() + ENTRY_OVERHEAD
    }
}

/// Which way a query walks the archive (ordered by timestamp, then hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// What a query selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Messages in a time range, on some topics.
    Range {
        /// Only messages relayed on this pubsub topic (any when `None`).
        pubsub_topic: Option<String>,
        /// Only messages on these content topics (any when empty).
        content_topics: Vec<String>,
        /// The earliest timestamp (inclusive).
        start: Option<i64>,
        /// The timestamp to stop before (exclusive).
        end: Option<i64>,
    },
    /// The messages with these hashes.
    Hashes(Vec<[u8; 32]>),
}

/// A query of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// What to select.
    pub selection: Selection,
    /// Continue after (exclusive) the message with this hash.
    pub after: Option<[u8; 32]>,
    /// Which way to walk.
    pub walk: Walk,
    /// The most messages in the page.
    pub limit: usize,
    /// The page stops before the [`ArchivedMessage::page_size`]s of its messages exceed this,
    /// but holds at least one message.
    pub max_bytes: usize,
}

/// One page of an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivePage {
    /// The messages, oldest first whatever the walk.
    pub messages: Vec<ArchivedMessage>,
    /// Set when more messages match: the hash of the last message of the walk in the page.
    pub next: Option<[u8; 32]>,
}

/// The archive; shared between the node's task (which adds) and the threads answering peers.
#[derive(Debug)]
pub struct Archive {
    conn: Mutex<Connection>,
    limits: ArchiveLimits,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS waku_messages (
    hash BLOB PRIMARY KEY NOT NULL,
    pubsub_topic TEXT NOT NULL,
    content_topic TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    message BLOB NOT NULL,
    keep_latest BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS waku_messages_by_time ON waku_messages (timestamp, hash);
CREATE INDEX IF NOT EXISTS waku_messages_by_topic
    ON waku_messages (content_topic, timestamp, hash);
";

/// The index of the messages a newer one replaces; created after [`add_keep_latest`] has
/// given an earlier demls's table the column.
const KEEP_LATEST_INDEX: &str = "
CREATE INDEX IF NOT EXISTS waku_messages_latest
    ON waku_messages (content_topic, keep_latest) WHERE keep_latest IS NOT NULL;
";

impl Archive {
    /// Opens (or creates) the archive in `dir` (created with mode 0700; the file with 0600),
    /// encrypted with the data directory's key for `passphrase` ([`crate::at_rest`]). A
    /// plaintext archive of an earlier demls is encrypted.
    pub fn open(
        dir: &Path,
        passphrase: &str,
        limits: ArchiveLimits,
    ) -> Result<Archive, StorageError> {
        let path = dir.join(ARCHIVE_FILE);
        create_private(&path)?;
        let key = DataKeys::unlock(dir, passphrase)?.archive;
        if at_rest::probe(&path)? == Content::Plaintext {
            encrypt_plaintext(&path, &key)?;
        }
        let conn = open_private_wal(&path, &key)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        add_keep_latest(&conn)?;
        conn.execute_batch(KEEP_LATEST_INDEX)?;
        Ok(Archive {
            conn: Mutex::new(conn),
            limits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic cannot leave a half-done transaction behind (SQLite rolls it back), so a
        // poisoned lock still guards a valid connection.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `messages` in one transaction; returns how many were new. A message with a
    /// [`ArchivedMessage::keep_latest`] key replaces an older one with the same key and content
    /// topic, and is not taken when a newer one is held.
    pub fn insert(&self, messages: &[ArchivedMessage]) -> Result<usize, StorageError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO waku_messages
                 (hash, pubsub_topic, content_topic, timestamp, message, keep_latest)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )?;
            let mut held = tx.prepare_cached(
                "SELECT timestamp, hash FROM waku_messages
                 WHERE content_topic = ? AND keep_latest = ?
                 ORDER BY timestamp DESC, hash DESC LIMIT 1",
            )?;
            let mut replace = tx.prepare_cached(
                "DELETE FROM waku_messages WHERE content_topic = ? AND keep_latest = ?",
            )?;
            for m in messages {
                if let Some(key) = &m.keep_latest {
                    let newest: Option<(i64, Vec<u8>)> = held
                        .query_row(params![m.content_topic, key], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })
                        .optional()?;
                    let newer_held = newest.is_some_and(|(timestamp, hash)| {
                        (timestamp, hash.as_slice()) >= (m.timestamp, &m.hash[..])
                    });
                    if newer_held {
                        continue;
                    }
                    replace.execute(params![m.content_topic, key])?;
                }
                added += insert.execute(params![
                    &m.hash[..],
                    m.pubsub_topic,
                    m.content_topic,
                    m.timestamp,
                    m.encoded,
                    m.keep_latest
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Whether the archive holds the message with `hash`.
    pub fn contains(&self, hash: &[u8; 32]) -> Result<bool, StorageError> {
        Ok(self
            .lock()
            .prepare_cached("SELECT 1 FROM waku_messages WHERE hash = ?")?
            .exists([&hash[..]])?)
    }

    /// The newest timestamp of a message on any of `content_topics`.
    pub fn latest(&self, content_topics: &[String]) -> Result<Option<i64>, StorageError> {
        let sql = format!(
            "SELECT MAX(timestamp) FROM waku_messages WHERE content_topic IN ({})",
            placeholders(content_topics.len())
        );
        Ok(self
            .lock()
            .query_row(&sql, params_from_iter(content_topics), |r| r.get(0))?)
    }

    /// One page of the messages matching `query`. A cursor the archive does not hold is
    /// [`StorageError::UnknownCursor`]. The work is bounded by `query.limit`, whatever the
    /// time range.
    pub fn query(&self, query: &ArchiveQuery) -> Result<ArchivePage, StorageError> {
        let conn = self.lock();
        let after = match query.after {
            None => None,
            Some(hash) => {
                let timestamp: Option<i64> = conn
                    .query_row(
                        "SELECT timestamp FROM waku_messages WHERE hash = ?",
                        [&hash[..]],
                        |r| r.get(0),
                    )
                    .optional()?;
                Some((timestamp.ok_or(StorageError::UnknownCursor)?, hash))
            }
        };
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        match &query.selection {
            Selection::Range {
                pubsub_topic,
                content_topics,
                start,
                end,
            } => {
                if let Some(topic) = pubsub_topic {
                    clauses.push("pubsub_topic = ?".to_owned());
                    values.push(Value::Text(topic.clone()));
                }
                if !content_topics.is_empty() {
                    clauses.push(format!(
                        "content_topic IN ({})",
                        placeholders(content_topics.len())
                    ));
                    values.extend(content_topics.iter().cloned().map(Value::Text));
                }
                if let Some(start) = start {
                    clauses.push("timestamp >= ?".to_owned());
                    values.push(Value::Integer(*start));
                }
                if let Some(end) = end {
                    clauses.push("timestamp < ?".to_owned());
                    values.push(Value::Integer(*end));
                }
            }
            Selection::Hashes(hashes) => {
                clauses.push(format!("hash IN ({})", placeholders(hashes.len())));
                values.extend(hashes.iter().map(|h| Value::Blob(h.to_vec())));
            }
        }
        let (beyond, order) = match query.walk {
            Walk::Forward => (">", "ASC"),
            Walk::Backward => ("<", "DESC"),
        };
        if let Some((timestamp, hash)) = after {
            clauses.push(format!("(timestamp, hash) {beyond} (?, ?)"));
            values.push(Value::Integer(timestamp));
            values.push(Value::Blob(hash.to_vec()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let limit = query.limit.max(1);
        values.push(Value::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT hash, pubsub_topic, content_topic, timestamp, message, keep_latest
             FROM waku_messages {filter} ORDER BY timestamp {order}, hash {order} LIMIT ?"
        );
        let mut statement = conn.prepare(&sql)?;
        let mut rows = statement.query(params_from_iter(values))?;
        let mut page = ArchivePage::default();
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            let hash: Vec<u8> = row.get(0)?;
            let message = ArchivedMessage {
                hash: <[u8; 32]>::try_from(hash.as_slice())
                    .map_err(|_| StorageError::corrupt("archived message hash", hash.len()))?,
                pubsub_topic: row.get(1)?,
                content_topic: row.get(2)?,
                timestamp: row.get(3)?,
                encoded: row.get(4)?,
                keep_latest: row.get(5)?,
            };
            let full = page.messages.len() == limit
                || (!page.messages.is_empty() && bytes + message.page_size() > query.max_bytes);
            if full {
                page.next = page.messages.last().map(|m| m.hash);
                break;
            }
            bytes += message.page_size();
            page.messages.push(message);
        }
        if query.walk == Walk::Backward {
            page.messages.reverse();
        }
        Ok(page)
    }

    /// Drops messages older than the retention at `now` (Unix nanoseconds), then the oldest
    /// beyond the count and size bounds. Returns how many were dropped.
    pub fn prune(&self, now: i64) -> Result<usize, StorageError> {
        let age = i64::try_from(self.limits.max_age.as_nanos()).unwrap_or(i64::MAX);
        let conn = self.lock();
        let mut dropped = conn.execute(
            "DELETE FROM waku_messages WHERE timestamp < ?",
            [now.saturating_sub(age)],
        )?;
        let (count, _) = stats(&conn)?;
        if count > self.limits.max_messages {
            dropped += conn.execute(
                "DELETE FROM waku_messages WHERE hash IN
                 (SELECT hash FROM waku_messages ORDER BY timestamp, hash LIMIT ?)",
                [count - self.limits.max_messages],
            )?;
        }
        let (_, bytes) = stats(&conn)?;
        if bytes > self.limits.max_bytes {
            // Walk from the oldest until enough bytes are freed.
            let mut excess = bytes - self.limits.max_bytes;
            let mut statement = conn.prepare(
                "SELECT hash, length(message) FROM waku_messages ORDER BY timestamp, hash",
            )?;
            let mut rows = statement.query([])?;
            let mut doomed: Vec<Vec<u8>> = Vec::new();
            while excess > 0 {
                let Some(row) = rows.next()? else { break };
                let size: u64 = row.get(1)?;
                excess = excess.saturating_sub(size);
                doomed.push(row.get(0)?);
            }
            drop(rows);
            let mut delete = conn.prepare_cached("DELETE FROM waku_messages WHERE hash = ?")?;
            for hash in doomed {
                dropped += delete.execute([hash])?;
            }
        }
        Ok(dropped)
    }

    /// How many messages the archive holds, and their encoded bytes.
    pub fn stats(&self) -> Result<(u64, u64), StorageError> {
        stats(&self.lock())
    }
}

fn stats(conn: &Connection) -> Result<(u64, u64), StorageError> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(message)), 0) FROM waku_messages",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Gives the table of an archive made before messages could replace older ones its
/// `keep_latest` column (null: every message it holds stays until the bounds drop it).
fn add_keep_latest(conn: &Connection) -> Result<(), StorageError> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('waku_messages') WHERE name = 'keep_latest'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE waku_messages ADD COLUMN keep_latest BLOB")?;
    }
    Ok(())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}
