//! Backup and restore of a large embedded log (issue 16's figure).
//!
//! `cargo bench -p sealplane-event-store --bench backup -- --events 1000000`
//! (release profile). Builds the log through the library in batches of
//! 10,000 events (each ~0.5 KiB of JSON, like an upload event holding a
//! small sealed value), then times `backup::backup` (VACUUM INTO) and
//! `backup::restore` (copy, open, verify the whole hash chain, link).

mod common;

use std::time::Instant;

use sealplane_event_store::backup;
use sealplane_event_store::{EmbeddedStore, EventStore};

const BATCH: usize = 10_000;

fn main() {
    let events: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .map(|n| n.parse().expect("--events takes a number"))
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let started = Instant::now();
    rt.block_on(common::write_log(&db, events, BATCH, 100));
    let built = started.elapsed();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len() as f64 / (1 << 20) as f64;
    println!(
        "log: {events} events, {:.0} MiB, built in {:.1} s",
        size(&db),
        built.as_secs_f64()
    );

    // The store open while the backup runs, as with a serving control plane.
    let store = rt.block_on(async { EmbeddedStore::open(&db).unwrap() });
    let file = dir.path().join("backup.db");
    let started = Instant::now();
    let summary = backup::backup(&db, &file).unwrap();
    let took = started.elapsed();
    println!(
        "backup: {} events, {:.0} MiB, {:.1} s (head {})",
        summary.events,
        summary.bytes as f64 / (1 << 20) as f64,
        took.as_secs_f64(),
        summary.head.position.0
    );
    rt.block_on(store.close());

    let target = dir.path().join("restored.db");
    let started = Instant::now();
    let restored = rt
        .block_on(backup::restore(&file, &target, vec![summary.head]))
        .unwrap();
    println!(
        "restore + full chain verification: {} events, {:.1} s",
        restored.verified.events,
        started.elapsed().as_secs_f64()
    );
}
