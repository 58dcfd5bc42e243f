//! The raw log for verification (`sealctl audit verify`, ADR 0016): the
//! recorded events byte for byte, in bounded pages, so a client recomputes
//! every hash itself. Each read is an `AuditRawRead` event, recorded before
//! anything is sent.

use sealplane_event_store::{Position, RecordedEvent};
use tokio::sync::mpsc;

use super::entry::{AUDIT_RAW_READ, AuditRawRead, RawRead};
use super::{AuditEnd, record};
use crate::application::{App, UseCaseError};
use crate::domain::Actor;

/// Events per page at most.
pub const PAGE_EVENTS: usize = 512;
/// JSON bytes per page at most (one larger event still goes alone).
pub const PAGE_BYTES: usize = 2 << 20;
/// Pages buffered for the transport.
const BUFFER: usize = 4;

/// Records that `actor` reads `read`; returns the record's position.
pub async fn record_raw_read(
    app: &App,
    actor: &Actor,
    read: RawRead,
) -> Result<Position, UseCaseError> {
    let event = AuditRawRead {
        reader: actor.slug.clone(),
        role: actor.role,
        read,
    };
    record(app, actor, AUDIT_RAW_READ, &event).await
}

/// Splits `events` into pages of at most [`PAGE_EVENTS`] events and
/// [`PAGE_BYTES`] bytes of JSON, in order.
pub fn paginate(events: Vec<RecordedEvent>) -> Vec<Vec<RecordedEvent>> {
    let mut pages = vec![];
    let mut page: Vec<RecordedEvent> = vec![];
    let mut bytes = 0;
    for event in events {
        let size = event.data.as_str().len() + event.metadata.as_str().len();
        if !page.is_empty() && (page.len() >= PAGE_EVENTS || bytes + size > PAGE_BYTES) {
            pages.push(std::mem::take(&mut page));
            bytes = 0;
        }
        bytes += size;
        page.push(event);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// Streams the recorded events from `from` to `until`, inclusive, in pages.
pub fn events(
    app: &App,
    from: Position,
    until: Position,
) -> mpsc::Receiver<Result<Vec<RecordedEvent>, AuditEnd>> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let app = app.clone();
    tokio::spawn(async move {
        let store = app.handler.store().clone();
        let read = async {
            let mut next = from.max(Position::START);
            while next <= until {
                let page = match store.read_all(next, PAGE_EVENTS).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "a raw audit read failed");
                        let _ = tx.send(Err(AuditEnd::Failed)).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { return };
                next = last.position.next();
                let wanted: Vec<_> = page.into_iter().filter(|e| e.position <= until).collect();
                for part in paginate(wanted) {
                    if tx.send(Ok(part)).await.is_err() {
                        return;
                    }
                }
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
mod tests {
    use sealplane_event_store::{
        EventMetadata, EventStore, EventType, ExpectedVersion, MemoryStore, NewEvent, StreamId,
    };

    use super::*;

    async fn log_of(sizes: &[usize]) -> Vec<RecordedEvent> {
        let store = MemoryStore::new();
        for size in sizes {
            let event = NewEvent::from_json_text(
                EventType::parse("Happened").unwrap(),
                1,
                &format!(r#"{{"x":"{}"}}"#, "a".repeat(*size)),
                &EventMetadata::new("t"),
            )
            .unwrap();
            store
                .append(
                    &StreamId::parse("s").unwrap(),
                    ExpectedVersion::Any,
                    vec![event],
                )
                .await
                .unwrap();
        }
        store.read_all(Position::START, 100_000).await.unwrap()
    }

    #[tokio::test]
    async fn pages_are_bounded_by_count_and_bytes_and_keep_the_order() {
        // Given 1,100 small events, then three of 900 KiB
        let mut sizes = vec![10; 1100];
        sizes.extend([900 << 10; 3]);
        let events = log_of(&sizes).await;
        // When they are paged
        let pages = paginate(events);
        // Then no page is over either bound, unless a single event is
        for page in &pages {
            let bytes: usize = page
                .iter()
                .map(|e| e.data.as_str().len() + e.metadata.as_str().len())
                .sum();
            assert!(page.len() <= PAGE_EVENTS);
            assert!(bytes <= PAGE_BYTES || page.len() == 1, "{bytes}");
        }
        // And every event comes once, in order
        let positions: Vec<u64> = pages.iter().flatten().map(|e| e.position.0).collect();
        assert_eq!(positions, (1..=1103).collect::<Vec<_>>());
    }
}
