//! Control plane resident memory with 100,000 secrets (SPEC §9), beside the
//! same binary on an empty log, in one run.
//!
//! `cargo bench -p sealplane --bench memory` (release). It
//! writes a log as 100,000 real puts leave it (each: key requested, secret
//! created, key provided, sealed upload of a ~1 KiB value, stored, version
//! recorded: six events through the real command handler and aggregates),
//! then starts the real `sealplane serve` on it and reads the process's
//! resident memory (`VmRSS`, and the peak `VmHWM`) once it serves and its
//! resident size has settled (two readings a second apart within 1%), and how
//! long the start took (the whole hash chain is verified and the read model
//! rebuilt from the log). The puts are written twice: all at once (every
//! upload request still within the read model's hour of retention, so it
//! counts each secret with its upload), and a second apart, the last one
//! now (as a steady put per second leaves them: only the last hour's
//! requests held, so it counts the live secret). `-- --secrets N` changes
//! the count; `SEALPLANE_BIN_DIR=DIR` measures another build's `sealplane`;
//! `SEALPLANE_BENCH_JSON=FILE` also writes the figures as JSON (for
//! `scripts/bench`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_event_store::{EmbeddedStore, EventStore};
use sealplane_test_kit::{ControlPlane, Settings};

/// Starts `sealplane serve` on `dir`'s log (no `init`: the log is served
/// as written); returns (start time, VmRSS kB, VmHWM kB).
fn serve_and_measure(dir: &Path) -> (Duration, u64, u64) {
    let mut control_plane = ControlPlane::configure(Some(dir), Settings::default());
    let started = Instant::now();
    control_plane.start();
    let took = started.elapsed();
    let pid = control_plane.process().id();
    let kb = |field: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    // Once it has settled: after ready, the first snapshot is encoded and
    // written, and the memory of such bursts given back (ADR 0030). Read
    // every 250 ms until two readings a second apart differ by under 1%
    // (at most 20 s); the peak is reported beside it.
    let mut readings = vec![];
    for _ in 0..80 {
        std::thread::sleep(Duration::from_millis(250));
        readings.push(kb("VmRSS:"));
        if let [.., before, _, _, now] = readings[..]
            && before.abs_diff(now) * 100 < before
        {
            break;
        }
    }
    let (rss, hwm) = (readings[readings.len() - 1], kb("VmHWM:"));
    control_plane.stop();
    (took, rss, hwm)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secrets: u64 = common::arg(&args, "--secrets")
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);

    let empty = tempfile::tempdir().unwrap();
    EmbeddedStore::open(empty.path().join("events.db"))
        .unwrap()
        .close()
        .await;
    let (empty_start, empty_rss, empty_hwm) = serve_and_measure(empty.path());

    let full = tempfile::tempdir().unwrap();
    let (events, wrote, db_bytes) = write(full.path(), secrets, chrono::Duration::zero()).await;
    let (full_start, full_rss, full_hwm) = serve_and_measure(full.path());
    drop(full);
    let spread = tempfile::tempdir().unwrap();
    write(spread.path(), secrets, chrono::Duration::seconds(1)).await;
    let (spread_start, spread_rss, spread_hwm) = serve_and_measure(spread.path());

    println!(
        "log: {secrets} secrets, {events} events, {:.0} MiB on disk (written in {:.0} s)",
        db_bytes as f64 / 1048576.0,
        wrote.as_secs_f64()
    );
    println!();
    println!("| log | start (verify chain + rebuild) | VmRSS | VmHWM (peak) |");
    println!("|---|---:|---:|---:|");
    let at_once = format!("{secrets} secrets, put at once");
    let apart = format!("{secrets} secrets, put a second apart");
    for (name, start, rss, hwm) in [
        ("empty", empty_start, empty_rss, empty_hwm),
        (at_once.as_str(), full_start, full_rss, full_hwm),
        (apart.as_str(), spread_start, spread_rss, spread_hwm),
    ] {
        println!(
            "| {name} | {:.2} s | {:.1} MiB | {:.1} MiB |",
            start.as_secs_f64(),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    println!();
    let per_secret = |rss: u64| (rss.saturating_sub(empty_rss) * 1024) as f64 / secrets as f64;
    println!(
        "per secret, with its upload request: {:.0} bytes resident",
        per_secret(full_rss)
    );
    println!(
        "per live secret (a second apart: the last hour's {} upload requests held): {:.0} bytes resident",
        secrets.min(3600),
        per_secret(spread_rss)
    );
    if let Ok(path) = std::env::var("SEALPLANE_BENCH_JSON") {
        let figures = serde_json::json!({
            "secrets": secrets,
            "events": events,
            "empty_rss_mib": empty_rss as f64 / 1024.0,
            "at_once_rss_mib": full_rss as f64 / 1024.0,
            "apart_rss_mib": spread_rss as f64 / 1024.0,
            "apart_uploads_held": secrets.min(3600),
            "bytes_per_secret_with_upload": per_secret(full_rss),
            "bytes_per_live_secret": per_secret(spread_rss),
            "at_once_start_s": full_start.as_secs_f64(),
            "apart_start_s": spread_start.as_secs_f64(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}

/// Writes `secrets` puts `apart` into a log in `dir`; (events, time taken, bytes on disk).
async fn write(dir: &Path, secrets: u64, apart: chrono::Duration) -> (u64, Duration, u64) {
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(dir.join("events.db")).unwrap());
    let writing = Instant::now();
    common::write_puts_spread(store.clone(), 0..secrets, apart).await;
    let events = store.head().await.unwrap().0;
    let wrote = writing.elapsed();
    store.close().await;
    let db_bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    (events, wrote, db_bytes)
}
