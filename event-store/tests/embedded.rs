//! The embedded SQLite backend: the conformance suite, plus what only a
//! file on disk has (permissions, the single-process lock, schema version
//! and migration).

mod conformance;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use conformance::{Backend, DurableBackend, events, read_everything, stream};
use sealplane_event_store::{
    BreakKind, EmbeddedStore, EventStore, ExpectedVersion, LogCheckpoint, Position, RecordedEvent,
    StoreError, StreamVersion, VerifyError, verify_log_against,
};
use tempfile::TempDir;

struct Embedded {
    _dir: Option<TempDir>,
    path: PathBuf,
}

impl Embedded {
    fn connect(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }
}

#[async_trait::async_trait]
impl Backend for Embedded {
    type Store = EmbeddedStore;

    async fn fresh() -> Self {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("events.db");
        Embedded {
            _dir: Some(dir),
            path,
        }
    }

    async fn open(&self) -> EmbeddedStore {
        open_once_free(&self.path).await
    }
}

/// Opens the store at `path`, waiting out a lock held only for a moment.
/// The crash test in this binary starts child processes, and a child holds
/// a copy of every open descriptor from its fork until its exec closes
/// them: a store's lock file closed by another test in that window stays
/// locked until then.
async fn open_once_free(path: &std::path::Path) -> EmbeddedStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match EmbeddedStore::open(path) {
            Err(StoreError::InUse { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            opened => return opened.unwrap(),
        }
    }
}

#[async_trait::async_trait]
impl DurableBackend for Embedded {
    fn location(&self) -> String {
        self.path.to_str().unwrap().to_owned()
    }

    fn at(location: &str) -> Self {
        Embedded {
            _dir: None,
            path: location.into(),
        }
    }

    async fn overwrite_data(&self, position: Position, data: &str) {
        let changed = self
            .connect()
            .execute(
                "UPDATE events SET data = ?1 WHERE position = ?2",
                rusqlite::params![data, position.0 as i64],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    async fn delete_event(&self, position: Position) {
        let changed = self
            .connect()
            .execute(
                "DELETE FROM events WHERE position = ?1",
                [position.0 as i64],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    async fn rewrite_log(&self, events: &[RecordedEvent]) {
        let mut conn = self.connect();
        let tx = conn.transaction().unwrap();
        tx.execute("DELETE FROM events", []).unwrap();
        for e in events {
            tx.execute(
                "INSERT INTO events (position, stream_id, stream_version, event_type, \
                 schema_version, data, metadata, prev_hash, hash, log_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    e.position.0 as i64,
                    e.stream_id.as_str(),
                    e.version.0 as i64,
                    e.event_type.as_str(),
                    e.schema_version,
                    e.data.as_str(),
                    e.metadata.as_str(),
                    &e.prev_hash.0[..],
                    &e.hash.0[..],
                    &e.log_hash.0[..],
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
}

impl Embedded {
    /// Turns the closed store's file back into schema version 1, as the
    /// previous release wrote it: no `log_hash` column.
    fn downgrade_to_schema_1(&self) {
        let conn = self.connect();
        conn.execute_batch("ALTER TABLE events DROP COLUMN log_hash; PRAGMA user_version = 1;")
            .unwrap();
        assert!(!self.has_log_hash_column());
    }

    fn has_log_hash_column(&self) -> bool {
        let conn = self.connect();
        let mut q = conn
            .prepare("SELECT name FROM pragma_table_info('events')")
            .unwrap();
        let names: Vec<String> = q
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names.iter().any(|n| n == "log_hash")
    }

    fn user_version(&self) -> i64 {
        self.connect()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }
}

/// A closed store of 30 events over three streams, and what it held.
async fn filled(backend: &Embedded) -> Vec<RecordedEvent> {
    let store = backend.open().await;
    for i in 0..15 {
        store
            .append(
                &stream(&format!("s{}", i % 3)),
                ExpectedVersion::Any,
                events(2, &i.to_string()),
            )
            .await
            .unwrap();
    }
    let all = read_everything(&store).await;
    store.close().await;
    all
}

core_cases!(Embedded);
durable_cases!(Embedded);

/// The conformance suite visits on a multi-threaded runtime, where the
/// store reads inside `block_in_place`; on a single-threaded one (as
/// `#[tokio::test]` and small tools run) it reads on the runtime's thread,
/// and must lend the same events, and refuse once closed.
#[tokio::test]
async fn a_visit_on_a_single_threaded_runtime_lends_the_whole_log() {
    let backend = Embedded::fresh().await;
    let all = filled(&backend).await;
    let store = backend.open().await;
    let (given, lent) = conformance::visited(&store, Position::START, None).await;
    assert_eq!(given, 30);
    assert_eq!(lent, all);
    store.close().await;
    let closed = store
        .visit_all(
            Position::START,
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .await;
    assert!(matches!(closed, Err(StoreError::Closed)), "{closed:?}");
}

#[tokio::test]
async fn the_store_file_is_readable_by_its_owner_only() {
    let backend = Embedded::fresh().await;
    let store = backend.open().await;
    store
        .append(
            &sealplane_event_store::StreamId::parse("s").unwrap(),
            ExpectedVersion::Any,
            vec![
                sealplane_event_store::NewEvent::from_json_text(
                    sealplane_event_store::EventType::parse("T").unwrap(),
                    1,
                    "{}",
                    &sealplane_event_store::EventMetadata::new("t"),
                )
                .unwrap(),
            ],
        )
        .await
        .unwrap();
    for suffix in ["", "-wal"] {
        let mut path = backend.path.clone().into_os_string();
        path.push(suffix);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path:?} has mode {mode:o}");
    }
    store.close().await;
}

#[tokio::test]
async fn a_second_opener_is_refused_until_the_first_closes() {
    let backend = Embedded::fresh().await;
    let first = backend.open().await;
    let err = EmbeddedStore::open(&backend.path)
        .err()
        .expect("second open must fail");
    assert!(
        matches!(err, StoreError::InUse { .. })
            && err.to_string().contains("in use by another process"),
        "{err}"
    );
    first.close().await;
    let again = open_once_free(&backend.path).await;
    again.close().await;
}

#[tokio::test]
async fn a_store_from_a_newer_version_is_refused() {
    let backend = Embedded::fresh().await;
    backend.open().await.close().await;
    backend
        .connect()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = EmbeddedStore::open(&backend.path)
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("newer Sealplane"), "{err}");
}

#[tokio::test]
async fn the_store_knows_the_last_version_of_what_it_wrote_and_nothing_after_a_reopen() {
    let backend = Embedded::fresh().await;
    let store = backend.open().await;
    store
        .append(&stream("a"), ExpectedVersion::NoStream, events(3, "a"))
        .await
        .unwrap();
    assert_eq!(
        store.last_version_written(&stream("a")),
        Some(StreamVersion(2))
    );
    // A refused append leaves what it knows as it was.
    store
        .append(&stream("a"), ExpectedVersion::NoStream, events(1, "again"))
        .await
        .unwrap_err();
    assert_eq!(
        store.last_version_written(&stream("a")),
        Some(StreamVersion(2))
    );
    assert_eq!(store.last_version_written(&stream("never")), None);
    store.close().await;
    // Reopened, it has written nothing yet: it says nothing, and the
    // stream is read as before.
    let store = backend.open().await;
    assert_eq!(store.last_version_written(&stream("a")), None);
    store
        .append(&stream("a"), ExpectedVersion::Any, events(1, "more"))
        .await
        .unwrap();
    assert_eq!(
        store.last_version_written(&stream("a")),
        Some(StreamVersion(3))
    );
}

#[tokio::test]
async fn reads_after_close_say_closed() {
    let backend = Embedded::fresh().await;
    let store = backend.open().await;
    store.close().await;
    assert!(matches!(
        store.read_all(Position::START, 10).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.head().await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn garbage_in_the_file_is_reported_as_corrupt_not_returned() {
    let backend = Embedded::fresh().await;
    let store = backend.open().await;
    let s = sealplane_event_store::StreamId::parse("s").unwrap();
    for _ in 0..3 {
        let e = sealplane_event_store::NewEvent::from_json_text(
            sealplane_event_store::EventType::parse("T").unwrap(),
            1,
            "{}",
            &sealplane_event_store::EventMetadata::new("t"),
        )
        .unwrap();
        store
            .append(&s, ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    store.close().await;
    backend.overwrite_data(Position(2), "garbage").await;
    let store = backend.open().await;
    assert_read_corrupt_at(&store, "position 2", "data must be a JSON object").await;
    store.close().await;
}

/// Reads the whole log and asserts it is refused as corrupt at `at`, for
/// a reason that says `why`.
async fn assert_read_corrupt_at(store: &EmbeddedStore, at: &str, why: &str) {
    match store.read_all(Position::START, 1_000).await {
        Err(StoreError::Corrupt { at: found, reason }) => {
            assert_eq!(found, at);
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn a_read_gives_each_event_its_own_stream_and_type_and_still_checks_each_row() {
    // Given 30 events over three streams, read once as written
    let backend = Embedded::fresh().await;
    let written = filled(&backend).await;
    let store = backend.open().await;

    // When they are read back in one page and in small pages, then each
    // has the stream and type it was written with, though a read shares
    // the names it has seen
    let whole = store.read_all(Position::START, 100).await.unwrap();
    assert_eq!(whole, written);
    let mut paged: Vec<RecordedEvent> = vec![];
    loop {
        let next = paged.last().map_or(Position::START, |e| e.position.next());
        let page = store.read_all(next, 4).await.unwrap();
        if page.is_empty() {
            break;
        }
        paged.extend(page);
    }
    assert_eq!(paged, written);
    store.close().await;

    // And a stored stream id edited to an invalid one, after the same read
    // has seen valid ids, is reported where it is, not passed on
    backend
        .connect()
        .execute(
            "UPDATE events SET stream_id = 's 1' WHERE position = 20",
            [],
        )
        .unwrap();
    let store = backend.open().await;
    assert_read_corrupt_at(&store, "position 20", "stream id").await;
    store.close().await;
}

#[tokio::test]
async fn a_page_is_made_with_room_for_what_the_log_holds_and_no_more() {
    // Given a log of 30 events
    let backend = Embedded::fresh().await;
    let written = filled(&backend).await;
    let store = backend.open().await;

    // When a page of up to 4,096 is read from the start, then it was made
    // for the 30 the log holds, not grown to them and not for 4,096
    let whole = store.read_all(Position::START, 4096).await.unwrap();
    assert_eq!(whole, written);
    assert_eq!(whole.capacity(), 30);

    // And a read near the head, as a live feed makes, is as small
    let tail = store.read_all(written[27].position, 4096).await.unwrap();
    assert_eq!(tail, written[27..]);
    assert_eq!(tail.capacity(), 3);

    // And a page smaller than the log has room for its limit
    let page = store.read_all(Position::START, 8).await.unwrap();
    assert_eq!(page, written[..8]);
    assert_eq!(page.capacity(), 8);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_written_whole_in_order_and_a_refused_one_leaves_nothing() {
    // Given a stream with three events
    let backend = Embedded::fresh().await;
    let store = backend.open().await;
    let s = stream("big");
    store
        .append(&s, ExpectedVersion::NoStream, events(3, "before"))
        .await
        .unwrap();

    // When 70 events are appended in one batch
    let done = store
        .append(
            &s,
            ExpectedVersion::Exact(StreamVersion(2)),
            events(70, "big"),
        )
        .await
        .unwrap();

    // Then they follow on, in order, each row its own, and the log verifies
    assert_eq!(done.version, StreamVersion(72));
    let all = read_everything(&store).await;
    assert_eq!(all.len(), 73);
    for (i, e) in all.iter().enumerate().skip(3) {
        assert_eq!(e.position, Position(i as u64 + 1));
        assert_eq!(e.version, StreamVersion(i as u64));
        assert_eq!(
            e.data.as_str(),
            format!(r#"{{"i":{},"tag":"big"}}"#, i - 3),
            "event {i}"
        );
    }
    let held = LogCheckpoint::of(all.last().unwrap());
    assert_eq!(verify_log_against(&store, [held]).await.unwrap().events, 73);

    // And an append of 70 more with a second part that is refused leaves
    // none of the 70 behind
    let refused = store
        .append_many(vec![
            sealplane_event_store::StreamAppend::new(
                s.clone(),
                ExpectedVersion::Exact(StreamVersion(72)),
                events(70, "lost"),
            ),
            sealplane_event_store::StreamAppend::new(
                s.clone(),
                ExpectedVersion::NoStream,
                events(1, "conflict"),
            ),
        ])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(read_everything(&store).await, all);
    store.close().await;
}

#[tokio::test]
async fn a_store_of_the_previous_schema_is_migrated_on_open_and_then_verifies() {
    // Given a file as the previous release left it
    let backend = Embedded::fresh().await;
    let before = filled(&backend).await;
    backend.downgrade_to_schema_1();

    // When this release opens it
    let store = backend.open().await;

    // Then every event has the log hash it would have had, and the log
    // verifies against a checkpoint taken before the migration
    assert_eq!(read_everything(&store).await, before);
    let held = LogCheckpoint::of(before.last().unwrap());
    let report = verify_log_against(&store, [held]).await.unwrap();
    assert_eq!((report.events, report.checkpoints), (30, 1));
    // And appends continue the chain
    store
        .append(&stream("s9"), ExpectedVersion::NoStream, events(3, "after"))
        .await
        .unwrap();
    assert_eq!(verify_log_against(&store, [held]).await.unwrap().events, 33);
    store.close().await;
    assert_eq!(backend.user_version(), 2);
    assert!(backend.has_log_hash_column());
}

#[tokio::test]
async fn migrating_does_not_bless_an_event_edited_before_it() {
    // Given a previous-schema file with one event edited
    let backend = Embedded::fresh().await;
    filled(&backend).await;
    backend.downgrade_to_schema_1();
    backend
        .overwrite_data(Position(7), r#"{"i":0,"tag":"forged"}"#)
        .await;

    // When it is migrated, then the edit is still found where it is
    let store = backend.open().await;
    match verify_log_against(&store, []).await {
        Err(VerifyError::Broken(b)) => {
            assert_eq!(b.position, Position(7));
            assert!(matches!(b.kind, BreakKind::ContentEdited { .. }), "{b}");
        }
        other => panic!("expected a break, got {other:?}"),
    }
    store.close().await;
}

#[tokio::test]
async fn a_migration_that_fails_leaves_the_previous_schema_whole() {
    // Given a previous-schema file whose 12th event has an unreadable hash
    let backend = Embedded::fresh().await;
    filled(&backend).await;
    backend.downgrade_to_schema_1();
    backend
        .connect()
        .execute("UPDATE events SET hash = x'00' WHERE position = 12", [])
        .unwrap();

    // When it is opened, then it is refused, naming the event
    let err = EmbeddedStore::open(&backend.path)
        .err()
        .expect("must refuse");
    assert!(
        matches!(&err, StoreError::Corrupt { at, .. } if at == "position 12"),
        "{err}"
    );
    // And nothing of the migration was kept
    assert_eq!(backend.user_version(), 1);
    assert!(!backend.has_log_hash_column());
}
