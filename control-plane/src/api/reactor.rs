//! The Reactor service: a reactor follows the log for its own stores and
//! reports on their upload requests. Every call requires the reactor role,
//! and every report is checked by the upload aggregate to come from a
//! reactor bound to the request's store.

use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::StreamExt;
use sealplane_event_store::{Position, RecordedEvent, SubscriptionMessage};
use sealplane_proto::v1;
use sealplane_proto::v1::reactor_server::Reactor;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::app::{App, Caller};
use crate::api::recorded_event::event_to_proto;
use crate::api::status::{envelope_of, invalid, parse_uuid, reply_of, status_of};
use crate::command::CommandEnvelope;
use crate::domain::Role;
use crate::domain::names::{SecretUri, StoreName};
use crate::domain::secret::{Secret, SecretCommand};
use crate::domain::upload::{UploadCommand, UploadEvent, UploadRequest};
use crate::streams::{self, StreamKind, kind_of};

/// How long the feed waits for the read model to reach an event it filters.
const FILTER_WAIT: Duration = Duration::from_secs(30);

/// The Reactor gRPC service.
pub struct ReactorApi {
    app: App,
}

impl ReactorApi {
    /// The service over `app`.
    pub fn new(app: App) -> Self {
        ReactorApi { app }
    }

    async fn reactor<T>(
        &self,
        request: &Request<T>,
        command: &'static str,
    ) -> Result<Caller, Status> {
        let caller = self.app.authenticate(request)?;
        self.app
            .require_role(&caller, &[Role::Reactor], command, "reactor")
            .await?;
        Ok(caller)
    }

    async fn report(
        &self,
        caller: &Caller,
        options: Option<&v1::CommandOptions>,
        name: &'static str,
        request_id: &str,
        command: UploadCommand,
    ) -> Result<(Uuid, v1::CommandReply), Status> {
        let envelope = envelope_of(options, name)?;
        let request_id = parse_uuid(request_id, "request_id")?;
        let ctx = self.app.context(caller);
        let done = self
            .app
            .execute::<UploadRequest>(&streams::upload(request_id), &command, &ctx, &envelope)
            .await?;
        Ok((request_id, reply_of(&done)))
    }
}

/// The store an event of the log concerns, given the read model has
/// applied it.
fn store_of(app: &App, event: &RecordedEvent) -> Option<StoreName> {
    match kind_of(&event.stream_id)? {
        StreamKind::Secret(uri) => Some(uri.store),
        StreamKind::Upload(id) => app.model.read(|m| m.upload_store(&id).cloned()).0,
        _ => None,
    }
}

fn parse_time(text: &str, field: &str) -> Result<DateTime<Utc>, Status> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Status::invalid_argument(format!("{field} `{text}` is not an RFC 3339 time")))
}

type Feed = Pin<Box<dyn Stream<Item = Result<v1::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Reactor for ReactorApi {
    type SubscribeStream = Feed;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = self.reactor(&request, "Subscribe").await?;
        let from = Position(request.into_inner().from_position.max(1));
        let mut events = self.app.handler.store().subscribe_all(from);
        let (tx, rx) = mpsc::channel(64);
        let app = self.app.clone();
        let stores = caller.actor.stores.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = events.next() => match message {
                        Some(message) => message,
                        None => return,
                    },
                    () = app.shutting_down() => {
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down; resubscribe from your checkpoint"))).await;
                        return;
                    }
                };
                let response = match message {
                    Ok(SubscriptionMessage::Event(event)) => {
                        // Filter by the read model, once it has seen this
                        // event (an upload's later events name no store).
                        if app
                            .model
                            .wait_for(event.position, FILTER_WAIT)
                            .await
                            .is_err()
                        {
                            let _ = tx
                                .send(Err(Status::unavailable(
                                    "the read model is lagging; resubscribe from your checkpoint",
                                )))
                                .await;
                            return;
                        }
                        match store_of(&app, &event) {
                            Some(store) if stores.contains(&store) => v1::SubscribeResponse {
                                message: Some(v1::subscribe_response::Message::Event(
                                    event_to_proto(&event),
                                )),
                            },
                            _ => continue,
                        }
                    }
                    Ok(SubscriptionMessage::CaughtUp(at)) => v1::SubscribeResponse {
                        message: Some(v1::subscribe_response::Message::CaughtUp(at.0)),
                    },
                    Err(e) => {
                        eprintln!("sealplane: reactor feed failed: {e}");
                        let _ = tx
                            .send(Err(Status::unavailable(
                                "the event feed failed; resubscribe from your checkpoint",
                            )))
                            .await;
                        return;
                    }
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn provide_key(
        &self,
        request: Request<v1::ProvideKeyRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ProvideKey").await?;
        let r = request.into_inner();
        let command = UploadCommand::ProvideKey {
            public_key: r.public_key,
            signature: r.signature,
            expires_at: parse_time(&r.expires_at, "expires_at")?,
        };
        let (_, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ProvideKey",
                &r.request_id,
                command,
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn report_uploaded(
        &self,
        request: Request<v1::ReportUploadedRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportUploaded").await?;
        let r = request.into_inner();
        let command = UploadCommand::ReportUploaded {
            version: r.version,
            hash: r.hash,
            key_hashes: r.key_hashes.into_iter().collect(),
            upstream_ref: r.upstream_ref,
        };
        let (request_id, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ReportUploaded",
                &r.request_id,
                command,
            )
            .await?;
        // Second step, in the secret's own stream: record the version. Run
        // on every (re)report, so a crash between the two appends is healed
        // by the reactor's retry; RecordVersion is idempotent per request.
        let loaded = self
            .app
            .handler
            .load::<UploadRequest>(&streams::upload(request_id))
            .await
            .map_err(status_of)?;
        let (uri, requester, outcome) = match (
            loaded.state.uri(),
            loaded.state.requester(),
            loaded.state.outcome(),
        ) {
            (Some(u), Some(r), Some(o)) => (u.clone(), r.clone(), o.clone()),
            _ => return Err(Status::internal("an uploaded request lost its details")),
        };
        let UploadEvent::SecretUploaded {
            version,
            hash,
            key_hashes,
            ..
        } = outcome
        else {
            return Err(Status::internal("an uploaded request has another outcome"));
        };
        let record = SecretCommand::RecordVersion {
            request_id,
            version,
            hash,
            key_hashes,
            by: requester,
            at: self.app.now(),
        };
        let ctx = self.app.context(&caller);
        let secret_reply = self
            .app
            .execute::<Secret>(
                &streams::secret(&uri),
                &record,
                &ctx,
                &CommandEnvelope::new("RecordVersion"),
            )
            .await?;
        Ok(Response::new(v1::CommandReply {
            events: reply.events + secret_reply.events as u32,
            position: reply
                .position
                .max(secret_reply.position.map(|p| p.0).unwrap_or(0)),
        }))
    }

    async fn report_verified(
        &self,
        request: Request<v1::ReportVerifiedRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportVerified").await?;
        let r = request.into_inner();
        let command = UploadCommand::ReportVerified { matches: r.matches };
        let (_, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ReportVerified",
                &r.request_id,
                command,
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn report_failed(
        &self,
        request: Request<v1::ReportFailedRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportFailed").await?;
        let r = request.into_inner();
        let command = UploadCommand::ReportFailed { reason: r.reason };
        let (_, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ReportFailed",
                &r.request_id,
                command,
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn report_key_expired(
        &self,
        request: Request<v1::ReportKeyExpiredRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportKeyExpired").await?;
        let r = request.into_inner();
        let (_, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ReportKeyExpired",
                &r.request_id,
                UploadCommand::ExpireKey,
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn report_deleted(
        &self,
        request: Request<v1::ReportDeletedRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportDeleted").await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "ReportDeleted")?;
        let uri = SecretUri::parse(&r.uri).map_err(invalid)?;
        let ctx = self.app.context(&caller);
        let done = self
            .app
            .execute::<Secret>(
                &streams::secret(&uri),
                &SecretCommand::RecordDeletion {
                    destroyed: r.destroyed,
                },
                &ctx,
                &envelope,
            )
            .await?;
        Ok(Response::new(reply_of(&done)))
    }
}
