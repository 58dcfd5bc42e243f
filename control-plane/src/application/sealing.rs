//! The sealed-file use cases of SPEC §11 (ADR 0025) that span aggregates:
//! submitting a sealed file (the store catalog, the secret's access lists,
//! the store's sealing keys and the upload request), and retiring a
//! sealing key (which needs the secrets whose files still use it).

use chrono::Duration as TimeDelta;
use uuid::Uuid;

use super::upload::{require_upload_slot, resolve};
use super::{App, UseCaseError};
use crate::command::{CommandEnvelope, Executed};
use crate::domain::Actor;
use crate::domain::names::{SecretRef, SecretUri, StoreName};
use crate::domain::sealing_keys::{SealingKeyCommand, SealingKeys};
use crate::domain::secret::{Secret, SecretCommand};
use crate::domain::upload::{SealingKeyStanding, UploadCommand, UploadRequest};
use crate::streams;

/// A sealed file to submit, as the user's `sealctl apply` or `reseal` sent it.
#[derive(Debug, Clone)]
pub struct SealedSubmission {
    /// The uri the file names.
    pub reference: SecretRef,
    /// The sealing key the file names.
    pub key_id: String,
    /// The sealed box, base64.
    pub ciphertext: String,
    /// Reseal to the newest key rather than apply.
    pub reseal: bool,
}

/// A submission that was recorded.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// What was written.
    pub done: Executed,
    /// The request to watch (the command id).
    pub request_id: Uuid,
    /// The uri with its store.
    pub uri: SecretUri,
}

/// Submits a sealed file: the store must accept uploads, the actor must be
/// allowed to write the secret (a first write creates it, as a put does),
/// the key must be one the store published and did not retire; the
/// secret's latest version and hash go with it, so the reactor can say
/// "unchanged".
pub async fn submit_sealed(
    app: &App,
    actor: &Actor,
    submission: SealedSubmission,
    envelope: &CommandEnvelope,
) -> Result<Submitted, UseCaseError> {
    let uri = resolve(app, submission.reference)?;
    let (accepting, _) = app
        .model
        .read(|m| m.stores.accepting_uploads(&uri.store).is_ok());
    let ctx = app.context_of(actor);
    require_upload_slot(app, actor)?;
    if accepting {
        let prepare = SecretCommand::PrepareWrite { uri: uri.clone() };
        app.execute::<Secret>(&streams::secret(&uri), &prepare, &ctx, envelope)
            .await?;
    }
    let key_id = submission.key_id;
    let ((key, current), _) = app.model.read(|m| {
        let keys = m.sealing_keys.get(&uri.store);
        let key = match keys.and_then(|k| k.get(&key_id)) {
            None => SealingKeyStanding::Unknown,
            Some((_, true)) => SealingKeyStanding::Retired,
            Some(_)
                if keys
                    .and_then(SealingKeys::newest)
                    .is_some_and(|n| n.key_id == key_id) =>
            {
                SealingKeyStanding::Newest
            }
            Some(_) => SealingKeyStanding::Older,
        };
        let current = m
            .secrets
            .get(&uri)
            .filter(|s| s.exists())
            .and_then(|s| s.versions().last())
            .map(|v| (v.version, v.hash.to_string()));
        (key, current)
    });
    let ttl = TimeDelta::from_std(app.limits.upload_key_ttl()).map_err(|_| {
        tracing::error!("limits.upload_key_ttl_seconds is out of range");
        UseCaseError::Internal
    })?;
    let request_id = envelope.command_id;
    let command = UploadCommand::SubmitSealed {
        request_id,
        uri: uri.clone(),
        key_id,
        ciphertext: submission.ciphertext,
        reseal: submission.reseal,
        ttl,
        max_ciphertext_bytes: app.limits.max_ciphertext_bytes(),
        store_accepts_uploads: accepting,
        // The write check above refused anyone who may not write.
        may_write: true,
        key,
        current,
    };
    let done = app
        .execute::<UploadRequest>(&streams::upload(request_id), &command, &ctx, envelope)
        .await?;
    Ok(Submitted {
        done,
        request_id,
        uri,
    })
}

/// Retires `key_id` of `store`, naming the secrets whose last applied
/// file is still sealed to it.
pub async fn retire_sealing_key(
    app: &App,
    actor: &Actor,
    store: StoreName,
    key_id: String,
    force: bool,
    envelope: &CommandEnvelope,
) -> Result<Executed, UseCaseError> {
    let (in_use, _) = app.model.read(|m| m.sealed_with(&store, &key_id));
    let command = SealingKeyCommand::Retire {
        store: store.clone(),
        key_id,
        force,
        in_use,
    };
    app.execute::<SealingKeys>(
        &streams::sealing_keys(&store),
        &command,
        &app.context_of(actor),
        envelope,
    )
    .await
}
