//! `sealctl audit checkpoint` and `sealctl audit verify` (SPEC §7, ADR
//! 0016): export the latest signed checkpoint to a file, and check the
//! log the server streams against every checkpoint held, with the event
//! store's own `ChainVerifier` (pure logic, no SQLite). Memory stays
//! constant apart from one version and hash per stream and the log hashes
//! since the last recorded checkpoint.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt as _;
use sealplane_event_store::{
    ChainBreak, ChainVerifier, EventHash, EventType, JsonObject, LogCheckpoint, LogHash, Position,
    RecordedEvent, StreamId, StreamVersion,
};
use sealplane_proto::log_checkpoint::{
    CheckpointFile, CheckpointRecord, LOG_CHECKPOINTED, SignedCheckpoint, public_key_of,
};
use sealplane_proto::v1;
use serde::Serialize;

use crate::client::{ClientError, Connection};
use crate::known_log_keys::{LogKeyPinError, Pinned, check_or_pin};
use crate::output::OutputFormat;

/// The stream the control plane records checkpoints on.
pub const CHECKPOINT_STREAM: &str = "log-checkpoints";
/// Most log hashes kept while waiting for the next recorded checkpoint.
const WINDOW: usize = 1 << 20;
/// Largest page accepted from the server.
const MAX_PAGE_BYTES: usize = 64 << 20;

/// Why `audit checkpoint` or `audit verify` could not run (exit 2), or
/// refused the server's key (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The log key pin could not be used or differs.
    #[error(transparent)]
    Pin(#[from] LogKeyPinError),
    /// A file given could not be read or is not what it must be.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// A flag does not make sense.
    #[error("{0}")]
    Usage(String),
    /// The server sent something that is not a checkpoint or an event.
    #[error("the control plane sent {0}")]
    Malformed(String),
    /// The server's log key is not the one trusted.
    #[error(
        "the control plane's log key is {offered}, not the key you trust ({trusted}); refusing its checkpoints"
    )]
    KeyMismatch { offered: String, trusted: String },
    /// Writing to stdout failed.
    #[error("cannot write the result: {0}")]
    Stdout(std::io::Error),
}

impl VerifyError {
    /// Whether this is a refusal to trust the control plane (exit 3).
    pub fn is_trust_refusal(&self) -> bool {
        matches!(
            self,
            VerifyError::KeyMismatch { .. } | VerifyError::Pin(LogKeyPinError::Changed { .. })
        )
    }
}

/// Where verification found the log not what was signed (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A link or a held checkpoint.
    #[error(transparent)]
    Chain(#[from] ChainBreak),
    /// A checkpoint recorded in the log does not hold.
    #[error("the checkpoint recorded at position {position} {problem}")]
    Recorded { position: u64, problem: String },
    /// A checkpoint file's signature is not the log key's.
    #[error("checkpoint {path}: {problem}")]
    Held { path: String, problem: String },
}

/// An event from the wire, refusing anything a store could not have
/// recorded.
pub fn event_from_proto(e: v1::RecordedEvent) -> Result<RecordedEvent, String> {
    let hash = |b: &[u8], field: &str| {
        EventHash::from_slice(b).ok_or_else(|| format!("an event whose {field} is not 32 bytes"))
    };
    Ok(RecordedEvent {
        position: Position(e.position),
        stream_id: StreamId::parse(e.stream_id).map_err(|e| e.to_string())?,
        version: StreamVersion(e.stream_version),
        event_type: EventType::parse(e.event_type).map_err(|e| e.to_string())?,
        schema_version: e.schema_version,
        data: JsonObject::parse("data", e.data_json).map_err(|e| e.to_string())?,
        metadata: JsonObject::parse("metadata", e.metadata_json).map_err(|e| e.to_string())?,
        prev_hash: hash(&e.prev_hash, "prev_hash")?,
        hash: hash(&e.hash, "hash")?,
        log_hash: LogHash::from_slice(&e.log_hash)
            .ok_or_else(|| "an event whose log_hash is not 32 bytes".to_owned())?,
    })
}

/// Checks the checkpoints recorded in the log as the walk passes them:
/// each signed by the trusted key, naming the one before as `previous`,
/// and matching the log hash at the position it claims (which the walk
/// passed already: the log hashes since the last claim are kept).
#[derive(Debug)]
pub struct RecordedCheckpoints {
    key: [u8; 32],
    window: VecDeque<(u64, [u8; 32])>,
    last: Option<u64>,
    /// The walk began after a held checkpoint: the first recorded one may
    /// name a previous one not seen.
    resumed: bool,
    /// How many held.
    pub checked: usize,
}

impl RecordedCheckpoints {
    /// A check of checkpoints signed by `key`; `resumed` when the walk
    /// does not start at the beginning of the log.
    pub fn new(key: [u8; 32], resumed: bool) -> Self {
        RecordedCheckpoints {
            key,
            window: VecDeque::new(),
            last: None,
            resumed,
            checked: 0,
        }
    }

    /// Takes the next event of the log, which the chain verifier passed.
    pub fn observe(&mut self, event: &RecordedEvent) -> Result<(), Broken> {
        let bad = |problem: String| Broken::Recorded {
            position: event.position.0,
            problem,
        };
        let is_checkpoint = event.stream_id.as_str() == CHECKPOINT_STREAM
            && event.event_type.as_str() == LOG_CHECKPOINTED;
        if is_checkpoint {
            let record: CheckpointRecord = event
                .data
                .deserialize()
                .map_err(|e| bad(format!("is not a checkpoint ({e})")))?;
            let signed = SignedCheckpoint::from_record(&record).map_err(|e| bad(e.to_string()))?;
            if signed.public_key != self.key {
                return Err(bad(format!(
                    "is signed by log key {}, not by the key you trust",
                    signed.key_id
                )));
            }
            signed.verify().map_err(|e| bad(e.to_string()))?;
            let previous = signed.previous.map(|p| p.position);
            let first_after_resume = self.resumed && self.last.is_none();
            if previous != self.last && !first_after_resume {
                return Err(bad(format!(
                    "names previous checkpoint {previous:?}, but the one recorded before it is {:?}",
                    self.last
                )));
            }
            let claimed = signed.point.position;
            while self.window.front().is_some_and(|(p, _)| *p < claimed) {
                self.window.pop_front();
            }
            match self.window.front() {
                Some((p, hash)) if *p == claimed => {
                    if *hash != signed.point.log_hash {
                        return Err(bad(format!(
                            "says the log hash at position {claimed} is {}, but the log has {} there (an event at or before it was changed)",
                            hex_of(&signed.point.log_hash),
                            hex_of(hash)
                        )));
                    }
                }
                // Before the walk began (resumed) or beyond the window.
                _ if first_after_resume => {}
                _ => {
                    return Err(bad(format!(
                        "claims position {claimed}, which this walk cannot check"
                    )));
                }
            }
            self.last = Some(claimed);
            self.checked += 1;
        }
        if self.window.len() >= WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((event.position.0, event.log_hash.0));
        Ok(())
    }
}

fn hex_of(bytes: &[u8; 32]) -> String {
    LogHash(*bytes).to_hex()
}

/// The log key to trust: `--log-key FILE`, else the pin for the
/// deployment (pinning `offered` the first time, with a note on stderr).
fn trusted_key(
    config_dir: &Path,
    log_key: Option<&Path>,
    deployment: &str,
    offered: &SignedCheckpoint,
) -> Result<[u8; 32], VerifyError> {
    let offered_text = offered.public_key_base64();
    let trusted = match log_key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| VerifyError::File {
                path: path.to_owned(),
                reason: format!("cannot read the log key: {e}"),
            })?;
            public_key_of(text.trim()).map_err(|_| VerifyError::File {
                path: path.to_owned(),
                reason: "is not a log key: it must hold the base64 Ed25519 public key `sealplane serve` prints (log key ...)".into(),
            })?
        }
        None => {
            if let Pinned::New(path) = check_or_pin(config_dir, deployment, &offered_text)? {
                eprintln!(
                    "pinned log key {offered_text} for deployment {deployment} (first use; in {}). Compare it with the `log key` line `sealplane serve` printed.",
                    path.display()
                );
            }
            offered.public_key
        }
    };
    if trusted != offered.public_key {
        return Err(VerifyError::KeyMismatch {
            offered: offered_text,
            trusted: sealplane_proto::log_checkpoint::key_id_of(&trusted),
        });
    }
    Ok(trusted)
}

async fn latest(conn: &Connection) -> Result<(SignedCheckpoint, String), VerifyError> {
    let reply = conn
        .audit()
        .checkpoint(v1::AuditCheckpointRequest {})
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    let wire = reply
        .checkpoint
        .ok_or_else(|| VerifyError::Malformed("no checkpoint".into()))?;
    let signed = SignedCheckpoint::from_proto(&wire)
        .map_err(|e| VerifyError::Malformed(format!("a malformed checkpoint: {e}")))?;
    signed
        .verify()
        .map_err(|e| VerifyError::Malformed(format!("a checkpoint that does not verify: {e}")))?;
    Ok((signed, reply.deployment_id))
}

fn write_out(text: &str) -> Result<(), VerifyError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(VerifyError::Stdout)
}

/// `audit checkpoint`: the latest signed checkpoint, checked against the
/// pinned log key; `-o json` is the checkpoint file.
pub async fn checkpoint(
    conn: &Connection,
    config_dir: &Path,
    log_key: Option<&Path>,
    format: OutputFormat,
) -> Result<(), VerifyError> {
    let (signed, deployment) = latest(conn).await?;
    trusted_key(config_dir, log_key, &deployment, &signed)?;
    let text = match format {
        OutputFormat::Table => format!(
            "checkpoint at position {} (log hash {}), signed {} by log key {}\nsave it with: sealctl audit checkpoint -o json > cp.json\n",
            signed.point.position,
            signed.point.log_hash_hex(),
            signed.time_text(),
            signed.key_id
        ),
        _ => {
            let mut text = serde_json::to_string_pretty(&CheckpointFile::of(&signed))
                .map_err(|e| VerifyError::Malformed(e.to_string()))?;
            text.push('\n');
            text
        }
    };
    write_out(&text)
}

/// What `audit verify` was asked.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    /// Checkpoint files held.
    pub checkpoints: Vec<PathBuf>,
    /// Begin after the held checkpoint at this position.
    pub from: Option<u64>,
    /// The log key, instead of the pin.
    pub log_key: Option<PathBuf>,
}

/// What a verification that passed covered.
#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    /// `verified`.
    pub result: &'static str,
    /// Events checked.
    pub events: u64,
    /// Streams seen.
    pub streams: usize,
    /// Checkpoint files the log matched.
    pub held_checkpoints: usize,
    /// Checkpoints recorded in the log that held.
    pub recorded_checkpoints: usize,
    /// The last position checked.
    pub head_position: u64,
    /// The log hash there.
    pub head_log_hash: String,
    /// Seconds taken.
    pub elapsed_seconds: f64,
}

/// Reads a checkpoint file.
pub fn read_checkpoint_file(path: &Path) -> Result<SignedCheckpoint, VerifyError> {
    let file = |reason: String| VerifyError::File {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| file(format!("cannot read it: {e}")))?;
    if meta.len() > 64 << 10 {
        return Err(file("is too large to be a checkpoint file".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| file(format!("cannot read it: {e}")))?;
    CheckpointFile::parse(&text).map_err(|e| file(e.to_string()))
}

/// `audit verify`: exit 0 with a summary, or 1 naming the first broken
/// place.
pub async fn verify(
    conn: &Connection,
    config_dir: &Path,
    request: VerifyRequest,
    format: OutputFormat,
) -> Result<u8, VerifyError> {
    let started = Instant::now();
    let held: Vec<(PathBuf, SignedCheckpoint)> = request
        .checkpoints
        .iter()
        .map(|p| Ok((p.clone(), read_checkpoint_file(p)?)))
        .collect::<Result<_, VerifyError>>()?;
    let start = match request.from {
        None | Some(0) => None,
        Some(from) => Some(
            held.iter()
                .find(|(_, c)| c.point.position == from)
                .map(|(_, c)| c.point)
                .ok_or_else(|| {
                    VerifyError::Usage(format!(
                        "--from {from} needs a checkpoint at position {from} to start from: give its file with --checkpoint"
                    ))
                })?,
        ),
    };
    let (offered, deployment) = latest(conn).await?;
    let key = trusted_key(
        config_dir,
        request.log_key.as_deref(),
        &deployment,
        &offered,
    )?;
    let report = |broken: Broken| -> Result<u8, VerifyError> {
        let text = match format {
            OutputFormat::Json => format!(
                "{}\n",
                serde_json::json!({"result": "broken", "error": broken.to_string()})
            ),
            _ => format!("verification FAILED: {broken}\n"),
        };
        write_out(&text)?;
        Ok(1)
    };
    for (path, c) in &held {
        let problem = if c.public_key != key {
            Some(format!(
                "is signed by log key {}, not by the key you trust",
                c.key_id
            ))
        } else {
            c.verify().err().map(|e| e.to_string())
        };
        if let Some(problem) = problem {
            return report(Broken::Held {
                path: path.display().to_string(),
                problem,
            });
        }
    }
    let as_held = |c: &SignedCheckpoint| LogCheckpoint {
        position: Position(c.point.position),
        log_hash: LogHash(c.point.log_hash),
    };
    let from = start.map_or(0, |p| p.position);
    let mut verifier = match start {
        None => ChainVerifier::with_checkpoints(held.iter().map(|(_, c)| as_held(c))),
        Some(point) => {
            if held.iter().any(|(_, c)| c.point.position < point.position) {
                return Err(VerifyError::Usage(format!(
                    "a checkpoint given lies before --from {from}; leave --from out to check it"
                )));
            }
            let resumed = ChainVerifier::resume(LogCheckpoint {
                position: Position(point.position),
                log_hash: LogHash(point.log_hash),
            });
            // The others are checked as the walk reaches them.
            let later: Vec<_> = held
                .iter()
                .filter(|(_, c)| c.point.position > point.position)
                .map(|(_, c)| as_held(c))
                .collect();
            if !later.is_empty() {
                return Err(VerifyError::Usage(
                    "with --from, give only the checkpoint to start from; check later ones in a run without --from"
                        .into(),
                ));
            }
            resumed
        }
    };
    let mut recorded = RecordedCheckpoints::new(key, start.is_some());
    let mut pages = conn
        .audit()
        .max_decoding_message_size(MAX_PAGE_BYTES)
        .events(v1::AuditEventsRequest {
            from_position: from + 1,
            until_position: 0,
        })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|s| conn.error(s))?;
        for wire in page.events {
            let event = event_from_proto(wire).map_err(VerifyError::Malformed)?;
            if let Err(b) = verifier.check(&event) {
                return report(b.into());
            }
            if let Err(b) = recorded.observe(&event) {
                return report(b);
            }
        }
    }
    let verified = match verifier.finish() {
        Ok(v) => v,
        Err(b) => return report(b.into()),
    };
    let summary = VerifySummary {
        result: "verified",
        events: verified.events,
        streams: verified.streams,
        held_checkpoints: verified.checkpoints,
        recorded_checkpoints: recorded.checked,
        head_position: verified.head.position.0,
        head_log_hash: verified.head.log_hash.to_hex(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    let text = match format {
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string(&summary).map_err(|e| VerifyError::Malformed(e.to_string()))?
        ),
        _ => format!(
            "verified {} events in {} streams{}: every link holds, {} held checkpoint(s) and {} recorded checkpoint(s) match; head position {} (log hash {}); {:.2} s\n",
            summary.events,
            summary.streams,
            if from > 0 {
                format!(" after position {from}")
            } else {
                String::new()
            },
            summary.held_checkpoints,
            summary.recorded_checkpoints,
            summary.head_position,
            summary.head_log_hash,
            summary.elapsed_seconds
        ),
    };
    write_out(&text)?;
    Ok(0)
}

#[cfg(test)]
mod tests;
