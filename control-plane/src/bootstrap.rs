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

/// Why the dev reactor could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum DevReactorError {
    #[error(transparent)]
    Stores(#[from] CommandError<crate::domain::store_catalog::StoreCatalogRefusal>),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Principals(#[from] CommandError<PrincipalRefusal>),
    #[error("the reactor identity is not a valid Ed25519 public key")]
    BadKey,
    #[error(
        "store `{0}` in this data directory is served by another reactor identity; use a fresh --data-dir"
    )]
    OtherIdentity(String),
}

/// Registers the in-process reactor of `sealplane dev`: the file store
/// `store` served by `reactor_key` (the default store when it is the first
/// one), a reactor principal bound to it, and a fresh token for it.
///
/// `certify` makes the store's certificate for the deployment id it is
/// given (dev mode holds its own trust anchor); a store created before
/// certificates existed is certified on the next start.
pub async fn dev_reactor(
    app: &App,
    store: &str,
    reactor_key: &str,
    certify: impl FnOnce(uuid::Uuid) -> crate::domain::store_catalog::StoreCertificate,
    ttl: TimeDelta,
) -> Result<BearerToken, DevReactorError> {
    use crate::domain::names::StoreName;
    use crate::domain::store_catalog::{ReactorKey, StoreCatalog, StoreCommand, StoreKind};

    let name = StoreName::parse(store).map_err(|_| DevReactorError::BadKey)?;
    let key = ReactorKey::parse(reactor_key).map_err(|_| DevReactorError::BadKey)?;
    let ctx = Context {
        actor: bootstrap_actor("dev"),
        now: Utc::now(),
    };
    let (known, _) = app.model.read(|m| {
        (
            m.stores
                .store(&name)
                .map(|s| (s.reactor_key, s.certificate.is_some())),
            m.deployment_id,
        )
    });
    let (existing, deployment_id) = known;
    let deployment_id = deployment_id.ok_or(DevReactorError::BadKey)?;
    let command = match existing {
        Some((k, _)) if k != key => return Err(DevReactorError::OtherIdentity(store.to_owned())),
        Some((_, true)) => None,
        Some((_, false)) => Some(StoreCommand::Certify {
            name: name.clone(),
            certificate: certify(deployment_id),
            deployment_id,
        }),
        None => Some(StoreCommand::Create {
            name: name.clone(),
            kind: StoreKind::File,
            reactor_key: key,
            certificate: Some(certify(deployment_id)),
            deployment_id,
        }),
    };
    if let Some(command) = command {
        let done = app
            .handler
            .execute::<StoreCatalog>(
                &streams::stores(),
                &command,
                &ctx,
                &CommandEnvelope::new("CreateStore"),
            )
            .await?;
        if let Some(position) = done.position {
            app.model
                .wait_for(position, TOKEN_VISIBLE_WAIT)
                .await
                .map_err(BootstrapError::from)?;
        }
    }
    let slug = Slug::parse("dev-reactor").expect("a valid slug");
    let (known, _) = app.model.read(|m| m.principals.contains_key(&slug));
    if !known {
        app.handler
            .execute::<Principal>(
                &streams::principal(&slug),
                &PrincipalCommand::CreateUser {
                    slug: slug.clone(),
                    role: Role::Reactor,
                    stores: vec![name],
                },
                &ctx,
                &CommandEnvelope::new("CreateUser"),
            )
            .await?;
    }
    Ok(issue(app, &ctx, &slug, ttl).await?)
}
