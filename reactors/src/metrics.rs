//! The reactor's metrics, in the Prometheus text format on its admin
//! listener's `/metrics` (`prometheus-client`; ADR 0018).
//!
//! Labels are bounded: a store's name (admins create stores, and a reactor
//! serves the few its config names), an operation (`write`, `read`,
//! `delete`, `probe`), an error kind ([`error_kind`], one per
//! [`UpstreamError`] variant) and a failure kind (a fixed set). Never a
//! uri, path, request id, value, ciphertext or error message.
//!
//! The hot path resolves nothing: each store's histograms are looked up
//! once, when the reactor starts ([`ReactorMetrics::store`]); an
//! observation is an atomic add and a bucket increment, no allocation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sealplane_proto::sealed::SecretValue;
use sealplane_proto::upload::FailureKind;

use crate::upstream::{UpstreamError, UpstreamStore, WriteMeta, Written};

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn upstream_seconds() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// An upstream operation, as the `kind` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `put`.
    Write,
    /// `get`.
    Read,
    /// `delete`.
    Delete,
    /// `probe`.
    Probe,
}

impl Operation {
    const ALL: [Operation; 4] = [
        Operation::Write,
        Operation::Read,
        Operation::Delete,
        Operation::Probe,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Operation::Write => "write",
            Operation::Read => "read",
            Operation::Delete => "delete",
            Operation::Probe => "probe",
        }
    }
}

/// The `error` label of an upstream failure: the variant, never its text.
pub fn error_kind(error: &UpstreamError) -> &'static str {
    match error {
        UpstreamError::NotManaged { .. } => "not_managed",
        UpstreamError::NotFound { .. } => "not_found",
        UpstreamError::InvalidPath { .. } => "invalid_path",
        UpstreamError::Io { .. } => "io",
        UpstreamError::Tampered { .. } => "tampered",
        UpstreamError::RolledBack { .. } => "rolled_back",
        UpstreamError::Crypto(_) => "crypto",
        UpstreamError::Unavailable { .. } => "unavailable",
        UpstreamError::Tls { .. } => "tls",
        UpstreamError::Sealed { .. } => "sealed",
        UpstreamError::PermissionDenied { .. } => "permission_denied",
        UpstreamError::MountMissing { .. } => "mount_missing",
        UpstreamError::Conflict { .. } => "conflict",
        UpstreamError::Rejected { .. } => "rejected",
        UpstreamError::Protocol { .. } => "protocol",
        UpstreamError::Unreadable { .. } => "unreadable",
        UpstreamError::Config { .. } => "config",
        UpstreamError::Login { .. } => "login",
    }
}

/// The `kind` label of a failed upload.
pub fn failure_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::KeyLost => "key_lost",
        FailureKind::PayloadRejected => "payload_rejected",
        FailureKind::Upstream => "upstream",
        FailureKind::NotServed => "not_served",
        FailureKind::NoCurrentValue => "no_current_value",
        FailureKind::Other => "other",
    }
}

/// Every metric the reactor exports.
pub struct ReactorMetrics {
    registry: Registry,
    upstream_seconds: Histograms,
    upstream_errors: Family<Labels, Counter>,
    uploads_opened: Family<Labels, Counter>,
    uploads_completed: Family<Labels, Counter>,
    uploads_failed: Family<Labels, Counter>,
    /// Events between the last feed message and the control plane's head.
    pub feed_lag_events: Gauge,
    /// How old the last event received was when it arrived, while the
    /// feed is behind the head (0 at the head).
    pub feed_lag_seconds: Gauge<f64, AtomicU64>,
    /// 1 while subscribed to the control plane's feed.
    pub feed_connected: Gauge,
    /// One-time keys that expired unused (any store).
    pub keys_expired: Counter,
}

impl Default for ReactorMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sealplane_reactor");
        let upstream_seconds: Histograms = Family::new_with_constructor(upstream_seconds);
        registry.register(
            "upstream_call_duration_seconds",
            "Calls to upstream stores (each attempt), failed ones included, by store and kind",
            upstream_seconds.clone(),
        );
        let upstream_errors = Family::<Labels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream calls that failed, by store, kind and error kind",
            upstream_errors.clone(),
        );
        let uploads_opened = Family::<Labels, Counter>::default();
        registry.register(
            "uploads_opened",
            "Upload requests this reactor issued a one-time key for, by store",
            uploads_opened.clone(),
        );
        let uploads_completed = Family::<Labels, Counter>::default();
        registry.register(
            "uploads_completed",
            "Upload requests stored or verified upstream, by store",
            uploads_completed.clone(),
        );
        let uploads_failed = Family::<Labels, Counter>::default();
        registry.register(
            "uploads_failed",
            "Upload requests reported failed, by store and failure kind",
            uploads_failed.clone(),
        );
        let feed_lag_events = Gauge::default();
        registry.register(
            "feed_lag_events",
            "Log positions between the last feed message and the control plane's head",
            feed_lag_events.clone(),
        );
        let feed_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "feed_lag_seconds",
            "Age of the last event received when it arrived, while behind the head; 0 at the head",
            feed_lag_seconds.clone(),
        );
        let feed_connected = Gauge::default();
        registry.register(
            "feed_connected",
            "1 while subscribed to the control plane's feed",
            feed_connected.clone(),
        );
        let keys_expired = Counter::default();
        registry.register(
            "upload_keys_expired",
            "One-time keys that expired unused, their requests reported expired",
            keys_expired.clone(),
        );
        ReactorMetrics {
            registry,
            keys_expired,
            upstream_seconds,
            upstream_errors,
            uploads_opened,
            uploads_completed,
            uploads_failed,
            feed_lag_events,
            feed_lag_seconds,
            feed_connected,
        }
    }
}

/// One store's metrics, resolved once.
#[derive(Clone)]
pub struct StoreMetrics {
    name: String,
    calls: [Histogram; 4],
    opened: Counter,
    completed: Counter,
    metrics: Arc<ReactorMetrics>,
}

impl StoreMetrics {
    fn call(&self, op: Operation) -> &Histogram {
        &self.calls[op as usize]
    }

    /// Counts an upload request opened (its key issued).
    pub fn opened(&self) {
        self.opened.inc();
    }

    /// Counts an upload request stored or verified.
    pub fn completed(&self) {
        self.completed.inc();
    }

    /// Counts an upload request reported failed with `kind`
    /// ([`failure_label`]).
    pub fn failed(&self, kind: &'static str) {
        // The rare path: resolved at the time.
        self.metrics
            .uploads_failed
            .get_or_create(&vec![
                ("store", self.name.clone()),
                ("kind", kind.to_owned()),
            ])
            .inc();
    }

    fn error(&self, op: Operation, error: &UpstreamError) {
        self.metrics
            .upstream_errors
            .get_or_create(&vec![
                ("store", self.name.clone()),
                ("kind", op.label().to_owned()),
                ("error", error_kind(error).to_owned()),
            ])
            .inc();
    }
}

impl ReactorMetrics {
    /// The metrics of store `name`, its series created at zero.
    pub fn store(self: &Arc<Self>, name: &str) -> StoreMetrics {
        let calls = Operation::ALL.map(|op| {
            self.upstream_seconds
                .get_or_create(&vec![
                    ("store", name.to_owned()),
                    ("kind", op.label().to_owned()),
                ])
                .clone()
        });
        let store = vec![("store", name.to_owned())];
        StoreMetrics {
            name: name.to_owned(),
            calls,
            opened: self.uploads_opened.get_or_create(&store).clone(),
            completed: self.uploads_completed.get_or_create(&store).clone(),
            metrics: Arc::clone(self),
        }
    }

    /// Records a feed message at `position` sent when the control plane
    /// had applied `head` (0: a control plane that does not say), for an
    /// event recorded at `recorded_at_ms` (Unix milliseconds by the
    /// control plane's clock; 0 for checkpoints).
    pub fn feed_message(&self, position: u64, head: u64, recorded_at_ms: i64) {
        if head == 0 {
            return;
        }
        let behind = head.saturating_sub(position);
        self.feed_lag_events
            .set(i64::try_from(behind).unwrap_or(i64::MAX));
        if behind == 0 {
            self.feed_lag_seconds.set(0.0);
        } else if recorded_at_ms > 0 {
            let now = chrono::Utc::now().timestamp_millis();
            let age = now.saturating_sub(recorded_at_ms).max(0);
            self.feed_lag_seconds.set(age as f64 / 1000.0);
        }
    }

    /// The text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// `stores`, each timed into its [`StoreMetrics`], and those metrics.
    pub fn meter(
        self: &Arc<Self>,
        stores: BTreeMap<String, Arc<dyn UpstreamStore>>,
    ) -> (
        BTreeMap<String, Arc<dyn UpstreamStore>>,
        BTreeMap<String, StoreMetrics>,
    ) {
        let mut metered: BTreeMap<String, Arc<dyn UpstreamStore>> = BTreeMap::new();
        let mut each = BTreeMap::new();
        for (name, inner) in stores {
            let metrics = self.store(&name);
            each.insert(name.clone(), metrics.clone());
            metered.insert(name, Arc::new(Metered { inner, metrics }));
        }
        (metered, each)
    }
}

/// An upstream store that times its calls and counts its errors.
struct Metered {
    inner: Arc<dyn UpstreamStore>,
    metrics: StoreMetrics,
}

impl Metered {
    fn record<T>(
        &self,
        op: Operation,
        started: Instant,
        result: Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        self.metrics
            .call(op)
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.error(op, e);
        }
        result
    }
}

#[async_trait::async_trait]
impl UpstreamStore for Metered {
    async fn put(
        &self,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError> {
        let started = Instant::now();
        let result = self.inner.put(path, value, meta).await;
        self.record(Operation::Write, started, result)
    }

    async fn get(&self, path: &str) -> Result<Option<SecretValue>, UpstreamError> {
        let started = Instant::now();
        let result = self.inner.get(path).await;
        self.record(Operation::Read, started, result)
    }

    async fn delete(&self, path: &str, destroy: bool) -> Result<(), UpstreamError> {
        let started = Instant::now();
        let result = self.inner.delete(path, destroy).await;
        self.record(Operation::Delete, started, result)
    }

    async fn probe(&self) -> Result<(), UpstreamError> {
        let started = Instant::now();
        let result = self.inner.probe().await;
        self.record(Operation::Probe, started, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fails;

    #[async_trait::async_trait]
    impl UpstreamStore for Fails {
        async fn put(
            &self,
            path: &str,
            _: &SecretValue,
            _: &WriteMeta,
        ) -> Result<Written, UpstreamError> {
            Err(UpstreamError::Conflict { path: path.into() })
        }
        async fn get(&self, _: &str) -> Result<Option<SecretValue>, UpstreamError> {
            Ok(None)
        }
        async fn delete(&self, _: &str, _: bool) -> Result<(), UpstreamError> {
            Ok(())
        }
        async fn probe(&self) -> Result<(), UpstreamError> {
            Err(UpstreamError::Unavailable {
                endpoint: "http://127.0.0.1:1".into(),
                reason: "connection refused by hunter2".into(),
            })
        }
    }

    #[tokio::test]
    async fn calls_are_timed_and_errors_counted_by_kind_never_by_message() {
        let metrics = Arc::new(ReactorMetrics::default());
        let mut stores: BTreeMap<String, Arc<dyn UpstreamStore>> = BTreeMap::new();
        stores.insert("vault-prod".into(), Arc::new(Fails));
        let (metered, each) = metrics.meter(stores);
        let store = &metered["vault-prod"];
        let meta = WriteMeta {
            uri: "vault-prod://team/secret-path".into(),
            request_id: uuid::Uuid::nil(),
            adopt: false,
        };
        let mut value = SecretValue::new();
        value.insert("k", b"v".to_vec()).unwrap();
        assert!(store.put("team/secret-path", &value, &meta).await.is_err());
        assert!(store.get("team/secret-path").await.unwrap().is_none());
        assert!(store.probe().await.is_err());
        each["vault-prod"].opened();
        each["vault-prod"].failed(failure_label(FailureKind::Upstream));
        let text = metrics.render();
        for line in [
            "sealplane_reactor_upstream_call_duration_seconds_count{store=\"vault-prod\",kind=\"write\"} 1",
            "sealplane_reactor_upstream_call_duration_seconds_count{store=\"vault-prod\",kind=\"read\"} 1",
            "sealplane_reactor_upstream_call_duration_seconds_count{store=\"vault-prod\",kind=\"delete\"} 0",
            "sealplane_reactor_upstream_errors_total{store=\"vault-prod\",kind=\"write\",error=\"conflict\"} 1",
            "sealplane_reactor_upstream_errors_total{store=\"vault-prod\",kind=\"probe\",error=\"unavailable\"} 1",
            "sealplane_reactor_uploads_opened_total{store=\"vault-prod\"} 1",
            "sealplane_reactor_uploads_completed_total{store=\"vault-prod\"} 0",
            "sealplane_reactor_uploads_failed_total{store=\"vault-prod\",kind=\"upstream\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
        assert!(
            !text.contains("read\",error"),
            "a successful read is no error"
        );
        for secret in ["hunter2", "secret-path", "team/"] {
            assert!(!text.contains(secret), "`{secret}` in:\n{text}");
        }
    }

    #[test]
    fn feed_lag_follows_the_head_and_the_event_age() {
        let m = ReactorMetrics::default();
        let now = chrono::Utc::now().timestamp_millis();
        m.feed_message(90, 100, now - 2_000);
        assert_eq!(m.feed_lag_events.get(), 10);
        let age = m.feed_lag_seconds.get();
        assert!((2.0..3.0).contains(&age), "{age}");
        // A checkpoint still behind leaves the age; one at the head clears it.
        m.feed_message(95, 100, 0);
        assert_eq!(m.feed_lag_events.get(), 5);
        assert!(m.feed_lag_seconds.get() >= 2.0);
        m.feed_message(100, 100, 0);
        assert_eq!(
            (m.feed_lag_events.get(), m.feed_lag_seconds.get()),
            (0, 0.0)
        );
        // A control plane that does not send its head changes nothing.
        m.feed_message(1, 0, 0);
        assert_eq!(m.feed_lag_events.get(), 0);
    }
}
