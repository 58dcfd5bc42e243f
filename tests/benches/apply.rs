//! `sealctl apply -f DIR` (SPEC §11, ADR 0025): N sealed files applied by
//! one real `sealctl` process against the real release binaries (file
//! store upstream), then the same folder again (every file unchanged);
//! reference in the same run: N puts through sealctl's own upload code
//! from 16 clients (apply submits 16 files at a time).
//!
//! Run: `cargo build --release --workspace --bins && cargo bench -p
//! sealplane-tests --bench apply` (`APPLY_BENCH_FILES=N`, default 1000).

use std::time::Instant;

use sealplane_cli::client::{Connection, ConnectionSettings};
use sealplane_cli::known_reactors::KnownReactors;
use sealplane_cli::sealed_files::{FileFormat, KeyFile, check_key_file, seal};
use sealplane_cli::trust::Trust;
use sealplane_test_kit::Cluster;
use uuid::Uuid;

mod common;

use common::{drive, sealed_put, value};

#[tokio::main]
async fn main() {
    let files: usize = std::env::var("APPLY_BENCH_FILES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut cluster = Cluster::start();
    cluster.add_file_store("local");
    let user = cluster.add_user("bench", "user", &[]);
    cluster
        .sealctl(&user, &["put", "secret", "local://bench/warm", "k=v"])
        .ok();
    let key = loop {
        let run = cluster.sealctl(&user, &["get", "sealing-key", "local"]);
        if run.code == 0 {
            break run.stdout;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let key: KeyFile = serde_json::from_str(&key).unwrap();
    let pins = KnownReactors::load(&KnownReactors::path_in(&user.config_dir)).unwrap();
    let trust = Trust::load(&Trust::path_in(&user.config_dir), None).unwrap();
    let public = check_key_file(&key, &trust, &pins, chrono::Utc::now()).unwrap();

    let dir = cluster.dir().join("apply-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let sealing = Instant::now();
    for i in 0..files {
        let sealed = seal(
            &format!("local://bench/files/s{i}"),
            &key,
            &public,
            &value(i),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("s{i:05}.yaml")),
            FileFormat::Yaml.render(&sealed),
        )
        .unwrap();
    }
    let sealing = sealing.elapsed();

    let args = ["apply", "-f", dir.to_str().unwrap(), "-o", "json"];
    let first = Instant::now();
    let run = cluster.sealctl(&user, &args);
    let first = first.elapsed();
    run.ok();
    assert_eq!(
        run.stdout.matches("\"applied\"").count(),
        files,
        "every file applied"
    );
    let again = Instant::now();
    let run = cluster.sealctl(&user, &args);
    let again = again.elapsed();
    run.ok();
    assert_eq!(
        run.stdout.matches("\"unchanged\"").count(),
        files,
        "every file unchanged"
    );

    let conn = Connection::open(&ConnectionSettings {
        addr: cluster.addr.clone(),
        token: Some(user.token.clone()),
        ca_file: None,
    })
    .await
    .unwrap();
    let pins_path = KnownReactors::path_in(&user.config_dir);
    let round = Uuid::new_v4().simple().to_string();
    let puts = drive(16, files.div_ceil(16), move |c, i| {
        let (conn, pins_path, round) = (conn.clone(), pins_path.clone(), round.clone());
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

    let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("| what | files | seconds | files/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `sealctl seal` (in process, to files) | {files} | {:.2} | {:.0} |",
        sealing.as_secs_f64(),
        rate(files, sealing)
    );
    println!(
        "| `sealctl apply -f DIR`, all new | {files} | {:.2} | {:.0} |",
        first.as_secs_f64(),
        rate(files, first)
    );
    println!(
        "| `sealctl apply -f DIR` again, all unchanged | {files} | {:.2} | {:.0} |",
        again.as_secs_f64(),
        rate(files, again)
    );
    println!(
        "| reference: puts from 16 clients | {} | {:.2} | {:.0} |",
        puts.puts,
        puts.elapsed.as_secs_f64(),
        puts.rate()
    );
    println!(
        "apply (new) / put rate: {:.2}",
        rate(files, first) / puts.rate()
    );
    cluster.stop();
}
