use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sealplane_event_store::{
    EventMetadata, EventStore, EventType, ExpectedVersion, MemoryStore, NewEvent, StreamId,
};
use uuid::Uuid;

use super::*;
use crate::domain::DomainEvent;
use crate::domain::Role;
use crate::domain::key_hashes::KeyHashes;
use crate::domain::names::{SecretUri, Slug, StoreName};
use crate::domain::principal::PrincipalEvent;
use crate::domain::sealing_keys::{SealingKey, SealingKeyEvent};
use crate::domain::secret::{AccessList, SecretEvent, SlugSet};
use crate::domain::store_catalog::{ReactorKey, StoreEvent, StoreKind};
use crate::domain::testing::t0;
use crate::domain::upload::{FailureKind, Purpose, UploadEvent};
use crate::projection::{Projector, as_of};
use crate::streams;

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn uri(s: &str) -> SecretUri {
    SecretUri::parse(s).unwrap()
}

fn local() -> StoreName {
    StoreName::parse("local").unwrap()
}

/// Appends `event` to `stream` as recorded at `at`.
async fn record(
    store: &dyn EventStore,
    stream: &StreamId,
    event: &impl DomainEvent,
    at: DateTime<Utc>,
) {
    let meta = EventMetadata {
        timestamp: at,
        ..EventMetadata::new("t")
    };
    let new = NewEvent::new(
        EventType::parse(event.event_type()).unwrap(),
        1,
        event,
        &meta,
    )
    .unwrap();
    store
        .append(stream, ExpectedVersion::Any, vec![new])
        .await
        .unwrap();
}

fn key_hashes() -> KeyHashes {
    [("password".to_owned(), format!("v2:{}", "a".repeat(64)))].into()
}

fn sealing_key(id: &str, at: DateTime<Utc>) -> SealingKey {
    SealingKey {
        key_id: id.to_owned(),
        public_key: "A".repeat(44),
        signature: "B".repeat(88),
        not_before: at,
        not_after: at + chrono::Duration::days(90),
    }
}

/// A put's upload events, request to stored version.
async fn put(
    store: &dyn EventStore,
    id: Uuid,
    secret: &SecretUri,
    version: u64,
    at: DateTime<Utc>,
) {
    let upload = streams::upload(id);
    let expires_at = at + chrono::Duration::minutes(5);
    for event in [
        UploadEvent::SecretUploadKeyRequested {
            request_id: id,
            uri: secret.clone(),
            store: local(),
            requester: slug("alice"),
            purpose: Purpose::Put { adopt: false },
            expires_at,
        },
        UploadEvent::SecretUploadKeyProvided {
            request_id: id,
            public_key: "K".repeat(44),
            signature: "S".repeat(88),
            expires_at,
        },
        UploadEvent::SecretUploadRequested {
            request_id: id,
            ciphertext: "C".repeat(80),
        },
        UploadEvent::SecretUploaded {
            request_id: id,
            uri: secret.clone(),
            version,
            hash: format!("v2:{}", "b".repeat(64)),
            key_hashes: key_hashes(),
            upstream_ref: format!("files:{version}"),
        },
    ] {
        record(store, &upload, &event, at).await;
    }
    record(
        store,
        &streams::secret(secret),
        &SecretEvent::SecretVersionAdded {
            uri: secret.clone(),
            request_id: id,
            version,
            hash: format!("v2:{}", "b".repeat(64)),
            key_hashes: key_hashes(),
            by: slug("alice"),
            at,
        },
        at,
    )
    .await;
}

/// A log that leaves state in every part of the read model: stores,
/// users, groups, tokens (issued, revoked), memberships, secrets with
/// versions, grants and a deletion, uploads open, finished, failed,
/// expired and verified, sealing keys published and retired, sealed
/// files applied and resealed, and an event this build cannot read.
/// Returns the position in the middle (an upload open there, finished
/// uploads forgotten after it).
pub(crate) async fn every_kind_of_state(store: &dyn EventStore) -> Position {
    let t = t0();
    let stores = streams::stores();
    for event in [
        StoreEvent::StoreCreated {
            name: local(),
            kind: StoreKind::File,
            reactor_key: ReactorKey::from([1u8; 32]),
            certificate: None,
        },
        StoreEvent::DefaultStoreSet { name: local() },
        StoreEvent::StoreCreated {
            name: StoreName::parse("vault-prod").unwrap(),
            kind: StoreKind::Vault,
            reactor_key: ReactorKey::from([2u8; 32]),
            certificate: None,
        },
        StoreEvent::StoreDisabled {
            name: StoreName::parse("vault-prod").unwrap(),
        },
    ] {
        record(store, &stores, &event, t).await;
    }
    for (user, role, served) in [
        ("admin", Role::Admin, vec![]),
        ("alice", Role::User, vec![]),
        ("bob", Role::User, vec![]),
        ("reactor-1", Role::Reactor, vec![local()]),
    ] {
        record(
            store,
            &streams::principal(&slug(user)),
            &PrincipalEvent::UserCreated {
                slug: slug(user),
                role,
                stores: served,
            },
            t,
        )
        .await;
    }
    for (n, user) in ["alice", "bob", "admin"].iter().enumerate() {
        record(
            store,
            &streams::principal(&slug(user)),
            &PrincipalEvent::TokenIssued {
                token_id: Uuid::from_u128(100 + n as u128),
                user: slug(user),
                sha256_hex: format!("{n:x}").repeat(64),
                expires_at: t + chrono::Duration::days(30),
            },
            t,
        )
        .await;
    }
    record(
        store,
        &streams::principal(&slug("bob")),
        &PrincipalEvent::TokenRevoked {
            token_id: Uuid::from_u128(101),
            user: slug("bob"),
        },
        t,
    )
    .await;
    let devs = streams::principal(&slug("devs"));
    for event in [
        PrincipalEvent::GroupCreated { slug: slug("devs") },
        PrincipalEvent::MemberAdded {
            group: slug("devs"),
            user: slug("alice"),
        },
        PrincipalEvent::MemberAdded {
            group: slug("devs"),
            user: slug("bob"),
        },
        PrincipalEvent::MemberRemoved {
            group: slug("devs"),
            user: slug("bob"),
        },
    ] {
        record(store, &devs, &event, t).await;
    }
    record(
        store,
        &streams::principal(&slug("bob")),
        &PrincipalEvent::UserRemoved { slug: slug("bob") },
        t,
    )
    .await;
    // An event this build cannot read: counted, not applied.
    let unreadable = NewEvent::from_json_text(
        EventType::parse("UserCreated").unwrap(),
        1,
        r#"{"type":"UserCreated","slug":"NOT A SLUG"}"#,
        &EventMetadata::new("t"),
    )
    .unwrap();
    store
        .append(
            &streams::principal(&slug("carol")),
            ExpectedVersion::Any,
            vec![unreadable],
        )
        .await
        .unwrap();

    let db = uri("local://alice/db");
    let acl = BTreeMap::from([
        (AccessList::Readers, SlugSet::from([slug("devs")])),
        (AccessList::Writers, SlugSet::from([slug("alice")])),
    ]);
    record(
        store,
        &streams::secret(&db),
        &SecretEvent::SecretCreated {
            uri: db.clone(),
            creator: slug("alice"),
            acl: acl.clone(),
        },
        t,
    )
    .await;
    put(store, Uuid::from_u128(1), &db, 1, t).await;
    put(store, Uuid::from_u128(2), &db, 2, t).await;
    record(
        store,
        &streams::secret(&db),
        &SecretEvent::AccessGranted {
            list: AccessList::Deleters,
            slug: slug("admin"),
        },
        t,
    )
    .await;
    // A verification (counted for its rate limit), a failure, an expiry.
    let verify = Uuid::from_u128(3);
    for event in [
        UploadEvent::SecretUploadKeyRequested {
            request_id: verify,
            uri: db.clone(),
            store: local(),
            requester: slug("alice"),
            purpose: Purpose::Verify,
            expires_at: t + chrono::Duration::minutes(5),
        },
        UploadEvent::SecretVerified {
            request_id: verify,
            uri: db.clone(),
            matches: true,
        },
    ] {
        record(store, &streams::upload(verify), &event, t).await;
    }
    for (n, end) in [
        (
            4u128,
            UploadEvent::SecretUploadFailed {
                request_id: Uuid::from_u128(4),
                reason: "upstream refused".into(),
                kind: Some(FailureKind::Upstream),
            },
        ),
        (
            5,
            UploadEvent::SecretUploadKeyExpired {
                request_id: Uuid::from_u128(5),
            },
        ),
    ] {
        let id = Uuid::from_u128(n);
        let requested = UploadEvent::SecretUploadKeyRequested {
            request_id: id,
            uri: db.clone(),
            store: local(),
            requester: slug("alice"),
            purpose: Purpose::Put { adopt: true },
            expires_at: t + chrono::Duration::minutes(5),
        };
        record(store, &streams::upload(id), &requested, t).await;
        record(store, &streams::upload(id), &end, t).await;
    }
    // Sealing keys and sealed files (SPEC §11).
    let keys = streams::sealing_keys(&local());
    for event in [
        SealingKeyEvent::SealingKeyPublished {
            store: local(),
            key: sealing_key("sk-0000000000000001", t),
        },
        SealingKeyEvent::SealingKeyRotationRequested {
            store: local(),
            by: slug("admin"),
        },
        SealingKeyEvent::SealingKeyPublished {
            store: local(),
            key: sealing_key("sk-0000000000000002", t),
        },
    ] {
        record(store, &keys, &event, t).await;
    }
    let app = uri("local://alice/app");
    record(
        store,
        &streams::secret(&app),
        &SecretEvent::SecretCreated {
            uri: app.clone(),
            creator: slug("alice"),
            acl: acl.clone(),
        },
        t,
    )
    .await;
    for (n, reseal) in [(6u128, false), (7, true)] {
        let id = Uuid::from_u128(n);
        let submitted = UploadEvent::SealedFileSubmitted {
            request_id: id,
            uri: app.clone(),
            store: local(),
            requester: slug("alice"),
            key_id: "sk-0000000000000001".into(),
            reseal,
            ciphertext: "F".repeat(80),
            current_version: None,
            current_hash: None,
            expires_at: t + chrono::Duration::minutes(5),
        };
        let end = if reseal {
            UploadEvent::SealedFileResealed {
                request_id: id,
                uri: app.clone(),
                key_id: "sk-0000000000000002".into(),
                ciphertext: "R".repeat(80),
            }
        } else {
            UploadEvent::SecretUploaded {
                request_id: id,
                uri: app.clone(),
                version: 1,
                hash: format!("v2:{}", "c".repeat(64)),
                key_hashes: key_hashes(),
                upstream_ref: "files:app".into(),
            }
        };
        record(store, &streams::upload(id), &submitted, t).await;
        record(store, &streams::upload(id), &end, t).await;
    }
    record(
        store,
        &keys,
        &SealingKeyEvent::SealingKeyRetired {
            store: local(),
            key_id: "sk-0000000000000001".into(),
            forced: true,
            in_use: vec![app.clone()],
        },
        t,
    )
    .await;
    // An upload open at the middle.
    let open = Uuid::from_u128(8);
    record(
        store,
        &streams::upload(open),
        &UploadEvent::SecretUploadKeyRequested {
            request_id: open,
            uri: app.clone(),
            store: local(),
            requester: slug("alice"),
            purpose: Purpose::Put { adopt: false },
            expires_at: t + chrono::Duration::minutes(5),
        },
        t,
    )
    .await;
    let middle = store.head().await.unwrap();

    // Two hours later: the finished uploads are forgotten, the open one
    // expires, a deletion, another version.
    let later = t + chrono::Duration::hours(2);
    record(
        store,
        &streams::upload(open),
        &UploadEvent::SecretUploadKeyExpired { request_id: open },
        later,
    )
    .await;
    put(store, Uuid::from_u128(9), &db, 3, later).await;
    for event in [
        SecretEvent::SecretDeletionRequested {
            uri: app.clone(),
            destroy: true,
            by: slug("admin"),
        },
        SecretEvent::SecretDeleted {
            uri: app.clone(),
            destroyed: true,
        },
    ] {
        record(store, &streams::secret(&app), &event, later).await;
    }
    middle
}

/// The model's snapshot encoding: canonical (maps in key order).
fn canonical(model: &ReadModel) -> Vec<u8> {
    Encoded::of(model).unwrap().bytes
}

fn file_in(dir: &Path) -> SnapshotFile {
    SnapshotFile::new(dir.join(SNAPSHOT_FILE), &LogSigningKey::generate())
}

/// The model folded up to `position`, with the log hash there.
async fn folded(store: &dyn EventStore, position: Position) -> (ReadModel, LogCheckpoint) {
    let model = as_of(store, ReadModel::default(), position).await.unwrap();
    let at = store.read_all(position, 1).await.unwrap()[0].clone();
    (model, LogCheckpoint::of(&at))
}

#[tokio::test]
async fn a_snapshot_round_trips_every_part_of_the_read_model() {
    // Given a model holding every kind of state
    let store = MemoryStore::new();
    every_kind_of_state(&store).await;
    // (and enough secrets and uploads that every chunk holds some)
    for i in 0..40 {
        let secret = uri(&format!("local://alice/many/{i}"));
        put(&store, Uuid::from_u128(1000 + i), &secret, 1, t0()).await;
    }
    let head = store.head().await.unwrap();
    let (model, at) = folded(&store, head).await;
    assert!(model.secrets.len() > 2 * CHUNKS && model.uploads.len() > 2 * CHUNKS);
    assert!(model.unreadable > 0 && !model.sealing_keys.is_empty());
    assert!(!model.sealed_key_of.is_empty() && !model.verifications.is_empty());
    assert!(!model.finished().is_empty() && model.uploads.values().any(|u| u.outcome().is_some()));
    // When it is written and read back
    let dir = tempfile::tempdir().unwrap();
    let file = file_in(dir.path());
    file.write(&model, at).unwrap();
    let snapshot = file.load().unwrap().expect("a snapshot");
    // Then it is the same model, at the same point, in a 0600 file
    assert_eq!(snapshot.at, at);
    assert_eq!(snapshot.model, model);
    assert_eq!(canonical(&snapshot.model), canonical(&model));
    let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_model_restored_then_folded_to_the_head_equals_one_rebuilt_from_position_1() {
    // Given a log, and a snapshot of its model taken in the middle
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let middle = every_kind_of_state(&*store).await;
    let (at_middle, at) = folded(&*store, middle).await;
    assert_eq!(at_middle.open_uploads_total(), 1, "an upload is open there");
    let dir = tempfile::tempdir().unwrap();
    let file = file_in(dir.path());
    file.write(&at_middle, at).unwrap();
    // When the projector resumes from the snapshot and folds to the head
    let restored = file.load().unwrap().unwrap();
    let resumed = Projector::start_after(store.clone(), restored.model, restored.at);
    let progress = resumed
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    // Then it holds exactly what a rebuild from position 1 holds
    let rebuilt = Projector::start(store.clone(), ReadModel::default());
    rebuilt
        .wait_caught_up(Duration::from_secs(10))
        .await
        .unwrap();
    let head = store.head().await.unwrap();
    assert_eq!(progress.position, head);
    let (from_scratch, _) = rebuilt.read(canonical);
    let (from_snapshot, p) = resumed.read(canonical);
    assert_eq!(from_snapshot, from_scratch);
    let (equal, _) = resumed.read(|m| rebuilt.read(|r| m == r).0);
    assert!(equal);
    assert_eq!(
        p.log_hash,
        LogCheckpoint::of(&store.read_all(head, 1).await.unwrap()[0]).log_hash
    );
    let (forgotten, _) = resumed.read(|m| !m.uploads.contains_key(&Uuid::from_u128(1)));
    assert!(
        forgotten,
        "uploads finished long before the head are dropped on both paths"
    );
}

/// A written snapshot's bytes, and the file.
async fn written() -> (tempfile::TempDir, SnapshotFile, Vec<u8>) {
    let store = MemoryStore::new();
    every_kind_of_state(&store).await;
    let (model, at) = folded(&store, store.head().await.unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = file_in(dir.path());
    file.write(&model, at).unwrap();
    let bytes = std::fs::read(file.path()).unwrap();
    (dir, file, bytes)
}

fn put_back(file: &SnapshotFile, bytes: &[u8]) {
    durable::write_atomic(file.path(), bytes, 0o600).unwrap();
}

#[tokio::test]
async fn a_snapshot_with_any_byte_changed_is_refused() {
    // Given a snapshot
    let (_dir, file, bytes) = written().await;
    // When any one byte is flipped (magic, model, header or MAC)
    for at in [
        3,
        MAGIC.len() + 10,
        bytes.len() / 2,
        bytes.len() - 40,
        bytes.len() - 5,
    ] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        put_back(&file, &changed);
        // Then it is refused, never read into a model
        let err = file.load().unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::BadMac { .. } | SnapshotError::NotASnapshot { .. }
            ),
            "byte {at}: {err}"
        );
    }
    // And so is one cut short, or empty
    for len in [bytes.len() - 1, bytes.len() / 2, 0] {
        put_back(&file, &bytes[..len]);
        assert!(file.load().is_err(), "cut to {len}");
    }
}

#[tokio::test]
async fn a_snapshot_made_with_another_log_key_is_refused() {
    // Given a snapshot made by a control plane with another log key
    let (_dir, file, _) = written().await;
    // When this one reads it
    let other = SnapshotFile::new(file.path(), &LogSigningKey::generate());
    // Then its MAC does not check
    let err = other.load().unwrap_err();
    assert!(matches!(err, SnapshotError::BadMac { .. }), "{err}");
    assert!(err.to_string().contains("another log key"), "{err}");
}

/// The sections of a snapshot's `bytes`: rest, finished, chunks, header.
fn parts_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let body = &bytes[MAGIC.len()..bytes.len() - MAC_LINE];
    let parts = sections(body).expect("a snapshot's sections");
    assert_eq!(parts.len(), MODEL_SECTIONS + 1);
    parts.into_iter().map(<[u8]>::to_vec).collect()
}

/// A snapshot of `parts`, sealed with `file`'s key.
fn sealed(file: &SnapshotFile, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    for part in parts {
        push_section(&mut bytes, part);
    }
    let mut mac = file.mac();
    mac.update(&bytes);
    bytes.extend_from_slice(MAC_PREFIX);
    bytes.extend_from_slice(hex::encode(mac.finalize().into_bytes()).as_bytes());
    bytes.push(b'\n');
    bytes
}

/// `bytes` with its header edited by `edit`, sealed again with `file`'s key.
fn resealed(file: &SnapshotFile, bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let mut parts = parts_of(bytes);
    let header = parts.last_mut().unwrap();
    *header = edit(std::str::from_utf8(header).unwrap()).into_bytes();
    sealed(file, &parts)
}

#[tokio::test]
async fn a_snapshot_of_another_format_or_build_is_refused() {
    // Given snapshots with a valid MAC but another format or build
    let (_dir, file, bytes) = written().await;
    let current = format!("\"format\":{FORMAT}");
    for (edit, from, to) in [
        ("format", current.clone(), "\"format\":999".to_owned()),
        (
            "build",
            format!("\"build\":\"{}\"", env!("CARGO_PKG_VERSION")),
            "\"build\":\"0.0.1-old\"".to_owned(),
        ),
    ] {
        put_back(&file, &resealed(&file, &bytes, |h| h.replace(&from, &to)));
        // When it is read
        let err = file.load().unwrap_err();
        // Then it is refused as another build's
        assert!(
            matches!(err, SnapshotError::OtherBuild { .. }),
            "{edit}: {err}"
        );
    }
}

#[tokio::test]
async fn a_snapshot_of_the_line_based_layout_is_refused_as_an_earlier_builds() {
    // Given a snapshot as a build before format 4 wrote it: one JSON line
    // per part, the header, the MAC line
    let dir = tempfile::tempdir().unwrap();
    let file = file_in(dir.path());
    let old = format!(
        "sealplane read-model snapshot\n{{}}\n[]\n{{\"format\":3,\"build\":\"0.1.0\",\"position\":9,\"log_hash\":\"{}\"}}\nmac {}\n",
        "ab".repeat(32),
        "cd".repeat(32)
    );
    put_back(&file, old.as_bytes());
    // When it is read
    let err = file.load().unwrap_err();
    // Then it is refused as another format's, not as a damaged file
    assert!(
        matches!(err, SnapshotError::OtherBuild { format: 3, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_snapshot_that_does_not_parse_is_refused_without_quoting_it() {
    // Given snapshots whose JSON part, or one of whose binary parts, is not
    // this build's shape, each sealed with the right key
    let (_dir, file, bytes) = written().await;
    let digest = "0".repeat(64);
    let text = String::from_utf8_lossy(&parts_of(&bytes)[0]).into_owned();
    assert!(text.contains(&digest), "the fixture holds a token digest");
    let mut json = parts_of(&bytes);
    json[0] = format!("{{\"tokens\":[[\"{digest}\",1]]}}").into_bytes();
    let mut binary = parts_of(&bytes);
    binary[2] = [&[3u8][..], digest.as_bytes()].concat();
    let mut trailing = parts_of(&bytes);
    trailing[2 + CHUNKS].push(0);
    for (what, parts) in [("json", json), ("binary", binary), ("trailing", trailing)] {
        put_back(&file, &sealed(&file, &parts));
        // When it is read
        let err = file.load().unwrap_err();
        // Then it is refused, and the error names no content
        assert!(
            matches!(err, SnapshotError::Malformed { .. }),
            "{what}: {err}"
        );
        assert!(!err.to_string().contains(&digest), "{what}: {err}");
    }
}

#[test]
fn a_section_that_claims_more_entries_than_it_has_bytes_is_an_error_not_an_allocation() {
    // Given a section whose count says four billion entries, and one more
    // byte
    let section = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    // When it is read
    let read = entries::<(Uuid, UploadRequest)>(&section);
    // Then it is an error (the count reserved at most six entries' room)
    assert!(read.is_err());
}

#[tokio::test]
async fn no_snapshot_is_none_and_one_others_may_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = file_in(dir.path());
    // Given no file: nothing to restore
    assert!(file.load().unwrap().is_none());
    // Given a snapshot others may read
    file.write(&ReadModel::default(), LogCheckpoint::EMPTY)
        .unwrap();
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    // Then it is refused
    let err = file.load().unwrap_err();
    assert!(
        matches!(err, SnapshotError::Exposed { mode: 0o644, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_stored_request_keeps_only_its_version_and_its_status_reads_the_hashes_from_its_secret() {
    let store = MemoryStore::new();
    let (stored, unrecorded) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let secret = uri("local://alice/db");
    put(&store, stored, &secret, 1, t0()).await;
    // A log written before ADR 0027 can hold an outcome its secret has
    // not recorded yet.
    let upload = UploadEvent::SecretUploaded {
        request_id: unrecorded,
        uri: secret.clone(),
        version: 2,
        hash: format!("v2:{}", "c".repeat(64)),
        key_hashes: key_hashes(),
        upstream_ref: "files:2".into(),
    };
    record(&store, &streams::upload(unrecorded), &upload, t0()).await;
    let model = as_of(&store, ReadModel::default(), store.head().await.unwrap())
        .await
        .unwrap();

    let request = &model.uploads[&stored];
    assert_eq!(request.recorded_version(), Some(1));
    assert_eq!((request.outcome(), request.public_key()), (None, None));
    let status = crate::api::secrets::upload_status(request, model.secrets.get(&secret), 0);
    assert_eq!(
        (status.version, status.hash.as_str()),
        (1, format!("v2:{}", "b".repeat(64)).as_str())
    );
    assert_eq!(
        status.key_hashes,
        key_hashes()
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>()
    );
    assert_eq!(model.uploads[&unrecorded].outcome(), Some(&upload));
}
