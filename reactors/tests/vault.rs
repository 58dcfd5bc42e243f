//! The Vault/OpenBao store against a real OpenBao server (`scripts/test`
//! starts one and exports SEALPLANE_TEST_VAULT_ADDR/_TOKEN/_BAO_BIN; these
//! tests panic rather than skip without them). Every test works on a fresh
//! mount with a random name; tests that stop, seal or restart a server run a
//! dev server of their own. Expected state is checked through the OpenBao
//! HTTP API, not through the adapter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealplane_proto::sealed::SecretValue;
use sealplane_reactors::upstream::{RetryPolicy, UpstreamError, UpstreamStore, WriteMeta, retry};
use sealplane_reactors::vault::{KvVersion, VaultConfig, VaultStore};
use sealplane_test_kit::openbao::{
    Api, DEV_ROOT_TOKEN, DevServer, config, free_port_pair, token_file, unique,
};
use serde_json::json;
use uuid::Uuid;

/// A value no error message may ever contain.
const MARKER: &str = "s3cr3t-MARKER-0f9e8d7c";

fn value(pairs: &[(&str, &[u8])]) -> SecretValue {
    let mut v = SecretValue::new();
    for (k, b) in pairs {
        v.insert(*k, b.to_vec()).unwrap();
    }
    v
}

fn marker_value() -> SecretValue {
    value(&[("password", MARKER.as_bytes())])
}

fn meta(uri: &str, adopt: bool) -> WriteMeta {
    WriteMeta {
        uri: uri.to_owned(),
        request_id: Uuid::new_v4(),
        adopt,
    }
}

/// Checks that neither the message nor the `Debug` of `e` holds the marker value.
fn assert_no_marker(e: &UpstreamError) {
    let (display, debug) = (format!("{e}"), format!("{e:?}"));
    assert!(
        !display.contains(MARKER),
        "Display leaks the value: {display}"
    );
    assert!(!debug.contains(MARKER), "Debug leaks the value: {debug}");
}

fn same(a: &SecretValue, b: &SecretValue) -> bool {
    a.iter().eq(b.iter())
}

/// A root-token store on a fresh mount of the shared server.
async fn fresh_store(kv: KvVersion) -> (Api, String, VaultStore, tempfile::TempDir) {
    let api = Api::shared();
    let mount = api.new_kv_mount(kv).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &api.address,
        &mount,
        kv,
        &token_file(dir.path(), &api.token),
    );
    let store = VaultStore::connect(&config).await.unwrap();
    (api, mount, store, dir)
}

#[tokio::test]
async fn kv2_put_version_unchanged_adopt_delete_destroy() {
    let (api, mount, store, _dir) = fresh_store(KvVersion::V2).await;
    let first = meta("vault-test://app/db", false);
    let v1 = value(&[("user", b"app"), ("password", b"hunter2")]);

    let w = store.put("app/db", &v1, &first).await.unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    assert_eq!(w.upstream_ref, format!("{mount}/data/app/db?version=1"));
    let read = api.ok("GET", &format!("{mount}/data/app/db"), None).await;
    assert_eq!(
        read["data"]["data"],
        json!({"user": "app", "password": "hunter2"})
    );
    let custom = &read["data"]["metadata"]["custom_metadata"];
    assert_eq!(custom["managed-by"], "sealplane");
    assert_eq!(custom["sealplane-uri"], "vault-test://app/db");
    assert_eq!(custom["sealplane-request-id"], first.request_id.to_string());

    let second = meta("vault-test://app/db", false);
    let v2 = value(&[("user", b"app"), ("password", b"correct horse")]);
    let w = store.put("app/db", &v2, &second).await.unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    let md = api
        .ok("GET", &format!("{mount}/metadata/app/db"), None)
        .await;
    assert_eq!(md["data"]["current_version"], 2);
    assert_eq!(
        md["data"]["custom_metadata"]["sealplane-request-id"],
        second.request_id.to_string()
    );

    // The same value again: no new version upstream.
    let w = store
        .put("app/db", &v2, &meta("vault-test://app/db", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (2, false));
    let md = api
        .ok("GET", &format!("{mount}/metadata/app/db"), None)
        .await;
    assert_eq!(md["data"]["current_version"], 2);
    assert!(same(&store.get("app/db").await.unwrap().unwrap(), &v2));

    // A secret Sealplane did not write: refused, untouched; then adopted.
    api.ok(
        "POST",
        &format!("{mount}/data/legacy"),
        Some(json!({"data": {"token": "theirs"}})),
    )
    .await;
    let e = store
        .put(
            "legacy",
            &marker_value(),
            &meta("vault-test://legacy", false),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    assert!(e.to_string().contains("--adopt"), "{e}");
    assert_no_marker(&e);
    let e = store.get("legacy").await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    let e = store.delete("legacy", true).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    let read = api.ok("GET", &format!("{mount}/data/legacy"), None).await;
    assert_eq!(read["data"]["data"], json!({"token": "theirs"}));
    assert_eq!(read["data"]["metadata"]["version"], 1);

    let adopted = value(&[("token", b"ours")]);
    let w = store
        .put("legacy", &adopted, &meta("vault-test://legacy", true))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    let md = api
        .ok("GET", &format!("{mount}/metadata/legacy"), None)
        .await;
    assert_eq!(md["data"]["custom_metadata"]["managed-by"], "sealplane");
    // Adopted once, managed from then on: no --adopt needed.
    let w = store
        .put(
            "legacy",
            &value(&[("token", b"ours2")]),
            &meta("vault-test://legacy", false),
        )
        .await
        .unwrap();
    assert_eq!(w.version, 3);

    // Soft delete: the metadata stays, the latest version is deleted.
    store.delete("app/db", false).await.unwrap();
    let md = api
        .ok("GET", &format!("{mount}/metadata/app/db"), None)
        .await;
    assert_eq!(md["data"]["current_version"], 2);
    assert_ne!(md["data"]["versions"]["2"]["deletion_time"], "");
    assert_eq!(md["data"]["versions"]["1"]["deletion_time"], "");
    assert!(store.get("app/db").await.unwrap().is_none());
    // A write after a soft delete is a new version, not "unchanged".
    let w = store
        .put("app/db", &v2, &meta("vault-test://app/db", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (3, true));

    // Destroy: every version and the metadata are gone.
    store.delete("app/db", true).await.unwrap();
    let (status, _) = api
        .call("GET", &format!("{mount}/metadata/app/db"), None)
        .await;
    assert_eq!(status, 404);
    assert!(store.get("app/db").await.unwrap().is_none());
    let e = store.delete("app/db", false).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn kv2_concurrent_writers_conflict_instead_of_overwriting() {
    let (api, mount, store, _dir) = fresh_store(KvVersion::V2).await;
    let store = Arc::new(store);
    store
        .put("race", &value(&[("n", b"start")]), &meta("t://race", false))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let v = value(&[("n", format!("writer-{i}").as_bytes())]);
            store.put("race", &v, &meta("t://race", false)).await
        }));
    }
    let (mut written, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(w) => {
                assert!(w.changed);
                written += 1;
            }
            Err(UpstreamError::Conflict { .. }) => conflicts += 1,
            Err(e) => panic!("neither written nor a conflict: {e}"),
        }
    }
    // Every successful write is its own version: check-and-set lost none.
    let md = api.ok("GET", &format!("{mount}/metadata/race"), None).await;
    assert_eq!(md["data"]["current_version"], 1 + written);
    eprintln!("concurrent writers: {written} written, {conflicts} refused as conflicts");
}

#[tokio::test]
async fn kv1_put_unchanged_adopt_delete() {
    let (api, mount, store, _dir) = fresh_store(KvVersion::V1).await;
    let first = meta("vault-v1://svc/api", false);
    let v1 = value(&[("key", b"k1")]);
    let w = store.put("svc/api", &v1, &first).await.unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    assert_eq!(w.upstream_ref, format!("{mount}/svc/api"));
    let read = api.ok("GET", &format!("{mount}/svc/api"), None).await;
    assert_eq!(read["data"]["key"], "k1");
    assert_eq!(read["data"]["sealplane:managed-by"], "sealplane");
    assert_eq!(read["data"]["sealplane:uri"], "vault-v1://svc/api");
    assert_eq!(
        read["data"]["sealplane:request-id"],
        first.request_id.to_string()
    );
    assert_eq!(read["data"]["sealplane:version"], "1");
    // The reserved keys are stripped on read.
    assert!(same(&store.get("svc/api").await.unwrap().unwrap(), &v1));

    let v2 = value(&[("key", b"k2")]);
    let w = store
        .put("svc/api", &v2, &meta("vault-v1://svc/api", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    let w = store
        .put("svc/api", &v2, &meta("vault-v1://svc/api", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (2, false));
    let read = api.ok("GET", &format!("{mount}/svc/api"), None).await;
    assert_eq!(read["data"]["key"], "k2");
    assert_eq!(read["data"]["sealplane:version"], "2");

    api.ok(
        "POST",
        &format!("{mount}/legacy"),
        Some(json!({"a": "theirs"})),
    )
    .await;
    let e = store
        .put("legacy", &marker_value(), &meta("vault-v1://legacy", false))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    assert_no_marker(&e);
    let e = store.delete("legacy", false).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    let read = api.ok("GET", &format!("{mount}/legacy"), None).await;
    assert_eq!(read["data"], json!({"a": "theirs"}));
    let w = store
        .put(
            "legacy",
            &value(&[("a", b"ours")]),
            &meta("vault-v1://legacy", true),
        )
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    assert!(same(
        &store.get("legacy").await.unwrap().unwrap(),
        &value(&[("a", b"ours")])
    ));

    // KV v1 has no history: delete and destroy both remove the secret.
    store.delete("svc/api", false).await.unwrap();
    let (status, _) = api.call("GET", &format!("{mount}/svc/api"), None).await;
    assert_eq!(status, 404);
    assert!(store.get("svc/api").await.unwrap().is_none());
    store.delete("legacy", true).await.unwrap();
    assert!(store.get("legacy").await.unwrap().is_none());
    let e = store.delete("legacy", true).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn non_utf8_bytes_round_trip_in_kv2_and_kv1() {
    let binary: &[u8] = &[0xff, 0x00, 0xfe, 0x80, b'a'];
    let v = value(&[("cert", binary), ("user", b"app")]);
    for kv in [KvVersion::V2, KvVersion::V1] {
        let (api, mount, store, _dir) = fresh_store(kv).await;
        store.put("bin", &v, &meta("t://bin", false)).await.unwrap();
        let read = match kv {
            KvVersion::V2 => {
                api.ok("GET", &format!("{mount}/data/bin"), None).await["data"]["data"].clone()
            }
            KvVersion::V1 => api.ok("GET", &format!("{mount}/bin"), None).await["data"].clone(),
        };
        assert_eq!(read["user"], "app");
        assert_eq!(
            read["cert"],
            base64::engine::general_purpose::STANDARD.encode(binary)
        );
        assert_eq!(read["sealplane:base64-keys"], "cert");
        let back = store.get("bin").await.unwrap().unwrap();
        assert_eq!(back.get("cert").unwrap(), binary);
        assert!(same(&back, &v), "{kv:?}");
        let w = store.put("bin", &v, &meta("t://bin", false)).await.unwrap();
        assert!(!w.changed, "{kv:?}");
    }
}

#[tokio::test]
async fn approle_renews_and_logs_in_again_past_max_ttl() {
    let api = Api::shared();
    let mount = api.new_kv_mount(KvVersion::V2).await;
    let auth = unique("approle");
    let policy = unique("policy");
    api.ok(
        "POST",
        &format!("sys/auth/{auth}"),
        Some(json!({"type": "approle"})),
    )
    .await;
    api.ok(
        "PUT",
        &format!("sys/policies/acl/{policy}"),
        Some(json!({"policy": format!(
            "path \"{mount}/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}"
        )})),
    )
    .await;
    api.ok(
        "POST",
        &format!("auth/{auth}/role/reactor"),
        Some(json!({"token_policies": [policy], "token_ttl": "3s", "token_max_ttl": "8s"})),
    )
    .await;
    let role_id = api
        .ok("GET", &format!("auth/{auth}/role/reactor/role-id"), None)
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = api
        .ok("POST", &format!("auth/{auth}/role/reactor/secret-id"), None)
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let secret_id_file = token_file(dir.path(), &secret_id);
    let config: VaultConfig = toml::from_str(&format!(
        "address = {:?}\nmount = {mount:?}\n[approle]\nmount = {auth:?}\nrole_id = {role_id:?}\nsecret_id_file = {:?}\n",
        api.address,
        secret_id_file.display().to_string()
    ))
    .unwrap();

    let store = VaultStore::connect(&config).await.unwrap();
    assert_eq!(store.logins(), 1);
    let first_accessor = store.token_accessor().await;
    // Past the 8 s max TTL: renewals at 2/3 of the 3 s TTL, then a new login
    // once renewal stops extending the token.
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(10) {
        n += 1;
        let v = value(&[("n", n.to_string().as_bytes())]);
        store
            .put("rotating", &v, &meta("t://rotating", false))
            .await
            .unwrap();
        assert!(same(&store.get("rotating").await.unwrap().unwrap(), &v));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(store.renewals() >= 1, "renewals: {}", store.renewals());
    assert!(store.logins() >= 2, "logins: {}", store.logins());
    assert_ne!(store.token_accessor().await, first_accessor);
    eprintln!(
        "approle: {n} writes over {:?}, {} renewals, {} logins",
        start.elapsed(),
        store.renewals(),
        store.logins()
    );

    // A wrong secret id: a login error that says what to check, without the id.
    std::fs::write(&secret_id_file, "not-the-secret-id").unwrap();
    let e = VaultStore::connect(&config).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Login { .. }), "{e}");
    assert!(e.to_string().contains("secret_id_file"), "{e}");
    assert!(!format!("{e} {e:?}").contains("not-the-secret-id"), "{e:?}");
}

#[tokio::test]
async fn policy_denial_is_permission_denied_and_writes_nothing() {
    let api = Api::shared();
    let mount = api.new_kv_mount(KvVersion::V2).await;
    let policy = unique("only-other");
    api.ok(
        "PUT",
        &format!("sys/policies/acl/{policy}"),
        Some(json!({"policy": format!(
            "path \"{mount}/data/other/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\npath \"{mount}/metadata/other/*\" {{ capabilities = [\"create\", \"read\", \"update\"] }}"
        )})),
    )
    .await;
    let token = api.token_with_policy(&policy).await;
    let dir = tempfile::tempdir().unwrap();
    let store = VaultStore::connect(&config(
        &api.address,
        &mount,
        KvVersion::V2,
        &token_file(dir.path(), &token),
    ))
    .await
    .unwrap();

    // Allowed where the policy allows.
    store
        .put(
            "other/x",
            &value(&[("a", b"1")]),
            &meta("t://other/x", false),
        )
        .await
        .unwrap();
    let e = store
        .put("denied/x", &marker_value(), &meta("t://denied/x", false))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::PermissionDenied { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("permission denied") && text.contains(&format!("{mount}/data/denied/x")),
        "{text}"
    );
    assert!(!e.is_transient());
    assert_no_marker(&e);
    let (status, _) = api
        .call("GET", &format!("{mount}/metadata/denied/x"), None)
        .await;
    assert_eq!(status, 404, "nothing may be written");
}

#[tokio::test]
async fn stopped_server_is_unavailable_then_recovers_on_restart() {
    let port = free_port_pair();
    let mut server = DevServer::start(port).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &server.address(),
        "secret",
        KvVersion::V2,
        &token_file(dir.path(), DEV_ROOT_TOKEN),
    );
    let store = VaultStore::connect(&config).await.unwrap();
    store
        .put("svc", &value(&[("a", b"1")]), &meta("t://svc", false))
        .await
        .unwrap();
    store.probe().await.unwrap();

    server.stop();
    // The readiness probe says so, naming the server.
    let down = store.probe().await.unwrap_err();
    assert!(matches!(down, UpstreamError::Unavailable { .. }), "{down}");
    assert!(down.to_string().contains(&server.address()), "{down}");
    let policy = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
    };
    let attempts = AtomicU32::new(0);
    let (secret, write) = (marker_value(), meta("t://svc", false));
    let e = retry(&policy, || {
        attempts.fetch_add(1, Ordering::SeqCst);
        store.put("svc", &secret, &write)
    })
    .await
    .unwrap_err();
    assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");
    assert!(e.is_transient());
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert!(e.to_string().contains(&server.address()), "{e}");
    assert_no_marker(&e);

    // Same port, same root token id; dev mode mounts `secret/` again (empty).
    let _server = DevServer::start(port).await;
    let w = retry(&RetryPolicy::default(), || {
        store.put("svc", &secret, &write)
    })
    .await
    .unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    store.probe().await.unwrap();
}

#[tokio::test]
async fn missing_mount_and_wrong_kv_version_are_named() {
    let api = Api::shared();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), &api.token);
    let missing = unique("nomount");
    let store = VaultStore::connect(&config(&api.address, &missing, KvVersion::V2, &token))
        .await
        .unwrap();
    let e = store
        .put("a", &marker_value(), &meta("t://a", false))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, UpstreamError::MountMissing { mount } if *mount == missing),
        "{e}"
    );
    assert!(e.to_string().contains("bao secrets enable"), "{e}");
    assert_no_marker(&e);
    let e = store.get("a").await.unwrap_err();
    assert!(matches!(e, UpstreamError::MountMissing { .. }), "{e}");

    let v1_mount = api.new_kv_mount(KvVersion::V1).await;
    let e = VaultStore::connect(&config(&api.address, &v1_mount, KvVersion::V2, &token))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("kv_version = 1"), "{e}");
}

#[tokio::test]
async fn sealed_server_is_sealed_and_transient() {
    let server = DevServer::start(free_port_pair()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &server.address(),
        "secret",
        KvVersion::V2,
        &token_file(dir.path(), DEV_ROOT_TOKEN),
    );
    let store = VaultStore::connect(&config).await.unwrap();
    Api::new(&server.address(), DEV_ROOT_TOKEN)
        .ok("PUT", "sys/seal", None)
        .await;
    let e = store
        .put("a", &marker_value(), &meta("t://a", false))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Sealed { .. }), "{e}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("unseal"), "{e}");
    assert_no_marker(&e);
    let e = VaultStore::connect(&config).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Sealed { .. }), "{e}");
}

#[tokio::test]
async fn https_with_ca_file_works_and_without_it_fails_as_tls() {
    let tls_dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_tls(free_port_pair(), tls_dir.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(
        &server.address(),
        "secret",
        KvVersion::V2,
        &token_file(dir.path(), DEV_ROOT_TOKEN),
    );
    let e = VaultStore::connect(&config).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Tls { .. }), "{e}");
    assert!(e.to_string().contains("ca_file"), "{e}");

    config.ca_file = Some(tls_dir.path().join("vault-ca.pem"));
    let store = VaultStore::connect(&config).await.unwrap();
    let v = value(&[("a", b"over tls")]);
    store.put("tls", &v, &meta("t://tls", false)).await.unwrap();
    assert!(same(&store.get("tls").await.unwrap().unwrap(), &v));
}

#[tokio::test]
async fn config_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(
        "http://127.0.0.1:1",
        "secret",
        KvVersion::V2,
        &dir.path().join("missing-token"),
    );
    let e = VaultStore::connect(&c).await.unwrap_err();
    assert!(e.to_string().contains("token_file"), "{e}");
    c.token_file = Some(token_file(dir.path(), "t"));
    c.ca_file = Some(dir.path().join("missing-ca.pem"));
    let e = VaultStore::connect(&c).await.unwrap_err();
    assert!(e.to_string().contains("ca_file"), "{e}");
    // Nothing listens on port 1: unavailable, transient.
    c.ca_file = None;
    let e = VaultStore::connect(&c).await.unwrap_err();
    assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn a_proxy_error_page_is_a_transient_rejection() {
    // A load balancer answering 502 with HTML instead of Vault's JSON errors.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "<html>bad gateway</html>";
                let response = format!(
                    "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        &address,
        "secret",
        KvVersion::V2,
        &token_file(dir.path(), "t"),
    );
    let e = VaultStore::connect(&c).await.unwrap_err();
    assert!(
        matches!(e, UpstreamError::Rejected { status: 502, .. }),
        "{e}"
    );
    assert!(e.is_transient());
}
