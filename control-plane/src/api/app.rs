//! The steps every gRPC call goes through on the shared [`App`]:
//! authenticate the bearer token, check the role, run a plain command or
//! wait for the read model before a query.

use std::pin::Pin;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_core::Stream;
use futures_util::StreamExt;
use sealplane_event_store::{Position, StreamId};
use sealplane_proto::v1;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::api::status::{envelope_of, reply_of};
pub use crate::application::App;
use crate::application::lease::FeedLease;
use crate::application::{READ_YOUR_WRITES_WAIT, StreamGuard};
use crate::auth::token::BearerToken;
use crate::domain::names::Slug;
use crate::domain::{Actor, Aggregate, Context, Role};
use crate::projection::ProjectionError;
use crate::read_model::ReadModel;

/// How often a long-lived stream checks that its caller may still hold it.
pub const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A server stream as tonic serves it.
pub type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

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

impl App {
    /// Authenticates the bearer token in `request`'s metadata. Refusals are
    /// logged with the peer address and reason (never the token); they are
    /// not events, since an anonymous caller must not be able to write to
    /// the log (ADR 0003).
    ///
    /// Beyond `limits.max_denials_per_minute` such refusals from one peer
    /// address, calls from it are `RESOURCE_EXHAUSTED` and not logged, so
    /// nobody fills the log by knocking.
    ///
    /// With several control planes on one store, it first catches up with
    /// the log's head, so a token issued or revoked (or a role changed)
    /// through another is honoured here at once.
    pub async fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        if self.model.is_following() && self.model.progress().caught_up {
            self.see_writes_of_others().await?;
        }
        self.check_token(request).map_err(|status| {
            if status.code() != tonic::Code::Unauthenticated {
                return status;
            }
            let addr = request.remote_addr();
            if !self.unauthenticated_allowed(addr.map(|a| a.ip())) {
                return Status::resource_exhausted(
                    "too many calls without a valid token from this address; slow down and try again later",
                );
            }
            let peer = addr
                .map(|a| a.to_string())
                .unwrap_or_else(|| "unknown peer".into());
            tracing::info!(%peer, reason = status.message(), "refused an unauthenticated call");
            status
        })
    }

    fn check_token<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        // Fail closed: a model that stopped following the log would
        // authenticate with tokens revoked since.
        if !self.model.is_following() {
            return Err(Status::unavailable(
                "the server's read model stopped following the event log (the event store failed under it); calls are refused until it follows again — an admin should check the event store",
            ));
        }
        // Fail closed: the stored log changed under the server (ADR 0016).
        if let Some(broken) = self.integrity.broken() {
            return Err(Status::unavailable(format!(
                "the server stopped serving: its stored event log changed under it ({broken}); an admin must investigate"
            )));
        }
        // Nor may a model still replaying the log: it may not yet know of
        // a revocation.
        if !self.model.progress().caught_up {
            return Err(Status::unavailable(
                "the server is rebuilding its read model from the event log; try again shortly",
            ));
        }
        let outcome = self.check_bearer(request);
        self.metrics
            .token_authentication(outcome.as_ref().err().copied());
        Ok(outcome?)
    }

    /// The caller the request's bearer token stands for, or why it is refused.
    fn check_bearer<T>(&self, request: &Request<T>) -> Result<Caller, TokenRefusal> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or(TokenRefusal::Missing)?
            .to_str()
            .map_err(|_| TokenRefusal::Malformed)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(BearerToken::presented)
            .filter(BearerToken::is_well_formed)
            .ok_or(TokenRefusal::Malformed)?;
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
        Err(self
            .deny(&self.context(caller), command, target, reason)
            .await
            .into())
    }

    /// Whether `caller` may still hold its stream open: the token is not
    /// revoked or expired, and the principal keeps its role and stores.
    /// Long-lived streams (reactor feeds, upload watches) ask every
    /// [`STREAM_RECHECK`] and end with the refusal.
    pub fn recheck(&self, caller: &Caller) -> Result<(), Status> {
        let now = self.now();
        let (current, _) = self
            .model
            .read(|m| m.caller_of(&caller.actor.slug, &caller.token_id, now));
        let current = current?;
        if current.actor.role != caller.actor.role {
            return Err(Status::permission_denied(
                "the principal's role changed; open the stream again",
            ));
        }
        if let Some(lost) = caller
            .actor
            .stores
            .iter()
            .find(|s| !current.actor.stores.contains(s))
        {
            return Err(Status::permission_denied(format!(
                "this reactor no longer serves store `{lost}`"
            )));
        }
        Ok(())
    }

    /// Serves `source` to `caller` as a long-lived stream: counted by
    /// `guard` until it ends, and ended with the refusal once the caller
    /// may no longer hold it ([`App::recheck`] every [`STREAM_RECHECK`]:
    /// a revoked or expired token, a changed role, a lost store). An
    /// error from `source` is sent and ends the stream.
    ///
    /// With a `lease` (a reactor's feed, ADR 0021), the stream also renews
    /// it every [`STREAM_RECHECK`] and ends once it is lost; it is
    /// released when the stream ends.
    pub fn guarded<T: Send + 'static>(
        &self,
        caller: Caller,
        guard: StreamGuard,
        lease: Option<FeedLease>,
        source: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> Streamed<T> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let app = self.clone();
        tokio::spawn(async move {
            let _counted = guard;
            let mut source = std::pin::pin!(source);
            let mut recheck = tokio::time::interval(STREAM_RECHECK);
            loop {
                let out = tokio::select! {
                    message = source.next() => match message {
                        Some(message) => message,
                        None => return,
                    },
                    _ = recheck.tick() => match app.recheck(&caller) {
                        Ok(()) => match &lease {
                            Some(lease) if !lease.renew().await => Err(Status::aborted(
                                "this reactor instance lost its feed lease to another instance; it resubscribes as a standby",
                            )),
                            _ => continue,
                        },
                        Err(refused) => Err(refused),
                    },
                    () = tx.closed() => return,
                };
                let end = out.is_err();
                if tx.send(out).await.is_err() || end {
                    return;
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// This deployment's id; unavailable only on an empty log.
    pub fn deployment_id(&self) -> Result<uuid::Uuid, Status> {
        self.model
            .read(|m| m.deployment_id)
            .0
            .ok_or_else(|| Status::failed_precondition("the log is empty: run `sealplane init`"))
    }

    /// The decision context for `caller` now.
    pub fn context(&self, caller: &Caller) -> Context {
        self.context_of(&caller.actor)
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
        let caller = self.authenticate(&request).await?;
        let (options, stream, command) = build(request.into_inner())?;
        let envelope = envelope_of(options.as_ref(), name)?;
        let done = self
            .execute::<A>(&stream, &command, &self.context(&caller), &envelope)
            .await?;
        Ok(Response::new(reply_of(&done)))
    }

    /// Reads the model once it has applied `options.min_position`, and in
    /// any case the log's head as it was when the query arrived: whatever
    /// any command (of any process sharing the log) had written by then is
    /// read back.
    pub async fn query<R>(
        &self,
        options: Option<&v1::QueryOptions>,
        read: impl FnOnce(&ReadModel) -> R,
    ) -> Result<(R, v1::ReadPosition), Status> {
        let head = self.handler.store().head().await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the log's head");
            Status::unavailable("the event store is unavailable; try again")
        })?;
        let min = options.map(|o| o.min_position).unwrap_or(0).max(head.0);
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

/// Why a token was refused; [`TokenRefusal::label`] is the `outcome`
/// label of `sealplane_token_authentications_total` (never the token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No `authorization` header.
    Missing,
    /// A header that is not `Bearer spt_...` with a well-formed token.
    Malformed,
    /// No such token, or its principal is gone or has no role.
    Unknown,
    /// The token was revoked.
    Revoked,
    /// The token expired at this time.
    Expired(DateTime<Utc>),
}

impl TokenRefusal {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            TokenRefusal::Missing => "missing",
            TokenRefusal::Malformed => "malformed",
            TokenRefusal::Unknown => "unknown",
            TokenRefusal::Revoked => "revoked",
            TokenRefusal::Expired(_) => "expired",
        }
    }
}

impl From<TokenRefusal> for Status {
    fn from(refusal: TokenRefusal) -> Status {
        match refusal {
            TokenRefusal::Missing => {
                Status::unauthenticated("no bearer token: set SEALPLANE_TOKEN or pass --token")
            }
            TokenRefusal::Malformed => Status::unauthenticated(
                "the authorization header must be `Bearer spt_...` with a Sealplane token",
            ),
            TokenRefusal::Unknown => {
                Status::unauthenticated("unknown token; ask an admin for a new one")
            }
            TokenRefusal::Revoked => {
                Status::unauthenticated("this token was revoked; ask an admin for a new one")
            }
            TokenRefusal::Expired(at) => Status::unauthenticated(format!(
                "this token expired at {}; ask an admin for a new one",
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )),
        }
    }
}

impl ReadModel {
    /// The caller a token digest stands for, or why it is refused.
    pub fn authenticate(
        &self,
        digest: &crate::auth::token::TokenDigest,
        now: DateTime<Utc>,
    ) -> Result<Caller, TokenRefusal> {
        let (slug, token_id) = self.tokens.get(digest).ok_or(TokenRefusal::Unknown)?;
        self.caller_of(slug, token_id, now)
    }

    /// The caller holding token `token_id` of `slug` now, or why it is
    /// refused: how a long-lived stream re-checks its caller.
    pub fn caller_of(
        &self,
        slug: &Slug,
        token_id: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Caller, TokenRefusal> {
        let principal = self.principals.get(slug).ok_or(TokenRefusal::Unknown)?;
        let token = principal.token(token_id).ok_or(TokenRefusal::Unknown)?;
        if token.revoked {
            return Err(TokenRefusal::Revoked);
        }
        if token.expires_at <= now {
            return Err(TokenRefusal::Expired(token.expires_at));
        }
        let role = principal.role().ok_or(TokenRefusal::Unknown)?;
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
