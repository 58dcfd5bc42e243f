//! Assembling and running the control plane: open the event store, rebuild
//! the read model from the log (from position 1, or after its snapshot:
//! ADR 0026), mount the services (and the gRPC
//! health service, and the admin listener when configured: `health`),
//! serve until told to stop, then let in-flight calls finish and close the
//! store so every acknowledged event is on disk.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sealplane_event_store::{
    EmbeddedStore, EventStore, LogCheckpoint, Position, PostgresStore, StoreError,
};
use sealplane_host::admin::Readiness;
use sealplane_proto::v1::{
    audit_server::AuditServer, operations_server::OperationsServer,
    principals_server::PrincipalsServer, reactor_server::ReactorServer,
    secrets_server::SecretsServer, stores_server::StoresServer,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::ServerTlsConfig;

use crate::api::app::App;
use crate::api::audit::AuditApi;
use crate::api::operations::OperationsApi;
use crate::api::principals::PrincipalsApi;
use crate::api::reactor::ReactorApi;
use crate::api::secrets::SecretsApi;
use crate::api::stores::StoresApi;
use crate::application::checkpoint::{CheckpointFailure, Checkpointer, Schedule};
use crate::command::CommandHandler;
use crate::config::{Config, ConfigError, EventStoreConfig, Limits};
use crate::projection::{ProjectionError, Projector};
use crate::read_model::ReadModel;
use crate::snapshot::SnapshotFile;
use crate::tls::{TlsError, server_tls};
use sealplane_proto::log_checkpoint::LogSigningKey;

/// How long in-flight calls get to finish after the shutdown signal. The
/// cap exists because hyper (>= 1.5.1, issue #4170) can wait forever on
/// idle client connections; acknowledged events are durable either way.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long start-up waits for the read model to replay the log.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot open the event store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot rebuild the read model: {0}")]
    Rebuild(#[from] ProjectionError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the log checkpoints: {0}")]
    Checkpoints(#[from] CheckpointFailure),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Opens the configured event store.
pub async fn open_store(config: &EventStoreConfig) -> Result<Arc<dyn EventStore>, StoreError> {
    match config {
        EventStoreConfig::Embedded { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
            }
            Ok(Arc::new(EmbeddedStore::open(path)?))
        }
        EventStoreConfig::Postgres { .. } => {
            let url = config
                .postgres_url()
                .map_err(StoreError::backend)?
                .ok_or_else(|| StoreError::backend(ConfigError::PostgresUrlSources))?;
            Ok(Arc::new(PostgresStore::connect(url.expose()).await?))
        }
        EventStoreConfig::Kurrentdb { .. } => {
            let url = config
                .kurrentdb_url()
                .map_err(StoreError::backend)?
                .ok_or_else(|| StoreError::backend(ConfigError::KurrentUrlSources))?;
            open_kurrentdb(url.expose()).await
        }
    }
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    Ok(Arc::new(
        sealplane_event_store::KurrentStore::connect(url).await?,
    ))
}

/// Without the feature the backend is named in the configuration but not
/// linked: say how to get it (ADR 0023).
#[cfg(not(feature = "kurrentdb"))]
async fn open_kurrentdb(url: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    Err(StoreError::backend(std::io::Error::other(format!(
        "the KurrentDB event store at {} is configured, but this sealplane was built without KurrentDB support: build it with `cargo build --release -p sealplane --features kurrentdb` (README, KurrentDB)",
        sealplane_event_store::RedactedUrl::new(url)
    ))))
}

/// The shared state and the switch that tells its streams to end.
pub struct Assembled {
    /// What the services share.
    pub app: App,
    shutdown: watch::Sender<bool>,
    /// The admin listener (`/healthz`, `/readyz`), when one is configured.
    admin: Option<TcpListener>,
    /// Where to keep the read-model snapshot, and every how many events.
    snapshots: Option<(Arc<SnapshotFile>, u64)>,
    /// The log key to walk the whole log against once ready, after an
    /// incremental start-up verification.
    background_verification: Option<[u8; 32]>,
}

impl Assembled {
    /// Also answers `/healthz` and `/readyz` on `listener` while serving.
    pub fn with_admin(mut self, listener: TcpListener) -> Self {
        self.admin = Some(listener);
        self
    }

    /// Writes the read model's snapshot to `file` every `every_events`
    /// events applied, and once more when it stops cleanly.
    pub fn with_snapshots(mut self, file: Arc<SnapshotFile>, every_events: u64) -> Self {
        self.snapshots = Some((file, every_events.max(1)));
        self
    }

    /// Once ready, walks the whole log against the checkpoints signed by
    /// `log_key` in the background, failing closed on a break.
    pub fn with_background_verification(mut self, log_key: [u8; 32]) -> Self {
        self.background_verification = Some(log_key);
        self
    }
}

/// Builds the shared state over `store` and waits until the read model has
/// replayed the log.
pub async fn app(store: Arc<dyn EventStore>, limits: Limits) -> Result<Assembled, ServerError> {
    let assembled = app_rebuilding(store, limits);
    rebuilt(&assembled.app).await?;
    Ok(assembled)
}

/// Builds the shared state over `store` with the read model still
/// replaying the log: it can be served at once, reporting `NOT_SERVING`
/// and refusing calls (`UNAVAILABLE`) until [`rebuilt`] returns.
pub fn app_rebuilding(store: Arc<dyn EventStore>, limits: Limits) -> Assembled {
    app_resuming(store, limits, ReadModel::default(), LogCheckpoint::EMPTY)
}

/// As [`app_rebuilding`], with a `model` that has already applied the log
/// up to `applied` (restored from its snapshot): it folds only what follows.
pub fn app_resuming(
    store: Arc<dyn EventStore>,
    limits: Limits,
    model: ReadModel,
    applied: LogCheckpoint,
) -> Assembled {
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let store: Arc<dyn EventStore> = Arc::new(crate::metrics::Metered::new(store, metrics.clone()));
    let model = Arc::new(Projector::start_after(store.clone(), model, applied));
    let (shutdown, down) = watch::channel(false);
    Assembled {
        app: App {
            handler: CommandHandler::new(store).with_denial_limit(limits.max_denials_per_minute),
            model,
            limits,
            shutdown: down,
            guards: Arc::default(),
            checkpoints: None,
            integrity: Arc::default(),
            metrics,
            once_only: Arc::default(),
        },
        shutdown,
        admin: None,
        snapshots: None,
        background_verification: None,
    }
}

/// Waits until the read model of `app` has replayed the log it started on.
pub async fn rebuilt(app: &App) -> Result<crate::projection::Progress, ServerError> {
    Ok(app.model.wait_caught_up(REBUILD_TIMEOUT).await?)
}

impl Assembled {
    /// Signs checkpoints of the log with `key` on `schedule`, continuing
    /// from the latest recorded one (ADR 0016).
    pub async fn sign_checkpoints(
        &mut self,
        key: LogSigningKey,
        schedule: Schedule,
    ) -> Result<(), ServerError> {
        let checkpointer = Checkpointer::load(
            self.app.handler.store().clone(),
            key,
            schedule,
            self.app.integrity.clone(),
        )
        .await?;
        self.app.checkpoints = Some(Arc::new(checkpointer));
        Ok(())
    }
}

/// Binds the configured address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}

/// Serves every service on `listener` until `shutdown` completes, then
/// ends the long-lived streams, gives in-flight calls [`DRAIN_TIMEOUT`] to
/// finish, and closes the event store.
pub async fn serve(
    assembled: Assembled,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let Assembled {
        app,
        shutdown: switch,
        admin,
        snapshots,
        background_verification,
    } = assembled;
    let store = app.handler.store().clone();
    let snapshotter = snapshots.clone().map(|(file, every)| {
        let app = app.clone();
        tokio::spawn(async move { keep_snapshots(&app, file, every).await })
    });
    let verifier = background_verification.map(|key| {
        let (app, store) = (app.clone(), store.clone());
        tokio::spawn(async move {
            tokio::select! {
                rebuilt = app.model.wait_caught_up(REBUILD_TIMEOUT) => {
                    if rebuilt.is_ok() {
                        crate::startup::verify_in_background(
                            store, key, app.integrity.clone(), app.shutting_down(),
                        ).await;
                    }
                }
                () = app.shutting_down() => {}
            }
        })
    });
    let mut down = app.shutdown.clone();
    // The sweep decides on the read model: not before it has caught up.
    // Folding the log (or reading the snapshot) to get there left freed
    // memory among the model's: given back first.
    let sweeper = tokio::spawn({
        let app = app.clone();
        async move {
            tokio::select! {
                rebuilt = app.model.wait_caught_up(REBUILD_TIMEOUT) => {
                    if rebuilt.is_ok() {
                        release_freed("folding the event log at start").await;
                        crate::sweep::run(app).await;
                    }
                }
                () = app.shutting_down() => {}
            }
        }
    });
    // Health: NOT_SERVING until the monitor's first check says otherwise
    // (the reporter starts at SERVING).
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let (ready, readiness) = watch::channel(Readiness::NotReady("starting".into()));
    crate::health::publish(&reporter, &ready, Readiness::NotReady("starting".into())).await;
    let monitor = tokio::spawn(crate::health::monitor(app.clone(), reporter, ready));
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = admin.map(|listener| {
        let (metrics, model) = (app.metrics.clone(), app.model.clone());
        let render: sealplane_host::admin::Render = Arc::new(move || {
            // Read at the scrape; head and lag are the last check's (500 ms).
            let (open, _) = model.read(|m| m.open_uploads_total());
            metrics.open_uploads.set(open as i64);
            metrics.render()
        });
        tokio::spawn(sealplane_host::admin::serve(
            listener,
            readiness,
            Some(render),
            async {
                let _ = admin_stopped.await;
            },
        ))
    });
    // Once-only work (the sweep, checkpoints) runs where the lease is.
    let lease = tokio::spawn({
        let (app, store) = (app.clone(), store.clone());
        async move { app.once_only.clone().run(store, app.shutting_down()).await }
    });
    let checkpointer = app.checkpoints.clone().map(|c| {
        let app = app.clone();
        let lease = app.once_only.clone();
        tokio::spawn(async move { c.run(move || lease.held(), app.shutting_down()).await })
    });
    let shutdown = async move {
        shutdown.await;
        switch.send_replace(true);
    };
    let mut builder = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(
            app.limits.request_timeout_seconds.max(1),
        ))
        .max_concurrent_streams(Some(
            app.limits.max_concurrent_streams_per_connection.max(1),
        ));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let server = builder
        .add_service(health_service)
        .add_service(StoresServer::new(StoresApi::new(app.clone())))
        .add_service(PrincipalsServer::new(PrincipalsApi::new(app.clone())))
        .add_service(
            // Room for the largest sealed secret, so an oversize one gets
            // our sentence rather than the transport's.
            SecretsServer::new(SecretsApi::new(app.clone()))
                .max_decoding_message_size(app.limits.max_ciphertext_bytes() + (1 << 20)),
        )
        .add_service(AuditServer::new(AuditApi::new(app.clone())))
        .add_service(OperationsServer::new(OperationsApi::new(app.clone())))
        .add_service(ReactorServer::new(ReactorApi::new(app.clone())))
        .serve_with_incoming_shutdown(no_delay(listener), shutdown);
    let drained = async move {
        let _ = down.wait_for(|d| *d).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    let result = tokio::select! {
        result = server => result,
        () = drained => {
            tracing::warn!(
                drain_timeout = ?DRAIN_TIMEOUT,
                "connections still open after shutdown; stopping anyway"
            );
            Ok(())
        }
    };
    // The sweep stops on the shutdown switch; let its last command finish.
    let _ = sweeper.await;
    if let Some(checkpointer) = checkpointer {
        let _ = checkpointer.await;
    }
    // Released only now: no once-only step of this process is in flight.
    let _ = lease.await;
    monitor.abort();
    if let Some(verifier) = verifier {
        let _ = verifier.await;
    }
    if let Some(snapshotter) = snapshotter {
        // The last snapshot: the next start folds only what follows it.
        let last = snapshotter.await.unwrap_or(Position(0));
        if let Some((file, _)) = snapshots {
            let _ = take_snapshot(&app, file, last).await;
        }
    }
    // Drains appends already queued: every acknowledged event is on disk.
    store.close().await;
    // The admin listener answers "draining" until here.
    let _ = admin_stop.send(());
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    Ok(result?)
}

/// Writes a snapshot of the model whenever it has applied `every` events
/// since the last attempt, until shutdown; returns the last position
/// written. A failed attempt (a full disk, a log found changed) waits for
/// `every` more events like a successful one.
async fn keep_snapshots(app: &App, file: Arc<SnapshotFile>, every: u64) -> Position {
    let mut progress = app.model.watch();
    let mut written = app.model.progress().position;
    let mut attempted = written;
    let mut down = app.shutdown.clone();
    loop {
        tokio::select! {
            changed = progress.wait_for(|p| p.caught_up && p.position.0 >= attempted.0 + every) => {
                match changed {
                    Ok(p) => attempted = p.position,
                    Err(_) => return written,
                }
            }
            _ = down.wait_for(|d| *d) => return written,
        }
        if let Some(at) = take_snapshot(app, file.clone(), written).await {
            written = at;
        }
    }
}

/// Writes a snapshot of the model now unless it is not ahead of `last`
/// or the log is no longer trusted; returns the position written. The
/// model is serialized under its read lock (appends to it wait meanwhile),
/// sealed and written after.
async fn take_snapshot(app: &App, file: Arc<SnapshotFile>, last: Position) -> Option<Position> {
    if app.integrity.broken().is_some() {
        return None;
    }
    let model = app.model.clone();
    let written = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let (encoded, progress) = model.read(crate::snapshot::Encoded::of);
        if progress.position <= last {
            return Ok(None);
        }
        let at = LogCheckpoint {
            position: progress.position,
            log_hash: progress.log_hash,
        };
        let bytes = file.write_encoded(encoded?, at)?;
        tracing::info!(
            position = at.position.0,
            bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wrote the read-model snapshot"
        );
        // The encoded copy of the whole model is freed now.
        release_freed_now("writing the read-model snapshot");
        Ok::<_, crate::snapshot::SnapshotError>(Some(at.position))
    })
    .await;
    match written {
        Ok(Ok(position)) => position,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not write the read-model snapshot; the next start rebuilds more of the log");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "the read-model snapshot task failed");
            None
        }
    }
}

/// Gives the system back the pages freed by the burst of short-lived
/// allocations that `after` names, logging how long it took (ADR 0030).
/// Blocks while it walks the allocator's arenas: on a blocking thread.
pub(crate) fn release_freed_now(after: &'static str) {
    let started = std::time::Instant::now();
    let released = sealplane_host::memory::release_freed();
    tracing::debug!(
        after,
        released,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "gave freed memory back to the system"
    );
}

/// As [`release_freed_now`], from a task.
pub(crate) async fn release_freed(after: &'static str) {
    let _ = tokio::task::spawn_blocking(move || release_freed_now(after)).await;
}

/// Accepted connections with Nagle's algorithm off: the API streams small
/// messages (upload states, the reactor feed), and Nagle holding one back
/// until the peer's delayed ACK costs ~40 ms per step of an upload.
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(error = %e, "cannot turn off Nagle's algorithm on a connection");
            }
        })
    })
}

/// The TLS settings of `config`, if it has any.
pub fn tls_of(config: &Config) -> Result<Option<ServerTlsConfig>, ServerError> {
    Ok(config.tls.as_ref().map(server_tls).transpose()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;

    #[tokio::test]
    async fn a_snapshot_is_written_every_so_many_events_and_not_while_the_log_is_distrusted() {
        use crate::application::checkpoint::tests::append;
        use sealplane_event_store::MemoryStore;
        // Given a control plane keeping a snapshot every 5 events
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let assembled = app_rebuilding(store.clone(), Limits::default());
        let dir = tempfile::tempdir().unwrap();
        let key = LogSigningKey::generate();
        let file = Arc::new(SnapshotFile::new(dir.path().join("s"), &key));
        let keeper = tokio::spawn({
            let (app, file) = (assembled.app.clone(), file.clone());
            async move { keep_snapshots(&app, file, 5).await }
        });
        // Appends n events and says where the log's head is then.
        let append_n = |n: usize| {
            let store = store.clone();
            async move {
                append(&*store, n).await;
                store.head().await.unwrap()
            }
        };
        // When 7 events are applied
        let head = append_n(7).await;
        assembled
            .app
            .model
            .wait_for(head, Duration::from_secs(5))
            .await
            .unwrap();
        // Then a snapshot covers them
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let written = loop {
            if let Ok(Some(s)) = file.load() {
                break s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no snapshot written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(written.at.position >= Position(5));
        // And once the log is distrusted, no snapshot is written
        std::fs::remove_file(file.path()).unwrap();
        assembled
            .app
            .integrity
            .fail_record(&CheckpointFailure::Empty);
        let head = append_n(12).await;
        assembled
            .app
            .model
            .wait_for(head, Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(file.load().unwrap().is_none());
        // And shutdown ends the keeper
        assembled.shutdown.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), keeper)
            .await
            .unwrap()
            .unwrap();
    }

    /// The default build names the backend but does not link it: opening
    /// it says how to get it, without the password.
    #[cfg(not(feature = "kurrentdb"))]
    #[tokio::test]
    async fn a_kurrentdb_store_without_the_feature_is_refused_with_how_to_get_it() {
        let config = EventStoreConfig::Kurrentdb {
            url: Some(DatabaseUrl::new("kurrentdb://admin:hunter2@kdb:2113")),
            url_file: None,
            url_env: None,
        };
        let err = open_store(&config).await.err().unwrap().to_string();
        assert!(err.contains("--features kurrentdb"), "{err}");
        assert!(err.contains("kurrentdb://admin:***@kdb:2113"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
