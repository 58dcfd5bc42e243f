//! Fast start (issue 14, ADR 0026) with the real binaries: a control plane
//! stopped cleanly leaves its read-model snapshot, and the next start
//! resumes from it; a snapshot changed on disk is discarded and a deleted
//! one means a rebuild from the whole log — and through all three, every
//! secret, version, access list, principal and token answers the same.

use sealplane_test_kit::{Cluster, User};

/// What the clients see, as text to compare across restarts: each user's
/// listing and each secret's description with its history, the
/// principals, `whoami` of each user, and the refusal of a revoked token.
fn answers(c: &Cluster, users: &[&User], revoked: &User, uris: &[&str]) -> Vec<String> {
    let mut seen = vec![];
    for user in users {
        seen.push(c.sealctl(user, &["whoami", "-o", "json"]).ok());
        seen.push(c.sealctl(user, &["get", "secrets", "-o", "json"]).ok());
        for uri in uris {
            let described = c.sealctl(
                user,
                &["describe", "secret", uri, "--history", "-o", "json"],
            );
            seen.push(format!(
                "{} {} {}",
                described.code, described.stdout, described.stderr
            ));
        }
    }
    seen.push(
        c.sealctl(&c.admin, &["get", "principals", "-o", "json"])
            .ok(),
    );
    seen.push(c.sealctl(&c.admin, &["get", "stores", "-o", "json"]).ok());
    let refused = c.sealctl(revoked, &["whoami"]);
    assert_ne!(refused.code, 0, "a revoked token is refused");
    seen.push(refused.stderr);
    seen
}

/// This run's part of the control plane's log (it appends across runs).
fn last_run(c: &Cluster, before: usize) -> String {
    let log = std::fs::read_to_string(c.control_plane().log_path()).unwrap();
    log[before..].to_owned()
}

fn log_len(c: &Cluster) -> usize {
    std::fs::metadata(c.control_plane().log_path())
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_from_the_snapshot_and_a_changed_or_deleted_one_means_a_rebuild() {
    // Given secrets with versions and access lists, a group, and tokens
    // (one revoked)
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let bob = c.add_user("bob", "user", &[]);
    c.add_user("carol", "user", &[]);
    let issued = c
        .sealctl(&c.admin, &["issue", "token", "carol", "-o", "json"])
        .json();
    let gone = User {
        token: issued["token"].as_str().unwrap().to_owned(),
        ..c.add_user("dave", "user", &[])
    };
    c.sealctl(
        &c.admin,
        &[
            "revoke",
            "token",
            "carol",
            issued["token_id"].as_str().unwrap(),
        ],
    )
    .ok();
    c.sealctl(&c.admin, &["create", "group", "team"]).ok();
    c.sealctl(&c.admin, &["add", "member", "team", "bob"]).ok();
    let uris = ["local://alice/db", "local://alice/api", "local://alice/tls"];
    for (i, uri) in uris.iter().enumerate() {
        for v in 0..=i {
            c.sealctl(&alice, &["put", "secret", uri, &format!("k={v}-{uri}")])
                .ok();
        }
    }
    c.sealctl(
        &alice,
        &["grant", "secret", uris[0], "--list", "readers", "team"],
    )
    .ok();
    let admin = c.admin.clone();
    let users = [&admin, &alice, &bob];
    let expected = answers(&c, &users, &gone, &uris);
    let listed = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 3, "{listed}");
    let db = c
        .sealctl(&bob, &["describe", "secret", uris[0], "-o", "json"])
        .json();
    assert_eq!(
        db["versions"].as_array().unwrap().len(),
        1,
        "bob reads as team: {db}"
    );
    let snapshot = c.dir().join("read-model.snapshot");

    // When it stops cleanly and starts again
    c.stop();
    assert!(snapshot.exists(), "a clean stop writes the snapshot");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&snapshot).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let before = log_len(&c);
    c.restart_control_plane();
    // Then it started from the snapshot, verifying only what followed it
    let run = last_run(&c, before);
    assert!(
        run.contains("read model restored from its snapshot"),
        "{run}"
    );
    assert!(run.contains("hash chains verified after position"), "{run}");
    // And every secret, version, list, principal and token answers the same
    assert_eq!(answers(&c, &users, &gone, &uris), expected);

    // When the snapshot is changed on disk (one byte flipped)
    c.stop();
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&snapshot, &bytes).unwrap();
    let before = log_len(&c);
    c.restart_control_plane();
    // Then it is discarded, the model rebuilt from the log, the answers the same
    let run = last_run(&c, before);
    assert!(run.contains("discarding the read-model snapshot"), "{run}");
    assert!(
        run.contains("does not carry this control plane's MAC"),
        "{run}"
    );
    assert!(
        !run.contains("read model restored from its snapshot"),
        "{run}"
    );
    assert_eq!(answers(&c, &users, &gone, &uris), expected);

    // When the snapshot is deleted
    c.stop();
    std::fs::remove_file(&snapshot).unwrap();
    let before = log_len(&c);
    c.restart_control_plane();
    // Then it rebuilds from the whole log, verifying all of it first
    let run = last_run(&c, before);
    assert!(run.contains("no read-model snapshot"), "{run}");
    assert!(run.contains("hash chain verified;"), "{run}");
    assert_eq!(answers(&c, &users, &gone, &uris), expected);

    // And neither the snapshot nor any log holds a value put
    c.stop();
    assert!(snapshot.exists());
    for uri in uris {
        for v in 0..3 {
            c.assert_nowhere(format!("{v}-{uri}").as_bytes());
        }
    }
}
