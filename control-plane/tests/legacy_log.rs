//! Old logs still read: a log written by the real binaries before the
//! vocabulary moved into `sealplane-proto` and the reactor feed became
//! typed (`tests/fixtures/log-2026-12-01`, see its README) verifies,
//! rebuilds the same read model, and every event a reactor needs turns
//! into its typed feed message — including a failure recorded with the
//! old "one-time key lost" reason and no kind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sealplane_control_plane::application::reactor_feed::feed_event;
use sealplane_control_plane::config::Limits;
use sealplane_control_plane::domain::names::SecretUri;
use sealplane_control_plane::domain::upload::{FailureKind, UploadEvent};
use sealplane_control_plane::server;
use sealplane_event_store::{EmbeddedStore, EventStore, Position, verify_log};
use sealplane_proto::feed::{FeedEvent, UploadOutcome};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/log-2026-12-01");

/// A private copy of the fixture log, opened.
fn open_copy(dir: &Path) -> Arc<dyn EventStore> {
    let path = dir.join("events.db");
    std::fs::copy(Path::new(FIXTURE).join("events.db"), &path).unwrap();
    Arc::new(EmbeddedStore::open(&path).unwrap())
}

fn fixture_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn an_old_log_verifies_and_rebuilds_the_read_model_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path());
    assert_eq!(verify_log(&*store).await.unwrap(), 71);
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();

    // The secrets, versions and hashes `sealctl get secrets` showed then.
    let expected = fixture_json("secrets.json");
    let (secrets, progress) = assembled.app.model.read(|m| {
        m.secrets
            .iter()
            .filter(|(_, s)| s.exists() && !s.versions().is_empty())
            .map(|(uri, s)| {
                let last = s.versions().last().unwrap();
                (
                    uri.to_string(),
                    (last.version, last.hash.to_string(), s.is_deleted()),
                )
            })
            .collect::<BTreeMap<_, _>>()
    });
    assert_eq!(progress.position, Position(71));
    let then: BTreeMap<_, _> = expected["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["uri"].as_str().unwrap().to_owned(),
                (
                    s["version"].as_u64().unwrap(),
                    s["hash"].as_str().unwrap().to_owned(),
                    s["deleted"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(secrets, then);

    // Every version's hash as `describe` showed them.
    let described = fixture_json("describe-alice-db.json");
    let db = SecretUri::parse("local://alice/db").unwrap();
    let (hashes, _) = assembled.app.model.read(|m| {
        let secret = m.secrets.get(&db).unwrap();
        secret
            .versions()
            .iter()
            .map(|v| v.hash.to_string())
            .collect::<Vec<_>>()
    });
    let then_hashes: Vec<String> = described["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hash"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hashes, then_hashes);
}

#[tokio::test]
async fn every_old_event_a_reactor_needs_becomes_a_typed_feed_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_copy(dir.path());
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let events = store.read_all(Position::START, 1000).await.unwrap();
    assert_eq!(events.len(), 71);

    let mut kinds: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failures = vec![];
    for recorded in &events {
        let fed = feed_event(recorded, |id| {
            assembled.app.model.read(|m| m.upload_store(id).cloned()).0
        });
        let event_type = recorded.event_type.as_str();
        let wanted = matches!(
            event_type,
            "SecretUploadKeyRequested"
                | "SecretUploadKeyProvided"
                | "SecretUploadRequested"
                | "SecretUploaded"
                | "SecretVerified"
                | "SecretUploadFailed"
                | "SecretUploadKeyExpired"
                | "SecretDeletionRequested"
                | "SecretDeleted"
        );
        // A reactor is told exactly what concerns it, nothing is lost.
        assert_eq!(
            fed.is_some(),
            wanted,
            "{event_type} at {}",
            recorded.position
        );
        let Some((store, event)) = fed else { continue };
        assert!(["local", "idle"].contains(&store.as_str()), "{store}");
        let kind = match event {
            FeedEvent::KeyRequested { .. } => "key requested",
            FeedEvent::KeyProvided { .. } => "key provided",
            FeedEvent::UploadRequested { ciphertext, .. } => {
                assert!(ciphertext.len() > 48, "the sealed box, decoded");
                "upload requested"
            }
            FeedEvent::Ended { outcome, .. } => match outcome {
                UploadOutcome::Uploaded => "uploaded",
                UploadOutcome::Verified => "verified",
                UploadOutcome::Failed => "failed",
                UploadOutcome::Expired => "expired",
                UploadOutcome::Unchanged => "unchanged",
                UploadOutcome::Resealed => "resealed",
            },
            FeedEvent::DeletionRequested { .. } => "deletion requested",
            FeedEvent::Deleted { .. } => "deleted",
            // Sealed files are newer than this log.
            FeedEvent::SealedSubmitted(_) => "sealed file",
            FeedEvent::RotationRequested { .. } => "rotation requested",
            FeedEvent::KeyRetired { .. } => "key retired",
        };
        *kinds.entry(kind).or_default() += 1;
        if event_type == "SecretUploadFailed" {
            let old: UploadEvent = recorded.data.deserialize().unwrap();
            failures.push(old.failure_kind());
        }
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("key requested", 10),
            ("key provided", 9),
            ("upload requested", 9),
            ("uploaded", 6),
            ("verified", 2),
            ("failed", 1),
            ("expired", 1),
            ("deletion requested", 2),
            ("deleted", 2),
        ])
    );
    // Recorded without a kind; read as the key-lost failure it was, so
    // sealctl still retries it.
    assert_eq!(failures, [Some(FailureKind::KeyLost)]);
}
