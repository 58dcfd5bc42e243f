use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use ed25519_dalek::{Signer as _, SigningKey};
use sealplane_proto::sealing_key::{SealingKeyStatement, key_id_of};

use super::*;
use crate::domain::testing::{admin, given, reactor, t0, user};

fn store() -> StoreName {
    StoreName::parse("prod").unwrap()
}

fn identity() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn registered() -> Option<ReactorKey> {
    Some(ReactorKey::from(identity().verifying_key().to_bytes()))
}

/// A key with public half `byte`, signed by `signer` for `store`.
fn key_signed_by(signer: &SigningKey, store: &str, byte: u8) -> SealingKey {
    let public_key = [byte; 32];
    let statement = SealingKeyStatement {
        store: store.to_owned(),
        key_id: key_id_of(&public_key),
        public_key,
        not_before: t0(),
        not_after: t0() + Duration::days(60),
    };
    SealingKey {
        key_id: statement.key_id.clone(),
        public_key: STANDARD.encode(public_key),
        signature: STANDARD.encode(signer.sign(&statement.signed_bytes()).to_bytes()),
        not_before: statement.not_before,
        not_after: statement.not_after,
    }
}

fn key(byte: u8) -> SealingKey {
    key_signed_by(&identity(), "prod", byte)
}

fn published(byte: u8) -> SealingKeyEvent {
    SealingKeyEvent::SealingKeyPublished {
        store: store(),
        key: key(byte),
    }
}

fn publish(key: SealingKey) -> SealingKeyCommand {
    SealingKeyCommand::Publish {
        store: store(),
        key,
        reactor_key: registered(),
    }
}

fn retire(byte: u8, force: bool, in_use: &[&str]) -> SealingKeyCommand {
    SealingKeyCommand::Retire {
        store: store(),
        key_id: key(byte).key_id,
        force,
        in_use: in_use
            .iter()
            .map(|u| SecretUri::parse(u).unwrap())
            .collect(),
    }
}

#[test]
fn given_no_keys_when_the_stores_reactor_publishes_a_signed_key_then_it_is_the_newest() {
    let state = given::<SealingKeys>([])
        .as_actor(reactor("prod-reactor", &["prod"]))
        .when(publish(key(1)))
        .then_events(vec![published(1)]);
    assert_eq!(state.newest(), Some(&key(1)));
}

#[test]
fn given_a_published_key_when_published_again_then_nothing_changes() {
    given::<SealingKeys>([published(1)])
        .as_actor(reactor("prod-reactor", &["prod"]))
        .when(publish(key(1)))
        .then_events(vec![]);
}

#[test]
fn given_a_key_signed_by_another_identity_or_for_another_store_when_published_then_refused() {
    let forged = key_signed_by(&SigningKey::from_bytes(&[3u8; 32]), "prod", 1);
    let refusal = given::<SealingKeys>([])
        .as_actor(reactor("prod-reactor", &["prod"]))
        .when(publish(forged))
        .refusal();
    assert!(
        matches!(refusal, SealingKeyRefusal::BadKey { .. }),
        "{refusal}"
    );
    let other_store = key_signed_by(&identity(), "dev", 1);
    let refusal = given::<SealingKeys>([])
        .as_actor(reactor("prod-reactor", &["prod"]))
        .when(publish(other_store))
        .refusal();
    assert!(
        matches!(refusal, SealingKeyRefusal::BadKey { .. }),
        "{refusal}"
    );
}

#[test]
fn given_any_other_actor_when_publishing_then_denied() {
    for actor in [
        admin(),
        user("alice", &[]),
        reactor("dev-reactor", &["dev"]),
    ] {
        let refusal = given::<SealingKeys>([])
            .as_actor(actor)
            .when(publish(key(1)))
            .refusal();
        assert_eq!(refusal.kind(), RefusalKind::Denied);
    }
}

#[test]
fn given_two_keys_when_the_older_is_retired_then_the_newer_stays_newest() {
    let state = given::<SealingKeys>([published(1), published(2)])
        .when(retire(1, false, &[]))
        .then_events(vec![SealingKeyEvent::SealingKeyRetired {
            store: store(),
            key_id: key(1).key_id,
            forced: false,
            in_use: vec![],
        }]);
    assert_eq!(state.newest(), Some(&key(2)));
    assert_eq!(state.get(&key(1).key_id).map(|(_, r)| r), Some(true));
}

#[test]
fn given_the_newest_key_when_retired_then_refused_saying_to_rotate_first() {
    given::<SealingKeys>([published(1), published(2)])
        .when(retire(2, true, &[]))
        .then_refused(SealingKeyRefusal::Newest(key(2).key_id));
}

#[test]
fn given_files_still_sealed_to_a_key_when_retired_without_force_then_refused_naming_them() {
    let refusal = given::<SealingKeys>([published(1), published(2)])
        .when(retire(1, false, &["prod://app/db", "prod://app/api"]))
        .refusal();
    let text = refusal.to_string();
    assert!(
        text.contains("prod://app/db") && text.contains("prod://app/api"),
        "{text}"
    );
    assert_eq!(refusal.kind(), RefusalKind::FailedPrecondition);
}

#[test]
fn given_files_still_sealed_to_a_key_when_retired_with_force_then_the_event_names_them() {
    given::<SealingKeys>([published(1), published(2)])
        .when(retire(1, true, &["prod://app/db"]))
        .then_events(vec![SealingKeyEvent::SealingKeyRetired {
            store: store(),
            key_id: key(1).key_id,
            forced: true,
            in_use: vec![SecretUri::parse("prod://app/db").unwrap()],
        }]);
}

#[test]
fn given_a_user_when_rotating_or_retiring_then_denied() {
    let rotate = SealingKeyCommand::RequestRotation {
        store: store(),
        store_live: true,
    };
    for command in [rotate, retire(1, false, &[])] {
        let refusal = given::<SealingKeys>([published(1), published(2)])
            .as_actor(user("alice", &[]))
            .when(command)
            .refusal();
        assert_eq!(refusal.kind(), RefusalKind::Denied);
    }
}
