//! Given/when/then tests of every rule and refusal.
use super::*;
use crate::domain::Role;
use crate::domain::testing::{actor, given, reactor, user};

const DEPLOYMENT: Uuid = Uuid::from_u128(0xd0);

fn name(s: &str) -> StoreName {
    StoreName::parse(s).unwrap()
}

fn key(byte: u8) -> ReactorKey {
    ReactorKey::from([byte; 32])
}

fn create(n: &str) -> StoreCommand {
    let (name, kind, reactor_key) = (name(n), StoreKind::Vault, key(1));
    StoreCommand::Create {
        name,
        kind,
        reactor_key,
        certificate: None,
        deployment_id: DEPLOYMENT,
    }
}

fn created(n: &str) -> StoreEvent {
    let (name, kind, reactor_key) = (name(n), StoreKind::Vault, key(1));
    StoreEvent::StoreCreated {
        name,
        kind,
        reactor_key,
        certificate: None,
    }
}

fn enable(n: &str) -> StoreCommand {
    StoreCommand::Enable { name: name(n) }
}

fn disable(n: &str) -> StoreCommand {
    StoreCommand::Disable { name: name(n) }
}

fn set_default(n: &str) -> StoreCommand {
    StoreCommand::SetDefault { name: name(n) }
}

fn remove(n: &str) -> StoreCommand {
    StoreCommand::Remove { name: name(n) }
}

fn default_set(n: &str) -> StoreEvent {
    StoreEvent::DefaultStoreSet { name: name(n) }
}

fn disabled(n: &str) -> StoreEvent {
    StoreEvent::StoreDisabled { name: name(n) }
}

fn removed(n: &str) -> StoreEvent {
    StoreEvent::StoreRemoved { name: name(n) }
}

/// `a` (the default) and `b`, both enabled, then `more`.
fn two_stores_then(more: &[StoreEvent]) -> Vec<StoreEvent> {
    [
        vec![created("a"), default_set("a"), created("b")],
        more.to_vec(),
    ]
    .concat()
}

#[test]
fn only_admins_manage_stores() {
    let cases = [
        (create("c"), "create stores"),
        (enable("a"), "enable stores"),
        (disable("a"), "disable stores"),
        (set_default("b"), "set the default store"),
        (remove("b"), "remove stores"),
    ];
    let outsiders = [
        user("alice", &["ops"]),
        actor("audit", Role::Auditor),
        reactor("r1", &["a"]),
    ];
    for (command, action) in cases {
        for who in outsiders.clone() {
            let actor = who.slug.clone();
            let refusal = StoreCatalogRefusal::Denied { actor, action };
            assert_eq!(refusal.kind(), RefusalKind::Denied);
            given::<StoreCatalog>(two_stores_then(&[]))
                .as_actor(who)
                .when(command.clone())
                .then_refused(refusal);
        }
    }
    let actor = user("alice", &[]).slug;
    let message = StoreCatalogRefusal::Denied {
        actor,
        action: "create stores",
    };
    let expected = "`alice` may not create stores: that needs the admin role";
    assert_eq!(message.to_string(), expected);
}

#[test]
fn the_first_store_is_created_enabled_and_becomes_the_default() {
    let catalog = given::<StoreCatalog>([])
        .when(create("a"))
        .then_events(vec![created("a"), default_set("a")]);
    assert_eq!(catalog.default_store(), Some(&name("a")));
    let a = catalog.store(&name("a")).unwrap();
    assert_eq!((a.kind, a.reactor_key), (StoreKind::Vault, key(1)));
    assert_eq!((a.enabled, a.removed), (true, false));
}

#[test]
fn later_stores_are_created_enabled_without_changing_the_default() {
    let catalog = given::<StoreCatalog>([created("a"), default_set("a")])
        .when(create("b"))
        .then_events(vec![created("b")]);
    assert_eq!(catalog.default_store(), Some(&name("a")));
    assert!(catalog.accepting_uploads(&name("b")).is_ok());
}

#[test]
fn a_store_created_after_all_others_were_removed_becomes_the_default() {
    given::<StoreCatalog>([created("a"), default_set("a"), disabled("a"), removed("a")])
        .when(create("b"))
        .then_events(vec![created("b"), default_set("b")]);
}

#[test]
fn a_live_stores_name_cannot_be_used_again() {
    let refusal = StoreCatalogRefusal::AlreadyExists(name("b"));
    assert_eq!(refusal.kind(), RefusalKind::AlreadyExists);
    given::<StoreCatalog>(two_stores_then(&[]))
        .when(create("b"))
        .then_refused(refusal);
}

#[test]
fn a_removed_stores_name_is_never_reused() {
    let refusal = StoreCatalogRefusal::NameOfRemovedStore(name("b"));
    assert_eq!(refusal.kind(), RefusalKind::AlreadyExists);
    let message = refusal.to_string();
    assert!(message.contains("used by a removed store"), "{message}");
    given::<StoreCatalog>(two_stores_then(&[disabled("b"), removed("b")]))
        .when(create("b"))
        .then_refused(refusal);
}

#[test]
fn disabling_and_enabling_a_store_flips_whether_it_accepts_uploads() {
    let catalog = given::<StoreCatalog>(two_stores_then(&[]))
        .when(disable("b"))
        .then_events(vec![disabled("b")]);
    let refusal = catalog.accepting_uploads(&name("b")).unwrap_err();
    assert_eq!(refusal, StoreCatalogRefusal::Disabled(name("b")));
    assert_eq!(refusal.kind(), RefusalKind::FailedPrecondition);
    let expected = "store `b` is disabled; an admin can enable it with `sealctl enable store b`";
    assert_eq!(refusal.to_string(), expected);
    let catalog = given::<StoreCatalog>(two_stores_then(&[disabled("b")]))
        .when(enable("b"))
        .then_events(vec![StoreEvent::StoreEnabled { name: name("b") }]);
    assert!(catalog.accepting_uploads(&name("b")).is_ok());
}

#[test]
fn enabling_an_enabled_or_disabling_a_disabled_store_changes_nothing() {
    given::<StoreCatalog>(two_stores_then(&[]))
        .when(enable("b"))
        .then_events(vec![]);
    given::<StoreCatalog>(two_stores_then(&[disabled("b")]))
        .when(disable("b"))
        .then_events(vec![]);
}

#[test]
fn commands_on_unknown_or_removed_stores_are_not_found() {
    let history = two_stores_then(&[disabled("b"), removed("b")]);
    for target in ["b", "nope"] {
        let refusal = StoreCatalogRefusal::NotFound(name(target));
        assert_eq!(refusal.kind(), RefusalKind::NotFound);
        for command in [
            enable(target),
            disable(target),
            set_default(target),
            remove(target),
        ] {
            given::<StoreCatalog>(history.clone())
                .when(command)
                .then_refused(refusal.clone());
        }
    }
    let message = StoreCatalogRefusal::NotFound(name("nope")).to_string();
    assert!(message.contains("`sealctl get stores`"), "{message}");
}

#[test]
fn removing_an_enabled_store_is_refused() {
    let refusal = StoreCatalogRefusal::StillEnabled(name("b"));
    assert_eq!(refusal.kind(), RefusalKind::FailedPrecondition);
    let message = refusal.to_string();
    assert!(
        message.contains("disable it first with `sealctl disable store b`"),
        "{message}"
    );
    given::<StoreCatalog>(two_stores_then(&[]))
        .when(remove("b"))
        .then_refused(refusal);
}

#[test]
fn removing_a_disabled_store_keeps_its_name_and_the_default() {
    let catalog = given::<StoreCatalog>(two_stores_then(&[disabled("b")]))
        .when(remove("b"))
        .then_events(vec![removed("b")]);
    assert!(catalog.store(&name("b")).unwrap().removed);
    assert_eq!(catalog.default_store(), Some(&name("a")));
    let not_found = StoreCatalogRefusal::NotFound(name("b"));
    assert_eq!(catalog.accepting_uploads(&name("b")), Err(not_found));
}

#[test]
fn removing_the_default_while_others_exist_is_refused() {
    let refusal = StoreCatalogRefusal::IsDefault(name("a"));
    assert_eq!(refusal.kind(), RefusalKind::FailedPrecondition);
    let message = refusal.to_string();
    assert!(message.contains("set another default first"), "{message}");
    given::<StoreCatalog>(two_stores_then(&[disabled("a")]))
        .when(remove("a"))
        .then_refused(refusal);
}

#[test]
fn removing_the_last_store_clears_the_default() {
    let history = two_stores_then(&[disabled("b"), removed("b"), disabled("a")]);
    let catalog = given::<StoreCatalog>(history)
        .when(remove("a"))
        .then_events(vec![removed("a")]);
    assert_eq!(catalog.default_store(), None);
}

#[test]
fn setting_the_default_moves_it_even_to_a_disabled_store() {
    let catalog = given::<StoreCatalog>(two_stores_then(&[disabled("b")]))
        .when(set_default("b"))
        .then_events(vec![default_set("b")]);
    assert_eq!(catalog.default_store(), Some(&name("b")));
}

#[test]
fn setting_the_current_default_changes_nothing() {
    given::<StoreCatalog>(two_stores_then(&[]))
        .when(set_default("a"))
        .then_events(vec![]);
}

#[test]
fn uploads_go_only_to_live_enabled_stores() {
    let mut catalog = StoreCatalog::default();
    for e in two_stores_then(&[disabled("b")]) {
        catalog.apply(&e);
    }
    let a = catalog.accepting_uploads(&name("a"));
    assert_eq!(a.map(|s| s.kind), Ok(StoreKind::Vault));
    let b = catalog.accepting_uploads(&name("b"));
    assert_eq!(b, Err(StoreCatalogRefusal::Disabled(name("b"))));
    let zzz = catalog.accepting_uploads(&name("zzz"));
    assert_eq!(zzz, Err(StoreCatalogRefusal::NotFound(name("zzz"))));
    let names: Vec<_> = catalog.stores().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn store_kinds_read_and_print_as_on_the_command_line() {
    for (text, kind) in [
        ("vault", StoreKind::Vault),
        ("aws-secrets-manager", StoreKind::AwsSecretsManager),
        ("file", StoreKind::File),
    ] {
        assert_eq!(text.parse::<StoreKind>(), Ok(kind));
        assert_eq!(kind.to_string(), text);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{text}\""));
    }
    let err = "Vault".parse::<StoreKind>().unwrap_err().to_string();
    let expected = "`Vault` is not a store kind: use vault, aws-secrets-manager or file";
    assert_eq!(err, expected);
}

#[test]
fn reactor_keys_are_32_bytes_of_standard_base64() {
    let text = STANDARD.encode([7u8; 32]);
    let k = ReactorKey::parse(&text).unwrap();
    assert_eq!(k.as_bytes(), &[7u8; 32]);
    assert_eq!(k.to_string(), text);
    assert_eq!(format!("{k:?}"), format!("ReactorKey({text})"));
    let short = STANDARD.encode([7u8; 31]);
    assert_eq!(
        ReactorKey::parse(&short),
        Err(InvalidReactorKey::WrongLength(31))
    );
    assert_eq!(
        ReactorKey::parse(""),
        Err(InvalidReactorKey::WrongLength(0))
    );
    let url_safe = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]);
    for bad in ["not base64!", text.trim_end_matches('='), &url_safe] {
        let err = ReactorKey::parse(bad);
        assert_eq!(err, Err(InvalidReactorKey::NotBase64), "{bad}");
    }
}

#[test]
fn reactor_keys_travel_as_base64_strings() {
    let k = key(9);
    let json = serde_json::to_string(&k).unwrap();
    assert_eq!(json, format!("\"{k}\""));
    assert_eq!(serde_json::from_str::<ReactorKey>(&json).unwrap(), k);
    assert!(serde_json::from_str::<ReactorKey>("\"AAAA\"").is_err());
}

#[test]
fn events_are_tagged_with_their_type_and_round_trip() {
    let enabled = StoreEvent::StoreEnabled { name: name("a") };
    let events = [
        created("a"),
        enabled,
        disabled("a"),
        default_set("a"),
        removed("a"),
    ];
    for e in events {
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], e.event_type());
        assert_eq!(json["name"], "a");
        assert_eq!(e.store(), &name("a"));
        assert_eq!(serde_json::from_value::<StoreEvent>(json).unwrap(), e);
    }
    let json = serde_json::to_value(created("a")).unwrap();
    assert_eq!(json["kind"], "vault");
    assert_eq!(json["reactor_key"], key(1).to_string());
}

fn anchor() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
}

fn certificate(store: &str, kind: &str, key_byte: u8, serial: u64) -> StoreCertificate {
    StoreCertificate::sign(
        &anchor(),
        DEPLOYMENT,
        name(store),
        kind,
        [key_byte; 32],
        serial,
    )
}

fn create_certified(n: &str, c: StoreCertificate) -> StoreCommand {
    StoreCommand::Create {
        name: name(n),
        kind: StoreKind::Vault,
        reactor_key: key(1),
        certificate: Some(c),
        deployment_id: DEPLOYMENT,
    }
}

fn certify(n: &str, c: StoreCertificate) -> StoreCommand {
    StoreCommand::Certify {
        name: name(n),
        certificate: c,
        deployment_id: DEPLOYMENT,
    }
}

#[test]
fn a_store_created_with_its_certificate_keeps_it() {
    let c = certificate("c", "vault", 1, 1);
    let state = given::<StoreCatalog>(vec![])
        .when(create_certified("c", c.clone()))
        .then_events(vec![
            StoreEvent::StoreCreated {
                name: name("c"),
                kind: StoreKind::Vault,
                reactor_key: key(1),
                certificate: Some(c.clone()),
            },
            default_set("c"),
        ]);
    assert_eq!(state.store(&name("c")).unwrap().certificate, Some(c));
}

#[test]
fn a_certificate_for_anything_else_is_refused() {
    let mut forged = certificate("c", "vault", 1, 1);
    forged.signature = certificate("d", "vault", 1, 1).signature;
    let other_deployment = StoreCertificate::sign(
        &anchor(),
        Uuid::from_u128(0xd1),
        name("c"),
        "vault",
        [1; 32],
        1,
    );
    let cases = [
        (certificate("d", "vault", 1, 1), "names store `d`"),
        (certificate("c", "file", 1, 1), "names kind `file`"),
        (certificate("c", "vault", 2, 1), "another reactor key"),
        (other_deployment, "is for deployment"),
        (forged, "signature does not verify"),
    ];
    for (c, why) in cases {
        let refused = given::<StoreCatalog>(vec![]).when(create_certified("c", c));
        let err = refused.refusal();
        assert_eq!(err.kind(), RefusalKind::Invalid, "{err}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

#[test]
fn a_newer_certificate_replaces_the_identity_and_an_older_one_is_refused() {
    let first = certificate("a", "vault", 1, 1);
    let second = certificate("a", "vault", 7, 2);
    let history = vec![
        StoreEvent::StoreCreated {
            name: name("a"),
            kind: StoreKind::Vault,
            reactor_key: key(1),
            certificate: Some(first.clone()),
        },
        default_set("a"),
    ];
    let state = given::<StoreCatalog>(history.clone())
        .when(certify("a", second.clone()))
        .then_events(vec![StoreEvent::StoreCertified {
            name: name("a"),
            certificate: second.clone(),
        }]);
    let store = state.store(&name("a")).unwrap();
    assert_eq!(store.reactor_key, key(7));
    assert_eq!(store.certificate.as_ref(), Some(&second));

    let mut after = history;
    after.push(StoreEvent::StoreCertified {
        name: name("a"),
        certificate: second.clone(),
    });
    // Rolling back to the first certificate is refused...
    let err = given::<StoreCatalog>(after.clone())
        .when(certify("a", first))
        .refusal();
    assert!(
        err.to_string()
            .contains("serial 1 is not above the current 2"),
        "{err}"
    );
    // ...and the same certificate again changes nothing.
    given::<StoreCatalog>(after)
        .when(certify("a", second))
        .then_events(vec![]);
}

#[test]
fn a_store_from_before_certificates_can_be_certified_once() {
    let state = given::<StoreCatalog>(vec![created("a"), default_set("a")])
        .when(certify("a", certificate("a", "vault", 1, 1)))
        .then_events(vec![StoreEvent::StoreCertified {
            name: name("a"),
            certificate: certificate("a", "vault", 1, 1),
        }]);
    assert_eq!(state.store(&name("a")).unwrap().reactor_key, key(1));
    // The old event shape still reads: no certificate field.
    let old: StoreEvent = serde_json::from_str(
        r#"{"type":"StoreCreated","name":"a","kind":"vault","reactor_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}"#,
    )
    .unwrap();
    assert_eq!(old, created("a"));
}
