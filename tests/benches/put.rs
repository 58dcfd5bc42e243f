//! `put` end to end (SPEC §9): the real `sealplane` and `sealplane-reactor`
//! release binaries on loopback, embedded event store, file store upstream,
//! driven by sealctl's own upload code (`sealplane_cli::sealed_upload`, what
//! `sealctl put` runs, minus process start) from 1, 16 and 64 concurrent
//! clients. Reference, in the same run: a direct write of the same values
//! to a file store with the same concurrency. Also the time one put spends
//! in sealing, opening and hashing, and one `sealctl put` process.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p
//! sealplane-tests --bench put` (`PUT_BENCH_PUTS=N` scales the run,
//! `PUT_BENCH_CLIENTS=1,64` picks the client counts;
//! `SEALPLANE_BENCH_JSON=FILE` also writes the figures as JSON).
//!
//! `PUT_BENCH_MODE=metrics` runs instead the cost of metrics: the same put
//! workload (16 clients) against two deployments in one run, one with no
//! admin listener on either process and one with both listeners on and
//! both `/metrics` scraped every second while it runs, as Prometheus
//! would; rounds alternate ABBA so the machine's drift falls on both
//! alike, and the ratio of the two put rates is printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crypto_box::SecretKey;
use rand_core::OsRng;
use sealplane_cli::client::{Connection, ConnectionSettings};
use sealplane_cli::known_reactors::KnownReactors;
use sealplane_proto::names::SecretPath;
use sealplane_proto::sealed::{Payload, open, seal};
use sealplane_proto::upload::Purpose;
use sealplane_reactors::file_store::FileStore;
use sealplane_reactors::fingerprint::FingerprintKey;
use sealplane_reactors::master_key::MasterKey;
use sealplane_reactors::upstream::{UpstreamStore, WriteMeta};
use sealplane_test_kit::{Cluster, Settings, marker};
use uuid::Uuid;

const PUT: Purpose = Purpose::Put { adopt: false };

mod common;

use common::{drive, micros, row, sealed_put, value, write_json};

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("PUT_BENCH_PUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1280);
    if std::env::var("PUT_BENCH_MODE").as_deref() == Ok("metrics") {
        return metrics_on_versus_off(total).await;
    }
    let mut cluster = Cluster::start();
    cluster.add_file_store("local");
    let user = cluster.add_user("bench", "user", &[]);
    // Pin the reactor once, as a user's first put does.
    cluster
        .sealctl(&user, &["put", "secret", "local://bench/warm", "k=v"])
        .ok();
    let pins_path = KnownReactors::path_in(&user.config_dir);
    let conn = Connection::open(&ConnectionSettings {
        addr: cluster.addr.clone(),
        token: Some(user.token.clone()),
        ca_file: None,
    })
    .await
    .unwrap();

    let reference = tempfile::tempdir().unwrap();
    let files = FileStore::open(reference.path().join("files"), MasterKey::generate()).unwrap();

    println!(
        "| clients | puts | sealplane put/s | p50 ms | p99 ms | direct file store writes/s | p50 ms | p99 ms | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // `PUT_BENCH_CLIENTS=1,64` runs only those client counts.
    let counts: Vec<usize> = std::env::var("PUT_BENCH_CLIENTS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16, 64]);
    let mut rows = Vec::new();
    for clients in counts {
        let per_client = (total / clients / if clients == 1 { 4 } else { 1 }).max(5);
        let (conn2, pins2) = (conn.clone(), pins_path.clone());
        let round = Uuid::new_v4().simple().to_string();
        let put = drive(clients, per_client, move |c, i| {
            let (conn, pins_path, round) = (conn2.clone(), pins2.clone(), round.clone());
            async move {
                sealed_put(
                    &conn,
                    &pins_path,
                    format!("local://bench/{round}/c{c}/s{i}"),
                    i,
                )
                .await;
            }
        })
        .await;
        let files2 = files.clone();
        let round = Uuid::new_v4().simple().to_string();
        let direct = drive(clients, per_client, move |c, i| {
            let (files, round) = (files2.clone(), round.clone());
            async move {
                let meta = WriteMeta {
                    uri: format!("local://bench/{round}/c{c}/s{i}"),
                    request_id: Uuid::new_v4(),
                    adopt: false,
                };
                let path = format!("bench/{round}/c{c}/s{i}");
                files.put(&path, &value(i), &meta).await.unwrap();
            }
        })
        .await;
        rows.push(row(clients, &put, &direct));
    }

    // Where a put's CPU goes, per put, on this value.
    let key = SecretKey::generate(&mut OsRng);
    let public = key.public_key();
    let id = Uuid::new_v4();
    let uri = "local://bench/crypto";
    let sample = seal(&Payload::new(id, uri, PUT, value(1)).unwrap(), &public).unwrap();
    let fingerprint = FingerprintKey::generate("bench").unwrap();
    let n = 2000;
    let seal_us = micros(n, |i| {
        seal(&Payload::new(id, uri, PUT, value(i)).unwrap(), &public).unwrap()
    });
    let open_us = micros(n, |_| open(&sample, &key, id, uri, PUT).unwrap());
    let bench_path = SecretPath::parse("bench/crypto").unwrap();
    let hash_us = micros(n, |i| fingerprint.fingerprint(&bench_path, &value(i)));
    let value_us = micros(n, value);
    println!();
    println!(
        "| step (per put, {} B value) | µs |",
        value(0).total_bytes()
    );
    println!("|---|---:|");
    println!(
        "| seal (sealctl: JSON + crypto_box sealed box) | {:.1} |",
        seal_us - value_us
    );
    println!(
        "| open (reactor: unseal + parse + checks) | {:.1} |",
        open_us
    );
    println!(
        "| keyed hashes (reactor: whole value + per key) | {:.1} |",
        hash_us - value_us
    );

    // One real sealctl process, start to exit.
    let runs = 20;
    let start = Instant::now();
    for i in 0..runs {
        let secret = marker("p");
        cluster
            .sealctl(
                &user,
                &[
                    "put",
                    "secret",
                    &format!("local://bench/proc/s{i}"),
                    &format!("password={secret}"),
                ],
            )
            .ok();
    }
    let process_ms = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
    println!();
    println!(
        "`sealctl put` as a process (start, connect, seal, wait, exit), mean of {runs}: {process_ms:.2} ms"
    );
    cluster.stop();
    write_json(serde_json::json!({
        "rows": rows,
        "seal_us": seal_us - value_us,
        "open_us": open_us,
        "keyed_hashes_us": hash_us - value_us,
        "sealctl_put_process_ms": process_ms,
    }));
}

/// A deployment ready for sealed puts: a file store, a pinned user.
struct Deployment {
    cluster: Cluster,
    conn: Connection,
    pins_path: std::path::PathBuf,
    /// The admin listeners to scrape (none when off).
    scrape: Vec<String>,
    /// The control plane's and the reactor's process ids.
    pids: [u32; 2],
}

impl Deployment {
    /// User plus system CPU the two server processes used so far, in
    /// clock ticks (`/proc/PID/stat`).
    fn cpu_ticks(&self) -> u64 {
        self.pids
            .iter()
            .map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                // After the command name in parentheses: state is field 3,
                // utime and stime fields 14 and 15.
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                let f: Vec<&str> = rest.split(' ').collect();
                f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
            })
            .sum()
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

async fn deployment(metrics: bool) -> Deployment {
    let mut cluster = Cluster::start_with(Settings {
        admin: metrics,
        ..Settings::default()
    });
    let reactor = cluster.add_file_store("local");
    let user = cluster.add_user("bench", "user", &[]);
    cluster
        .sealctl(&user, &["put", "secret", "local://bench/warm", "k=v"])
        .ok();
    let scrape = if metrics {
        vec![
            cluster.control_plane().admin_addr(),
            cluster.reactor_admin_addr(reactor),
        ]
    } else {
        vec![]
    };
    let conn = Connection::open(&ConnectionSettings {
        addr: cluster.addr.clone(),
        token: Some(user.token.clone()),
        ca_file: None,
    })
    .await
    .unwrap();
    let pids = [
        cluster.control_plane().process().id(),
        cluster.reactor_process(reactor).id(),
    ];
    Deployment {
        pids,
        pins_path: KnownReactors::path_in(&user.config_dir),
        cluster,
        conn,
        scrape,
    }
}

/// One `GET /metrics`; the body's length.
fn scrape(addr: &str) -> usize {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.len()
}

async fn metrics_on_versus_off(total: usize) {
    const CLIENTS: usize = 16;
    // Quads of rounds, each A B B A (off, on, on, off).
    const QUADS: usize = 8;
    let per_client = (total / (QUADS * 4) / CLIENTS).max(1);
    let off = deployment(false).await;
    let on = deployment(true).await;
    // Scrapes both of `on`'s listeners every second while its rounds run.
    let scraping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (addrs, scraping, stop, scrapes) = (
            on.scrape.clone(),
            scraping.clone(),
            stop.clone(),
            scrapes.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if scraping.load(Ordering::Relaxed) {
                    for addr in &addrs {
                        scrape(addr);
                    }
                    scrapes.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // (metrics on, figures, server CPU ms per put)
    let mut rounds: Vec<(bool, common::Figures, f64)> = Vec::new();
    println!("| round | metrics | puts | put/s | p50 ms | p99 ms | server CPU ms/put |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    // A B B A: a drift that is steady over a quad adds as much to each side.
    let order = [false, true, true, false].repeat(QUADS);
    for (round, &metrics) in order.iter().enumerate() {
        let d = if metrics { &on } else { &off };
        scraping.store(metrics, Ordering::Relaxed);
        let (conn, pins) = (d.conn.clone(), d.pins_path.clone());
        let tag = Uuid::new_v4().simple().to_string();
        let ticks = d.cpu_ticks();
        let f = drive(CLIENTS, per_client, move |c, i| {
            let (conn, pins, tag) = (conn.clone(), pins.clone(), tag.clone());
            async move {
                sealed_put(&conn, &pins, format!("local://bench/{tag}/c{c}/s{i}"), i).await;
            }
        })
        .await;
        let cpu = (d.cpu_ticks() - ticks) as f64 / TICKS_PER_SECOND * 1e3 / f.puts as f64;
        scraping.store(false, Ordering::Relaxed);
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.3} |",
            round + 1,
            if metrics { "on, scraped" } else { "off" },
            f.puts,
            f.rate(),
            f.pct(0.50),
            f.pct(0.99),
            cpu
        );
        rounds.push((metrics, f, cpu));
    }
    stop.store(true, Ordering::Relaxed);
    scraper.join().unwrap();
    // Per quad: the on rounds' mean over the off rounds'.
    let per_quad = |of: &dyn Fn(&common::Figures, f64) -> f64| -> Vec<f64> {
        rounds
            .chunks(4)
            .map(|quad| {
                let mean = |on: bool| {
                    let r: Vec<f64> = quad
                        .iter()
                        .filter(|(m, _, _)| *m == on)
                        .map(|(_, f, cpu)| of(f, *cpu))
                        .collect();
                    r.iter().sum::<f64>() / r.len() as f64
                };
                mean(true) / mean(false)
            })
            .collect()
    };
    let summary = |mut ratios: Vec<f64>| {
        let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        ratios.sort_by(f64::total_cmp);
        let median = (ratios[(ratios.len() - 1) / 2] + ratios[ratios.len() / 2]) / 2.0;
        let sorted: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        (geomean, median, sorted.join(", "))
    };
    let mean = |on: bool, of: &dyn Fn(&common::Figures, f64) -> f64| {
        let r: Vec<f64> = rounds
            .iter()
            .filter(|(m, _, _)| *m == on)
            .map(|(_, f, cpu)| of(f, *cpu))
            .collect();
        r.iter().sum::<f64>() / r.len() as f64
    };
    let rate = |f: &common::Figures, _: f64| f.rate();
    let cpu = |_: &common::Figures, cpu: f64| cpu;
    println!();
    println!(
        "metrics off: {:.0} put/s, {:.3} ms server CPU per put; on and scraped: {:.0} put/s, {:.3} ms ({} scrapes of both listeners); means of {} rounds each",
        mean(false, &rate),
        mean(false, &cpu),
        mean(true, &rate),
        mean(true, &cpu),
        scrapes.load(Ordering::Relaxed),
        QUADS * 2
    );
    let (geomean, median, sorted) = summary(per_quad(&rate));
    println!(
        "put/s on / off per ABBA quad: geometric mean {geomean:.3} (cost {:+.1}%), median {median:.3}; quads: {sorted}",
        (1.0 - geomean) * 100.0
    );
    let (geomean, median, sorted) = summary(per_quad(&cpu));
    println!(
        "server CPU per put on / off per ABBA quad: geometric mean {geomean:.3} (cost {:+.1}%), median {median:.3}; quads: {sorted}",
        (geomean - 1.0) * 100.0
    );
    let (mut off, mut on) = (off, on);
    off.cluster.stop();
    on.cluster.stop();
}
