//! Carrying out the [`Action`]s the ledger hands out: issuing one-time
//! keys, opening sealed payloads and writing (or comparing) them upstream,
//! deleting upstream, and destroying keys that expire unused.
//!
//! Plaintext exists only between [`sealed::open`] and the end of
//! [`Work::open_and_store`], inside a zeroizing [`SecretValue`].

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use sealplane_proto::names::SecretUri;
use sealplane_proto::offer::KeyOffer;
use sealplane_proto::sealed::{self, SecretValue};
use sealplane_proto::v1;
use tokio::sync::watch;
use uuid::Uuid;

use super::failure::ActionError;
use super::reports::command_options;
use super::{EXPIRY_TICK, Work};
use crate::ledger::{Action, Purpose, RequestInfo};
use crate::upstream::{RetryPolicy, UpstreamError, WriteMeta, retry};

/// What carrying out an upload produced.
pub(super) enum Outcome {
    Uploaded {
        version: u64,
        hash: String,
        key_hashes: BTreeMap<String, String>,
        upstream_ref: String,
    },
    Verified {
        matches: bool,
    },
    /// A sealed file held the latest version's value.
    Unchanged {
        version: u64,
    },
    /// A sealed file resealed to sealing key `key_id`.
    Resealed {
        key_id: String,
        ciphertext: Vec<u8>,
    },
}

impl Work {
    /// Runs `action` in its own task once a slot is free.
    pub(super) async fn spawn(self: Arc<Self>, action: Action) {
        let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            self.carry_out(action).await;
            drop(permit);
        });
    }

    async fn carry_out(&self, action: Action) {
        match action {
            Action::ProvideKey(request) => self.provide_key(&request).await,
            Action::Open {
                request,
                ciphertext,
            } => {
                let outcome = self.open_and_store(&request, &ciphertext).await;
                self.report_outcome(&request, outcome).await;
            }
            Action::KeyLost(request) => {
                self.report_failed(&request, &ActionError::KeyIssuedBeforeRestart)
                    .await;
            }
            Action::Delete { uri, destroy } => self.delete(&uri, destroy).await,
            Action::OpenSealed { request, file } => {
                let outcome = self.open_sealed(&request, &file).await;
                self.report_outcome(&request, outcome).await;
            }
            Action::RotateSealingKey { store, position } => {
                self.rotate(&store, Some(position)).await;
            }
            Action::RetireSealingKey { store, key_id } => self.retire(&store, &key_id),
        }
    }

    async fn provide_key(&self, request: &RequestInfo) {
        if Utc::now() >= request.expires_at {
            self.metrics.keys_expired.inc();
            self.report_expired(request.request_id).await;
            return;
        }
        let public_key = self.keys.issue(request.request_id, request.expires_at);
        if let Some(metrics) = self.store_metrics(request.uri.store.as_str()) {
            metrics.opened();
        }
        let offer = KeyOffer {
            request_id: request.request_id,
            store: request.uri.store.to_string(),
            uri: request.uri.to_string(),
            purpose: request.purpose,
            public_key: *public_key.as_bytes(),
            expires_at: request.expires_at,
        };
        let signature = self.identity.sign(&offer);
        let call = v1::ProvideKeyRequest {
            options: Some(command_options()),
            request_id: request.request_id.to_string(),
            public_key: STANDARD.encode(public_key.as_bytes()),
            signature: STANDARD.encode(signature),
            expires_at: request
                .expires_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        self.call(
            "ProvideKey",
            request.request_id,
            call,
            |mut c, r| async move { c.provide_key(r).await },
        )
        .await;
    }

    /// Opens the payload and writes it upstream (or compares it).
    async fn open_and_store(
        &self,
        request: &RequestInfo,
        ciphertext: &[u8],
    ) -> Result<Outcome, ActionError> {
        let key = self.keys.take(request.request_id, Utc::now())?;
        let uri = request.uri.to_string();
        let value = sealed::open(
            ciphertext,
            key.secret_key(),
            request.request_id,
            &uri,
            request.purpose,
        )?;
        // The key has done its one job: destroy it before any slow I/O.
        drop(key);
        let (store_name, path) = (request.uri.store.as_str(), request.uri.path.as_str());
        let store = self
            .stores
            .get(store_name)
            .ok_or_else(|| ActionError::NoStore {
                store: store_name.to_owned(),
            })?;
        match request.purpose {
            Purpose::Put { adopt } => {
                let meta = WriteMeta {
                    uri: uri.clone(),
                    request_id: request.request_id,
                    adopt,
                };
                let written =
                    retry(&RetryPolicy::default(), || store.put(path, &value, &meta)).await?;
                let fingerprint = self.fingerprint.fingerprint(&request.uri.path, &value);
                Ok(Outcome::Uploaded {
                    version: written.version,
                    hash: fingerprint.hash,
                    key_hashes: fingerprint.key_hashes,
                    upstream_ref: written.upstream_ref,
                })
            }
            Purpose::Verify => {
                let current: SecretValue = retry(&RetryPolicy::default(), || store.get(path))
                    .await?
                    .ok_or_else(|| ActionError::NothingToCompare { uri: uri.clone() })?;
                let stored = self.fingerprint.fingerprint(&request.uri.path, &current);
                Ok(Outcome::Verified {
                    matches: self.fingerprint.matches(&request.uri.path, &value, &stored),
                })
            }
        }
    }

    async fn delete(&self, uri: &SecretUri, destroy: bool) {
        let (store_name, path) = (uri.store.as_str(), uri.path.as_str());
        let uri = uri.to_string();
        let uri = uri.as_str();
        let Some(store) = self.stores.get(store_name) else {
            tracing::error!(
                uri,
                store = store_name,
                "cannot delete {uri}: this reactor is not configured for store `{store_name}`"
            );
            return;
        };
        match retry(&RetryPolicy::default(), || store.delete(path, destroy)).await {
            Ok(()) | Err(UpstreamError::NotFound { .. }) => {}
            Err(e) => {
                let error = ActionError::from(e);
                tracing::warn!(
                    uri,
                    store = store_name,
                    %error,
                    "deleting {uri} upstream failed, it stays pending until the reactor restarts: {error}"
                );
                return;
            }
        }
        tracing::info!(
            uri,
            store = store_name,
            destroyed = destroy,
            "{} {uri} upstream",
            if destroy { "destroyed" } else { "deleted" }
        );
        let call = v1::ReportDeletedRequest {
            options: Some(command_options()),
            uri: uri.to_owned(),
            destroyed: destroy,
        };
        self.call("ReportDeleted", Uuid::nil(), call, |mut c, r| async move {
            c.report_deleted(r).await
        })
        .await;
    }

    /// Destroys keys that expire unused and reports their requests.
    pub(super) async fn expire_keys(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            for id in self.keys.expire(Utc::now()) {
                self.metrics.keys_expired.inc();
                tracing::info!(
                    request_id = %id,
                    "request {id}: its one-time key expired unused and was destroyed"
                );
                self.report_expired(id).await;
            }
        }
    }
}
