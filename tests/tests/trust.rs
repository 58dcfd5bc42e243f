//! Trust a compromised control plane cannot break (SPEC §1.4, §12; ADR
//! 0010), with the real binaries: `sealctl` seals only to a reactor
//! identity a trusted anchor certified for that exact store, one the user
//! named or pinned, or one confirmed on a terminal — never silently.

use sealplane_event_store::{
    EmbeddedStore, EventMetadata, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
};
use sealplane_test_kit::{Cluster, User, marker};

/// Every file under `dir` (a file store's root), recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn count(log: &[(String, String)], event_type: &str) -> usize {
    log.iter().filter(|(t, _)| t == event_type).count()
}

/// A user with a fresh config dir: no pins, no trust.
fn fresh(c: &Cluster, user: &User) -> User {
    User {
        config_dir: c.dir().join(format!("fresh-{}", user.slug)),
        ..user.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uncertified_store_gets_nothing_on_a_first_put_not_even_by_a_bare_path() {
    let mut c = Cluster::start();
    let real = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    // An admin without the trust anchor (or a compromised control plane)
    // registers a store whose "reactor" is the attacker's.
    let ops = c.add_user("ops", "admin", &[]);
    let attacker = c.add_reactor_for("evil", None);
    let attacker_key = c.reactor_key(attacker);
    c.sealctl(
        &ops,
        &[
            "create",
            "store",
            "evil",
            "--kind",
            "file",
            "--reactor-key",
            &attacker_key,
        ],
    )
    .ok();
    c.start_reactor(attacker);
    let secret = marker("first-put");

    // (a) A first put on a fresh machine, without a terminal: exit 3.
    for who in [fresh(&c, &alice), alice.clone()] {
        let out = c.sealctl(
            &who,
            &[
                "put",
                "secret",
                "evil://alice/x",
                &format!("password={secret}"),
            ],
        );
        let stderr = out.failed_with(3);
        assert!(
            stderr.contains("nothing you trust vouches for it"),
            "{stderr}"
        );
        assert!(
            stderr.contains("--reactor-key") && stderr.contains("sealctl trust add"),
            "{stderr}"
        );
        assert!(!stderr.contains(&secret));
    }

    // (b) A bare path the control plane resolves to the uncertified store.
    c.sealctl(&ops, &["set", "default-store", "evil"]).ok();
    let out = c.sealctl(
        &alice,
        &["put", "secret", "alice/y", &format!("password={secret}")],
    );
    let stderr = out.failed_with(3);
    assert!(
        stderr.contains("bare path was resolved by the control plane to store `evil`"),
        "{stderr}"
    );
    // Even with the reactor's key pinned by name once, a bare path to it is
    // allowed only because it is pinned: naming it now works explicitly.
    c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "evil://alice/z",
            "password=chosen",
            "--reactor-key",
            &attacker_key,
        ],
    )
    .ok();

    // A certified store still works on a fresh machine with only the
    // deployment's trust line.
    let newcomer = fresh(&c, &alice);
    c.trust_anchor_in(&newcomer.config_dir);
    c.sealctl(
        &newcomer,
        &["put", "secret", "local://alice/ok", "password=fine"],
    )
    .ok();

    c.assert_nowhere(secret.as_bytes());
    let root = c.dir().join(format!("reactor-{attacker}")).join("files");
    let attacker_files: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("alice/x") || p.to_string_lossy().contains("alice/y")
        })
        .collect();
    assert!(attacker_files.is_empty(), "{attacker_files:?}");
    let _ = real;
    let log = c.event_log().await;
    // Only the two deliberate puts (z to evil, ok to local) were sealed.
    assert_eq!(count(&log, "SecretUploadRequested"), 2, "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certified_rotation_is_accepted_without_a_prompt_and_a_replayed_older_certificate_is_refused()
 {
    let mut c = Cluster::start();
    let first = c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    c.sealctl(
        &alice,
        &["put", "secret", "local://alice/db", "password=one"],
    )
    .ok();
    let pins = alice.config_dir.join("known_reactors");
    assert!(
        std::fs::read_to_string(&pins)
            .unwrap()
            .contains(&format!("{} 1", c.reactor_key(first)))
    );

    // (c) The admin replaces the store's reactor and certifies the new
    // identity (serial 2); the old reactor stops.
    let second = c.add_reactor_for("local", Some(first));
    let new_key = c.reactor_key(second);
    c.kill_reactor(first);
    c.sealctl(
        &c.admin,
        &["certify", "store", "local", "--reactor-key", &new_key],
    )
    .ok();
    c.start_reactor(second);
    let described = c
        .sealctl(&alice, &["describe", "store", "local", "-o", "json"])
        .json();
    assert_eq!(described["certificate_serial"], 2, "{described}");
    // Accepted without any prompt (stdin is not a terminal), and pinned.
    let out = c.sealctl(
        &alice,
        &[
            "put",
            "secret",
            "local://alice/db",
            "password=two",
            "-o",
            "json",
        ],
    );
    // (The new reactor writes to a file store of its own: version 1 there.)
    assert_eq!(out.json()["uri"], "local://alice/db");
    assert!(
        std::fs::read_to_string(&pins)
            .unwrap()
            .contains(&format!("{new_key} 2"))
    );

    // A compromised control plane (here: someone with the database) brings
    // back the first identity with its genuine, older certificate.
    let log = c.event_log().await;
    let created = log
        .iter()
        .find(|(t, _)| t == "StoreCreated")
        .map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .unwrap();
    let replayed = serde_json::json!({
        "type": "StoreCertified",
        "name": "local",
        "certificate": created["certificate"],
    });
    let store = EmbeddedStore::open(c.control_plane().events_db()).unwrap();
    store
        .append(
            &StreamId::parse("stores").unwrap(),
            ExpectedVersion::Any,
            vec![
                NewEvent::from_json_text(
                    EventType::parse("StoreCertified").unwrap(),
                    1,
                    &replayed.to_string(),
                    &EventMetadata::new("admin"),
                )
                .unwrap(),
            ],
        )
        .await
        .unwrap();
    store.close().await;
    c.restart_control_plane();
    let described = c
        .sealctl(&alice, &["describe", "store", "local", "-o", "json"])
        .json();
    assert_eq!(
        described["certificate_serial"], 1,
        "the control plane serves the old one"
    );

    let out = c.sealctl(
        &alice,
        &["put", "secret", "local://alice/db", "password=three"],
    );
    let stderr = out.failed_with(3);
    assert!(
        stderr.contains("serial 1") && stderr.contains("seen serial 2"),
        "{stderr}"
    );
    // A user who never saw serial 2 would accept serial 1: an admin did
    // certify it once (ADR 0010's stated limit).
}
