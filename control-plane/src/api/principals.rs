//! The Principals service: users, groups and bearer tokens. Admins manage
//! them; anyone may ask who they are and revoke their own tokens.

use std::ops::Bound;

use chrono::{Duration as TimeDelta, SecondsFormat};
use sealplane_proto::v1;
use sealplane_proto::v1::principals_server::Principals;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::app::App;
use crate::api::secrets::page_size_of;
use crate::api::status::{envelope_of, invalid, parse_uuid, reply_of};
use crate::auth::token::BearerToken;
use crate::domain::Role;
use crate::domain::names::{Slug, StoreName};
use crate::domain::principal::{Principal, PrincipalCommand};
use crate::read_model::ReadModel;
use crate::streams;

/// The Principals gRPC service.
pub struct PrincipalsApi {
    app: App,
}

impl PrincipalsApi {
    /// The service over `app`.
    pub fn new(app: App) -> Self {
        PrincipalsApi { app }
    }
}

/// Parses a role name as the API spells it.
pub fn parse_role(text: &str) -> Result<Role, Status> {
    match text {
        "admin" => Ok(Role::Admin),
        "user" => Ok(Role::User),
        "auditor" => Ok(Role::Auditor),
        "reactor" => Ok(Role::Reactor),
        other => Err(Status::invalid_argument(format!(
            "`{other}` is not a role: use admin, user, auditor or reactor"
        ))),
    }
}

/// The API spelling of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
        Role::Auditor => "auditor",
        Role::Reactor => "reactor",
    }
}

/// Users and groups as `ListPrincipals` shows them (never token
/// material); the audit replay renders its past states with this too.
pub fn principals_of(m: &ReadModel) -> Vec<v1::Principal> {
    m.principals
        .iter()
        .filter_map(|(slug, p)| principal_of(m, slug, p))
        .collect()
}

/// One user or group as listed; `None` for a slug that is neither (yet).
fn principal_of(m: &ReadModel, slug: &Slug, p: &Principal) -> Option<v1::Principal> {
    let (kind, related) = if p.is_group() {
        (
            "group",
            p.members()
                .map(|s| s.iter().map(Slug::to_string).collect())
                .unwrap_or_default(),
        )
    } else if p.is_user() {
        (
            "user",
            m.groups_of(slug).iter().map(Slug::to_string).collect(),
        )
    } else {
        return None;
    };
    Some(v1::Principal {
        slug: slug.to_string(),
        kind: kind.into(),
        role: p.role().map(role_name).unwrap_or_default().into(),
        stores: p.stores().iter().map(StoreName::to_string).collect(),
        related,
    })
}

fn slug(text: String) -> Result<Slug, Status> {
    Slug::parse(text).map_err(invalid)
}

#[tonic::async_trait]
impl Principals for PrincipalsApi {
    async fn create_user(
        &self,
        request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.app
            .command::<Principal, _>(request, "CreateUser", |r| {
                let slug = slug(r.slug)?;
                let command = PrincipalCommand::CreateUser {
                    slug: slug.clone(),
                    role: parse_role(&r.role)?,
                    stores: r
                        .stores
                        .into_iter()
                        .map(|s| StoreName::parse(s).map_err(invalid))
                        .collect::<Result<_, _>>()?,
                };
                Ok((r.options, streams::principal(&slug), command))
            })
            .await
    }

    async fn create_group(
        &self,
        request: Request<v1::CreateGroupRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.app
            .command::<Principal, _>(request, "CreateGroup", |r| {
                let slug = slug(r.slug)?;
                let command = PrincipalCommand::CreateGroup { slug: slug.clone() };
                Ok((r.options, streams::principal(&slug), command))
            })
            .await
    }

    async fn add_member(
        &self,
        request: Request<v1::MembershipRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "AddMember")?;
        let (group, user) = (slug(r.group)?, slug(r.user)?);
        let (user_exists, _) = self
            .app
            .query(None, |m| {
                m.principals.get(&user).is_some_and(Principal::is_user)
            })
            .await?;
        let command = PrincipalCommand::AddMember { user, user_exists };
        let ctx = self.app.context(&caller);
        let done = self
            .app
            .execute::<Principal>(&streams::principal(&group), &command, &ctx, &envelope)
            .await?;
        Ok(Response::new(reply_of(&done)))
    }

    async fn remove_member(
        &self,
        request: Request<v1::MembershipRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.app
            .command::<Principal, _>(request, "RemoveMember", |r| {
                let (group, user) = (slug(r.group)?, slug(r.user)?);
                let command = PrincipalCommand::RemoveMember { user };
                Ok((r.options, streams::principal(&group), command))
            })
            .await
    }

    async fn issue_token(
        &self,
        request: Request<v1::IssueTokenRequest>,
    ) -> Result<Response<v1::IssueTokenReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "IssueToken")?;
        let owner = slug(r.slug)?;
        let ttl = match r.ttl_seconds {
            0 => self.app.limits.token_ttl_seconds,
            n => n,
        };
        let ttl = i64::try_from(ttl)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .ok_or_else(|| Status::invalid_argument("ttl_seconds is too large"))?;
        let ctx = self.app.context(&caller);
        let token = BearerToken::generate();
        let token_id = Uuid::new_v4();
        let expires_at = ctx
            .now
            .checked_add_signed(ttl)
            .ok_or_else(|| Status::invalid_argument("ttl_seconds is too large"))?;
        let command = PrincipalCommand::IssueToken {
            token_id,
            sha256_hex: token.digest().to_hex(),
            expires_at,
        };
        let done = self
            .app
            .execute::<Principal>(&streams::principal(&owner), &command, &ctx, &envelope)
            .await?;
        if done.replayed {
            // The token issued the first time was shown once and is not
            // kept; this fresh one was never recorded, so it must not leave.
            return Err(Status::failed_precondition(
                "this command id already issued a token, shown once when it was issued; issue a new one with a new command id",
            ));
        }
        Ok(Response::new(v1::IssueTokenReply {
            reply: Some(reply_of(&done)),
            token_id: token_id.to_string(),
            token: token.expose().to_owned(),
            expires_at: expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.app
            .command::<Principal, _>(request, "RevokeToken", |r| {
                let owner = slug(r.slug)?;
                let command = PrincipalCommand::RevokeToken {
                    token_id: parse_uuid(&r.token_id, "token_id")?,
                };
                Ok((r.options, streams::principal(&owner), command))
            })
            .await
    }

    async fn remove_user(
        &self,
        request: Request<v1::RemoveUserRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "RemoveUser")?;
        let user = slug(r.slug)?;
        let done =
            crate::application::principals::remove_user(&self.app, &caller.actor, &user, &envelope)
                .await?;
        Ok(Response::new(reply_of(&done)))
    }

    async fn list_principals(
        &self,
        request: Request<v1::ListPrincipalsRequest>,
    ) -> Result<Response<v1::ListPrincipalsReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        self.app
            .require_role(
                &caller,
                &[Role::Admin, Role::Auditor],
                "ListPrincipals",
                "principals",
            )
            .await?;
        let r = request.into_inner();
        let page_size = page_size_of(r.page_size)?;
        let after = match r.page_token.as_str() {
            "" => None,
            token => Some(Slug::parse(token).map_err(|_| {
                Status::invalid_argument(
                    "page_token is not one this server handed out; pass next_page_token from the previous reply, or none for the first page",
                )
            })?),
        };
        let ((principals, more), read) = self
            .app
            .query(r.options.as_ref(), |m| {
                let from = match &after {
                    Some(slug) => Bound::Excluded(slug),
                    None => Bound::Unbounded,
                };
                let mut listed = m
                    .principals
                    .range::<Slug, _>((from, Bound::Unbounded))
                    .filter_map(|(slug, p)| principal_of(m, slug, p));
                let page: Vec<_> = listed.by_ref().take(page_size).collect();
                (page, listed.next().is_some())
            })
            .await?;
        let next_page_token = match (more, principals.last()) {
            (true, Some(last)) => last.slug.clone(),
            _ => String::new(),
        };
        Ok(Response::new(v1::ListPrincipalsReply {
            principals,
            read: Some(read),
            next_page_token,
        }))
    }

    async fn who_am_i(
        &self,
        request: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        Ok(Response::new(v1::WhoAmIReply {
            slug: caller.actor.slug.to_string(),
            role: role_name(caller.actor.role).into(),
            groups: caller.actor.groups.iter().map(Slug::to_string).collect(),
            stores: caller
                .actor
                .stores
                .iter()
                .map(StoreName::to_string)
                .collect(),
            token_id: caller.token_id.to_string(),
            token_expires_at: caller
                .token_expires_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        }))
    }
}
