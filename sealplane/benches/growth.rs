//! Cost against history length (SPEC §9, issue 14): one deployment of the
//! real release binaries (`sealplane serve`, a `sealplane-reactor` with a
//! file store, `sealctl`) whose log grows to about 10,000, 100,000,
//! 600,000 (100,000 secrets: the memory target's size) and 1,000,000
//! events, and at each size, in one run:
//!
//! - **start-up**: `sealplane serve` restarted with the default settings
//!   (the read-model snapshot its last clean stop wrote, incremental
//!   verification), timed from spawning to its ready line; its resident
//!   memory (`VmRSS`) once the background walk of the whole log that
//!   follows such a start has passed (the puts and reads below wait for it
//!   too, so they measure a settled server);
//! - **reference start**: the same log started as every start was before
//!   ADR 0026 (`verify_on_start = "full"`, snapshots off: the whole chain
//!   verified and the model folded from position 1), with its memory;
//! - **put**: `sealctl put` of new secrets, one process each (start,
//!   connect, seal, wait, exit), p50 and p90 over `--puts N` (default 50);
//! - **`get secrets`**: `sealctl get secrets` as the same user, one process
//!   each, p50 and p90 over `--gets N` (default 50).
//!
//! The history is written between sizes with the deployment stopped, as
//! real puts leave it (six events each through the real command handler,
//! `common::write_puts`) for another user in a store no reactor serves, so
//! the bench user's own puts and listing stay the same size while the log
//! and the live state grow. The first row is the deployment before any
//! history (its set-up events only). Memory per secret is the resident
//! memory above that first row over the history's secrets (each with its
//! upload request, which the model keeps for an hour of log time).
//!
//! `cargo build --release --workspace --bins && cargo bench -p sealplane
//! --bench growth` (`-- --sizes 10000,100000,600000,1000000` picks the
//! history sizes in events, `--no-full` skips the reference starts;
//! `SEALPLANE_BENCH_JSON=FILE` also writes the figures as JSON;
//! `SEALPLANE_BIN_DIR=DIR` measures another build).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_event_store::{EmbeddedStore, EventStore};
use sealplane_test_kit::{Cluster, ControlPlane, Settings};
use serde_json::json;

/// One size's figures.
struct Row {
    events: u64,
    history_puts: u64,
    /// Writing this size's share of the history.
    wrote: Duration,
    /// The first start after writing (folds what was appended since the
    /// last snapshot; its clean stop writes a new one).
    catch_up: Duration,
    start: Duration,
    rss_kb: u64,
    /// The background walk of the whole log, after ready.
    walked: Option<Duration>,
    full: Option<(Duration, u64)>,
    puts: Vec<Duration>,
    gets: Vec<Duration>,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1].as_secs_f64() * 1e3
}

fn timed(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    let mut all: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    all.sort();
    all
}

/// Starts the cluster's control plane; the time to its ready line, then,
/// once the background walk of the whole log that follows a start from the
/// snapshot has passed (puts and reads are timed after it), its resident
/// memory and how long that walk took after ready.
fn start(cluster: &mut Cluster) -> (Duration, u64, Option<Duration>) {
    let started = Instant::now();
    cluster.restart_control_plane();
    let took = started.elapsed();
    let process = cluster.control_plane().process();
    let restored = process
        .output()
        .contains("read model restored from its snapshot");
    let walked = restored.then(|| {
        while !process
            .output()
            .contains("background verification of the whole event log passed")
        {
            assert!(
                started.elapsed() < Duration::from_secs(1800),
                "the background verification did not pass within 30 minutes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed() - took
    });
    std::thread::sleep(Duration::from_millis(500));
    (took, common::vm_rss_kb(process.id()), walked)
}

/// The log's head position.
async fn head(db: &std::path::Path) -> u64 {
    let store = EmbeddedStore::open(db).unwrap();
    let head = store.head().await.unwrap().0;
    store.close().await;
    head
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut sizes: Vec<u64> = common::arg(&args, "--sizes")
        .map_or(vec![10_000, 100_000, 600_000, 1_000_000], |s| {
            s.split(',').map(|n| n.parse().unwrap()).collect()
        });
    sizes.sort();
    let puts: usize = common::arg(&args, "--puts").map_or(50, |n| n.parse().unwrap());
    let gets: usize = common::arg(&args, "--gets").map_or(50, |n| n.parse().unwrap());
    let full = !args.iter().any(|a| a == "--no-full");

    let mut cluster = Cluster::start();
    cluster.add_file_store("files");
    let user = cluster.add_user("bench", "user", &[]);
    // Pin the reactor, as a user's first put does.
    cluster
        .sealctl(&user, &["put", "secret", "files://bench/warm", "k=v"])
        .ok();
    let db = cluster.control_plane().events_db();
    let mut rows: Vec<Row> = vec![];
    let mut written = 0u64;
    for (n, &size) in [0].iter().chain(&sizes).enumerate() {
        cluster.stop();
        let history_puts = size / common::EVENTS_PER_PUT;
        let writing = Instant::now();
        if history_puts > written {
            let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(&db).unwrap());
            common::write_puts(store.clone(), written..history_puts).await;
            store.close().await;
            written = history_puts;
        }
        let wrote = writing.elapsed();
        let events = head(&db).await;
        eprintln!(
            "{events} events ({history_puts} history puts, written in {:.1} s)",
            wrote.as_secs_f64()
        );
        // Fold what was appended; the clean stop writes the snapshot.
        let (catch_up, _, _) = start(&mut cluster);
        cluster.stop();
        let (start_took, rss_kb, walked) = start(&mut cluster);
        cluster.restart_reactors();
        let put_times = timed(puts, |i| {
            cluster
                .sealctl(
                    &user,
                    &[
                        "put",
                        "secret",
                        &format!("files://bench/size-{n}/s{i}"),
                        "password=growth",
                    ],
                )
                .ok();
        });
        let get_times = timed(gets, |_| {
            cluster.sealctl(&user, &["get", "secrets"]).ok();
        });
        cluster.stop();
        let full_start = full.then(|| {
            let settings = Settings {
                sections: common::FULL_START.to_owned(),
                ..Settings::default()
            };
            let mut cp = ControlPlane::configure(Some(cluster.dir()), settings);
            let started = Instant::now();
            cp.start();
            let took = started.elapsed();
            std::thread::sleep(Duration::from_millis(500));
            let rss = common::vm_rss_kb(cp.process().id());
            cp.stop();
            // The cluster's own settings again.
            ControlPlane::configure(Some(cluster.dir()), Settings::default());
            (took, rss)
        });
        eprintln!(
            "{events} events: start {:.2} s (first start after writing {:.2} s, background walk {:.2} s), {:.0} MiB, put p50 {:.1} ms, get secrets p50 {:.1} ms",
            start_took.as_secs_f64(),
            catch_up.as_secs_f64(),
            walked.map_or(0.0, |w| w.as_secs_f64()),
            rss_kb as f64 / 1024.0,
            pct(&put_times, 0.5),
            pct(&get_times, 0.5)
        );
        rows.push(Row {
            events,
            history_puts,
            wrote,
            catch_up,
            start: start_took,
            rss_kb,
            walked,
            full: full_start,
            puts: put_times,
            gets: get_times,
        });
    }
    cluster.stop();

    let base_kb = rows[0].rss_kb;
    let per_secret = |r: &Row| {
        (r.history_puts > 0)
            .then(|| (r.rss_kb.saturating_sub(base_kb) * 1024) as f64 / r.history_puts as f64)
    };
    println!();
    println!(
        "| log | history secrets | start-up (snapshot) | resident | bytes per history secret | reference start (full verify + rebuild) | its resident | `sealctl put` p50 / p90 | `sealctl get secrets` p50 / p90 |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} events | {} | {:.2} s | {:.1} MiB | {} | {} | {} | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
            r.events,
            r.history_puts,
            r.start.as_secs_f64(),
            r.rss_kb as f64 / 1024.0,
            per_secret(r).map_or("".to_owned(), |b| format!("{b:.0}")),
            r.full.map_or("not run".to_owned(), |(t, _)| format!(
                "{:.2} s",
                t.as_secs_f64()
            )),
            r.full.map_or("".to_owned(), |(_, kb)| format!(
                "{:.1} MiB",
                kb as f64 / 1024.0
            )),
            pct(&r.puts, 0.5),
            pct(&r.puts, 0.9),
            pct(&r.gets, 0.5),
            pct(&r.gets, 0.9),
        );
    }
    if let Ok(path) = std::env::var("SEALPLANE_BENCH_JSON") {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "events": r.events,
                    "history_secrets": r.history_puts,
                    "history_write_s": r.wrote.as_secs_f64(),
                    "catch_up_start_s": r.catch_up.as_secs_f64(),
                    "start_s": r.start.as_secs_f64(),
                    "rss_mib": r.rss_kb as f64 / 1024.0,
                    "background_walk_s": r.walked.map(|w| w.as_secs_f64()),
                    "bytes_per_history_secret": per_secret(r),
                    "full_start_s": r.full.map(|(t, _)| t.as_secs_f64()),
                    "full_start_rss_mib": r.full.map(|(_, kb)| kb as f64 / 1024.0),
                    "put_p50_ms": pct(&r.puts, 0.5),
                    "put_p90_ms": pct(&r.puts, 0.9),
                    "puts": r.puts.len(),
                    "get_secrets_p50_ms": pct(&r.gets, 0.5),
                    "get_secrets_p90_ms": pct(&r.gets, 0.9),
                    "gets": r.gets.len(),
                })
            })
            .collect();
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({ "rows": rows })).unwrap(),
        )
        .unwrap();
        eprintln!("wrote {path}");
    }
}
