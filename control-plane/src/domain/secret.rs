//! The secret aggregate (ADR 0002, stream `secret-{uri}`): who created a
//! secret, its six access lists (seeds 000/001, SPEC §6), the versions the
//! reactor stored with their keyed hashes (SPEC §4), and its deletion.
//! Values never come here: only hashes and metadata.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::key_hashes::{KeyHashes, StoredHash};
use super::names::{SecretUri, Slug, StoreName};
use super::upload::malformed_hash;
use super::{Actor, Aggregate, CommandArguments, Context, DomainEvent, Refusal, RefusalKind, Role};

/// One of a secret's access lists, named as in the seeds; entries are user
/// or group slugs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccessList {
    /// See metadata, hashes and history; verify a value.
    Readers,
    /// Put new versions.
    Writers,
    /// Delete the secret.
    Deleters,
    /// Change the readers list.
    CanChangeReaders,
    /// Change the writers list.
    CanChangeWriters,
    /// Change the deleters list.
    CanChangeDeleters,
}

impl AccessList {
    /// Every list, in display order.
    pub const ALL: [AccessList; 6] = [
        AccessList::Readers,
        AccessList::Writers,
        AccessList::Deleters,
        AccessList::CanChangeReaders,
        AccessList::CanChangeWriters,
        AccessList::CanChangeDeleters,
    ];

    /// The name used in events, the API and the CLI, e.g. `canChangeReaders`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessList::Readers => "readers",
            AccessList::Writers => "writers",
            AccessList::Deleters => "deleters",
            AccessList::CanChangeReaders => "canChangeReaders",
            AccessList::CanChangeWriters => "canChangeWriters",
            AccessList::CanChangeDeleters => "canChangeDeleters",
        }
    }

    /// The list whose members may change this one: `canChangeReaders` for
    /// `readers`, and each `canChange*` list for itself.
    pub fn changed_by(self) -> AccessList {
        match self {
            AccessList::Readers | AccessList::CanChangeReaders => AccessList::CanChangeReaders,
            AccessList::Writers | AccessList::CanChangeWriters => AccessList::CanChangeWriters,
            AccessList::Deleters | AccessList::CanChangeDeleters => AccessList::CanChangeDeleters,
        }
    }
}

impl fmt::Display for AccessList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access list name that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an access list: use readers, writers, deleters, canChangeReaders, canChangeWriters or canChangeDeleters"
)]
pub struct UnknownAccessList(pub String);

impl FromStr for AccessList {
    type Err = UnknownAccessList;

    fn from_str(s: &str) -> Result<Self, UnknownAccessList> {
        AccessList::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownAccessList(s.to_owned()))
    }
}

/// The access lists of a secret.
pub type Acl = BTreeMap<AccessList, SlugSet>;

/// The slugs of one access list, as events carry them: a sorted,
/// duplicate-free `Vec`, stored as a JSON array like the `BTreeSet` it
/// replaces. (A secret's state holds its lists as an [`Access`].)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Slug>", into = "Vec<Slug>")]
pub struct SlugSet(Vec<Slug>);

impl SlugSet {
    /// Whether `slug` is in the list.
    pub fn contains(&self, slug: &Slug) -> bool {
        self.0.binary_search(slug).is_ok()
    }

    /// Adds `slug`; false when it was there already.
    pub fn insert(&mut self, slug: Slug) -> bool {
        match self.0.binary_search(&slug) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, slug);
                true
            }
        }
    }

    /// Removes `slug`; false when it was not there.
    pub fn remove(&mut self, slug: &Slug) -> bool {
        match self.0.binary_search(slug) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The slugs, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Slug> {
        self.0.iter()
    }

    /// How many slugs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Slug>> for SlugSet {
    fn from(mut slugs: Vec<Slug>) -> Self {
        slugs.sort();
        slugs.dedup();
        slugs.shrink_to_fit();
        SlugSet(slugs)
    }
}

impl From<SlugSet> for Vec<Slug> {
    fn from(set: SlugSet) -> Self {
        set.0
    }
}

impl<const N: usize> From<[Slug; N]> for SlugSet {
    fn from(slugs: [Slug; N]) -> Self {
        Vec::from(slugs).into()
    }
}

/// A secret's access lists as its state holds them: each slug once, with
/// a bit for every list it is in (bit `i` for [`AccessList::ALL`]`[i]`),
/// sorted by slug. A new secret's creator is in all six lists, and six
/// one-slug lists cost a map node, six vectors and six copies of the slug
/// (about 700 bytes a secret); this is one vector of one entry. Events
/// still carry the lists as an [`Acl`]; [`Access::to_acl`] gives them back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(Slug, u8)>")]
pub struct Access(Vec<(Slug, u8)>);

impl AccessList {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl Access {
    /// Whether `slug` is in `list`.
    pub fn contains(&self, list: AccessList, slug: &Slug) -> bool {
        self.find(slug)
            .is_ok_and(|at| self.0[at].1 & list.bit() != 0)
    }

    /// Adds `slug` to `list`; false when it was there already.
    pub fn insert(&mut self, list: AccessList, slug: Slug) -> bool {
        match self.find(&slug) {
            Ok(at) => {
                let was = self.0[at].1;
                self.0[at].1 |= list.bit();
                was != self.0[at].1
            }
            Err(at) => {
                self.0.insert(at, (slug, list.bit()));
                true
            }
        }
    }

    /// Removes `slug` from `list`; false when it was not there. A slug in
    /// no list any more goes.
    pub fn remove(&mut self, list: AccessList, slug: &Slug) -> bool {
        let Ok(at) = self.find(slug) else {
            return false;
        };
        let was = self.0[at].1;
        self.0[at].1 &= !list.bit();
        if self.0[at].1 == 0 {
            self.0.remove(at);
        }
        was & list.bit() != 0
    }

    /// The slugs in `list`, in order.
    pub fn members(&self, list: AccessList) -> impl Iterator<Item = &Slug> {
        self.0
            .iter()
            .filter(move |(_, lists)| lists & list.bit() != 0)
            .map(|(slug, _)| slug)
    }

    /// Every list, each with its slugs (an empty list too).
    pub fn to_acl(&self) -> Acl {
        AccessList::ALL
            .into_iter()
            .map(|list| (list, self.members(list).cloned().collect::<Vec<_>>().into()))
            .collect()
    }

    fn find(&self, slug: &Slug) -> Result<usize, usize> {
        self.0.binary_search_by(|(s, _)| s.cmp(slug))
    }
}

impl From<&Acl> for Access {
    fn from(acl: &Acl) -> Self {
        let mut access = Access::default();
        for (list, slugs) in acl {
            for slug in slugs.iter() {
                access.insert(*list, slug.clone());
            }
        }
        access.0.shrink_to_fit();
        access
    }
}

/// Read back sorted, each slug once with the lists it is in, none in none.
impl From<Vec<(Slug, u8)>> for Access {
    fn from(entries: Vec<(Slug, u8)>) -> Self {
        let mut access = Access::default();
        for (slug, lists) in entries {
            for list in AccessList::ALL {
                if lists & list.bit() != 0 {
                    access.insert(list, slug.clone());
                }
            }
        }
        access.0.shrink_to_fit();
        access
    }
}

/// A vector read back with no room to spare: deserializing grows it by
/// doubling, which leaves a secret of one version room for four.
fn exactly<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut items = Vec::<T>::deserialize(deserializer)?;
    items.shrink_to_fit();
    Ok(items)
}

/// One stored version, as the reactor reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The upstream version.
    pub version: u64,
    /// The keyed hash of the whole value.
    pub hash: StoredHash,
    /// The keyed hash of each key.
    pub key_hashes: KeyHashes,
    /// The upload request that wrote it.
    pub request_id: Uuid,
    /// Who put it.
    pub by: Slug,
    /// When it was stored.
    #[serde(with = "crate::domain::compact::time")]
    pub at: DateTime<Utc>,
}

/// Where a secret is in its deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deletion {
    /// Not deleted (or written again since).
    #[default]
    None,
    /// A deleter asked; the reactor has not confirmed yet.
    Requested {
        /// Destroy every version and the metadata upstream.
        destroy: bool,
        /// Who asked.
        by: Slug,
    },
    /// The reactor deleted it upstream.
    Deleted {
        /// Every version and the metadata are gone too.
        destroyed: bool,
    },
}

/// One secret's state; `Default` is a secret that does not exist yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    uri: Option<SecretUri>,
    creator: Option<Slug>,
    acl: Access,
    #[serde(deserialize_with = "exactly")]
    versions: Vec<Version>,
    deletion: Deletion,
}

/// What a secret can be asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretCommand {
    /// Before an upload key is requested for a put: creates the secret on
    /// its first write (the creator gets every right), else checks that the
    /// actor is a writer.
    PrepareWrite { uri: SecretUri },
    /// The reactor stored version `version` for upload request
    /// `request_id`, put by `by` at `at`.
    RecordVersion {
        request_id: Uuid,
        version: u64,
        hash: String,
        key_hashes: KeyHashes,
        by: Slug,
        at: DateTime<Utc>,
    },
    /// Adds `slug` to `list`.
    Grant { list: AccessList, slug: Slug },
    /// Removes `slug` from `list`.
    Revoke { list: AccessList, slug: Slug },
    /// Asks the reactor to delete the secret upstream (`destroy`: every
    /// version and the metadata).
    RequestDeletion { destroy: bool },
    /// The reactor deleted (or destroyed) the secret upstream.
    RecordDeletion { destroyed: bool },
}

impl CommandArguments for SecretCommand {
    fn arguments(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            SecretCommand::PrepareWrite { uri } => json!(["PrepareWrite", uri]),
            // `at` is the time of the decision, not an argument.
            SecretCommand::RecordVersion {
                request_id,
                version,
                hash,
                key_hashes,
                by,
                ..
            } => json!(["RecordVersion", request_id, version, hash, key_hashes, by]),
            SecretCommand::Grant { list, slug } => json!(["Grant", list, slug]),
            SecretCommand::Revoke { list, slug } => json!(["Revoke", list, slug]),
            SecretCommand::RequestDeletion { destroy } => json!(["RequestDeletion", destroy]),
            SecretCommand::RecordDeletion { destroyed } => json!(["RecordDeletion", destroyed]),
        }
    }
}

/// What a secret records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SecretEvent {
    /// The first write of `uri` by `creator`, with the initial lists.
    SecretCreated {
        uri: SecretUri,
        creator: Slug,
        acl: Acl,
    },
    /// The reactor stored a version (hashes only, never a value).
    SecretVersionAdded {
        uri: SecretUri,
        request_id: Uuid,
        version: u64,
        hash: String,
        #[serde(default)]
        key_hashes: KeyHashes,
        by: Slug,
        at: DateTime<Utc>,
    },
    /// `slug` joined `list`.
    AccessGranted { list: AccessList, slug: Slug },
    /// `slug` left `list`.
    AccessRevoked { list: AccessList, slug: Slug },
    /// A deleter asked for the secret to be deleted (or destroyed).
    SecretDeletionRequested {
        uri: SecretUri,
        destroy: bool,
        by: Slug,
    },
    /// The reactor deleted (or destroyed) it upstream.
    SecretDeleted { uri: SecretUri, destroyed: bool },
}

impl DomainEvent for SecretEvent {
    fn event_type(&self) -> &'static str {
        match self {
            SecretEvent::SecretCreated { .. } => "SecretCreated",
            SecretEvent::SecretVersionAdded { .. } => "SecretVersionAdded",
            SecretEvent::AccessGranted { .. } => "AccessGranted",
            SecretEvent::AccessRevoked { .. } => "AccessRevoked",
            SecretEvent::SecretDeletionRequested { .. } => "SecretDeletionRequested",
            SecretEvent::SecretDeleted { .. } => "SecretDeleted",
        }
    }
}

impl SecretEvent {
    /// A one-line description for history and audit views (never a value).
    pub fn summary(&self) -> String {
        let what = |destroy: bool| if destroy { "destruction" } else { "deletion" };
        match self {
            SecretEvent::SecretCreated { creator, .. } => format!("created by {creator}"),
            SecretEvent::SecretVersionAdded {
                version, hash, by, ..
            } => format!("version {version} by {by}: {hash}"),
            SecretEvent::AccessGranted { list, slug } => format!("{slug} added to {list}"),
            SecretEvent::AccessRevoked { list, slug } => format!("{slug} removed from {list}"),
            SecretEvent::SecretDeletionRequested { destroy, by, .. } => {
                format!("{} requested by {by}", what(*destroy))
            }
            SecretEvent::SecretDeleted { destroyed, .. } => format!("{} done", what(*destroyed)),
        }
    }
}

/// Why a secret refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretRefusal {
    /// Auditors and reactors change no secret.
    #[error("auditors and reactors may not change secrets; users and admins may")]
    RoleMayNotChange,
    /// A non-admin tried to create a secret outside its prefixes.
    #[error(
        "you may not create `{uri}`: you may only create secrets under `{slug}/` or your groups' prefixes (an admin may create it for you)"
    )]
    OutsidePrefix {
        /// The actor.
        slug: Slug,
        /// The secret it tried to create.
        uri: SecretUri,
    },
    /// The actor is not in the list the command needs.
    #[error(
        "you are not in the {list} list of `{uri}`: ask someone in its {} list, or an admin, to add you", list.changed_by()
    )]
    NotInList {
        /// The secret.
        uri: SecretUri,
        /// The list the command needs.
        list: AccessList,
    },
    /// The secret does not exist.
    #[error(
        "this secret does not exist: `sealctl get secrets` lists the secrets you may see, `sealctl put secret` creates one"
    )]
    NotFound,
    /// The reactor is not bound to the secret's store.
    #[error("only a reactor bound to store `{0}` may report on its secrets")]
    NotServed(StoreName),
    /// A write while a deletion is pending.
    #[error(
        "a deletion of `{0}` is in progress; write again once `sealctl describe secret {0}` shows it deleted"
    )]
    DeletionInProgress(SecretUri),
    /// A deletion with the other `destroy` flag is pending.
    #[error(
        "a {} of this secret is already in progress; wait until it is done, then ask again", if *.requested_destroy { "destruction" } else { "deletion" }
    )]
    DeletionConflict {
        /// Whether the pending request destroys.
        requested_destroy: bool,
    },
    /// A deletion report without a request.
    #[error("no deletion of this secret was requested; there is nothing to record")]
    NoDeletionRequested,
    /// A different deletion was recorded before.
    #[error(
        "this secret is already recorded as {}; a different report cannot replace it", if *.destroyed { "destroyed" } else { "deleted, not destroyed" }
    )]
    AlreadyDeleted {
        /// What was recorded.
        destroyed: bool,
    },
    /// A reported hash (named, not echoed) is not a keyed hash.
    #[error(
        "`{0}` is not a keyed hash: expected `hmac-sha256-v2:<key id>:<64 lower-case hex digits>` (or version 1, `hmac-sha256:<key id>:<hex>`, from an older reactor), one version for the whole value and every key"
    )]
    BadHash(String),
}

impl Refusal for SecretRefusal {
    fn kind(&self) -> RefusalKind {
        use SecretRefusal as R;
        match self {
            R::RoleMayNotChange | R::OutsidePrefix { .. } | R::NotInList { .. } => {
                RefusalKind::Denied
            }
            R::NotServed(_) => RefusalKind::Denied,
            R::NotFound => RefusalKind::NotFound,
            R::DeletionInProgress(_)
            | R::DeletionConflict { .. }
            | R::NoDeletionRequested
            | R::AlreadyDeleted { .. } => RefusalKind::FailedPrecondition,
            R::BadHash(_) => RefusalKind::Invalid,
        }
    }
}

impl Secret {
    /// Whether the secret was created (a deleted secret still exists: it
    /// keeps its lists and history).
    pub fn exists(&self) -> bool {
        self.uri.is_some()
    }

    /// Its uri, once created.
    pub fn uri(&self) -> Option<&SecretUri> {
        self.uri.as_ref()
    }

    /// Who created it.
    pub fn creator(&self) -> Option<&Slug> {
        self.creator.as_ref()
    }

    /// Its access lists: all six, each with its slugs.
    pub fn acl(&self) -> Acl {
        self.acl.to_acl()
    }

    /// Its access lists as held.
    pub fn access(&self) -> &Access {
        &self.acl
    }

    /// Its versions, oldest first.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The version upload request `request_id` stored, once recorded.
    pub fn version_of(&self, request_id: Uuid) -> Option<&Version> {
        self.versions.iter().find(|v| v.request_id == request_id)
    }

    /// Where it is in its deletion.
    pub fn deletion(&self) -> &Deletion {
        &self.deletion
    }

    /// Whether the reactor deleted it upstream (and it was not written
    /// again since).
    pub fn is_deleted(&self) -> bool {
        matches!(self.deletion, Deletion::Deleted { .. })
    }

    /// The deletion as the API names it: `none`, `requested`, `deleted` or
    /// `destroyed`.
    pub fn deletion_label(&self) -> &'static str {
        match self.deletion {
            Deletion::None => "none",
            Deletion::Requested { .. } => "requested",
            Deletion::Deleted { destroyed: false } => "deleted",
            Deletion::Deleted { destroyed: true } => "destroyed",
        }
    }

    /// Whether `actor` is in `list`, itself or through one of its groups;
    /// admins always are.
    pub fn may(&self, actor: &Actor, list: AccessList) -> bool {
        actor.is_admin()
            || self
                .acl
                .members(list)
                .any(|s| actor.is_or_belongs_to(s.as_str()))
    }

    /// Whether `actor` may create a secret at `uri`: admins anywhere, users
    /// under a first path segment that is their slug or one of their groups.
    pub fn may_create(actor: &Actor, uri: &SecretUri) -> bool {
        actor.is_admin()
            || (actor.role == Role::User && actor.is_or_belongs_to(uri.path.owner_segment()))
    }

    fn existing(&self) -> Result<&SecretUri, SecretRefusal> {
        self.uri.as_ref().ok_or(SecretRefusal::NotFound)
    }

    /// The uri, if `actor` is in `list`.
    fn require(&self, actor: &Actor, list: AccessList) -> Result<SecretUri, SecretRefusal> {
        let uri = self.existing()?;
        if self.may(actor, list) {
            Ok(uri.clone())
        } else {
            let uri = uri.clone();
            Err(SecretRefusal::NotInList { uri, list })
        }
    }

    /// The uri, if `actor` is a reactor serving the secret's store.
    fn served(&self, actor: &Actor) -> Result<SecretUri, SecretRefusal> {
        let uri = self.existing()?;
        if actor.serves(&uri.store) {
            Ok(uri.clone())
        } else {
            Err(SecretRefusal::NotServed(uri.store.clone()))
        }
    }

    fn prepare_write(
        &self,
        actor: &Actor,
        uri: &SecretUri,
    ) -> Result<Vec<SecretEvent>, SecretRefusal> {
        if !self.exists() {
            if !Self::may_create(actor, uri) {
                let slug = actor.slug.clone();
                return Err(SecretRefusal::OutsidePrefix {
                    slug,
                    uri: uri.clone(),
                });
            }
            let everyone = SlugSet::from([actor.slug.clone()]);
            return Ok(vec![SecretEvent::SecretCreated {
                uri: uri.clone(),
                creator: actor.slug.clone(),
                acl: AccessList::ALL.map(|l| (l, everyone.clone())).into(),
            }]);
        }
        let uri = self.require(actor, AccessList::Writers)?;
        match self.deletion {
            Deletion::Requested { .. } => Err(SecretRefusal::DeletionInProgress(uri)),
            Deletion::None | Deletion::Deleted { .. } => Ok(vec![]),
        }
    }

    fn request_deletion(
        &self,
        actor: &Actor,
        destroy: bool,
    ) -> Result<Vec<SecretEvent>, SecretRefusal> {
        let uri = self.require(actor, AccessList::Deleters)?;
        match self.deletion {
            Deletion::Requested {
                destroy: pending, ..
            } if pending == destroy => Ok(vec![]),
            Deletion::Requested {
                destroy: pending, ..
            } => Err(SecretRefusal::DeletionConflict {
                requested_destroy: pending,
            }),
            // Already as deleted as asked; a soft delete may still be destroyed.
            Deletion::Deleted { destroyed } if destroyed || !destroy => Ok(vec![]),
            Deletion::None | Deletion::Deleted { .. } => {
                Ok(vec![SecretEvent::SecretDeletionRequested {
                    uri,
                    destroy,
                    by: actor.slug.clone(),
                }])
            }
        }
    }

    fn record_deletion(
        &self,
        actor: &Actor,
        destroyed: bool,
    ) -> Result<Vec<SecretEvent>, SecretRefusal> {
        let uri = self.served(actor)?;
        match self.deletion {
            Deletion::None => Err(SecretRefusal::NoDeletionRequested),
            Deletion::Requested { .. } => Ok(vec![SecretEvent::SecretDeleted { uri, destroyed }]),
            Deletion::Deleted { destroyed: done } if done == destroyed => Ok(vec![]),
            Deletion::Deleted { destroyed: done } => {
                Err(SecretRefusal::AlreadyDeleted { destroyed: done })
            }
        }
    }
}

impl Aggregate for Secret {
    type Command = SecretCommand;
    type Event = SecretEvent;
    type Refusal = SecretRefusal;

    fn decide(
        &self,
        command: &SecretCommand,
        ctx: &Context,
    ) -> Result<Vec<SecretEvent>, SecretRefusal> {
        let actor = &ctx.actor;
        let by_people = !matches!(
            command,
            SecretCommand::RecordVersion { .. } | SecretCommand::RecordDeletion { .. }
        );
        if by_people && matches!(actor.role, Role::Auditor | Role::Reactor) {
            return Err(SecretRefusal::RoleMayNotChange);
        }
        match command {
            SecretCommand::PrepareWrite { uri } => self.prepare_write(actor, uri),
            SecretCommand::RecordVersion {
                request_id,
                version,
                hash,
                key_hashes,
                by,
                at,
            } => {
                let uri = self.served(actor)?;
                if self.version_of(*request_id).is_some() {
                    return Ok(vec![]);
                }
                if let Some(field) = malformed_hash(hash, key_hashes) {
                    return Err(SecretRefusal::BadHash(field));
                }
                Ok(vec![SecretEvent::SecretVersionAdded {
                    uri,
                    request_id: *request_id,
                    version: *version,
                    hash: hash.clone(),
                    key_hashes: key_hashes.clone(),
                    by: by.clone(),
                    at: *at,
                }])
            }
            SecretCommand::Grant { list, slug } | SecretCommand::Revoke { list, slug } => {
                self.require(actor, list.changed_by())?;
                let present = self.acl.contains(*list, slug);
                let (list, slug) = (*list, slug.clone());
                Ok(match (command, present) {
                    (SecretCommand::Grant { .. }, false) => {
                        vec![SecretEvent::AccessGranted { list, slug }]
                    }
                    (SecretCommand::Revoke { .. }, true) => {
                        vec![SecretEvent::AccessRevoked { list, slug }]
                    }
                    _ => vec![],
                })
            }
            SecretCommand::RequestDeletion { destroy } => self.request_deletion(actor, *destroy),
            SecretCommand::RecordDeletion { destroyed } => self.record_deletion(actor, *destroyed),
        }
    }

    fn apply(&mut self, event: &SecretEvent) {
        match event {
            SecretEvent::SecretCreated { uri, creator, acl } => {
                self.uri = Some(uri.clone());
                self.creator = Some(creator.clone());
                self.acl = Access::from(acl);
            }
            SecretEvent::SecretVersionAdded {
                request_id,
                version,
                hash,
                key_hashes,
                by,
                at,
                ..
            } => {
                // Exactly as many as there are: a secret has a few, and a
                // vector grown by doubling would hold room for four.
                self.versions.reserve_exact(1);
                self.versions.push(Version {
                    version: *version,
                    hash: StoredHash::new(hash),
                    key_hashes: key_hashes.clone(),
                    request_id: *request_id,
                    by: by.clone(),
                    at: *at,
                });
                // A version written after a deletion brings the secret back.
                if self.is_deleted() {
                    self.deletion = Deletion::None;
                }
            }
            SecretEvent::AccessGranted { list, slug } => {
                self.acl.insert(*list, slug.clone());
            }
            SecretEvent::AccessRevoked { list, slug } => {
                self.acl.remove(*list, slug);
            }
            SecretEvent::SecretDeletionRequested { destroy, by, .. } => {
                self.deletion = Deletion::Requested {
                    destroy: *destroy,
                    by: by.clone(),
                };
            }
            SecretEvent::SecretDeleted { destroyed, .. } => {
                self.deletion = Deletion::Deleted {
                    destroyed: *destroyed,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests;
