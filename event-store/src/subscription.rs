//! Catch-up-then-live subscriptions, shared by the backends.
//!
//! A backend publishes its head (the last durable position) on a watch
//! channel after every commit. A subscriber's reader task reads the log page
//! by page from its position until it reaches the head, says
//! [`SubscriptionMessage::CaughtUp`] once, then waits for the head to move
//! and reads again. What this process has just committed it takes from
//! [`Recent`] instead of reading it back; anything else (a subscriber that
//! fell behind, events another process wrote) is read back from the store,
//! so a subscriber cannot miss any, and positions are checked to be
//! contiguous so a hole is reported rather than skipped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::{mpsc, watch};

use crate::event::{Position, RecordedEvent};
use crate::store::{EventStore, StoreError, Subscription, SubscriptionMessage};

/// Events read per page.
const PAGE: usize = 512;
/// Most events [`Recent`] keeps.
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
const RECENT_EVENTS: usize = 4096;
/// Most bytes (data and metadata) [`Recent`] keeps.
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
const RECENT_BYTES: usize = 8 << 20;

/// The events this process committed last, a contiguous run of positions
/// (bounded by [`RECENT_EVENTS`] and [`RECENT_BYTES`]), so that live
/// subscribers take what was just written from memory instead of reading
/// it back from storage. A backend records a commit here *before* it
/// publishes the new head; a subscriber that finds its next position
/// missing (fallen behind, or written by another process) reads storage as
/// before, so nothing is ever skipped.
#[derive(Default)]
pub(crate) struct Recent {
    held: std::sync::Mutex<Held>,
}

#[derive(Default)]
#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
struct Held {
    events: VecDeque<RecordedEvent>,
    bytes: usize,
}

#[cfg_attr(not(feature = "embedded"), allow(dead_code))]
fn size_of(e: &RecordedEvent) -> usize {
    e.data.as_str().len() + e.metadata.as_str().len()
}

impl Recent {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `events`, just committed, in position order.
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(crate) fn committed(&self, events: impl IntoIterator<Item = RecordedEvent>) {
        let mut held = self.held();
        for event in events {
            // Positions written by others in between: start a new run.
            if held
                .events
                .back()
                .is_some_and(|last| last.position.0 + 1 != event.position.0)
            {
                held.events.clear();
                held.bytes = 0;
            }
            held.bytes += size_of(&event);
            held.events.push_back(event);
            while held.events.len() > RECENT_EVENTS || held.bytes > RECENT_BYTES {
                match held.events.pop_front() {
                    Some(old) => held.bytes -= size_of(&old),
                    None => break,
                }
            }
        }
    }

    /// The events from `from` on, up to `to` and at most `limit`, when it
    /// holds every one of them.
    fn range(&self, from: Position, to: Position, limit: usize) -> Option<Vec<RecordedEvent>> {
        let held = self.held();
        let first = held.events.front()?.position.0;
        let last = held.events.back()?.position.0;
        if from.0 < first || to.0 > last || from > to {
            return None;
        }
        let start = (from.0 - first) as usize;
        let end = ((to.0 - first) as usize + 1).min(start + limit);
        Some(held.events.range(start..end).cloned().collect())
    }
}
/// Pages buffered per subscriber before the reader task waits for it.
const BUFFER: usize = 4;

/// The last durable position of a store, and whether it has closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub position: Position,
    pub closed: bool,
}

/// Publishes `position` as durable, never moving the head back (nor a
/// closed one): for backends whose head other processes also move.
#[cfg_attr(
    not(any(feature = "postgres", feature = "kurrentdb")),
    allow(dead_code)
)]
pub(crate) fn advance(head: &watch::Sender<Head>, position: Position) {
    head.send_if_modified(|h| {
        if position > h.position && !h.closed {
            h.position = position;
            true
        } else {
            false
        }
    });
}

/// `Closed` once the store behind `head` has closed.
#[cfg_attr(
    not(any(feature = "postgres", feature = "kurrentdb")),
    allow(dead_code)
)]
pub(crate) fn ensure_open(head: &watch::Sender<Head>) -> Result<(), StoreError> {
    if head.borrow().closed {
        Err(StoreError::Closed)
    } else {
        Ok(())
    }
}

/// What the reader task hands over: whole pages, so the channel costs one
/// synchronisation per page rather than one per event.
enum Batch {
    Events(Vec<RecordedEvent>),
    CaughtUp(Position),
    Failed(StoreError),
}

/// Starts a subscription reading `store` from `from`.
///
/// Must be called within a Tokio runtime. The reader task ends when the
/// subscriber drops the stream, when the store closes, or after reporting
/// an error.
pub(crate) fn catch_up_then_live<S: EventStore + Clone>(
    store: S,
    head: watch::Receiver<Head>,
    recent: Arc<Recent>,
    from: Position,
) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(read_pages(
        store,
        head,
        recent,
        from.max(Position::START),
        tx,
    ));
    Box::pin(Pages {
        rx,
        ready: VecDeque::new(),
    })
}

async fn read_pages<S: EventStore>(
    store: S,
    mut head: watch::Receiver<Head>,
    recent: Arc<Recent>,
    mut next: Position,
    tx: mpsc::Sender<Batch>,
) {
    let mut caught_up = false;
    loop {
        let known = *head.borrow_and_update();
        if known.closed {
            return;
        }
        if next <= known.position {
            let held = recent.range(next, known.position, PAGE);
            let mut page = match held {
                Some(page) => page,
                None => match store.read_all(next, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Batch::Failed(e)).await;
                        return;
                    }
                },
            };
            // Everything up to the head is committed, so the page must
            // start at `next` and run without a hole.
            let contiguous = page
                .iter()
                .zip(next.0..)
                .take_while(|(e, want)| e.position.0 == *want)
                .count();
            let hole = match page.get(contiguous) {
                Some(after) => Some(after.position),
                None if page.is_empty() => Some(next),
                None => None,
            };
            page.truncate(contiguous);
            next = Position(next.0 + contiguous as u64);
            if !page.is_empty() && tx.send(Batch::Events(page)).await.is_err() {
                return;
            }
            if let Some(found) = hole {
                let _ = tx.send(Batch::Failed(missing(next, found))).await;
                return;
            }
            continue;
        }
        if !caught_up {
            caught_up = true;
            if tx
                .send(Batch::CaughtUp(Position(next.0 - 1)))
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
        }
    }
}

fn missing(expected: Position, found: Position) -> StoreError {
    StoreError::Corrupt {
        at: format!("position {expected}"),
        reason: if expected == found {
            "the event is missing although the head is past it".to_owned()
        } else {
            format!("the log jumps to position {found}; events were removed")
        },
    }
}

/// The subscriber's side: hands out the pages one message at a time.
struct Pages {
    rx: mpsc::Receiver<Batch>,
    ready: VecDeque<RecordedEvent>,
}

impl Stream for Pages {
    type Item = Result<SubscriptionMessage, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(SubscriptionMessage::Event(event))));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Batch::Events(page))) => self.ready.extend(page),
                Poll::Ready(Some(Batch::CaughtUp(at))) => {
                    return Poll::Ready(Some(Ok(SubscriptionMessage::CaughtUp(at))));
                }
                Poll::Ready(Some(Batch::Failed(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventMetadata, EventType, NewEvent, StreamId};

    fn recorded(positions: std::ops::RangeInclusive<u64>) -> Vec<RecordedEvent> {
        let stream = StreamId::parse("s").unwrap();
        let events = positions
            .clone()
            .map(|_| {
                NewEvent::from_json_text(
                    EventType::parse("E").unwrap(),
                    1,
                    "{}",
                    &EventMetadata::new("t"),
                )
                .unwrap()
            })
            .collect();
        let before = crate::chain::LogCheckpoint {
            position: Position(positions.start() - 1),
            ..crate::chain::LogCheckpoint::EMPTY
        };
        crate::chain::link(&stream, None, before, events)
    }

    #[test]
    fn recent_events_serve_a_contiguous_range_or_nothing() {
        let recent = Recent::default();
        recent.committed(recorded(1..=3));
        let got = |from, to, limit| {
            recent
                .range(Position(from), Position(to), limit)
                .map(|page| page.iter().map(|e| e.position.0).collect::<Vec<_>>())
        };
        assert_eq!(got(2, 3, 10), Some(vec![2, 3]));
        assert_eq!(got(1, 3, 2), Some(vec![1, 2]), "at most the limit");
        assert_eq!(got(2, 4, 10), None, "position 4 is not held");
        // Another process wrote 4..=6: a commit at 7 starts a new run.
        recent.committed(recorded(7..=8));
        assert_eq!(got(3, 8, 10), None, "3 is no longer held");
        assert_eq!(got(7, 8, 10), Some(vec![7, 8]));
    }

    #[test]
    fn recent_events_are_bounded() {
        let recent = Recent::default();
        recent.committed(recorded(1..=(RECENT_EVENTS as u64 + 10)));
        assert_eq!(recent.range(Position(1), Position(2), 10), None);
        let last = RECENT_EVENTS as u64 + 10;
        assert_eq!(
            recent
                .range(Position(11), Position(last), usize::MAX)
                .map(|p| p.len()),
            Some(RECENT_EVENTS)
        );
    }
}
