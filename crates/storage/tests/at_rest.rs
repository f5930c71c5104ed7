//! Encryption at rest on the real files: neither database nor its write-ahead log holds a
//! group name, a sender, a message text or a content topic in the clear; a wrong passphrase
//! is refused; plaintext databases of an earlier demls are encrypted on first open.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use demls_engine::{Epoch, GroupId, ProposalId, Timestamp, Topic, TopicKind, Transmit};
use demls_identity::Address;
use demls_storage::{
    ARCHIVE_FILE, Archive, ArchiveLimits, ArchivedMessage, DB_FILE, Durability, NewEvent,
    NewMessage, ProposalRecord, ProposalState, SALT_FILE, SCHEMA_VERSION, Step, StorageError,
    Store,
};

const PASS: &str = "correct horse battery staple";
const GROUP: &str = "moonlight-garden";
const TEXT: &str = "meet at the old mill at dawn";
const PUBSUB_TOPIC: &str = "/waku/2/rs/4242/0";

fn group() -> GroupId {
    GroupId::new(GROUP).unwrap()
}

fn sender() -> Address {
    Address::new([0x5c; 20])
}

fn content_topic() -> String {
    format!("/demls/1/{GROUP}-app/proto")
}

/// One step with the group's name, the sender and the text in every table that can hold them.
fn step(id: u8) -> Step {
    Step {
        messages: vec![NewMessage {
            group: group(),
            id: vec![id; 16],
            sender: sender(),
            text: TEXT.to_owned(),
            sent_at: Timestamp(1_000),
            epoch: Epoch(1),
            lamport: u64::from(id),
            received_at: Timestamp(2_000),
            own: true,
        }],
        transmits: vec![Transmit {
            topic: Topic {
                group: group(),
                kind: TopicKind::Application,
            },
            payload: TEXT.as_bytes().to_vec(),
        }],
        proposals: vec![ProposalRecord {
            group: group(),
            id: ProposalId(u32::from(id)),
            epoch: Epoch(1),
            owner: sender(),
            change: format!("{{\"remove\":\"{}\"}}", sender()),
            opened_at: Timestamp(1),
            deadline: Timestamp(2),
            state: ProposalState::Open,
            decided_at: None,
            committed_epoch: None,
            votes: vec![(sender(), true)],
        }],
        events: vec![NewEvent {
            at: Timestamp(1),
            group: Some(group()),
            body: format!("{{\"from\":\"{}\",\"text\":\"{TEXT}\"}}", sender()),
        }],
        ..Step::default()
    }
}

fn archived(id: u8) -> ArchivedMessage {
    ArchivedMessage {
        hash: [id; 32],
        pubsub_topic: PUBSUB_TOPIC.into(),
        content_topic: content_topic(),
        timestamp: 5,
        encoded: TEXT.as_bytes().to_vec(),
        keep_latest: None,
    }
}

/// Asserts that no file of `dir` (databases, logs, shared-memory index, salt file) holds any
/// of what was written, nor a plaintext SQLite header. Returns the files looked at.
fn assert_nothing_readable(dir: &Path) -> Vec<String> {
    let address = sender();
    let needles: [(&str, Vec<u8>); 7] = [
        ("group name", GROUP.into()),
        ("message text", TEXT.into()),
        ("content topic", content_topic().into()),
        ("sender's bytes", address.as_bytes().to_vec()),
        ("sender's address", address.to_string().into()),
        ("pubsub topic", PUBSUB_TOPIC.into()),
        ("SQLite header", b"SQLite format 3".to_vec()),
    ];
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds the {what} in the clear",
                path.display()
            );
        }
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    names
}

#[test]
fn no_file_of_the_data_directory_holds_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), PASS, Durability::Full).unwrap();
    let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).unwrap();
    store.put_setting("last_group", GROUP).unwrap();
    for id in 1..=20 {
        store.commit_step(&step(id)).unwrap();
        archive.insert(&[archived(id)]).unwrap();
    }
    // While both are open, the writes are in the write-ahead logs.
    let files = assert_nothing_readable(dir.path());
    for file in [DB_FILE, ARCHIVE_FILE] {
        assert!(files.contains(&format!("{file}-wal")), "{files:?}");
    }
    assert!(files.contains(&SALT_FILE.to_owned()), "{files:?}");
    drop(store);
    drop(archive);
    // Closed: checkpointed into the database files.
    assert_nothing_readable(dir.path());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in [DB_FILE, ARCHIVE_FILE, SALT_FILE] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
}

#[test]
fn a_wrong_passphrase_is_refused_and_the_right_one_reopens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(dir.path(), PASS, Durability::Full).unwrap();
        store.commit_step(&step(1)).unwrap();
        let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).unwrap();
        archive.insert(&[archived(1)]).unwrap();
    }
    assert!(matches!(
        Store::open(dir.path(), "wrong", Durability::Full),
        Err(StorageError::WrongPassphrase)
    ));
    assert!(matches!(
        Archive::open(dir.path(), "wrong", ArchiveLimits::default()),
        Err(StorageError::WrongPassphrase)
    ));
    let store = Store::open(dir.path(), PASS, Durability::Full).unwrap();
    let history = store.messages(&group(), 0, 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].message.text, TEXT);
    let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).unwrap();
    assert!(archive.contains(&[1; 32]).unwrap());
}

#[test]
fn the_salt_file_made_by_whichever_opens_first_serves_both() {
    let dir = tempfile::tempdir().unwrap();
    drop(Archive::open(dir.path(), PASS, ArchiveLimits::default()).unwrap());
    assert!(matches!(
        Store::open(dir.path(), "wrong", Durability::Full),
        Err(StorageError::WrongPassphrase)
    ));
    let mut store = Store::open(dir.path(), PASS, Durability::Full).unwrap();
    store.commit_step(&step(1)).unwrap();
    drop(store);
    assert_eq!(
        Store::open(dir.path(), PASS, Durability::Full)
            .unwrap()
            .messages(&group(), 0, 10)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn without_its_salt_file_an_encrypted_store_is_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), PASS, Durability::Full).unwrap());
    std::fs::remove_file(dir.path().join(SALT_FILE)).unwrap();
    assert!(matches!(
        Store::open(dir.path(), PASS, Durability::Full),
        Err(StorageError::SaltMissing { .. })
    ));
    assert!(!dir.path().join(SALT_FILE).exists());
}

#[test]
fn a_damaged_database_is_corrupt_not_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), PASS, Durability::Full).unwrap());
    let path = dir.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100..200].fill(0xee);
    std::fs::write(&path, bytes).unwrap();
    match Store::open(dir.path(), PASS, Durability::Full) {
        Err(StorageError::Corrupt { .. }) => {}
        other => panic!("expected a corrupt database, got {other:?}"),
    }
}

/// Writes a plaintext copy of `store`'s database to `path`, as an earlier demls left it:
/// schema version 2 (before message clocks and MLS traffic), in write-ahead-log mode, with its last writes
/// still in the log (the copy is taken before any checkpoint, as after a crash).
fn plaintext_copy_at_version_2(store: &Store, path: &Path) {
    let staging = store.path().with_file_name("plain.db");
    let conn = store.connect().unwrap();
    conn.execute(
        "ATTACH DATABASE ?1 AS plain KEY ''",
        [staging.to_str().unwrap()],
    )
    .unwrap();
    conn.query_row("SELECT sqlcipher_export('plain')", [], |_| Ok(()))
        .unwrap();
    conn.execute("DETACH DATABASE plain", []).unwrap();
    drop(conn);
    let plain = rusqlite::Connection::open(&staging).unwrap();
    plain.pragma_update(None, "journal_mode", "WAL").unwrap();
    plain.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    plain
        .execute_batch(
            "ALTER TABLE messages DROP COLUMN lamport; DROP TABLE mls_traffic; DROP TABLE engine_votes; \
             PRAGMA user_version = 2; \
             UPDATE settings SET value = value || '!'",
        )
        .unwrap();
    std::fs::copy(&staging, path).unwrap();
    let wal = |p: &Path| p.with_file_name(format!("{}-wal", p.file_name().unwrap().display()));
    std::fs::copy(wal(&staging), wal(path)).unwrap();
    drop(plain);
}

#[test]
fn plaintext_databases_of_an_earlier_demls_are_encrypted_on_first_open() {
    let source = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(source.path(), PASS, Durability::Full).unwrap();
        store.put_secret("node_key", b"very secret bytes").unwrap();
        store.put_setting("last_group", GROUP).unwrap();
        for id in 1..=3 {
            store.commit_step(&step(id)).unwrap();
        }
        plaintext_copy_at_version_2(&store, &dir.path().join(DB_FILE));
    }
    let archive = rusqlite::Connection::open(dir.path().join(ARCHIVE_FILE)).unwrap();
    archive
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE waku_messages (
                 hash BLOB PRIMARY KEY NOT NULL, pubsub_topic TEXT NOT NULL,
                 content_topic TEXT NOT NULL, timestamp INTEGER NOT NULL, message BLOB NOT NULL
             ) WITHOUT ROWID;",
        )
        .unwrap();
    let m = archived(7);
    archive
        .execute(
            "INSERT INTO waku_messages VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                &m.hash[..],
                m.pubsub_topic,
                m.content_topic,
                m.timestamp,
                m.encoded
            ],
        )
        .unwrap();
    drop(archive);
    let plaintext = |file: &str| {
        let bytes = std::fs::read(dir.path().join(file)).unwrap();
        bytes.starts_with(b"SQLite format 3\0")
    };
    assert!(plaintext(DB_FILE) && plaintext(ARCHIVE_FILE));

    // A wrong passphrase changes nothing: no salt file is made for it, nothing is encrypted.
    assert!(matches!(
        Store::open(dir.path(), "wrong", Durability::Full),
        Err(StorageError::WrongPassphrase)
    ));
    assert!(plaintext(DB_FILE));
    assert!(!dir.path().join(SALT_FILE).exists());

    let mut store = Store::open(dir.path(), PASS, Durability::Full).unwrap();
    let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).unwrap();
    assert!(!plaintext(DB_FILE) && !plaintext(ARCHIVE_FILE));
    assert_eq!(
        store.secret("node_key").unwrap().unwrap().as_slice(),
        b"very secret bytes"
    );
    assert_eq!(
        store.setting("last_group").unwrap().as_deref(),
        Some(format!("{GROUP}!").as_str()),
        "the writes still in the plaintext log were kept"
    );
    let version: i64 = store
        .connect()
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let history = store.messages(&group(), 0, 10).unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|m| m.message.text == TEXT));
    let receipt = store.commit_step(&step(4)).unwrap();
    assert_eq!(
        receipt.messages[0].seq, 4,
        "positions continue after the migration"
    );
    assert_eq!(store.unpublished().unwrap().len(), 4);
    assert!(archive.contains(&[7; 32]).unwrap());
    // The earlier table was given the column that lets a newer message replace an older one.
    let keyed = |id: u8, timestamp: i64| ArchivedMessage {
        timestamp,
        keep_latest: Some(b"steward".to_vec()),
        ..archived(id)
    };
    assert_eq!(archive.insert(&[keyed(8, 10), keyed(9, 20)]).unwrap(), 2);
    assert!(!archive.contains(&[8; 32]).unwrap() && archive.contains(&[9; 32]).unwrap());
    drop(store);
    drop(archive);
    let files = assert_nothing_readable(dir.path());
    assert!(!files.iter().any(|f| f.contains("encrypting")), "{files:?}");
    Store::open(dir.path(), PASS, Durability::Full).unwrap();
}
