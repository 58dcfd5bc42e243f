//! The sealed upload (SPEC §3), for `put secret` and `verify secret`:
//! ask for a one-time key, check that the store's pinned reactor identity
//! signed it, seal the value to it, hand over the ciphertext, and follow
//! the request to its outcome.
//!
//! The value is sealed only after the signature check; whatever goes
//! wrong before, nothing derived from the value leaves this process.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use comfy_table::Table;
use crypto_box::PublicKey;
use sealplane_proto::certificate::StoreCertificate;
use sealplane_proto::limits::MAX_KEY_TTL;
use sealplane_proto::names::{SecretRef, SecretUri};
use sealplane_proto::offer::{KeyOffer, verify_offer};
use sealplane_proto::sealed::{Payload, SealError, SecretValue, seal};
use sealplane_proto::upload::{FailureKind, Purpose};
use sealplane_proto::v1;
use sealplane_proto::v1::UploadState;
use serde::Serialize;
use tokio::time::Instant;
use tonic::Code;
use uuid::Uuid;

use crate::client::{ClientError, Connection, command_options};
use crate::known_reactors::{Expected, KnownReactors, PinError, Scope};
use crate::output::{Tabular, fields, line};
use crate::progress::Progress;
use crate::trust::{Trust, TrustError};

/// Attempts in all when a restarted reactor lost the one-time key (SPEC §3 step 5).
pub const MAX_ATTEMPTS: usize = 3;

/// How long after the key's expiry sealctl keeps waiting for a reactor
/// that already has the ciphertext (it may be writing upstream).
const OUTCOME_GRACE: Duration = Duration::from_secs(60);

/// Slack for clock differences between sealctl and the control plane.
const EXPIRY_SLACK: Duration = Duration::from_secs(3);

/// How often a watch that ended early is re-opened before giving up.
const MAX_REOPENS: usize = 10;

/// Why an upload did not end in an outcome.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The pins could not be read or written, or the identity changed.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The one-time key's signature does not verify (SPEC §1.4).
    #[error(
        "the one-time key is not signed by the {which} reactor identity for store `{store}`; nothing was sent"
    )]
    BadSignature {
        /// The store.
        store: String,
        /// `certified`, `pinned`, `given` or `confirmed`.
        which: &'static str,
    },
    /// The key offer is not well formed.
    #[error(
        "the control plane sent a malformed one-time key for store `{store}` ({problem}); nothing was sent"
    )]
    MalformedOffer {
        /// The store.
        store: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// The offer's signed expiry is past, or further away than a key may live.
    #[error(
        "the one-time key offered for store `{store}` expires at {expires_at}, {problem} (this machine's clock, allowing {skew} s of skew); a control plane replaying an old offer looks like this; nothing was sent"
    )]
    OfferOutOfTime {
        /// The store.
        store: String,
        /// The signed expiry.
        expires_at: String,
        /// `which is past` or `more than an hour away`.
        problem: &'static str,
        /// The skew allowed, in seconds.
        skew: i64,
    },
    /// Nothing this user trusts vouches for the store's reactor identity.
    #[error(
        "{how} store `{store}` (deployment {deployment}) is served by reactor identity {key}, and nothing you trust vouches for it: no certificate from a trust anchor you hold, no pin; nothing was sent. Ask an admin for the deployment's trust anchor and run `sealctl trust add {deployment}=ANCHOR_KEY` (or set SEALPLANE_TRUST), or, having checked that identity with an admin, pass --reactor-key {key}"
    )]
    NotTrusted {
        /// How the store was chosen.
        how: &'static str,
        /// The store.
        store: String,
        /// The deployment the control plane names.
        deployment: String,
        /// The identity offered.
        key: String,
    },
    /// Trust could not be used, or a certificate was rolled back.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The control plane resolved the uri to another secret.
    #[error(
        "the control plane resolved {asked} to {resolved}, which is not what was asked; nothing was sent"
    )]
    UriMismatch {
        /// What the user gave.
        asked: String,
        /// What the control plane answered.
        resolved: String,
    },
    /// The value could not be sealed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The reactor reported a failure.
    #[error("the reactor for store `{store}` could not store {uri}: {reason}")]
    Failed {
        /// The store.
        store: String,
        /// The secret.
        uri: String,
        /// The reactor's reason (never a value).
        reason: String,
        /// What kind of failure it is.
        kind: FailureKind,
    },
    /// No reactor provided a key in time.
    #[error(
        "no reactor answered for store `{store}` before the key request expired; is the reactor for `{store}` running?"
    )]
    Expired {
        /// The store.
        store: String,
    },
    /// The reactor took the ciphertext but reported nothing.
    #[error(
        "the reactor for store `{store}` received the sealed value for {uri} but reported no outcome in time; check later with `sealctl describe secret {uri}`"
    )]
    NoOutcome {
        /// The store.
        store: String,
        /// The secret.
        uri: String,
    },
    /// The watch kept ending.
    #[error("the control plane keeps closing the watch of request {0}; try again")]
    WatchLost(Uuid),
}

impl UploadError {
    /// Whether this is a refusal to trust the control plane's answer (exit 3).
    pub fn is_trust_refusal(&self) -> bool {
        matches!(
            self,
            UploadError::Pin(PinError::Changed { .. })
                | UploadError::BadSignature { .. }
                | UploadError::MalformedOffer { .. }
                | UploadError::OfferOutOfTime { .. }
                | UploadError::NotTrusted { .. }
                | UploadError::Trust(TrustError::RolledBack { .. })
                | UploadError::UriMismatch { .. }
        )
    }
}

/// What to upload to and how.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    /// `store://path` or a bare path (default store).
    pub uri: String,
    /// Put a new version or verify.
    pub purpose: v1::Purpose,
    /// Overwrite an upstream secret Sealplane does not manage yet.
    pub adopt: bool,
    /// `--reactor-key`: the identity to expect instead of the pin.
    pub reactor_key: Option<String>,
}

/// A stored version (the outcome of a put).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Uploaded {
    /// The secret.
    pub uri: String,
    /// The new version.
    pub version: u64,
    /// The keyed hash of the whole value.
    pub hash: String,
    /// The keyed hash of each key.
    pub key_hashes: BTreeMap<String, String>,
    /// The upload request.
    pub request_id: String,
}

impl Tabular for Uploaded {
    fn table(&self) -> Table {
        let mut rows = vec![
            ("uri", self.uri.clone()),
            ("version", self.version.to_string()),
            ("hash", self.hash.clone()),
        ];
        let keys: Vec<(String, &String)> = self
            .key_hashes
            .iter()
            .map(|(k, h)| (format!("hash[{k}]"), h))
            .collect();
        rows.extend(keys.iter().map(|(k, h)| (k.as_str(), (*h).clone())));
        fields(rows)
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.uri.clone()])
    }
}

/// A comparison (the outcome of a verify).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verified {
    /// The secret.
    pub uri: String,
    /// Whether the local value equals the stored one.
    pub matches: bool,
    /// `match` or `no match`.
    pub result: &'static str,
    /// The upload request.
    pub request_id: String,
}

impl Tabular for Verified {
    fn table(&self) -> Table {
        line(self.result)
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.uri.clone()])
    }
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A put stored a version.
    Uploaded(Uploaded),
    /// A verify compared.
    Verified(Verified),
}

/// Who vouches for reactor identities: the trusted anchors, the pins, and
/// (on a terminal) the person, asked with (store, deployment, key).
pub struct Trusting<'a> {
    /// The pins (and highest certificate serials seen).
    pub pins: &'a mut KnownReactors,
    /// The trusted anchors.
    pub trust: &'a Trust,
    /// Asks a person to accept an identity nothing vouches for; `false`
    /// without a terminal.
    pub confirm: &'a (dyn Fn(&str, &str, &str) -> bool + Sync),
}

/// Runs the sealed upload, retrying from step 1 when a restarted reactor
/// lost the one-time key.
pub async fn upload(
    conn: &Connection,
    trusting: &mut Trusting<'_>,
    target: &UploadTarget,
    value: &SecretValue,
    progress: &Progress,
) -> Result<Outcome, UploadError> {
    let mut attempt = 1;
    loop {
        match attempt_once(conn, trusting, target, value, progress).await {
            Err(e) if retries_after(&e, attempt) => {
                attempt += 1;
                progress.note(&format!(
                    "{e}; retrying with a new one-time key (attempt {attempt} of {MAX_ATTEMPTS})"
                ));
            }
            other => return other,
        }
    }
}

/// Whether attempt number `attempt` ended in a way that calls for a fresh
/// start from step 1: a restarted reactor lost the one-time key.
fn retries_after(error: &UploadError, attempt: usize) -> bool {
    matches!(error, UploadError::Failed { kind, .. } if kind.retry_with_new_request())
        && attempt < MAX_ATTEMPTS
}

/// Whether a watch that failed with `code` is worth re-opening.
fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted
    )
}

/// Checks that the control plane resolved `asked` to the same secret.
fn check_resolution(asked: &str, resolved: &str) -> Result<String, UploadError> {
    let mismatch = || UploadError::UriMismatch {
        asked: asked.to_owned(),
        resolved: resolved.to_owned(),
    };
    let asked_ref = SecretRef::parse(asked).map_err(|_| mismatch())?;
    let resolved = SecretUri::parse(resolved).map_err(|_| mismatch())?;
    let same = asked_ref.path == resolved.path
        && asked_ref.store.is_none_or(|store| store == resolved.store);
    if !same {
        return Err(mismatch());
    }
    Ok(resolved.store.to_string())
}

/// How far this machine's clock may be from the reactor's when checking a
/// signed expiry.
pub const OFFER_CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(30);

/// What a signed offer must state: this request, this uri (and its store),
/// this purpose. Anything else in the offer is refused before sealing.
fn offer_of(
    request_id: Uuid,
    uri: &str,
    target: &UploadTarget,
    status: &v1::UploadStatus,
    store: &str,
    now: DateTime<Utc>,
) -> Result<(KeyOffer, Vec<u8>), UploadError> {
    let malformed = |problem| UploadError::MalformedOffer {
        store: store.to_owned(),
        problem,
    };
    if status.request_id != request_id.to_string() {
        return Err(malformed("the offer is for another upload request"));
    }
    let purpose = match target.purpose {
        v1::Purpose::Verify => Purpose::Verify,
        _ => Purpose::Put {
            adopt: target.adopt,
        },
    };
    let public_key: [u8; 32] = STANDARD
        .decode(&status.public_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| malformed("the public key is not base64 of 32 bytes"))?;
    let signature = STANDARD
        .decode(&status.signature)
        .map_err(|_| malformed("the signature is not base64"))?;
    let expires_at = DateTime::parse_from_rfc3339(&status.expires_at)
        .map_err(|_| malformed("the expiry is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    let out_of_time = |problem| UploadError::OfferOutOfTime {
        store: store.to_owned(),
        expires_at: status.expires_at.clone(),
        problem,
        skew: OFFER_CLOCK_SKEW.num_seconds(),
    };
    if expires_at + OFFER_CLOCK_SKEW <= now {
        return Err(out_of_time("which is past"));
    }
    if expires_at > now + MAX_KEY_TTL + OFFER_CLOCK_SKEW {
        return Err(out_of_time("more than an hour away"));
    }
    Ok((
        KeyOffer {
            request_id,
            store: store.to_owned(),
            uri: uri.to_owned(),
            purpose,
            public_key,
            expires_at,
        },
        signature,
    ))
}

/// When to stop waiting for a key that expires at `expires_at`.
fn key_deadline(expires_at: &str) -> Instant {
    let left = DateTime::parse_from_rfc3339(expires_at)
        .ok()
        .and_then(|t| (t.with_timezone(&Utc) - Utc::now()).to_std().ok())
        .unwrap_or(Duration::ZERO)
        // A key lives at most this long (the control plane refuses more).
        .min(MAX_KEY_TTL.to_std().unwrap_or(Duration::ZERO));
    Instant::now() + left + EXPIRY_SLACK
}

async fn attempt_once(
    conn: &Connection,
    trusting: &mut Trusting<'_>,
    target: &UploadTarget,
    value: &SecretValue,
    progress: &Progress,
) -> Result<Outcome, UploadError> {
    let mut secrets = conn.secrets();
    let reply = secrets
        .request_upload_key(v1::RequestUploadKeyRequest {
            options: command_options(),
            uri: target.uri.clone(),
            purpose: target.purpose as i32,
            adopt: target.adopt,
        })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    let uri = reply.uri.clone();
    let store = check_resolution(&target.uri, &uri)?;
    // Decided here, before waiting for a key: which identity may receive
    // the value, and nothing is sent when none may (ADR 0010).
    let scope = Scope {
        deployment: reply.deployment_id.clone(),
        addr: conn.addr().to_owned(),
    };
    let certified = match (
        reply.certificate.clone(),
        Uuid::parse_str(&reply.deployment_id),
    ) {
        (Some(wire), Ok(deployment)) => match StoreCertificate::from_proto(wire) {
            Ok(c) => trusting.trust.vouches(
                &c,
                deployment,
                &store,
                &reply.reactor_key,
                trusting.pins.serial(&scope, &store),
            )?,
            Err(_) => None,
        },
        _ => None,
    };
    let expected = trusting.pins.expected(
        &scope,
        &store,
        target.reactor_key.as_deref(),
        &reply.reactor_key,
        certified,
    )?;
    if let Expected::Unknown(key) = &expected {
        // A bare path lets the control plane pick the store: only a store
        // already certified or pinned may be picked, never one confirmed
        // on the spot.
        let bare = !target.uri.contains("://");
        if bare || !(trusting.confirm)(&store, &reply.deployment_id, key) {
            return Err(UploadError::NotTrusted {
                how: if bare {
                    "the bare path was resolved by the control plane to"
                } else {
                    "the"
                },
                store,
                deployment: reply.deployment_id.clone(),
                key: key.clone(),
            });
        }
    }
    let request_id =
        Uuid::parse_str(&reply.request_id).map_err(|_| UploadError::MalformedOffer {
            store: store.clone(),
            problem: "the request id is not a UUID",
        })?;
    progress.set(format!(
        "waiting for the reactor of store `{store}` to issue a one-time key"
    ));
    let key_deadline = key_deadline(&reply.expires_at);
    let mut sent = false;
    let mut reopens = 0;
    let mut stream = None;
    loop {
        if stream.is_none() {
            stream = Some(
                secrets
                    .watch_upload(v1::WatchUploadRequest {
                        request_id: reply.request_id.clone(),
                    })
                    .await
                    .map_err(|s| conn.error(s))?
                    .into_inner(),
            );
        }
        let Some(watch) = stream.as_mut() else {
            continue;
        };
        let deadline = if sent {
            key_deadline + OUTCOME_GRACE
        } else {
            key_deadline
        };
        let status = match tokio::time::timeout_at(deadline, watch.message()).await {
            Err(_) if sent => {
                return Err(UploadError::NoOutcome { store, uri });
            }
            Err(_) => return Err(UploadError::Expired { store }),
            Ok(Ok(Some(status))) => status,
            Ok(Ok(None)) if reopens < MAX_REOPENS => {
                // The server ended the watch before an outcome: watch
                // again; the first message is the current state.
                reopens += 1;
                stream = None;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Ok(Err(s)) if is_transient(s.code()) && reopens < MAX_REOPENS => {
                // E.g. "the server is shutting down; watch again".
                reopens += 1;
                stream = None;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Ok(Ok(None)) => return Err(UploadError::WatchLost(request_id)),
            Ok(Err(s)) => return Err(conn.error(s).into()),
        };
        match status.state() {
            UploadState::KeyProvided if !sent => {
                let (offer, signature) =
                    offer_of(request_id, &uri, target, &status, &store, Utc::now())?;
                verify_offer(expected.key(), &offer, &signature).map_err(|_| {
                    UploadError::BadSignature {
                        store: store.clone(),
                        which: match expected {
                            Expected::Unknown(_) => "confirmed",
                            Expected::Certified { .. } => "certified",
                            Expected::Pinned(_) | Expected::Legacy(_) => "pinned",
                            Expected::Given { .. } => "given",
                        },
                    }
                })?;
                record_pin(trusting.pins, &scope, &store, &expected, progress)?;
                let payload = Payload::new(request_id, uri.clone(), offer.purpose, value.clone())?;
                let ciphertext = seal(&payload, &PublicKey::from(offer.public_key))?;
                drop(payload);
                progress.set(format!("uploading the sealed value to store `{store}`"));
                secrets
                    .upload_secret(v1::UploadSecretRequest {
                        options: command_options(),
                        request_id: reply.request_id.clone(),
                        ciphertext,
                    })
                    .await
                    .map_err(|s| conn.error(s))?;
                sent = true;
                progress.set(format!(
                    "waiting for the reactor of store `{store}` to {}",
                    if target.purpose == v1::Purpose::Verify {
                        "compare the value"
                    } else {
                        "store the value"
                    }
                ));
            }
            UploadState::Uploaded => {
                return Ok(Outcome::Uploaded(Uploaded {
                    uri,
                    version: status.version,
                    hash: status.hash,
                    key_hashes: status.key_hashes.into_iter().collect(),
                    request_id: reply.request_id,
                }));
            }
            UploadState::Verified => {
                return Ok(Outcome::Verified(Verified {
                    uri,
                    matches: status.matches,
                    result: if status.matches { "match" } else { "no match" },
                    request_id: reply.request_id,
                }));
            }
            UploadState::Failed => {
                return Err(UploadError::Failed {
                    store,
                    uri,
                    kind: FailureKind::from_proto(status.failure_kind, &status.reason),
                    reason: status.reason,
                });
            }
            UploadState::Expired => return Err(UploadError::Expired { store }),
            _ => {}
        }
    }
}

/// Pins the identity that just verified, on first use or when given.
fn record_pin(
    pins: &mut KnownReactors,
    scope: &Scope,
    store: &str,
    expected: &Expected,
    progress: &Progress,
) -> Result<(), PinError> {
    let serial = match expected {
        Expected::Certified { serial, .. } => *serial,
        _ => 0,
    };
    let changed = pins.serial(scope, store) < serial
        || !matches!(expected, Expected::Certified { .. } | Expected::Legacy(_));
    if !expected.must_pin() {
        return Ok(());
    }
    pins.pin(scope, store, expected.key(), serial)?;
    let path = pins.path().display();
    let note = match expected {
        Expected::Given {
            replaces: Some(old),
            key,
        } => format!(
            "replaced the pinned reactor identity for store `{store}`: {old} -> {key} (in {path})"
        ),
        Expected::Certified { key, serial } => format!(
            "reactor identity {key} for store `{store}` is certified by a trust anchor you hold (serial {serial}; in {path})"
        ),
        Expected::Legacy(_) => return Ok(()),
        _ => format!(
            "pinned reactor identity {} for store `{store}` (confirmed; in {path})",
            expected.key()
        ),
    };
    if changed {
        progress.note(&note);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolved_uri_must_be_the_one_asked_for() {
        assert_eq!(
            check_resolution("local://a/b", "local://a/b").unwrap(),
            "local"
        );
        assert_eq!(check_resolution("a/b", "prod://a/b").unwrap(), "prod");
        for (asked, resolved) in [
            ("local://a/b", "other://a/b"),
            ("local://a/b", "local://a/c"),
            ("a/b", "prod://a/c"),
            ("a/b", "a/b"),
            ("a/b", "://a/b"),
        ] {
            let e = check_resolution(asked, resolved).unwrap_err();
            assert!(e.is_trust_refusal(), "{asked} {resolved}");
            assert!(e.to_string().contains("nothing was sent"), "{e}");
        }
    }

    #[test]
    fn only_a_lost_key_is_retried_and_only_twice() {
        let failed = |reason: &str, kind| UploadError::Failed {
            store: "local".into(),
            uri: "local://a".into(),
            reason: reason.into(),
            kind,
        };
        let lost = failed("the reactor restarted", FailureKind::KeyLost);
        assert!(retries_after(&lost, 1));
        assert!(retries_after(&lost, 2));
        assert!(!retries_after(&lost, MAX_ATTEMPTS));
        let upstream = failed("upstream refused the write", FailureKind::Upstream);
        assert!(!retries_after(&upstream, 1));
        // The kind decides, not the words: a reason that merely starts
        // like a lost key is not retried.
        let lookalike = failed("one-time key lost (says the text)", FailureKind::Other);
        assert!(!retries_after(&lookalike, 1));
        let expired = UploadError::Expired {
            store: "local".into(),
        };
        assert!(!retries_after(&expired, 1));
        assert!(is_transient(Code::Unavailable));
        assert!(!is_transient(Code::PermissionDenied));
    }

    fn target(purpose: v1::Purpose, adopt: bool) -> UploadTarget {
        UploadTarget {
            uri: "local://a".into(),
            purpose,
            adopt,
            reactor_key: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T09:58:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn status(id: Uuid) -> v1::UploadStatus {
        v1::UploadStatus {
            request_id: id.to_string(),
            public_key: STANDARD.encode([7u8; 32]),
            signature: STANDARD.encode([1u8; 64]),
            expires_at: "2026-11-23T10:00:00+00:00".into(),
            ..Default::default()
        }
    }

    #[test]
    fn offers_are_parsed_strictly() {
        let id = Uuid::new_v4();
        let put = target(v1::Purpose::Put, false);
        let mut status = status(id);
        let (offer, sig) = offer_of(id, "local://a", &put, &status, "local", now()).unwrap();
        assert_eq!(offer.public_key, [7u8; 32]);
        assert_eq!(sig.len(), 64);
        assert_eq!(offer.expires_at.to_rfc3339(), "2026-11-23T10:00:00+00:00");
        status.public_key = STANDARD.encode([7u8; 31]);
        let e = offer_of(id, "local://a", &put, &status, "local", now()).unwrap_err();
        assert!(e.to_string().contains("not base64 of 32 bytes"), "{e}");
    }

    #[test]
    fn the_offer_sealctl_checks_states_its_own_request_and_purpose() {
        let id = Uuid::new_v4();
        // What sealctl verifies the signature over is what it asked for,
        // whatever the control plane claims: a verify checks "verify".
        let verify = target(v1::Purpose::Verify, false);
        let (offer, _) = offer_of(id, "local://a", &verify, &status(id), "local", now()).unwrap();
        assert_eq!(offer.purpose, Purpose::Verify);
        assert_eq!(offer.request_id, id);
        assert_eq!(offer.store, "local");
        let adopt = target(v1::Purpose::Put, true);
        let (offer, _) = offer_of(id, "local://a", &adopt, &status(id), "local", now()).unwrap();
        assert_eq!(offer.purpose, Purpose::Put { adopt: true });
        // An offer naming another request is refused before any signature.
        let foreign = status(Uuid::new_v4());
        let e = offer_of(id, "local://a", &verify, &foreign, "local", now()).unwrap_err();
        assert!(e.is_trust_refusal(), "{e}");
        assert!(e.to_string().contains("another upload request"), "{e}");
    }

    #[test]
    fn an_expired_or_far_future_offer_is_refused_with_the_skew_said() {
        let id = Uuid::new_v4();
        let put = target(v1::Purpose::Put, false);
        let expiry = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Just inside the skew: accepted; beyond it: refused.
        let ok = expiry + OFFER_CLOCK_SKEW - chrono::Duration::seconds(1);
        assert!(offer_of(id, "local://a", &put, &status(id), "local", ok).is_ok());
        let late = expiry + OFFER_CLOCK_SKEW;
        let e = offer_of(id, "local://a", &put, &status(id), "local", late).unwrap_err();
        assert!(e.is_trust_refusal(), "{e}");
        assert!(e.to_string().contains("which is past"), "{e}");
        assert!(e.to_string().contains("30 s of skew"), "{e}");
        let long_before = expiry - MAX_KEY_TTL - OFFER_CLOCK_SKEW - chrono::Duration::seconds(1);
        let e = offer_of(id, "local://a", &put, &status(id), "local", long_before).unwrap_err();
        assert!(e.to_string().contains("more than an hour away"), "{e}");
    }

    #[test]
    fn outcomes_render_for_people_and_scripts() {
        let u = Uploaded {
            uri: "local://a".into(),
            version: 2,
            hash: "hmac-sha256:k1:ab".into(),
            key_hashes: [("password".to_owned(), "hmac-sha256:k1:cd".to_owned())].into(),
            request_id: "r".into(),
        };
        assert_eq!(
            u.table().trim_fmt(),
            "uri:             local://a\nversion:         2\nhash:            hmac-sha256:k1:ab\nhash[password]:  hmac-sha256:k1:cd"
        );
        let v: serde_json::Value = serde_json::to_value(&u).unwrap();
        assert_eq!(v["key_hashes"]["password"], "hmac-sha256:k1:cd");
        assert_eq!(v["request_id"], "r");
    }
}
