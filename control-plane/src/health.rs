//! Whether the control plane is ready for traffic, and the task that keeps
//! both health surfaces current: the standard gRPC health service
//! (`grpc.health.v1.Health`) on the API port and the admin listener's
//! `/readyz`. One rule ([`judge`]) feeds both, so they never disagree.
//!
//! Ready (`SERVING`) only when the server is not shutting down, the event
//! store answers a read, the read model still follows the log (it has not
//! failed closed), has finished its start-up rebuild, and has applied the
//! log's head as read at the check (waiting up to [`HEAD_WAIT`] for the
//! last few events, so a busy log does not flap the answer).

use std::time::Duration;

use sealplane_event_store::Position;
use sealplane_host::admin::Readiness;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::application::App;
use crate::projection::Progress;

/// How often readiness is checked while nothing else wakes the monitor.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long a check waits for the read model to apply the head it read.
pub const HEAD_WAIT: Duration = Duration::from_secs(1);

/// The gRPC services whose health is reported besides the whole server
/// (`""`): they are all served by the one read model, so they share it.
pub const SERVICES: [&str; 6] = [
    "sealplane.v1.Operations",
    "sealplane.v1.Stores",
    "sealplane.v1.Principals",
    "sealplane.v1.Secrets",
    "sealplane.v1.Audit",
    "sealplane.v1.Reactor",
];

/// What one check saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The server has started shutting down.
    pub draining: bool,
    /// The log's head, or why the event store did not answer.
    pub head: Result<Position, String>,
    /// The read model's task still follows the log.
    pub following: bool,
    /// How far the read model got.
    pub progress: Progress,
}

impl Observation {
    /// What one check saw. The head was read before the model's progress,
    /// so an append in between can leave the model past the head that was
    /// read; the log then holds at least what the model applied, and the
    /// head seen is raised to it (a status never shows the model ahead of
    /// the log).
    pub fn new(
        draining: bool,
        head: Result<Position, String>,
        following: bool,
        progress: Progress,
    ) -> Self {
        Self {
            draining,
            head: head.map(|head| head.max(progress.position)),
            following,
            progress,
        }
    }
}

/// The readiness an observation means; the first reason that applies wins.
pub fn judge(seen: &Observation) -> Readiness {
    let not = |why: String| Readiness::NotReady(why);
    if seen.draining {
        return not("draining: the server is shutting down".into());
    }
    let head = match &seen.head {
        Ok(head) => *head,
        Err(why) => return not(format!("the event store is unreachable: {why}")),
    };
    if !seen.following {
        return not(
            "the read model stopped following the event log (failed closed until the event store answers again)"
                .into(),
        );
    }
    if !seen.progress.caught_up {
        return not(format!(
            "the read model is rebuilding from the log (at position {})",
            seen.progress.position.0
        ));
    }
    if seen.progress.position < head {
        return not(format!(
            "the read model is behind the log (at position {}, head {})",
            seen.progress.position.0, head.0
        ));
    }
    Readiness::Ready
}

/// The gRPC health status of a readiness.
pub fn serving_status(readiness: &Readiness) -> ServingStatus {
    if readiness.is_ready() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

/// Looks at `app` once: reads the head with a real read from the store,
/// and gives the read model [`HEAD_WAIT`] to apply it.
pub async fn observe(app: &App) -> Observation {
    let draining = *app.shutdown.borrow();
    let store = app.handler.store();
    let head = match store.head().await {
        Ok(head) => store
            .read_all(Position(head.0.max(1)), 1)
            .await
            .map(|_| head)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Ok(head) = head
        && app.model.progress().caught_up
    {
        let _ = app.model.wait_for(head, HEAD_WAIT).await;
    }
    Observation::new(
        draining,
        head,
        app.model.is_following(),
        app.model.progress(),
    )
}

/// Publishes `readiness` to the gRPC health service and the admin listener.
pub async fn publish(reporter: &HealthReporter, ready: &watch::Sender<Readiness>, now: Readiness) {
    let status = serving_status(&now);
    for service in std::iter::once("").chain(SERVICES) {
        reporter.set_service_status(service, status).await;
    }
    ready.send_if_modified(|old| {
        if *old == now {
            return false;
        }
        match &now {
            Readiness::Ready => tracing::info!("ready: serving"),
            Readiness::NotReady(why) => tracing::info!(reason = %why, "not ready"),
        }
        *old = now.clone();
        true
    });
}

/// Keeps both health surfaces current until the server starts draining,
/// then reports not ready once more and returns (the admin listener goes
/// on answering "draining" until the server has stopped).
pub async fn monitor(app: App, reporter: HealthReporter, ready: watch::Sender<Readiness>) {
    let mut down = app.shutdown.clone();
    let mut progress = app.model.watch();
    // Since when the model has been behind the head, for the lag in seconds.
    let mut behind_since: Option<std::time::Instant> = None;
    loop {
        let checked_at = std::time::Instant::now();
        let seen = observe(&app).await;
        let draining = seen.draining;
        if let Ok(head) = seen.head {
            let lag = head.0.saturating_sub(seen.progress.position.0);
            app.metrics.log_head.set(head.0 as i64);
            app.metrics.projection_lag.set(lag as i64);
            if lag == 0 {
                behind_since = None;
            } else {
                behind_since.get_or_insert(checked_at);
            }
            app.metrics
                .projection_lag_seconds
                .set(behind_since.map_or(0.0, |s| s.elapsed().as_secs_f64()));
        }
        let (open, _) = app.model.read(|m| m.open_uploads_total());
        app.metrics.open_uploads.set(open as i64);
        publish(&reporter, &ready, judge(&seen)).await;
        if draining {
            return;
        }
        let caught_up = seen.progress.caught_up;
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {},
            _ = down.wait_for(|d| *d) => {},
            // During the rebuild, answer as soon as it ends.
            _ = progress.wait_for(|p| p.caught_up), if !caught_up => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(head: u64, at: u64, caught_up: bool) -> Observation {
        Observation {
            draining: false,
            head: Ok(Position(head)),
            following: true,
            progress: Progress {
                position: Position(at),
                log_hash: sealplane_event_store::LogHash::GENESIS,
                caught_up,
            },
        }
    }

    fn reason(readiness: Readiness) -> String {
        match readiness {
            Readiness::NotReady(why) => why,
            Readiness::Ready => panic!("expected not ready"),
        }
    }

    #[test]
    fn a_head_read_before_a_later_append_is_raised_to_what_the_model_applied() {
        // Given the head read at 6 and the model at 7 by the time its
        // progress is read (an event was appended in between)
        let progress = given(6, 7, true).progress;
        // When the observation is made
        let seen = Observation::new(false, Ok(Position(6)), true, progress);
        // Then the head seen is the model's position, and it is ready
        assert_eq!(seen.head, Ok(Position(7)));
        assert_eq!(judge(&seen), Readiness::Ready);
        // And a head ahead of the model is kept as read
        let behind = Observation::new(false, Ok(Position(9)), true, progress);
        assert_eq!(behind.head, Ok(Position(9)));
    }

    #[test]
    fn ready_when_caught_up_with_the_head() {
        assert_eq!(judge(&given(7, 7, true)), Readiness::Ready);
        assert_eq!(judge(&given(0, 0, true)), Readiness::Ready, "an empty log");
    }

    #[test]
    fn not_ready_while_rebuilding_or_behind_the_head() {
        assert!(reason(judge(&given(9, 3, false))).contains("rebuilding"));
        assert!(reason(judge(&given(9, 3, true))).contains("behind the log"));
    }

    #[test]
    fn not_ready_when_the_store_is_unreachable_or_the_model_failed_closed() {
        let mut seen = given(7, 7, true);
        seen.head = Err("the event store is closed".into());
        assert!(reason(judge(&seen)).contains("unreachable"));
        let mut seen = given(7, 7, true);
        seen.following = false;
        assert!(reason(judge(&seen)).contains("failed closed"));
    }

    #[test]
    fn draining_wins_over_everything() {
        let mut seen = given(7, 7, true);
        seen.draining = true;
        seen.following = false;
        assert!(reason(judge(&seen)).starts_with("draining"));
    }

    #[test]
    fn the_grpc_status_follows_readiness() {
        assert_eq!(serving_status(&Readiness::Ready), ServingStatus::Serving);
        assert_eq!(
            serving_status(&Readiness::NotReady("x".into())),
            ServingStatus::NotServing
        );
    }
}
