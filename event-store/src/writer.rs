//! The single writer of the backends that commit appends in groups (the
//! embedded store's thread, the PostgreSQL store's task): the queue
//! appenders wait in, and how the writer takes a group off it.

use tokio::sync::{mpsc, oneshot};

use crate::event::NewEvent;
use crate::store::{AppendError, Appended, MAX_BATCH_BYTES, StoreError, StreamAppend, check_parts};

/// Appends waiting in the writer's queue before appenders wait.
pub(crate) const QUEUE: usize = 1024;
/// Most appends committed together.
pub(crate) const GROUP_MAX_APPENDS: usize = 256;

/// What the writer answers one append: one [`Appended`] per part.
pub(crate) type Outcome = Result<Vec<Appended>, AppendError>;

/// One append waiting for the writer: its parts are written all or none.
pub(crate) struct Append {
    pub(crate) parts: Vec<StreamAppend>,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

impl Append {
    fn bytes(&self) -> usize {
        self.parts
            .iter()
            .flat_map(|p| &p.events)
            .map(NewEvent::size)
            .sum()
    }
}

/// The writer's queue; `None` once the store closed.
pub(crate) type Queue = std::sync::Mutex<Option<mpsc::Sender<Append>>>;

/// Hands an append to the writer and waits for its outcome.
pub(crate) async fn submit(queue: &Queue, parts: Vec<StreamAppend>) -> Outcome {
    check_parts(&parts)?;
    let writer = queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or(StoreError::Closed)?;
    let (reply, outcome) = oneshot::channel();
    writer
        .send(Append { parts, reply })
        .await
        .map_err(|_| StoreError::Closed)?;
    outcome.await.map_err(|_| StoreError::Closed)?
}

/// Fills `group` with `first` and every append already waiting, up to
/// [`GROUP_MAX_APPENDS`] and [`MAX_BATCH_BYTES`].
pub(crate) fn gather(first: Append, queue: &mut mpsc::Receiver<Append>, group: &mut Vec<Append>) {
    let mut bytes = first.bytes();
    group.push(first);
    while group.len() < GROUP_MAX_APPENDS && bytes < MAX_BATCH_BYTES {
        match queue.try_recv() {
            Ok(next) => {
                bytes += next.bytes();
                group.push(next);
            }
            Err(_) => break,
        }
    }
}

/// Answers every append of `group`, emptying it.
pub(crate) fn reply(group: &mut Vec<Append>, outcomes: Vec<Outcome>) {
    for (append, outcome) in group.drain(..).zip(outcomes) {
        let _ = append.reply.send(outcome);
    }
}

/// `n` as a SQL integer, saturating.
pub(crate) fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
