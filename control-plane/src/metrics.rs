//! The control plane's metrics, in the Prometheus text format on the admin
//! listener's `/metrics` (`prometheus-client`; ADR 0018).
//!
//! Labels are bounded: a command's name (a fixed set), a refusal's kind (a
//! fixed set), a store's name (admins create stores; a handful). Never a
//! uri, request id, principal, token, value or ciphertext.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sealplane_event_store::{AppendError, Appended, Decorator, EventStore, StreamAppend};

use crate::api::app::TokenRefusal;
use crate::application::UseCaseError;
use crate::domain::RefusalKind;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric the control plane exports.
pub struct Metrics {
    registry: Registry,
    commands: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    puts: Family<Labels, Counter>,
    put_seconds: Histograms,
    append_seconds: Histogram,
    append_events: Histogram,
    /// Upload requests not ended yet.
    pub open_uploads: Gauge,
    /// The log's head position.
    pub log_head: Gauge,
    /// Events the read model is behind the head.
    pub projection_lag: Gauge,
    /// How long the read model has been behind the head (0 when it is not).
    pub projection_lag_seconds: Gauge<f64, AtomicU64>,
    /// Token checks by outcome, resolved once: `ok` first, then each
    /// refusal in [`AUTH_OUTCOMES`] order.
    authentications: [Counter; AUTH_OUTCOMES.len()],
}

/// The `outcome` label values of `sealplane_token_authentications_total`:
/// `ok`, then the refusals ([`TokenRefusal::label`]).
pub const AUTH_OUTCOMES: [&str; 6] = [
    "ok",
    "missing",
    "malformed",
    "unknown",
    "revoked",
    "expired",
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sealplane");
        let commands = Family::<Labels, Counter>::default();
        registry.register(
            "commands",
            "Commands that took effect, by command",
            commands.clone(),
        );
        let refusals = Family::<Labels, Counter>::default();
        registry.register(
            "refusals",
            "Commands refused, by command and kind",
            refusals.clone(),
        );
        let puts = Family::<Labels, Counter>::default();
        registry.register("puts", "Puts stored upstream, by store", puts.clone());
        let put_seconds: Histograms = Family::new_with_constructor(seconds);
        registry.register(
            "put_duration_seconds",
            "From the key request to the version recorded, by store",
            put_seconds.clone(),
        );
        let append_seconds = seconds();
        registry.register(
            "event_store_append_duration_seconds",
            "Durable appends to the event store",
            append_seconds.clone(),
        );
        let append_events = Histogram::new(exponential_buckets(1.0, 4.0, 8));
        registry.register(
            "event_store_append_batch_events",
            "Events per append",
            append_events.clone(),
        );
        let open_uploads = Gauge::default();
        registry.register(
            "open_upload_requests",
            "Upload requests not ended yet",
            open_uploads.clone(),
        );
        let log_head = Gauge::default();
        registry.register("log_head_position", "The log's head", log_head.clone());
        let projection_lag = Gauge::default();
        registry.register(
            "projection_lag_events",
            "Events the read model is behind the log's head",
            projection_lag.clone(),
        );
        let projection_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "projection_lag_seconds",
            "How long the read model has been behind the log's head; 0 when it is not",
            projection_lag_seconds.clone(),
        );
        let auth = Family::<Labels, Counter>::default();
        registry.register(
            "token_authentications",
            "Bearer tokens checked, by outcome (ok, or why refused)",
            auth.clone(),
        );
        let authentications =
            AUTH_OUTCOMES.map(|o| auth.get_or_create(&vec![("outcome", o.to_owned())]).clone());
        Metrics {
            registry,
            authentications,
            commands,
            refusals,
            puts,
            put_seconds,
            append_seconds,
            append_events,
            open_uploads,
            log_head,
            projection_lag,
            projection_lag_seconds,
        }
    }
}

/// The label value of a refusal.
fn kind_of(error: &UseCaseError) -> &'static str {
    match error {
        UseCaseError::Refused { kind, .. } => match kind {
            RefusalKind::Denied => "denied",
            RefusalKind::NotFound => "not_found",
            RefusalKind::AlreadyExists => "already_exists",
            RefusalKind::FailedPrecondition => "failed_precondition",
            RefusalKind::Invalid => "invalid",
            RefusalKind::Exhausted => "exhausted",
        },
        UseCaseError::Aborted(_) => "aborted",
        UseCaseError::Unavailable => "unavailable",
        UseCaseError::Internal => "internal",
    }
}

impl Metrics {
    /// Counts the outcome of command `name`: `None` when it took effect.
    pub fn command(&self, name: &'static str, refused: Option<&UseCaseError>) {
        match refused {
            None => self
                .commands
                .get_or_create(&vec![("command", name.to_owned())])
                .inc(),
            Some(e) => self
                .refusals
                .get_or_create(&vec![
                    ("command", name.to_owned()),
                    ("kind", kind_of(e).to_owned()),
                ])
                .inc(),
        };
    }

    /// Counts a token check: `None` when the token was accepted, else why not.
    pub fn token_authentication(&self, refused: Option<TokenRefusal>) {
        let at = match refused {
            None => 0,
            Some(TokenRefusal::Missing) => 1,
            Some(TokenRefusal::Malformed) => 2,
            Some(TokenRefusal::Unknown) => 3,
            Some(TokenRefusal::Revoked) => 4,
            Some(TokenRefusal::Expired(_)) => 5,
        };
        self.authentications[at].inc();
    }

    /// Counts a put to `store` that took `took`.
    pub fn put(&self, store: &str, took: Duration) {
        let labels = vec![("store", store.to_owned())];
        self.puts.get_or_create(&labels).inc();
        self.put_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// The text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// An event store that times its appends into [`Metrics`].
pub struct Metered {
    inner: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// `inner`, timed.
    pub fn new(inner: Arc<dyn EventStore>, metrics: Arc<Metrics>) -> Self {
        Metered { inner, metrics }
    }
}

#[async_trait::async_trait]
impl Decorator for Metered {
    fn inner(&self) -> &dyn EventStore {
        &*self.inner
    }
    /// Only appends are timed; reads go through as they are.
    fn reads_unchanged(&self) -> bool {
        true
    }
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        let n: usize = parts.iter().map(|p| p.events.len()).sum();
        let started = Instant::now();
        let result = self.inner.append_many(parts).await;
        if result.is_ok() {
            self.metrics
                .append_seconds
                .observe(started.elapsed().as_secs_f64());
            self.metrics.append_events.observe(n as f64);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_carry_only_bounded_labels() {
        let m = Metrics::default();
        m.command("CreateStore", None);
        m.command(
            "CreateStore",
            Some(&UseCaseError::refused(RefusalKind::Denied, "secret reason")),
        );
        m.put("local", Duration::from_millis(20));
        m.token_authentication(None);
        m.token_authentication(Some(TokenRefusal::Unknown));
        m.token_authentication(Some(TokenRefusal::Unknown));
        let text = m.render();
        for (outcome, n) in [("ok", 1), ("unknown", 2), ("expired", 0)] {
            let line =
                format!("sealplane_token_authentications_total{{outcome=\"{outcome}\"}} {n}");
            assert!(text.contains(&line), "no `{line}` in:\n{text}");
        }
        assert!(
            text.contains("sealplane_commands_total{command=\"CreateStore\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sealplane_refusals_total{command=\"CreateStore\",kind=\"denied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sealplane_puts_total{store=\"local\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sealplane_put_duration_seconds_count{store=\"local\"} 1"),
            "{text}"
        );
        assert!(!text.contains("secret reason"), "a reason is never a label");
        let refusals = [
            TokenRefusal::Missing,
            TokenRefusal::Malformed,
            TokenRefusal::Unknown,
            TokenRefusal::Revoked,
            TokenRefusal::Expired(chrono::Utc::now()),
        ];
        let labels: Vec<&str> = refusals.iter().map(|r| r.label()).collect();
        assert_eq!(labels, AUTH_OUTCOMES[1..], "the handles follow the labels");
    }
}
