//! Projections: read models built by following the log.
//!
//! A [`Projection`] folds recorded events into a read model. [`Projector`]
//! runs one from position 0 on a catch-up-then-live subscription, so read
//! models are always rebuilt from the log at start-up, and publishes how far
//! it has applied the log: queries report that position, and a client that
//! just wrote at position P can wait until the projection reaches P
//! (read-your-writes). [`as_of`] computes a projection as it was at any
//! earlier position (the audit replay builds on it).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use sealplane_event_store::{EventStore, Position, RecordedEvent, StoreError, SubscriptionMessage};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A read model folded from the log.
pub trait Projection: Send + Sync + 'static {
    /// Folds one event in. Events arrive in position order, each once.
    fn apply(&mut self, event: &RecordedEvent);
}

/// How far a projection has applied the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The position of the last event applied (`Position(0)` before any).
    pub position: Position,
    /// Whether it has caught up with the log as it was when it started.
    pub caught_up: bool,
}

/// Why waiting for a projection failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The projection did not reach the position in time.
    #[error("the read model has reached position {reached}, not yet {wanted}; try again shortly")]
    Lagging { wanted: Position, reached: Position },
    /// The projection stopped (store closed or failed).
    #[error("the read model has stopped following the event log")]
    Stopped,
    /// The store failed while building the projection.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running projection: its read model and its progress.
pub struct Projector<P> {
    model: Arc<RwLock<P>>,
    progress: watch::Receiver<Progress>,
    task: JoinHandle<Result<(), StoreError>>,
}

impl<P: Projection> Projector<P> {
    /// Starts folding the whole log of `store` into `model`, then follows it.
    pub fn start(store: &dyn EventStore, model: P) -> Self {
        let model = Arc::new(RwLock::new(model));
        let (tx, progress) = watch::channel(Progress {
            position: Position(0),
            caught_up: false,
        });
        let mut events = store.subscribe_all(Position::START);
        let target = model.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = events.next().await {
                match message? {
                    SubscriptionMessage::Event(event) => {
                        write(&target).apply(&event);
                        tx.send_modify(|p| p.position = event.position);
                    }
                    SubscriptionMessage::CaughtUp(_) => tx.send_modify(|p| p.caught_up = true),
                }
            }
            Ok(())
        });
        Projector {
            model,
            progress,
            task,
        }
    }

    /// Reads the model, with the progress it reflects.
    pub fn read<R>(&self, query: impl FnOnce(&P) -> R) -> (R, Progress) {
        let model = read(&self.model);
        // Progress is published after the model changes, so read under the
        // lock it never claims more than the model holds.
        let progress = *self.progress.borrow();
        (query(&model), progress)
    }

    /// A receiver that changes whenever the model applies an event, for
    /// callers that follow one part of it (an upload's status).
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Whether it still follows the log (its task has not ended: the store
    /// did not close or fail under it).
    pub fn is_following(&self) -> bool {
        !self.task.is_finished()
    }

    /// The current progress.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until the model has applied `position` (read-your-writes).
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<Progress, ProjectionError> {
        let mut progress = self.progress.clone();
        let reached =
            tokio::time::timeout(timeout, progress.wait_for(|p| p.position >= position)).await;
        match reached {
            Ok(Ok(p)) => Ok(*p),
            Ok(Err(_)) => Err(ProjectionError::Stopped),
            Err(_) => Err(ProjectionError::Lagging {
                wanted: position,
                reached: self.progress().position,
            }),
        }
    }

    /// Waits until the model has caught up with the log it started on.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<Progress, ProjectionError> {
        let mut progress = self.progress.clone();
        match tokio::time::timeout(timeout, progress.wait_for(|p| p.caught_up)).await {
            Ok(Ok(p)) => Ok(*p),
            Ok(Err(_)) => Err(ProjectionError::Stopped),
            Err(_) => Err(ProjectionError::Lagging {
                wanted: Position(u64::MAX),
                reached: self.progress().position,
            }),
        }
    }
}

impl<P> Drop for Projector<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Folds the log from its start up to and including `position` into
/// `model`: the read model as it was then.
pub async fn as_of<P: Projection>(
    store: &dyn EventStore,
    mut model: P,
    position: Position,
) -> Result<P, StoreError> {
    const PAGE: usize = 4096;
    let mut next = Position::START;
    while next <= position {
        let page = store.read_all(next, PAGE).await?;
        let Some(last) = page.last() else { break };
        next = last.position.next();
        for event in page.iter().take_while(|e| e.position <= position) {
            model.apply(event);
        }
    }
    Ok(model)
}

fn read<P>(model: &RwLock<P>) -> std::sync::RwLockReadGuard<'_, P> {
    model.read().unwrap_or_else(|p| p.into_inner())
}

fn write<P>(model: &RwLock<P>) -> std::sync::RwLockWriteGuard<'_, P> {
    model.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sealplane_event_store::{
        EmbeddedStore, EventMetadata, EventType, ExpectedVersion, NewEvent, StreamId,
    };

    use super::*;

    /// Counts events per stream and remembers the order seen.
    #[derive(Default, Debug, PartialEq)]
    struct PerStream {
        counts: BTreeMap<String, u64>,
        order: Vec<u64>,
    }

    impl Projection for PerStream {
        fn apply(&mut self, event: &RecordedEvent) {
            *self.counts.entry(event.stream_id.to_string()).or_default() += 1;
            self.order.push(event.position.0);
        }
    }

    async fn append(store: &EmbeddedStore, stream: &str, n: usize) -> Position {
        let events = (0..n)
            .map(|i| {
                NewEvent::from_json_text(
                    EventType::parse("Happened").unwrap(),
                    1,
                    &format!(r#"{{"i":{i}}}"#),
                    &EventMetadata::new("t"),
                )
                .unwrap()
            })
            .collect();
        store
            .append(
                &StreamId::parse(stream).unwrap(),
                ExpectedVersion::Any,
                events,
            )
            .await
            .unwrap()
            .last_position
    }

    #[tokio::test]
    async fn a_projection_catches_up_then_follows_and_reads_your_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("e.db")).unwrap();
        append(&store, "a", 3).await;
        append(&store, "b", 2).await;

        let projector = Projector::start(&store, PerStream::default());
        let p = projector
            .wait_caught_up(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(p.position, Position(5));
        let (counts, progress) = projector.read(|m| m.counts.clone());
        assert_eq!(counts, BTreeMap::from([("a".into(), 3), ("b".into(), 2)]));
        assert!(progress.caught_up);

        let written = append(&store, "a", 4).await;
        projector
            .wait_for(written, Duration::from_secs(10))
            .await
            .unwrap();
        let (a, progress) = projector.read(|m| m.counts["a"]);
        assert_eq!(a, 7, "the write is visible once wait_for returns");
        assert!(progress.position >= written);
        let (order, _) = projector.read(|m| m.order.clone());
        assert_eq!(order, (1..=9).collect::<Vec<_>>());
        store.close().await;
    }

    #[tokio::test]
    async fn waiting_for_a_position_never_written_times_out_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("e.db")).unwrap();
        append(&store, "a", 1).await;
        let projector = Projector::start(&store, PerStream::default());
        let err = projector
            .wait_for(Position(50), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ProjectionError::Lagging {
                    wanted: Position(50),
                    reached: Position(1)
                }
            ),
            "{err}"
        );
        store.close().await;
        projector.task_ended_within(Duration::from_secs(5)).await;
        assert!(matches!(
            projector
                .wait_for(Position(50), Duration::from_secs(5))
                .await,
            Err(ProjectionError::Stopped)
        ));
    }

    #[tokio::test]
    async fn a_rebuild_after_restart_is_identical_and_as_of_matches_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.db");
        let store = EmbeddedStore::open(&path).unwrap();
        append(&store, "a", 2).await;
        let middle = append(&store, "b", 3).await;
        append(&store, "a", 5).await;
        let first = Projector::start(&store, PerStream::default());
        first.wait_caught_up(Duration::from_secs(10)).await.unwrap();
        let (before, _) = first.read(|m| (m.counts.clone(), m.order.clone()));
        drop(first);
        store.close().await;

        let store = EmbeddedStore::open(&path).unwrap();
        let second = Projector::start(&store, PerStream::default());
        second
            .wait_caught_up(Duration::from_secs(10))
            .await
            .unwrap();
        let (after, _) = second.read(|m| (m.counts.clone(), m.order.clone()));
        assert_eq!(after, before);

        let then = as_of(&store, PerStream::default(), middle).await.unwrap();
        assert_eq!(
            then.counts,
            BTreeMap::from([("a".into(), 2), ("b".into(), 3)])
        );
        assert_eq!(then.order, (1..=5).collect::<Vec<_>>());
        let empty = as_of(&store, PerStream::default(), Position(0))
            .await
            .unwrap();
        assert_eq!(empty, PerStream::default());
        store.close().await;
    }

    impl<P> Projector<P> {
        async fn task_ended_within(&self, limit: Duration) {
            let deadline = tokio::time::Instant::now() + limit;
            while !self.task.is_finished() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "projection did not stop"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
