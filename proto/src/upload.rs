//! The upload protocol's vocabulary shared by every process (SPEC §3):
//! what a request is for, and why one failed. The control plane stores
//! these in its events, the reactor reports them, `sealctl` acts on them.

use serde::{Deserialize, Serialize};

use crate::v1;

/// What an upload request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Purpose {
    /// Store a new version; `adopt` overwrites an upstream secret
    /// Sealplane does not manage yet.
    Put {
        /// Take over an unmanaged upstream secret.
        #[serde(default)]
        adopt: bool,
    },
    /// Compare a local value with the stored one: the reactor answers
    /// match or no match (SPEC §4).
    Verify,
}

impl Purpose {
    /// The wire form: the purpose enum and the adopt flag.
    pub fn to_proto(self) -> (v1::Purpose, bool) {
        match self {
            Purpose::Put { adopt } => (v1::Purpose::Put, adopt),
            Purpose::Verify => (v1::Purpose::Verify, false),
        }
    }

    /// From the wire; `None` for an unspecified or unknown purpose.
    pub fn from_proto(purpose: i32, adopt: bool) -> Option<Purpose> {
        match v1::Purpose::try_from(purpose).ok()? {
            v1::Purpose::Put => Some(Purpose::Put { adopt }),
            v1::Purpose::Verify => Some(Purpose::Verify),
            v1::Purpose::Unspecified => None,
        }
    }
}

/// Why an upload request failed, as far as a client acts on it; the reason
/// text beside it is for humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The reactor no longer holds the one-time key (it restarted after
    /// issuing it): a new request succeeds, and `sealctl` makes one.
    KeyLost,
    /// The sealed payload was refused; nothing was written.
    PayloadRejected,
    /// The upstream store refused or failed, after retries.
    Upstream,
    /// The reactor is not configured for the request's store.
    NotServed,
    /// A verification found no current value to compare with.
    NoCurrentValue,
    /// Anything else.
    Other,
}

/// How reactors said "key lost" before failures had a kind: the reason
/// started with these words. Only for reading their events and reports.
const LEGACY_KEY_LOST_PREFIX: &str = "one-time key lost";

impl FailureKind {
    /// The kind of a failure recorded or reported without one (by a reactor
    /// from before kinds existed), read from its reason.
    pub fn of_legacy_reason(reason: &str) -> FailureKind {
        if reason.starts_with(LEGACY_KEY_LOST_PREFIX) {
            FailureKind::KeyLost
        } else {
            FailureKind::Other
        }
    }

    /// Whether a new request for the same upload can succeed at once.
    pub fn retry_with_new_request(self) -> bool {
        self == FailureKind::KeyLost
    }

    /// The wire form.
    pub fn to_proto(self) -> v1::FailureKind {
        match self {
            FailureKind::KeyLost => v1::FailureKind::KeyLost,
            FailureKind::PayloadRejected => v1::FailureKind::PayloadRejected,
            FailureKind::Upstream => v1::FailureKind::Upstream,
            FailureKind::NotServed => v1::FailureKind::NotServed,
            FailureKind::NoCurrentValue => v1::FailureKind::NoCurrentValue,
            FailureKind::Other => v1::FailureKind::Other,
        }
    }

    /// From the wire; an unspecified or unknown kind is read from `reason`.
    pub fn from_proto(kind: i32, reason: &str) -> FailureKind {
        match v1::FailureKind::try_from(kind) {
            Ok(v1::FailureKind::KeyLost) => FailureKind::KeyLost,
            Ok(v1::FailureKind::PayloadRejected) => FailureKind::PayloadRejected,
            Ok(v1::FailureKind::Upstream) => FailureKind::Upstream,
            Ok(v1::FailureKind::NotServed) => FailureKind::NotServed,
            Ok(v1::FailureKind::NoCurrentValue) => FailureKind::NoCurrentValue,
            Ok(v1::FailureKind::Other) => FailureKind::Other,
            Ok(v1::FailureKind::Unspecified) | Err(_) => FailureKind::of_legacy_reason(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_wire() {
        for kind in [
            FailureKind::KeyLost,
            FailureKind::PayloadRejected,
            FailureKind::Upstream,
            FailureKind::NotServed,
            FailureKind::NoCurrentValue,
            FailureKind::Other,
        ] {
            assert_eq!(FailureKind::from_proto(kind.to_proto() as i32, ""), kind);
        }
    }

    #[test]
    fn a_failure_without_a_kind_is_read_from_its_reason() {
        let lost = "one-time key lost: the reactor restarted after issuing the key";
        assert_eq!(FailureKind::from_proto(0, lost), FailureKind::KeyLost);
        assert_eq!(FailureKind::from_proto(99, lost), FailureKind::KeyLost);
        assert_eq!(
            FailureKind::from_proto(0, "the upstream store refused"),
            FailureKind::Other
        );
        assert!(FailureKind::KeyLost.retry_with_new_request());
        assert!(!FailureKind::Upstream.retry_with_new_request());
    }

    #[test]
    fn purposes_survive_the_wire_and_the_log() {
        for p in [
            Purpose::Put { adopt: false },
            Purpose::Put { adopt: true },
            Purpose::Verify,
        ] {
            let (wire, adopt) = p.to_proto();
            assert_eq!(Purpose::from_proto(wire as i32, adopt), Some(p));
        }
        assert_eq!(Purpose::from_proto(0, false), None);
        // The stored form, as logs written since the first release hold it.
        let stored: Purpose = serde_json::from_str(r#"{"kind":"put"}"#).unwrap();
        assert_eq!(stored, Purpose::Put { adopt: false });
        assert_eq!(
            serde_json::to_string(&Purpose::Verify).unwrap(),
            r#"{"kind":"verify"}"#
        );
    }
}
