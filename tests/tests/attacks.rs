//! Attacks on the sealed upload protocol and bad input (SPEC §1, §3, §10),
//! end to end: each is refused with a clear error and leaves an event, and
//! no plaintext reaches the event store or any log.
//!
//! Where `sealctl` would never send the bad thing (tampered ciphertext, a
//! payload sealed for another request), a raw gRPC client plays the
//! attacker with a stolen or its own token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use crypto_box::PublicKey;
use sealplane_proto::offer::{KeyOffer, verify_offer};
use sealplane_proto::sealed::{Payload, SecretValue, seal};
use sealplane_proto::upload::Purpose;
use sealplane_proto::v1;
use sealplane_proto::v1::secrets_client::SecretsClient;
use sealplane_test_kit::{Cluster, Settings, User, authorized as req, input_file, marker};
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

fn opts() -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions {
        command_id: Uuid::new_v4().to_string(),
        correlation_id: String::new(),
    })
}

fn value(password: &str) -> SecretValue {
    let mut v = SecretValue::new();
    v.insert("password", password.as_bytes().to_vec()).unwrap();
    v
}

/// A hand-driven client of the Secrets API.
struct Raw {
    secrets: SecretsClient<Channel>,
}

/// An open request with its verified one-time key.
struct Keyed {
    id: Uuid,
    uri: String,
    key: PublicKey,
}

impl Raw {
    async fn new(c: &Cluster) -> Raw {
        Raw {
            secrets: SecretsClient::new(c.channel().await),
        }
    }

    async fn request_key(&mut self, user: &User, uri: &str) -> Result<(Uuid, String), Status> {
        self.request_key_for(user, uri, PUT).await
    }

    async fn request_key_for(
        &mut self,
        user: &User,
        uri: &str,
        purpose: Purpose,
    ) -> Result<(Uuid, String), Status> {
        let (purpose, adopt) = purpose.to_proto();
        let reply = self
            .secrets
            .request_upload_key(req(
                v1::RequestUploadKeyRequest {
                    options: opts(),
                    uri: uri.into(),
                    purpose: purpose as i32,
                    adopt,
                },
                user,
            ))
            .await?
            .into_inner();
        Ok((reply.request_id.parse().unwrap(), reply.uri))
    }

    /// Follows the request until `state` (or an end state), within 30 s.
    async fn wait(&mut self, user: &User, id: Uuid, state: v1::UploadState) -> v1::UploadStatus {
        let mut stream = self
            .secrets
            .watch_upload(req(
                v1::WatchUploadRequest {
                    request_id: id.to_string(),
                },
                user,
            ))
            .await
            .unwrap()
            .into_inner();
        let ends = [
            v1::UploadState::Uploaded,
            v1::UploadState::Verified,
            v1::UploadState::Failed,
            v1::UploadState::Expired,
        ];
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let status = stream.message().await.unwrap().expect("the watch ended");
                let now = status.state();
                if now == state || ends.contains(&now) {
                    return status;
                }
            }
        })
        .await
        .expect("no state change within 30 s")
    }

    /// Requests a key and waits for it, checking the reactor's signature.
    async fn keyed(&mut self, user: &User, uri: &str, reactor_key: &str) -> Keyed {
        self.keyed_for(user, uri, reactor_key, PUT).await
    }

    /// As [`Raw::keyed`], for `purpose`: the offer verifies only as signed
    /// for that purpose.
    async fn keyed_for(
        &mut self,
        user: &User,
        uri: &str,
        reactor_key: &str,
        purpose: Purpose,
    ) -> Keyed {
        let (id, uri) = self.request_key_for(user, uri, purpose).await.unwrap();
        let status = self.wait(user, id, v1::UploadState::KeyProvided).await;
        assert_eq!(status.state(), v1::UploadState::KeyProvided, "{status:?}");
        let public: [u8; 32] = STANDARD
            .decode(&status.public_key)
            .unwrap()
            .try_into()
            .unwrap();
        let offer = KeyOffer {
            request_id: id,
            store: uri.split_once("://").unwrap().0.to_owned(),
            uri: uri.clone(),
            purpose,
            public_key: public,
            expires_at: DateTime::parse_from_rfc3339(&status.expires_at)
                .unwrap()
                .with_timezone(&Utc),
        };
        let signature = STANDARD.decode(&status.signature).unwrap();
        verify_offer(reactor_key, &offer, &signature).expect("signed by the store's reactor");
        Keyed {
            id,
            uri,
            key: PublicKey::from(public),
        }
    }

    async fn upload(&mut self, user: &User, id: Uuid, ciphertext: Vec<u8>) -> Result<(), Status> {
        self.secrets
            .upload_secret(req(
                v1::UploadSecretRequest {
                    options: opts(),
                    request_id: id.to_string(),
                    ciphertext,
                },
                user,
            ))
            .await
            .map(drop)
    }
}

const PUT: Purpose = Purpose::Put { adopt: false };

fn sealed(id: Uuid, uri: &str, key: &PublicKey, password: &str) -> Vec<u8> {
    sealed_for(id, uri, key, password, PUT)
}

fn sealed_for(id: Uuid, uri: &str, key: &PublicKey, password: &str, purpose: Purpose) -> Vec<u8> {
    seal(
        &Payload::new(id, uri, purpose, value(password)).unwrap(),
        key,
    )
    .unwrap()
}

fn count(log: &[(String, String)], event_type: &str, needle: &str) -> usize {
    log.iter()
        .filter(|(t, d)| t == event_type && d.contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_replayed_reused_and_foreign_uploads_are_refused_and_recorded() {
    let mut c = Cluster::start();
    let r = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let bob = c.add_user("bob", "user", &[]);
    let reactor = c.reactor_key(r);
    let mut raw = Raw::new(&c).await;
    let secret = marker("attack");

    // Tampered ciphertext: the control plane cannot tell, the reactor can.
    let k = raw.keyed(&alice, "local://alice/a", &reactor).await;
    let mut ct = sealed(k.id, &k.uri, &k.key, &secret);
    ct[60] ^= 1;
    raw.upload(&alice, k.id, ct).await.unwrap();
    let end = raw.wait(&alice, k.id, v1::UploadState::Uploaded).await;
    assert_eq!(end.state(), v1::UploadState::Failed);
    assert!(end.reason.contains("tampered"), "{}", end.reason);

    // A payload sealed for another request (replay to a second request).
    let first = raw.keyed(&alice, "local://alice/b", &reactor).await;
    let second = raw.keyed(&alice, "local://alice/b", &reactor).await;
    raw.upload(
        &alice,
        second.id,
        sealed(first.id, &first.uri, &second.key, &secret),
    )
    .await
    .unwrap();
    let end = raw.wait(&alice, second.id, v1::UploadState::Uploaded).await;
    assert_eq!(end.state(), v1::UploadState::Failed);
    assert!(end.reason.contains("belongs to request"), "{}", end.reason);

    // A payload naming another uri (replay to another path).
    raw.upload(
        &alice,
        first.id,
        sealed(first.id, "local://alice/other", &first.key, &secret),
    )
    .await
    .unwrap();
    let end = raw.wait(&alice, first.id, v1::UploadState::Uploaded).await;
    assert_eq!(end.state(), v1::UploadState::Failed);
    assert!(end.reason.contains("targets"), "{}", end.reason);

    // Another user cannot complete alice's request, nor upload twice on it.
    let k = raw.keyed(&alice, "local://alice/c", &reactor).await;
    let stolen = raw
        .upload(&bob, k.id, sealed(k.id, &k.uri, &k.key, &secret))
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), Code::PermissionDenied, "{stolen:?}");
    assert!(stolen.message().contains("alice"), "{}", stolen.message());
    raw.upload(&alice, k.id, sealed(k.id, &k.uri, &k.key, &secret))
        .await
        .unwrap();
    let done = raw.wait(&alice, k.id, v1::UploadState::Uploaded).await;
    assert_eq!(done.state(), v1::UploadState::Uploaded, "{}", done.reason);
    let again = raw
        .upload(&alice, k.id, sealed(k.id, &k.uri, &k.key, &secret))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains("already"), "{}", again.message());

    c.assert_nowhere(secret.as_bytes());
    let log = c.event_log().await;
    assert_eq!(count(&log, "SecretUploadFailed", "tampered"), 1);
    assert_eq!(count(&log, "SecretUploadFailed", "belongs to request"), 1);
    assert_eq!(count(&log, "SecretUploadFailed", "targets"), 1);
    assert_eq!(count(&log, "AccessDenied", "bob"), 1, "{log:?}");
    assert_eq!(count(&log, "AccessDenied", "UploadSecret"), 2, "{log:?}");
    assert_eq!(count(&log, "SecretUploaded", ""), 1);
    c.assert_nowhere(secret.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn late_uploads_are_refused_and_unused_keys_expire() {
    let mut c = Cluster::start_with(Settings {
        limits: "upload_key_ttl_seconds = 2".into(),
        ..Settings::default()
    });
    let r = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let reactor = c.reactor_key(r);
    let mut raw = Raw::new(&c).await;
    let secret = marker("late");

    let k = raw.keyed(&alice, "local://alice/late", &reactor).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let late = raw
        .upload(&alice, k.id, sealed(k.id, &k.uri, &k.key, &secret))
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(late.message().contains("expired"), "{}", late.message());
    // The reactor destroys the key and says so.
    let end = raw.wait(&alice, k.id, v1::UploadState::Expired).await;
    assert_eq!(end.state(), v1::UploadState::Expired);
    assert!(
        c.reactor_log(r)
            .contains("expired unused and was destroyed")
    );

    // A put quick enough still works with this short TTL.
    let ok = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "local://alice/late",
            &format!("password={secret}"),
        ],
    );
    ok.ok();

    let log = c.event_log().await;
    assert_eq!(count(&log, "SecretUploadKeyExpired", ""), 1);
    assert_eq!(count(&log, "AccessDenied", "expired"), 1, "{log:?}");
    c.assert_nowhere(secret.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_substituted_or_changed_reactor_identity_is_refused_before_anything_is_sent() {
    let mut c = Cluster::start();
    let real = c.add_file_store("local");
    // `rogue` is registered with the real reactor's identity but served by
    // a reactor holding another key: what a control plane swapping in its
    // own one-time keys looks like to sealctl.
    let impostor = c.add_reactor_for("rogue", Some(real));
    c.sealctl(
        &c.admin,
        &[
            "create",
            "store",
            "rogue",
            "--kind",
            "file",
            "--reactor-key",
            &c.reactor_key(real),
        ],
    )
    .ok();
    c.start_reactor(impostor);
    let alice = c.add_user("alice", "user", &[]);
    let secret = marker("swap");

    let refused = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "rogue://alice/x",
            &format!("password={secret}"),
        ],
    );
    let stderr = refused.failed_with(3);
    assert!(
        stderr.contains("not signed by the") && stderr.contains("nothing was sent"),
        "{stderr}"
    );

    // A store no anchor certified (its admin holds none): the identity a
    // user named is pinned, and a changed one is refused loudly...
    let ops = c.add_user("ops", "admin", &[]);
    let plain = c.add_reactor_for("plain", Some(real));
    let plain_key = c.reactor_key(plain);
    c.sealctl(
        &ops,
        &[
            "create",
            "store",
            "plain",
            "--kind",
            "file",
            "--reactor-key",
            &plain_key,
        ],
    )
    .ok();
    c.start_reactor(plain);
    let put_plain = |extra: &[&str]| {
        let password = format!("password={secret}");
        let mut args = vec!["put", "secret", "plain://alice/x", password.as_str()];
        args.extend_from_slice(extra);
        c.sealctl(&alice, &args)
    };
    put_plain(&["--reactor-key", &plain_key]).ok();
    let pins = alice.config_dir.join("known_reactors");
    let text = std::fs::read_to_string(&pins).unwrap();
    assert!(text.contains(c.control_plane().deployment_id()), "{text}");
    let other = c.reactor_key(impostor);
    std::fs::write(&pins, text.replace(&plain_key, &other)).unwrap();
    let stderr = put_plain(&[]).failed_with(3).to_owned();
    assert!(
        stderr.contains("changed") && stderr.contains("--reactor-key"),
        "{stderr}"
    );
    // ...unless the user names the identity again, which is then pinned.
    put_plain(&["--reactor-key", &plain_key]).ok();
    assert!(std::fs::read_to_string(&pins).unwrap().contains(&plain_key));

    c.assert_nowhere(secret.as_bytes());
    let log = c.event_log().await;
    // Nothing was ever sealed for rogue, nor for the refused put.
    assert_eq!(count(&log, "SecretUploadRequested", ""), 2, "{log:?}");
    assert_eq!(count(&log, "SecretVersionAdded", "rogue"), 0);
    c.assert_nowhere(secret.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let mut c = Cluster::start();
    let r = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let reactor = c.reactor_key(r);
    let inputs = tempfile::tempdir().unwrap();
    let secret = marker("bad");

    // Oversize: sealctl refuses before asking for a key...
    let big = input_file(inputs.path(), "big", &vec![b'x'; 300 * 1024]);
    let out = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "local://alice/big",
            "--from-file",
            &format!("blob={}", big.display()),
        ],
    );
    let stderr = out.failed_with(2);
    assert!(
        stderr.contains("256 KiB") || stderr.contains("limit"),
        "{stderr}"
    );
    // ...and the control plane refuses an oversize ciphertext from anyone else.
    let mut raw = Raw::new(&c).await;
    let k = raw.keyed(&alice, "local://alice/big", &reactor).await;
    let huge = raw
        .upload(&alice, k.id, vec![7; 450_000])
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::InvalidArgument, "{huge:?}");
    assert!(huge.message().contains("limit"), "{}", huge.message());

    for (uri, expect) in [
        ("local://../etc/passwd", "path"),
        ("local://a//b", "path"),
        ("Bad_Store://x", "store"),
        ("nowhere://alice/x", "nowhere"),
    ] {
        let out = c.sealctl(
            &alice,
            &["put", "secret", uri, &format!("password={secret}")],
        );
        let stderr = out.failed_with(2);
        assert!(stderr.to_lowercase().contains(expect), "{uri}: {stderr}");
    }
    c.sealctl(&c.admin, &["disable", "store", "local"]).ok();
    let out = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "local://alice/x",
            &format!("password={secret}"),
        ],
    );
    let stderr = out.failed_with(2);
    assert!(stderr.contains("enable store local"), "{stderr}");
    c.sealctl(&c.admin, &["enable", "store", "local"]).ok();
    let out = c.sealctl(&alice, &["put", "secret", "local://alice/x", "bad key=1"]);
    assert!(out.failed_with(2).contains("key"), "{}", out.stderr);

    c.assert_nowhere(secret.as_bytes());
    let listed = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    assert_eq!(
        listed["secrets"],
        serde_json::json!([]),
        "no empty secret left"
    );
    let log = c.event_log().await;
    assert_eq!(
        count(&log, "SecretUploadRequested", ""),
        0,
        "nothing half-written"
    );
    assert_eq!(count(&log, "SecretVersionAdded", ""), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reactor_killed_between_key_and_upload_fails_the_request_and_a_retry_succeeds() {
    let mut c = Cluster::start();
    let r = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let reactor = c.reactor_key(r);
    let mut raw = Raw::new(&c).await;
    let secret = marker("crash");

    let k = raw.keyed(&alice, "local://alice/crash", &reactor).await;
    c.kill_reactor(r);
    raw.upload(&alice, k.id, sealed(k.id, &k.uri, &k.key, &secret))
        .await
        .unwrap();
    c.start_reactor(r);
    let end = raw.wait(&alice, k.id, v1::UploadState::Uploaded).await;
    assert_eq!(end.state(), v1::UploadState::Failed);
    assert!(
        end.reason.starts_with("one-time key lost"),
        "{}",
        end.reason
    );

    let retried = c
        .sealctl(
            &alice,
            &[
                "put",
                "secret",
                "local://alice/crash",
                &format!("password={secret}"),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(retried["version"], 1);

    c.assert_nowhere(secret.as_bytes());
    let log = c.event_log().await;
    assert_eq!(count(&log, "SecretUploadFailed", "one-time key lost"), 1);
    assert_eq!(count(&log, "SecretUploaded", ""), 1);
    c.assert_nowhere(secret.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_no_reactor_answers_is_ended_by_the_control_plane() {
    let mut c = Cluster::start_with(Settings {
        limits: "upload_key_ttl_seconds = 1".into(),
        ..Settings::default()
    });
    // A store whose reactor never runs.
    let idle = c.add_reactor_for("idle", None);
    let key = c.reactor_key(idle);
    c.sealctl(
        &c.admin,
        &[
            "create",
            "store",
            "idle",
            "--kind",
            "file",
            "--reactor-key",
            &key,
        ],
    )
    .ok();
    let alice = c.add_user("alice", "user", &[]);
    let mut raw = Raw::new(&c).await;
    let (id, _) = raw.request_key(&alice, "idle://alice/x").await.unwrap();
    let started = std::time::Instant::now();
    let end = raw.wait(&alice, id, v1::UploadState::Expired).await;
    assert_eq!(end.state(), v1::UploadState::Expired, "{end:?}");
    // Not before the reactor's grace (10 s after the 1 s expiry).
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // sealctl gives up on its own at the expiry, saying why.
    let out = c.sealctl(&alice, &["put", "secret", "idle://alice/y", "password=x"]);
    assert!(
        out.failed_with(2).contains("no reactor answered"),
        "{}",
        out.stderr
    );

    let log = c.event_log().await;
    assert_eq!(count(&log, "SecretUploadKeyExpired", &id.to_string()), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_a_value_by_verification_is_rate_limited_and_recorded() {
    let mut c = Cluster::start_with(Settings {
        limits: "max_verifications_per_minute = 2".into(),
        ..Settings::default()
    });
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let secret = marker("guess-me");
    let uri = "local://alice/pin";
    c.sealctl(&alice, &["put", "secret", uri, &format!("pin={secret}")])
        .ok();
    for guess in ["0000", "1234"] {
        let out = c.sealctl(&alice, &["verify", "secret", uri, &format!("pin={guess}")]);
        out.failed_with(1);
        assert!(out.stdout.contains("no match"), "{}", out.stdout);
    }
    let third = c.sealctl(&alice, &["verify", "secret", uri, &format!("pin={secret}")]);
    let stderr = third.failed_with(2);
    assert!(stderr.contains("too many verifications"), "{stderr}");
    // Other secrets keep their own budget.
    c.sealctl(&alice, &["put", "secret", "local://alice/other", "pin=1"])
        .ok();
    c.sealctl(
        &alice,
        &["verify", "secret", "local://alice/other", "pin=1"],
    )
    .ok();

    c.assert_nowhere(secret.as_bytes());
    let log = c.event_log().await;
    assert_eq!(
        count(&log, "AccessDenied", "too many verifications"),
        1,
        "{log:?}"
    );
    assert_eq!(count(&log, "SecretVerified", ""), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_sealed_for_one_purpose_cannot_serve_another() {
    let mut c = Cluster::start();
    let r = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let reactor = c.reactor_key(r);
    let secret = marker("purpose");
    let guess = marker("guess");
    let uri = "local://alice/p";
    c.sealctl(
        &alice,
        &["put", "secret", uri, &format!("password={secret}")],
    )
    .ok();
    let mut raw = Raw::new(&c).await;

    // The reactor signs each offer for its request's purpose: a verify's
    // offer verifies as a verify and not as a put.
    let k = raw.keyed_for(&alice, uri, &reactor, Purpose::Verify).await;
    // A box sealed for a put cannot answer that verify...
    raw.upload(&alice, k.id, sealed_for(k.id, &k.uri, &k.key, &guess, PUT))
        .await
        .unwrap();
    let end = raw.wait(&alice, k.id, v1::UploadState::Verified).await;
    assert_eq!(end.state(), v1::UploadState::Failed, "{end:?}");
    assert!(end.reason.contains("sealed for"), "{}", end.reason);
    assert_eq!(end.failure_kind(), v1::FailureKind::PayloadRejected);

    // ...and a box sealed to be compared is never stored by a put.
    let k = raw.keyed(&alice, uri, &reactor).await;
    raw.upload(
        &alice,
        k.id,
        sealed_for(k.id, &k.uri, &k.key, &guess, Purpose::Verify),
    )
    .await
    .unwrap();
    let end = raw.wait(&alice, k.id, v1::UploadState::Uploaded).await;
    assert_eq!(end.state(), v1::UploadState::Failed, "{end:?}");
    assert!(end.reason.contains("sealed for"), "{}", end.reason);

    let described = c
        .sealctl(&alice, &["describe", "secret", uri, "-o", "json"])
        .json();
    assert_eq!(described["versions"].as_array().unwrap().len(), 1);
    c.assert_nowhere(secret.as_bytes());
    c.assert_nowhere(guess.as_bytes());
}
