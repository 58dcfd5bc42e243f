//! Recorded events on the wire, byte for byte, so that a receiver can check
//! both hash chains, and its checkpoints, itself. Only the server converts: the `proto` crate stays
//! free of the event store (and its SQLite), so `sealctl` and the reactor
//! link neither.

use sealplane_event_store::{
    EventHash, EventType, JsonObject, LogHash, Position, RecordedEvent, StreamId, StreamVersion,
};

use sealplane_proto::v1;

/// A wire event that does not hold a valid recorded event.
#[derive(Debug, thiserror::Error)]
#[error("invalid event on the wire: {0}")]
pub struct ConversionError(String);

/// The wire form of a recorded event.
pub fn event_to_proto(e: &RecordedEvent) -> v1::RecordedEvent {
    v1::RecordedEvent {
        position: e.position.0,
        stream_id: e.stream_id.to_string(),
        stream_version: e.version.0,
        event_type: e.event_type.to_string(),
        schema_version: e.schema_version,
        data_json: e.data.as_str().to_owned(),
        metadata_json: e.metadata.as_str().to_owned(),
        prev_hash: e.prev_hash.0.to_vec(),
        hash: e.hash.0.to_vec(),
        log_hash: e.log_hash.0.to_vec(),
    }
}

/// Parses a wire event back, refusing anything a store could not have
/// recorded.
pub fn event_from_proto(e: v1::RecordedEvent) -> Result<RecordedEvent, ConversionError> {
    let bad = |e: &dyn std::fmt::Display| ConversionError(e.to_string());
    let hash = |b: &[u8], field: &str| {
        EventHash::from_slice(b).ok_or_else(|| ConversionError(format!("{field} is not 32 bytes")))
    };
    Ok(RecordedEvent {
        position: Position(e.position),
        stream_id: StreamId::parse(e.stream_id).map_err(|e| bad(&e))?,
        version: StreamVersion(e.stream_version),
        event_type: EventType::parse(e.event_type).map_err(|e| bad(&e))?,
        schema_version: e.schema_version,
        data: JsonObject::parse("data", e.data_json).map_err(|e| bad(&e))?,
        metadata: JsonObject::parse("metadata", e.metadata_json).map_err(|e| bad(&e))?,
        prev_hash: hash(&e.prev_hash, "prev_hash")?,
        hash: hash(&e.hash, "hash")?,
        log_hash: LogHash::from_slice(&e.log_hash)
            .ok_or_else(|| ConversionError("log_hash is not 32 bytes".into()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sealplane_event_store::{
        ChainVerifier, EventMetadata, EventStore, ExpectedVersion, LogCheckpoint, MemoryStore,
        NewEvent,
    };

    #[tokio::test]
    async fn a_recorded_event_survives_the_wire_and_still_verifies() {
        let store = MemoryStore::new();
        let stream = StreamId::parse("store-local").unwrap();
        let event = NewEvent::from_json_text(
            EventType::parse("StoreCreated").unwrap(),
            1,
            r#"{"name":"local","kind":"file"}"#,
            &EventMetadata::new("admin"),
        )
        .unwrap();
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .unwrap();
        let recorded = store.read_all(Position::START, 1).await.unwrap().remove(0);

        let bytes = event_to_proto(&recorded).encode_to_vec();
        let back = event_from_proto(v1::RecordedEvent::decode(&bytes[..]).unwrap()).unwrap();

        assert_eq!(back, recorded);
        assert_eq!(back.computed_hash(), recorded.hash);
        let mut verifier = ChainVerifier::with_checkpoints([LogCheckpoint::of(&recorded)]);
        verifier.check(&back).unwrap();
        assert_eq!(verifier.finish().unwrap().checkpoints, 1);
    }

    #[test]
    fn a_malformed_wire_event_is_refused() {
        let wire = v1::RecordedEvent {
            position: 1,
            stream_id: "s".into(),
            event_type: "T".into(),
            schema_version: 1,
            data_json: "{}".into(),
            metadata_json: "{}".into(),
            prev_hash: vec![0; 31],
            hash: vec![0; 32],
            log_hash: vec![0; 32],
            ..Default::default()
        };
        let err = event_from_proto(wire.clone()).unwrap_err();
        assert!(
            err.to_string().contains("prev_hash is not 32 bytes"),
            "{err}"
        );
        // A sender from before log hashes sends none.
        let older = v1::RecordedEvent {
            prev_hash: vec![0; 32],
            log_hash: vec![],
            ..wire
        };
        let err = event_from_proto(older).unwrap_err();
        assert!(
            err.to_string().contains("log_hash is not 32 bytes"),
            "{err}"
        );
    }
}
