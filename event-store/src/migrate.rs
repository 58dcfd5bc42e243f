//! Copying a whole log between backends as it was recorded (`sealplane
//! migrate-store`, ADR 0022).
//!
//! An ordinary append assigns positions and computes both hash chains; a
//! migration must instead keep every recorded field — positions, stream
//! versions, data and metadata bytes (timestamps and ids live in the
//! metadata), `prev_hash`, `hash`, `log_hash` — so that checkpoints held
//! by auditors, signed checkpoints in the log and reactors' positions stay
//! valid on the copy. That is what a [`LogImport`] does, and nothing else:
//! it is opened only on an **empty** target, checks that every incoming
//! event links to the one before it (both hash chains, positions and
//! versions, through one [`ChainVerifier`](crate::ChainVerifier) walk from the empty log), so a
//! corrupted or tampered source is refused rather than copied, and makes
//! nothing visible until [`LogImport::commit`] has read the written log
//! back, verified it and found its head to be the source's. Any failure
//! before that leaves the target as it was.
//!
//! The backends' imports: `EmbeddedImport` (a new SQLite file, written
//! under a temporary name and linked into place) and `PostgresImport` (one
//! transaction holding the append lock).

use std::time::{Duration, Instant};

use crate::chain::LogCheckpoint;
use crate::event::{Position, RecordedEvent};
use crate::store::{EventStore, StoreError};
use crate::verify::{ChainBreak, VerifiedLog};

/// Events read from the source, and written to the target, at a time.
pub const IMPORT_BATCH: usize = 5_000;

/// Why a migration copied nothing (the target is as it was).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The target already holds events.
    #[error(
        "refusing to migrate onto {0}: it already holds an event log; migrate into an empty database or a new file (nothing was changed)"
    )]
    TargetNotEmpty(String),
    /// The source has no events.
    #[error("the source {0} holds no events: there is nothing to migrate")]
    SourceEmpty(String),
    /// An event of the source does not link to the one before it.
    #[error("the source log failed verification, so nothing was copied: {0}")]
    SourceBroken(#[source] ChainBreak),
    /// The source was appended to while it was copied.
    #[error(
        "the source changed during the copy (its head moved from position {from} to {to}); stop every control plane using it and run again (nothing was copied)"
    )]
    SourceChanged { from: Position, to: Position },
    /// What the target holds after writing is not the source's log.
    #[error("the copy in {target} does not match the source, so it was discarded: {reason}")]
    CopyMismatch { target: String, reason: String },
    /// A store failed (read, write, connect).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("cannot {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// An empty store taking a copied log, event for event as recorded.
///
/// Dropped without [`LogImport::commit`], it discards what was written.
#[async_trait::async_trait]
pub trait LogImport: Send {
    /// The target as operators know it (a path, a url without password).
    fn target(&self) -> String;

    /// Writes the next events of the log, in position order, after checking
    /// that each links to the one before it.
    async fn write(&mut self, events: &[RecordedEvent]) -> Result<(), MigrateError>;

    /// Reads everything written back from the target's storage, verifies
    /// both chains and that the log ends exactly at `source_head`, and only
    /// then makes the copy visible. On any error nothing is.
    async fn commit(
        self: Box<Self>,
        source_head: LogCheckpoint,
    ) -> Result<VerifiedLog, MigrateError>;
}

/// The link check every import runs on incoming events: one walk from the
/// empty log, so each event must be the next position, the next version of
/// its stream, hash to its recorded hash, and extend both chains.
#[cfg(any(feature = "embedded", feature = "postgres"))]
#[derive(Debug, Default)]
pub(crate) struct ImportCheck {
    verifier: crate::verify::ChainVerifier,
}

#[cfg(any(feature = "embedded", feature = "postgres"))]
impl ImportCheck {
    pub(crate) fn check(&mut self, events: &[RecordedEvent]) -> Result<(), MigrateError> {
        for e in events {
            self.verifier.check(e).map_err(MigrateError::SourceBroken)?;
        }
        Ok(())
    }
}

/// Checks a log read back from a target: both chains from the empty log,
/// ending exactly at `source_head`.
#[cfg(any(feature = "embedded", feature = "postgres"))]
pub(crate) struct ReadBack {
    verifier: crate::verify::ChainVerifier,
    source_head: LogCheckpoint,
    target: String,
}

#[cfg(any(feature = "embedded", feature = "postgres"))]
impl ReadBack {
    pub(crate) fn new(source_head: LogCheckpoint, target: String) -> ReadBack {
        ReadBack {
            verifier: crate::verify::ChainVerifier::with_checkpoints([source_head]),
            source_head,
            target,
        }
    }

    pub(crate) fn check(&mut self, events: &[RecordedEvent]) -> Result<(), MigrateError> {
        for e in events {
            self.verifier
                .check(e)
                .map_err(|b| self.mismatch(b.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<VerifiedLog, MigrateError> {
        let head = self.verifier.head();
        let verified = match self.verifier.finish() {
            Ok(v) => v,
            Err(b) => {
                return Err(MigrateError::CopyMismatch {
                    target: self.target,
                    reason: b.to_string(),
                });
            }
        };
        if head != self.source_head {
            return Err(MigrateError::CopyMismatch {
                target: self.target,
                reason: format!(
                    "it ends at position {} (log hash {}), the source at position {} (log hash {})",
                    head.position,
                    head.log_hash,
                    self.source_head.position,
                    self.source_head.log_hash
                ),
            });
        }
        Ok(verified)
    }

    fn mismatch(&self, reason: String) -> MigrateError {
        MigrateError::CopyMismatch {
            target: self.target.clone(),
            reason,
        }
    }
}

/// What a migration copied and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// What the read-back of the target verified; its `head` is the
    /// source's last position and log hash.
    pub verified: VerifiedLog,
    /// How long reading, writing and verifying took.
    pub elapsed: Duration,
}

/// Copies every event of `source` (up to its head when the copy starts)
/// into `target`, verifying as it goes, then commits the verified copy.
///
/// The source must not be appended to meanwhile: if its head moved by the
/// end, nothing is committed. Reading the next page overlaps writing the
/// last one. `progress` is called with the last position written.
pub async fn copy_log(
    source: &dyn EventStore,
    source_name: &str,
    mut target: Box<dyn LogImport>,
    mut progress: impl FnMut(Position, Position) + Send,
) -> Result<Migrated, MigrateError> {
    let started = Instant::now();
    let head = source.head().await?;
    if head == Position(0) {
        return Err(MigrateError::SourceEmpty(source_name.to_owned()));
    }
    let page = |from: Position| {
        let limit = (head.0 - from.0 + 1).min(IMPORT_BATCH as u64) as usize;
        source.read_all(from, limit)
    };
    let mut events = page(Position::START).await?;
    let mut last: Option<LogCheckpoint> = None;
    loop {
        events.retain(|e| e.position <= head);
        let Some(end) = events.last().map(LogCheckpoint::of) else {
            let at = last.map_or(Position::START, |l| l.position.next());
            return Err(StoreError::Corrupt {
                at: format!("{source_name}, position {at}"),
                reason: format!("the log ends before its head, position {head}"),
            }
            .into());
        };
        if end.position == head {
            target.write(&events).await?;
            last = Some(end);
            progress(end.position, head);
            break;
        }
        // Write this page while the next one is read.
        let (written, next) = tokio::join!(target.write(&events), page(end.position.next()));
        written?;
        last = Some(end);
        progress(end.position, head);
        events = next?;
    }
    let now = source.head().await?;
    if now != head {
        return Err(MigrateError::SourceChanged {
            from: head,
            to: now,
        });
    }
    let source_head = last.unwrap_or(LogCheckpoint::EMPTY);
    let verified = target.commit(source_head).await?;
    Ok(Migrated {
        verified,
        elapsed: started.elapsed(),
    })
}

#[cfg(feature = "embedded")]
pub use embedded_import::EmbeddedImport;

#[cfg(feature = "embedded")]
mod embedded_import {
    use std::fs;
    use std::path::{Path, PathBuf};

    use rusqlite::{Connection, params};

    use super::{ImportCheck, LogImport, MigrateError, ReadBack};
    use crate::backup::Temp;
    use crate::chain::LogCheckpoint;
    use crate::embedded::{self, EmbeddedStore};
    use crate::event::{Position, RecordedEvent};
    use crate::store::{EventStore, StoreError};
    use crate::verify::VerifiedLog;

    /// A new embedded log file taking a copied log: written under a
    /// temporary name beside `db` in one transaction, verified, and linked
    /// into place only by [`LogImport::commit`].
    pub struct EmbeddedImport {
        db: PathBuf,
        temp: Temp,
        conn: Option<Connection>,
        check: ImportCheck,
    }

    fn io(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError {
        let path = path.display().to_string();
        move |source| MigrateError::Io { step, path, source }
    }

    fn db_error(e: rusqlite::Error) -> MigrateError {
        MigrateError::Store(StoreError::backend(e))
    }

    fn not_empty(db: &Path) -> bool {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        [db.to_owned(), PathBuf::from(wal)]
            .iter()
            .any(|p| fs::metadata(p).is_ok_and(|m| m.len() > 0))
    }

    impl EmbeddedImport {
        /// Starts a copy into the database file `db`, which must not hold a
        /// log yet (an empty file is taken as none).
        pub fn create(db: &Path) -> Result<EmbeddedImport, MigrateError> {
            if not_empty(db) {
                return Err(MigrateError::TargetNotEmpty(db.display().to_string()));
            }
            if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(io("create directory", dir))?;
            }
            let temp = Temp::beside(db).map_err(|e| MigrateError::Io {
                step: "create a temporary file beside",
                path: db.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let mut conn = Connection::open(&temp.path).map_err(db_error)?;
            embedded::migrate(&mut conn, &temp.path)?;
            // The file is private until linked and synced before that, so
            // SQLite need not sync on its own; one transaction holds it all.
            conn.pragma_update(None, "synchronous", "OFF")
                .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"))
                .map_err(db_error)?;
            Ok(EmbeddedImport {
                db: db.to_owned(),
                temp,
                conn: Some(conn),
                check: ImportCheck::default(),
            })
        }
    }

    fn insert(conn: &Connection, events: &[RecordedEvent]) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (position, stream_id, stream_version, event_type, \
             schema_version, data, metadata, prev_hash, hash, log_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for e in events {
            insert.execute(params![
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
            ])?;
        }
        Ok(())
    }

    #[async_trait::async_trait]
    impl LogImport for EmbeddedImport {
        fn target(&self) -> String {
            self.db.display().to_string()
        }

        async fn write(&mut self, events: &[RecordedEvent]) -> Result<(), MigrateError> {
            self.check.check(events)?;
            let conn = self.conn.take().ok_or(StoreError::Closed)?;
            let events = events.to_vec();
            let (conn, done) = tokio::task::spawn_blocking(move || {
                let done = insert(&conn, &events);
                (conn, done)
            })
            .await
            .map_err(StoreError::backend)?;
            self.conn = Some(conn);
            done.map_err(db_error)
        }

        async fn commit(
            mut self: Box<Self>,
            source_head: LogCheckpoint,
        ) -> Result<VerifiedLog, MigrateError> {
            let conn = self.conn.take().ok_or(StoreError::Closed)?;
            conn.execute_batch("COMMIT").map_err(db_error)?;
            drop(conn);
            // Read back through the store itself, as `serve` will.
            let store = EmbeddedStore::open(&self.temp.path)?;
            let mut read_back = ReadBack::new(source_head, self.target());
            let mut next = Position::START;
            let verified = loop {
                let page = match store.read_all(next, super::IMPORT_BATCH).await {
                    Ok(page) => page,
                    Err(e) => {
                        store.close().await;
                        return Err(e.into());
                    }
                };
                let Some(last) = page.last() else {
                    break read_back.finish();
                };
                next = last.position.next();
                if let Err(e) = read_back.check(&page) {
                    store.close().await;
                    return Err(e);
                }
            };
            store.close().await;
            let verified = verified?;
            // Back to one self-contained file, synced, then into place.
            Connection::open(&self.temp.path)
                .and_then(|c| c.pragma_update(None, "journal_mode", "DELETE"))
                .map_err(db_error)?;
            fs::File::open(&self.temp.path)
                .and_then(|f| f.sync_all())
                .map_err(io("sync", &self.temp.path))?;
            if not_empty(&self.db) {
                return Err(MigrateError::TargetNotEmpty(self.target()));
            }
            if fs::metadata(&self.db).is_ok_and(|m| m.len() == 0) {
                fs::remove_file(&self.db).map_err(io("remove the empty", &self.db))?;
            }
            let EmbeddedImport { db, temp, .. } = *self;
            temp.link_to(&db).map_err(|e| MigrateError::Io {
                step: "move the copy to",
                path: db.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
            Ok(verified)
        }
    }
}
