//! Catch-up-then-live subscriptions, shared by the backends.
//!
//! A backend publishes its head (the last durable position) on a watch
//! channel after every commit. A subscriber's reader task reads the log page
//! by page from its position until it reaches the head, says
//! [`SubscriptionMessage::CaughtUp`] once, then waits for the head to move
//! and reads again. Events are always read back from the store, never pushed
//! from memory, so a subscriber that falls behind cannot miss any, and
//! positions are checked to be contiguous so a hole is reported rather than
//! skipped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::{mpsc, watch};

use crate::event::{Position, RecordedEvent};
use crate::store::{EventStore, StoreError, Subscription, SubscriptionMessage};

/// Events read per page.
const PAGE: usize = 512;
/// Pages buffered per subscriber before the reader task waits for it.
const BUFFER: usize = 4;

/// The last durable position of a store, and whether it has closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub position: Position,
    pub closed: bool,
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
    from: Position,
) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(read_pages(store, head, from.max(Position::START), tx));
    Box::pin(Pages {
        rx,
        ready: VecDeque::new(),
    })
}

async fn read_pages<S: EventStore>(
    store: S,
    mut head: watch::Receiver<Head>,
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
            let mut page = match store.read_all(next, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Batch::Failed(e)).await;
                    return;
                }
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
