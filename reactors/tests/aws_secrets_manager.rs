//! The AWS Secrets Manager store against a real moto server (`scripts/test`
//! starts one and exports SEALPLANE_TEST_AWS_*; these tests panic rather
//! than skip without them). Every test uses its own random name prefix.
//! Expected state is read back with an SDK client of the test's own, not
//! through the adapter.
//!
//! Not tested: wrong credentials. moto accepts any access key and signature
//! unless its IAM enforcement is switched on for the whole server, which the
//! shared server does not do; the mapping of AWS's credential error codes is
//! unit-tested in `aws_secrets_manager::errors`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealplane_proto::sealed::SecretValue;
use sealplane_reactors::aws_secrets_manager::{AwsSecretsManagerStore, parse_version_id};
use sealplane_reactors::upstream::{RetryPolicy, UpstreamError, UpstreamStore, WriteMeta, retry};
use sealplane_test_kit::moto::{
    Moto, Relay, black_hole, current_json, describe, unique_prefix, version_count,
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

/// A store on the shared moto server with a fresh prefix; returns (moto, prefix, store).
async fn fresh_store() -> (Moto, String, AwsSecretsManagerStore) {
    let moto = Moto::shared();
    let prefix = unique_prefix();
    let store = AwsSecretsManagerStore::connect(&moto.config(&moto.endpoint, &prefix))
        .await
        .unwrap();
    (moto, prefix, store)
}

#[tokio::test]
async fn put_new_version_unchanged_and_retried_request() {
    let (moto, prefix, store) = fresh_store().await;
    let aws = moto.client();
    let name = format!("{prefix}app/db");
    let first = meta("aws-test://app/db", false);
    let v1 = value(&[("user", b"app"), ("password", b"hunter2")]);

    let w = store.put("app/db", &v1, &first).await.unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    let d = describe(&aws, &name).await.unwrap();
    assert_eq!(w.upstream_ref, format!("{}?versionId={}", d.arn, d.current));
    assert_eq!(parse_version_id(&d.current), Some((1, first.request_id)));
    assert_eq!(
        current_json(&aws, &name).await,
        json!({"user": "app", "password": "hunter2"})
    );
    assert_eq!(d.tags["managed-by"], "sealplane");
    assert_eq!(d.tags["sealplane-uri"], "aws-test://app/db");
    assert_eq!(d.tags["sealplane-request-id"], first.request_id.to_string());
    assert_eq!(d.tags["sealplane-version"], "1");

    let second = meta("aws-test://app/db", false);
    let v2 = value(&[("user", b"app"), ("password", b"correct horse")]);
    let w = store.put("app/db", &v2, &second).await.unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    let d = describe(&aws, &name).await.unwrap();
    assert_eq!(parse_version_id(&d.current), Some((2, second.request_id)));
    assert_eq!(d.tags["sealplane-version"], "2");
    assert_eq!(
        d.tags["sealplane-request-id"],
        second.request_id.to_string()
    );
    assert_eq!(current_json(&aws, &name).await["password"], "correct horse");
    assert_eq!(version_count(&aws, &name).await, 2);

    // The same value again: no new version upstream.
    let w = store
        .put("app/db", &v2, &meta("aws-test://app/db", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (2, false));
    assert_eq!(version_count(&aws, &name).await, 2);
    assert_eq!(describe(&aws, &name).await.unwrap().current, d.current);
    assert!(same(&store.get("app/db").await.unwrap().unwrap(), &v2));

    // The second request retried after it succeeded: reported as its write, not repeated.
    let w = store.put("app/db", &v2, &second).await.unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    assert_eq!(version_count(&aws, &name).await, 2);

    assert!(store.get("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn non_utf8_bytes_round_trip_as_listed_base64() {
    let (moto, prefix, store) = fresh_store().await;
    let aws = moto.client();
    let binary: &[u8] = &[0xff, 0x00, 0xfe, 0x80, b'a'];
    let v = value(&[("cert", binary), ("user", b"app")]);
    store.put("bin", &v, &meta("t://bin", false)).await.unwrap();
    let read = current_json(&aws, &format!("{prefix}bin")).await;
    assert_eq!(
        read,
        json!({
            "cert": base64::engine::general_purpose::STANDARD.encode(binary),
            "user": "app",
            "sealplane:base64-keys": "cert",
        })
    );
    let back = store.get("bin").await.unwrap().unwrap();
    assert_eq!(back.get("cert").unwrap(), binary);
    assert!(same(&back, &v));
    let w = store.put("bin", &v, &meta("t://bin", false)).await.unwrap();
    assert!(!w.changed);
}

#[tokio::test]
async fn unmanaged_secret_is_refused_untouched_then_adopted() {
    let (moto, prefix, store) = fresh_store().await;
    let aws = moto.client();
    let name = format!("{prefix}legacy");
    aws.create_secret()
        .name(&name)
        .secret_string(r#"{"token":"theirs"}"#)
        .send()
        .await
        .unwrap();
    let before = describe(&aws, &name).await.unwrap();

    let e = store
        .put("legacy", &marker_value(), &meta("t://legacy", false))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    assert!(e.to_string().contains("--adopt"), "{e}");
    assert_no_marker(&e);
    let e = store.get("legacy").await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    for destroy in [false, true] {
        let e = store.delete("legacy", destroy).await.unwrap_err();
        assert!(matches!(e, UpstreamError::NotManaged { .. }), "{e}");
    }
    let after = describe(&aws, &name).await.unwrap();
    assert!(after.tags.is_empty(), "{:?}", after.tags);
    assert!(!after.deleted);
    assert_eq!(after.current, before.current);
    assert_eq!(current_json(&aws, &name).await, json!({"token": "theirs"}));
    assert_eq!(version_count(&aws, &name).await, 1);

    let adopt = meta("t://legacy", true);
    let w = store
        .put("legacy", &value(&[("token", b"ours")]), &adopt)
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (1, true));
    let d = describe(&aws, &name).await.unwrap();
    assert_eq!(d.tags["managed-by"], "sealplane");
    assert_eq!(d.tags["sealplane-request-id"], adopt.request_id.to_string());
    assert_eq!(current_json(&aws, &name).await, json!({"token": "ours"}));
    assert_eq!(version_count(&aws, &name).await, 2);

    // Adopted once, managed from then on: no --adopt needed.
    let w = store
        .put(
            "legacy",
            &value(&[("token", b"ours2")]),
            &meta("t://legacy", false),
        )
        .await
        .unwrap();
    assert_eq!(w.version, 2);

    // A version written by someone else gets no number; Sealplane's count
    // goes on from its tag, and an equal value is written as its own version.
    aws.put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"token":"edited"}"#)
        .send()
        .await
        .unwrap();
    aws.put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"token":"edited2"}"#)
        .send()
        .await
        .unwrap();
    let w = store
        .put(
            "legacy",
            &value(&[("token", b"edited2")]),
            &meta("t://legacy", false),
        )
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (3, true));
}

#[tokio::test]
async fn soft_delete_restore_on_put_and_destroy() {
    let (moto, prefix, store) = fresh_store().await;
    let aws = moto.client();
    let name = format!("{prefix}svc/api");
    let v1 = value(&[("key", b"k1")]);
    store
        .put("svc/api", &v1, &meta("t://svc/api", false))
        .await
        .unwrap();

    store.delete("svc/api", false).await.unwrap();
    let d = describe(&aws, &name).await.unwrap();
    assert!(d.deleted, "scheduled for deletion");
    assert!(store.get("svc/api").await.unwrap().is_none());
    // Deleting again is a no-op, not an error.
    store.delete("svc/api", false).await.unwrap();

    // A put restores it and writes a new version.
    let v2 = value(&[("key", b"k2")]);
    let w = store
        .put("svc/api", &v2, &meta("t://svc/api", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (2, true));
    assert!(!describe(&aws, &name).await.unwrap().deleted);
    assert!(same(&store.get("svc/api").await.unwrap().unwrap(), &v2));

    // Destroy: gone at once, also from a soft-deleted state.
    store.delete("svc/api", false).await.unwrap();
    store.delete("svc/api", true).await.unwrap();
    assert!(describe(&aws, &name).await.is_none());
    assert!(store.get("svc/api").await.unwrap().is_none());
    let e = store.delete("svc/api", false).await.unwrap_err();
    assert!(matches!(e, UpstreamError::NotFound { .. }), "{e}");
    assert_no_marker(&e);
    // The name is free again.
    let w = store
        .put("svc/api", &v1, &meta("t://svc/api", false))
        .await
        .unwrap();
    assert_eq!((w.version, w.changed), (1, true));
}

#[tokio::test]
async fn paths_aws_cannot_hold_are_refused_before_any_request() {
    let moto = Moto::shared();
    let long_prefix = format!("{}/", "p".repeat(500));
    let store = AwsSecretsManagerStore::connect(&moto.config(&moto.endpoint, &long_prefix))
        .await
        .unwrap();
    for bad in [
        "../x",
        "a//b",
        "/a",
        "a b",
        "a+b",
        "a@b",
        "tooooooooooooooong",
    ] {
        let e = store
            .put(bad, &marker_value(), &meta("t://x", false))
            .await
            .unwrap_err();
        assert!(matches!(e, UpstreamError::InvalidPath { .. }), "{bad}: {e}");
        assert_no_marker(&e);
    }
    let e = store.get("a b").await.unwrap_err();
    assert!(matches!(e, UpstreamError::InvalidPath { .. }), "{e}");
}

#[tokio::test]
async fn unreachable_store_is_unavailable_and_retry_gives_up() {
    let moto = Moto::shared();
    let relay = Relay::start(&moto.endpoint).await;
    let store = AwsSecretsManagerStore::connect(&moto.config(&relay.address, &unique_prefix()))
        .await
        .unwrap();
    store
        .put("svc", &value(&[("a", b"1")]), &meta("t://svc", false))
        .await
        .unwrap();

    relay.cut().await;
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
    assert!(e.to_string().contains(&relay.address), "{e}");
    assert_no_marker(&e);
    for e in [
        store.get("svc").await.unwrap_err(),
        store.delete("svc", true).await.unwrap_err(),
    ] {
        assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");
    }

    // A closed port at connect time.
    let e = AwsSecretsManagerStore::connect(&moto.config(&relay.address, ""))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");

    // A server that accepts and never answers: the request timeout (2 s) ends it.
    let (silent, _task) = black_hole().await;
    let start = Instant::now();
    let e = AwsSecretsManagerStore::connect(&moto.config(&silent, ""))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("request_timeout_seconds"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn config_errors_name_the_field() {
    let moto = Moto::shared();
    let mut config = moto.config(&moto.endpoint, "");
    config.secret_access_key_env = Some("SEALPLANE_TEST_SURELY_UNSET_VAR".to_owned());
    let e = AwsSecretsManagerStore::connect(&config).await.unwrap_err();
    assert!(
        matches!(
            e,
            UpstreamError::Config {
                field: "secret_access_key_env",
                ..
            }
        ),
        "{e}"
    );
    config.recovery_window_days = 3;
    let e = AwsSecretsManagerStore::connect(&config).await.unwrap_err();
    assert!(e.to_string().contains("recovery_window_days"), "{e}");
}
