//! Removing a user spans aggregates: each group it belongs to loses it,
//! then the user itself is removed (every token revoked, the slug kept).

use super::{App, UseCaseError};
use crate::command::{CommandEnvelope, Executed};
use crate::domain::Actor;
use crate::domain::names::Slug;
use crate::domain::principal::{Principal, PrincipalCommand};
use crate::streams;

/// Removes user `slug` (admins).
pub async fn remove_user(
    app: &App,
    actor: &Actor,
    slug: &Slug,
    envelope: &CommandEnvelope,
) -> Result<Executed, UseCaseError> {
    let ctx = app.context_of(actor);
    // The user first, so a refusal (not an admin, not a user) leaves the
    // groups as they are; a retry finishes what a crash interrupted.
    let removed = app
        .execute::<Principal>(
            &streams::principal(slug),
            &PrincipalCommand::RemoveUser,
            &ctx,
            envelope,
        )
        .await?;
    let (groups, _) = app.model.read(|m| m.groups_of(slug));
    let mut last = removed.clone();
    for group in groups {
        let done = app
            .execute::<Principal>(
                &streams::principal(&group),
                &PrincipalCommand::RemoveMember { user: slug.clone() },
                &ctx,
                &CommandEnvelope::new("RemoveMember"),
            )
            .await?;
        last.events += done.events;
        last.position = last.position.max(done.position);
    }
    Ok(last)
}
