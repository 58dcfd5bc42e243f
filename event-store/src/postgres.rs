//! The PostgreSQL backend (ADR 0019): one database that several control
//! planes share.
//!
//! Appends are serialised by a transaction-level advisory lock: each append
//! transaction takes [`APPEND_LOCK`], reads the log's last event, assigns the
//! next positions, inserts and commits; PostgreSQL releases the lock only
//! after the commit is visible. Within one process a writer task commits
//! every append waiting for it in one such transaction (group commit, as
//! the embedded writer does), so concurrent appenders share one lock
//! hand-off and one commit flush. So positions become visible in order and a
//! reader never sees position `p + 1` before `p` — no gap, even while
//! transactions of several processes commit concurrently (the trap of
//! sequence-assigned positions, which commit out of order). The store
//! computes both hash chains inside that transaction with [`chain::link`].
//!
//! Subscriptions read the log back page by page (`subscription.rs`); they
//! learn that the head moved from this process's own commits, from a
//! `NOTIFY` that every append transaction sends on commit (carrying its last
//! position), and from a periodic poll, so a lost or coalesced notification
//! or a dropped listener connection (reconnected) loses nothing.
//!
//! Data and metadata are stored as `text`, never `jsonb`: the hash covers
//! the exact bytes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Row};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::chain::{EventHash, LogCheckpoint, LogHash};
use crate::event::{EventType, JsonObject, Position, RecordedEvent, StreamId, StreamVersion};
use crate::redacted_url::RedactedUrl;
use crate::store::{
    AppendError, Appended, EventStore, StoreError, StreamAppend, Subscription, link_parts,
};
use crate::subscription::{Head, advance, catch_up_then_live, ensure_open};
use crate::writer::{
    Append, GROUP_MAX_APPENDS, Outcome, QUEUE, Queue, clamp, gather, reply, submit,
};

/// The schema this version writes (the one row of `sealplane_schema_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// The advisory lock key every append transaction (and the migration)
/// holds: "SEALPLAN" in ASCII. Advisory locks are per database.
pub const APPEND_LOCK: i64 = 0x5345_414c_504c_414e;

/// The channel each append notifies on commit, with its last position.
pub const NOTIFY_CHANNEL: &str = "sealplane_events";

const SCHEMA_V1: &[&str] = &["CREATE TABLE sealplane_events (
        position       bigint  PRIMARY KEY CHECK (position > 0),
        stream_id      text    NOT NULL,
        stream_version bigint  NOT NULL CHECK (stream_version >= 0),
        event_type     text    NOT NULL,
        schema_version bigint  NOT NULL,
        data           text    NOT NULL,
        metadata       text    NOT NULL,
        prev_hash      bytea   NOT NULL,
        hash           bytea   NOT NULL,
        log_hash       bytea   NOT NULL,
        UNIQUE (stream_id, stream_version)
    )"];

/// Schema 2: leases for once-only work (ADR 0020). Not part of the log:
/// who holds a lease is coordination, not history.
const SCHEMA_V2: &[&str] = &["CREATE TABLE sealplane_leases (
        name       text        PRIMARY KEY,
        holder     text        NOT NULL,
        expires_at timestamptz NOT NULL
    )"];

/// The first key of every exclusive section's advisory lock ("SEAL"); the
/// second is the section name's hash. Two-key advisory locks do not share
/// a key space with the one-key [`APPEND_LOCK`].
const SECTION_LOCK_CLASS: i32 = 0x5345_414c;

/// The columns [`decode`] reads, as a literal for `concat!`.
macro_rules! select_event {
    () => {
        "SELECT position, stream_id, stream_version, event_type, schema_version, data, \
         metadata, prev_hash, hash, log_hash FROM sealplane_events"
    };
}

/// Tunables of a [`PostgresStore`]; [`Default`] suits a control plane.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Most connections the store's pool opens (one more is held by the
    /// notification listener).
    pub max_connections: u32,
    /// How often the head is polled besides `LISTEN/NOTIFY`: the safety net
    /// that bounds how late a lost notification is noticed.
    pub poll_interval: Duration,
    /// How long connecting (and taking a pooled connection) may take.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 8,
            poll_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the store could not be opened, naming the server without its
/// password.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the PostgreSQL event store at {url}: {reason}")]
pub struct ConnectError {
    url: RedactedUrl,
    reason: String,
}

/// An event store in a PostgreSQL database; clones share one pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: RedactedUrl,
    pool: PgPool,
    head: watch::Sender<Head>,
    /// The writer's queue; `None` once closed.
    writer: Queue,
    writer_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    listener: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    /// The last handle gone, nothing can wait on the head any more.
    fn drop(&mut self) {
        if let Some(listener) = self
            .listener
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            listener.abort();
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:pass@host/db`),
    /// creating or migrating the schema; refuses a schema written by a
    /// newer Sealplane.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresStore::connect`] with explicit tunables.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let redacted = RedactedUrl::new(url);
        let fail = |reason: String| {
            StoreError::backend(ConnectError {
                url: redacted.clone(),
                reason,
            })
        };
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| fail(format!("the url is not valid: {}", describe(&e))))?;
        // The url may name the application (replicas told apart in
        // pg_stat_activity); otherwise "sealplane".
        let name = connect
            .get_application_name()
            .unwrap_or("sealplane")
            .to_owned();
        let connect = connect
            .application_name(&name)
            // An appender that vanished mid-transaction (a frozen process,
            // a cut network) would hold the append lock; the server ends
            // such a session, releasing it.
            .options([("idle_in_transaction_session_timeout", "30s")])
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| fail(describe(&e)))?;
        let encoding: String = sqlx::query_scalar("SHOW server_encoding")
            .fetch_one(&pool)
            .await
            .map_err(|e| fail(describe(&e)))?;
        if !matches!(encoding.as_str(), "UTF8" | "SQL_ASCII") {
            return Err(fail(format!(
                "the database encoding is {encoding}; events are stored byte for byte as text, so it must be UTF8"
            )));
        }
        migrate(&pool, &redacted).await?;
        let last = query_head(&pool).await?;
        let (head, _) = watch::channel(Head {
            position: last,
            closed: false,
        });
        let listener = tokio::spawn(follow_head(
            pool.clone(),
            head.clone(),
            options.poll_interval,
        ));
        let (writer, queue) = mpsc::channel(QUEUE);
        let writer_task = tokio::spawn(run_writer(pool.clone(), head.clone(), queue));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                url: redacted,
                pool,
                head,
                writer: std::sync::Mutex::new(Some(writer)),
                writer_task: std::sync::Mutex::new(Some(writer_task)),
                listener: std::sync::Mutex::new(Some(listener)),
            }),
        })
    }

    /// The database, its password hidden.
    pub fn url(&self) -> &RedactedUrl {
        &self.inner.url
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        ensure_open(&self.inner.head)
    }

    /// Publishes `position` as durable, never moving the head back.
    fn advance(&self, position: Position) {
        advance(&self.inner.head, position);
    }

    /// Runs a read, retrying it on a connection that died under it
    /// (terminated backend, restarted server): reads are idempotent.
    async fn read_rows(
        &self,
        query: impl Fn() -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.ensure_open()?;
        let mut attempt = 0;
        loop {
            match query().fetch_all(&self.inner.pool).await {
                Ok(rows) => return rows.iter().map(decode).collect(),
                Err(sqlx::Error::PoolClosed) => return Err(StoreError::Closed),
                Err(e) if attempt < 3 && connection_lost(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => return Err(backend(e)),
            }
        }
    }
}

/// The columns of a batch, bound as arrays: one `INSERT` per append.
struct Columns {
    position: Vec<i64>,
    stream_id: Vec<String>,
    stream_version: Vec<i64>,
    event_type: Vec<String>,
    schema_version: Vec<i64>,
    data: Vec<String>,
    metadata: Vec<String>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    log_hash: Vec<Vec<u8>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Columns {
        Columns {
            position: Vec::with_capacity(n),
            stream_id: Vec::with_capacity(n),
            stream_version: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            schema_version: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            log_hash: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, e: &RecordedEvent) {
        self.position.push(e.position.0 as i64);
        self.stream_id.push(e.stream_id.as_str().to_owned());
        self.stream_version.push(e.version.0 as i64);
        self.event_type.push(e.event_type.as_str().to_owned());
        self.schema_version.push(i64::from(e.schema_version));
        self.data.push(e.data.as_str().to_owned());
        self.metadata.push(e.metadata.as_str().to_owned());
        self.prev_hash.push(e.prev_hash.0.to_vec());
        self.hash.push(e.hash.0.to_vec());
        self.log_hash.push(e.log_hash.0.to_vec());
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A database error as a sentence; sqlx errors never carry the password.
fn describe(e: &sqlx::Error) -> String {
    e.to_string()
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

/// Whether `e` means the connection died (so a retry on another may work).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            // admin_shutdown, crash_shutdown, cannot_connect_now, connection_*
            matches!(c.as_ref(), "57P01" | "57P02" | "57P03") || c.starts_with("08")
        }),
        _ => false,
    }
}

async fn query_head(pool: &PgPool) -> Result<Position, StoreError> {
    let last: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM sealplane_events")
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    Ok(Position(last as u64))
}

/// Creates or upgrades the schema in one transaction, under the append lock
/// so two processes starting together do not race; refuses a newer schema.
async fn migrate(pool: &PgPool, url: &RedactedUrl) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS sealplane_schema_version (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            version  bigint  NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM sealplane_schema_version")
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            at: url.to_string(),
            reason: format!(
                "schema version {version} was written by a newer Sealplane (this one reads {SCHEMA_VERSION}); upgrade Sealplane"
            ),
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let steps = [(1, SCHEMA_V1), (2, SCHEMA_V2)];
    for (step, statements) in steps {
        if version < step {
            for statement in statements {
                sqlx::query(*statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
    }
    sqlx::query(
        "INSERT INTO sealplane_schema_version (only_row, version) VALUES (true, $1) \
         ON CONFLICT (only_row) DO UPDATE SET version = EXCLUDED.version",
    )
    .bind(SCHEMA_VERSION)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

/// Keeps `head` at the database's head: `LISTEN` for every append's
/// notification, poll every `poll_interval` as a safety net, and after a
/// lost listener connection re-read the head and listen again.
async fn follow_head(pool: PgPool, head: watch::Sender<Head>, poll_interval: Duration) {
    let mut poll = tokio::time::interval(poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::from_millis(50);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(NOTIFY_CHANNEL).await {
                Ok(()) => Some(l),
                Err(_) => None,
            },
            Err(sqlx::Error::PoolClosed) => return,
            Err(_) => None,
        };
        // Notifications sent while no one listened are gone: look instead.
        if let Ok(p) = query_head(&pool).await {
            advance(&head, p);
        }
        if listener.is_none() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        }
        backoff = Duration::from_millis(50);
        while let Some(l) = listener.as_mut() {
            tokio::select! {
                n = l.try_recv() => match n {
                    Ok(Some(n)) => {
                        if let Ok(p) = n.payload().parse::<u64>() {
                            advance(&head, Position(p));
                        }
                    }
                    // Reconnected by sqlx: whatever was sent meanwhile is lost.
                    Ok(None) => {
                        if let Ok(p) = query_head(&pool).await {
                            advance(&head, p);
                        }
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(_) => listener = None,
                },
                _ = poll.tick() => {
                    if let Ok(p) = query_head(&pool).await {
                        advance(&head, p);
                    }
                }
            }
        }
    }
}

/// This process's appends, committed in groups: one transaction (one lock
/// hand-off, one commit flush, one notification) for every append waiting
/// when the previous group committed. Ends, after the last group, when the
/// store closes.
async fn run_writer(pool: PgPool, head: watch::Sender<Head>, mut queue: mpsc::Receiver<Append>) {
    let mut group = Vec::with_capacity(GROUP_MAX_APPENDS);
    while let Some(first) = queue.recv().await {
        gather(first, &mut queue, &mut group);
        let outcomes = match commit_group(&pool, &mut group).await {
            Ok((outcomes, last)) => {
                if let Some(last) = last {
                    advance(&head, last);
                }
                outcomes
            }
            Err(e) => group.iter().map(|_| Err(duplicate(&e).into())).collect(),
        };
        reply(&mut group, outcomes);
    }
}

/// The failure of a group's transaction, once for each of its appends.
fn duplicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::Corrupt { at, reason } => StoreError::Corrupt {
            at: at.clone(),
            reason: reason.clone(),
        },
        StoreError::Closed => StoreError::Closed,
        other => StoreError::backend(std::io::Error::other(format!(
            "the append's transaction failed, nothing was written: {other}"
        ))),
    }
}

/// Appends the group in one transaction holding [`APPEND_LOCK`]: each
/// append is checked against the log as the earlier ones of the group left
/// it; a refused one writes nothing and the rest still commit. Returns one
/// outcome per append and the new last position, if anything was written;
/// `Err` when the transaction failed, so nothing was.
async fn commit_group(
    pool: &PgPool,
    group: &mut [Append],
) -> Result<(Vec<Outcome>, Option<Position>), StoreError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    // Held until the commit is visible: positions commit in order.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    // READ COMMITTED: each statement from here on sees every append
    // committed before the lock was granted, and this group's own.
    let mut log = log_head(&mut tx).await?;
    let before = log.position;
    let mut outcomes = Vec::with_capacity(group.len());
    for append in group.iter_mut() {
        let parts = std::mem::take(&mut append.parts);
        // Every part is checked and linked before any is written, so a
        // refused append needs no savepoint to undo.
        let outcome = match link(&mut tx, log, parts).await {
            Ok(Ok((appended, recorded))) => {
                insert(&mut tx, &recorded).await?;
                if let Some(last) = recorded.last() {
                    log = LogCheckpoint::of(last);
                }
                Ok(appended)
            }
            Ok(Err(refused)) => Err(refused),
            Err(corrupt @ StoreError::Corrupt { .. }) => Err(corrupt.into()),
            Err(e) => return Err(e),
        };
        outcomes.push(outcome);
    }
    if log.position == before {
        return Ok((outcomes, None)); // every append refused: dropping rolls back
    }
    // Delivered to listeners only when (and if) the commit succeeds.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(log.position.0.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok((outcomes, Some(log.position)))
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// The log's last position and log hash ([`LogCheckpoint::EMPTY`] when empty).
async fn log_head(tx: &mut Tx) -> Result<LogCheckpoint, StoreError> {
    let row = sqlx::query(
        "SELECT position, log_hash FROM sealplane_events ORDER BY position DESC LIMIT 1",
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(LogCheckpoint::EMPTY);
    };
    let position: i64 = row.try_get(0).map_err(backend)?;
    let log_hash: Vec<u8> = row.try_get(1).map_err(backend)?;
    Ok(LogCheckpoint {
        position: Position(position as u64),
        log_hash: LogHash::from_slice(&log_hash).ok_or_else(|| StoreError::Corrupt {
            at: format!("position {position}"),
            reason: "log_hash is not 32 bytes".into(),
        })?,
    })
}

/// The parts of one append linked after `log`, each after its stream's
/// tail (or the tail an earlier part left), nothing written: what to
/// insert, or the first part's refusal.
async fn link(
    tx: &mut Tx,
    log: LogCheckpoint,
    parts: Vec<StreamAppend>,
) -> Result<Result<(Vec<Appended>, Vec<RecordedEvent>), AppendError>, StoreError> {
    let mut tails = HashMap::with_capacity(parts.len());
    for part in &parts {
        if !tails.contains_key(&part.stream) {
            let tail = stream_tail(tx, &part.stream).await?;
            tails.insert(part.stream.clone(), tail);
        }
    }
    Ok(link_parts(parts, log, |stream| {
        tails.get(stream).copied().flatten()
    }))
}

/// The stream's last version and hash, `None` for a new stream.
async fn stream_tail(
    tx: &mut Tx,
    stream: &StreamId,
) -> Result<Option<(StreamVersion, EventHash)>, StoreError> {
    let row = sqlx::query(
        "SELECT stream_version, hash FROM sealplane_events WHERE stream_id = $1 \
         ORDER BY stream_version DESC LIMIT 1",
    )
    .bind(stream.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let version: i64 = row.try_get(0).map_err(backend)?;
    let hash: Vec<u8> = row.try_get(1).map_err(backend)?;
    Ok(Some((
        StreamVersion(version as u64),
        EventHash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt {
            at: format!("stream {stream} version {version}"),
            reason: "stored hash is not 32 bytes".into(),
        })?,
    )))
}

/// Inserts a linked batch in one statement, its columns bound as arrays.
async fn insert(tx: &mut Tx, recorded: &[RecordedEvent]) -> Result<(), StoreError> {
    let mut columns = Columns::with_capacity(recorded.len());
    for e in recorded {
        columns.push(e);
    }
    sqlx::query(
        "INSERT INTO sealplane_events (position, stream_id, stream_version, event_type, \
         schema_version, data, metadata, prev_hash, hash, log_hash) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], \
         $5::bigint[], $6::text[], $7::text[], $8::bytea[], $9::bytea[], $10::bytea[])",
    )
    .bind(columns.position)
    .bind(columns.stream_id)
    .bind(columns.stream_version)
    .bind(columns.event_type)
    .bind(columns.schema_version)
    .bind(columns.data)
    .bind(columns.metadata)
    .bind(columns.prev_hash)
    .bind(columns.hash)
    .bind(columns.log_hash)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let db = backend;
    let position: i64 = row.try_get(0).map_err(db)?;
    let stream_id: String = row.try_get(1).map_err(db)?;
    let version: i64 = row.try_get(2).map_err(db)?;
    let event_type: String = row.try_get(3).map_err(db)?;
    let schema_version: i64 = row.try_get(4).map_err(db)?;
    let data: String = row.try_get(5).map_err(db)?;
    let metadata: String = row.try_get(6).map_err(db)?;
    let prev_hash: Vec<u8> = row.try_get(7).map_err(db)?;
    let hash: Vec<u8> = row.try_get(8).map_err(db)?;
    let log_hash: Vec<u8> = row.try_get(9).map_err(db)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        at: format!("position {position}"),
        reason,
    };
    Ok(RecordedEvent {
        position: Position(position as u64),
        stream_id: StreamId::parse(stream_id).map_err(|e| corrupt(e.to_string()))?,
        version: StreamVersion(version as u64),
        event_type: EventType::parse(event_type).map_err(|e| corrupt(e.to_string()))?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt("schema_version is out of range".into()))?,
        data: JsonObject::from_stored("data", data).map_err(|e| corrupt(e.to_string()))?,
        metadata: JsonObject::from_stored("metadata", metadata)
            .map_err(|e| corrupt(e.to_string()))?,
        prev_hash: EventHash::from_slice(&prev_hash)
            .ok_or_else(|| corrupt("prev_hash is not 32 bytes".into()))?,
        hash: EventHash::from_slice(&hash).ok_or_else(|| corrupt("hash is not 32 bytes".into()))?,
        log_hash: LogHash::from_slice(&log_hash)
            .ok_or_else(|| corrupt("log_hash is not 32 bytes".into()))?,
    })
}

/// A held exclusive section: its connection holds the advisory lock.
struct Section {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    name: String,
}

impl Drop for Section {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Without a runtime to unlock on, end the session instead.
            conn.close_on_drop();
            return;
        };
        let name = std::mem::take(&mut self.name);
        runtime.spawn(async move {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
                .bind(SECTION_LOCK_CLASS)
                .bind(&name)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Closing the session releases every lock it holds.
                let _ = conn.close().await;
            }
        });
    }
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        submit(&self.inner.writer, parts).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        const SQL: &str = concat!(
            select_event!(),
            " WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
        );
        let (stream, from, limit) = (
            stream.as_str().to_owned(),
            clamp(from.0),
            clamp(limit as u64),
        );
        self.read_rows(|| sqlx::query(SQL).bind(stream.clone()).bind(from).bind(limit))
            .await
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        const SQL: &str = concat!(
            select_event!(),
            " WHERE position >= $1 ORDER BY position LIMIT $2"
        );
        let (from, limit) = (clamp(from.0), clamp(limit as u64));
        self.read_rows(|| sqlx::query(SQL).bind(from).bind(limit))
            .await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.ensure_open()?;
        let head = query_head(&self.inner.pool).await?;
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

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn shared(&self) -> bool {
        true
    }

    /// One statement, on the database's clock (so the processes' clocks
    /// need not agree): insert, or take over a lease that is ours or has
    /// expired; a row comes back only when `holder` holds it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.ensure_open()?;
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO sealplane_leases (name, holder, expires_at) \
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::bigint / 1000.0)) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE sealplane_leases.holder = EXCLUDED.holder \
                OR sealplane_leases.expires_at < clock_timestamp() \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(clamp(ttl.as_millis().try_into().unwrap_or(u64::MAX)))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(backend)?;
        Ok(held.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.ensure_open()?;
        sqlx::query("DELETE FROM sealplane_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.inner.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// A session advisory lock on a connection held for the section; the
    /// guard unlocks on drop (or closes the connection, which unlocks too).
    async fn exclusive(&self, name: &str) -> Result<crate::Exclusive, StoreError> {
        self.ensure_open()?;
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
            .bind(SECTION_LOCK_CLASS)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        Ok(crate::Exclusive::new(Section {
            conn: Some(conn),
            name: name.to_owned(),
        }))
    }

    async fn close(&self) {
        // The writer commits every queued append, then ends.
        drop(lock(&self.inner.writer).take());
        let writer = lock(&self.inner.writer_task).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        let listener = lock(&self.inner.listener).take();
        if let Some(listener) = listener {
            listener.abort();
            let _ = listener.await;
        }
        self.inner.head.send_modify(|h| h.closed = true);
        self.inner.pool.close().await;
    }
}

/// A copied log going into an empty PostgreSQL store (`migrate-store`): one
/// transaction holding [`APPEND_LOCK`] from the emptiness check to the
/// commit, so no control plane appends meanwhile and a failure anywhere
/// rolls everything back.
pub struct PostgresImport {
    store: PostgresStore,
    tx: Option<Tx>,
    check: crate::migrate::ImportCheck,
}

impl PostgresStore {
    /// Starts a copy into this store, which must hold no event.
    pub async fn begin_import(&self) -> Result<PostgresImport, crate::migrate::MigrateError> {
        use crate::migrate::MigrateError;
        self.ensure_open()?;
        let mut tx = self.inner.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sealplane_events)")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if any {
            return Err(MigrateError::TargetNotEmpty(self.inner.url.to_string()));
        }
        Ok(PostgresImport {
            store: self.clone(),
            tx: Some(tx),
            check: Default::default(),
        })
    }
}

#[async_trait::async_trait]
impl crate::migrate::LogImport for PostgresImport {
    fn target(&self) -> String {
        self.store.inner.url.to_string()
    }

    async fn write(
        &mut self,
        events: &[RecordedEvent],
    ) -> Result<(), crate::migrate::MigrateError> {
        self.check.check(events)?;
        let tx = self.tx.as_mut().ok_or(StoreError::Closed)?;
        insert(tx, events).await?;
        Ok(())
    }

    async fn commit(
        mut self: Box<Self>,
        source_head: LogCheckpoint,
    ) -> Result<crate::VerifiedLog, crate::migrate::MigrateError> {
        const SQL: &str = concat!(
            select_event!(),
            " WHERE position >= $1 ORDER BY position LIMIT $2"
        );
        let mut tx = self.tx.take().ok_or(StoreError::Closed)?;
        // Read back inside the transaction: what the table now holds.
        let mut read_back = crate::migrate::ReadBack::new(source_head, self.target());
        let mut next = Position::START;
        loop {
            let rows = sqlx::query(SQL)
                .bind(clamp(next.0))
                .bind(crate::migrate::IMPORT_BATCH as i64)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
            let page = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
            let Some(last) = page.last() else { break };
            next = last.position.next();
            read_back.check(&page)?;
        }
        let verified = read_back.finish()?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(verified.head.position.0.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.store.advance(verified.head.position);
        Ok(verified)
    }
}
