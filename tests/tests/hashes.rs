//! The keyed hashes users see cannot be mined (SPEC §4, ADR 0011): they
//! bind the secret's path, so a reader of `alice/db` cannot test guesses by
//! putting them into a path of his own and comparing hashes; and they do
//! not bind the store, so the same value at the same path hashes equal on
//! every store of a deployment (reactors sharing one fingerprint key).

use sealplane_test_kit::{Cluster, User, marker};

/// `put secret URI user=app password=PASSWORD -o json`, as `user`.
fn put(c: &Cluster, user: &User, uri: &str, password: &str) -> serde_json::Value {
    let put = c.sealctl(
        user,
        &[
            "put",
            "secret",
            uri,
            "user=app",
            &format!("password={password}"),
            "-o",
            "json",
        ],
    );
    let reply = put.json();
    assert_eq!(reply["uri"], uri);
    reply
}

#[tokio::test(flavor = "multi_thread")]
async fn hashes_bind_the_path_and_not_the_store() {
    let mut c = Cluster::start();
    let local = c.add_file_store("local");
    // A second file store, served by its own reactor holding the first
    // one's fingerprint key, as the reactors of one deployment do.
    let mirror = c.add_reactor_for("mirror", Some(local));
    c.sealctl(
        &c.admin,
        &[
            "create",
            "store",
            "mirror",
            "--kind",
            "file",
            "--reactor-key",
            &c.reactor_key(mirror),
        ],
    )
    .ok();
    c.start_reactor(mirror);
    let alice = c.add_user("alice", "user", &[]);
    let bob = c.add_user("bob", "user", &[]);
    let password = marker("pw");

    let at_alice = put(&c, &alice, "local://alice/db", &password);
    let hash = at_alice["hash"].as_str().unwrap();
    assert!(hash.starts_with("hmac-sha256-v2:e2e:"), "{hash}");
    // Bob puts his guess of alice's password into a path of his own.
    let at_bob = put(&c, &bob, "local://bob/probe", &password);
    assert_ne!(
        at_alice["hash"], at_bob["hash"],
        "the same value at two paths must not hash equal"
    );
    for key in ["password", "user"] {
        assert_ne!(
            at_alice["key_hashes"][key], at_bob["key_hashes"][key],
            "the per-key hash of `{key}` must bind the path too"
        );
    }

    // The same value at the same path on another store hashes equal.
    let on_mirror = put(&c, &alice, "mirror://alice/db", &password);
    assert_eq!(on_mirror["hash"], at_alice["hash"]);
    assert_eq!(on_mirror["key_hashes"], at_alice["key_hashes"]);

    // sealctl names the version; verify compares the path-bound hashes.
    let described = c
        .sealctl(
            &alice,
            &["describe", "secret", "mirror://alice/db", "-o", "json"],
        )
        .json();
    assert_eq!(described["versions"][0]["hash"], at_alice["hash"]);
    assert_eq!(described["versions"][0]["hash_version"], "v2");
    let list = c.sealctl(&bob, &["get", "secrets", "-o", "json"]).json();
    assert_eq!(list["secrets"][0]["uri"], "local://bob/probe");
    assert_eq!(list["secrets"][0]["hash_version"], "v2");
    let verified = c.sealctl(
        &alice,
        &[
            "verify",
            "secret",
            "local://alice/db",
            "user=app",
            &format!("password={password}"),
        ],
    );
    assert!(verified.ok().contains("match"), "{}", verified.stdout);

    c.assert_nowhere(password.as_bytes());
}
