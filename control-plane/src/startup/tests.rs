//! Start-up over an in-memory log: which snapshot is used, what is verified.

use std::sync::Arc;
use std::time::Duration;

use sealplane_event_store::{
    Decorator, JsonObject, MemoryStore, RecordedEvent, StoreError, StreamId, StreamVersion,
};
use sealplane_proto::log_checkpoint::LogSigningKey;

use super::*;
use crate::application::checkpoint::tests::append;
use crate::application::checkpoint::{Checkpointer, Schedule};
use crate::projection::as_of;
use crate::snapshot::{SNAPSHOT_FILE, tests::every_kind_of_state};

/// A snapshot file in `dir` under `key`, holding the model of `store` up
/// to `position`.
async fn snapshot_at(
    store: &dyn EventStore,
    dir: &std::path::Path,
    key: &LogSigningKey,
    position: Position,
) -> Arc<SnapshotFile> {
    let file = Arc::new(SnapshotFile::new(dir.join(SNAPSHOT_FILE), key));
    let model = as_of(store, ReadModel::default(), position).await.unwrap();
    let at = LogCheckpoint::of(&store.read_all(position, 1).await.unwrap()[0]);
    file.write(&model, at).unwrap();
    file
}

/// `prepare` with the snapshot `file`, verifying incrementally (the default).
async fn start_incrementally(
    store: &dyn EventStore,
    key: &LogSigningKey,
    file: Arc<SnapshotFile>,
) -> Start {
    prepare(
        store,
        &key.public_key(),
        Some(file),
        VerifyOnStart::Incremental,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_snapshot_the_log_agrees_with_is_restored_and_only_the_events_after_it_are_verified() {
    // Given a log and a snapshot of its model in the middle
    let store = MemoryStore::new();
    let middle = every_kind_of_state(&store).await;
    let head = store.head().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = LogSigningKey::generate();
    let file = snapshot_at(&store, dir.path(), &key, middle).await;
    // When the control plane starts, verifying incrementally
    let start = start_incrementally(&store, &key, file).await;
    // Then the model comes from the snapshot, and the chains are verified
    // from there to the head
    assert!(start.restored);
    assert_eq!(start.applied.position, middle);
    assert_eq!(start.verified_after, middle);
    assert_eq!(start.verified.events, head.0 - middle.0);
    let expected = as_of(&store, ReadModel::default(), middle).await.unwrap();
    assert_eq!(start.model, expected);
}

#[tokio::test]
async fn a_snapshot_of_another_log_or_beyond_its_head_is_discarded_for_a_full_rebuild() {
    // Given a snapshot taken of another log (same positions, other events)
    let key = LogSigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let other = MemoryStore::new();
    append(&other, 20).await;
    let file = snapshot_at(&other, dir.path(), &key, Position(10)).await;
    let store = MemoryStore::new();
    append(&store, 12).await;
    // When the control plane starts on this log
    let start = start_incrementally(&store, &key, file.clone()).await;
    // Then the snapshot is not used: the model starts empty, and the whole
    // log is verified
    assert!(!start.restored);
    assert_eq!(start.applied, LogCheckpoint::EMPTY);
    assert_eq!(start.model, ReadModel::default());
    assert_eq!(start.verified.events, 12);

    // Given a snapshot past the head (the log was restored from an older backup)
    let file = snapshot_at(&other, dir.path(), &key, Position(15)).await;
    let start = start_incrementally(&store, &key, file).await;
    // Then it is discarded too
    assert!(!start.restored);
}

#[tokio::test]
async fn an_unusable_snapshot_file_means_a_rebuild_not_a_failure() {
    // Given a snapshot file that is corrupt
    let store = MemoryStore::new();
    append(&store, 5).await;
    let key = LogSigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_at(&store, dir.path(), &key, Position(3)).await;
    let mut bytes = std::fs::read(file.path()).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    sealplane_host::durable::write_atomic(file.path(), &bytes, 0o600).unwrap();
    // When the control plane starts
    let start = start_incrementally(&store, &key, file).await;
    // Then it starts, with the model to be rebuilt from position 1
    assert!(!start.restored);
    assert_eq!(start.verified.events, 5);
}

#[tokio::test]
async fn without_a_snapshot_or_with_full_the_whole_log_and_its_checkpoints_are_verified() {
    // Given a log with signed checkpoints recorded in it, and a snapshot
    let store = Arc::new(MemoryStore::new());
    let key = LogSigningKey::generate();
    let schedule = Schedule {
        every_events: 5,
        every: Duration::from_secs(3600),
    };
    let signer = Checkpointer::load(
        store.clone(),
        LogSigningKey::from_text(&key.to_text()).unwrap(),
        schedule,
        Arc::default(),
    )
    .await
    .unwrap();
    append(&*store, 5).await;
    signer.cycle().await.unwrap().unwrap();
    append(&*store, 5).await;
    signer.cycle().await.unwrap().unwrap();
    append(&*store, 3).await;
    let head = store.head().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_at(&*store, dir.path(), &key, Position(9)).await;
    // When the control plane starts without the snapshot
    let start = prepare(&*store, &key.public_key(), None, VerifyOnStart::Incremental)
        .await
        .unwrap();
    // Then it verifies the whole log it folds, checkpoints included
    assert_eq!(start.verified_after, Position(0));
    assert_eq!(start.verified.events, head.0);
    assert_eq!(start.verified.checkpoints, 2);
    // And with verify_on_start = "full" it does so even with the snapshot
    let full = prepare(&*store, &key.public_key(), Some(file), VerifyOnStart::Full)
        .await
        .unwrap();
    assert!(full.restored);
    assert_eq!(full.verified_after, Position(0));
    assert_eq!(full.verified.events, head.0);
    assert_eq!(full.verified.checkpoints, 2);
    // And checkpoints signed by another key are refused at start
    let err = prepare(
        &*store,
        &LogSigningKey::generate().public_key(),
        None,
        VerifyOnStart::Incremental,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CheckpointFailure::BadRecord { .. }), "{err}");
}

/// A store whose event at `edited` reads back with other content (and its
/// hashes as recorded): an edit made in the database before that position.
struct Edited {
    inner: MemoryStore,
    edited: Position,
}

impl Edited {
    fn edit(&self, mut events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
        for e in events.iter_mut().filter(|e| e.position == self.edited) {
            e.data = JsonObject::parse("data", r#"{"n":"forged"}"#).unwrap();
        }
        events
    }
}

#[async_trait::async_trait]
impl Decorator for Edited {
    fn inner(&self) -> &dyn EventStore {
        &self.inner
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.edit(self.inner.read_stream(stream, from, limit).await?))
    }
    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.edit(self.inner.read_all(from, limit).await?))
    }
}

#[tokio::test]
async fn an_edit_before_the_snapshot_passes_start_up_and_is_caught_by_the_background_walk() {
    // Given a log with a snapshot at position 8, and event 3 edited in
    // the database afterwards (its hashes left as recorded)
    let inner = MemoryStore::new();
    append(&inner, 10).await;
    let key = LogSigningKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot_at(&inner, dir.path(), &key, Position(8)).await;
    let store: Arc<dyn EventStore> = Arc::new(Edited {
        inner,
        edited: Position(3),
    });
    // When the control plane starts incrementally
    let start = start_incrementally(&*store, &key, file).await;
    // Then start-up does not see it (it verified positions 9 and 10)
    assert!(start.restored);
    assert_eq!(start.verified.events, 2);
    // But the background walk does, and the server fails closed
    let integrity = Arc::new(LogIntegrity::default());
    verify_in_background(
        store.clone(),
        key.public_key(),
        integrity.clone(),
        std::future::pending(),
    )
    .await;
    let broken = integrity.broken().expect("the log is marked broken");
    assert!(broken.contains("position 3"), "{broken}");
    // And without the snapshot start-up refuses the log at once
    let err = prepare(&*store, &key.public_key(), None, VerifyOnStart::Incremental)
        .await
        .unwrap_err();
    assert!(matches!(err, CheckpointFailure::Broken(_)), "{err}");
}
