//! The PostgreSQL backend against a real server: the conformance suite
//! unchanged, plus what only a shared database has (gap-free positions
//! under concurrent appenders from several connections, subscriptions that
//! survive a terminated connection, the schema version, credentials kept
//! out of errors).
//!
//! `scripts/test` starts a private server and exports
//! `SEALPLANE_TEST_POSTGRES_URL`; without it these tests fail rather than
//! skip. Each test gets a database of its own (`CREATE DATABASE` with a
//! random name), dropped when it ends unless a store still has it open.

mod conformance;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use conformance::{Backend, DurableBackend, events, read_everything, stream};
use futures_util::StreamExt;
use sealplane_event_store::{
    EventStore, ExpectedVersion, Position, PostgresOptions, PostgresStore, RecordedEvent,
    SubscriptionMessage, verify_log,
};
use sqlx::{Connection, PgConnection};

const URL_ENV: &str = "SEALPLANE_TEST_POSTGRES_URL";

fn admin_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{URL_ENV} is not set: run these tests with `scripts/test` (e.g. `SEALPLANE_TEST_CMD='cargo test -p sealplane-event-store --features postgres --test postgres' scripts/test`), which starts a PostgreSQL server and exports it"
        )
    })
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// url");
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{db}{query}")
}

/// One database on the test server, dropped with the value that created it
/// once no store has it open.
struct Postgres {
    url: String,
    database: String,
    owner: bool,
}

impl Postgres {
    async fn sql(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    async fn execute(&self, sql: String) -> u64 {
        let mut conn = self.sql().await;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        done.rows_affected()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        let (admin, db) = (admin_url(), self.database.clone());
        // Without FORCE: a case may keep a store open past its backend, and
        // then the database stays until the server goes (scripts/test
        // removes its data). Drop runs inside the test's runtime; a thread
        // of its own may block.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Ok(mut conn) = PgConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {db}"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                })
        })
        .join();
    }
}

#[async_trait::async_trait]
impl Backend for Postgres {
    type Store = PostgresStore;

    async fn fresh() -> Self {
        let admin = admin_url();
        let database = format!("sealplane_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server at {URL_ENV}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .unwrap();
        Postgres {
            url: with_database(&admin, &database),
            database,
            owner: true,
        }
    }

    async fn open(&self) -> PostgresStore {
        PostgresStore::connect(&self.url).await.unwrap()
    }
}

#[async_trait::async_trait]
impl DurableBackend for Postgres {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn at(location: &str) -> Self {
        Postgres {
            url: location.to_owned(),
            database: String::new(),
            owner: false,
        }
    }

    async fn overwrite_data(&self, position: Position, data: &str) {
        let mut conn = self.sql().await;
        let done = sqlx::query("UPDATE sealplane_events SET data = $1 WHERE position = $2")
            .bind(data)
            .bind(position.0 as i64)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }

    async fn delete_event(&self, position: Position) {
        let mut conn = self.sql().await;
        let done = sqlx::query("DELETE FROM sealplane_events WHERE position = $1")
            .bind(position.0 as i64)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }

    async fn rewrite_log(&self, events: &[RecordedEvent]) {
        let mut conn = self.sql().await;
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("DELETE FROM sealplane_events")
            .execute(&mut *tx)
            .await
            .unwrap();
        for e in events {
            sqlx::query(
                "INSERT INTO sealplane_events (position, stream_id, stream_version, event_type, \
                 schema_version, data, metadata, prev_hash, hash, log_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(e.position.0 as i64)
            .bind(e.stream_id.as_str())
            .bind(e.version.0 as i64)
            .bind(e.event_type.as_str())
            .bind(i64::from(e.schema_version))
            .bind(e.data.as_str())
            .bind(e.metadata.as_str())
            .bind(&e.prev_hash.0[..])
            .bind(&e.hash.0[..])
            .bind(&e.log_hash.0[..])
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

core_cases!(Postgres);
durable_cases!(Postgres);

/// Appenders on several stores (each its own pool of connections) commit
/// concurrently while a reader tails `read_all`: every page starts where
/// the previous ended and runs without a hole, so the reader never sees
/// position p + 1 before p, and in the end it has seen every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_tailing_concurrent_appenders_from_several_connections_never_sees_a_gap() {
    const STORES: usize = 3;
    const WRITERS_PER_STORE: usize = 4;
    const APPENDS: usize = 30;
    let backend = Postgres::fresh().await;
    let mut stores = Vec::new();
    for _ in 0..STORES {
        stores.push(backend.open().await);
    }
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (backend.open().await, done.clone());
        tokio::spawn(async move {
            let mut next = Position::START;
            let mut pages = 0u64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(next, 64).await.unwrap();
                for e in &page {
                    assert_eq!(e.position, next, "the reader saw a gap or a repeat");
                    next = next.next();
                }
                pages += 1;
                if finished && page.is_empty() {
                    return (next.0 - 1, pages);
                }
            }
        })
    };
    let mut writers = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for w in 0..WRITERS_PER_STORE {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..APPENDS {
                    // Sizes vary, so transactions take different times.
                    let batch = events(1 + (n + w) % 5, &format!("{s}-{w}-{n}"));
                    store
                        .append(&stream(&format!("t-{s}-{w}")), ExpectedVersion::Any, batch)
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (seen, pages) = reader.await.unwrap();
    let all = read_everything(&stores[0]).await;
    assert_eq!(seen, all.len() as u64);
    assert!(pages > 1, "the reader tailed while appends ran");
    let unique: HashSet<_> = all.iter().map(|e| e.position).collect();
    assert_eq!(unique.len(), all.len());
    assert_eq!(verify_log(&stores[0]).await.unwrap(), all.len() as u64);
    for store in stores {
        store.close().await;
    }
}

/// A subscriber learns of another process's appends by `LISTEN/NOTIFY`
/// (the poll is set far beyond the test's patience), and keeps going, with
/// no gap nor repeat, after every connection of its store is terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_its_connections_being_terminated() {
    let backend = Postgres::fresh().await;
    let slow_poll = PostgresOptions {
        poll_interval: Duration::from_secs(3600),
        ..PostgresOptions::default()
    };
    let subscriber = PostgresStore::connect_with(&backend.url, slow_poll)
        .await
        .unwrap();
    let writer = backend.open().await;
    let mut sub = subscriber.subscribe_all(Position::START);
    assert_eq!(
        next(&mut sub).await,
        SubscriptionMessage::CaughtUp(Position(0))
    );
    let mut want = 1;
    for round in 0..3 {
        writer
            .append(&stream("live"), ExpectedVersion::Any, events(3, "x"))
            .await
            .unwrap();
        for _ in 0..3 {
            match next(&mut sub).await {
                SubscriptionMessage::Event(e) => assert_eq!(e.position, Position(want)),
                other => panic!("expected an event, got {other:?}"),
            }
            want += 1;
        }
        // Every connection but the one terminating: the subscriber's
        // listener and pool, and the writer's.
        let killed = backend
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    .to_owned(),
            )
            .await;
        assert!(killed >= 1, "round {round}: nothing was terminated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    subscriber.close().await;
    writer.close().await;
}

async fn next(sub: &mut sealplane_event_store::Subscription) -> SubscriptionMessage {
    tokio::time::timeout(Duration::from_secs(20), sub.next())
        .await
        .expect("the subscription stalled")
        .expect("the subscription ended")
        .unwrap()
}

#[tokio::test]
async fn a_schema_from_a_newer_version_is_refused() {
    let backend = Postgres::fresh().await;
    backend.open().await.close().await;
    backend
        .execute("UPDATE sealplane_schema_version SET version = 99".to_owned())
        .await;
    let err = PostgresStore::connect(&backend.url)
        .await
        .expect_err("must refuse");
    assert!(err.to_string().contains("newer Sealplane"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    let err = PostgresStore::connect_with(
        "postgres://sealplane:hunter2@127.0.0.1:1/nowhere",
        PostgresOptions {
            connect_timeout: Duration::from_secs(2),
            ..PostgresOptions::default()
        },
    )
    .await
    .expect_err("nothing listens on port 1");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://sealplane:***@127.0.0.1:1/nowhere"),
        "{shown}"
    );
}

#[tokio::test]
async fn two_stores_on_one_database_share_one_log() {
    let backend = Postgres::fresh().await;
    let (a, b) = (backend.open().await, backend.open().await);
    a.append(&stream("s"), ExpectedVersion::NoStream, events(2, "a"))
        .await
        .unwrap();
    let appended = b
        .append(
            &stream("s"),
            ExpectedVersion::Exact(sealplane_event_store::StreamVersion(1)),
            events(1, "b"),
        )
        .await
        .unwrap();
    assert_eq!(appended.first_position, Position(3));
    assert_eq!(a.head().await.unwrap(), Position(3));
    assert_eq!(read_everything(&a).await, read_everything(&b).await);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_share_leases_and_sections() {
    let backend = Postgres::fresh().await;
    let (a, b) = (backend.open().await, backend.open().await);
    let ttl = Duration::from_secs(30);
    assert!(a.acquire_lease("once", "replica-a", ttl).await.unwrap());
    assert!(
        !b.acquire_lease("once", "replica-b", ttl).await.unwrap(),
        "the other process sees the holder"
    );
    a.release_lease("once", "replica-a").await.unwrap();
    assert!(b.acquire_lease("once", "replica-b", ttl).await.unwrap());

    let held = a.exclusive("verify").await.unwrap();
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.exclusive("verify").await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "b waits while a holds the section");
    drop(held);
    let admitted = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("b is admitted once a leaves")
        .unwrap();
    drop(admitted);
    // A holder whose process dies (its session ends) frees the section.
    let held = b.exclusive("verify").await.unwrap();
    let ended = backend
        .execute(
            // pg_locks is server-wide: only this test's database, or a
            // parallel test's session holding a section of its own dies too.
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                .to_owned(),
        )
        .await;
    assert_eq!(ended, 1, "one session held the section");
    tokio::time::timeout(Duration::from_secs(10), a.exclusive("verify"))
        .await
        .expect("a dead session's section is free")
        .unwrap();
    drop(held);
    a.close().await;
    b.close().await;
}

// ------------------------------------------------------- migrate-store

mod migrate {
    use super::*;
    use sealplane_event_store::{
        BreakKind, EmbeddedImport, EmbeddedStore, LogCheckpoint, MigrateError, copy_log,
    };

    /// An embedded log of `n` events over three streams, appended in
    /// batches of up to 1,000 (several import pages for n > 5,000).
    async fn embedded_log(path: &std::path::Path, n: usize) -> EmbeddedStore {
        let store = EmbeddedStore::open(path).unwrap();
        let mut left = n;
        let mut i = 0;
        while left > 0 {
            let k = left.min(1000 - (i % 7) * 100);
            store
                .append(
                    &stream(&format!("s-{}", i % 3)),
                    ExpectedVersion::Any,
                    events(k, &format!("b{i}")),
                )
                .await
                .unwrap();
            left -= k;
            i += 1;
        }
        store
    }

    fn head_of(events: &[RecordedEvent]) -> LogCheckpoint {
        LogCheckpoint::of(events.last().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_to_postgres_to_embedded_keeps_every_event_and_hash() {
        // Given an embedded log spanning several import pages
        let dir = tempfile::tempdir().unwrap();
        let source = embedded_log(&dir.path().join("events.db"), 12_345).await;
        let original = read_everything(&source).await;

        // When it is migrated to an empty PostgreSQL database
        let pg = <Postgres as Backend>::fresh().await;
        let target = pg.open().await;
        let import = target.begin_import().await.unwrap();
        let migrated = copy_log(&source, "source", Box::new(import), |_, _| {})
            .await
            .unwrap();
        source.close().await;

        // Then the copy verified up to the source's head, and holds every
        // event field for field: positions, versions, data, all hashes
        assert_eq!(migrated.verified.events, 12_345);
        assert_eq!(migrated.verified.streams, 3);
        assert_eq!(migrated.verified.head, head_of(&original));
        assert_eq!(read_everything(&target).await, original);
        assert_eq!(target.head().await.unwrap(), Position(12_345));

        // And back to a new embedded file, still identical
        let back = dir.path().join("back").join("events.db");
        let import = EmbeddedImport::create(&back).unwrap();
        copy_log(&target, "pg", Box::new(import), |_, _| {})
            .await
            .unwrap();
        let left: Vec<_> = std::fs::read_dir(back.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            ["events.db"],
            "one self-contained file, nothing beside it"
        );
        let reopened = EmbeddedStore::open(&back).unwrap();
        assert_eq!(read_everything(&reopened).await, original);
        reopened.close().await;

        // And the PostgreSQL copy takes appends after it, chains linked
        let appended = target
            .append(&stream("s-1"), ExpectedVersion::Any, events(2, "after"))
            .await
            .unwrap();
        assert_eq!(appended.first_position, Position(12_346));
        assert_eq!(verify_log(&target).await.unwrap(), 12_347);
        target.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_target_holding_events_is_refused_and_left_unchanged() {
        // Given a PostgreSQL store and an embedded file that hold a log
        let pg = <Postgres as Backend>::fresh().await;
        let target = pg.open().await;
        target
            .append(&stream("x"), ExpectedVersion::NoStream, events(3, "kept"))
            .await
            .unwrap();
        let before = read_everything(&target).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("events.db");
        embedded_log(&file, 5).await.close().await;
        let bytes = std::fs::read(&file).unwrap();

        // When an import into either starts, then it is refused by name
        let err = target.begin_import().await.err().unwrap();
        assert!(matches!(err, MigrateError::TargetNotEmpty(_)), "{err}");
        assert!(
            err.to_string().contains("already holds an event log"),
            "{err}"
        );
        let err = EmbeddedImport::create(&file).err().unwrap();
        assert!(matches!(err, MigrateError::TargetNotEmpty(_)), "{err}");

        // And neither changed
        assert_eq!(read_everything(&target).await, before);
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
        target.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tampered_source_is_refused_and_the_target_keeps_nothing() {
        // Given an embedded log with one event edited in its second page
        // (the first page is written before the edit is reached)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        embedded_log(&path, 8_000).await.close().await;
        let edited = rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE events SET data = '{\"tag\":\"forged\",\"i\":0}' WHERE position = 6500",
                [],
            )
            .unwrap();
        assert_eq!(edited, 1);
        let source = EmbeddedStore::open(&path).unwrap();

        // When it is migrated to PostgreSQL, then the edit is named
        let pg = <Postgres as Backend>::fresh().await;
        let target = pg.open().await;
        let import = target.begin_import().await.unwrap();
        let err = copy_log(&source, "source", Box::new(import), |_, _| {})
            .await
            .unwrap_err();
        let MigrateError::SourceBroken(brk) = &err else {
            panic!("expected a broken source, got {err}");
        };
        assert_eq!(brk.position, Position(6500));
        assert!(matches!(brk.kind, BreakKind::ContentEdited { .. }), "{brk}");
        assert!(err.to_string().contains("nothing was copied"), "{err}");
        // And the database holds nothing, and can still be migrated into
        assert_eq!(target.head().await.unwrap(), Position(0));
        assert!(read_everything(&target).await.is_empty());
        assert!(target.begin_import().await.is_ok());
        target.close().await;

        // And into a new embedded file: refused, nothing left behind
        let out = dir.path().join("copy");
        let import = EmbeddedImport::create(&out.join("events.db")).unwrap();
        let err = copy_log(&source, "source", Box::new(import), |_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(err, MigrateError::SourceBroken(_)), "{err}");
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        source.close().await;
    }
}
