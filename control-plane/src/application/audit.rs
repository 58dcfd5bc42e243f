//! Reading the audit log (SPEC §7, ADR 0015): the log from a position,
//! filtered and rendered here on the server, in bounded pages, then live
//! when the reader follows. Each read is recorded as an `AuditLogRead`
//! event before anything streams (fail closed: an unrecorded read is not
//! served).

pub mod entry;
pub mod filter;
pub mod raw;
pub mod replay;

use std::collections::HashMap;

use futures_util::StreamExt;
use sealplane_event_store::{
    AppendError, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StoreError, StreamVersion, SubscriptionMessage,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{App, UseCaseError};
use crate::domain::Actor;
use crate::domain::upload::UploadEvent;
use crate::streams::{self, StreamKind, kind_of};
use entry::{AUDIT_LOG_READ, AuditEntry, AuditLogRead, RequestTarget, describe};
use filter::AuditFilter;

/// Events read from the store per page.
pub const PAGE: usize = 512;
/// Entries buffered for the transport before reading waits for it.
const BUFFER: usize = 256;
/// Upload requests whose target an audit read remembers; beyond, it forgets
/// them all and asks the store again for the few it meets later.
const REMEMBERED_REQUESTS: usize = 10_000;

/// Why an audit read ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditEnd {
    /// The server is stopping.
    #[error("the server is shutting down; read again from the last position you received")]
    ShuttingDown,
    /// The event store failed.
    #[error("the event store failed; read again from the last position you received")]
    Failed,
}

/// Records that `actor` reads the log with `filter` and returns the
/// position of that record: a read without `follow` ends there.
pub async fn record_read(
    app: &App,
    actor: &Actor,
    filter: &AuditFilter,
) -> Result<Position, UseCaseError> {
    let read = AuditLogRead {
        reader: actor.slug.clone(),
        role: actor.role,
        filters: filter.clone(),
    };
    record(app, actor, AUDIT_LOG_READ, &read).await
}

/// Appends one event of type `event_type` to the audit reads' stream, as
/// `actor`, and returns its position (fail closed: an unrecordable read is
/// `Unavailable`).
pub(crate) async fn record(
    app: &App,
    actor: &Actor,
    event_type: &str,
    event: &impl serde::Serialize,
) -> Result<Position, UseCaseError> {
    let metadata = EventMetadata {
        timestamp: app.now(),
        ..EventMetadata::new(actor.slug.as_str())
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "could not record an audit read");
        UseCaseError::Unavailable
    };
    let event = NewEvent::new(
        EventType::parse(event_type).map_err(|e| unavailable(&e))?,
        1,
        event,
        &metadata,
    )
    .map_err(|e| unavailable(&e))?;
    match app
        .handler
        .store()
        .append(&streams::audit_reads(), ExpectedVersion::Any, vec![event])
        .await
    {
        Ok(appended) => Ok(appended.last_position),
        Err(AppendError::Store(e)) => Err(unavailable(&e)),
        Err(e) => Err(unavailable(&e)),
    }
}

/// What upload requests are about, learned from their first events as
/// the read passes them, else read from the request's stream.
#[derive(Default)]
struct Requests {
    known: HashMap<Uuid, Option<RequestTarget>>,
}

impl Requests {
    async fn target_of(
        &mut self,
        store: &dyn EventStore,
        event: &RecordedEvent,
    ) -> Result<Option<RequestTarget>, StoreError> {
        let Some(StreamKind::Upload(id)) = kind_of(&event.stream_id) else {
            return Ok(None);
        };
        if self.known.len() >= REMEMBERED_REQUESTS {
            self.known.clear();
        }
        if event.version == StreamVersion(0) {
            let first = event.data.deserialize::<UploadEvent>().ok();
            let target = first.as_ref().and_then(RequestTarget::of);
            self.known.insert(id, target.clone());
            return Ok(target);
        }
        if let Some(known) = self.known.get(&id) {
            return Ok(known.clone());
        }
        let first = store
            .read_stream(&event.stream_id, StreamVersion(0), 1)
            .await?;
        let target = first
            .first()
            .and_then(|e| e.data.deserialize::<UploadEvent>().ok())
            .as_ref()
            .and_then(RequestTarget::of);
        self.known.insert(id, target.clone());
        Ok(target)
    }

    /// Forgets a request once it has ended: its later events are few.
    fn ended(&mut self, event: &RecordedEvent) {
        if let Some(StreamKind::Upload(id)) = kind_of(&event.stream_id)
            && matches!(
                event.event_type.as_str(),
                "SecretUploaded"
                    | "SecretVerified"
                    | "SecretUploadFailed"
                    | "SecretUploadKeyExpired"
            )
        {
            self.known.remove(&id);
        }
    }
}

/// One reader's pass over the log.
struct Reader {
    store: std::sync::Arc<dyn EventStore>,
    filter: AuditFilter,
    requests: Requests,
    tx: mpsc::Sender<Result<AuditEntry, AuditEnd>>,
}

impl Reader {
    /// Sends `event` if it passes the filter; `false` once the receiver
    /// is gone or the store failed (the failure is sent).
    async fn offer(&mut self, event: &RecordedEvent) -> bool {
        let request = match self.requests.target_of(&*self.store, event).await {
            Ok(request) => request,
            Err(e) => {
                tracing::error!(error = %e, "an audit read failed");
                let _ = self.tx.send(Err(AuditEnd::Failed)).await;
                return false;
            }
        };
        let entry = describe(event, request.as_ref());
        self.requests.ended(event);
        if !self.filter.matches(&entry) {
            return !self.tx.is_closed();
        }
        self.tx.send(Ok(entry)).await.is_ok()
    }

    async fn fail(&self, e: StoreError) {
        tracing::error!(error = %e, "an audit read failed");
        let _ = self.tx.send(Err(AuditEnd::Failed)).await;
    }

    /// Pages through the log from `next` to `last`; returns the position
    /// after the last event read, or `None` when the read is over.
    async fn pages(&mut self, mut next: Position, last: Position) -> Option<Position> {
        while next <= last {
            let page = match self.store.read_all(next, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    self.fail(e).await;
                    return None;
                }
            };
            if page.is_empty() {
                break;
            }
            for event in page.iter().take_while(|e| e.position <= last) {
                if !self.offer(event).await {
                    return None;
                }
                next = event.position.next();
            }
            if page.last().is_some_and(|e| e.position >= last) {
                break;
            }
        }
        Some(next)
    }

    /// Live events from `from` on, until the receiver goes or the store
    /// closes or fails.
    async fn live(&mut self, from: Position) {
        let mut events = self.store.subscribe_all(from);
        while let Some(message) = events.next().await {
            match message {
                Ok(SubscriptionMessage::Event(event)) => {
                    if !self.offer(&event).await {
                        return;
                    }
                }
                Ok(SubscriptionMessage::CaughtUp(_)) => {}
                Err(e) => return self.fail(e).await,
            }
        }
    }
}

/// Streams the entries `filter` selects, from its start up to `head` (the
/// position of this read's own record), then live ones when it follows.
pub fn stream(
    app: &App,
    filter: AuditFilter,
    head: Position,
) -> mpsc::Receiver<Result<AuditEntry, AuditEnd>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let app = app.clone();
    tokio::spawn(async move {
        let first = filter.first_position();
        let last = filter.last_position().map_or(head, |until| until.min(head));
        let follow = filter.follow;
        let mut reader = Reader {
            store: app.handler.store().clone(),
            filter,
            requests: Requests::default(),
            tx: tx.clone(),
        };
        let read = async {
            let Some(next) = reader.pages(first, last).await else {
                return;
            };
            if follow {
                reader.live(next.max(head.next())).await;
            }
        };
        tokio::select! {
            () = read => {}
            () = app.shutting_down() => {
                let _ = tx.send(Err(AuditEnd::ShuttingDown)).await;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests;
