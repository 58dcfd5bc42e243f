use std::sync::Arc;

use chrono::{TimeZone as _, Utc};
use sealplane_event_store::{EventMetadata, EventStore, ExpectedVersion, MemoryStore, StreamId};
use sealplane_proto::feed::FeedEvent;
use sealplane_proto::upload::{FailureKind, Purpose};
use uuid::Uuid;

use super::*;
use crate::command::encode;
use crate::config::Limits;
use crate::domain::DomainEvent;
use crate::domain::names::{SecretUri, Slug};
use crate::domain::secret::{AccessList, SecretEvent};
use crate::domain::upload::UploadEvent;
use crate::server;

const RID: Uuid = Uuid::from_u128(7);

fn uri(text: &str) -> SecretUri {
    SecretUri::parse(text).unwrap()
}

#[test]
fn every_upload_event_tells_its_reactor_what_it_needs() {
    let expires = Utc.with_ymd_and_hms(2030, 1, 1, 0, 5, 0).unwrap();
    let u = uri("local://alice/db");
    let cases = [
        (
            UploadEvent::SecretUploadKeyRequested {
                request_id: RID,
                uri: u.clone(),
                store: u.store.clone(),
                requester: Slug::parse("alice").unwrap(),
                purpose: Purpose::Put { adopt: true },
                expires_at: expires,
            },
            FeedEvent::KeyRequested {
                request_id: RID,
                uri: u.clone(),
                purpose: Purpose::Put { adopt: true },
                expires_at: expires,
            },
        ),
        (
            UploadEvent::SecretUploadKeyProvided {
                request_id: RID,
                public_key: "k".into(),
                signature: "s".into(),
                expires_at: expires,
            },
            FeedEvent::KeyProvided { request_id: RID },
        ),
        (
            UploadEvent::SecretUploadRequested {
                request_id: RID,
                ciphertext: "AQID".into(),
            },
            FeedEvent::UploadRequested {
                request_id: RID,
                ciphertext: vec![1, 2, 3],
            },
        ),
        (
            UploadEvent::SecretVerified {
                request_id: RID,
                uri: u.clone(),
                matches: true,
            },
            FeedEvent::Ended {
                request_id: RID,
                outcome: UploadOutcome::Verified,
            },
        ),
        (
            UploadEvent::SecretUploadFailed {
                request_id: RID,
                reason: "r".into(),
                kind: Some(FailureKind::Upstream),
            },
            FeedEvent::Ended {
                request_id: RID,
                outcome: UploadOutcome::Failed,
            },
        ),
        (
            UploadEvent::SecretUploadKeyExpired { request_id: RID },
            FeedEvent::Ended {
                request_id: RID,
                outcome: UploadOutcome::Expired,
            },
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(
            upload_feed_event(&event),
            expected,
            "{}",
            event.event_type()
        );
    }
}

#[test]
fn only_deletions_of_a_secret_reach_its_reactor() {
    let u = uri("local://alice/db");
    assert_eq!(
        secret_feed_event(&SecretEvent::SecretDeletionRequested {
            uri: u.clone(),
            destroy: true,
            by: Slug::parse("alice").unwrap(),
        }),
        Some(FeedEvent::DeletionRequested {
            uri: u.clone(),
            destroy: true
        })
    );
    assert_eq!(
        secret_feed_event(&SecretEvent::SecretDeleted {
            uri: u.clone(),
            destroyed: false,
        }),
        Some(FeedEvent::Deleted { uri: u })
    );
    assert_eq!(
        secret_feed_event(&SecretEvent::AccessGranted {
            list: AccessList::Readers,
            slug: Slug::parse("bob").unwrap(),
        }),
        None
    );
}

async fn append_deletion(store: &Arc<dyn EventStore>, text: &str) {
    let u = uri(text);
    let event = SecretEvent::SecretDeletionRequested {
        uri: u.clone(),
        destroy: false,
        by: Slug::parse("alice").unwrap(),
    };
    store
        .append(
            &StreamId::parse(format!("secret-{u}")).unwrap(),
            ExpectedVersion::Any,
            vec![encode(&event, &EventMetadata::new("alice")).unwrap()],
        )
        .await
        .unwrap();
}

async fn next(feed: &mut mpsc::Receiver<Result<Sent, FeedEnd>>) -> FeedMessage {
    tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("the feed stalled")
        .expect("the feed ended")
        .expect("the feed failed")
        .message
}

#[tokio::test]
async fn a_reactor_sees_only_its_stores_and_checkpoints_past_the_rest() {
    // Given a log where only another store's secrets changed...
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    for n in 0..5 {
        append_deletion(&store, &format!("other://alice/s{n}")).await;
    }
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let local = StoreName::parse("local").unwrap();
    let mut feed = follow(assembled.app.clone(), vec![local.clone()], Position(1));

    // ...the reactor of `local` is caught up at once, past all of it.
    assert_eq!(next(&mut feed).await, FeedMessage::CaughtUp { position: 5 });

    // Live: more of the other store's events give a checkpoint once the
    // log is quiet, so a restart does not rescan them...
    append_deletion(&store, "other://alice/s5").await;
    append_deletion(&store, "other://alice/s6").await;
    let started = std::time::Instant::now();
    assert_eq!(
        next(&mut feed).await,
        FeedMessage::Checkpoint { position: 7 }
    );
    assert!(started.elapsed() >= CHECKPOINT_IDLE - Duration::from_millis(100));

    // ...and an event of its own store comes as it is.
    append_deletion(&store, "local://alice/db").await;
    assert_eq!(
        next(&mut feed).await,
        FeedMessage::Event {
            position: 8,
            event: FeedEvent::DeletionRequested {
                uri: uri("local://alice/db"),
                destroy: false
            }
        }
    );
}

#[tokio::test]
async fn a_long_run_of_other_stores_events_is_checkpointed_without_waiting() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let local = StoreName::parse("local").unwrap();
    let mut feed = follow(assembled.app.clone(), vec![local], Position(1));
    assert_eq!(next(&mut feed).await, FeedMessage::CaughtUp { position: 0 });
    for n in 0..CHECKPOINT_EVERY {
        append_deletion(&store, &format!("other://alice/s{n}")).await;
    }
    let started = std::time::Instant::now();
    assert_eq!(
        next(&mut feed).await,
        FeedMessage::Checkpoint {
            position: CHECKPOINT_EVERY
        }
    );
    assert!(
        started.elapsed() < CHECKPOINT_IDLE,
        "{:?}",
        started.elapsed()
    );
}

async fn append_upload(store: &Arc<dyn EventStore>, id: Uuid, event: UploadEvent, at: i64) {
    let mut metadata = EventMetadata::new("alice");
    metadata.timestamp = Utc.timestamp_opt(at, 0).unwrap();
    store
        .append(
            &crate::streams::upload(id),
            ExpectedVersion::Any,
            vec![encode(&event, &metadata).unwrap()],
        )
        .await
        .unwrap();
}

fn key_requested(id: Uuid, text: &str, at: i64) -> UploadEvent {
    let u = uri(text);
    UploadEvent::SecretUploadKeyRequested {
        request_id: id,
        store: u.store.clone(),
        uri: u,
        requester: Slug::parse("alice").unwrap(),
        purpose: Purpose::Put { adopt: false },
        expires_at: Utc.timestamp_opt(at + 300, 0).unwrap(),
    }
}

#[tokio::test]
async fn given_requests_the_read_model_no_longer_holds_when_a_feed_catches_up_then_it_still_filters_by_store()
 {
    // Given two requests, of `local` and of `other`, that ended hours
    // before the log's last event (so the read model dropped them)...
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let (mine, theirs, late) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let t = 1_900_000_000;
    append_upload(&store, mine, key_requested(mine, "local://alice/a", t), t).await;
    append_upload(
        &store,
        theirs,
        key_requested(theirs, "other://alice/b", t),
        t,
    )
    .await;
    for id in [mine, theirs] {
        let expired = UploadEvent::SecretUploadKeyExpired { request_id: id };
        append_upload(&store, id, expired, t + 300).await;
    }
    append_upload(
        &store,
        late,
        key_requested(late, "other://alice/c", t + 7200),
        t + 7200,
    )
    .await;
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let held = |id| assembled.app.model.read(|m| m.upload_store(&id).cloned()).0;
    assert_eq!((held(mine), held(theirs)), (None, None));

    // ...the reactor of `local` catching up from the start gets its own
    // request's events and none of the other store's.
    let local = StoreName::parse("local").unwrap();
    let mut feed = follow(assembled.app.clone(), vec![local], Position(1));
    assert_eq!(
        next(&mut feed).await,
        FeedMessage::Event {
            position: 1,
            event: upload_feed_event(&key_requested(mine, "local://alice/a", t)),
        }
    );
    assert_eq!(
        next(&mut feed).await,
        FeedMessage::Event {
            position: 3,
            event: FeedEvent::Ended {
                request_id: mine,
                outcome: UploadOutcome::Expired
            },
        }
    );
    assert_eq!(next(&mut feed).await, FeedMessage::CaughtUp { position: 5 });
}
