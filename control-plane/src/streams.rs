//! Stream names of the aggregates (ADR 0002), in one place, both ways.

use sealplane_event_store::StreamId;
use uuid::Uuid;

use crate::command::ACCESS_DENIED_STREAM;
use crate::domain::names::{SecretUri, Slug, StoreName};

/// The store catalog's single stream.
pub const STORES: &str = "stores";
const PRINCIPAL: &str = "principal-";
const SECRET: &str = "secret-";
const UPLOAD: &str = "upload-";
const SEALING_KEYS: &str = "sealing-keys-";
/// The stream of `store`'s sealing keys.
pub fn sealing_keys(store: &StoreName) -> StreamId {
    id(format!("{SEALING_KEYS}{store}"))
}

/// The stream recording reads of the audit log.
pub const AUDIT_READS: &str = "audit-reads";
/// The stream of signed log checkpoints (ADR 0016).
pub const LOG_CHECKPOINTS: &str = "log-checkpoints";

/// Which aggregate a stream belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// The store catalog.
    Stores,
    /// A user or group.
    Principal(Slug),
    /// A secret.
    Secret(SecretUri),
    /// An upload request.
    Upload(Uuid),
    /// A store's sealing keys.
    SealingKeys(StoreName),
    /// Refused commands.
    AccessDenied,
    /// Reads of the audit log.
    AuditRead,
    /// Signed log checkpoints.
    LogCheckpoint,
}

fn id(text: String) -> StreamId {
    // Every name built here is printable ASCII well within the limit: slugs
    // are 63 bytes, uris 580, uuids 36.
    StreamId::parse(text).expect("aggregate stream names are valid stream ids")
}

/// The store catalog's stream.
pub fn stores() -> StreamId {
    id(STORES.to_owned())
}

/// A principal's stream.
pub fn principal(slug: &Slug) -> StreamId {
    id(format!("{PRINCIPAL}{slug}"))
}

/// A secret's stream.
pub fn secret(uri: &SecretUri) -> StreamId {
    id(format!("{SECRET}{uri}"))
}

/// An upload request's stream.
pub fn upload(request_id: Uuid) -> StreamId {
    id(format!("{UPLOAD}{request_id}"))
}

/// The stream recording reads of the audit log.
pub fn audit_reads() -> StreamId {
    id(AUDIT_READS.to_owned())
}

/// The stream of signed log checkpoints.
pub fn log_checkpoints() -> StreamId {
    id(LOG_CHECKPOINTS.to_owned())
}

/// Classifies a stream; `None` for streams this version does not know.
pub fn kind_of(stream: &StreamId) -> Option<StreamKind> {
    let s = stream.as_str();
    if s == STORES {
        return Some(StreamKind::Stores);
    }
    if s == ACCESS_DENIED_STREAM {
        return Some(StreamKind::AccessDenied);
    }
    if s == AUDIT_READS {
        return Some(StreamKind::AuditRead);
    }
    if s == LOG_CHECKPOINTS {
        return Some(StreamKind::LogCheckpoint);
    }
    if let Some(slug) = s.strip_prefix(PRINCIPAL) {
        return Slug::parse(slug).ok().map(StreamKind::Principal);
    }
    if let Some(uri) = s.strip_prefix(SECRET) {
        return SecretUri::parse(uri).ok().map(StreamKind::Secret);
    }
    if let Some(store) = s.strip_prefix(SEALING_KEYS) {
        return StoreName::parse(store).ok().map(StreamKind::SealingKeys);
    }
    if let Some(id) = s.strip_prefix(UPLOAD) {
        return Uuid::parse_str(id).ok().map(StreamKind::Upload);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_kind_of() {
        let slug = Slug::parse("alice").unwrap();
        let uri = SecretUri::parse(&format!("vault-prod://{}", "a".repeat(512))).unwrap();
        let req = Uuid::new_v4();
        assert_eq!(kind_of(&stores()), Some(StreamKind::Stores));
        assert_eq!(
            kind_of(&principal(&slug)),
            Some(StreamKind::Principal(slug))
        );
        assert_eq!(kind_of(&secret(&uri)), Some(StreamKind::Secret(uri)));
        assert_eq!(kind_of(&upload(req)), Some(StreamKind::Upload(req)));
        let store = StoreName::parse("prod").unwrap();
        assert_eq!(
            kind_of(&sealing_keys(&store)),
            Some(StreamKind::SealingKeys(store))
        );
        assert_eq!(
            kind_of(&StreamId::parse(ACCESS_DENIED_STREAM).unwrap()),
            Some(StreamKind::AccessDenied)
        );
        assert_eq!(kind_of(&audit_reads()), Some(StreamKind::AuditRead));
        assert_eq!(kind_of(&log_checkpoints()), Some(StreamKind::LogCheckpoint));
        assert_eq!(kind_of(&StreamId::parse("something-else").unwrap()), None);
        assert_eq!(kind_of(&StreamId::parse("upload-notauuid").unwrap()), None);
    }
}
