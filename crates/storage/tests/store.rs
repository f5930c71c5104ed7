//! The store on a real SQLite file: engine state round trip, atomic steps, crash consistency,
//! secrets at rest, corrupt rows, schema versions.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use demls_engine::bench_support::{Founder, form_group_at_once};
use demls_engine::{
    Engine, EngineConfig, Epoch, GroupId, GroupParams, MlsSigner, MlsStore, ProposalId,
    SnapshotWrite, StorageWrite, Timestamp, Topic, TopicKind, Transmit,
};
use demls_identity::{Address, Wallet};
use demls_storage::{
    DB_FILE, Delivery, Durability, NewEvent, NewMessage, ProposalRecord, ProposalState,
    SCHEMA_VERSION, Step, StorageError, Store,
};
use zeroize::Zeroizing;

const PASS: &str = "correct horse battery staple";

fn open(dir: &Path) -> Store {
    Store::open(dir, PASS, Durability::Full).unwrap()
}

/// A connection of its own to the store's (encrypted) database, for reading and damaging rows.
fn raw(dir: &Path) -> rusqlite::Connection {
    open(dir).connect().unwrap()
}

fn group() -> GroupId {
    GroupId::new("lab").unwrap()
}

fn message(id: u8, text: &str, own: bool) -> NewMessage {
    NewMessage {
        group: group(),
        id: vec![id; 16],
        sender: Address::new([id; 20]),
        text: text.to_owned(),
        sent_at: Timestamp(1_000 + u64::from(id)),
        epoch: Epoch(1),
        lamport: u64::from(id),
        received_at: Timestamp(2_000 + u64::from(id)),
        own,
    }
}

fn transmit(byte: u8) -> Transmit {
    Transmit {
        topic: Topic {
            group: group(),
            kind: TopicKind::Application,
        },
        payload: vec![byte; 8],
    }
}

#[test]
fn an_engine_resumes_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::generate();
    let signer = MlsSigner::generate().unwrap();
    let config = EngineConfig::default();
    let mut engine = Engine::new(
        wallet.clone(),
        &signer,
        config.clone(),
        MlsStore::journaled(4),
    );
    engine
        .create_group(group(), GroupParams::default(), Timestamp(10_000))
        .unwrap();
    engine.key_package(Timestamp(10_000)).unwrap();
    engine
        .send_message(&group(), "hello", Timestamp(10_001))
        .unwrap();
    let before = engine.group(&group()).unwrap();
    {
        let mut store = open(dir.path());
        store
            .put_secret("mls_signer", signer.secret_bytes())
            .unwrap();
        let step = Step {
            now: Timestamp(10_001),
            storage: engine.take_storage_writes().unwrap(),
            snapshot: SnapshotWrite::Whole(engine.snapshot().unwrap()),
            ..Step::default()
        };
        assert!(
            step.storage
                .iter()
                .any(|w| matches!(w, StorageWrite::KeyPackage { .. }))
        );
        store.commit_step(&step).unwrap();
    }
    let store = open(dir.path());
    let secret = store.secret("mls_signer").unwrap().unwrap();
    let signer = MlsSigner::from_bytes(&secret, signer.public_bytes());
    let snapshot = store.engine_snapshot().unwrap().unwrap();
    let mut restored = Engine::restore(
        wallet,
        &signer,
        config,
        store.load_mls(4).unwrap(),
        &snapshot,
        Timestamp(20_000),
    )
    .unwrap();
    assert_eq!(restored.group(&group()).unwrap(), before);
    restored
        .send_message(&group(), "after restart", Timestamp(20_001))
        .unwrap();
}

/// Commits what `engine` produced as one step, as a node does.
fn commit_engine_step(store: &mut Store, engine: &mut Engine, now: Timestamp) {
    let step = Step {
        now,
        storage: engine.take_storage_writes().unwrap(),
        snapshot: SnapshotWrite::Whole(engine.snapshot().unwrap()),
        ..Step::default()
    };
    store.commit_step(&step).unwrap();
}

/// Everything `from` would publish, handled by `to`.
fn deliver(from: &mut Engine, to: &mut Engine, now: Timestamp) {
    while let Some(transmit) = from.poll_transmit() {
        let _ = to.handle_message(&transmit.payload, now);
    }
}

fn traffic_rows(dir: &Path) -> i64 {
    raw(dir)
        .query_row("SELECT count(*) FROM mls_traffic", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn messages_are_kept_as_traffic_and_replayed_at_restore() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::default();
    let keys = |f: &Founder| (f.wallet.clone(), f.signer.clone());
    let persisted = Founder {
        store: MlsStore::journaled(config.epoch_retention),
        ..Founder::generate(&config).unwrap()
    };
    let (wallet, signer) = keys(&persisted);
    let other = Founder::generate(&config).unwrap();
    let mut engines = form_group_at_once(
        &group(),
        GroupParams::default(),
        vec![persisted, other],
        &config,
        Timestamp(10_000),
    )
    .unwrap();
    let mut other = engines.pop().unwrap();
    let mut engine = engines.pop().unwrap();
    let mut store = open(dir.path());
    store
        .put_secret("mls_signer", signer.secret_bytes())
        .unwrap();
    commit_engine_step(&mut store, &mut engine, Timestamp(10_000));
    assert_eq!(traffic_rows(dir.path()), 0);
    // Each step of a message sent and one read is journaled as traffic, not as the state.
    for i in 1..=3 {
        let now = Timestamp(10_000 + i);
        engine.send_message(&group(), "out", now).unwrap();
        deliver(&mut engine, &mut other, now);
        other.send_message(&group(), "in", now).unwrap();
        deliver(&mut other, &mut engine, now);
        commit_engine_step(&mut store, &mut engine, now);
    }
    assert_eq!(traffic_rows(dir.path()), 3);
    drop(engine);
    drop(store);

    let mut store = open(dir.path());
    let snapshot = store.engine_snapshot().unwrap().unwrap();
    let mut restored = Engine::restore(
        wallet,
        &signer,
        config.clone(),
        store.load_mls(config.epoch_retention).unwrap(),
        &snapshot,
        Timestamp(20_000),
    )
    .unwrap();
    // Its own three messages' generations stay used: the other reads what it sends next.
    while other.poll_event().is_some() {}
    restored
        .send_message(&group(), "after restart", Timestamp(20_001))
        .unwrap();
    deliver(&mut restored, &mut other, Timestamp(20_001));
    let read = std::iter::from_fn(|| other.poll_event())
        .any(|e| matches!(e, demls_engine::Event::Message { text, .. } if text == "after restart"));
    assert!(read, "the restarted member's message did not open");
    // The replayed state is written whole, which discards the traffic.
    commit_engine_step(&mut store, &mut restored, Timestamp(20_001));
    assert_eq!(traffic_rows(dir.path()), 0);
}

#[test]
fn votes_journaled_after_the_engine_snapshot_are_merged_into_it_until_the_next_whole_one() {
    use demls_consensus::wire::{Proposal, Vote};
    use demls_engine::{EngineSnapshot, JournaledVote};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let vote = |n: u8| Vote {
        proposal_id: 7,
        vote_owner: vec![n; 20],
        vote_hash: vec![n; 32],
        ..Vote::default()
    };
    let snapshot = |votes: u8| {
        let mut group = demls_engine::GroupSnapshot {
            group_id: "lab".into(),
            ..Default::default()
        };
        group.open.push(Proposal {
            proposal_id: 7,
            round: 1 + u32::from(votes),
            votes: (1..=votes).map(vote).collect(),
            ..Proposal::default()
        });
        EngineSnapshot {
            version: 1,
            groups: vec![group],
            joins: Vec::new(),
        }
        .encode_to_vec()
    };
    let journaled = |n: u8| {
        JournaledVote {
            group_id: "lab".into(),
            vote: Some(vote(n)),
        }
        .encode_to_vec()
    };
    let step = |snapshot: SnapshotWrite| Step {
        now: Timestamp(1),
        snapshot,
        ..Step::default()
    };
    store
        .commit_step(&step(SnapshotWrite::Whole(snapshot(1))))
        .unwrap();
    store
        .commit_step(&step(SnapshotWrite::Votes(vec![journaled(2)])))
        .unwrap();
    store
        .commit_step(&step(SnapshotWrite::Votes(vec![journaled(3)])))
        .unwrap();
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(
        store.engine_snapshot().unwrap().unwrap().as_slice(),
        snapshot(3)
    );
    // A whole snapshot drops the journal.
    store
        .commit_step(&step(SnapshotWrite::Whole(snapshot(1))))
        .unwrap();
    assert_eq!(
        store.engine_snapshot().unwrap().unwrap().as_slice(),
        snapshot(1)
    );
    let rows: i64 = raw(dir.path())
        .query_row("SELECT COUNT(*) FROM engine_votes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn a_step_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let first = Step {
        now: Timestamp(1),
        snapshot: SnapshotWrite::Whole(b"one".to_vec()),
        messages: vec![message(1, "first", false)],
        ..Step::default()
    };
    store.commit_step(&first).unwrap();
    // The MLS write and the snapshot come first; the message's time does not fit in SQLite's
    // integer, so the step fails half-way and must leave nothing behind.
    let mut bad = message(2, "never stored", false);
    bad.sent_at = Timestamp(u64::MAX);
    let failing = Step {
        now: Timestamp(2),
        storage: vec![StorageWrite::KeyPackage {
            id: b"kp".to_vec(),
            data: Zeroizing::new(b"data".to_vec()),
        }],
        snapshot: SnapshotWrite::Whole(b"two".to_vec()),
        transmits: vec![transmit(2)],
        messages: vec![bad],
        ..Step::default()
    };
    assert!(matches!(
        store.commit_step(&failing),
        Err(StorageError::OutOfRange(_))
    ));
    assert_eq!(store.engine_snapshot().unwrap().unwrap().as_slice(), b"one");
    assert_eq!(store.messages(&group(), 0, 10).unwrap().len(), 1);
    assert!(store.unpublished().unwrap().is_empty());
    let kps: i64 = raw(dir.path())
        .query_row("SELECT COUNT(*) FROM key_packages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kps, 0);
}

/// Set in the child process of [`a_writer_killed_at_any_moment_leaves_a_consistent_store`].
const CHILD_ENV: &str = "DEMLS_STORAGE_CRASH_CHILD_DIR";

/// The child: commits steps forever, each a consistent set (epoch n, snapshot n, message n,
/// transmit n).
fn write_steps_forever(dir: &Path) -> ! {
    let mut store = Store::open(dir, PASS, Durability::Full).unwrap();
    for n in 1u64.. {
        let step = Step {
            now: Timestamp(n),
            storage: vec![StorageWrite::Group {
                group_id: b"lab".to_vec(),
                snapshot: Zeroizing::new(n.to_be_bytes().to_vec()),
                epochs: vec![(n, Zeroizing::new(vec![7; 512]))],
                oldest_retained_epoch: Some(n.saturating_sub(3)),
            }],
            snapshot: SnapshotWrite::Whole(n.to_be_bytes().to_vec()),
            messages: vec![NewMessage {
                id: n.to_be_bytes().to_vec(),
                text: n.to_string(),
                ..message(1, "", true)
            }],
            transmits: vec![transmit(1)],
            ..Step::default()
        };
        store.commit_step(&step).unwrap();
        if n == 1 {
            println!("ready");
        }
    }
    unreachable!("the loop runs until the process is killed")
}

#[test]
fn a_writer_killed_at_any_moment_leaves_a_consistent_store() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        write_steps_forever(Path::new(&dir));
    }
    for round in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_writer_killed_at_any_moment_leaves_a_consistent_store",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.trim_end().ends_with("ready"));
        assert!(ready, "the writer never committed");
        std::thread::sleep(Duration::from_millis(50 + 70 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = open(dir.path());
        let snapshot = store.engine_snapshot().unwrap().unwrap();
        let n = u64::from_be_bytes(snapshot.as_slice().try_into().unwrap());
        assert!(n >= 1);
        let messages = store.messages(&group(), 0, usize::MAX).unwrap();
        assert_eq!(messages.len() as u64, n, "history and snapshot differ");
        assert_eq!(messages.last().unwrap().message.text, n.to_string());
        assert_eq!(store.unpublished().unwrap().len() as u64, n);
        let newest_epoch: i64 = raw(dir.path())
            .query_row("SELECT MAX(epoch) FROM mls_epochs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(newest_epoch as u64, n, "MLS state and snapshot differ");
        store.load_mls(4).unwrap();
    }
}

#[test]
fn outbox_publication_marks_own_messages_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let receipt = store
        .commit_step(&Step {
            now: Timestamp(5),
            messages: vec![message(1, "mine", true), message(2, "theirs", false)],
            transmits: vec![transmit(1), transmit(2)],
            events: vec![NewEvent {
                at: Timestamp(5),
                group: Some(group()),
                body: "{}".into(),
            }],
            ..Step::default()
        })
        .unwrap();
    assert_eq!(receipt.outbox.len(), 2);
    assert_eq!(receipt.messages[0].delivery, Delivery::Queued);
    assert_eq!(receipt.messages[1].delivery, Delivery::Received);
    assert_eq!(receipt.events.len(), 1);
    // The same message again (a replay) is not stored twice.
    let again = store
        .commit_step(&Step {
            messages: vec![message(2, "theirs", false)],
            ..Step::default()
        })
        .unwrap();
    assert!(again.messages.is_empty());

    assert!(
        store
            .mark_published(receipt.outbox[0], Timestamp(6))
            .unwrap()
            .is_empty()
    );
    let sent = store
        .mark_published(receipt.outbox[1], Timestamp(7))
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.text, "mine");
    assert!(store.unpublished().unwrap().is_empty());
    let history = store.messages(&group(), 0, 10).unwrap();
    assert_eq!(history[0].delivery, Delivery::Sent);
    store.prune(Timestamp(100), 0).unwrap();
    assert!(store.events(0, 10).unwrap().is_empty());
}

#[test]
fn proposals_keep_their_tally() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut proposal = ProposalRecord {
        group: group(),
        id: ProposalId(0xdead_beef),
        epoch: Epoch(3),
        owner: Address::new([1; 20]),
        change: r#"{"kind":"remove"}"#.into(),
        opened_at: Timestamp(1),
        deadline: Timestamp(30_000),
        state: ProposalState::Open,
        decided_at: None,
        committed_epoch: None,
        votes: vec![(Address::new([1; 20]), true)],
    };
    store
        .commit_step(&Step {
            proposals: vec![proposal.clone()],
            ..Step::default()
        })
        .unwrap();
    assert_eq!(store.open_proposals().unwrap(), vec![proposal.clone()]);
    proposal.votes.push((Address::new([2; 20]), false));
    proposal.state = ProposalState::Approved;
    proposal.decided_at = Some(Timestamp(9));
    proposal.committed_epoch = Some(Epoch(4));
    store
        .commit_step(&Step {
            proposals: vec![proposal.clone()],
            ..Step::default()
        })
        .unwrap();
    assert!(store.open_proposals().unwrap().is_empty());
    assert_eq!(store.proposals(&group()).unwrap(), vec![proposal]);
}

#[test]
fn secrets_are_encrypted_and_need_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.put_secret("node_key", b"very secret bytes").unwrap();
        store.put_setting("vote_policy", "manual").unwrap();
        store
            .commit_step(&Step {
                messages: vec![message(1, "private words", false)],
                ..Step::default()
            })
            .unwrap();
    }
    let file = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    let wal = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))).unwrap_or_default();
    for bytes in [&file, &wal] {
        for needle in [&b"very secret bytes"[..], b"private words"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join(DB_FILE)), 0o600);
    assert!(matches!(
        Store::open(dir.path(), "wrong", Durability::Full),
        Err(StorageError::WrongPassphrase)
    ));
    let store = open(dir.path());
    assert_eq!(
        store.secret("node_key").unwrap().unwrap().as_slice(),
        b"very secret bytes"
    );
    assert_eq!(
        store.setting("vote_policy").unwrap().as_deref(),
        Some("manual")
    );
    assert_eq!(store.secret("missing").unwrap(), None);
}

/// A step that writes a row into every table: MLS group and epoch, key package, snapshot,
/// message, outbox, proposal (with one vote) and event.
fn every_table() -> Step {
    Step {
        storage: vec![
            StorageWrite::Group {
                group_id: b"lab".to_vec(),
                snapshot: Zeroizing::new(vec![1, 2, 3]),
                epochs: vec![(1, Zeroizing::new(vec![4]))],
                oldest_retained_epoch: Some(1),
            },
            StorageWrite::KeyPackage {
                id: b"kp".to_vec(),
                data: Zeroizing::new(vec![5]),
            },
        ],
        snapshot: SnapshotWrite::Whole(vec![9]),
        messages: vec![message(1, "m", false)],
        transmits: vec![transmit(1)],
        proposals: vec![ProposalRecord {
            group: group(),
            id: ProposalId(1),
            epoch: Epoch(1),
            owner: Address::new([1; 20]),
            change: "{}".into(),
            opened_at: Timestamp(1),
            deadline: Timestamp(2),
            state: ProposalState::Open,
            decided_at: None,
            committed_epoch: None,
            votes: vec![(Address::new([2; 20]), true)],
        }],
        events: vec![NewEvent {
            at: Timestamp(1),
            group: Some(group()),
            body: "{}".into(),
        }],
        ..Step::default()
    }
}

#[test]
fn corrupt_rows_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = |sql: &str, read: &dyn Fn(&Store) -> Result<(), StorageError>| {
        {
            let mut store = open(dir.path());
            store.put_secret("node_key", b"k").unwrap();
            store.commit_step(&every_table()).unwrap();
        }
        raw(dir.path()).execute_batch(sql).unwrap();
        let store = open(dir.path());
        match read(&store) {
            Err(StorageError::Corrupt { .. }) => {}
            other => panic!("{sql}: expected a corrupt-row error, got {other:?}"),
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("{DB_FILE}{suffix}")));
        }
    };
    let mls = |s: &Store| s.load_mls(4).map(|_| ());
    corrupt("UPDATE mls_groups SET state = x'01'", &mls);
    corrupt("UPDATE mls_epochs SET data = x'0102030405'", &mls);
    corrupt("UPDATE mls_groups SET group_id = x'6f74686572'", &mls); // moved to another row
    corrupt("UPDATE engine SET snapshot = x''", &|s| {
        s.engine_snapshot().map(|_| ())
    });
    corrupt("UPDATE secrets SET value = x'02'", &|s| {
        s.secret("node_key").map(|_| ())
    });
    let history = |s: &Store| s.messages(&group(), 0, 10).map(|_| ());
    corrupt("UPDATE messages SET text = x'00'", &history);
    corrupt("UPDATE messages SET sender = x'01'", &history);
    corrupt("UPDATE messages SET delivery = 'lost'", &history);
    corrupt("UPDATE messages SET epoch = -3", &history);
    corrupt("UPDATE messages SET sent_at = -1", &history);
    corrupt("UPDATE outbox SET topic = 'x'", &|s| {
        s.unpublished().map(|_| ())
    });
    corrupt("UPDATE outbox SET group_id = 'Not A Group'", &|s| {
        s.unpublished().map(|_| ())
    });
    let proposals = |s: &Store| s.proposals(&group()).map(|_| ());
    corrupt("UPDATE proposals SET votes = x'0102'", &proposals);
    corrupt("UPDATE proposals SET state = 'maybe'", &proposals);
    corrupt("UPDATE proposals SET proposal_id = -5", &proposals);
    corrupt("UPDATE proposals SET owner = x''", &proposals);
}

/// Found while writing the storage fuzz harness (docs/fuzzing.md): the scrypt parameters are
/// read back from the database, and unbounded ones made opening a damaged store allocate 2^50
/// bytes (an abort) or run scrypt for hours instead of reporting the row as corrupt.
#[test]
fn key_derivation_parameters_out_of_bounds_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw(dir.path());
    for kdf in [
        "scrypt:40:8:1",
        "scrypt:60:8:1",
        "scrypt:255:8:1",
        "scrypt:15:8:1000000",
        "scrypt:15:100000:1",
        "scrypt:15:0:1",
    ] {
        raw.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'kdf'",
            [kdf.as_bytes()],
        )
        .unwrap();
        let started = std::time::Instant::now();
        match Store::open(dir.path(), PASS, Durability::Full) {
            Err(StorageError::Corrupt { .. }) => {}
            other => panic!("{kdf}: expected a corrupt-row error, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{kdf}");
    }
}

#[test]
fn a_newer_schema_is_refused_and_the_current_one_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw(dir.path());
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    assert!(matches!(
        Store::open(dir.path(), PASS, Durability::Full),
        Err(StorageError::UnsupportedSchema { .. })
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
    #[test]
    fn stored_votes_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = demls_storage::decode_votes(&bytes);
    }
}

/// A store with one row in every table and a connection of its own to it, shared by the cases
/// of the fuzz test below.
type FuzzStore = (tempfile::TempDir, Store, rusqlite::Connection);

fn fuzz_store() -> &'static std::sync::Mutex<FuzzStore> {
    static STORE: std::sync::OnceLock<std::sync::Mutex<FuzzStore>> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.put_secret("node_key", b"k").unwrap();
        store.commit_step(&every_table()).unwrap();
        let conn = store.connect().unwrap();
        std::sync::Mutex::new((dir, store, conn))
    })
}

/// Every column a reader decodes: (table, column).
const COLUMNS: &[(&str, &str)] = &[
    ("mls_groups", "state"),
    ("mls_groups", "group_id"),
    ("mls_epochs", "data"),
    ("mls_epochs", "epoch"),
    ("key_packages", "data"),
    ("engine", "snapshot"),
    ("secrets", "value"),
    ("messages", "text"),
    ("messages", "sender"),
    ("messages", "message_id"),
    ("messages", "delivery"),
    ("messages", "sent_at"),
    ("messages", "epoch"),
    ("outbox", "topic"),
    ("outbox", "group_id"),
    ("outbox", "payload"),
    ("outbox", "created_at"),
    ("proposals", "votes"),
    ("proposals", "owner"),
    ("proposals", "state"),
    ("proposals", "proposal_id"),
    ("proposals", "deadline"),
    ("events", "body"),
    ("events", "group_id"),
    ("events", "at"),
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
    /// Arbitrary bytes, text and integers written into any stored column: every reader
    /// answers (with a typed error or a value) and none panics.
    #[test]
    fn readers_of_arbitrary_rows_never_panic(
        column in 0..COLUMNS.len(),
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        number in proptest::prelude::any::<i64>(),
        kind in 0..3u8,
    ) {
        let guard = fuzz_store().lock().unwrap_or_else(|e| e.into_inner());
        let (_, store, conn) = &*guard;
        let (table, name) = COLUMNS[column];
        let sql = format!("UPDATE {table} SET {name} = ?1");
        // STRICT tables refuse values of the wrong type; those updates simply do not happen.
        let _ = match kind {
            0 => conn.execute(&sql, [bytes.clone()]),
            1 => conn.execute(&sql, [String::from_utf8_lossy(&bytes).into_owned()]),
            _ => conn.execute(&sql, [number]),
        };
        let _ = store.load_mls(4);
        let _ = store.engine_snapshot();
        let _ = store.secret("node_key");
        let _ = store.messages(&group(), 0, 10);
        let _ = store.unpublished();
        let _ = store.proposals(&group());
        let _ = store.open_proposals();
        let _ = store.events(0, 10);
    }
}
