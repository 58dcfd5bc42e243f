//! Changing a secret's access lists: a grant names an existing user or
//! group, so a principal created later with that slug cannot inherit a
//! grant made before it existed.

use super::{App, UseCaseError};
use crate::command::{CommandEnvelope, Executed};
use crate::domain::names::{SecretUri, Slug};
use crate::domain::secret::{AccessList, Secret, SecretCommand};
use crate::domain::{Actor, RefusalKind};
use crate::streams;

/// Grants (or revokes) `slug` on `list` of `uri`.
pub async fn change_access(
    app: &App,
    actor: &Actor,
    uri: &SecretUri,
    list: AccessList,
    slug: Slug,
    grant: bool,
    envelope: &CommandEnvelope,
) -> Result<Executed, UseCaseError> {
    // A removed user keeps its slug but can receive nothing.
    let (known, _) = app.model.read(|m| {
        m.principals
            .get(&slug)
            .is_some_and(|p| p.role().is_some() || p.members().is_some())
    });
    if grant && !known {
        return Err(UseCaseError::refused(
            RefusalKind::Invalid,
            format!(
                "there is no user or group `{slug}`; an admin can create it (`sealctl create user {slug}` or `create group {slug}`) before it is granted anything"
            ),
        ));
    }
    let command = if grant {
        SecretCommand::Grant { list, slug }
    } else {
        SecretCommand::Revoke { list, slug }
    };
    let ctx = app.context_of(actor);
    app.execute::<Secret>(&streams::secret(uri), &command, &ctx, envelope)
        .await
}
