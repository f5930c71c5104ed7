//! The database schema and its migrations, versioned with SQLite's `user_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`. A new version
//! appends a migration; existing ones never change. Opening a database runs
//! the missing migrations in one transaction; a database newer than this build
//! is refused.

use rusqlite::Connection;

use crate::StorageError;

/// Version 1: everything a node keeps.
const V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE mls_groups (group_id BLOB PRIMARY KEY, state BLOB NOT NULL) STRICT;
CREATE TABLE mls_epochs (
    group_id BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (group_id, epoch)
) STRICT;
CREATE TABLE key_packages (id BLOB PRIMARY KEY, data BLOB NOT NULL) STRICT;
CREATE TABLE engine (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL,
    message_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    text BLOB NOT NULL,
    sent_at INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    own INTEGER NOT NULL CHECK (own IN (0, 1)),
    delivery TEXT NOT NULL,
    outbox_seq INTEGER,
    UNIQUE (group_id, message_id)
) STRICT;
CREATE INDEX messages_by_group ON messages (group_id, seq);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    published_at INTEGER
) STRICT;
CREATE TABLE proposals (
    group_id TEXT NOT NULL,
    proposal_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    owner BLOB NOT NULL,
    change TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    state TEXT NOT NULL,
    decided_at INTEGER,
    committed_epoch INTEGER,
    votes BLOB NOT NULL,
    PRIMARY KEY (group_id, epoch, proposal_id)
) STRICT;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    group_id TEXT,
    body TEXT NOT NULL
) STRICT;
";

/// Version 2: indexes for marking messages published, so that a step costs the same
/// however long the history is (without them every publish scanned all messages).
const V2: &str = "
CREATE INDEX messages_queued ON messages (outbox_seq) WHERE delivery = 'queued';
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
";

/// Version 3: each message's Lamport clock (its place in causal order).
const V3: &str = "
ALTER TABLE messages ADD COLUMN lamport INTEGER NOT NULL DEFAULT 0;
";

/// Version 4: each group's MLS traffic since its state was last written (application
/// messages journaled instead of the whole state, replayed on it at start-up).
const V4: &str = "
CREATE TABLE mls_traffic (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    traffic BLOB NOT NULL
) STRICT;
CREATE INDEX mls_traffic_by_group ON mls_traffic (group_id, seq);
";

/// Version 5: the votes taken in since the engine snapshot was last written whole, journaled
/// instead of the whole snapshot (which holds every open proposal's votes), merged into it at
/// start-up.
const V5: &str = "
CREATE TABLE engine_votes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vote BLOB NOT NULL
) STRICT;
";

/// Every migration, oldest first.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StorageError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::UnsupportedSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let start = usize::try_from(found)
        .map_err(|_| StorageError::corrupt("schema version", format!("{found} is negative")))?;
    if start == MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for migration in &MIGRATIONS[start..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}
