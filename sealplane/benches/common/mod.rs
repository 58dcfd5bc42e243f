//! The log a bench writes: puts as real clients and the reactor leave
//! them, through the real command handler and aggregates.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{SubsecRound as _, Utc};
use sealplane_control_plane::command::{CommandEnvelope, CommandHandler};
use sealplane_control_plane::domain::key_hashes::KeyHashes;
use sealplane_control_plane::domain::names::{SecretUri, Slug, StoreName};
use sealplane_control_plane::domain::secret::{Secret, SecretCommand};
use sealplane_control_plane::domain::upload::{Purpose, UploadCommand, UploadRequest};
use sealplane_control_plane::domain::{Actor, Context, Role};
use sealplane_control_plane::streams;
use sealplane_event_store::EventStore;
use uuid::Uuid;

/// The value after `name` among a bench's `args` (`--rounds 3`), if given.
#[allow(dead_code, reason = "the audit bench takes no options")]
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Events one [`put`] appends.
#[allow(dead_code, reason = "the memory bench counts the log it wrote instead")]
pub const EVENTS_PER_PUT: u64 = 6;

pub fn actor(slug: &str, role: Role, stores: &[&str]) -> Actor {
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

/// One put, as the API and the reactor drive it, through the handler, at
/// `now` (its events' time).
pub async fn put(
    handler: &CommandHandler,
    alice: &Actor,
    reactor: &Actor,
    i: u64,
    now: chrono::DateTime<Utc>,
) {
    let uri = SecretUri::parse(&format!("local://alice/app-{}/secret-{i}", i % 100)).unwrap();
    let id = Uuid::new_v4();
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
    let key_hashes: KeyHashes = ["user", "password", "cert"]
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

/// The settings of a start as every start was before ADR 0026: the whole
/// hash chain verified, the read model folded from position 1, no snapshot.
#[allow(
    dead_code,
    reason = "not every bench starts the control plane this way"
)]
pub const FULL_START: &str =
    "[read_model]\nsnapshot_every_events = 0\n[audit]\nverify_on_start = \"full\"\n";

/// A process's resident memory (`VmRSS`), in kB.
#[allow(
    dead_code,
    reason = "the memory and audit benches read /proc themselves"
)]
pub fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Writes the puts numbered `puts` (new secrets each) into `store` from
/// 32 concurrent clients (alice, with `reactor-1` for the store `local`),
/// all now.
#[allow(dead_code, reason = "the memory bench spreads its puts")]
pub async fn write_puts(store: Arc<dyn EventStore>, puts: std::ops::Range<u64>) {
    write_puts_spread(store, puts, chrono::Duration::zero()).await
}

/// As [`write_puts`], the puts `apart` in time, the last one now: with a
/// second apart, as a steady put per second leaves them.
pub async fn write_puts_spread(
    store: Arc<dyn EventStore>,
    puts: std::ops::Range<u64>,
    apart: chrono::Duration,
) {
    let count = i32::try_from(puts.end - puts.start).unwrap();
    let start = Utc::now() - apart * count;
    let handler = Arc::new(CommandHandler::new(store));
    let alice = actor("alice", Role::User, &[]);
    let reactor = actor("reactor-1", Role::Reactor, &["local"]);
    let clients = 32u64;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (handler, alice, reactor) = (handler.clone(), alice.clone(), reactor.clone());
        let puts = puts.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = puts.start + c;
            while i < puts.end {
                let at = start + apart * i32::try_from(i - puts.start + 1).unwrap();
                put(&handler, &alice, &reactor, i, at).await;
                i += clients;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
