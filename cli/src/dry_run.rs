//! `put secret --dry-run`: what a put would do, checked as far as it can
//! be without sealing or sending anything. On this machine: the uri's
//! form, `--reactor-key`'s shape, and the value as a put reads it (key
//! names, duplicates, files, env files, standard input, prompts, the size
//! limit). With the control plane, read-only (`ListStores`, a query): that
//! the store exists and accepts uploads. No command is sent, so nothing
//! is recorded and no one-time key is asked for; the plan names keys and
//! sizes, never a value.

use comfy_table::Table;
use sealplane_proto::names::{InvalidName, SecretRef, StoreName};
use sealplane_proto::sealed::SecretValue;
use sealplane_proto::v1;
use serde::Serialize;

use crate::client::{ClientError, Connection};
use crate::known_reactors::is_key_shaped;
use crate::output::{Tabular, fields};

/// Why the dry run found that the put would fail.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// The uri is not `store://path` or a path.
    #[error("{uri:?} is not a secret uri: {reason}")]
    Uri {
        /// What was given (a uri holds no value).
        uri: String,
        /// Why it is refused.
        reason: InvalidName,
    },
    /// `--reactor-key` is not an Ed25519 public key.
    #[error("--reactor-key {0:?} is not base64 of a 32-byte Ed25519 public key")]
    ReactorKey(String),
    /// The store read failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The control plane has no such store.
    #[error("there is no store `{0}`; `sealctl get stores` lists them")]
    NoStore(String),
    /// A bare path, and no default store is set.
    #[error(
        "{0} names no store and no default store is set: write `STORE://{0}`, or an admin sets one with `sealctl set default-store NAME`"
    )]
    NoDefault(String),
    /// The store refuses uploads.
    #[error("store `{0}` is disabled; an admin can enable it with `sealctl enable store {0}`")]
    Disabled(String),
}

/// Checks what can be checked of a put's arguments before reading any value.
pub fn check_arguments(uri: &str, reactor_key: Option<&str>) -> Result<SecretRef, DryRunError> {
    if let Some(key) = reactor_key
        && !is_key_shaped(key.trim())
    {
        return Err(DryRunError::ReactorKey(key.trim().to_owned()));
    }
    SecretRef::parse(uri).map_err(|reason| DryRunError::Uri {
        uri: uri.to_owned(),
        reason,
    })
}

/// The store a put of `secret` would go to, read-only: it must exist and
/// accept uploads.
pub async fn check_store(conn: &Connection, secret: &SecretRef) -> Result<StoreName, DryRunError> {
    let stores = conn
        .stores()
        .list_stores(v1::ListStoresRequest { options: None })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner()
        .stores;
    let store = match &secret.store {
        Some(name) => stores
            .into_iter()
            .find(|s| s.name == name.as_str())
            .ok_or_else(|| DryRunError::NoStore(name.to_string()))?,
        None => stores
            .into_iter()
            .find(|s| s.is_default)
            .ok_or_else(|| DryRunError::NoDefault(secret.path.to_string()))?,
    };
    if !store.enabled {
        return Err(DryRunError::Disabled(store.name));
    }
    StoreName::parse(store.name.clone()).map_err(|_| DryRunError::NoStore(store.name))
}

/// One key of the value: its name and size, never its bytes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlannedKey {
    /// The key.
    pub key: String,
    /// Its value's length in bytes.
    pub bytes: usize,
}

/// What `put secret --dry-run` found: what the put would store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PutPlan {
    /// Always true: nothing was sealed or sent.
    pub dry_run: bool,
    /// The secret, with its store.
    pub uri: String,
    /// The store (it exists and accepts uploads).
    pub store: String,
    /// The keys and their sizes.
    pub keys: Vec<PlannedKey>,
    /// The sum of the sizes.
    pub total_bytes: usize,
    /// The limit on that sum.
    pub limit_bytes: usize,
    /// Whether the put would adopt an unmanaged upstream secret.
    pub adopt: bool,
}

impl PutPlan {
    /// The plan of putting `value` to `secret` in `store`.
    pub fn of(
        secret: SecretRef,
        store: &StoreName,
        value: &SecretValue,
        limit_bytes: usize,
        adopt: bool,
    ) -> PutPlan {
        PutPlan {
            dry_run: true,
            uri: secret.resolve(store).to_string(),
            store: store.to_string(),
            keys: value
                .iter()
                .map(|(key, bytes)| PlannedKey {
                    key: key.to_owned(),
                    bytes: bytes.len(),
                })
                .collect(),
            total_bytes: value.total_bytes(),
            limit_bytes,
            adopt,
        }
    }
}

impl Tabular for PutPlan {
    fn table(&self) -> Table {
        let mut rows: Vec<(String, String)> = vec![
            ("uri".into(), self.uri.clone()),
            (
                "store".into(),
                format!("{} (exists, accepts uploads)", self.store),
            ),
        ];
        for k in &self.keys {
            rows.push((format!("key {}", k.key), format!("{} bytes", k.bytes)));
        }
        rows.push((
            "total".into(),
            format!("{} of {} bytes", self.total_bytes, self.limit_bytes),
        ));
        if self.adopt {
            rows.push(("adopt".into(), "yes".into()));
        }
        rows.push((
            "dry run".into(),
            "nothing was sealed or sent; without --dry-run this is put".into(),
        ));
        fields(rows.iter().map(|(k, v)| (k.as_str(), v.clone())))
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.uri.clone()])
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;
    use crate::output::{OutputFormat, render};

    #[test]
    fn the_plan_names_keys_and_sizes_never_a_value() {
        let secret = check_arguments("alice/db", None).unwrap();
        let mut value = SecretValue::new();
        value
            .insert("user", Zeroizing::new(b"app".to_vec()))
            .unwrap();
        value
            .insert("password", Zeroizing::new(b"hunter2-value".to_vec()))
            .unwrap();
        let store = StoreName::parse("local").unwrap();
        let plan = PutPlan::of(secret, &store, &value, 262_144, false);
        assert_eq!(plan.uri, "local://alice/db");
        assert_eq!(plan.total_bytes, 16);
        for format in [OutputFormat::Table, OutputFormat::Json, OutputFormat::Yaml] {
            let text = render(format, &plan).unwrap();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(
                !text.contains("app\n") && !text.contains("\"app\""),
                "{text}"
            );
            assert!(text.contains("password"), "{text}");
        }
        let table = render(OutputFormat::Table, &plan).unwrap();
        assert!(table.contains("key password:  13 bytes"), "{table}");
        assert!(table.contains("nothing was sealed or sent"), "{table}");
        assert_eq!(
            render(OutputFormat::Name, &plan).unwrap(),
            "local://alice/db\n"
        );
    }

    #[test]
    fn a_bad_uri_or_reactor_key_is_refused_before_any_value_is_read() {
        let e = check_arguments("a//b", None).unwrap_err();
        assert!(matches!(e, DryRunError::Uri { .. }), "{e}");
        let e = check_arguments("x:y", None).unwrap_err();
        assert!(matches!(e, DryRunError::Uri { .. }), "{e}");
        let e = check_arguments("local://a", Some("AAAA")).unwrap_err();
        assert!(matches!(e, DryRunError::ReactorKey(_)), "{e}");
    }
}
