//! The values that go into the store and come out of it.
//!
//! Each type can only hold a valid value (parse, don't validate): a
//! [`StreamId`] is never empty, a [`NewEvent`] always carries a JSON object
//! within [`MAX_EVENT_BYTES`]. Backends therefore never see bad input.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::chain::{EventHash, LogHash};

/// Longest stream id accepted, in bytes: room for a secret's stream, whose
/// id embeds its uri (a 63-byte store name, `://`, a 512-byte path).
pub const MAX_STREAM_ID_BYTES: usize = 1024;
/// Longest event type name accepted, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;
/// Largest event accepted: data and metadata JSON together, in bytes.
///
/// A 256 KiB secret, base64-encoded in its sealed payload and again in the
/// event, stays well below this.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Position of an event in the global log. The first event is at 1;
/// positions are contiguous, so a missing one means a deleted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position(pub u64);

impl Position {
    /// The position of the first event of any log.
    pub const START: Position = Position(1);

    /// The position right after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Version of an event within its stream; the first event of a stream has
/// version 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    /// The version the next event appended after this one gets.
    pub fn next(self) -> StreamVersion {
        StreamVersion(self.0 + 1)
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an appender believes the stream looks like; the append fails with a
/// [`Conflict`](crate::Conflict) when the belief is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version.
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` meets this expectation.
    pub fn is_met_by(self, actual: Option<StreamVersion>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Why a stream id, event type or event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("stream id is empty")]
    EmptyStreamId,
    #[error("stream id is {len} bytes; the limit is {MAX_STREAM_ID_BYTES}")]
    StreamIdTooLong { len: usize },
    #[error(
        "stream id contains {found:?} at byte {at}; only printable ASCII without spaces is allowed"
    )]
    StreamIdCharacter { found: char, at: usize },
    #[error("event type is empty")]
    EmptyEventType,
    #[error("event type is {len} bytes; the limit is {MAX_EVENT_TYPE_BYTES}")]
    EventTypeTooLong { len: usize },
    #[error(
        "event type contains {found:?}; only ASCII letters, digits, `.`, `_` and `-` are allowed"
    )]
    EventTypeCharacter { found: char },
    #[error("schema version must be at least 1")]
    SchemaVersionZero,
    #[error("event {part} is not valid JSON: {reason}")]
    InvalidJson { part: &'static str, reason: String },
    #[error("event {part} must be a JSON object")]
    NotAnObject { part: &'static str },
    #[error("event is {bytes} bytes of JSON; the limit is {MAX_EVENT_BYTES}")]
    EventTooLarge { bytes: usize },
}

/// Identifier of a stream (one aggregate instance, e.g. `store-vault-prod`).
///
/// 1 to 1024 bytes of printable ASCII without spaces. The text is shared:
/// a clone is a reference count, not a copy.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(Arc<str>);

impl StreamId {
    /// Parses a stream id, refusing empty, oversize or non-printable ids.
    pub fn parse(id: impl Into<String>) -> Result<Self, InvalidInput> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidInput::EmptyStreamId);
        }
        if id.len() > MAX_STREAM_ID_BYTES {
            return Err(InvalidInput::StreamIdTooLong { len: id.len() });
        }
        if let Some((at, found)) = id.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
            return Err(InvalidInput::StreamIdCharacter { found, at });
        }
        Ok(StreamId(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidInput;
    fn try_from(id: String) -> Result<Self, Self::Error> {
        StreamId::parse(id)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0.as_ref().to_owned()
    }
}

/// Hashes and compares as its text, so a set of ids can be searched by `&str`.
impl std::borrow::Borrow<str> for StreamId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Name of an event's type, e.g. `SecretUploadKeyRequested`. The text is
/// shared: a clone is a reference count, not a copy.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(Arc<str>);

impl EventType {
    /// Parses an event type name: 1 to 128 ASCII letters, digits, `.`, `_`, `-`.
    pub fn parse(name: impl Into<String>) -> Result<Self, InvalidInput> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidInput::EmptyEventType);
        }
        if name.len() > MAX_EVENT_TYPE_BYTES {
            return Err(InvalidInput::EventTypeTooLong { len: name.len() });
        }
        if let Some(found) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(InvalidInput::EventTypeCharacter { found });
        }
        Ok(EventType(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidInput;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        EventType::parse(name)
    }
}

impl From<EventType> for String {
    fn from(name: EventType) -> String {
        name.0.as_ref().to_owned()
    }
}

/// Hashes and compares as its text, so a set of names can be searched by `&str`.
impl std::borrow::Borrow<str> for EventType {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON object kept as the exact text that was stored.
///
/// The text is what the hash chain covers, so it is never re-serialised:
/// a backend must store and return these bytes unchanged.
#[derive(Clone)]
pub struct JsonObject(String);

impl JsonObject {
    /// Parses `text`, which must be one JSON object. `part` names the field
    /// in errors ("data" or "metadata").
    pub fn parse(part: &'static str, text: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = RawValue::from_string(text.into()).map_err(|e| InvalidInput::InvalidJson {
            part,
            reason: e.to_string(),
        })?;
        if !raw.get().starts_with('{') {
            return Err(InvalidInput::NotAnObject { part });
        }
        Ok(JsonObject(String::from(Box::<str>::from(raw))))
    }

    /// Text read back from the store's own storage, which validated it on
    /// the way in; only the object's outline is checked again. Anything
    /// from outside the store goes through [`JsonObject::parse`].
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(crate) fn from_stored(part: &'static str, text: String) -> Result<Self, InvalidInput> {
        if text.starts_with('{') && text.ends_with('}') {
            Ok(JsonObject(text))
        } else {
            Err(InvalidInput::NotAnObject { part })
        }
    }

    /// Serialises `value`, which must serialise to a JSON object.
    pub fn from_value(part: &'static str, value: &impl Serialize) -> Result<Self, InvalidInput> {
        let text = serde_json::to_string(value).map_err(|e| InvalidInput::InvalidJson {
            part,
            reason: e.to_string(),
        })?;
        JsonObject::parse(part, text)
    }

    /// The stored JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Deserialises the object into a typed value.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(&self.0)
    }
}

impl PartialEq for JsonObject {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for JsonObject {}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event, why, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The principal whose command produced the event (user slug, reactor
    /// name, or `system`).
    pub actor: String,
    /// Shared by every event that one user action caused, across streams.
    pub correlation_id: Uuid,
    /// The id of the command or event that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// When the command was decided, by the deciding process's clock.
    pub timestamp: DateTime<Utc>,
    /// A digest of the command that caused this event (who sent it, which
    /// command, on which stream, with which arguments), so that a retry of
    /// that command can be told from another command reusing its id. The
    /// writer defines it; events written before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_fingerprint: Option<String>,
}

impl EventMetadata {
    /// Metadata for an action by `actor` starting now, with a fresh
    /// correlation id and no cause.
    pub fn new(actor: impl Into<String>) -> Self {
        EventMetadata {
            actor: actor.into(),
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            timestamp: Utc::now(),
            command_fingerprint: None,
        }
    }
}

/// An event to append: type, schema version, data and metadata, all valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    event_type: EventType,
    schema_version: u32,
    data: JsonObject,
    metadata: JsonObject,
}

impl NewEvent {
    /// Builds an event from a serialisable payload.
    pub fn new(
        event_type: EventType,
        schema_version: u32,
        data: &impl Serialize,
        metadata: &EventMetadata,
    ) -> Result<Self, InvalidInput> {
        let data = JsonObject::from_value("data", data)?;
        Self::from_json(event_type, schema_version, data, metadata)
    }

    /// Builds an event from JSON text received from elsewhere.
    pub fn from_json_text(
        event_type: EventType,
        schema_version: u32,
        data: &str,
        metadata: &EventMetadata,
    ) -> Result<Self, InvalidInput> {
        let data = JsonObject::parse("data", data)?;
        Self::from_json(event_type, schema_version, data, metadata)
    }

    fn from_json(
        event_type: EventType,
        schema_version: u32,
        data: JsonObject,
        metadata: &EventMetadata,
    ) -> Result<Self, InvalidInput> {
        if schema_version == 0 {
            return Err(InvalidInput::SchemaVersionZero);
        }
        let metadata = JsonObject::from_value("metadata", metadata)?;
        let bytes = data.as_str().len() + metadata.as_str().len();
        if bytes > MAX_EVENT_BYTES {
            return Err(InvalidInput::EventTooLarge { bytes });
        }
        Ok(NewEvent {
            event_type,
            schema_version,
            data,
            metadata,
        })
    }

    /// The event's type.
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// The schema version of the data.
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The event's data.
    pub fn data(&self) -> &JsonObject {
        &self.data
    }

    /// The event's metadata.
    pub fn metadata(&self) -> &JsonObject {
        &self.metadata
    }

    /// Data and metadata size in bytes.
    pub fn size(&self) -> usize {
        self.data.as_str().len() + self.metadata.as_str().len()
    }

    pub(crate) fn into_parts(self) -> (EventType, u32, JsonObject, JsonObject) {
        (
            self.event_type,
            self.schema_version,
            self.data,
            self.metadata,
        )
    }
}

/// An event as the store recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position in the log.
    pub position: Position,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version within the stream.
    pub version: StreamVersion,
    /// Its type.
    pub event_type: EventType,
    /// The schema version of its data, for upcasting old events.
    pub schema_version: u32,
    /// Its data, as stored.
    pub data: JsonObject,
    /// Its metadata ([`EventMetadata`]), as stored.
    pub metadata: JsonObject,
    /// The hash of the previous event of the same stream ([`EventHash::GENESIS`]
    /// for the first event).
    pub prev_hash: EventHash,
    /// The hash of this event, computed by the store at append time.
    pub hash: EventHash,
    /// The hash of the whole log up to and including this event, computed
    /// by the store at append time in position order (ADR 0014).
    pub log_hash: LogHash,
}

impl RecordedEvent {
    /// The typed metadata.
    pub fn metadata(&self) -> serde_json::Result<EventMetadata> {
        self.metadata.deserialize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_rules() {
        assert_eq!(StreamId::parse(""), Err(InvalidInput::EmptyStreamId));
        assert_eq!(
            StreamId::parse("a".repeat(1025)),
            Err(InvalidInput::StreamIdTooLong { len: 1025 })
        );
        assert!(StreamId::parse("a".repeat(1024)).is_ok());
        assert_eq!(
            StreamId::parse("secret vault"),
            Err(InvalidInput::StreamIdCharacter { found: ' ', at: 6 })
        );
        assert!(matches!(
            StreamId::parse("é"),
            Err(InvalidInput::StreamIdCharacter { .. })
        ));
        assert_eq!(
            StreamId::parse("secret-vault-prod://payments/db")
                .unwrap()
                .as_str(),
            "secret-vault-prod://payments/db"
        );
    }

    #[test]
    fn event_type_rules() {
        assert_eq!(EventType::parse(""), Err(InvalidInput::EmptyEventType));
        assert!(matches!(
            EventType::parse("Secret Uploaded"),
            Err(InvalidInput::EventTypeCharacter { found: ' ' })
        ));
        assert!(EventType::parse("SecretUploaded.v2_x-y").is_ok());
        assert!(matches!(
            EventType::parse("x".repeat(129)),
            Err(InvalidInput::EventTypeTooLong { len: 129 })
        ));
    }

    #[test]
    fn json_must_be_a_valid_object() {
        assert!(matches!(
            JsonObject::parse("data", "{not json"),
            Err(InvalidInput::InvalidJson { part: "data", .. })
        ));
        assert_eq!(
            JsonObject::parse("data", "[1,2]"),
            Err(InvalidInput::NotAnObject { part: "data" })
        );
        // Surrounding whitespace is not part of the stored object.
        assert_eq!(JsonObject::parse("data", "  {} ").unwrap().as_str(), "{}");
        assert_eq!(
            JsonObject::parse("data", r#"{"a":1}"#).unwrap().as_str(),
            r#"{"a":1}"#
        );
    }

    #[test]
    fn oversize_events_are_refused() {
        let ty = EventType::parse("Big").unwrap();
        let meta = EventMetadata::new("alice");
        let big = format!(r#"{{"v":"{}"}}"#, "x".repeat(MAX_EVENT_BYTES));
        assert!(matches!(
            NewEvent::from_json_text(ty.clone(), 1, &big, &meta),
            Err(InvalidInput::EventTooLarge { .. })
        ));
        assert_eq!(
            NewEvent::from_json_text(ty, 0, "{}", &meta),
            Err(InvalidInput::SchemaVersionZero)
        );
    }

    #[test]
    fn expected_version_rules() {
        let v = |n| Some(StreamVersion(n));
        assert!(ExpectedVersion::Any.is_met_by(None));
        assert!(ExpectedVersion::Any.is_met_by(v(3)));
        assert!(ExpectedVersion::NoStream.is_met_by(None));
        assert!(!ExpectedVersion::NoStream.is_met_by(v(0)));
        assert!(ExpectedVersion::Exact(StreamVersion(3)).is_met_by(v(3)));
        assert!(!ExpectedVersion::Exact(StreamVersion(3)).is_met_by(v(2)));
        assert!(!ExpectedVersion::Exact(StreamVersion(0)).is_met_by(None));
    }

    #[test]
    fn metadata_round_trips_and_tolerates_new_fields() {
        let meta = EventMetadata::new("alice");
        let json = JsonObject::from_value("metadata", &meta).unwrap();
        assert_eq!(json.deserialize::<EventMetadata>().unwrap(), meta);
        let newer = r#"{"actor":"bob","correlation_id":"6f1c1b2e-6c1e-4d6e-9a51-0b8e2b0c9d11","timestamp":"2026-11-23T10:00:00Z","added_later":true}"#;
        let parsed: EventMetadata = serde_json::from_str(newer).unwrap();
        assert_eq!(parsed.actor, "bob");
        assert_eq!(parsed.causation_id, None);
        assert_eq!(parsed.command_fingerprint, None, "older events have none");
        let fingerprinted = EventMetadata {
            command_fingerprint: Some("ab".repeat(32)),
            ..EventMetadata::new("alice")
        };
        let json = JsonObject::from_value("metadata", &fingerprinted).unwrap();
        assert_eq!(json.deserialize::<EventMetadata>().unwrap(), fingerprinted);
        let plain = JsonObject::from_value("metadata", &meta).unwrap();
        assert!(
            !plain.as_str().contains("command_fingerprint"),
            "absent fields are not written: {}",
            plain.as_str()
        );
    }
}
