//! `put` end to end (SPEC §9): the real `sealplane` and `sealplane-reactor`
//! release binaries on loopback, embedded event store, file store upstream,
//! driven by sealctl's own upload code (`sealplane_cli::sealed_upload`, what
//! `sealctl put` runs, minus process start) from 1, 16 and 64 concurrent
//! clients. Reference, in the same run: a direct write of the same values
//! to a file store with the same concurrency. Also the time one put spends
//! in sealing, opening and hashing, and one `sealctl put` process.
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p
//! sealplane-tests --bench put` (`PUT_BENCH_PUTS=N` scales the run).

use std::time::Instant;

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
use sealplane_test_kit::{Cluster, marker};
use uuid::Uuid;

const PUT: Purpose = Purpose::Put { adopt: false };

mod common;

use common::{drive, micros, row, sealed_put, value};

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("PUT_BENCH_PUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1280);
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
    for clients in [1usize, 16, 64] {
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
        row(clients, &put, &direct);
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
    println!();
    println!(
        "`sealctl put` as a process (start, connect, seal, wait, exit), mean of {runs}: {:.2} ms",
        start.elapsed().as_secs_f64() * 1e3 / runs as f64
    );
    cluster.stop();
}
