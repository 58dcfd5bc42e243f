//! The control plane's read model: every aggregate's state, kept current
//! by one projection of the whole log, plus the indexes queries need
//! (token digests, group memberships).
//!
//! Reusing the aggregates' own `apply` means the read side can never
//! disagree with the rules about what an event means.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use chrono::{DateTime, Utc};

use sealplane_event_store::RecordedEvent;
use uuid::Uuid;

use crate::auth::token::TokenDigest;
use crate::domain::Aggregate;
use crate::domain::names::{SecretUri, Slug, StoreName};
use crate::domain::principal::{Principal, PrincipalEvent};
use crate::domain::sealing_keys::SealingKeys;
use crate::domain::secret::{AccessList, Secret, SecretEvent};
use crate::domain::store_catalog::StoreCatalog;
use crate::domain::upload::{Purpose, UploadEvent, UploadRequest};
use crate::projection::Projection;
use crate::streams::{StreamKind, kind_of};

mod readers;

/// How long a finished upload request's state stays in the read model,
/// measured in log time (event timestamps), so every rebuild keeps the same
/// ones. Requests are ephemeral: without a limit every put ever made would
/// stay in memory. The log keeps them all; the store each request belongs
/// to goes with it (a reactor feed catching up past it reads the store from
/// the request's first event). Until then an ended request is kept
/// compacted (ADR 0028): no one-time key, and a stored put's outcome only
/// as the version its secret records.
pub const FINISHED_UPLOAD_RETENTION: chrono::Duration = chrono::Duration::hours(1);

/// Verification times kept per principal and secret: the largest
/// `limits.max_verifications_per_minute` allowed.
pub const VERIFICATIONS_KEPT: usize = 1000;

/// Everything queries and authentication read. Every field is log-derived
/// state the start-up snapshot keeps (`snapshot.rs`, through [`Rest`] and
/// the two large maps): one added here must be added there, and to the
/// snapshot's format version. The one exception, `grants`, is a function
/// of `secrets`, rebuilt by `ReadModel::from_parts`.
#[derive(Default, Debug, PartialEq)]
pub struct ReadModel {
    /// The store catalog.
    pub stores: StoreCatalog,
    /// Users and groups by slug.
    pub principals: BTreeMap<Slug, Principal>,
    /// Token digest → (owner, token id).
    pub tokens: BTreeMap<TokenDigest, (Slug, Uuid)>,
    /// User → groups it belongs to.
    pub memberships: BTreeMap<Slug, BTreeSet<Slug>>,
    /// Secrets by uri.
    pub secrets: BTreeMap<SecretUri, Secret>,
    /// The readers of each secret its path does not name (ADR 0039);
    /// derived from `secrets`, so a snapshot does not hold it.
    grants: readers::Grants,
    /// Upload requests by id: every open one, and finished ones for
    /// [`FINISHED_UPLOAD_RETENTION`] of log time after they end.
    pub uploads: BTreeMap<Uuid, UploadRequest>,
    /// Finished upload requests in the order they ended, with when.
    finished: VecDeque<(DateTime<Utc>, Uuid)>,
    /// Upload requests not ended yet, by requester (for the limit).
    open_uploads: BTreeMap<Slug, usize>,
    /// When each principal last asked to verify each secret (the newest
    /// [`VERIFICATIONS_KEPT`]), for the verification rate limit.
    pub verifications: BTreeMap<(Slug, SecretUri), VecDeque<DateTime<Utc>>>,
    /// Each store's sealing keys (SPEC §11).
    pub sealing_keys: BTreeMap<StoreName, SealingKeys>,
    /// The sealing key of each secret's last applied (or resealed) file.
    pub sealed_key_of: BTreeMap<SecretUri, String>,
    /// Events this version could not read (logged, not applied).
    pub unreadable: u64,
    /// The deployment id (ADR 0010), once the log has a first event.
    pub deployment_id: Option<Uuid>,
}

/// Everything in a [`ReadModel`] but `secrets`, `uploads` and `finished`,
/// which a snapshot writes in a binary form (ADR 0034), the two maps in
/// chunks on several threads.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Rest {
    stores: StoreCatalog,
    principals: BTreeMap<Slug, Principal>,
    #[serde(with = "pairs")]
    tokens: BTreeMap<TokenDigest, (Slug, Uuid)>,
    memberships: BTreeMap<Slug, BTreeSet<Slug>>,
    open_uploads: BTreeMap<Slug, usize>,
    #[serde(with = "pairs")]
    verifications: BTreeMap<(Slug, SecretUri), VecDeque<DateTime<Utc>>>,
    sealing_keys: BTreeMap<StoreName, SealingKeys>,
    sealed_key_of: BTreeMap<SecretUri, String>,
    unreadable: u64,
    deployment_id: Option<Uuid>,
}

impl ReadModel {
    /// The model put back together from its parts.
    pub(crate) fn from_parts(
        rest: Rest,
        finished: VecDeque<(DateTime<Utc>, Uuid)>,
        secrets: BTreeMap<SecretUri, Secret>,
        uploads: BTreeMap<Uuid, UploadRequest>,
    ) -> ReadModel {
        let Rest {
            stores,
            principals,
            tokens,
            memberships,
            open_uploads,
            verifications,
            sealing_keys,
            sealed_key_of,
            unreadable,
            deployment_id,
        } = rest;
        ReadModel {
            stores,
            principals,
            tokens,
            memberships,
            grants: readers::Grants::of(&secrets),
            secrets,
            uploads,
            finished,
            open_uploads,
            verifications,
            sealing_keys,
            sealed_key_of,
            unreadable,
            deployment_id,
        }
    }

    /// Finished upload requests in the order they ended, with when.
    pub(crate) fn finished(&self) -> &VecDeque<(DateTime<Utc>, Uuid)> {
        &self.finished
    }

    /// Writes everything but `secrets`, `uploads` and `finished` as JSON,
    /// as [`Rest`] reads it back.
    pub(crate) fn write_rest(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        #[derive(serde::Serialize)]
        struct RestRef<'a> {
            stores: &'a StoreCatalog,
            principals: &'a BTreeMap<Slug, Principal>,
            #[serde(serialize_with = "pairs::serialize_ref")]
            tokens: &'a BTreeMap<TokenDigest, (Slug, Uuid)>,
            memberships: &'a BTreeMap<Slug, BTreeSet<Slug>>,
            open_uploads: &'a BTreeMap<Slug, usize>,
            #[serde(serialize_with = "pairs::serialize_ref")]
            verifications: &'a BTreeMap<(Slug, SecretUri), VecDeque<DateTime<Utc>>>,
            sealing_keys: &'a BTreeMap<StoreName, SealingKeys>,
            sealed_key_of: &'a BTreeMap<SecretUri, String>,
            unreadable: u64,
            deployment_id: Option<Uuid>,
        }
        serde_json::to_writer(
            out,
            &RestRef {
                stores: &self.stores,
                principals: &self.principals,
                tokens: &self.tokens,
                memberships: &self.memberships,
                open_uploads: &self.open_uploads,
                verifications: &self.verifications,
                sealing_keys: &self.sealing_keys,
                sealed_key_of: &self.sealed_key_of,
                unreadable: self.unreadable,
                deployment_id: self.deployment_id,
            },
        )
    }
}

/// A map whose keys are not strings, as a JSON array of `[key, value]`.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn serialize_ref<K: Serialize, V: Serialize, S: Serializer>(
        map: &&BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serialize(map, serializer)
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// A deployment's id: the first 16 bytes of its log's first event hash,
/// so it exists for every log ever written and cannot change without
/// breaking the hash chain.
pub fn deployment_id_of(first: &RecordedEvent) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&first.hash.0[..16]);
    Uuid::from_bytes(bytes)
}

impl ReadModel {
    fn fold<A: Aggregate>(state: &mut A, event: &RecordedEvent) -> Option<A::Event> {
        let decoded: A::Event = event.data.deserialize().ok()?;
        state.apply(&decoded);
        Some(decoded)
    }
}

impl Projection for ReadModel {
    fn apply(&mut self, event: &RecordedEvent) {
        if event.position.0 == 1 {
            self.deployment_id = Some(deployment_id_of(event));
        }
        if let Ok(meta) = event.metadata() {
            self.forget_finished_uploads(meta.timestamp);
        }
        let applied = match kind_of(&event.stream_id) {
            Some(StreamKind::Stores) => Self::fold(&mut self.stores, event).map(|_| ()),
            Some(StreamKind::Principal(slug)) => {
                let state = self.principals.entry(slug).or_default();
                Self::fold(state, event).map(|e| self.index_principal(&e))
            }
            Some(StreamKind::Secret(uri)) => {
                let before = self
                    .secrets
                    .get(&uri)
                    .map(readers::readers_elsewhere)
                    .unwrap_or_default();
                let state = self.secrets.entry(uri).or_default();
                let applied = Self::fold::<Secret>(state, event);
                let after = readers::readers_elsewhere(state);
                if before != after
                    && let Some(uri) = state.uri()
                {
                    self.grants.change(uri, &before, &after);
                }
                applied.map(|e: SecretEvent| {
                    // The secret holds the outcome now: its request keeps
                    // only the version (ADR 0028).
                    if let SecretEvent::SecretVersionAdded {
                        request_id,
                        version,
                        hash,
                        ..
                    } = &e
                        && let Some(request) = self.uploads.get_mut(request_id)
                    {
                        request.compact(Some((*version, hash)));
                    }
                })
            }
            Some(StreamKind::Upload(id)) => {
                let state = self.uploads.entry(id).or_default();
                Self::fold::<UploadRequest>(state, event).map(|e: UploadEvent| {
                    self.index_upload(&e, event);
                    if let Some(request) = self.uploads.get_mut(&id) {
                        request.compact(None);
                    }
                })
            }
            Some(StreamKind::SealingKeys(store)) => {
                let state = self.sealing_keys.entry(store).or_default();
                Self::fold(state, event).map(|_| ())
            }
            Some(StreamKind::AccessDenied | StreamKind::AuditRead | StreamKind::LogCheckpoint)
            | None => Some(()),
        };
        if applied.is_none() {
            self.unreadable += 1;
            tracing::error!(
                event_type = %event.event_type,
                position = event.position.0,
                "read model skipped an unreadable event"
            );
        }
    }

    fn caught_up(&mut self, folded: u64) {
        // A start from a snapshot read the maps packed already and folded
        // only what came after it.
        if folded >= REPACK_AFTER_EVENTS {
            self.repack();
        }
    }
}

/// Events folded one at a time at start after which the maps are packed.
const REPACK_AFTER_EVENTS: u64 = 10_000;

impl ReadModel {
    /// Lays the two maps that grow with the deployment (secrets and upload
    /// requests) out again in full nodes, as a start from a snapshot reads
    /// them (ADR 0033). Folded one event at a time, each of their B-tree
    /// nodes was split in half once full and stays a little over half
    /// full (the heap profile in the ADR: 361 bytes a secret in map nodes).
    /// The values move; none is copied.
    fn repack(&mut self) {
        self.secrets = std::mem::take(&mut self.secrets).into_iter().collect();
        self.uploads = std::mem::take(&mut self.uploads).into_iter().collect();
    }

    /// Drops the state of upload requests that finished more than the
    /// retention before `now` (log time).
    fn forget_finished_uploads(&mut self, now: DateTime<Utc>) {
        while let Some((ended, id)) = self.finished.front().copied() {
            if now - ended <= FINISHED_UPLOAD_RETENTION {
                break;
            }
            self.finished.pop_front();
            self.uploads.remove(&id);
        }
    }

    /// Uploads whose outcome was recorded (`SecretUploaded`) in `window`
    /// before `ended_before` while their secret has no version of them,
    /// each with the command that records it.
    pub fn unrecorded_versions(
        &self,
        ended_before: DateTime<Utc>,
        window: chrono::Duration,
    ) -> Vec<(Uuid, SecretUri, crate::domain::secret::SecretCommand)> {
        self.finished
            .iter()
            .rev()
            .skip_while(|(ended, _)| *ended >= ended_before)
            .take_while(|(ended, _)| *ended >= ended_before - window)
            .filter_map(|(ended, id)| {
                let request = self.uploads.get(id)?;
                let (uri, record) = (request.uri()?, request.version_to_record(*ended)?);
                let secret = self.secrets.get(uri)?;
                if secret.version_of(*id).is_some() {
                    return None;
                }
                Some((*id, uri.clone(), record))
            })
            .collect()
    }

    /// The store upload request `id` targets, while the model holds the request.
    pub fn upload_store(&self, id: &Uuid) -> Option<&StoreName> {
        self.uploads.get(id).and_then(UploadRequest::store)
    }

    fn index_upload(&mut self, event: &UploadEvent, recorded: &RecordedEvent) {
        match event {
            UploadEvent::SecretUploadKeyRequested { requester, .. }
            | UploadEvent::SealedFileSubmitted { requester, .. } => {
                *self.open_uploads.entry(requester.clone()).or_default() += 1;
            }
            _ => {}
        }
        // Which key each secret's file is sealed to, once the reactor opened it.
        match event {
            UploadEvent::SecretUploaded {
                request_id, uri, ..
            }
            | UploadEvent::SealedFileUnchanged {
                request_id, uri, ..
            } => {
                if let Some(file) = self.uploads.get(request_id).and_then(|u| u.sealed()) {
                    self.sealed_key_of.insert(uri.clone(), file.key_id.clone());
                }
            }
            UploadEvent::SealedFileResealed { uri, key_id, .. } => {
                self.sealed_key_of.insert(uri.clone(), key_id.clone());
            }
            _ => {}
        }
        match event {
            UploadEvent::SecretUploaded { request_id, .. }
            | UploadEvent::SealedFileUnchanged { request_id, .. }
            | UploadEvent::SealedFileResealed { request_id, .. }
            | UploadEvent::SecretVerified { request_id, .. }
            | UploadEvent::SecretUploadFailed { request_id, .. }
            | UploadEvent::SecretUploadKeyExpired { request_id } => {
                if let Ok(meta) = recorded.metadata() {
                    self.finished.push_back((meta.timestamp, *request_id));
                }
                if let Some(requester) = self.uploads.get(request_id).and_then(|u| u.requester())
                    && let Some(open) = self.open_uploads.get_mut(requester)
                {
                    *open = open.saturating_sub(1);
                    if *open == 0 {
                        self.open_uploads.remove(requester);
                    }
                }
            }
            _ => {}
        }
        if let UploadEvent::SecretUploadKeyRequested {
            uri,
            requester,
            purpose: Purpose::Verify,
            ..
        } = event
        {
            let Ok(meta) = recorded.metadata() else {
                return;
            };
            let times = self
                .verifications
                .entry((requester.clone(), uri.clone()))
                .or_default();
            times.push_back(meta.timestamp);
            if times.len() > VERIFICATIONS_KEPT {
                times.pop_front();
            }
        }
    }

    /// The secrets of `store` whose last applied file is sealed to `key_id`.
    pub fn sealed_with(&self, store: &StoreName, key_id: &str) -> Vec<SecretUri> {
        self.sealed_key_of
            .iter()
            .filter(|(uri, key)| uri.store == *store && key.as_str() == key_id)
            .filter(|(uri, _)| self.secrets.get(*uri).is_some_and(|s| s.exists()))
            .map(|(uri, _)| uri.clone())
            .collect()
    }

    /// Up to `limit` secrets that `keep` accepts, in uri order, after
    /// `after` and in `store` when given, whoever may read them: what
    /// admins and auditors list.
    pub fn listed_from(
        &self,
        store: Option<&StoreName>,
        after: Option<&SecretUri>,
        limit: usize,
        keep: impl Fn(&Secret) -> bool,
    ) -> Vec<(&SecretUri, &Secret)> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.secrets
            .range::<SecretUri, _>((from, Bound::Unbounded))
            .filter(|(uri, s)| store.is_none_or(|st| uri.store == *st) && keep(s))
            .take(limit)
            .collect()
    }

    /// Up to `limit` secrets `actor` is a reader of (itself or through
    /// one of its groups) that `keep` accepts, in uri order, after `after`
    /// and in `store` when given. Visits the secrets under the actor's own
    /// path segments and those granted to it elsewhere, not every secret
    /// (ADR 0039); an admin reads every secret.
    pub fn readable_by(
        &self,
        actor: &crate::domain::Actor,
        store: Option<&StoreName>,
        after: Option<&SecretUri>,
        limit: usize,
        keep: impl Fn(&Secret) -> bool,
    ) -> Vec<(&SecretUri, &Secret)> {
        if actor.is_admin() {
            return self.listed_from(store, after, limit, keep);
        }
        let names: Vec<&Slug> = std::iter::once(&actor.slug).chain(&actor.groups).collect();
        readers::readable_by(
            &self.secrets,
            &self.grants,
            &names,
            store,
            after,
            limit,
            |s| s.may(actor, AccessList::Readers) && keep(s),
        )
    }

    /// Upload requests not ended yet, all principals together.
    pub fn open_uploads_total(&self) -> usize {
        self.open_uploads.values().sum()
    }

    /// Upload requests `who` made that have not ended.
    pub fn open_uploads_of(&self, who: &Slug) -> usize {
        self.open_uploads.get(who).copied().unwrap_or(0)
    }

    /// How many times `who` asked to verify `uri` since `since`.
    pub fn verifications_since(&self, who: &Slug, uri: &SecretUri, since: DateTime<Utc>) -> usize {
        self.verifications
            .get(&(who.clone(), uri.clone()))
            .map_or(0, |times| times.iter().filter(|t| **t >= since).count())
    }

    fn index_principal(&mut self, event: &PrincipalEvent) {
        match event {
            PrincipalEvent::TokenIssued {
                token_id,
                user,
                sha256_hex,
                ..
            } => {
                if let Some(digest) = TokenDigest::from_hex(sha256_hex) {
                    self.tokens.insert(digest, (user.clone(), *token_id));
                }
            }
            PrincipalEvent::MemberAdded { group, user } => {
                self.memberships
                    .entry(user.clone())
                    .or_default()
                    .insert(group.clone());
            }
            PrincipalEvent::MemberRemoved { group, user } => {
                if let Some(groups) = self.memberships.get_mut(user) {
                    groups.remove(group);
                }
            }
            _ => {}
        }
    }

    /// The groups `user` belongs to.
    pub fn groups_of(&self, user: &Slug) -> Vec<Slug> {
        self.memberships
            .get(user)
            .map(|g| g.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;
    use sealplane_event_store::{EventStore, MemoryStore};

    use super::*;
    use crate::command::{CommandEnvelope, CommandHandler};
    use crate::domain::Context;
    use crate::domain::testing::{admin, t0, user};
    use crate::domain::upload::{Purpose, SWEEP_GRACE, UploadCommand};
    use crate::projection::as_of;
    use crate::streams;

    async fn request(handler: &CommandHandler, id: Uuid, at: DateTime<Utc>) {
        let command = UploadCommand::RequestKey {
            request_id: id,
            uri: SecretUri::parse("local://alice/db").unwrap(),
            purpose: Purpose::Put { adopt: false },
            ttl: Duration::minutes(5),
            store_accepts_uploads: true,
            may_write: true,
            may_read: false,
            may_verify_now: true,
        };
        let ctx = Context {
            actor: user("alice", &[]),
            now: at,
        };
        handler
            .execute::<UploadRequest>(
                &streams::upload(id),
                &command,
                &ctx,
                &CommandEnvelope::new("RequestUploadKey"),
            )
            .await
            .unwrap();
    }

    async fn expire(handler: &CommandHandler, id: Uuid, at: DateTime<Utc>) {
        let ctx = Context {
            actor: admin(),
            now: at,
        };
        handler
            .execute::<UploadRequest>(
                &streams::upload(id),
                &UploadCommand::ExpireUnanswered,
                &ctx,
                &CommandEnvelope::new("ExpireUnanswered"),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn finished_uploads_are_forgotten_after_the_retention_in_log_time_but_their_store_is_not()
    {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let handler = CommandHandler::new(store.clone());
        let (old, open, recent) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        request(&handler, old, t0()).await;
        let ended = t0() + Duration::minutes(5) + SWEEP_GRACE;
        expire(&handler, old, ended).await;
        request(&handler, open, t0()).await;
        let later = ended + FINISHED_UPLOAD_RETENTION;
        request(&handler, recent, later).await;
        let model = as_of(&*store, ReadModel::default(), store.head().await.unwrap())
            .await
            .unwrap();
        // Exactly the retention later: still kept.
        assert!(model.uploads.contains_key(&old));

        request(&handler, Uuid::from_u128(4), later + Duration::seconds(1)).await;
        let model = as_of(&*store, ReadModel::default(), store.head().await.unwrap())
            .await
            .unwrap();
        assert!(!model.uploads.contains_key(&old), "finished long ago");
        assert!(model.uploads.contains_key(&open), "open requests stay");
        assert!(model.uploads.contains_key(&recent));
        assert_eq!(model.finished.len(), 0);
        let local = StoreName::parse("local").unwrap();
        assert_eq!(
            model.upload_store(&old),
            None,
            "the feed reads it from the log"
        );
        assert_eq!(model.upload_store(&open), Some(&local));
    }

    #[tokio::test]
    async fn open_uploads_count_requests_until_they_end_and_never_go_below_zero() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let handler = CommandHandler::new(store.clone());
        let alice = Slug::parse("alice").unwrap();
        let (first, second) = (Uuid::from_u128(1), Uuid::from_u128(2));
        request(&handler, first, t0()).await;
        request(&handler, second, t0()).await;
        let model = as_of(&*store, ReadModel::default(), store.head().await.unwrap())
            .await
            .unwrap();
        assert_eq!(model.open_uploads_of(&alice), 2);
        assert_eq!(model.open_uploads_of(&Slug::parse("bob").unwrap()), 0);

        let ended = t0() + Duration::minutes(5) + SWEEP_GRACE;
        expire(&handler, first, ended).await;
        let model = as_of(&*store, ReadModel::default(), store.head().await.unwrap())
            .await
            .unwrap();
        assert_eq!(model.open_uploads_of(&alice), 1, "the expired one ended");

        expire(&handler, second, ended).await;
        let model = as_of(&*store, ReadModel::default(), store.head().await.unwrap())
            .await
            .unwrap();
        assert_eq!(model.open_uploads_of(&alice), 0);
        assert!(model.open_uploads.is_empty(), "no entry kept for zero");
    }
}
