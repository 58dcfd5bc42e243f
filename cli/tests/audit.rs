//! `sealctl audit log` end to end: the real `sealctl` against `sealplane
//! dev` (control plane and its in-process reactor serving `local`). A
//! scripted history gives exactly the audit lines expected; `--follow`
//! delivers an event appended after it started; a non-auditor is refused
//! and the refusal is an event; no output holds a value put.
//!
//! `sealplane` must be built first (`cargo build --workspace --bins`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use sealplane_test_kit::marker;
use sealplane_test_kit::scan::scan_dir;

mod common;

use common::Dev;

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `details` with each request id, hash and expiry replaced by a name, so
/// lines can be compared exactly.
fn normalised(entries: &[serde_json::Value], hashes: &[String]) -> Vec<String> {
    let mut requests: Vec<String> = vec![];
    entries
        .iter()
        .map(|e| {
            let mut details = e["details"].as_str().unwrap().to_owned();
            if let Some(id) = e["request_id"].as_str() {
                if !requests.iter().any(|r| r == id) {
                    requests.push(id.to_owned());
                }
                let n = requests.iter().position(|r| r == id).unwrap() + 1;
                details = details.replace(id, &format!("R{n}"));
            }
            for (i, hash) in hashes.iter().enumerate() {
                details = details.replace(hash, &format!("HASH{}", i + 1));
            }
            if let Some(at) = details.find("valid until ") {
                let end = details[at..].find(')').map_or(details.len(), |e| at + e);
                details.replace_range(at + "valid until ".len()..end, "T");
            }
            format!(
                "{} | {} | {} | {}",
                e["event"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                details
            )
        })
        .collect()
}

#[test]
fn an_auditor_reads_a_scripted_history_exactly_and_follows_it_live() {
    let dev = Dev::start();
    let alice = dev.user("alice", "user");
    let bob = dev.user("bob", "user");
    let carol = dev.user("carol", "auditor");
    let before = json_lines(&dev.sealctl(&carol, &["audit", "log", "-o", "json"]).ok());
    let start = before.last().unwrap()["position"].as_u64().unwrap() + 1;

    // The history: two puts, a grant, a refused put, a delete, a refused read.
    let values = [marker("first"), marker("bobs"), marker("later")];
    let uri = "local://alice/db";
    let put = |token: &str, value: &str| {
        dev.sealctl(
            token,
            &[
                "put",
                "secret",
                uri,
                &format!("password={value}"),
                "-o",
                "json",
            ],
        )
    };
    let first = put(&alice, &values[0]).json();
    dev.sealctl(
        &alice,
        &["grant", "secret", uri, "--list", "readers", "bob"],
    )
    .ok();
    put(&bob, &values[1]).fails(2, "you are not in the writers list");
    let second = put(&alice, &values[2]).json();
    dev.sealctl(&alice, &["delete", "secret", uri]).ok();
    dev.sealctl(&bob, &["audit", "log"])
        .fails(2, "needs admin or auditor");

    let since = start.to_string();
    let read = dev.sealctl(&carol, &["audit", "log", "--since", &since, "-o", "json"]);
    let entries = json_lines(&read.ok());
    let hashes = [
        first["hash"].as_str().unwrap().to_owned(),
        second["hash"].as_str().unwrap().to_owned(),
    ];
    let lines = normalised(&entries, &hashes);
    let expected = [
        "SecretCreated | alice | local://alice/db | alice created secret local://alice/db",
        "SecretUploadKeyRequested | alice | local://alice/db | alice asked for a one-time key to put a version of local://alice/db (request R1, valid until T)",
        "SecretUploadKeyProvided | dev-reactor | local://alice/db | dev-reactor provided a signed one-time key for local://alice/db (request R1)",
        "SecretUploadRequested | alice | local://alice/db | alice sent a sealed value of 240 bytes for local://alice/db (request R1)",
        "SecretUploaded | dev-reactor | local://alice/db | dev-reactor stored version 1 of local://alice/db upstream (hash HASH1, request R1)",
        "SecretVersionAdded | dev-reactor | local://alice/db | alice put version 1 of local://alice/db (hash HASH1)",
        "AccessGranted | alice | local://alice/db | alice added bob to the readers of local://alice/db",
        "AccessDenied | bob | local://alice/db | bob was refused RequestUploadKey on local://alice/db: you are not in the writers list of `local://alice/db`: ask someone in its canChangeWriters list, or an admin, to add you",
        "SecretUploadKeyRequested | alice | local://alice/db | alice asked for a one-time key to put a version of local://alice/db (request R2, valid until T)",
        "SecretUploadKeyProvided | dev-reactor | local://alice/db | dev-reactor provided a signed one-time key for local://alice/db (request R2)",
        "SecretUploadRequested | alice | local://alice/db | alice sent a sealed value of 240 bytes for local://alice/db (request R2)",
        "SecretUploaded | dev-reactor | local://alice/db | dev-reactor stored version 2 of local://alice/db upstream (hash HASH2, request R2)",
        "SecretVersionAdded | dev-reactor | local://alice/db | alice put version 2 of local://alice/db (hash HASH2)",
        "SecretDeletionRequested | alice | local://alice/db | alice asked to delete local://alice/db",
        "SecretDeleted | dev-reactor | local://alice/db | dev-reactor deleted local://alice/db upstream",
        "AccessDenied | bob | audit log | bob was refused AuditLog on audit log: `bob` has role user; auditlog needs admin or auditor",
        &format!(
            "AuditLogRead | carol | audit log | carol read the audit log (since position {start})"
        ),
    ];
    assert_eq!(lines, expected, "{lines:#?}");
    // Every entry of the history names the secret; the store filter and
    // the actor filter (what bob did) are the server's.
    assert!(
        entries[..15]
            .iter()
            .all(|e| e["secret"] == uri && e["store"] == "local")
    );
    let by_bob = json_lines(
        &dev.sealctl(
            &carol,
            &[
                "audit", "log", "--since", &since, "--actor", "bob", "-o", "json",
            ],
        )
        .ok(),
    );
    let events: Vec<&str> = by_bob
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["AccessDenied", "AccessDenied"]);

    // The refusal of bob's read is an event; table and csv carry the same.
    let table = dev
        .sealctl(
            &carol,
            &["audit", "log", "--since", &since, "--type", "AccessDenied"],
        )
        .ok();
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("POSITION  TIME"), "{table}");
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[2].ends_with("bob was refused AuditLog on audit log: `bob` has role user; auditlog needs admin or auditor"), "{table}");
    let csv = dev
        .sealctl(
            &carol,
            &[
                "audit", "log", "--since", &since, "-o", "csv", "--secret", uri,
            ],
        )
        .ok();
    assert!(
        csv.starts_with(
            "position,time,actor,event,target,secret,store,principal,request_id,details\n"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 16, "{csv}");

    // Bad flags get a sentence.
    dev.sealctl(&carol, &["audit", "log", "--since", "yesterday"])
        .fails(2, "neither a log position (a number) nor an RFC 3339 time");
    dev.sealctl(&carol, &["audit", "log", "--type", "SecretPut"])
        .fails(2, "there is no event type `SecretPut`");
    dev.sealctl(&carol, &["audit", "log", "-o", "yaml"])
        .fails(2, "`audit log` streams");
    dev.sealctl(&carol, &["get", "stores", "-o", "csv"])
        .fails(2, "-o csv is only for `sealctl audit log`");
    dev.sealctl(&carol, &["audit", "log", "--follow", "--until", "5"])
        .failed_with(2);

    // --follow delivers an event appended after it started.
    let mut follow = dev
        .command(
            &carol,
            &["audit", "log", "--follow", "-o", "json", "--since", &since],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut followed = vec![];
    let mut wait_for = |wanted: &dyn Fn(&serde_json::Value) -> bool| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("audit log --follow stalled");
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
        followed.push(line);
        if wanted(&entry) {
            return;
        }
    };
    // Its own read record comes last in the catch-up...
    wait_for(&|e| {
        e["event"] == "AuditLogRead" && e["details"].as_str().unwrap().contains("following")
    });
    // ...then a user created now arrives live.
    dev.admin(&["create", "user", "dave", "--role", "user"])
        .ok();
    wait_for(&|e| e["event"] == "UserCreated" && e["principal"] == "dave");
    follow.kill().unwrap();
    follow.wait().unwrap();

    // No value put appears in any audit output.
    let outputs = tempfile::tempdir().unwrap();
    let written = [read.stdout.clone(), table, csv, followed.join("\n")];
    for (i, text) in written.iter().enumerate() {
        std::fs::write(outputs.path().join(format!("audit-{i}")), text).unwrap();
    }
    for value in &values {
        let found = scan_dir(outputs.path(), value.as_bytes());
        assert!(found.is_empty(), "a value in the audit output: {found:?}");
    }
}
