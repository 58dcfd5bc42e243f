//! The checkpointer over an in-memory log.

use std::time::Duration;

use sealplane_event_store::{MemoryStore, StreamId};

use super::*;

fn schedule(every_events: u64) -> Schedule {
    Schedule {
        every_events,
        every: Duration::from_secs(3600),
    }
}

/// Appends `n` small events to one stream (the startup tests use it too).
pub(crate) async fn append(store: &dyn EventStore, n: usize) {
    let events = (0..n)
        .map(|i| {
            NewEvent::from_json_text(
                EventType::parse("Happened").unwrap(),
                1,
                &format!(r#"{{"n":{i}}}"#),
                &EventMetadata::new("t"),
            )
            .unwrap()
        })
        .collect();
    store
        .append(
            &StreamId::parse("things").unwrap(),
            ExpectedVersion::Any,
            events,
        )
        .await
        .unwrap();
}

async fn checkpointer(store: &Arc<MemoryStore>, key: &LogSigningKey, every: u64) -> Checkpointer {
    let key = LogSigningKey::from_text(&key.to_text()).unwrap();
    Checkpointer::load(store.clone(), key, schedule(every), Arc::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn checkpoints_are_signed_on_schedule_chained_and_verified_at_start_up() {
    // Given a log of 5 events and a checkpointer every 5 events
    let store = Arc::new(MemoryStore::new());
    let key = LogSigningKey::generate();
    append(&*store, 4).await;
    let cp = checkpointer(&store, &key, 5).await;
    // When fewer are appended, none is due
    assert!(cp.cycle().await.unwrap().is_none());
    append(&*store, 1).await;
    // Then the fifth makes one due, covering position 5, the first
    let first = cp.cycle().await.unwrap().unwrap();
    assert_eq!(first.point.position, 5);
    assert_eq!(first.previous, None);
    first.verify().unwrap();
    // And its own record does not make the next one due
    assert!(cp.cycle().await.unwrap().is_none());
    append(&*store, 5).await;
    let second = cp.cycle().await.unwrap().unwrap();
    assert_eq!(second.previous, Some(first.point));
    assert_eq!(second.point.position, 11); // 5 + its record + 5
    // And a restarted checkpointer continues from the latest recorded
    let again = checkpointer(&store, &key, 5).await;
    assert_eq!(again.latest_or_take().await.unwrap(), second);
    // And start-up verification checks the log against both
    let verified = verify_with_recorded(&*store, &key.public_key())
        .await
        .unwrap();
    assert_eq!(verified.checkpoints, 2);
    assert_eq!(verified.events, 12);
}

#[tokio::test]
async fn with_no_checkpoint_yet_one_is_taken_when_asked() {
    let store = Arc::new(MemoryStore::new());
    let key = LogSigningKey::generate();
    let cp = checkpointer(&store, &key, 1000).await;
    // Given an empty log, there is nothing to sign
    assert!(matches!(
        cp.latest_or_take().await,
        Err(CheckpointFailure::Empty)
    ));
    // Given three events and no checkpoint, one is taken now
    append(&*store, 3).await;
    let taken = cp.latest_or_take().await.unwrap();
    assert_eq!(taken.point.position, 3);
    // And asking again returns the same one
    assert_eq!(cp.latest_or_take().await.unwrap(), taken);
}

#[tokio::test]
async fn two_writers_cannot_both_record_the_next_checkpoint() {
    // Given two checkpointers over one log (two processes sharing a store)
    let store = Arc::new(MemoryStore::new());
    let key = LogSigningKey::generate();
    append(&*store, 2).await;
    let a = checkpointer(&store, &key, 1).await;
    let b = checkpointer(&store, &key, 1).await;
    // When both sign the next checkpoint
    a.cycle().await.unwrap().unwrap();
    let raced = b.cycle().await;
    // Then the second is refused by the expected version, and continues
    // from the first one's checkpoint
    assert!(
        matches!(raced, Err(CheckpointFailure::Raced(_))),
        "{raced:?}"
    );
    append(&*store, 1).await;
    let next = b.cycle().await.unwrap().unwrap();
    assert_eq!(next.previous.unwrap().position, 2);
    assert_eq!(
        verify_with_recorded(&*store, &key.public_key())
            .await
            .unwrap()
            .checkpoints,
        2
    );
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_refused_at_start_up() {
    // Given a checkpoint recorded by another key
    let store = Arc::new(MemoryStore::new());
    let other = LogSigningKey::generate();
    append(&*store, 2).await;
    checkpointer(&store, &other, 1)
        .await
        .cycle()
        .await
        .unwrap()
        .unwrap();
    // When this control plane's key verifies the log
    let key = LogSigningKey::generate();
    let err = verify_with_recorded(&*store, &key.public_key())
        .await
        .unwrap_err();
    // Then it names the record and both keys
    let text = err.to_string();
    assert!(text.contains("recorded at position 3"), "{text}");
    assert!(text.contains(&other.key_id()), "{text}");
    assert!(text.contains(&key.key_id()), "{text}");
}

#[test]
fn a_broken_log_is_remembered_with_its_first_place() {
    let integrity = LogIntegrity::default();
    assert_eq!(integrity.broken(), None);
    let at = |p| ChainBreak {
        position: Position(p),
        stream: None,
        kind: sealplane_event_store::BreakKind::Truncated {
            checkpoint: Position(p),
            head: Position(1),
        },
    };
    integrity.fail(&at(7));
    integrity.fail(&at(9));
    assert!(integrity.broken().unwrap().contains("position 7"));
}
