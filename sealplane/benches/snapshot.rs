//! Restoring the read model from its snapshot (ADR 0026), beside folding
//! the same log from position 1, in one process and one run: what a start
//! with a snapshot saves, and what the snapshot itself costs.
//!
//! `cargo bench -p sealplane --bench snapshot [-- --puts N --rounds R]`
//! (release profile; default 166,667 puts, the live state of a log of
//! 1,000,000 events as the startup bench writes it; 5 rounds). It writes
//! the puts through the real command handler into an in-memory store
//! (six events each, all within the hour, so every upload request is
//! still kept), folds them once with `as_of` (the reference: a start with
//! no snapshot folds the same), then, each round, encodes, writes and
//! loads the snapshot. It prints medians and the file's size.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_control_plane::projection::as_of;
use sealplane_control_plane::read_model::ReadModel;
use sealplane_control_plane::snapshot::{Encoded, SnapshotFile};
use sealplane_event_store::{EventStore, LogCheckpoint, MemoryStore, Position};
use sealplane_proto::log_checkpoint::LogSigningKey;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // As `sealplane` does first thing (ADR 0033): one allocator arena.
    sealplane_host::memory::limit_arenas(std::num::NonZeroU16::MIN);
    tokio::runtime::Runtime::new().unwrap().block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().collect();
    let puts: u64 = common::arg(&args, "--puts").map_or(166_667, |n| n.parse().unwrap());
    let rounds: usize = common::arg(&args, "--rounds").map_or(5, |n| n.parse().unwrap());

    let store = Arc::new(MemoryStore::new());
    let writing = Instant::now();
    common::write_puts(store.clone(), 0..puts).await;
    let head = store.head().await.unwrap();
    eprintln!(
        "{puts} puts, {} events, written in {:.0} s",
        head.0,
        writing.elapsed().as_secs_f64()
    );
    eprintln!("folding");
    let folding = Instant::now();
    let model = as_of(&*store, ReadModel::default(), head).await.unwrap();
    let fold = folding.elapsed();
    let at = LogCheckpoint::of(&store.read_all(head, 1).await.unwrap()[0]);
    assert_eq!(at.position, head);
    eprintln!("folded from position 1 in {:.0} ms", ms(fold));

    let dir = tempfile::tempdir().unwrap();
    let file = SnapshotFile::new(
        dir.path().join("read-model.snapshot"),
        &LogSigningKey::generate(),
    );
    let (mut encode, mut write, mut load) = (vec![], vec![], vec![]);
    let mut bytes = 0;
    for round in 0..rounds {
        let started = Instant::now();
        let encoded = Encoded::of(&model).unwrap();
        encode.push(started.elapsed());
        let started = Instant::now();
        bytes = file.write_encoded(encoded, at).unwrap();
        write.push(started.elapsed());
        let started = Instant::now();
        let restored = file.load().unwrap().expect("the snapshot just written");
        load.push(started.elapsed());
        assert_eq!(restored.at, at);
        if round == 0 {
            assert!(restored.model == model, "the snapshot restores the model");
        }
        drop(restored);
    }
    assert_ne!(at.position, Position(0));

    println!();
    println!(
        "| live state | fold from position 1 (reference) | snapshot load + check | load / fold | encode | write (fsynced) | file |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {puts} secrets and their upload requests ({} events) | {:.0} ms | {:.0} ms | {:.3} | {:.0} ms | {:.0} ms | {:.1} MiB |",
        head.0,
        ms(fold),
        ms(median(load.clone())),
        median(load).as_secs_f64() / fold.as_secs_f64(),
        ms(median(encode)),
        ms(median(write)),
        bytes as f64 / 1_048_576.0,
    );
}
