//! Shared by the put benchmarks: the value, the concurrent driver, the
//! percentiles, and a put through sealctl's own upload code.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealplane_cli::client::Connection;
use sealplane_cli::known_reactors::KnownReactors;
use sealplane_cli::progress::Progress;
use sealplane_cli::sealed_upload::{Outcome, Trusting, UploadTarget, upload};
use sealplane_cli::trust::Trust;
use sealplane_proto::sealed::SecretValue;
use sealplane_proto::v1;

/// A typical secret: a user name and a 32-byte password (base64), ~1 KiB of TLS-ish blob.
pub fn value(i: usize) -> SecretValue {
    let mut v = SecretValue::new();
    v.insert("user", b"app".to_vec()).unwrap();
    v.insert("password", format!("{:0>44}", i).into_bytes())
        .unwrap();
    v.insert("cert", vec![b'c'; 1024]).unwrap();
    v
}

pub struct Figures {
    pub puts: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.puts as f64 / self.elapsed.as_secs_f64()
    }

    pub fn pct(&self, p: f64) -> f64 {
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1].as_secs_f64() * 1e3
    }

    /// The figures as JSON: count, rate, p50 and p99 in ms.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.puts,
            "per_s": self.rate(),
            "p50_ms": self.pct(0.50),
            "p99_ms": self.pct(0.99),
        })
    }
}

/// `clients` tasks each running `per_client` operations of `op(client, i)`.
pub async fn drive<F, Fut>(clients: usize, per_client: usize, op: F) -> Figures
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let op = Arc::clone(&op);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                op(c, i).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    Figures {
        puts: clients * per_client,
        elapsed: start.elapsed(),
        latencies,
    }
}

pub fn micros<T>(n: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(f(i));
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// One `sealctl put` of `value(i)` to `uri` (new secrets: version 1).
pub async fn sealed_put(conn: &Connection, pins_path: &Path, uri: String, i: usize) {
    let mut pins = KnownReactors::load(pins_path).unwrap();
    let trust = Trust::load(&Trust::path_in(pins_path.parent().unwrap()), None).unwrap();
    let mut trusting = Trusting {
        pins: &mut pins,
        trust: &trust,
        confirm: &|_, _, _| false,
    };
    let target = UploadTarget {
        uri,
        purpose: v1::Purpose::Put,
        adopt: false,
        reactor_key: None,
    };
    let progress = Progress::start("");
    match upload(conn, &mut trusting, &target, &value(i), &progress).await {
        Ok(Outcome::Uploaded(u)) => assert_eq!(u.version, 1),
        other => panic!("put failed: {other:?}"),
    }
}

/// Writes `figures` to the file `$SEALPLANE_BENCH_JSON` names, if set
/// (what `scripts/bench` collects into one run).
pub fn write_json(figures: serde_json::Value) {
    if let Ok(path) = std::env::var("SEALPLANE_BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
        eprintln!("wrote {path}");
    }
}

/// One row of a side-by-side table; the same as JSON.
pub fn row(clients: usize, put: &Figures, direct: &Figures) -> serde_json::Value {
    println!(
        "| {clients} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
        put.puts,
        put.rate(),
        put.pct(0.50),
        put.pct(0.99),
        direct.rate(),
        direct.pct(0.50),
        direct.pct(0.99),
        put.rate() / direct.rate()
    );
    serde_json::json!({
        "clients": clients,
        "sealplane": put.json(),
        "direct": direct.json(),
        "ratio": put.rate() / direct.rate(),
    })
}
