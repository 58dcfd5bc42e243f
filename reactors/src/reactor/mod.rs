//! The running reactor: follows the control plane's feed for its stores and
//! carries out the [`Action`](crate::ledger::Action)s the
//! [`Ledger`] hands out (SPEC §3 steps 2 and 5, deletions; ADR 0006).
//!
//! One task reads the feed and folds it (`feed.rs`); each action runs in
//! its own task (at most `concurrency` at once, `actions.rs`), so a slow
//! upstream write does not hold up key issuance for other users. A second
//! task destroys keys that expire unused and reports them. Reports to the
//! control plane (`reports.rs`) are retried while the control plane is
//! unreachable and dropped (logged) when it refuses them: the control plane
//! is the judge of what may happen, and every report is idempotent there.
//! The rest: `parts.rs` (what a reactor is built from), `client.rs` (gRPC,
//! TLS, token), `failure.rs` (why an action failed: the reported reasons),
//! `checkpoint.rs` (the feed position on disk).
//!
//! Plaintext exists here only inside `actions.rs`, in a zeroizing
//! `SecretValue`; log lines and failure reasons name requests, uris and
//! error kinds, never values.

mod actions;
mod checkpoint;
mod client;
mod failure;
mod feed;
pub mod health;
mod parts;
mod reports;
mod sealed_files;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_proto::v1;
use tokio::sync::{Semaphore, watch};
use tonic::Code;

use self::checkpoint::{Checkpoint, Saver};
use self::client::Client;
pub use self::parts::{ReactorParts, StartError};
use crate::fingerprint::FingerprintKey;
use crate::identity::ReactorIdentity;
use crate::ledger::Ledger;
use crate::metrics::{ReactorMetrics, StoreMetrics};
use crate::one_time_key::OneTimeKeys;
use crate::sealing_keys::SealingKeys;
use crate::upstream::{RetryPolicy, UpstreamStore};

/// The start of the reason reported for a request whose key an earlier run
/// issued; `sealctl` retries such failures with a new request.
pub const KEY_LOST_REASON: &str = "one-time key lost";

/// How long a stopping reactor waits for the actions in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often, at most, the checkpoint file is rewritten while events flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often unused keys are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Talking to the control plane: pauses of 200 ms doubling to 5 s; the
/// feed resubscribes forever, a report gives up after 30 attempts (about
/// two minutes).
const CONTROL_PLANE_RETRY: RetryPolicy = RetryPolicy {
    attempts: 30,
    first_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(5),
};

/// How often a standby asks for the feed again.
const STANDBY_RETRY: Duration = Duration::from_secs(1);

/// Whether the control plane refused the feed because another instance of
/// this reactor holds it.
fn is_standby(status: &tonic::Status) -> bool {
    status.code() == Code::FailedPrecondition && status.message().starts_with("standby")
}

/// The reactor.
pub struct Reactor {
    work: Arc<Work>,
    checkpoint: Checkpoint,
    /// Where the feed loop is, for readiness.
    feed: watch::Sender<health::FeedState>,
    /// The admin listener (`/healthz`, `/readyz`), when one is configured.
    admin: Option<tokio::net::TcpListener>,
}

/// What every action task shares.
struct Work {
    client: Client,
    identity: ReactorIdentity,
    keys: OneTimeKeys,
    sealing: SealingKeys,
    fingerprint: FingerprintKey,
    /// Each timed into `metrics` (`crate::metrics`).
    stores: BTreeMap<String, Arc<dyn UpstreamStore>>,
    metrics: Arc<ReactorMetrics>,
    store_metrics: BTreeMap<String, StoreMetrics>,
    slots: Arc<Semaphore>,
    capacity: u32,
}

impl Work {
    /// The metrics of store `name`, when this reactor serves it.
    fn store_metrics(&self, name: &str) -> Option<&StoreMetrics> {
        self.store_metrics.get(name)
    }
}

impl Reactor {
    /// A reactor over `parts`; connects lazily, so it starts while the control plane is down.
    pub fn new(parts: ReactorParts) -> Result<Self, StartError> {
        let client = client::connect(&parts.address, parts.ca_pem.as_deref(), &parts.token)?;
        let capacity = u32::try_from(parts.concurrency.clamp(1, 4096)).unwrap_or(4096);
        let metrics = Arc::new(ReactorMetrics::default());
        let (stores, store_metrics) = metrics.meter(parts.stores);
        Ok(Reactor {
            work: Arc::new(Work {
                client,
                identity: parts.identity,
                keys: OneTimeKeys::new(),
                sealing: parts.sealing,
                fingerprint: parts.fingerprint,
                stores,
                metrics,
                store_metrics,
                slots: Arc::new(Semaphore::new(capacity as usize)),
                capacity,
            }),
            checkpoint: Checkpoint {
                path: parts.checkpoint_file,
            },
            feed: watch::channel(health::FeedState::default()).0,
            admin: None,
        })
    }

    /// Also answers `/healthz`, `/readyz` and `/metrics` on `listener` while running.
    pub fn with_admin(mut self, listener: tokio::net::TcpListener) -> Self {
        self.admin = Some(listener);
        self
    }

    /// The reactor's public identity (base64), as registered with its stores.
    pub fn public_key(&self) -> String {
        self.work.identity.public_key_base64()
    }

    /// Follows the feed until `shutdown` completes; reconnects with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop) = watch::channel(false);
        let expiry = tokio::spawn(Arc::clone(&self.work).expire_keys(stop.clone()));
        let sealing = tokio::spawn(Arc::clone(&self.work).keep_sealing_keys(stop.clone()));
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin = self.admin.map(|listener| {
            let (ready, readiness) = watch::channel(sealplane_host::admin::Readiness::NotReady(
                "starting".into(),
            ));
            let stores = self.work.stores.clone();
            tokio::spawn(health::monitor(stores, self.feed.subscribe(), ready));
            let metrics = Arc::clone(&self.work.metrics);
            let render: sealplane_host::admin::Render = Arc::new(move || metrics.render());
            tokio::spawn(sealplane_host::admin::serve(
                listener,
                readiness,
                Some(render),
                async {
                    let _ = admin_stopped.await;
                },
            ))
        });
        let feed_state = &self.feed;
        let metrics = &self.work.metrics;
        let set_feed = |connected: bool, caught_up: bool| {
            metrics.feed_connected.set(i64::from(connected));
            feed_state.send_modify(|f| {
                f.connected = connected;
                f.caught_up = caught_up;
            })
        };
        let mut ledger = Ledger::new(self.checkpoint.load());
        let mut saved = (ledger.checkpoint(), Instant::now());
        let mut saver = Saver::new(self.checkpoint.clone());
        let mut delay = CONTROL_PLANE_RETRY.backoff();
        let stores: Vec<&str> = self.work.stores.keys().map(String::as_str).collect();
        let (stores, position) = (stores.join(", "), ledger.resume_from());
        tracing::info!(
            %stores,
            position,
            "serving {stores} from position {position}"
        );
        // This process's id: one instance of a reactor holds its feed.
        let instance = uuid::Uuid::new_v4().to_string();
        tokio::pin!(shutdown);
        'feed: loop {
            ledger.resubscribed();
            let request = v1::FeedRequest {
                from_position: ledger.resume_from(),
                instance_id: instance.clone(),
            };
            let mut client = self.work.client.clone();
            let stream = tokio::select! {
                () = &mut shutdown => break 'feed,
                result = client.subscribe(request) => result,
            };
            match stream {
                Ok(response) => {
                    if feed_state.borrow().standby {
                        tracing::info!(%instance, "took over the feed from another instance of this reactor");
                        feed_state.send_modify(|f| f.standby = false);
                    }
                    set_feed(true, false);
                    let mut stream = response.into_inner();
                    loop {
                        let message = tokio::select! {
                            () = &mut shutdown => break 'feed,
                            message = stream.message() => message,
                        };
                        match message {
                            Ok(Some(message)) => {
                                delay.reset();
                                metrics.feed_message(
                                    message.position,
                                    message.head,
                                    message.recorded_at_ms,
                                );
                                if matches!(
                                    message.message,
                                    Some(v1::feed_message::Message::CaughtUp(_))
                                ) {
                                    set_feed(true, true);
                                }
                                for action in feed::fold(&mut ledger, message) {
                                    self.work.clone().spawn(action).await;
                                }
                                // At most once a second, in the background:
                                // a stale checkpoint only means replaying a
                                // little more.
                                let now = ledger.checkpoint();
                                if now != saved.0
                                    && saved.1.elapsed() >= CHECKPOINT_EVERY
                                    && saver.start(now)
                                {
                                    saved = (now, Instant::now());
                                }
                            }
                            Ok(None) => {
                                tracing::warn!("the feed ended; resubscribing");
                                break;
                            }
                            Err(status) => {
                                tracing::warn!(
                                    error = status.message(),
                                    "the feed broke ({}); resubscribing",
                                    status.message()
                                );
                                break;
                            }
                        }
                    }
                }
                Err(status) if is_standby(&status) => {
                    // Another instance of this reactor holds the feed:
                    // ask again every second, to take over soon after it
                    // stops (ADR 0021).
                    if !feed_state.borrow().standby {
                        tracing::info!(%instance, "{}", status.message());
                        feed_state.send_modify(|f| f.standby = true);
                    }
                    tokio::select! {
                        () = &mut shutdown => break 'feed,
                        () = tokio::time::sleep(STANDBY_RETRY) => {}
                    }
                    continue 'feed;
                }
                Err(status) => {
                    let hint = match status.code() {
                        Code::Unauthenticated | Code::PermissionDenied => {
                            " (check the reactor's token and that its principal has the reactor role and these stores)"
                        }
                        _ => "",
                    };
                    tracing::warn!(
                        code = ?status.code(),
                        error = status.message(),
                        "cannot subscribe to the control plane: {}{hint}",
                        status.message()
                    );
                }
            }
            set_feed(false, false);
            tokio::select! {
                () = &mut shutdown => break 'feed,
                () = tokio::time::sleep(delay.next_delay()) => {}
            }
        }
        self.feed.send_modify(|f| f.stopping = true);
        let _ = stop_tx.send(true);
        let _ = expiry.await;
        let _ = sealing.await;
        // Let the actions in flight finish (each holds a slot), for a while.
        let all = self.work.slots.acquire_many(self.work.capacity);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!(
                "stopping with actions still in flight; their requests are reported failed on restart"
            );
        }
        saver.finish(ledger.checkpoint()).await;
        let _ = admin_stop.send(());
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        tracing::info!("stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let mut b = CONTROL_PLANE_RETRY.backoff();
        let seq: Vec<u64> = (0..7).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(seq, [200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
        assert_eq!(CONTROL_PLANE_RETRY.attempts, 30);
    }
}
