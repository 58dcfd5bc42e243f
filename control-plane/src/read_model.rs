//! The control plane's read model: every aggregate's state, kept current
//! by one projection of the whole log, plus the indexes queries need
//! (token digests, group memberships).
//!
//! Reusing the aggregates' own `apply` means the read side can never
//! disagree with the rules about what an event means.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Utc};

use sealplane_event_store::RecordedEvent;
use uuid::Uuid;

use crate::auth::token::TokenDigest;
use crate::domain::Aggregate;
use crate::domain::names::{SecretUri, Slug};
use crate::domain::principal::{Principal, PrincipalEvent};
use crate::domain::secret::{Secret, SecretEvent};
use crate::domain::store_catalog::StoreCatalog;
use crate::domain::upload::{Purpose, UploadEvent, UploadRequest};
use crate::projection::Projection;
use crate::streams::{StreamKind, kind_of};

/// Verification times kept per principal and secret: the largest
/// `limits.max_verifications_per_minute` allowed.
pub const VERIFICATIONS_KEPT: usize = 1000;

/// Everything queries and authentication read.
#[derive(Default, Debug)]
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
    /// Upload requests by id.
    pub uploads: BTreeMap<Uuid, UploadRequest>,
    /// When each principal last asked to verify each secret (the newest
    /// [`VERIFICATIONS_KEPT`]), for the verification rate limit.
    pub verifications: BTreeMap<(Slug, SecretUri), VecDeque<DateTime<Utc>>>,
    /// Events this version could not read (logged, not applied).
    pub unreadable: u64,
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
        let applied = match kind_of(&event.stream_id) {
            Some(StreamKind::Stores) => Self::fold(&mut self.stores, event).map(|_| ()),
            Some(StreamKind::Principal(slug)) => {
                let state = self.principals.entry(slug).or_default();
                Self::fold(state, event).map(|e| self.index_principal(&e))
            }
            Some(StreamKind::Secret(uri)) => {
                let state = self.secrets.entry(uri).or_default();
                Self::fold::<Secret>(state, event).map(|_: SecretEvent| ())
            }
            Some(StreamKind::Upload(id)) => {
                let state = self.uploads.entry(id).or_default();
                Self::fold::<UploadRequest>(state, event)
                    .map(|e: UploadEvent| self.index_upload(&e, event))
            }
            Some(StreamKind::AccessDenied) | None => Some(()),
        };
        if applied.is_none() {
            self.unreadable += 1;
            eprintln!(
                "sealplane: read model skipped unreadable event {} at position {}",
                event.event_type, event.position
            );
        }
    }
}

impl ReadModel {
    fn index_upload(&mut self, event: &UploadEvent, recorded: &RecordedEvent) {
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
