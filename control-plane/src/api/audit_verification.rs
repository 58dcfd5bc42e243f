//! The verification side of the Audit service (ADR 0016): the latest
//! signed checkpoint, and the raw log byte for byte. Admins and auditors
//! only; each call is recorded as `AuditRawRead`. This layer only
//! authenticates, converts and maps errors.

use futures_util::StreamExt;
use sealplane_event_store::Position;
use sealplane_proto::v1;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::api::app::{App, Streamed};
use crate::api::recorded_event::event_to_proto;
use crate::application::audit::entry::RawRead;
use crate::application::audit::raw::{self, record_raw_read};
use crate::application::checkpoint::CheckpointFailure;
use crate::domain::Role;

const ROLES: &[Role] = &[Role::Admin, Role::Auditor];

/// `Audit.Checkpoint`: the latest signed checkpoint (one is signed now if
/// there is none yet).
pub async fn checkpoint(
    app: &App,
    request: Request<v1::AuditCheckpointRequest>,
) -> Result<Response<v1::AuditCheckpointReply>, Status> {
    let caller = app.authenticate(&request).await?;
    app.require_role(&caller, ROLES, "AuditCheckpoint", "audit log")
        .await?;
    let checkpoints = app.checkpoints.as_ref().ok_or_else(|| {
        Status::unavailable("this server has no log key and signs no checkpoints")
    })?;
    let signed = checkpoints.latest_or_take().await.map_err(|e| match e {
        CheckpointFailure::Empty => Status::failed_precondition(e.to_string()),
        CheckpointFailure::Broken(_) => app
            .integrity
            .broken()
            .map(|b| {
                Status::unavailable(format!(
                    "the stored event log changed under the server ({b})"
                ))
            })
            .unwrap_or_else(|| Status::unavailable(e.to_string())),
        e => {
            tracing::warn!(error = %e, "could not take a checkpoint");
            Status::unavailable("could not take a checkpoint now; try again")
        }
    })?;
    record_raw_read(
        app,
        &caller.actor,
        RawRead::Checkpoint {
            position: signed.point.position,
        },
    )
    .await?;
    Ok(Response::new(v1::AuditCheckpointReply {
        checkpoint: Some(signed.to_proto()),
        deployment_id: app.deployment_id()?.to_string(),
    }))
}

/// `Audit.Events`: the recorded events from `from_position` to
/// `until_position` (default: this read's own record), in pages.
pub async fn events(
    app: &App,
    request: Request<v1::AuditEventsRequest>,
) -> Result<Response<Streamed<v1::AuditEventsPage>>, Status> {
    let caller = app.authenticate(&request).await?;
    app.require_role(&caller, ROLES, "AuditEvents", "audit log")
        .await?;
    let r = request.into_inner();
    let from = r.from_position.max(1);
    if r.until_position != 0 && r.until_position < from {
        return Err(Status::invalid_argument(format!(
            "until position {} is before from position {from}",
            r.until_position
        )));
    }
    let guard = app.open_stream(&caller.actor)?;
    let head = app.handler.store().head().await.map_err(|e| {
        tracing::error!(error = %e, "cannot read the log's head");
        Status::unavailable("the event store is unavailable; try again")
    })?;
    // The record comes next: a read to the head ends with it.
    let until = match r.until_position {
        0 => head.0 + 1,
        u => u,
    };
    let recorded = record_raw_read(app, &caller.actor, RawRead::Events { from, until }).await?;
    let until = Position(until.min(recorded.0));
    let pages = ReceiverStream::new(raw::events(app, Position(from), until)).map(|page| {
        page.map(|events| v1::AuditEventsPage {
            events: events.iter().map(event_to_proto).collect(),
        })
        .map_err(|end| Status::unavailable(end.to_string()))
    });
    Ok(Response::new(app.guarded(caller, guard, None, pages)))
}
