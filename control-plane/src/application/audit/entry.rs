//! One event of the log as an auditor reads it: who, when, what it is
//! about, and one sentence for people (SPEC §7).
//!
//! [`describe`] renders every event type from its typed data by an
//! exhaustive match, so a new domain event does not compile until someone
//! decides its audit line. It never renders a value, ciphertext, token,
//! token digest or signature: a sealed payload shows its size only.

use chrono::{DateTime, SecondsFormat, Utc};
use sealplane_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use sealplane_proto::log_checkpoint::CheckpointRecord;

use crate::command::AccessDenied;
use crate::domain::Role;
use crate::domain::names::{SecretUri, Slug, StoreName};
use crate::domain::principal::PrincipalEvent;
use crate::domain::sealing_keys::SealingKeyEvent;
use crate::domain::secret::SecretEvent;
use crate::domain::store_catalog::StoreEvent;
use crate::domain::upload::{Purpose, UploadEvent};
use crate::streams::{StreamKind, kind_of};

use super::filter::AuditFilter;
use super::replay::{AUDIT_REPLAYED, AuditReplayed};

/// The event recorded for each read of the audit log, before it streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditLogRead {
    /// Who read.
    pub reader: Slug,
    /// With which role.
    pub role: Role,
    /// Which filters.
    pub filters: AuditFilter,
}

/// The event type of [`AuditLogRead`].
pub const AUDIT_LOG_READ: &str = "AuditLogRead";

/// The event recorded for each read of the raw log or of a signed
/// checkpoint (`sealctl audit checkpoint`, `sealctl audit verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRawRead {
    /// Who read.
    pub reader: Slug,
    /// With which role.
    pub role: Role,
    /// What.
    pub read: RawRead,
}

/// What an [`AuditRawRead`] read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RawRead {
    /// The latest signed checkpoint, at this position.
    Checkpoint { position: u64 },
    /// The recorded events from `from` to `until`, inclusive.
    Events { from: u64, until: u64 },
}

/// The event type of [`AuditRawRead`].
pub const AUDIT_RAW_READ: &str = "AuditRawRead";

/// What an upload request is about, from its first event: the later
/// events of a request name no uri.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestTarget {
    /// The secret.
    pub uri: SecretUri,
    /// Who asked for the key.
    pub requester: Slug,
}

impl RequestTarget {
    /// The target an upload request's first event names, if it is one.
    pub fn of(event: &UploadEvent) -> Option<RequestTarget> {
        match event {
            UploadEvent::SecretUploadKeyRequested { uri, requester, .. }
            | UploadEvent::SealedFileSubmitted { uri, requester, .. } => Some(RequestTarget {
                uri: uri.clone(),
                requester: requester.clone(),
            }),
            _ => None,
        }
    }
}

/// One event, for people and for the filters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuditEntry {
    /// Its log position.
    pub position: u64,
    /// When it was decided (`None`: its metadata is unreadable).
    pub time: Option<DateTime<Utc>>,
    /// The principal whose command caused it.
    pub actor: String,
    /// The principal on whose behalf it happened, when that is not the
    /// actor (a reactor storing alice's version): `--actor alice` finds it.
    pub on_behalf_of: Option<Slug>,
    /// Its type.
    pub event_type: String,
    /// What it is about, for people (a uri, `store NAME`, `user SLUG`...).
    pub target: String,
    /// The secret it concerns.
    pub secret: Option<SecretUri>,
    /// The store it concerns.
    pub store: Option<StoreName>,
    /// The user or group it concerns.
    pub principal: Option<Slug>,
    /// The upload request it belongs to.
    pub request_id: Option<Uuid>,
    /// One sentence.
    pub details: String,
}

impl AuditEntry {
    /// The time as RFC 3339 with seconds, UTC (empty when unknown).
    pub fn time_text(&self) -> String {
        self.time
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    }

    fn about_secret(&mut self, uri: &SecretUri) {
        self.target = uri.to_string();
        self.store = Some(uri.store.clone());
        self.secret = Some(uri.clone());
    }

    fn about_store(&mut self, name: &StoreName) {
        self.target = format!("store {name}");
        self.store = Some(name.clone());
    }

    fn about_principal(&mut self, kind: &str, slug: &Slug) {
        self.target = format!("{kind} {slug}");
        self.principal = Some(slug.clone());
    }
}

/// The size in bytes of what `base64` text encodes, without decoding it.
pub fn decoded_len(base64: &str) -> usize {
    let text = base64.trim_end_matches('=');
    text.len() * 3 / 4
}

/// `event` as an audit entry; `request` is what its upload request is
/// about, when the event belongs to one and the caller knows it.
pub fn describe(event: &RecordedEvent, request: Option<&RequestTarget>) -> AuditEntry {
    let metadata = event.metadata().ok();
    let mut entry = AuditEntry {
        position: event.position.0,
        time: metadata.as_ref().map(|m| m.timestamp),
        actor: metadata.map(|m| m.actor).unwrap_or_default(),
        event_type: event.event_type.to_string(),
        ..AuditEntry::default()
    };
    let described = match kind_of(&event.stream_id) {
        Some(StreamKind::Stores) => event
            .data
            .deserialize()
            .ok()
            .map(|e| store_event(&mut entry, &e)),
        Some(StreamKind::SealingKeys(_)) => event
            .data
            .deserialize()
            .ok()
            .map(|e| sealing_key_event(&mut entry, &e)),
        Some(StreamKind::Principal(_)) => event
            .data
            .deserialize()
            .ok()
            .map(|e| principal_event(&mut entry, &e)),
        Some(StreamKind::Secret(uri)) => event
            .data
            .deserialize()
            .ok()
            .map(|e| secret_event(&mut entry, &uri, &e)),
        Some(StreamKind::Upload(id)) => event
            .data
            .deserialize()
            .ok()
            .map(|e| upload_event(&mut entry, id, request, &e)),
        Some(StreamKind::AccessDenied) => event
            .data
            .deserialize()
            .ok()
            .map(|e| access_denied(&mut entry, &e)),
        Some(StreamKind::AuditRead) if event.event_type.as_str() == AUDIT_RAW_READ => event
            .data
            .deserialize()
            .ok()
            .map(|e| raw_read(&mut entry, &e)),
        Some(StreamKind::AuditRead) if event.event_type.as_str() == AUDIT_REPLAYED => event
            .data
            .deserialize()
            .ok()
            .map(|e| audit_replay(&mut entry, &e)),
        Some(StreamKind::AuditRead) => event
            .data
            .deserialize()
            .ok()
            .map(|e| audit_read(&mut entry, &e)),
        Some(StreamKind::LogCheckpoint) => event
            .data
            .deserialize()
            .ok()
            .map(|e| log_checkpointed(&mut entry, &e)),
        None => None,
    };
    if let Some(details) = described {
        entry.details = details;
    } else {
        // Never the data: this version cannot tell what in it is safe.
        entry.details = format!(
            "an event of type {} that this version cannot read (its data is not shown)",
            entry.event_type
        );
    }
    entry
}

fn sealing_key_event(entry: &mut AuditEntry, event: &SealingKeyEvent) -> String {
    let actor = entry.actor.clone();
    entry.about_store(event.store());
    match event {
        SealingKeyEvent::SealingKeyPublished { store, key } => format!(
            "{actor} published sealing key {} for store {store} (valid for sealing {} to {})",
            key.key_id,
            key.not_before.to_rfc3339_opts(SecondsFormat::Secs, true),
            key.not_after.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        SealingKeyEvent::SealingKeyRotationRequested { store, by } => {
            format!("{by} asked for a new sealing key for store {store}")
        }
        SealingKeyEvent::SealingKeyRetired {
            store,
            key_id,
            forced,
            in_use,
        } => {
            let force = if *forced {
                format!(", forced while {} secret(s) still used it", in_use.len())
            } else {
                String::new()
            };
            format!("{actor} retired sealing key {key_id} of store {store}{force}")
        }
    }
}

fn store_event(entry: &mut AuditEntry, event: &StoreEvent) -> String {
    let actor = entry.actor.clone();
    entry.about_store(event.store());
    match event {
        StoreEvent::StoreCreated {
            name,
            kind,
            reactor_key,
            certificate,
        } => {
            let certified = match certificate {
                Some(c) => format!(", certified (serial {})", c.serial),
                None => ", not certified".to_owned(),
            };
            format!(
                "{actor} created store {name} (kind {kind}, reactor identity {reactor_key}{certified})"
            )
        }
        StoreEvent::StoreCertified { name, certificate } => format!(
            "{actor} certified reactor identity {} for store {name} (serial {}, trust anchor {})",
            certificate.reactor_key, certificate.serial, certificate.anchor_key
        ),
        StoreEvent::StoreEnabled { name } => format!("{actor} enabled store {name}"),
        StoreEvent::StoreDisabled { name } => format!("{actor} disabled store {name}"),
        StoreEvent::DefaultStoreSet { name } => {
            format!("{actor} made store {name} the default store")
        }
        StoreEvent::StoreRemoved { name } => format!("{actor} removed store {name}"),
    }
}

fn principal_event(entry: &mut AuditEntry, event: &PrincipalEvent) -> String {
    let actor = entry.actor.clone();
    match event {
        PrincipalEvent::UserCreated { slug, role, stores } => {
            entry.about_principal("user", slug);
            let role = format!("{role:?}").to_lowercase();
            if stores.is_empty() {
                format!("{actor} created user {slug} with role {role}")
            } else {
                entry.store = stores.first().cloned();
                let stores: Vec<&str> = stores.iter().map(|s| s.as_str()).collect();
                format!(
                    "{actor} created user {slug} with role {role}, serving store {}",
                    stores.join(", ")
                )
            }
        }
        PrincipalEvent::GroupCreated { slug } => {
            entry.about_principal("group", slug);
            format!("{actor} created group {slug}")
        }
        PrincipalEvent::MemberAdded { group, user } => {
            entry.about_principal("group", group);
            format!("{actor} added {user} to group {group}")
        }
        PrincipalEvent::MemberRemoved { group, user } => {
            entry.about_principal("group", group);
            format!("{actor} removed {user} from group {group}")
        }
        // The digest stays out: it is what a token is checked against.
        PrincipalEvent::TokenIssued {
            token_id,
            user,
            expires_at,
            sha256_hex: _,
        } => {
            entry.about_principal("user", user);
            format!(
                "{actor} issued token {token_id} to {user}, valid until {}",
                expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        }
        PrincipalEvent::TokenRevoked { token_id, user } => {
            entry.about_principal("user", user);
            format!("{actor} revoked token {token_id} of {user}")
        }
        PrincipalEvent::UserRemoved { slug } => {
            entry.about_principal("user", slug);
            format!("{actor} removed user {slug}")
        }
    }
}

fn secret_event(entry: &mut AuditEntry, uri: &SecretUri, event: &SecretEvent) -> String {
    let actor = entry.actor.clone();
    entry.about_secret(uri);
    match event {
        SecretEvent::SecretCreated { creator, .. } => {
            format!("{creator} created secret {uri}")
        }
        SecretEvent::SecretVersionAdded {
            version,
            hash,
            by,
            request_id,
            ..
        } => {
            entry.on_behalf_of = Some(by.clone());
            entry.request_id = Some(*request_id);
            format!("{by} put version {version} of {uri} (hash {hash})")
        }
        SecretEvent::AccessGranted { list, slug } => {
            format!("{actor} added {slug} to the {list} of {uri}")
        }
        SecretEvent::AccessRevoked { list, slug } => {
            format!("{actor} removed {slug} from the {list} of {uri}")
        }
        SecretEvent::SecretDeletionRequested { destroy, by, .. } => {
            entry.on_behalf_of = Some(by.clone());
            if *destroy {
                format!("{by} asked to destroy {uri} (every version)")
            } else {
                format!("{by} asked to delete {uri}")
            }
        }
        SecretEvent::SecretDeleted { destroyed, .. } => {
            if *destroyed {
                format!("{actor} destroyed {uri} upstream")
            } else {
                format!("{actor} deleted {uri} upstream")
            }
        }
    }
}

fn upload_event(
    entry: &mut AuditEntry,
    id: Uuid,
    request: Option<&RequestTarget>,
    event: &UploadEvent,
) -> String {
    let actor = entry.actor.clone();
    entry.request_id = Some(id);
    entry.target = format!("request {id}");
    let learned = RequestTarget::of(event);
    if let Some(target) = learned.as_ref().or(request) {
        entry.about_secret(&target.uri);
        if target.requester.as_str() != actor {
            entry.on_behalf_of = Some(target.requester.clone());
        }
    }
    // " for local://a/b (request R)", or " (request R)" when the uri is unknown.
    let of = match &entry.secret {
        Some(uri) => format!(" for {uri} (request {id})"),
        None => format!(" (request {id})"),
    };
    match event {
        UploadEvent::SecretUploadKeyRequested {
            uri,
            requester,
            purpose,
            expires_at,
            ..
        } => {
            let why = match purpose {
                Purpose::Put { adopt: false } => format!("to put a version of {uri}"),
                Purpose::Put { adopt: true } => {
                    format!("to put a version of {uri}, adopting the upstream secret")
                }
                Purpose::Verify => format!("to verify a value of {uri}"),
            };
            format!(
                "{requester} asked for a one-time key {why} (request {id}, valid until {})",
                expires_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        }
        // The key and its signature are the reactor's to prove, not ours
        // to print.
        UploadEvent::SecretUploadKeyProvided { .. } => {
            format!("{actor} provided a signed one-time key{of}")
        }
        UploadEvent::SecretUploadRequested { ciphertext, .. } => format!(
            "{actor} sent a sealed value of {} bytes{of}",
            decoded_len(ciphertext)
        ),
        UploadEvent::SecretUploaded {
            uri, version, hash, ..
        } => {
            entry.about_secret(uri);
            format!(
                "{actor} stored version {version} of {uri} upstream (hash {hash}, request {id})"
            )
        }
        UploadEvent::SecretVerified { uri, matches, .. } => {
            entry.about_secret(uri);
            let answer = if *matches { "match" } else { "no match" };
            format!("{actor} compared a value with {uri}: {answer} (request {id})")
        }
        UploadEvent::SecretUploadFailed { reason, .. } => {
            let kind = event
                .failure_kind()
                .map(|k| format!("{k:?}"))
                .unwrap_or_default();
            format!("the upload{of} failed ({kind}): {reason}")
        }
        UploadEvent::SecretUploadKeyExpired { .. } => {
            format!("the one-time key{of} expired unused")
        }
        UploadEvent::SealedFileSubmitted {
            uri,
            requester,
            key_id,
            reseal,
            ciphertext,
            ..
        } => {
            let what = if *reseal { "to reseal" } else { "to apply" };
            format!(
                "{requester} submitted a sealed file of {} bytes {what} to {uri}, sealed to sealing key {key_id} (request {id})",
                decoded_len(ciphertext)
            )
        }
        UploadEvent::SealedFileUnchanged { uri, version, .. } => {
            entry.about_secret(uri);
            format!(
                "{actor} found the sealed file for {uri} holds version {version}'s value: unchanged (request {id})"
            )
        }
        UploadEvent::SealedFileResealed { uri, key_id, .. } => {
            entry.about_secret(uri);
            format!("{actor} resealed the file for {uri} to sealing key {key_id} (request {id})")
        }
    }
}

fn access_denied(entry: &mut AuditEntry, event: &AccessDenied) -> String {
    // The target is a stream id (`secret-URI`, `upload-ID`, `stores`,
    // `principal-SLUG`), a uri, or a word such as `reactor`.
    let stream = sealplane_event_store::StreamId::parse(event.target.clone()).ok();
    match stream.as_ref().and_then(kind_of) {
        Some(StreamKind::Secret(uri)) => entry.about_secret(&uri),
        Some(StreamKind::Principal(slug)) => entry.about_principal("principal", &slug),
        Some(StreamKind::Upload(id)) => {
            entry.request_id = Some(id);
            entry.target = format!("request {id}");
        }
        Some(StreamKind::Stores) => entry.target = "stores".to_owned(),
        _ => match SecretUri::parse(&event.target) {
            Ok(uri) => entry.about_secret(&uri),
            Err(_) => entry.target = event.target.clone(),
        },
    }
    format!(
        "{} was refused {} on {}: {}",
        event.actor, event.command, entry.target, event.reason
    )
}

fn audit_replay(entry: &mut AuditEntry, event: &AuditReplayed) -> String {
    entry.target = "audit log".to_owned();
    format!("{} replayed the state ({})", event.reader, event.summary())
}

fn audit_read(entry: &mut AuditEntry, event: &AuditLogRead) -> String {
    entry.target = "audit log".to_owned();
    format!(
        "{} read the audit log ({})",
        event.reader,
        event.filters.summary()
    )
}

fn raw_read(entry: &mut AuditEntry, event: &AuditRawRead) -> String {
    entry.target = "audit log".to_owned();
    match event.read {
        RawRead::Checkpoint { position } => format!(
            "{} read the signed checkpoint at position {position}",
            event.reader
        ),
        RawRead::Events { from, until } => format!(
            "{} read the recorded events from position {from} to {until} (to verify them)",
            event.reader
        ),
    }
}

/// The position and hash, never the signature body.
fn log_checkpointed(entry: &mut AuditEntry, event: &CheckpointRecord) -> String {
    entry.target = "audit log".to_owned();
    let previous = match &event.previous {
        Some(p) => format!("after position {}", p.position),
        None => "the first".to_owned(),
    };
    format!(
        "{} signed a checkpoint at position {} (log hash {}, {previous}, log key {})",
        entry.actor, event.position, event.log_hash, event.key_id
    )
}

#[cfg(test)]
mod tests;
