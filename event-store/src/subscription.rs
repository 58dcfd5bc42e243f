//! Catch-up-then-live subscriptions, shared by the backends.
//!
//! A backend publishes its head (the last durable position) on a watch
//! channel after every commit. A subscriber reads the log page by page from
//! its position until it reaches the head, says [`SubscriptionMessage::CaughtUp`]
//! once, then waits for the head to move and reads again. Events are always
//! read back from the store, never pushed from memory, so a subscriber that
//! falls behind cannot miss any, and positions are checked to be contiguous
//! so a gap is reported rather than skipped.

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::event::Position;
use crate::store::{EventStore, StoreError, Subscription, SubscriptionMessage};

/// Events read per page while catching up.
const PAGE: usize = 512;
/// Messages buffered per subscriber before the reader waits for it.
const BUFFER: usize = 256;

/// The last durable position of a store, and whether it has closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub position: Position,
    pub closed: bool,
}

/// Starts a subscription task reading `store` from `from`.
///
/// Must be called within a Tokio runtime. The task ends when the subscriber
/// drops the stream, when the store closes, or after reporting an error.
pub(crate) fn catch_up_then_live<S: EventStore + Clone>(
    store: S,
    mut head: watch::Receiver<Head>,
    from: Position,
) -> Subscription {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let mut next = from.max(Position::START);
        let mut caught_up = false;
        loop {
            let known = *head.borrow_and_update();
            if known.closed {
                return;
            }
            if next <= known.position {
                let page = match store.read_all(next, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                if page.is_empty() {
                    let _ = tx.send(Err(missing(next, next))).await;
                    return;
                }
                for event in page {
                    if event.position != next {
                        let _ = tx.send(Err(missing(next, event.position))).await;
                        return;
                    }
                    next = next.next();
                    if tx
                        .send(Ok(SubscriptionMessage::Event(event)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                continue;
            }
            if !caught_up {
                caught_up = true;
                let at = Position(next.0 - 1);
                if tx
                    .send(Ok(SubscriptionMessage::CaughtUp(at)))
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
    });
    Box::pin(ReceiverStream::new(rx))
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
