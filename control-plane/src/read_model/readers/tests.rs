//! Given/when/then for finding what a principal reads without a full scan:
//! every answer is checked against a full scan with `Secret::may`.

use std::sync::Arc;

use sealplane_event_store::{
    EventMetadata, EventStore, EventType, ExpectedVersion, MemoryStore, NewEvent,
};

use super::*;
use crate::domain::Actor;
use crate::domain::DomainEvent;
use crate::domain::secret::{SecretEvent as E, SlugSet};
use crate::domain::testing::{admin, user};
use crate::projection::as_of;
use crate::read_model::ReadModel;
use crate::streams;

fn uri(s: &str) -> SecretUri {
    SecretUri::parse(s).unwrap()
}
fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

/// `creator` made `uri`, with every list holding only itself.
fn created(uri_text: &str, creator: &str) -> (SecretUri, E) {
    let everyone = SlugSet::from([slug(creator)]);
    let uri = uri(uri_text);
    let event = E::SecretCreated {
        uri: uri.clone(),
        creator: slug(creator),
        acl: AccessList::ALL.map(|l| (l, everyone.clone())).into(),
    };
    (uri, event)
}

async fn record(store: &dyn EventStore, uri: &SecretUri, event: &E) {
    let new = NewEvent::new(
        EventType::parse(event.event_type()).unwrap(),
        1,
        event,
        &EventMetadata::new("t"),
    )
    .unwrap();
    store
        .append(&streams::secret(uri), ExpectedVersion::Any, vec![new])
        .await
        .unwrap();
}

async fn model_of(store: &dyn EventStore) -> ReadModel {
    as_of(store, ReadModel::default(), store.head().await.unwrap())
        .await
        .unwrap()
}

/// A deployment with the cases a listing can get wrong: a user's own
/// segment beside a longer name that starts with it, a secret whose whole
/// path is the slug, a group's segment, grants across owners, an admin's
/// secret given to a user, a reader revoked under its own segment, and a
/// second store.
async fn deployment() -> (Arc<dyn EventStore>, ReadModel) {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    for (u, creator) in [
        ("local://alice/db", "alice"),
        ("local://alice/app/api", "alice"),
        ("local://alice", "alice"),
        ("local://alice-team/x", "alice-team"),
        ("local://alice.old/y", "bob"),
        ("local://alicex/z", "bob"),
        ("local://team/shared", "carol"),
        ("local://bob/one", "bob"),
        ("local://bob/two", "bob"),
        ("local://payments/db", "root"),
        ("local://alice/revoked", "alice"),
        ("vault://alice/db", "alice"),
        ("vault://bob/three", "bob"),
    ] {
        let (uri, event) = created(u, creator);
        record(&*store, &uri, &event).await;
    }
    let grants = [
        ("local://team/shared", "team"),
        ("local://bob/one", "alice"),
        ("local://bob/two", "team"),
        ("local://payments/db", "alice"),
        ("vault://bob/three", "alice"),
    ];
    for (u, who) in grants {
        let event = E::AccessGranted {
            list: AccessList::Readers,
            slug: slug(who),
        };
        record(&*store, &uri(u), &event).await;
    }
    let revoked = E::AccessRevoked {
        list: AccessList::Readers,
        slug: slug("alice"),
    };
    record(&*store, &uri("local://alice/revoked"), &revoked).await;
    let model = model_of(&*store).await;
    (store, model)
}

/// What a full scan finds: every secret `actor` is a reader of.
fn scanned<'a>(
    model: &'a ReadModel,
    actor: &Actor,
    store: Option<&StoreName>,
) -> Vec<&'a SecretUri> {
    model
        .secrets
        .iter()
        .filter(|(u, s)| store.is_none_or(|st| u.store == *st) && s.may(actor, AccessList::Readers))
        .map(|(u, _)| u)
        .collect()
}

/// Every page of `limit` after another, as a listing reads them.
fn paged<'a>(
    model: &'a ReadModel,
    actor: &Actor,
    store: Option<&StoreName>,
    limit: usize,
) -> Vec<&'a SecretUri> {
    let mut all: Vec<&SecretUri> = Vec::new();
    loop {
        let page = model.readable_by(actor, store, all.last().copied(), limit, |_| true);
        let done = page.len() < limit;
        all.extend(page.into_iter().map(|(u, _)| u));
        if done {
            return all;
        }
    }
}

#[tokio::test]
async fn a_user_finds_exactly_what_a_full_scan_finds_on_every_page_size() {
    // Given the deployment
    let (_, model) = deployment().await;
    let alice = user("alice", &["team"]);
    // When alice lists with pages of every size, then she gets what a
    // full scan gives her, in uri order.
    let expected = scanned(&model, &alice, None);
    assert_eq!(
        expected.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        [
            "local://alice",
            "local://alice/app/api",
            "local://alice/db",
            "local://bob/one",
            "local://bob/two",
            "local://payments/db",
            "local://team/shared",
            "vault://alice/db",
            "vault://bob/three",
        ],
        "the scenario itself"
    );
    for limit in 1..=expected.len() + 1 {
        assert_eq!(
            paged(&model, &alice, None, limit),
            expected,
            "pages of {limit}"
        );
    }
}

#[tokio::test]
async fn a_listing_in_one_store_and_for_other_users_matches_the_scan_too() {
    let (_, model) = deployment().await;
    let local = StoreName::parse("local").unwrap();
    let vault = StoreName::parse("vault").unwrap();
    for actor in [
        user("alice", &["team"]),
        user("alice", &[]),
        user("bob", &[]),
        user("carol", &["team"]),
        user("alice-team", &[]),
        user("dave", &[]),
    ] {
        for store in [None, Some(&local), Some(&vault)] {
            for limit in [1, 2, 100] {
                assert_eq!(
                    paged(&model, &actor, store, limit),
                    scanned(&model, &actor, store),
                    "{} in {store:?}, pages of {limit}",
                    actor.slug
                );
            }
        }
    }
    assert!(paged(&model, &user("dave", &[]), None, 10).is_empty());
}

#[tokio::test]
async fn keep_is_asked_of_every_secret_listed() {
    let (_, model) = deployment().await;
    let alice = user("alice", &["team"]);
    let listed = model.readable_by(&alice, None, None, 100, |s| {
        s.uri().is_some_and(|u| u.store.as_str() == "vault")
    });
    let uris: Vec<String> = listed.iter().map(|(u, _)| u.to_string()).collect();
    assert_eq!(uris, ["vault://alice/db", "vault://bob/three"]);
}

#[tokio::test]
async fn the_index_follows_grants_and_revokes_and_a_rebuild_from_the_secrets_equals_it() {
    // Given the deployment, folded event by event
    let (store, model) = deployment().await;
    // Then its index is the one a snapshot's read would build
    assert_eq!(model.grants, Grants::of(&model.secrets));
    assert!(model.grants.0[&slug("alice")].contains(&uri("local://payments/db")));
    assert!(
        !model.grants.0.contains_key(&slug("team"))
            || !model.grants.0[&slug("team")].contains(&uri("local://team/shared")),
        "a reader its path names needs no entry"
    );

    // When alice's grants elsewhere are revoked
    for u in [
        "local://bob/one",
        "local://payments/db",
        "vault://bob/three",
    ] {
        let event = E::AccessRevoked {
            list: AccessList::Readers,
            slug: slug("alice"),
        };
        record(&*store, &uri(u), &event).await;
    }
    let model = model_of(&*store).await;
    // Then she has no entry left, and she lists only her own and her group's
    assert!(!model.grants.0.contains_key(&slug("alice")));
    assert_eq!(model.grants, Grants::of(&model.secrets));
    let alice = user("alice", &["team"]);
    assert_eq!(
        paged(&model, &alice, None, 3),
        scanned(&model, &alice, None)
    );
    assert!(!paged(&model, &alice, None, 3).contains(&&uri("local://payments/db")));
}

#[tokio::test]
async fn an_admin_reads_every_secret_as_the_scan_says() {
    let (_, model) = deployment().await;
    let root = admin();
    let all: Vec<&SecretUri> = model.secrets.keys().collect();
    assert_eq!(scanned(&model, &root, None), all);
    for limit in [1, 4, 100] {
        assert_eq!(paged(&model, &root, None, limit), all, "pages of {limit}");
    }
}

mod any_deployment {
    //! The same check over deployments drawn at random: names that share
    //! a prefix, grants and revokes in any order, every page size.

    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 5] = ["al", "al-b", "alx", "bo", "team"];
    /// First path segments: the names, and one no slug can be.
    const SEGMENTS: [&str; 6] = ["al", "al-b", "alx", "bo", "team", "al.c"];
    const LEAVES: [&str; 4] = ["", "/a", "/b-c/d", "/z"];
    const STORES: [&str; 2] = ["s1", "s2"];

    #[derive(Debug, Clone)]
    struct Drawn {
        /// (store, segment, leaf, creator) of each secret.
        secrets: Vec<(usize, usize, usize, usize)>,
        /// (secret, name, grant or revoke), applied in order.
        changes: Vec<(usize, usize, bool)>,
        /// The lister: its slug and its groups.
        slug: usize,
        groups: Vec<usize>,
        store: Option<usize>,
        page: usize,
    }

    fn drawn() -> impl Strategy<Value = Drawn> {
        let secret = (
            0..STORES.len(),
            0..SEGMENTS.len(),
            0..LEAVES.len(),
            0..NAMES.len(),
        );
        (
            prop::collection::vec(secret, 1..12),
            prop::collection::vec((0..12usize, 0..NAMES.len(), any::<bool>()), 0..16),
            0..NAMES.len(),
            prop::collection::vec(0..NAMES.len(), 0..3),
            prop::option::of(0..STORES.len()),
            1..5usize,
        )
            .prop_map(|(secrets, changes, slug, groups, store, page)| Drawn {
                secrets,
                changes,
                slug,
                groups,
                store,
                page,
            })
    }

    async fn check(d: Drawn) {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let mut made: Vec<SecretUri> = Vec::new();
        for (st, seg, leaf, creator) in &d.secrets {
            let text = format!("{}://{}{}", STORES[*st], SEGMENTS[*seg], LEAVES[*leaf]);
            let (uri, event) = created(&text, NAMES[*creator]);
            if !made.contains(&uri) {
                record(&*store, &uri, &event).await;
                made.push(uri);
            }
        }
        for (which, name, grant) in &d.changes {
            let uri = &made[which % made.len()];
            let (list, slug) = (AccessList::Readers, slug(NAMES[*name]));
            let event = if *grant {
                E::AccessGranted { list, slug }
            } else {
                E::AccessRevoked { list, slug }
            };
            record(&*store, uri, &event).await;
        }
        let model = model_of(&*store).await;
        assert_eq!(model.grants, Grants::of(&model.secrets));
        let groups: Vec<&str> = d.groups.iter().map(|g| NAMES[*g]).collect();
        let actor = user(NAMES[d.slug], &groups);
        let filter = d.store.map(|s| StoreName::parse(STORES[s]).unwrap());
        assert_eq!(
            paged(&model, &actor, filter.as_ref(), d.page),
            scanned(&model, &actor, filter.as_ref())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn a_listing_of_any_deployment_is_what_a_full_scan_finds(d in drawn()) {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(check(d));
        }
    }
}
