//! The `vault` store (SPEC §5): HashiCorp Vault or OpenBao, KV v2 (default)
//! or KV v1, through vaultrs; token or AppRole auth (`session`).
//!
//! Values: a [`SecretValue`] is the secret's KV data map, one entry per key;
//! UTF-8 values as they are, other bytes as base64 listed under the reserved
//! key `sealplane:base64-keys` (see `kv_data`). Reserved keys contain `:`,
//! which no value key may, and are stripped on read.
//!
//! Management, KV v2: the secret's `custom_metadata` holds
//! `managed-by=sealplane`, `sealplane-uri` and `sealplane-request-id` (of
//! the last upload that wrote a version); other custom metadata is kept.
//! A secret without `managed-by=sealplane` is refused
//! ([`UpstreamError::NotManaged`]) unless the write says `adopt`. Writes use
//! check-and-set with the current version read from the metadata (`cas=0`
//! for a new secret), so a concurrent writer makes the write fail as
//! [`UpstreamError::Conflict`] instead of being overwritten. Metadata and
//! data are two requests: a secret not yet marked is marked first (so a
//! crash in between never leaves Sealplane's own version unmarked), a marked
//! one gets its new uri/request id after the data.
//!
//! Management, KV v1 (no metadata, no versions, no check-and-set): the marks
//! are reserved keys in the data map itself (`sealplane:managed-by`,
//! `sealplane:uri`, `sealplane:request-id`) and `sealplane:version` counts
//! Sealplane's writes, the version reported. Adoption works as with KV v2.
//! KV v1 cannot detect a concurrent writer: between Sealplane's read and
//! write, another writer's value is overwritten. Use KV v2 where that matters.
//!
//! A write of the value already current creates no version: both values are
//! compared in memory by SHA-256 digest of their canonical encoding, the
//! digests in constant time, and nothing about them is logged.
//!
//! Delete: KV v2 soft-deletes the latest version (`destroy`: all versions
//! and the metadata); KV v1 deletes the secret either way (it keeps no
//! history). Both refuse a secret Sealplane does not manage.
//!
//! Plaintext: no error carries value bytes; vaultrs errors are mapped in
//! `errors` without ever being formatted (some carry response bodies).
//! Sealplane zeroizes its own copies of a value; the HTTP stack under
//! vaultrs (serde_json values, request and response buffers) frees its
//! copies without zeroizing them, which no adapter built on it can change.

mod config;
mod errors;
mod kv_data;
mod kv_v1;
mod kv_v2;
mod session;

use std::future::Future;
use std::sync::Arc;

use sealplane_proto::sealed::SecretValue;
use serde_json::Value;
use vaultrs::client::VaultClient;

pub use self::config::{AppRoleConfig, KvVersion, VaultConfig};
use self::errors::Call;
pub use self::kv_data::{BASE64_KEYS, V1_MANAGED_BY, V1_REQUEST_ID, V1_URI, V1_VERSION};
use self::session::Session;
use crate::upstream::{UpstreamError, UpstreamStore, WriteMeta, Written};

/// The `managed-by` mark (KV v2 custom metadata, KV v1 reserved key).
pub const MANAGED_BY: &str = "sealplane";

/// KV v2 custom metadata keys Sealplane writes.
pub const META_MANAGED_BY: &str = "managed-by";
/// The uri of the last upload that wrote a version.
pub const META_URI: &str = "sealplane-uri";
/// The request id of the last upload that wrote a version.
pub const META_REQUEST_ID: &str = "sealplane-request-id";

pub use crate::upstream::MAX_PATH_LEN;

/// A Vault/OpenBao KV store.
pub struct VaultStore {
    endpoint: String,
    mount: String,
    kv: KvVersion,
    session: Session,
}

impl std::fmt::Debug for VaultStore {
    // Not derived: the vaultrs client's settings print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("endpoint", &self.endpoint)
            .field("mount", &self.mount)
            .field("kv", &self.kv)
            .finish_non_exhaustive()
    }
}

/// Checks a secret path: `/`-separated `[A-Za-z0-9._-]+` segments, no `.`/`..`, ≤512 bytes.
pub fn validate_path(path: &str) -> Result<(), UpstreamError> {
    crate::upstream::check_path(path, crate::upstream::path_segment_problem)
}

impl VaultStore {
    /// Logs in (AppRole) or checks the token (lookup-self), and checks that
    /// the mount is a KV engine of the configured version when the token may see that.
    pub async fn connect(config: &VaultConfig) -> Result<VaultStore, UpstreamError> {
        // vaultrs is built without a rustls provider; ring is the tree's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        config.check()?;
        let store = VaultStore {
            endpoint: config.endpoint().to_owned(),
            mount: config.mount_path().to_owned(),
            kv: config.kv_version,
            session: Session::start(config).await?,
        };
        store.check_mount(config).await?;
        Ok(store)
    }

    /// AppRole logins so far (a test and metrics hook).
    pub fn logins(&self) -> u64 {
        self.session.logins()
    }

    /// Successful token renewals so far.
    pub fn renewals(&self) -> u64 {
        self.session.renewals()
    }

    /// The current token's accessor (not a credential).
    pub async fn token_accessor(&self) -> String {
        self.session.accessor().await
    }

    /// Where a version lives, as a Vault API path.
    fn upstream_ref(&self, path: &str, version: u64) -> String {
        match self.kv {
            KvVersion::V2 => format!("{}/data/{path}?version={version}", self.mount),
            KvVersion::V1 => format!("{}/{path}", self.mount),
        }
    }

    /// The policy a path needs, for permission errors.
    fn needs(&self, path: &str) -> String {
        match self.kv {
            KvVersion::V2 => format!(
                "capabilities create, read, update, delete on \"{m}/data/{path}\" and \"{m}/metadata/{path}\"",
                m = self.mount
            ),
            KvVersion::V1 => format!(
                "capabilities create, read, update, delete on \"{}/{path}\"",
                self.mount
            ),
        }
    }

    fn call<'a>(
        &'a self,
        path: &'a str,
        operation: &'static str,
        needs: &'a str,
        sensitive: &'a [&'a [u8]],
    ) -> Call<'a> {
        Call {
            endpoint: &self.endpoint,
            mount: &self.mount,
            path,
            operation,
            needs,
            sensitive,
        }
    }

    /// Runs `op` with a current token; after a permission error, once more
    /// with a fresh login (an AppRole token may have expired meanwhile).
    async fn authorized<T, F, Fut>(&self, op: F) -> Result<T, UpstreamError>
    where
        F: Fn(Arc<VaultClient>) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let client = self.session.client().await?;
        let result = op(Arc::clone(&client)).await;
        if matches!(result, Err(UpstreamError::PermissionDenied { .. }))
            && self.session.relogin_after_denial(&client).await?
        {
            return op(self.session.client().await?).await;
        }
        result
    }

    /// Refuses a mount that is not a KV engine of the configured version.
    /// Best effort: tokens that may not see `sys/internal/ui/mounts` skip it.
    async fn check_mount(&self, config: &VaultConfig) -> Result<(), UpstreamError> {
        let client = self.session.client().await?;
        let url = format!("{}/v1/sys/internal/ui/mounts/{}", self.endpoint, self.mount);
        let mut request = client
            .http
            .http
            .get(url)
            .header("X-Vault-Request", "true")
            .header("X-Vault-Token", client.settings.token.as_str());
        if let Some(ns) = &client.settings.namespace {
            request = request.header("X-Vault-Namespace", ns.as_str());
        }
        let Ok(response) = request.send().await else {
            return Ok(());
        };
        if response.status().as_u16() != 200 {
            return Ok(());
        }
        let Ok(body) = response.bytes().await else {
            return Ok(());
        };
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            return Ok(());
        };
        let kind = json.pointer("/data/type").and_then(Value::as_str);
        let version = json
            .pointer("/data/options/version")
            .and_then(Value::as_str);
        let actual = match (kind, version) {
            (Some("kv" | "generic"), Some("2")) => KvVersion::V2,
            (Some("kv" | "generic"), _) => KvVersion::V1,
            (Some(other), _) => {
                return Err(UpstreamError::Config {
                    field: "mount",
                    problem: format!(
                        "names {:?}, a `{other}` secrets engine, not KV: point `mount` at a KV engine",
                        config.mount
                    ),
                });
            }
            (None, _) => return Ok(()),
        };
        if actual != self.kv {
            let n = |v| if v == KvVersion::V2 { 2 } else { 1 };
            return Err(UpstreamError::Config {
                field: "kv_version",
                problem: format!(
                    "is {} but the mount {:?} is a KV version {} engine: set `kv_version = {}`",
                    n(self.kv),
                    self.mount,
                    n(actual),
                    n(actual)
                ),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl UpstreamStore for VaultStore {
    async fn put(
        &self,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError> {
        validate_path(path)?;
        self.authorized(|client| async move {
            match self.kv {
                KvVersion::V2 => self.v2_put(client, path, value, meta).await,
                KvVersion::V1 => self.v1_put(client, path, value, meta).await,
            }
        })
        .await
    }

    async fn probe(&self) -> Result<(), UpstreamError> {
        self.authorized(|client| async move {
            vaultrs::token::lookup_self(&*client)
                .await
                .map(|_| ())
                .map_err(|e| self.call("", "look up its token at", "", &[]).error(e))
        })
        .await
    }

    async fn get(&self, path: &str) -> Result<Option<SecretValue>, UpstreamError> {
        validate_path(path)?;
        self.authorized(|client| async move {
            match self.kv {
                KvVersion::V2 => self.v2_get(client, path).await,
                KvVersion::V1 => self.v1_get(client, path).await,
            }
        })
        .await
    }

    async fn delete(&self, path: &str, destroy: bool) -> Result<(), UpstreamError> {
        validate_path(path)?;
        self.authorized(|client| async move {
            match self.kv {
                KvVersion::V2 => self.v2_delete(client, path, destroy).await,
                KvVersion::V1 => self.v1_delete(client, path, destroy).await,
            }
        })
        .await
    }
}
