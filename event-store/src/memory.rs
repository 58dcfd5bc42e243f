//! In-memory backend: for unit tests of pure logic only. Nothing survives
//! the process; never use it to test an adapter or in a product binary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::chain::LogCheckpoint;
use crate::coordination::LocalCoordination;
use crate::event::{Position, RecordedEvent, StreamId, StreamVersion};
use crate::store::{
    AppendError, Appended, EventStore, StoreError, StreamAppend, Subscription, check_parts,
    link_parts,
};
use crate::subscription::{Head, catch_up_then_live};

/// An event store held in memory; clones share one log.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    log: Mutex<Log>,
    head: watch::Sender<Head>,
    coordination: LocalCoordination,
}

#[derive(Default)]
struct Log {
    events: Vec<RecordedEvent>,
    /// Indexes into `events` of each stream's events, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    closed: bool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let (head, _) = watch::channel(Head {
            position: Position(0),
            closed: false,
        });
        MemoryStore {
            inner: Arc::new(Inner {
                log: Mutex::default(),
                head,
                coordination: LocalCoordination::default(),
            }),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave a half-appended batch:
        // the log is only mutated after every check has passed.
        self.inner.log.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        check_parts(&parts)?;
        let mut log = self.log();
        if log.closed {
            return Err(StoreError::Closed.into());
        }
        let head = log
            .events
            .last()
            .map_or(LogCheckpoint::EMPTY, LogCheckpoint::of);
        // Every part is linked and checked before the log changes.
        let (appended, recorded) = link_parts(parts, head, |stream| {
            log.streams
                .get(stream)
                .and_then(|idx| idx.last())
                .map(|&i| (log.events[i].version, log.events[i].hash))
        })?;
        let last_position = recorded.last().map_or(head.position, |e| e.position);
        for e in recorded {
            let i = log.events.len();
            log.streams.entry(e.stream_id.clone()).or_default().push(i);
            log.events.push(e);
        }
        self.inner.head.send_replace(Head {
            position: last_position,
            closed: false,
        });
        Ok(appended)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        let Some(idx) = log.streams.get(stream) else {
            return Ok(vec![]);
        };
        Ok(idx
            .iter()
            .skip(usize::try_from(from.0).unwrap_or(usize::MAX))
            .take(limit)
            .map(|&i| log.events[i].clone())
            .collect())
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.log();
        let skip = usize::try_from(from.0.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(log.events.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(Position(self.log().events.len() as u64))
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    /// Every stream's tail is in memory, and only this process writes it.
    fn last_version_written(&self, stream: &StreamId) -> Option<StreamVersion> {
        let log = self.log();
        let last = *log.streams.get(stream)?.last()?;
        Some(log.events[last].version)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.inner.coordination.acquire(name, holder, ttl))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.coordination.release(name, holder);
        Ok(())
    }

    async fn exclusive(&self, name: &str) -> Result<crate::Exclusive, StoreError> {
        Ok(self.inner.coordination.exclusive(name).await)
    }

    fn subscribe_all(&self, from: Position) -> Subscription {
        catch_up_then_live(
            self.clone(),
            self.inner.head.subscribe(),
            Arc::default(),
            from,
        )
    }

    async fn close(&self) {
        let mut log = self.log();
        log.closed = true;
        self.inner.head.send_modify(|h| h.closed = true);
    }
}
