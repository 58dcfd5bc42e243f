//! `sealplane serve` on the PostgreSQL event store (ADR 0019): a put
//! through it with `sealctl` lands in the database, the url's password
//! (read from `url_file`) shows in no log or output, and a restart replays
//! the log from the database. `scripts/test` starts the server and exports
//! `SEALPLANE_TEST_POSTGRES_URL`; without it this test fails.

use sealplane_event_store::{EventStore, Position, PostgresStore};
use sealplane_test_kit::postgres::Database;
use sealplane_test_kit::{Cluster, Settings, marker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_through_serve_on_postgres_lands_in_the_database_and_the_password_nowhere() {
    let db = Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    // The test server trusts loopback, so any password connects: this one
    // only has to stay out of every log and output.
    let password = marker("pg-password");
    let url_file = dir.path().join("postgres.url");
    std::fs::write(&url_file, db.url_with_password(&password)).unwrap();
    let settings = Settings {
        event_store: format!(
            "[event_store]\nbackend = \"postgres\"\nurl_file = \"{}\"",
            url_file.display()
        ),
        sections: format!(
            "[audit]\nlog_key_file = \"{}\"",
            dir.path().join("log-signing.key").display()
        ),
        ..Settings::default()
    };
    let mut c = Cluster::start_with(settings);
    c.add_file_store("local");
    let alice = c.add_user("alice", "user", &[]);
    let value = marker("pw-postgres");
    let put = c
        .sealctl(
            &alice,
            &[
                "put",
                "secret",
                "local://alice/db",
                &format!("password={value}"),
                "-o",
                "json",
            ],
        )
        .json();
    assert_eq!(put["uri"], "local://alice/db");
    assert_eq!(put["version"], 1);

    // A restart replays the log from the database: the secret is still there.
    c.stop();
    c.restart_control_plane();
    let list = c.sealctl(&alice, &["get", "secrets", "-o", "json"]).json();
    assert_eq!(list["secrets"][0]["uri"], "local://alice/db", "{list}");

    // The events are in PostgreSQL, with no plaintext.
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let events = store.read_all(Position::START, 100_000).await.unwrap();
    store.close().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert!(types.contains(&"SecretUploaded"), "{types:?}");
    for e in &events {
        assert!(!e.data.as_str().contains(&value), "plaintext in {e:?}");
        assert!(!e.metadata.as_str().contains(&value));
    }
    // Nothing under the cluster directory (logs, sealctl output, file
    // store) holds the value or the database password.
    c.stop();
    assert_eq!(c.scan_for(value.as_bytes()), Vec::<String>::new());
    assert_eq!(c.scan_for(password.as_bytes()), Vec::<String>::new());
    let log = std::fs::read_to_string(c.control_plane().log_path()).unwrap();
    assert!(log.contains("serving"), "{log}");
}

#[test]
fn serve_with_the_database_unreachable_exits_non_zero_with_a_sentence_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let password = marker("pg-password");
    let config = dir.path().join("sealplane.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[event_store]\nbackend = \"postgres\"\nurl_env = \"SEALPLANE_POSTGRES_URL\"\n[audit]\nlog_key_file = \"{}\"\n",
            dir.path().join("log-signing.key").display()
        ),
    )
    .unwrap();
    // Nothing listens on port 1.
    let out = std::process::Command::new(sealplane_test_kit::bin("sealplane"))
        .args(["serve", "--config"])
        .arg(&config)
        .env(
            "SEALPLANE_POSTGRES_URL",
            format!("postgres://sealplane:{password}@127.0.0.1:1/sealplane"),
        )
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{printed}");
    assert!(printed.contains("cannot open the event store"), "{printed}");
    assert!(
        printed.contains("postgres://sealplane:***@127.0.0.1:1/sealplane"),
        "{printed}"
    );
    assert!(!printed.contains(&password), "{printed}");
}
