//! Control plane resident memory with 100,000 secrets (SPEC §9), beside the
//! same binary on an empty log, in one run.
//!
//! `cargo bench -p sealplane --bench memory` (release). It
//! writes a log as 100,000 real puts leave it (each: key requested, secret
//! created, key provided, sealed upload of a ~1 KiB value, stored, version
//! recorded: six events through the real command handler and aggregates),
//! then starts the real `sealplane serve` on it and reads the process's
//! resident memory (`VmRSS`, and the peak `VmHWM`) once it serves, and how
//! long the start took (the whole hash chain is verified and the read model
//! rebuilt from the log). `-- --secrets N` changes the count;
//! `SEALPLANE_BIN_DIR=DIR` measures another build's `sealplane`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{SubsecRound as _, Utc};
use sealplane_control_plane::command::{CommandEnvelope, CommandHandler};
use sealplane_control_plane::domain::names::{SecretUri, Slug, StoreName};
use sealplane_control_plane::domain::secret::{Secret, SecretCommand};
use sealplane_control_plane::domain::upload::{Purpose, UploadCommand, UploadRequest};
use sealplane_control_plane::domain::{Actor, Context, Role};
use sealplane_control_plane::streams;
use sealplane_event_store::{EmbeddedStore, EventStore};
use sealplane_test_kit::{ControlPlane, Settings};
use uuid::Uuid;

fn actor(slug: &str, role: Role, stores: &[&str]) -> Actor {
    Actor {
        slug: Slug::parse(slug).unwrap(),
        role,
        groups: vec![],
        stores: stores
            .iter()
            .map(|s| StoreName::parse(*s).unwrap())
            .collect(),
    }
}

fn keyed_hash(seed: u64) -> String {
    format!("hmac-sha256:bench:{:064x}", seed)
}

/// One put, as the API and the reactor drive it, through the handler.
async fn put(handler: &CommandHandler, alice: &Actor, reactor: &Actor, i: u64) {
    let uri = SecretUri::parse(&format!("local://alice/app-{}/secret-{i}", i % 100)).unwrap();
    let id = Uuid::new_v4();
    let now = Utc::now();
    let as_alice = Context {
        actor: alice.clone(),
        now,
    };
    let as_reactor = Context {
        actor: reactor.clone(),
        now,
    };
    let run = |name| CommandEnvelope::new(name);
    let upload = streams::upload(id);
    let secret = streams::secret(&uri);
    handler
        .execute::<Secret>(
            &secret,
            &SecretCommand::PrepareWrite { uri: uri.clone() },
            &as_alice,
            &run("PrepareWrite"),
        )
        .await
        .unwrap();
    let ttl = chrono::Duration::minutes(5);
    handler
        .execute::<UploadRequest>(
            &upload,
            &UploadCommand::RequestKey {
                request_id: id,
                uri: uri.clone(),
                purpose: Purpose::Put { adopt: false },
                ttl,
                store_accepts_uploads: true,
                may_write: true,
                may_read: false,
                may_verify_now: true,
            },
            &as_alice,
            &run("RequestUploadKey"),
        )
        .await
        .unwrap();
    handler
        .execute::<UploadRequest>(
            &upload,
            &UploadCommand::ProvideKey {
                public_key: STANDARD.encode([1u8; 32]),
                signature: STANDARD.encode([2u8; 64]),
                expires_at: (now + ttl).trunc_subsecs(0),
            },
            &as_reactor,
            &run("ProvideKey"),
        )
        .await
        .unwrap();
    handler
        .execute::<UploadRequest>(
            &upload,
            &UploadCommand::Upload {
                ciphertext: STANDARD.encode(vec![7u8; 1200]),
                max_ciphertext_bytes: 1 << 20,
            },
            &as_alice,
            &run("UploadSecret"),
        )
        .await
        .unwrap();
    let key_hashes: std::collections::BTreeMap<String, String> = ["user", "password", "cert"]
        .iter()
        .enumerate()
        .map(|(k, name)| (name.to_string(), keyed_hash(i * 4 + k as u64)))
        .collect();
    handler
        .execute::<UploadRequest>(
            &upload,
            &UploadCommand::ReportUploaded {
                version: 1,
                hash: keyed_hash(i * 4 + 3),
                key_hashes: key_hashes.clone(),
                upstream_ref: format!("files:alice/app-{}/secret-{i}/v1", i % 100),
            },
            &as_reactor,
            &run("ReportUploaded"),
        )
        .await
        .unwrap();
    handler
        .execute::<Secret>(
            &secret,
            &SecretCommand::RecordVersion {
                request_id: id,
                version: 1,
                hash: keyed_hash(i * 4 + 3),
                key_hashes,
                by: alice.slug.clone(),
                at: now,
            },
            &as_reactor,
            &run("RecordVersion"),
        )
        .await
        .unwrap();
}

/// Starts `sealplane serve` on `dir`'s log (no `init`: the log is served
/// as written); returns (start time, VmRSS kB, VmHWM kB).
fn serve_and_measure(dir: &Path) -> (Duration, u64, u64) {
    let mut control_plane = ControlPlane::configure(Some(dir), Settings::default());
    let started = Instant::now();
    control_plane.start();
    let took = started.elapsed();
    // Let allocations settle (the projection task finishes catching up).
    std::thread::sleep(Duration::from_millis(500));
    let pid = control_plane.process().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let (rss, hwm) = (kb("VmRSS:"), kb("VmHWM:"));
    control_plane.stop();
    (took, rss, hwm)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secrets: u64 = args
        .iter()
        .position(|a| a == "--secrets")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);

    let empty = tempfile::tempdir().unwrap();
    EmbeddedStore::open(empty.path().join("events.db"))
        .unwrap()
        .close()
        .await;
    let (empty_start, empty_rss, empty_hwm) = serve_and_measure(empty.path());

    let full = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(EmbeddedStore::open(full.path().join("events.db")).unwrap());
    let handler = Arc::new(CommandHandler::new(store.clone()));
    let alice = actor("alice", Role::User, &[]);
    let reactor = actor("reactor-1", Role::Reactor, &["local"]);
    let writing = Instant::now();
    let clients = 32u64;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (handler, alice, reactor) = (handler.clone(), alice.clone(), reactor.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < secrets {
                put(&handler, &alice, &reactor, i).await;
                i += clients;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = store.head().await.unwrap().0;
    let wrote = writing.elapsed();
    drop(handler);
    store.close().await;
    let db_bytes: u64 = std::fs::read_dir(full.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let (full_start, full_rss, full_hwm) = serve_and_measure(full.path());

    println!(
        "log: {secrets} secrets, {events} events, {:.0} MiB on disk (written in {:.0} s)",
        db_bytes as f64 / 1048576.0,
        wrote.as_secs_f64()
    );
    println!();
    println!("| log | start (verify chain + rebuild) | VmRSS | VmHWM (peak) |");
    println!("|---|---:|---:|---:|");
    for (name, start, rss, hwm) in [
        ("empty", empty_start, empty_rss, empty_hwm),
        ("100k secrets", full_start, full_rss, full_hwm),
    ] {
        println!(
            "| {name} | {:.2} s | {:.1} MiB | {:.1} MiB |",
            start.as_secs_f64(),
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    println!();
    println!(
        "per secret (with its upload request): {:.0} bytes resident",
        (full_rss.saturating_sub(empty_rss) * 1024) as f64 / secrets as f64
    );
}
