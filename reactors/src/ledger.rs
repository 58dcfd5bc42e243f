//! What the reactor still has to do, folded from the event feed (pure).
//!
//! The feed delivers the events of the reactor's stores at least once:
//! first the backlog from a checkpoint, then `caught_up`, then live events.
//! The ledger remembers every upload request and deletion that has not
//! ended, and says which [`Action`] each needs. While catching up it only
//! folds, so a request that already ended later in the log is never acted
//! on; at `caught_up` it hands out the actions still due; after that every
//! event yields its action at once. Each step of each request is acted on
//! at most once per process.
//!
//! Keys live only in the process that issued them (SPEC §1.5). A request
//! whose key was provided by an earlier run of the reactor (it restarted
//! mid-flight) can never be completed: the ledger asks for it to be
//! reported failed, and `sealctl` retries with a new request.
//!
//! The checkpoint is a low-water mark: the position of the oldest event of
//! any request or deletion still open, so a restart replays exactly what is
//! needed to rebuild this ledger. The feed's own checkpoints (nothing for
//! this reactor up to a position) move it on while the store is quiet.
//!
//! The events are the feed's typed messages (`sealplane_proto::feed`), the
//! same types the control plane builds them with: there is no mirror of
//! the control plane's events here to drift from it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sealplane_proto::feed::{FeedEvent, SealedSubmission};
use sealplane_proto::names::SecretUri;
pub use sealplane_proto::upload::Purpose;
use uuid::Uuid;

/// The facts of a request the reactor needs to serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The request.
    pub request_id: Uuid,
    /// `<store>://<path>`; the store is one of this reactor's.
    pub uri: SecretUri,
    /// Put or verify.
    pub purpose: Purpose,
    /// When the key stops being usable.
    pub expires_at: DateTime<Utc>,
}

/// Work for the reactor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Issue a one-time key, sign it and provide it (or report the request
    /// expired if it is already past its expiry).
    ProvideKey(RequestInfo),
    /// Open the sealed payload with this process's key and carry it out.
    Open {
        /// The request.
        request: RequestInfo,
        /// The sealed box.
        ciphertext: Vec<u8>,
    },
    /// Report the request failed: its key was issued by an earlier run.
    KeyLost(RequestInfo),
    /// Open a sealed file with a sealing key and apply (or reseal) it.
    OpenSealed {
        /// The request.
        request: RequestInfo,
        /// The file.
        file: SealedSubmission,
    },
    /// Make a new sealing key for `store`, unless one was made for the
    /// admin's request at `position` already.
    RotateSealingKey {
        /// The store.
        store: String,
        /// The request's log position.
        position: u64,
    },
    /// Destroy a retired sealing key.
    RetireSealingKey {
        /// The store.
        store: String,
        /// The key.
        key_id: String,
    },
    /// Delete (or destroy) the secret upstream and report it.
    Delete {
        /// The secret.
        uri: SecretUri,
        /// Destroy rather than soft-delete.
        destroy: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Requested,
    KeyProvided,
    Uploaded,
}

#[derive(Debug)]
struct OpenRequest {
    first_position: u64,
    info: RequestInfo,
    stage: Stage,
    ciphertext: Option<Vec<u8>>,
    /// A sealed file (its key is long-term: any run can open it).
    sealed: Option<SealedSubmission>,
    /// This process was asked to provide the key, so it holds it.
    key_issued_here: bool,
    /// The last stage an action was handed out for.
    acted: Option<Stage>,
}

#[derive(Debug)]
struct PendingDeletion {
    first_position: u64,
    destroy: bool,
    acted: bool,
}

/// The reactor's open requests and deletions.
#[derive(Debug)]
pub struct Ledger {
    requests: HashMap<Uuid, OpenRequest>,
    deletions: BTreeMap<SecretUri, PendingDeletion>,
    /// Sealing-key work seen while catching up, handed out at caught_up.
    key_work: Vec<Action>,
    /// The next position to ask the feed for.
    next: u64,
    live: bool,
}

impl Ledger {
    /// An empty ledger that resumes the feed at `from` (1 = the start).
    pub fn new(from: u64) -> Self {
        Ledger {
            requests: HashMap::new(),
            deletions: BTreeMap::new(),
            key_work: Vec::new(),
            next: from.max(1),
            live: false,
        }
    }

    /// The position to subscribe from (the one after the last event seen).
    pub fn resume_from(&self) -> u64 {
        self.next
    }

    /// The position a restarted reactor must replay from: the oldest event
    /// of anything still open, else the next position.
    pub fn checkpoint(&self) -> u64 {
        self.requests
            .values()
            .map(|r| r.first_position)
            .chain(self.deletions.values().map(|d| d.first_position))
            .min()
            .unwrap_or(self.next)
            .min(self.next)
    }

    /// Open upload requests (for status and tests).
    pub fn open_requests(&self) -> usize {
        self.requests.len()
    }

    /// The feed says nothing more concerns this reactor up to `position`
    /// (a checkpoint): the next subscription may start after it.
    pub fn covered(&mut self, position: u64) {
        self.next = self.next.max(position.saturating_add(1));
    }

    /// The feed (re)started: fold without acting until [`Ledger::caught_up`].
    pub fn resubscribed(&mut self) {
        self.live = false;
    }

    /// Folds the event at `position`; while live, returns the action it calls for.
    pub fn apply(&mut self, position: u64, event: FeedEvent) -> Option<Action> {
        if position < self.next {
            // A repeated delivery of something already folded.
            return None;
        }
        self.next = position + 1;
        let live = self.live;
        match event {
            FeedEvent::KeyRequested {
                request_id,
                uri,
                purpose,
                expires_at,
            } => {
                let request = self.requests.entry(request_id).or_insert(OpenRequest {
                    first_position: position,
                    info: RequestInfo {
                        request_id,
                        uri,
                        purpose,
                        expires_at,
                    },
                    stage: Stage::Requested,
                    ciphertext: None,
                    sealed: None,
                    key_issued_here: false,
                    acted: None,
                });
                live.then(|| due(request)).flatten()
            }
            FeedEvent::KeyProvided { request_id } => {
                let request = self.requests.get_mut(&request_id)?;
                request.stage = request.stage.max_with(Stage::KeyProvided);
                live.then(|| due(request)).flatten()
            }
            FeedEvent::UploadRequested {
                request_id,
                ciphertext,
            } => {
                let request = self.requests.get_mut(&request_id)?;
                request.stage = Stage::Uploaded;
                request.ciphertext = Some(ciphertext);
                live.then(|| due(request)).flatten()
            }
            FeedEvent::Ended { request_id, .. } => {
                self.requests.remove(&request_id);
                None
            }
            FeedEvent::DeletionRequested { uri, destroy } => {
                let pending = self
                    .deletions
                    .entry(uri.clone())
                    .or_insert(PendingDeletion {
                        first_position: position,
                        destroy,
                        acted: false,
                    });
                // A destroy asked while a delete is pending widens it.
                pending.destroy |= destroy;
                if live {
                    pending.acted = true;
                    Some(Action::Delete {
                        uri,
                        destroy: pending.destroy,
                    })
                } else {
                    None
                }
            }
            FeedEvent::Deleted { uri } => {
                self.deletions.remove(&uri);
                None
            }
            FeedEvent::SealedSubmitted(file) => {
                let request = self.requests.entry(file.request_id).or_insert(OpenRequest {
                    first_position: position,
                    info: RequestInfo {
                        request_id: file.request_id,
                        uri: file.uri.clone(),
                        purpose: Purpose::Put { adopt: false },
                        expires_at: file.expires_at,
                    },
                    stage: Stage::Uploaded,
                    ciphertext: None,
                    sealed: Some(file),
                    key_issued_here: true,
                    acted: None,
                });
                live.then(|| due(request)).flatten()
            }
            // Both are idempotent where they are carried out (a rotation
            // request makes one key, a retired key is gone), so they are
            // acted on also when replayed.
            FeedEvent::RotationRequested { store } => {
                self.key_work(Action::RotateSealingKey { store, position }, live)
            }
            FeedEvent::KeyRetired { store, key_id } => {
                self.key_work(Action::RetireSealingKey { store, key_id }, live)
            }
        }
    }

    fn key_work(&mut self, action: Action, live: bool) -> Option<Action> {
        if live {
            return Some(action);
        }
        self.key_work.push(action);
        None
    }

    /// The backlog is folded: go live and return every action still due.
    pub fn caught_up(&mut self) -> Vec<Action> {
        self.live = true;
        let mut open: Vec<&mut OpenRequest> = self.requests.values_mut().collect();
        open.sort_by_key(|r| r.first_position);
        // Keys first: a retirement in the backlog must not leave a key to
        // open a file submitted after it.
        let mut actions: Vec<Action> = std::mem::take(&mut self.key_work);
        actions.extend(open.into_iter().filter_map(due));
        for (uri, pending) in &mut self.deletions {
            if !pending.acted {
                pending.acted = true;
                actions.push(Action::Delete {
                    uri: uri.clone(),
                    destroy: pending.destroy,
                });
            }
        }
        actions
    }
}

impl Stage {
    fn max_with(self, other: Stage) -> Stage {
        if self == Stage::Uploaded { self } else { other }
    }
}

/// The action `request` needs at its stage, unless already handed out.
fn due(request: &mut OpenRequest) -> Option<Action> {
    if request.acted == Some(request.stage) {
        return None;
    }
    if let (Stage::Uploaded, Some(file)) = (request.stage, &request.sealed) {
        let action = Action::OpenSealed {
            request: request.info.clone(),
            file: file.clone(),
        };
        request.acted = Some(Stage::Uploaded);
        return Some(action);
    }
    let action = match request.stage {
        Stage::Requested => {
            request.key_issued_here = true;
            Action::ProvideKey(request.info.clone())
        }
        // Waiting for the upload: nothing to do if the key is ours.
        Stage::KeyProvided if request.key_issued_here => return None,
        Stage::KeyProvided => Action::KeyLost(request.info.clone()),
        Stage::Uploaded if request.key_issued_here => Action::Open {
            request: request.info.clone(),
            ciphertext: request.ciphertext.clone().unwrap_or_default(),
        },
        // Lost already reported at KeyProvided: the report ends it.
        Stage::Uploaded if request.acted == Some(Stage::KeyProvided) => return None,
        Stage::Uploaded => Action::KeyLost(request.info.clone()),
    };
    request.acted = Some(request.stage);
    Some(action)
}

#[cfg(test)]
mod tests;
