//! The reactor's configuration file, `reactor.toml`.
//!
//! The control plane holds no upstream credential (SPEC §5): everything a
//! reactor needs to reach its stores, and the keys only reactors hold (the
//! identity, the fingerprint key, the file store's master key), are named
//! here. Relative paths are relative to the directory of the file.
//!
//! ```toml
//! identity_file = "reactor-identity"       # created on first start, 0600
//! checkpoint_file = "reactor.checkpoint"   # where the feed resumes
//!
//! [control_plane]
//! address = "https://sealplane.example:7700"
//! ca_file = "ca.pem"                       # for https; optional
//! token_file = "reactor.token"             # or token_env = "SEALPLANE_REACTOR_TOKEN"
//!
//! [fingerprint]                            # the same on every reactor
//! key_id = "fp-2026"
//! key_file = "fingerprint.key"             # or key_env = "..."
//!
//! [stores.local]
//! kind = "file"
//! root = "file-store"
//! master_key_file = "master.key"           # or master_key_env = "..."
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sealplane_proto::transport::check_plaintext;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::fingerprint::FingerprintKey;
use crate::master_key::{MasterKey, MasterKeyError};
use crate::security::read_private_text;

pub use crate::file_store::FileStoreConfig;
pub use crate::stores::StoreConfig;

/// The environment variable read for the control-plane token by default.
pub const DEFAULT_TOKEN_ENV: &str = "SEALPLANE_REACTOR_TOKEN";

/// Why the configuration cannot be used; messages name the file and field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read reactor config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown/missing fields.
    #[error("reactor config {origin}: {message}")]
    Parse {
        /// The config file.
        origin: String,
        /// The parser's message (config text only, never key material).
        message: String,
    },
    /// A field holds a value the reactor cannot use.
    #[error("reactor config {origin}: `{field}` {problem}")]
    Invalid {
        /// The config file.
        origin: String,
        /// The offending field.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A key (token, fingerprint, master) could not be loaded.
    #[error("reactor config {origin}: {what}: {source}")]
    Key {
        /// The config file.
        origin: String,
        /// Which key.
        what: &'static str,
        /// Why.
        source: MasterKeyError,
    },
}

/// The whole `reactor.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactorConfig {
    /// How to reach and authenticate to the control plane.
    pub control_plane: ControlPlaneConfig,
    /// The long-term Ed25519 identity (created 0600 on first start).
    #[serde(default = "default_identity_file")]
    pub identity_file: PathBuf,
    /// The position the event feed resumes from after a restart.
    #[serde(default = "default_checkpoint_file")]
    pub checkpoint_file: PathBuf,
    /// Where the long-term sealing keys for sealed files live (SPEC §11):
    /// one 0700 directory per store, one 0600 file per key, encrypted
    /// under a key derived from the identity.
    #[serde(default = "default_sealing_keys_dir")]
    pub sealing_keys_dir: PathBuf,
    /// Days after which a store gets a new sealing key (old ones keep
    /// opening files until an admin retires them).
    #[serde(default = "default_sealing_key_rotation_days")]
    pub sealing_key_rotation_days: u32,
    /// The keyed-hash key (SPEC §4): the same on every reactor of a deployment.
    pub fingerprint: FingerprintConfig,
    /// Limits on the reactor's own work.
    #[serde(default)]
    pub limits: ReactorLimits,
    /// The stores this reactor serves, by store name.
    pub stores: BTreeMap<String, StoreConfig>,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`); off without the section.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
}

/// `[admin]`: plain HTTP, no authentication, no secrets in its answers.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Its address; loopback by default (`127.0.0.1:9465`, one beside the
    /// control plane's default).
    #[serde(default = "AdminConfig::default_listen")]
    pub listen: std::net::SocketAddr,
}

impl AdminConfig {
    /// The default admin address, `127.0.0.1:9465`.
    pub fn default_listen() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 9465))
    }
}

/// `[control_plane]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// `https://host:port`, or `http://` to a loopback address only
    /// (`sealplane_proto::transport`: the token would cross in clear).
    pub address: String,
    /// PEM CA certificate(s) to trust for an `https` address.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A file holding the reactor's bearer token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the token (default `SEALPLANE_REACTOR_TOKEN`).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// `[fingerprint]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintConfig {
    /// The id named in every hash (`hmac-sha256:<key_id>:...`).
    pub key_id: String,
    /// A file holding the key's base64 (32 bytes).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key's base64.
    #[serde(default)]
    pub key_env: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReactorLimits {
    /// Upload requests handled at the same time.
    pub concurrency: usize,
}

impl Default for ReactorLimits {
    fn default() -> Self {
        ReactorLimits { concurrency: 64 }
    }
}

fn default_identity_file() -> PathBuf {
    PathBuf::from("reactor-identity")
}

fn default_checkpoint_file() -> PathBuf {
    PathBuf::from("reactor.checkpoint")
}

fn default_sealing_keys_dir() -> PathBuf {
    PathBuf::from("sealing-keys")
}

fn default_sealing_key_rotation_days() -> u32 {
    30
}

impl ReactorConfig {
    /// Reads, parses and checks `path`; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &path.display().to_string(), base)
    }

    /// Parses `text` (named `origin` in errors), resolving paths against `base`.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: ReactorConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.message().to_owned(),
        })?;
        config.check(origin)?;
        config.resolve(base);
        Ok(config)
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: &str, problem: &str| ConfigError::Invalid {
            origin: origin.to_owned(),
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        let cp = &self.control_plane;
        // Refused at load, not at the first call: the reactor connects
        // lazily, and a token in clear must not wait for the network.
        if let Err(refused) = check_plaintext(&cp.address) {
            return Err(invalid(
                "control_plane.address",
                &format!("is unusable: {refused}"),
            ));
        }
        if cp.token_file.is_some() && cp.token_env.is_some() {
            return Err(invalid(
                "control_plane.token_file",
                "and token_env are both set: give one",
            ));
        }
        if self.fingerprint.key_file.is_some() == self.fingerprint.key_env.is_some() {
            return Err(invalid(
                "fingerprint",
                "needs exactly one of key_file and key_env",
            ));
        }
        if self.limits.concurrency == 0 {
            return Err(invalid("limits.concurrency", "must be at least 1"));
        }
        if self.stores.is_empty() {
            return Err(invalid(
                "stores",
                "is empty: add a [stores.NAME] table for each store this reactor serves",
            ));
        }
        for (name, store) in &self.stores {
            if !is_store_name(name) {
                return Err(invalid(
                    &format!("stores.{name}"),
                    "is not a store name: use a DNS label (lowercase letters, digits and `-`, at most 63)",
                ));
            }
            store
                .check()
                .map_err(|problem| invalid(&format!("stores.{name}"), &problem))?;
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        let at = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        at(&mut self.identity_file);
        at(&mut self.checkpoint_file);
        at(&mut self.sealing_keys_dir);
        self.control_plane.ca_file.as_mut().map(at);
        self.control_plane.token_file.as_mut().map(at);
        self.fingerprint.key_file.as_mut().map(at);
        for store in self.stores.values_mut() {
            store.resolve_paths(base);
        }
    }

    /// The control-plane bearer token, from its file or environment variable.
    pub fn token(&self, origin: &str) -> Result<Zeroizing<String>, ConfigError> {
        let cp = &self.control_plane;
        let token = match &cp.token_file {
            Some(path) => read_private_text(path, "control-plane token file").map_err(|e| {
                ConfigError::Key {
                    origin: origin.to_owned(),
                    what: "control_plane.token_file",
                    source: e.into(),
                }
            })?,
            None => {
                let var = cp.token_env.as_deref().unwrap_or(DEFAULT_TOKEN_ENV);
                Zeroizing::new(std::env::var(var).map_err(|_| ConfigError::Key {
                    origin: origin.to_owned(),
                    what: "control-plane token",
                    source: MasterKeyError::MissingEnv(var.to_owned()),
                })?)
            }
        };
        Ok(Zeroizing::new(token.trim().to_owned()))
    }

    /// The fingerprint key (same file format as a master key: base64 of 32 bytes).
    pub fn fingerprint_key(&self, origin: &str) -> Result<FingerprintKey, ConfigError> {
        let f = &self.fingerprint;
        let key = match (&f.key_file, &f.key_env) {
            (Some(path), _) => MasterKey::from_file_named(path, "fingerprint key file"),
            (None, Some(var)) => MasterKey::from_env(var),
            (None, None) => unreachable!("checked at load"),
        }
        .map_err(|source| ConfigError::Key {
            origin: origin.to_owned(),
            what: "fingerprint key",
            source,
        })?;
        FingerprintKey::with_key(f.key_id.clone(), key.0.clone()).map_err(|e| {
            ConfigError::Invalid {
                origin: origin.to_owned(),
                field: "fingerprint.key_id".into(),
                problem: e.to_string(),
            }
        })
    }
}

/// A DNS label, the rule for store names (SPEC §3), as the contract
/// crate defines it.
pub fn is_store_name(name: &str) -> bool {
    sealplane_proto::names::StoreName::parse(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[control_plane]
address = "http://127.0.0.1:7700"
token_file = "reactor.token"

[fingerprint]
key_id = "fp-1"
key_file = "fp.key"

[stores.local]
kind = "file"
root = "files"
master_key_file = "/etc/sealplane/master.key"
"#;

    fn parse(text: &str) -> Result<ReactorConfig, ConfigError> {
        ReactorConfig::parse(text, "reactor.toml", Path::new("/srv/r"))
    }

    #[test]
    fn a_token_or_fingerprint_key_file_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let c = ReactorConfig::parse(GOOD, "reactor.toml", dir.path()).unwrap();
        let token = dir.path().join("reactor.token");
        fs::write(&token, "tok-secret\n").unwrap();
        let fp = dir.path().join("fp.key");
        MasterKey::create_file(&fp).unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(c.token("reactor.toml").unwrap().as_str(), "tok-secret");
        c.fingerprint_key("reactor.toml").unwrap();

        fs::set_permissions(&token, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&fp, fs::Permissions::from_mode(0o640)).unwrap();
        let e = c.token("reactor.toml").unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", token.display())), "{e}");
        assert!(!e.contains("tok-secret"), "{e}");
        let e = c.fingerprint_key("reactor.toml").unwrap_err().to_string();
        assert!(e.contains("fingerprint key file"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", fp.display())), "{e}");
    }

    #[test]
    fn a_full_config_parses_with_defaults_and_relative_paths_resolved() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.identity_file, Path::new("/srv/r/reactor-identity"));
        assert_eq!(c.checkpoint_file, Path::new("/srv/r/reactor.checkpoint"));
        assert_eq!(
            c.control_plane.token_file.as_deref(),
            Some(Path::new("/srv/r/reactor.token"))
        );
        assert_eq!(c.limits.concurrency, 64);
        let StoreConfig::File(f) = &c.stores["local"] else {
            panic!("a file store")
        };
        assert_eq!(f.root, Path::new("/srv/r/files"));
        assert_eq!(
            f.master_key_file.as_deref(),
            Some(Path::new("/etc/sealplane/master.key"))
        );
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        for (edit, field) in [
            (
                GOOD.replace("http://127", "tcp://127"),
                "control_plane.address",
            ),
            (
                GOOD.replace("[stores.local]", "[stores.Local]"),
                "stores.Local",
            ),
            (
                GOOD.replace("master_key_file = \"/etc/sealplane/master.key\"", ""),
                "stores.local",
            ),
            (GOOD.replace("key_file = \"fp.key\"", ""), "fingerprint"),
            (
                GOOD.replace(
                    "token_file = \"reactor.token\"",
                    "token_file = \"t\"\ntoken_env = \"T\"",
                ),
                "control_plane.token_file",
            ),
            (
                format!("{GOOD}\n[limits]\nconcurrency = 0\n"),
                "limits.concurrency",
            ),
        ] {
            let e = parse(&edit).unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
        }
    }

    #[test]
    fn plain_http_to_a_control_plane_off_loopback_is_refused() {
        // The contract's rule (`sealplane_proto::transport`, unit-tested
        // there); here: the config check applies it, with its sentence.
        let e = parse(&GOOD.replace("http://127.0.0.1:7700", "http://db.example:7700"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "reactor config reactor.toml: `control_plane.address` is unusable: refusing to send a token in clear to http://db.example:7700: use https:// (plain http is only allowed to loopback addresses)"
        );
        for refused in [
            "http://10.1.2.3:7700",
            "http://0.0.0.0:7700",
            "http://[::]:7700",
        ] {
            let e = parse(&GOOD.replace("http://127.0.0.1:7700", refused))
                .unwrap_err()
                .to_string();
            assert!(e.contains("refusing to send a token in clear"), "{e}");
        }
        for allowed in [
            "http://127.0.0.1:7700",
            "http://127.9.9.9:7700",
            "http://localhost:7700",
            "http://[::1]:7700",
            "https://sealplane.example:7700",
        ] {
            parse(&GOOD.replace("http://127.0.0.1:7700", allowed)).unwrap();
        }
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let e = parse(&GOOD.replace("root = ", "rooot = "))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rooot"), "{e}");
        let e = parse(&GOOD.replace("kind = \"file\"", "kind = \"floppy\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("floppy"), "{e}");
    }

    #[test]
    fn a_vault_store_parses_with_its_paths_resolved_and_its_own_checks() {
        let vault = format!(
            "{GOOD}\n[stores.vault-prod]\nkind = \"vault\"\naddress = \"https://vault:8200\"\n\
             kv_version = 1\n[stores.vault-prod.approle]\nrole_id = \"r\"\nsecret_id_file = \"sid\"\n"
        );
        let c = parse(&vault).unwrap();
        let StoreConfig::Vault(v) = &c.stores["vault-prod"] else {
            panic!("a vault store")
        };
        assert_eq!(v.mount, "secret");
        assert_eq!(
            v.approle.as_ref().map(|a| a.secret_id_file.clone()),
            Some(PathBuf::from("/srv/r/sid"))
        );
        let e = parse(&vault.replace(
            "[stores.vault-prod.approle]\nrole_id = \"r\"\nsecret_id_file = \"sid\"\n",
            "",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`stores.vault-prod`"), "{e}");
    }

    #[test]
    fn an_aws_secrets_manager_store_parses_and_checks_its_credentials() {
        let aws = format!(
            "{GOOD}\n[stores.aws-prod]\nkind = \"aws-secrets-manager\"\nregion = \"eu-west-1\"\n\
             access_key_id = \"AKIA\"\nsecret_access_key_file = \"aws.key\"\n"
        );
        let c = parse(&aws).unwrap();
        let StoreConfig::AwsSecretsManager(a) = &c.stores["aws-prod"] else {
            panic!("an AWS store")
        };
        assert_eq!(
            a.secret_access_key_file.as_deref(),
            Some(Path::new("/srv/r/aws.key"))
        );
        let e = parse(&aws.replace("secret_access_key_file = \"aws.key\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`stores.aws-prod`"), "{e}");
    }

    #[test]
    fn store_names_are_dns_labels() {
        for ok in ["local", "vault-prod", "a1"] {
            assert!(is_store_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_store_name(bad), "{bad}");
        }
    }
}
