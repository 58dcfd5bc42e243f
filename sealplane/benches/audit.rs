//! Audit figures (issue 12): `sealctl audit verify` and `sealctl audit log
//! -o json > /dev/null` over a log of about 1,000,000 events, beside
//! reading the same rows straight from SQLite in the same run, with the
//! peak resident memory of `sealctl` during each; and what signed
//! checkpoints add to an append, single and batched, with and without a
//! checkpointer running, in the same run.
//!
//! `cargo build --release --bins && cargo bench -p sealplane --bench audit`
//! (`-- --events N` changes the log's size, `-- --events 0` runs only the
//! append part; `SEALPLANE_BIN_DIR=DIR` runs
//! another build's binaries). The log is written as real puts leave it
//! (six events each, through the real command handler), then served by the
//! real `sealplane serve`; `sealctl` runs under `/usr/bin/time` for its
//! peak RSS (GNU time's `%M`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_control_plane::application::checkpoint::{Checkpointer, LogIntegrity, Schedule};
use sealplane_event_store::{
    EmbeddedStore, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
};
use sealplane_proto::log_checkpoint::LogSigningKey;
use sealplane_test_kit::{ControlPlane, Settings, bin};

/// Runs `sealctl args` against `cp` under `/usr/bin/time`, stdout to
/// /dev/null; returns (wall time, peak RSS in KiB).
fn sealctl_measured(cp: &ControlPlane, config_dir: &Path, args: &[&str]) -> (Duration, u64) {
    let rss_file = config_dir.join("time.out");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(bin("sealctl"))
        .args(args)
        .env("SEALPLANE_ADDR", &cp.addr)
        .env("SEALPLANE_TOKEN", cp.admin_token())
        .env("SEALPLANE_CONFIG_DIR", config_dir)
        .stdout(Stdio::null())
        .status()
        .expect("/usr/bin/time runs (GNU time)");
    let took = started.elapsed();
    assert!(status.success(), "sealctl {args:?} failed");
    let rss = std::fs::read_to_string(&rss_file).unwrap();
    (took, rss.trim().parse().unwrap())
}

/// Reads every row of the log straight from SQLite, every column, as the
/// store's read does; returns (rows, time).
fn raw_read(db: &Path) -> (u64, Duration) {
    let started = Instant::now();
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT position, stream_id, stream_version, event_type, schema_version, \
             data, metadata, prev_hash, hash, log_hash FROM events ORDER BY position",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(row) = rows.next().unwrap() {
        let data: String = row.get(5).unwrap();
        let metadata: String = row.get(6).unwrap();
        let hash: Vec<u8> = row.get(8).unwrap();
        bytes += data.len() + metadata.len() + hash.len();
        n += 1;
    }
    assert!(bytes > 0);
    (n, started.elapsed())
}

fn event(n: u64) -> NewEvent {
    NewEvent::from_json_text(
        EventType::parse("BenchEvent").unwrap(),
        1,
        &format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(200)),
        &EventMetadata::new("bench"),
    )
    .unwrap()
}

/// Appends `total` events in batches of `batch` to fresh streams, one
/// client; returns events per second.
async fn append_rate(store: &Arc<dyn EventStore>, round: u64, total: u64, batch: u64) -> f64 {
    let started = Instant::now();
    let mut i = 0;
    while i < total {
        let stream = StreamId::parse(format!("bench-{round}-{batch}-{i}")).unwrap();
        let events = (i..i + batch).map(event).collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .unwrap();
        i += batch;
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Append rates (single, batched 100) with and without a checkpointer
/// signing every 1,000 events (the default), rounds interleaved.
async fn checkpoint_cost() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(dir.path().join("events.db")).unwrap());
    let schedule = Schedule {
        every_events: 1000,
        every: Duration::from_secs(60),
    };
    let checkpointer = Arc::new(
        Checkpointer::load(
            store.clone(),
            LogSigningKey::generate(),
            schedule,
            Arc::new(LogIntegrity::default()),
        )
        .await
        .unwrap(),
    );
    let mut rates: [[Vec<f64>; 2]; 2] = Default::default();
    for round in 0..6u64 {
        let with = round % 2 == 1;
        if with {
            // Catch up first on what the rounds without it appended, so
            // the round measures the steady state: a checkpoint per 1,000
            // new events, each verifying those since the last one.
            checkpointer.cycle().await.unwrap();
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = with.then(|| {
            tokio::spawn(checkpointer.clone().run(|| true, async {
                let _ = stopped.await;
            }))
        });
        for (k, (total, batch)) in [(4_000, 1), (200_000, 100)].into_iter().enumerate() {
            rates[k][usize::from(with)].push(append_rate(&store, round, total, batch).await);
        }
        let _ = stop.send(());
        if let Some(task) = running {
            task.await.unwrap();
        }
    }
    let head = store.head().await.unwrap();
    store.close().await;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!();
    println!(
        "| appends (1 client, checkpoint every 1,000 events) | without (events/s) | with (events/s) | with / without |"
    );
    println!("|---|---:|---:|---:|");
    for (k, name) in ["1 event each", "100 events each"].into_iter().enumerate() {
        let without = median(&mut rates[k][0]);
        let with = median(&mut rates[k][1]);
        println!(
            "| {name} | {without:.0} | {with:.0} | {:.2} |",
            with / without
        );
    }
    println!(
        "(medians of 3 interleaved rounds each; log head {})",
        head.0
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);

    if events == 0 {
        checkpoint_cost().await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cp = ControlPlane::configure(Some(dir.path()), Settings::default());
    cp.init();
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedStore::open(cp.events_db()).unwrap());
    let writing = Instant::now();
    common::write_puts(store.clone(), 0..events.div_ceil(common::EVENTS_PER_PUT)).await;
    let head = store.head().await.unwrap().0;
    store.close().await;
    let wrote = writing.elapsed();
    let started = Instant::now();
    cp.start();
    let start = started.elapsed();
    println!(
        "log: {head} events (written in {:.0} s); `sealplane serve` started on it in {:.1} s",
        wrote.as_secs_f64(),
        start.as_secs_f64()
    );

    let config_dir = dir.path().join("sealctl");
    std::fs::create_dir_all(&config_dir).unwrap();
    let (raw_rows, raw_took) = raw_read(&cp.events_db());
    let (verify_took, verify_rss) = sealctl_measured(&cp, &config_dir, &["audit", "verify"]);
    let (log_took, log_rss) = sealctl_measured(&cp, &config_dir, &["audit", "log", "-o", "json"]);
    let (raw_rows_again, raw_took_again) = raw_read(&cp.events_db());
    cp.stop();
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let raw_rate = rate(raw_rows, raw_took).max(rate(raw_rows_again, raw_took_again));
    println!();
    println!("| over {head} events | events/s | / raw SQLite read | sealctl peak RSS |");
    println!("|---|---:|---:|---:|");
    println!("| raw SQLite read of every row (best of 2) | {raw_rate:.0} | 1.00 | |");
    for (name, took, rss) in [
        ("`sealctl audit verify`", verify_took, verify_rss),
        ("`sealctl audit log -o json > /dev/null`", log_took, log_rss),
    ] {
        let r = rate(head, took);
        println!(
            "| {name} | {r:.0} | {:.2} | {:.1} MiB |",
            r / raw_rate,
            rss as f64 / 1024.0
        );
    }

    checkpoint_cost().await;
}
