//! Assembling and running the control plane: open the event store, rebuild
//! the read model from the whole log, mount the services, serve until told
//! to stop, then let in-flight calls finish and close the store so every
//! acknowledged event is on disk.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sealplane_event_store::{EmbeddedStore, EventStore, StoreError};
use sealplane_proto::v1::{
    principals_server::PrincipalsServer, reactor_server::ReactorServer,
    secrets_server::SecretsServer, stores_server::StoresServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::ServerTlsConfig;

use crate::api::app::App;
use crate::api::principals::PrincipalsApi;
use crate::api::reactor::ReactorApi;
use crate::api::secrets::SecretsApi;
use crate::api::stores::StoresApi;
use crate::command::CommandHandler;
use crate::config::{Config, ConfigError, EventStoreConfig, Limits};
use crate::projection::{ProjectionError, Projector};
use crate::read_model::ReadModel;
use crate::tls::{TlsError, server_tls};

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
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Opens the configured event store.
pub fn open_store(config: &EventStoreConfig) -> Result<Arc<dyn EventStore>, StoreError> {
    match config {
        EventStoreConfig::Embedded { path } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
            }
            Ok(Arc::new(EmbeddedStore::open(path)?))
        }
    }
}

/// Builds the shared state over `store` and waits until the read model has
/// replayed the log.
pub async fn app(store: Arc<dyn EventStore>, limits: Limits) -> Result<App, ServerError> {
    let model = Arc::new(Projector::start(&*store, ReadModel::default()));
    model.wait_caught_up(REBUILD_TIMEOUT).await?;
    Ok(App {
        handler: CommandHandler::new(store),
        model,
        limits,
    })
}

/// Binds the configured address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}

/// Serves every service on `listener` until `shutdown` completes, then
/// waits for in-flight calls and closes the event store.
pub async fn serve(
    app: App,
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let store = app.handler.store().clone();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let result = builder
        .add_service(StoresServer::new(StoresApi::new(app.clone())))
        .add_service(PrincipalsServer::new(PrincipalsApi::new(app.clone())))
        .add_service(SecretsServer::new(SecretsApi::new(app.clone())))
        .add_service(ReactorServer::new(ReactorApi::new(app)))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    store.close().await;
    Ok(result?)
}

/// The TLS settings of `config`, if it has any.
pub fn tls_of(config: &Config) -> Result<Option<ServerTlsConfig>, ServerError> {
    Ok(config.tls.as_ref().map(server_tls).transpose()?)
}
