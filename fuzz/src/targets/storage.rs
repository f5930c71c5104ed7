//! Stored rows: every reader of `demls-storage` on rows with arbitrary column values (of the
//! column's SQLite type, or text that is not UTF-8), on sealed blobs that are corrupt, and on
//! well-sealed blobs whose plaintext is arbitrary (MLS group state, retained epochs, key
//! packages, the engine snapshot, secrets), up to `Engine::restore` from what was loaded.
//!
//! One store per process, in a temporary directory (scrypt runs once); every input writes its
//! rows, reads everything back, and deletes every row again.

use std::cell::RefCell;
use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use demls_engine::{
    Engine, GroupId, GroupTraffic, SnapshotWrite, StorageWrite, Timestamp, Topic, TopicKind,
    Transmit,
};
use demls_identity::Address;
use demls_storage::{Durability, NewMessage, Step, Store, decode_votes};
use rusqlite::{Connection, params};
use zeroize::Zeroizing;

use crate::fixture;

/// Text for a TEXT column: valid UTF-8, or raw bytes cast to TEXT (which SQLite keeps as is).
#[derive(Arbitrary, Debug)]
enum Text {
    Utf8(String),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Row {
    Message {
        group: Text,
        id: Vec<u8>,
        sender: Vec<u8>,
        text: Vec<u8>,
        sent_at: i64,
        epoch: i64,
        received_at: i64,
        own: bool,
        delivery: Text,
        outbox_seq: Option<i64>,
    },
    Outbox {
        group: Text,
        topic: Text,
        payload: Vec<u8>,
        created_at: i64,
        published_at: Option<i64>,
    },
    Proposal {
        group: Text,
        id: i64,
        epoch: i64,
        owner: Vec<u8>,
        change: Text,
        opened_at: i64,
        deadline: i64,
        state: Text,
        decided_at: Option<i64>,
        committed_epoch: Option<i64>,
        votes: Vec<u8>,
    },
    Event {
        at: i64,
        group: Option<Text>,
        body: Text,
    },
    MlsGroup {
        group_id: Vec<u8>,
        state: Vec<u8>,
    },
    MlsEpoch {
        group_id: Vec<u8>,
        epoch: i64,
        data: Vec<u8>,
    },
    MlsTraffic {
        group_id: Vec<u8>,
        traffic: Vec<u8>,
    },
    KeyPackage {
        id: Vec<u8>,
        data: Vec<u8>,
    },
    Engine {
        snapshot: Vec<u8>,
    },
    Secret {
        name: String,
        value: Vec<u8>,
    },
    Setting {
        key: String,
        value: Text,
    },
    /// Sealed properly by the store itself, with arbitrary plaintext.
    SealedGroup {
        group_id: Vec<u8>,
        snapshot: Vec<u8>,
        epochs: Vec<(u64, Vec<u8>)>,
    },
    SealedKeyPackage {
        id: Vec<u8>,
        data: Vec<u8>,
    },
    /// Journaled traffic with arbitrary messages, replayed at restore.
    SealedTraffic {
        group_id: Vec<u8>,
        sent: u8,
        received: Vec<Vec<u8>>,
    },
    SealedSnapshot {
        snapshot: Vec<u8>,
    },
    SealedSecret {
        name: String,
        value: Vec<u8>,
    },
    /// A step as the node commits it.
    Step {
        group: u8,
        text: String,
        id: Vec<u8>,
        sent_at: u64,
        own: bool,
        payload: Vec<u8>,
    },
    /// The fixture steward's real MLS state and snapshot, with one byte of the snapshot flipped.
    RealState {
        member: u8,
        flip: Option<(u32, u8)>,
    },
    /// A raw row of the engine's vote journal.
    EngineVote {
        vote: Vec<u8>,
    },
    /// Votes journaled by a step, sealed, with arbitrary plaintext.
    SealedVotes {
        votes: Vec<Vec<u8>>,
    },
}

struct Db {
    _dir: PathBuf,
    store: Store,
    raw: Connection,
}

thread_local! {
    static DB: RefCell<Option<Db>> = const { RefCell::new(None) };
}

fn open() -> Db {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("demls-fuzz-storage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, "fuzz", Durability::Relaxed).expect("store opens");
    let raw = store.connect().expect("raw connection");
    raw.pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    raw.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    Db {
        _dir: dir,
        store,
        raw,
    }
}

const TABLES: [&str; 12] = [
    "secrets",
    "settings",
    "mls_groups",
    "mls_epochs",
    "mls_traffic",
    "key_packages",
    "engine",
    "engine_votes",
    "messages",
    "outbox",
    "proposals",
    "events",
];

fn text(t: &Text) -> rusqlite::types::Value {
    match t {
        Text::Utf8(s) => rusqlite::types::Value::Text(s.clone()),
        Text::Raw(b) => rusqlite::types::Value::Blob(b.clone()),
    }
}

/// `?N` or `CAST(?N AS TEXT)` for a TEXT column, as the value needs.
fn slot(t: &Text, n: usize) -> String {
    match t {
        Text::Utf8(_) => format!("?{n}"),
        Text::Raw(_) => format!("CAST(?{n} AS TEXT)"),
    }
}

fn insert(db: &mut Db, row: &Row, now: Timestamp) {
    let raw = &db.raw;
    // A row SQLite itself refuses (a constraint) is simply not there.
    let _ = match row {
        Row::Message {
            group,
            id,
            sender,
            text: t,
            sent_at,
            epoch,
            received_at,
            own,
            delivery,
            outbox_seq,
        } => raw.execute(
            &format!(
                "INSERT INTO messages (group_id, message_id, sender, text, sent_at, epoch, \
                 received_at, own, delivery, outbox_seq) VALUES ({}, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {}, ?10)",
                slot(group, 1),
                slot(delivery, 9)
            ),
            params![
                text(group),
                id,
                sender,
                t,
                sent_at,
                epoch,
                received_at,
                i64::from(*own),
                text(delivery),
                outbox_seq
            ],
        ),
        Row::Outbox {
            group,
            topic,
            payload,
            created_at,
            published_at,
        } => raw.execute(
            &format!(
                "INSERT INTO outbox (group_id, topic, payload, created_at, published_at) \
                 VALUES ({}, {}, ?3, ?4, ?5)",
                slot(group, 1),
                slot(topic, 2)
            ),
            params![text(group), text(topic), payload, created_at, published_at],
        ),
        Row::Proposal {
            group,
            id,
            epoch,
            owner,
            change,
            opened_at,
            deadline,
            state,
            decided_at,
            committed_epoch,
            votes,
        } => raw.execute(
            &format!(
                "INSERT INTO proposals (group_id, proposal_id, epoch, owner, change, opened_at, \
                 deadline, state, decided_at, committed_epoch, votes) \
                 VALUES ({}, ?2, ?3, ?4, {}, ?6, ?7, {}, ?9, ?10, ?11)",
                slot(group, 1),
                slot(change, 5),
                slot(state, 8)
            ),
            params![
                text(group),
                id,
                epoch,
                owner,
                text(change),
                opened_at,
                deadline,
                text(state),
                decided_at,
                committed_epoch,
                votes
            ],
        ),
        Row::Event { at, group, body } => {
            let group_slot = group.as_ref().map_or("?2".to_owned(), |g| slot(g, 2));
            raw.execute(
                &format!(
                    "INSERT INTO events (at, group_id, body) VALUES (?1, {group_slot}, {})",
                    slot(body, 3)
                ),
                params![at, group.as_ref().map(text), text(body)],
            )
        }
        Row::MlsGroup { group_id, state } => raw.execute(
            "INSERT OR REPLACE INTO mls_groups (group_id, state) VALUES (?1, ?2)",
            params![group_id, state],
        ),
        Row::MlsEpoch {
            group_id,
            epoch,
            data,
        } => raw.execute(
            "INSERT OR REPLACE INTO mls_epochs (group_id, epoch, data) VALUES (?1, ?2, ?3)",
            params![group_id, epoch, data],
        ),
        Row::MlsTraffic { group_id, traffic } => raw.execute(
            "INSERT INTO mls_traffic (group_id, traffic) VALUES (?1, ?2)",
            params![group_id, traffic],
        ),
        Row::KeyPackage { id, data } => raw.execute(
            "INSERT OR REPLACE INTO key_packages (id, data) VALUES (?1, ?2)",
            params![id, data],
        ),
        Row::Engine { snapshot } => raw.execute(
            "INSERT OR REPLACE INTO engine (id, snapshot, updated_at) VALUES (1, ?1, 0)",
            params![snapshot],
        ),
        Row::Secret { name, value } => raw.execute(
            "INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, value],
        ),
        Row::Setting { key, value } => raw.execute(
            &format!(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, {})",
                slot(value, 2)
            ),
            params![key, text(value)],
        ),
        Row::SealedGroup {
            group_id,
            snapshot,
            epochs,
        } => step(
            db,
            Step {
                now,
                storage: vec![StorageWrite::Group {
                    group_id: group_id.clone(),
                    snapshot: Zeroizing::new(snapshot.clone()),
                    epochs: epochs
                        .iter()
                        .take(4)
                        .map(|(e, d)| (*e, Zeroizing::new(d.clone())))
                        .collect(),
                    oldest_retained_epoch: None,
                }],
                ..Step::default()
            },
        ),
        Row::SealedKeyPackage { id, data } => step(
            db,
            Step {
                now,
                storage: vec![StorageWrite::KeyPackage {
                    id: id.clone(),
                    data: Zeroizing::new(data.clone()),
                }],
                ..Step::default()
            },
        ),
        Row::SealedTraffic {
            group_id,
            sent,
            received,
        } => step(
            db,
            Step {
                now,
                storage: vec![StorageWrite::GroupTraffic {
                    group_id: group_id.clone(),
                    traffic: GroupTraffic {
                        sent: u32::from(*sent),
                        received: received.iter().take(8).cloned().collect(),
                    },
                }],
                ..Step::default()
            },
        ),
        Row::SealedSnapshot { snapshot } => step(
            db,
            Step {
                now,
                snapshot: SnapshotWrite::Whole(snapshot.clone()),
                ..Step::default()
            },
        ),
        Row::SealedSecret { name, value } => {
            let _ = db.store.put_secret(name, value);
            Ok(0)
        }
        Row::Step {
            group,
            text,
            id,
            sent_at,
            own,
            payload,
        } => {
            let group = GroupId::new(&format!("g{}", group % 4)).expect("group id");
            step(
                db,
                Step {
                    now,
                    messages: vec![NewMessage {
                        group: group.clone(),
                        id: id.clone(),
                        sender: Address::new([7; 20]),
                        text: text.clone(),
                        sent_at: Timestamp(*sent_at),
                        epoch: demls_engine::Epoch(1),
                        lamport: *sent_at,
                        received_at: now,
                        own: *own,
                    }],
                    transmits: vec![Transmit {
                        topic: Topic {
                            group,
                            kind: TopicKind::Application,
                        },
                        payload: payload.clone(),
                    }],
                    ..Step::default()
                },
            )
        }
        Row::EngineVote { vote } => raw.execute(
            "INSERT INTO engine_votes (vote) VALUES (?1)",
            params![vote],
        ),
        Row::SealedVotes { votes } => step(
            db,
            Step {
                now,
                snapshot: SnapshotWrite::Votes(votes.iter().take(8).cloned().collect()),
                ..Step::default()
            },
        ),
        Row::RealState { member, flip } => {
            let state = super::restore::node(*member);
            let mut snapshot = state.snapshot.clone();
            if let Some((at, mask)) = flip
                && !snapshot.is_empty()
            {
                let i = *at as usize % snapshot.len();
                snapshot[i] ^= mask;
            }
            let mut storage: Vec<StorageWrite> = state
                .groups
                .iter()
                .map(|g| StorageWrite::Group {
                    group_id: g.group_id.clone(),
                    snapshot: Zeroizing::new(g.snapshot.clone()),
                    epochs: g
                        .epochs
                        .iter()
                        .map(|e| (e.epoch, Zeroizing::new(e.data.clone())))
                        .collect(),
                    oldest_retained_epoch: None,
                })
                .collect();
            storage.extend(state.key_packages.iter().map(|k| StorageWrite::KeyPackage {
                id: k.id.clone(),
                data: Zeroizing::new(k.data.clone()),
            }));
            step(
                db,
                Step {
                    now,
                    storage,
                    snapshot: SnapshotWrite::Whole(snapshot),
                    ..Step::default()
                },
            )
        }
    };
}

fn step(db: &mut Db, step: Step) -> rusqlite::Result<usize> {
    let _ = db.store.commit_step(&step);
    Ok(0)
}

/// Reads everything back through the store's readers.
fn read_all(db: &mut Db, now: Timestamp) {
    let store = &mut db.store;
    let groups: Vec<String> = {
        let mut names = Vec::new();
        for table in ["messages", "proposals", "outbox", "events"] {
            let mut select = db
                .raw
                .prepare(&format!(
                    "SELECT DISTINCT CAST(group_id AS BLOB) FROM {table}"
                ))
                .expect("select");
            let rows = select
                .query_map([], |r| r.get::<_, Option<Vec<u8>>>(0))
                .expect("query");
            for name in rows.flatten().flatten() {
                names.push(String::from_utf8_lossy(&name).into_owned());
            }
        }
        names
    };
    for name in groups.iter().chain(["g0".to_owned()].iter()) {
        if let Ok(group) = GroupId::new(name) {
            let _ = store.messages(&group, 0, 64);
            let _ = store.proposals(&group);
        }
    }
    let _ = store.open_proposals();
    let _ = store.events(0, 64);
    let _ = store.unpublished();
    let _ = store.mark_published(u64::MAX >> 1, now);
    let _ = store.setting("api_token");
    let _ = store.secret("mls_signer");
    let _ = store.secret("");
    let snapshot = store.engine_snapshot();
    if let Ok(mls) = store.load_mls(fixture::config().epoch_retention)
        && let Ok(Some(snapshot)) = snapshot
    {
        let steward = super::restore::node(0);
        if let Ok(mut engine) = Engine::restore(
            fixture::wallet(fixture::S),
            &steward.signer(),
            fixture::config(),
            mls,
            &snapshot,
            now,
        ) {
            let _ = engine.group(&fixture::group());
            let _ = engine.snapshot();
            engine.handle_timeout(now.plus_ms(1_000));
            fixture::drain(&mut engine);
        }
    }
}

/// A list of rows to write, then every reader.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut rows = Vec::new();
    while rows.len() < 12 {
        match Row::arbitrary(&mut u) {
            Ok(row) => rows.push(row),
            Err(_) => break,
        }
        if u.is_empty() {
            break;
        }
    }
    // The votes column's decoder on its own, on the raw input.
    let _ = decode_votes(data);
    let now = fixture::get().now();
    DB.with(|cell| {
        let mut slot = cell.borrow_mut();
        let db = slot.get_or_insert_with(open);
        for row in &rows {
            insert(db, row, now);
        }
        read_all(db, now);
        for table in TABLES {
            db.raw
                .execute(&format!("DELETE FROM {table}"), [])
                .expect("delete");
        }
    });
}
