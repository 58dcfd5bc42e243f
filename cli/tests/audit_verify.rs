//! `sealctl audit checkpoint` and `sealctl audit verify` end to end: the
//! real `sealctl` against `sealplane serve`. A history, a checkpoint file,
//! more events; then, with the server stopped, each tampering (from a
//! fresh copy of the database) makes `verify --checkpoint` fail and name
//! the place. A non-auditor is refused and the refusal is an event; the
//! running server fails closed when its log is edited under it.
//!
//! `sealplane` must be built first (`cargo build --workspace --bins`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealplane_event_store::{EmbeddedStore, EventStore, Position, RecordedEvent};
use sealplane_test_kit::{ControlPlane, Run, Settings};

const SEALCTL: &str = env!("CARGO_BIN_EXE_sealctl");

fn sealctl(cp: &ControlPlane, token: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(SEALCTL);
    cmd.args(args)
        .env("SEALPLANE_ADDR", &cp.addr)
        .env("SEALPLANE_CONFIG_DIR", cp.dir().join("sealctl"))
        .env("SEALPLANE_TOKEN", token)
        .env_remove("SEALPLANE_CA_FILE")
        .env_remove("SEALPLANE_TRUST")
        .stdin(Stdio::null());
    Run::from_output(cmd.output().unwrap())
}

fn user(cp: &ControlPlane, slug: &str, role: &str) -> String {
    let admin = cp.admin_token();
    sealctl(cp, admin, &["create", "user", slug, "--role", role]).ok();
    sealctl(cp, admin, &["issue", "token", slug, "-o", "json"]).json()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn read_all(db: &Path) -> Vec<RecordedEvent> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = EmbeddedStore::open(db).unwrap();
        let all = store.read_all(Position::START, 1_000_000).await.unwrap();
        store.close().await;
        all
    })
}

/// Renumbers positions and versions and recomputes every hash, as a
/// forger with write access and this source code would.
fn forge(events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
    sealplane_event_store::chain::relink(events)
}

/// Replaces the stored log with `events`, row for row.
fn rewrite(db: &Path, events: &[RecordedEvent]) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("DELETE FROM events", []).unwrap();
    for e in events {
        tx.execute(
            "INSERT INTO events (position, stream_id, stream_version, event_type, \
             schema_version, data, metadata, prev_hash, hash, log_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            rusqlite::params![
                e.position.0 as i64,
                e.stream_id.as_str(),
                e.version.0 as i64,
                e.event_type.as_str(),
                e.schema_version,
                e.data.as_str(),
                e.metadata.as_str(),
                &e.prev_hash.0[..],
                &e.hash.0[..],
                &e.log_hash.0[..],
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// The log without its recorded checkpoints (which a forger must drop
/// for the server to start on a rewritten log), every hash recomputed.
fn forged_without_checkpoints(events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
    forge(
        events
            .into_iter()
            .filter(|e| e.stream_id.as_str() != "log-checkpoints")
            .collect(),
    )
}

fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let source = PathBuf::from(format!("{}{suffix}", from.display()));
        let target = PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(&target);
        if source.exists() {
            std::fs::copy(&source, &target).unwrap();
        }
    }
}

#[test]
fn verify_holds_then_names_each_tampering_against_a_held_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut cp = ControlPlane::start_in(dir.path(), Settings::default());
    // Given a history and an auditor
    let carol = user(&cp, "carol", "auditor");
    user(&cp, "alice", "user");
    sealctl(&cp, cp.admin_token(), &["create", "group", "payments"]).ok();
    sealctl(
        &cp,
        cp.admin_token(),
        &["add", "member", "payments", "alice"],
    )
    .ok();
    // When the auditor exports a checkpoint, its key is pinned
    let checkpoint = sealctl(&cp, &carol, &["audit", "checkpoint", "-o", "json"]);
    let text = checkpoint.ok();
    assert!(
        checkpoint.stderr.contains("pinned log key"),
        "{}",
        checkpoint.stderr
    );
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["format"], "sealplane-log-checkpoint-v1");
    let held_at = file["position"].as_u64().unwrap();
    let cp_file = dir.path().join("cp.json");
    std::fs::write(&cp_file, &text).unwrap();
    // And more events follow
    user(&cp, "bob", "user");
    sealctl(&cp, cp.admin_token(), &["add", "member", "payments", "bob"]).ok();
    // Then the log verifies against it, with a summary
    let cp_arg = cp_file.to_str().unwrap();
    let ok = sealctl(&cp, &carol, &["audit", "verify", "--checkpoint", cp_arg]).ok();
    assert!(ok.contains("1 held checkpoint(s)"), "{ok}");
    assert!(ok.contains("verified"), "{ok}");
    // And a non-auditor is refused, and the refusal is an event
    let alice = user(&cp, "alice2", "user");
    sealctl(&cp, &alice, &["audit", "verify"]).fails(2, "auditor");
    let denied = sealctl(
        &cp,
        &carol,
        &["audit", "log", "--type", "AccessDenied", "-o", "json"],
    )
    .ok();
    assert!(denied.contains("AuditCheckpoint"), "{denied}");
    // And the checkpoint's own reading was recorded
    let raw = sealctl(&cp, &carol, &["audit", "log", "--type", "AuditRawRead"]).ok();
    assert!(raw.contains("carol read the signed checkpoint"), "{raw}");
    cp.stop();

    let db = cp.events_db();
    let original = dir.path().join("original.db");
    copy_db(&db, &original);
    let events = read_all(&original);
    let (edited_at, stream) = events
        .iter()
        .find(|e| e.position.0 < held_at && e.stream_id.as_str() == "principal-alice")
        .map(|e| (e.position, e.stream_id.clone()))
        .unwrap();

    // Each tampering, from a fresh copy: (what, forged log, expected text)
    let mut edited = events.clone();
    let e = edited.iter_mut().find(|e| e.position == edited_at).unwrap();
    let data = e.data.as_str().replacen("alice", "alicf", 1);
    e.data = sealplane_event_store::JsonObject::parse("data", data).unwrap();
    let mut deleted = events.clone();
    deleted.retain(|e| e.position != edited_at);
    let rewritten_stream: Vec<_> = events
        .iter()
        .cloned()
        .map(|mut e| {
            if e.stream_id == stream {
                let data = e.data.as_str().replace("\"user\"", "\"admin\"");
                e.data = sealplane_event_store::JsonObject::parse("data", data).unwrap();
            }
            e
        })
        .collect();
    let truncated: Vec<_> = events
        .iter()
        .filter(|e| e.position.0 < held_at)
        .cloned()
        .collect();
    let cases = [
        ("one byte of an old event edited", edited, "held checkpoint"),
        ("one event deleted", deleted, "held checkpoint"),
        (
            "a whole stream rewritten",
            rewritten_stream,
            "held checkpoint",
        ),
        (
            "the tail cut before the checkpoint",
            truncated,
            "checkpoint",
        ),
    ];
    for (what, log, expected) in cases {
        copy_db(&original, &db);
        rewrite(&db, &forged_without_checkpoints(log));
        cp.start();
        let out = sealctl(&cp, &carol, &["audit", "verify", "--checkpoint", cp_arg]);
        assert_eq!(out.code, 1, "{what}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("verification FAILED"),
            "{what}: {}",
            out.stdout
        );
        assert!(out.stdout.contains(expected), "{what}: {}", out.stdout);
        assert!(out.stdout.contains("position"), "{what}: {}", out.stdout);
        cp.stop();
    }

    // A careless edit (no hash recomputed) stops the server at start-up,
    // naming the place.
    copy_db(&original, &db);
    let mut careless = events.clone();
    let e = careless
        .iter_mut()
        .find(|e| e.position == edited_at)
        .unwrap();
    e.data = sealplane_event_store::JsonObject::parse(
        "data",
        e.data.as_str().replacen("alice", "alicf", 1),
    )
    .unwrap();
    rewrite(&db, &careless);
    let out = cp
        .command()
        .args(["serve", "--config"])
        .arg(cp.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("position {}", edited_at.0)) && stderr.contains("edited"),
        "{stderr}"
    );
}

#[test]
fn the_running_server_fails_closed_when_its_log_is_edited_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        sections: "[audit]\ncheckpoint_every_seconds = 1\n".into(),
        ..Settings::default()
    };
    let cp = ControlPlane::start_in(dir.path(), settings);
    let carol = user(&cp, "carol", "auditor");
    sealctl(&cp, &carol, &["audit", "checkpoint"]).ok();
    // Given events after the latest checkpoint
    user(&cp, "alice", "user");
    let head = read_head(&cp);
    // When one of them is edited in the file while the server runs
    let conn = rusqlite::Connection::open(cp.events_db()).unwrap();
    let changed = conn
        .execute(
            "UPDATE events SET data = replace(data, 'alice', 'alicf') WHERE position = ?1",
            [head as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    // Then within a checkpoint cycle the server refuses every call
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = sealctl(&cp, cp.admin_token(), &["whoami"]);
        if out.code != 0 {
            assert!(out.stderr.contains("changed under it"), "{}", out.stderr);
            break;
        }
        assert!(Instant::now() < deadline, "the server kept serving");
        std::thread::sleep(Duration::from_millis(200));
    }
    // And its log names the place
    let log = std::fs::read_to_string(cp.log_path()).unwrap();
    assert!(log.contains("changed under the control plane"), "{log}");
    assert!(log.contains(&format!("position {head}")), "{log}");
}

/// The position of the latest event, as `audit log` shows it.
fn read_head(cp: &ControlPlane) -> u64 {
    let out = sealctl(
        cp,
        cp.admin_token(),
        &["audit", "log", "--type", "UserCreated", "-o", "json"],
    )
    .ok();
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    last["position"].as_u64().unwrap()
}
