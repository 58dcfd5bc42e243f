//! A store's sealing keys (SPEC §11, ADR 0025), stream
//! `sealing-keys-{store}`: the long-term X25519 keys its reactor publishes
//! for files meant to sit in git, each signed by the reactor identity the
//! store is registered with; admins ask for a new one and retire old ones.
//! The control plane keeps public halves and signatures only: the private
//! halves never leave the reactor's machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sealplane_proto::sealing_key::SealingKeyStatement;

use super::names::{SecretUri, Slug, StoreName};
use super::store_catalog::ReactorKey;
use super::{Aggregate, CommandArguments, Context, DomainEvent, Refusal, RefusalKind};

/// Uris named in a refusal to retire, at most.
const URIS_NAMED: usize = 20;

/// One published sealing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingKey {
    /// `sk-` and 16 hex digits of the public key's SHA-256.
    pub key_id: String,
    /// X25519, base64.
    pub public_key: String,
    /// The reactor identity's Ed25519 signature (base64).
    pub signature: String,
    /// The validity period `sealctl` seals in.
    pub not_before: DateTime<Utc>,
    /// See `not_before`.
    pub not_after: DateTime<Utc>,
}

/// A store's sealing keys, in the order they were published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingKeys {
    keys: Vec<(SealingKey, bool)>,
}

/// What can be asked of a store's sealing keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealingKeyCommand {
    /// The store's reactor publishes a key; the handler gathers the
    /// store's registered reactor identity (`None`: no live store).
    Publish {
        store: StoreName,
        key: SealingKey,
        reactor_key: Option<ReactorKey>,
    },
    /// An admin asks the reactor for a new key now.
    RequestRotation { store: StoreName, store_live: bool },
    /// An admin retires a key; the handler gathers the secrets whose last
    /// applied file was sealed to it.
    Retire {
        store: StoreName,
        key_id: String,
        force: bool,
        in_use: Vec<SecretUri>,
    },
}

impl CommandArguments for SealingKeyCommand {
    fn arguments(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            SealingKeyCommand::Publish { store, key, .. } => json!(["Publish", store, key]),
            SealingKeyCommand::RequestRotation { store, .. } => json!(["RequestRotation", store]),
            SealingKeyCommand::Retire {
                store,
                key_id,
                force,
                ..
            } => json!(["Retire", store, key_id, force]),
        }
    }
}

/// What happened to a store's sealing keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SealingKeyEvent {
    /// The reactor published a key, signed by the store's identity.
    SealingKeyPublished { store: StoreName, key: SealingKey },
    /// An admin asked for a new key.
    SealingKeyRotationRequested { store: StoreName, by: Slug },
    /// An admin retired a key; `in_use` are the secrets whose last applied
    /// file was still sealed to it (only with `forced`).
    SealingKeyRetired {
        store: StoreName,
        key_id: String,
        forced: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        in_use: Vec<SecretUri>,
    },
}

impl DomainEvent for SealingKeyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            SealingKeyEvent::SealingKeyPublished { .. } => "SealingKeyPublished",
            SealingKeyEvent::SealingKeyRotationRequested { .. } => "SealingKeyRotationRequested",
            SealingKeyEvent::SealingKeyRetired { .. } => "SealingKeyRetired",
        }
    }
}

impl SealingKeyEvent {
    /// The store the event is about.
    pub fn store(&self) -> &StoreName {
        match self {
            SealingKeyEvent::SealingKeyPublished { store, .. }
            | SealingKeyEvent::SealingKeyRotationRequested { store, .. }
            | SealingKeyEvent::SealingKeyRetired { store, .. } => store,
        }
    }
}

/// Why a sealing-key command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealingKeyRefusal {
    /// Only the store's reactor publishes; only admins rotate and retire.
    #[error("`{actor}` may not {action}")]
    Denied { actor: Slug, action: &'static str },
    /// No live store of that name.
    #[error("there is no store `{0}`; list stores with `sealctl get stores`")]
    NoStore(StoreName),
    /// The key does not verify under the store's reactor identity.
    #[error("the sealing key for `{store}` is refused: {problem}")]
    BadKey { store: StoreName, problem: String },
    /// Another key with this id was published before.
    #[error("sealing key `{0}` was published before with other fields; a key id names one key")]
    Conflicting(String),
    /// No such key.
    #[error(
        "store `{store}` has no sealing key `{key_id}`; `sealctl get sealing-keys {store}` lists them"
    )]
    UnknownKey { store: StoreName, key_id: String },
    /// The newest key cannot go: sealing would have nothing to seal to.
    #[error(
        "`{0}` is the store's newest sealing key; ask for a new one first with `sealctl rotate sealing-key STORE`, then reseal and retire this one"
    )]
    Newest(String),
    /// Files are still sealed to the key.
    #[error(
        "sealing key `{key_id}` still seals the last applied file of {count} secret(s): {named}; reseal their files first (`sealctl reseal DIR`) or retire with --force to make those files unreadable"
    )]
    InUse {
        key_id: String,
        count: usize,
        named: String,
    },
}

impl Refusal for SealingKeyRefusal {
    fn kind(&self) -> RefusalKind {
        match self {
            SealingKeyRefusal::Denied { .. } => RefusalKind::Denied,
            SealingKeyRefusal::NoStore(_) | SealingKeyRefusal::UnknownKey { .. } => {
                RefusalKind::NotFound
            }
            SealingKeyRefusal::BadKey { .. } => RefusalKind::Invalid,
            SealingKeyRefusal::Conflicting(_) => RefusalKind::AlreadyExists,
            SealingKeyRefusal::Newest(_) | SealingKeyRefusal::InUse { .. } => {
                RefusalKind::FailedPrecondition
            }
        }
    }
}

impl SealingKeys {
    /// Every key, oldest first, with whether it is retired.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = (&SealingKey, bool)> {
        self.keys.iter().map(|(k, retired)| (k, *retired))
    }

    /// The newest key not retired: the one `sealctl` seals to.
    pub fn newest(&self) -> Option<&SealingKey> {
        self.keys
            .iter()
            .rev()
            .find(|(_, retired)| !retired)
            .map(|(k, _)| k)
    }

    /// A key by id, with whether it is retired.
    pub fn get(&self, key_id: &str) -> Option<(&SealingKey, bool)> {
        self.keys().find(|(k, _)| k.key_id == key_id)
    }

    fn publish(
        &self,
        store: &StoreName,
        key: &SealingKey,
        reactor_key: Option<&ReactorKey>,
    ) -> Result<Vec<SealingKeyEvent>, SealingKeyRefusal> {
        let reactor_key = reactor_key.ok_or_else(|| SealingKeyRefusal::NoStore(store.clone()))?;
        let bad = |problem: String| SealingKeyRefusal::BadKey {
            store: store.clone(),
            problem,
        };
        let statement = SealingKeyStatement::parse(
            store.as_str(),
            &key.key_id,
            &key.public_key,
            &key.not_before.to_rfc3339(),
            &key.not_after.to_rfc3339(),
        )
        .map_err(|e| bad(e.to_string()))?;
        statement
            .verify(&reactor_key.to_string(), &key.signature)
            .map_err(|e| bad(e.to_string()))?;
        match self.get(&key.key_id) {
            Some((known, _)) if known == key => Ok(vec![]),
            Some(_) => Err(SealingKeyRefusal::Conflicting(key.key_id.clone())),
            None => Ok(vec![SealingKeyEvent::SealingKeyPublished {
                store: store.clone(),
                key: key.clone(),
            }]),
        }
    }

    fn retire(
        &self,
        store: &StoreName,
        key_id: &str,
        force: bool,
        in_use: &[SecretUri],
    ) -> Result<Vec<SealingKeyEvent>, SealingKeyRefusal> {
        match self.get(key_id) {
            None => {
                return Err(SealingKeyRefusal::UnknownKey {
                    store: store.clone(),
                    key_id: key_id.to_owned(),
                });
            }
            Some((_, true)) => return Ok(vec![]),
            Some(_) => {}
        }
        if self.newest().is_some_and(|k| k.key_id == key_id) {
            return Err(SealingKeyRefusal::Newest(key_id.to_owned()));
        }
        if !in_use.is_empty() && !force {
            let mut named: Vec<String> = in_use
                .iter()
                .take(URIS_NAMED)
                .map(|u| u.to_string())
                .collect();
            if in_use.len() > URIS_NAMED {
                named.push(format!("and {} more", in_use.len() - URIS_NAMED));
            }
            return Err(SealingKeyRefusal::InUse {
                key_id: key_id.to_owned(),
                count: in_use.len(),
                named: named.join(", "),
            });
        }
        Ok(vec![SealingKeyEvent::SealingKeyRetired {
            store: store.clone(),
            key_id: key_id.to_owned(),
            forced: !in_use.is_empty(),
            in_use: in_use.to_vec(),
        }])
    }
}

impl Aggregate for SealingKeys {
    type Command = SealingKeyCommand;
    type Event = SealingKeyEvent;
    type Refusal = SealingKeyRefusal;

    fn decide(
        &self,
        command: &SealingKeyCommand,
        ctx: &Context,
    ) -> Result<Vec<SealingKeyEvent>, SealingKeyRefusal> {
        let denied = |action| {
            Err(SealingKeyRefusal::Denied {
                actor: ctx.actor.slug.clone(),
                action,
            })
        };
        match command {
            SealingKeyCommand::Publish {
                store,
                key,
                reactor_key,
            } => {
                if !ctx.actor.serves(store) {
                    return denied("publish sealing keys: that needs the store's reactor");
                }
                self.publish(store, key, reactor_key.as_ref())
            }
            SealingKeyCommand::RequestRotation { store, store_live } => {
                if !ctx.actor.is_admin() {
                    return denied("rotate sealing keys: that needs the admin role");
                }
                if !store_live {
                    return Err(SealingKeyRefusal::NoStore(store.clone()));
                }
                Ok(vec![SealingKeyEvent::SealingKeyRotationRequested {
                    store: store.clone(),
                    by: ctx.actor.slug.clone(),
                }])
            }
            SealingKeyCommand::Retire {
                store,
                key_id,
                force,
                in_use,
            } => {
                if !ctx.actor.is_admin() {
                    return denied("retire sealing keys: that needs the admin role");
                }
                self.retire(store, key_id, *force, in_use)
            }
        }
    }

    fn apply(&mut self, event: &SealingKeyEvent) {
        match event {
            SealingKeyEvent::SealingKeyPublished { key, .. } => {
                self.keys.push((key.clone(), false))
            }
            SealingKeyEvent::SealingKeyRotationRequested { .. } => {}
            SealingKeyEvent::SealingKeyRetired { key_id, .. } => {
                for (key, retired) in &mut self.keys {
                    if key.key_id == *key_id {
                        *retired = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
