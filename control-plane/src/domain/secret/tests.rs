//! Given/when/then for the secret's rules (ADR 0002, SPEC §6, seeds 000/001).

use super::*;
use crate::domain::testing::{Given, actor, admin, given, reactor, t0, user};
use AccessList as L;
use SecretCommand as C;
use SecretEvent as E;
use SecretRefusal as R;

fn uri() -> SecretUri {
    SecretUri::parse("vault-prod://alice/db").unwrap()
}
fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}
fn alice() -> Actor {
    user("alice", &["payments"])
}
fn bob() -> Actor {
    user("bob", &[])
}
fn carol() -> Actor {
    user("carol", &["ops"])
}
fn bot() -> Actor {
    reactor("bot", &["local", "vault-prod"])
}
fn auditor() -> Actor {
    actor("audit", Role::Auditor)
}
fn hash(c: &str) -> String {
    format!("hmac-sha256:k1:{}", c.repeat(64))
}

fn created_by(creator: &str, uri: SecretUri) -> E {
    let everyone = SlugSet::from([slug(creator)]);
    E::SecretCreated {
        uri,
        creator: slug(creator),
        acl: L::ALL.map(|l| (l, everyone.clone())).into(),
    }
}
fn granted(list: L, who: &str) -> E {
    E::AccessGranted {
        list,
        slug: slug(who),
    }
}
fn record_version(request: u128, hash: String) -> C {
    C::RecordVersion {
        request_id: Uuid::from_u128(request),
        version: request as u64,
        hash,
        key_hashes: [("password".to_owned(), self::hash("b"))].into(),
        by: slug("alice"),
        at: t0(),
    }
}
fn version_added(request: u128) -> E {
    E::SecretVersionAdded {
        uri: uri(),
        request_id: Uuid::from_u128(request),
        version: request as u64,
        hash: hash("a"),
        key_hashes: [("password".to_owned(), hash("b"))].into(),
        by: slug("alice"),
        at: t0(),
    }
}
fn deletion_requested(destroy: bool) -> E {
    E::SecretDeletionRequested {
        uri: uri(),
        destroy,
        by: slug("alice"),
    }
}
fn deleted(destroyed: bool) -> E {
    E::SecretDeleted {
        uri: uri(),
        destroyed,
    }
}
/// Before any event.
fn no_secret() -> Given<Secret> {
    given([])
}
/// Alice's secret `alice/db`, then `events`.
fn alices(events: impl IntoIterator<Item = E>) -> Given<Secret> {
    given(std::iter::once(created_by("alice", uri())).chain(events))
}
fn not_in(list: L) -> R {
    R::NotInList { uri: uri(), list }
}

#[test]
fn a_user_creates_a_secret_under_its_own_slug_and_gets_every_right() {
    let state = no_secret()
        .as_actor(alice())
        .when(C::PrepareWrite { uri: uri() })
        .then_events(vec![created_by("alice", uri())]);
    assert!(state.exists());
    assert_eq!(
        (state.uri(), state.creator()),
        (Some(&uri()), Some(&slug("alice")))
    );
    assert_eq!(state.acl().len(), 6);
    assert!(L::ALL.iter().all(|l| state.may(&alice(), *l)));
    assert!(L::ALL.iter().all(|l| !state.may(&bob(), *l)));
    assert_eq!(
        (state.versions(), state.deletion()),
        (&[][..], &Deletion::None)
    );
}

#[test]
fn group_members_create_under_the_group_prefix_and_admins_anywhere() {
    let team = SecretUri::parse("vault-prod://payments/stripe").unwrap();
    no_secret()
        .as_actor(alice())
        .when(C::PrepareWrite { uri: team.clone() })
        .then_events(vec![created_by("alice", team)]);
    let global = SecretUri::parse("local://EMAIL_API_KEY").unwrap();
    no_secret()
        .as_actor(admin())
        .when(C::PrepareWrite {
            uri: global.clone(),
        })
        .then_events(vec![created_by("root", global)]);
}

#[test]
fn a_user_may_not_create_outside_its_prefixes() {
    let refusal = R::OutsidePrefix {
        slug: slug("bob"),
        uri: uri(),
    };
    let message = refusal.to_string();
    assert!(
        message.contains("you may only create secrets under `bob/` or your groups' prefixes"),
        "{message}"
    );
    no_secret()
        .as_actor(bob())
        .when(C::PrepareWrite { uri: uri() })
        .then_refused(refusal);
}

#[test]
fn auditors_and_reactors_change_no_secret_even_when_listed() {
    let listed = [granted(L::Writers, "audit"), granted(L::Writers, "bot")];
    for who in [auditor(), bot()] {
        no_secret()
            .as_actor(who.clone())
            .when(C::PrepareWrite { uri: uri() })
            .then_refused(R::RoleMayNotChange);
        for cmd in [
            C::PrepareWrite { uri: uri() },
            C::Grant {
                list: L::Readers,
                slug: slug("bob"),
            },
            C::Revoke {
                list: L::Readers,
                slug: slug("alice"),
            },
            C::RequestDeletion { destroy: false },
        ] {
            alices(listed.clone())
                .as_actor(who.clone())
                .when(cmd)
                .then_refused(R::RoleMayNotChange);
        }
    }
}

#[test]
fn writers_write_an_existing_secret_without_new_events() {
    for who in [alice(), carol(), admin()] {
        alices([granted(L::Writers, "ops")])
            .as_actor(who)
            .when(C::PrepareWrite { uri: uri() })
            .then_events(vec![]);
    }
}

#[test]
fn others_may_not_write_an_existing_secret() {
    for who in [bob(), carol()] {
        alices([granted(L::Readers, "carol")])
            .as_actor(who)
            .when(C::PrepareWrite { uri: uri() })
            .then_refused(not_in(L::Writers));
    }
    let message = not_in(L::Writers).to_string();
    assert!(message.contains("its canChangeWriters list"), "{message}");
}

#[test]
fn writes_wait_while_a_deletion_is_in_progress() {
    alices([deletion_requested(false)])
        .as_actor(alice())
        .when(C::PrepareWrite { uri: uri() })
        .then_refused(R::DeletionInProgress(uri()));
}

#[test]
fn a_deleted_secret_may_be_written_again_and_its_next_version_revives_it() {
    for destroyed in [false, true] {
        let history = [
            version_added(1),
            deletion_requested(destroyed),
            deleted(destroyed),
        ];
        alices(history.clone())
            .as_actor(alice())
            .when(C::PrepareWrite { uri: uri() })
            .then_events(vec![]);
        let state = alices(history)
            .as_actor(bot())
            .when(record_version(2, hash("a")))
            .then_events(vec![version_added(2)]);
        assert_eq!(
            (state.deletion(), state.is_deleted()),
            (&Deletion::None, false)
        );
        assert_eq!(state.versions().len(), 2);
    }
}

#[test]
fn the_serving_reactor_records_each_version_once() {
    let state = alices([])
        .as_actor(bot())
        .when(record_version(1, hash("a")))
        .then_events(vec![version_added(1)]);
    let expected = Version {
        version: 1,
        hash: hash("a").into(),
        key_hashes: [("password".to_owned(), hash("b"))].into(),
        request_id: Uuid::from_u128(1),
        by: slug("alice"),
        at: t0(),
    };
    assert_eq!(state.versions(), &[expected]);
    alices([version_added(1)])
        .as_actor(bot())
        .when(record_version(1, hash("c")))
        .then_events(vec![]);
}

#[test]
fn only_a_reactor_serving_the_store_records_versions_and_deletions() {
    for who in [reactor("other", &["local"]), admin(), alice()] {
        for cmd in [
            record_version(1, hash("a")),
            C::RecordDeletion { destroyed: false },
        ] {
            alices([deletion_requested(false)])
                .as_actor(who.clone())
                .when(cmd)
                .then_refused(R::NotServed(uri().store));
        }
    }
}

#[test]
fn commands_on_a_secret_that_does_not_exist_are_not_found() {
    for (who, cmd) in [
        (bot(), record_version(1, hash("a"))),
        (bot(), C::RecordDeletion { destroyed: false }),
        (
            admin(),
            C::Grant {
                list: L::Readers,
                slug: slug("bob"),
            },
        ),
        (
            admin(),
            C::Revoke {
                list: L::Readers,
                slug: slug("bob"),
            },
        ),
        (admin(), C::RequestDeletion { destroy: true }),
    ] {
        no_secret()
            .as_actor(who)
            .when(cmd)
            .then_refused(R::NotFound);
    }
}

#[test]
fn recorded_versions_carry_keyed_hashes() {
    alices([])
        .as_actor(bot())
        .when(record_version(1, "deadbeef".to_owned()))
        .then_refused(R::BadHash("hash".to_owned()));
    let mut cmd = record_version(1, hash("a"));
    if let C::RecordVersion { key_hashes, .. } = &mut cmd {
        key_hashes.insert("user".to_owned(), "sha256:abc".to_owned());
    }
    alices([])
        .as_actor(bot())
        .when(cmd)
        .then_refused(R::BadHash("key_hashes[user]".to_owned()));
}

#[test]
fn each_list_is_changed_by_members_of_its_can_change_list() {
    for list in [L::Readers, L::Writers, L::Deleters] {
        let changer = list.changed_by();
        let grant = |list| C::Grant {
            list,
            slug: slug("bob"),
        };
        alices([granted(changer, "ops")])
            .as_actor(carol())
            .when(grant(list))
            .then_events(vec![granted(list, "bob")]);
        alices([granted(changer, "ops"), granted(list, "bob")])
            .as_actor(carol())
            .when(C::Revoke {
                list,
                slug: slug("bob"),
            })
            .then_events(vec![E::AccessRevoked {
                list,
                slug: slug("bob"),
            }]);
        for other in [L::Readers, L::Writers, L::Deleters]
            .into_iter()
            .filter(|l| *l != list)
        {
            alices([granted(changer, "ops")])
                .as_actor(carol())
                .when(grant(other))
                .then_refused(not_in(other.changed_by()));
        }
    }
}

#[test]
fn a_can_change_list_is_changed_only_by_its_own_members_or_admins() {
    let grant = C::Grant {
        list: L::CanChangeWriters,
        slug: slug("bob"),
    };
    alices([granted(L::CanChangeWriters, "carol")])
        .as_actor(carol())
        .when(grant.clone())
        .then_events(vec![granted(L::CanChangeWriters, "bob")]);
    alices([
        granted(L::CanChangeReaders, "carol"),
        granted(L::Writers, "carol"),
    ])
    .as_actor(carol())
    .when(grant.clone())
    .then_refused(not_in(L::CanChangeWriters));
    alices([])
        .as_actor(admin())
        .when(grant)
        .then_events(vec![granted(L::CanChangeWriters, "bob")]);
}

#[test]
fn granting_twice_or_revoking_an_absent_entry_is_a_no_op() {
    alices([])
        .as_actor(alice())
        .when(C::Grant {
            list: L::Readers,
            slug: slug("alice"),
        })
        .then_events(vec![]);
    alices([])
        .as_actor(alice())
        .when(C::Revoke {
            list: L::Readers,
            slug: slug("bob"),
        })
        .then_events(vec![]);
}

#[test]
fn the_last_entry_of_a_can_change_list_may_be_revoked() {
    let revoke = C::Revoke {
        list: L::CanChangeReaders,
        slug: slug("alice"),
    };
    let revoked = E::AccessRevoked {
        list: L::CanChangeReaders,
        slug: slug("alice"),
    };
    let state = alices([])
        .as_actor(alice())
        .when(revoke)
        .then_events(vec![revoked.clone()]);
    assert!(state.acl()[&L::CanChangeReaders].is_empty());
    let grant = C::Grant {
        list: L::Readers,
        slug: slug("bob"),
    };
    alices([revoked.clone()])
        .as_actor(alice())
        .when(grant.clone())
        .then_refused(not_in(L::CanChangeReaders));
    alices([revoked])
        .as_actor(admin())
        .when(grant)
        .then_events(vec![granted(L::Readers, "bob")]);
}

#[test]
fn deleters_request_a_deletion_once() {
    for destroy in [false, true] {
        let state = alices([])
            .as_actor(alice())
            .when(C::RequestDeletion { destroy })
            .then_events(vec![deletion_requested(destroy)]);
        assert_eq!(state.deletion_label(), "requested");
        alices([deletion_requested(destroy)])
            .as_actor(alice())
            .when(C::RequestDeletion { destroy })
            .then_events(vec![]);
        alices([deletion_requested(destroy)])
            .as_actor(alice())
            .when(C::RequestDeletion { destroy: !destroy })
            .then_refused(R::DeletionConflict {
                requested_destroy: destroy,
            });
    }
}

#[test]
fn only_deleters_and_admins_request_a_deletion() {
    alices([granted(L::Writers, "bob")])
        .as_actor(bob())
        .when(C::RequestDeletion { destroy: false })
        .then_refused(not_in(L::Deleters));
    alices([granted(L::Deleters, "ops")])
        .as_actor(carol())
        .when(C::RequestDeletion { destroy: false })
        .then_events(vec![E::SecretDeletionRequested {
            uri: uri(),
            destroy: false,
            by: slug("carol"),
        }]);
}

#[test]
fn a_deleted_secret_is_not_deleted_again_but_may_still_be_destroyed() {
    for (done, destroy, events) in [
        (false, false, vec![]),
        (false, true, vec![deletion_requested(true)]),
        (true, false, vec![]),
        (true, true, vec![]),
    ] {
        alices([deletion_requested(done), deleted(done)])
            .as_actor(alice())
            .when(C::RequestDeletion { destroy })
            .then_events(events);
    }
}

#[test]
fn the_serving_reactor_records_a_requested_deletion_once() {
    alices([])
        .as_actor(bot())
        .when(C::RecordDeletion { destroyed: false })
        .then_refused(R::NoDeletionRequested);
    for destroyed in [false, true] {
        let state = alices([deletion_requested(true)])
            .as_actor(bot())
            .when(C::RecordDeletion { destroyed })
            .then_events(vec![deleted(destroyed)]);
        assert!(state.is_deleted() && state.exists());
        let label = if destroyed { "destroyed" } else { "deleted" };
        assert_eq!(state.deletion_label(), label);
        let history = [deletion_requested(true), deleted(destroyed)];
        alices(history.clone())
            .as_actor(bot())
            .when(C::RecordDeletion { destroyed })
            .then_events(vec![]);
        alices(history)
            .as_actor(bot())
            .when(C::RecordDeletion {
                destroyed: !destroyed,
            })
            .then_refused(R::AlreadyDeleted { destroyed });
    }
}

#[test]
fn access_is_checked_by_slug_or_group_and_admins_bypass_the_lists() {
    let mut state = Secret::default();
    for e in [created_by("alice", uri()), granted(L::Readers, "ops")] {
        state.apply(&e);
    }
    assert!(state.may(&carol(), L::Readers) && !state.may(&carol(), L::Writers));
    assert!(state.may(&admin(), L::CanChangeDeleters));
    assert!(!Secret::default().may(&alice(), L::Readers));
    let team = SecretUri::parse("local://ops/app").unwrap();
    assert!(Secret::may_create(&carol(), &team) && !Secret::may_create(&alice(), &team));
    assert!(Secret::may_create(&admin(), &team));
    let own = SecretUri::parse("local://audit/x").unwrap();
    assert!(!Secret::may_create(&auditor(), &own));
    let own = SecretUri::parse("local://bot/x").unwrap();
    assert!(!Secret::may_create(&bot(), &own));
}

#[test]
fn access_lists_are_named_as_in_the_seeds() {
    let names = [
        "readers",
        "writers",
        "deleters",
        "canChangeReaders",
        "canChangeWriters",
        "canChangeDeleters",
    ];
    for (list, name) in L::ALL.into_iter().zip(names) {
        assert_eq!((list.as_str(), list.to_string()), (name, name.to_owned()));
        assert_eq!(serde_json::to_value(list).unwrap(), name);
        assert_eq!(name.parse::<L>(), Ok(list));
    }
    let err = "can_change_readers".parse::<L>().unwrap_err().to_string();
    assert!(err.contains("canChangeReaders"), "{err}");
}

#[test]
fn events_carry_their_type_and_old_versions_without_key_hashes_still_read() {
    let events = [
        created_by("alice", uri()),
        version_added(1),
        granted(L::Readers, "bob"),
        E::AccessRevoked {
            list: L::Readers,
            slug: slug("bob"),
        },
        deletion_requested(true),
        deleted(true),
    ];
    for event in events {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.event_type());
        assert_eq!(serde_json::from_value::<E>(json).unwrap(), event);
        assert!(!event.summary().is_empty());
    }
    let json = serde_json::to_value(created_by("alice", uri())).unwrap();
    assert_eq!(
        json["acl"]["canChangeReaders"],
        serde_json::json!(["alice"])
    );
    let mut old = serde_json::to_value(version_added(1)).unwrap();
    old.as_object_mut().unwrap().remove("key_hashes");
    match serde_json::from_value::<E>(old).unwrap() {
        E::SecretVersionAdded { key_hashes, .. } => assert!(key_hashes.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        version_added(1).summary(),
        format!("version 1 by alice: {}", hash("a"))
    );
}

#[test]
fn refusals_map_to_the_status_the_api_reports() {
    use RefusalKind as K;
    for (refusal, kind) in [
        (R::RoleMayNotChange, K::Denied),
        (not_in(L::Writers), K::Denied),
        (R::NotServed(uri().store), K::Denied),
        (R::NotFound, K::NotFound),
        (R::DeletionInProgress(uri()), K::FailedPrecondition),
        (R::NoDeletionRequested, K::FailedPrecondition),
        (R::BadHash(String::new()), K::Invalid),
    ] {
        assert_eq!(refusal.kind(), kind, "{refusal:?}");
    }
}

#[test]
fn access_lists_stay_sorted_without_duplicates_and_read_old_events() {
    let mut set = SlugSet::from([slug("carol"), slug("alice"), slug("alice")]);
    assert_eq!(
        set.iter().map(Slug::as_str).collect::<Vec<_>>(),
        ["alice", "carol"]
    );
    assert!(set.insert(slug("bob")));
    assert!(!set.insert(slug("bob")));
    assert!(set.contains(&slug("bob")) && !set.contains(&slug("dave")));
    assert!(set.remove(&slug("alice")) && !set.remove(&slug("alice")));
    assert_eq!(set.len(), 2);
    // The JSON of events written when lists were BTreeSets reads the same.
    let old = r#"["bob","alice","bob"]"#;
    let read: SlugSet = serde_json::from_str(old).unwrap();
    assert_eq!(serde_json::to_string(&read).unwrap(), r#"["alice","bob"]"#);
}

#[test]
fn given_a_new_secret_its_creator_is_one_entry_in_all_six_lists() {
    let mut state = Secret::default();
    state.apply(&created_by("alice", uri()));
    assert_eq!(state.acl.0, vec![(slug("alice"), 0b11_1111)]);
    for list in L::ALL {
        assert!(state.acl.contains(list, &slug("alice")), "{list}");
        assert_eq!(state.acl()[&list], SlugSet::from([slug("alice")]));
    }
}

#[test]
fn given_access_lists_when_slugs_are_granted_and_revoked_then_each_list_holds_its_own() {
    let mut access = Access::default();
    assert!(access.insert(L::Readers, slug("bob")));
    assert!(!access.insert(L::Readers, slug("bob")), "already there");
    assert!(access.insert(L::Writers, slug("bob")));
    assert!(access.insert(L::Readers, slug("alice")));
    assert_eq!(
        access.members(L::Readers).collect::<Vec<_>>(),
        [&slug("alice"), &slug("bob")]
    );
    assert!(access.remove(L::Readers, &slug("bob")));
    assert!(
        !access.remove(L::Readers, &slug("bob")),
        "not there any more"
    );
    assert!(access.contains(L::Writers, &slug("bob")), "still a writer");
    assert!(!access.contains(L::Readers, &slug("bob")));
    assert!(access.remove(L::Writers, &slug("bob")));
    assert_eq!(access.0, vec![(slug("alice"), 1)], "a slug in no list goes");
    let acl = access.to_acl();
    assert_eq!(acl.len(), 6, "every list, empty ones too");
    assert!(acl[&L::Deleters].is_empty());
}

#[test]
fn access_lists_read_back_sorted_and_whole_whatever_order_they_were_written_in() {
    let access = Access::from(&Acl::from([
        (L::Readers, SlugSet::from([slug("carol"), slug("alice")])),
        (L::Deleters, SlugSet::from([slug("alice")])),
    ]));
    let json = serde_json::to_string(&access).unwrap();
    assert_eq!(json, r#"[["alice",5],["carol",1]]"#);
    assert_eq!(serde_json::from_str::<Access>(&json).unwrap(), access);
    let unsorted: Access =
        serde_json::from_str(r#"[["carol",1],["alice",1],["alice",4],["dave",0],["eve",192]]"#)
            .unwrap();
    assert_eq!(unsorted, access, "sorted, merged, no slug in no list");
}
