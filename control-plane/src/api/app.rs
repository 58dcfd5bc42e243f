//! What every service shares: the command handler, the read model, the
//! limits, and the steps each call goes through (authenticate, check the
//! role, wait for the read model, record refusals).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sealplane_event_store::{Position, StreamId};
use sealplane_proto::v1;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::status::{code_of, envelope_of, reply_of, status_of};
use crate::auth::token::BearerToken;
use crate::command::{CommandEnvelope, CommandHandler, Executed};
use crate::config::Limits;
use crate::domain::{Actor, Aggregate, Context, RefusalKind, Role};
use crate::projection::{ProjectionError, Projector};
use crate::read_model::ReadModel;

/// How long a query waits for the read model to reach `min_position`.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal, its role, groups and stores.
    pub actor: Actor,
    /// The token it presented.
    pub token_id: Uuid,
    /// When that token expires.
    pub token_expires_at: DateTime<Utc>,
}

/// The state every service shares.
#[derive(Clone)]
pub struct App {
    /// Executes commands.
    pub handler: CommandHandler,
    /// The read model.
    pub model: Arc<Projector<ReadModel>>,
    /// Protocol limits.
    pub limits: Limits,
    /// Becomes true when the server starts shutting down, so long-lived
    /// streams (reactor feeds, upload watches) end and let it stop.
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    /// Completes when the server starts shutting down.
    pub async fn shutting_down(&self) {
        let mut shutdown = self.shutdown.clone();
        let _ = shutdown.wait_for(|down| *down).await;
    }

    /// The current time, the `now` of every decision.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// Authenticates the bearer token in `request`'s metadata. Refusals are
    /// logged with the peer address and reason (never the token); they are
    /// not events, since an anonymous caller must not be able to write to
    /// the log (ADR 0003).
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.check_token(request).inspect_err(|status| {
            let peer = request
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown peer".into());
            eprintln!(
                "sealplane: refused a call from {peer}: {}",
                status.message()
            );
        })
    }

    fn check_token<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated("no bearer token: set SEALPLANE_TOKEN or pass --token")
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .map(BearerToken::presented)
            .filter(BearerToken::is_well_formed)
            .ok_or_else(|| {
                Status::unauthenticated(
                    "the authorization header must be `Bearer spt_...` with a Sealplane token",
                )
            })?;
        let now = self.now();
        let (caller, _) = self.model.read(|m| m.authenticate(&token.digest(), now));
        caller
    }

    /// Refuses unless the caller has one of `roles`; a refusal is recorded
    /// as an `AccessDenied` event.
    pub async fn require_role(
        &self,
        caller: &Caller,
        roles: &[Role],
        command: &'static str,
        target: &str,
    ) -> Result<(), Status> {
        if roles.contains(&caller.actor.role) {
            return Ok(());
        }
        let wanted: Vec<String> = roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        let reason = format!(
            "`{}` has role {:?}; {command} needs {}",
            caller.actor.slug,
            caller.actor.role,
            wanted.join(" or ")
        )
        .to_lowercase();
        Err(self.deny(caller, command, target, reason).await)
    }

    /// Records a refusal decided outside an aggregate and returns its status.
    pub async fn deny(
        &self,
        caller: &Caller,
        command: &'static str,
        target: &str,
        reason: String,
    ) -> Status {
        let ctx = self.context(caller);
        let envelope = CommandEnvelope::new(command);
        match self
            .handler
            .record_access_denied(&ctx, &envelope, target, &reason)
            .await
        {
            Ok(()) => Status::new(code_of(RefusalKind::Denied), reason),
            Err(e) => {
                eprintln!("sealplane: could not record a refusal: {e}");
                Status::unavailable("the event store is unavailable; try again")
            }
        }
    }

    /// The decision context for `caller` now.
    pub fn context(&self, caller: &Caller) -> Context {
        Context {
            actor: caller.actor.clone(),
            now: self.now(),
        }
    }

    /// Executes a command and turns the outcome into a reply or a status.
    ///
    /// Returns only once the read model has applied what the command
    /// wrote, so whatever the client does next (authenticate with a token
    /// just revoked, upload to a store just disabled) sees it.
    pub async fn execute<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        ctx: &Context,
        envelope: &CommandEnvelope,
    ) -> Result<Executed, Status> {
        let done = self
            .handler
            .execute::<A>(stream, command, ctx, envelope)
            .await
            .map_err(status_of)?;
        if let Some(position) = done.position
            && let Err(e) = self.model.wait_for(position, READ_YOUR_WRITES_WAIT).await
        {
            // The write is durable; only its visibility is late.
            eprintln!(
                "sealplane: {} recorded at {position}, but {e}",
                envelope.name
            );
        }
        Ok(done)
    }

    /// The steps of a plain command: authenticate, build the command from
    /// the request (`build` returns its options, target stream and command),
    /// execute it, reply with what it wrote.
    pub async fn command<A: Aggregate, T>(
        &self,
        request: Request<T>,
        name: &'static str,
        build: impl FnOnce(T) -> Result<(Option<v1::CommandOptions>, StreamId, A::Command), Status>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.authenticate(&request)?;
        let (options, stream, command) = build(request.into_inner())?;
        let envelope = envelope_of(options.as_ref(), name)?;
        let done = self
            .execute::<A>(&stream, &command, &self.context(&caller), &envelope)
            .await?;
        Ok(Response::new(reply_of(&done)))
    }

    /// Reads the model once it has applied `options.min_position`.
    pub async fn query<R>(
        &self,
        options: Option<&v1::QueryOptions>,
        read: impl FnOnce(&ReadModel) -> R,
    ) -> Result<(R, v1::ReadPosition), Status> {
        let min = options.map(|o| o.min_position).unwrap_or(0);
        if min > 0 {
            self.model
                .wait_for(Position(min), READ_YOUR_WRITES_WAIT)
                .await
                .map_err(|e| match e {
                    e @ ProjectionError::Lagging { .. } => Status::unavailable(e.to_string()),
                    e => Status::unavailable(e.to_string()),
                })?;
        }
        let (result, progress) = self.model.read(read);
        Ok((
            result,
            v1::ReadPosition {
                position: progress.position.0,
                caught_up: progress.caught_up,
            },
        ))
    }
}

impl ReadModel {
    /// The caller a token digest stands for, or why it is refused.
    pub fn authenticate(
        &self,
        digest: &crate::auth::token::TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Caller, Status> {
        let unknown = || Status::unauthenticated("unknown token; ask an admin for a new one");
        let (slug, token_id) = self.tokens.get(digest).ok_or_else(unknown)?;
        let principal = self.principals.get(slug).ok_or_else(unknown)?;
        let token = principal.token(token_id).ok_or_else(unknown)?;
        if token.revoked {
            return Err(Status::unauthenticated(
                "this token was revoked; ask an admin for a new one",
            ));
        }
        if token.expires_at <= now {
            return Err(Status::unauthenticated(format!(
                "this token expired at {}; ask an admin for a new one",
                token.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
        let role = principal.role().ok_or_else(unknown)?;
        let stores = principal.stores().to_vec();
        Ok(Caller {
            actor: Actor {
                slug: slug.clone(),
                role,
                groups: self.groups_of(slug),
                stores,
            },
            token_id: *token_id,
            token_expires_at: token.expires_at,
        })
    }
}
