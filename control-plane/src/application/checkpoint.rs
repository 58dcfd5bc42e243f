//! Signed checkpoints of the log (SPEC §7, ADR 0016): the control plane's
//! log key signs `(position, log hash, time, previous checkpoint, key id)`
//! at most every N events or T seconds, and records it as a
//! `LogCheckpointed` event on its own stream, with an expected version so
//! two writers cannot both append the next one.
//!
//! Before signing, the checkpointer re-verifies what was appended since its
//! last checkpoint ([`verify_log_after`]: the stored log must still carry
//! that checkpoint's log hash at its position, and every later event must
//! extend it). If the stored log changed under it, the control plane fails
//! closed: [`LogIntegrity`] is marked broken, the error is logged with the
//! place, and every call is answered `UNAVAILABLE` from then on.
//!
//! At start-up, [`verify_with_recorded`] walks the whole log once and
//! checks it against every recorded checkpoint (signed by this log key,
//! chained by `previous`, and matching the log at its position).

pub mod schedule;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use sealplane_event_store::{
    AppendError, ChainBreak, EventMetadata, EventStore, EventType, ExpectedVersion, LogCheckpoint,
    LogHash, NewEvent, Position, RecordedEvent, StoreError, StreamVersion, VerifiedLog,
    VerifyError, verify_log_after, verify_log_against,
};
use sealplane_proto::log_checkpoint::{
    CheckpointError, CheckpointRecord, LOG_CHECKPOINTED, LogPoint, LogSigningKey, SignedCheckpoint,
};
use tokio::sync::Mutex;

use crate::streams;
pub use schedule::Schedule;

/// The actor recorded on checkpoints: the control plane itself.
pub const CHECKPOINT_ACTOR: &str = "control-plane";

/// Whether the stored log is still the one this process verified; once
/// broken, it stays broken until an admin restarts the server (whose
/// start-up verification then refuses the log).
#[derive(Debug, Default)]
pub struct LogIntegrity {
    broken: OnceLock<String>,
}

impl LogIntegrity {
    /// Why the log is not trusted any more, if it is not.
    pub fn broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }

    /// Marks the log broken because a recorded checkpoint is not one this
    /// control plane signed in order (`failure` names where), and logs it.
    pub fn fail_record(&self, failure: &CheckpointFailure) {
        if self.broken.set(failure.to_string()).is_ok() {
            tracing::error!(
                error = %failure,
                "a checkpoint recorded in the event log is not one this control plane signed; refusing every call until an admin investigates and restarts it"
            );
        }
    }

    /// Marks the log broken at `at` and logs where (once).
    pub fn fail(&self, at: &ChainBreak) {
        if self.broken.set(at.to_string()).is_ok() {
            tracing::error!(
                position = at.position.0,
                stream = at.stream.as_ref().map(|s| s.as_str()).unwrap_or(""),
                error = %at,
                "the stored event log changed under the control plane; refusing every call until an admin investigates and restarts it"
            );
        }
    }
}

/// Why a recorded checkpoint or a checkpoint cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFailure {
    /// The log is not what was appended (the server now fails closed).
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// The store failed; the next cycle tries again.
    #[error("the event store failed: {0}")]
    Store(#[from] StoreError),
    /// Another writer recorded the next checkpoint first.
    #[error("another writer recorded checkpoint {0} first; the next cycle continues from it")]
    Raced(StreamVersion),
    /// A recorded checkpoint is not one this log key signed in order.
    #[error("the checkpoint recorded at position {position} {problem}")]
    BadRecord {
        /// Where it is recorded.
        position: Position,
        /// What is wrong with it.
        problem: String,
    },
    /// There is nothing to sign: the log is empty.
    #[error("the log is empty; there is nothing to sign yet")]
    Empty,
}

impl From<VerifyError> for CheckpointFailure {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Broken(b) => CheckpointFailure::Broken(b),
            VerifyError::Store(s) => CheckpointFailure::Store(s),
        }
    }
}

/// The latest recorded checkpoint: what it says, and where it is recorded.
#[derive(Debug, Clone)]
struct Latest {
    signed: SignedCheckpoint,
    recorded_at: Position,
    version: StreamVersion,
}

struct State {
    latest: Option<Latest>,
    /// When the latest was signed (or this process started).
    since: Instant,
}

/// Signs checkpoints of one store's log with one key.
pub struct Checkpointer {
    store: Arc<dyn EventStore>,
    key: LogSigningKey,
    schedule: Schedule,
    integrity: Arc<LogIntegrity>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("key", &self.key)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

/// A recorded checkpoint, parsed and checked against `key`.
fn parse_recorded(
    event: &RecordedEvent,
    key: &[u8; 32],
) -> Result<SignedCheckpoint, CheckpointFailure> {
    let bad = |problem: String| CheckpointFailure::BadRecord {
        position: event.position,
        problem,
    };
    let record: CheckpointRecord = event
        .data
        .deserialize()
        .map_err(|e| bad(format!("is not a checkpoint ({e})")))?;
    let signed = SignedCheckpoint::from_record(&record).map_err(|e| bad(e.to_string()))?;
    if &signed.public_key != key {
        return Err(bad(format!(
            "is signed by log key {}, not by this control plane's log key {}",
            signed.key_id,
            sealplane_proto::log_checkpoint::key_id_of(key)
        )));
    }
    signed
        .verify()
        .map_err(|e: CheckpointError| bad(e.to_string()))?;
    if signed.point.position >= event.position.0 {
        return Err(bad(format!(
            "claims position {}, which is not before its own record",
            signed.point.position
        )));
    }
    Ok(signed)
}

fn held(point: &LogPoint) -> LogCheckpoint {
    LogCheckpoint {
        position: Position(point.position),
        log_hash: LogHash(point.log_hash),
    }
}

/// Every recorded checkpoint, checked one by one: signed by `key`, each
/// naming the one before as `previous`.
async fn recorded_checkpoints(
    store: &dyn EventStore,
    key: &[u8; 32],
) -> Result<Vec<(SignedCheckpoint, Position, StreamVersion)>, CheckpointFailure> {
    const PAGE: usize = 4096;
    let stream = streams::log_checkpoints();
    let mut all: Vec<(SignedCheckpoint, Position, StreamVersion)> = vec![];
    let mut next = StreamVersion(0);
    loop {
        let page = store.read_stream(&stream, next, PAGE).await?;
        let Some(last) = page.last() else { break };
        next = last.version.next();
        for event in &page {
            if event.event_type.as_str() != LOG_CHECKPOINTED {
                continue;
            }
            let signed = parse_recorded(event, key)?;
            let before = all.last().map(|(c, _, _)| c.point);
            if signed.previous != before {
                return Err(CheckpointFailure::BadRecord {
                    position: event.position,
                    problem: format!(
                        "names previous checkpoint {:?}, but the one recorded before it is {:?}",
                        signed.previous.map(|p| p.position),
                        before.map(|p| p.position)
                    ),
                });
            }
            all.push((signed, event.position, event.version));
        }
    }
    Ok(all)
}

/// The newest recorded checkpoint, checked alone (signed by `key`, before
/// its own record); the chain of `previous` links is left to
/// [`verify_with_recorded`]. Reads the checkpoint stream (one event per
/// 1,000 of the log) but verifies one signature.
async fn newest_recorded(
    store: &dyn EventStore,
    key: &[u8; 32],
) -> Result<Option<(SignedCheckpoint, Position, StreamVersion)>, CheckpointFailure> {
    const PAGE: usize = 4096;
    let stream = streams::log_checkpoints();
    let mut newest: Option<RecordedEvent> = None;
    let mut next = StreamVersion(0);
    loop {
        let page = store.read_stream(&stream, next, PAGE).await?;
        let Some(last) = page.last() else { break };
        next = last.version.next();
        if let Some(event) = page
            .into_iter()
            .rev()
            .find(|e| e.event_type.as_str() == LOG_CHECKPOINTED)
        {
            newest = Some(event);
        }
    }
    newest
        .map(|event| Ok((parse_recorded(&event, key)?, event.position, event.version)))
        .transpose()
}

/// Walks the whole log once and checks it against every recorded
/// checkpoint: each signed by `key`, chained by `previous`, and matching
/// the log hash at its position. For start-up without a read-model
/// snapshot, and the background verifier after one (ADR 0026).
pub async fn verify_with_recorded(
    store: &dyn EventStore,
    key: &[u8; 32],
) -> Result<VerifiedLog, CheckpointFailure> {
    let recorded = recorded_checkpoints(store, key).await?;
    let held = recorded.iter().map(|(c, _, _)| held(&c.point));
    Ok(verify_log_against(store, held).await?)
}

impl Checkpointer {
    /// A checkpointer continuing from the latest checkpoint recorded in
    /// `store` (its signature checked; the whole chain of them is checked
    /// by start-up or the background verifier).
    pub async fn load(
        store: Arc<dyn EventStore>,
        key: LogSigningKey,
        schedule: Schedule,
        integrity: Arc<LogIntegrity>,
    ) -> Result<Checkpointer, CheckpointFailure> {
        let latest = newest_recorded(&*store, &key.public_key()).await?.map(
            |(signed, recorded_at, version)| Latest {
                signed,
                recorded_at,
                version,
            },
        );
        Ok(Checkpointer {
            store,
            key,
            schedule,
            integrity,
            state: Mutex::new(State {
                latest,
                since: Instant::now(),
            }),
        })
    }

    /// The log key's public key, base64 (its key id).
    pub fn key_id(&self) -> String {
        self.key.key_id()
    }

    /// Signs a checkpoint if one is due; `None` when none was.
    pub async fn cycle(&self) -> Result<Option<SignedCheckpoint>, CheckpointFailure> {
        let mut state = self.state.lock().await;
        let head = self.store.head().await?;
        let recorded_at = state.latest.as_ref().map_or(Position(0), |l| l.recorded_at);
        let appended = head.0.saturating_sub(recorded_at.0);
        if !self.schedule.due(appended, state.since.elapsed()) {
            return Ok(None);
        }
        self.take(&mut state).await.map(Some)
    }

    /// The latest checkpoint signed or recorded, if any (never signs one).
    pub async fn latest(&self) -> Option<SignedCheckpoint> {
        let state = self.state.lock().await;
        state.latest.as_ref().map(|l| l.signed.clone())
    }

    /// The latest checkpoint, or one signed now if there is none yet.
    pub async fn latest_or_take(&self) -> Result<SignedCheckpoint, CheckpointFailure> {
        let mut state = self.state.lock().await;
        if let Some(latest) = &state.latest {
            return Ok(latest.signed.clone());
        }
        self.take(&mut state).await
    }

    /// Verifies the log after the latest checkpoint, then signs and
    /// records the head it verified.
    async fn take(&self, state: &mut State) -> Result<SignedCheckpoint, CheckpointFailure> {
        let previous = state.latest.as_ref().map(|l| l.signed.point);
        let from = previous.as_ref().map_or(LogCheckpoint::EMPTY, held);
        let verified = match verify_log_after(&*self.store, from).await {
            Ok(verified) => verified,
            Err(VerifyError::Broken(at)) => {
                self.integrity.fail(&at);
                return Err(at.into());
            }
            Err(VerifyError::Store(e)) => return Err(e.into()),
        };
        if verified.head.position == Position(0) {
            return Err(CheckpointFailure::Empty);
        }
        let point = LogPoint {
            position: verified.head.position.0,
            log_hash: verified.head.log_hash.0,
        };
        let now = chrono::Utc::now();
        let signed = self.key.sign(point, now, previous);
        let expected = match &state.latest {
            Some(l) => ExpectedVersion::Exact(l.version),
            None => ExpectedVersion::NoStream,
        };
        let metadata = EventMetadata {
            timestamp: now,
            ..EventMetadata::new(CHECKPOINT_ACTOR)
        };
        let event = NewEvent::new(
            EventType::parse(LOG_CHECKPOINTED).expect("a valid event type"),
            1,
            &signed.to_record(),
            &metadata,
        )
        .map_err(|e| CheckpointFailure::BadRecord {
            position: verified.head.position,
            problem: e.to_string(),
        })?;
        match self
            .store
            .append(&streams::log_checkpoints(), expected, vec![event])
            .await
        {
            Ok(appended) => {
                tracing::info!(
                    position = point.position,
                    log_hash = %point.log_hash_hex(),
                    recorded_at = appended.last_position.0,
                    "signed a log checkpoint"
                );
                state.latest = Some(Latest {
                    signed: signed.clone(),
                    recorded_at: appended.last_position,
                    version: appended.version,
                });
                state.since = Instant::now();
                Ok(signed)
            }
            Err(AppendError::Conflict(c)) => {
                // Another writer's checkpoint is the latest now; continue
                // from it (it is checked as any recorded one).
                let recorded = newest_recorded(&*self.store, &self.key.public_key()).await?;
                state.latest = recorded.map(|(signed, at, version)| Latest {
                    signed,
                    recorded_at: at,
                    version,
                });
                Err(CheckpointFailure::Raced(
                    c.actual.unwrap_or(StreamVersion(0)),
                ))
            }
            Err(AppendError::Store(e)) => Err(e.into()),
            Err(e) => Err(CheckpointFailure::BadRecord {
                position: verified.head.position,
                problem: e.to_string(),
            }),
        }
    }

    /// Signs checkpoints on schedule, on the ticks `may_sign` allows (the
    /// server's: while it holds the lease on once-only work, ADR 0020),
    /// until `shutdown` completes or the log is found broken (the server
    /// then fails closed).
    pub async fn run(
        self: Arc<Self>,
        may_sign: impl Fn() -> bool,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(self.schedule.tick());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => return,
            }
            if !may_sign() {
                continue;
            }
            match self.cycle().await {
                Ok(_) => {}
                Err(CheckpointFailure::Broken(_)) => return,
                Err(e @ CheckpointFailure::Raced(_)) => {
                    tracing::info!(error = %e, "checkpoint race")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not sign a log checkpoint; trying again")
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
