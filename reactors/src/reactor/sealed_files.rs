//! Sealed files (SPEC §11, ADR 0025): keeping each store's sealing keys
//! current and published, opening submitted files with them (apply or
//! reseal), and destroying retired keys.
//!
//! Plaintext exists here only between [`sealed::open_file`] and the end of
//! [`Work::open_sealed`], inside a zeroizing `SecretValue`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sealplane_proto::feed::SealedSubmission;
use sealplane_proto::sealed;
use sealplane_proto::v1;
use tokio::sync::watch;
use uuid::Uuid;

use super::Work;
use super::actions::Outcome;
use super::failure::ActionError;
use super::reports::command_options;
use crate::ledger::RequestInfo;
use crate::sealing_keys::Published;
use crate::upstream::{RetryPolicy, WriteMeta, retry};

/// How often the reactor checks whether a store's sealing key is due for
/// rotation (and publishes its keys again, in case a publication was lost).
const ROTATION_CHECK: Duration = Duration::from_secs(3600);

impl Work {
    /// Makes a store's first sealing key, rotates on schedule, and
    /// publishes every key held, at start and then every hour.
    pub(super) async fn keep_sealing_keys(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(ROTATION_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            for store in self.stores.keys() {
                self.rotate(store, None).await;
                for key in self.sealing.published(store) {
                    self.publish(&key).await;
                }
            }
        }
    }

    /// Makes a new key for `store` when due (or asked at `position`) and
    /// publishes it.
    pub(super) async fn rotate(&self, store: &str, position: Option<u64>) {
        match self
            .sealing
            .rotate_if_due(&self.identity, store, Utc::now(), position)
        {
            Ok(Some(key)) => {
                let key_id = key.statement.key_id.as_str();
                tracing::info!(store, key_id, "made sealing key {key_id} for store {store}");
                self.publish(&key).await;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(store, error = %e, "cannot make a sealing key: {e}"),
        }
    }

    async fn publish(&self, key: &Published) {
        let s = &key.statement;
        let call = v1::ProvideSealingKeyRequest {
            options: Some(command_options()),
            store: s.store.clone(),
            key_id: s.key_id.clone(),
            public_key: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                s.public_key,
            ),
            not_before: s.not_before_text(),
            not_after: s.not_after_text(),
            signature: key.signature.clone(),
        };
        self.call(
            "ProvideSealingKey",
            Uuid::nil(),
            call,
            |mut c, r| async move { c.provide_sealing_key(r).await },
        )
        .await;
    }

    /// Destroys a retired key.
    pub(super) fn retire(&self, store: &str, key_id: &str) {
        match self.sealing.retire(store, key_id) {
            Ok(true) => tracing::info!(store, key_id, "destroyed retired sealing key {key_id}"),
            Ok(false) => {}
            Err(e) => tracing::error!(store, key_id, error = %e, "cannot destroy sealing key: {e}"),
        }
    }

    /// Opens a sealed file and applies it (or reseals it).
    pub(super) async fn open_sealed(
        &self,
        request: &RequestInfo,
        file: &SealedSubmission,
    ) -> Result<Outcome, ActionError> {
        let store_name = request.uri.store.as_str();
        let uri = request.uri.to_string();
        let secret = self
            .sealing
            .secret(store_name, &file.key_id)
            .ok_or_else(|| ActionError::UnknownSealingKey {
                key_id: file.key_id.clone(),
            })?;
        let payload = sealed::open_file(&file.ciphertext, &secret, &uri, &file.key_id)?;
        drop(secret);
        if file.reseal {
            let (key_id, public) = self
                .sealing
                .newest(store_name)
                .filter(|(newest, _)| *newest != file.key_id)
                .ok_or_else(|| ActionError::NoNewerSealingKey {
                    key_id: file.key_id.clone(),
                })?;
            let resealed = sealed::seal_file(&payload.for_key(key_id.clone()), &public)?;
            return Ok(Outcome::Resealed {
                key_id,
                ciphertext: resealed,
            });
        }
        let value = payload.data();
        let fingerprint = self.fingerprint.fingerprint(&request.uri.path, value);
        if let Some((version, hash)) = &file.current
            && *hash == fingerprint.hash
        {
            return Ok(Outcome::Unchanged { version: *version });
        }
        let store = self
            .stores
            .get(store_name)
            .ok_or_else(|| ActionError::NoStore {
                store: store_name.to_owned(),
            })?;
        let meta = WriteMeta {
            uri: uri.clone(),
            request_id: request.request_id,
            adopt: false,
        };
        let path = request.uri.path.as_str();
        let written = retry(&RetryPolicy::default(), || store.put(path, value, &meta)).await?;
        Ok(Outcome::Uploaded {
            version: written.version,
            hash: fingerprint.hash,
            key_hashes: fingerprint.key_hashes,
            upstream_ref: written.upstream_ref,
        })
    }
}
