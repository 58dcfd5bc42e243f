use std::collections::BTreeMap;

use super::*;
use crate::secrets::VersionRow;

fn store(name: &str, enabled: bool, default: bool) -> StoreRow {
    StoreRow {
        name: name.into(),
        kind: "file".into(),
        enabled,
        default,
        reactor_key: "KEY".into(),
        certificate_serial: 1,
        certified_by: "ANCHOR".into(),
    }
}

fn version(n: u64, hash: &str) -> VersionRow {
    VersionRow {
        version: n,
        hash: hash.into(),
        hash_version: Some("v2"),
        key_hashes: BTreeMap::new(),
        by: "alice".into(),
        at: "2026-12-01T10:00:00.000Z".into(),
        request_id: format!("r{n}"),
    }
}

fn secret(uri: &str, versions: Vec<VersionRow>, readers: &[&str], deletion: &str) -> SecretDetail {
    SecretDetail {
        uri: uri.into(),
        creator: "alice".into(),
        deletion: deletion.into(),
        versions,
        access: BTreeMap::from([(
            "readers".to_owned(),
            readers.iter().map(|s| s.to_string()).collect(),
        )]),
        history: None,
    }
}

fn principal(slug: &str, kind: &str, role: &str, related: &[&str]) -> PrincipalRow {
    PrincipalRow {
        slug: slug.into(),
        kind: kind.into(),
        role: role.into(),
        stores: vec![],
        related: related.iter().map(|s| s.to_string()).collect(),
    }
}

fn state(
    stores: Vec<StoreRow>,
    secrets: Vec<SecretDetail>,
    principals: Vec<PrincipalRow>,
) -> ReplayState {
    ReplayState {
        position: 1,
        time: String::new(),
        stores,
        secrets,
        principals,
    }
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(Change::describe).collect()
}

#[test]
fn the_same_state_has_no_changes() {
    let s = state(
        vec![store("local", true, true)],
        vec![secret(
            "local://alice/db",
            vec![version(1, "h1")],
            &["alice"],
            "none",
        )],
        vec![principal("alice", "user", "user", &[])],
    );
    assert_eq!(diff(&s, &s), vec![]);
}

#[test]
fn stores_added_removed_and_changed_name_the_field() {
    // Given local enabled and default, and old,
    let before = state(
        vec![store("local", true, true), store("old", false, false)],
        vec![],
        vec![],
    );
    // when local is disabled, old removed and vault added,
    let mut vault = store("vault", true, false);
    vault.kind = "vault".into();
    let after = state(vec![store("local", false, true), vault], vec![], vec![]);
    // then each is one change.
    assert_eq!(
        lines(&diff(&before, &after)),
        vec!["~ local: enabled true -> false", "- old", "+ vault (vault)",]
    );
    let changed = &diff(&before, &after)[0];
    assert_eq!(changed.section, Section::Stores);
    assert_eq!(changed.field.as_deref(), Some("enabled"));
    assert_eq!(changed.before.as_deref(), Some("true"));
    assert_eq!(changed.after.as_deref(), Some("false"));
}

#[test]
fn a_new_secret_names_its_versions_and_access_lists() {
    let before = state(vec![], vec![], vec![]);
    let after = state(
        vec![],
        vec![secret(
            "local://alice/db",
            vec![version(1, "h1")],
            &["alice"],
            "none",
        )],
        vec![],
    );
    assert_eq!(
        lines(&diff(&before, &after)),
        vec![
            "+ local://alice/db",
            "+ local://alice/db: version 1 (h1)",
            "+ local://alice/db: readers alice",
        ]
    );
}

#[test]
fn versions_grants_revokes_and_deletions_of_a_secret_are_each_named() {
    // Given a secret with one version, read by alice and bob,
    let before = state(
        vec![],
        vec![secret(
            "local://alice/db",
            vec![version(1, "h1")],
            &["alice", "bob"],
            "none",
        )],
        vec![],
    );
    // when a second version is put, bob revoked, carol granted, and it is deleted,
    let after = state(
        vec![],
        vec![secret(
            "local://alice/db",
            vec![version(1, "h1"), version(2, "h2")],
            &["alice", "carol"],
            "deleted",
        )],
        vec![],
    );
    let changes = diff(&before, &after);
    // then:
    assert_eq!(
        lines(&changes),
        vec![
            "+ local://alice/db: version 2 (h2)",
            "+ local://alice/db: readers carol",
            "- local://alice/db: readers bob",
            "x local://alice/db: deleted (was none)",
        ]
    );
    assert_eq!(changes[0].change, ChangeKind::VersionAdded);
    assert_eq!(changes[0].version, Some(2));
    assert_eq!(changes[0].hash.as_deref(), Some("h2"));
    assert_eq!(changes[2].change, ChangeKind::AccessRemoved);
    assert_eq!(changes[2].field.as_deref(), Some("readers"));
    assert_eq!(changes[2].before.as_deref(), Some("bob"));
    assert_eq!(changes[3].change, ChangeKind::Deleted);
}

#[test]
fn a_secret_removed_from_the_listing_is_removed() {
    let before = state(
        vec![],
        vec![secret(
            "local://alice/db",
            vec![version(1, "h1")],
            &[],
            "none",
        )],
        vec![],
    );
    let after = state(vec![], vec![], vec![]);
    assert_eq!(lines(&diff(&before, &after)), vec!["- local://alice/db"]);
}

#[test]
fn principals_and_memberships_are_named_once_on_the_group() {
    // Given alice in team,
    let before = state(
        vec![],
        vec![],
        vec![
            principal("alice", "user", "user", &["team"]),
            principal("team", "group", "", &["alice"]),
        ],
    );
    // when bob is created and joins team, alice leaves it, and ops is
    // created with bob in it,
    let after = state(
        vec![],
        vec![],
        vec![
            principal("alice", "user", "user", &[]),
            principal("bob", "user", "auditor", &["ops", "team"]),
            principal("ops", "group", "", &["bob"]),
            principal("team", "group", "", &["bob"]),
        ],
    );
    // then each principal and membership is one change (the users'
    // group lists are the same facts and are not repeated).
    assert_eq!(
        lines(&diff(&before, &after)),
        vec![
            "+ bob (user auditor)",
            "+ ops (group)",
            "+ ops: member bob",
            "+ team: member bob",
            "- team: member alice",
        ]
    );
}

#[test]
fn a_role_change_and_a_removed_user_are_named() {
    let before = state(
        vec![],
        vec![],
        vec![
            principal("alice", "user", "user", &[]),
            principal("bob", "user", "user", &[]),
        ],
    );
    let after = state(
        vec![],
        vec![],
        vec![principal("alice", "user", "admin", &[])],
    );
    assert_eq!(
        lines(&diff(&before, &after)),
        vec!["~ alice: role user -> admin", "- bob"]
    );
}

#[test]
fn changes_serialise_with_stable_field_names() {
    let before = state(vec![], vec![], vec![]);
    let after = state(vec![store("local", true, true)], vec![], vec![]);
    let json = serde_json::to_value(diff(&before, &after)).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "section": "stores", "subject": "local", "change": "added",
            "field": null, "before": null, "after": "file",
            "version": null, "hash": null
        }])
    );
}
