//! The sealed upload pipeline end to end (SPEC §3, §4): real `sealplane`,
//! real `sealplane-reactor`, real `sealctl`, the file store upstream. After
//! every step the whole cluster directory (event store and WAL, file store,
//! every log, every sealctl output) is scanned for the plaintext; the flow
//! runs once with the processes' default logs and once logging JSON.

use sealplane_reactors::file_store::FileStore;
use sealplane_reactors::master_key::MasterKey;
use sealplane_reactors::upstream::UpstreamStore;
use sealplane_test_kit::{Cluster, Settings, input_file, marker};

/// The value stored upstream, read with the reactor's own file store and key.
async fn upstream(cluster: &Cluster, reactor: usize, path: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let rdir = cluster.dir().join(format!("reactor-{reactor}"));
    let key = MasterKey::from_file(&rdir.join("master.key")).unwrap();
    let store = FileStore::open(rdir.join("files"), key).unwrap();
    store.get(path).await.unwrap().map(|v| {
        v.iter()
            .map(|(k, bytes)| (k.to_owned(), bytes.to_vec()))
            .collect()
    })
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// The flows of this file run one at a time, as the one flow did before
/// the JSON variant. They once had to: a put returned at `SecretUploaded`,
/// before its `SecretVersionAdded` was appended, so an immediate `get
/// secrets` could miss the version, and two clusters at once on a small
/// machine widened that race. The control plane fixed it (a put waits for
/// the version, issue 11; both are one append, ADR 0027, and `reads.rs`
/// checks it); one cluster at a time still keeps this file's load on a
/// 2-core machine down.
static ONE_FLOW_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn put_get_describe_verify_new_version_and_delete_never_leak_the_value() {
    put_get_describe_verify_new_version_and_delete(Settings::default()).await;
}

/// The same flow with the control plane and the reactor logging JSON
/// (`SEALPLANE_LOG_FORMAT=json`): those logs are scanned for the value too.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_flow_logging_json_never_leaks_the_value() {
    put_get_describe_verify_new_version_and_delete(
        Settings::default().with_env("SEALPLANE_LOG_FORMAT", "json"),
    )
    .await;
}

async fn put_get_describe_verify_new_version_and_delete(settings: Settings) {
    let _alone = ONE_FLOW_AT_A_TIME.lock().await;
    let mut c = Cluster::start_with(settings.clone());
    let r = c.add_file_store("local");
    // Every process runs with the settings' environment.
    for process in [c.control_plane().process(), c.reactor_process(r)] {
        let env = process.environment();
        for pair in &settings.env {
            assert!(env.contains(pair), "{pair:?} missing from {env:?}");
        }
    }
    let alice = c.add_user("alice", "user", &[]);
    let inputs = tempfile::tempdir().unwrap();
    let p1 = marker("pw-one");
    let p2 = marker("pw-two");
    let uri = "local://alice/db";

    // Put: uri, version 1 and keyed hashes; the reactor identity is pinned.
    let put = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            uri,
            "user=app",
            &format!("password={p1}"),
            "-o",
            "json",
        ],
    );
    let v1 = put.json();
    assert_eq!(v1["uri"], uri);
    assert_eq!(v1["version"], 1);
    let hash1 = v1["hash"].as_str().unwrap().to_owned();
    assert!(hash1.starts_with("hmac-sha256-v2:e2e:"), "{hash1}");
    assert!(
        put.stderr.contains("certified by a trust anchor you hold"),
        "the first put says why it trusts the identity: {}",
        put.stderr
    );
    let known = std::fs::read_to_string(alice.config_dir.join("known_reactors")).unwrap();
    assert!(known.contains(&c.reactor_key(r)), "{known}");
    assert_eq!(
        upstream(&c, r, "alice/db").await,
        Some(pairs(&[("password", &p1), ("user", "app")])),
        "the value landed in the file store"
    );
    c.assert_nowhere(p1.as_bytes());
    // The scan sees what is there: the uri is in the event store.
    assert!(
        c.scan_for(b"alice/db")
            .iter()
            .any(|f| f.contains("events.db")),
        "the scanner reads the event store"
    );

    // Get and describe show the hash, never the value.
    let list = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    let row = &list["secrets"][0];
    assert_eq!(
        (row["uri"].as_str(), row["version"].as_u64()),
        (Some(uri), Some(1))
    );
    assert_eq!(row["hash"], hash1.as_str());
    assert_eq!(row["updated_by"], "alice");
    let table = c.sealctl(&alice, &["get", "secrets"]);
    assert!(
        table.ok().contains(uri) && table.stdout.contains(&hash1),
        "{}",
        table.stdout
    );
    let described = c
        .sealctl(&alice, &["describe", "secret", uri, "-o", "json"])
        .json();
    assert_eq!(described["versions"][0]["hash"], hash1.as_str());
    let key_hashes = described["versions"][0]["key_hashes"].clone();
    assert_eq!(key_hashes, v1["key_hashes"]);
    assert!(
        key_hashes["password"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256-v2:e2e:")
    );

    // Verify: match and no match, through the same sealed path.
    let same = c.sealctl(
        &alice,
        &[
            "verify",
            "secret",
            uri,
            "user=app",
            &format!("password={p1}"),
        ],
    );
    assert!(same.ok().contains("match"), "{}", same.stdout);
    let wrong = marker("wrong");
    let other = c.sealctl(
        &alice,
        &[
            "verify",
            "secret",
            uri,
            "user=app",
            &format!("password={wrong}"),
        ],
    );
    other.failed_with(1);
    assert!(other.stdout.contains("no match"), "{}", other.stdout);
    c.assert_nowhere(p1.as_bytes());
    c.assert_nowhere(wrong.as_bytes());

    // A new version from a file: only the changed key's hash changes.
    let file = input_file(inputs.path(), "password", p2.as_bytes());
    let v2 = c
        .sealctl(
            &alice,
            &[
                "put",
                "secret",
                uri,
                "user=app",
                "--from-file",
                &format!("password={}", file.display()),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(v2["version"], 2);
    assert_ne!(v2["hash"], v1["hash"]);
    assert_eq!(v2["key_hashes"]["user"], v1["key_hashes"]["user"]);
    assert_ne!(v2["key_hashes"]["password"], v1["key_hashes"]["password"]);
    assert_eq!(
        upstream(&c, r, "alice/db").await,
        Some(pairs(&[("password", &p2), ("user", "app")]))
    );
    // The same value again writes nothing new upstream.
    let again = c
        .sealctl(
            &alice,
            &[
                "put",
                "secret",
                uri,
                "user=app",
                &format!("password={p2}"),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(
        (again["version"].as_u64(), &again["hash"]),
        (Some(2), &v2["hash"])
    );
    assert!(!c.dir().join("reactor-0/files/alice/db/v3.json").exists());
    c.assert_nowhere(p2.as_bytes());

    // Delete: the reactor deletes upstream and the deletion is recorded.
    c.sealctl(&alice, &["delete", "secret", uri]).ok();
    assert_eq!(upstream(&c, r, "alice/db").await, None);
    let list = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    assert_eq!(list["secrets"][0]["deleted"], true);
    let described = c
        .sealctl(&alice, &["describe", "secret", uri, "-o", "json"])
        .json();
    assert_eq!(described["deletion"], "deleted");

    // The log tells the whole story, with hashes only.
    for p in [&p1, &p2, &wrong] {
        c.assert_nowhere(p.as_bytes());
    }
    let events = c.events().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    for expected in [
        "SecretUploadKeyRequested",
        "SecretUploadKeyProvided",
        "SecretUploadRequested",
        "SecretUploaded",
        "SecretVersionAdded",
        "SecretVerified",
        "SecretDeletionRequested",
        "SecretDeleted",
    ] {
        assert!(
            types.contains(&expected),
            "{expected} missing from {types:?}"
        );
    }
    assert_eq!(types.iter().filter(|t| **t == "SecretUploaded").count(), 3);
    assert_eq!(types.iter().filter(|t| **t == "SecretVerified").count(), 2);
    // Scanned once more after a clean stop (WAL checkpointed into the file).
    for p in [&p1, &p2, &wrong] {
        c.assert_nowhere(p.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_piped_to_key_dash_is_stored_as_given_less_its_newline() {
    let mut c = Cluster::start();
    let reactor = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let value = marker("piped");
    let piped = format!("{value}\n");
    c.sealctl_with_stdin(
        &alice,
        &[
            "put",
            "secret",
            "local://alice/piped",
            "user=app",
            "password=-",
        ],
        Some(piped.as_bytes()),
    )
    .ok();
    // What reached the store is the piped value without its newline.
    let stored = upstream(&c, reactor, "alice/piped").await.unwrap();
    assert_eq!(
        stored,
        pairs(&[("password", value.as_str()), ("user", "app")])
    );
    // And verifying it the same way matches.
    c.sealctl_with_stdin(
        &alice,
        &[
            "verify",
            "secret",
            "local://alice/piped",
            "user=app",
            "password=-",
        ],
        Some(piped.as_bytes()),
    )
    .ok();
    c.assert_nowhere(value.as_bytes());
}
