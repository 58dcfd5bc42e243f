//! The Reactor service: a reactor follows the log for its own stores and
//! reports on their upload requests. Every call requires the reactor role,
//! and every report is checked by the upload aggregate to come from a
//! reactor bound to the request's store.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sealplane_event_store::Position;
use sealplane_proto::v1;
use sealplane_proto::v1::reactor_server::Reactor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::app::{App, Caller, Streamed};
use crate::api::status::{envelope_of, invalid, parse_uuid, reply_of};
use crate::application::lease::{FEED_LEASE_TTL, FeedLease};
use crate::application::reactor_feed;
use crate::application::upload::{self, Uploaded};
use crate::domain::Role;
use crate::domain::names::{SecretUri, StoreName};
use crate::domain::sealing_keys::{SealingKey, SealingKeyCommand, SealingKeys};
use crate::domain::secret::{Secret, SecretCommand};
use crate::domain::upload::{FailureKind, UploadCommand, UploadRequest};
use crate::streams;

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
        let caller = self.app.authenticate(request).await?;
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

/// The reactor instance named in a feed request, or a fresh id.
fn instance_of(given: &str) -> Result<String, Status> {
    if given.is_empty() {
        return Ok(Uuid::new_v4().to_string());
    }
    let fine = given.len() <= 64 && given.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !fine {
        return Err(Status::invalid_argument(
            "instance_id must be at most 64 letters, digits or `-`",
        ));
    }
    Ok(given.to_owned())
}

fn parse_time(text: &str, field: &str) -> Result<DateTime<Utc>, Status> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Status::invalid_argument(format!("{field} `{text}` is not an RFC 3339 time")))
}

type Feed = Streamed<v1::FeedMessage>;

#[tonic::async_trait]
impl Reactor for ReactorApi {
    type SubscribeStream = Feed;

    async fn subscribe(
        &self,
        request: Request<v1::FeedRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = self.reactor(&request, "Subscribe").await?;
        let request = request.into_inner();
        let from = Position(request.from_position.max(1));
        let instance = instance_of(&request.instance_id)?;
        // A feed resumes at most just past the head: a position beyond it
        // (a checkpoint kept from before a restore, or from another log)
        // would silently skip the events that later take those positions.
        let head = self.app.handler.store().head().await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the log's head");
            Status::unavailable("the event store is unavailable; try again")
        })?;
        if from.0 > head.0.saturating_add(1) {
            return Err(Status::out_of_range(format!(
                "the feed cannot resume at position {}: the log ends at position {}, so the reactor's checkpoint is not from this log (restored from a backup?); remove the reactor's checkpoint file and start it again",
                from.0, head.0
            )));
        }
        let guard = self.app.open_stream(&caller.actor)?;
        // One instance of a reactor holds its feed; another is a standby.
        let slug = caller.actor.slug.to_string();
        let lease = FeedLease::take(self.app.handler.store().clone(), &slug, &instance)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot take a reactor's feed lease");
                Status::unavailable("the event store is unavailable; try again")
            })?
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "standby: another instance of reactor `{slug}` holds its feed; this one takes over when that one stops (within {} s of it dying)",
                    FEED_LEASE_TTL.as_secs()
                ))
            })?;
        let connected = self.app.guards.reactors.connect(
            caller.actor.slug.clone(),
            caller.actor.stores.clone(),
            self.app.now(),
        );
        let feed = reactor_feed::follow(self.app.clone(), caller.actor.stores.clone(), from);
        let model = self.app.model.clone();
        let feed = ReceiverStream::new(feed).map(move |message| {
            message
                .map(|sent| v1::FeedMessage {
                    // At least the message's position: the feed waits for
                    // the read model to reach an event before sending it.
                    head: model.progress().position.0,
                    recorded_at_ms: sent.recorded_at_ms,
                    ..v1::FeedMessage::from(sent.message)
                })
                .inspect(|m| connected.sent(m.position))
                .map_err(|end| Status::unavailable(end.to_string()))
        });
        Ok(Response::new(self.app.guarded(
            caller,
            guard,
            Some(lease),
            feed,
        )))
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
        let envelope = envelope_of(r.options.as_ref(), "ReportUploaded")?;
        let request_id = parse_uuid(&r.request_id, "request_id")?;
        let report = Uploaded {
            version: r.version,
            hash: r.hash,
            key_hashes: r.key_hashes.into_iter().collect(),
            upstream_ref: r.upstream_ref,
        };
        let done = upload::report_uploaded(&self.app, &caller.actor, request_id, report, &envelope)
            .await?;
        Ok(Response::new(reply_of(&done)))
    }

    async fn provide_sealing_key(
        &self,
        request: Request<v1::ProvideSealingKeyRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ProvideSealingKey").await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "ProvideSealingKey")?;
        let store = StoreName::parse(r.store).map_err(invalid)?;
        let (reactor_key, _) = self.app.model.read(|m| {
            m.stores
                .store(&store)
                .filter(|s| !s.removed)
                .map(|s| s.reactor_key)
        });
        let key = SealingKey {
            key_id: r.key_id,
            public_key: r.public_key,
            signature: r.signature,
            not_before: parse_time(&r.not_before, "not_before")?,
            not_after: parse_time(&r.not_after, "not_after")?,
        };
        let command = SealingKeyCommand::Publish {
            store: store.clone(),
            key,
            reactor_key,
        };
        let done = self
            .app
            .execute::<SealingKeys>(
                &streams::sealing_keys(&store),
                &command,
                &self.app.context(&caller),
                &envelope,
            )
            .await?;
        Ok(Response::new(reply_of(&done)))
    }

    async fn report_unchanged(
        &self,
        request: Request<v1::ReportUnchangedRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportUnchanged").await?;
        let r = request.into_inner();
        let command = UploadCommand::ReportUnchanged { version: r.version };
        let (_, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ReportUnchanged",
                &r.request_id,
                command,
            )
            .await?;
        Ok(Response::new(reply))
    }

    async fn report_resealed(
        &self,
        request: Request<v1::ReportResealedRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.reactor(&request, "ReportResealed").await?;
        let r = request.into_inner();
        let command = UploadCommand::ReportResealed {
            key_id: r.key_id,
            ciphertext: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                &r.ciphertext,
            ),
        };
        let (_, reply) = self
            .report(
                &caller,
                r.options.as_ref(),
                "ReportResealed",
                &r.request_id,
                command,
            )
            .await?;
        Ok(Response::new(reply))
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
        let kind = FailureKind::from_proto(r.kind, &r.reason);
        let command = UploadCommand::ReportFailed {
            reason: r.reason,
            kind,
        };
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
