//! The upstream store adapter trait (SPEC §5): every store kind (file,
//! Vault/OpenBao, AWS Secrets Manager) is one type implementing
//! [`UpstreamStore`], so adding a store is one file.
//!
//! Values cross this trait only as [`SecretValue`] (zeroizing, redacted
//! `Debug`), and no error carries value bytes: errors travel into events and
//! logs (SPEC §1.1).

use std::future::Future;
use std::io;
use std::time::Duration;

use sealplane_proto::sealed::SecretValue;
use uuid::Uuid;

/// What the reactor knows about a write, recorded with the version upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMeta {
    /// The secret uri (`<store>://<path>`) the upload request named.
    pub uri: String,
    /// The upload request this write serves, so a version traces back to the log.
    pub request_id: Uuid,
    /// Take over an existing secret Sealplane did not write (`--adopt`).
    pub adopt: bool,
}

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The version now current upstream (the existing one when unchanged).
    pub version: u64,
    /// Where the version lives, in the store's own terms (for events and humans).
    pub upstream_ref: String,
    /// Whether a new version was written (`false`: the value was already current).
    pub changed: bool,
}

/// Why an upstream operation failed; no variant carries value bytes.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The secret exists upstream but Sealplane did not write it.
    #[error(
        "the secret at {path:?} exists upstream but was not written by Sealplane; it was left untouched: adopt it explicitly (--adopt) to let Sealplane manage it"
    )]
    NotManaged {
        /// The secret path.
        path: String,
    },
    /// No secret at this path.
    #[error("there is no secret at {path:?}")]
    NotFound {
        /// The secret path.
        path: String,
    },
    /// A secret path the store refuses (traversal, bad characters, too long).
    #[error("secret path {path:?} is not allowed: {reason}")]
    InvalidPath {
        /// The refused path.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The store's I/O failed (file system, network).
    #[error("{op} {target}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// What it was done to (a file, a directory, an endpoint).
        target: String,
        /// The underlying error (never holds value bytes).
        #[source]
        source: io::Error,
    },
    /// Stored data failed authentication: modified, moved, or under another key.
    #[error(
        "the stored secret at {path:?} failed authentication: it was modified, moved from another path or version, or written under another master key; it was not used"
    )]
    Tampered {
        /// The secret path.
        path: String,
    },
    /// The store's authenticated record of the newest version disagrees
    /// with the files: a newer version was removed, or the deletion marker
    /// was edited. No older version is served in its place.
    #[error(
        "the stored secret at {path:?} is not in the state the store recorded: {reason}; it was not used: restore the directory from a backup, or destroy the secret and write it again"
    )]
    RolledBack {
        /// The secret path.
        path: String,
        /// What disagrees.
        reason: &'static str,
    },
    /// A cryptographic operation failed for a reason other than tampering.
    #[error("a cryptographic operation failed ({0}); nothing was written")]
    Crypto(&'static str),
    /// The store could not be reached or did not answer in time (transient).
    #[error(
        "the upstream store at {endpoint} is unreachable ({reason}); check that it is running and reachable from the reactor (address, firewall, DNS); the failure is transient, so retrying later can succeed"
    )]
    Unavailable {
        /// The store's address.
        endpoint: String,
        /// What the transport reported (never request or response bodies).
        reason: String,
    },
    /// The TLS handshake failed: an untrusted or mismatched server certificate.
    #[error(
        "the TLS handshake with the upstream store at {endpoint} failed ({reason}); set `ca_file` to the CA that signed the server's certificate and check that the address's host name is in that certificate"
    )]
    Tls {
        /// The store's address.
        endpoint: String,
        /// What the TLS layer reported.
        reason: String,
    },
    /// The Vault/OpenBao server is sealed (transient: it serves again once unsealed).
    #[error(
        "the Vault/OpenBao server at {endpoint} is sealed; an operator must unseal it (`bao operator unseal` or `vault operator unseal`), then the operation can be retried"
    )]
    Sealed {
        /// The server's address.
        endpoint: String,
    },
    /// The store's access policy refused the operation.
    #[error(
        "the upstream store refused to {operation} {path:?}: permission denied; grant the reactor's token or role a policy allowing it ({hint}), or check that the token has not expired or been revoked"
    )]
    PermissionDenied {
        /// The secret path (or the auth endpoint for a login).
        path: String,
        /// What was being done (`read`, `write`, `delete`, `log in at`).
        operation: &'static str,
        /// The capabilities and policy paths the operation needs.
        hint: String,
    },
    /// No secrets engine is mounted where the store's config says.
    #[error(
        "there is no secrets engine mounted at {mount:?} on the upstream store; enable one (`bao secrets enable -path={mount} kv-v2`) or fix `mount` in the reactor's store config"
    )]
    MountMissing {
        /// The configured mount path.
        mount: String,
    },
    /// Check-and-set failed: another writer changed the secret meanwhile.
    #[error(
        "the secret at {path:?} changed upstream while Sealplane was writing it (check-and-set failed); nothing was overwritten; look at who else writes this path, then upload again"
    )]
    Conflict {
        /// The secret path.
        path: String,
    },
    /// The store answered with an error status the adapter has no better name for.
    #[error("the upstream store refused to {operation} {path:?}: HTTP {status}{message}")]
    Rejected {
        /// The secret path.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The store's own error text, prefixed with `: ` (empty when withheld or absent).
        message: String,
    },
    /// The store answered with something the adapter cannot read.
    #[error(
        "the upstream store answered a request to {operation} {path:?} with a response Sealplane cannot read ({what}); check that the store's address points at the right server and its config (e.g. kv_version) matches the mount"
    )]
    Protocol {
        /// The secret path.
        path: String,
        /// What was being done.
        operation: &'static str,
        /// What was wrong with the response.
        what: &'static str,
    },
    /// The upstream secret holds data Sealplane cannot represent as a value.
    #[error(
        "the secret at {path:?} holds data Sealplane cannot read ({reason}); it was left untouched"
    )]
    Unreadable {
        /// The secret path.
        path: String,
        /// What is wrong with it (never the data itself).
        reason: String,
    },
    /// The store's configuration is unusable (found when opening the store).
    #[error("store config field `{field}` {problem}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Logging in to the store failed (bad credentials, disabled auth method).
    #[error("logging in to the upstream store at {endpoint} failed: {reason}")]
    Login {
        /// The store's address.
        endpoint: String,
        /// Why, and what to check.
        reason: String,
    },
}

impl UpstreamError {
    /// Whether retrying the same operation later may succeed (network, sealed, 5xx, timeouts).
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::Unavailable { .. } | UpstreamError::Sealed { .. } => true,
            UpstreamError::Rejected { status, .. } => *status == 429 || *status >= 500,
            UpstreamError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

/// How often and how patiently [`retry`] repeats a transiently failing operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub attempts: u32,
    /// The pause after the first failure; it doubles after each further one.
    pub first_delay: Duration,
    /// The longest pause between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, pauses of 200 ms, 400 ms, 800 ms, 1.6 s (capped at 3 s): about 3 s in all.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// The pauses this policy makes between attempts, starting afresh.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.first_delay,
            max: self.max_delay,
            next: self.first_delay,
        }
    }
}

/// The pauses of a [`RetryPolicy`]: `first_delay`, doubling after each
/// failure up to `max_delay`; [`Backoff::reset`] after a success. The one
/// backoff of the reactor, for upstream calls, the feed and reports alike.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The pause before the next attempt; the one after it is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next.min(self.max);
        self.next = now.saturating_mul(2).min(self.max);
        now
    }

    /// Back to the first pause (the operation succeeded).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or the attempts are spent;
/// returns the last error.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut op: F) -> Result<T, UpstreamError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let mut backoff = policy.backoff();
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < policy.attempts => {
                tokio::time::sleep(backoff.next_delay()).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// One upstream store; implementations keep plaintext in memory only.
#[async_trait::async_trait]
pub trait UpstreamStore: Send + Sync {
    /// Writes a new version unless the stored value is identical (then returns the existing version, `changed: false`).
    async fn put(
        &self,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError>;

    /// The current value, for `verify` (compare inside the reactor only).
    async fn get(&self, path: &str) -> Result<Option<SecretValue>, UpstreamError>;

    /// Soft delete (latest version) or destroy (all versions and metadata).
    async fn delete(&self, path: &str, destroy: bool) -> Result<(), UpstreamError>;

    /// Whether the store answers now, by the cheapest call that needs its
    /// credentials and reads no value (for the reactor's readiness).
    async fn probe(&self) -> Result<(), UpstreamError>;
}

/// Longest secret path in bytes, and the rule for one segment (SPEC §3),
/// as the contract crate defines them.
pub use sealplane_proto::names::{
    MAX_SECRET_PATH_BYTES as MAX_PATH_LEN, segment_problem as path_segment_problem,
};

/// Checks a secret path against SPEC §3: `/`-separated `[A-Za-z0-9._-]+`
/// segments, no `.`/`..`, at most 512 bytes; `segment_problem` is each
/// store's rule for one segment (at least [`path_segment_problem`]).
pub fn check_path(
    path: &str,
    segment_problem: impl Fn(&str) -> Option<&'static str>,
) -> Result<(), UpstreamError> {
    let invalid = |reason| UpstreamError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.len() > MAX_PATH_LEN {
        return Err(invalid("it is longer than 512 bytes"));
    }
    match path.split('/').find_map(segment_problem) {
        Some(reason) => Err(invalid(reason)),
        None => Ok(()),
    }
}

/// A server address after its `http://` or `https://`: `host[:port]` or
/// `[ipv6][:port]`, no path (what the URL parsers behind the store clients
/// accept without panicking).
pub(crate) fn authority_ok(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port))
                if !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') =>
            {
                (None, port)
            }
            _ => return false,
        },
        None => match authority.split_once(':') {
            Some((host, _)) => (Some(host), &authority[host.len()..]),
            None => (Some(authority), ""),
        },
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    });
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    host_ok && port_ok
}

/// Longest store message kept in an error, in characters.
pub(crate) const MAX_STORE_MESSAGE_CHARS: usize = 300;

/// A store's own message, fit for an error: cut to
/// [`MAX_STORE_MESSAGE_CHARS`], or `None` when it contains any of
/// `sensitive` (it might quote the value).
pub(crate) fn store_message<'a>(
    text: &str,
    sensitive: impl IntoIterator<Item = &'a [u8]>,
) -> Option<String> {
    let leaks = sensitive
        .into_iter()
        .any(|s| !s.is_empty() && text.as_bytes().windows(s.len()).any(|w| w == s));
    if leaks {
        return None;
    }
    let mut short: String = text.chars().take(MAX_STORE_MESSAGE_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    Some(short)
}

/// A request that got no answer: [`UpstreamError::Tls`] when its error
/// `chain` speaks of certificates, TLS or a handshake, else
/// [`UpstreamError::Unavailable`].
pub(crate) fn no_answer(endpoint: &str, reason: String, chain: &[String]) -> UpstreamError {
    let tls = chain.iter().any(|m| {
        let m = m.to_lowercase();
        m.contains("certificate") || m.contains("tls") || m.contains("handshake")
    });
    let endpoint = endpoint.to_owned();
    if tls {
        UpstreamError::Tls { endpoint, reason }
    } else {
        UpstreamError::Unavailable { endpoint, reason }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    fn down() -> UpstreamError {
        UpstreamError::Unavailable {
            endpoint: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        }
    }

    #[test]
    fn the_default_backoff_doubles_from_200_ms_up_to_3_s_and_resets() {
        let mut b = RetryPolicy::default().backoff();
        let seq: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seq, [200, 400, 800, 1600, 3000, 3000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn retries_transient_errors_until_the_attempts_are_spent() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(&quick(4), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(down())
        })
        .await;
        assert!(matches!(result, Err(UpstreamError::Unavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn stops_at_the_first_success() {
        let calls = AtomicU32::new(0);
        let result = retry(&quick(5), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(down())
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_a_permanent_error() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = retry(&quick(5), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(UpstreamError::Conflict { path: "a".into() })
        })
        .await;
        assert!(matches!(result, Err(UpstreamError::Conflict { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn transience_follows_the_status() {
        let rejected = |status| UpstreamError::Rejected {
            path: "a".into(),
            operation: "write",
            status,
            message: String::new(),
        };
        assert!(rejected(502).is_transient());
        assert!(rejected(429).is_transient());
        assert!(!rejected(400).is_transient());
        assert!(down().is_transient());
        assert!(
            UpstreamError::Sealed {
                endpoint: "x".into()
            }
            .is_transient()
        );
        assert!(!UpstreamError::MountMissing { mount: "kv".into() }.is_transient());
    }

    #[test]
    fn server_addresses_are_a_bare_host_and_port() {
        for ok in ["vault:8200", "127.0.0.1", "[::1]:8200", "a-b.example.com"] {
            assert!(authority_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "vault:8200/v1",
            "vault:+80",
            "vault:99999",
            "[::1",
            "ho st",
            "vault:",
        ] {
            assert!(!authority_ok(bad), "{bad}");
        }
    }

    #[test]
    fn store_messages_are_cut_or_withheld_when_they_quote_a_sensitive_string() {
        let long = "x".repeat(MAX_STORE_MESSAGE_CHARS + 5);
        let cut = store_message(&long, []).unwrap();
        assert_eq!(cut.chars().count(), MAX_STORE_MESSAGE_CHARS + 1);
        assert_eq!(
            store_message("denied near hunter2", [b"hunter2".as_slice()]),
            None
        );
        assert_eq!(
            store_message("denied", [b"".as_slice()]).as_deref(),
            Some("denied")
        );
        let tls = no_answer("e", "r".into(), &["invalid peer certificate".into()]);
        assert!(matches!(tls, UpstreamError::Tls { .. }));
        let down = no_answer("e", "r".into(), &["connection refused".into()]);
        assert!(matches!(down, UpstreamError::Unavailable { .. }) && down.is_transient());
    }
}
