//! The PostgreSQL event store beside raw SQL on the same server, in one run.
//!
//! `SEALPLANE_BENCH_POSTGRES_URL=postgres://… cargo bench -p
//! sealplane-event-store --features postgres --bench postgres` (falls back
//! to `SEALPLANE_TEST_POSTGRES_URL`). Each run works in a database of its
//! own, created and dropped here. Raw SQL does the same inserts (one
//! transaction per append, or one multi-row insert per batch) and the same
//! full read into a table of the same shape, without the lock, the lookups
//! and the hashing. Durability is whatever the server is set to: measure on
//! a server with `fsync=on` (the `scripts/test` server runs `fsync=off`).
//!
//! `-- --events N` sets the size of the replay log (default 100,000).

use std::time::{Duration, Instant};

use sealplane_event_store::{
    EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, Position, PostgresStore,
    StreamId,
};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};

const SINGLE_APPENDS: usize = 1_000;
const BATCH: usize = 100;
const BATCHED_APPENDS: usize = 100;
const CLIENTS: usize = 16;
const APPENDS_EACH: usize = 100;
const READ_PAGE: usize = 4_096;

fn main() {
    let url = std::env::var("SEALPLANE_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("SEALPLANE_TEST_POSTGRES_URL"))
        .expect(
            "set SEALPLANE_BENCH_POSTGRES_URL to a server the benchmark may create a database on",
        );
    let replay: usize = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .map(|n| n.parse().expect("--events takes a number"))
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&url, replay));
}

async fn run(admin: &str, replay: usize) {
    let name = format!("sealplane_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(admin).await.unwrap();
    execute(&mut conn, format!("CREATE DATABASE {name}")).await;
    let url = with_database(admin, &name);
    println!("event store benchmark: PostgreSQL store vs raw SQL on the same server, same run");
    println!("| measurement | sealplane | raw SQL | sealplane / raw |");
    println!("|---|---|---|---|");

    let store = PostgresStore::connect(&url).await.unwrap();
    let raw = PgPoolOptions::new()
        .max_connections(CLIENTS as u32)
        .connect(&url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE raw_events (position bigserial PRIMARY KEY, stream_id text NOT NULL, \
         stream_version bigint NOT NULL, event_type text NOT NULL, schema_version bigint NOT NULL, \
         data text NOT NULL, metadata text NOT NULL, prev_hash bytea NOT NULL, hash bytea NOT NULL, \
         log_hash bytea NOT NULL)",
    )
    .execute(&raw)
    .await
    .unwrap();

    let (ours, lat) = single(&store).await;
    let theirs = raw_inserts(&raw, 1, SINGLE_APPENDS, 1).await;
    row(
        "durable appends, 1 event each, 1 client (events/s)",
        ours,
        theirs,
    );
    println!(
        "| append latency, 1 event, 1 client | p50 {:.2} ms, p99 {:.2} ms | | |",
        ms(lat.0),
        ms(lat.1)
    );
    let ours = concurrent(&store).await;
    let theirs = raw_inserts(&raw, CLIENTS, APPENDS_EACH, 1).await;
    row(
        &format!("durable appends, 1 event each, {CLIENTS} clients (events/s)"),
        ours,
        theirs,
    );
    let ours = batched(&store).await;
    let theirs = raw_inserts(&raw, 1, BATCHED_APPENDS, BATCH).await;
    row(
        &format!("durable appends, {BATCH} events each (events/s)"),
        ours,
        theirs,
    );

    // Fill to `replay` events in batches, then read everything back.
    let have = store.head().await.unwrap().0 as usize;
    let mut b = 0;
    while have + b * 1000 < replay {
        let n = 1000.min(replay - have - b * 1000);
        store
            .append(
                &stream(b % 64),
                ExpectedVersion::Any,
                (0..n).map(|i| new_event(b * 1000 + i)).collect(),
            )
            .await
            .unwrap();
        b += 1;
    }
    sqlx::raw_sql(
        "INSERT INTO raw_events (stream_id, stream_version, event_type, schema_version, data, \
         metadata, prev_hash, hash, log_hash) SELECT stream_id, stream_version, event_type, \
         schema_version, data, metadata, prev_hash, hash, log_hash FROM sealplane_events \
         WHERE position > (SELECT count(*) FROM raw_events)",
    )
    .execute(&raw)
    .await
    .unwrap();
    let total = store.head().await.unwrap().0 as usize;
    let ours = read_all(&store, total).await;
    let theirs = raw_read_all(&raw, total).await;
    row(
        &format!("read_all of {total} events (events/s)"),
        ours,
        theirs,
    );

    store.close().await;
    raw.close().await;
    execute(&mut conn, format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

async fn execute(conn: &mut PgConnection, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await
        .unwrap();
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// url");
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{db}{query}")
}

fn row(name: &str, ours: f64, raw: f64) {
    println!(
        "| {name} | {} | {} | {:.2} |",
        thousands(ours),
        thousands(raw),
        ours / raw
    );
}

fn thousands(rate: f64) -> String {
    let s = (rate.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn data(i: usize) -> String {
    json!({
        "request_id": format!("7b1e3c52-0d4f-4a8e-9b61-{i:012}"),
        "uri": "vault-prod://payments/db",
        "store": "vault-prod",
        "requester": "alice",
        "expires_at": "2026-11-23T10:05:00Z",
    })
    .to_string()
}

fn new_event(i: usize) -> NewEvent {
    NewEvent::from_json_text(
        EventType::parse("SecretUploadKeyRequested").unwrap(),
        1,
        &data(i),
        &EventMetadata::new("alice"),
    )
    .unwrap()
}

fn stream(i: usize) -> StreamId {
    StreamId::parse(format!("upload-{i}")).unwrap()
}

async fn single(store: &PostgresStore) -> (f64, (Duration, Duration)) {
    let mut latencies = Vec::with_capacity(SINGLE_APPENDS);
    let start = Instant::now();
    for i in 0..SINGLE_APPENDS {
        let t = Instant::now();
        store
            .append(&stream(i % 64), ExpectedVersion::Any, vec![new_event(i)])
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    let rate = SINGLE_APPENDS as f64 / start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (rate, (pct(0.50), pct(0.99)))
}

async fn concurrent(store: &PostgresStore) -> f64 {
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..APPENDS_EACH {
                    store
                        .append(&stream(c), ExpectedVersion::Any, vec![new_event(i)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    (CLIENTS * APPENDS_EACH) as f64 / start.elapsed().as_secs_f64()
}

async fn batched(store: &PostgresStore) -> f64 {
    let start = Instant::now();
    for b in 0..BATCHED_APPENDS {
        let batch = (0..BATCH).map(|i| new_event(b * BATCH + i)).collect();
        store
            .append(&stream(b % 64), ExpectedVersion::Any, batch)
            .await
            .unwrap();
    }
    (BATCHED_APPENDS * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// `clients` tasks each commit `appends` transactions of `batch` rows.
async fn raw_inserts(pool: &PgPool, clients: usize, appends: usize, batch: usize) -> f64 {
    let meta = serde_json::to_string(&EventMetadata::new("alice")).unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pool, meta) = (pool.clone(), meta.clone());
            tokio::spawn(async move {
                for a in 0..appends {
                    let rows = batch as i64;
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query(
                        "INSERT INTO raw_events (stream_id, stream_version, event_type, \
                         schema_version, data, metadata, prev_hash, hash, log_hash) \
                         SELECT $1, g, 'SecretUploadKeyRequested', 1, $2, $3, $4, $4, $4 \
                         FROM generate_series(1, $5) g",
                    )
                    .bind(format!("upload-{c}"))
                    .bind(data(a))
                    .bind(&meta)
                    .bind(&[7u8; 32][..])
                    .bind(rows)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (clients * appends * batch) as f64 / start.elapsed().as_secs_f64()
}

async fn read_all(store: &PostgresStore, total: usize) -> f64 {
    let start = Instant::now();
    let mut next = Position::START;
    let mut seen = 0;
    loop {
        let page = store.read_all(next, READ_PAGE).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.position.next();
        seen += page.len();
    }
    assert_eq!(seen, total);
    total as f64 / start.elapsed().as_secs_f64()
}

async fn raw_read_all(pool: &PgPool, total: usize) -> f64 {
    let start = Instant::now();
    let mut next = 0i64;
    let mut seen = 0;
    loop {
        let rows = sqlx::query(
            "SELECT position, stream_id, stream_version, event_type, schema_version, data, \
             metadata, prev_hash, hash, log_hash FROM raw_events WHERE position > $1 \
             ORDER BY position LIMIT $2",
        )
        .bind(next)
        .bind(READ_PAGE as i64)
        .fetch_all(pool)
        .await
        .unwrap();
        let Some(last) = rows.last() else { break };
        next = last.get(0);
        for r in &rows {
            let _: (String, String, Vec<u8>) = (r.get(1), r.get(5), r.get(9));
        }
        seen += rows.len();
    }
    assert!(seen >= total);
    seen as f64 / start.elapsed().as_secs_f64()
}
