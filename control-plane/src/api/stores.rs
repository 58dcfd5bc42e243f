//! The Stores service: admins create and manage secret stores; every
//! authenticated principal may list them.

use sealplane_proto::v1;
use sealplane_proto::v1::stores_server::Stores;
use tonic::{Request, Response, Status};

use crate::api::app::App;
use crate::api::status::{envelope_of, invalid, reply_of};
use crate::application::sealing;
use crate::domain::names::StoreName;
use crate::domain::sealing_keys::{SealingKeyCommand, SealingKeys};
use crate::domain::store_catalog::{
    ReactorKey, StoreCatalog, StoreCertificate, StoreCommand, StoreKind, StoreState,
};
use crate::read_model::ReadModel;
use crate::streams;

/// The Stores gRPC service.
pub struct StoresApi {
    app: App,
}

impl StoresApi {
    /// The service over `app`.
    pub fn new(app: App) -> Self {
        StoresApi { app }
    }

    async fn run(
        &self,
        request: Request<v1::StoreCommand>,
        name: &'static str,
        command: fn(StoreName) -> StoreCommand,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.app
            .command::<StoreCatalog, _>(request, name, |r| {
                let store = StoreName::parse(r.name).map_err(invalid)?;
                Ok((r.options, streams::stores(), command(store)))
            })
            .await
    }
}

fn to_wire(name: &StoreName, state: &StoreState, default: Option<&StoreName>) -> v1::Store {
    v1::Store {
        name: name.to_string(),
        kind: state.kind.to_string(),
        reactor_key: state.reactor_key.to_string(),
        enabled: state.enabled,
        is_default: default == Some(name),
        certificate: state.certificate.as_ref().map(StoreCertificate::to_proto),
    }
}

/// Every store not removed, as `ListStores` shows them (the audit replay
/// renders its past states with this too).
pub fn stores_of(m: &ReadModel) -> Vec<v1::Store> {
    let default = m.stores.default_store();
    m.stores
        .stores()
        .filter(|(_, s)| !s.removed)
        .map(|(name, s)| to_wire(name, s, default))
        .collect()
}

/// The wire certificate, checked for form (the aggregate checks the rest).
fn certificate_of(wire: Option<v1::StoreCertificate>) -> Result<Option<StoreCertificate>, Status> {
    wire.map(StoreCertificate::from_proto)
        .transpose()
        .map_err(invalid)
}

#[tonic::async_trait]
impl Stores for StoresApi {
    async fn create_store(
        &self,
        request: Request<v1::CreateStoreRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let deployment_id = self.app.deployment_id()?;
        self.app
            .command::<StoreCatalog, _>(request, "CreateStore", |r| {
                let command = StoreCommand::Create {
                    name: StoreName::parse(r.name).map_err(invalid)?,
                    kind: r.kind.parse::<StoreKind>().map_err(invalid)?,
                    reactor_key: ReactorKey::parse(&r.reactor_key).map_err(invalid)?,
                    certificate: certificate_of(r.certificate)?,
                    deployment_id,
                };
                Ok((r.options, streams::stores(), command))
            })
            .await
    }

    async fn certify_store(
        &self,
        request: Request<v1::CertifyStoreRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let deployment_id = self.app.deployment_id()?;
        self.app
            .command::<StoreCatalog, _>(request, "CertifyStore", |r| {
                let command = StoreCommand::Certify {
                    name: StoreName::parse(r.name).map_err(invalid)?,
                    certificate: certificate_of(r.certificate)?
                        .ok_or_else(|| Status::invalid_argument("a certificate is required"))?,
                    deployment_id,
                };
                Ok((r.options, streams::stores(), command))
            })
            .await
    }

    async fn rotate_sealing_key(
        &self,
        request: Request<v1::StoreCommand>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let app = self.app.clone();
        self.app
            .command::<SealingKeys, _>(request, "RotateSealingKey", |r| {
                let store = StoreName::parse(r.name).map_err(invalid)?;
                let (store_live, _) = app
                    .model
                    .read(|m| m.stores.store(&store).is_some_and(|s| !s.removed));
                let command = SealingKeyCommand::RequestRotation {
                    store: store.clone(),
                    store_live,
                };
                Ok((r.options, streams::sealing_keys(&store), command))
            })
            .await
    }

    async fn retire_sealing_key(
        &self,
        request: Request<v1::RetireSealingKeyRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        let caller = self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let envelope = envelope_of(r.options.as_ref(), "RetireSealingKey")?;
        let store = StoreName::parse(r.store).map_err(invalid)?;
        let done = sealing::retire_sealing_key(
            &self.app,
            &caller.actor,
            store,
            r.key_id,
            r.force,
            &envelope,
        )
        .await?;
        Ok(Response::new(reply_of(&done)))
    }

    async fn get_deployment(
        &self,
        request: Request<v1::GetDeploymentRequest>,
    ) -> Result<Response<v1::Deployment>, Status> {
        self.app.authenticate(&request).await?;
        Ok(Response::new(v1::Deployment {
            deployment_id: self.app.deployment_id()?.to_string(),
        }))
    }

    async fn enable_store(
        &self,
        request: Request<v1::StoreCommand>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.run(request, "EnableStore", |name| StoreCommand::Enable { name })
            .await
    }

    async fn disable_store(
        &self,
        request: Request<v1::StoreCommand>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.run(request, "DisableStore", |name| StoreCommand::Disable {
            name,
        })
        .await
    }

    async fn set_default_store(
        &self,
        request: Request<v1::StoreCommand>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.run(request, "SetDefaultStore", |name| {
            StoreCommand::SetDefault { name }
        })
        .await
    }

    async fn remove_store(
        &self,
        request: Request<v1::StoreCommand>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        self.run(request, "RemoveStore", |name| StoreCommand::Remove { name })
            .await
    }

    async fn list_stores(
        &self,
        request: Request<v1::ListStoresRequest>,
    ) -> Result<Response<v1::ListStoresReply>, Status> {
        self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let (stores, read) = self.app.query(r.options.as_ref(), stores_of).await?;
        Ok(Response::new(v1::ListStoresReply {
            stores,
            read: Some(read),
        }))
    }

    async fn get_store(
        &self,
        request: Request<v1::GetStoreRequest>,
    ) -> Result<Response<v1::GetStoreReply>, Status> {
        self.app.authenticate(&request).await?;
        let r = request.into_inner();
        let name = StoreName::parse(r.name).map_err(invalid)?;
        let (store, read) = self
            .app
            .query(r.options.as_ref(), |m| {
                m.stores
                    .store(&name)
                    .filter(|s| !s.removed)
                    .map(|s| to_wire(&name, s, m.stores.default_store()))
            })
            .await?;
        let store = store.ok_or_else(|| {
            Status::not_found(format!(
                "there is no store `{name}`; `sealctl get stores` lists them"
            ))
        })?;
        Ok(Response::new(v1::GetStoreReply {
            store: Some(store),
            read: Some(read),
        }))
    }
}
