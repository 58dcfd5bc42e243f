//! `AwsSecretsManagerConfig`: one AWS Secrets Manager store's table in the
//! reactor's config.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::AwsSecretsManagerStore;
use crate::security::{Finding, exposed};
use crate::stores::{OpenError, StoreKind};
use crate::upstream::{RetryPolicy, UpstreamError, UpstreamStore, authority_ok, retry};

/// The longest secret name AWS accepts, in characters.
pub const MAX_NAME_LEN: usize = 512;

/// An AWS Secrets Manager store: which region (or emulator), which
/// credentials, how secret names are formed, how deletes behave.
///
/// ```toml
/// [stores.aws-prod]
/// kind = "aws-secrets-manager"        # read by the reactor's store enum, not here
/// region = "eu-west-1"
/// endpoint = "http://127.0.0.1:5000"  # optional: moto, LocalStack; default the region's AWS endpoint
/// access_key_id = "AKIA…"             # required: static credentials only (no SDK default chain)
/// secret_access_key_file = "/etc/sealplane/aws-secret-key"   # or secret_access_key_env = "VAR"
/// name_prefix = "sealplane/"          # optional, prepended to every secret name; default ""
/// recovery_window_days = 30           # soft delete: 7..=30, default 30
/// request_timeout_seconds = 10        # default 10
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSecretsManagerConfig {
    /// The AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// An `http://` or `https://` endpoint instead of the region's (an emulator).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The access key id of the reactor's IAM credentials (not secret on its own).
    pub access_key_id: String,
    /// A file holding the secret access key.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// An environment variable holding the secret access key.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// Prepended to each Sealplane path to form the secret's name.
    #[serde(default)]
    pub name_prefix: String,
    /// Days a soft-deleted secret can still be restored (AWS allows 7 to 30).
    #[serde(default = "default_recovery_window")]
    pub recovery_window_days: u8,
    /// Timeout of one request (connect included), in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_seconds: u64,
}

fn default_recovery_window() -> u8 {
    30
}

fn default_timeout() -> u64 {
    10
}

/// A secret name's characters, per AWS: letters, digits and `/_+=.@-`.
pub fn aws_name_chars_ok(name: &str) -> bool {
    name.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'=' | b'.' | b'@' | b'-')
    })
}

impl AwsSecretsManagerConfig {
    /// Checks the fields that serde cannot: region, endpoint, prefix, limits, one secret key source.
    pub fn check(&self) -> Result<(), UpstreamError> {
        let problem = |field, problem: &str| {
            Err(UpstreamError::Config {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return problem(
                "region",
                "must be an AWS region name of lowercase letters, digits and `-` (e.g. \"eu-west-1\")",
            );
        }
        if let Some(endpoint) = &self.endpoint {
            let bare = endpoint.trim_end_matches('/');
            let ok = bare
                .strip_prefix("https://")
                .or_else(|| bare.strip_prefix("http://"))
                .is_some_and(authority_ok);
            if !ok {
                return problem(
                    "endpoint",
                    "must be a bare http:// or https:// address without a path (e.g. http://127.0.0.1:5000)",
                );
            }
        }
        let key_id = self.access_key_id.trim();
        if key_id.is_empty() || !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return problem(
                "access_key_id",
                "must be the access key id of the reactor's IAM credentials (letters and digits, e.g. AKIA…)",
            );
        }
        if !aws_name_chars_ok(&self.name_prefix) || self.name_prefix.len() >= MAX_NAME_LEN {
            return problem(
                "name_prefix",
                "may hold only letters, digits and `/_+=.@-` (AWS secret name characters), and must leave room for the path within 512 characters",
            );
        }
        if !(7..=30).contains(&self.recovery_window_days) {
            return problem(
                "recovery_window_days",
                "must be between 7 and 30 (the days AWS keeps a deleted secret restorable)",
            );
        }
        if self.request_timeout_seconds == 0 {
            return problem("request_timeout_seconds", "must be at least 1");
        }
        match (&self.secret_access_key_file, &self.secret_access_key_env) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            (None, None) => problem(
                "secret_access_key_file",
                "is missing: give the secret access key in `secret_access_key_file` or `secret_access_key_env` (the SDK's default credential chain is not used)",
            ),
            (Some(_), Some(_)) => problem(
                "secret_access_key_file",
                "conflicts: `secret_access_key_file` and `secret_access_key_env` are alternatives; give exactly one",
            ),
        }
    }

    /// Makes relative file paths relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(path) = self.secret_access_key_file.as_mut()
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }

    /// The endpoint requests go to, for messages: the configured one or the region's.
    pub(crate) fn endpoint_for_messages(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => format!("https://secretsmanager.{}.amazonaws.com", self.region),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// Reads the secret access key from its file or variable; call after [`Self::check`].
    pub(crate) fn secret_access_key(&self) -> Result<Zeroizing<String>, UpstreamError> {
        let (field, key) = match (&self.secret_access_key_file, &self.secret_access_key_env) {
            (Some(file), _) => (
                "secret_access_key_file",
                crate::security::read_private_text(file, "secret access key file").map_err(
                    |e| UpstreamError::Config {
                        field: "secret_access_key_file",
                        problem: format!("cannot be used: {e}"),
                    },
                )?,
            ),
            (None, Some(var)) => (
                "secret_access_key_env",
                std::env::var(var)
                    .map(Zeroizing::new)
                    .map_err(|_| UpstreamError::Config {
                        field: "secret_access_key_env",
                        problem: format!(
                            "names the environment variable {var}, which is not set (or not UTF-8) in the reactor's environment"
                        ),
                    })?,
            ),
            (None, None) => unreachable!("check() requires a secret access key source"),
        };
        let trimmed = key.trim();
        if trimmed.is_empty() {
            return Err(UpstreamError::Config {
                field,
                problem: "holds an empty secret access key".to_owned(),
            });
        }
        Ok(Zeroizing::new(trimmed.to_owned()))
    }
}

#[async_trait::async_trait]
impl StoreKind for AwsSecretsManagerConfig {
    fn check(&self) -> Result<(), String> {
        AwsSecretsManagerConfig::check(self).map_err(|e| e.to_string())
    }

    fn resolve_paths(&mut self, base: &Path) {
        AwsSecretsManagerConfig::resolve_paths(self, base);
    }

    async fn open(&self, _name: &str) -> Result<Arc<dyn UpstreamStore>, OpenError> {
        let store = retry(&RetryPolicy::default(), || {
            AwsSecretsManagerStore::connect(self)
        })
        .await?;
        Ok(Arc::new(store))
    }

    fn insecurities(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        if let Some(path) = &self.secret_access_key_file {
            found.extend(exposed(path, "AWS secret access key file"));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AwsSecretsManagerConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    const MINIMAL: &str =
        "region = \"eu-west-1\"\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key_env = \"K\"\n";

    #[test]
    fn a_secret_access_key_file_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aws.secret");
        std::fs::write(&path, "aws-secret-key\n").unwrap();
        let c = parse(&format!(
            "region = \"eu-west-1\"\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key_file = \"{}\"\n",
            path.display()
        ))
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(c.secret_access_key().unwrap().as_str(), "aws-secret-key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = c.secret_access_key().unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        assert!(!e.contains("aws-secret-key"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        c.check().unwrap();
        assert_eq!(c.name_prefix, "");
        assert_eq!(c.recovery_window_days, 30);
        assert_eq!(c.request_timeout_seconds, 10);
        assert_eq!(
            c.endpoint_for_messages(),
            "https://secretsmanager.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn refuses_unknown_fields_including_kind() {
        let e = parse(&format!("{MINIMAL}kind = \"aws-secrets-manager\"")).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn refuses_bad_values() {
        for (extra, field) in [
            ("recovery_window_days = 6", "recovery_window_days"),
            ("recovery_window_days = 31", "recovery_window_days"),
            ("request_timeout_seconds = 0", "request_timeout_seconds"),
            ("name_prefix = \"a b/\"", "name_prefix"),
            ("endpoint = \"127.0.0.1:5000\"", "endpoint"),
            ("endpoint = \"http://a/path\"", "endpoint"),
            ("endpoint = \"http://a:99999\"", "endpoint"),
            ("secret_access_key_file = \"f\"", "secret_access_key_file"),
        ] {
            let c = parse(&format!("{MINIMAL}{extra}")).unwrap();
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains(field), "{extra}: {e}");
        }
        let c = parse("region = \"EU WEST\"\naccess_key_id = \"A\"\nsecret_access_key_env = \"K\"")
            .unwrap();
        assert!(c.check().unwrap_err().to_string().contains("region"));
        let c = parse("region = \"us-east-1\"\naccess_key_id = \"A\"").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("is missing"));
        for good in [
            "http://127.0.0.1:5000",
            "https://localstack.internal:4566/",
            "http://[::1]:5000",
        ] {
            let c = parse(&format!(
                "{MINIMAL}endpoint = {good:?}\nname_prefix = \"team+a/x@y=z_\""
            ))
            .unwrap();
            c.check().unwrap();
        }
    }

    #[test]
    fn reads_the_secret_key_from_a_file_or_variable_and_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = parse(
            "region = \"us-east-1\"\naccess_key_id = \"A\"\nsecret_access_key_file = \"key\"",
        )
        .unwrap();
        c.resolve_paths(dir.path());
        assert_eq!(
            c.secret_access_key_file.as_deref(),
            Some(&*dir.path().join("key"))
        );
        let e = c.secret_access_key().unwrap_err().to_string();
        assert!(e.contains("secret_access_key_file"), "{e}");
        std::fs::write(dir.path().join("key"), "wJalr/EXAMPLEKEY\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(c.secret_access_key().unwrap().as_str(), "wJalr/EXAMPLEKEY");

        let c = parse(&MINIMAL.replace("\"K\"", "\"SEALPLANE_TEST_SURELY_UNSET_VAR\"")).unwrap();
        let e = c.secret_access_key().unwrap_err().to_string();
        assert!(e.contains("SEALPLANE_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
