//! The embedded SQLite backend: the conformance suite, plus what only a
//! file on disk has (permissions, the single-process lock, schema version).

mod conformance;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use conformance::{Backend, DurableBackend};
use sealplane_event_store::{EmbeddedStore, EventStore, ExpectedVersion, Position, StoreError};
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
        EmbeddedStore::open(&self.path).unwrap()
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
}

core_cases!(Embedded);
durable_cases!(Embedded);

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
    let again = EmbeddedStore::open(&backend.path).unwrap();
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
    match store.read_all(Position::START, 10).await {
        Err(StoreError::Corrupt { at, reason }) => {
            assert_eq!(at, "position 2");
            assert!(reason.contains("data must be a JSON object"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    store.close().await;
}
