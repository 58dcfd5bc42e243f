//! A reactor's feed (SPEC §3): the log, from a checkpointed position, as
//! the typed messages of `sealplane_proto::feed`, only for the stores the
//! reactor serves. Between its events, checkpoints tell a reactor how far
//! the log went without anything for it, so the reactor of a quiet store
//! advances its position instead of rescanning the log after a restart.
//!
//! The feed is derived from the domain events by exhaustive matches
//! ([`upload_feed_event`], [`secret_feed_event`]): a new domain event
//! cannot be added without deciding what reactors see of it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use sealplane_event_store::{Position, RecordedEvent, SubscriptionMessage};
use sealplane_proto::feed::{FeedEvent, FeedMessage, SealedSubmission, UploadOutcome};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::App;
use crate::command::decode;
use crate::domain::names::StoreName;
use crate::domain::sealing_keys::{SealingKeyEvent, SealingKeyRefusal};
use crate::domain::secret::{SecretEvent, SecretRefusal};
use crate::domain::upload::{UploadEvent, UploadRefusal};
use crate::streams::{StreamKind, kind_of};

/// How long the feed waits for the read model to reach an event it filters.
const FILTER_WAIT: Duration = Duration::from_secs(30);

/// After events the reactor does not see, a checkpoint follows once the
/// log has been quiet for this long...
pub const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);
/// ...or once this many were skipped in a row.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// Why a feed ended; the reactor resubscribes from its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedEnd {
    /// The server is stopping.
    #[error("the server is shutting down; resubscribe from your checkpoint")]
    ShuttingDown,
    /// The read model did not reach an event in time.
    #[error("the read model is lagging; resubscribe from your checkpoint")]
    Lagging,
    /// The event store failed.
    #[error("the event feed failed; resubscribe from your checkpoint")]
    Failed,
}

/// What an upload request's event tells its store's reactor.
pub fn upload_feed_event(event: &UploadEvent) -> FeedEvent {
    let ended = |request_id, outcome| FeedEvent::Ended {
        request_id,
        outcome,
    };
    match event {
        UploadEvent::SecretUploadKeyRequested {
            request_id,
            uri,
            purpose,
            expires_at,
            store: _,
            requester: _,
        } => FeedEvent::KeyRequested {
            request_id: *request_id,
            uri: uri.clone(),
            purpose: *purpose,
            expires_at: *expires_at,
        },
        UploadEvent::SecretUploadKeyProvided { request_id, .. } => FeedEvent::KeyProvided {
            request_id: *request_id,
        },
        UploadEvent::SecretUploadRequested {
            request_id,
            ciphertext,
        } => FeedEvent::UploadRequested {
            request_id: *request_id,
            // Checked to be base64 when it was accepted; should the log
            // hold anything else, the reactor refuses an empty box and
            // ends the request, rather than the feed stalling on it.
            ciphertext: STANDARD.decode(ciphertext).unwrap_or_else(|_| {
                tracing::error!(%request_id, "a stored ciphertext is not base64");
                Vec::new()
            }),
        },
        UploadEvent::SecretUploaded { request_id, .. } => {
            ended(*request_id, UploadOutcome::Uploaded)
        }
        UploadEvent::SecretVerified { request_id, .. } => {
            ended(*request_id, UploadOutcome::Verified)
        }
        UploadEvent::SecretUploadFailed { request_id, .. } => {
            ended(*request_id, UploadOutcome::Failed)
        }
        UploadEvent::SecretUploadKeyExpired { request_id } => {
            ended(*request_id, UploadOutcome::Expired)
        }
        UploadEvent::SealedFileSubmitted {
            request_id,
            uri,
            key_id,
            reseal,
            ciphertext,
            current_version,
            current_hash,
            expires_at,
            store: _,
            requester: _,
        } => FeedEvent::SealedSubmitted(SealedSubmission {
            request_id: *request_id,
            uri: uri.clone(),
            key_id: key_id.clone(),
            // As for an upload: checked to be base64 when accepted.
            ciphertext: STANDARD.decode(ciphertext).unwrap_or_else(|_| {
                tracing::error!(%request_id, "a stored ciphertext is not base64");
                Vec::new()
            }),
            reseal: *reseal,
            current: current_version.zip(current_hash.clone()),
            expires_at: *expires_at,
        }),
        UploadEvent::SealedFileUnchanged { request_id, .. } => {
            ended(*request_id, UploadOutcome::Unchanged)
        }
        UploadEvent::SealedFileResealed { request_id, .. } => {
            ended(*request_id, UploadOutcome::Resealed)
        }
    }
}

/// What a secret's event tells its store's reactor: only deletions.
pub fn secret_feed_event(event: &SecretEvent) -> Option<FeedEvent> {
    match event {
        SecretEvent::SecretDeletionRequested { uri, destroy, .. } => {
            Some(FeedEvent::DeletionRequested {
                uri: uri.clone(),
                destroy: *destroy,
            })
        }
        SecretEvent::SecretDeleted { uri, .. } => Some(FeedEvent::Deleted { uri: uri.clone() }),
        SecretEvent::SecretCreated { .. }
        | SecretEvent::SecretVersionAdded { .. }
        | SecretEvent::AccessGranted { .. }
        | SecretEvent::AccessRevoked { .. } => None,
    }
}

/// The feed event of a recorded event and the store it concerns, if it
/// concerns a reactor at all. `store_of_upload` names an upload request's
/// store (its later events do not).
/// What a reactor sees of its stores' sealing-key events: requests to
/// rotate and retirements; its own publications it knows.
pub fn sealing_key_feed_event(event: &SealingKeyEvent) -> Option<FeedEvent> {
    match event {
        SealingKeyEvent::SealingKeyRotationRequested { store, .. } => {
            Some(FeedEvent::RotationRequested {
                store: store.to_string(),
            })
        }
        SealingKeyEvent::SealingKeyRetired { store, key_id, .. } => Some(FeedEvent::KeyRetired {
            store: store.to_string(),
            key_id: key_id.clone(),
        }),
        SealingKeyEvent::SealingKeyPublished { .. } => None,
    }
}

pub fn feed_event(
    recorded: &RecordedEvent,
    store_of_upload: impl FnOnce(&uuid::Uuid) -> Option<StoreName>,
) -> Option<(StoreName, FeedEvent)> {
    let unreadable = |e: &dyn std::fmt::Display| {
        // The position and stream only: event data may hold ciphertext.
        tracing::error!(position = recorded.position.0, stream = %recorded.stream_id, error = %e, "the feed skips an unreadable event");
    };
    match kind_of(&recorded.stream_id)? {
        StreamKind::Upload(id) => {
            let event: UploadEvent = decode::<_, UploadRefusal>(&recorded.stream_id, recorded)
                .map_err(|e| unreadable(&e))
                .ok()?;
            Some((store_of_upload(&id)?, upload_feed_event(&event)))
        }
        StreamKind::SealingKeys(store) => {
            let event: SealingKeyEvent =
                decode::<_, SealingKeyRefusal>(&recorded.stream_id, recorded)
                    .map_err(|e| unreadable(&e))
                    .ok()?;
            Some((store, sealing_key_feed_event(&event)?))
        }
        StreamKind::Secret(uri) => {
            let event: SecretEvent = decode::<_, SecretRefusal>(&recorded.stream_id, recorded)
                .map_err(|e| unreadable(&e))
                .ok()?;
            Some((uri.store, secret_feed_event(&event)?))
        }
        _ => None,
    }
}

/// The store each upload request targets, for a feed filtering by store:
/// the read model knows those of the requests it holds (open, or finished
/// within its retention); an older one, met by a feed catching up from far
/// back, is read from the request's first event, and the last few such
/// answers are kept (a request has several events in a row).
#[derive(Default)]
struct UploadStores {
    recent: std::collections::HashMap<uuid::Uuid, Option<StoreName>>,
}

/// Answers [`UploadStores`] keeps from the log before starting afresh.
const RECENT_UPLOAD_STORES: usize = 1024;

impl UploadStores {
    async fn of(&mut self, app: &App, id: &uuid::Uuid) -> Option<StoreName> {
        if let Some(store) = app.model.read(|m| m.upload_store(id).cloned()).0 {
            return Some(store);
        }
        if let Some(store) = self.recent.get(id) {
            return store.clone();
        }
        let stream = crate::streams::upload(*id);
        let first = match app
            .handler
            .store()
            .read_stream(&stream, sealplane_event_store::StreamVersion(0), 1)
            .await
        {
            Ok(first) => first,
            Err(e) => {
                // Not kept: the next event of the request asks again.
                tracing::warn!(request_id = %id, error = %e, "cannot read an upload request's store");
                return None;
            }
        };
        let store =
            first.first().and_then(|recorded| {
                match decode::<UploadEvent, UploadRefusal>(&stream, recorded).ok()? {
                    UploadEvent::SecretUploadKeyRequested { store, .. }
                    | UploadEvent::SealedFileSubmitted { store, .. } => Some(store),
                    _ => None,
                }
            });
        if self.recent.len() >= RECENT_UPLOAD_STORES {
            self.recent.clear();
        }
        self.recent.insert(*id, store.clone());
        store
    }
}

/// A feed message and, for an event, when it was recorded (Unix
/// milliseconds; 0 otherwise), which the reactor's lag metric needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message.
    pub message: FeedMessage,
    /// Its event's metadata timestamp in Unix milliseconds, or 0.
    pub recorded_at_ms: i64,
}

impl From<FeedMessage> for Sent {
    fn from(message: FeedMessage) -> Self {
        Sent {
            message,
            recorded_at_ms: 0,
        }
    }
}

/// Follows the log from `from` for a reactor serving `stores`, until the
/// receiver is dropped, the server shuts down or the store fails.
pub fn follow(
    app: App,
    stores: Vec<StoreName>,
    from: Position,
) -> mpsc::Receiver<Result<Sent, FeedEnd>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut events = app.handler.store().subscribe_all(from);
        let mut upload_stores = UploadStores::default();
        // The last position skipped since a message was sent, the time
        // the first of them was, and how many.
        let mut skipped: Option<(u64, Instant, u64)> = None;
        loop {
            let idle = skipped.map(|(_, since, _)| since + CHECKPOINT_IDLE);
            let message = tokio::select! {
                message = events.next() => match message {
                    Some(message) => message,
                    None => return,
                },
                () = sleep_until(idle) => {
                    if let Some((position, _, _)) = skipped.take()
                        && tx.send(Ok(FeedMessage::Checkpoint { position }.into())).await.is_err()
                    {
                        return;
                    }
                    continue;
                }
                () = app.shutting_down() => {
                    let _ = tx.send(Err(FeedEnd::ShuttingDown)).await;
                    return;
                }
            };
            let mut recorded_at_ms = 0;
            let out = match message {
                Ok(SubscriptionMessage::Event(event)) => {
                    // Filter by the read model, once it has seen this event.
                    if app
                        .model
                        .wait_for(event.position, FILTER_WAIT)
                        .await
                        .is_err()
                    {
                        let _ = tx.send(Err(FeedEnd::Lagging)).await;
                        return;
                    }
                    let upload_store = match kind_of(&event.stream_id) {
                        Some(StreamKind::Upload(id)) => upload_stores.of(&app, &id).await,
                        _ => None,
                    };
                    let mine = feed_event(&event, |_| upload_store)
                        .filter(|(store, _)| stores.contains(store));
                    match mine {
                        Some((_, feed_event)) => {
                            recorded_at_ms = event
                                .metadata()
                                .map_or(0, |m| m.timestamp.timestamp_millis());
                            FeedMessage::Event {
                                position: event.position.0,
                                event: feed_event,
                            }
                        }
                        None => {
                            let position = event.position.0;
                            match &mut skipped {
                                Some((last, _, count)) => {
                                    *last = position;
                                    *count += 1;
                                }
                                None => skipped = Some((position, Instant::now(), 1)),
                            }
                            match skipped {
                                Some((position, _, count)) if count >= CHECKPOINT_EVERY => {
                                    skipped = None;
                                    FeedMessage::Checkpoint { position }
                                }
                                _ => continue,
                            }
                        }
                    }
                }
                Ok(SubscriptionMessage::CaughtUp(at)) => {
                    skipped = None;
                    FeedMessage::CaughtUp { position: at.0 }
                }
                Err(e) => {
                    tracing::error!(error = %e, "a reactor feed failed");
                    let _ = tx.send(Err(FeedEnd::Failed)).await;
                    return;
                }
            };
            if matches!(out, FeedMessage::Event { .. }) {
                skipped = None;
            }
            let sent = Sent {
                message: out,
                recorded_at_ms,
            };
            if tx.send(Ok(sent)).await.is_err() {
                return;
            }
        }
    });
    rx
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
