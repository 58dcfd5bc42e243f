//! End to end with a real OpenBao server (started by `scripts/test`):
//! `sealctl put secret vault-dev://...` lands in OpenBao's KV v2 (read back
//! with OpenBao's own API), verify and delete go through the reactor, and
//! the event store and every log stay free of the value.

use sealplane_reactors::vault::KvVersion;
use sealplane_test_kit::openbao::{
    Api, DEV_ROOT_TOKEN, DevServer, free_port_pair, required_env, token_file, unique,
};
use sealplane_test_kit::{Cluster, marker};

#[tokio::test(flavor = "multi_thread")]
async fn a_put_lands_in_openbao_and_the_log_holds_no_value() {
    let api = Api::shared();
    let mount = api.new_kv_mount(KvVersion::V2).await;
    let mut c = Cluster::start();
    let token = token_file(c.dir(), &required_env("SEALPLANE_TEST_VAULT_TOKEN"));
    let r = c.add_store(
        "vault-dev",
        "vault",
        &format!(
            "address = {:?}\nmount = {mount:?}\ntoken_file = {:?}",
            api.address,
            token.display().to_string()
        ),
    );
    let alice = c.add_user("alice", "user", &[]);
    let p1 = marker("vault-pw");
    let uri = "vault-dev://alice/db";

    let put = c
        .sealctl(
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
        )
        .json();
    assert_eq!(put["version"], 1);

    // Read back with OpenBao's API, not through Sealplane.
    let read = api.ok("GET", &format!("{mount}/data/alice/db"), None).await;
    assert_eq!(read["data"]["data"]["password"], p1.as_str());
    assert_eq!(read["data"]["data"]["user"], "app");
    let meta = api
        .ok("GET", &format!("{mount}/metadata/alice/db"), None)
        .await;
    assert_eq!(meta["data"]["custom_metadata"]["managed-by"], "sealplane");
    assert_eq!(meta["data"]["custom_metadata"]["sealplane-uri"], uri);
    assert_eq!(meta["data"]["current_version"], 1);

    // A second version, then the same value again (no new upstream version).
    let p2 = marker("vault-pw2");
    let v2 = c
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
    assert_eq!(v2["version"], 2);
    c.sealctl(
        &alice,
        &["put", "secret", uri, "user=app", &format!("password={p2}")],
    )
    .ok();
    let meta = api
        .ok("GET", &format!("{mount}/metadata/alice/db"), None)
        .await;
    assert_eq!(meta["data"]["current_version"], 2);

    // Verify compares with what OpenBao holds.
    let same = c.sealctl(
        &alice,
        &[
            "verify",
            "secret",
            uri,
            "user=app",
            &format!("password={p2}"),
        ],
    );
    assert!(same.ok().starts_with("match"), "{}", same.stdout);
    let old = c.sealctl(
        &alice,
        &[
            "verify",
            "secret",
            uri,
            "user=app",
            &format!("password={p1}"),
        ],
    );
    old.failed_with(1);

    // An unmanaged secret at the path is refused without --adopt.
    api.ok(
        "POST",
        &format!("{mount}/data/alice/legacy"),
        Some(serde_json::json!({"data": {"password": "theirs"}})),
    )
    .await;
    let refused = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "vault-dev://alice/legacy",
            &format!("password={p1}"),
        ],
    );
    assert!(
        refused.failed_with(2).contains("--adopt"),
        "{}",
        refused.stderr
    );
    let untouched = api
        .ok("GET", &format!("{mount}/data/alice/legacy"), None)
        .await;
    assert_eq!(untouched["data"]["data"]["password"], "theirs");

    // Delete: the reactor soft-deletes the latest version in OpenBao.
    c.sealctl(&alice, &["delete", "secret", uri]).ok();
    let (status, _) = api
        .call("GET", &format!("{mount}/data/alice/db"), None)
        .await;
    assert_eq!(status, 404, "the latest version is deleted");
    assert!(
        c.reactor_log(r)
            .contains("deleted vault-dev://alice/db upstream")
    );

    for p in [&p1, &p2] {
        c.assert_nowhere(p.as_bytes());
    }
    let events = c.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.event_type.as_str() == "SecretDeleted")
    );
    for p in [&p1, &p2] {
        c.assert_nowhere(p.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vault_policy_that_denies_the_path_fails_the_put_cleanly() {
    let api = Api::shared();
    let mount = api.new_kv_mount(KvVersion::V2).await;
    let policy = unique("only-other");
    api.ok(
        "PUT",
        &format!("sys/policies/acl/{policy}"),
        Some(serde_json::json!({"policy": format!(
            "path \"{mount}/data/other/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n\
             path \"{mount}/metadata/other/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}"
        )})),
    )
    .await;
    let limited = api.token_with_policy(&policy).await;
    let mut c = Cluster::start();
    let token = token_file(c.dir(), &limited);
    c.add_store(
        "vault-ltd",
        "vault",
        &format!(
            "address = {:?}\nmount = {mount:?}\ntoken_file = {:?}",
            api.address,
            token.display().to_string()
        ),
    );
    let alice = c.add_user("alice", "user", &[]);
    let secret = marker("denied");
    let out = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "vault-ltd://alice/db",
            &format!("password={secret}"),
        ],
    );
    let stderr = out.failed_with(2);
    assert!(
        stderr.contains("permission") || stderr.contains("denied"),
        "{stderr}"
    );
    let (status, _) = api
        .call("GET", &format!("{mount}/data/alice/db"), None)
        .await;
    assert_eq!(status, 404, "nothing was written");

    c.assert_nowhere(secret.as_bytes());
    let log = c.event_log().await;
    let failed: Vec<_> = log
        .iter()
        .filter(|(t, _)| t == "SecretUploadFailed")
        .collect();
    assert_eq!(failed.len(), 1, "{log:?}");
    assert!(
        failed[0].1.contains("alice/db"),
        "the reason names the path: {}",
        failed[0].1
    );
    c.assert_nowhere(secret.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_vault_fails_puts_after_retries_and_they_work_once_it_is_back() {
    let port = free_port_pair();
    let mut bao = DevServer::start(port).await;
    let mut c = Cluster::start();
    let token = token_file(c.dir(), DEV_ROOT_TOKEN);
    // Dev mode mounts `secret/` (KV v2) on every start.
    let r = c.add_store(
        "vault-flaky",
        "vault",
        &format!(
            "address = {:?}\nmount = \"secret\"\ntoken_file = {:?}\nrequest_timeout_seconds = 2",
            bao.address(),
            token.display().to_string()
        ),
    );
    let alice = c.add_user("alice", "user", &[]);
    let secret = marker("flaky");
    bao.stop();
    let down = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "vault-flaky://alice/db",
            &format!("password={secret}"),
        ],
    );
    let stderr = down.failed_with(2);
    assert!(
        stderr.to_lowercase().contains("unavailable") || stderr.contains("reach"),
        "{stderr}"
    );
    assert!(c.reactor_log(r).contains("failed"), "{}", c.reactor_log(r));

    let bao = DevServer::start(port).await;
    let back = c
        .sealctl(
            &alice,
            &[
                "put",
                "secret",
                "vault-flaky://alice/db",
                &format!("password={secret}"),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(back["version"], 1);
    let api = Api::new(&bao.address(), DEV_ROOT_TOKEN);
    let read = api.ok("GET", "secret/data/alice/db", None).await;
    assert_eq!(read["data"]["data"]["password"], secret.as_str());

    c.assert_nowhere(secret.as_bytes());
    let log = c.event_log().await;
    assert_eq!(
        log.iter()
            .filter(|(t, _)| t == "SecretUploadFailed")
            .count(),
        1
    );
    assert_eq!(log.iter().filter(|(t, _)| t == "SecretUploaded").count(), 1);
}
