//! The first admin: `sealplane init` creates it on an empty log and prints
//! its token once; `sealplane dev` does the same, and on a log that already
//! has an admin issues that admin a fresh token for the session.

use chrono::{Duration as TimeDelta, Utc};
use uuid::Uuid;

use crate::api::app::App;
use crate::auth::token::BearerToken;
use crate::command::{CommandEnvelope, CommandError};
use crate::domain::names::Slug;
use crate::domain::principal::{Principal, PrincipalCommand, PrincipalRefusal};
use crate::domain::{Actor, Context, Role};
use crate::streams;

/// Why bootstrapping failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "this event log already has principals; `sealplane init` only sets up an empty one (ask an existing admin for a token)"
    )]
    AlreadyInitialised,
    #[error("the log has principals but no admin to issue a dev token for")]
    NoAdmin,
    #[error(transparent)]
    Command(#[from] CommandError<PrincipalRefusal>),
    #[error(transparent)]
    ReadModel(#[from] crate::projection::ProjectionError),
}

/// How long to wait for a new token to become usable.
const TOKEN_VISIBLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The actor bootstrap commands are recorded under.
fn bootstrap_actor(name: &str) -> Actor {
    Actor {
        slug: Slug::parse(name).expect("a valid slug"),
        role: Role::Admin,
        groups: vec![],
        stores: vec![],
    }
}

async fn issue(
    app: &App,
    ctx: &Context,
    admin: &Slug,
    ttl: TimeDelta,
) -> Result<BearerToken, BootstrapError> {
    let token = BearerToken::generate();
    let command = PrincipalCommand::IssueToken {
        token_id: Uuid::new_v4(),
        sha256_hex: token.digest().to_hex(),
        expires_at: ctx.now + ttl,
    };
    let done = app
        .handler
        .execute::<Principal>(
            &streams::principal(admin),
            &command,
            ctx,
            &CommandEnvelope::new("IssueToken"),
        )
        .await?;
    // A token is handed out only once it authenticates.
    if let Some(position) = done.position {
        app.model.wait_for(position, TOKEN_VISIBLE_WAIT).await?;
    }
    Ok(token)
}

/// Creates admin `slug` on a log without principals and returns its token.
pub async fn init(app: &App, slug: &Slug, ttl: TimeDelta) -> Result<BearerToken, BootstrapError> {
    let (empty, _) = app.model.read(|m| m.principals.is_empty());
    if !empty {
        return Err(BootstrapError::AlreadyInitialised);
    }
    let ctx = Context {
        actor: bootstrap_actor("init"),
        now: Utc::now(),
    };
    let create = PrincipalCommand::CreateUser {
        slug: slug.clone(),
        role: Role::Admin,
        stores: vec![],
    };
    // NoStream on the admin's stream makes two concurrent inits safe: one
    // creates it, the other is refused.
    app.handler
        .execute::<Principal>(
            &streams::principal(slug),
            &create,
            &ctx,
            &CommandEnvelope::new("CreateUser"),
        )
        .await?;
    issue(app, &ctx, slug, ttl).await
}

/// A token for the dev admin: the first admin of the log, created as
/// `slug` when the log has no principals.
pub async fn dev_token(
    app: &App,
    slug: &Slug,
    ttl: TimeDelta,
) -> Result<(Slug, BearerToken), BootstrapError> {
    match init(app, slug, ttl).await {
        Ok(token) => Ok((slug.clone(), token)),
        Err(BootstrapError::AlreadyInitialised) => {
            let (admin, _) = app.model.read(|m| {
                m.principals
                    .iter()
                    .find(|(_, p)| p.role() == Some(Role::Admin))
                    .map(|(s, _)| s.clone())
            });
            let admin = admin.ok_or(BootstrapError::NoAdmin)?;
            let ctx = Context {
                actor: bootstrap_actor("dev"),
                now: Utc::now(),
            };
            Ok((admin.clone(), issue(app, &ctx, &admin, ttl).await?))
        }
        Err(e) => Err(e),
    }
}
