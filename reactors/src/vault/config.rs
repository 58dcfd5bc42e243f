//! `VaultConfig`: one Vault/OpenBao store's table in the reactor's config.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::VaultStore;
use crate::security::{Finding, exposed};
use crate::stores::{OpenError, StoreKind};
use crate::upstream::{RetryPolicy, UpstreamError, UpstreamStore, authority_ok, retry};

/// A Vault/OpenBao KV store: where it is, which mount, how to log in.
///
/// ```toml
/// [stores.vault-prod]
/// kind = "vault"                      # read by the reactor's store enum, not here
/// address = "https://vault.example.com:8200"
/// mount = "secret"                    # default "secret"
/// kv_version = 2                      # 1 or 2, default 2
/// namespace = "team-a"                # optional (Vault Enterprise / OpenBao namespaces)
/// ca_file = "/etc/sealplane/vault-ca.pem"   # optional PEM bundle for https
/// request_timeout_seconds = 10        # default 10
/// # exactly one of: token_file, token_env, [stores.NAME.approle]
/// [stores.vault-prod.approle]
/// mount = "approle"                   # default "approle"
/// role_id = "8f0c…"
/// secret_id_file = "/etc/sealplane/vault-secret-id"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `http://` or `https://` address of the server.
    pub address: String,
    /// Path of the KV secrets engine.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The KV engine version of the mount.
    #[serde(default)]
    pub kv_version: KvVersion,
    /// Namespace sent as `X-Vault-Namespace`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM file of the CA certificates to trust for `https` (besides the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A file holding a Vault token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding a Vault token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// AppRole login instead of a token.
    #[serde(default)]
    pub approle: Option<AppRoleConfig>,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_seconds: u64,
}

/// `[stores.NAME.approle]`: log in with a role id and a secret id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleConfig {
    /// Path of the AppRole auth method.
    #[serde(default = "default_approle_mount")]
    pub mount: String,
    /// The role id (not secret on its own).
    pub role_id: String,
    /// A file holding the secret id; read at every login, so it can be rotated.
    pub secret_id_file: PathBuf,
}

/// The KV secrets engine version: 1 (no versions, no metadata) or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "i64")]
pub enum KvVersion {
    /// KV v1.
    V1,
    /// KV v2 (versioned, with metadata and check-and-set).
    #[default]
    V2,
}

impl TryFrom<i64> for KvVersion {
    type Error = String;

    fn try_from(n: i64) -> Result<Self, String> {
        match n {
            1 => Ok(KvVersion::V1),
            2 => Ok(KvVersion::V2),
            other => Err(format!(
                "kv_version must be 1 or 2 (the version of the KV secrets engine at `mount`), not {other}"
            )),
        }
    }
}

/// How the store authenticates, once the config is checked.
#[derive(Debug, Clone)]
pub(crate) enum AuthMethod {
    /// A token read from a file.
    TokenFile(PathBuf),
    /// A token read from an environment variable.
    TokenEnv(String),
    /// An AppRole login.
    AppRole(AppRoleConfig),
}

fn default_mount() -> String {
    "secret".to_owned()
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

fn default_timeout() -> u64 {
    10
}

/// A mount or namespace path: `/`-separated `[A-Za-z0-9._-]` segments.
fn plain_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

impl VaultConfig {
    /// Checks the fields that serde cannot: the address, the paths, exactly one auth method.
    pub fn check(&self) -> Result<(), UpstreamError> {
        let problem = |field, problem: &str| {
            Err(UpstreamError::Config {
                field,
                problem: problem.to_owned(),
            })
        };
        let address = self.address.trim_end_matches('/');
        let Some(host) = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"))
        else {
            return problem(
                "address",
                "must start with http:// or https:// (e.g. https://vault.example.com:8200)",
            );
        };
        if !authority_ok(host) {
            return problem(
                "address",
                "must be a bare server address without a path (e.g. https://vault.example.com:8200)",
            );
        }
        if !plain_path(self.mount.trim_matches('/')) {
            return problem(
                "mount",
                "must be a mount path of letters, digits, `.`, `_`, `-` and `/` (e.g. \"secret\")",
            );
        }
        if let Some(ns) = &self.namespace
            && !plain_path(ns.trim_matches('/'))
        {
            return problem(
                "namespace",
                "must be a namespace path of letters, digits, `.`, `_`, `-` and `/`",
            );
        }
        if self.request_timeout_seconds == 0 {
            return problem("request_timeout_seconds", "must be at least 1");
        }
        if let Some(approle) = &self.approle {
            if !plain_path(approle.mount.trim_matches('/')) {
                return problem(
                    "approle.mount",
                    "must be an auth mount path of letters, digits, `.`, `_`, `-` and `/`",
                );
            }
            if approle.role_id.trim().is_empty() {
                return problem("approle.role_id", "is empty: give the AppRole's role id");
            }
        }
        let methods = [
            self.token_file.is_some(),
            self.token_env.is_some(),
            self.approle.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        match methods {
            1 => Ok(()),
            0 => problem(
                "token_file",
                "is missing: give exactly one way to log in: `token_file`, `token_env` or an `approle` table",
            ),
            _ => problem(
                "token_file",
                "conflicts: `token_file`, `token_env` and `approle` are alternatives; give exactly one",
            ),
        }
    }

    /// Makes relative file paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for path in [
            self.ca_file.as_mut(),
            self.token_file.as_mut(),
            self.approle.as_mut().map(|a| &mut a.secret_id_file),
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// The address without a trailing `/`.
    pub(crate) fn endpoint(&self) -> &str {
        self.address.trim_end_matches('/')
    }

    /// The mount without leading or trailing `/`.
    pub(crate) fn mount_path(&self) -> &str {
        self.mount.trim_matches('/')
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// The auth method; call after [`VaultConfig::check`].
    pub(crate) fn auth(&self) -> AuthMethod {
        match (&self.token_file, &self.token_env, &self.approle) {
            (Some(file), _, _) => AuthMethod::TokenFile(file.clone()),
            (_, Some(var), _) => AuthMethod::TokenEnv(var.clone()),
            (_, _, Some(approle)) => AuthMethod::AppRole(approle.clone()),
            (None, None, None) => unreachable!("check() requires one auth method"),
        }
    }
}

#[async_trait::async_trait]
impl StoreKind for VaultConfig {
    fn check(&self) -> Result<(), String> {
        VaultConfig::check(self).map_err(|e| e.to_string())
    }

    fn resolve_paths(&mut self, base: &Path) {
        VaultConfig::resolve_paths(self, base);
    }

    async fn open(&self, _name: &str) -> Result<Arc<dyn UpstreamStore>, OpenError> {
        let store = retry(&RetryPolicy::default(), || VaultStore::connect(self)).await?;
        Ok(Arc::new(store))
    }

    fn insecurities(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        if let Some(path) = &self.token_file {
            found.extend(exposed(path, "Vault token file"));
        }
        if let Some(approle) = &self.approle {
            found.extend(exposed(&approle.secret_id_file, "AppRole secret id file"));
        }
        if self.address.starts_with("http://") {
            found.push(format!(
                "Vault at {} is reached without TLS: use https",
                self.address
            ));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VaultConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_approle() {
        let c = parse(
            r#"
            address = "https://vault:8200"
            [approle]
            role_id = "r"
            secret_id_file = "sid"
            "#,
        )
        .unwrap();
        c.check().unwrap();
        assert_eq!(c.mount, "secret");
        assert_eq!(c.kv_version, KvVersion::V2);
        assert_eq!(c.request_timeout_seconds, 10);
        assert_eq!(c.approle.as_ref().unwrap().mount, "approle");
    }

    #[test]
    fn refuses_kv_version_3_and_unknown_fields() {
        let e = parse("address = \"http://a\"\ntoken_env = \"T\"\nkv_version = 3").unwrap_err();
        assert!(e.contains("kv_version must be 1 or 2"), "{e}");
        let e = parse("address = \"http://a\"\ntoken_env = \"T\"\nkind = \"vault\"").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn requires_exactly_one_auth_method() {
        let none = parse("address = \"http://a\"").unwrap();
        assert!(
            none.check()
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        let two = parse("address = \"http://a\"\ntoken_env = \"T\"\ntoken_file = \"f\"").unwrap();
        assert!(two.check().unwrap_err().to_string().contains("exactly one"));
    }

    #[test]
    fn refuses_bad_addresses_and_mounts() {
        let bad = parse("address = \"vault:8200\"\ntoken_env = \"T\"").unwrap();
        assert!(bad.check().unwrap_err().to_string().contains("http://"));
        for bad in [
            "http://a b",
            "http://a:99999",
            "http://a/v1",
            "https://",
            "http://[zz]",
        ] {
            let c = parse(&format!("address = {bad:?}\ntoken_env = \"T\"")).unwrap();
            assert!(c.check().is_err(), "{bad}");
        }
        for good in [
            "http://127.0.0.1:8200",
            "https://vault.example.com/",
            "http://[::1]:8200",
        ] {
            let c = parse(&format!("address = {good:?}\ntoken_env = \"T\"")).unwrap();
            c.check().unwrap();
        }
        let bad = parse("address = \"http://a\"\ntoken_env = \"T\"\nmount = \"../x\"").unwrap();
        assert!(bad.check().unwrap_err().to_string().contains("mount"));
    }

    #[test]
    fn resolves_relative_paths() {
        let mut c = parse(
            "address = \"http://a\"\nca_file = \"ca.pem\"\n[approle]\nrole_id = \"r\"\nsecret_id_file = \"/abs/sid\"",
        )
        .unwrap();
        c.resolve_paths(Path::new("/etc/sp"));
        assert_eq!(c.ca_file.unwrap(), Path::new("/etc/sp/ca.pem"));
        assert_eq!(c.approle.unwrap().secret_id_file, Path::new("/abs/sid"));
    }
}
