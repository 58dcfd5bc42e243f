//! Paging, the upload-request lookups and following, over a memory store.

use std::sync::Arc;
use std::time::Duration;

use sealplane_event_store::{EventMetadata, EventStore, ExpectedVersion, MemoryStore, Position};
use uuid::Uuid;

use super::filter::{AuditFilter, LogPoint};
use super::*;
use crate::command::encode;
use crate::config::Limits;
use crate::domain::names::{SecretUri, Slug};
use crate::domain::upload::{Purpose, UploadEvent};
use crate::domain::{Actor, Role};
use crate::server;
use crate::streams;

async fn append(store: &Arc<dyn EventStore>, id: Uuid, event: UploadEvent) {
    let event = encode(&event, &EventMetadata::new("alice")).unwrap();
    store
        .append(&streams::upload(id), ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
}

fn requested(id: Uuid, n: usize) -> UploadEvent {
    let uri = SecretUri::parse(&format!("local://alice/s{}", n % 3)).unwrap();
    UploadEvent::SecretUploadKeyRequested {
        request_id: id,
        store: uri.store.clone(),
        uri,
        requester: Slug::parse("alice").unwrap(),
        purpose: Purpose::Put { adopt: false },
        expires_at: chrono::Utc::now(),
    }
}

fn sealed(id: Uuid) -> UploadEvent {
    UploadEvent::SecretUploadRequested {
        request_id: id,
        ciphertext: "AAAA".into(),
    }
}

async fn next(rx: &mut mpsc::Receiver<Result<AuditEntry, AuditEnd>>) -> Option<AuditEntry> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the audit read stalled")
        .map(|r| r.expect("the audit read failed"))
}

#[tokio::test]
async fn pages_resolve_requests_begun_before_since_then_follow_live() {
    // Given 600 key requests, then their 600 sealed uploads (beyond a page)
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let ids: Vec<Uuid> = (0..600).map(|_| Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        append(&store, *id, requested(*id, n)).await;
    }
    for id in &ids {
        append(&store, *id, sealed(*id)).await;
    }
    // Kept: dropping it would be the shutdown signal.
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let app = assembled.app.clone();
    let auditor = Actor {
        slug: Slug::parse("carol").unwrap(),
        role: Role::Auditor,
        groups: vec![],
        stores: vec![],
    };
    // When an auditor follows one secret's events from position 601 on
    let filter = AuditFilter {
        since: Some(LogPoint::Position(601)),
        secret: Some(SecretUri::parse("local://alice/s0").unwrap()),
        follow: true,
        ..AuditFilter::default()
    };
    let head = record_read(&app, &auditor, &filter).await.unwrap();
    assert_eq!(head, Position(1201), "the read is recorded first");
    let mut rx = stream(&app, filter, head);
    // Then it gets that secret's 200 uploads, each naming the secret
    // although its request began before `since`
    for n in (0..600).step_by(3) {
        let entry = next(&mut rx).await.unwrap();
        assert_eq!(entry.position, 601 + n as u64);
        assert_eq!(entry.request_id, Some(ids[n]));
        assert!(
            entry.details.contains("for local://alice/s0"),
            "{}",
            entry.details
        );
    }
    // ...and, live, a new one appended after the read started
    append(&store, ids[3], sealed(ids[3])).await;
    append(&store, ids[1], sealed(ids[1])).await;
    let live = next(&mut rx).await.unwrap();
    assert_eq!(live.position, 1202);
    assert!(rx.try_recv().is_err(), "s1's upload is not s0's");
}

#[tokio::test]
async fn a_read_without_follow_ends_at_its_own_record() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let id = Uuid::new_v4();
    append(&store, id, requested(id, 0)).await;
    // Kept: dropping it would be the shutdown signal.
    let assembled = server::app(store.clone(), Limits::default()).await.unwrap();
    let app = assembled.app.clone();
    let admin = Actor {
        slug: Slug::parse("admin").unwrap(),
        role: Role::Admin,
        groups: vec![],
        stores: vec![],
    };
    let filter = AuditFilter {
        until: Some(LogPoint::Position(99)),
        ..AuditFilter::default()
    };
    let head = record_read(&app, &admin, &filter).await.unwrap();
    let mut rx = stream(&app, filter, head);
    let first = next(&mut rx).await.unwrap();
    assert_eq!(first.event_type, "SecretUploadKeyRequested");
    let own = next(&mut rx).await.unwrap();
    assert_eq!(
        (own.event_type.as_str(), own.details.as_str()),
        (
            "AuditLogRead",
            "admin read the audit log (until position 99)"
        )
    );
    append(&store, id, sealed(id)).await;
    assert_eq!(
        next(&mut rx).await,
        None,
        "ends at the head it started with"
    );
}
