//! Projections: read models built by following the log.
//!
//! A [`Projection`] folds recorded events into a read model. [`Projector`]
//! runs one on a catch-up-then-live subscription, from position 1 or from
//! a point a snapshot of the model was taken at (ADR 0026), and publishes
//! how far it has applied the log: queries report that position, and a client that
//! just wrote at position P can wait until the projection reaches P
//! (read-your-writes). [`as_of`] computes a projection as it was at any
//! earlier position (the audit replay builds on it).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use sealplane_event_store::{
    EventStore, LogCheckpoint, LogHash, Position, RecordedEvent, StoreError, SubscriptionMessage,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A read model folded from the log.
pub trait Projection: Send + Sync + 'static {
    /// Folds one event in. Events arrive in position order, each once.
    fn apply(&mut self, event: &RecordedEvent);

    /// Called once, when the fold at start has caught up with the log and
    /// before anyone is told so, with the number of events it folded to
    /// get there: a projection that grew one event at a time may lay
    /// itself out again (ADR 0033). Nothing by default.
    fn caught_up(&mut self, _folded: u64) {}
}

/// How far a projection has applied the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The position of the last event applied (`Position(0)` before any).
    pub position: Position,
    /// The log hash of that event (what a snapshot of the model records).
    pub log_hash: LogHash,
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

/// After a backend failure, the first pause before subscribing again; it
/// doubles up to [`MAX_RESUBSCRIBE_DELAY`].
const FIRST_RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);
/// The longest pause between two attempts during an outage.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(5);

/// A running projection: its read model and its progress.
pub struct Projector<P> {
    model: Arc<RwLock<P>>,
    progress: watch::Receiver<Progress>,
    /// Set while the store fails under it (an outage of the database):
    /// the model is not following the log then, and says so.
    interrupted: Arc<AtomicBool>,
    task: JoinHandle<Result<(), StoreError>>,
}

impl<P: Projection> Projector<P> {
    /// Starts folding the whole log of `store` into `model`, then follows it.
    ///
    /// When the store fails to deliver (its backend is down: a database
    /// restarting, a network cut), the projector is not following until
    /// it has subscribed again from the position after the last event it
    /// applied — every 200 ms at first, then up to every 5 s, for as long
    /// as the outage lasts. It stops for good only when the store closes
    /// or reports data it cannot trust (a hole, a corrupt event).
    pub fn start(store: Arc<dyn EventStore>, model: P) -> Self {
        Self::start_after(store, model, LogCheckpoint::EMPTY)
    }

    /// As [`Projector::start`], for a `model` that has already applied
    /// every event up to `applied` (restored from a snapshot): it folds
    /// the events after it.
    pub fn start_after(store: Arc<dyn EventStore>, model: P, applied: LogCheckpoint) -> Self {
        let model = Arc::new(RwLock::new(model));
        let (tx, progress) = watch::channel(Progress {
            position: applied.position,
            log_hash: applied.log_hash,
            caught_up: false,
        });
        let interrupted = Arc::new(AtomicBool::new(false));
        let target = model.clone();
        let task = tokio::spawn(follow(
            store,
            target,
            tx,
            interrupted.clone(),
            applied.position.next(),
        ));
        Projector {
            model,
            progress,
            interrupted,
            task,
        }
    }

    /// Reads the model, with the progress it reflects exactly.
    pub fn read<R>(&self, query: impl FnOnce(&P) -> R) -> (R, Progress) {
        let model = read(&self.model);
        // Progress is published under the model's write lock, so read
        // under its read lock it is exactly what the model holds (a
        // snapshot records it).
        let progress = *self.progress.borrow();
        (query(&model), progress)
    }

    /// A receiver that changes whenever the model applies an event, for
    /// callers that follow one part of it (an upload's status).
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// Whether it follows the log now: its task has not ended (the store
    /// did not close or fail for good under it) and the store is not
    /// failing to deliver.
    pub fn is_following(&self) -> bool {
        !self.task.is_finished() && !self.interrupted.load(Ordering::SeqCst)
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

/// Folds the log into `model` from `next` and follows it, subscribing
/// again after a backend failure (see [`Projector::start`]).
async fn follow<P: Projection>(
    store: Arc<dyn EventStore>,
    model: Arc<RwLock<P>>,
    tx: watch::Sender<Progress>,
    interrupted: Arc<AtomicBool>,
    mut next: Position,
) -> Result<(), StoreError> {
    let mut delay = FIRST_RESUBSCRIBE_DELAY;
    // Events folded before the first catch-up; `None` after it.
    let mut folded = Some(0u64);
    loop {
        let mut events = store.subscribe_all(next);
        let failure = loop {
            let Some(message) = events.next().await else {
                return Ok(()); // the store closed
            };
            match message {
                Ok(SubscriptionMessage::Event(event)) => {
                    let mut applied = write(&model);
                    applied.apply(&event);
                    if let Some(n) = folded.as_mut() {
                        *n += 1;
                    }
                    next = Position(event.position.0 + 1);
                    tx.send_modify(|p| {
                        p.position = event.position;
                        p.log_hash = event.log_hash;
                    });
                    drop(applied);
                }
                Ok(SubscriptionMessage::CaughtUp(_)) => {
                    if let Some(n) = folded.take() {
                        write(&model).caught_up(n);
                    }
                    tx.send_modify(|p| p.caught_up = true);
                    if interrupted.swap(false, Ordering::SeqCst) {
                        tracing::info!(
                            position = next.0 - 1,
                            "the read model follows the event log again"
                        );
                    }
                    delay = FIRST_RESUBSCRIBE_DELAY;
                }
                Err(e @ StoreError::Backend(_)) => break e,
                Err(e) => return Err(e),
            }
        };
        if !interrupted.swap(true, Ordering::SeqCst) {
            tracing::error!(error = %failure, "the event store failed under the read model; refusing calls until it answers again");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
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
    store
        .visit_all(Position::START, &mut |event| {
            if event.position > position {
                return ControlFlow::Break(());
            }
            model.apply(event);
            ControlFlow::Continue(())
        })
        .await?;
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
        Decorator, EmbeddedStore, EventMetadata, EventType, ExpectedVersion, NewEvent, StreamId,
    };

    use super::*;

    /// Counts events per stream and remembers the order seen.
    #[derive(Default, Debug, PartialEq)]
    struct PerStream {
        counts: BTreeMap<String, u64>,
        order: Vec<u64>,
        /// What each `caught_up` call was told it folded.
        caught_up_after: Vec<u64>,
    }

    impl Projection for PerStream {
        fn apply(&mut self, event: &RecordedEvent) {
            *self.counts.entry(event.stream_id.to_string()).or_default() += 1;
            self.order.push(event.position.0);
        }

        fn caught_up(&mut self, folded: u64) {
            self.caught_up_after.push(folded);
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

        let projector = Projector::start(Arc::new(store.clone()), PerStream::default());
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
        // Told once, at the first catch-up, of the five events it folded.
        let (after, _) = projector.read(|m| m.caught_up_after.clone());
        assert_eq!(after, [5]);
        store.close().await;
    }

    #[tokio::test]
    async fn waiting_for_a_position_never_written_times_out_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("e.db")).unwrap();
        append(&store, "a", 1).await;
        let projector = Projector::start(Arc::new(store.clone()), PerStream::default());
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
        let first = Projector::start(Arc::new(store.clone()), PerStream::default());
        first.wait_caught_up(Duration::from_secs(10)).await.unwrap();
        let (before, _) = first.read(|m| (m.counts.clone(), m.order.clone()));
        drop(first);
        store.close().await;

        let store = EmbeddedStore::open(&path).unwrap();
        let second = Projector::start(Arc::new(store.clone()), PerStream::default());
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

    /// A store whose first subscription fails after `fail_after` messages
    /// and whose next `down_for` subscriptions fail at once, as a store
    /// does whose database goes away for a while; then it answers again.
    struct Outage {
        inner: EmbeddedStore,
        fail_after: usize,
        down_for: usize,
        subscriptions: std::sync::atomic::AtomicUsize,
    }

    fn down() -> StoreError {
        StoreError::backend(std::io::Error::other("connection refused"))
    }

    #[async_trait::async_trait]
    impl Decorator for Outage {
        fn inner(&self) -> &dyn EventStore {
            &self.inner
        }
        fn subscribe_all(&self, from: Position) -> sealplane_event_store::Subscription {
            use futures_util::stream;
            let n = self.subscriptions.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                let first = self.inner.subscribe_all(from).take(self.fail_after);
                Box::pin(first.chain(stream::once(async { Err(down()) })))
            } else if n <= self.down_for {
                Box::pin(stream::once(async { Err(down()) }))
            } else {
                self.inner.subscribe_all(from)
            }
        }
    }

    #[tokio::test]
    async fn an_outage_of_the_store_interrupts_the_projection_which_then_resumes_without_gap_or_repeat()
     {
        // Given a log of 5 events and a store that fails after delivering 3
        // of them, and twice more when subscribed to again
        let dir = tempfile::tempdir().unwrap();
        let inner = EmbeddedStore::open(dir.path().join("e.db")).unwrap();
        append(&inner, "a", 3).await;
        append(&inner, "b", 2).await;
        let store = Arc::new(Outage {
            inner: inner.clone(),
            fail_after: 3,
            down_for: 2,
            subscriptions: Default::default(),
        });
        // When a projection follows it
        let projector = Projector::start(store.clone(), PerStream::default());
        // Then it says it is not following during the outage
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while projector.is_following() {
            assert!(tokio::time::Instant::now() < deadline, "never interrupted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(projector.progress().position, Position(3));
        // And once the store answers, it resumes where it stopped
        let p = projector
            .wait_caught_up(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(p.position, Position(5));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !projector.is_following() {
            assert!(tokio::time::Instant::now() < deadline, "never resumed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (order, _) = projector.read(|m| m.order.clone());
        assert_eq!(
            order,
            (1..=5).collect::<Vec<_>>(),
            "no event lost or applied twice"
        );
        assert_eq!(store.subscriptions.load(Ordering::SeqCst), 4);
        // And it follows new events live
        let written = append(&inner, "a", 1).await;
        projector
            .wait_for(written, Duration::from_secs(10))
            .await
            .unwrap();
        inner.close().await;
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
