//! Backup and restore end to end (issue 16), with the real binaries: a
//! backup taken while puts stream in restores to a log that verifies and
//! holds every put acknowledged before the backup started; a restore onto
//! a log, or of a truncated or edited backup, is refused with a sentence
//! and leaves nothing behind; no value put is in the backup.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sealplane_event_store::{EmbeddedStore, EventStore, Position};
use sealplane_test_kit::{Cluster, bin, marker};

fn sealplane(args: &[&str]) -> std::process::Output {
    Command::new(bin("sealplane")).args(args).output().unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every `(uri, version)` of a `SecretVersionAdded` in the log at `db`.
async fn versions_in(db: &Path) -> BTreeSet<(String, u64)> {
    let store = EmbeddedStore::open(db).unwrap();
    let mut found = BTreeSet::new();
    let mut next = Position::START;
    loop {
        let page = store.read_all(next, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        next = last.position.next();
        for event in page
            .iter()
            .filter(|e| e.event_type.as_str() == "SecretVersionAdded")
        {
            let data: serde_json::Value = event.data.deserialize().unwrap();
            let body = data
                .as_object()
                .and_then(|o| {
                    if o.contains_key("uri") {
                        Some(o.clone())
                    } else {
                        o.values().find_map(|v| v.as_object().cloned())
                    }
                })
                .unwrap();
            found.insert((
                body["uri"].as_str().unwrap().to_owned(),
                body["version"].as_u64().unwrap(),
            ));
        }
    }
    store.close().await;
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_during_puts_restores_every_put_acknowledged_before_it_and_verifies() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let config = c.control_plane().config_path();
    let backup = c.dir().join("backup.db");
    let values = Mutex::new(Vec::new());
    // (uri, version, when acknowledged)
    let acked: Mutex<Vec<(String, u64, Instant)>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let mut started = None;
    let mut backup_out = None;
    std::thread::scope(|s| {
        for writer in 0..2 {
            let (c, alice, acked, values, stop) = (&c, &alice, &acked, &values, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let uri = format!("local://alice/w{writer}-{}", i % 5);
                    let value = marker(&format!("w{writer}-{i}"));
                    let put = c
                        .sealctl(
                            alice,
                            &["put", "secret", &uri, &format!("v={value}"), "-o", "json"],
                        )
                        .json();
                    let now = Instant::now();
                    values.lock().unwrap().push(value);
                    acked
                        .lock()
                        .unwrap()
                        .push((uri, put["version"].as_u64().unwrap(), now));
                }
            });
        }
        // Let some puts land, then back up while they go on.
        while acked.lock().unwrap().len() < 6 {
            std::thread::sleep(Duration::from_millis(20));
        }
        started = Some(Instant::now());
        backup_out = Some(sealplane(&[
            "backup",
            "--config",
            config.to_str().unwrap(),
            "--to",
            backup.to_str().unwrap(),
        ]));
        // A few more after it, which the backup may or may not hold.
        let after = acked.lock().unwrap().len() + 2;
        while acked.lock().unwrap().len() < after {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let out = backup_out.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("Backed up ") && said.contains("log hash"),
        "{said}"
    );
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let checkpoint = said
        .split("--checkpoint ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    // Restored, against the head the backup printed.
    let target = tempfile::tempdir().unwrap();
    let out = sealplane(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--to",
        target.path().to_str().unwrap(),
        "--checkpoint",
        &checkpoint,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("hash chain verified"), "{}", text(&out));
    let restored = versions_in(&target.path().join("events.db")).await;
    let started = started.unwrap();
    let before: Vec<_> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, at)| *at < started)
        .map(|(uri, version, _)| (uri.clone(), *version))
        .collect();
    assert!(before.len() >= 6);
    let missing: Vec<_> = before.iter().filter(|p| !restored.contains(p)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, not restored: {missing:?}"
    );

    // The backup holds no value put.
    let bytes = std::fs::read(&backup).unwrap();
    for value in values.lock().unwrap().iter() {
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "a value is in the backup"
        );
    }

    // Onto a log: refused, the log untouched.
    let db = c.control_plane().events_db();
    let out = sealplane(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--to",
        db.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already holds an event log"),
        "{}",
        text(&out)
    );
    let out = sealplane(&[
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--to",
        target.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a second restore onto the first");
    assert!(
        text(&out).contains("already holds an event log"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_truncated_or_edited_backup_is_refused_and_nothing_is_restored() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    for i in 0..3 {
        c.sealctl(
            &alice,
            &["put", "secret", &format!("local://alice/s{i}"), "k=v"],
        )
        .ok();
    }
    let config = c.control_plane().config_path();
    let backup = c.dir().join("backup.db");
    let out = sealplane(&[
        "backup",
        "--config",
        config.to_str().unwrap(),
        "--to",
        backup.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sealplane(&["restore", "--verify", "--from", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Nothing was restored"),
        "{}",
        text(&out)
    );

    let bytes = std::fs::read(&backup).unwrap();
    let truncated = c.dir().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    // Edited: one letter of the stored JSON naming alice changed, in every
    // copy of those bytes (a page may also hold stale copies of a row).
    let edited = c.dir().join("edited.db");
    let mut changed = bytes.clone();
    let mut edits = 0;
    while let Some(at) = changed.windows(7).position(|w| w == b"\"alice\"") {
        changed[at + 1] = b'A';
        edits += 1;
    }
    assert!(edits > 0, "an event naming alice");
    std::fs::write(&edited, &changed).unwrap();

    for (bad, what) in [(&truncated, "truncated"), (&edited, "edited")] {
        let target = tempfile::tempdir().unwrap();
        let out = sealplane(&[
            "restore",
            "--from",
            bad.to_str().unwrap(),
            "--to",
            target.path().to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains("failed verification")
                || said.contains("not a readable Sealplane event log"),
            "{what}: {said}"
        );
        let left: Vec<_> = std::fs::read_dir(target.path()).unwrap().collect();
        assert!(left.is_empty(), "{what}: left behind {left:?}");
    }
}
