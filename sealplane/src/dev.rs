//! The in-process reactor of `sealplane dev`: a file store named `local`
//! under the data directory, served by a reactor whose identity, keys and
//! checkpoint live there too, registered as the default store.
//!
//! It is the same reactor as `sealplane-reactor run`, talking to this
//! process over loopback gRPC, so dev mode exercises the real protocol:
//! the control plane still never sees a value.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use chrono::Duration as TimeDelta;
use sealplane_reactors::config::{
    ControlPlaneConfig, FileStoreConfig, FingerprintConfig, ReactorConfig, ReactorLimits,
    StoreConfig,
};
use sealplane_reactors::master_key::{MasterKey, MasterKeyError};
use sealplane_reactors::reactor::{Reactor, ReactorParts, StartError};
use zeroize::Zeroizing;

use sealplane_control_plane::api::app::App;
use sealplane_control_plane::bootstrap::{self, DevReactorError};
use sealplane_control_plane::domain::names::StoreName;
use sealplane_proto::certificate::TrustAnchor;

/// The dev file store's name.
pub const DEV_STORE: &str = "local";

/// Why the dev reactor could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error(transparent)]
    Key(#[from] MasterKeyError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Register(#[from] DevReactorError),
    #[error("trust anchor {path}: {reason}")]
    Anchor { path: String, reason: String },
    #[error(transparent)]
    AnchorFile(#[from] crate::key_file::KeyFileError),
}

/// The reactor configuration dev mode runs with, all files under `dir`.
pub fn reactor_config(dir: &Path, addr: SocketAddr) -> ReactorConfig {
    let mut stores = BTreeMap::new();
    stores.insert(
        DEV_STORE.to_owned(),
        StoreConfig::File(FileStoreConfig {
            root: dir.join("files"),
            master_key_file: Some(dir.join("master.key")),
            master_key_env: None,
        }),
    );
    ReactorConfig {
        control_plane: ControlPlaneConfig {
            address: format!("http://{addr}"),
            ca_file: None,
            token_file: None,
            token_env: None,
        },
        identity_file: dir.join("reactor-identity"),
        checkpoint_file: dir.join("reactor.checkpoint"),
        sealing_keys_dir: dir.join("sealing-keys"),
        sealing_key_rotation_days: 30,
        fingerprint: FingerprintConfig {
            key_id: "dev".into(),
            key_file: Some(dir.join("fingerprint.key")),
            key_env: None,
        },
        limits: ReactorLimits::default(),
        stores,
        // Dev mode's one admin listener (`--admin-listen`) is the control plane's.
        admin: None,
    }
}

/// Dev mode's own trust anchor (ADR 0010): created in the data directory
/// on first start, 0600, and kept; it certifies the `local` store.
pub fn trust_anchor(dir: &Path) -> Result<TrustAnchor, DevError> {
    let path = dir.join("trust-anchor.key");
    let (anchor, _) = crate::key_file::load_or_create(
        &path,
        "trust anchor key file",
        |text| TrustAnchor::from_text(text).map_err(|e| e.to_string()),
        || {
            let anchor = TrustAnchor::generate();
            let text = anchor.to_text();
            (anchor, text)
        },
    )?;
    Ok(anchor)
}

/// Creates missing keys, registers store and reactor with `app` (the store
/// certified by `anchor`), and returns the reactor, ready to run against
/// `addr`.
pub async fn reactor(
    app: &App,
    dir: &Path,
    addr: SocketAddr,
    anchor: &TrustAnchor,
) -> Result<Reactor, DevError> {
    let config = reactor_config(dir, addr);
    // The key files the config names: created on first start, kept after.
    let master_keys = config
        .stores
        .values()
        .filter_map(StoreConfig::master_key_file);
    for file in config
        .fingerprint
        .key_file
        .as_deref()
        .into_iter()
        .chain(master_keys)
    {
        MasterKey::load_or_create(file)?;
    }
    // The token is only known once the identity is registered, so build
    // the parts with a placeholder and set it after.
    let mut parts =
        ReactorParts::from_config_with_token(&config, "dev", Zeroizing::new(String::new())).await?;
    let key = parts.identity.public_key_base64();
    let key_bytes = parts.identity.public_key_bytes();
    let store = StoreName::parse(DEV_STORE).map_err(|_| DevError::Anchor {
        path: DEV_STORE.into(),
        reason: "not a store name".into(),
    })?;
    let certify = |deployment_id| anchor.certify(deployment_id, store, "file", key_bytes, 1);
    let token = bootstrap::dev_reactor(app, DEV_STORE, &key, certify, TimeDelta::days(30)).await?;
    parts.token = Zeroizing::new(token.expose().to_owned());
    Ok(Reactor::new(parts)?)
}
