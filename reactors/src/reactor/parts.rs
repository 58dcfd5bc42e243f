//! What a reactor is built from: [`ReactorParts`], assembled from
//! `reactor.toml` (keys loaded, stores opened), and [`StartError`], why that
//! can fail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::config::{ConfigError, ReactorConfig};
use crate::fingerprint::FingerprintKey;
use crate::identity::{IdentityError, ReactorIdentity};
use crate::sealing_keys::SealingKeys;
use crate::upstream::UpstreamStore;

/// Why the reactor cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The identity file could not be loaded or created.
    #[error("reactor identity {path}: {source}")]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
    /// A store could not be opened.
    #[error("store `{store}`: {reason}")]
    Store {
        /// The store name.
        store: String,
        /// Why (never key material).
        reason: String,
    },
    /// The control-plane address or its TLS settings are unusable.
    #[error("control plane {address}: {reason}")]
    ControlPlane {
        /// The configured address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The sealing keys could not be loaded.
    #[error("{0}")]
    SealingKeys(String),
}

/// Everything a reactor runs with; built from `reactor.toml` by
/// [`ReactorParts::from_config`] or directly (as `sealplane dev` does).
pub struct ReactorParts {
    /// The control-plane address (`http://` or `https://`).
    pub address: String,
    /// PEM CA certificate(s) for an https address.
    pub ca_pem: Option<Vec<u8>>,
    /// The reactor's bearer token.
    pub token: Zeroizing<String>,
    /// The long-term signing identity.
    pub identity: ReactorIdentity,
    /// The keyed-hash key.
    pub fingerprint: FingerprintKey,
    /// The upstream stores, by store name.
    pub stores: BTreeMap<String, Arc<dyn UpstreamStore>>,
    /// Where the feed position is kept across restarts.
    pub checkpoint_file: PathBuf,
    /// The long-term sealing keys of the stores (SPEC §11).
    pub sealing: SealingKeys,
    /// Actions carried out at once.
    pub concurrency: usize,
}

impl ReactorParts {
    /// Loads keys and opens stores as `config` says; warnings are logged.
    pub async fn from_config(config: &ReactorConfig, origin: &str) -> Result<Self, StartError> {
        let token = config.token(origin)?;
        Self::from_config_with_token(config, origin, token).await
    }

    /// As [`ReactorParts::from_config`], with the token given rather than read.
    pub async fn from_config_with_token(
        config: &ReactorConfig,
        origin: &str,
        token: Zeroizing<String>,
    ) -> Result<Self, StartError> {
        let (identity, created) = ReactorIdentity::load_or_generate(&config.identity_file)
            .map_err(|source| StartError::Identity {
                path: config.identity_file.clone(),
                source,
            })?;
        if created {
            let public_key = identity.public_key_base64();
            tracing::info!(
                path = %config.identity_file.display(),
                public_key,
                "created a new identity in {} (public key {public_key})",
                config.identity_file.display(),
            );
        }
        let mut stores: BTreeMap<String, Arc<dyn UpstreamStore>> = BTreeMap::new();
        for (name, store) in &config.stores {
            let opened = store.open(name).await.map_err(|e| StartError::Store {
                store: name.clone(),
                reason: e.to_string(),
            })?;
            stores.insert(name.clone(), opened);
        }
        let ca_pem = match &config.control_plane.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| StartError::ControlPlane {
                address: config.control_plane.address.clone(),
                reason: format!("cannot read ca_file {}: {e}", path.display()),
            })?),
            None => None,
        };
        let rotation_days = config.sealing_key_rotation_days.clamp(1, 3650);
        let sealing = SealingKeys::load(
            &config.sealing_keys_dir,
            &identity,
            config.stores.keys().cloned(),
            chrono::Duration::days(i64::from(rotation_days)),
        )
        .map_err(|e| StartError::SealingKeys(e.to_string()))?;
        Ok(ReactorParts {
            sealing,
            address: config.control_plane.address.clone(),
            ca_pem,
            token,
            identity,
            fingerprint: config.fingerprint_key(origin)?,
            stores,
            checkpoint_file: config.checkpoint_file.clone(),
            concurrency: config.limits.concurrency,
        })
    }
}
