//! Online backup and verified restore of the embedded log (issue 16).
//!
//! [`backup`] copies a store's file while another process (the server) keeps
//! appending: `VACUUM INTO` runs inside one read transaction, so the copy
//! is the log exactly as it was at one commit, compacted, with none of
//! the WAL or lock files. It never takes the store's lock (readers do not
//! need it) and never overwrites a file. The copy is written under a
//! temporary name (mode 0600), synced, then linked into place.
//!
//! [`restore`] refuses a target that already holds a log, copies the backup
//! under a temporary name beside the target, opens it as a store (which
//! migrates an older schema), verifies the whole hash chain and any held
//! checkpoints, and only then links it into place. A backup that fails any
//! step leaves nothing behind.
//!
//! A backup holds what the log holds: ciphertext sealed to one-time keys,
//! hashes and metadata; never a value.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::chain::{LogCheckpoint, LogHash};
use crate::embedded::EmbeddedStore;
use crate::event::Position;
use crate::store::EventStore;
use crate::verify::{VerifiedLog, VerifyError, verify_log_against};

/// What a backup holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// Events copied.
    pub events: u64,
    /// The last position and its log hash: the log the copy ends with.
    pub head: LogCheckpoint,
    /// Size of the backup file in bytes.
    pub bytes: u64,
}

/// Why a backup or a restore did not happen (nothing was left behind).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup's destination exists.
    #[error("{0} already exists; a backup never overwrites a file: name a new one")]
    DestinationExists(String),
    /// The restore target already holds a log.
    #[error(
        "refusing to restore onto {0}: it already holds an event log; restore into an empty directory or a new file name"
    )]
    TargetNotEmpty(String),
    /// The source could not be read as a Sealplane log.
    #[error("{path} is not a readable Sealplane event log: {reason}")]
    Unreadable { path: String, reason: String },
    /// The backup's hash chain (or a held checkpoint) does not verify.
    #[error("the backup {path} failed verification, so nothing was restored: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: Box<VerifyError>,
    },
    /// A file operation failed.
    #[error("cannot {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.display().to_string();
    move |source| BackupError::Io { step, path, source }
}

fn unreadable(path: &Path) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let path = path.display().to_string();
    move |e| BackupError::Unreadable {
        path,
        reason: e.to_string(),
    }
}

/// Copies the embedded log at `db` to the new file `to` (mode 0600): a
/// consistent snapshot even while the store's own process appends. Blocks;
/// run it off the async runtime.
pub fn backup(db: &Path, to: &Path) -> Result<BackupSummary, BackupError> {
    if fs::symlink_metadata(to).is_ok() {
        return Err(BackupError::DestinationExists(to.display().to_string()));
    }
    if !db.is_file() {
        return Err(BackupError::Unreadable {
            path: db.display().to_string(),
            reason: "no such file".into(),
        });
    }
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unreadable(db))?;
    source
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(unreadable(db))?;
    let temp = Temp::beside(to)?;
    // An empty file is a valid VACUUM INTO target, so it can be created
    // 0600 first and never exist with a wider mode.
    source
        .execute("VACUUM INTO ?1", [temp.path.to_string_lossy().as_ref()])
        .map_err(unreadable(db))?;
    drop(source);
    let summary = summarise(&temp.path)?;
    sync(&temp.path)?;
    temp.link_to(to)?;
    Ok(summary)
}

/// What a restore put in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// What verification checked (events, streams, checkpoints, head).
    pub verified: VerifiedLog,
}

/// The database file a restore target names: `DIR/events.db` for an
/// existing directory or a new path without a `.db` extension (a data
/// directory, the layout of `sealplane dev`), else the path itself.
pub fn restore_target(to: &Path) -> PathBuf {
    let is_file = to.is_file() || (!to.exists() && to.extension().is_some_and(|e| e == "db"));
    if is_file {
        to.to_owned()
    } else {
        to.join("events.db")
    }
}

/// Restores the backup `from` to the database file `db` after verifying
/// its whole hash chain and each `held` checkpoint; refuses a `db` that
/// already holds a log. On any failure nothing is left at `db`.
pub async fn restore(
    from: &Path,
    db: &Path,
    held: Vec<LogCheckpoint>,
) -> Result<RestoreSummary, BackupError> {
    for existing in [db.to_owned(), with_suffix(db, "-wal")] {
        if fs::metadata(&existing).is_ok_and(|m| m.len() > 0) {
            return Err(BackupError::TargetNotEmpty(db.display().to_string()));
        }
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
    }
    let temp = Temp::beside(db)?;
    {
        let mut input = File::open(from).map_err(io_error("open", from))?;
        let mut output = OpenOptions::new()
            .write(true)
            .open(&temp.path)
            .map_err(io_error("open", &temp.path))?;
        io::copy(&mut input, &mut output).map_err(io_error("copy the backup to", &temp.path))?;
    }
    let verified = verify_file(&temp.path, from, held).await?;
    // Back to one self-contained file: no WAL left beside the temporary name.
    Connection::open(&temp.path)
        .and_then(|c| c.pragma_update(None, "journal_mode", "DELETE"))
        .map_err(unreadable(from))?;
    sync(&temp.path)?;
    // Re-checked here, as late as possible: a log created meanwhile wins.
    if fs::metadata(db).is_ok_and(|m| m.len() > 0) {
        return Err(BackupError::TargetNotEmpty(db.display().to_string()));
    }
    // An empty file left at the target (a store opened and never written)
    // is replaced; the link below refuses anything else.
    if fs::metadata(db).is_ok_and(|m| m.len() == 0) {
        fs::remove_file(db).map_err(io_error("remove the empty", db))?;
    }
    temp.link_to(db)?;
    Ok(RestoreSummary { verified })
}

/// Verifies the log in the backup file `file` (a copy: opening it may
/// migrate its schema) against `held` checkpoints; `origin` names it in
/// errors.
pub async fn verify_file(
    file: &Path,
    origin: &Path,
    held: Vec<LogCheckpoint>,
) -> Result<VerifiedLog, BackupError> {
    let store = EmbeddedStore::open(file).map_err(|e| BackupError::Unreadable {
        path: origin.display().to_string(),
        reason: e.to_string(),
    })?;
    let verified = verify_log_against(&store, held).await;
    store.close().await;
    let _ = fs::remove_file(with_suffix(file, ".lock"));
    verified.map_err(|source| BackupError::Corrupt {
        path: origin.display().to_string(),
        source: Box::new(source),
    })
}

/// Counts the events of a copied log and reads its head.
fn summarise(file: &Path) -> Result<BackupSummary, BackupError> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(unreadable(file))?;
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .map_err(unreadable(file))?;
    let head: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT position, log_hash FROM events ORDER BY position DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unreadable(file))?;
    let head = match head {
        None => LogCheckpoint::EMPTY,
        Some((position, hash)) => LogCheckpoint {
            position: Position(position as u64),
            log_hash: LogHash::from_slice(&hash).ok_or_else(|| BackupError::Unreadable {
                path: file.display().to_string(),
                reason: format!("the log hash at position {position} is not 32 bytes"),
            })?,
        },
    };
    let bytes = fs::metadata(file)
        .map_err(io_error("read the size of", file))?
        .len();
    Ok(BackupSummary {
        events: events as u64,
        head,
        bytes,
    })
}

fn sync(file: &Path) -> Result<(), BackupError> {
    File::open(file)
        .and_then(|f| f.sync_all())
        .map_err(io_error("sync", file))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A new empty 0600 file beside a destination, removed (with any SQLite
/// files beside it) unless linked into place.
pub(crate) struct Temp {
    pub(crate) path: PathBuf,
    linked: bool,
}

impl Temp {
    pub(crate) fn beside(destination: &Path) -> Result<Temp, BackupError> {
        let dir = match destination.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "events.db".into());
        for attempt in 0..100u32 {
            let path = dir.join(format!(
                ".sealplane-tmp-{name}.{}.{attempt}",
                std::process::id()
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => {
                    return Ok(Temp {
                        path,
                        linked: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error("create a temporary file in", &dir)(e)),
            }
        }
        Err(io_error("create a temporary file in", &dir)(
            io::Error::other("too many leftover temporary files"),
        ))
    }

    /// Links the file to `destination` (never replacing one) and syncs the
    /// directory.
    pub(crate) fn link_to(mut self, destination: &Path) -> Result<(), BackupError> {
        fs::hard_link(&self.path, destination).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                BackupError::DestinationExists(destination.display().to_string())
            } else {
                io_error("move the copy to", destination)(e)
            }
        })?;
        self.linked = true;
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = destination.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_error("sync directory", dir))?;
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        for suffix in ["-wal", "-shm", "-journal", ".lock"] {
            let _ = fs::remove_file(with_suffix(&self.path, suffix));
        }
        if !self.linked {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventMetadata, EventType, ExpectedVersion, NewEvent, StreamId};

    async fn store_with(path: &Path, n: usize) -> EmbeddedStore {
        let store = EmbeddedStore::open(path).unwrap();
        for i in 0..n {
            let event = NewEvent::from_json_text(
                EventType::parse("Happened").unwrap(),
                1,
                &format!(r#"{{"i":{i}}}"#),
                &EventMetadata::new("t"),
            )
            .unwrap();
            store
                .append(
                    &StreamId::parse(format!("s-{}", i % 3)).unwrap(),
                    ExpectedVersion::Any,
                    vec![event],
                )
                .await
                .unwrap();
        }
        store
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn a_backup_of_an_open_store_restores_to_the_same_verified_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        let store = store_with(&db, 10).await;
        let copy = dir.path().join("backup.db");
        let taken = backup(&db, &copy).unwrap();
        assert_eq!(taken.events, 10);
        assert_eq!(taken.head.position, Position(10));
        assert_eq!(mode(&copy), 0o600);
        store.close().await;

        let target = dir.path().join("restored");
        fs::create_dir(&target).unwrap();
        let db2 = restore_target(&target);
        let restored = restore(&copy, &db2, vec![taken.head]).await.unwrap();
        assert_eq!(restored.verified.events, 10);
        assert_eq!(restored.verified.head, taken.head);
        assert_eq!(restored.verified.checkpoints, 1);
        let left: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("events.db")],
            "nothing else left"
        );
    }

    #[test]
    fn a_restore_target_is_a_data_directory_unless_it_names_a_db_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            restore_target(d),
            d.join("events.db"),
            "an existing directory"
        );
        assert_eq!(
            restore_target(&d.join("new")),
            d.join("new/events.db"),
            "a new data directory"
        );
        assert_eq!(
            restore_target(&d.join("e.db")),
            d.join("e.db"),
            "a new file"
        );
        fs::write(d.join("old"), b"").unwrap();
        assert_eq!(
            restore_target(&d.join("old")),
            d.join("old"),
            "an existing file"
        );
    }

    #[tokio::test]
    async fn a_backup_never_overwrites_and_a_restore_never_lands_on_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        store_with(&db, 2).await.close().await;
        let copy = dir.path().join("backup.db");
        fs::write(&copy, b"keep me").unwrap();
        assert!(matches!(
            backup(&db, &copy),
            Err(BackupError::DestinationExists(_))
        ));
        assert_eq!(fs::read(&copy).unwrap(), b"keep me");
        fs::remove_file(&copy).unwrap();
        backup(&db, &copy).unwrap();
        let err = restore(&copy, &db, vec![]).await.unwrap_err();
        assert!(matches!(err, BackupError::TargetNotEmpty(_)), "{err}");
    }

    #[tokio::test]
    async fn a_tampered_or_truncated_backup_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        store_with(&db, 5).await.close().await;
        let copy = dir.path().join("backup.db");
        backup(&db, &copy).unwrap();

        // Edited: one event's data changed in place.
        let edited = dir.path().join("edited.db");
        fs::copy(&copy, &edited).unwrap();
        Connection::open(&edited)
            .unwrap()
            .execute(
                "UPDATE events SET data = '{\"i\":99}' WHERE position = 3",
                [],
            )
            .unwrap();
        let target = dir.path().join("t1").join("events.db");
        let err = restore(&edited, &target, vec![]).await.unwrap_err();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("failed verification"), "{err}");
        assert_eq!(fs::read_dir(target.parent().unwrap()).unwrap().count(), 0);

        // Truncated to half.
        let bytes = fs::read(&copy).unwrap();
        let cut = dir.path().join("cut.db");
        fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let target = dir.path().join("t2").join("events.db");
        let err = restore(&cut, &target, vec![]).await.unwrap_err();
        assert!(
            matches!(
                err,
                BackupError::Unreadable { .. } | BackupError::Corrupt { .. }
            ),
            "{err}"
        );
        assert_eq!(fs::read_dir(target.parent().unwrap()).unwrap().count(), 0);
    }
}
