//! Status (issue 16), with the real binaries: `sealctl get status` and
//! `sealplane status` show the version, event store, log head, read model,
//! readiness, the connected reactors and their stores, and the latest
//! signed checkpoint ("none" before the first); only admins and auditors
//! may ask.

use std::process::Command;

use sealplane_test_kit::{Cluster, bin};

#[test]
fn admins_and_auditors_see_the_control_plane_at_a_glance_and_users_are_refused() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let status = c.sealctl(&c.admin, &["get", "status", "-o", "json"]).json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["event_store"], "embedded");
    assert_eq!(status["readiness"], "ready");
    assert_eq!(status["latest_checkpoint"], "none");
    let head = status["log_head"].as_u64().unwrap();
    assert!(head > 0);
    assert!(status["read_model_position"].as_u64().unwrap() <= head);
    let reactors = status["reactors"].as_array().unwrap();
    assert_eq!(reactors.len(), 1, "{status:#}");
    assert_eq!(reactors[0]["principal"], "reactor-0");
    assert_eq!(reactors[0]["stores"], serde_json::json!(["local"]));

    let table = c.sealctl(&c.admin, &["get", "status"]).ok();
    for line in [
        "latest checkpoint",
        "none",
        "reactors",
        "1 connected",
        "reactor-0 (stores local)",
    ] {
        assert!(table.contains(line), "{table}");
    }

    let auditor = c.add_user("carol", "auditor", &[]);
    c.sealctl(&auditor, &["get", "status"]).ok();
    // Once a checkpoint is signed, status names it as `restore --checkpoint` takes it.
    let checkpoint = c
        .sealctl(&auditor, &["audit", "checkpoint", "-o", "json"])
        .json();
    let status = c.sealctl(&c.admin, &["get", "status", "-o", "json"]).json();
    assert_eq!(
        status["latest_checkpoint"],
        format!(
            "{}:{}",
            checkpoint["position"],
            checkpoint["log_hash"].as_str().unwrap()
        ),
        "{status:#}"
    );
    let alice = c.add_user("alice", "user", &[]);
    let refused = c.sealctl(&alice, &["get", "status"]).failed_with(2);
    assert!(
        refused.contains("getstatus needs admin or auditor"),
        "{refused}"
    );

    let out = Command::new(bin("sealplane"))
        .args(["status", "--config"])
        .arg(c.control_plane().config_path())
        .args(["--addr", &c.addr])
        .env("SEALPLANE_TOKEN", &c.admin.token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("event store        embedded, head "),
        "{text}"
    );
    assert!(text.contains("1 connected"), "{text}");
}
