//! The application layer: what the control plane does, without any
//! transport. [`App`] holds what every use case shares (the command
//! handler, the read model, the limits); the use cases that span several
//! aggregates live in the modules below and return domain results or a
//! [`UseCaseError`]. The gRPC layer (`api/`) authenticates, converts and
//! maps those errors to statuses, nothing more.

pub mod access;
pub mod audit;
pub mod checkpoint;
pub mod connected_reactors;
pub mod lease;
pub mod principals;
pub mod reactor_feed;
pub mod sealing;
pub mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sealplane_event_store::StreamId;
use tokio::sync::watch;

use crate::command::{
    CommandEnvelope, CommandError, CommandHandler, Executed, Pair, PairError, Step,
};
use crate::config::Limits;
use crate::domain::names::Slug;
use crate::domain::{Actor, Aggregate, Context, Refusal, RefusalKind};
use crate::projection::Projector;
use crate::rate::PerMinute;
use crate::read_model::ReadModel;

/// How long a command waits for the read model to apply what it wrote.
pub const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(5);

/// Why a use case did not take effect; every message is a sentence the
/// caller can act on, and none carries a value, a token or ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseCaseError {
    /// A rule refused it (recorded as `AccessDenied` when a denial).
    #[error("{message}")]
    Refused {
        /// How to report it.
        kind: RefusalKind,
        /// Why, for the caller.
        message: String,
    },
    /// Other writers kept winning; nothing was written.
    #[error("{0}")]
    Aborted(String),
    /// The event store failed; nothing was written.
    #[error("the event store is unavailable; nothing was written, try again")]
    Unavailable,
    /// The server could not read its own log (logged in detail).
    #[error("the server could not process its own event log; an admin should check its log")]
    Internal,
}

impl UseCaseError {
    /// A refusal of `kind` with `message`.
    pub fn refused(kind: RefusalKind, message: impl Into<String>) -> Self {
        UseCaseError::Refused {
            kind,
            message: message.into(),
        }
    }
}

impl<R: Refusal> From<CommandError<R>> for UseCaseError {
    fn from(error: CommandError<R>) -> Self {
        match error {
            CommandError::Refused(r) => UseCaseError::refused(r.kind(), r.to_string()),
            e @ CommandError::Aborted { .. } => UseCaseError::Aborted(e.to_string()),
            e @ CommandError::Reused { .. } => {
                UseCaseError::refused(RefusalKind::Invalid, e.to_string())
            }
            // Store internals (paths, SQL) go to the server log only.
            CommandError::Store(e) => {
                tracing::error!(error = %e, "event store failure");
                UseCaseError::Unavailable
            }
            e @ (CommandError::Unreadable { .. } | CommandError::Encode(_)) => {
                tracing::error!(error = %e, "cannot process the event log");
                UseCaseError::Internal
            }
        }
    }
}

/// What the server counts per principal to bound what one principal can
/// make it hold or write (issue 11 item 3).
#[derive(Default)]
pub struct Guards {
    streams: Mutex<HashMap<Slug, u64>>,
    /// Calls without a valid token, by peer address (`None`: unknown).
    unauthenticated: PerMinute<Option<std::net::IpAddr>>,
    /// The reactors subscribed to the feed now (for `GetStatus`).
    pub reactors: Arc<connected_reactors::ConnectedReactors>,
}

/// A long-lived stream counted against its principal until dropped.
pub struct StreamGuard {
    guards: Arc<Guards>,
    slug: Slug,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut streams = self
            .guards
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = streams.get_mut(&self.slug) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.slug);
            }
        }
    }
}

/// The state every use case shares.
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
    /// Per-principal counters behind the limits.
    pub guards: Arc<Guards>,
    /// The log's signer, when this server signs checkpoints (ADR 0016).
    pub checkpoints: Option<Arc<checkpoint::Checkpointer>>,
    /// Whether the stored log is still the one verified; once broken,
    /// every call is `UNAVAILABLE` (fail closed).
    pub integrity: Arc<checkpoint::LogIntegrity>,
    /// What `/metrics` exports.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Whether this process holds the lease on once-only work (ADR 0020).
    pub once_only: Arc<lease::OnceOnly>,
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

    /// The decision context for `actor` now.
    pub fn context_of(&self, actor: &Actor) -> Context {
        Context {
            actor: actor.clone(),
            now: self.now(),
        }
    }

    /// Counts a long-lived stream of `actor`, refusing one over
    /// `limits.max_streams_per_principal`.
    pub fn open_stream(&self, actor: &Actor) -> Result<StreamGuard, UseCaseError> {
        let mut streams = self
            .guards
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let open = streams.entry(actor.slug.clone()).or_default();
        if *open >= self.limits.max_streams_per_principal {
            return Err(UseCaseError::refused(
                RefusalKind::Exhausted,
                format!(
                    "`{}` already holds {open} open streams (the limit is {}); close some (finish or cancel running sealctl commands) and try again",
                    actor.slug, self.limits.max_streams_per_principal
                ),
            ));
        }
        *open += 1;
        Ok(StreamGuard {
            guards: self.guards.clone(),
            slug: actor.slug.clone(),
        })
    }

    /// Whether a call without a valid token from `peer` may still be
    /// answered (and logged) this minute, within the same limit.
    pub fn unauthenticated_allowed(&self, peer: Option<std::net::IpAddr>) -> bool {
        self.guards
            .unauthenticated
            .allow(peer, self.limits.max_denials_per_minute)
    }

    /// Records a refusal decided outside an aggregate and returns it.
    /// Fail closed: a refusal that cannot be recorded is `Unavailable`.
    /// Beyond `limits.max_denials_per_minute` for one principal, refusals
    /// are `RESOURCE_EXHAUSTED` and no longer recorded.
    pub async fn deny(
        &self,
        ctx: &Context,
        command: &'static str,
        target: &str,
        reason: String,
    ) -> UseCaseError {
        let refused = self.deny_unmetered(ctx, command, target, reason).await;
        self.metrics.command(command, Some(&refused));
        refused
    }

    async fn deny_unmetered(
        &self,
        ctx: &Context,
        command: &'static str,
        target: &str,
        reason: String,
    ) -> UseCaseError {
        if !self.handler.may_record_denial(ctx.actor.slug.as_str()) {
            return UseCaseError::refused(
                RefusalKind::Exhausted,
                format!(
                    "`{}` was refused more than {} times in the last minute; slow down and try again later",
                    ctx.actor.slug, self.limits.max_denials_per_minute
                ),
            );
        }
        let envelope = CommandEnvelope::new(command);
        match self
            .handler
            .record_access_denied(ctx, &envelope, target, &reason)
            .await
        {
            Ok(()) => UseCaseError::refused(RefusalKind::Denied, reason),
            Err(e) => {
                tracing::error!(error = %e, "could not record a refusal");
                UseCaseError::Unavailable
            }
        }
    }

    /// Executes a command.
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
    ) -> Result<Executed, UseCaseError> {
        let done = self
            .handler
            .execute::<A>(stream, command, ctx, envelope)
            .await
            .map_err(UseCaseError::from);
        self.metrics.command(envelope.name, done.as_ref().err());
        let done = done?;
        self.read_your_write(&done, envelope).await;
        Ok(done)
    }

    /// As [`App::execute`], also returning the aggregate's state once the
    /// command took effect, so a use case never reloads a stream just to
    /// read back what was decided.
    pub async fn execute_observed<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        ctx: &Context,
        envelope: &CommandEnvelope,
    ) -> Result<(Executed, A), UseCaseError> {
        let observed = self
            .handler
            .execute_observed::<A>(stream, command, ctx, envelope)
            .await
            .map_err(UseCaseError::from);
        self.metrics.command(envelope.name, observed.as_ref().err());
        let (done, state) = observed?;
        self.read_your_write(&done, envelope).await;
        Ok((done, state))
    }

    /// As [`CommandHandler::execute_pair`](crate::command::CommandHandler::execute_pair):
    /// `first`, then the command `then` makes of its state on `second`'s
    /// stream, both or neither, and read-your-writes for both.
    pub async fn execute_pair<A: Aggregate, B: Aggregate, T>(
        &self,
        ctx: &Context,
        first: Step<'_, A::Command>,
        second: (&StreamId, &CommandEnvelope),
        then: impl Fn(&A) -> Option<B::Command>,
        observe: impl FnOnce(&A, Option<&B>) -> T,
    ) -> Result<Pair<T>, UseCaseError> {
        let paired = self
            .handler
            .execute_pair::<A, B, T>(ctx, first, second, then, observe)
            .await;
        // Counted as two commands, as they were when they were two appends.
        let (first_name, second_name) = (first.envelope.name, second.1.name);
        let paired = match paired {
            Ok(paired) => {
                self.metrics.command(first_name, None);
                if paired.second.is_some() {
                    self.metrics.command(second_name, None);
                }
                paired
            }
            Err(e) => {
                let e = match e {
                    PairError::First(e) => UseCaseError::from(e),
                    PairError::Second(e) => {
                        let e = UseCaseError::from(e);
                        self.metrics.command(second_name, Some(&e));
                        e
                    }
                };
                self.metrics.command(first_name, Some(&e));
                return Err(e);
            }
        };
        let done = Executed {
            position: paired.position(),
            ..paired.first.clone()
        };
        self.read_your_write(&done, first.envelope).await;
        Ok(paired)
    }

    /// With a store other processes append to too (several control planes
    /// on one database, ADR 0020), waits until the read model has applied
    /// the log's head as it is now, so whatever any of them had written
    /// when this was called is seen: read your writes across replicas.
    /// Alone on its store, this process has applied every write that
    /// returned (commands wait for it), so there is nothing to wait for.
    pub async fn see_writes_of_others(&self) -> Result<(), UseCaseError> {
        let store = self.handler.store();
        if !store.shared() {
            return Ok(());
        }
        let head = store.head().await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the log's head");
            UseCaseError::Unavailable
        })?;
        self.model
            .wait_for(head, READ_YOUR_WRITES_WAIT)
            .await
            .map_err(|e| {
                tracing::warn!(position = head.0, error = %e, "the read model is behind the shared log");
                UseCaseError::Unavailable
            })?;
        Ok(())
    }

    /// Waits until the read model has applied what `done` wrote.
    async fn read_your_write(&self, done: &Executed, envelope: &CommandEnvelope) {
        if let Some(position) = done.position
            && let Err(e) = self.model.wait_for(position, READ_YOUR_WRITES_WAIT).await
        {
            // The write is durable; only its visibility is late.
            tracing::warn!(command = envelope.name, position = position.0, error = %e, "recorded, but the read model is late");
        }
    }
}
