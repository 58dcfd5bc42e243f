//! The upload use cases that span aggregates (SPEC §3): asking for a
//! one-time key (the store catalog, the secret's access lists, the
//! verification rate window and the upload request), and recording an
//! upload (the upload request, then the secret's new version).

use chrono::{DateTime, Duration as TimeDelta, Utc};
use uuid::Uuid;

use super::{App, UseCaseError};
use crate::command::{CommandEnvelope, Executed, Step};
use crate::domain::key_hashes::KeyHashes;
use crate::domain::names::{SecretRef, SecretUri};
use crate::domain::secret::{AccessList, Secret, SecretCommand};
use crate::domain::store_catalog::StoreCertificate;
use crate::domain::upload::{Purpose, UploadCommand, UploadRequest};
use crate::domain::{Actor, Context, Refusal, RefusalKind, Role};
use crate::streams;

/// A key request that was recorded (or had been, for a retried command id).
#[derive(Debug, Clone)]
pub struct KeyRequested {
    /// What was written.
    pub done: Executed,
    /// The request (the command id: a retried command finds its request).
    pub request_id: Uuid,
    /// The uri with its store resolved.
    pub uri: SecretUri,
    /// The store's reactor identity as registered by an admin; `sealctl`
    /// checks it against its own trust, never takes it on its own.
    pub reactor_key: String,
    /// The store's newest certificate, if an admin certified it.
    pub certificate: Option<StoreCertificate>,
    /// This deployment.
    pub deployment_id: Option<Uuid>,
    /// When the one-time key stops being usable.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a reactor reports for a stored upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The upstream version written.
    pub version: u64,
    /// The keyed hash of the whole value.
    pub hash: String,
    /// The keyed hash of each key.
    pub key_hashes: KeyHashes,
    /// Where upstream holds it.
    pub upstream_ref: String,
}

/// Resolves what a user typed to a full uri: a bare path goes to the
/// default store.
pub fn resolve(app: &App, reference: SecretRef) -> Result<SecretUri, UseCaseError> {
    if let Some(store) = reference.store {
        return Ok(SecretUri {
            store,
            path: reference.path,
        });
    }
    let (default, _) = app.model.read(|m| m.stores.default_store().cloned());
    let default = default.ok_or_else(|| {
        UseCaseError::refused(
            RefusalKind::FailedPrecondition,
            "there is no default store; name one in the uri (`store://path`) or ask an admin to create a store",
        )
    })?;
    Ok(reference.resolve(&default))
}

/// Refuses readers outside the secret's access lists (auditors and admins
/// read everything; reactors read nothing here). A denial is recorded,
/// but answered exactly as a secret that does not exist: whether someone
/// else's secret exists is not the caller's to learn.
pub async fn require_reader(
    app: &App,
    ctx: &Context,
    uri: &SecretUri,
    command: &'static str,
) -> Result<(), UseCaseError> {
    let actor = &ctx.actor;
    let (known, _) = app.model.read(|m| {
        m.secrets
            .get(uri)
            .filter(|s| s.exists())
            .map(|s| s.may(actor, AccessList::Readers))
    });
    let target = uri.to_string();
    match (actor.role, known) {
        (Role::Reactor, _) => Err(app
            .deny(ctx, command, &target, "reactors do not read secrets".into())
            .await),
        (_, None) => Err(not_found(uri)),
        (Role::Admin | Role::Auditor, Some(_)) | (_, Some(true)) => Ok(()),
        (_, Some(false)) => {
            let reason = format!("`{}` is not a reader of {uri}", actor.slug);
            match app.deny(ctx, command, &target, reason).await {
                UseCaseError::Refused { .. } => Err(not_found(uri)),
                // Fail closed: a refusal that could not be recorded.
                unrecorded => Err(unrecorded),
            }
        }
    }
}

/// The refusal for a secret the caller cannot see.
pub fn not_found(uri: &SecretUri) -> UseCaseError {
    UseCaseError::refused(
        RefusalKind::NotFound,
        format!("there is no secret {uri}; `sealctl get secrets` lists them"),
    )
}

/// Refuses an actor who has `limits.max_open_uploads_per_principal`
/// upload requests (one-time keys or sealed files) open already.
pub fn require_upload_slot(app: &App, actor: &Actor) -> Result<(), UseCaseError> {
    let (open, _) = app.model.read(|m| m.open_uploads_of(&actor.slug));
    if open as u64 >= app.limits.max_open_uploads_per_principal {
        return Err(UseCaseError::refused(
            RefusalKind::Exhausted,
            format!(
                "`{}` already has {open} upload requests open (the limit is {}); let them finish or expire (at most {} s) and try again",
                actor.slug,
                app.limits.max_open_uploads_per_principal,
                app.limits.upload_key_ttl_seconds
            ),
        ));
    }
    Ok(())
}

/// Step 1 of SPEC §3: the store must accept uploads, the actor must be
/// allowed (a put creates the secret on its first write or needs the
/// writers list; a verify needs the readers list and a free slot in the
/// rate window), then the upload request is recorded.
pub async fn request_upload_key(
    app: &App,
    actor: &Actor,
    reference: SecretRef,
    purpose: Purpose,
    envelope: &CommandEnvelope,
) -> Result<KeyRequested, UseCaseError> {
    let uri = resolve(app, reference)?;
    let (store, _) = app.model.read(|m| {
        m.stores
            .accepting_uploads(&uri.store)
            .map(|s| {
                (
                    s.reactor_key.to_string(),
                    s.certificate.clone(),
                    m.deployment_id,
                )
            })
            .map_err(|refusal| UseCaseError::refused(refusal.kind(), refusal.to_string()))
    });
    let (reactor_key, certificate, deployment_id) = store?;
    let ctx = app.context_of(actor);
    require_upload_slot(app, actor)?;
    // Verifications take turns, in every control plane sharing the store:
    // each counts every one recorded before it (50 at once must not all
    // see the old count), those of other control planes included.
    let _turn = match purpose {
        Purpose::Verify => {
            let turn = app
                .handler
                .store()
                .exclusive("verifications")
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot take the verifications' turn");
                    UseCaseError::Unavailable
                })?;
            app.see_writes_of_others().await?;
            Some(turn)
        }
        Purpose::Put { .. } => None,
    };
    let may_read = match purpose {
        Purpose::Put { .. } => false,
        Purpose::Verify => {
            require_reader(app, &ctx, &uri, "RequestUploadKey").await?;
            true
        }
    };
    let request_id = envelope.command_id;
    let ttl = TimeDelta::from_std(app.limits.upload_key_ttl()).map_err(|_| {
        tracing::error!("limits.upload_key_ttl_seconds is out of range");
        UseCaseError::Internal
    })?;
    let (recent, _) = app
        .model
        .read(|m| m.verifications_since(&actor.slug, &uri, ctx.now - TimeDelta::minutes(1)));
    let command = UploadCommand::RequestKey {
        request_id,
        uri: uri.clone(),
        purpose,
        ttl,
        store_accepts_uploads: true,
        may_write: !may_read,
        may_read,
        may_verify_now: (recent as u64) < app.limits.max_verifications_per_minute,
    };
    let upload = streams::upload(request_id);
    let (done, expires_at) = match purpose {
        // A put checks (on its first write: creates) the secret and
        // records the request in one append (ADR 0027): a refused request
        // leaves no secret behind.
        Purpose::Put { .. } => {
            let prepare = SecretCommand::PrepareWrite { uri: uri.clone() };
            let paired = app
                .execute_pair::<Secret, UploadRequest, _>(
                    &ctx,
                    Step::new(&streams::secret(&uri), &prepare, envelope),
                    (&upload, envelope),
                    |_| Some(command.clone()),
                    |_, request| request.and_then(UploadRequest::expires_at),
                )
                .await?;
            let position = paired.position();
            let Some(requested) = paired.second else {
                tracing::error!(%request_id, "a put's key request was not decided");
                return Err(UseCaseError::Internal);
            };
            let done = Executed {
                position,
                ..requested
            };
            (done, paired.observed)
        }
        Purpose::Verify => {
            let (done, request) = app
                .execute_observed::<UploadRequest>(&upload, &command, &ctx, envelope)
                .await?;
            (done, request.expires_at())
        }
    };
    Ok(KeyRequested {
        done,
        request_id,
        uri,
        reactor_key,
        certificate,
        deployment_id,
        expires_at,
    })
}

/// Step 5 of SPEC §3: the reactor stored the value. The request records
/// the outcome and the secret records the version, in one atomic append
/// (ADR 0027). Both are decided on every (re)report (recording a version
/// is idempotent per request).
///
/// The append runs to the end in a task of its own even when the
/// reporter goes away (a reactor killed mid-report drops its call). A log
/// written by an earlier version, which made these two appends one after
/// the other, can hold an outcome without its version; the sweep heals it
/// ([`record_unrecorded_versions`]).
pub async fn report_uploaded(
    app: &App,
    actor: &Actor,
    request_id: Uuid,
    report: Uploaded,
    envelope: &CommandEnvelope,
) -> Result<Executed, UseCaseError> {
    let (app, actor, envelope) = (app.clone(), actor.clone(), envelope.clone());
    tokio::spawn(async move { record_upload(&app, &actor, request_id, report, &envelope).await })
        .await
        .map_err(|e| {
            tracing::error!(%request_id, error = %e, "recording an upload failed");
            UseCaseError::Internal
        })?
}

/// How long after an upload's outcome was recorded the sweep takes its
/// version as lost, not still on its way from the report.
pub const UNRECORDED_VERSION_GRACE: TimeDelta = TimeDelta::seconds(5);

/// How far back the sweep looks for such uploads: a control plane down
/// longer than this between the two appends leaves the version to the
/// user's next put (`sealctl` said to check).
pub const UNRECORDED_VERSION_WINDOW: TimeDelta = TimeDelta::minutes(10);

/// Records the version of every upload whose outcome (`SecretUploaded`)
/// was recorded between [`UNRECORDED_VERSION_WINDOW`] and
/// [`UNRECORDED_VERSION_GRACE`] before `now` but whose secret has no
/// version of it (a control plane of an earlier version died between the
/// two appends it made then), as `healer`, given the store. Returns the
/// requests healed.
pub async fn record_unrecorded_versions(
    app: &App,
    healer: &Actor,
    now: DateTime<Utc>,
) -> Vec<Uuid> {
    let (lost, _) = app
        .model
        .read(|m| m.unrecorded_versions(now - UNRECORDED_VERSION_GRACE, UNRECORDED_VERSION_WINDOW));
    let mut healed = vec![];
    for (request_id, uri, record) in lost {
        // Recording a version is the store's reactor's step: the healer
        // takes it with that store, as the reactor's report already said.
        let actor = Actor {
            role: Role::Reactor,
            stores: vec![uri.store.clone()],
            ..healer.clone()
        };
        let ctx = Context { actor, now };
        let done = app
            .execute::<Secret>(
                &streams::secret(&uri),
                &record,
                &ctx,
                &CommandEnvelope::new("RecordVersion"),
            )
            .await;
        match done {
            Ok(done) if done.events > 0 => {
                tracing::warn!(%request_id, %uri, "recorded the version of an upload whose report was cut short");
                healed.push(request_id);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%request_id, %uri, error = %e, "cannot record the version of an upload")
            }
        }
    }
    healed
}

async fn record_upload(
    app: &App,
    actor: &Actor,
    request_id: Uuid,
    report: Uploaded,
    envelope: &CommandEnvelope,
) -> Result<Executed, UseCaseError> {
    let ctx = app.context_of(actor);
    let stream = streams::upload(request_id);
    let command = UploadCommand::ReportUploaded {
        version: report.version,
        hash: report.hash,
        key_hashes: report.key_hashes,
        upstream_ref: report.upstream_ref,
    };
    let lost = |what: &str| {
        tracing::error!(%request_id, "an uploaded request has {what}");
        UseCaseError::Internal
    };
    // A request's uri is fixed when it is made: the secret's stream is
    // known before either command is decided.
    let uri = app
        .handler
        .current::<UploadRequest, _>(&stream, |r| r.uri().cloned())
        .await?;
    let Some(uri) = uri else {
        // No such request: the command itself says so.
        app.execute::<UploadRequest>(&stream, &command, &ctx, envelope)
            .await?;
        return Err(lost("no uri"));
    };
    let secret = streams::secret(&uri);
    // The outcome and the version are one write (ADR 0027): a reader who
    // sees one sees the other, and no crash leaves one without the other.
    let paired = app
        .execute_pair::<UploadRequest, Secret, _>(
            &ctx,
            Step::new(&stream, &command, envelope),
            (&secret, &CommandEnvelope::new("RecordVersion")),
            |request| request.version_to_record(ctx.now),
            |request, _| request.expires_at(),
        )
        .await?;
    let (reported, expires_at) = (paired.first, paired.observed);
    let Some(recorded) = paired.second else {
        return Err(lost("another outcome or no requester"));
    };
    // Once per put: a re-report that recorded nothing is not a second put.
    if recorded.events > 0
        && let Some(expires_at) = expires_at
    {
        let ttl = chrono::Duration::from_std(app.limits.upload_key_ttl()).unwrap_or_default();
        let took = (ctx.now - (expires_at - ttl)).to_std().unwrap_or_default();
        app.metrics.put(uri.store.as_str(), took);
    }
    Ok(Executed {
        events: reported.events + recorded.events,
        version: recorded.version,
        position: reported.position.max(recorded.position),
        replayed: reported.replayed && recorded.events == 0,
    })
}
