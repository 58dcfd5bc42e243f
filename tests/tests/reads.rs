//! Read your writes across processes (issue 11 item 2): right after a
//! `sealctl put` process exits 0, a new `sealctl get secrets` or `describe
//! secret` process sees the new version. A put used to be reported
//! stored when the upload request ended (`SecretUploaded`), before the
//! secret's own `SecretVersionAdded`, then a second append (now one
//! append with it, ADR 0027).

use sealplane_test_kit::Cluster;

#[tokio::test(flavor = "multi_thread")]
async fn a_put_is_read_back_by_the_next_process_every_time() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let mut misses = vec![];
    for i in 1..=40 {
        let uri = format!("local://alice/s{}", i % 4);
        let put = c
            .sealctl(
                &alice,
                &["put", "secret", &uri, &format!("n={i}"), "-o", "json"],
            )
            .json();
        let version = put["version"].clone();
        let listed = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
        let seen = listed["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["uri"] == uri.as_str())
            .map(|s| s["version"].clone());
        if seen != Some(version.clone()) {
            misses.push(format!("get after put {i}: {seen:?} != {version}"));
        }
        let described = c
            .sealctl(&alice, &["describe", "secret", &uri, "-o", "json"])
            .json();
        let last = described["versions"]
            .as_array()
            .and_then(|v| v.last())
            .map(|v| v["version"].clone());
        if last != Some(version.clone()) {
            misses.push(format!("describe after put {i}: {last:?} != {version}"));
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
    // Fetched in pages of one, the listing is the same, each secret once.
    let whole = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    let paged = c
        .sealctl(
            &alice,
            &["get", "secrets", "--page-size", "1", "-o", "json"],
        )
        .json();
    assert_eq!(paged, whole);
    assert_eq!(paged["secrets"].as_array().unwrap().len(), 4, "{paged}");
    let refused = c.sealctl(&alice, &["get", "secrets", "--page-size", "0"]);
    assert_eq!(refused.code, 2, "{refused:?}");
}

/// Secrets `get secrets` must list, each with a row of about 180 bytes:
/// one reply of them all is well over gRPC's 4 MiB message limit, which
/// `ListSecrets` hit before it answered in pages.
const MANY: usize = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_thousand_secrets_are_listed_whole() {
    use sealplane_event_store::{
        EmbeddedStore, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
    };
    let mut c = Cluster::start();
    c.stop();
    // The events of MANY puts, written into the log while the control
    // plane is down, as the control plane itself records them (the
    // secret's stream is `secret-<uri>`).
    let store = EmbeddedStore::open(c.control_plane().events_db()).unwrap();
    let hash = |b: &str| format!("hmac-sha256-v2:e2e:{}", b.repeat(32));
    let write = |i: usize| {
        let store = store.clone();
        let uri = format!("local://alice/team-{i:05}/service-database-password");
        let created = serde_json::json!({
            "type": "SecretCreated", "uri": uri, "creator": "alice", "acl": {}
        });
        let version = serde_json::json!({
            "type": "SecretVersionAdded", "uri": uri,
            "request_id": uuid::Uuid::new_v4(), "version": 1,
            "hash": hash("ab"), "key_hashes": { "password": hash("cd") },
            "by": "alice", "at": "2026-12-01T00:00:00Z"
        });
        async move {
            let events = [("SecretCreated", created), ("SecretVersionAdded", version)]
                .map(|(ty, data)| {
                    NewEvent::from_json_text(
                        EventType::parse(ty).unwrap(),
                        1,
                        &data.to_string(),
                        &EventMetadata::new("alice"),
                    )
                    .unwrap()
                })
                .to_vec();
            let stream = StreamId::parse(format!("secret-{uri}")).unwrap();
            store
                .append(&stream, ExpectedVersion::NoStream, events)
                .await
                .unwrap();
        }
    };
    // 256 at a time, so the store commits them in groups.
    for start in (0..MANY).step_by(256) {
        let mut batch = tokio::task::JoinSet::new();
        for i in start..(start + 256).min(MANY) {
            batch.spawn(write(i));
        }
        while let Some(done) = batch.join_next().await {
            done.unwrap();
        }
    }
    store.close().await;
    c.restart_control_plane();

    let listed = c.sealctl(&c.admin, &["get", "secrets", "-o", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(
        listed.stdout.len() > 4 << 20,
        "the listing is over 4 MiB ({} bytes)",
        listed.stdout.len()
    );
    let secrets = listed.json()["secrets"].as_array().unwrap().len();
    assert_eq!(secrets, MANY);
}

/// The uris `user` lists, in order.
fn listed(c: &Cluster, user: &sealplane_test_kit::User, page: &str) -> Vec<String> {
    let listed = c
        .sealctl(user, &["get", "secrets", "--page-size", page, "-o", "json"])
        .json();
    listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uri"].as_str().unwrap().to_owned())
        .collect()
}

/// A user's listing visits only what it may read (ADR 0039): its own
/// secrets, its group's, and those granted to it under another owner's
/// path, in pages of any size, and the same after a restart from the
/// snapshot, which rebuilds the index of grants.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_lists_its_own_its_groups_and_its_grants_and_nothing_else() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let bob = c.add_user("bob", "user", &[]);
    let carol = c.add_user("carol", "user", &[]);
    c.sealctl(&c.admin, &["create", "group", "team"]).ok();
    for member in ["alice", "carol"] {
        c.sealctl(&c.admin, &["add", "member", "team", member]).ok();
    }
    let admin = c.admin.clone();
    for (who, uri) in [
        (&alice, "local://alice/db"),
        (&bob, "local://bob/shared"),
        (&bob, "local://bob/private"),
        (&carol, "local://team/ci"),
        (&admin, "local://payments/db"),
        (&admin, "local://alice-ops/x"),
    ] {
        c.sealctl(who, &["put", "secret", uri, "k=v"]).ok();
    }
    for (who, uri, reader) in [
        (&bob, "local://bob/shared", "alice"),
        (&carol, "local://team/ci", "team"),
        (&admin, "local://payments/db", "team"),
    ] {
        c.sealctl(who, &["grant", "secret", uri, "--list", "readers", reader])
            .ok();
    }
    let alices = [
        "local://alice/db",
        "local://bob/shared",
        "local://payments/db",
        "local://team/ci",
    ];
    let bobs = ["local://bob/private", "local://bob/shared"];
    for page in ["1", "3", "100"] {
        assert_eq!(listed(&c, &alice, page), alices, "alice, pages of {page}");
        assert_eq!(listed(&c, &bob, page), bobs, "bob, pages of {page}");
    }
    c.sealctl(
        &bob,
        &[
            "revoke",
            "secret",
            "local://bob/shared",
            "--list",
            "readers",
            "alice",
        ],
    )
    .ok();
    let alices = ["local://alice/db", "local://payments/db", "local://team/ci"];
    assert_eq!(listed(&c, &alice, "2"), alices, "after the revoke");

    c.stop();
    c.restart_control_plane();
    assert_eq!(listed(&c, &alice, "2"), alices, "after a restart");
    assert_eq!(
        listed(&c, &carol, "100"),
        ["local://payments/db", "local://team/ci"]
    );
    assert_eq!(
        listed(&c, &admin, "100").len(),
        6,
        "an admin lists them all"
    );
}
