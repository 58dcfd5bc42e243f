//! Tamper evidence: every event records the hash of the previous event of
//! its stream, and global positions are contiguous.
//!
//! The store computes the chain at append time; [`ChainVerifier`] walks the
//! log in position order and names the first broken link. Editing an event
//! changes its hash (caught by recomputation and by the next event's
//! `prev_hash`); deleting one leaves a gap in positions and in its stream's
//! versions. Deleting the very last event of the whole log leaves no trace in
//! the log itself: auditors who need that anchor an exported head hash
//! elsewhere (ADR 0001).

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::event::{
    EventType, JsonObject, NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
};
use crate::store::{EventStore, StoreError};

/// SHA-256 hash of one stored event.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventHash(pub [u8; 32]);

impl EventHash {
    /// The `prev_hash` of the first event of every stream.
    pub const GENESIS: EventHash = EventHash([0; 32]);

    /// Reads a hash from stored bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<EventHash> {
        bytes.try_into().ok().map(EventHash)
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The fields of an event the hash covers: everything stored about it.
pub struct HashInput<'a> {
    pub position: Position,
    pub stream_id: &'a StreamId,
    pub version: StreamVersion,
    pub event_type: &'a EventType,
    pub schema_version: u32,
    pub data: &'a JsonObject,
    pub metadata: &'a JsonObject,
    pub prev_hash: &'a EventHash,
}

impl HashInput<'_> {
    /// SHA-256 over a domain tag and every field, each length-prefixed so
    /// that no two different events encode to the same bytes.
    pub fn hash(&self) -> EventHash {
        fn field(h: &mut Sha256, bytes: &[u8]) {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        let mut h = Sha256::new();
        field(&mut h, b"sealplane-event-v1");
        h.update(self.position.0.to_be_bytes());
        field(&mut h, self.stream_id.as_str().as_bytes());
        h.update(self.version.0.to_be_bytes());
        field(&mut h, self.event_type.as_str().as_bytes());
        h.update(self.schema_version.to_be_bytes());
        field(&mut h, self.data.as_str().as_bytes());
        field(&mut h, self.metadata.as_str().as_bytes());
        h.update(self.prev_hash.0);
        EventHash(h.finalize().into())
    }
}

impl RecordedEvent {
    /// Recomputes this event's hash from its stored fields.
    pub fn computed_hash(&self) -> EventHash {
        HashInput {
            position: self.position,
            stream_id: &self.stream_id,
            version: self.version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: &self.data,
            metadata: &self.metadata,
            prev_hash: &self.prev_hash,
        }
        .hash()
    }
}

/// Turns a batch of new events into recorded ones: global positions from
/// `first_position`, stream versions after `tail` (the stream's last version
/// and hash, `None` for a new stream), and the hash chain.
pub fn link(
    stream: &StreamId,
    tail: Option<(StreamVersion, EventHash)>,
    first_position: Position,
    events: Vec<NewEvent>,
) -> Vec<RecordedEvent> {
    let (mut version, mut prev_hash) = match tail {
        Some((v, h)) => (v.next(), h),
        None => (StreamVersion(0), EventHash::GENESIS),
    };
    let mut position = first_position;
    let mut recorded = Vec::with_capacity(events.len());
    for event in events {
        let (event_type, schema_version, data, metadata) = event.into_parts();
        let mut e = RecordedEvent {
            position,
            stream_id: stream.clone(),
            version,
            event_type,
            schema_version,
            data,
            metadata,
            prev_hash,
            hash: EventHash::GENESIS,
        };
        e.hash = e.computed_hash();
        prev_hash = e.hash;
        version = version.next();
        position = position.next();
        recorded.push(e);
    }
    recorded
}

/// The first place where the log is not what was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event log broken at position {position}: {kind}")]
pub struct ChainBreak {
    /// Where the break was found.
    pub position: Position,
    /// What is wrong there.
    pub kind: BreakKind,
}

/// What kind of link is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    #[error("expected position {expected}, found {found} (events are missing)")]
    PositionGap { expected: Position, found: Position },
    #[error("stream `{stream}` expected version {expected}, found {found}")]
    VersionGap {
        stream: StreamId,
        expected: StreamVersion,
        found: StreamVersion,
    },
    #[error("the event's content does not match its recorded hash (edited)")]
    ContentEdited,
    #[error("the event does not link to the previous event of stream `{stream}`")]
    PrevHashMismatch { stream: StreamId },
}

/// Walks a log in position order and checks every link.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    next_position: Option<Position>,
    streams: HashMap<StreamId, (StreamVersion, EventHash)>,
    checked: u64,
}

impl ChainVerifier {
    /// A verifier expecting the log to start at [`Position::START`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next event of the log.
    pub fn check(&mut self, event: &RecordedEvent) -> Result<(), ChainBreak> {
        let brk = |kind| ChainBreak {
            position: event.position,
            kind,
        };
        let expected = self.next_position.unwrap_or(Position::START);
        if event.position != expected {
            return Err(brk(BreakKind::PositionGap {
                expected,
                found: event.position,
            }));
        }
        let (expected_version, expected_prev) = match self.streams.get(&event.stream_id) {
            Some((v, h)) => (v.next(), *h),
            None => (StreamVersion(0), EventHash::GENESIS),
        };
        if event.version != expected_version {
            return Err(brk(BreakKind::VersionGap {
                stream: event.stream_id.clone(),
                expected: expected_version,
                found: event.version,
            }));
        }
        if event.computed_hash() != event.hash {
            return Err(brk(BreakKind::ContentEdited));
        }
        if event.prev_hash != expected_prev {
            return Err(brk(BreakKind::PrevHashMismatch {
                stream: event.stream_id.clone(),
            }));
        }
        self.streams
            .insert(event.stream_id.clone(), (event.version, event.hash));
        self.next_position = Some(event.position.next());
        self.checked += 1;
        Ok(())
    }

    /// How many events have passed so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// Why [`verify_log`] could not vouch for the log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log is not what was appended.
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the whole log and checks every link; returns how many events
/// passed.
pub async fn verify_log(store: &dyn EventStore) -> Result<u64, VerifyError> {
    const PAGE: usize = 4096;
    let mut verifier = ChainVerifier::new();
    let mut next = Position::START;
    loop {
        let page = store.read_all(next, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(verifier.checked());
        };
        next = last.position.next();
        for event in &page {
            verifier.check(event)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMetadata;

    fn event(position: u64, stream: &str, version: u64, prev: EventHash) -> RecordedEvent {
        let meta = JsonObject::from_value("metadata", &EventMetadata::new("t")).unwrap();
        let mut e = RecordedEvent {
            position: Position(position),
            stream_id: StreamId::parse(stream).unwrap(),
            version: StreamVersion(version),
            event_type: EventType::parse("Happened").unwrap(),
            schema_version: 1,
            data: JsonObject::parse("data", format!(r#"{{"n":{position}}}"#)).unwrap(),
            metadata: meta,
            prev_hash: prev,
            hash: EventHash::GENESIS,
        };
        e.hash = e.computed_hash();
        e
    }

    fn log() -> Vec<RecordedEvent> {
        let a0 = event(1, "a", 0, EventHash::GENESIS);
        let b0 = event(2, "b", 0, EventHash::GENESIS);
        let a1 = event(3, "a", 1, a0.hash);
        let b1 = event(4, "b", 1, b0.hash);
        vec![a0, b0, a1, b1]
    }

    fn verify(events: &[RecordedEvent]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new();
        for e in events {
            v.check(e)?;
        }
        Ok(v.checked())
    }

    #[test]
    fn an_intact_log_verifies() {
        assert_eq!(verify(&log()), Ok(4));
    }

    #[test]
    fn an_edited_event_is_found() {
        let mut events = log();
        events[2].data = JsonObject::parse("data", r#"{"n":999}"#).unwrap();
        assert_eq!(
            verify(&events).unwrap_err(),
            ChainBreak {
                position: Position(3),
                kind: BreakKind::ContentEdited
            }
        );
    }

    #[test]
    fn an_edited_event_with_recomputed_hash_breaks_the_next_link() {
        let mut events = log();
        events[0].data = JsonObject::parse("data", r#"{"n":999}"#).unwrap();
        events[0].hash = events[0].computed_hash();
        let err = verify(&events).unwrap_err();
        assert_eq!(err.position, Position(3));
        assert!(matches!(err.kind, BreakKind::PrevHashMismatch { .. }));
    }

    #[test]
    fn a_deleted_event_is_found() {
        let mut events = log();
        events.remove(1);
        assert_eq!(
            verify(&events).unwrap_err().kind,
            BreakKind::PositionGap {
                expected: Position(2),
                found: Position(3)
            }
        );
    }

    #[test]
    fn a_renumbered_deletion_is_found() {
        // Deleting b0 and renumbering positions hides the gap, but b1 now
        // starts stream b at version 1.
        let a0 = event(1, "a", 0, EventHash::GENESIS);
        let a1 = event(2, "a", 1, a0.hash);
        let b1 = event(3, "b", 1, EventHash::GENESIS);
        let err = verify(&[a0, a1, b1]).unwrap_err();
        assert!(matches!(err.kind, BreakKind::VersionGap { .. }));
    }

    #[test]
    fn hashes_cover_every_field() {
        let base = event(1, "a", 0, EventHash::GENESIS);
        let mut variants = vec![];
        let mut e = base.clone();
        e.position = Position(2);
        variants.push(e);
        let mut e = base.clone();
        e.stream_id = StreamId::parse("b").unwrap();
        variants.push(e);
        let mut e = base.clone();
        e.version = StreamVersion(1);
        variants.push(e);
        let mut e = base.clone();
        e.event_type = EventType::parse("Other").unwrap();
        variants.push(e);
        let mut e = base.clone();
        e.schema_version = 2;
        variants.push(e);
        let mut e = base.clone();
        e.metadata = JsonObject::parse("metadata", "{}").unwrap();
        variants.push(e);
        let mut e = base.clone();
        e.prev_hash = EventHash([1; 32]);
        variants.push(e);
        for v in variants {
            assert_ne!(v.computed_hash(), base.hash, "{v:?}");
        }
    }
}
