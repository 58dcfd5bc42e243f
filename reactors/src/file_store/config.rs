//! `FileStoreConfig`: one file store's table in the reactor's config, and
//! how it is opened and judged (its [`StoreKind`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::FileStore;
use crate::master_key::{MasterKey, MasterKeyError, security_report};
use crate::security::Finding;
use crate::stores::{OpenError, StoreKind};
use crate::upstream::UpstreamStore;

/// `kind = "file"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreConfig {
    /// The directory holding the store (created 0700).
    pub root: PathBuf,
    /// A file holding the master key's base64.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// An environment variable holding the master key's base64.
    #[serde(default)]
    pub master_key_env: Option<String>,
}

impl FileStoreConfig {
    /// The store's master key, from its file or environment variable.
    pub fn master_key(&self) -> Result<MasterKey, MasterKeyError> {
        match (&self.master_key_file, &self.master_key_env) {
            (Some(path), _) => MasterKey::from_file(path),
            (None, Some(var)) => MasterKey::from_env(var),
            (None, None) => unreachable!("checked at load"),
        }
    }
}

#[async_trait::async_trait]
impl StoreKind for FileStoreConfig {
    fn check(&self) -> Result<(), String> {
        if self.master_key_file.is_some() == self.master_key_env.is_some() {
            return Err("needs exactly one of master_key_file and master_key_env".to_owned());
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        for path in [Some(&mut self.root), self.master_key_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    async fn open(&self, name: &str) -> Result<Arc<dyn UpstreamStore>, OpenError> {
        let key = self.master_key()?;
        // An exposed key file was refused above; the public dev key is served
        // anyway (`sealplane dev` uses it): `sealplane is-secure` fails on it.
        for warning in security_report(self.master_key_file.as_deref(), &key) {
            tracing::warn!(store = name, "store `{name}`: {warning}");
        }
        Ok(Arc::new(FileStore::open(&self.root, key)?))
    }

    fn insecurities(&self) -> Vec<Finding> {
        match self.master_key() {
            Ok(key) => security_report(self.master_key_file.as_deref(), &key)
                .into_iter()
                .map(|i| i.to_string())
                .collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn master_key_file(&self) -> Option<&Path> {
        self.master_key_file.as_deref()
    }
}
