//! The store kinds a reactor can serve, registered in one place.
//!
//! Each kind's `[stores.NAME]` table is a type in the kind's own module
//! that implements [`StoreKind`]: how the table is checked and resolved,
//! how the store is opened, and what makes its setup insecure.
//! [`StoreConfig`] is the list of kinds (the `kind = "..."` tag), and the
//! only code that tells them apart is [`StoreConfig::kind`] and
//! [`StoreConfig::kind_mut`]. Adding a kind is its module, one variant and
//! one line in each of those two (ADR 0007).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::aws_secrets_manager::AwsSecretsManagerConfig;
use crate::file_store::FileStoreConfig;
use crate::master_key::MasterKeyError;
use crate::security::Finding;
use crate::upstream::{UpstreamError, UpstreamStore};
use crate::vault::VaultConfig;

/// `[stores.NAME]`: one upstream store, by kind.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StoreConfig {
    /// The embedded encrypted file store.
    File(FileStoreConfig),
    /// HashiCorp Vault or OpenBao KV (v2 or v1).
    Vault(VaultConfig),
    /// AWS Secrets Manager (or an emulator at `endpoint`).
    AwsSecretsManager(AwsSecretsManagerConfig),
}

/// What every kind of store brings to the reactor.
#[async_trait::async_trait]
pub trait StoreKind: Send + Sync {
    /// Checks what serde cannot; the problem says what is wrong and how to
    /// fix it (it follows the name `stores.NAME` in the error).
    fn check(&self) -> Result<(), String>;

    /// Makes relative file paths relative to `base` (the config file's directory).
    fn resolve_paths(&mut self, base: &Path);

    /// Loads the store's keys or credentials and opens (connects to) it;
    /// `name` is the store's name, for log lines.
    async fn open(&self, name: &str) -> Result<Arc<dyn UpstreamStore>, OpenError>;

    /// What makes this store's setup insecure, for `sealplane is-secure`.
    fn insecurities(&self) -> Vec<Finding>;

    /// The file holding the store's master key, for kinds that have one.
    fn master_key_file(&self) -> Option<&Path> {
        None
    }
}

/// Why a store could not be opened; never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store's key could not be loaded.
    #[error(transparent)]
    Key(#[from] MasterKeyError),
    /// The store refused, could not be reached, or its config is unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl StoreConfig {
    /// The kind behind this table.
    pub fn kind(&self) -> &dyn StoreKind {
        match self {
            StoreConfig::File(c) => c,
            StoreConfig::Vault(c) => c,
            StoreConfig::AwsSecretsManager(c) => c,
        }
    }

    /// The kind behind this table, to change it.
    pub fn kind_mut(&mut self) -> &mut dyn StoreKind {
        match self {
            StoreConfig::File(c) => c,
            StoreConfig::Vault(c) => c,
            StoreConfig::AwsSecretsManager(c) => c,
        }
    }

    /// See [`StoreKind::check`].
    pub fn check(&self) -> Result<(), String> {
        self.kind().check()
    }

    /// See [`StoreKind::resolve_paths`].
    pub fn resolve_paths(&mut self, base: &Path) {
        self.kind_mut().resolve_paths(base);
    }

    /// Opens the store `name` as this table says (see [`StoreKind::open`]).
    pub async fn open(&self, name: &str) -> Result<Arc<dyn UpstreamStore>, OpenError> {
        self.kind().open(name).await
    }

    /// See [`StoreKind::insecurities`].
    pub fn insecurities(&self) -> Vec<Finding> {
        self.kind().insecurities()
    }

    /// See [`StoreKind::master_key_file`].
    pub fn master_key_file(&self) -> Option<&Path> {
        self.kind().master_key_file()
    }
}
