//! Start-up time against history length (SPEC §9, issue 14, ADR 0026):
//! the real `sealplane serve` on logs of about 10,000, 100,000 and
//! 1,000,000 events, side by side in one run:
//!
//! - **before**: `verify_on_start = "full"` and snapshots off — the whole
//!   hash chain verified, then the read model folded from position 1 (what
//!   every start did before ADR 0026);
//! - **first start**: incremental verification, no snapshot file yet (the
//!   model is still folded from position 1; a clean stop writes the
//!   snapshot);
//! - **after**: incremental verification, the snapshot present.
//!
//! Each is timed from spawning the process to its ready line (printed when
//! the read model has caught up; `/readyz` turns ready at the same point)
//! and to the first authenticated answer (`Operations.GetStatus` with the
//! admin's token). `--rounds R` (default 3) repeats the three in turn and
//! reports medians; `--sizes 10000,100000` picks sizes; `--json FILE`
//! also writes the figures as JSON.
//!
//! `cargo build --release -p sealplane && cargo bench -p sealplane --bench startup`
//! (`SEALPLANE_BIN_DIR=DIR` measures another build's `sealplane`). The logs
//! are written as real puts leave them (six events each, through the real
//! command handler) after `sealplane init`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_event_store::{EmbeddedStore, EventStore};
use sealplane_proto::v1::GetStatusRequest;
use sealplane_proto::v1::operations_client::OperationsClient;
use sealplane_test_kit::{ControlPlane, Settings};

const BEFORE: &str = common::FULL_START;
const AFTER: &str = "";

/// One start's figures.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    ready: Duration,
    answered: Duration,
    rss_kb: u64,
    stop: Duration,
}

/// Starts `sealplane serve` in `dir` with `sections`, times it to ready and
/// to the first authenticated answer, then stops it cleanly (after the
/// background walk of the whole log, with `wait_background`).
async fn start_and_measure(dir: &Path, token: &str, sections: &str, wait_background: bool) -> Run {
    let settings = Settings {
        sections: sections.to_owned(),
        ..Settings::default()
    };
    let mut cp = ControlPlane::configure(Some(dir), settings);
    let started = Instant::now();
    cp.start();
    let ready = started.elapsed();
    let mut client = OperationsClient::new(cp.channel().await);
    let mut request = tonic::Request::new(GetStatusRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let status = client.get_status(request).await.expect("an answer");
    let answered = started.elapsed();
    assert_eq!(status.into_inner().readiness, "ready");
    let rss_kb = common::vm_rss_kb(cp.process().id());
    if wait_background {
        cp.process_mut()
            .wait_for_line("background verification of the whole event log passed");
    }
    let stopping = Instant::now();
    cp.stop();
    Run {
        ready,
        answered,
        rss_kb,
        stop: stopping.elapsed(),
    }
}

/// The last value of `field=` on the last line of `log` containing `message`.
fn logged(log: &str, message: &str, field: &str) -> Option<u64> {
    let line = log.lines().rfind(|l| l.contains(message))?;
    let at = line.find(&format!("{field}="))? + field.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.ready);
    let mid = runs[runs.len() / 2];
    let mut answered: Vec<_> = runs.iter().map(|r| r.answered).collect();
    answered.sort();
    let mut stop: Vec<_> = runs.iter().map(|r| r.stop).collect();
    stop.sort();
    Run {
        answered: answered[answered.len() / 2],
        stop: stop[stop.len() / 2],
        ..mid
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = common::arg(&args, "--rounds").map_or(3, |n| n.parse().unwrap());
    let sizes: Vec<u64> = common::arg(&args, "--sizes")
        .map_or(vec![10_000, 100_000, 1_000_000], |s| {
            s.split(',').map(|n| n.parse().unwrap()).collect()
        });
    let json_out = common::arg(&args, "--json");

    let mut rows = vec![];
    for &size in &sizes {
        let dir = tempfile::tempdir().unwrap();
        let mut cp = ControlPlane::configure(Some(dir.path()), Settings::default());
        let token = cp.init();
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(cp.events_db()).unwrap());
        let writing = Instant::now();
        common::write_puts(store.clone(), 0..size / common::EVENTS_PER_PUT).await;
        let events = store.head().await.unwrap().0;
        store.close().await;
        drop(store);
        eprintln!(
            "log of {events} events written in {:.0} s",
            writing.elapsed().as_secs_f64()
        );
        let snapshot = dir.path().join("read-model.snapshot");
        let (mut before, mut first, mut after) = (vec![], vec![], vec![]);
        let (mut snapshot_bytes, mut write_ms, mut restore_ms, mut background_ms) = (0, 0, 0, None);
        for round in 0..rounds {
            before.push(start_and_measure(dir.path(), &token, BEFORE, false).await);
            let _ = std::fs::remove_file(&snapshot);
            first.push(start_and_measure(dir.path(), &token, AFTER, false).await);
            let log = std::fs::read_to_string(cp.log_path()).unwrap();
            snapshot_bytes = logged(&log, "wrote the read-model snapshot", "bytes").unwrap();
            write_ms = logged(&log, "wrote the read-model snapshot", "elapsed_ms").unwrap();
            after.push(start_and_measure(dir.path(), &token, AFTER, round + 1 == rounds).await);
            let log = std::fs::read_to_string(cp.log_path()).unwrap();
            restore_ms = logged(&log, "read model restored from its snapshot", "elapsed_ms")
                .expect("the last start restored the snapshot");
            background_ms = logged(
                &log,
                "background verification of the whole event log passed",
                "elapsed_ms",
            );
            eprintln!("{events} events, round {} of {rounds} done", round + 1);
        }
        cp.stop();
        rows.push((
            events,
            median(before),
            median(first),
            median(after),
            snapshot_bytes,
            write_ms,
            restore_ms,
            background_ms,
        ));
    }

    println!();
    println!(
        "| log | before: full verify + rebuild | first start: incremental verify + rebuild | after: snapshot + incremental verify | after / before | snapshot file | snapshot write (clean stop) | snapshot load + check |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (events, before, first, after, bytes, write_ms, restore_ms, _) in &rows {
        println!(
            "| {events} events | {:.2} s ({:.2} s to an answer, {:.0} MiB) | {:.2} s ({:.2} s, {:.0} MiB) | {:.2} s ({:.2} s, {:.0} MiB) | {:.2} | {:.1} MiB | {write_ms} ms | {restore_ms} ms |",
            before.ready.as_secs_f64(),
            before.answered.as_secs_f64(),
            before.rss_kb as f64 / 1024.0,
            first.ready.as_secs_f64(),
            first.answered.as_secs_f64(),
            first.rss_kb as f64 / 1024.0,
            after.ready.as_secs_f64(),
            after.answered.as_secs_f64(),
            after.rss_kb as f64 / 1024.0,
            after.ready.as_secs_f64() / before.ready.as_secs_f64(),
            *bytes as f64 / 1048576.0,
        );
    }
    println!();
    for (events, before, first, after, _, _, _, background_ms) in &rows {
        println!(
            "{events} events: clean stop {:.2} s before, {:.2} s first start (writes the snapshot), {:.2} s after; background walk of the whole log after an incremental start: {}",
            before.stop.as_secs_f64(),
            first.stop.as_secs_f64(),
            after.stop.as_secs_f64(),
            background_ms.map_or("not logged".to_owned(), |ms| format!(
                "{:.2} s",
                ms as f64 / 1000.0
            )),
        );
    }
    if let Some(path) = json_out {
        let rows: Vec<_> = rows
            .iter()
            .map(
                |(events, before, first, after, bytes, write_ms, restore_ms, background_ms)| {
                    let run = |r: &Run| {
                        serde_json::json!({
                            "ready_s": r.ready.as_secs_f64(),
                            "first_answer_s": r.answered.as_secs_f64(),
                            "rss_mib": r.rss_kb as f64 / 1024.0,
                            "stop_s": r.stop.as_secs_f64(),
                        })
                    };
                    serde_json::json!({
                        "events": events,
                        "before": run(before),
                        "first_start": run(first),
                        "after": run(after),
                        "snapshot_bytes": bytes,
                        "snapshot_write_ms": write_ms,
                        "snapshot_restore_ms": restore_ms,
                        "background_verify_ms": background_ms,
                    })
                },
            )
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}
