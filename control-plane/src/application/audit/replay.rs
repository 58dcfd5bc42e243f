//! Replaying the log (SPEC §1 invariant 2, §7, ADR 0017): the read model
//! as it was at a point of the log, built by the live read model's own
//! projection (`ReadModel`'s `Projection::apply`) over a fresh model, from
//! the first event up to that point, in bounded pages. Nothing here knows
//! what a store, secret or principal looks like on the wire: the caller
//! renders the model with the live queries' functions.
//!
//! A time point means the longest prefix of the log whose events were all
//! recorded at or before that time (timestamps are the deciding process's
//! clock, so not strictly monotonic in position: the prefix stops at the
//! first later one rather than skipping it, so a replay is always a state
//! the live model really passed through).

use chrono::{DateTime, SecondsFormat, Utc};
use sealplane_event_store::{EventStore, Position, RecordedEvent, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::filter::LogPoint;
use super::record;
use crate::application::{App, UseCaseError};
use crate::domain::names::Slug;
use crate::domain::{Actor, RefusalKind, Role};
use crate::projection::Projection;
use crate::read_model::ReadModel;

/// Events read from the store per page.
pub const PAGE: usize = 4096;

/// The event type of [`AuditReplayed`].
pub const AUDIT_REPLAYED: &str = "AuditReplayed";

/// Replays take turns, so however many auditors replay at once the server
/// holds one replayed read model (plus, for a diff, one rendered state).
static REPLAYS: Semaphore = Semaphore::const_new(1);

/// The event recorded for each replay, before it is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditReplayed {
    /// Who replayed.
    pub reader: Slug,
    /// With which role.
    pub role: Role,
    /// The point whose state was asked for.
    pub at: LogPoint,
    /// The earlier point of a diff, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<LogPoint>,
}

impl AuditReplayed {
    /// The points in words, for the audit log's line.
    pub fn summary(&self) -> String {
        match &self.from {
            None => format!("at {}", self.at.summary()),
            Some(from) => format!("changes from {} to {}", from.summary(), self.at.summary()),
        }
    }
}

/// Why a point cannot be replayed; each a sentence the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    /// The log has no event yet.
    #[error("the log is empty: there is no state to replay yet")]
    EmptyLog,
    /// Position 0.
    #[error("log positions start at 1 (the first event); there is no state before it")]
    BeforeStart,
    /// A position past the head.
    #[error(
        "position {at} is beyond the log's head (position {head}); `sealctl audit log` shows positions"
    )]
    BeyondHead {
        /// The position asked for.
        at: u64,
        /// The last position written.
        head: u64,
    },
    /// A time before the first event.
    #[error(
        "{time} is before the log's first event (recorded {first}); there is no state before it"
    )]
    BeforeFirstEvent {
        /// The time asked for.
        time: String,
        /// The first event's time.
        first: String,
    },
    /// A time after now.
    #[error("{time} is in the future (the server's time is {now}); the state is known up to now")]
    Future {
        /// The time asked for.
        time: String,
        /// The server's time.
        now: String,
    },
}

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Checks `point` against the log as it is now: `head` its last position,
/// `first` the recorded time of its first event.
pub fn check_point(
    point: &LogPoint,
    head: Position,
    first: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), PointError> {
    if head.0 == 0 {
        return Err(PointError::EmptyLog);
    }
    match *point {
        LogPoint::Position(0) => Err(PointError::BeforeStart),
        LogPoint::Position(at) if at > head.0 => Err(PointError::BeyondHead { at, head: head.0 }),
        LogPoint::Position(_) => Ok(()),
        LogPoint::Time(t) if t > now => Err(PointError::Future {
            time: text(t),
            now: text(now),
        }),
        LogPoint::Time(t) => match first {
            Some(first) if t < first => Err(PointError::BeforeFirstEvent {
                time: text(t),
                first: text(first),
            }),
            _ => Ok(()),
        },
    }
}

/// Where a point ends the log's prefix, found as the log passes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointResolver {
    point: LogPoint,
    resolved: bool,
}

impl PointResolver {
    /// A resolver for `point`, before any event.
    pub fn new(point: LogPoint) -> Self {
        PointResolver {
            point,
            resolved: false,
        }
    }

    /// Whether the event at `position`, recorded at `time`, belongs to the
    /// prefix the point names. The first event that does not resolves the
    /// point to the event before it, for good: later events are not
    /// looked at (an event whose time cannot be read stays in the prefix).
    pub fn admits(&mut self, position: Position, time: Option<DateTime<Utc>>) -> bool {
        if self.resolved {
            return false;
        }
        let admitted = match self.point {
            LogPoint::Position(p) => position.0 <= p,
            LogPoint::Time(t) => time.is_none_or(|at| at <= t),
        };
        self.resolved = !admitted;
        admitted
    }

    /// Whether an event has ended the prefix.
    pub fn is_resolved(&self) -> bool {
        self.resolved
    }
}

/// The point a state was rendered at: the last event applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Its position (`Position(0)` before any event).
    pub position: Position,
    /// Its recorded time.
    pub time: Option<DateTime<Utc>>,
}

/// Folds the log from its start into a fresh read model, up to `last` at
/// most, and calls `render` with the model at each point as it resolves
/// (in log order); returns the renderings in the order of `points`.
/// One model is held; the log is read once, in pages of [`PAGE`].
pub async fn fold<T>(
    store: &dyn EventStore,
    points: &[LogPoint],
    last: Position,
    mut render: impl FnMut(&ReadModel, Resolved) -> T,
) -> Result<Vec<T>, StoreError> {
    let mut model = ReadModel::default();
    let mut resolvers: Vec<PointResolver> =
        points.iter().copied().map(PointResolver::new).collect();
    let mut rendered: Vec<Option<T>> = points.iter().map(|_| None).collect();
    let mut applied = Resolved {
        position: Position(0),
        time: None,
    };
    let mut next = Position::START;
    'pass: while next <= last {
        let page = store.read_all(next, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            if event.position > last {
                break 'pass;
            }
            let time = time_of(event);
            for (resolver, slot) in resolvers.iter_mut().zip(rendered.iter_mut()) {
                if slot.is_none() && !resolver.admits(event.position, time) {
                    *slot = Some(render(&model, applied));
                }
            }
            if resolvers.iter().all(PointResolver::is_resolved) {
                break 'pass;
            }
            model.apply(event);
            applied = Resolved {
                position: event.position,
                time,
            };
            next = event.position.next();
        }
    }
    Ok(rendered
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| render(&model, applied)))
        .collect())
}

fn time_of(event: &RecordedEvent) -> Option<DateTime<Utc>> {
    event.metadata().ok().map(|m| m.timestamp)
}

/// What an auditor asked to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRequest {
    /// The state at this point.
    pub at: LogPoint,
    /// Also the state at this point (for a diff).
    pub from: Option<LogPoint>,
}

/// The states replayed: at `at`, and at `from` when asked.
#[derive(Debug)]
pub struct Replayed<T> {
    /// The state at `at`.
    pub at: T,
    /// The state at `from`.
    pub from: Option<T>,
}

/// Checks the points, records the replay (`AuditReplayed`, fail closed),
/// then folds the log up to the later point and renders the state at each.
/// The caller has checked the reader's role.
pub async fn replay<T>(
    app: &App,
    actor: &Actor,
    request: ReplayRequest,
    render: impl FnMut(&ReadModel, Resolved) -> T,
) -> Result<Replayed<T>, UseCaseError> {
    let store = app.handler.store().clone();
    let unavailable = |e: StoreError| {
        tracing::error!(error = %e, "an audit replay could not read the log");
        UseCaseError::Unavailable
    };
    let head = store.head().await.map_err(unavailable)?;
    let first = store
        .read_all(Position::START, 1)
        .await
        .map_err(unavailable)?
        .first()
        .and_then(time_of);
    let now = app.now();
    for point in std::iter::once(&request.at).chain(request.from.as_ref()) {
        check_point(point, head, first, now)
            .map_err(|e| UseCaseError::refused(RefusalKind::Invalid, e.to_string()))?;
    }
    let record_at = record(
        app,
        actor,
        AUDIT_REPLAYED,
        &AuditReplayed {
            reader: actor.slug.clone(),
            role: actor.role,
            at: request.at,
            from: request.from,
        },
    )
    .await?;
    let _turn = REPLAYS
        .acquire()
        .await
        .map_err(|_| UseCaseError::Internal)?;
    let points: Vec<LogPoint> = std::iter::once(request.at).chain(request.from).collect();
    let mut states = fold(&*store, &points, record_at, render)
        .await
        .map_err(unavailable)?
        .into_iter();
    let at = states.next().ok_or(UseCaseError::Internal)?;
    Ok(Replayed {
        at,
        from: states.next(),
    })
}

#[cfg(test)]
mod tests;
