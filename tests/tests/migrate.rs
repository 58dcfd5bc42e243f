//! `sealplane migrate-store` end to end (issue 13, ADR 0022), with the real
//! binaries and the PostgreSQL server `scripts/test` starts: a log written
//! by `serve` on the embedded store is copied to PostgreSQL, where `serve`
//! (verifying the chains and the signed checkpoints with the same log key)
//! shows the same secrets; copied back to a new file it is the original
//! event for event, hashes included. A target that holds a log, and a
//! tampered source, are refused with a sentence and change nothing. The
//! database password shows in no output.

use std::path::Path;
use std::process::Command;

use sealplane_event_store::{EmbeddedStore, EventStore, Position, PostgresStore, RecordedEvent};
use sealplane_test_kit::postgres::Database;
use sealplane_test_kit::{Cluster, Settings, bin, marker};

const URL_ENV: &str = "SEALPLANE_MIGRATE_TEST_URL";

fn migrate(from: &str, to: &str, url: &str) -> (bool, String) {
    let out = Command::new(bin("sealplane"))
        .args(["migrate-store", "--from", from, "--to", to])
        .env(URL_ENV, url)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

async fn embedded_events(db: &Path) -> Vec<RecordedEvent> {
    let store = EmbeddedStore::open(db).unwrap();
    let events = store.read_all(Position::START, usize::MAX).await.unwrap();
    store.close().await;
    events
}

async fn postgres_events(url: &str) -> Vec<RecordedEvent> {
    let store = PostgresStore::connect(url).await.unwrap();
    let events = store.read_all(Position::START, usize::MAX).await.unwrap();
    store.close().await;
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_to_postgres_and_back_keeps_the_log_and_serve_shows_the_same_secrets() {
    let db = Database::create().await;
    let password = marker("pg-password");
    let url = db.url_with_password(&password);
    let mut c = Cluster::start_with(Settings::default().with_env(URL_ENV, &url));
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    for (uri, value) in [("local://alice/db", "one"), ("local://alice/api", "two")] {
        let put = c
            .sealctl(
                &alice,
                &[
                    "put",
                    "secret",
                    uri,
                    &format!("v={}", marker(value)),
                    "-o",
                    "json",
                ],
            )
            .json();
        assert_eq!(put["uri"], uri);
    }
    let before = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    c.stop();
    let original = c.dir().join("original.db");
    std::fs::rename(c.control_plane().events_db(), &original).unwrap();
    let config = c.control_plane().config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    let embedded_section = format!(
        "backend = \"embedded\"\npath = \"{}\"",
        c.control_plane().events_db().display()
    );
    assert!(text.contains(&embedded_section), "{text}");
    let source = format!("embedded:{}", original.display());

    // Embedded to PostgreSQL: copied, verified, said in one line.
    let to_pg = format!("postgres-url-env:{URL_ENV}");
    let (ok, said) = migrate(&source, &to_pg, &url);
    assert!(ok, "{said}");
    assert!(said.contains("Migrated and verified:"), "{said}");
    assert!(said.contains("is the source's"), "{said}");
    assert!(said.contains("sealplane:***@"), "{said}");
    assert!(!said.contains(&password), "{said}");
    let events = embedded_events(&original).await;
    assert!(events.len() > 10, "{}", events.len());
    assert_eq!(postgres_events(&db.url).await, events);

    // `serve` on the copy (same log key: the signed checkpoints verify)
    // shows the same secrets.
    std::fs::write(
        &config,
        format!(
            "{}\n[audit]\nlog_key_file = \"{}\"\n",
            text.replace(
                &embedded_section,
                &format!("backend = \"postgres\"\nurl_env = \"{URL_ENV}\"")
            ),
            c.dir().join("log-signing.key").display()
        ),
    )
    .unwrap();
    c.restart_control_plane();
    let after = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    assert_eq!(after, before);
    assert!(
        !c.control_plane().events_db().exists(),
        "served from PostgreSQL, not a new file"
    );
    c.stop();

    // Onto a target that holds a log: refused, the target unchanged.
    let on_pg = postgres_events(&db.url).await;
    let (ok, said) = migrate(&source, &to_pg, &url);
    assert!(!ok, "{said}");
    assert!(said.contains("already holds an event log"), "{said}");
    assert!(!said.contains(&password), "{said}");
    assert_eq!(postgres_events(&db.url).await, on_pg);

    // And back into a new data directory: the original, event for event.
    let back = c.dir().join("back");
    let (ok, said) = migrate(&to_pg, &format!("embedded:{}", back.display()), &url);
    let back = back.join("events.db");
    assert!(ok, "{said}");
    assert!(said.contains("Migrated and verified:"), "{said}");
    assert_eq!(embedded_events(&back).await, events);
    assert_eq!(c.scan_for(password.as_bytes()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_source_is_refused_and_nothing_is_copied() {
    let mut c = Cluster::start();
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    c.sealctl(&alice, &["put", "secret", "local://alice/db", "v=x"])
        .ok();
    c.stop();
    let db = c.control_plane().events_db();
    let changed = rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE events SET data = replace(data, 'alice', 'mallory') WHERE position = \
             (SELECT max(position) FROM events WHERE data LIKE '%alice%')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let target = Database::create().await;
    let source = format!("embedded:{}", db.display());
    let (ok, said) = migrate(&source, &format!("postgres:{}", target.url), "");
    assert!(!ok, "{said}");
    assert!(
        said.contains("failed verification, so nothing was copied"),
        "{said}"
    );
    assert!(said.contains("edited"), "{said}");
    assert_eq!(postgres_events(&target.url).await, vec![]);
    let file = c.dir().join("copy").join("events.db");
    let (ok, said) = migrate(&source, &format!("embedded:{}", file.display()), "");
    assert!(!ok, "{said}");
    assert!(!file.exists());
}
