//! The Operations service: `GetStatus`, the control plane at a glance for
//! admins and auditors (issue 16). Reads only: the log head, the read
//! model's progress, readiness by the rule of `/readyz`, and the reactors
//! subscribed now. Converts; the facts come from `health` and
//! `application::connected_reactors`.

use chrono::SecondsFormat;
use sealplane_host::admin::Readiness;
use sealplane_proto::v1;
use sealplane_proto::v1::operations_server::Operations;
use tonic::{Request, Response, Status};

use crate::api::app::App;
use crate::domain::Role;
use crate::health::{judge, observe};

/// The Operations gRPC service.
pub struct OperationsApi {
    app: App,
}

impl OperationsApi {
    /// The service over `app`.
    pub fn new(app: App) -> Self {
        OperationsApi { app }
    }
}

#[tonic::async_trait]
impl Operations for OperationsApi {
    async fn get_status(
        &self,
        request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::StatusReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        self.app
            .require_role(
                &caller,
                &[Role::Admin, Role::Auditor],
                "GetStatus",
                "status",
            )
            .await?;
        let store = self.app.handler.store();
        // The observation `/readyz` makes: the head read from the store,
        // and the read model given a moment to apply it, so that a write
        // just before this call does not read as lag.
        let seen = observe(&self.app).await;
        let progress = seen.progress;
        let readiness = match judge(&seen) {
            Readiness::Ready => "ready".to_owned(),
            Readiness::NotReady(why) => format!("not ready: {why}"),
        };
        let log_head = seen.head.map(|h| h.0).unwrap_or(0);
        let reactors = self
            .app
            .guards
            .reactors
            .list()
            .into_iter()
            .map(|r| v1::ConnectedReactor {
                principal: r.principal.to_string(),
                stores: r.stores.iter().map(ToString::to_string).collect(),
                feed_position: r.position,
                lag: log_head.saturating_sub(r.position),
                connected_since: r.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            })
            .collect();
        // "POSITION:LOG_HASH" as `restore --checkpoint` takes it; empty
        // (shown as none) when this server signs none or has signed none yet.
        let latest_checkpoint = match &self.app.checkpoints {
            Some(c) => c
                .latest()
                .await
                .map(|c| format!("{}:{}", c.point.position, c.point.log_hash_hex()))
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(Response::new(v1::StatusReply {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            event_store_backend: store.backend().to_owned(),
            log_head,
            read_model: Some(v1::ReadPosition {
                position: progress.position.0,
                caught_up: progress.caught_up,
            }),
            read_model_lag: log_head.saturating_sub(progress.position.0),
            readiness,
            deployment_id: self
                .app
                .model
                .read(|m| m.deployment_id)
                .0
                .map(|d| d.to_string())
                .unwrap_or_default(),
            latest_checkpoint,
            reactors,
        }))
    }
}
