//! The KurrentDB (EventStoreDB) backend (ADR 0023), with the `kurrentdb`
//! client.
//!
//! **One log stream is the log.** Every Sealplane event is one KurrentDB
//! event of a single stream (by default `sealplane-log`): its stream
//! revision `r` is the global position `r + 1`. Stream revisions are
//! contiguous and assigned under KurrentDB's optimistic concurrency, so
//! positions are contiguous and gap-free for every reader, which `$all`
//! commit/prepare positions (byte offsets, with other streams' events
//! between ours) are not. The hash chains are computed by this client
//! before the write, against the log's last event (ADR 0001, 0014), and the
//! write expects exactly that revision: if anyone else appended meanwhile,
//! KurrentDB refuses it (`WrongExpectedVersion`), and the appender catches
//! up, re-checks its own expected version and links again. So the append
//! lock of the PostgreSQL backend is the log stream's expected revision.
//!
//! **Streams** (aggregates) are an index this process keeps while it
//! follows the log: per stream, the positions of its events and its last
//! hash. `read_stream` catches the index up to the log's head, then reads
//! those positions from the log stream. Expected versions
//! (`Any`/`NoStream`/`Exact`) are checked against that index inside the
//! same optimistic write, so they hold across processes.
//!
//! **What a KurrentDB event holds:** the type is the Sealplane event type;
//! the data is the exact JSON bytes (stored as binary content, so nothing
//! normalises them); the custom metadata is a JSON object with the stream
//! id, stream version, schema version, the Sealplane metadata *as a JSON
//! string* (kept byte for byte) and the three hashes in hex. The event id
//! is derived from the event hash, so a retried write of the same batch is
//! idempotent on the server.
//!
//! **Subscriptions** read the log back page by page (`subscription.rs`); a
//! follower task learns that the head moved from a catch-up subscription
//! to `$all` filtered to the log stream (`SubscriptionEvent::EventAppeared`,
//! `CaughtUp`, and `Checkpoint`s, whose `$all` position is where it resumes
//! after a lost connection), and from a periodic poll as a safety net.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadStreamOptions, StreamPosition,
    StreamState, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::chain::{EventHash, LogCheckpoint, LogHash};
use crate::event::{EventType, JsonObject, Position, RecordedEvent, StreamId, StreamVersion};
use crate::redacted_url::RedactedUrl;
use crate::store::{
    AppendError, Appended, EventStore, StoreError, StreamAppend, Subscription, check_parts,
    link_parts,
};
use crate::subscription::{Head, advance, catch_up_then_live, ensure_open};

/// The log stream's default name.
pub const LOG_STREAM: &str = "sealplane-log";
/// Events read from the log stream per request.
const PAGE: usize = 1024;
/// Times an append is decided again after another writer got in first.
const MAX_RETRIES: usize = 64;

/// Tunables of a [`KurrentStore`]; [`Default`] suits a control plane.
#[derive(Clone, Debug)]
pub struct KurrentOptions {
    /// The stream holding the log ([`LOG_STREAM`]); one per deployment.
    pub log_stream: String,
    /// How often the head is polled besides the `$all` subscription.
    pub poll_interval: Duration,
}

impl Default for KurrentOptions {
    fn default() -> Self {
        KurrentOptions {
            log_stream: LOG_STREAM.to_owned(),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Why the store could not be opened, naming the server without its
/// password.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the KurrentDB event store at {url}: {reason}")]
pub struct KurrentConnectError {
    url: RedactedUrl,
    reason: String,
}

/// The custom metadata of one KurrentDB event: everything of a
/// [`RecordedEvent`] but its position (the revision), type and data.
#[derive(Serialize, Deserialize)]
struct Envelope {
    stream: String,
    version: u64,
    schema_version: u32,
    /// The Sealplane metadata JSON, as a string: kept byte for byte.
    metadata: String,
    prev_hash: String,
    hash: String,
    log_hash: String,
}

/// Encodes a recorded event for the log stream.
fn encode(e: &RecordedEvent) -> Result<EventData, StoreError> {
    let envelope = Envelope {
        stream: e.stream_id.as_str().to_owned(),
        version: e.version.0,
        schema_version: e.schema_version,
        metadata: e.metadata.as_str().to_owned(),
        prev_hash: e.prev_hash.to_hex(),
        hash: e.hash.to_hex(),
        log_hash: e.log_hash.to_hex(),
    };
    let metadata = serde_json::to_vec(&envelope).map_err(StoreError::backend)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(&e.hash.0[..16]);
    Ok(EventData::binary(
        e.event_type.as_str(),
        Bytes::copy_from_slice(e.data.as_str().as_bytes()),
    )
    .id(uuid::Uuid::from_bytes(id))
    .metadata(Bytes::from(metadata)))
}

/// Decodes the log stream's event at `revision`.
fn decode(
    revision: u64,
    event_type: &str,
    data: &[u8],
    custom_metadata: &[u8],
) -> Result<RecordedEvent, StoreError> {
    let position = revision + 1;
    let corrupt = |reason: String| StoreError::Corrupt {
        at: format!("position {position}"),
        reason,
    };
    let envelope: Envelope = serde_json::from_slice(custom_metadata)
        .map_err(|e| corrupt(format!("the event's metadata is not Sealplane's: {e}")))?;
    let data = String::from_utf8(data.to_vec()).map_err(|e| corrupt(e.to_string()))?;
    let hash = |name: &str, hex: &str| {
        EventHash::from_hex(hex).ok_or_else(|| corrupt(format!("{name} is not 64 hex digits")))
    };
    Ok(RecordedEvent {
        position: Position(position),
        stream_id: StreamId::parse(envelope.stream).map_err(|e| corrupt(e.to_string()))?,
        version: StreamVersion(envelope.version),
        event_type: EventType::parse(event_type).map_err(|e| corrupt(e.to_string()))?,
        schema_version: envelope.schema_version,
        data: JsonObject::from_stored("data", data).map_err(|e| corrupt(e.to_string()))?,
        metadata: JsonObject::from_stored("metadata", envelope.metadata)
            .map_err(|e| corrupt(e.to_string()))?,
        prev_hash: hash("prev_hash", &envelope.prev_hash)?,
        hash: hash("hash", &envelope.hash)?,
        log_hash: LogHash::from_hex(&envelope.log_hash)
            .ok_or_else(|| corrupt("log_hash is not 64 hex digits".into()))?,
    })
}

/// Per stream: the positions of its events, in version order, and the
/// hash of its last one.
struct Index {
    log: LogCheckpoint,
    streams: HashMap<StreamId, (Vec<u64>, EventHash)>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            log: LogCheckpoint::EMPTY,
            streams: HashMap::new(),
        }
    }
}

impl Index {
    fn tail(&self, stream: &StreamId) -> Option<(StreamVersion, EventHash)> {
        self.streams
            .get(stream)
            .map(|(positions, hash)| (StreamVersion(positions.len() as u64 - 1), *hash))
    }

    /// Takes in the next event of the log, which must be the next position.
    fn apply(&mut self, e: &RecordedEvent) -> Result<(), StoreError> {
        if e.position != self.log.position.next() {
            return Err(StoreError::Corrupt {
                at: format!("position {}", e.position),
                reason: format!("expected position {}", self.log.position.next()),
            });
        }
        let entry = self
            .streams
            .entry(e.stream_id.clone())
            .or_insert_with(|| (Vec::new(), EventHash::GENESIS));
        entry.0.push(e.position.0);
        entry.1 = e.hash;
        self.log = LogCheckpoint::of(e);
        Ok(())
    }
}

/// An event store in a KurrentDB log stream; clones share one client.
#[derive(Clone)]
pub struct KurrentStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: RedactedUrl,
    client: Client,
    log: String,
    head: watch::Sender<Head>,
    /// This process's view of the log; its lock also serialises this
    /// process's appends (others are kept out by the expected revision).
    index: Mutex<Index>,
    follower: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Leases and sections within this process only (ADR 0023): run one
    /// control plane per KurrentDB log until they live in the database.
    coordination: crate::LocalCoordination,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(f) = self
            .follower
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            f.abort();
        }
    }
}

impl fmt::Debug for KurrentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KurrentStore")
            .field("url", &self.inner.url)
            .field("log", &self.inner.log)
            .finish_non_exhaustive()
    }
}

fn backend(e: kurrentdb::Error) -> StoreError {
    StoreError::backend(e)
}

impl KurrentStore {
    /// Connects to the server at `url` (`kurrentdb://…` or `esdb://…`
    /// connection string) and reads the log into the stream index.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, KurrentOptions::default()).await
    }

    /// [`KurrentStore::connect`] with explicit tunables.
    pub async fn connect_with(url: &str, options: KurrentOptions) -> Result<Self, StoreError> {
        let redacted = RedactedUrl::new(url);
        let fail = |reason: String| {
            StoreError::backend(KurrentConnectError {
                url: redacted.clone(),
                reason,
            })
        };
        let settings: ClientSettings =
            url.parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    // The parser's message may quote the string: say where only.
                    let _ = e;
                    fail(
                    "the url is not a KurrentDB connection string (kurrentdb://host:2113?tls=…)"
                        .into(),
                )
                })?;
        let client = Client::new(settings).map_err(|e| fail(e.to_string()))?;
        let (head, _) = watch::channel(Head {
            position: Position(0),
            closed: false,
        });
        let store = KurrentStore {
            inner: Arc::new(Inner {
                url: redacted.clone(),
                client,
                log: options.log_stream.clone(),
                head,
                index: Mutex::new(Index::default()),
                follower: std::sync::Mutex::new(None),
                coordination: crate::LocalCoordination::default(),
            }),
        };
        // Reading the log now both fills the index and proves the server
        // answers.
        {
            let mut index = store.inner.index.lock().await;
            store.catch_up(&mut index).await.map_err(|e| {
                fail(match e {
                    StoreError::Backend(inner) => inner.to_string(),
                    other => other.to_string(),
                })
            })?;
        }
        let follower = tokio::spawn(follow_head(
            Arc::downgrade(&store.inner),
            options.poll_interval,
        ));
        *store
            .inner
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(follower);
        Ok(store)
    }

    /// The server, its password hidden.
    pub fn url(&self) -> &RedactedUrl {
        &self.inner.url
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        ensure_open(&self.inner.head)
    }

    fn advance(&self, position: Position) {
        advance(&self.inner.head, position);
    }

    /// Up to `limit` events of the log stream from position `from`.
    async fn read_log(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read_log(&self.inner.client, &self.inner.log, from, limit).await
    }

    /// Reads every event after the index's last one into it.
    async fn catch_up(&self, index: &mut Index) -> Result<(), StoreError> {
        loop {
            let page = self.read_log(index.log.position.next(), PAGE).await?;
            for e in &page {
                index.apply(e)?;
            }
            self.advance(index.log.position);
            if page.len() < PAGE {
                return Ok(());
            }
        }
    }
}

async fn read_log(
    client: &Client,
    log: &str,
    from: Position,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let from = from.0.max(1);
    let mut events = Vec::new();
    while events.len() < limit {
        let want = (limit - events.len()).min(PAGE);
        let options = ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(from - 1 + events.len() as u64))
            .max_count(want);
        let mut stream = match client.read_stream(log, &options).await {
            Ok(s) => s,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(events),
            Err(e) => return Err(backend(e)),
        };
        let before = events.len();
        loop {
            match stream.next().await {
                Ok(Some(resolved)) => {
                    let e = resolved.get_original_event();
                    events.push(decode(
                        e.revision,
                        &e.event_type,
                        &e.data,
                        &e.custom_metadata,
                    )?);
                }
                Ok(None) => break,
                Err(kurrentdb::Error::ResourceNotFound) => return Ok(events),
                Err(e) => return Err(backend(e)),
            }
        }
        if events.len() - before < want {
            break; // the end of the log
        }
    }
    Ok(events)
}

/// The log stream's last position, from the server.
async fn query_head(client: &Client, log: &str) -> Result<Position, StoreError> {
    let options = ReadStreamOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .max_count(1);
    let mut stream = match client.read_stream(log, &options).await {
        Ok(s) => s,
        Err(kurrentdb::Error::ResourceNotFound) => return Ok(Position(0)),
        Err(e) => return Err(backend(e)),
    };
    match stream.next().await {
        Ok(Some(e)) => Ok(Position(e.get_original_event().revision + 1)),
        Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => Ok(Position(0)),
        Err(e) => Err(backend(e)),
    }
}

/// Keeps the head current: a catch-up subscription to `$all` filtered to
/// the log stream, resumed from its last checkpoint after an error, and a
/// poll as a safety net. Ends when the store is gone or closed.
async fn follow_head(inner: std::sync::Weak<Inner>, poll_interval: Duration) {
    let mut resume = StreamPosition::End;
    let mut backoff = Duration::from_millis(50);
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(store) = inner.upgrade() else { return };
        let (client, log, head) = (store.client.clone(), store.log.clone(), store.head.clone());
        drop(store);
        if head.borrow().closed {
            return;
        }
        let options = SubscribeToAllOptions::default()
            .position(resume)
            .filter(SubscriptionFilter::on_stream_name().add_prefix(&log));
        let mut subscription = client.subscribe_to_all(&options).await;
        if let Ok(p) = query_head(&client, &log).await {
            advance(&head, p);
        }
        loop {
            tokio::select! {
                event = subscription.next_subscription_event() => match event {
                    Ok(SubscriptionEvent::EventAppeared(e)) => {
                        let e = e.get_original_event();
                        if e.stream_id() == log {
                            advance(&head, Position(e.revision + 1));
                            resume = StreamPosition::Position(e.position);
                        }
                        backoff = Duration::from_millis(50);
                    }
                    Ok(SubscriptionEvent::Checkpoint(at)) => {
                        resume = StreamPosition::Position(at);
                    }
                    Ok(SubscriptionEvent::CaughtUp(_)) => {
                        if let Ok(p) = query_head(&client, &log).await {
                            advance(&head, p);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
                _ = poll.tick() => {
                    if head.borrow().closed || inner.strong_count() == 0 {
                        return;
                    }
                    if let Ok(p) = query_head(&client, &log).await {
                        advance(&head, p);
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[async_trait::async_trait]
impl EventStore for KurrentStore {
    /// Every part goes into the one log stream in one KurrentDB append, so
    /// the parts of one append are atomic here too.
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        check_parts(&parts)?;
        self.ensure_open()?;
        let mut index = self.inner.index.lock().await;
        for _ in 0..MAX_RETRIES {
            self.catch_up(&mut index).await?;
            let (appended, recorded) =
                link_parts(parts.clone(), index.log, |stream| index.tail(stream))?;
            let state = match index.log.position.0 {
                0 => StreamState::NoStream,
                n => StreamState::StreamRevision(n - 1),
            };
            let data = recorded.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
            let options = AppendToStreamOptions::default().stream_state(state);
            match self
                .inner
                .client
                .append_to_stream(self.inner.log.as_str(), &options, data)
                .await
            {
                Ok(_) => {
                    for e in &recorded {
                        index.apply(e)?;
                    }
                    self.advance(index.log.position);
                    return Ok(appended);
                }
                // Another writer got in first: catch up, decide again.
                Err(kurrentdb::Error::WrongExpectedVersion { .. }) => continue,
                Err(e) => return Err(backend(e).into()),
            }
        }
        Err(StoreError::backend(std::io::Error::other(format!(
            "the log stream kept moving: {MAX_RETRIES} attempts lost to other writers"
        )))
        .into())
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.ensure_open()?;
        let positions: Vec<u64> = {
            let mut index = self.inner.index.lock().await;
            self.catch_up(&mut index).await?;
            match index.streams.get(stream) {
                Some((positions, _)) => positions
                    .iter()
                    .skip(usize::try_from(from.0).unwrap_or(usize::MAX))
                    .take(limit)
                    .copied()
                    .collect(),
                None => return Ok(Vec::new()),
            }
        };
        // Runs of consecutive positions are read in one request each.
        let mut events = Vec::with_capacity(positions.len());
        let mut i = 0;
        while i < positions.len() {
            let mut j = i + 1;
            while j < positions.len() && positions[j] == positions[j - 1] + 1 {
                j += 1;
            }
            let run = self.read_log(Position(positions[i]), j - i).await?;
            if run.len() != j - i {
                return Err(StoreError::Corrupt {
                    at: format!("position {}", positions[i]),
                    reason: "the log stream lost events this process had read".into(),
                });
            }
            events.extend(run);
            i = j;
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.ensure_open()?;
        self.read_log(from, limit).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.ensure_open()?;
        let head = query_head(&self.inner.client, &self.inner.log).await?;
        self.advance(head);
        Ok(head)
    }

    fn subscribe_all(&self, from: Position) -> Subscription {
        catch_up_then_live(
            self.clone(),
            self.inner.head.subscribe(),
            Arc::default(),
            from,
        )
    }

    fn shared(&self) -> bool {
        true
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
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

    async fn close(&self) {
        // Appends in flight hold the index lock: wait for them.
        let _index = self.inner.index.lock().await;
        let follower = self
            .inner
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = follower {
            f.abort();
            let _ = f.await;
        }
        self.inner.head.send_modify(|h| h.closed = true);
    }

    fn backend(&self) -> &'static str {
        "kurrentdb"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain;
    use crate::event::{EventMetadata, NewEvent};

    fn linked() -> Vec<RecordedEvent> {
        let meta = EventMetadata::new("t");
        let events = vec![
            NewEvent::from_json_text(
                EventType::parse("Happened").unwrap(),
                3,
                "{\"b\": 1,  \"a\":\"\\u00e9 \u{1F600}\"}",
                &meta,
            )
            .unwrap(),
            NewEvent::from_json_text(EventType::parse("Again").unwrap(), 1, "{}", &meta).unwrap(),
        ];
        chain::link(
            &StreamId::parse("secret-local://alice/db").unwrap(),
            None,
            LogCheckpoint::EMPTY,
            events,
        )
    }

    #[test]
    fn an_event_round_trips_through_its_kurrentdb_form_byte_for_byte() {
        for e in linked() {
            let envelope = Envelope {
                stream: e.stream_id.as_str().to_owned(),
                version: e.version.0,
                schema_version: e.schema_version,
                metadata: e.metadata.as_str().to_owned(),
                prev_hash: e.prev_hash.to_hex(),
                hash: e.hash.to_hex(),
                log_hash: e.log_hash.to_hex(),
            };
            let custom = serde_json::to_vec(&envelope).unwrap();
            // The form `encode` sends, read back as a server returns it.
            assert!(encode(&e).is_ok());
            let back = decode(
                e.position.0 - 1,
                e.event_type.as_str(),
                e.data.as_str().as_bytes(),
                &custom,
            )
            .unwrap();
            assert_eq!(back, e);
            assert_eq!(back.computed_hash(), e.hash);
        }
    }

    #[test]
    fn foreign_or_damaged_events_in_the_log_stream_are_named_corrupt() {
        let e = &linked()[0];
        let err = decode(4, "Happened", b"{}", b"{\"not\":\"ours\"}").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { at, .. } if at == "position 5"),
            "{err}"
        );
        let bad_hash = serde_json::to_vec(&Envelope {
            stream: "s".into(),
            version: 0,
            schema_version: 1,
            metadata: "{}".into(),
            prev_hash: "zz".into(),
            hash: e.hash.to_hex(),
            log_hash: e.log_hash.to_hex(),
        })
        .unwrap();
        let err = decode(0, "Happened", b"{}", &bad_hash).unwrap_err();
        assert!(err.to_string().contains("prev_hash"), "{err}");
    }

    #[test]
    fn the_index_takes_events_in_position_order_only() {
        let events = linked();
        let mut index = Index::default();
        assert!(index.apply(&events[1]).is_err(), "position 2 before 1");
        index.apply(&events[0]).unwrap();
        index.apply(&events[1]).unwrap();
        let stream = &events[0].stream_id;
        assert_eq!(index.tail(stream), Some((StreamVersion(1), events[1].hash)));
        assert_eq!(index.log, LogCheckpoint::of(&events[1]));
    }
}
