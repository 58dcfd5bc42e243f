//! Why an action failed: [`ActionError`]. Its message is the reason the
//! reactor reports in `SecretUploadFailed`, so users read it in `sealctl`
//! and tests look for its words; change a message only on purpose.
//!
//! The variants fall in four groups, which is what a client can act on:
//! the one-time key is lost (retry with a new request), the payload was
//! rejected, the reactor is not set up for the request, or the upstream
//! store failed. No variant holds value bytes, ciphertext or key material:
//! the wrapped errors (sealed-box, one-time-key and upstream) never do.

use sealplane_proto::sealed::SealError;
use sealplane_proto::upload::FailureKind;

use super::KEY_LOST_REASON;
use crate::one_time_key::KeyError;
use crate::upstream::UpstreamError;

/// Why carrying out an upload (or verify) request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActionError {
    // The key is lost: `sealctl` retries these with a new request.
    /// An earlier run of the reactor issued the key; keys never touch disk.
    #[error(
        "{}: the reactor restarted after issuing the key for this request, and keys are never kept on disk; request a new upload (sealctl retries automatically)",
        KEY_LOST_REASON
    )]
    KeyIssuedBeforeRestart,
    /// This process holds no key for the request.
    #[error(
        "{}: this reactor holds no key for the request; request a new upload",
        KEY_LOST_REASON
    )]
    KeyLost,

    // The payload was rejected.
    /// The key was already used, or expired (never [`KeyError::Unknown`]:
    /// that is [`ActionError::KeyLost`]).
    #[error(transparent)]
    KeyUnusable(KeyError),
    /// The sealed box does not open, or what it holds does not fit the request.
    #[error(transparent)]
    Payload(#[from] SealError),

    /// A sealed file names a sealing key this reactor does not hold
    /// (retired, or never this reactor's).
    #[error(
        "this reactor holds no sealing key `{key_id}` for the store (it was retired, or the file was sealed for another reactor); seal the value again with `sealctl seal`"
    )]
    UnknownSealingKey {
        /// The key the file names.
        key_id: String,
    },
    /// A reseal of a file sealed to the newest key already.
    #[error(
        "the file is sealed to `{key_id}`, this reactor's newest sealing key; nothing to reseal"
    )]
    NoNewerSealingKey {
        /// The key the file names.
        key_id: String,
    },

    // The reactor is not set up for the request.
    /// The request names a store this reactor does not serve.
    #[error("this reactor is not configured for store `{store}`; nothing was written")]
    NoStore {
        /// The store the request names.
        store: String,
    },

    // The upstream store failed.
    /// The upstream store refused or failed (after retries).
    #[error("the upstream store refused or failed: {0}")]
    Upstream(#[from] UpstreamError),
    /// A verify found no current value upstream: a failure, not a "no match".
    #[error("there is no current value at {uri} to compare with")]
    NothingToCompare {
        /// The uri verified.
        uri: String,
    },
}

impl ActionError {
    /// What kind of failure this is, as reported beside the reason:
    /// `sealctl` retries [`FailureKind::KeyLost`] with a new request.
    pub(crate) fn kind(&self) -> FailureKind {
        match self {
            ActionError::KeyIssuedBeforeRestart | ActionError::KeyLost => FailureKind::KeyLost,
            ActionError::KeyUnusable(_)
            | ActionError::Payload(_)
            | ActionError::UnknownSealingKey { .. }
            | ActionError::NoNewerSealingKey { .. } => FailureKind::PayloadRejected,
            ActionError::NoStore { .. } => FailureKind::NotServed,
            ActionError::Upstream(_) => FailureKind::Upstream,
            ActionError::NothingToCompare { .. } => FailureKind::NoCurrentValue,
        }
    }

    /// Whether the one-time key is gone, so only a new request can succeed.
    pub(crate) fn is_key_lost(&self) -> bool {
        self.kind() == FailureKind::KeyLost
    }
}

impl From<KeyError> for ActionError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unknown => ActionError::KeyLost,
            other => ActionError::KeyUnusable(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone as _, Utc};
    use uuid::Uuid;

    use super::*;

    /// The reasons as the reactor reported them before this type existed:
    /// users, `sealctl` and the end-to-end tests read these words.
    #[test]
    fn messages_are_the_reasons_reported_so_far() {
        let expires_at = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap();
        let upstream = UpstreamError::NotFound { path: "a/b".into() };
        let upstream_text = upstream.to_string();
        let seal = SealError::NotSealedForThisKey;
        let seal_text = seal.to_string();
        let cases = [
            (
                ActionError::KeyIssuedBeforeRestart,
                "one-time key lost: the reactor restarted after issuing the key for this request, and keys are never kept on disk; request a new upload (sealctl retries automatically)".to_owned(),
            ),
            (
                ActionError::KeyLost,
                "one-time key lost: this reactor holds no key for the request; request a new upload".to_owned(),
            ),
            (
                ActionError::from(KeyError::Used),
                KeyError::Used.to_string(),
            ),
            (
                ActionError::from(KeyError::Expired { expires_at }),
                KeyError::Expired { expires_at }.to_string(),
            ),
            (ActionError::Payload(seal), seal_text),
            (
                ActionError::NoStore {
                    store: "vault-prod".into(),
                },
                "this reactor is not configured for store `vault-prod`; nothing was written"
                    .to_owned(),
            ),
            (
                ActionError::Upstream(upstream),
                format!("the upstream store refused or failed: {upstream_text}"),
            ),
            (
                ActionError::NothingToCompare {
                    uri: "local://app/db".into(),
                },
                "there is no current value at local://app/db to compare with".to_owned(),
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.to_string(), reason, "{error:?}");
        }
    }

    #[test]
    fn only_a_lost_key_is_key_lost_and_its_reason_says_so() {
        for lost in [
            ActionError::KeyIssuedBeforeRestart,
            ActionError::from(KeyError::Unknown),
        ] {
            assert!(lost.is_key_lost(), "{lost:?}");
            assert!(lost.to_string().starts_with(KEY_LOST_REASON), "{lost}");
        }
        let request_id = Uuid::from_u128(7);
        for other in [
            ActionError::from(KeyError::Used),
            ActionError::Payload(SealError::WrongRequest {
                expected: request_id,
                found: Uuid::nil(),
            }),
            ActionError::NoStore { store: "x".into() },
            ActionError::NothingToCompare {
                uri: "x://y".into(),
            },
        ] {
            assert!(!other.is_key_lost(), "{other:?}");
            assert!(!other.to_string().starts_with(KEY_LOST_REASON), "{other}");
        }
    }

    #[test]
    fn each_failure_has_the_kind_a_client_acts_on() {
        let cases = [
            (ActionError::KeyIssuedBeforeRestart, FailureKind::KeyLost),
            (ActionError::from(KeyError::Unknown), FailureKind::KeyLost),
            (
                ActionError::from(KeyError::Used),
                FailureKind::PayloadRejected,
            ),
            (
                ActionError::Payload(SealError::NotSealedForThisKey),
                FailureKind::PayloadRejected,
            ),
            (
                ActionError::NoStore { store: "x".into() },
                FailureKind::NotServed,
            ),
            (
                ActionError::Upstream(UpstreamError::NotFound { path: "a".into() }),
                FailureKind::Upstream,
            ),
            (
                ActionError::NothingToCompare {
                    uri: "x://y".into(),
                },
                FailureKind::NoCurrentValue,
            ),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error:?}");
        }
    }
}
