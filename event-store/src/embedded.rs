//! The embedded backend: one SQLite file in WAL mode, the default store.
//!
//! One writer thread commits appends in groups: it takes every append
//! waiting in its queue, runs each inside its own savepoint when there are
//! several (so a conflict in one leaves the others untouched), commits
//! the group with one `fsync`, publishes the new head, then answers each
//! appender. An append therefore returns only once it is durable. An
//! append made while no other is under way, on a multi-threaded runtime,
//! is committed on the caller's thread instead (inside `block_in_place`),
//! as a group of one: the same commit and publication, without the two
//! thread hand-offs. Appends that overlap go to the writer, which commits
//! them together. Either way the connection's lock orders the commits and
//! their publication. Readers use a small pool of separate connections,
//! which WAL lets run beside the writer. A lock file keeps a second
//! process from opening the same store.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::ops::ControlFlow;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, watch};

use crate::chain::{self, EventHash, LogCheckpoint, LogHash};
use crate::coordination::LocalCoordination;
use crate::event::{
    EventType, ExpectedVersion, InvalidInput, JsonObject, NewEvent, Position, RecordedEvent,
    StreamId, StreamVersion,
};
use crate::store::{
    AppendError, Appended, EventStore, StoreError, StreamAppend, Subscription, check_expected,
    check_parts,
};
use crate::subscription::{Head, Recent, catch_up_then_live};
use crate::writer::{
    Append, GROUP_MAX_APPENDS, Outcome, QUEUE, Queue, clamp, gather, reply, submit,
};

/// The on-disk schema this version writes (SQLite `user_version`): 1 is
/// the table below, 2 adds `log_hash` (ADR 0014).
const SCHEMA_VERSION: i64 = 2;
/// Reader connections kept open between reads.
const IDLE_READERS: usize = 4;

/// Schema version 1, which every file starts from; [`migrate`] takes it on.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    prev_hash      BLOB    NOT NULL,
    hash           BLOB    NOT NULL,
    UNIQUE (stream_id, stream_version)
) STRICT;
";

/// Version 2: every event's log hash. SQLite adds a `NOT NULL` column only
/// with a default; the empty default is never a valid hash, so a row
/// written without one reads as corrupt.
const ADD_LOG_HASH: &str = "ALTER TABLE events ADD COLUMN log_hash BLOB NOT NULL DEFAULT x''";

/// Rows the schema-2 migration reads at a time.
const MIGRATION_PAGE: i64 = 4096;

const SELECT_EVENT: &str = "SELECT position, stream_id, stream_version, event_type, \
     schema_version, data, metadata, prev_hash, hash, log_hash FROM events";

/// An event store in one SQLite file; clones share it.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The write connection, taken by whoever commits; `None` once the
    /// writer thread has stopped.
    conn: Arc<Mutex<Option<Connection>>>,
    /// Appends under way: one alone may commit on its caller's thread.
    appending: std::sync::atomic::AtomicUsize,
    writer: Queue,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    /// The head, what was just committed and the streams' tails.
    publish: Publish,
    /// Leases and sections: the lock file admits one process, so they
    /// are this process's.
    coordination: LocalCoordination,
}

/// Streams whose last version the store keeps in memory; when full, it
/// starts again empty (a stream not held is read, as before).
const TAILS: usize = 16_384;

/// The last version of the streams written lately, as committed. Only this
/// process writes the file (the lock file keeps others out), and the writer
/// records every commit here before it answers the appenders, so a version
/// held here is the stream's last.
#[derive(Default)]
struct Tails(Mutex<std::collections::HashMap<StreamId, StreamVersion>>);

impl Tails {
    fn committed(&self, events: &[RecordedEvent]) {
        let mut tails = lock(&self.0);
        for e in events {
            if tails.len() >= TAILS && !tails.contains_key(&e.stream_id) {
                tails.clear();
            }
            tails.insert(e.stream_id.clone(), e.version);
        }
    }

    fn get(&self, stream: &StreamId) -> Option<StreamVersion> {
        lock(&self.0).get(stream).copied()
    }
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating it (readable by its owner only)
    /// when missing. Fails if another process has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let lock_held = lock_file(&path)?;
        // Create the file ourselves so its mode is 0600 from the first byte;
        // SQLite gives the -wal and -shm files the same mode.
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(StoreError::backend)?;
        let mut conn = Connection::open(&path).map_err(StoreError::backend)?;
        configure(&conn)?;
        migrate(&mut conn, &path)?;
        let last: i64 = conn
            .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get(0)
            })
            .map_err(StoreError::backend)?;
        let (head, _) = watch::channel(Head {
            position: Position(last as u64),
            closed: false,
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let conn = Arc::new(Mutex::new(Some(conn)));
        let publish = Publish {
            head,
            recent: Arc::new(Recent::default()),
            tails: Arc::new(Tails::default()),
        };
        let (writer_conn, writer_publish) = (conn.clone(), publish.clone());
        let thread = std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || {
                run_writer(&writer_conn, rx, &writer_publish);
                // Waits for a commit on an appender's thread, if one is
                // under way, and ends writing: the lock is released only
                // once every append is durable.
                drop(lock(&writer_conn).take());
                drop(lock_held);
            })
            .map_err(StoreError::backend)?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                path,
                conn,
                appending: std::sync::atomic::AtomicUsize::new(0),
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Vec::new()),
                publish,
                coordination: LocalCoordination::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `read` on a pooled reader connection. On a multi-threaded
    /// runtime it runs on the caller's thread, inside `block_in_place`
    /// (which hands the thread's other tasks to another meanwhile), so a
    /// page of events is allocated on the thread that goes on to use and
    /// free it (ADR 0038); elsewhere on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.inner.publish.head.borrow().closed {
            return Err(StoreError::Closed);
        }
        if may_block_in_place() {
            return tokio::task::block_in_place(|| self.inner.with_reader(read));
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.with_reader(read))
            .await
            .map_err(StoreError::backend)?
    }
}

impl Inner {
    /// Runs `read` on a pooled reader connection, on this thread.
    fn with_reader<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match lock(&self.readers).pop() {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = read(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// Whether the caller runs on a multi-threaded runtime, where
/// `block_in_place` may block its thread (the runtime moves the thread's
/// other tasks to another meanwhile).
fn may_block_in_place() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_file(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(StoreError::backend)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(StoreError::backend(e)),
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    // WAL lets readers run beside the writer; synchronous=FULL syncs the WAL
    // on every commit, so a returned append survives a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
        .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
        .map_err(StoreError::backend)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(StoreError::backend)?;
    conn.pragma_update(None, "query_only", true)
        .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
        .map_err(StoreError::backend)?;
    Ok(conn)
}

/// Brings the file to [`SCHEMA_VERSION`] in one transaction, so a crash
/// mid-way leaves the old schema whole; refuses a newer file.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let db = StoreError::backend;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            at: path.display().to_string(),
            reason: format!(
                "schema version {version} was written by a newer Sealplane (this one reads {SCHEMA_VERSION})"
            ),
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1).map_err(db)?;
    }
    if version < 2 {
        tx.execute_batch(ADD_LOG_HASH).map_err(db)?;
        add_log_hashes(&tx)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .and_then(|()| tx.commit())
        .map_err(db)
}

/// Computes the log hash of every existing event in position order, from
/// the hashes as stored: an event edited before the migration still fails
/// its own hash check afterwards.
fn add_log_hashes(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let db = StoreError::backend;
    let mut read = tx
        .prepare(&format!(
            "SELECT position, hash FROM events WHERE position > ?1 \
             ORDER BY position LIMIT {MIGRATION_PAGE}"
        ))
        .map_err(db)?;
    let mut write = tx
        .prepare("UPDATE events SET log_hash = ?1 WHERE position = ?2")
        .map_err(db)?;
    let mut head = LogCheckpoint::EMPTY;
    loop {
        // A page at a time, never writing the table while a read of it is
        // still stepping.
        let page = read
            .query_map([head.position.0 as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?;
        if page.is_empty() {
            return Ok(());
        }
        for (position, hash) in page {
            let hash = EventHash::from_slice(&hash).ok_or_else(|| StoreError::Corrupt {
                at: format!("position {position}"),
                reason: "hash is not 32 bytes".into(),
            })?;
            let position = Position(position as u64);
            head = LogCheckpoint {
                position,
                log_hash: head.log_hash.extend(position, &hash),
            };
            write
                .execute(params![&head.log_hash.0[..], position.0 as i64])
                .map_err(db)?;
        }
    }
}

/// Where commits are announced: the tails, the recent events, the head.
#[derive(Clone)]
struct Publish {
    head: watch::Sender<Head>,
    recent: Arc<Recent>,
    tails: Arc<Tails>,
}

impl Publish {
    /// Commits `group` on `conn`, announces what it wrote, then answers
    /// each appender. Called with the connection's lock held, so commits
    /// are announced in the order they were made.
    fn commit(&self, conn: &mut Connection, group: &mut Vec<Append>) {
        let (outcomes, last, committed) = commit_group(conn, group);
        if let Some(position) = last {
            // Before any appender hears of its append, so that whoever
            // holds a stream up to the version held here has all of it.
            self.tails.committed(&committed);
            // Kept before the head moves: a subscriber woken by it finds them.
            self.recent.committed(committed);
            self.head.send_replace(Head {
                position,
                closed: false,
            });
        }
        reply(group, outcomes);
    }
}

/// What [`Inner::commit_here`] did.
enum Here {
    /// Committed (or refused) on the caller's thread.
    Done(Result<Vec<Appended>, AppendError>),
    /// The connection is busy, or this is no place to block: the writer
    /// thread's queue takes the append.
    Busy(Vec<StreamAppend>),
}

impl Inner {
    /// Commits `parts` on the caller's thread when the write connection is
    /// free and the caller is on a multi-threaded runtime (whose other
    /// tasks `block_in_place` moves to another thread meanwhile); hands
    /// them back otherwise. Saves the hand-off to the writer thread and
    /// back (two thread wake-ups) for an append made alone.
    fn commit_here(&self, parts: Vec<StreamAppend>) -> Here {
        if !may_block_in_place() {
            return Here::Busy(parts);
        }
        let mut conn = match self.conn.try_lock() {
            Ok(conn) => conn,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Here::Busy(parts),
        };
        // Checked here, not before: handed back, the queue checks them.
        if let Err(e) = check_parts(&parts) {
            return Here::Done(Err(e));
        }
        // Closed: the writer thread has stopped, or is stopping (it takes
        // the connection once its queue is drained).
        let open = lock(&self.writer).is_some();
        let (Some(conn), true) = (conn.as_mut(), open) else {
            return Here::Done(Err(StoreError::Closed.into()));
        };
        let (reply, mut outcome) = tokio::sync::oneshot::channel();
        let mut group = vec![Append { parts, reply }];
        tokio::task::block_in_place(|| self.publish.commit(conn, &mut group));
        Here::Done(
            outcome
                .try_recv()
                .unwrap_or_else(|_| Err(StoreError::Closed.into())),
        )
    }
}

fn run_writer(
    conn: &Mutex<Option<Connection>>,
    mut queue: mpsc::Receiver<Append>,
    publish: &Publish,
) {
    let mut group = Vec::with_capacity(GROUP_MAX_APPENDS);
    while let Some(first) = queue.blocking_recv() {
        gather(first, &mut queue, &mut group);
        // Always there: only this thread takes it, once its queue is
        // drained. Were it gone, dropping the group answers each `Closed`.
        match lock(conn).as_mut() {
            Some(conn) => publish.commit(conn, &mut group),
            None => group.clear(),
        }
    }
}

/// What committing a group produced: one outcome per append, the new head
/// when anything was written, and the events written.
type Committed = (Vec<Outcome>, Option<Position>, Vec<RecordedEvent>);

/// Commits the group in one transaction.
fn commit_group(conn: &mut Connection, group: &mut [Append]) -> Committed {
    let fail_all = |e: rusqlite::Error, n: usize| {
        let msg = e.to_string();
        let outcomes = (0..n)
            .map(|_| {
                Err(
                    StoreError::backend(std::io::Error::other(format!("commit failed: {msg}")))
                        .into(),
                )
            })
            .collect();
        (outcomes, None, vec![])
    };
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(e, group.len()),
    };
    // BEGIN IMMEDIATE holds the write lock, so the head read here stays
    // true for the whole group; reading it (not caching it across groups)
    // keeps positions contiguous and the log chain linked whatever happened
    // before, a failed commit included.
    let mut last = match log_head(&tx) {
        Ok(Ok(head)) => head,
        Ok(Err((at, reason))) => {
            let outcomes = group
                .iter()
                .map(|_| {
                    Err(StoreError::Corrupt {
                        at: at.clone(),
                        reason: reason.clone(),
                    }
                    .into())
                })
                .collect();
            return (outcomes, None, vec![]);
        }
        Err(e) => return fail_all(e, group.len()),
    };
    let head_before = last.position;
    let mut committed = vec![];
    let alone = group.len() == 1;
    let mut outcomes = Vec::with_capacity(group.len());
    for append in group.iter_mut() {
        let parts = std::mem::take(&mut append.parts);
        let outcome = if alone {
            // The transaction itself rolls back a refused append, the
            // parts written before the refused one included.
            append_parts(&tx, last, parts)
        } else {
            // Each append gets its own savepoint: a conflict rolls back
            // that append alone, and the rest of the group still commits.
            match tx.savepoint() {
                Ok(sp) => match append_parts(&sp, last, parts) {
                    Ok(done) => sp
                        .commit()
                        .map(|()| done)
                        .map_err(|e| StoreError::backend(e).into()),
                    Err(e) => Err(e), // dropping the savepoint rolls it back
                },
                Err(e) => Err(StoreError::backend(e).into()),
            }
        };
        let outcome = outcome.map(|(done, head, recorded)| {
            last = head;
            committed.extend(recorded);
            done
        });
        outcomes.push(outcome);
    }
    if last.position == head_before {
        drop(tx); // nothing to commit: every append was refused
        return (outcomes, None, vec![]);
    }
    match tx.commit() {
        Ok(()) => (outcomes, Some(last.position), committed),
        Err(e) => fail_all(e, group.len()),
    }
}

/// The last event's position and log hash, [`LogCheckpoint::EMPTY`] for
/// an empty log; where and why when the stored hash is unreadable.
fn log_head(conn: &Connection) -> rusqlite::Result<Result<LogCheckpoint, (String, String)>> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT position, log_hash FROM events ORDER BY position DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match row {
        None => Ok(LogCheckpoint::EMPTY),
        Some((position, log_hash)) => match LogHash::from_slice(&log_hash) {
            Some(log_hash) => Ok(LogCheckpoint {
                position: Position(position as u64),
                log_hash,
            }),
            None => Err((
                format!("position {position}"),
                "log_hash is not 32 bytes".to_owned(),
            )),
        },
    })
}

/// Appends the parts of one append in order after the log's last event
/// `last`; returns what was appended and the log's new last event, or the
/// first part's refusal (the caller rolls back the parts written before).
fn append_parts(
    conn: &Connection,
    mut last: LogCheckpoint,
    parts: Vec<StreamAppend>,
) -> Result<(Vec<Appended>, LogCheckpoint, Vec<RecordedEvent>), AppendError> {
    let mut appended = Vec::with_capacity(parts.len());
    let mut recorded = Vec::new();
    for part in parts {
        let (done, head, events) =
            append_one(conn, last, &part.stream, part.expected, part.events)?;
        appended.push(done);
        recorded.extend(events);
        last = head;
    }
    Ok((appended, last, recorded))
}

/// Appends one batch after the log's last event `last`; returns what was
/// appended and the log's new last event.
fn append_one(
    conn: &Connection,
    last: LogCheckpoint,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<(Appended, LogCheckpoint, Vec<RecordedEvent>), AppendError> {
    let db = StoreError::backend;
    let tail: Option<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT stream_version, hash FROM events WHERE stream_id = ?1 \
             ORDER BY stream_version DESC LIMIT 1",
        )
        .and_then(|mut q| {
            q.query_row([stream.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(db)?;
    let tail = match tail {
        Some((v, h)) => Some((
            StreamVersion(v as u64),
            EventHash::from_slice(&h).ok_or_else(|| StoreError::Corrupt {
                at: format!("stream {stream} version {v}"),
                reason: "stored hash is not 32 bytes".into(),
            })?,
        )),
        None => None,
    };
    check_expected(stream, expected, tail.map(|(v, _)| v))?;
    let recorded = chain::link(stream, tail, last, events);
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (position, stream_id, stream_version, event_type, \
             schema_version, data, metadata, prev_hash, hash, log_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(db)?;
    for e in &recorded {
        insert
            .execute(params![
                e.position.0 as i64,
                e.stream_id.as_str(),
                e.version.0 as i64,
                e.event_type.as_str(),
                e.schema_version,
                e.data.as_str(),
                e.metadata.as_str(),
                &e.prev_hash.0[..],
                &e.hash.0[..],
                &e.log_hash.0[..],
            ])
            .map_err(db)?;
    }
    let (first, last) = match (recorded.first(), recorded.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(AppendError::EmptyBatch),
    };
    let appended = Appended {
        first_position: first.position,
        last_position: last.position,
        version: last.version,
    };
    let head = LogCheckpoint::of(last);
    Ok((appended, head, recorded))
}

/// The stream ids and event types one read has decoded so far. A log
/// repeats both (a stream's events sit close together, and there are a few
/// dozen types), so a row naming one seen before shares it: no allocation,
/// copy or second validation. Bounded: a long read of distinct streams
/// holds at most [`NAMES_HELD`] of each.
#[derive(Default)]
struct Names {
    streams: HashSet<StreamId>,
    types: HashSet<EventType>,
}

const NAMES_HELD: usize = 4096;

impl Names {
    fn stream(&mut self, text: &str) -> Result<StreamId, InvalidInput> {
        Self::shared(&mut self.streams, text, |t| StreamId::parse(t))
    }

    fn event_type(&mut self, text: &str) -> Result<EventType, InvalidInput> {
        Self::shared(&mut self.types, text, |t| EventType::parse(t))
    }

    fn shared<T: Clone + Eq + std::hash::Hash + std::borrow::Borrow<str>>(
        seen: &mut HashSet<T>,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, InvalidInput>,
    ) -> Result<T, InvalidInput> {
        if let Some(name) = seen.get(text) {
            return Ok(name.clone());
        }
        let name = parse(text)?;
        if seen.len() >= NAMES_HELD {
            seen.clear();
        }
        seen.insert(name.clone());
        Ok(name)
    }
}

fn decode(row: &Row<'_>, names: &mut Names) -> rusqlite::Result<Result<RecordedEvent, StoreError>> {
    let position: i64 = row.get(0)?;
    let stream_id = row.get_ref(1)?.as_str()?;
    let version: i64 = row.get(2)?;
    let event_type = row.get_ref(3)?.as_str()?;
    let schema_version: u32 = row.get(4)?;
    let data: String = row.get(5)?;
    let metadata: String = row.get(6)?;
    // The hashes are read in place, not copied into a buffer of their own.
    let prev_hash = row.get_ref(7)?.as_blob()?;
    let hash = row.get_ref(8)?.as_blob()?;
    let log_hash = row.get_ref(9)?.as_blob()?;
    let corrupt = |reason: String| StoreError::Corrupt {
        at: format!("position {position}"),
        reason,
    };
    Ok((|| {
        Ok(RecordedEvent {
            position: Position(position as u64),
            stream_id: names
                .stream(stream_id)
                .map_err(|e| corrupt(e.to_string()))?,
            version: StreamVersion(version as u64),
            event_type: names
                .event_type(event_type)
                .map_err(|e| corrupt(e.to_string()))?,
            schema_version,
            data: JsonObject::from_stored("data", data).map_err(|e| corrupt(e.to_string()))?,
            metadata: JsonObject::from_stored("metadata", metadata)
                .map_err(|e| corrupt(e.to_string()))?,
            prev_hash: EventHash::from_slice(prev_hash)
                .ok_or_else(|| corrupt("prev_hash is not 32 bytes".into()))?,
            hash: EventHash::from_slice(hash)
                .ok_or_else(|| corrupt("hash is not 32 bytes".into()))?,
            log_hash: LogHash::from_slice(log_hash)
                .ok_or_else(|| corrupt("log_hash is not 32 bytes".into()))?,
        })
    })())
}

/// Gives `visit` each event from `from` on, decoded from its row and
/// dropped before the next row is read, in one statement over the log as
/// it was when the statement began.
fn visit_rows(
    conn: &Connection,
    from: Position,
    visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> ControlFlow<()> + Send),
) -> Result<u64, StoreError> {
    let mut q = conn
        .prepare_cached(&format!(
            "{SELECT_EVENT} WHERE position >= ?1 ORDER BY position"
        ))
        .map_err(StoreError::backend)?;
    let mut rows = q
        .query(params![clamp(from.0)])
        .map_err(StoreError::backend)?;
    let mut names = Names::default();
    let mut seen = 0;
    while let Some(row) = rows.next().map_err(StoreError::backend)? {
        let event = decode(row, &mut names).map_err(StoreError::backend)??;
        seen += 1;
        if visit(&event).is_break() {
            break;
        }
    }
    Ok(seen)
}

/// Reads the events `sql` selects into a page made with room for
/// `expected` of them, so that a full page is not grown (and copied) by
/// doubling as it fills.
fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    expected: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut q = conn.prepare_cached(sql).map_err(StoreError::backend)?;
    let mut names = Names::default();
    let rows = q
        .query_map(params, |row| decode(row, &mut names))
        .map_err(StoreError::backend)?;
    let mut events = Vec::with_capacity(expected);
    for row in rows {
        events.push(row.map_err(StoreError::backend)??);
    }
    Ok(events)
}

/// The most events a page is made with room for before it is read: a
/// page of the size the feeds and the folds read. A larger one grows.
const ROOM_MADE: u64 = 4096;

#[async_trait::async_trait]
impl EventStore for EmbeddedStore {
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        use std::sync::atomic::Ordering;
        struct Appending<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Appending<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let others = self.inner.appending.fetch_add(1, Ordering::SeqCst);
        let _appending = Appending(&self.inner.appending);
        let parts = match others {
            // Alone: the writer would commit it alone too.
            0 => match self.inner.commit_here(parts) {
                Here::Done(outcome) => return outcome,
                Here::Busy(parts) => parts,
            },
            // Others are under way: the writer groups them.
            _ => parts,
        };
        submit(&self.inner.writer, parts).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.clone();
        self.read(move |conn| {
            query_events(
                conn,
                // The limit is part of the text, not a parameter: a bound
                // LIMIT makes SQLite re-prepare the cached statement on
                // every step. Callers use a few fixed page sizes.
                &format!(
                    "{SELECT_EVENT} WHERE stream_id = ?1 AND stream_version >= ?2 \
                     ORDER BY stream_version LIMIT {}",
                    clamp(limit as u64)
                ),
                params![stream.as_str(), clamp(from.0)],
                // A stream's length is not known here; most are short.
                0,
            )
        })
        .await
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // No more than the log holds from `from` on: a read at the head
        // (a live feed's) makes a small page.
        let head = self.inner.publish.head.borrow().position.0;
        let expected = (limit as u64)
            .min(head.saturating_sub(from.0).saturating_add(1))
            .min(ROOM_MADE) as usize;
        self.read(move |conn| {
            query_events(
                conn,
                &format!(
                    "{SELECT_EVENT} WHERE position >= ?1 ORDER BY position LIMIT {}",
                    clamp(limit as u64)
                ),
                params![clamp(from.0)],
                expected,
            )
        })
        .await
    }

    /// Reads on the calling thread (inside `block_in_place` on a
    /// multi-threaded runtime), so `visit` can be borrowed and each event
    /// is lent, never held in a page.
    async fn visit_all(
        &self,
        from: Position,
        visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> ControlFlow<()> + Send),
    ) -> Result<u64, StoreError> {
        if self.inner.publish.head.borrow().closed {
            return Err(StoreError::Closed);
        }
        let mut read = || self.inner.with_reader(|conn| visit_rows(conn, from, visit));
        if may_block_in_place() {
            tokio::task::block_in_place(read)
        } else {
            read()
        }
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let head = *self.inner.publish.head.borrow();
        if head.closed {
            return Err(StoreError::Closed);
        }
        Ok(head.position)
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn last_version_written(&self, stream: &StreamId) -> Option<StreamVersion> {
        self.inner.publish.tails.get(stream)
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
            self.inner.publish.head.subscribe(),
            self.inner.publish.recent.clone(),
            from,
        )
    }

    async fn close(&self) {
        drop(lock(&self.inner.writer).take());
        let thread = lock(&self.inner.writer_thread).take();
        if let Some(thread) = thread {
            // The writer drains every queued append before it exits.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        lock(&self.inner.readers).clear();
        self.inner.publish.head.send_modify(|h| h.closed = true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_shares_the_names_it_has_seen_and_holds_a_bounded_number() {
        // Given a read that has decoded NAMES_HELD distinct streams
        let mut names = Names::default();
        for i in 0..NAMES_HELD {
            names.stream(&format!("s{i}")).unwrap();
        }
        assert_eq!(names.streams.len(), NAMES_HELD);

        // When a stream seen before comes again, then it is the one held
        let again = names.stream("s7").unwrap();
        assert_eq!(again.as_str(), "s7");
        assert_eq!(names.streams.len(), NAMES_HELD);

        // When a new one comes, then the held names start over with it
        let new = names.stream("fresh").unwrap();
        assert_eq!(new.as_str(), "fresh");
        assert_eq!(names.streams.len(), 1);

        // And a name that does not parse is refused, seen or not
        assert!(names.stream("s 7").is_err());
        assert!(names.event_type("T y").is_err());
        assert_eq!(names.event_type("Ty").unwrap().as_str(), "Ty");
        assert!(names.streams.len() == 1 && names.types.len() == 1);
    }
}
