//! The [`EventStore`] trait every backend implements, and its errors.

use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;

use crate::coordination::Exclusive;
use crate::event::{ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId, StreamVersion};

/// Most events one append may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Most bytes (data and metadata JSON) one append may carry.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// The stream did not have the version the appender expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream `{stream}` was expected at {expected} but is at {}", describe_actual(.actual))]
pub struct Conflict {
    /// The stream appended to.
    pub stream: StreamId,
    /// What the appender expected.
    pub expected: ExpectedVersion,
    /// The version of the stream's last event, `None` when it has none.
    pub actual: Option<StreamVersion>,
}

fn describe_actual(actual: &Option<StreamVersion>) -> String {
    match actual {
        Some(v) => format!("version {v}"),
        None => "no stream".to_owned(),
    }
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The expected version did not hold; reload and decide again.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The batch was empty.
    #[error("an append needs at least one event")]
    EmptyBatch,
    /// The batch was over [`MAX_BATCH_EVENTS`] or [`MAX_BATCH_BYTES`].
    #[error(
        "a batch of {events} events and {bytes} bytes is over the limit of {MAX_BATCH_EVENTS} events and {MAX_BATCH_BYTES} bytes"
    )]
    BatchTooLarge { events: usize, bytes: usize },
    /// The store failed; the append may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store was closed; nothing more is accepted or delivered.
    #[error("the event store is closed")]
    Closed,
    /// Another process has the store open; an embedded store has one owner.
    #[error("the event store {path} is in use by another process; stop it first")]
    InUse { path: String },
    /// Stored data is not what this version of Sealplane writes.
    #[error("the event store holds unreadable data at {at}: {reason}")]
    Corrupt { at: String, reason: String },
    /// The backend failed (I/O, database, network).
    #[error("event store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// What a successful append produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Global position of the first event of the batch.
    pub first_position: Position,
    /// Global position of the last event of the batch; a reader that reaches
    /// it has seen the whole batch.
    pub last_position: Position,
    /// The stream's version after the append (its last event's version).
    pub version: StreamVersion,
}

/// One stream's part of an append: its events, if the stream is at
/// `expected`. [`EventStore::append_many`] writes several parts as one.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    /// The stream appended to.
    pub stream: StreamId,
    /// The version it must be at (after the earlier parts of the same
    /// append, when they name it too).
    pub expected: ExpectedVersion,
    /// The events, in order; at least one.
    pub events: Vec<NewEvent>,
}

impl StreamAppend {
    /// A part appending `events` to `stream` at `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        StreamAppend {
            stream,
            expected,
            events,
        }
    }
}

/// One item of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionMessage {
    /// The next event, in position order.
    Event(RecordedEvent),
    /// Sent once, when the subscriber has received every event up to this
    /// position, the head of the log when it got there; live events follow.
    CaughtUp(Position),
}

/// A subscription: catch-up then live, ending with `None` when the store
/// closes, or with one `Err` when it fails.
pub type Subscription = Pin<Box<dyn Stream<Item = Result<SubscriptionMessage, StoreError>> + Send>>;

/// An append-only log of events in streams, with optimistic concurrency.
///
/// Every backend passes the conformance suite in `tests/conformance/`.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` atomically (all or none) if the stream is
    /// at `expected`. Durable when it returns `Ok`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, AppendError> {
        let part = StreamAppend::new(stream.clone(), expected, events);
        one_part(self.append_many(vec![part]).await)
    }

    /// Appends every part, in order, as one atomic write: each part's
    /// events follow the previous part's in the log, and either every part
    /// is written or none is (a conflict on any part writes nothing). For
    /// events of several streams that belong together, such as an upload's
    /// outcome and the secret's new version. The limits of one batch hold
    /// for all the parts together. Durable when it returns `Ok`, with one
    /// [`Appended`] per part.
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError>;

    /// Up to `limit` events of `stream` from version `from` on.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the whole log from position `from` on.
    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Calls `visit` with each event of the whole log from position `from`
    /// on, in order, until it returns [`ControlFlow::Break`] or the log
    /// ends (events appended meanwhile may or may not be among them), and
    /// returns how many it was given. A backend that can lends each event and drops it before it
    /// reads the next, so a fold holds no page: the default reads pages
    /// with [`EventStore::read_all`].
    async fn visit_all(
        &self,
        from: Position,
        visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> ControlFlow<()> + Send),
    ) -> Result<u64, StoreError> {
        visit_pages(self, from, visit).await
    }

    /// The position of the last durable event, `Position(0)` when empty.
    async fn head(&self) -> Result<Position, StoreError>;

    /// Every event from position `from` on: first those already stored, then
    /// [`SubscriptionMessage::CaughtUp`], then new ones as they are appended.
    /// Never skips or repeats an event.
    fn subscribe_all(&self, from: Position) -> Subscription;

    /// Stops accepting appends, waits for those in flight to become durable,
    /// and ends every subscription.
    async fn close(&self);

    /// The backend's name for operators (`embedded`, `memory`, ...).
    fn backend(&self) -> &'static str {
        "unknown"
    }

    /// Whether other processes may append to this store too (a database
    /// several control planes share). A process alone on its store has
    /// seen every write that returned; one sharing it must ask the store
    /// for its head to read what the others wrote.
    fn shared(&self) -> bool {
        false
    }

    /// The version of `stream`'s last event, when the store knows it
    /// without reading: `Some` only from a store no other process writes,
    /// and only for a stream it holds the tail of (one it wrote to lately);
    /// `None` says nothing (read the stream). A caller holding the stream's
    /// events up to that version may skip reading it again (ADR 0029).
    fn last_version_written(&self, stream: &StreamId) -> Option<StreamVersion> {
        let _ = stream;
        None
    }

    /// Takes or renews lease `name` for `holder` until `ttl` from now, and
    /// says whether `holder` holds it now. Every process sharing this store
    /// sees the same holder; a lease not renewed within `ttl` is free for
    /// another (ADR 0020).
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Ends lease `name` early if `holder` holds it (a clean shutdown), so
    /// another process need not wait for it to expire.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Waits until no other caller, in any process sharing this store, is
    /// in section `name`; the section is held until the guard is dropped.
    async fn exclusive(&self, name: &str) -> Result<Exclusive, StoreError>;
}

/// A store wrapping another: every [`EventStore`] call goes to
/// [`inner`](Decorator::inner) unless the decorator overrides it. For
/// decorators that change one or two calls (timing appends, and tests that
/// play a store that conflicts, stalls or fails); implementing this makes
/// the type an [`EventStore`].
#[async_trait::async_trait]
pub trait Decorator: Send + Sync + 'static {
    /// The store the calls go to.
    fn inner(&self) -> &dyn EventStore;

    /// As [`EventStore::append_many`]; [`EventStore::append`] goes
    /// through it too, so a decorator overriding it sees every append.
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        self.inner().append_many(parts).await
    }

    /// As [`EventStore::read_stream`].
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner().read_stream(stream, from, limit).await
    }

    /// As [`EventStore::read_all`].
    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner().read_all(from, limit).await
    }

    /// Whether this decorator gives every read through as the inner store
    /// answers it, so [`EventStore::visit_all`] may lend the inner store's
    /// events directly. `false` unless said: a decorator that changes
    /// [`Decorator::read_all`] then has its visits read through it.
    fn reads_unchanged(&self) -> bool {
        false
    }

    /// As [`EventStore::head`].
    async fn head(&self) -> Result<Position, StoreError> {
        self.inner().head().await
    }

    /// As [`EventStore::subscribe_all`].
    fn subscribe_all(&self, from: Position) -> Subscription {
        self.inner().subscribe_all(from)
    }

    /// As [`EventStore::close`].
    async fn close(&self) {
        self.inner().close().await
    }

    /// As [`EventStore::backend`].
    fn backend(&self) -> &'static str {
        self.inner().backend()
    }

    /// As [`EventStore::shared`].
    fn shared(&self) -> bool {
        self.inner().shared()
    }

    /// As [`EventStore::last_version_written`].
    fn last_version_written(&self, stream: &StreamId) -> Option<StreamVersion> {
        self.inner().last_version_written(stream)
    }

    /// As [`EventStore::acquire_lease`].
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner().acquire_lease(name, holder, ttl).await
    }

    /// As [`EventStore::release_lease`].
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner().release_lease(name, holder).await
    }

    /// As [`EventStore::exclusive`].
    async fn exclusive(&self, name: &str) -> Result<Exclusive, StoreError> {
        self.inner().exclusive(name).await
    }
}

#[async_trait::async_trait]
impl<D: Decorator> EventStore for D {
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        Decorator::append_many(self, parts).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Decorator::read_stream(self, stream, from, limit).await
    }
    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Decorator::read_all(self, from, limit).await
    }
    async fn visit_all(
        &self,
        from: Position,
        visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> ControlFlow<()> + Send),
    ) -> Result<u64, StoreError> {
        if self.reads_unchanged() {
            self.inner().visit_all(from, visit).await
        } else {
            visit_pages(self, from, visit).await
        }
    }
    async fn head(&self) -> Result<Position, StoreError> {
        Decorator::head(self).await
    }
    fn subscribe_all(&self, from: Position) -> Subscription {
        Decorator::subscribe_all(self, from)
    }
    async fn close(&self) {
        Decorator::close(self).await
    }
    fn backend(&self) -> &'static str {
        Decorator::backend(self)
    }
    fn shared(&self) -> bool {
        Decorator::shared(self)
    }
    fn last_version_written(&self, stream: &StreamId) -> Option<StreamVersion> {
        Decorator::last_version_written(self, stream)
    }
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Decorator::acquire_lease(self, name, holder, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        Decorator::release_lease(self, name, holder).await
    }
    async fn exclusive(&self, name: &str) -> Result<Exclusive, StoreError> {
        Decorator::exclusive(self, name).await
    }
}

/// Checks the batch limits shared by every backend.
pub fn check_batch(events: &[NewEvent]) -> Result<(), AppendError> {
    if events.is_empty() {
        return Err(AppendError::EmptyBatch);
    }
    let bytes: usize = events.iter().map(NewEvent::size).sum();
    if events.len() > MAX_BATCH_EVENTS || bytes > MAX_BATCH_BYTES {
        return Err(AppendError::BatchTooLarge {
            events: events.len(),
            bytes,
        });
    }
    Ok(())
}

/// Checks the parts of one append: at least one, none empty, and the
/// batch limits over all their events together.
pub fn check_parts(parts: &[StreamAppend]) -> Result<(), AppendError> {
    if parts.is_empty() || parts.iter().any(|p| p.events.is_empty()) {
        return Err(AppendError::EmptyBatch);
    }
    let events: usize = parts.iter().map(|p| p.events.len()).sum();
    let bytes: usize = parts
        .iter()
        .flat_map(|p| &p.events)
        .map(NewEvent::size)
        .sum();
    if events > MAX_BATCH_EVENTS || bytes > MAX_BATCH_BYTES {
        return Err(AppendError::BatchTooLarge { events, bytes });
    }
    Ok(())
}

/// The outcome of a one-part [`EventStore::append_many`].
fn one_part(appended: Result<Vec<Appended>, AppendError>) -> Result<Appended, AppendError> {
    appended?.pop().ok_or(AppendError::EmptyBatch)
}

/// Links the parts of one append after the log's last event `log`, each
/// after its stream's tail as `tail_of` gives it (or as an earlier part
/// left it): what an append to a store held in one place writes, or the
/// first conflict. Nothing is written; the caller stores the events.
pub(crate) fn link_parts(
    parts: Vec<StreamAppend>,
    mut log: crate::chain::LogCheckpoint,
    tail_of: impl Fn(&StreamId) -> Option<(StreamVersion, crate::chain::EventHash)>,
) -> Result<(Vec<Appended>, Vec<RecordedEvent>), AppendError> {
    let mut appended = Vec::with_capacity(parts.len());
    let mut recorded: Vec<RecordedEvent> = Vec::new();
    for part in parts {
        let tail = recorded
            .iter()
            .rev()
            .find(|e| e.stream_id == part.stream)
            .map(|e| (e.version, e.hash))
            .or_else(|| tail_of(&part.stream));
        check_expected(&part.stream, part.expected, tail.map(|(v, _)| v))?;
        let linked = crate::chain::link(&part.stream, tail, log, part.events);
        let (Some(first), Some(last)) = (linked.first(), linked.last()) else {
            return Err(AppendError::EmptyBatch);
        };
        appended.push(Appended {
            first_position: first.position,
            last_position: last.position,
            version: last.version,
        });
        log = crate::chain::LogCheckpoint::of(last);
        recorded.extend(linked);
    }
    Ok((appended, recorded))
}

/// Checks `expected` against the stream's current version.
pub fn check_expected(
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: Option<StreamVersion>,
) -> Result<(), Conflict> {
    if expected.is_met_by(actual) {
        Ok(())
    } else {
        Err(Conflict {
            stream: stream.clone(),
            expected,
            actual,
        })
    }
}

/// Events per page of [`visit_pages`], as the folds read before lending
/// reads.
const VISIT_PAGE: usize = 4096;

/// [`EventStore::visit_all`] by pages of [`EventStore::read_all`].
pub(crate) async fn visit_pages<S: EventStore + ?Sized>(
    store: &S,
    from: Position,
    visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> ControlFlow<()> + Send),
) -> Result<u64, StoreError> {
    let mut next = from;
    let mut seen = 0;
    loop {
        let page = store.read_all(next, VISIT_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(seen);
        };
        next = last.position.next();
        for event in &page {
            seen += 1;
            if visit(event).is_break() {
                return Ok(seen);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::verify::tests::new_event;

    /// A decorator that hides every even position from reads.
    struct OddOnly(MemoryStore, bool);

    #[async_trait::async_trait]
    impl Decorator for OddOnly {
        fn inner(&self) -> &dyn EventStore {
            &self.0
        }
        fn reads_unchanged(&self) -> bool {
            self.1
        }
        async fn read_all(
            &self,
            from: Position,
            limit: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            let mut page = self.0.read_all(from, limit).await?;
            page.retain(|e| e.position.0 % 2 == 1);
            Ok(page)
        }
    }

    async fn visited(store: &dyn EventStore) -> Vec<u64> {
        let mut seen = Vec::new();
        store
            .visit_all(Position::START, &mut |e| {
                seen.push(e.position.0);
                ControlFlow::Continue(())
            })
            .await
            .unwrap();
        seen
    }

    #[tokio::test]
    async fn a_decorator_that_changes_reads_has_its_visits_read_through_it() {
        // Given six events behind a decorator that hides even positions
        let inner = MemoryStore::new();
        let events = (0..6).map(new_event).collect();
        let s = StreamId::parse("s").unwrap();
        inner
            .append(&s, ExpectedVersion::Any, events)
            .await
            .unwrap();
        // When it is visited, then it sees what its reads show
        assert_eq!(visited(&OddOnly(inner.clone(), false)).await, [1, 3, 5]);
        // And only a decorator that says its reads are unchanged lends the
        // inner store's events directly
        assert_eq!(visited(&OddOnly(inner, true)).await, [1, 2, 3, 4, 5, 6]);
    }
}
