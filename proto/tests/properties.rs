//! Properties of every decoder that reads what a client (or a misbehaving
//! control plane) sends: none panics on any input, what is accepted obeys
//! its rules, and sealed payloads never echo their content in an error.
//! 4,096 cases per property by default; `PROPTEST_CASES=100000 cargo test
//! -p sealplane-proto --all-features --test properties` for a longer run.

use crypto_box::SecretKey;
use proptest::prelude::*;
use sealplane_proto::certificate::StoreCertificate;
use sealplane_proto::feed::FeedMessage;
use sealplane_proto::keyed_hash::KeyedHash;
use sealplane_proto::names::{SecretPath, SecretRef, SecretUri, StoreName};
use sealplane_proto::sealed::{self, SealError};
use sealplane_proto::transport::check_plaintext;
use sealplane_proto::upload::{FailureKind, Purpose};
use sealplane_proto::v1;
use sealplane_proto::v1::feed_message::Message;
use uuid::Uuid;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4096)
}

/// Strings that look like what the decoders expect, and anything else.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,70}(://)?[A-Za-z0-9._/-]{0,40}",
        "\\PC{0,80}",
        ".{0,600}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn uris_parse_without_panicking_and_accepted_ones_obey_the_rules(text in texty()) {
        if let Ok(r) = SecretRef::parse(&text) {
            let path = r.path.as_str();
            prop_assert!(path.len() <= 512);
            prop_assert!(path.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
            if let Some(store) = &r.store {
                let uri = SecretUri { store: store.clone(), path: r.path.clone() };
                prop_assert_eq!(SecretUri::parse(&uri.to_string()).unwrap(), uri);
            }
        }
        let _ = SecretPath::parse(text.clone());
        let _ = StoreName::parse(text);
    }

    #[test]
    fn hashes_and_addresses_parse_without_panicking(text in texty()) {
        let _ = KeyedHash::parse(&text);
        let _ = check_plaintext(&text);
        let _ = FailureKind::from_proto(text.len() as i32, &text);
    }

    #[test]
    fn any_bytes_as_a_sealed_payload_are_refused_without_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let key = SecretKey::from([7u8; 32]);
        let opened = sealed::open(&bytes, &key, Uuid::nil(), "local://a/b", Purpose::Verify);
        prop_assert_eq!(opened.unwrap_err(), SealError::NotSealedForThisKey);
    }

    #[test]
    fn any_json_sealed_to_the_key_is_checked_and_never_quoted(
        body in "\\PC{0,200}",
        request in any::<u128>(),
    ) {
        // A box that opens but holds anything: refused or accepted by the
        // rules, and the error text never carries the body.
        let key = SecretKey::from([7u8; 32]);
        let marker = format!("MARK{body}");
        let json = format!(r#"{{"request_id":"{}","uri":"local://a/b","purpose":{{"kind":"put"}},"data":{{"k":"{}"}}}}"#, Uuid::from_u128(request), marker);
        let sealed_box = key.public_key().seal(&mut rand_core::OsRng, json.as_bytes()).unwrap();
        if let Err(e) = sealed::open(&sealed_box, &key, Uuid::nil(), "local://a/b", Purpose::Put { adopt: false }) {
            prop_assert!(!e.to_string().contains(&marker));
        }
    }

    #[test]
    fn any_feed_message_converts_or_is_refused_without_a_panic(
        position in any::<u64>(),
        which in 0u8..10,
        id in texty(),
        uri in texty(),
        purpose in any::<i32>(),
        flag in any::<bool>(),
        time in texty(),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let message = match which {
            0 => Some(Message::KeyRequested(v1::UploadKeyRequested {
                request_id: id, uri, purpose, adopt: flag, expires_at: time,
            })),
            1 => Some(Message::KeyProvided(v1::UploadKeyProvided { request_id: id })),
            2 => Some(Message::UploadRequested(v1::UploadRequested { request_id: id, ciphertext: bytes })),
            3 => Some(Message::UploadEnded(v1::UploadEnded { request_id: id, outcome: purpose })),
            4 => Some(Message::DeletionRequested(v1::SecretDeletionRequested { uri, destroy: flag })),
            5 => Some(Message::SecretDeleted(v1::SecretDeleted { uri })),
            6 => Some(Message::Checkpoint(v1::FeedCheckpoint {})),
            7 => Some(Message::CaughtUp(v1::FeedCaughtUp {})),
            _ => None,
        };
        match FeedMessage::try_from(v1::FeedMessage {
            position,
            message,
            ..Default::default()
        }) {
            Ok(FeedMessage::Event { position: p, .. })
            | Ok(FeedMessage::Checkpoint { position: p })
            | Ok(FeedMessage::CaughtUp { position: p }) => prop_assert_eq!(p, position),
            Err(e) => prop_assert_eq!(e.position, position),
        }
    }

    #[test]
    fn any_certificate_on_the_wire_is_checked_without_a_panic(
        deployment in texty(),
        store in texty(),
        kind in texty(),
        reactor_key in texty(),
        serial in any::<u64>(),
        anchor_key in texty(),
        signature in texty(),
    ) {
        let wire = v1::StoreCertificate { deployment_id: deployment, store, kind, reactor_key, serial, anchor_key, signature };
        if let Ok(c) = StoreCertificate::from_proto(wire) {
            // Random fields never carry a valid signature.
            prop_assert!(c.verify().is_err());
        }
    }

    #[test]
    fn any_bytes_decode_as_any_request_or_fail_without_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        use prost::Message as _;
        let b = &bytes[..];
        let _ = v1::RequestUploadKeyRequest::decode(b);
        let _ = v1::UploadSecretRequest::decode(b);
        let _ = v1::WatchUploadRequest::decode(b);
        let _ = v1::GetSecretRequest::decode(b);
        let _ = v1::ChangeAccessRequest::decode(b);
        let _ = v1::DeleteSecretRequest::decode(b);
        let _ = v1::CreateStoreRequest::decode(b);
        let _ = v1::CertifyStoreRequest::decode(b);
        let _ = v1::CreateUserRequest::decode(b);
        let _ = v1::IssueTokenRequest::decode(b);
        let _ = v1::FeedRequest::decode(b);
        let _ = v1::ProvideKeyRequest::decode(b);
        let _ = v1::ReportUploadedRequest::decode(b);
        let _ = v1::ReportFailedRequest::decode(b);
        if let Ok(m) = v1::FeedMessage::decode(b) {
            let _ = FeedMessage::try_from(m);
        }
        if let Ok(c) = v1::StoreCertificate::decode(b)
            && let Ok(c) = StoreCertificate::from_proto(c)
        {
            prop_assert!(c.verify().is_err());
        }
    }

    #[test]
    fn purposes_from_the_wire_never_panic(purpose in any::<i32>(), adopt in any::<bool>()) {
        if let Some(p) = Purpose::from_proto(purpose, adopt) {
            let (wire, a) = p.to_proto();
            prop_assert_eq!(Purpose::from_proto(wire as i32, a), Some(p));
        }
    }
}
