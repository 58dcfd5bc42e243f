//! Reports to the control plane (`ReportUploaded`, `ReportFailed`, ...),
//! retried while it is unreachable and dropped, logged, when it refuses
//! them: the control plane is the judge of what may happen, and every
//! report carries a fresh command id and is idempotent there.

use std::future::Future;

use sealplane_proto::limits::{MAX_REASON_BYTES, truncate_to};
use sealplane_proto::v1;
use tonic::Code;
use uuid::Uuid;

use super::actions::Outcome;
use super::client::Client;
use super::failure::ActionError;
use super::{CONTROL_PLANE_RETRY, Work};
use crate::ledger::RequestInfo;
use crate::metrics::failure_label;

impl Work {
    /// Reports what carrying out an upload produced.
    pub(super) async fn report_outcome(
        &self,
        request: &RequestInfo,
        outcome: Result<Outcome, ActionError>,
    ) {
        let id = request.request_id;
        if outcome.is_ok()
            && let Some(metrics) = self.store_metrics(request.uri.store.as_str())
        {
            metrics.completed();
        }
        match outcome {
            Ok(Outcome::Uploaded {
                version,
                hash,
                key_hashes,
                upstream_ref,
            }) => {
                tracing::info!(
                    request_id = %id,
                    uri = %request.uri,
                    version,
                    "request {id}: stored {} version {version}",
                    request.uri
                );
                let call = v1::ReportUploadedRequest {
                    options: Some(command_options()),
                    request_id: id.to_string(),
                    version,
                    hash,
                    key_hashes: key_hashes.into_iter().collect(),
                    upstream_ref,
                };
                self.call("ReportUploaded", id, call, |mut c, r| async move {
                    c.report_uploaded(r).await
                })
                .await;
            }
            Ok(Outcome::Verified { matches }) => {
                tracing::info!(
                    request_id = %id,
                    uri = %request.uri,
                    matches,
                    "request {id}: verified {} ({})",
                    request.uri,
                    if matches { "match" } else { "no match" }
                );
                let call = v1::ReportVerifiedRequest {
                    options: Some(command_options()),
                    request_id: id.to_string(),
                    matches,
                };
                self.call("ReportVerified", id, call, |mut c, r| async move {
                    c.report_verified(r).await
                })
                .await;
            }
            Ok(Outcome::Unchanged { version }) => {
                tracing::info!(
                    request_id = %id,
                    uri = %request.uri,
                    version,
                    "request {id}: the sealed file for {} holds version {version}'s value; nothing written",
                    request.uri
                );
                let call = v1::ReportUnchangedRequest {
                    options: Some(command_options()),
                    request_id: id.to_string(),
                    version,
                };
                self.call("ReportUnchanged", id, call, |mut c, r| async move {
                    c.report_unchanged(r).await
                })
                .await;
            }
            Ok(Outcome::Resealed { key_id, ciphertext }) => {
                tracing::info!(
                    request_id = %id,
                    uri = %request.uri,
                    key_id,
                    "request {id}: resealed the file for {} to sealing key {key_id}",
                    request.uri
                );
                let call = v1::ReportResealedRequest {
                    options: Some(command_options()),
                    request_id: id.to_string(),
                    key_id,
                    ciphertext,
                };
                self.call("ReportResealed", id, call, |mut c, r| async move {
                    c.report_resealed(r).await
                })
                .await;
            }
            Err(e) => self.report_failed(request, &e).await,
        }
    }

    /// Reports `request` failed; the reason is the error's message, cut to
    /// what the control plane accepts.
    pub(super) async fn report_failed(&self, request: &RequestInfo, error: &ActionError) {
        let id = request.request_id;
        if let Some(metrics) = self.store_metrics(request.uri.store.as_str()) {
            metrics.failed(failure_label(error.kind()));
        }
        let reason = truncate_to(error.to_string(), MAX_REASON_BYTES);
        if error.is_key_lost() {
            // Expected after a restart, and it heals by itself.
            tracing::info!(
                request_id = %id,
                uri = %request.uri,
                error = %reason,
                "request {id} for {} failed (expected after a restart; sealctl retries with a new request): {reason}",
                request.uri
            );
        } else {
            tracing::warn!(
                request_id = %id,
                uri = %request.uri,
                error = %reason,
                "request {id} for {} failed: {reason}",
                request.uri
            );
        }
        let call = v1::ReportFailedRequest {
            options: Some(command_options()),
            request_id: id.to_string(),
            reason,
            kind: error.kind().to_proto() as i32,
        };
        self.call("ReportFailed", id, call, |mut c, r| async move {
            c.report_failed(r).await
        })
        .await;
    }

    /// Reports that the key of request `id` expired unused.
    pub(super) async fn report_expired(&self, id: Uuid) {
        let call = v1::ReportKeyExpiredRequest {
            options: Some(command_options()),
            request_id: id.to_string(),
        };
        self.call("ReportKeyExpired", id, call, |mut c, r| async move {
            c.report_key_expired(r).await
        })
        .await;
    }

    /// Sends `request` with `send`, retrying while the control plane is
    /// unreachable; a refusal is logged and dropped.
    pub(super) async fn call<R, T, F, Fut>(&self, what: &str, id: Uuid, request: R, send: F)
    where
        R: Clone,
        F: Fn(Client, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let policy = &CONTROL_PLANE_RETRY;
        let mut delay = policy.backoff();
        for attempt in 1..=policy.attempts {
            match send(self.client.clone(), request.clone()).await {
                Ok(_) => return,
                Err(status) if retryable(status.code()) && attempt < policy.attempts => {
                    tracing::warn!(
                        call = what,
                        request_id = %id,
                        attempt,
                        error = status.message(),
                        "{what} for {id}: the control plane is unreachable ({}); retrying",
                        status.message()
                    );
                    tokio::time::sleep(delay.next_delay()).await;
                }
                Err(status) => {
                    tracing::warn!(
                        call = what,
                        request_id = %id,
                        code = ?status.code(),
                        error = status.message(),
                        "{what} for {id} was not accepted: {}",
                        status.message()
                    );
                    return;
                }
            }
        }
    }
}

/// Whether a call that failed with `code` may succeed later.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
    )
}

/// Fresh options for one report: a new command id each time.
pub(super) fn command_options() -> v1::CommandOptions {
    v1::CommandOptions {
        command_id: Uuid::new_v4().to_string(),
        correlation_id: String::new(),
    }
}
