//! One audit line per event type, and none with secret material.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealplane_event_store::{
    EventMetadata, EventStore, EventType, ExpectedVersion, MemoryStore, NewEvent, Position,
    StreamId,
};
use serde::Serialize;

use super::*;
use crate::command::{ACCESS_DENIED_STREAM, AccessDenied};
use crate::domain::secret::AccessList;
use crate::domain::store_catalog::{ReactorKey, StoreCertificate, StoreKind};
use crate::domain::upload::FailureKind;
use crate::streams;

const AT: &str = "2026-12-01T10:00:00Z";

fn uri() -> SecretUri {
    SecretUri::parse("local://alice/db").unwrap()
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn request_id() -> Uuid {
    Uuid::parse_str("6f1c2a8e-0000-4000-8000-000000000001").unwrap()
}

/// `data` as the store records it on `stream`, caused by `actor`.
fn recorded(
    stream: &StreamId,
    event_type: &str,
    data: &impl Serialize,
    actor: &str,
) -> RecordedEvent {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = MemoryStore::new();
        let metadata = EventMetadata {
            timestamp: AT.parse().unwrap(),
            ..EventMetadata::new(actor)
        };
        let event =
            NewEvent::new(EventType::parse(event_type).unwrap(), 1, data, &metadata).unwrap();
        store
            .append(stream, ExpectedVersion::Any, vec![event])
            .await
            .unwrap();
        store.read_all(Position::START, 1).await.unwrap().remove(0)
    })
}

fn store_line(event: StoreEvent) -> AuditEntry {
    use crate::domain::DomainEvent;
    describe(
        &recorded(&streams::stores(), event.event_type(), &event, "admin"),
        None,
    )
}

fn principal_line(event: PrincipalEvent, stream: &str) -> AuditEntry {
    use crate::domain::DomainEvent;
    describe(
        &recorded(
            &streams::principal(&slug(stream)),
            event.event_type(),
            &event,
            "admin",
        ),
        None,
    )
}

fn secret_line(event: SecretEvent, actor: &str) -> AuditEntry {
    use crate::domain::DomainEvent;
    describe(
        &recorded(&streams::secret(&uri()), event.event_type(), &event, actor),
        None,
    )
}

fn upload_line(event: UploadEvent, actor: &str, known: bool) -> AuditEntry {
    use crate::domain::DomainEvent;
    let target = RequestTarget {
        uri: uri(),
        requester: slug("alice"),
    };
    describe(
        &recorded(
            &streams::upload(request_id()),
            event.event_type(),
            &event,
            actor,
        ),
        known.then_some(&target),
    )
}

fn key() -> ReactorKey {
    ReactorKey::parse(&STANDARD.encode([7u8; 32])).unwrap()
}

fn certificate(signature: &str) -> StoreCertificate {
    StoreCertificate {
        deployment_id: Uuid::nil(),
        store: StoreName::parse("local").unwrap(),
        kind: "file".into(),
        reactor_key: key().to_string(),
        serial: 2,
        anchor_key: STANDARD.encode([9u8; 32]),
        signature: signature.into(),
    }
}

#[test]
fn store_events() {
    let local = || StoreName::parse("local").unwrap();
    let created = store_line(StoreEvent::StoreCreated {
        name: local(),
        kind: StoreKind::File,
        reactor_key: key(),
        certificate: None,
    });
    assert_eq!(
        created.details,
        format!(
            "admin created store local (kind file, reactor identity {}, not certified)",
            key()
        )
    );
    assert_eq!(
        (
            created.target.as_str(),
            created.store.clone(),
            created.secret.clone()
        ),
        ("store local", Some(local()), None)
    );
    assert_eq!(created.time_text(), AT);
    assert_eq!(created.actor, "admin");
    assert_eq!(created.event_type, "StoreCreated");
    let certified = store_line(StoreEvent::StoreCertified {
        name: local(),
        certificate: certificate("c2ln"),
    });
    assert_eq!(
        certified.details,
        format!(
            "admin certified reactor identity {} for store local (serial 2, trust anchor {})",
            key(),
            STANDARD.encode([9u8; 32])
        )
    );
    for (event, line) in [
        (
            StoreEvent::StoreEnabled { name: local() },
            "admin enabled store local",
        ),
        (
            StoreEvent::StoreDisabled { name: local() },
            "admin disabled store local",
        ),
        (
            StoreEvent::DefaultStoreSet { name: local() },
            "admin made store local the default store",
        ),
        (
            StoreEvent::StoreRemoved { name: local() },
            "admin removed store local",
        ),
    ] {
        assert_eq!(store_line(event).details, line);
    }
}

#[test]
fn principal_events() {
    let alice = || slug("alice");
    let cases = [
        (
            PrincipalEvent::UserCreated {
                slug: alice(),
                role: Role::User,
                stores: vec![],
            },
            "alice",
            "admin created user alice with role user",
            "user alice",
        ),
        (
            PrincipalEvent::UserCreated {
                slug: slug("reactor-1"),
                role: Role::Reactor,
                stores: vec![StoreName::parse("local").unwrap()],
            },
            "reactor-1",
            "admin created user reactor-1 with role reactor, serving store local",
            "user reactor-1",
        ),
        (
            PrincipalEvent::GroupCreated { slug: slug("ops") },
            "ops",
            "admin created group ops",
            "group ops",
        ),
        (
            PrincipalEvent::MemberAdded {
                group: slug("ops"),
                user: alice(),
            },
            "ops",
            "admin added alice to group ops",
            "group ops",
        ),
        (
            PrincipalEvent::MemberRemoved {
                group: slug("ops"),
                user: alice(),
            },
            "ops",
            "admin removed alice from group ops",
            "group ops",
        ),
        (
            PrincipalEvent::TokenIssued {
                token_id: request_id(),
                user: alice(),
                sha256_hex: "ab".repeat(32),
                expires_at: AT.parse().unwrap(),
            },
            "alice",
            "admin issued token 6f1c2a8e-0000-4000-8000-000000000001 to alice, valid until 2026-12-01T10:00:00Z",
            "user alice",
        ),
        (
            PrincipalEvent::TokenRevoked {
                token_id: request_id(),
                user: alice(),
            },
            "alice",
            "admin revoked token 6f1c2a8e-0000-4000-8000-000000000001 of alice",
            "user alice",
        ),
        (
            PrincipalEvent::UserRemoved { slug: alice() },
            "alice",
            "admin removed user alice",
            "user alice",
        ),
    ];
    for (event, stream, line, target) in cases {
        let entry = principal_line(event, stream);
        assert_eq!(
            (entry.details.as_str(), entry.target.as_str()),
            (line, target)
        );
    }
}

#[test]
fn secret_events() {
    let created = secret_line(
        SecretEvent::SecretCreated {
            uri: uri(),
            creator: slug("alice"),
            acl: Default::default(),
        },
        "alice",
    );
    assert_eq!(created.details, "alice created secret local://alice/db");
    assert_eq!(created.target, "local://alice/db");
    assert_eq!(created.secret, Some(uri()));
    assert_eq!(created.store, Some(uri().store));
    let version = secret_line(
        SecretEvent::SecretVersionAdded {
            uri: uri(),
            request_id: request_id(),
            version: 3,
            hash: "hmac-sha256:dev:00ff".into(),
            key_hashes: Default::default(),
            by: slug("alice"),
            at: AT.parse().unwrap(),
        },
        "reactor-1",
    );
    assert_eq!(
        version.details,
        "alice put version 3 of local://alice/db (hash hmac-sha256:dev:00ff)"
    );
    assert_eq!(version.actor, "reactor-1");
    assert_eq!(version.on_behalf_of, Some(slug("alice")));
    assert_eq!(version.request_id, Some(request_id()));
    for (event, actor, line) in [
        (
            SecretEvent::AccessGranted {
                list: AccessList::Writers,
                slug: slug("bob"),
            },
            "alice",
            "alice added bob to the writers of local://alice/db",
        ),
        (
            SecretEvent::AccessRevoked {
                list: AccessList::CanChangeReaders,
                slug: slug("bob"),
            },
            "alice",
            "alice removed bob from the canChangeReaders of local://alice/db",
        ),
        (
            SecretEvent::SecretDeletionRequested {
                uri: uri(),
                destroy: false,
                by: slug("alice"),
            },
            "alice",
            "alice asked to delete local://alice/db",
        ),
        (
            SecretEvent::SecretDeletionRequested {
                uri: uri(),
                destroy: true,
                by: slug("alice"),
            },
            "alice",
            "alice asked to destroy local://alice/db (every version)",
        ),
        (
            SecretEvent::SecretDeleted {
                uri: uri(),
                destroyed: false,
            },
            "reactor-1",
            "reactor-1 deleted local://alice/db upstream",
        ),
        (
            SecretEvent::SecretDeleted {
                uri: uri(),
                destroyed: true,
            },
            "reactor-1",
            "reactor-1 destroyed local://alice/db upstream",
        ),
    ] {
        assert_eq!(secret_line(event, actor).details, line);
    }
}

#[test]
fn upload_events_name_their_secret_when_it_is_known() {
    let id = request_id();
    let requested = upload_line(
        UploadEvent::SecretUploadKeyRequested {
            request_id: id,
            uri: uri(),
            store: uri().store,
            requester: slug("alice"),
            purpose: Purpose::Put { adopt: false },
            expires_at: AT.parse().unwrap(),
        },
        "alice",
        false,
    );
    assert_eq!(
        requested.details,
        format!(
            "alice asked for a one-time key to put a version of local://alice/db (request {id}, valid until {AT})"
        )
    );
    assert_eq!(requested.secret, Some(uri()));
    assert_eq!(requested.on_behalf_of, None);
    let verify = upload_line(
        UploadEvent::SecretUploadKeyRequested {
            request_id: id,
            uri: uri(),
            store: uri().store,
            requester: slug("alice"),
            purpose: Purpose::Verify,
            expires_at: AT.parse().unwrap(),
        },
        "alice",
        false,
    );
    assert!(
        verify
            .details
            .contains("to verify a value of local://alice/db"),
        "{}",
        verify.details
    );
    let provided = UploadEvent::SecretUploadKeyProvided {
        request_id: id,
        public_key: STANDARD.encode([1u8; 32]),
        signature: STANDARD.encode([2u8; 64]),
        expires_at: AT.parse().unwrap(),
    };
    let known = upload_line(provided.clone(), "reactor-1", true);
    assert_eq!(
        known.details,
        format!("reactor-1 provided a signed one-time key for local://alice/db (request {id})")
    );
    assert_eq!(known.on_behalf_of, Some(slug("alice")));
    assert_eq!(known.target, "local://alice/db");
    let unknown = upload_line(provided, "reactor-1", false);
    assert_eq!(
        unknown.details,
        format!("reactor-1 provided a signed one-time key (request {id})")
    );
    assert_eq!(unknown.target, format!("request {id}"));
    let sealed = upload_line(
        UploadEvent::SecretUploadRequested {
            request_id: id,
            ciphertext: STANDARD.encode([0u8; 100]),
        },
        "alice",
        true,
    );
    assert_eq!(
        sealed.details,
        format!("alice sent a sealed value of 100 bytes for local://alice/db (request {id})")
    );
    for (event, actor, line) in [
        (
            UploadEvent::SecretUploaded {
                request_id: id,
                uri: uri(),
                version: 3,
                hash: "hmac-sha256:dev:00ff".into(),
                key_hashes: Default::default(),
                upstream_ref: "files/alice/db".into(),
            },
            "reactor-1",
            format!(
                "reactor-1 stored version 3 of local://alice/db upstream (hash hmac-sha256:dev:00ff, request {id})"
            ),
        ),
        (
            UploadEvent::SecretVerified {
                request_id: id,
                uri: uri(),
                matches: false,
            },
            "reactor-1",
            format!("reactor-1 compared a value with local://alice/db: no match (request {id})"),
        ),
        (
            UploadEvent::SecretUploadFailed {
                request_id: id,
                reason: "the upstream store refused the write".into(),
                kind: Some(FailureKind::Upstream),
            },
            "reactor-1",
            format!(
                "the upload for local://alice/db (request {id}) failed (Upstream): the upstream store refused the write"
            ),
        ),
        (
            UploadEvent::SecretUploadKeyExpired { request_id: id },
            "reactor-1",
            format!("the one-time key for local://alice/db (request {id}) expired unused"),
        ),
    ] {
        assert_eq!(upload_line(event, actor, true).details, line);
    }
}

#[test]
fn refusals_name_who_what_where_and_why() {
    let denied = |target: &str| AccessDenied {
        actor: "bob".into(),
        role: Role::User,
        command: "RequestUploadKey".into(),
        target: target.into(),
        reason: "`bob` is not in the writers list of local://alice/db".into(),
    };
    let stream = StreamId::parse(ACCESS_DENIED_STREAM).unwrap();
    let line = |target: &str| {
        describe(
            &recorded(&stream, "AccessDenied", &denied(target), "bob"),
            None,
        )
    };
    let on_stream = line("secret-local://alice/db");
    assert_eq!(
        on_stream.details,
        "bob was refused RequestUploadKey on local://alice/db: `bob` is not in the writers list of local://alice/db"
    );
    assert_eq!(on_stream.secret, Some(uri()));
    assert_eq!(line("local://alice/db").secret, Some(uri()));
    let upload = line(&format!("upload-{}", request_id()));
    assert_eq!(upload.request_id, Some(request_id()));
    assert_eq!(line("audit log").target, "audit log");
    assert_eq!(line("principal-carol").principal, Some(slug("carol")));
}

#[test]
fn audit_reads_say_who_read_with_which_filters() {
    let read = AuditLogRead {
        reader: slug("carol"),
        role: Role::Auditor,
        filters: AuditFilter {
            actor: Some(slug("alice")),
            follow: true,
            ..AuditFilter::default()
        },
    };
    let entry = describe(
        &recorded(&streams::audit_reads(), AUDIT_LOG_READ, &read, "carol"),
        None,
    );
    assert_eq!(
        entry.details,
        "carol read the audit log (actor alice; following)"
    );
    assert_eq!(entry.target, "audit log");
}

#[test]
fn raw_reads_say_who_read_what() {
    let read = |read| AuditRawRead {
        reader: slug("carol"),
        role: Role::Auditor,
        read,
    };
    let line = |r| {
        describe(
            &recorded(&streams::audit_reads(), AUDIT_RAW_READ, &read(r), "carol"),
            None,
        )
        .details
    };
    assert_eq!(
        line(RawRead::Checkpoint { position: 12 }),
        "carol read the signed checkpoint at position 12"
    );
    assert_eq!(
        line(RawRead::Events { from: 1, until: 40 }),
        "carol read the recorded events from position 1 to 40 (to verify them)"
    );
}

#[test]
fn a_checkpoint_shows_its_position_and_hash_but_not_its_signature() {
    use sealplane_proto::log_checkpoint::{LogPoint, LogSigningKey};
    // Given a signed checkpoint recorded in the log
    let key = LogSigningKey::generate();
    let point = |position, byte| LogPoint {
        position,
        log_hash: [byte; 32],
    };
    let signed = key.sign(point(41, 0xab), AT.parse().unwrap(), Some(point(20, 1)));
    let record = signed.to_record();
    let entry = describe(
        &recorded(
            &streams::log_checkpoints(),
            sealplane_proto::log_checkpoint::LOG_CHECKPOINTED,
            &record,
            "sealplane",
        ),
        None,
    );
    // Then its line names position, hash, the previous one and the key
    assert_eq!(
        entry.details,
        format!(
            "sealplane signed a checkpoint at position 41 (log hash {}, after position 20, log key {})",
            "ab".repeat(32),
            key.key_id()
        )
    );
    assert_eq!(entry.target, "audit log");
    // And not the signature
    assert!(
        !format!("{entry:?}").contains(&record.signature),
        "{entry:?}"
    );
}

#[test]
fn replays_say_who_replayed_which_points() {
    use crate::application::audit::filter::LogPoint;
    let replayed = AuditReplayed {
        reader: slug("carol"),
        role: Role::Auditor,
        at: LogPoint::Position(14),
        from: None,
    };
    let entry = describe(
        &recorded(&streams::audit_reads(), AUDIT_REPLAYED, &replayed, "carol"),
        None,
    );
    assert_eq!(entry.details, "carol replayed the state (at position 14)");
    assert_eq!(entry.target, "audit log");
    assert_eq!(entry.event_type, "AuditReplayed");
}

#[test]
fn unreadable_or_unknown_events_show_no_data() {
    let odd = serde_json::json!({"value": "hunter2-marker"});
    for stream in ["something-new", "stores", "secret-local://alice/db"] {
        let entry = describe(
            &recorded(&StreamId::parse(stream).unwrap(), "Mystery", &odd, "x"),
            None,
        );
        assert_eq!(
            entry.details,
            "an event of type Mystery that this version cannot read (its data is not shown)"
        );
        assert!(!format!("{entry:?}").contains("hunter2"), "{entry:?}");
    }
}

#[test]
fn no_ciphertext_signature_key_or_token_material_is_rendered() {
    let marker = |name: &str| STANDARD.encode(format!("{name}-material-0123456789abcdef"));
    let (ciphertext, signature, one_time_key, digest, cert_signature) = (
        marker("ciphertext"),
        marker("signature"),
        marker("onetimekey"),
        hex::encode("token-digest-material-0123456789"),
        marker("certsignature"),
    );
    let id = request_id();
    let entries = vec![
        upload_line(
            UploadEvent::SecretUploadRequested {
                request_id: id,
                ciphertext: ciphertext.clone(),
            },
            "alice",
            true,
        ),
        upload_line(
            UploadEvent::SecretUploadKeyProvided {
                request_id: id,
                public_key: one_time_key.clone(),
                signature: signature.clone(),
                expires_at: AT.parse().unwrap(),
            },
            "reactor-1",
            true,
        ),
        principal_line(
            PrincipalEvent::TokenIssued {
                token_id: id,
                user: slug("alice"),
                sha256_hex: digest.clone(),
                expires_at: AT.parse().unwrap(),
            },
            "alice",
        ),
        store_line(StoreEvent::StoreCreated {
            name: StoreName::parse("local").unwrap(),
            kind: StoreKind::File,
            reactor_key: key(),
            certificate: Some(certificate(&cert_signature)),
        }),
        store_line(StoreEvent::StoreCertified {
            name: StoreName::parse("local").unwrap(),
            certificate: certificate(&cert_signature),
        }),
    ];
    for entry in &entries {
        let shown = format!("{entry:?}");
        for (what, material) in [
            ("ciphertext", &ciphertext),
            ("a one-time key's signature", &signature),
            ("a one-time public key", &one_time_key),
            ("a token digest", &digest),
            ("a certificate's signature", &cert_signature),
        ] {
            assert!(
                !shown.contains(material.as_str()),
                "{what} rendered: {shown}"
            );
        }
    }
}

#[test]
fn base64_sizes_are_decoded_sizes() {
    for n in [0usize, 1, 2, 3, 4, 100, 1001] {
        assert_eq!(decoded_len(&STANDARD.encode(vec![0u8; n])), n);
    }
}
