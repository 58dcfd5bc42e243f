//! What a control plane checks and restores when it starts (ADR 0026), so
//! that starting costs what the live state costs, not the history:
//!
//! - the read model comes from its snapshot when one is usable (its MAC,
//!   format and build check, and the log still has the snapshot's log hash
//!   at its position); otherwise it is rebuilt from position 1;
//! - start-up verifies every event it folds into the model before serving:
//!   after a restored snapshot, the events after its position (the event
//!   at it must still carry the snapshot's log hash, which commits to
//!   everything before); without one, the whole log against every recorded
//!   checkpoint, as before ([`VerifyOnStart::Incremental`]). With
//!   [`VerifyOnStart::Full`] it always walks the whole log;
//! - after a start that verified only the tail, the whole log is walked
//!   once in the background ([`verify_in_background`]); a break found there
//!   turns the server fail-closed (every call `UNAVAILABLE`), as the
//!   checkpointer's re-verification does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_event_store::{EventStore, LogCheckpoint, Position, VerifiedLog, verify_log_after};

use crate::application::checkpoint::{CheckpointFailure, LogIntegrity, verify_with_recorded};
use crate::config::VerifyOnStart;
use crate::read_model::ReadModel;
use crate::snapshot::{Snapshot, SnapshotFile};

/// After a store failure, how long the background verifier waits before
/// walking the log again.
const BACKGROUND_RETRY: Duration = Duration::from_secs(30);

/// What start-up established: the model to serve from and what was verified.
#[derive(Debug)]
pub struct Start {
    /// The read model: restored from the snapshot, or empty.
    pub model: ReadModel,
    /// What `model` has applied (the snapshot's point, or nothing).
    pub applied: LogCheckpoint,
    /// Whether `model` came from the snapshot.
    pub restored: bool,
    /// The chain verification that passed.
    pub verified: VerifiedLog,
    /// Where that verification began: `Position(0)` for the whole log,
    /// else the trusted point it resumed after.
    pub verified_after: Position,
}

/// Restores the read model from `snapshot` if it is usable, and verifies
/// the log as `verify` says. Fails only when the log fails verification
/// (or cannot be read); an unusable snapshot is logged and ignored.
pub async fn prepare(
    store: &dyn EventStore,
    log_key: &[u8; 32],
    snapshot: Option<Arc<SnapshotFile>>,
    verify: VerifyOnStart,
) -> Result<Start, CheckpointFailure> {
    let restored = match snapshot {
        Some(file) => restore(store, file).await?,
        None => None,
    };
    let applied = restored.as_ref().map_or(LogCheckpoint::EMPTY, |s| s.at);
    let started = Instant::now();
    // What is folded is verified first: only the tail after a snapshot
    // (its events before were folded, and verified, by an earlier run).
    let (verified, verified_after) = match (verify, &restored) {
        (VerifyOnStart::Incremental, Some(snapshot)) if snapshot.at.position != Position(0) => (
            verify_log_after(store, snapshot.at).await?,
            snapshot.at.position,
        ),
        _ => (verify_with_recorded(store, log_key).await?, Position(0)),
    };
    tracing::info!(
        events = verified.events,
        after = verified_after.0,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "hash chains verified from position {} to the head",
        verified_after.next().0
    );
    let restored_any = restored.is_some();
    Ok(Start {
        model: restored.map(|s| s.model).unwrap_or_default(),
        applied,
        restored: restored_any,
        verified,
        verified_after,
    })
}

/// The snapshot, if there is one the log still agrees with.
async fn restore(
    store: &dyn EventStore,
    file: Arc<SnapshotFile>,
) -> Result<Option<Snapshot>, CheckpointFailure> {
    let started = Instant::now();
    let path = file.path().to_owned();
    let loaded = tokio::task::spawn_blocking(move || file.load())
        .await
        .map_err(|e| CheckpointFailure::Store(sealplane_event_store::StoreError::backend(e)))?;
    let snapshot = match loaded {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            tracing::info!(path = %path.display(), "no read-model snapshot; rebuilding the read model from the whole log");
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(error = %e, "discarding the read-model snapshot; rebuilding the read model from the whole log");
            return Ok(None);
        }
    };
    let at = snapshot.at;
    if at.position != Position(0) {
        let found = store.read_all(at.position, 1).await?;
        let agrees = found
            .first()
            .is_some_and(|e| e.position == at.position && e.log_hash == at.log_hash);
        if !agrees {
            tracing::warn!(
                path = %path.display(),
                position = at.position.0,
                "discarding the read-model snapshot: the event log does not have its log hash at its position (another log, a restored backup or a changed log); rebuilding the read model from the whole log"
            );
            return Ok(None);
        }
    }
    tracing::info!(
        path = %path.display(),
        position = at.position.0,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read model restored from its snapshot at position {}; folding the events after it",
        at.position.0
    );
    Ok(Some(snapshot))
}

/// Walks the whole log once against every recorded checkpoint (what a full
/// start-up verification does) while the server serves; a break marks
/// `integrity` broken, and the server then refuses every call. A store
/// failure is retried; `shutdown` ends it.
pub async fn verify_in_background(
    store: Arc<dyn EventStore>,
    log_key: [u8; 32],
    integrity: Arc<LogIntegrity>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = verify_with_recorded(&*store, &log_key) => outcome,
            () = &mut shutdown => return,
        };
        match outcome {
            Ok(verified) => {
                tracing::info!(
                    events = verified.events,
                    checkpoints = verified.checkpoints,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "background verification of the whole event log passed"
                );
                crate::server::release_freed("the background verification of the event log").await;
                return;
            }
            Err(CheckpointFailure::Broken(at)) => {
                integrity.fail(&at);
                return;
            }
            Err(e @ CheckpointFailure::Store(_)) => {
                tracing::warn!(error = %e, "the background verification of the event log could not finish; trying again in 30 s");
            }
            Err(e) => {
                integrity.fail_record(&e);
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(BACKGROUND_RETRY) => {}
            () = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
mod tests;
