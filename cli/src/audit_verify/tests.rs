//! The recorded-checkpoint check over a linked log.

use chrono::TimeZone as _;
use sealplane_event_store::chain::link;
use sealplane_event_store::{EventMetadata, NewEvent};
use sealplane_proto::log_checkpoint::{LogPoint, LogSigningKey};

use super::*;

fn event(ty: &str, data: &str) -> NewEvent {
    NewEvent::from_json_text(
        EventType::parse(ty).unwrap(),
        1,
        data,
        &EventMetadata::new("t"),
    )
    .unwrap()
}

/// Appends `events` on `stream` to `log`, linked as a store links them.
fn append(log: &mut Vec<RecordedEvent>, stream: &str, events: Vec<NewEvent>) {
    let stream = StreamId::parse(stream).unwrap();
    let tail = log
        .iter()
        .rev()
        .find(|e| e.stream_id == stream)
        .map(|e| (e.version, e.hash));
    let head = log.last().map_or(LogCheckpoint::EMPTY, LogCheckpoint::of);
    log.extend(link(&stream, tail, head, events));
}

fn things(log: &mut Vec<RecordedEvent>, n: usize) {
    let events = (0..n).map(|i| event("Happened", &format!(r#"{{"n":{i}}}"#)));
    append(log, "things", events.collect());
}

/// Records a checkpoint of the log's head signed by `key`.
fn checkpoint(
    log: &mut Vec<RecordedEvent>,
    key: &LogSigningKey,
    previous: Option<LogPoint>,
) -> LogPoint {
    let head = log.last().unwrap();
    let point = LogPoint {
        position: head.position.0,
        log_hash: head.log_hash.0,
    };
    let time = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
    let record = key.sign(point, time, previous).to_record();
    append(
        log,
        CHECKPOINT_STREAM,
        vec![event(
            LOG_CHECKPOINTED,
            &serde_json::to_string(&record).unwrap(),
        )],
    );
    point
}

fn observe_all(check: &mut RecordedCheckpoints, log: &[RecordedEvent]) -> Result<(), Broken> {
    log.iter().try_for_each(|e| check.observe(e))
}

#[test]
fn recorded_checkpoints_chained_and_matching_the_log_pass() {
    // Given a log with two recorded checkpoints
    let key = LogSigningKey::generate();
    let mut log = vec![];
    things(&mut log, 3);
    let first = checkpoint(&mut log, &key, None);
    things(&mut log, 2);
    checkpoint(&mut log, &key, Some(first));
    // When the walk passes them, then both hold
    let mut check = RecordedCheckpoints::new(key.public_key(), false);
    observe_all(&mut check, &log).unwrap();
    assert_eq!(check.checked, 2);
}

#[test]
fn a_recorded_checkpoint_by_another_key_or_out_of_chain_is_named() {
    let key = LogSigningKey::generate();
    let other = LogSigningKey::generate();
    // Given a checkpoint signed by another key
    let mut log = vec![];
    things(&mut log, 3);
    checkpoint(&mut log, &other, None);
    let mut check = RecordedCheckpoints::new(key.public_key(), false);
    let err = observe_all(&mut check, &log).unwrap_err().to_string();
    assert!(err.contains("recorded at position 4"), "{err}");
    assert!(err.contains(&other.key_id()), "{err}");
    // Given a second checkpoint naming no previous one
    let mut log = vec![];
    things(&mut log, 3);
    checkpoint(&mut log, &key, None);
    things(&mut log, 1);
    checkpoint(&mut log, &key, None);
    let mut check = RecordedCheckpoints::new(key.public_key(), false);
    let err = observe_all(&mut check, &log).unwrap_err().to_string();
    assert!(err.contains("names previous checkpoint None"), "{err}");
}

#[test]
fn a_recorded_checkpoint_that_does_not_match_the_log_is_named() {
    // Given a checkpoint whose claimed hash is not the log's
    let key = LogSigningKey::generate();
    let mut log = vec![];
    things(&mut log, 3);
    let mut forged = log.clone();
    forged[2].log_hash = LogHash([9; 32]);
    checkpoint(&mut forged, &key, None);
    // (the walk sees the real log hash at position 3)
    let mut real = log.clone();
    real.push(forged[3].clone());
    let mut check = RecordedCheckpoints::new(key.public_key(), false);
    let err = observe_all(&mut check, &real).unwrap_err().to_string();
    assert!(
        err.contains("says the log hash at position 3 is 0909"),
        "{err}"
    );
}

#[test]
fn wire_events_are_parsed_or_refused() {
    let mut log = vec![];
    things(&mut log, 1);
    let e = &log[0];
    let wire = v1::RecordedEvent {
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
    };
    assert_eq!(&event_from_proto(wire.clone()).unwrap(), e);
    let short = v1::RecordedEvent {
        log_hash: vec![1; 3],
        ..wire
    };
    assert!(event_from_proto(short).unwrap_err().contains("log_hash"));
}
