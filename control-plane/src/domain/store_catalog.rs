//! The store catalog: every secret store, its reactor's identity key,
//! whether it takes uploads, and which one is the default (SPEC §5).
//!
//! One stream (`stores`) holds all of it, because its rules are global:
//! names are unique forever and there is exactly one default while any
//! store exists (ADR 0002).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names::{Slug, StoreName};
use super::{Aggregate, CommandArguments, Context, DomainEvent, Refusal, RefusalKind};

pub use sealplane_proto::certificate::StoreCertificate;
pub use sealplane_proto::names::{InvalidStoreKind, StoreKind};

/// Why a reactor key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReactorKey {
    /// Not canonical standard base64.
    #[error(
        "the reactor key is not standard base64: pass the reactor's Ed25519 public key as 44 base64 characters"
    )]
    NotBase64,
    /// Decoded, but not the size of an Ed25519 public key.
    #[error(
        "the reactor key is {0} bytes; an Ed25519 public key is 32 bytes (44 base64 characters)"
    )]
    WrongLength(usize),
}

/// The Ed25519 public identity key of the reactor serving a store; `sealctl`
/// checks one-time keys against it. Written as standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReactorKey([u8; 32]);

impl ReactorKey {
    /// Parses the canonical standard base64 of exactly 32 bytes.
    pub fn parse(s: &str) -> Result<Self, InvalidReactorKey> {
        let bytes = STANDARD
            .decode(s)
            .map_err(|_| InvalidReactorKey::NotBase64)?;
        let len = bytes.len();
        bytes
            .try_into()
            .map(ReactorKey)
            .map_err(|_| InvalidReactorKey::WrongLength(len))
    }

    /// The raw public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for ReactorKey {
    fn from(bytes: [u8; 32]) -> Self {
        ReactorKey(bytes)
    }
}

impl TryFrom<String> for ReactorKey {
    type Error = InvalidReactorKey;
    fn try_from(s: String) -> Result<Self, InvalidReactorKey> {
        ReactorKey::parse(&s)
    }
}

impl From<ReactorKey> for String {
    fn from(k: ReactorKey) -> String {
        k.to_string()
    }
}

impl fmt::Display for ReactorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for ReactorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReactorKey({self})")
    }
}

/// What the catalog knows about one store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreState {
    /// Its upstream kind.
    pub kind: StoreKind,
    /// The identity key of the reactor serving it.
    pub reactor_key: ReactorKey,
    /// Whether it accepts new uploads.
    pub enabled: bool,
    /// Removed stores stay, so their names are never reused.
    pub removed: bool,
    /// The newest certificate an admin made for it (ADR 0010), if any.
    pub certificate: Option<StoreCertificate>,
}

/// Every store ever created, and the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCatalog {
    stores: BTreeMap<StoreName, StoreState>,
    default: Option<StoreName>,
}

/// What an admin can do to stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreCommand {
    /// Adds a store, enabled; the first one becomes the default.
    Create {
        name: StoreName,
        kind: StoreKind,
        reactor_key: ReactorKey,
        /// An admin's certificate for `reactor_key`, serial 1, if given.
        certificate: Option<StoreCertificate>,
        /// This deployment (gathered by the handler), which a certificate
        /// must name.
        deployment_id: Uuid,
    },
    /// Records a newer certificate: the current identity certified, or a
    /// replaced one (its reactor key becomes the store's).
    Certify {
        name: StoreName,
        certificate: StoreCertificate,
        deployment_id: Uuid,
    },
    /// Lets a store accept uploads again.
    Enable { name: StoreName },
    /// Stops a store accepting uploads.
    Disable { name: StoreName },
    /// Makes a store the one bare paths refer to.
    SetDefault { name: StoreName },
    /// Retires a disabled store; its name stays taken.
    Remove { name: StoreName },
}

impl CommandArguments for StoreCommand {
    fn arguments(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            // The deployment id is this server's, gathered by the handler.
            StoreCommand::Create {
                name,
                kind,
                reactor_key,
                certificate,
                ..
            } => json!(["Create", name, kind, reactor_key, certificate]),
            StoreCommand::Certify {
                name, certificate, ..
            } => json!(["Certify", name, certificate]),
            StoreCommand::Enable { name } => json!(["Enable", name]),
            StoreCommand::Disable { name } => json!(["Disable", name]),
            StoreCommand::SetDefault { name } => json!(["SetDefault", name]),
            StoreCommand::Remove { name } => json!(["Remove", name]),
        }
    }
}

/// What happened to the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StoreEvent {
    /// A store was added, enabled.
    StoreCreated {
        name: StoreName,
        kind: StoreKind,
        reactor_key: ReactorKey,
        /// Absent in logs written before certificates existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<StoreCertificate>,
    },
    /// An admin certified the store's reactor identity (the same, or a
    /// replacement, which serves the store from now on).
    StoreCertified {
        name: StoreName,
        certificate: StoreCertificate,
    },
    /// A store accepts uploads again.
    StoreEnabled { name: StoreName },
    /// A store refuses new uploads.
    StoreDisabled { name: StoreName },
    /// Bare paths now refer to this store.
    DefaultStoreSet { name: StoreName },
    /// A store was retired; if it was the default, there is none now.
    StoreRemoved { name: StoreName },
}

impl StoreEvent {
    /// The store the event is about.
    pub fn store(&self) -> &StoreName {
        match self {
            StoreEvent::StoreCreated { name, .. }
            | StoreEvent::StoreCertified { name, .. }
            | StoreEvent::StoreEnabled { name }
            | StoreEvent::StoreDisabled { name }
            | StoreEvent::DefaultStoreSet { name }
            | StoreEvent::StoreRemoved { name } => name,
        }
    }
}

impl DomainEvent for StoreEvent {
    fn event_type(&self) -> &'static str {
        match self {
            StoreEvent::StoreCreated { .. } => "StoreCreated",
            StoreEvent::StoreCertified { .. } => "StoreCertified",
            StoreEvent::StoreEnabled { .. } => "StoreEnabled",
            StoreEvent::StoreDisabled { .. } => "StoreDisabled",
            StoreEvent::DefaultStoreSet { .. } => "DefaultStoreSet",
            StoreEvent::StoreRemoved { .. } => "StoreRemoved",
        }
    }
}

/// Why a store command (or an upload to a store) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreCatalogRefusal {
    /// Only admins manage stores.
    #[error("`{actor}` may not {action}: that needs the admin role")]
    Denied { actor: Slug, action: &'static str },
    /// The name belongs to a live store.
    #[error("store `{0}` already exists; see it with `sealctl describe store {0}`")]
    AlreadyExists(StoreName),
    /// The name belonged to a removed store and is retired.
    #[error(
        "store name `{0}` was used by a removed store and is never reused, so old uris cannot point at a new store; choose another name"
    )]
    NameOfRemovedStore(StoreName),
    /// No live store has this name.
    #[error(
        "there is no store `{0}` (it may have been removed); list stores with `sealctl get stores`"
    )]
    NotFound(StoreName),
    /// The store is disabled.
    #[error("store `{0}` is disabled; an admin can enable it with `sealctl enable store {0}`")]
    Disabled(StoreName),
    /// Only disabled stores can be removed.
    #[error("store `{0}` is enabled; disable it first with `sealctl disable store {0}`")]
    StillEnabled(StoreName),
    /// A certificate that does not certify what it is given for.
    #[error("the store certificate for `{store}` is refused: {problem}")]
    BadCertificate { store: StoreName, problem: String },
    /// The default cannot go while another store could take its place.
    #[error(
        "store `{0}` is the default store; set another default first with `sealctl set default-store NAME`"
    )]
    IsDefault(StoreName),
}

impl Refusal for StoreCatalogRefusal {
    fn kind(&self) -> RefusalKind {
        use StoreCatalogRefusal as R;
        match self {
            R::Denied { .. } => RefusalKind::Denied,
            R::AlreadyExists(_) | R::NameOfRemovedStore(_) => RefusalKind::AlreadyExists,
            R::NotFound(_) => RefusalKind::NotFound,
            R::BadCertificate { .. } => RefusalKind::Invalid,
            R::Disabled(_) | R::StillEnabled(_) | R::IsDefault(_) => {
                RefusalKind::FailedPrecondition
            }
        }
    }
}

impl StoreCatalog {
    /// A store by name, removed ones included (see [`StoreState::removed`]).
    pub fn store(&self, name: &StoreName) -> Option<&StoreState> {
        self.stores.get(name)
    }

    /// Every store ever created, by name, removed ones included.
    pub fn stores(&self) -> impl Iterator<Item = (&StoreName, &StoreState)> {
        self.stores.iter()
    }

    /// The store bare paths refer to; `None` only while no live store exists.
    pub fn default_store(&self) -> Option<&StoreName> {
        self.default.as_ref()
    }

    /// The store, if it exists, is not removed and is enabled: the check an
    /// upload request must pass.
    pub fn accepting_uploads(&self, name: &StoreName) -> Result<&StoreState, StoreCatalogRefusal> {
        let store = self.live(name)?;
        if store.enabled {
            Ok(store)
        } else {
            Err(StoreCatalogRefusal::Disabled(name.clone()))
        }
    }

    fn live(&self, name: &StoreName) -> Result<&StoreState, StoreCatalogRefusal> {
        self.stores
            .get(name)
            .filter(|s| !s.removed)
            .ok_or_else(|| StoreCatalogRefusal::NotFound(name.clone()))
    }

    fn create(
        &self,
        name: &StoreName,
        kind: StoreKind,
        reactor_key: ReactorKey,
        certificate: &Option<StoreCertificate>,
        deployment_id: Uuid,
    ) -> Result<Vec<StoreEvent>, StoreCatalogRefusal> {
        match self.stores.get(name) {
            Some(s) if s.removed => Err(StoreCatalogRefusal::NameOfRemovedStore(name.clone())),
            Some(_) => Err(StoreCatalogRefusal::AlreadyExists(name.clone())),
            None => {
                if let Some(c) = certificate {
                    check_certificate(c, name, kind, deployment_id, 0)?;
                    if c.reactor_key != reactor_key.to_string() {
                        return Err(bad(name, "it certifies another reactor key"));
                    }
                }
                let mut events = vec![StoreEvent::StoreCreated {
                    name: name.clone(),
                    kind,
                    reactor_key,
                    certificate: certificate.clone(),
                }];
                // No default means no live store: this one is the first.
                if self.default.is_none() {
                    events.push(StoreEvent::DefaultStoreSet { name: name.clone() });
                }
                Ok(events)
            }
        }
    }

    fn certify(
        &self,
        name: &StoreName,
        certificate: &StoreCertificate,
        deployment_id: Uuid,
    ) -> Result<Vec<StoreEvent>, StoreCatalogRefusal> {
        let store = self.live(name)?;
        if store.certificate.as_ref() == Some(certificate) {
            return Ok(vec![]);
        }
        let serial = store.certificate.as_ref().map_or(0, |c| c.serial);
        check_certificate(certificate, name, store.kind, deployment_id, serial)?;
        Ok(vec![StoreEvent::StoreCertified {
            name: name.clone(),
            certificate: certificate.clone(),
        }])
    }

    fn remove(&self, name: &StoreName) -> Result<Vec<StoreEvent>, StoreCatalogRefusal> {
        if self.live(name)?.enabled {
            return Err(StoreCatalogRefusal::StillEnabled(name.clone()));
        }
        let others_live = self.stores.iter().any(|(n, s)| n != name && !s.removed);
        if self.default.as_ref() == Some(name) && others_live {
            return Err(StoreCatalogRefusal::IsDefault(name.clone()));
        }
        Ok(vec![StoreEvent::StoreRemoved { name: name.clone() }])
    }
}

impl Aggregate for StoreCatalog {
    type Command = StoreCommand;
    type Event = StoreEvent;
    type Refusal = StoreCatalogRefusal;

    fn decide(
        &self,
        command: &StoreCommand,
        ctx: &Context,
    ) -> Result<Vec<StoreEvent>, StoreCatalogRefusal> {
        let action = match command {
            StoreCommand::Create { .. } => "create stores",
            StoreCommand::Certify { .. } => "certify stores",
            StoreCommand::Enable { .. } => "enable stores",
            StoreCommand::Disable { .. } => "disable stores",
            StoreCommand::SetDefault { .. } => "set the default store",
            StoreCommand::Remove { .. } => "remove stores",
        };
        if !ctx.actor.is_admin() {
            return Err(StoreCatalogRefusal::Denied {
                actor: ctx.actor.slug.clone(),
                action,
            });
        }
        match command {
            StoreCommand::Create {
                name,
                kind,
                reactor_key,
                certificate,
                deployment_id,
            } => self.create(name, *kind, *reactor_key, certificate, *deployment_id),
            StoreCommand::Certify {
                name,
                certificate,
                deployment_id,
            } => self.certify(name, certificate, *deployment_id),
            StoreCommand::Enable { name } => Ok(if self.live(name)?.enabled {
                vec![]
            } else {
                vec![StoreEvent::StoreEnabled { name: name.clone() }]
            }),
            StoreCommand::Disable { name } => Ok(if self.live(name)?.enabled {
                vec![StoreEvent::StoreDisabled { name: name.clone() }]
            } else {
                vec![]
            }),
            StoreCommand::SetDefault { name } => {
                self.live(name)?;
                Ok(if self.default.as_ref() == Some(name) {
                    vec![]
                } else {
                    vec![StoreEvent::DefaultStoreSet { name: name.clone() }]
                })
            }
            StoreCommand::Remove { name } => self.remove(name),
        }
    }

    fn apply(&mut self, event: &StoreEvent) {
        match event {
            StoreEvent::StoreCreated {
                name,
                kind,
                reactor_key,
                certificate,
            } => {
                self.stores.insert(
                    name.clone(),
                    StoreState {
                        kind: *kind,
                        reactor_key: *reactor_key,
                        enabled: true,
                        removed: false,
                        certificate: certificate.clone(),
                    },
                );
            }
            StoreEvent::StoreCertified { name, certificate } => {
                if let Some(s) = self.stores.get_mut(name) {
                    // Checked to be a valid key when the command was decided.
                    if let Ok(key) = ReactorKey::parse(&certificate.reactor_key) {
                        s.reactor_key = key;
                    }
                    s.certificate = Some(certificate.clone());
                }
            }
            StoreEvent::StoreEnabled { name } | StoreEvent::StoreDisabled { name } => {
                let enabled = matches!(event, StoreEvent::StoreEnabled { .. });
                if let Some(s) = self.stores.get_mut(name) {
                    s.enabled = enabled;
                }
            }
            StoreEvent::DefaultStoreSet { name } => self.default = Some(name.clone()),
            StoreEvent::StoreRemoved { name } => {
                if let Some(s) = self.stores.get_mut(name) {
                    s.removed = true;
                }
                if self.default.as_ref() == Some(name) {
                    self.default = None;
                }
            }
        }
    }
}

fn bad(store: &StoreName, problem: &str) -> StoreCatalogRefusal {
    StoreCatalogRefusal::BadCertificate {
        store: store.clone(),
        problem: problem.to_owned(),
    }
}

/// A certificate must name this deployment, this store and its kind, carry
/// a serial above `serial`, and verify under its own anchor key. Whether
/// that anchor is trusted is for each user's `sealctl` to decide: the
/// control plane holds no anchor (ADR 0010).
fn check_certificate(
    certificate: &StoreCertificate,
    name: &StoreName,
    kind: StoreKind,
    deployment_id: Uuid,
    serial: u64,
) -> Result<(), StoreCatalogRefusal> {
    if certificate.deployment_id != deployment_id {
        return Err(bad(
            name,
            &format!(
                "it is for deployment {}, this is {deployment_id}",
                certificate.deployment_id
            ),
        ));
    }
    if &certificate.store != name {
        return Err(bad(
            name,
            &format!("it names store `{}`", certificate.store),
        ));
    }
    if certificate.kind != kind.as_str() {
        return Err(bad(
            name,
            &format!("it names kind `{}`, the store is {kind}", certificate.kind),
        ));
    }
    if certificate.serial <= serial {
        return Err(bad(
            name,
            &format!(
                "its serial {} is not above the current {serial}",
                certificate.serial
            ),
        ));
    }
    ReactorKey::parse(&certificate.reactor_key).map_err(|e| bad(name, &e.to_string()))?;
    certificate.verify().map_err(|e| bad(name, &e.to_string()))
}

#[cfg(test)]
mod tests;
