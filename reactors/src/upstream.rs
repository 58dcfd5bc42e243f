//! The upstream store adapter trait (SPEC §5): every store kind (file,
//! Vault/OpenBao, AWS Secrets Manager) is one type implementing
//! [`UpstreamStore`], so adding a store is one file.
//!
//! Values cross this trait only as [`SecretValue`] (zeroizing, redacted
//! `Debug`), and no error carries value bytes: errors travel into events and
//! logs (SPEC §1.1).

use std::io;

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
    /// A cryptographic operation failed for a reason other than tampering.
    #[error("a cryptographic operation failed ({0}); nothing was written")]
    Crypto(&'static str),
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
}
