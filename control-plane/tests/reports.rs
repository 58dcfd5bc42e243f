//! The reactor's `ReportUploaded` records the upload's outcome and the
//! secret's version in one append (ADR 0027): both or neither. A log
//! written before that, in two appends, can hold an outcome without a
//! version (its control plane died between them), and the put's `sealctl`
//! waits for a version that never comes. The sweep heals it (and only it)
//! once the grace has passed. The real read model and command handler over
//! a memory store; the failover end-to-end test plays the reactor side
//! with real processes.

use std::sync::Arc;

use chrono::{Duration as TimeDelta, Utc};
use sealplane_control_plane::application::upload::{
    UNRECORDED_VERSION_GRACE, Uploaded, record_unrecorded_versions, report_uploaded,
};
use sealplane_control_plane::application::{App, UseCaseError};
use sealplane_control_plane::command::{CommandEnvelope, Executed, encode};
use sealplane_control_plane::config::Limits;
use sealplane_control_plane::domain::names::{SecretUri, Slug, StoreName};
use sealplane_control_plane::domain::secret::{Secret, SecretCommand};
use sealplane_control_plane::domain::upload::{Purpose, UploadEvent};
use sealplane_control_plane::domain::{Actor, Context, Role};
use sealplane_control_plane::{server, streams};
use sealplane_event_store::{
    AppendError, Appended, Decorator, EventMetadata, EventStore, ExpectedVersion, MemoryStore,
    StoreError, StreamAppend,
};
use uuid::Uuid;

fn actor(slug: &str, role: Role) -> Actor {
    Actor {
        slug: Slug::parse(slug).unwrap(),
        role,
        groups: vec![],
        stores: vec![],
    }
}

/// Records, as they would be, a request of alice's for `uri` ending at
/// `ended` with `then` after its key request.
async fn request_with(
    store: &dyn EventStore,
    uri: &SecretUri,
    ended: chrono::DateTime<Utc>,
    then: impl FnOnce(Uuid) -> Vec<UploadEvent>,
) -> Uuid {
    let id = Uuid::new_v4();
    let at = |t| EventMetadata {
        timestamp: t,
        ..EventMetadata::new("reactor-0")
    };
    let mut events = vec![UploadEvent::SecretUploadKeyRequested {
        request_id: id,
        uri: uri.clone(),
        store: StoreName::parse("local").unwrap(),
        requester: Slug::parse("alice").unwrap(),
        purpose: Purpose::Put { adopt: false },
        expires_at: ended + TimeDelta::minutes(5),
    }];
    events.extend(then(id));
    let events = events
        .iter()
        .map(|e| encode(e, &at(ended)).unwrap())
        .collect();
    store
        .append(&streams::upload(id), ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    id
}

fn hash(byte: &str) -> String {
    format!("hmac-sha256-v2:e2e:{}", byte.repeat(32))
}

/// Records, as they would be, a request for `uri` that the reactor
/// reported uploaded as `version` at `ended` — without the secret's
/// version (the second of the two appends of an earlier version never
/// happened).
async fn uploaded_without_version(
    store: &dyn EventStore,
    uri: &SecretUri,
    version: u64,
    ended: chrono::DateTime<Utc>,
) -> Uuid {
    request_with(store, uri, ended, |id| {
        vec![UploadEvent::SecretUploaded {
            request_id: id,
            uri: uri.clone(),
            version,
            hash: hash("ab"),
            key_hashes: [("password".to_owned(), hash("cd"))].into(),
            upstream_ref: String::new(),
        }]
    })
    .await
}

/// Records a request for `uri` whose sealed value was uploaded, waiting
/// for the reactor's report.
async fn uploading(store: &dyn EventStore, uri: &SecretUri) -> Uuid {
    request_with(store, uri, Utc::now(), |id| {
        vec![
            UploadEvent::SecretUploadKeyProvided {
                request_id: id,
                public_key: "a2V5".into(),
                signature: "c2ln".into(),
                expires_at: Utc::now() + TimeDelta::minutes(5),
            },
            UploadEvent::SecretUploadRequested {
                request_id: id,
                ciphertext: "c2VhbGVk".into(),
            },
        ]
    })
    .await
}

fn versions(app: &App, uri: &SecretUri) -> Vec<(u64, Uuid)> {
    app.model
        .read(|m| {
            m.secrets
                .get(uri)
                .map(|s| {
                    s.versions()
                        .iter()
                        .map(|v| (v.version, v.request_id))
                        .collect()
                })
                .unwrap_or_default()
        })
        .0
}

#[tokio::test]
async fn an_upload_whose_version_was_never_recorded_is_healed_once_after_the_grace() {
    // Given alice's secret and two uploads reported without their version:
    // one long enough ago, one just now (its report may still be on its way)
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let app = assembled.app.clone();
    let uri = SecretUri::parse("local://alice/db").unwrap();
    let alice = actor("alice", Role::User);
    app.execute::<Secret>(
        &streams::secret(&uri),
        &SecretCommand::PrepareWrite { uri: uri.clone() },
        &Context {
            actor: alice,
            now: Utc::now(),
        },
        &CommandEnvelope::new("PrepareWrite"),
    )
    .await
    .unwrap();
    let now = Utc::now();
    let cut_short = uploaded_without_version(&*store, &uri, 1, now - TimeDelta::seconds(30)).await;
    let recent = uploaded_without_version(&*store, &uri, 2, now - TimeDelta::seconds(1)).await;
    app.model
        .wait_for(
            store.head().await.unwrap(),
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(versions(&app, &uri).is_empty());

    // When the sweep heals
    let healer = actor("control-plane", Role::Admin);
    let healed = record_unrecorded_versions(&app, &healer, now).await;

    // Then the old one has its version, the recent one is left to its report
    assert_eq!(healed, vec![cut_short]);
    assert_eq!(versions(&app, &uri), vec![(1, cut_short)]);
    // And a second sweep records nothing twice
    assert!(
        record_unrecorded_versions(&app, &healer, now)
            .await
            .is_empty()
    );
    // Once past the grace, the recent one is healed too
    let later = now + UNRECORDED_VERSION_GRACE;
    assert_eq!(
        record_unrecorded_versions(&app, &healer, later).await,
        vec![recent]
    );
    assert_eq!(versions(&app, &uri), vec![(1, cut_short), (2, recent)]);
}

/// The app with alice's secret `local://alice/db` created, and its store.
async fn alice_with_a_secret() -> (server::Assembled, MemoryStore, SecretUri) {
    let store = MemoryStore::new();
    let assembled = server::app(Arc::new(store.clone()), Limits::default())
        .await
        .unwrap();
    let uri = SecretUri::parse("local://alice/db").unwrap();
    assembled
        .app
        .execute::<Secret>(
            &streams::secret(&uri),
            &SecretCommand::PrepareWrite { uri: uri.clone() },
            &Context {
                actor: actor("alice", Role::User),
                now: Utc::now(),
            },
            &CommandEnvelope::new("PrepareWrite"),
        )
        .await
        .unwrap();
    (assembled, store, uri)
}

fn reactor() -> Actor {
    Actor {
        stores: vec![StoreName::parse("local").unwrap()],
        ..actor("reactor-0", Role::Reactor)
    }
}

/// The reactor's report that request `id` was stored as version 1.
async fn reported(
    app: &App,
    id: Uuid,
    envelope: &CommandEnvelope,
) -> Result<Executed, UseCaseError> {
    let report = Uploaded {
        version: 1,
        hash: hash("ab"),
        key_hashes: [("password".to_owned(), hash("cd"))].into(),
        upstream_ref: String::new(),
    };
    report_uploaded(app, &reactor(), id, report, envelope).await
}

#[tokio::test]
async fn a_report_records_the_outcome_and_the_version_in_one_append() {
    // Given an upload waiting for its report
    let (assembled, store, uri) = alice_with_a_secret().await;
    let id = uploading(&store, &uri).await;
    let before = store.head().await.unwrap();
    // When the reactor reports it stored
    let envelope = CommandEnvelope::new("ReportUploaded");
    let done = reported(&assembled.app, id, &envelope).await.unwrap();
    // Then the outcome and the version follow each other in the log, and
    // the read model shows the version once the report returns
    let after = store.read_all(before.next(), 10).await.unwrap();
    let types: Vec<_> = after.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["SecretUploaded", "SecretVersionAdded"]);
    assert_eq!(done.position, Some(after[1].position));
    assert_eq!(versions(&assembled.app, &uri), vec![(1, id)]);
    // And a repeated report writes nothing more
    let again = reported(&assembled.app, id, &envelope).await.unwrap();
    assert!(again.replayed);
    assert_eq!(store.head().await.unwrap(), after[1].position);
}

/// A store that fails every append carrying a secret's new version, as a
/// disk that fills or a database that goes away just then.
struct FailsOnVersions(MemoryStore);

#[async_trait::async_trait]
impl Decorator for FailsOnVersions {
    fn inner(&self) -> &dyn EventStore {
        &self.0
    }
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        let version = parts
            .iter()
            .flat_map(|p| &p.events)
            .any(|e| e.event_type().as_str() == "SecretVersionAdded");
        if version {
            let full = std::io::Error::other("no space left on device");
            return Err(StoreError::backend(full).into());
        }
        self.0.append_many(parts).await
    }
}

#[tokio::test]
async fn a_report_the_store_fails_to_record_leaves_no_outcome_without_its_version() {
    // Given an upload waiting for its report, on a store that fails to
    // write the secret's version
    let (assembled, store, uri) = alice_with_a_secret().await;
    let id = uploading(&store, &uri).await;
    let before = store.head().await.unwrap();
    let failing: Arc<dyn EventStore> = Arc::new(FailsOnVersions(store.clone()));
    let app = server::app(failing, Limits::default()).await.unwrap().app;
    // When the reactor reports it stored
    let refused = reported(&app, id, &CommandEnvelope::new("ReportUploaded")).await;
    // Then the report fails, and the request is not left ended without a
    // version: nothing was written, and the reactor's retry can record both
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(store.head().await.unwrap(), before);
    let done = reported(&assembled.app, id, &CommandEnvelope::new("ReportUploaded"))
        .await
        .unwrap();
    assert_eq!(done.events, 2);
    assert_eq!(versions(&assembled.app, &uri), vec![(1, id)]);
}
