//! The Audit service: admins and auditors read the log, filtered and
//! rendered on the server (`application::audit`). This layer only
//! authenticates, converts the request into filters and the entries into
//! wire messages, and maps errors.

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::StreamExt;
use sealplane_proto::v1;
use sealplane_proto::v1::audit_server::Audit;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::api::app::{App, Streamed};
use crate::api::audit_verification;
use crate::api::principals::principals_of;
use crate::api::secrets::{is_listed, secret_detail};
use crate::api::status::invalid;
use crate::api::stores::stores_of;
use crate::application::audit::entry::AuditEntry;
use crate::application::audit::filter::{AuditFilter, LogPoint};
use crate::application::audit::replay::{self, ReplayRequest, Resolved};
use crate::application::audit::{self, record_read};
use crate::application::upload::resolve;
use crate::domain::Role;
use crate::domain::names::{SecretRef, Slug, StoreName};
use crate::read_model::ReadModel;

/// The name refusals and the read's record carry.
const COMMAND: &str = "AuditLog";
/// The name a refused replay carries.
const REPLAY: &str = "AuditReplay";

/// The Audit gRPC service.
pub struct AuditApi {
    app: App,
}

impl AuditApi {
    /// The service over `app`.
    pub fn new(app: App) -> Self {
        AuditApi { app }
    }
}

fn point(point: Option<v1::LogPoint>, field: &str) -> Result<Option<LogPoint>, Status> {
    use v1::log_point::Point;
    match point.and_then(|p| p.point) {
        None => Ok(None),
        Some(Point::Position(p)) => Ok(Some(LogPoint::Position(p))),
        Some(Point::Time(text)) => DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(LogPoint::Time(t.with_timezone(&Utc))))
            .map_err(|_| {
                Status::invalid_argument(format!(
                    "{field} `{text}` is neither a log position nor an RFC 3339 time such as 2026-12-01T10:00:00Z"
                ))
            }),
    }
}

/// The filters of a request; a bare secret path means the default store.
fn filter_of(app: &App, r: v1::AuditLogRequest) -> Result<AuditFilter, Status> {
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    let secret = match some(r.secret) {
        None => None,
        Some(text) => Some(resolve(app, SecretRef::parse(&text).map_err(invalid)?)?),
    };
    AuditFilter {
        since: point(r.since, "since")?,
        until: point(r.until, "until")?,
        actor: some(r.actor)
            .map(Slug::parse)
            .transpose()
            .map_err(invalid)?,
        secret,
        store: some(r.store)
            .map(StoreName::parse)
            .transpose()
            .map_err(invalid)?,
        types: r
            .event_types
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect(),
        follow: r.follow,
    }
    .checked()
    .map_err(invalid)
}

/// The wire form of an entry.
pub fn entry_to_proto(e: AuditEntry) -> v1::AuditEntry {
    let text = |o: Option<String>| o.unwrap_or_default();
    v1::AuditEntry {
        position: e.position,
        time: e.time_text(),
        actor: e.actor,
        event_type: e.event_type,
        target: e.target,
        secret: text(e.secret.map(|s| s.to_string())),
        store: text(e.store.map(|s| s.to_string())),
        principal: text(e.principal.map(|s| s.to_string())),
        request_id: text(e.request_id.map(|id| id.to_string())),
        details: e.details,
    }
}

/// The state of `model` at `at`, rendered by the live queries' own
/// functions; certificates lose their signature (the anchor and serial
/// stay), so no signature body leaves.
pub fn state_of(model: &ReadModel, at: Resolved) -> v1::ReplayState {
    let mut stores = stores_of(model);
    for certificate in stores.iter_mut().filter_map(|s| s.certificate.as_mut()) {
        certificate.signature.clear();
    }
    v1::ReplayState {
        position: at.position.0,
        time: at
            .time
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default(),
        stores,
        secrets: model
            .secrets
            .iter()
            .filter(|(_, s)| is_listed(s))
            .map(|(uri, s)| secret_detail(uri, s))
            .collect(),
        principals: principals_of(model),
    }
}

#[tonic::async_trait]
impl Audit for AuditApi {
    type LogStream = Streamed<v1::AuditEntry>;

    async fn log(
        &self,
        request: Request<v1::AuditLogRequest>,
    ) -> Result<Response<Self::LogStream>, Status> {
        let caller = self.app.authenticate(&request).await?;
        self.app
            .require_role(&caller, &[Role::Admin, Role::Auditor], COMMAND, "audit log")
            .await?;
        let filter = filter_of(&self.app, request.into_inner())?;
        let guard = self.app.open_stream(&caller.actor)?;
        let head = record_read(&self.app, &caller.actor, &filter).await?;
        let entries = ReceiverStream::new(audit::stream(&self.app, filter, head)).map(|entry| {
            entry
                .map(entry_to_proto)
                .map_err(|end| Status::unavailable(end.to_string()))
        });
        Ok(Response::new(
            self.app.guarded(caller, guard, None, entries),
        ))
    }

    type EventsStream = Streamed<v1::AuditEventsPage>;

    async fn checkpoint(
        &self,
        request: Request<v1::AuditCheckpointRequest>,
    ) -> Result<Response<v1::AuditCheckpointReply>, Status> {
        audit_verification::checkpoint(&self.app, request).await
    }

    async fn events(
        &self,
        request: Request<v1::AuditEventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        audit_verification::events(&self.app, request).await
    }

    async fn replay(
        &self,
        request: Request<v1::AuditReplayRequest>,
    ) -> Result<Response<v1::AuditReplayReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        self.app
            .require_role(&caller, &[Role::Admin, Role::Auditor], REPLAY, "audit log")
            .await?;
        let r = request.into_inner();
        let request = ReplayRequest {
            at: point(r.at, "at")?.ok_or_else(|| {
                Status::invalid_argument("`at` is required: a log position or an RFC 3339 time")
            })?,
            from: point(r.from, "from")?,
        };
        let states = replay::replay(&self.app, &caller.actor, request, state_of).await?;
        Ok(Response::new(v1::AuditReplayReply {
            at: Some(states.at),
            from: states.from,
        }))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use sealplane_event_store::{
        EventMetadata, EventStore, EventType, ExpectedVersion, MemoryStore, NewEvent, Position,
    };
    use uuid::Uuid;

    use super::*;
    use crate::domain::DomainEvent;
    use crate::domain::store_catalog::{ReactorKey, StoreCertificate, StoreEvent, StoreKind};
    use crate::projection::as_of;
    use crate::streams;

    #[tokio::test]
    async fn a_replayed_state_is_the_live_rendering_without_certificate_signatures() {
        // Given a certified store, the default,
        let store = MemoryStore::new();
        let local = StoreName::parse("local").unwrap();
        let key = ReactorKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let events = [
            StoreEvent::StoreCreated {
                name: local.clone(),
                kind: StoreKind::File,
                reactor_key: key,
                certificate: Some(StoreCertificate {
                    deployment_id: Uuid::nil(),
                    store: local.clone(),
                    kind: "file".into(),
                    reactor_key: key.to_string(),
                    serial: 1,
                    anchor_key: STANDARD.encode([9u8; 32]),
                    signature: "SIGNATURE-BODY".into(),
                }),
            },
            StoreEvent::DefaultStoreSet {
                name: local.clone(),
            },
        ]
        .iter()
        .map(|e| {
            let meta = EventMetadata::new("admin");
            NewEvent::new(EventType::parse(e.event_type()).unwrap(), 1, e, &meta).unwrap()
        })
        .collect();
        store
            .append(&streams::stores(), ExpectedVersion::Any, events)
            .await
            .unwrap();
        let model = as_of(&store, ReadModel::default(), Position(2))
            .await
            .unwrap();

        // when its state is rendered for a replay,
        let state = state_of(
            &model,
            Resolved {
                position: Position(2),
                time: None,
            },
        );

        // then it is what ListStores shows, less the signature.
        let mut live = stores_of(&model);
        assert_eq!(
            live[0].certificate.as_ref().unwrap().signature,
            "SIGNATURE-BODY"
        );
        live[0].certificate.as_mut().unwrap().signature.clear();
        assert_eq!(state.stores, live);
        assert!(state.stores[0].is_default);
        assert_eq!(state.stores[0].certificate.as_ref().unwrap().serial, 1);
        assert_eq!(state.position, 2);
        assert_eq!(state.principals, principals_of(&model));
    }
}
