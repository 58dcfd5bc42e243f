//! The log the event-store benches measure on: `events` events of about
//! half a KiB (an upload's ciphertext), appended in batches of `batch`
//! round-robin over `streams` streams.

use std::path::Path;

use sealplane_event_store::{
    EmbeddedStore, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
};

/// Writes that log into a new embedded store at `db` and closes it.
pub async fn write_log(db: &Path, events: usize, batch: usize, streams: usize) {
    let filler = "A".repeat(400);
    let store = EmbeddedStore::open(db).unwrap();
    let kind = EventType::parse("SecretUploadRequested").unwrap();
    let meta = EventMetadata::new("bench");
    for b in 0..events.div_ceil(batch) {
        let n = batch.min(events - b * batch);
        let page = (0..n)
            .map(|i| {
                NewEvent::from_json_text(
                    kind.clone(),
                    1,
                    &format!(r#"{{"i":{},"ciphertext":"{filler}"}}"#, b * batch + i),
                    &meta,
                )
                .unwrap()
            })
            .collect();
        let stream = StreamId::parse(format!("upload-{}", b % streams)).unwrap();
        store
            .append(&stream, ExpectedVersion::Any, page)
            .await
            .unwrap();
    }
    store.close().await;
}
