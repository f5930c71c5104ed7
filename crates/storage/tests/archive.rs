//! The archive of network messages: paging both ways with cursors, topic and time filters,
//! hash lookups, byte budgets, unknown cursors, the bounds by age, count and size, and
//! announcements that replace their steward's earlier ones.

use std::time::Duration;

use demls_storage::{
    Archive, ArchiveLimits, ArchiveQuery, ArchivedMessage, Selection, StorageError, Walk,
};

const PASS: &str = "archive passphrase";

fn message(i: u8, topic: &str, timestamp: i64, size: usize) -> ArchivedMessage {
    ArchivedMessage {
        hash: [i; 32],
        pubsub_topic: "/waku/2/rs/4242/0".into(),
        content_topic: topic.into(),
        timestamp,
        encoded: vec![i; size],
        keep_latest: None,
    }
}

const WELCOME: &str = "/demls/1/lab-welcome/proto";
const APP: &str = "/demls/1/lab-app/proto";

/// The `n`th announcement overall, by steward `steward`: only its newest is worth keeping.
fn announcement(steward: u8, n: u32, timestamp: i64) -> ArchivedMessage {
    let mut hash = [0xff; 32];
    hash[..4].copy_from_slice(&n.to_be_bytes());
    hash[4] = steward;
    ArchivedMessage {
        hash,
        pubsub_topic: "/waku/2/rs/4242/0".into(),
        content_topic: WELCOME.into(),
        timestamp,
        encoded: vec![steward; 200],
        keep_latest: Some(vec![steward; 20]),
    }
}

fn on(topics: &[&str]) -> Selection {
    Selection::Range {
        pubsub_topic: Some("/waku/2/rs/4242/0".into()),
        content_topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        start: None,
        end: None,
    }
}

fn query(selection: Selection, walk: Walk, limit: usize) -> ArchiveQuery {
    ArchiveQuery {
        selection,
        after: None,
        walk,
        limit,
        max_bytes: usize::MAX,
    }
}

fn timestamps(archive: &Archive, mut q: ArchiveQuery) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    loop {
        let page = archive.query(&q).expect("query");
        pages.push(page.messages.iter().map(|m| m.timestamp).collect());
        match page.next {
            Some(next) => q.after = Some(next),
            None => return pages,
        }
    }
}

fn filled() -> (tempfile::TempDir, Archive) {
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).expect("open");
    let mut all: Vec<ArchivedMessage> = (1..=10)
        .map(|i| message(i, "/demls/1/lab-app/proto", i64::from(i) * 10, 100))
        .collect();
    all.push(message(50, "/demls/1/other-app/proto", 55, 100));
    assert_eq!(archive.insert(&all).expect("insert"), 11);
    assert_eq!(
        archive.insert(&all[..3]).expect("again"),
        0,
        "duplicates ignored"
    );
    (dir, archive)
}

#[test]
fn pages_both_ways_with_cursors() {
    let (_dir, archive) = filled();
    let lab = || on(&["/demls/1/lab-app/proto"]);
    assert_eq!(
        timestamps(&archive, query(lab(), Walk::Forward, 4)),
        vec![vec![10, 20, 30, 40], vec![50, 60, 70, 80], vec![90, 100]]
    );
    assert_eq!(
        timestamps(&archive, query(lab(), Walk::Backward, 4)),
        vec![vec![70, 80, 90, 100], vec![30, 40, 50, 60], vec![10, 20]],
        "backward pages are oldest first within"
    );
    assert_eq!(
        timestamps(&archive, query(on(&[]), Walk::Forward, 20)),
        vec![vec![10, 20, 30, 40, 50, 55, 60, 70, 80, 90, 100]],
        "no content topic: all"
    );
    let range = Selection::Range {
        pubsub_topic: None,
        content_topics: vec!["/demls/1/lab-app/proto".into()],
        start: Some(30),
        end: Some(60),
    };
    assert_eq!(
        timestamps(&archive, query(range, Walk::Forward, 20)),
        vec![vec![30, 40, 50]],
        "start inclusive, end exclusive"
    );
    let hashes = Selection::Hashes(vec![[3; 32], [50; 32], [99; 32]]);
    assert_eq!(
        timestamps(&archive, query(hashes, Walk::Forward, 20)),
        vec![vec![30, 55]]
    );
    assert_eq!(
        archive
            .latest(&["/demls/1/lab-app/proto".into()])
            .expect("latest"),
        Some(100)
    );
    assert_eq!(archive.latest(&["/x".into()]).expect("latest"), None);
    assert!(archive.contains(&[4; 32]).expect("contains"));
    assert!(!archive.contains(&[44; 32]).expect("contains"));
}

#[test]
fn byte_budget_and_unknown_cursor() {
    let (_dir, archive) = filled();
    let size = message(1, "/demls/1/lab-app/proto", 0, 100).page_size();
    let mut q = query(on(&["/demls/1/lab-app/proto"]), Walk::Forward, 100);
    q.max_bytes = size * 3 + 1;
    let page = archive.query(&q).expect("query");
    assert_eq!(page.messages.len(), 3);
    assert_eq!(page.next, Some([3; 32]));
    q.max_bytes = 1;
    assert_eq!(
        archive.query(&q).expect("query").messages.len(),
        1,
        "at least one message"
    );
    q.after = Some([77; 32]);
    assert!(matches!(
        archive.query(&q),
        Err(StorageError::UnknownCursor)
    ));
}

#[test]
fn bounded_by_age_count_and_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ArchiveLimits {
        max_messages: 5,
        max_bytes: 350,
        max_age: Duration::from_nanos(1000),
    };
    let archive = Archive::open(dir.path(), PASS, limits).expect("open");
    let all: Vec<ArchivedMessage> = (1..=10)
        .map(|i| message(i, "t", i64::from(i) * 100, 100))
        .collect();
    archive.insert(&all).expect("insert");
    // At 1250 the retention keeps timestamps >= 250: 8 messages; the count bound keeps 5,
    // the size bound 3 (300 bytes).
    assert_eq!(archive.prune(1250).expect("prune"), 7);
    assert_eq!(archive.stats().expect("stats"), (3, 300));
    assert_eq!(
        timestamps(&archive, query(on(&[]), Walk::Forward, 10)),
        vec![vec![800, 900, 1000]]
    );
}

#[test]
fn survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).expect("open");
        archive.insert(&[message(1, "t", 5, 10)]).expect("insert");
    }
    let archive = Archive::open(dir.path(), PASS, ArchiveLimits::default()).expect("reopen");
    assert!(archive.contains(&[1; 32]).expect("contains"));
}

#[test]
fn announcements_do_not_push_older_chat_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = ArchiveLimits {
        max_messages: 1_000,
        ..ArchiveLimits::default()
    };
    let archive = Archive::open(dir.path(), PASS, limits).expect("open");
    let chat: Vec<ArchivedMessage> = (1..=200)
        .map(|i| message(i, APP, i64::from(i), 100))
        .collect();
    assert_eq!(archive.insert(&chat).expect("chat"), 200);
    let join_request = message(201, WELCOME, 300, 100);
    archive.insert(&[join_request]).expect("join request");
    // 100,000 announcements by two stewards, all newer than the chat, archived 500 a step
    // and pruned after each step as a node does: 100 times the count bound.
    for step in 0..200u32 {
        let batch: Vec<ArchivedMessage> = (0..500u32)
            .map(|i| {
                let n = step * 500 + i;
                announcement(u8::from(n % 2 == 1), n, 1_000 + i64::from(n))
            })
            .collect();
        archive.insert(&batch).expect("announcements");
        assert_eq!(archive.prune(2_000_000).expect("prune"), 0, "step {step}");
    }
    assert_eq!(archive.stats().expect("stats").0, 203);
    assert_eq!(
        timestamps(&archive, query(on(&[APP]), Walk::Forward, 1_000)),
        vec![(1..=200).collect::<Vec<i64>>()],
        "all the chat is kept"
    );
    // A joiner asking for the welcome topic finds each steward's latest announcement.
    let welcome = archive
        .query(&query(on(&[WELCOME]), Walk::Forward, 100))
        .expect("welcome");
    let kept: Vec<(i64, Option<Vec<u8>>)> = welcome
        .messages
        .iter()
        .map(|m| (m.timestamp, m.keep_latest.clone()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (300, None),
            (100_998, Some(vec![0; 20])),
            (100_999, Some(vec![1; 20]))
        ]
    );
    // An older announcement that comes late (from a peer's archive) is not taken.
    assert_eq!(
        archive.insert(&[announcement(0, 7, 1_007)]).expect("late"),
        0
    );
    assert!(
        !archive
            .contains(&announcement(0, 7, 1_007).hash)
            .expect("contains")
    );
    assert_eq!(archive.stats().expect("stats").0, 203);
}
