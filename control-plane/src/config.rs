//! `sealplane.toml`: where the server listens, its TLS material, its event
//! store and its limits. Unknown keys are refused, so a typo cannot
//! silently drop a setting (for example the TLS section).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default secret size limit: 256 KiB (SPEC §3).
pub use sealplane_proto::limits::DEFAULT_MAX_SECRET_BYTES;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid configuration: {reason}")]
    Parse { path: String, reason: String },
    #[error(
        "refusing to listen on {0} without TLS: plaintext is only allowed on loopback; add a [tls] section with cert and key"
    )]
    PlaintextNotLoopback(SocketAddr),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error(
        "event_store: the postgres backend takes exactly one of `url`, `url_file` and `url_env` (url_file or url_env keep the password out of this file)"
    )]
    PostgresUrlSources,
    #[error(
        "event_store: the postgres backend needs [audit] log_key_file, since there is no data directory beside the store to keep the log-signing key in"
    )]
    PostgresLogKey,
    #[error("event_store: cannot read the PostgreSQL url from {path}: {source}")]
    PostgresUrlFile {
        path: String,
        source: std::io::Error,
    },
    #[error("event_store: the environment variable {0} holding the PostgreSQL url is not set")]
    PostgresUrlEnv(String),
    #[error(
        "event_store: the kurrentdb backend takes exactly one of `url`, `url_file` and `url_env` (url_file or url_env keep a password out of this file)"
    )]
    KurrentUrlSources,
    #[error(
        "event_store: the kurrentdb backend needs [audit] log_key_file, since there is no data directory beside the store to keep the log-signing key in"
    )]
    KurrentLogKey,
    #[error("event_store: cannot read the KurrentDB url from {path}: {source}")]
    KurrentUrlFile {
        path: String,
        source: std::io::Error,
    },
    #[error("event_store: the environment variable {0} holding the KurrentDB url is not set")]
    KurrentUrlEnv(String),
    #[error("{name} is {value}; at most {max} is supported")]
    TooLarge {
        name: &'static str,
        value: u64,
        max: u64,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the gRPC API.
    pub listen: SocketAddr,
    /// Server certificate and key; required unless `listen` is loopback.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Where events are kept.
    pub event_store: EventStoreConfig,
    /// Protocol limits.
    #[serde(default)]
    pub limits: Limits,
    /// Signed checkpoints of the log (ADR 0016).
    #[serde(default)]
    pub audit: AuditConfig,
    /// The admin listener (`/healthz`, `/readyz`); off without the section.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The read model's snapshot, which restarts resume from (ADR 0026).
    #[serde(default)]
    pub read_model: ReadModelConfig,
}

/// The read model's snapshot: a cache beside the log key, never a source
/// of truth (deleting it means one rebuild from the whole log).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReadModelConfig {
    /// The snapshot file (0600); by default `read-model.snapshot` beside
    /// the log-signing key. Each replica on a shared database keeps its own.
    pub snapshot_file: Option<PathBuf>,
    /// Write a snapshot once the model has applied this many events since
    /// the last one, and at a clean shutdown; 0 turns snapshots off (none
    /// is written or read).
    pub snapshot_every_events: u64,
}

impl Default for ReadModelConfig {
    fn default() -> Self {
        ReadModelConfig {
            snapshot_file: None,
            snapshot_every_events: 50_000,
        }
    }
}

/// How much of the hash chains start-up walks before serving (ADR 0026).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VerifyOnStart {
    /// What the read model folds: after a restored snapshot, the events
    /// after it (the whole log is then walked in the background, failing
    /// closed on a break); without one, the whole log.
    #[default]
    Incremental,
    /// The whole log before serving (start-up time follows the history).
    Full,
}

/// Signed checkpoints: the log key and how often it signs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The log-signing key (created 0600 on first start); by default
    /// `log-signing.key` beside the embedded event store's file.
    pub log_key_file: Option<PathBuf>,
    /// Sign a checkpoint once this many events were appended since the
    /// last one...
    pub checkpoint_every_events: u64,
    /// ...or once this many seconds passed with at least one new event.
    pub checkpoint_every_seconds: u64,
    /// How much of the log start-up verifies before serving.
    pub verify_on_start: VerifyOnStart,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            log_key_file: None,
            checkpoint_every_events: 1000,
            checkpoint_every_seconds: 60,
            verify_on_start: VerifyOnStart::Incremental,
        }
    }
}

/// The log key's file name in a data directory.
pub const LOG_KEY_FILE: &str = "log-signing.key";

impl Config {
    /// Where the read-model snapshot is, unless snapshots are off: as
    /// configured, else beside the log-signing key.
    pub fn snapshot_path(&self) -> Option<PathBuf> {
        if self.read_model.snapshot_every_events == 0 {
            return None;
        }
        Some(match &self.read_model.snapshot_file {
            Some(path) => path.clone(),
            None => self
                .log_key_path()
                .parent()
                .unwrap_or(Path::new("."))
                .join(crate::snapshot::SNAPSHOT_FILE),
        })
    }

    /// Where the log-signing key is: as configured, else beside the
    /// event store's file.
    pub fn log_key_path(&self) -> PathBuf {
        if let Some(path) = &self.audit.log_key_file {
            return path.clone();
        }
        match &self.event_store {
            EventStoreConfig::Embedded { path } => {
                path.parent().unwrap_or(Path::new(".")).join(LOG_KEY_FILE)
            }
            // `check` requires log_key_file for the server backends.
            EventStoreConfig::Postgres { .. } | EventStoreConfig::Kurrentdb { .. } => {
                PathBuf::from(LOG_KEY_FILE)
            }
        }
    }
}

/// The admin listener: plain HTTP, no authentication, no secrets in it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Its address; loopback by default.
    #[serde(default = "AdminConfig::default_listen")]
    pub listen: SocketAddr,
}

impl AdminConfig {
    /// The default admin address, `127.0.0.1:9464`.
    pub fn default_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9464))
    }
}

/// TLS material, PEM files.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The event store backend.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EventStoreConfig {
    /// One SQLite file (ADR 0001).
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database several control planes may share (ADR 0019);
    /// its url from exactly one of the three sources.
    Postgres {
        /// `postgres://user:password@host:port/database?sslmode=…`.
        #[serde(default)]
        url: Option<DatabaseUrl>,
        /// A file holding the url (e.g. a mounted secret), read at start.
        #[serde(default)]
        url_file: Option<PathBuf>,
        /// An environment variable holding the url, read at start.
        #[serde(default)]
        url_env: Option<String>,
    },
    /// A KurrentDB (EventStoreDB) server (ADR 0023); its connection string
    /// from exactly one of the three sources. Needs a `sealplane` built with
    /// the `kurrentdb` feature.
    Kurrentdb {
        /// `kurrentdb://user:password@host:2113?tls=true` (or `esdb://…`).
        #[serde(default)]
        url: Option<DatabaseUrl>,
        /// A file holding the url (e.g. a mounted secret), read at start.
        #[serde(default)]
        url_file: Option<PathBuf>,
        /// An environment variable holding the url, read at start.
        #[serde(default)]
        url_env: Option<String>,
    },
}

/// A database url, which may hold a password: `Debug` hides it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(url.into())
    }

    /// The url itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", sealplane_event_store::RedactedUrl::new(&self.0))
    }
}

impl EventStoreConfig {
    /// The PostgreSQL url from its configured source; `None` for another
    /// backend. Errors name the source, never the url.
    pub fn postgres_url(&self) -> Result<Option<DatabaseUrl>, ConfigError> {
        let EventStoreConfig::Postgres {
            url,
            url_file,
            url_env,
        } = self
        else {
            return Ok(None);
        };
        url_from(
            (url, url_file, url_env),
            |path, source| ConfigError::PostgresUrlFile { path, source },
            ConfigError::PostgresUrlEnv,
            ConfigError::PostgresUrlSources,
        )
        .map(Some)
    }

    /// The KurrentDB url from its configured source; `None` for another
    /// backend. Errors name the source, never the url.
    pub fn kurrentdb_url(&self) -> Result<Option<DatabaseUrl>, ConfigError> {
        let EventStoreConfig::Kurrentdb {
            url,
            url_file,
            url_env,
        } = self
        else {
            return Ok(None);
        };
        url_from(
            (url, url_file, url_env),
            |path, source| ConfigError::KurrentUrlFile { path, source },
            ConfigError::KurrentUrlEnv,
            ConfigError::KurrentUrlSources,
        )
        .map(Some)
    }
}

/// A database url from exactly one of its sources (inline, a file, an
/// environment variable), trimmed; each error names the source, never
/// the url.
fn url_from(
    (url, url_file, url_env): (&Option<DatabaseUrl>, &Option<PathBuf>, &Option<String>),
    file_error: impl FnOnce(String, std::io::Error) -> ConfigError,
    env_error: impl FnOnce(String) -> ConfigError,
    not_one: ConfigError,
) -> Result<DatabaseUrl, ConfigError> {
    match (url, url_file, url_env) {
        (Some(url), None, None) => Ok(url.clone()),
        (None, Some(path), None) => std::fs::read_to_string(path)
            .map(|text| DatabaseUrl::new(text.trim()))
            .map_err(|source| file_error(path.display().to_string(), source)),
        (None, None, Some(name)) => std::env::var(name)
            .map(|text| DatabaseUrl::new(text.trim()))
            .map_err(|_| env_error(name.clone())),
        _ => Err(not_one),
    }
}

/// Protocol limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest secret value (all keys together), in bytes.
    pub max_secret_bytes: usize,
    /// Lifetime of a one-time upload key.
    pub upload_key_ttl_seconds: u64,
    /// Lifetime of a token issued without an explicit one.
    pub token_ttl_seconds: u64,
    /// Verifications of one secret by one principal per minute (SPEC §4).
    pub max_verifications_per_minute: u64,
    /// Upload requests one principal may hold open at once.
    pub max_open_uploads_per_principal: u64,
    /// Long-lived streams (upload watches, reactor feeds) one principal
    /// may hold open at once.
    pub max_streams_per_principal: u64,
    /// Refusals recorded as `AccessDenied` per principal per minute;
    /// beyond it calls are refused `RESOURCE_EXHAUSTED` and not recorded,
    /// so nobody can fill the log with refusals.
    pub max_denials_per_minute: u64,
    /// How long a call may take before the server ends it (streams are
    /// not cut: their response starts at once).
    pub request_timeout_seconds: u64,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_secret_bytes: DEFAULT_MAX_SECRET_BYTES,
            upload_key_ttl_seconds: 300,
            token_ttl_seconds: 90 * 24 * 3600,
            max_verifications_per_minute: 10,
            // Room for a CI job putting 64 secrets at once, and then some.
            max_open_uploads_per_principal: 256,
            max_streams_per_principal: 256,
            max_denials_per_minute: 60,
            request_timeout_seconds: 30,
            max_concurrent_streams_per_connection: 128,
        }
    }
}

impl Limits {
    /// The upload key lifetime.
    pub fn upload_key_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_key_ttl_seconds)
    }

    /// Largest sealed payload accepted for a secret of the maximum size:
    /// the JSON payload base64-encodes values (4/3), plus the sealed box's
    /// 48 bytes and room for the request id, uri and key names.
    pub fn max_ciphertext_bytes(&self) -> usize {
        self.max_secret_bytes.div_ceil(3) * 4 + 64 * 1024
    }
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            reason: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::PlaintextNotLoopback(self.listen));
        }
        if let EventStoreConfig::Postgres {
            url,
            url_file,
            url_env,
        } = &self.event_store
        {
            let sources = [url.is_some(), url_file.is_some(), url_env.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(ConfigError::PostgresUrlSources);
            }
            if self.audit.log_key_file.is_none() {
                return Err(ConfigError::PostgresLogKey);
            }
        }
        if let EventStoreConfig::Kurrentdb {
            url,
            url_file,
            url_env,
        } = &self.event_store
        {
            let sources = [url.is_some(), url_file.is_some(), url_env.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(ConfigError::KurrentUrlSources);
            }
            if self.audit.log_key_file.is_none() {
                return Err(ConfigError::KurrentLogKey);
            }
        }
        let l = &self.limits;
        for (value, name) in [
            (l.max_secret_bytes as u64, "limits.max_secret_bytes"),
            (l.upload_key_ttl_seconds, "limits.upload_key_ttl_seconds"),
            (l.token_ttl_seconds, "limits.token_ttl_seconds"),
            (
                l.max_verifications_per_minute,
                "limits.max_verifications_per_minute",
            ),
            (
                self.audit.checkpoint_every_events,
                "audit.checkpoint_every_events",
            ),
            (
                self.audit.checkpoint_every_seconds,
                "audit.checkpoint_every_seconds",
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let max = crate::read_model::VERIFICATIONS_KEPT as u64;
        if l.max_verifications_per_minute > max {
            return Err(ConfigError::TooLarge {
                name: "limits.max_verifications_per_minute",
                value: l.max_verifications_per_minute,
                max,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        listen = "0.0.0.0:7443"
        [tls]
        cert = "/etc/sealplane/server.crt"
        key = "/etc/sealplane/server.key"
        client_ca = "/etc/sealplane/clients.crt"
        [event_store]
        backend = "embedded"
        path = "/var/lib/sealplane/events.db"
        [limits]
        max_secret_bytes = 1048576
    "#;

    #[test]
    fn a_full_configuration_parses_with_defaults_for_the_rest() {
        let c = Config::parse(FULL, "test").unwrap();
        assert_eq!(c.listen, "0.0.0.0:7443".parse().unwrap());
        assert_eq!(
            c.tls.unwrap().client_ca,
            Some(PathBuf::from("/etc/sealplane/clients.crt"))
        );
        assert_eq!(
            c.event_store,
            EventStoreConfig::Embedded {
                path: "/var/lib/sealplane/events.db".into()
            }
        );
        assert_eq!(c.limits.max_secret_bytes, 1 << 20);
        assert_eq!(c.limits.upload_key_ttl_seconds, 300);
    }

    #[test]
    fn the_admin_listener_is_off_without_its_section_and_on_loopback_with_it() {
        assert_eq!(Config::parse(FULL, "test").unwrap().admin, None);
        let text = format!("{FULL}\n[admin]\n");
        let admin = Config::parse(&text, "test").unwrap().admin.unwrap();
        assert_eq!(admin.listen, "127.0.0.1:9464".parse().unwrap());
        let text = format!("{FULL}\n[admin]\nlisten = \"127.0.0.1:0\"\n");
        let admin = Config::parse(&text, "test").unwrap().admin.unwrap();
        assert_eq!(admin.listen.port(), 0);
    }

    #[test]
    fn plaintext_is_refused_off_loopback() {
        let text =
            "listen = \"0.0.0.0:7443\"\n[event_store]\nbackend = \"embedded\"\npath = \"e.db\"\n";
        let err = Config::parse(text, "test").unwrap_err();
        assert!(matches!(err, ConfigError::PlaintextNotLoopback(_)));
        assert!(err.to_string().contains("add a [tls] section"), "{err}");
        for ok in ["127.0.0.1:7443", "[::1]:7443"] {
            let text = text.replace("0.0.0.0:7443", ok);
            assert!(Config::parse(&text, "test").is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_snapshot_lives_beside_the_log_key_and_can_be_moved_or_turned_off() {
        // Given no [read_model] section: every 50,000 events, beside the key
        let c = Config::parse(FULL, "test").unwrap();
        assert_eq!(c.read_model.snapshot_every_events, 50_000);
        assert_eq!(
            c.snapshot_path(),
            Some(PathBuf::from("/var/lib/sealplane/read-model.snapshot"))
        );
        assert_eq!(c.audit.verify_on_start, VerifyOnStart::Incremental);
        // Given a file of its own, and a full verification at start
        let moved = format!(
            "{FULL}\n[read_model]\nsnapshot_file = \"/cache/m.snap\"\n[audit]\nverify_on_start = \"full\"\n"
        );
        let c = Config::parse(&moved, "test").unwrap();
        assert_eq!(c.snapshot_path(), Some(PathBuf::from("/cache/m.snap")));
        assert_eq!(c.audit.verify_on_start, VerifyOnStart::Full);
        // Given 0: no snapshot at all
        let off = format!("{FULL}\n[read_model]\nsnapshot_every_events = 0\n");
        assert_eq!(Config::parse(&off, "test").unwrap().snapshot_path(), None);
        // And a misspelt value is an error
        let bad = format!("{FULL}\n[audit]\nverify_on_start = \"fast\"\n");
        assert!(Config::parse(&bad, "test").is_err());
    }

    #[test]
    fn a_misspelt_key_is_an_error_not_a_silent_default() {
        let text = FULL.replace("[tls]", "[tsl]");
        let err = Config::parse(&text, "sealplane.toml").unwrap_err();
        assert!(err.to_string().contains("sealplane.toml"), "{err}");
        assert!(err.to_string().contains("tsl"), "{err}");
    }

    #[test]
    fn the_audit_section_has_defaults_and_the_key_lives_beside_the_store() {
        // Given no [audit] section
        let c = Config::parse(FULL, "test").unwrap();
        // Then checkpoints are every 1000 events or 60 seconds
        assert_eq!(c.audit, AuditConfig::default());
        assert_eq!(c.audit.checkpoint_every_events, 1000);
        assert_eq!(c.audit.checkpoint_every_seconds, 60);
        assert_eq!(
            c.log_key_path(),
            PathBuf::from("/var/lib/sealplane/log-signing.key")
        );
        // When it is given, it is read, and zero is refused
        let text =
            format!("{FULL}\n[audit]\nlog_key_file = \"/k\"\ncheckpoint_every_seconds = 5\n");
        let c = Config::parse(&text, "test").unwrap();
        assert_eq!(c.log_key_path(), PathBuf::from("/k"));
        assert_eq!(c.audit.checkpoint_every_seconds, 5);
        let zero = text.replace("= 5", "= 0");
        assert_eq!(
            Config::parse(&zero, "test").unwrap_err().to_string(),
            "audit.checkpoint_every_seconds must be greater than zero"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let text = FULL.replace("max_secret_bytes = 1048576", "max_secret_bytes = 0");
        let err = Config::parse(&text, "test").unwrap_err();
        assert_eq!(
            err.to_string(),
            "limits.max_secret_bytes must be greater than zero"
        );
    }

    #[test]
    fn the_ciphertext_limit_fits_a_maximal_secret() {
        let limits = Limits::default();
        let value = vec![0u8; limits.max_secret_bytes];
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &value);
        let payload_len = b64.len() + 200; // request id, uri, key name, JSON syntax
        assert!(payload_len + 48 <= limits.max_ciphertext_bytes());
    }

    fn postgres(store: &str) -> String {
        format!(
            "listen = \"127.0.0.1:7443\"\n[event_store]\nbackend = \"postgres\"\n{store}\n[audit]\nlog_key_file = \"/k\"\n"
        )
    }

    #[test]
    fn a_postgres_store_takes_its_url_from_one_source_and_never_shows_the_password() {
        let c = Config::parse(
            &postgres("url = \"postgres://sp:hunter2@db:5432/events\""),
            "test",
        )
        .unwrap();
        let url = c.event_store.postgres_url().unwrap().unwrap();
        assert_eq!(url.expose(), "postgres://sp:hunter2@db:5432/events");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sp:***@db:5432"), "{shown}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://sp:hunter2@db/events\n").unwrap();
        let c = Config::parse(
            &postgres(&format!("url_file = \"{}\"", file.display())),
            "test",
        )
        .unwrap();
        let url = c.event_store.postgres_url().unwrap().unwrap();
        assert_eq!(url.expose(), "postgres://sp:hunter2@db/events");

        let c = Config::parse(
            &postgres("url_env = \"SEALPLANE_TEST_UNSET_POSTGRES_URL\""),
            "test",
        )
        .unwrap();
        let err = c.event_store.postgres_url().unwrap_err().to_string();
        assert!(
            err.contains(
                "variable SEALPLANE_TEST_UNSET_POSTGRES_URL holding the PostgreSQL url is not set"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_kurrentdb_store_takes_its_url_from_one_source_and_a_log_key_file() {
        let kurrent = |source: &str| {
            format!(
                "listen = \"127.0.0.1:7443\"\n[event_store]\nbackend = \"kurrentdb\"\n{source}\n[audit]\nlog_key_file = \"/k\"\n"
            )
        };
        let c = Config::parse(
            &kurrent("url = \"kurrentdb://admin:hunter2@kdb:2113?tls=true\""),
            "test",
        )
        .unwrap();
        let url = c.event_store.kurrentdb_url().unwrap().unwrap();
        assert_eq!(url.expose(), "kurrentdb://admin:hunter2@kdb:2113?tls=true");
        assert_eq!(c.event_store.postgres_url().unwrap(), None);
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let c = Config::parse(&kurrent("url_env = \"SEALPLANE_TEST_UNSET_KDB\""), "test").unwrap();
        let err = c.event_store.kurrentdb_url().unwrap_err().to_string();
        assert!(
            err.contains("SEALPLANE_TEST_UNSET_KDB holding the KurrentDB url"),
            "{err}"
        );
        for store in ["", "url = \"kurrentdb://k\"\nurl_file = \"/f\""] {
            let err = Config::parse(&kurrent(store), "test").unwrap_err();
            assert!(matches!(err, ConfigError::KurrentUrlSources), "{err}");
        }
        let text =
            kurrent("url = \"kurrentdb://k\"").replace("[audit]\nlog_key_file = \"/k\"\n", "");
        let err = Config::parse(&text, "test").unwrap_err();
        assert!(matches!(err, ConfigError::KurrentLogKey), "{err}");
    }

    #[test]
    fn a_postgres_store_needs_exactly_one_url_source_and_a_log_key_file() {
        for store in ["", "url = \"postgres://db/e\"\nurl_env = \"X\""] {
            let err = Config::parse(&postgres(store), "test").unwrap_err();
            assert!(matches!(err, ConfigError::PostgresUrlSources), "{err}");
        }
        let text =
            postgres("url = \"postgres://db/e\"").replace("[audit]\nlog_key_file = \"/k\"\n", "");
        let err = Config::parse(&text, "test").unwrap_err();
        assert!(err.to_string().contains("log_key_file"), "{err}");
    }
}
