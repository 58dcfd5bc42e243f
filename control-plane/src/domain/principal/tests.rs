//! Given/when/then tests of every rule and refusal.
use chrono::Duration;

use super::*;
use crate::domain::Actor;
use crate::domain::testing::{actor, admin, given, reactor, t0, user};

const TOKEN: Uuid = Uuid::from_u128(1);
const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

fn create_user(s: &str, role: Role, stores: &[&str]) -> PrincipalCommand {
    let stores = stores.iter().map(|n| StoreName::parse(*n).unwrap());
    PrincipalCommand::CreateUser {
        slug: slug(s),
        role,
        stores: stores.collect(),
    }
}

/// The event `create_user` produces.
fn user_created(s: &str, role: Role, stores: &[&str]) -> PrincipalEvent {
    match create_user(s, role, stores) {
        PrincipalCommand::CreateUser { slug, role, stores } => {
            PrincipalEvent::UserCreated { slug, role, stores }
        }
        _ => unreachable!(),
    }
}

fn alice() -> PrincipalEvent {
    user_created("alice", Role::User, &[])
}

fn ops() -> PrincipalEvent {
    PrincipalEvent::GroupCreated { slug: slug("ops") }
}

fn add(u: &str, user_exists: bool) -> PrincipalCommand {
    let user = slug(u);
    PrincipalCommand::AddMember { user, user_exists }
}

fn remove(u: &str) -> PrincipalCommand {
    PrincipalCommand::RemoveMember { user: slug(u) }
}

fn added(u: &str) -> PrincipalEvent {
    let (group, user) = (slug("ops"), slug(u));
    PrincipalEvent::MemberAdded { group, user }
}

fn expiry() -> DateTime<Utc> {
    t0() + Duration::days(30)
}

fn issue(token_id: Uuid, sha256_hex: &str) -> PrincipalCommand {
    let (sha256_hex, expires_at) = (sha256_hex.to_owned(), expiry());
    PrincipalCommand::IssueToken {
        token_id,
        sha256_hex,
        expires_at,
    }
}

fn issued(token_id: Uuid, sha256_hex: &str) -> PrincipalEvent {
    let (user, sha256_hex, expires_at) = (slug("alice"), sha256_hex.to_owned(), expiry());
    PrincipalEvent::TokenIssued {
        token_id,
        user,
        sha256_hex,
        expires_at,
    }
}

fn revoke() -> PrincipalCommand {
    PrincipalCommand::RevokeToken { token_id: TOKEN }
}

fn revoked() -> PrincipalEvent {
    let (token_id, user) = (TOKEN, slug("alice"));
    PrincipalEvent::TokenRevoked { token_id, user }
}

fn denied(who: &Actor, action: &'static str) -> PrincipalRefusal {
    let actor = who.slug.clone();
    PrincipalRefusal::Denied { actor, action }
}

#[test]
fn an_admin_creates_users_reactors_and_groups() {
    let alice = given::<Principal>([])
        .when(create_user("alice", Role::User, &[]))
        .then_events(vec![alice()]);
    assert!(alice.is_user() && !alice.is_group() && alice.members().is_none());
    assert_eq!((alice.role(), alice.stores()), (Some(Role::User), &[][..]));
    let r1 = given::<Principal>([])
        .when(create_user("r1", Role::Reactor, &["vault-prod"]))
        .then_events(vec![user_created("r1", Role::Reactor, &["vault-prod"])]);
    assert_eq!(r1.role(), Some(Role::Reactor));
    assert_eq!(r1.stores().len(), 1);
    assert_eq!(r1.stores()[0].as_str(), "vault-prod");
    let group = given::<Principal>([])
        .when(PrincipalCommand::CreateGroup { slug: slug("ops") })
        .then_events(vec![ops()]);
    assert_eq!(group.members(), Some(&BTreeSet::new()));
    assert_eq!((group.is_user(), group.is_group()), (false, true));
    assert_eq!((group.role(), group.stores()), (None, &[][..]));
}

#[test]
fn adding_and_removing_members_changes_the_group_once() {
    let group = given::<Principal>([ops()])
        .when(add("alice", true))
        .then_events(vec![added("alice")]);
    assert_eq!(group.members(), Some(&BTreeSet::from([slug("alice")])));
    given::<Principal>([ops(), added("alice")])
        .when(add("alice", true))
        .then_events(vec![]);
    let (group, user) = (slug("ops"), slug("alice"));
    let group = given::<Principal>([ops(), added("alice")])
        .when(remove("alice"))
        .then_events(vec![PrincipalEvent::MemberRemoved { group, user }]);
    assert_eq!(group.members(), Some(&BTreeSet::new()));
    given::<Principal>([ops()])
        .when(remove("bob"))
        .then_events(vec![]);
}

#[test]
fn every_reactor_serves_a_store_and_only_reactors_do() {
    given::<Principal>([])
        .when(create_user("r1", Role::Reactor, &[]))
        .then_refused(PrincipalRefusal::ReactorWithoutStores(slug("r1")));
    for (role, name) in [
        (Role::Admin, "admin"),
        (Role::User, "user"),
        (Role::Auditor, "auditor"),
    ] {
        let refusal = PrincipalRefusal::StoresForNonReactor {
            slug: slug("x"),
            role: name,
        };
        assert_eq!(refusal.kind(), RefusalKind::Invalid);
        given::<Principal>([])
            .when(create_user("x", role, &["s"]))
            .then_refused(refusal);
    }
}

#[test]
fn a_slug_taken_by_a_user_or_a_group_cannot_be_created_again() {
    for (history, name, taken_by) in [(alice(), "alice", "user"), (ops(), "ops", "group")] {
        let refusal = PrincipalRefusal::SlugTaken {
            slug: slug(name),
            taken_by,
        };
        assert_eq!(refusal.kind(), RefusalKind::AlreadyExists);
        for command in [
            create_user(name, Role::User, &[]),
            PrincipalCommand::CreateGroup { slug: slug(name) },
        ] {
            given::<Principal>([history.clone()])
                .when(command)
                .then_refused(refusal.clone());
        }
    }
}

#[test]
fn only_admins_create_principals_manage_members_and_issue_tokens() {
    let cases = [
        (ops(), create_user("bob", Role::User, &[]), "create users"),
        (
            ops(),
            PrincipalCommand::CreateGroup { slug: slug("bob") },
            "create groups",
        ),
        (ops(), add("bob", true), "change group members"),
        (ops(), remove("bob"), "change group members"),
        // Not even to itself.
        (alice(), issue(TOKEN, DIGEST), "issue tokens"),
    ];
    let outsiders = [
        user("alice", &["ops"]),
        actor("audit", Role::Auditor),
        reactor("r1", &["s"]),
    ];
    for (history, command, action) in cases {
        for who in outsiders.clone() {
            assert_eq!(denied(&who, action).kind(), RefusalKind::Denied);
            given::<Principal>([history.clone()])
                .as_actor(who.clone())
                .when(command.clone())
                .then_refused(denied(&who, action));
        }
    }
    assert_eq!(
        denied(&user("bob", &[]), "issue tokens").to_string(),
        "`bob` may not issue tokens: that needs the admin role"
    );
}

#[test]
fn commands_on_an_absent_principal_are_not_found() {
    assert_eq!(
        PrincipalRefusal::NoSuchPrincipal.kind(),
        RefusalKind::NotFound
    );
    for command in [
        add("alice", true),
        remove("alice"),
        issue(TOKEN, DIGEST),
        revoke(),
    ] {
        given::<Principal>([])
            .when(command)
            .then_refused(PrincipalRefusal::NoSuchPrincipal);
    }
}

#[test]
fn only_existing_users_join_groups() {
    let refusal = PrincipalRefusal::NoSuchUser(slug("bob"));
    assert_eq!(refusal.kind(), RefusalKind::NotFound);
    given::<Principal>([ops()])
        .when(add("bob", false))
        .then_refused(refusal);
}

#[test]
fn an_admin_issues_a_token_recorded_by_its_digest() {
    let alice = given::<Principal>([alice()])
        .when(issue(TOKEN, DIGEST))
        .then_events(vec![issued(TOKEN, DIGEST)]);
    let token = alice.token(&TOKEN).unwrap();
    assert_eq!(token.sha256_hex, DIGEST);
    assert_eq!((token.expires_at, token.revoked), (expiry(), false));
    assert!(token.is_valid_at(t0()) && !token.is_valid_at(expiry()));
}

#[test]
fn only_groups_have_members_and_only_users_have_tokens() {
    let not_a_group = PrincipalRefusal::NotAGroup(slug("alice"));
    let not_a_user = PrincipalRefusal::NotAUser(slug("ops"));
    for (history, command, refusal) in [
        (alice(), add("bob", true), &not_a_group),
        (alice(), remove("bob"), &not_a_group),
        (ops(), issue(TOKEN, DIGEST), &not_a_user),
        (ops(), revoke(), &not_a_user),
    ] {
        assert_eq!(refusal.kind(), RefusalKind::FailedPrecondition);
        given::<Principal>([history])
            .when(command)
            .then_refused(refusal.clone());
    }
}

#[test]
fn a_token_digest_must_be_64_lowercase_hex_characters() {
    assert_eq!(PrincipalRefusal::BadDigest.kind(), RefusalKind::Invalid);
    let (upper, not_hex) = (DIGEST.to_uppercase(), DIGEST.replace('a', "g"));
    for bad in ["", &DIGEST[1..], &format!("{DIGEST}0"), &upper, &not_hex] {
        given::<Principal>([alice()])
            .when(issue(TOKEN, bad))
            .then_refused(PrincipalRefusal::BadDigest);
    }
}

#[test]
fn a_token_must_expire_in_the_future() {
    for now in [expiry(), expiry() + Duration::seconds(1)] {
        let expires_at = expiry();
        let refusal = PrincipalRefusal::ExpiryNotInFuture { expires_at, now };
        assert_eq!(refusal.kind(), RefusalKind::Invalid);
        given::<Principal>([alice()])
            .at(now)
            .when(issue(TOKEN, DIGEST))
            .then_refused(refusal);
    }
}

#[test]
fn reissuing_a_token_id_is_a_no_op_only_when_identical_and_not_revoked() {
    given::<Principal>([alice(), issued(TOKEN, DIGEST)])
        .when(issue(TOKEN, DIGEST))
        .then_events(vec![]);
    let refusal = PrincipalRefusal::TokenIdTaken(TOKEN);
    assert_eq!(refusal.kind(), RefusalKind::AlreadyExists);
    let mut later = issue(TOKEN, DIGEST);
    if let PrincipalCommand::IssueToken { expires_at, .. } = &mut later {
        *expires_at += Duration::days(1);
    }
    for command in [issue(TOKEN, &"f".repeat(64)), later] {
        given::<Principal>([alice(), issued(TOKEN, DIGEST)])
            .when(command)
            .then_refused(refusal.clone());
    }
    given::<Principal>([alice(), issued(TOKEN, DIGEST), revoked()])
        .when(issue(TOKEN, DIGEST))
        .then_refused(refusal);
}

#[test]
fn a_principal_revokes_its_own_token_and_an_admin_any_token() {
    for who in [user("alice", &[]), admin()] {
        let alice = given::<Principal>([alice(), issued(TOKEN, DIGEST)])
            .as_actor(who)
            .when(revoke())
            .then_events(vec![revoked()]);
        let token = alice.token(&TOKEN).unwrap();
        assert!(token.revoked && !token.is_valid_at(t0()));
    }
}

#[test]
fn revoking_someone_elses_token_is_denied() {
    let action = "revoke another principal's tokens";
    let (bob, alice_in_ops) = (user("bob", &[]), user("alice", &["ops"]));
    given::<Principal>([alice(), issued(TOKEN, DIGEST)])
        .as_actor(bob.clone())
        .when(revoke())
        .then_refused(denied(&bob, action));
    // A member is not its group, and nobody owns an absent slug.
    given::<Principal>([ops()])
        .as_actor(alice_in_ops.clone())
        .when(revoke())
        .then_refused(denied(&alice_in_ops, action));
    given::<Principal>([])
        .as_actor(bob.clone())
        .when(revoke())
        .then_refused(denied(&bob, action));
}

#[test]
fn revoking_an_unknown_token_is_not_found_and_a_revoked_one_changes_nothing() {
    let (user, token_id) = (slug("alice"), Uuid::from_u128(7));
    let refusal = PrincipalRefusal::NoSuchToken { user, token_id };
    assert_eq!(refusal.kind(), RefusalKind::NotFound);
    given::<Principal>([alice(), issued(TOKEN, DIGEST)])
        .when(PrincipalCommand::RevokeToken { token_id })
        .then_refused(refusal);
    given::<Principal>([alice(), issued(TOKEN, DIGEST), revoked()])
        .when(revoke())
        .then_events(vec![]);
}

#[test]
fn events_are_tagged_with_their_type_and_round_trip() {
    let (group, user) = (slug("ops"), slug("alice"));
    let events = [
        user_created("r1", Role::Reactor, &["s"]),
        ops(),
        added("alice"),
        PrincipalEvent::MemberRemoved { group, user },
        issued(TOKEN, DIGEST),
        revoked(),
    ];
    for e in events {
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], e.event_type());
        assert_eq!(serde_json::from_value::<PrincipalEvent>(json).unwrap(), e);
    }
    let json = serde_json::to_value(issued(TOKEN, DIGEST)).unwrap();
    assert_eq!(json["sha256_hex"], DIGEST);
    assert_eq!(json["token_id"], TOKEN.to_string());
}

#[test]
fn an_old_user_created_without_stores_still_reads() {
    let json = r#"{"type":"UserCreated","slug":"alice","role":"user"}"#;
    let event: PrincipalEvent = serde_json::from_str(json).unwrap();
    assert_eq!(event, alice());
}
