//! `sealctl audit replay` end to end: the real `sealctl` against `sealplane
//! dev`. A scripted history (users, a group, puts, a grant, a revoke, a
//! second version, a delete, membership changes) is observed with the
//! live commands at several moments, each with its log position; then a
//! replay at each position shows exactly what was seen then, `--at TIME`
//! too, and `--diff A B` names exactly the changes made between them. A
//! non-auditor is refused and the refusal is an event; no output holds a
//! value put.
//!
//! `sealplane` must be built first (`cargo build --workspace --bins`).

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use sealplane_test_kit::marker;
use sealplane_test_kit::scan::scan_dir;

const URI: &str = "local://alice/db";

mod common;

use common::Dev;

impl Dev {
    /// What the live commands show now, and the log position they
    /// reflect: the position of the audit read made right after them
    /// (reads change no state).
    fn seen(&self, auditor: &str) -> Seen {
        let stores = self.admin(&["get", "stores", "-o", "json"]).json()["stores"].clone();
        let list = self.admin(&["get", "secrets", "-o", "json"]).json()["secrets"].clone();
        let secrets: Vec<Value> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let uri = s["uri"].as_str().unwrap();
                self.admin(&["describe", "secret", uri, "-o", "json"])
                    .json()
            })
            .collect();
        let principals =
            self.admin(&["get", "principals", "-o", "json"]).json()["principals"].clone();
        let reads = self
            .sealctl(
                auditor,
                &["audit", "log", "--type", "AuditLogRead", "-o", "json"],
            )
            .ok();
        let last: Value = serde_json::from_str(reads.lines().last().unwrap()).unwrap();
        Seen {
            position: last["position"].as_u64().unwrap(),
            state: json!({ "stores": stores, "secrets": secrets, "principals": principals }),
        }
    }

    fn replay(&self, auditor: &str, args: &[&str]) -> Value {
        let mut all = vec!["audit", "replay"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        self.sealctl(auditor, &all).json()
    }
}

struct Seen {
    position: u64,
    state: Value,
}

/// The parts of a replay that the live commands show.
fn state(replay: &Value) -> Value {
    json!({
        "stores": replay["stores"],
        "secrets": replay["secrets"],
        "principals": replay["principals"],
    })
}

/// The changes of a diff as `change subject field before after`, hashes
/// by name.
fn changes(diff: &Value, hashes: &[&str]) -> Vec<String> {
    diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |v: &Value| v.as_str().map_or("-".to_owned(), str::to_owned);
            let mut line = format!(
                "{} {} {} {} {} {}",
                text(&c["section"]),
                text(&c["change"]),
                text(&c["subject"]),
                text(&c["field"]),
                text(&c["before"]),
                text(&c["after"]),
            );
            if let Some(v) = c["version"].as_u64() {
                line += &format!(" v{v}");
            }
            if let Some(h) = c["hash"].as_str() {
                let n = hashes.iter().position(|k| *k == h).map_or(0, |i| i + 1);
                line += &format!(" HASH{n}");
            }
            line
        })
        .collect()
}

#[test]
fn a_replay_at_each_recorded_moment_shows_what_was_seen_then_and_diffs_name_the_changes() {
    let dev = Dev::start();
    let alice = dev.user("alice", "user");
    let bob = dev.user("bob", "user");
    let carol = dev.user("carol", "auditor");
    dev.admin(&["create", "group", "team"]).ok();
    dev.admin(&["add", "member", "team", "alice"]).ok();
    let values = [marker("first"), marker("second")];
    let put = |value: &str| {
        dev.sealctl(
            &alice,
            &[
                "put",
                "secret",
                URI,
                &format!("password={value}"),
                "-o",
                "json",
            ],
        )
        .json()["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Moment 0: principals only.
    let seen0 = dev.seen(&carol);
    // Moment 1: a version, and bob may read it.
    let hash1 = put(&values[0]);
    dev.sealctl(
        &alice,
        &["grant", "secret", URI, "--list", "readers", "bob"],
    )
    .ok();
    let seen1 = dev.seen(&carol);
    std::thread::sleep(Duration::from_millis(300));
    let between_1_and_2 = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(300));
    // Moment 2: a second version, bob revoked, bob joins team.
    let hash2 = put(&values[1]);
    dev.sealctl(
        &alice,
        &["revoke", "secret", URI, "--list", "readers", "bob"],
    )
    .ok();
    dev.admin(&["add", "member", "team", "bob"]).ok();
    let seen2 = dev.seen(&carol);
    // Moment 3: deleted, alice leaves team.
    dev.sealctl(&alice, &["delete", "secret", URI]).ok();
    dev.admin(&["remove", "member", "team", "alice"]).ok();
    let seen3 = dev.seen(&carol);
    assert_eq!(seen3.state["secrets"][0]["deletion"], "deleted");

    // A replay at each moment's position shows what was seen then.
    let mut outputs = vec![];
    for seen in [&seen0, &seen1, &seen2, &seen3] {
        let at = seen.position.to_string();
        let replay = dev.replay(&carol, &["--at", &at]);
        assert_eq!(replay["position"], seen.position);
        assert_eq!(state(&replay), seen.state, "at position {at}");
        outputs.push(replay.to_string());
    }
    // A time: the last event at or before it, moment 1's.
    let replay = dev.replay(&carol, &["--at", &between_1_and_2]);
    assert_eq!(replay["position"], seen1.position);
    assert_eq!(state(&replay), seen1.state);

    // Diffs name exactly the changes made between two moments.
    let hashes = [hash1.as_str(), hash2.as_str()];
    let (p1, p2, p3) = (
        seen1.position.to_string(),
        seen2.position.to_string(),
        seen3.position.to_string(),
    );
    let diff = dev.replay(&carol, &["--diff", &p1, &p2]);
    assert_eq!(diff["from"]["position"], seen1.position);
    assert_eq!(diff["to"]["position"], seen2.position);
    assert_eq!(
        changes(&diff, &hashes),
        [
            "secrets version_added local://alice/db - - - v2 HASH2",
            "secrets access_removed local://alice/db readers bob -",
            "principals member_added team members - bob",
        ]
    );
    let diff = dev.replay(&carol, &["--diff", &p2, &p3]);
    assert_eq!(
        changes(&diff, &hashes),
        [
            "secrets deleted local://alice/db deletion none deleted",
            "principals member_removed team members alice -",
        ]
    );
    let p0 = seen0.position.to_string();
    let diff = dev.replay(&carol, &["--diff", &p0, &p1]);
    let first = changes(&diff, &hashes);
    assert_eq!(first[0], "secrets added local://alice/db - - -");
    assert_eq!(
        first[1],
        "secrets version_added local://alice/db - - - v1 HASH1"
    );
    assert!(first.contains(&"secrets access_added local://alice/db readers - bob".to_owned()));
    assert!(
        first.iter().all(|c| c.starts_with("secrets ")),
        "{first:#?}"
    );
    outputs.push(diff.to_string());

    // The table has its sections; the diff's table one line per change.
    let table = dev.sealctl(&carol, &["audit", "replay", "--at", &p3]).ok();
    assert!(
        table.starts_with(&format!("state at position {p3} (")),
        "{table}"
    );
    for section in ["\nSTORES\n", "\nSECRETS\n", "\nPRINCIPALS\n"] {
        assert!(table.contains(section), "{table}");
    }
    assert!(table.contains("local://alice/db"), "{table}");
    let diff_table = dev
        .sealctl(&carol, &["audit", "replay", "--diff", &p2, &p3])
        .ok();
    assert!(
        diff_table.contains("x local://alice/db: deleted (was none)"),
        "{diff_table}"
    );
    assert!(diff_table.contains("- team: member alice"), "{diff_table}");
    let yaml = dev
        .sealctl(&carol, &["audit", "replay", "--at", &p1, "-o", "yaml"])
        .ok();
    assert!(yaml.contains(&format!("position: {p1}")), "{yaml}");
    outputs.extend([table, diff_table, yaml]);

    // Points outside the log get a sentence.
    dev.sealctl(&carol, &["audit", "replay", "--at", "0"])
        .fails(2, "log positions start at 1");
    dev.sealctl(&carol, &["audit", "replay", "--at", "99999999"])
        .fails(2, "beyond the log's head");
    dev.sealctl(&carol, &["audit", "replay", "--at", "2000-01-01T00:00:00Z"])
        .fails(2, "before the log's first event");
    dev.sealctl(&carol, &["audit", "replay", "--at", "yesterday"])
        .fails(2, "neither a log position");

    // A non-auditor is refused, and the refusal is an event; each replay
    // is recorded too.
    dev.sealctl(&bob, &["audit", "replay", "--at", "1"])
        .fails(2, "needs admin or auditor");
    let denied = dev
        .sealctl(
            &carol,
            &["audit", "log", "--type", "AccessDenied", "-o", "json"],
        )
        .ok();
    assert!(
        denied.contains("bob was refused AuditReplay on audit log"),
        "{denied}"
    );
    let replays = dev
        .sealctl(
            &carol,
            &["audit", "log", "--type", "AuditReplayed", "-o", "json"],
        )
        .ok();
    assert!(
        replays.contains(&format!("carol replayed the state (at position {p1})")),
        "{replays}"
    );
    assert!(
        replays.contains(&format!(
            "carol replayed the state (changes from position {p2} to position {p3})"
        )),
        "{replays}"
    );

    // No value put appears in any replay output.
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in outputs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("replay-{i}")), text).unwrap();
    }
    for value in &values {
        let found = scan_dir(dir.path(), value.as_bytes());
        assert!(found.is_empty(), "a value in the replay output: {found:?}");
    }
}
