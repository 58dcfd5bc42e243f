//! The Secrets service: the sealed upload protocol (SPEC §3) and the read
//! side (lists, versions, hashes, access lists, history). The control plane
//! only ever handles ciphertext sealed to a reactor's one-time key.

use std::pin::Pin;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::SecondsFormat;
use futures_core::Stream;
use sealplane_event_store::StreamVersion;
use sealplane_proto::v1;
use sealplane_proto::v1::secrets_server::Secrets;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::api::app::{App, Caller, STREAM_RECHECK};
use crate::api::status::{envelope_of, invalid, parse_uuid, reply_of};
use crate::application::{access, sealing, upload};
use crate::domain::Role;
use crate::domain::names::{SecretRef, SecretUri, Slug, StoreName};
use crate::domain::secret::{AccessList, Secret, SecretCommand};
use crate::domain::upload::{
    FailureKind, Purpose, UploadCommand, UploadEvent, UploadRequest, UploadStatus,
};
use crate::streams;

/// The Secrets gRPC service.
pub struct SecretsApi {
    app: App,
}

impl SecretsApi {
    /// The service over `app`.
    pub fn new(app: App) -> Self {
        SecretsApi { app }
    }

    /// Resolves what the user typed to a full uri (bare paths go to the
    /// default store).
    fn resolve(&self, text: &str) -> Result<SecretUri, Status> {
        let reference = SecretRef::parse(text).map_err(invalid)?;
        Ok(upload::resolve(&self.app, reference)?)
    }

    /// Refuses readers outside the secret's access lists.
    async fn require_reader(
        &self,
        caller: &Caller,
        uri: &SecretUri,
        command: &'static str,
    ) -> Result<(), Status> {
        let ctx = self.app.context(caller);
        Ok(upload::require_reader(&self.app, &ctx, uri, command).await?)
    }
}

fn not_found(uri: &SecretUri) -> Status {
    upload::not_found(uri).into()
}

/// The wire form of an upload request's state; `secret` is its secret's,
/// which holds the hashes of a compacted stored request (ADR 0028).
pub fn upload_status(
    request: &UploadRequest,
    secret: Option<&Secret>,
    position: u64,
) -> v1::UploadStatus {
    use v1::UploadState as S;
    let state = match request.status() {
        UploadStatus::Absent => S::Unspecified,
        UploadStatus::Requested => S::KeyRequested,
        UploadStatus::KeyProvided => S::KeyProvided,
        UploadStatus::UploadRequested => S::UploadRequested,
        UploadStatus::Uploaded => S::Uploaded,
        UploadStatus::Verified => S::Verified,
        UploadStatus::Failed => S::Failed,
        UploadStatus::Expired => S::Expired,
        UploadStatus::Unchanged => S::Unchanged,
        UploadStatus::Resealed => S::Resealed,
    };
    let mut status = v1::UploadStatus {
        request_id: request
            .request_id()
            .map(|r| r.to_string())
            .unwrap_or_default(),
        uri: request.uri().map(|u| u.to_string()).unwrap_or_default(),
        state: state as i32,
        public_key: request.public_key().unwrap_or_default().to_owned(),
        signature: request.signature().unwrap_or_default().to_owned(),
        expires_at: request
            .expires_at()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default(),
        position,
        ..Default::default()
    };
    match request.outcome() {
        Some(UploadEvent::SecretUploaded {
            version,
            hash,
            key_hashes,
            ..
        }) => {
            status.version = *version;
            status.hash = hash.clone();
            status.key_hashes = key_hashes.clone().into_iter().collect();
        }
        Some(UploadEvent::SecretVerified { matches, .. }) => status.matches = *matches,
        Some(UploadEvent::SealedFileUnchanged { version, .. }) => status.version = *version,
        Some(UploadEvent::SealedFileResealed {
            key_id, ciphertext, ..
        }) => {
            status.sealing_key_id = key_id.clone();
            status.resealed_ciphertext = STANDARD.decode(ciphertext).unwrap_or_default();
        }
        Some(failed @ UploadEvent::SecretUploadFailed { reason, .. }) => {
            status.reason = reason.clone();
            status.failure_kind = failed
                .failure_kind()
                .map_or(v1::FailureKind::Unspecified, FailureKind::to_proto)
                as i32;
        }
        _ => {}
    }
    if let (Some(version), Some(id)) = (request.recorded_version(), request.request_id())
        && let Some(stored) = secret
            .and_then(|s| s.version_of(id))
            .filter(|v| v.version == version)
    {
        status.version = stored.version;
        status.hash = stored.hash.to_string();
        status.key_hashes = stored.key_hashes.clone().into_iter().collect();
    }
    status
}

fn is_terminal(status: UploadStatus) -> bool {
    matches!(
        status,
        UploadStatus::Uploaded
            | UploadStatus::Verified
            | UploadStatus::Failed
            | UploadStatus::Expired
            | UploadStatus::Unchanged
            | UploadStatus::Resealed
    )
}

fn summary(uri: &SecretUri, secret: &Secret) -> v1::SecretSummary {
    let last = secret.versions().last();
    v1::SecretSummary {
        uri: uri.to_string(),
        version: last.map(|v| v.version).unwrap_or(0),
        hash: last.map(|v| v.hash.to_string()).unwrap_or_default(),
        updated_by: last.map(|v| v.by.to_string()).unwrap_or_default(),
        updated_at: last
            .map(|v| v.at.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default(),
        deleted: secret.is_deleted(),
    }
}

/// Secrets (or principals) per list page when the caller names no size.
pub const DEFAULT_PAGE_SIZE: usize = 1000;
/// The most secrets (or principals) one list page holds (well under the
/// 4 MiB message limit: a summary is at most about 700 bytes).
pub const MAX_PAGE_SIZE: usize = 5000;

/// The page size asked for, or why it is refused.
pub(crate) fn page_size_of(asked: u32) -> Result<usize, Status> {
    match asked as usize {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n <= MAX_PAGE_SIZE => Ok(n),
        n => Err(Status::invalid_argument(format!(
            "page_size {n} is over the limit of {MAX_PAGE_SIZE}"
        ))),
    }
}

/// Whether `ListSecrets` lists the secret: a put creates the secret's
/// stream when it asks for a key; until a version is stored there is
/// nothing to list (an abandoned put leaves no row).
pub fn is_listed(secret: &Secret) -> bool {
    secret.exists() && !secret.versions().is_empty()
}

/// A secret as `GetSecret` shows it (without the read position); the
/// audit replay renders its past states with this too.
pub fn secret_detail(uri: &SecretUri, s: &Secret) -> v1::GetSecretReply {
    v1::GetSecretReply {
        uri: uri.to_string(),
        creator: s.creator().map(Slug::to_string).unwrap_or_default(),
        versions: s
            .versions()
            .iter()
            .map(|v| v1::SecretVersion {
                version: v.version,
                hash: v.hash.to_string(),
                key_hashes: v.key_hashes.clone().into_iter().collect(),
                request_id: v.request_id.to_string(),
                by: v.by.to_string(),
                at: v.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            })
            .collect(),
        access: s
            .acl()
            .iter()
            .map(|(list, slugs)| v1::AccessList {
                list: list.as_str().into(),
                slugs: slugs.iter().map(Slug::to_string).collect(),
            })
            .collect(),
        deletion: s.deletion_label().into(),
        read: None,
    }
}

type UploadStream = Pin<Box<dyn Stream<Item = Result<v1::UploadStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Secrets for SecretsApi {
    async fn request_upload_key(
        &self,
        request: Request<v1::RequestUploadKeyRequest>,
    ) -> Result<Response<v1::RequestUploadKeyReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "RequestUploadKey")?;
        let purpose = Purpose::from_proto(r.purpose, r.adopt)
            .ok_or_else(|| Status::invalid_argument("purpose must be PUT or VERIFY"))?;
        let reference = SecretRef::parse(&r.uri).map_err(invalid)?;
        let requested =
            upload::request_upload_key(&self.app, &caller.actor, reference, purpose, &envelope)
                .await?;
        Ok(Response::new(v1::RequestUploadKeyReply {
            reply: Some(reply_of(&requested.done)),
            request_id: requested.request_id.to_string(),
            uri: requested.uri.to_string(),
            reactor_key: requested.reactor_key,
            certificate: requested.certificate.as_ref().map(|c| c.to_proto()),
            deployment_id: requested
                .deployment_id
                .map(|d| d.to_string())
                .unwrap_or_default(),
            expires_at: requested
                .expires_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
        }))
    }

    type WatchUploadStream = UploadStream;

    async fn watch_upload(
        &self,
        request: Request<v1::WatchUploadRequest>,
    ) -> Result<Response<Self::WatchUploadStream>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let request_id = parse_uuid(&request.into_inner().request_id, "request_id")?;
        let (requester, _) = self
            .app
            .query(None, |m| {
                m.uploads
                    .get(&request_id)
                    .and_then(|u| u.requester().cloned())
            })
            .await?;
        let requester = requester
            .ok_or_else(|| {
                Status::not_found(format!(
                    "there is no upload request {request_id} (a finished request is kept {} hour after it ends; the log keeps every one: `sealctl describe secret URI --history`)",
                    crate::read_model::FINISHED_UPLOAD_RETENTION.num_hours()
                ))
            })?;
        if requester != caller.actor.slug
            && !matches!(caller.actor.role, Role::Admin | Role::Auditor)
        {
            return Err(self
                .app
                .deny(
                    &self.app.context(&caller),
                    "WatchUpload",
                    &streams::upload(request_id).to_string(),
                    "only the requester may watch an upload request".into(),
                )
                .await
                .into());
        }
        let guard = self.app.open_stream(&caller.actor)?;
        let (tx, rx) = mpsc::channel(8);
        let app = self.app.clone();
        let model = self.app.model.clone();
        tokio::spawn(async move {
            let _counted = guard;
            let mut changes = model.watch();
            let mut last_sent = None;
            let mut recheck = tokio::time::interval(STREAM_RECHECK);
            loop {
                let (status, progress) = model.read(|m| {
                    m.uploads.get(&request_id).map(|u| {
                        let secret = u.uri().and_then(|uri| m.secrets.get(uri));
                        // A put is reported stored only once the secret has
                        // recorded its version too, so a read right after
                        // `sealctl put` returns sees it. (One append with
                        // the outcome since ADR 0027; a log written before
                        // can hold them apart.)
                        let recorded = u.status() != UploadStatus::Uploaded
                            || secret.is_some_and(|s| s.version_of(request_id).is_some());
                        (upload_status(u, secret, 0), u.status(), recorded)
                    })
                });
                if let Some((mut wire, state, true)) = status {
                    if last_sent != Some(state) {
                        wire.position = progress.position.0;
                        if tx.send(Ok(wire)).await.is_err() {
                            return;
                        }
                        last_sent = Some(state);
                    }
                    if is_terminal(state) {
                        return;
                    }
                }
                tokio::select! {
                    _ = recheck.tick() => if let Err(refused) = app.recheck(&caller) {
                        let _ = tx.send(Err(refused)).await;
                        return;
                    },
                    changed = changes.changed() => if changed.is_err() {
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down"))).await;
                        return;
                    },
                    () = tx.closed() => return,
                    () = app.shutting_down() => {
                        let _ = tx.send(Err(Status::unavailable("the server is shutting down; watch again"))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn upload_secret(
        &self,
        request: Request<v1::UploadSecretRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let limits = &self.app.limits;
        let max = limits.max_ciphertext_bytes();
        self.app
            .command::<UploadRequest, _>(request, "UploadSecret", |r| {
                let request_id = parse_uuid(&r.request_id, "request_id")?;
                if r.ciphertext.len() > max {
                    return Err(Status::invalid_argument(format!(
                        "the sealed payload is {} bytes; the limit is {max} (secrets up to {} bytes)",
                        r.ciphertext.len(),
                        limits.max_secret_bytes
                    )));
                }
                let command = UploadCommand::Upload {
                    ciphertext: STANDARD.encode(&r.ciphertext),
                    max_ciphertext_bytes: max,
                };
                Ok((r.options, streams::upload(request_id), command))
            })
            .await
    }

    async fn get_sealing_keys(
        &self,
        request: Request<v1::GetSealingKeysRequest>,
    ) -> Result<Response<v1::SealingKeysReply>, Status> {
        self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let store = StoreName::parse(r.store).map_err(invalid)?;
        let (reply, read) = self
            .app
            .query(r.options.as_ref(), |m| {
                let state = m.stores.store(&store).filter(|s| !s.removed)?;
                let keys = m.sealing_keys.get(&store);
                let keys = keys
                    .into_iter()
                    .flat_map(|k| k.keys().rev())
                    .map(|(key, retired)| v1::SealingKey {
                        key_id: key.key_id.clone(),
                        public_key: key.public_key.clone(),
                        not_before: key.not_before.to_rfc3339_opts(SecondsFormat::Secs, true),
                        not_after: key.not_after.to_rfc3339_opts(SecondsFormat::Secs, true),
                        signature: key.signature.clone(),
                        retired,
                        in_use_by: m
                            .sealed_with(&store, &key.key_id)
                            .iter()
                            .map(SecretUri::to_string)
                            .collect(),
                    })
                    .collect();
                Some(v1::SealingKeysReply {
                    store: store.to_string(),
                    keys,
                    reactor_key: state.reactor_key.to_string(),
                    certificate: state.certificate.as_ref().map(|c| c.to_proto()),
                    deployment_id: m.deployment_id.map(|d| d.to_string()).unwrap_or_default(),
                    read: None,
                })
            })
            .await?;
        let mut reply = reply.ok_or_else(|| {
            Status::not_found(format!(
                "there is no store `{store}`; `sealctl get stores` lists them"
            ))
        })?;
        reply.read = Some(read);
        Ok(Response::new(reply))
    }

    async fn apply_sealed(
        &self,
        request: Request<v1::ApplySealedRequest>,
    ) -> Result<Response<v1::ApplySealedReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "ApplySealed")?;
        let max = self.app.limits.max_ciphertext_bytes();
        if r.ciphertext.len() > max {
            return Err(Status::invalid_argument(format!(
                "the sealed payload is {} bytes; the limit is {max} (secrets up to {} bytes)",
                r.ciphertext.len(),
                self.app.limits.max_secret_bytes
            )));
        }
        if !sealplane_proto::sealing_key::is_key_id(&r.key_id) {
            return Err(Status::invalid_argument(
                "key_id must be `sk-` and 16 lower-case hex digits, as `sealctl seal` writes it",
            ));
        }
        let submission = sealing::SealedSubmission {
            reference: SecretRef::parse(&r.uri).map_err(invalid)?,
            key_id: r.key_id,
            ciphertext: STANDARD.encode(&r.ciphertext),
            reseal: r.reseal,
        };
        let submitted =
            sealing::submit_sealed(&self.app, &caller.actor, submission, &envelope).await?;
        Ok(Response::new(v1::ApplySealedReply {
            reply: Some(reply_of(&submitted.done)),
            request_id: submitted.request_id.to_string(),
            uri: submitted.uri.to_string(),
        }))
    }

    async fn list_secrets(
        &self,
        request: Request<v1::ListSecretsRequest>,
    ) -> Result<Response<v1::ListSecretsReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        if caller.actor.role == Role::Reactor {
            return Err(self
                .app
                .deny(
                    &self.app.context(&caller),
                    "ListSecrets",
                    "secrets",
                    "reactors do not list secrets".into(),
                )
                .await
                .into());
        }
        let r = request.into_inner();
        let store = match r.store.as_str() {
            "" => None,
            s => Some(crate::domain::names::StoreName::parse(s).map_err(invalid)?),
        };
        let sees_all = matches!(caller.actor.role, Role::Admin | Role::Auditor);
        let page_size = page_size_of(r.page_size)?;
        let after = match r.page_token.as_str() {
            "" => None,
            token => Some(SecretUri::parse(token).map_err(|_| {
                Status::invalid_argument(
                    "page_token is not one this server handed out; pass next_page_token from the previous reply, or none for the first page",
                )
            })?),
        };
        let ((secrets, more), read) = self
            .app
            .query(r.options.as_ref(), |m| {
                // One more than a page tells whether there is another.
                let mut listed = if sees_all {
                    m.listed_from(store.as_ref(), after.as_ref(), page_size + 1, is_listed)
                } else {
                    m.readable_by(
                        &caller.actor,
                        store.as_ref(),
                        after.as_ref(),
                        page_size + 1,
                        is_listed,
                    )
                };
                let more = listed.len() > page_size;
                listed.truncate(page_size);
                let page: Vec<_> = listed.into_iter().map(|(uri, s)| summary(uri, s)).collect();
                (page, more)
            })
            .await?;
        let next_page_token = match (more, secrets.last()) {
            (true, Some(last)) => last.uri.clone(),
            _ => String::new(),
        };
        Ok(Response::new(v1::ListSecretsReply {
            secrets,
            read: Some(read),
            next_page_token,
        }))
    }

    async fn get_secret(
        &self,
        request: Request<v1::GetSecretRequest>,
    ) -> Result<Response<v1::GetSecretReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let uri = self.resolve(&r.uri)?;
        if let Some(o) = &r.options {
            self.app.query(Some(o), |_| ()).await?;
        }
        self.require_reader(&caller, &uri, "GetSecret").await?;
        let (reply, read) = self
            .app
            .query(None, |m| {
                m.secrets.get(&uri).map(|s| secret_detail(&uri, s))
            })
            .await?;
        let mut reply = reply.ok_or_else(|| not_found(&uri))?;
        reply.read = Some(read);
        Ok(Response::new(reply))
    }

    async fn secret_history(
        &self,
        request: Request<v1::GetSecretRequest>,
    ) -> Result<Response<v1::SecretHistoryReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let uri = self.resolve(&r.uri)?;
        self.require_reader(&caller, &uri, "SecretHistory").await?;
        let events = self
            .app
            .handler
            .store()
            .read_stream(&streams::secret(&uri), StreamVersion(0), usize::MAX)
            .await
            .map_err(|_| Status::unavailable("the event store is unavailable; try again"))?;
        let entries = events
            .iter()
            .map(|e| {
                let meta = e.metadata().ok();
                v1::HistoryEntry {
                    position: e.position.0,
                    event_type: e.event_type.to_string(),
                    actor: meta.as_ref().map(|m| m.actor.clone()).unwrap_or_default(),
                    at: meta
                        .map(|m| m.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true))
                        .unwrap_or_default(),
                    summary: e
                        .data
                        .deserialize::<crate::domain::secret::SecretEvent>()
                        .map(|ev| ev.summary())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let read = self.app.model.progress();
        Ok(Response::new(v1::SecretHistoryReply {
            entries,
            read: Some(v1::ReadPosition {
                position: read.position.0,
                caught_up: read.caught_up,
            }),
        }))
    }

    async fn delete_secret(
        &self,
        request: Request<v1::DeleteSecretRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "DeleteSecret")?;
        let uri = self.resolve(&r.uri)?;
        let ctx = self.app.context(&caller);
        let done = self
            .app
            .execute::<Secret>(
                &streams::secret(&uri),
                &SecretCommand::RequestDeletion { destroy: r.destroy },
                &ctx,
                &envelope,
            )
            .await?;
        Ok(Response::new(reply_of(&done)))
    }

    async fn change_access(
        &self,
        request: Request<v1::ChangeAccessRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "ChangeAccess")?;
        let uri = self.resolve(&r.uri)?;
        let list: AccessList = r.list.parse().map_err(invalid)?;
        let slug = Slug::parse(r.slug).map_err(invalid)?;
        let done = access::change_access(
            &self.app,
            &caller.actor,
            &uri,
            list,
            slug,
            r.grant,
            &envelope,
        )
        .await?;
        Ok(Response::new(reply_of(&done)))
    }
}
