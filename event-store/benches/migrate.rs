//! `migrate-store`'s copy of a large log, embedded to PostgreSQL and back
//! (issue 13's figure).
//!
//! `SEALPLANE_BENCH_POSTGRES_URL=postgres://… cargo bench -p
//! sealplane-event-store --features postgres --bench migrate -- --events
//! 1000000` (falls back to `SEALPLANE_TEST_POSTGRES_URL`; works in a
//! database of its own, created and dropped here). Builds an embedded log
//! of ~0.5 KiB events over 10,000 streams in batches of 100, then times
//! `copy_log` into an empty PostgreSQL database (checking every link on the
//! way in, reading the whole copy back and verifying it inside the
//! transaction, committing) and from there into a new embedded file.
//!
//! `-- --events N --keep-log FILE` only builds the log, into FILE, and
//! stops: the input for timing the `sealplane migrate-store` command itself.

mod common;

use std::time::Instant;

use sealplane_event_store::{EmbeddedImport, EmbeddedStore, EventStore, PostgresStore, copy_log};
use sqlx::{Connection, PgConnection};

const BATCH: usize = 100;
const STREAMS: usize = 10_000;

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// url");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}{query}")
}

fn main() {
    let admin = std::env::var("SEALPLANE_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("SEALPLANE_TEST_POSTGRES_URL"))
        .expect(
            "set SEALPLANE_BENCH_POSTGRES_URL to a server the benchmark may create a database on",
        );
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
    let keep: Option<std::path::PathBuf> = std::env::args()
        .skip_while(|a| a != "--keep-log")
        .nth(1)
        .map(Into::into);
    let dir = tempfile::tempdir().unwrap();
    let db = keep.clone().unwrap_or_else(|| dir.path().join("events.db"));
    let started = Instant::now();
    rt.block_on(common::write_log(&db, events, BATCH, STREAMS));
    println!(
        "log: {events} events in {} streams, {:.0} MiB, built in {:.1} s",
        STREAMS.min(events.div_ceil(BATCH)),
        std::fs::metadata(&db).unwrap().len() as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );

    if keep.is_some() {
        return;
    }
    let name = format!("sealplane_bench_migrate_{}", std::process::id());
    rt.block_on(async {
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = with_database(&admin, &name);

        let source = EmbeddedStore::open(&db).unwrap();
        let target = PostgresStore::connect(&url).await.unwrap();
        let import = target.begin_import().await.unwrap();
        let migrated = copy_log(&source, "embedded", Box::new(import), |_, _| {})
            .await
            .unwrap();
        source.close().await;
        let secs = migrated.elapsed.as_secs_f64();
        println!(
            "embedded -> postgres: {} events in {:.1} s ({:.0} events/s), head {}, verified",
            migrated.verified.events,
            secs,
            migrated.verified.events as f64 / secs,
            migrated.verified.head.position
        );

        let back = dir.path().join("back.db");
        let import = EmbeddedImport::create(&back).unwrap();
        let migrated = copy_log(&target, "postgres", Box::new(import), |_, _| {})
            .await
            .unwrap();
        target.close().await;
        let secs = migrated.elapsed.as_secs_f64();
        println!(
            "postgres -> embedded: {} events in {:.1} s ({:.0} events/s), head {}, verified",
            migrated.verified.events,
            secs,
            migrated.verified.events as f64 / secs,
            migrated.verified.head.position
        );

        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    });
}
