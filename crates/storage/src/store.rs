//! The SQLite store of one node.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use demls_engine::{
    Epoch, GroupId, GroupTraffic, MlsStore, ProposalId, SnapshotWrite, StorageWrite, Timestamp,
    Topic, TopicKind, Transmit,
};
use demls_identity::Address;
use prost::Message;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use zeroize::Zeroizing;

use crate::at_rest::{self, Content, DataKeys, DbKey, encrypt_plaintext, open_keyed};
use crate::crypto::{Cipher, KdfParams, SALT_LEN, random};
use crate::records::{
    Delivery, EventRecord, NewEvent, NewMessage, OutboxEntry, ProposalRecord, ProposalState, Step,
    StepReceipt, StoredMessage,
};
use crate::{StorageError, schema};

/// The database file inside the data directory.
pub const DB_FILE: &str = "demls.db";

/// The plaintext whose sealed form checks the passphrase.
const KEY_CHECK: &[u8] = b"demls storage key check";

/// How hard SQLite works to keep committed transactions across power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a committed step is on disk before the node publishes anything of it
    /// (a key generation used in a sent ciphertext is never lost). For real nodes.
    Full,
    /// `synchronous=OFF`: for throw-away data directories (the demo). A crash of the process
    /// still keeps every committed step; a crash of the machine may not.
    Relaxed,
}

/// A node's database: MLS state, protocol snapshot, secrets, history, outbox, proposals and
/// an event log. The whole database is encrypted ([`crate::at_rest`]); secrets and message
/// texts are sealed once more, row by row, with a key of their own.
pub struct Store {
    conn: Connection,
    cipher: Cipher,
    key: DbKey,
    path: PathBuf,
    durability: Durability,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens (or creates) the SQLite database `path` encrypted with `key`, in write-ahead-log mode,
/// readable by this user only: its directory is created with mode 0700, the file with 0600.
pub(crate) fn open_private_wal(path: &Path, key: &DbKey) -> Result<Connection, StorageError> {
    create_private(path)?;
    let conn = open_keyed(path, key)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let journal: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(StorageError::corrupt("journal mode", journal));
    }
    Ok(conn)
}

/// Creates `path` (mode 0600) and its directory (mode 0700) if they are not there.
pub(crate) fn create_private(path: &Path) -> Result<(), StorageError> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))?;
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    Ok(())
}

fn to_i64(value: u64, what: &'static str) -> Result<i64, StorageError> {
    i64::try_from(value).map_err(|_| StorageError::OutOfRange(what))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StorageError> {
    u64::try_from(value).map_err(|_| StorageError::corrupt(what, format!("negative: {value}")))
}

fn group_of(name: &str, what: &str) -> Result<GroupId, StorageError> {
    GroupId::new(name).map_err(|e| StorageError::corrupt(what, e))
}

fn address_of(bytes: &[u8], what: &str) -> Result<Address, StorageError> {
    Address::from_slice(bytes)
        .ok_or_else(|| StorageError::corrupt(what, format!("{} bytes, not 20", bytes.len())))
}

fn topic_label(kind: TopicKind) -> &'static str {
    match kind {
        TopicKind::Welcome => "welcome",
        TopicKind::Application => "application",
    }
}

/// Votes as 21-byte records: address, then 1 for YES or 0 for NO.
fn encode_votes(votes: &[(Address, bool)]) -> Vec<u8> {
    votes
        .iter()
        .flat_map(|(a, yes)| a.as_bytes().iter().copied().chain([u8::from(*yes)]))
        .collect()
}

/// Reads votes as stored: 21-byte records (address, then 1 for YES or 0 for NO).
pub fn decode_votes(bytes: &[u8]) -> Result<Vec<(Address, bool)>, StorageError> {
    const RECORD: usize = Address::LEN + 1;
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(StorageError::corrupt(
            "proposal votes",
            format!("{} bytes is not a multiple of {RECORD}", bytes.len()),
        ));
    }
    bytes
        .chunks_exact(RECORD)
        .map(|record| {
            let address = address_of(&record[..Address::LEN], "proposal vote")?;
            match record[Address::LEN] {
                0 => Ok((address, false)),
                1 => Ok((address, true)),
                other => Err(StorageError::corrupt(
                    "proposal vote",
                    format!("vote byte {other}"),
                )),
            }
        })
        .collect()
}

/// Associated data naming a secret blob's row.
fn aad(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() + 1 + key.len());
    out.extend_from_slice(table.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

fn epoch_aad(group_id: &[u8], epoch: u64) -> Vec<u8> {
    let mut key = group_id.to_vec();
    key.extend_from_slice(&epoch.to_be_bytes());
    aad("mls_epochs", &key)
}

fn message_aad(group: &GroupId, id: &[u8]) -> Vec<u8> {
    let mut key = group.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(id);
    aad("messages", &key)
}

impl Store {
    /// Opens (or creates) the store in `dir`, creating the directory (mode 0700) and the
    /// database (mode 0600) if needed, encrypted whole with SQLCipher ([`crate::at_rest`]). A
    /// new store draws its salts and keeps the passphrase checks; an existing one refuses a
    /// wrong passphrase ([`StorageError::WrongPassphrase`]). A plaintext database of an
    /// earlier demls is encrypted, once the passphrase is checked against it.
    pub fn open(
        dir: &Path,
        passphrase: &str,
        durability: Durability,
    ) -> Result<Self, StorageError> {
        let path = dir.join(DB_FILE);
        create_private(&path)?;
        let plaintext = at_rest::probe(&path)? == Content::Plaintext;
        if plaintext {
            // Checked before the salt file is made for this passphrase and the database is
            // encrypted under it.
            let mut plain = Connection::open(&path)?;
            schema::migrate(&mut plain)?;
            Self::unlock(&mut plain, passphrase)?;
        }
        let key = DataKeys::unlock(dir, passphrase)?.store;
        if plaintext {
            encrypt_plaintext(&path, &key)?;
        }
        let mut conn = open_private_wal(&path, &key)?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Relaxed => "OFF",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate(&mut conn)?;
        let cipher = Self::unlock(&mut conn, passphrase)?;
        Ok(Self {
            conn,
            cipher,
            key,
            path,
            durability,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another connection to the database, keyed: for tools and tests that read or write rows
    /// directly.
    pub fn connect(&self) -> Result<Connection, StorageError> {
        let conn = open_keyed(&self.path, &self.key)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn)
    }

    fn meta(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Derives the key, creating the salt and check value on first use.
    fn unlock(conn: &mut Connection, passphrase: &str) -> Result<Cipher, StorageError> {
        let salt = Self::meta(conn, "kdf_salt")?;
        let (Some(salt), Some(kdf), Some(check)) = (
            salt,
            Self::meta(conn, "kdf")?,
            Self::meta(conn, "key_check")?,
        ) else {
            let salt = random::<SALT_LEN>()?;
            let params = KdfParams::DEFAULT;
            let cipher = Cipher::derive(passphrase, &salt, params)?;
            let check = cipher.seal(&aad("meta", b"key_check"), KEY_CHECK)?;
            let tx = conn.transaction()?;
            let put = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
            tx.execute(put, params!["kdf_salt", salt.to_vec()])?;
            tx.execute(put, params!["kdf", params.encode().into_bytes()])?;
            tx.execute(put, params!["key_check", check])?;
            tx.commit()?;
            return Ok(cipher);
        };
        let kdf = String::from_utf8(kdf).map_err(|e| StorageError::corrupt("kdf", e))?;
        let cipher = Cipher::derive(passphrase, &salt, KdfParams::decode(&kdf)?)?;
        match cipher.open("key check", &aad("meta", b"key_check"), &check) {
            Ok(plain) if plain.as_slice() == KEY_CHECK => Ok(cipher),
            _ => Err(StorageError::WrongPassphrase),
        }
    }

    // ----- secrets and settings -----

    /// A secret stored with [`Store::put_secret`].
    pub fn secret(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        blob.map(|b| {
            self.cipher.open(
                &format!("secret {name}"),
                &aad("secrets", name.as_bytes()),
                &b,
            )
        })
        .transpose()
    }

    /// Stores a secret, encrypted.
    pub fn put_secret(&mut self, name: &str, value: &[u8]) -> Result<(), StorageError> {
        let blob = self.cipher.seal(&aad("secrets", name.as_bytes()), value)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, blob],
        )?;
        Ok(())
    }

    /// A plain setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores a plain setting.
    pub fn put_setting(&mut self, key: &str, value: &str) -> Result<(), StorageError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    // ----- engine state -----

    /// The MLS state, loaded into a journaling [`MlsStore`] for [`demls_engine::Engine::restore`].
    pub fn load_mls(&self, epoch_retention: usize) -> Result<MlsStore, StorageError> {
        let store = MlsStore::journaled(epoch_retention);
        let mut groups = self
            .conn
            .prepare("SELECT group_id, state FROM mls_groups")?;
        let mut epochs = self
            .conn
            .prepare("SELECT epoch, data FROM mls_epochs WHERE group_id = ?1 ORDER BY epoch")?;
        let mut traffic = self
            .conn
            .prepare("SELECT traffic FROM mls_traffic WHERE group_id = ?1 ORDER BY seq")?;
        let rows = groups.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (group_id, blob) = row?;
            let state =
                self.cipher
                    .open("MLS group state", &aad("mls_groups", &group_id), &blob)?;
            let mut retained = Vec::new();
            let rows = epochs.query_map([&group_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (epoch, blob) = row?;
                let epoch = to_u64(epoch, "MLS epoch id")?;
                let data = self
                    .cipher
                    .open("MLS epoch", &epoch_aad(&group_id, epoch), &blob)?;
                retained.push((epoch, data.to_vec()));
            }
            store.restore_group(group_id.clone(), state.to_vec(), retained);
            let rows = traffic.query_map([&group_id], |r| r.get::<_, Vec<u8>>(0))?;
            for row in rows {
                let data =
                    self.cipher
                        .open("MLS traffic", &aad("mls_traffic", &group_id), &row?)?;
                let decoded = GroupTraffic::decode(data.as_slice())
                    .map_err(|e| StorageError::corrupt("MLS traffic", e))?;
                store.restore_traffic(&group_id, decoded);
            }
        }
        let mut packages = self.conn.prepare("SELECT id, data FROM key_packages")?;
        let rows = packages.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (id, blob) = row?;
            let data = self
                .cipher
                .open("key package", &aad("key_packages", &id), &blob)?;
            store
                .restore_key_package(id, &data)
                .map_err(|e| StorageError::corrupt("key package", e))?;
        }
        Ok(store)
    }

    /// The last engine snapshot with the votes journaled since merged in
    /// ([`demls_engine::EngineSnapshot::with_journal`]), if the engine ever ran.
    pub fn engine_snapshot(&self) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT snapshot FROM engine WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        let Some(blob) = blob else {
            return Ok(None);
        };
        let snapshot = self
            .cipher
            .open("engine snapshot", &aad("engine", b"snapshot"), &blob)?;
        let journal = self.vote_journal()?;
        if journal.is_empty() {
            return Ok(Some(snapshot));
        }
        demls_engine::EngineSnapshot::with_journal(&snapshot, &journal)
            .map(|merged| Some(Zeroizing::new(merged)))
            .map_err(|e| StorageError::corrupt("engine vote journal", e))
    }

    /// The votes journaled since the engine snapshot was last written whole, oldest first.
    fn vote_journal(&self) -> Result<Vec<Zeroizing<Vec<u8>>>, StorageError> {
        let mut statement = self
            .conn
            .prepare("SELECT vote FROM engine_votes ORDER BY seq")?;
        let rows = statement.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|row| {
            self.cipher
                .open("engine vote", &aad("engine_votes", &[]), &row?)
        })
        .collect()
    }

    /// Writes one engine step atomically: MLS journal, snapshot, history, outbox, proposals,
    /// events. Either all of it is on disk afterwards, or (on error or crash) none of it.
    pub fn commit_step(&mut self, step: &Step) -> Result<StepReceipt, StorageError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for write in &step.storage {
            apply_write(&tx, &self.cipher, write)?;
        }
        match &step.snapshot {
            SnapshotWrite::Unchanged => {}
            SnapshotWrite::Whole(snapshot) => {
                let blob = self.cipher.seal(&aad("engine", b"snapshot"), snapshot)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO engine (id, snapshot, updated_at) VALUES (1, ?1, ?2)",
                )?
                .execute(params![blob, to_i64(step.now.0, "time")?])?;
                tx.prepare_cached("DELETE FROM engine_votes")?.execute([])?;
            }
            SnapshotWrite::Votes(votes) => {
                for vote in votes {
                    let sealed = self.cipher.seal(&aad("engine_votes", &[]), vote)?;
                    tx.prepare_cached("INSERT INTO engine_votes (vote) VALUES (?1)")?
                        .execute(params![sealed])?;
                }
            }
        }
        let mut receipt = StepReceipt::default();
        for transmit in &step.transmits {
            tx.prepare_cached(
                "INSERT INTO outbox (group_id, topic, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                transmit.topic.group.as_str(),
                topic_label(transmit.topic.kind),
                transmit.payload,
                to_i64(step.now.0, "time")?
            ])?;
            receipt
                .outbox
                .push(to_u64(tx.last_insert_rowid(), "outbox seq")?);
        }
        let last_outbox = receipt.outbox.last().copied();
        for message in &step.messages {
            if let Some(stored) = insert_message(&tx, &self.cipher, message, last_outbox)? {
                receipt.messages.push(stored);
            }
        }
        for proposal in &step.proposals {
            upsert_proposal(&tx, proposal)?;
        }
        for (group, id) in &step.acknowledged {
            receipt
                .delivered
                .extend(mark_delivered(&tx, &self.cipher, group, id)?);
        }
        for event in &step.events {
            tx.prepare_cached("INSERT INTO events (at, group_id, body) VALUES (?1, ?2, ?3)")?
                .execute(params![
                    to_i64(event.at.0, "time")?,
                    event.group.as_ref().map(GroupId::as_str),
                    event.body
                ])?;
            receipt.events.push(EventRecord {
                seq: to_u64(tx.last_insert_rowid(), "event seq")?,
                event: event.clone(),
            });
        }
        tx.commit()?;
        Ok(receipt)
    }

    // ----- outbox -----

    /// Records that outbox entries up to `seq` were handed to the network. Returns the own
    /// messages that became [`Delivery::Sent`].
    pub fn mark_published(
        &mut self,
        seq: u64,
        at: Timestamp,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let seq = to_i64(seq, "outbox seq")?;
        // Losing this mark to a power cut only publishes the messages again (peers drop
        // duplicates by message id), so it is not synced on its own: the next step's synced
        // commit carries it to disk. Half the fsyncs of a step that sends.
        if self.durability == Durability::Full {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let sent = self.mark_published_unsynced(seq, at);
        if self.durability == Durability::Full {
            self.conn.pragma_update(None, "synchronous", "FULL")?;
        }
        sent
    }

    fn mark_published_unsynced(
        &mut self,
        seq: i64,
        at: Timestamp,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "UPDATE outbox SET published_at = ?2 WHERE seq <= ?1 AND published_at IS NULL",
        )?
        .execute(params![seq, to_i64(at.0, "time")?])?;
        let sent = {
            let mut select = tx.prepare(&format!(
                "{MESSAGE_COLUMNS} WHERE delivery = 'queued' AND outbox_seq <= ?1 ORDER BY seq"
            ))?;
            let rows = select.query_map([seq], raw_message)?;
            let mut sent = Vec::new();
            for row in rows {
                let mut message = decode_message(&self.cipher, row?)?;
                message.delivery = Delivery::Sent;
                sent.push(message);
            }
            sent
        };
        tx.prepare_cached(
            "UPDATE messages SET delivery = 'sent' WHERE delivery = 'queued' AND outbox_seq <= ?1",
        )?
        .execute([seq])?;
        tx.commit()?;
        Ok(sent)
    }

    /// Outbox entries not yet published, oldest first.
    pub fn unpublished(&self) -> Result<Vec<OutboxEntry>, StorageError> {
        self.outbox_query("published_at IS NULL ORDER BY seq", [])
    }

    fn outbox_query(
        &self,
        condition: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<OutboxEntry>, StorageError> {
        let mut select = self.conn.prepare(&format!(
            "SELECT seq, group_id, topic, payload, created_at, published_at FROM outbox \
             WHERE {condition}"
        ))?;
        let rows = select
            .query_map(args, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(seq, group, topic, payload, created, published)| {
                let kind = match topic.as_str() {
                    "welcome" => TopicKind::Welcome,
                    "application" => TopicKind::Application,
                    other => return Err(StorageError::corrupt("outbox topic", other)),
                };
                Ok(OutboxEntry {
                    seq: to_u64(seq, "outbox seq")?,
                    transmit: Transmit {
                        topic: Topic {
                            group: group_of(&group, "outbox group")?,
                            kind,
                        },
                        payload,
                    },
                    created_at: Timestamp(to_u64(created, "outbox time")?),
                    published_at: published
                        .map(|t| to_u64(t, "outbox time").map(Timestamp))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Forgets published outbox entries older than `before`, and event log entries beyond the
    /// newest `keep_events`.
    pub fn prune(&mut self, before: Timestamp, keep_events: u64) -> Result<(), StorageError> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ?1",
        )?
        .execute([to_i64(before.0, "time")?])?;
        tx.prepare_cached("DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1")?
            .execute([to_i64(keep_events, "event count")?])?;
        tx.commit()?;
        Ok(())
    }

    // ----- history, proposals, events -----

    /// Messages of `group` after position `after`, oldest first, at most `limit`.
    pub fn messages(
        &self,
        group: &GroupId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let mut select = self.conn.prepare(&format!(
            "{MESSAGE_COLUMNS} WHERE group_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows = select.query_map(
            params![
                group.as_str(),
                to_i64(after, "message seq")?,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            raw_message,
        )?;
        rows.map(|row| decode_message(&self.cipher, row?)).collect()
    }

    /// The ids and epochs of the last `limit` messages of `group` in the history, oldest
    /// first (for the engine's causal histories after a restart).
    pub fn recent_message_ids(
        &self,
        group: &GroupId,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Epoch)>, StorageError> {
        let mut select = self.conn.prepare_cached(
            "SELECT message_id, epoch FROM messages WHERE group_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = select.query_map(
            params![group.as_str(), i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)),
        )?;
        let mut ids = rows
            .map(|row| {
                let (id, epoch) = row?;
                Ok((id, Epoch(to_u64(epoch, "message epoch")?)))
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        ids.reverse();
        Ok(ids)
    }

    /// Proposals of `group`, oldest first.
    pub fn proposals(&self, group: &GroupId) -> Result<Vec<ProposalRecord>, StorageError> {
        self.proposals_where("group_id = ?1", group.as_str())
    }

    /// Every proposal still open.
    pub fn open_proposals(&self) -> Result<Vec<ProposalRecord>, StorageError> {
        self.proposals_where("state = ?1", ProposalState::Open.as_str())
    }

    fn proposals_where(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<Vec<ProposalRecord>, StorageError> {
        let mut select = self.conn.prepare(&format!(
            "SELECT group_id, proposal_id, epoch, owner, change, opened_at, deadline, \
             state, decided_at, committed_epoch, votes FROM proposals WHERE {condition} \
             ORDER BY opened_at, proposal_id"
        ))?;
        let rows = select.query_map([value], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ),
                (r.get::<_, Vec<u8>>(3)?, r.get::<_, String>(4)?),
                (
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                ),
                (
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, Vec<u8>>(10)?,
                ),
            ))
        })?;
        rows.map(|row| {
            let (
                (group, id, epoch),
                (owner, change),
                (opened, deadline, state),
                (decided, committed, votes),
            ) = row?;
            Ok(ProposalRecord {
                group: group_of(&group, "proposal group")?,
                id: ProposalId(
                    u32::try_from(id).map_err(|e| StorageError::corrupt("proposal id", e))?,
                ),
                epoch: Epoch(to_u64(epoch, "proposal epoch")?),
                owner: address_of(&owner, "proposal owner")?,
                change,
                opened_at: Timestamp(to_u64(opened, "proposal time")?),
                deadline: Timestamp(to_u64(deadline, "proposal deadline")?),
                state: ProposalState::parse(&state)
                    .ok_or_else(|| StorageError::corrupt("proposal state", &state))?,
                decided_at: decided
                    .map(|t| to_u64(t, "proposal time").map(Timestamp))
                    .transpose()?,
                committed_epoch: committed
                    .map(|e| to_u64(e, "proposal epoch").map(Epoch))
                    .transpose()?,
                votes: decode_votes(&votes)?,
            })
        })
        .collect()
    }

    /// Event log entries after position `after`, oldest first, at most `limit`.
    pub fn events(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>, StorageError> {
        let mut select = self.conn.prepare(
            "SELECT seq, at, group_id, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = select.query_map(
            params![
                to_i64(after, "event seq")?,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )?;
        rows.map(|row| {
            let (seq, at, group, body) = row?;
            Ok(EventRecord {
                seq: to_u64(seq, "event seq")?,
                event: NewEvent {
                    at: Timestamp(to_u64(at, "event time")?),
                    group: group.map(|g| group_of(&g, "event group")).transpose()?,
                    body,
                },
            })
        })
        .collect()
    }
}

const MESSAGE_COLUMNS: &str = "SELECT seq, group_id, message_id, sender, text, sent_at, epoch, \
                               received_at, own, delivery, lamport FROM messages";

/// A messages row as SQLite returns it.
type RawMessage = (
    (i64, String, Vec<u8>, Vec<u8>, Vec<u8>),
    (i64, i64, i64, i64, String, i64),
);

fn raw_message(r: &Row<'_>) -> rusqlite::Result<RawMessage> {
    Ok((
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
        (
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
        ),
    ))
}

fn decode_message(cipher: &Cipher, raw: RawMessage) -> Result<StoredMessage, StorageError> {
    let ((seq, group, id, sender, text), (sent_at, epoch, received_at, own, delivery, lamport)) =
        raw;
    let group = group_of(&group, "message group")?;
    let plain = cipher.open("message text", &message_aad(&group, &id), &text)?;
    let text =
        String::from_utf8(plain.to_vec()).map_err(|e| StorageError::corrupt("message text", e))?;
    Ok(StoredMessage {
        seq: to_u64(seq, "message seq")?,
        message: NewMessage {
            group,
            id,
            sender: address_of(&sender, "message sender")?,
            text,
            sent_at: Timestamp(to_u64(sent_at, "message time")?),
            epoch: Epoch(to_u64(epoch, "message epoch")?),
            lamport: to_u64(lamport, "message clock")?,
            received_at: Timestamp(to_u64(received_at, "message time")?),
            own: match own {
                0 => false,
                1 => true,
                other => return Err(StorageError::corrupt("message direction", other)),
            },
        },
        delivery: Delivery::parse(&delivery)
            .ok_or_else(|| StorageError::corrupt("message delivery", &delivery))?,
    })
}

fn insert_message(
    tx: &Transaction<'_>,
    cipher: &Cipher,
    message: &NewMessage,
    last_outbox: Option<u64>,
) -> Result<Option<StoredMessage>, StorageError> {
    let (delivery, outbox_seq) = match (message.own, last_outbox) {
        (false, _) => (Delivery::Received, None),
        (true, Some(seq)) => (Delivery::Queued, Some(to_i64(seq, "outbox seq")?)),
        (true, None) => (Delivery::Sent, None),
    };
    let text = cipher.seal(
        &message_aad(&message.group, &message.id),
        message.text.as_bytes(),
    )?;
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO messages (group_id, message_id, sender, text, sent_at, epoch, \
         received_at, own, delivery, outbox_seq, lamport) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            message.group.as_str(),
            message.id,
            message.sender.as_bytes().to_vec(),
            text,
            to_i64(message.sent_at.0, "message time")?,
            to_i64(message.epoch.0, "epoch")?,
            to_i64(message.received_at.0, "message time")?,
            i64::from(message.own),
            delivery.as_str(),
            outbox_seq,
            to_i64(message.lamport, "message clock")?
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    Ok(Some(StoredMessage {
        seq: to_u64(tx.last_insert_rowid(), "message seq")?,
        message: message.clone(),
        delivery,
    }))
}

/// Marks an own message as delivered (another member has it); the message if it changed.
fn mark_delivered(
    tx: &Transaction<'_>,
    cipher: &Cipher,
    group: &GroupId,
    id: &[u8],
) -> Result<Option<StoredMessage>, StorageError> {
    let changed = tx
        .prepare_cached(
            "UPDATE messages SET delivery = 'delivered' \
             WHERE group_id = ?1 AND message_id = ?2 AND own = 1 AND delivery != 'delivered'",
        )?
        .execute(params![group.as_str(), id])?;
    if changed == 0 {
        return Ok(None);
    }
    let raw = tx
        .prepare_cached(&format!(
            "{MESSAGE_COLUMNS} WHERE group_id = ?1 AND message_id = ?2"
        ))?
        .query_row(params![group.as_str(), id], raw_message)
        .optional()?;
    raw.map(|raw| decode_message(cipher, raw)).transpose()
}

fn upsert_proposal(tx: &Transaction<'_>, p: &ProposalRecord) -> Result<(), StorageError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO proposals (group_id, proposal_id, epoch, owner, change, \
         opened_at, deadline, state, decided_at, committed_epoch, votes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        p.group.as_str(),
        i64::from(p.id.0),
        to_i64(p.epoch.0, "epoch")?,
        p.owner.as_bytes().to_vec(),
        p.change,
        to_i64(p.opened_at.0, "time")?,
        to_i64(p.deadline.0, "time")?,
        p.state.as_str(),
        p.decided_at.map(|t| to_i64(t.0, "time")).transpose()?,
        p.committed_epoch
            .map(|e| to_i64(e.0, "epoch"))
            .transpose()?,
        encode_votes(&p.votes)
    ])?;
    Ok(())
}

fn apply_write(
    tx: &Transaction<'_>,
    cipher: &Cipher,
    write: &StorageWrite,
) -> Result<(), StorageError> {
    match write {
        StorageWrite::Group {
            group_id,
            snapshot,
            epochs,
            oldest_retained_epoch,
        } => {
            let state = cipher.seal(&aad("mls_groups", group_id), snapshot)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO mls_groups (group_id, state) VALUES (?1, ?2)",
            )?
            .execute(params![group_id, state])?;
            for (epoch, data) in epochs {
                let sealed = cipher.seal(&epoch_aad(group_id, *epoch), data)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO mls_epochs (group_id, epoch, data) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    group_id,
                    to_i64(*epoch, "epoch id")?,
                    sealed
                ])?;
            }
            if let Some(oldest) = oldest_retained_epoch {
                tx.prepare_cached("DELETE FROM mls_epochs WHERE group_id = ?1 AND epoch < ?2")?
                    .execute(params![group_id, to_i64(*oldest, "epoch id")?])?;
            }
            tx.prepare_cached("DELETE FROM mls_traffic WHERE group_id = ?1")?
                .execute([group_id])?;
        }
        StorageWrite::GroupTraffic { group_id, traffic } => {
            let sealed = cipher.seal(&aad("mls_traffic", group_id), &traffic.encode_to_vec())?;
            tx.prepare_cached("INSERT INTO mls_traffic (group_id, traffic) VALUES (?1, ?2)")?
                .execute(params![group_id, sealed])?;
        }
        StorageWrite::GroupDeleted { group_id } => {
            tx.prepare_cached("DELETE FROM mls_groups WHERE group_id = ?1")?
                .execute([group_id])?;
            tx.prepare_cached("DELETE FROM mls_epochs WHERE group_id = ?1")?
                .execute([group_id])?;
            tx.prepare_cached("DELETE FROM mls_traffic WHERE group_id = ?1")?
                .execute([group_id])?;
        }
        StorageWrite::KeyPackage { id, data } => {
            let sealed = cipher.seal(&aad("key_packages", id), data)?;
            tx.prepare_cached("INSERT OR REPLACE INTO key_packages (id, data) VALUES (?1, ?2)")?
                .execute(params![id, sealed])?;
        }
        StorageWrite::KeyPackageDeleted { id } => {
            tx.prepare_cached("DELETE FROM key_packages WHERE id = ?1")?
                .execute([id])?;
        }
    }
    Ok(())
}
