//! A report cut short: the reactor's `ReportUploaded` records the upload's
//! outcome, then the secret's version, in two appends. A control plane
//! that dies between them leaves an outcome without a version, and the
//! put's `sealctl` waits for a version that never comes. The sweep heals
//! it (and only it) once the grace has passed. The real read model and
//! command handler over a memory store; the failover end-to-end test
//! plays the reactor side with real processes.

use std::sync::Arc;

use chrono::{Duration as TimeDelta, Utc};
use sealplane_control_plane::application::App;
use sealplane_control_plane::application::upload::{
    UNRECORDED_VERSION_GRACE, record_unrecorded_versions,
};
use sealplane_control_plane::command::{CommandEnvelope, encode};
use sealplane_control_plane::config::Limits;
use sealplane_control_plane::domain::names::{SecretUri, Slug, StoreName};
use sealplane_control_plane::domain::secret::{Secret, SecretCommand};
use sealplane_control_plane::domain::upload::{Purpose, UploadEvent};
use sealplane_control_plane::domain::{Actor, Context, Role};
use sealplane_control_plane::{server, streams};
use sealplane_event_store::{EventMetadata, EventStore, ExpectedVersion, MemoryStore};
use uuid::Uuid;

fn actor(slug: &str, role: Role) -> Actor {
    Actor {
        slug: Slug::parse(slug).unwrap(),
        role,
        groups: vec![],
        stores: vec![],
    }
}

/// Records, as they would be, a request for `uri` that the reactor
/// reported uploaded as `version` at `ended` — without the secret's
/// version (the report's second append never happened).
async fn uploaded_without_version(
    store: &Arc<dyn EventStore>,
    uri: &SecretUri,
    version: u64,
    ended: chrono::DateTime<Utc>,
) -> Uuid {
    let id = Uuid::new_v4();
    let at = |t| EventMetadata {
        timestamp: t,
        ..EventMetadata::new("reactor-0")
    };
    let events = [
        UploadEvent::SecretUploadKeyRequested {
            request_id: id,
            uri: uri.clone(),
            store: StoreName::parse("local").unwrap(),
            requester: Slug::parse("alice").unwrap(),
            purpose: Purpose::Put { adopt: false },
            expires_at: ended + TimeDelta::minutes(5),
        },
        UploadEvent::SecretUploaded {
            request_id: id,
            uri: uri.clone(),
            version,
            hash: format!("hmac-sha256-v2:e2e:{}", "ab".repeat(32)),
            key_hashes: [(
                "password".to_owned(),
                format!("hmac-sha256-v2:e2e:{}", "cd".repeat(32)),
            )]
            .into(),
            upstream_ref: String::new(),
        },
    ];
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
    let cut_short = uploaded_without_version(&store, &uri, 1, now - TimeDelta::seconds(30)).await;
    let recent = uploaded_without_version(&store, &uri, 2, now - TimeDelta::seconds(1)).await;
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
