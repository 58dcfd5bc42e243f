//! The control plane's sweep of upload requests no reactor answered.
//!
//! A reactor reports `SecretUploadKeyExpired` for the keys it destroys at
//! expiry. When the store's reactor is down nobody would, and the people
//! waiting (`sealctl`'s watch) would never hear an end. So once a second
//! the control plane ends every request still without an upload
//! [`SWEEP_GRACE`] after its expiry (the reactor gets that long to report
//! first), as the admin-authority actor `control-plane`. A reactor that
//! comes back later sees the request ended and does nothing.
//!
//! It also records the version of an upload whose outcome was recorded
//! but whose version was not (a control plane that died between the two
//! appends of a report).
//!
//! With several control planes on one store, only the holder of the lease
//! on once-only work sweeps (ADR 0020).

use std::time::Duration;

use chrono::Utc;

use crate::api::app::App;
use crate::application::upload;
use crate::command::CommandEnvelope;
use crate::domain::names::Slug;
use crate::domain::upload::{SWEEP_GRACE, UploadCommand, UploadRequest, UploadStatus};
use crate::domain::{Actor, Context, Role};
use crate::streams;

/// How often the read model is scanned for unanswered requests.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Every how many sweeps it also looks for uploads whose version was not
/// recorded ([`upload::record_unrecorded_versions`]).
const HEAL_EVERY_SWEEPS: u64 = 10;

/// Sweeps until the server shuts down.
pub async fn run(app: App) {
    let actor = Actor {
        slug: Slug::parse("control-plane").expect("a valid slug"),
        role: Role::Admin,
        groups: vec![],
        stores: vec![],
    };
    let mut sweeps = 0u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            () = app.shutting_down() => return,
        }
        // Another control plane on the same store holds the lease.
        if !app.once_only.held() {
            continue;
        }
        let now = Utc::now();
        sweeps += 1;
        if sweeps.is_multiple_of(HEAL_EVERY_SWEEPS) {
            upload::record_unrecorded_versions(&app, &actor, now).await;
        }
        let (due, _) = app.model.read(|m| {
            m.uploads
                .iter()
                .filter(|(_, u)| {
                    matches!(
                        u.status(),
                        UploadStatus::Requested | UploadStatus::KeyProvided
                    ) && u.expires_at().is_some_and(|at| at + SWEEP_GRACE <= now)
                })
                .map(|(id, _)| *id)
                .collect::<Vec<_>>()
        });
        for id in due {
            let ctx = Context {
                actor: actor.clone(),
                now,
            };
            let swept = app
                .handler
                .execute::<UploadRequest>(
                    &streams::upload(id),
                    &UploadCommand::ExpireUnanswered,
                    &ctx,
                    &CommandEnvelope::new("ExpireUnanswered"),
                )
                .await;
            match swept {
                Ok(done) if done.events > 0 => tracing::info!(
                    request_id = %id,
                    grace_seconds = SWEEP_GRACE.num_seconds(),
                    "upload request expired unanswered: no reactor reported within the grace after its expiry"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(request_id = %id, error = %e, "cannot end an unanswered upload request")
                }
            }
        }
    }
}
