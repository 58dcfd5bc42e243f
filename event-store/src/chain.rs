//! Tamper evidence: the two hash chains the store computes at append time.
//!
//! Each event's `hash` covers every stored field, including `prev_hash`,
//! the hash of the previous event of its stream: editing an event changes
//! its hash, and re-hashing it breaks the next link of its stream. Each
//! event's `log_hash` chains *every* event in global position order
//! (ADR 0014): SHA-256 over a domain tag, the previous event's log hash,
//! the position and the event's hash. A log hash therefore vouches for
//! every event at or before its position, whichever stream it is in, so a
//! [`LogCheckpoint`] held outside the store (position and log hash) lets an
//! auditor detect any edit, deletion, insertion, reordering or truncation
//! up to it, even one whose hashes were all recomputed. [`ChainVerifier`]
//! (in `verify.rs`) checks both chains and the held checkpoints.
//!
//! [`ChainVerifier`]: crate::ChainVerifier

use std::fmt;

use sha2::{Digest, Sha256};

use crate::event::{
    EventType, JsonObject, NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
};

/// Writes `bytes` length-prefixed, so no two inputs encode alike.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// A 32-byte SHA-256 digest type with hex `Debug` and `Display`.
macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Reads a hash from stored bytes; `None` unless exactly 32.
            pub fn from_slice(bytes: &[u8]) -> Option<$name> {
                bytes.try_into().ok().map($name)
            }

            /// Parses 64 hex digits (either case).
            pub fn from_hex(text: &str) -> Option<$name> {
                let mut bytes = [0; 32];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some($name(bytes))
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

digest_type!(
    /// SHA-256 hash of one stored event (the per-stream chain).
    EventHash
);

digest_type!(
    /// SHA-256 hash of the whole log up to and including one event (the
    /// global chain, ADR 0014).
    LogHash
);

impl EventHash {
    /// The `prev_hash` of the first event of every stream.
    pub const GENESIS: EventHash = EventHash([0; 32]);
}

impl LogHash {
    /// The log hash of the empty log, which the first event extends.
    pub const GENESIS: LogHash = LogHash([0; 32]);

    /// The log hash after appending the event at `position` whose hash is
    /// `event` to a log whose hash is `self`.
    pub fn extend(&self, position: Position, event: &EventHash) -> LogHash {
        let mut h = Sha256::new();
        field(&mut h, b"sealplane-log-v1");
        h.update(self.0);
        h.update(position.0.to_be_bytes());
        h.update(event.0);
        LogHash(h.finalize().into())
    }
}

/// The state of the log after the event at `position`: what an auditor
/// holds and the control plane signs. It vouches for every event at or
/// before `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogCheckpoint {
    /// The last position it covers (`Position(0)` for the empty log).
    pub position: Position,
    /// The log hash of the event at `position`.
    pub log_hash: LogHash,
}

impl LogCheckpoint {
    /// The empty log: nothing covered yet.
    pub const EMPTY: LogCheckpoint = LogCheckpoint {
        position: Position(0),
        log_hash: LogHash::GENESIS,
    };

    /// The checkpoint the log reaches with `event`, as recorded.
    pub fn of(event: &RecordedEvent) -> LogCheckpoint {
        LogCheckpoint {
            position: event.position,
            log_hash: event.log_hash,
        }
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

/// Turns a batch of new events into recorded ones: global positions after
/// `log` (the log's last position and log hash, [`LogCheckpoint::EMPTY`]
/// for an empty log), stream versions after `tail` (the stream's last
/// version and hash, `None` for a new stream), and both hash chains.
pub fn link(
    stream: &StreamId,
    tail: Option<(StreamVersion, EventHash)>,
    log: LogCheckpoint,
    events: Vec<NewEvent>,
) -> Vec<RecordedEvent> {
    let (mut version, mut prev_hash) = match tail {
        Some((v, h)) => (v.next(), h),
        None => (StreamVersion(0), EventHash::GENESIS),
    };
    let mut position = log.position.next();
    let mut log_hash = log.log_hash;
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
            log_hash: LogHash::GENESIS,
        };
        e.hash = e.computed_hash();
        e.log_hash = log_hash.extend(position, &e.hash);
        prev_hash = e.hash;
        log_hash = e.log_hash;
        version = version.next();
        position = position.next();
        recorded.push(e);
    }
    recorded
}

/// Renumbers `events` in the order given (positions from 1, versions per
/// stream from 0) and recomputes both hash chains, as a store would have
/// written them: what anyone with write access to the store and this
/// source can do (the hashes are unkeyed), and so what tamper tests play.
/// Only a checkpoint held outside the store tells the result from the
/// original (ADR 0014).
pub fn relink(events: impl IntoIterator<Item = RecordedEvent>) -> Vec<RecordedEvent> {
    let mut streams: std::collections::HashMap<StreamId, (StreamVersion, EventHash)> =
        std::collections::HashMap::new();
    let mut head = LogCheckpoint::EMPTY;
    events
        .into_iter()
        .map(|mut e| {
            let (version, prev) = match streams.get(&e.stream_id) {
                Some((v, h)) => (v.next(), *h),
                None => (StreamVersion(0), EventHash::GENESIS),
            };
            e.position = head.position.next();
            e.version = version;
            e.prev_hash = prev;
            e.hash = e.computed_hash();
            e.log_hash = head.log_hash.extend(e.position, &e.hash);
            streams.insert(e.stream_id.clone(), (e.version, e.hash));
            head = LogCheckpoint::of(&e);
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMetadata;

    fn new_event(n: u64) -> NewEvent {
        NewEvent::from_json_text(
            EventType::parse("Happened").unwrap(),
            1,
            &format!(r#"{{"n":{n}}}"#),
            &EventMetadata::new("t"),
        )
        .unwrap()
    }

    fn stream(name: &str) -> StreamId {
        StreamId::parse(name).unwrap()
    }

    #[test]
    fn hashes_cover_every_field() {
        // Given one linked event
        let base = link(&stream("a"), None, LogCheckpoint::EMPTY, vec![new_event(1)]).remove(0);
        // When any one stored field differs
        let mut variants = vec![];
        let mut e = base.clone();
        e.position = Position(2);
        variants.push(e);
        let mut e = base.clone();
        e.stream_id = stream("b");
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
        e.data = JsonObject::parse("data", r#"{"n":2}"#).unwrap();
        variants.push(e);
        let mut e = base.clone();
        e.metadata = JsonObject::parse("metadata", "{}").unwrap();
        variants.push(e);
        let mut e = base.clone();
        e.prev_hash = EventHash([1; 32]);
        variants.push(e);
        // Then its hash differs
        for v in variants {
            assert_ne!(v.computed_hash(), base.hash, "{v:?}");
        }
    }

    #[test]
    fn a_log_hash_covers_the_previous_log_hash_the_position_and_the_event_hash() {
        // Given a log hash built from three inputs
        let prev = LogHash([3; 32]);
        let event = EventHash([4; 32]);
        let base = prev.extend(Position(7), &event);
        // When any one input differs, then so does the log hash
        assert_ne!(LogHash::GENESIS.extend(Position(7), &event), base);
        assert_ne!(prev.extend(Position(8), &event), base);
        assert_ne!(prev.extend(Position(7), &EventHash([5; 32])), base);
        // And the same inputs always give the same hash
        assert_eq!(prev.extend(Position(7), &event), base);
    }

    #[test]
    fn link_chains_log_hashes_across_streams_in_position_order() {
        // Given a batch on stream a after an empty log
        let first = link(
            &stream("a"),
            None,
            LogCheckpoint::EMPTY,
            vec![new_event(1), new_event(2)],
        );
        // When a batch on stream b follows it
        let second = link(
            &stream("b"),
            None,
            LogCheckpoint::of(&first[1]),
            vec![new_event(3)],
        );
        // Then positions continue and each log hash extends the previous
        // event's, whatever its stream
        assert_eq!(
            [first[0].position, first[1].position, second[0].position],
            [Position(1), Position(2), Position(3)]
        );
        let mut log = LogHash::GENESIS;
        for e in first.iter().chain(&second) {
            assert_eq!(e.hash, e.computed_hash());
            log = log.extend(e.position, &e.hash);
            assert_eq!(e.log_hash, log, "position {}", e.position);
        }
        // And the per-stream chain still starts afresh on stream b
        assert_eq!(second[0].prev_hash, EventHash::GENESIS);
        assert_eq!(first[1].prev_hash, first[0].hash);
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let h = LogHash([0xab; 32]);
        assert_eq!(LogHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(LogHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(LogHash::from_hex("abcd"), None);
        assert_eq!(EventHash::from_slice(&[0; 31]), None);
    }
}
